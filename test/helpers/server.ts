// Starts a real `bin/s3g serve` process on loopback with a temporary data directory and
// stops it by its PID. Every test server gets its own ports (0 = chosen by the kernel).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const S3G = join(ROOT, 'bin', 's3g');
export const ACCESS_KEY = 'AKIAS3GTESTADMIN0001';
export const SECRET_KEY = 'test-secret-key-0123456789abcdefghijklmn';
/** The key-encryption key of test gateways (`serve` makes its own, DATA/kek). */
export const TEST_KEK = 'dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=';

export interface ServerOptions {
  /** `serve` (default) or a cluster's `gateway`, which needs `--meta` in args. */
  command?: 'serve' | 'gateway';
  dataDir?: string;
  args?: string[];
  env?: Record<string, string>;
}

export interface TestServer {
  url: string;
  /** The admin port: /health, /ready, /stats. */
  adminUrl: string;
  port: number;
  dataDir: string;
  proc: ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait, the way a crash looks. */
  kill9(): Promise<void>;
}

// Every directory tempDir made goes when the test file's process ends: servers stopped in a
// teardown (their data kept for a restart in between) left theirs behind, gigabytes per run.
const madeDirs: string[] = [];
process.once('exit', () => {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = 's3g-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? tempDir();
  const command = options.command ?? 'serve';
  const placeArgs = command === 'serve' ? ['--data', dataDir] : [];
  const proc = spawn(S3G, [command, ...placeArgs, '--port', '0', '--admin-port', '0', ...(options.args ?? [])], {
    env: { ...process.env, S3G_ACCESS_KEY: ACCESS_KEY, S3G_SECRET_KEY: SECRET_KEY, ...(command === 'gateway' ? { S3G_KEK: TEST_KEK } : {}), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready after 30 s:\n${out}`)), 30_000);
    const onData = (): void => {
      const m = /^s3g ready (http:\/\/\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before ready:\n${out}`));
    });
  });
  const port = Number(new URL(url).port);
  const adminUrl = /^s3g admin (http:\/\/\S+)$/m.exec(out)?.[1] ?? '';
  return {
    url,
    adminUrl,
    port,
    dataDir,
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * The server's output once it contains `pattern`, or as it is after timeoutMs: access lines
 * reach stderr up to 100 ms after their request (the log writer batches them).
 */
export async function outputWith(server: TestServer, pattern: RegExp | string, timeoutMs = 5000): Promise<string> {
  const found = (): boolean => (typeof pattern === 'string' ? server.output().includes(pattern) : pattern.test(server.output()));
  // Not found in time: the caller's assertion on the output says what is missing.
  await waitFor(`${String(pattern)} in the output`, found, timeoutMs, 25).catch(() => undefined);
  return server.output();
}

/** Kills a server and removes its data directory; for t.teardown. */
export async function disposeServer(server: TestServer): Promise<void> {
  await server.kill9();
  rmSync(server.dataDir, { recursive: true, force: true });
}

/** PIDs of a server's datanode child processes by datanode id, read from /proc. */
export function datanodePids(server: TestServer): Record<string, number> {
  const pids: Record<string, number> = {};
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid !== server.proc.pid) continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const id = args[args.indexOf('--id') + 1];
      if (args.indexOf('--id') >= 0 && id) pids[id] = Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

export interface TestDatanode {
  address: string;
  adminUrl: string;
  dataDir: string;
  proc: ChildProcess;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/** A cluster datanode (`bin/s3g datanode`) registered in the metadata store at `meta`. */
export async function startDatanode(meta: string, dataDir = tempDir('s3g-dn-'), args: string[] = []): Promise<TestDatanode> {
  const proc = spawn(S3G, ['datanode', '--meta', meta, '--data', dataDir, '--port', '0', '--admin-port', '0', '--heartbeat-interval', '1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`datanode not ready after 30 s:\n${out}`)), 30_000);
    proc.stdout!.on('data', () => {
      const m = /^s3g datanode ready (\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(() => reject(new Error(`datanode exited before ready:\n${out}`)));
  });
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(name);
    await exited;
  };
  const adminUrl = /^s3g admin (\S+)$/m.exec(out)?.[1] ?? '';
  return { address, adminUrl, dataDir, proc, kill9: () => signal('SIGKILL'), stop: () => signal('SIGTERM') };
}
