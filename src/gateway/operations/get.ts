// GetObject and HeadObject: conditional requests, ranges, stored headers, and a body
// streamed from the datanodes with every byte verified before it is sent.
import type { ObjectRecord } from '../../metadata/store.js';
import type { GatewayServices, HandlerTable, RequestContext } from '../context.js';
import { header } from '../context.js';
import { s3Error } from '../errors.js';
import { httpDate, pipeBody, writeChunk } from '../respond.js';
import { attributeHeaders, type StoredAttributes } from '../object-attributes.js';
import { requireBucket } from './common.js';
import { parsePartNumber, partRange } from './multipart.js';

export interface ByteRange {
  start: number;
  end: number; // inclusive
}

/**
 * `bytes=a-b`, `bytes=a-`, `bytes=-n`. A header S3 cannot parse is ignored (whole object),
 * as AWS does; a well-formed range outside the object is InvalidRange.
 */
export function parseRange(value: string | undefined, size: number): ByteRange | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) throw invalidRange(size);
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) throw invalidRange(size);
  return { start, end };
}

function invalidRange(size: number) {
  return s3Error('InvalidRange', undefined, { RangeRequested: '', ActualObjectSize: String(size) });
}

const unquote = (etag: string): string => etag.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');

function matchesAny(list: string, etag: string): boolean {
  return list.split(',').some((item) => item.trim() === '*' || unquote(item) === etag);
}

/** RFC 7232 order as S3 applies it: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since. */
export function checkConditions(ctx: RequestContext, object: ObjectRecord): void {
  const ifMatch = header(ctx, 'if-match');
  const ifNoneMatch = header(ctx, 'if-none-match');
  const ifModifiedSince = header(ctx, 'if-modified-since');
  const ifUnmodifiedSince = header(ctx, 'if-unmodified-since');
  const modifiedSeconds = Math.floor(object.modifiedAt / 1000) * 1000;
  if (ifMatch !== undefined) {
    if (!matchesAny(ifMatch, object.etag)) throw s3Error('PreconditionFailed', undefined, { Condition: 'If-Match' });
  } else if (ifUnmodifiedSince !== undefined) {
    const since = Date.parse(ifUnmodifiedSince);
    if (!Number.isNaN(since) && modifiedSeconds > since) throw s3Error('PreconditionFailed', undefined, { Condition: 'If-Unmodified-Since' });
  }
  if (ifNoneMatch !== undefined) {
    if (matchesAny(ifNoneMatch, object.etag)) throw s3Error('NotModified');
  } else if (ifModifiedSince !== undefined) {
    const since = Date.parse(ifModifiedSince);
    if (!Number.isNaN(since) && modifiedSeconds <= since) throw s3Error('NotModified');
  }
}

async function lookup(ctx: RequestContext<'GetObject' | 'HeadObject'>, services: GatewayServices, body: boolean): Promise<ObjectRecord> {
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const object = await services.store.getObject(bucket.id, ctx.op.key, { body });
  if (!object) throw s3Error('NoSuchKey', undefined, { Key: ctx.op.key });
  return object;
}

/** A new object, which the caller completes (a small GET's headers are copied once, by writeHead). */
function objectHeaders(ctx: RequestContext, object: ObjectRecord): Record<string, string | number> {
  const headers: Record<string, string | number> = attributeHeaders(object.attributes, ctx.query);
  headers.ETag = `"${object.etag}"`;
  headers['Last-Modified'] = httpDate(object.modifiedAt);
  headers['Accept-Ranges'] = 'bytes';
  return headers;
}

/** Range header or ?partNumber=N (the N-th part of a multipart object; part 1 of any other). */
function requestedRange(ctx: RequestContext, object: ObjectRecord, headers: Record<string, string | number>): ByteRange | undefined {
  const partNumber = ctx.query.get('partNumber');
  if (partNumber === null) return parseRange(header(ctx, 'range'), object.size);
  if (header(ctx, 'range') !== undefined) throw s3Error('InvalidRequest', 'Cannot specify both Range header and partNumber query parameter');
  const part = partRange(object, parsePartNumber(partNumber));
  if ((object.attributes as Partial<StoredAttributes>).parts) headers['x-amz-mp-parts-count'] = part.partsCount;
  return object.size === 0 ? undefined : { start: part.start, end: part.end };
}

async function respondWithObject(ctx: RequestContext<'GetObject' | 'HeadObject'>, services: GatewayServices, withBody: boolean): Promise<void> {
  const object = await lookup(ctx, services, withBody);
  checkConditions(ctx, object);
  const headers = objectHeaders(ctx, object);
  const range = requestedRange(ctx, object, headers);
  const start = range?.start ?? 0;
  const end = range?.end ?? object.size - 1;
  const length = end - start + 1;
  const status = range ? 206 : 200;
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${object.size}`;
  const checksum = (object.attributes as Partial<StoredAttributes>).checksum;
  // A whole-object checksum describes whole objects only: never on a ranged answer.
  if (checksum && !range && header(ctx, 'x-amz-checksum-mode')?.toUpperCase() === 'ENABLED') {
    headers[`x-amz-checksum-${checksum.algorithm}`] = checksum.value;
    headers['x-amz-checksum-type'] = checksum.type;
  }
  headers['Content-Length'] = length;
  if (!withBody || length === 0) {
    ctx.res.writeHead(status, headers);
    ctx.res.end();
    return;
  }
  // Verify the first piece before the status line goes out: a read that fails at once is a
  // clean 500; one that fails later cuts the connection, so no client takes a short body as whole.
  if (object.inlineData) {
    ctx.res.writeHead(status, headers);
    ctx.res.end(object.inlineData.subarray(start, end + 1));
    return;
  }
  const pieces = services.reader.read(object.blocks, start, end);
  const first = await pieces.next();
  ctx.res.writeHead(status, headers);
  try {
    const complete = (first.done || (await writeChunk(ctx.res, first.value))) && (await pipeBody(ctx.res, { [Symbol.asyncIterator]: () => pieces }));
    if (complete) ctx.res.end();
  } finally {
    await pieces.return(undefined);
  }
}

export const getHandlers: HandlerTable = {
  GetObject: (ctx, services) => respondWithObject(ctx, services, true),
  HeadObject: (ctx, services) => respondWithObject(ctx, services, false),
};
