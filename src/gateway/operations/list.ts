// ListObjects (v1) and ListObjectsV2: prefix, delimiter, pagination.
import type { ObjectSummary } from '../../metadata/store.js';
import type { GatewayServices, HandlerTable, RequestContext } from '../context.js';
import { s3Error } from '../errors.js';
import { isoDate, sendXml } from '../respond.js';
import { byteOrder, encodingOf, ownerElement, requireBucket } from './common.js';

interface ListPage {
  contents: ObjectSummary[];
  commonPrefixes: string[];
  truncated: boolean;
  /** The last key or common prefix returned: where the next page starts. */
  last: string | undefined;
}

const SCAN_BATCH = 1000;
/** When the store returned keys under a prefix already folded, the next rows may well start another one: read a few, not a full batch. */
const PREFIX_PROBE = 16;

/**
 * Walks keys after `after` under `prefix`, folding keys that contain `delimiter` past the
 * prefix into common prefixes, until `maxKeys` entries (keys plus prefixes) are collected.
 * The store is told the delimiter and may return only the first key of each common prefix
 * (SQLite does); where it returns them all, each prefix is stepped over with one more query,
 * so a page costs what it returns, not what the folded directories hold.
 */
export async function listPage(
  services: GatewayServices,
  bucketId: number,
  options: { prefix: string; delimiter: string; after: string | undefined; maxKeys: number },
): Promise<ListPage> {
  const { prefix, delimiter, maxKeys } = options;
  const page: ListPage = { contents: [], commonPrefixes: [], truncated: false, last: undefined };
  if (maxKeys === 0) return page;
  let after = options.after;
  let limit = Math.min(SCAN_BATCH, maxKeys + 1);
  /** The common prefix of the last key seen, when it had one. */
  let folded: string | undefined;
  for (;;) {
    const batch = await services.store.listObjects(bucketId, { prefix, after, limit, ...(delimiter ? { delimiter } : {}) });
    for (const object of batch) {
      if (folded !== undefined && object.key.startsWith(folded)) continue;
      const cut = delimiter ? object.key.indexOf(delimiter, prefix.length) : -1;
      folded = cut >= 0 ? object.key.slice(0, cut + delimiter.length) : undefined;
      // A marker inside this common prefix: the prefix was returned on an earlier page.
      if (folded !== undefined && options.after !== undefined && byteOrder(folded, options.after) <= 0) continue;
      if (page.contents.length + page.commonPrefixes.length === maxKeys) {
        page.truncated = true;
        return page;
      }
      if (folded !== undefined) {
        page.commonPrefixes.push(folded);
        page.last = folded;
      } else {
        page.contents.push(object);
        page.last = object.key;
      }
    }
    if (batch.length < limit) return page;
    const lastKey = batch[batch.length - 1]!.key;
    const endedInPrefix = folded !== undefined && lastKey.startsWith(folded);
    // Every key under a prefix sorts before prefix + U+10FFFF (the largest code point).
    after = endedInPrefix ? folded + '\u{10FFFF}' : lastKey;
    limit = endedInPrefix ? PREFIX_PROBE : SCAN_BATCH;
  }
}

function parseMaxKeys(value: string | null): number {
  if (value === null) return 1000;
  if (!/^\d+$/.test(value)) throw s3Error('InvalidArgument', 'max-keys must be a non-negative integer', { ArgumentName: 'max-keys' });
  return Math.min(Number(value), 1000);
}

async function list(ctx: RequestContext<'ListObjects' | 'ListObjectsV2'>, services: GatewayServices, v2: boolean): Promise<void> {
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const q = ctx.query;
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const maxKeys = parseMaxKeys(q.get('max-keys'));
  const encode = encodingOf(q);
  let after: string | undefined;
  const token = q.get('continuation-token');
  if (v2 && token !== null) {
    after = Buffer.from(token, 'base64url').toString('utf8');
    if (!token || Buffer.from(after, 'utf8').toString('base64url') !== token) {
      throw s3Error('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
    }
  } else {
    after = (v2 ? q.get('start-after') : q.get('marker')) || undefined;
  }
  const page = await listPage(services, bucket.id, { prefix, delimiter, after, maxKeys });
  const withOwner = !v2 || q.get('fetch-owner') === 'true';
  const owner = withOwner ? await ownerElement(services, bucket.owner) : undefined;
  const body: Record<string, unknown> = {
    Name: bucket.name,
    Prefix: encode(prefix),
  };
  if (v2) {
    if (token !== null) body.ContinuationToken = token;
    if (q.get('start-after') !== null) body.StartAfter = encode(q.get('start-after')!);
    body.KeyCount = page.contents.length + page.commonPrefixes.length;
  } else {
    body.Marker = encode(q.get('marker') ?? '');
  }
  body.MaxKeys = maxKeys;
  if (delimiter) body.Delimiter = encode(delimiter);
  if (q.get('encoding-type') !== null) body.EncodingType = 'url';
  body.IsTruncated = page.truncated;
  if (page.truncated && page.last !== undefined) {
    if (v2) body.NextContinuationToken = Buffer.from(page.last, 'utf8').toString('base64url');
    else if (delimiter) body.NextMarker = encode(page.last);
  }
  body.Contents = page.contents.map((o) => ({
    Key: encode(o.key),
    LastModified: isoDate(o.modifiedAt),
    ETag: `"${o.etag}"`,
    Size: o.size,
    ...(owner ? { Owner: owner } : {}),
    StorageClass: 'STANDARD',
  }));
  body.CommonPrefixes = page.commonPrefixes.map((p) => ({ Prefix: encode(p) }));
  sendXml(ctx.res, 200, 'ListBucketResult', body);
}

export const listHandlers: HandlerTable = {
  ListObjects: (ctx, services) => list(ctx, services, false),
  ListObjectsV2: (ctx, services) => list(ctx, services, true),
};
