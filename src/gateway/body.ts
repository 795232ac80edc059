// Small request bodies (XML documents) read whole, with a size limit.
import type { IncomingMessage } from 'node:http';
import { s3Error } from './errors.js';

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
