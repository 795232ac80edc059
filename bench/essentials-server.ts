// The essentials server's program (`node --import tsx bench/essentials-server.ts DB BUCKET
// SECRET`, started by essentials.ts): a 4 KiB GET, HEAD or PUT of a presigned URL done with
// s3g's own parts and only what such a request must do, over the metadata of an s3g data directory
// (the bench's gateway idle meanwhile):
// - the SigV4 check of the presigned query (src/auth/sigv4.ts; the secret given, not looked up);
// - GET and HEAD: the object's record from the metadata store (src/metadata, its lookups
//   batched per turn and its record cache, as in s3g), answered with s3g's headers;
// - PUT: the body's MD5 in the hashing pool (src/hashing/pool.ts), then the store's commitKey
//   (group commit, durable before the answer), the body kept inline.
// No routing, handlers, access-key or bucket lookups, access log or metrics: what s3g spends
// beyond this server is what its layers cost.
import { createServer, type IncomingMessage } from 'node:http';
import { computeSignature, headerMap, parsePresignedQuery, signaturesMatch } from '../src/auth/sigv4.js';
import { attributeHeaders } from '../src/gateway/object-attributes.js';
import { httpDate } from '../src/gateway/respond.js';
import { S3Response } from '../src/gateway/server.js';
import { HashPool } from '../src/hashing/pool.js';
import { openMetadataStore } from '../src/metadata/open.js';
import { newObjectId } from '../src/metadata/shared.js';
import type { ObjectRecord } from '../src/metadata/store.js';

const [dbPath, bucketName, secret] = process.argv.slice(2);
if (!dbPath || !bucketName || !secret) throw new Error('usage: essentials-server.ts DB BUCKET SECRET');
const store = await openMetadataStore(dbPath);
const bucket = await store.getBucket('s3v', bucketName);
if (!bucket) throw new Error(`no bucket ${bucketName} in ${dbPath}`);
const bucketId = bucket.id;
const pool = new HashPool();

async function body(req: IncomingMessage): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of req) pieces.push(piece as Buffer);
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
}

// S3Response (s3g's own) adds the request id and Server to every answer.
function answerObject(res: S3Response, record: ObjectRecord | undefined, withBody: boolean): void {
  if (!record) {
    res.writeHead(404, { 'Content-Length': 0 }).end();
    return;
  }
  res.writeHead(200, {
    ...attributeHeaders(record.attributes),
    ETag: `"${record.etag}"`,
    'Last-Modified': httpDate(record.modifiedAt),
    'Accept-Ranges': 'bytes',
    'Content-Length': record.size,
  });
  res.end(withBody ? record.inlineData : undefined);
}

async function handle(req: IncomingMessage, res: S3Response): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const parts = { method: req.method ?? 'GET', rawPath, rawQuery, headers: headerMap(req.rawHeaders) };
  const signed = parsePresignedQuery(new URLSearchParams(rawQuery), Date.now());
  if (!signaturesMatch(computeSignature(parts, signed, secret!), signed.signature)) {
    res.writeHead(403, { 'Content-Length': 0 }).end();
    return;
  }
  const key = decodeURIComponent(rawPath.slice(`/${bucketName}/`.length));
  if (parts.method === 'PUT') {
    const data = await body(req);
    const { digests } = await pool.whole(data, { md5: true, sha256: false });
    await store.commitKey({ bucketId, key, etag: digests.md5!, attributes: {}, objectId: newObjectId(), size: data.length, blocks: [], inlineData: data });
    res.writeHead(200, { ETag: `"${digests.md5}"`, 'Content-Length': 0 }).end();
    return;
  }
  answerObject(res, await store.getObject(bucketId, key, { body: parts.method === 'GET' }), parts.method === 'GET');
}

const server = createServer({ ServerResponse: S3Response }, (req, res) => {
  handle(req, res).catch((error: unknown) => {
    console.error(error);
    res.destroy();
  });
});
server.listen(0, '127.0.0.1', () => console.log(`essentials ready http://127.0.0.1:${(server.address() as { port: number }).port}`));
// Bounded like every server the bench starts: gone after five minutes whatever happens.
setTimeout(() => process.exit(0), 300_000).unref();
process.on('SIGTERM', () => {
  server.close();
  void Promise.all([store.close(), pool.close()]).finally(() => process.exit(0));
});
