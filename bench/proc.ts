// The one place a benchmark server process is started and stopped. Every server (s3g, the
// bare baselines, s3rver) is a child process on 127.0.0.1 that prints a ready line; it is
// stopped by its PID (SIGTERM, then SIGKILL after a grace period). Servers still running
// when the bench exits (an error, Ctrl-C) are killed by PID as well.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ServerProcess {
  name: string;
  pid: number;
  /** The first capture group of the ready pattern (a URL). */
  url: string;
  /** stdout + stderr so far (bounded). */
  output(): string;
  /** SIGTERM by PID, SIGKILL after graceMs; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Matched against stdout; group 1 is the server's URL. */
  ready: RegExp;
  readyTimeoutMs?: number;
}

const live = new Map<number, ChildProcess>();
const OUTPUT_LIMIT = 64 * 1024;

function killAll(): void {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export async function spawnServer(options: SpawnOptions): Promise<ServerProcess> {
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${options.name}: spawn failed`);
  const pid = child.pid;
  live.set(pid, child);
  let out = '';
  const append = (data: Buffer): void => {
    out += data.toString();
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(pid);
      resolve();
    }),
  );
  const stop = async (graceMs = 15_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }, graceMs);
    await exited;
    clearTimeout(timer);
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${options.name} not ready after ${options.readyTimeoutMs ?? 30_000} ms:\n${out}`)), options.readyTimeoutMs ?? 30_000);
      const onData = (): void => {
        const match = options.ready.exec(out);
        if (!match) return;
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(match[1]!);
      };
      child.stdout!.on('data', onData);
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${options.name} exited (${child.exitCode ?? child.signalCode}) before ready:\n${out}`));
      });
    });
    return { name: options.name, pid, url, output: () => out, stop };
  } catch (error) {
    await stop(1000);
    throw error;
  }
}
