// The Datanode gRPC service loaded from datanode.proto at runtime (no codegen step), with
// TypeScript shapes of the messages as proto-loader hands them over: camelCase fields,
// uint64 as number, bytes as Buffer, defaults filled, and the oneof `body` naming the
// field that is set.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type { EncodedChunk, EncodedMessage } from './chunk-encoding.js';
import { passFramed } from './grpc-framing.js';

const packageDefinition = protoLoader.loadSync(fileURLToPath(new URL('./datanode.proto', import.meta.url)), {
  keepCase: false,
  longs: Number,
  defaults: true,
  oneofs: true,
});

export const datanodeService = packageDefinition['s3g.datanode.Datanode'] as grpc.ServiceDefinition;

// Chunks go out serialised and framed already (chunk-encoding.ts, grpc-framing.ts); so do read
// pieces, which the server-side patch passes through before any serializer sees them. Other
// messages go through protobufjs.
const writeBlock = datanodeService.WriteBlock!;
writeBlock.requestSerialize = passFramed(writeBlock.requestSerialize);

/** 4 MiB chunks plus framing exceed grpc's 4 MiB default message limit. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Options shared by the datanode server and its clients. */
export const grpcMessageOptions = {
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
} as const satisfies grpc.ChannelOptions;

export interface BlockId {
  containerId: number;
  localId: number;
}

export interface ChunkChecksums {
  bytesPerChecksum: number;
  crc32c: number[];
}

export interface WriteChunk {
  block: BlockId | null;
  offset: number;
  data: Buffer;
  checksums: ChunkChecksums | null;
}

export interface CommitBlock {
  block: BlockId | null;
  length: number;
}

/** Received with `body` naming the field set. */
export type WriteBlockRequest =
  | { body?: 'chunk'; chunk: WriteChunk; commit?: undefined }
  | { body?: 'commit'; commit: CommitBlock; chunk?: undefined };

export interface ChunkAck {
  offset: number;
  length: number;
}

export interface CommitAck {
  length: number;
}

/** What a client sends: chunks serialised by encodeChunk, the commit as an object. */
export type WriteBlockSend = EncodedChunk | { commit: CommitBlock };

export type WriteBlockResponse =
  | { body?: 'chunkAck'; chunkAck: ChunkAck; commitAck?: undefined }
  | { body?: 'commitAck'; commitAck: CommitAck; chunkAck?: undefined };

export interface ReadBlockRequest {
  block: BlockId | null;
  offset: number;
  length: number;
}

export interface ReadBlockResponse {
  offset: number;
  data: Buffer;
  checksums: ChunkChecksums | null;
}

export interface BlockInfoRequest {
  block: BlockId | null;
}

export interface BlockInfo {
  block: BlockId | null;
  length: number;
  committed: boolean;
  chunkCount: number;
}

export interface DeleteBlocksRequest {
  blocks: BlockId[];
}

export interface DeleteBlocksResponse {
  deleted: number;
}

export type InfoRequest = Record<string, never>;

export interface InfoResponse {
  datanodeId: string;
  capacityBytes: number;
  usedBytes: number;
  blockCount: number;
  healthy: boolean;
  dataDir: string;
  instanceId: string;
}

/** Server-side handler shapes, for `server.addService(datanodeService, impl)`. */
export interface DatanodeHandlers extends grpc.UntypedServiceImplementation {
  WriteBlock: grpc.handleBidiStreamingCall<WriteBlockRequest, WriteBlockResponse>;
  /** Pieces are sent serialised (encodePieceAt) and arrive as ReadBlockResponse. */
  ReadBlock: grpc.handleServerStreamingCall<ReadBlockRequest, EncodedMessage>;
  GetBlockInfo: grpc.handleUnaryCall<BlockInfoRequest, BlockInfo>;
  DeleteBlocks: grpc.handleUnaryCall<DeleteBlocksRequest, DeleteBlocksResponse>;
  Info: grpc.handleUnaryCall<InfoRequest, InfoResponse>;
}

/** The generated client, typed. */
export interface DatanodeStub extends grpc.Client {
  WriteBlock(options?: grpc.CallOptions): grpc.ClientDuplexStream<WriteBlockSend, WriteBlockResponse>;
  ReadBlock(request: ReadBlockRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<ReadBlockResponse>;
  GetBlockInfo(
    request: BlockInfoRequest,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<BlockInfo>,
  ): grpc.ClientUnaryCall;
  DeleteBlocks(
    request: DeleteBlocksRequest,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<DeleteBlocksResponse>,
  ): grpc.ClientUnaryCall;
  Info(request: InfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<InfoResponse>): grpc.ClientUnaryCall;
}

const StubConstructor = grpc.makeGenericClientConstructor(datanodeService, 'Datanode');

export function createDatanodeStub(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = grpcMessageOptions,
): DatanodeStub {
  return new StubConstructor(address, credentials, options) as unknown as DatanodeStub;
}
