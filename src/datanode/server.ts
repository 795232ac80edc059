// The Datanode gRPC service over a BlockStore. Every failure becomes a gRPC status with a
// message; nothing a client sends (or stops sending) can crash the process.
import * as grpc from '@grpc/grpc-js';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { encodePieceAt, type EncodedMessage } from './chunk-encoding.js';
import { BlockStore, BlockWriter, StoreError, blockKey, type BlockKey } from './block-store.js';
import { releaseReceived } from './receive-buffers.js';
import {
  datanodeService,
  grpcMessageOptions,
  type DatanodeHandlers,
  type ReadBlockRequest,
  type WriteBlockRequest,
  type WriteBlockResponse,
} from './proto.js';

export interface DatanodeServerOptions {
  id: string;
  dir: string;
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Free disk space no new block may take (BlockStore.reservedBytes); default 0. */
  reservedBytes?: number;
}

export interface DatanodeServer {
  port: number;
  /** host:port for DatanodeClient. */
  address: string;
  store: BlockStore;
  /** Stops accepting calls, waits up to graceMs for calls in flight, then cancels them. */
  close(graceMs?: number): Promise<void>;
}

const serverOptions = {
  ...grpcMessageOptions,
  // Server-side pings find dead gateways holding a WriteBlock stream open.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
} satisfies grpc.ServerOptions;

/** What a datanode lets a gateway send ahead of its acks, per stream and per connection. */
const RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;
/** HTTP/2 DATA frames a datanode accepts: 1 MiB rather than 16 KiB, so a chunk is 4 reads, not 256. */
const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * grpc-js has no server option for HTTP/2 flow control, so every connection to a datanode
 * keeps the 64 KiB default window, and chunk uploads run at one window per round trip. The
 * sessions are widened as they open, through grpc-js's (untyped) map of its HTTP/2 servers.
 */
function widenReceiveWindows(server: grpc.Server): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map)) throw new Error('grpc-js no longer keeps http2Servers: revisit widenReceiveWindows');
  for (const http2Server of http2Servers.keys()) {
    http2Server.on('session', (session: ServerHttp2Session) => {
      session.setLocalWindowSize(RECEIVE_WINDOW_BYTES);
      session.settings({ initialWindowSize: RECEIVE_WINDOW_BYTES, maxFrameSize: MAX_FRAME_BYTES });
    });
  }
}

export async function startDatanodeServer(opts: DatanodeServerOptions): Promise<DatanodeServer> {
  const store = await BlockStore.open(opts.dir, { reservedBytes: opts.reservedBytes });
  const server = new grpc.Server(serverOptions);
  server.addService(datanodeService, handlers(opts.id, store));
  const hostPort = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(hostPort, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
    );
  } catch (err) {
    await store.close();
    throw err;
  }
  widenReceiveWindows(server);
  let closing: Promise<void> | undefined;
  return {
    port,
    address: `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    store,
    close(graceMs = 5000) {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        await store.close();
      })();
      return closing;
    },
  };
}

function handlers(datanodeId: string, store: BlockStore): DatanodeHandlers {
  return {
    WriteBlock: (call) => void writeBlock(store, call),
    ReadBlock: (call) => void readBlock(store, call),
    GetBlockInfo: (call, callback) => {
      unary(callback, async () => {
        const block = call.request.block;
        const info = await store.blockInfo(requireBlock(block));
        return { block, ...info };
      });
    },
    DeleteBlocks: (call, callback) => {
      unary(callback, async () => ({ deleted: await store.delete(call.request.blocks) }));
    },
    Info: (_call, callback) => {
      unary(callback, async () => ({ datanodeId, ...(await store.stats()), dataDir: store.dir, instanceId: store.instanceId }));
    },
  };
}

/**
 * One stream = one replica of one block: chunks in order, then a commit. Messages are
 * pulled one at a time, so a slow disk pushes back on the sender through HTTP/2 flow control.
 */
async function writeBlock(store: BlockStore, call: grpc.ServerDuplexStream<WriteBlockRequest, WriteBlockResponse>): Promise<void> {
  let writer: BlockWriter | undefined;
  let key: string | undefined;
  let committed = false;
  try {
    // destroyOnReturn: false keeps the call alive after the loop so a status can be sent.
    for await (const request of call.iterator({ destroyOnReturn: false }) as AsyncIterable<WriteBlockRequest>) {
      if (committed) throw new StoreError(grpc.status.FAILED_PRECONDITION, `block ${key}: message after commit`);
      const msgBlock = request.chunk ? request.chunk.block : request.commit?.block;
      if (!writer) {
        const block = requireBlock(msgBlock);
        key = blockKey(block);
        writer = await store.openWriter(block);
      } else if (msgBlock && blockKey(msgBlock) !== key) {
        throw new StoreError(grpc.status.INVALID_ARGUMENT, `stream for block ${key} got a message for block ${blockKey(msgBlock)}`);
      }
      if (request.chunk) {
        const { offset, data, checksums } = request.chunk;
        await writer.write(offset, data, checksums);
        // On disk: its memory may take the next chunk.
        releaseReceived(data);
        call.write({ chunkAck: { offset, length: data.length } });
      } else if (request.commit) {
        await writer.commit(request.commit.length);
        committed = true;
        call.write({ commitAck: { length: request.commit.length } });
      } else {
        throw new StoreError(grpc.status.INVALID_ARGUMENT, 'WriteBlockRequest without chunk or commit');
      }
    }
    if (!committed) throw new StoreError(grpc.status.FAILED_PRECONDITION, `block ${key ?? '(none)'}: stream ended without commit`);
    call.end();
  } catch (err) {
    // The block stays uncommitted; its leftovers go with the next DeleteBlocks.
    await writer?.abort();
    if (!call.cancelled && !call.destroyed) call.emit('error', toStatus(err));
  }
}

async function readBlock(store: BlockStore, call: grpc.ServerWritableStream<ReadBlockRequest, EncodedMessage>): Promise<void> {
  const { block, offset, length } = call.request;
  try {
    // Leaving the loop early (cancel) runs the generator's finally, which closes the files.
    for await (const piece of store.read(requireBlock(block), offset, length)) {
      if (call.cancelled || call.destroyed) return;
      const { buffer, headroom } = piece;
      const message = encodePieceAt(buffer, headroom, buffer.length - headroom, piece.offset, piece.checksums);
      if (!call.write(message)) await drained(call);
    }
    if (!call.cancelled && !call.destroyed) call.end();
  } catch (err) {
    if (!call.cancelled && !call.destroyed) call.emit('error', toStatus(err));
  }
}

/** Resolves on 'drain', or when the call goes away (cancel), whichever comes first. */
function drained(call: grpc.ServerWritableStream<ReadBlockRequest, EncodedMessage>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('close', done);
      call.off('cancelled', done);
      resolve();
    };
    call.on('drain', done);
    call.on('close', done);
    call.on('cancelled', done);
  });
}

function unary<T>(callback: grpc.sendUnaryData<T>, run: () => Promise<T>): void {
  run().then(
    (value) => callback(null, value),
    (err: unknown) => callback(toStatus(err)),
  );
}

function requireBlock(block: BlockKey | null | undefined): BlockKey {
  if (!block) throw new StoreError(grpc.status.INVALID_ARGUMENT, 'missing block id');
  return block;
}

function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof StoreError) return { code: err.code, details: err.message };
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}
