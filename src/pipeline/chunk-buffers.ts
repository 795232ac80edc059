// Chunk buffers for request bodies, bounded for the whole gateway: when every buffer is in
// use, readers wait (and their sockets apply backpressure), so the memory of bodies in
// flight is fixed whatever the concurrency.
//
// A chunk has two homes. The body is copied from the socket into `data`, ordinary memory
// with room in front where the gRPC message fields are written (chunk-encoding.ts), so the
// chunk goes to the datanodes without another copy. Before hashing it is copied once more,
// whole and aligned, into `shared`, SharedArrayBuffer memory that the hashing workers read
// in place. (Filling shared memory straight from the socket is slower: V8 copies unaligned
// pieces into it byte by byte.)
import { chunkHeadroom } from '../datanode/chunk-encoding.js';

export interface ChunkBuffer {
  /** The encoded message's buffer: headroom bytes, then the data. */
  message: Buffer;
  headroom: number;
  /** chunkSize bytes of message after the headroom. */
  data: Buffer;
  /** chunkSize bytes the hashing workers read. */
  shared: Uint8Array;
}

export class ChunkBufferPool {
  private readonly free: ChunkBuffer[] = [];
  private readonly waiting: ((buffer: ChunkBuffer) => void)[] = [];
  private readonly headroom: number;
  private allocated = 0;

  constructor(
    readonly chunkSize: number,
    bytesPerChecksum: number,
    readonly maxBuffers: number,
  ) {
    this.headroom = chunkHeadroom(chunkSize, bytesPerChecksum);
  }

  acquire(): ChunkBuffer | Promise<ChunkBuffer> {
    const buffer = this.free.pop();
    if (buffer) return buffer;
    if (this.allocated < this.maxBuffers) {
      this.allocated++;
      const message = Buffer.allocUnsafeSlow(this.headroom + this.chunkSize);
      return { message, headroom: this.headroom, data: message.subarray(this.headroom), shared: new Uint8Array(new SharedArrayBuffer(this.chunkSize)) };
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(buffer: ChunkBuffer): void {
    const next = this.waiting.shift();
    if (next) next(buffer);
    else this.free.push(buffer);
  }

  get stats(): { allocated: number; free: number; waiting: number } {
    return { allocated: this.allocated, free: this.free.length, waiting: this.waiting.length };
  }
}
