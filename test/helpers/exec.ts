// Child processes for the client tests: run a command to completion, talk JSON lines with a
// helper process, and find a client binary of the right version (a missing client fails the
// test, it is never skipped).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Killed (SIGTERM) after this long. */
  timeoutMs?: number;
}

/** This process's environment without the variables starting with `prefixes` (AWS_, RCLONE_: a client's own settings). */
export function envWithout(...prefixes: string[]): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !prefixes.some((p) => name.startsWith(p))));
}

/** Runs a command to completion; never rejects on a non-zero exit. */
export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, timeout: options.timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

/** Runs a command and returns its stdout; rejects with the command line and stderr on failure. */
export async function runOk(cmd: string, args: string[], options: RunOptions = {}): Promise<string> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout.toString()}`);
  return result.stdout.toString();
}

/**
 * The first of `candidates` whose `versionArgs` output matches `expect`, with that output.
 * Throws (so the test fails, also under CI) when none does.
 */
export async function findTool(candidates: string[], versionArgs: string[], expect: RegExp): Promise<{ path: string; version: string }> {
  const seen: string[] = [];
  for (const path of candidates) {
    const result = await run(path, versionArgs).catch((error: Error) => ({ code: -1, stdout: Buffer.alloc(0), stderr: error.message }));
    const version = (result.stdout.toString() + result.stderr).trim().split('\n')[0]!;
    if (result.code === 0 && expect.test(version)) return { path, version };
    seen.push(`${path}: ${version || `exit ${result.code}`}`);
  }
  throw new Error(`no client matching ${expect} (install the test clients with \`make test-deps\`); tried\n  ${seen.join('\n  ')}`);
}

/** A child that answers each JSON line on its stdin with one JSON line on its stdout, in order. */
export interface JsonLineProcess {
  /** The next line the child writes, asked for or not (a greeting, say). */
  next<T>(): Promise<T>;
  request<T>(message: unknown): Promise<T>;
  close(): void;
}

export function jsonLineProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv): JsonLineProcess {
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => (waiting.length ? waiting.shift()!.resolve(line) : lines.push(line)));
  const fail = (error: Error): void => waiting.splice(0).forEach((w) => w.reject(error));
  child.on('error', fail);
  child.on('exit', (code) => fail(new Error(`${cmd} ${args.join(' ')} exited ${code}`)));
  const next = async <T>(): Promise<T> =>
    JSON.parse(lines.length ? lines.shift()! : await new Promise<string>((resolve, reject) => waiting.push({ resolve, reject }))) as T;
  return {
    next,
    request<T>(message: unknown) {
      const reply = next<T>();
      child.stdin.write(JSON.stringify(message) + '\n');
      return reply;
    },
    close() {
      child.stdin.end();
      child.kill();
    },
  };
}
