// Streams a byte range of an object from its blocks. Every piece is checked against the
// checksums the datanode stored before a byte of it is yielded; on a read error or a
// mismatch the read resumes at the same offset on the next source: over gRPC after a failed
// short-circuit read of the same replica, then the next replica.
import type { BlockLocation } from '../metadata/store.js';
import type { HashPool } from '../hashing/pool.js';
import type { Placement } from './placement.js';
import type { BlockSource } from '../datanode/client.js';
import { SharedStaging } from '../hashing/shared-memory.js';
import { releaseReceived } from '../datanode/receive-buffers.js';

export class ChecksumMismatchError extends Error {}

export class ReplicasExhaustedError extends Error {
  constructor(block: BlockLocation, readonly causes: unknown[]) {
    super(`no replica of block ${block.containerId}/${block.localId} could be read: ${causes.map(String).join('; ')}`);
  }
}

export interface ReadEvents {
  /** A replica (or its short-circuit read) failed and the read moved on (for logs and metrics). */
  onFailover?: (block: BlockLocation, datanodeId: string, error: unknown) => void;
  /** Verified bytes read from a datanode, over gRPC or from its files. */
  onRead?: (via: BlockSource['via'], bytes: number) => void;
}

export class ObjectReader {
  constructor(
    private readonly pool: HashPool,
    private readonly placement: Placement,
    private readonly events: ReadEvents = {},
  ) {}

  /**
   * Yields the bytes [start, end] (inclusive) of an object made of `blocks`. A piece may share
   * memory with the next one: use or copy it before asking for the next.
   */
  async *read(blocks: BlockLocation[], start: number, end: number): AsyncGenerator<Uint8Array> {
    let blockStart = 0;
    // Pieces go to the pool through shared memory: posting a plain buffer would copy it, and cost
    // more. Short-circuit reads land there directly.
    const staging = new SharedStaging();
    for (const block of blocks) {
      const blockEnd = blockStart + block.length - 1;
      if (blockEnd >= start && blockStart <= end) {
        const from = Math.max(start, blockStart) - blockStart;
        const to = Math.min(end, blockEnd) - blockStart;
        yield* this.readBlock(block, from, to, staging);
      }
      blockStart += block.length;
      if (blockStart > end) break;
    }
  }

  private async *readBlock(block: BlockLocation, from: number, to: number, staging: SharedStaging): AsyncGenerator<Uint8Array> {
    let cursor = from;
    const causes: unknown[] = [];
    for (const datanodeId of block.replicas) {
      for (const source of this.placement.sources(datanodeId)) {
        try {
          for await (const piece of source.readBlock(block, cursor, to - cursor + 1, (length) => staging.take(length))) {
            // Pieces read straight into the shared memory are verified in place; the memory a gRPC
            // piece was received in goes back to grpc-js's reassembly once copied.
            let shared: Uint8Array = piece.data;
            if (!(shared.buffer instanceof SharedArrayBuffer)) {
              shared = staging.share(piece.data);
              releaseReceived(piece.data);
            }
            const bad = await this.pool.verify(shared, piece.checksums.bytesPerChecksum, piece.checksums.crc32c);
            if (bad >= 0) {
              throw new ChecksumMismatchError(
                `checksum mismatch in block ${block.containerId}/${block.localId} at ${piece.offset + bad * piece.checksums.bytesPerChecksum} on datanode ${datanodeId} (${source.via})`,
              );
            }
            const skip = cursor - piece.offset;
            const take = Math.min(shared.length - skip, to - cursor + 1);
            if (skip < 0 || take <= 0) throw new Error(`datanode ${datanodeId} (${source.via}) sent a piece outside the requested range`);
            cursor += take;
            this.events.onRead?.(source.via, shared.length);
            yield shared.subarray(skip, skip + take);
            if (cursor > to) return;
          }
          if (cursor <= to) throw new Error(`datanode ${datanodeId} (${source.via}) ended block ${block.localId} early at ${cursor}`);
          return;
        } catch (error) {
          causes.push(error);
          this.events.onFailover?.(block, datanodeId, error);
        }
      }
    }
    throw new ReplicasExhaustedError(block, causes);
  }
}
