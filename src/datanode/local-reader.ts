// Short-circuit reads: a gateway on the same host as a datanode reads committed blocks
// straight from the datanode's files, as HDFS's and Ozone's short-circuit readers do, which
// spares the datanode process, the gRPC hop and two copies. The datanode stays the only
// writer, and the gateway verifies the stored checksums exactly as it does over gRPC.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { INSTANCE_FILE, blockKey, blockPaths, readBlockFiles } from './block-store.js';
import type { BlockPiece, BlockRef, BlockSource, DatanodeInfo } from './client.js';

export class LocalBlockReader implements BlockSource {
  readonly via = 'short-circuit';

  private constructor(readonly dir: string) {}

  /**
   * A reader of the datanode's files if this process sees them: its data directory holds
   * the instance id the datanode just reported (so it is the same disk, not a namesake).
   */
  static async forDatanode(info: DatanodeInfo): Promise<LocalBlockReader | undefined> {
    if (!info.dataDir || !info.instanceId) return undefined;
    try {
      const id = await readFile(join(info.dataDir, INSTANCE_FILE), 'utf8');
      return id === info.instanceId ? new LocalBlockReader(info.dataDir) : undefined;
    } catch {
      return undefined;
    }
  }

  async *readBlock(block: BlockRef, offset: number, length: number, into?: (length: number) => Buffer): AsyncGenerator<BlockPiece, void, undefined> {
    const memory = into && ((len: number) => ({ buffer: into(len), headroom: 0 }));
    for await (const piece of readBlockFiles(blockPaths(this.dir, block), blockKey(block), offset, length, memory)) {
      yield { offset: piece.offset, data: piece.buffer.subarray(piece.headroom), checksums: piece.checksums };
    }
  }
}
