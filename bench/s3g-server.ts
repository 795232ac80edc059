// The s3g server under test: `bin/s3g serve` on 127.0.0.1 with kernel-chosen ports and a
// temporary data directory, its admin /stats endpoint, and its shutdown by PID.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { endpointAt, type Credentials, type Endpoint } from './endpoint.js';
import { spawnServer, type ServerProcess } from './proc.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const S3G = join(ROOT, 'bin', 's3g');

/** The node flags bin/s3g runs s3g with (its heap sizing), read from the script itself. */
export function s3gNodeFlags(): string[] {
  const flags = /^exec node (.*?) \$S3G_NODE_ARGS/m.exec(readFileSync(S3G, 'utf8'))?.[1];
  if (flags === undefined) throw new Error(`no "exec node FLAGS $S3G_NODE_ARGS" line in ${S3G}`);
  return flags.split(/\s+/);
}

export const S3G_CREDENTIALS: Credentials = { accessKeyId: 'AKIAS3GBENCHADMIN001', secretAccessKey: 'bench-secret-key-0123456789abcdefghijklmn' };

export interface GatewayStats {
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  rssBytes: number;
  peakRssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
}

export interface S3gServer {
  endpoint: Endpoint;
  dataDir: string;
  /** PID of the gateway's node process (bin/s3g execs node); datanodes are its children. */
  pid: number;
  /** GET /stats; `reset` starts a new measurement window. */
  stats(reset?: boolean): Promise<GatewayStats>;
  /** What the gateway has printed (stdout and stderr), for a failure's report. */
  output(): string;
  /** SIGTERM by PID (a clean exit, so --cpu-prof profiles are written), then removes the data directory unless kept. */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export interface S3gOptions {
  /** An existing data directory (e.g. with pre-populated metadata); a temporary one otherwise. */
  dataDir?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Node flags for the gateway and its datanodes (e.g. --cpu-prof, which Node refuses in NODE_OPTIONS), through S3G_NODE_ARGS. */
  nodeArgs?: string[];
  /** Another s3g checkout (built) whose bin/s3g to run instead of this one's (bench/paired.ts). */
  root?: string;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startS3g(options: S3gOptions = {}): Promise<S3gServer> {
  const dataDir = options.dataDir ?? tempDir('s3g-bench-');
  let proc: ServerProcess;
  try {
    proc = await spawnServer({
      name: 's3g',
      command: options.root === undefined ? S3G : join(options.root, 'bin', 's3g'),
      args: ['serve', '--host', '127.0.0.1', '--data', dataDir, '--port', '0', '--admin-port', '0', ...(options.args ?? [])],
      env: {
        ...process.env,
        S3G_ACCESS_KEY: S3G_CREDENTIALS.accessKeyId,
        S3G_SECRET_KEY: S3G_CREDENTIALS.secretAccessKey,
        ...(options.nodeArgs ? { S3G_NODE_ARGS: options.nodeArgs.join(' ') } : {}),
        ...options.env,
      },
      ready: /^s3g ready (http:\/\/\S+)$/m,
      readyTimeoutMs: 60_000,
    });
  } catch (error) {
    if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const adminUrl = /^s3g admin (http:\/\/\S+)$/m.exec(proc.output())?.[1];
  if (!adminUrl) {
    await proc.stop();
    throw new Error(`s3g printed no admin URL:\n${proc.output()}`);
  }
  return {
    // With several gateway processes, the one PID is not the whole gateway: no CPU count then.
    endpoint: endpointAt('s3g', proc.url, S3G_CREDENTIALS, options.args?.includes('--gateway-processes') ? undefined : proc.pid),
    dataDir,
    pid: proc.pid,
    async stats(reset = false) {
      const url = `${adminUrl}/stats${reset ? '?reset=1' : ''}`;
      // Once more on a network error: after seconds of the bench's own work (presigning 50,000
      // URLs) fetch may reuse a kept-alive socket the admin server has closed meanwhile, and
      // see "other side closed". The request is idempotent (a reset twice is one reset).
      const get = () => fetch(url, { signal: AbortSignal.timeout(10_000) });
      const response = await get().catch((error: unknown) => (error instanceof TypeError ? get() : Promise.reject(error)));
      if (!response.ok) throw new Error(`s3g /stats: HTTP ${response.status}`);
      return (await response.json()) as GatewayStats;
    },
    output: () => proc.output(),
    async stop(stopOptions = {}) {
      await proc.stop(60_000);
      if (!stopOptions.keepData && !options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
