// Small request bodies (XML documents) read whole, with a size limit, and checked against
// what the client signed or declared (payload SHA-256, Content-MD5, x-amz-checksum-*).
import type { IncomingMessage } from 'node:http';
import type { GatewayServices, RequestContext } from './context.js';
import { s3Error } from './errors.js';
import { payloadMode } from '../auth/authenticate.js';
import { contentMd5, requestedChecksum } from './upload.js';

export const MAX_XML_BODY = 1 << 20;

export async function readSmallBody(req: IncomingMessage, maxBytes = MAX_XML_BODY): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw s3Error('MaxMessageLengthExceeded', 'Your request was too big.');
  const pieces: Buffer[] = [];
  let size = 0;
  for await (const piece of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += piece.length;
    if (size > maxBytes) throw s3Error('MaxMessageLengthExceeded', 'Your request was too big.');
    pieces.push(piece);
  }
  return Buffer.concat(pieces);
}

export interface VerifiedBodyOptions {
  maxBytes?: number;
  /** DeleteObjects: Content-MD5 or an x-amz-checksum-* header is mandatory. */
  integrityRequired?: boolean;
}

/** Reads a small body and checks the signed SHA-256, Content-MD5 or x-amz-checksum-* the client sent. */
export async function readVerifiedBody(ctx: RequestContext, services: GatewayServices, options: VerifiedBodyOptions = {}): Promise<Buffer> {
  const mode = payloadMode(ctx.signed);
  if (mode.kind === 'streaming') throw s3Error('NotImplemented', `x-amz-content-sha256: ${mode.value} is not supported for this request`);
  const md5 = contentMd5(ctx);
  const checksum = requestedChecksum(ctx);
  if (options.integrityRequired && md5 === undefined && checksum?.expected === undefined) {
    throw s3Error('InvalidRequest', 'Missing required header for this request: Content-MD5');
  }
  const body = await readSmallBody(ctx.req, options.maxBytes);
  if (mode.kind !== 'sha256' && md5 === undefined && checksum?.expected === undefined) return body;
  const { digests } = await services.pool.whole(body, {
    md5: md5 !== undefined,
    sha256: mode.kind === 'sha256',
    checksum: checksum?.expected !== undefined ? checksum.algorithm : undefined,
  });
  if (mode.kind === 'sha256' && digests.sha256 !== mode.expected) throw s3Error('XAmzContentSHA256Mismatch');
  if (md5 !== undefined && digests.md5 !== md5) throw s3Error('BadDigest');
  if (checksum?.expected !== undefined && digests.checksum !== checksum.expected) throw s3Error('BadDigest');
  return body;
}
