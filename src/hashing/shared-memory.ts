// Copies into and out of SharedArrayBuffer memory, which the hashing workers read in place.
// V8 copies to and from shared memory element by element (about 1.5 GB/s here against 20+ GB/s
// for ordinary memory), so these copy eight bytes per element wherever alignment allows.

/** target.set(source, at), eight bytes at a time when both ends sit at the same offset modulo 8. */
export function copyBytes(source: Uint8Array, target: Uint8Array, at: number): void {
  const head = (8 - (source.byteOffset % 8)) % 8;
  const words = Math.floor((source.length - head) / 8);
  if (words > 0 && (target.byteOffset + at + head) % 8 === 0 && (source.byteOffset + head) % 8 === 0) {
    target.set(source.subarray(0, head), at);
    new BigUint64Array(target.buffer, target.byteOffset + at + head, words).set(new BigUint64Array(source.buffer, source.byteOffset + head, words));
    target.set(source.subarray(head + words * 8), at + head + words * 8);
  } else {
    target.set(source, at);
  }
}

/**
 * One reusable stretch of shared memory for buffers handed to the pool one after another (the
 * pieces of a GET). The previous view must no longer be in use when the next is taken.
 */
export class SharedStaging {
  private memory: SharedArrayBuffer | undefined;

  /** A copy of source in the shared memory, at source's offset modulo 8, so the copy goes by words. */
  share(source: Uint8Array): Uint8Array {
    const view = Buffer.from(this.reserve(8 + source.length), source.byteOffset % 8, source.length);
    copyBytes(source, view, 0);
    return view;
  }

  /** The shared memory itself, to read into (nothing to copy then). */
  take(length: number): Buffer {
    return Buffer.from(this.reserve(length), 0, length);
  }

  private reserve(bytes: number): SharedArrayBuffer {
    if (!this.memory || this.memory.byteLength < bytes) this.memory = new SharedArrayBuffer(bytes);
    return this.memory;
  }
}
