// CopyObject (and the source side of UploadPartCopy): the source is read from its replicas,
// verified like any GET, and streamed into a new object through the same writer as a PUT.
import type { Bucket, ObjectRecord } from '../../metadata/store.js';
import type { GatewayServices, HandlerTable, RequestContext } from '../context.js';
import { header } from '../context.js';
import { s3Error } from '../errors.js';
import { isoDate, sendXml } from '../respond.js';
import { safeDecode } from '../../auth/uri-encode.js';
import type { ByteSource } from '../../pipeline/object-writer.js';
import { attributesFromRequest, tagsFromHeader, type StoredAttributes } from '../object-attributes.js';
import { writeConditions } from './put.js';
import { commitWritten } from '../upload.js';
import { checkWritableKey, requireBucket } from './common.js';

export interface CopySource {
  bucket: Bucket;
  object: ObjectRecord;
}

/** Resolves x-amz-copy-source (`bucket/key` or `/bucket/key`, URL-encoded) and its x-amz-copy-source-if-* conditions. */
export async function readCopySource(ctx: RequestContext, services: GatewayServices): Promise<CopySource> {
  const raw = header(ctx, 'x-amz-copy-source')!;
  const [pathPart, query] = raw.split('?', 2) as [string, string | undefined];
  const path = safeDecode(pathPart.replace(/^\//, ''));
  const slash = path?.indexOf('/') ?? -1;
  if (path === undefined || slash <= 0 || slash === path.length - 1) {
    throw s3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey', { ArgumentName: 'x-amz-copy-source' });
  }
  const versionId = query ? new URLSearchParams(query).get('versionId') : null;
  if (versionId !== null && versionId !== 'null') throw s3Error('NotImplemented', 'Versioned copy sources are not supported');
  const bucket = await requireBucket(services, ctx.user, path.slice(0, slash));
  const key = path.slice(slash + 1);
  const object = await services.store.getObject(bucket.id, key);
  if (!object) throw s3Error('NoSuchKey', undefined, { Key: key });
  checkCopySourceConditions(ctx, object);
  return { bucket, object };
}

const unquote = (etag: string): string => etag.trim().replace(/^"(.*)"$/, '$1');

/** x-amz-copy-source-if-*: every failed condition is 412 PreconditionFailed (S3 does not answer 304 here). */
function checkCopySourceConditions(ctx: RequestContext, object: ObjectRecord): void {
  const ifMatch = header(ctx, 'x-amz-copy-source-if-match');
  const ifNoneMatch = header(ctx, 'x-amz-copy-source-if-none-match');
  const ifModifiedSince = header(ctx, 'x-amz-copy-source-if-modified-since');
  const ifUnmodifiedSince = header(ctx, 'x-amz-copy-source-if-unmodified-since');
  const modified = Math.floor(object.modifiedAt / 1000) * 1000;
  const fail = (condition: string): never => {
    throw s3Error('PreconditionFailed', undefined, { Condition: condition });
  };
  const matches = (list: string): boolean => list.split(',').some((e) => e.trim() === '*' || unquote(e) === object.etag);
  // As AWS: If-Match true + If-Unmodified-Since false still copies; If-None-Match false + If-Modified-Since true fails.
  if (ifMatch !== undefined) {
    if (!matches(ifMatch)) fail('x-amz-copy-source-If-Match');
  } else if (ifUnmodifiedSince !== undefined && !Number.isNaN(Date.parse(ifUnmodifiedSince)) && modified > Date.parse(ifUnmodifiedSince)) {
    fail('x-amz-copy-source-If-Unmodified-Since');
  }
  if (ifNoneMatch !== undefined) {
    if (matches(ifNoneMatch)) fail('x-amz-copy-source-If-None-Match');
  } else if (ifModifiedSince !== undefined && !Number.isNaN(Date.parse(ifModifiedSince)) && modified <= Date.parse(ifModifiedSince)) {
    fail('x-amz-copy-source-If-Modified-Since');
  }
}

/** An object's bytes [start, end]: from its metadata row when inline, else verified from its blocks. */
export function objectBytes(services: GatewayServices, object: ObjectRecord, start = 0, end = object.size - 1): ByteSource {
  if (end < start) return [];
  if (object.inlineData) return [object.inlineData.subarray(start, end + 1)];
  return services.reader.read(object.blocks, start, end);
}

async function copyObject(ctx: RequestContext<'CopyObject'>, services: GatewayServices): Promise<void> {
  const directive = (header(ctx, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  const taggingDirective = (header(ctx, 'x-amz-tagging-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') throw s3Error('InvalidArgument', 'Unknown metadata directive.', { ArgumentName: 'x-amz-metadata-directive' });
  if (taggingDirective !== 'COPY' && taggingDirective !== 'REPLACE') throw s3Error('InvalidArgument', 'Unknown tagging directive.', { ArgumentName: 'x-amz-tagging-directive' });
  const conditions = writeConditions(ctx);
  const target = await requireBucket(services, ctx.user, ctx.op.bucket);
  checkWritableKey(target, ctx.op.key);
  const source = await readCopySource(ctx, services);
  const sameObject = source.bucket.id === target.id && source.object.key === ctx.op.key;
  if (sameObject && directive === 'COPY' && taggingDirective === 'COPY') {
    throw s3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  if (source.object.size > services.config.maxPutSize) {
    throw s3Error('InvalidRequest', 'The specified copy source is larger than the maximum allowable size for a copy source: 5368709120');
  }
  const sourceAttributes = source.object.attributes as StoredAttributes;
  const fresh = attributesFromRequest(ctx.headers);
  const tags = taggingDirective === 'REPLACE' ? tagsFromHeader(header(ctx, 'x-amz-tagging') ?? '') : sourceAttributes.tags;
  const attributes: StoredAttributes = {
    ...(directive === 'REPLACE' ? fresh : { headers: sourceAttributes.headers, userMetadata: sourceAttributes.userMetadata }),
    ...(tags && Object.keys(tags).length > 0 ? { tags } : {}),
  };
  const written = await services.writer.write({
    source: objectBytes(services, source.object),
    bucketId: target.id,
    key: ctx.op.key,
    kind: 'put',
    digests: { md5: true, sha256: false, checksum: sourceAttributes.checksum?.algorithm },
    maxSize: source.object.size,
    inlineUpTo: services.config.storage.inlineThreshold,
  });
  const etag = written.digests.md5!;
  if (written.digests.checksum && sourceAttributes.checksum) {
    attributes.checksum = { algorithm: sourceAttributes.checksum.algorithm, value: written.digests.checksum, type: 'FULL_OBJECT' };
  }
  const committed = await commitWritten(services, written, { bucketId: target.id, key: ctx.op.key, etag, attributes, ifNoneMatch: conditions.ifNoneMatch, ifMatch: conditions.ifMatch });
  sendXml(ctx.res, 200, 'CopyObjectResult', { LastModified: isoDate(committed.modifiedAt), ETag: `"${etag}"` });
}

export const copyHandlers: HandlerTable = { CopyObject: copyObject };
