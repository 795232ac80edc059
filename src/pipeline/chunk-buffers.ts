// Fixed-size chunk buffers in SharedArrayBuffer memory: posting one to a hashing worker
// shares it instead of copying. The pool has a fixed number of buffers for the whole
// gateway, so the memory of request bodies in flight is bounded whatever the concurrency:
// when every buffer is in use, readers wait (and their sockets apply backpressure).

export class ChunkBufferPool {
  private readonly free: Uint8Array[] = [];
  private readonly waiting: ((buffer: Uint8Array) => void)[] = [];
  private allocated = 0;

  constructor(
    readonly chunkSize: number,
    readonly maxBuffers = 64,
  ) {}

  acquire(): Uint8Array | Promise<Uint8Array> {
    const buffer = this.free.pop();
    if (buffer) return buffer;
    if (this.allocated < this.maxBuffers) {
      this.allocated++;
      return new Uint8Array(new SharedArrayBuffer(this.chunkSize));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(buffer: Uint8Array): void {
    const next = this.waiting.shift();
    if (next) next(buffer);
    else this.free.push(buffer);
  }

  get stats(): { allocated: number; free: number; waiting: number } {
    return { allocated: this.allocated, free: this.free.length, waiting: this.waiting.length };
  }
}
