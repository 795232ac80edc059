// The baselines' lifecycle: each bare server (baseline-server.ts) runs as its own process,
// so that the load generator in the bench process competes with it exactly as it does with
// s3g, and is stopped by its PID. It runs with the node flags s3g runs with.
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { BaselineKind } from './baseline-server.js';
import { endpointAt, type Endpoint } from './endpoint.js';
import { spawnServer } from './proc.js';
import { ROOT, s3gNodeFlags, tempDir } from './s3g-server.js';

export interface BaselineServer {
  endpoint: Endpoint;
  stop(): Promise<void>;
}

/**
 * Starts a baseline server process; the large one keeps its files in a temporary directory.
 * `extraCpuUs`: the small one keeps the CPU busy that long per request first (baseline-server.ts).
 */
export async function startBaseline(kind: BaselineKind, extraCpuUs = 0): Promise<BaselineServer> {
  const dir = tempDir(`s3g-bench-${kind}-`);
  const proc = await spawnServer({
    name: `baseline-${kind}`,
    command: process.execPath,
    args: [...s3gNodeFlags(), '--import', 'tsx', fileURLToPath(new URL('./baseline-server.ts', import.meta.url)), kind, dir, String(extraCpuUs)],
    cwd: ROOT,
    ready: /^baseline ready (http:\/\/\S+)$/m,
  }).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    endpoint: endpointAt('bare', proc.url, undefined, proc.pid),
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
