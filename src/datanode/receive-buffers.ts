// grpc-js reassembles every received message from its HTTP/2 DATA frames into a new buffer:
// on a datanode a fresh 4 MiB allocation per chunk, on a gateway reading over gRPC 1 MiB per
// piece. That is memory the OS must fault in again and that V8 counts as external, so it runs
// a full garbage collection every few dozen messages. Here large messages are reassembled
// into recycled buffers instead, each given back (releaseReceived) once nothing uses it: by
// WriteBlock once its chunk is on disk, by ObjectReader once a piece is copied into the
// shared memory it is verified in. A buffer that is never given back is simply collected.
// This replaces grpc-js's StreamDecoder.write (build/src, no public hook exists), whose shape
// is checked when this module loads.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface StreamDecoderState {
  maxReadMessageLength: number;
  /** The 5-byte gRPC prefix (compression flag, length) being read. */
  s3gPrefix?: Buffer;
  s3gPrefixFilled?: number;
  /** The message being filled (prefix included), once its length is known. */
  s3gMessage?: Buffer;
  s3gMessageFilled?: number;
}

const { StreamDecoder } = require('@grpc/grpc-js/build/src/stream-decoder.js') as {
  StreamDecoder?: { prototype: { write?: (this: StreamDecoderState, data: Buffer) => Buffer[] } };
};
if (typeof StreamDecoder?.prototype.write !== 'function') {
  throw new Error('@grpc/grpc-js internals changed (StreamDecoder.write): revisit receive-buffers.ts');
}

const PREFIX_BYTES = 5;
/** Smaller messages (acks, commits, requests) come from Buffer's shared pool, as before. */
const RECYCLED_MIN_BYTES = 256 * 1024;
/** Capacities are whole MiB, so the chunks of one configuration share one free list. */
const CAPACITY_STEP = 1024 * 1024;
/** Free buffers kept per capacity: the chunks a datanode's receive windows let in at once. */
const FREE_PER_CAPACITY = 16;

const recycled = new WeakSet<ArrayBuffer>();
const free = new Map<number, ArrayBuffer[]>();

function messageBuffer(length: number): Buffer {
  if (length < RECYCLED_MIN_BYTES) return Buffer.allocUnsafe(length);
  const capacity = Math.ceil(length / CAPACITY_STEP) * CAPACITY_STEP;
  let memory = free.get(capacity)?.pop();
  if (!memory) {
    memory = new ArrayBuffer(capacity);
    recycled.add(memory);
  }
  return Buffer.from(memory, 0, length);
}

/**
 * Gives back the buffer a received message (or any view of it, such as a chunk's data) was
 * reassembled into. Only once nothing reads or writes that memory any more: the next
 * message may be reassembled into it at once. Views of other memory are ignored.
 */
export function releaseReceived(view: Uint8Array): void {
  const memory = view.buffer;
  if (!(memory instanceof ArrayBuffer) || !recycled.has(memory)) return;
  let list = free.get(memory.byteLength);
  if (!list) free.set(memory.byteLength, (list = []));
  if (list.length < FREE_PER_CAPACITY && !list.includes(memory)) list.push(memory);
}

// grpc-js's decoder, with each message copied once into its buffer as frames arrive (instead
// of a list of frame slices and a concat at the end). Same output: each message with its prefix.
StreamDecoder.prototype.write = function (this: StreamDecoderState, data: Buffer): Buffer[] {
  const messages: Buffer[] = [];
  let at = 0;
  while (at < data.length) {
    const message = this.s3gMessage;
    if (message === undefined) {
      const prefix = (this.s3gPrefix ??= Buffer.alloc(PREFIX_BYTES));
      const filled = this.s3gPrefixFilled ?? 0;
      const n = Math.min(PREFIX_BYTES - filled, data.length - at);
      data.copy(prefix, filled, at, at + n);
      at += n;
      this.s3gPrefixFilled = filled + n;
      if (this.s3gPrefixFilled < PREFIX_BYTES) break;
      this.s3gPrefixFilled = 0;
      const size = prefix.readUInt32BE(1);
      if (this.maxReadMessageLength !== -1 && size > this.maxReadMessageLength) {
        throw new Error(`Received message larger than max (${size} vs ${this.maxReadMessageLength})`);
      }
      const next = messageBuffer(PREFIX_BYTES + size);
      prefix.copy(next, 0);
      if (size === 0) {
        messages.push(next);
      } else {
        this.s3gMessage = next;
        this.s3gMessageFilled = PREFIX_BYTES;
      }
    } else {
      const filled = this.s3gMessageFilled!;
      const n = Math.min(message.length - filled, data.length - at);
      data.copy(message, filled, at, at + n);
      at += n;
      this.s3gMessageFilled = filled + n;
      if (this.s3gMessageFilled === message.length) {
        messages.push(message);
        this.s3gMessage = undefined;
      }
    }
  }
  return messages;
};
