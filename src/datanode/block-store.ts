// On-disk block storage of one datanode. Layout under the datanode directory:
//
//   <dir>/containers/<containerId>/<localId>.block   the block's bytes, nothing else
//   <dir>/containers/<containerId>/<localId>.crc     CRC32C of each bytesPerChecksum slice of
//                                                    .block, 4 bytes big-endian per slice, in order
//   <dir>/containers/<containerId>/<localId>.meta    JSON {version, length, bytesPerChecksum,
//                                                    chunkCount, committed: true}
//   <dir>/instance                                   a random id, written at each start
//
// Ids are decimal integers; no S3 key ever reaches the disk. A block is committed iff its
// .meta exists: .meta is written only after .block and .crc are fsynced (temp file, fsync,
// rename, fsync of the directory), so a crash leaves either a committed block or an
// uncommitted leftover (.block/.crc without .meta) that DeleteBlocks removes later.
// Corrupting a byte of a .block file leaves its .crc untouched, so readers, which receive
// the stored CRCs, notice.
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { status } from '@grpc/grpc-js';
import { firstBadSlice } from '../hashing/checksums.js';
import { chunkHeadroom } from './chunk-encoding.js';

export interface BlockKey {
  containerId: number;
  localId: number;
}

export interface SliceChecksums {
  bytesPerChecksum: number;
  crc32c: number[];
}

/** Where a read piece goes: `headroom` free bytes (room for message fields), then the data. */
export interface PieceMemory {
  buffer: Buffer;
  headroom: number;
}

export interface ReadPiece extends PieceMemory {
  offset: number;
  checksums: SliceChecksums;
}

export interface StoredBlockInfo {
  length: number;
  committed: boolean;
  chunkCount: number;
}

export interface StoreStats {
  capacityBytes: number;
  usedBytes: number;
  blockCount: number;
  healthy: boolean;
}

interface BlockMeta {
  version: 1;
  length: number;
  bytesPerChecksum: number;
  chunkCount: number;
  committed: true;
}

/** An error carrying the gRPC status code the server should answer with. */
export class StoreError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

/** Read responses carry at most this much data (rounded down to whole slices). */
export const READ_PIECE_BYTES = 1024 * 1024;
/** Largest accepted bytesPerChecksum: a read piece holds at least one slice. */
export const MAX_BYTES_PER_CHECKSUM = 16 * 1024 * 1024;

/**
 * Free disk space a datanode keeps by default (`--reserved-space`): room for the metadata,
 * logs and whatever else shares the disk once blocks have filled the rest.
 */
export const DEFAULT_RESERVED_BYTES = 1024 ** 3;

const CRC_BYTES = 4;
/** <dir>/INSTANCE_FILE holds the store's instanceId. */
export const INSTANCE_FILE = 'instance';

export class BlockStore {
  private readonly containersDir: string;
  private readonly writers = new Map<string, BlockWriter>();
  /** Containers whose directory entry is known durable. */
  private readonly durableContainers = new Set<number>();
  private used = 0;
  private committedBlocks = 0;
  private closed = false;

  private constructor(
    /** Absolute. */
    readonly dir: string,
    /** Written to <dir>/instance at open: whoever reads it back there shares this store's disk. */
    readonly instanceId: string,
    /** Free space of the filesystem no new block may take (Ozone's volume min free space). */
    readonly reservedBytes: number,
  ) {
    this.containersDir = join(dir, 'containers');
  }

  /** Opens (creating if needed) the store and scans it for used bytes and committed blocks. */
  static async open(dir: string, options: { reservedBytes?: number } = {}): Promise<BlockStore> {
    const store = new BlockStore(resolve(dir), randomUUID(), options.reservedBytes ?? 0);
    await mkdir(store.containersDir, { recursive: true });
    await writeFile(join(store.dir, INSTANCE_FILE), store.instanceId);
    await store.scan();
    return store;
  }

  private async scan(): Promise<void> {
    for (const name of await readdir(this.containersDir)) {
      if (!/^\d+$/.test(name)) continue;
      const containerDir = join(this.containersDir, name);
      const files = await readdir(containerDir);
      await Promise.all(
        files.map(async (file) => {
          if (file.endsWith('.block')) {
            const { size } = await stat(join(containerDir, file));
            this.used += size; // after the await: `used += await …` would lose concurrent additions
          } else if (file.endsWith('.meta')) this.committedBlocks++;
          else if (file.endsWith('.meta.tmp')) await rm(join(containerDir, file), { force: true });
        }),
      );
    }
  }

  /** Where a block's files live (see the layout at the top of this file). */
  paths(block: BlockKey): BlockPaths {
    return blockPaths(this.dir, block);
  }

  /**
   * Starts (or restarts, truncating an uncommitted leftover) the write of a block.
   * One writer per block at a time; a committed block is immutable.
   */
  async openWriter(block: BlockKey): Promise<BlockWriter> {
    this.checkOpen();
    const paths = this.paths(block);
    const key = blockKey(block);
    if (this.writers.has(key)) throw new StoreError(status.ABORTED, `block ${key} is being written by another stream`);
    // Registered before any await so that two concurrent opens cannot both pass.
    const writer = new BlockWriter(this, block.containerId, key, paths);
    this.writers.set(key, writer);
    try {
      // A full disk would fail the block part way (and whatever shares the disk, such as
      // serve's metadata); refusing it at the start lets the gateway say why.
      const free = await this.freeBytes();
      if (free < this.reservedBytes) {
        throw new StoreError(status.RESOURCE_EXHAUSTED, `open block ${key}: ${free} bytes free, below the reserve of ${this.reservedBytes}`);
      }
      if (await exists(paths.meta)) throw new StoreError(status.ALREADY_EXISTS, `block ${key} is already committed`);
      await mkdir(paths.container, { recursive: true });
      const leftover = await fileSize(paths.data);
      const data = await open(paths.data, 'w');
      const crc = await open(paths.crc, 'w').catch(async (err: unknown) => {
        await data.close();
        throw err;
      });
      this.used -= leftover;
      await writer.attach(data, crc);
      return writer;
    } catch (err) {
      this.writers.delete(key);
      throw asStoreError(err, `open block ${key}`);
    }
  }

  /** Streams [offset, offset+length) of a committed block, widened to whole slices. */
  read(block: BlockKey, offset: number, length: number): AsyncGenerator<ReadPiece> {
    this.checkOpen();
    return readBlockFiles(this.paths(block), blockKey(block), offset, length, (len, bpc) => {
      const headroom = chunkHeadroom(len, bpc);
      // Of its own (not from Buffer's shared pool): grpc-framing sends it whole.
      return { buffer: Buffer.allocUnsafeSlow(headroom + len), headroom };
    });
  }

  async blockInfo(block: BlockKey): Promise<StoredBlockInfo> {
    this.checkOpen();
    const paths = this.paths(block);
    const key = blockKey(block);
    const writer = this.writers.get(key);
    if (writer) return { length: writer.written, committed: false, chunkCount: writer.chunkCount };
    if (await exists(paths.meta)) {
      const meta = await readMeta(paths.meta, key);
      return { length: meta.length, committed: true, chunkCount: meta.chunkCount };
    }
    // An uncommitted leftover of an aborted or crashed write.
    try {
      return { length: (await stat(paths.data)).size, committed: false, chunkCount: 0 };
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new StoreError(status.NOT_FOUND, `block ${key} not found`);
      throw asStoreError(err, `stat block ${key}`);
    }
  }

  /**
   * Removes blocks, committed or not; a block being written is aborted first. Returns how
   * many had anything on disk (missing blocks count as already deleted).
   */
  async delete(blocks: readonly BlockKey[]): Promise<number> {
    this.checkOpen();
    const all = blocks.map((block) => ({ key: blockKey(block), paths: this.paths(block) }));
    let deleted = 0;
    for (const { key, paths } of all) {
      await this.writers.get(key)?.abort();
      const size = await fileSize(paths.data);
      // .meta goes first: a crash midway leaves an uncommitted leftover, never a committed
      // block without data.
      const hadMeta = await removeFile(paths.meta);
      const hadCrc = await removeFile(paths.crc);
      const hadData = await removeFile(paths.data);
      if (hadMeta) this.committedBlocks--;
      if (hadData) this.used -= size;
      if (hadMeta || hadCrc || hadData) deleted++;
    }
    return deleted;
  }

  /**
   * capacityBytes = usedBytes + what new blocks may still take (the filesystem's free space
   * less the reserve), so capacity - used = room, which placement weighs.
   */
  async stats(): Promise<StoreStats> {
    let room = 0;
    let healthy = !this.closed;
    try {
      room = Math.max(0, (await this.freeBytes()) - this.reservedBytes);
    } catch {
      healthy = false;
    }
    return { capacityBytes: this.used + room, usedBytes: this.used, blockCount: this.committedBlocks, healthy };
  }

  /** What the filesystem still grants this process. */
  private async freeBytes(): Promise<number> {
    const fs = await statfs(this.dir);
    return fs.bavail * fs.bsize;
  }

  get usedBytes(): number {
    return this.used;
  }

  get blockCount(): number {
    return this.committedBlocks;
  }

  /** Aborts every open writer (their blocks stay uncommitted) and refuses further work. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.writers.values()].map((w) => w.abort()));
  }

  // --- used by BlockWriter ---

  /** @internal */
  account(bytes: number): void {
    this.used += bytes;
  }

  /** @internal Called once a block's meta is durable in its container directory. */
  async committed(containerId: number): Promise<void> {
    // The container's own entry in containers/ must be durable too (once per process).
    if (!this.durableContainers.has(containerId)) {
      await syncDir(this.containersDir);
      this.durableContainers.add(containerId);
    }
    this.committedBlocks++;
  }

  /** @internal */
  released(key: string, writer: BlockWriter): void {
    if (this.writers.get(key) === writer) this.writers.delete(key);
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError(status.UNAVAILABLE, 'datanode store is closed');
  }
}

/**
 * Writes one block: chunks in order, each verified against its slice CRCs before it is
 * written, then commit. Operations run one at a time (a chain), so abort() from a delete
 * or shutdown waits for the disk operation in flight instead of closing its file handle.
 */
export class BlockWriter {
  written = 0;
  chunkCount = 0;
  private bytesPerChecksum = 0;
  private data: FileHandle | undefined;
  private crc: FileHandle | undefined;
  private state: 'open' | 'committed' | 'aborted' | 'failed' = 'open';
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: BlockStore,
    private readonly containerId: number,
    readonly key: string,
    private readonly paths: BlockPaths,
  ) {}

  /** @internal */
  async attach(data: FileHandle, crc: FileHandle): Promise<void> {
    if (this.state !== 'open') {
      // Aborted (delete, shutdown) while its files were being opened.
      await Promise.all([data.close(), crc.close()]);
      throw new StoreError(status.ABORTED, `block ${this.key}: write was aborted`);
    }
    this.data = data;
    this.crc = crc;
  }

  write(offset: number, data: Uint8Array, checksums: SliceChecksums | null): Promise<void> {
    return this.serial(() => this.doWrite(offset, data, checksums));
  }

  commit(length: number): Promise<void> {
    return this.serial(() => this.doCommit(length));
  }

  /** Closes the files and leaves the block uncommitted. Idempotent. */
  abort(): Promise<void> {
    const run = this.tail.then(
      () => this.release('aborted'),
      () => this.release('aborted'),
    );
    this.tail = run;
    return run;
  }

  private serial(op: () => Promise<void>): Promise<void> {
    const run = this.tail.then(op, op);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async doWrite(offset: number, data: Uint8Array, checksums: SliceChecksums | null): Promise<void> {
    this.checkOpen();
    const bpc = checksums?.bytesPerChecksum ?? 0;
    if (!Number.isInteger(bpc) || bpc <= 0 || bpc > MAX_BYTES_PER_CHECKSUM) {
      throw new StoreError(status.INVALID_ARGUMENT, `block ${this.key}: bytesPerChecksum must be in 1..${MAX_BYTES_PER_CHECKSUM}, got ${bpc}`);
    }
    if (offset !== this.written) {
      throw new StoreError(status.FAILED_PRECONDITION, `block ${this.key}: chunk offset ${offset} but ${this.written} bytes written so far`);
    }
    if (data.length === 0) throw new StoreError(status.INVALID_ARGUMENT, `block ${this.key}: empty chunk at offset ${offset}`);
    if (this.chunkCount > 0 && bpc !== this.bytesPerChecksum) {
      throw new StoreError(status.INVALID_ARGUMENT, `block ${this.key}: bytesPerChecksum ${bpc} differs from the block's ${this.bytesPerChecksum}`);
    }
    if (this.written % bpc !== 0) {
      throw new StoreError(status.INVALID_ARGUMENT, `block ${this.key}: only the last chunk may end mid-slice (previous chunk ended at ${this.written})`);
    }
    const crc32c = checksums?.crc32c ?? [];
    const slices = Math.ceil(data.length / bpc);
    if (crc32c.length !== slices) {
      throw new StoreError(status.INVALID_ARGUMENT, `block ${this.key}: chunk at offset ${offset} has ${crc32c.length} checksums for ${slices} slices`);
    }
    const bad = firstBadSlice(data, bpc, crc32c);
    if (bad >= 0) {
      throw new StoreError(status.DATA_LOSS, `block ${this.key}: checksum mismatch in slice ${bad} of chunk at offset ${offset}`);
    }
    const sums = Buffer.allocUnsafe(slices * CRC_BYTES);
    for (let i = 0; i < slices; i++) sums.writeUInt32BE(crc32c[i]! >>> 0, i * CRC_BYTES);
    try {
      await writeFully(this.data!, data, offset);
      await writeFully(this.crc!, sums, (offset / bpc) * CRC_BYTES);
    } catch (err) {
      // The files may now hold part of the chunk: this writer is done, and used bytes
      // must count what did land on disk.
      await this.release('failed');
      this.store.account((await fileSize(this.paths.data).catch(() => this.written)) - this.written);
      throw asStoreError(err, `write block ${this.key}`);
    }
    this.store.account(data.length);
    this.bytesPerChecksum = bpc;
    this.written += data.length;
    this.chunkCount++;
  }

  private async doCommit(length: number): Promise<void> {
    this.checkOpen();
    if (length !== this.written) {
      throw new StoreError(status.FAILED_PRECONDITION, `block ${this.key}: commit length ${length} but ${this.written} bytes written`);
    }
    const meta: BlockMeta = {
      version: 1,
      length,
      bytesPerChecksum: this.bytesPerChecksum,
      chunkCount: this.chunkCount,
      committed: true,
    };
    const tmp = `${this.paths.meta}.tmp`;
    try {
      await Promise.all([this.data!.sync(), this.crc!.sync()]);
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(JSON.stringify(meta));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.paths.meta);
      await syncDir(this.paths.container);
      await this.store.committed(this.containerId);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      await this.release('failed');
      throw asStoreError(err, `commit block ${this.key}`);
    }
    await this.release('committed');
  }

  private async release(state: 'committed' | 'aborted' | 'failed'): Promise<void> {
    if (this.state !== 'open') return;
    this.state = state;
    const handles = [this.data, this.crc];
    this.data = this.crc = undefined;
    this.store.released(this.key, this);
    await Promise.all(handles.map((h) => h?.close().catch(() => undefined)));
  }

  private checkOpen(): void {
    if (this.state === 'committed') throw new StoreError(status.ALREADY_EXISTS, `block ${this.key} is already committed`);
    if (this.state !== 'open') throw new StoreError(status.ABORTED, `block ${this.key}: write was aborted`);
  }
}

export interface BlockPaths {
  container: string;
  data: string;
  crc: string;
  meta: string;
}

/** Where a block's files live under a datanode directory (see the layout at the top of this file). */
export function blockPaths(dir: string, block: BlockKey): BlockPaths {
  const { containerId, localId } = checkBlock(block);
  const container = join(dir, 'containers', String(containerId));
  const base = join(container, String(localId));
  return { container, data: `${base}.block`, crc: `${base}.crc`, meta: `${base}.meta` };
}

/**
 * Streams [offset, offset+length) of the committed block at `paths`, widened to whole
 * slices, in pieces of at most READ_PIECE_BYTES, each read into the memory `into` gives (the
 * data after `headroom` free bytes). Shared by the datanode and by a gateway reading the files
 * of a datanode on its own host.
 */
export async function* readBlockFiles(
  paths: BlockPaths,
  key: string,
  offset: number,
  length: number,
  into: (length: number, bytesPerChecksum: number) => PieceMemory = (length) => ({ buffer: Buffer.allocUnsafe(length), headroom: 0 }),
): AsyncGenerator<ReadPiece> {
  if (!isCount(offset) || !isCount(length)) throw new StoreError(status.INVALID_ARGUMENT, 'offset and length must be non-negative integers');
  const meta = await readMeta(paths.meta, key);
  if (offset + length > meta.length) {
    throw new StoreError(status.OUT_OF_RANGE, `range [${offset}, ${offset + length}) is past the end of block ${key} (length ${meta.length})`);
  }
  if (length === 0) return;
  const bpc = meta.bytesPerChecksum;
  const start = Math.floor(offset / bpc) * bpc;
  const end = Math.min(Math.ceil((offset + length) / bpc) * bpc, meta.length);
  const pieceBytes = Math.max(bpc, Math.floor(READ_PIECE_BYTES / bpc) * bpc);
  let data: FileHandle | undefined;
  let crc: FileHandle | undefined;
  try {
    data = await open(paths.data, 'r');
    crc = await open(paths.crc, 'r');
    for (let at = start; at < end; at += pieceBytes) {
      const len = Math.min(pieceBytes, end - at);
      const slices = Math.ceil(len / bpc);
      const { buffer, headroom } = into(len, bpc);
      await readFully(data, buffer, headroom, len, at, `block ${key} data`);
      const sums = Buffer.allocUnsafe(slices * CRC_BYTES);
      await readFully(crc, sums, 0, sums.length, (at / bpc) * CRC_BYTES, `block ${key} checksums`);
      const crc32c = new Array<number>(slices);
      for (let i = 0; i < slices; i++) crc32c[i] = sums.readUInt32BE(i * CRC_BYTES);
      yield { offset: at, buffer, headroom, checksums: { bytesPerChecksum: bpc, crc32c } };
    }
  } catch (err) {
    throw asStoreError(err, `read block ${key}`);
  } finally {
    await Promise.all([data?.close(), crc?.close()].map((p) => p?.catch(() => undefined)));
  }
}

async function readMeta(path: string, key: string): Promise<BlockMeta> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') throw new StoreError(status.NOT_FOUND, `block ${key} not found or not committed`);
    throw asStoreError(err, `read meta of block ${key}`);
  }
  let meta: BlockMeta | undefined;
  try {
    meta = JSON.parse(text) as BlockMeta;
  } catch {
    meta = undefined;
  }
  if (meta?.version !== 1 || meta.committed !== true) throw new StoreError(status.DATA_LOSS, `block ${key}: unreadable meta`);
  return meta;
}

export function blockKey(block: BlockKey): string {
  return `${block.containerId}/${block.localId}`;
}

function checkBlock(block: BlockKey | null | undefined): BlockKey {
  if (!block || !isCount(block.containerId) || !isCount(block.localId)) {
    throw new StoreError(status.INVALID_ARGUMENT, 'a block id needs non-negative integer containerId and localId');
  }
  return block;
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** Reads `length` bytes at file `position` into buffer[at…]. */
async function readFully(fh: FileHandle, buffer: Buffer, at: number, length: number, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buffer, at + done, length - done, position + done);
    if (bytesRead === 0) throw new StoreError(status.DATA_LOSS, `${what} is shorter than recorded (truncated on disk)`);
    done += bytesRead;
  }
}

/**
 * Bytes handed to one write(2). A chunk (4 MiB by default) goes down in pieces: the kernel
 * does not preempt a thread inside a system call, and one 4 MiB write into fresh page-cache
 * pages held a CPU for up to 20 ms here, with the gateway's event loop waiting behind it.
 */
const WRITE_PIECE = 256 * 1024;

async function writeFully(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, Math.min(data.length - done, WRITE_PIECE), position + done);
    done += bytesWritten;
  }
}

/** fsync of a directory makes the entries created or renamed in it durable. */
async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 0;
    throw err;
  }
}

async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function asStoreError(err: unknown, doing: string): StoreError {
  if (err instanceof StoreError) return err;
  const errno = errnoOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const code = errno === 'ENOSPC' || errno === 'EDQUOT' ? status.RESOURCE_EXHAUSTED : status.INTERNAL;
  return new StoreError(code, `${doing}: ${message}`);
}
