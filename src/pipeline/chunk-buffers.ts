// Fixed-size chunk buffers in SharedArrayBuffer memory: posting one to a hashing worker
// shares it instead of copying, and reusing them keeps a request's memory at a few chunks.

export class ChunkBufferPool {
  private readonly free: Uint8Array[] = [];

  constructor(
    readonly chunkSize: number,
    /** Buffers kept for reuse; beyond that released buffers are left to the GC. */
    private readonly maxFree = 64,
  ) {}

  acquire(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(new SharedArrayBuffer(this.chunkSize));
  }

  release(buffer: Uint8Array): void {
    if (this.free.length < this.maxFree) this.free.push(buffer);
  }
}
