// Background service of the commit protocol: open keys abandoned by crashed or failed uploads
// (and multipart uploads left unfinished for days) are expired, their blocks going to the
// deleted-block log, and the log is drained to the datanodes, so datanode space comes back.
import type { MetadataStore } from '../metadata/store.js';
import type { Placement } from '../pipeline/placement.js';
import { log } from '../common/log.js';
import { LeasedService } from './leased-service.js';

export interface PurgeOptions {
  intervalMs: number;
  /** An open 'put' key untouched this long belongs to an upload that is gone. */
  openKeyTimeoutMs: number;
  /** Unfinished multipart uploads are aborted after this long (AWS lifecycle rules often say 7 days). */
  multipartTimeoutMs: number;
  batchSize?: number;
}

export class BlockPurgeService extends LeasedService {
  constructor(
    store: MetadataStore,
    private readonly placement: Placement,
    private readonly options: PurgeOptions,
    holder: string,
  ) {
    super(store, 'block-purge', holder, options.intervalMs);
  }

  protected async pass(): Promise<Record<string, number>> {
    const openKeys = await this.store.expireOpenKeys(this.options.openKeyTimeoutMs);
    const uploads = await this.store.expireMultipartUploads(this.options.multipartTimeoutMs);
    if (openKeys + uploads > 0) log('info', 'expired abandoned uploads', { openKeys, multipartUploads: uploads });
    await this.placement.refresh();
    let deleted = 0;
    for (;;) {
      const pending = await this.store.pendingBlockDeletions(this.options.batchSize ?? 500);
      if (pending.length === 0) break;
      const byDatanode = new Map<string, typeof pending>();
      for (const item of pending) byDatanode.set(item.datanodeId, [...(byDatanode.get(item.datanodeId) ?? []), item]);
      const done: number[] = [];
      await Promise.all(
        [...byDatanode].map(async ([datanodeId, items]) => {
          try {
            await this.placement.client(datanodeId).deleteBlocks(items.map((i) => i.block));
            done.push(...items.map((i) => i.id));
          } catch (error) {
            // Left in the log: a later pass retries once the datanode is back.
            log('warn', 'block deletion failed', { datanodeId, error: String(error) });
          }
        }),
      );
      if (done.length > 0) await this.store.completeBlockDeletions(done);
      deleted += done.length;
      if (done.length < pending.length) break;
    }
    return { expiredOpenKeys: openKeys, expiredMultipartUploads: uploads, deletedReplicas: deleted };
  }
}
