// Promise and async-iterator API over one datanode's gRPC channel. Errors are
// DatanodeError with the gRPC status code in `code`.
import * as grpc from '@grpc/grpc-js';
import {
  createDatanodeStub,
  grpcMessageOptions,
  type BlockInfo as BlockInfoMessage,
  type DatanodeStub,
  type DeleteBlocksResponse,
  type InfoResponse,
  type WriteBlockSend,
  type WriteBlockResponse,
} from './proto.js';
import { encodeChunk, type EncodedChunk } from './chunk-encoding.js';

export interface BlockRef {
  containerId: number;
  localId: number;
}

export interface Checksums {
  bytesPerChecksum: number;
  crc32c: number[];
}

export interface BlockPiece {
  /** Block offset of data[0]: the request's offset rounded down to a checksum slice. */
  offset: number;
  data: Buffer;
  /** The checksums stored on the datanode, one per bytesPerChecksum slice of data. */
  checksums: Checksums;
}

/** Where a replica's bytes can be read from: the datanode over gRPC, or its files (local-reader.ts). */
export interface BlockSource {
  readonly via: 'grpc' | 'short-circuit';
  /**
   * [offset, offset+length) of a committed block, widened to whole checksum slices. A source
   * that reads the bytes itself puts each piece in `into(length)` when given, which may be the
   * previous piece's memory; gRPC pieces arrive in buffers of their own.
   */
  readBlock(block: BlockRef, offset: number, length: number, into?: (length: number) => Buffer): AsyncGenerator<BlockPiece, void, undefined>;
}

export interface BlockInfo {
  containerId: number;
  localId: number;
  length: number;
  committed: boolean;
  chunkCount: number;
}

export interface DatanodeInfo {
  datanodeId: string;
  /** usedBytes + what the datanode's filesystem still has free. */
  capacityBytes: number;
  usedBytes: number;
  /** Committed blocks. */
  blockCount: number;
  healthy: boolean;
  /** Where the datanode keeps its blocks, and the id it wrote there (see datanode.proto). */
  dataDir: string;
  instanceId: string;
}

export interface DatanodeClientOptions {
  /** Deadline of unary calls (GetBlockInfo, DeleteBlocks, Info). Default 10 s. */
  unaryTimeoutMs?: number;
}

export class DatanodeError extends Error {
  constructor(
    message: string,
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(message);
    this.name = 'DatanodeError';
  }
}

const channelOptions = {
  ...grpcMessageOptions,
  // Streams have no deadline (a block takes as long as it takes), so pings detect a
  // peer that vanished without closing the connection.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  // A restarted datanode is reached again within seconds, not the default 2 minutes.
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 5_000,
  // A bigger HTTP/2 window than the 64 KiB default keeps 1 MiB read pieces flowing.
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
} satisfies grpc.ChannelOptions;

export class DatanodeClient implements BlockSource {
  readonly via = 'grpc';
  private readonly stub: DatanodeStub;
  private readonly unaryTimeoutMs: number;

  constructor(
    readonly address: string,
    options: DatanodeClientOptions = {},
  ) {
    this.stub = createDatanodeStub(address, grpc.credentials.createInsecure(), channelOptions);
    this.unaryTimeoutMs = options.unaryTimeoutMs ?? 10_000;
  }

  /** Opens a WriteBlock stream for one replica of a block. */
  openBlockWriter(block: BlockRef): BlockWriter {
    return new BlockWriter(this.stub.WriteBlock(), blockId(block), this.address);
  }

  /**
   * Streams [offset, offset+length) of a committed block, widened to whole checksum slices.
   * Stopping early (break, return) cancels the call.
   */
  async *readBlock(block: BlockRef, offset: number, length: number): AsyncGenerator<BlockPiece, void, undefined> {
    const call = this.stub.ReadBlock({ block: blockId(block), offset, length });
    // Once the loop below stops early, a late CANCELLED 'error' must find a listener.
    call.on('error', () => undefined);
    let finished = false;
    try {
      for await (const piece of call as AsyncIterable<{ offset: number; data: Buffer; checksums: Checksums | null }>) {
        yield { offset: piece.offset, data: piece.data, checksums: piece.checksums ?? { bytesPerChecksum: 0, crc32c: [] } };
      }
      finished = true;
    } catch (err) {
      finished = true;
      throw toDatanodeError(err, this.address, 'ReadBlock');
    } finally {
      if (!finished) call.cancel();
    }
  }

  async blockInfo(block: BlockRef): Promise<BlockInfo> {
    const info = await this.unary<BlockInfoMessage>('GetBlockInfo', (options, cb) => this.stub.GetBlockInfo({ block: blockId(block) }, options, cb));
    return { containerId: block.containerId, localId: block.localId, length: info.length, committed: info.committed, chunkCount: info.chunkCount };
  }

  /** Deletes blocks (committed or not); returns how many existed. Missing ones count as done. */
  async deleteBlocks(blocks: readonly BlockRef[]): Promise<number> {
    const res = await this.unary<DeleteBlocksResponse>('DeleteBlocks', (options, cb) => this.stub.DeleteBlocks({ blocks: blocks.map(blockId) }, options, cb));
    return res.deleted;
  }

  async info(): Promise<DatanodeInfo> {
    const res = await this.unary<InfoResponse>('Info', (options, cb) => this.stub.Info({}, options, cb));
    return {
      datanodeId: res.datanodeId,
      capacityBytes: res.capacityBytes,
      usedBytes: res.usedBytes,
      blockCount: res.blockCount,
      healthy: res.healthy,
      dataDir: res.dataDir,
      instanceId: res.instanceId,
    };
  }

  close(): void {
    this.stub.close();
  }

  private unary<T>(method: string, start: (options: grpc.CallOptions, cb: grpc.requestCallback<T>) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      start({ deadline: Date.now() + this.unaryTimeoutMs }, (err, value) => {
        if (err) reject(toDatanodeError(err, this.address, method));
        else resolve(value!);
      });
    });
  }
}

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
  offset: number;
  length: number;
}

/**
 * One WriteBlock stream. Several chunks may be in flight; acks arrive in order. Once the
 * stream fails, every pending and later promise rejects with the same DatanodeError.
 */
export class BlockWriter {
  private readonly acks: Pending[] = [];
  private commitPending: Pending | undefined;
  private failure: DatanodeError | undefined;
  private done = false;

  constructor(
    private readonly call: grpc.ClientDuplexStream<WriteBlockSend, WriteBlockResponse>,
    private readonly block: BlockRef,
    private readonly address: string,
  ) {
    call.on('data', (res: WriteBlockResponse) => this.onResponse(res));
    call.on('error', (err: unknown) => this.fail(toDatanodeError(err, address, 'WriteBlock')));
    call.on('status', (st: grpc.StatusObject) => {
      if (st.code === grpc.status.OK && (this.acks.length > 0 || this.commitPending)) {
        this.fail(new DatanodeError(`datanode ${address} WriteBlock: stream ended before every ack`, grpc.status.INTERNAL, 'stream ended early'));
      }
    });
  }

  /** Resolves when the datanode verified and wrote this chunk. */
  writeChunk(offset: number, data: Uint8Array, checksums: Checksums): Promise<void> {
    return this.writeEncoded(encodeChunk(this.block, offset, data, checksums));
  }

  /** writeChunk for a chunk encoded once for every replica of the block (encodeChunk with this block). */
  writeEncoded(chunk: EncodedChunk): Promise<void> {
    return this.send(chunk, chunk.offset, chunk.length, false);
  }

  /** Resolves once the block is durable on the datanode; then ends the stream. */
  commit(length: number): Promise<void> {
    return this.send({ commit: { block: this.block, length } }, length, 0, true);
  }

  /** Cancels the stream; the datanode keeps the block uncommitted. */
  abort(): void {
    if (this.done) return;
    this.fail(new DatanodeError(`datanode ${this.address} WriteBlock: aborted`, grpc.status.CANCELLED, 'aborted'));
    this.call.cancel();
  }

  private send(message: WriteBlockSend, offset: number, length: number, isCommit: boolean): Promise<void> {
    if (this.failure) return quiet(Promise.reject(this.failure));
    if (this.done || this.commitPending) {
      return quiet(Promise.reject(new DatanodeError(`datanode ${this.address} WriteBlock: block already committed`, grpc.status.FAILED_PRECONDITION, 'committed')));
    }
    const promise = new Promise<void>((resolve, reject) => {
      const pending = { resolve, reject, offset, length };
      if (isCommit) this.commitPending = pending;
      else this.acks.push(pending);
    });
    // Written regardless of backpressure: the caller bounds what is in flight by awaiting acks.
    this.call.write(message);
    // A caller that awaits only the commit must not crash the process with an
    // unhandled rejection of an earlier chunk's promise.
    return quiet(promise);
  }

  private onResponse(res: WriteBlockResponse): void {
    if (res.chunkAck) {
      const pending = this.acks.shift();
      if (!pending || pending.offset !== res.chunkAck.offset || pending.length !== res.chunkAck.length) {
        this.fail(new DatanodeError(`datanode ${this.address} WriteBlock: unexpected ack for offset ${res.chunkAck.offset}`, grpc.status.INTERNAL, 'unexpected ack'));
        this.call.cancel();
        return;
      }
      pending.resolve();
    } else if (res.commitAck) {
      const pending = this.commitPending;
      if (!pending || this.acks.length > 0) {
        this.fail(new DatanodeError(`datanode ${this.address} WriteBlock: unexpected commit ack`, grpc.status.INTERNAL, 'unexpected commit ack'));
        this.call.cancel();
        return;
      }
      this.commitPending = undefined;
      this.done = true;
      this.call.end();
      pending.resolve();
    }
  }

  private fail(err: DatanodeError): void {
    if (this.failure || this.done) return;
    this.failure = err;
    for (const pending of this.acks.splice(0)) pending.reject(err);
    this.commitPending?.reject(err);
    this.commitPending = undefined;
  }
}

function quiet(promise: Promise<void>): Promise<void> {
  promise.catch(() => undefined);
  return promise;
}

function blockId(block: BlockRef): BlockRef {
  return { containerId: block.containerId, localId: block.localId };
}

function toDatanodeError(err: unknown, address: string, method: string): DatanodeError {
  if (err instanceof DatanodeError) return err;
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number' ? (err.code as grpc.status) : grpc.status.UNKNOWN;
  const details =
    typeof err === 'object' && err !== null && 'details' in err && typeof err.details === 'string'
      ? err.details
      : err instanceof Error
        ? err.message
        : String(err);
  return new DatanodeError(`datanode ${address} ${method}: ${grpc.status[code] ?? code}: ${details}`, code, details);
}
