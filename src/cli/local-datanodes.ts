// The datanodes of `s3g serve`: one child process each, under <data>/datanodes/<i>/,
// reached over real gRPC on loopback. A child that dies is started again and its new
// address registered, so the gateway's event loop never carries the datanode side.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MetadataStore } from '../metadata/store.js';
import { DatanodeClient } from '../datanode/client.js';
import type { Placement } from '../pipeline/placement.js';
import { log } from '../common/log.js';

const childFile = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../datanode/child.ts' : '../datanode/child.js', import.meta.url));

interface Slot {
  id: string;
  dir: string;
  child?: ChildProcess;
}

export class LocalDatanodes {
  private readonly slots: Slot[];
  private stopping = false;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    dataDir: string,
    count: number,
    private readonly store: MetadataStore,
    private readonly placement: Placement,
    private readonly options: {
      /** Added to the datanodes' nice value, so the gateway's event loop gets the CPU first. */
      nice: number;
      /** Free disk space no new block may take (BlockStore.reservedBytes). */
      reservedBytes: number;
    },
  ) {
    this.slots = Array.from({ length: count }, (_, i) => ({ id: String(i + 1), dir: join(dataDir, 'datanodes', String(i + 1)) }));
  }

  async start(heartbeatMs = 5000): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.launch(slot)));
    this.heartbeat = setInterval(() => void this.beat(), heartbeatMs);
    this.heartbeat.unref();
  }

  /** PIDs of the datanode processes, by datanode id (tests kill them). */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.slots.map((s) => [s.id, s.child?.pid]));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeat);
    await Promise.all(
      this.slots.map(async (slot) => {
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  private async launch(slot: Slot): Promise<void> {
    mkdirSync(slot.dir, { recursive: true });
    const child = fork(childFile, [
      ...['--id', slot.id, '--dir', slot.dir, '--host', '127.0.0.1', '--port', '0'],
      ...['--nice', String(this.options.nice), '--reserved-space', String(this.options.reservedBytes)],
    ], {
      // The parent's node flags (a TypeScript loader, --cpu-prof) apply to datanodes too.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    slot.child = child;
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message: { type?: string; port?: number }) => {
        if (message.type === 'ready' && message.port) resolve(message.port);
        else reject(new Error(`datanode ${slot.id} sent ${JSON.stringify(message)}`));
      });
      child.once('exit', (code, signal) => reject(new Error(`datanode ${slot.id} exited (${signal ?? code}) before it was ready`)));
    });
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      log('warn', 'datanode exited; restarting', { datanode: slot.id, code, signal });
      setTimeout(() => void this.launch(slot).catch((error) => log('error', 'datanode restart failed', { datanode: slot.id, error: String(error) })), 500).unref();
    });
    const address = `127.0.0.1:${port}`;
    const client = new DatanodeClient(address);
    try {
      const info = await client.info();
      await this.store.registerDatanode({ id: slot.id, address, capacityBytes: info.capacityBytes, usedBytes: info.usedBytes });
    } finally {
      client.close();
    }
    await this.placement.refresh();
  }

  private async beat(): Promise<void> {
    await Promise.all(
      this.slots.map(async (slot) => {
        try {
          const info = await this.placement.client(slot.id).info();
          await this.store.heartbeat(slot.id, { capacityBytes: info.capacityBytes, usedBytes: info.usedBytes });
        } catch {
          // A missed heartbeat is what marks a datanode dead; nothing to do here.
        }
      }),
    );
  }
}
