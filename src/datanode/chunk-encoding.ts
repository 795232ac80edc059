// The two data-carrying messages serialised by hand: WriteBlockRequest{chunk} (gateway to
// datanode) and ReadBlockResponse (datanode to gateway). protobufjs would copy the data into a
// new message each time (once per replica for writes); here the fields are written into room
// left in front of the data (protobuf accepts any field order, so the data can come last), and
// in front of them grpc's 5-byte message prefix, which grpc-framing.ts lets through as it is.
// For writes the same bytes go to every replica.
import type { BlockId, ChunkChecksums } from './proto.js';
import { copyBytes } from '../hashing/shared-memory.js';

/** gRPC's length prefix: a compressed flag and a big-endian uint32 length. */
const GRPC_PREFIX_BYTES = 5;

/** A message already serialised and framed for gRPC. */
export class EncodedMessage {
  constructor(
    /** The gRPC prefix, then the message. */
    readonly framed: Buffer,
  ) {}
}

/** A WriteBlockRequest{chunk}. */
export class EncodedChunk extends EncodedMessage {
  constructor(
    framed: Buffer,
    /** Block offset and length of the chunk's data, which the datanode's ack repeats. */
    readonly offset: number,
    readonly length: number,
  ) {
    super(framed);
  }
}

// Field tags (field number << 3 | wire type) of datanode.proto.
const REQUEST_CHUNK = (1 << 3) | 2;
const CHUNK_BLOCK = (1 << 3) | 2;
const CHUNK_OFFSET = (2 << 3) | 0;
const CHUNK_DATA = (3 << 3) | 2;
const CHUNK_CHECKSUMS = (4 << 3) | 2;
const BLOCK_CONTAINER = (1 << 3) | 0;
const BLOCK_LOCAL = (2 << 3) | 0;
const CHECKSUMS_BYTES_PER = (1 << 3) | 0;
const CHECKSUMS_CRC = (2 << 3) | 2;
const PIECE_OFFSET = (1 << 3) | 0;
const PIECE_DATA = (2 << 3) | 2;
const PIECE_CHECKSUMS = (3 << 3) | 2;

/** Longest varint of a 64-bit field, and of a uint32 or a length. */
const MAX_VARINT64 = 10;
const MAX_VARINT32 = 5;

/**
 * Bytes the gRPC prefix and the fields can take in front of `chunkSize` bytes of data checksummed
 * every `bytesPerChecksum`, rounded up to 8 so that data placed after them stays 8-byte aligned.
 */
export function chunkHeadroom(chunkSize: number, bytesPerChecksum: number): number {
  const crcs = Math.ceil(chunkSize / bytesPerChecksum) * MAX_VARINT32;
  const fields = GRPC_PREFIX_BYTES + 1 + MAX_VARINT32 + (2 + 2 * (1 + MAX_VARINT64)) + (1 + MAX_VARINT64) + (1 + MAX_VARINT32 + 1 + MAX_VARINT32 + 1 + MAX_VARINT32) + 1 + MAX_VARINT32;
  return Math.ceil((fields + crcs) / 8) * 8;
}

/**
 * Serialises a chunk whose `length` data bytes already sit at `dataStart` in `buffer`,
 * writing the fields just in front of them (at least chunkHeadroom bytes must be free there).
 */
export function encodeChunkAt(buffer: Buffer, dataStart: number, length: number, block: BlockId, offset: number, checksums: ChunkChecksums): EncodedChunk {
  const blockBody = [BLOCK_CONTAINER, ...varint(block.containerId), BLOCK_LOCAL, ...varint(block.localId)];
  const checksumBody = checksumsBody(checksums);
  const chunkHead = [
    CHUNK_BLOCK,
    ...varint(blockBody.length),
    ...blockBody,
    CHUNK_OFFSET,
    ...varint(offset),
    CHUNK_CHECKSUMS,
    ...varint(checksumBody.length),
    ...checksumBody,
    CHUNK_DATA,
    ...varint(length),
  ];
  const head = [REQUEST_CHUNK, ...varint(chunkHead.length + length), ...chunkHead];
  return new EncodedChunk(prepend(buffer, dataStart, length, head), offset, length);
}

/** ReadBlockResponse of `length` bytes at `dataStart` in `buffer` (chunkHeadroom bytes free in front). */
export function encodePieceAt(buffer: Buffer, dataStart: number, length: number, offset: number, checksums: ChunkChecksums): EncodedMessage {
  const checksumBody = checksumsBody(checksums);
  const head = [PIECE_OFFSET, ...varint(offset), PIECE_CHECKSUMS, ...varint(checksumBody.length), ...checksumBody, PIECE_DATA, ...varint(length)];
  return new EncodedMessage(prepend(buffer, dataStart, length, head));
}

function checksumsBody(checksums: ChunkChecksums): number[] {
  const crcs = checksums.crc32c.flatMap(varint);
  return [CHECKSUMS_BYTES_PER, ...varint(checksums.bytesPerChecksum), CHECKSUMS_CRC, ...varint(crcs.length), ...crcs];
}

/** The framed message: `head` written just in front of the data, the gRPC prefix in front of that. */
function prepend(buffer: Buffer, dataStart: number, length: number, head: number[]): Buffer {
  const start = dataStart - head.length - GRPC_PREFIX_BYTES;
  if (start < 0) throw new RangeError(`message fields need ${head.length + GRPC_PREFIX_BYTES} bytes in front of the data, ${dataStart} free`);
  buffer.set(head, start + GRPC_PREFIX_BYTES);
  buffer[start] = 0; // not compressed
  buffer.writeUInt32BE(head.length + length, start + 1);
  return buffer.subarray(start, dataStart + length);
}

/** encodeChunkAt for data that lives elsewhere: one copy into a new message. */
export function encodeChunk(block: BlockId, offset: number, data: Uint8Array, checksums: ChunkChecksums): EncodedChunk {
  const headroom = chunkHeadroom(data.length, checksums.bytesPerChecksum);
  const buffer = Buffer.allocUnsafeSlow(headroom + data.length);
  copyBytes(data, buffer, headroom);
  return encodeChunkAt(buffer, headroom, data.length, block, offset, checksums);
}

/** Protobuf base-128 varint of a non-negative safe integer (uint64 fields hold up to 2^53 here). */
function varint(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}
