// PutObject: stream the body to the datanodes, verify it (upload.ts), then commit the key in
// one metadata transaction, with If-None-Match / If-Match checked inside that transaction.
import type { GatewayServices, HandlerTable, RequestContext } from '../context.js';
import { header } from '../context.js';
import { sendEmpty } from '../respond.js';
import { attributesFromRequest, tagsFromHeader } from '../object-attributes.js';
import { commitWritten, receiveBody } from '../upload.js';
import { s3Error } from '../errors.js';
import { checkWritableKey, requireBucket } from './common.js';

/** If-None-Match: * and If-Match on writes; anything else in If-None-Match is not supported by S3 either. */
export function writeConditions(ctx: RequestContext): { ifNoneMatch: '*' | undefined; ifMatch: string | undefined } {
  const ifNoneMatch = header(ctx, 'if-none-match')?.trim();
  const ifMatch = header(ctx, 'if-match')?.trim();
  if (ifNoneMatch !== undefined && ifNoneMatch !== '*') throw s3Error('NotImplemented', 'If-None-Match on writes supports only *');
  return { ifNoneMatch: ifNoneMatch ? '*' : undefined, ifMatch: ifMatch || undefined };
}

async function putObject(ctx: RequestContext<'PutObject'>, services: GatewayServices): Promise<void> {
  const attributes = attributesFromRequest(ctx.headers);
  const tags = tagsFromHeader(header(ctx, 'x-amz-tagging'));
  const conditions = writeConditions(ctx);
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  checkWritableKey(bucket, ctx.op.key);
  const { written, md5, checksum } = await receiveBody(ctx, services, {
    bucketId: bucket.id,
    key: ctx.op.key,
    kind: 'put',
    maxSize: services.config.maxPutSize,
  });
  if (tags) attributes.tags = tags;
  if (checksum) attributes.checksum = checksum;
  await commitWritten(services, written, { bucketId: bucket.id, key: ctx.op.key, etag: md5, attributes, ifNoneMatch: conditions.ifNoneMatch, ifMatch: conditions.ifMatch });
  const headers: Record<string, string> = { ETag: `"${md5}"` };
  if (checksum) headers[`x-amz-checksum-${checksum.algorithm}`] = checksum.value;
  sendEmpty(ctx.res, 200, headers);
}

export const putHandlers: HandlerTable = { PutObject: putObject };
