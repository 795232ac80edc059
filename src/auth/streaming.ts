// Decoding of `Content-Encoding: aws-chunked` bodies (SigV4 streaming uploads): the framing
// `hex(size)[;chunk-signature=SIG]\r\n<data>\r\n` … a 0-size chunk, then optional trailer lines
// ending with a blank line. Signed chunks are verified in order, each signature chaining on the
// previous one from the seed (the Authorization header's) signature; a chunk's SHA-256 is
// computed in the hashing pool. Only framing lines are parsed here, on the event loop.
import { asBuffer } from '../hashing/checksums.js';
import { isChecksumAlgorithm, type ChecksumAlgorithm } from '../hashing/s3-checksums.js';
import { s3Error } from '../gateway/errors.js';
import type { ByteSource } from '../pipeline/object-writer.js';
import { hmac, scope, sha256Hex, signaturesMatch, signingKey, type SignedRequest } from './sigv4.js';

export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

/** Larger chunks are refused: a signed chunk is held in memory until its signature is checked. */
export const MAX_CHUNK_SIZE = 16 << 20;
/** Chunk header and trailer lines are short (~90 bytes); this bounds the line buffer. */
const MAX_LINE = 1024;
const MAX_TRAILER_LINES = 8;
/**
 * Signed chunks whose hashes may be in the pool at once. One pool round trip per 64 KiB chunk
 * would dominate; overlapping hashing with reading the next chunks hides it, within this memory.
 */
const PIPELINE_BYTES = 8 << 20;
const PIPELINE_CHUNKS = 16;

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SIGNED_HEADER = /^([0-9a-fA-F]{1,16});chunk-signature=([0-9a-f]{64})$/;
// Unsigned chunks may carry extensions (HTTP chunked syntax); there is nothing to check in them.
const UNSIGNED_HEADER = /^([0-9a-fA-F]{1,16})(?:;.*)?$/;
const CHECKSUM_BYTES: Record<ChecksumAlgorithm, number> = { crc32: 4, crc32c: 4, crc64nvme: 8, sha1: 20, sha256: 32 };

export interface Sha256Hasher {
  /** Hex SHA-256; HashPool implements it in a worker. */
  sha256(data: Uint8Array): Promise<string>;
}

export interface ChunkSigning {
  key: Buffer;
  amzDate: string;
  scope: string;
  /** The request's own signature, which the first chunk signature chains on. */
  seedSignature: string;
}

export interface AwsChunkedOptions {
  /** Present for the STREAMING-AWS4-HMAC-SHA256-* modes: every chunk and the trailer are signed. */
  signing?: ChunkSigning;
  /** The *-TRAILER modes: trailer lines follow the 0-size chunk. */
  trailers: boolean;
  /** The checksum x-amz-trailer announced; its trailer line is then required. */
  checksum?: ChecksumAlgorithm;
  /** x-amz-decoded-content-length: the decoded body must have exactly this many bytes. */
  decodedLength: number;
  hasher: Sha256Hasher;
  maxChunkSize?: number;
}

export interface TrailingChecksum {
  name: string; // e.g. x-amz-checksum-crc32
  algorithm: ChecksumAlgorithm;
  value: string; // base64, as sent
}

/**
 * Reads the aws-chunked parameters of a request whose x-amz-content-sha256 is STREAMING-*.
 * The secret is needed to derive the signing key the chunk signatures are made with.
 */
export function awsChunkedOptions(
  headers: Map<string, string[]>,
  signed: SignedRequest,
  secretAccessKey: string,
  hasher: Sha256Hasher,
): AwsChunkedOptions {
  const mode = signed.payloadHash;
  const trailers = mode === STREAMING_SIGNED_TRAILER || mode === STREAMING_UNSIGNED_TRAILER;
  if (!trailers && mode !== STREAMING_SIGNED) throw s3Error('NotImplemented', `x-amz-content-sha256: ${mode} is not supported.`);
  const length = headers.get('x-amz-decoded-content-length')?.[0];
  if (length === undefined) throw s3Error('MissingContentLength', 'You must provide the x-amz-decoded-content-length header.');
  if (!/^\d{1,15}$/.test(length)) throw s3Error('InvalidArgument', 'x-amz-decoded-content-length must be a non-negative integer.');
  let checksum: ChecksumAlgorithm | undefined;
  const trailer = headers.get('x-amz-trailer')?.[0]?.trim().toLowerCase();
  if (trailer) {
    if (!trailers) throw s3Error('InvalidRequest', `x-amz-trailer requires x-amz-content-sha256: ${STREAMING_UNSIGNED_TRAILER} or ${STREAMING_SIGNED_TRAILER}.`);
    const algorithm = trailer.startsWith('x-amz-checksum-') ? trailer.slice('x-amz-checksum-'.length) : '';
    if (!isChecksumAlgorithm(algorithm)) throw s3Error('InvalidRequest', `The value specified in the x-amz-trailer header is not supported: ${trailer}`);
    checksum = algorithm;
  }
  const signing =
    mode === STREAMING_UNSIGNED_TRAILER
      ? undefined
      : {
          key: signingKey(secretAccessKey, signed.credential),
          amzDate: signed.amzDate,
          scope: scope(signed.credential),
          seedSignature: signed.signature,
        };
  return { signing, trailers, checksum, decodedLength: Number(length), hasher };
}

interface PendingChunk {
  data: Uint8Array;
  signature: string;
  hash: Promise<string>;
  ready: boolean;
}

type State = 'header' | 'data' | 'data-end' | 'trailer' | 'done';

const chunkError = (message: string) => s3Error('InvalidChunkSizeError', message);
const trailerError = (message: string) => s3Error('MalformedTrailerError', message);

/**
 * Iterating yields the decoded body: unsigned data as subarrays of the input pieces as they
 * arrive, signed data one chunk at a time once its signature checked out. The iteration throws
 * an S3Error on any framing or signature problem and ends only when the whole body, trailer
 * included, was verified; `checksum` then holds the trailing checksum for the caller to compare
 * with the one it computed. Single use.
 */
export class AwsChunkedDecoder implements AsyncIterable<Uint8Array> {
  /** The trailing checksum, set once the iteration completed. */
  checksum: TrailingChecksum | undefined;

  private readonly signing: ChunkSigning | undefined;
  private readonly maxChunkSize: number;
  private started = false;
  private state: State = 'header';
  /** The current line (chunk header or trailer) up to what has arrived, CR included. */
  private line = '';
  /** Data bytes of the current chunk still to come. */
  private remaining = 0;
  /** Bytes of the CRLF after chunk data matched so far (it may be split across pieces). */
  private crlf = 0;
  /** Sum of the sizes announced by chunk headers. */
  private announced = 0;
  /** Signed mode: the chunk being assembled, with the signature its header carried. */
  private chunk: Uint8Array | undefined;
  private filled = 0;
  private chunkSignature = '';
  private previousSignature = '';
  private readonly pending: PendingChunk[] = [];
  private pendingBytes = 0;
  private trailerLines = 0;
  private canonicalTrailers = '';
  private trailerSignature: string | undefined;
  private skippedBlank = false;

  constructor(
    private readonly source: ByteSource,
    private readonly options: AwsChunkedOptions,
  ) {
    this.signing = options.signing;
    this.previousSignature = options.signing?.seedSignature ?? '';
    this.maxChunkSize = options.maxChunkSize ?? MAX_CHUNK_SIZE;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.started) throw new Error('AwsChunkedDecoder can be iterated only once');
    this.started = true;
    for await (const raw of this.source) {
      const piece = asBuffer(raw);
      let at = 0;
      while (at < piece.length) {
        if (this.state === 'data') {
          const n = Math.min(this.remaining, piece.length - at);
          const data = piece.subarray(at, at + n);
          at += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = 'data-end';
          if (!this.signing) yield data;
          else {
            this.chunk!.set(data, this.filled);
            this.filled += n;
          }
        } else if (this.state === 'data-end') {
          if (piece[at] !== (this.crlf === 0 ? 0x0d : 0x0a)) throw chunkError('Chunk data is longer than its declared size.');
          at++;
          if (++this.crlf === 2) {
            this.crlf = 0;
            this.state = 'header';
            if (this.signing) this.queue(this.chunk!);
            this.chunk = undefined;
          }
        } else if (this.state === 'done') {
          throw chunkError('Unexpected data after the end of the aws-chunked body.');
        } else {
          const lf = piece.indexOf(0x0a, at);
          const end = lf < 0 ? piece.length : lf;
          if (this.line.length + (end - at) > MAX_LINE) {
            throw this.state === 'header' ? chunkError('Chunk header line too long.') : trailerError('Trailer line too long.');
          }
          this.line += piece.toString('latin1', at, end);
          at = lf < 0 ? piece.length : lf + 1;
          if (lf < 0) continue;
          if (!this.line.endsWith('\r')) throw chunkError('Lines of an aws-chunked body must end with CRLF.');
          const line = this.line.slice(0, -1);
          this.line = '';
          if (this.state === 'header') this.onChunkHeader(line);
          else this.onTrailerLine(line);
        }
        if (this.releasable()) yield* this.drain(false);
      }
    }
    this.onEnd();
    yield* this.drain(true);
    if (this.signing && this.options.trailers) this.verifyTrailerSignature();
  }

  private onChunkHeader(line: string): void {
    const match = (this.signing ? SIGNED_HEADER : UNSIGNED_HEADER).exec(line);
    if (!match) {
      throw chunkError(this.signing ? 'Chunk header must be "hex-size;chunk-signature=signature".' : 'Chunk size must be a hexadecimal number.');
    }
    const size = parseInt(match[1]!, 16);
    if (size > this.maxChunkSize) throw chunkError(`Chunk size ${size} exceeds the maximum of ${this.maxChunkSize} bytes.`);
    // Checked before reading any data, so an over-long body is refused before it is stored.
    if (this.announced + size > this.options.decodedLength) {
      throw s3Error('IncompleteBody', 'The decoded body is longer than x-amz-decoded-content-length.');
    }
    this.announced += size;
    this.chunkSignature = match[2] ?? '';
    if (size === 0) {
      // The final chunk is signed too (over the empty data), so it joins the verification queue.
      if (this.signing) this.queue(new Uint8Array(0));
      this.state = 'trailer';
    } else {
      // Shared memory: the pool worker hashes the chunk without a copy.
      if (this.signing) this.chunk = new Uint8Array(new SharedArrayBuffer(size));
      this.filled = 0;
      this.remaining = size;
      this.state = 'data';
    }
  }

  private onTrailerLine(line: string): void {
    const { trailers, checksum } = this.options;
    if (line === '') {
      // AWS's own documentation example puts a blank line between the 0-size chunk and the
      // trailers; tolerate one there, when trailer lines are still required.
      const required = trailers && (checksum !== undefined || this.signing !== undefined);
      if (required && this.trailerLines === 0 && !this.skippedBlank) this.skippedBlank = true;
      else this.state = 'done';
      return;
    }
    if (!trailers) throw chunkError('The final chunk must be followed by an empty line.');
    if (++this.trailerLines > MAX_TRAILER_LINES) throw trailerError('Too many trailer lines.');
    if (this.trailerSignature !== undefined) throw trailerError('x-amz-trailer-signature must be the last trailer.');
    const colon = line.indexOf(':');
    if (colon <= 0) throw trailerError('Trailer lines must be "name:value".');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'x-amz-trailer-signature') {
      if (!this.signing) throw trailerError('An unsigned payload cannot carry x-amz-trailer-signature.');
      if (!/^[0-9a-f]{64}$/.test(value)) throw trailerError('x-amz-trailer-signature is malformed.');
      this.trailerSignature = value;
      return;
    }
    if (checksum === undefined || name !== `x-amz-checksum-${checksum}` || this.checksum !== undefined) {
      throw trailerError(`Unexpected trailer ${name}; x-amz-trailer did not announce it.`);
    }
    const bytes = Buffer.from(value, 'base64');
    if (bytes.length !== CHECKSUM_BYTES[checksum] || bytes.toString('base64') !== value) {
      throw s3Error('InvalidRequest', `Value for ${name} trailing header is invalid.`);
    }
    this.checksum = { name, algorithm: checksum, value };
    this.canonicalTrailers += `${name}:${value}\n`;
  }

  /** The input ended: it must have ended inside the trailer section or after it. */
  private onEnd(): void {
    if (this.state === 'trailer') {
      // Also tolerated (AWS's example again): the last trailer line and the blank line missing.
      const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
      this.line = '';
      if (line !== '') this.onTrailerLine(line);
      this.state = 'done';
    }
    if (this.state !== 'done') throw s3Error('IncompleteBody', 'The request body terminated unexpectedly.');
    if (this.announced !== this.options.decodedLength) {
      throw s3Error('IncompleteBody', 'The decoded body is shorter than x-amz-decoded-content-length.');
    }
    if (this.options.checksum !== undefined && this.checksum === undefined) {
      throw trailerError(`The trailer x-amz-checksum-${this.options.checksum} announced by x-amz-trailer is missing.`);
    }
    if (this.signing && this.options.trailers && this.trailerSignature === undefined) {
      throw trailerError('The trailer x-amz-trailer-signature is missing.');
    }
  }

  private queue(data: Uint8Array): void {
    const hash = data.length === 0 ? Promise.resolve(EMPTY_SHA256) : this.options.hasher.sha256(data);
    const entry: PendingChunk = { data, signature: this.chunkSignature, hash, ready: false };
    // Also marks a rejected hash as handled: drain() awaits it and rethrows in order.
    const settled = (): void => {
      entry.ready = true;
    };
    hash.then(settled, settled);
    this.pending.push(entry);
    this.pendingBytes += data.length;
  }

  /** The head of the queue was hashed, or the queue is full and reading must wait for it. */
  private releasable(): boolean {
    const head = this.pending[0];
    if (!head) return false;
    return head.ready || this.pendingBytes >= PIPELINE_BYTES || this.pending.length >= PIPELINE_CHUNKS;
  }

  /** Verifies and yields the queued chunks in order: while releasable(), or all if `all`. */
  private async *drain(all: boolean): AsyncGenerator<Uint8Array, void, undefined> {
    while (all ? this.pending.length > 0 : this.releasable()) {
      const head = this.pending[0]!;
      const hash = await head.hash;
      this.pending.shift();
      this.pendingBytes -= head.data.length;
      this.verify('AWS4-HMAC-SHA256-PAYLOAD', `${EMPTY_SHA256}\n${hash}`, head.signature);
      if (head.data.length > 0) yield head.data;
    }
  }

  private verifyTrailerSignature(): void {
    // The canonical trailer text is a few short lines, so hashing it here is not per-byte work.
    this.verify('AWS4-HMAC-SHA256-TRAILER', sha256Hex(this.canonicalTrailers), this.trailerSignature!);
  }

  private verify(algorithm: string, hashes: string, given: string): void {
    const { key, amzDate, scope: credentialScope } = this.signing!;
    const expected = hmac(key, `${algorithm}\n${amzDate}\n${credentialScope}\n${this.previousSignature}\n${hashes}`).toString('hex');
    if (!signaturesMatch(expected, given)) {
      throw s3Error('SignatureDoesNotMatch', 'The chunk or trailer signature we calculated does not match the signature you provided.');
    }
    this.previousSignature = given;
  }
}
