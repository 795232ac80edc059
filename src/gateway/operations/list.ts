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
/** After a common prefix is skipped the next rows may well start another one: read a few, not a full batch. */
const PREFIX_PROBE = 16;

/**
 * Walks keys after `after` under `prefix`, folding keys that contain `delimiter` past the
 * prefix into common prefixes, until `maxKeys` entries (keys plus prefixes) are collected.
 * Each common prefix is stepped over with one query, so a page costs what it returns, not
 * what the folded directories hold.
 */
export async function listPage(
  services: GatewayServices,
  bucketId: number,
  options: { prefix: string; delimiter: string; after: string | undefined; maxKeys: number },
): Promise<ListPage> {
  const { prefix, delimiter, maxKeys } = options;
  const page: ListPage = { contents: [], commonPrefixes: [], truncated: false, last: undefined };
  let after = options.after;
  let limit = delimiter ? PREFIX_PROBE : Math.min(SCAN_BATCH, maxKeys + 1);
  if (maxKeys === 0) return page;
  for (;;) {
    const batch = await services.store.listObjects(bucketId, { prefix, after, limit });
    let skipped = false;
    for (const object of batch) {
      after = object.key;
      const cut = delimiter ? object.key.indexOf(delimiter, prefix.length) : -1;
      const entry = cut >= 0 ? object.key.slice(0, cut + delimiter.length) : undefined;
      if (entry !== undefined && options.after !== undefined && byteOrder(entry, options.after) <= 0) {
        // The marker lies inside this common prefix: it was returned on an earlier page.
        after = entry + '\u{10FFFF}';
        skipped = true;
        break;
      }
      if (page.contents.length + page.commonPrefixes.length === maxKeys) {
        page.truncated = true;
        return page;
      }
      if (entry !== undefined) {
        page.commonPrefixes.push(entry);
        page.last = entry;
        // Every key under this prefix sorts before prefix + U+10FFFF (the largest code point).
        after = entry + '\u{10FFFF}';
        skipped = true;
        break;
      }
      page.contents.push(object);
      page.last = object.key;
    }
    if (!skipped && batch.length < limit) return page;
    limit = skipped ? PREFIX_PROBE : SCAN_BATCH;
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
