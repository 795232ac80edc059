// Background services of the commit protocol: open keys abandoned by crashed or failed
// uploads are expired (their blocks go to the deleted-block log), and the log is drained
// to the datanodes, so datanode space comes back.
import type { MetadataStore } from '../metadata/store.js';
import type { Placement } from '../pipeline/placement.js';
import { log } from '../common/log.js';

export interface PurgeOptions {
  intervalMs: number;
  /** An open 'put' key untouched this long belongs to an upload that is gone. */
  openKeyTimeoutMs: number;
  batchSize?: number;
}

export class BlockPurgeService {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: MetadataStore,
    private readonly placement: Placement,
    private readonly options: PurgeOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.options.intervalMs);
    this.timer.unref();
  }

  /** One pass; concurrent calls share the pass in progress. */
  runOnce(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async pass(): Promise<void> {
    try {
      const expired = await this.store.expireOpenKeys(this.options.openKeyTimeoutMs);
      if (expired > 0) log('info', 'expired abandoned open keys', { count: expired });
      await this.placement.refresh();
      for (;;) {
        const pending = await this.store.pendingBlockDeletions(this.options.batchSize ?? 500);
        if (pending.length === 0) return;
        const byDatanode = new Map<string, typeof pending>();
        for (const item of pending) byDatanode.set(item.datanodeId, [...(byDatanode.get(item.datanodeId) ?? []), item]);
        const done: number[] = [];
        await Promise.all(
          [...byDatanode].map(async ([datanodeId, items]) => {
            try {
              await this.placement.client(datanodeId).deleteBlocks(items.map((i) => i.block));
              done.push(...items.map((i) => i.id));
            } catch (error) {
              // Left in the log: the next pass retries once the datanode is back.
              log('warn', 'block deletion failed', { datanodeId, error: String(error) });
            }
          }),
        );
        if (done.length === 0) return;
        await this.store.completeBlockDeletions(done);
        if (done.length < pending.length) return;
      }
    } catch (error) {
      log('error', 'block purge pass failed', { error: String(error) });
    }
  }
}
