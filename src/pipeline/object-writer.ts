// Streams a body into blocks on datanodes: fixed-size chunks, hashed in the pool, written
// to every replica of the current block in parallel. Reading from the source waits while
// `maxBuffers` chunks are in flight, so a slow datanode slows the client instead of
// growing memory. Metadata sees the blocks before any byte is written (allocateBlock), so
// data that never gets committed can always be found and reclaimed.
import type { BlockRef, MetadataStore, OpenKeyKind } from '../metadata/store.js';
import type { ChunkHashes, HashPool, HashSession, DigestOptions, Digests } from '../hashing/pool.js';
import { status } from '@grpc/grpc-js';
import { DatanodeError, type BlockWriter } from '../datanode/client.js';
import { encodeChunkAt } from '../datanode/chunk-encoding.js';
import { asBuffer } from '../hashing/checksums.js';
import { copyBytes } from '../hashing/shared-memory.js';
import type { ChunkBuffer, ChunkBufferPool } from './chunk-buffers.js';
import type { Placement } from './placement.js';
import { log } from '../common/log.js';
import { s3Error } from '../gateway/errors.js';
import { newObjectId } from '../metadata/shared.js';

export interface StorageConfig {
  chunkSize: number;
  blockSize: number;
  bytesPerChecksum: number;
  replication: number;
  /** Chunk buffers one request may hold (filling + hashing + awaiting datanode acks). */
  maxBuffersPerRequest: number;
  /** PUTs of at most this many bytes are kept in the metadata row (0: never). */
  inlineThreshold: number;
}

export interface WrittenObject {
  objectId: string;
  size: number;
  digests: Digests;
  blocks: { containerId: number; localId: number; length: number }[];
  /** The whole body, when it was small enough to be kept in metadata instead of blocks. */
  inlineData?: Uint8Array;
}

/** Bytes as they come: a request's stream, a stored object's pieces, or pieces at hand. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface WriteInput {
  source: ByteSource;
  bucketId: number;
  key: string;
  kind: OpenKeyKind;
  digests: Omit<DigestOptions, 'bytesPerChecksum'>;
  /** Stop with an error past this many bytes (the declared length, or the maximum object size). */
  maxSize: number;
  /** A body of at most this many bytes is returned as inlineData and never sent to datanodes. */
  inlineUpTo?: number;
}

interface OpenBlock {
  ref: BlockRef;
  /** Datanode ids, parallel to writers. */
  replicas: string[];
  writers: BlockWriter[];
  /** Replicas that failed, by index, with why; they get no more chunks and no commit. */
  failed: Map<number, unknown>;
  length: number;
}

export class ObjectWriter {
  constructor(
    private readonly store: MetadataStore,
    private readonly pool: HashPool,
    private readonly placement: Placement,
    private readonly buffers: ChunkBufferPool,
    private readonly config: StorageConfig,
  ) {}

  /** Writes the whole source; on any failure the open key (if any) is aborted and the error rethrown. */
  async write(input: WriteInput): Promise<WrittenObject> {
    const run = new WriteRun(this.store, this.pool, this.placement, this.buffers, this.config, input);
    try {
      return await run.execute();
    } catch (error) {
      await run.abort();
      throw error;
    }
  }
}

export class BodyTooLargeError extends Error {}

/**
 * A body already all in memory (pieces at hand, as a small PUT's usually are) that goes
 * inline, as one buffer: no chunk buffer to fill and copy out of, no async iteration. A lone
 * piece is kept as it is: node's HTTP parser gives each body piece a buffer of its own.
 */
function inlineBodyAtHand(input: WriteInput): Buffer | undefined {
  if (!Array.isArray(input.source)) return undefined;
  const pieces = input.source as readonly Uint8Array[];
  let size = 0;
  for (const piece of pieces) size += piece.length;
  if (size === 0 || size > (input.inlineUpTo ?? 0) || size > input.maxSize) return undefined;
  return pieces.length === 1 ? asBuffer(pieces[0]!) : Buffer.concat(pieces, size);
}

class WriteRun {
  private session: HashSession | undefined;
  private block: OpenBlock | undefined;
  private readonly blocks: { containerId: number; localId: number; length: number }[] = [];
  private readonly commits: Promise<void>[] = [];
  private readonly allWriters: BlockWriter[] = [];
  /** Datanodes that failed during this upload: no new block goes to them. */
  private readonly excluded = new Set<string>();
  /** Datanode sends happen one chunk after another in this chain, in object order. */
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private wakeReader: (() => void) | undefined;
  private failure: unknown;
  private opened: Promise<string> | undefined;

  constructor(
    private readonly store: MetadataStore,
    private readonly pool: HashPool,
    private readonly placement: Placement,
    private readonly buffers: ChunkBufferPool,
    private readonly config: StorageConfig,
    private readonly input: WriteInput,
  ) {}

  /**
   * The open key, taken with the first block: a PUT kept inline (or empty) writes nothing
   * a purge would have to find, so it commits under a fresh id and costs one transaction.
   */
  private openKey(): Promise<string> {
    this.opened ??= this.store.openKey({ bucketId: this.input.bucketId, key: this.input.key, kind: this.input.kind }).then((open) => open.objectId);
    return this.opened;
  }

  private objectId(): Promise<string> {
    return this.input.kind === 'put' && !this.opened ? Promise.resolve(newObjectId()) : this.openKey();
  }

  async execute(): Promise<WrittenObject> {
    const atHand = inlineBodyAtHand(this.input);
    if (atHand) return this.inline(atHand);
    const { chunkSize } = this.config;
    let buffer: ChunkBuffer | undefined;
    let filled = 0;
    let size = 0;
    try {
      for await (const piece of this.input.source) {
        size += piece.length;
        if (size > this.input.maxSize) throw new BodyTooLargeError();
        let at = 0;
        while (at < piece.length) {
          buffer ??= await this.buffers.acquire();
          const n = Math.min(chunkSize - filled, piece.length - at);
          buffer.data.set(piece.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled === chunkSize) {
            const full = buffer;
            buffer = undefined;
            filled = 0;
            await this.dispatch(full, chunkSize);
          }
        }
        if (this.failure) throw this.failure;
      }
      let digests: Digests;
      const last = buffer;
      buffer = undefined;
      if (!this.session && filled > 0 && filled <= (this.input.inlineUpTo ?? 0)) {
        // Nothing was dispatched, so the whole body (size bytes) is in this one buffer.
        const inlineData = Buffer.from(last!.data.subarray(0, filled));
        this.buffers.release(last!);
        return await this.inline(inlineData);
      } else if (!this.session) {
        // The whole body fits in one chunk: one pool round trip for checksums and digests.
        const whole = this.pool.whole(last ? shareChunk(last, filled) : new Uint8Array(0), this.digestOptions());
        if (last && filled > 0) this.enqueue(last, filled, whole.then(({ crc32c }) => ({ crc32c, released: Promise.resolve() })));
        else if (last) this.buffers.release(last);
        digests = (await whole).digests;
      } else {
        if (last && filled > 0) await this.dispatch(last, filled);
        else if (last) this.buffers.release(last);
        digests = await this.session.digest();
      }
      await this.chain;
      if (this.failure) throw this.failure;
      if (this.block) this.closeBlock();
      await Promise.all(this.commits);
      return { objectId: await this.objectId(), size, digests, blocks: this.blocks };
    } finally {
      if (buffer) this.buffers.release(buffer);
    }
  }

  /** Small enough to live in the metadata row: no block, no datanode round trip, no slice CRCs. */
  private async inline(data: Buffer): Promise<WrittenObject> {
    const { digests } = await this.pool.whole(data, this.input.digests);
    return { objectId: await this.objectId(), size: data.length, digests, blocks: [], inlineData: data };
  }

  async abort(): Promise<void> {
    this.session?.abort();
    for (const writer of this.allWriters) writer.abort();
    if (this.opened) await this.opened.then((objectId) => this.store.abortOpenKey(objectId)).catch(() => undefined);
  }

  private digestOptions(): DigestOptions {
    return { ...this.input.digests, bytesPerChecksum: this.config.bytesPerChecksum };
  }

  /** Hashes a chunk in the request's session and queues it; waits while too many chunks are in flight. */
  private async dispatch(buffer: ChunkBuffer, length: number): Promise<void> {
    this.session ??= this.pool.session(this.digestOptions());
    this.enqueue(buffer, length, this.session.update(shareChunk(buffer, length)));
    while (this.inFlight >= this.config.maxBuffersPerRequest && !this.failure) {
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
    if (this.failure) throw this.failure;
  }

  /**
   * Sends chunks to the datanodes one after another, in object order. Every enqueued buffer
   * goes back to the pool exactly once: when every replica acknowledged it (or failed) and the
   * hashing worker is done reading it, or at once if the upload failed before it was sent.
   */
  private enqueue(buffer: ChunkBuffer, length: number, hashes: Promise<ChunkHashes>): void {
    this.inFlight++;
    this.chain = this.chain.then(async () => {
      let delivered: Promise<unknown> = Promise.resolve();
      try {
        const { crc32c, released } = await hashes;
        delivered = released;
        if (this.failure) return;
        delivered = Promise.all([released, ...(await this.sendToReplicas(buffer, length, crc32c))]);
      } catch (error) {
        this.fail(error);
      } finally {
        void delivered.finally(() => {
          this.buffers.release(buffer);
          this.inFlight--;
          this.wakeReader?.();
        });
      }
    });
  }

  /** Hands a chunk to gRPC for every replica of the current block; resolves to the acks. */
  private async sendToReplicas(buffer: ChunkBuffer, length: number, crc32c: number[]): Promise<Promise<void>[]> {
    const current = this.block;
    // A block that lost a replica is closed where it is; the rest of the object goes to a new pipeline.
    if (current && (current.failed.size > 0 || current.length + length > this.config.blockSize)) this.closeBlock();
    const block = this.block ?? (await this.openBlock());
    const offset = block.length;
    block.length += length;
    const chunk = encodeChunkAt(buffer.message, buffer.headroom, length, block.ref, offset, { bytesPerChecksum: this.config.bytesPerChecksum, crc32c });
    return block.writers.map((writer, i) => writer.writeEncoded(chunk).catch((error: unknown) => this.replicaFailed(block, i, error)));
  }

  private async openBlock(): Promise<OpenBlock> {
    const replicas = this.placement.choose(this.config.replication, this.excluded);
    const ref = await this.store.allocateBlock(await this.openKey(), replicas);
    const writers = replicas.map((id) => this.placement.client(id).openBlockWriter(ref));
    this.allWriters.push(...writers);
    this.block = { ref, replicas, writers, failed: new Map(), length: 0 };
    return this.block;
  }

  /** A replica that fails stops counting; the block lives on while one replica is left. */
  private replicaFailed(block: OpenBlock, index: number, error: unknown): void {
    if (block.failed.has(index)) return;
    block.failed.set(index, error);
    this.excluded.add(block.replicas[index]!);
    this.placement.suspect(block.replicas[index]!);
    log('warn', 'replica failed during write; excluding it', {
      block: `${block.ref.containerId}/${block.ref.localId}`,
      datanodeId: block.replicas[index],
      error: String(error),
    });
    if (block.failed.size < block.writers.length) return;
    // Out of space everywhere it went: the client hears so (the next upload avoids these datanodes).
    if ([...block.failed.values()].every(isOutOfSpace)) this.fail(s3Error('InsufficientStorage'));
    else this.fail(new Error(`every replica of block ${block.ref.localId} failed: ${String(error)}`));
  }

  private closeBlock(): void {
    const block = this.block!;
    this.block = undefined;
    this.blocks.push({ ...block.ref, length: block.length });
    const commit = (async () => {
      await Promise.all(
        block.writers.map((writer, i) =>
          block.failed.has(i) ? undefined : writer.commit(block.length).catch((error: unknown) => this.replicaFailed(block, i, error)),
        ),
      );
      if (block.failed.size === block.writers.length) throw this.failure ?? new Error(`block ${block.ref.localId} has no replica left`);
      for (const i of block.failed.keys()) await this.store.dropReplica(block.ref, block.replicas[i]!);
    })();
    commit.catch((error: unknown) => this.fail(error));
    this.commits.push(commit);
  }

  private fail(error: unknown): void {
    this.failure ??= error;
    this.wakeReader?.();
  }
}

function isOutOfSpace(error: unknown): boolean {
  return error instanceof DatanodeError && error.code === status.RESOURCE_EXHAUSTED;
}

/** The chunk's first `length` bytes, copied whole and aligned into its shared buffer for the hashing workers. */
function shareChunk(buffer: ChunkBuffer, length: number): Uint8Array {
  const shared = buffer.shared.subarray(0, length);
  copyBytes(buffer.data.subarray(0, length), shared, 0);
  return shared;
}
