// Re-replication: blocks with fewer live replicas than wanted (a datanode died, or a write
// pipeline lost a member) are copied from a surviving replica to other live datanodes. The
// copy carries the stored checksums, so the target verifies every slice before it acknowledges.
import type { MetadataStore, UnderReplicatedBlock } from '../metadata/store.js';
import type { Placement } from '../pipeline/placement.js';
import { log } from '../common/log.js';
import { LeasedService } from './leased-service.js';

export interface ReReplicationOptions {
  intervalMs: number;
  replication: number;
  batchSize?: number;
}

export class ReReplicationService extends LeasedService {
  constructor(
    store: MetadataStore,
    private readonly placement: Placement,
    private readonly options: ReReplicationOptions,
    holder: string,
  ) {
    super(store, 're-replication', holder, options.intervalMs);
  }

  protected async pass(): Promise<Record<string, number>> {
    await this.placement.refresh();
    let copied = 0;
    let bytes = 0;
    let failed = 0;
    const blocks = await this.store.underReplicatedBlocks(this.options.replication, this.options.batchSize ?? 200);
    for (const block of blocks) {
      try {
        const added = await this.repair(block);
        copied += added;
        bytes += added * block.length;
      } catch (error) {
        failed++;
        log('warn', 're-replication of a block failed', { block: `${block.containerId}/${block.localId}`, error: String(error) });
      }
    }
    if (copied > 0) log('info', 're-replicated blocks', { copies: copied, bytes });
    return { underReplicated: blocks.length, copies: copied, bytes, failed };
  }

  /** Copies the block to enough new datanodes; returns how many copies were made. */
  private async repair(block: UnderReplicatedBlock): Promise<number> {
    const missing = this.options.replication - block.live.length;
    const targets = this.placement.choose(missing, new Set(block.replicas), 1);
    const made: string[] = [];
    for (const target of targets) {
      if (await this.copyTo(block, target)) made.push(target);
    }
    if (made.length > 0) await this.store.replaceReplicas(block, [...block.live, ...made]);
    return made.length;
  }

  private async copyTo(block: UnderReplicatedBlock, target: string): Promise<boolean> {
    for (const source of block.live) {
      // The replica's files when they are on this host (short-circuit), else its datanode over gRPC.
      for (const from of this.placement.sources(source)) {
        const writer = this.placement.client(target).openBlockWriter(block);
        try {
          for await (const piece of from.readBlock(block, 0, block.length)) {
            await writer.writeChunk(piece.offset, piece.data, piece.checksums);
          }
          await writer.commit(block.length);
          return true;
        } catch (error) {
          writer.abort();
          log('warn', 'copy from a replica failed; trying the next', { block: block.localId, source, via: from.via, target, error: String(error) });
        }
      }
    }
    return false;
  }
}
