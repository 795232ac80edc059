// PutObject: stream the body to the datanodes, verify what the client promised
// (Content-MD5, signed payload SHA-256), then commit the key in one metadata transaction.
import type { HandlerTable, RequestContext, GatewayServices } from '../context.js';
import { header } from '../context.js';
import { s3Error } from '../errors.js';
import { sendEmpty } from '../respond.js';
import { payloadMode } from '../../auth/authenticate.js';
import { BodyTooLargeError } from '../../pipeline/object-writer.js';
import { attributesFromRequest } from '../object-attributes.js';
import { requireBucket } from './common.js';

/** Content-MD5 as hex, or undefined when absent; InvalidDigest when it is not 16 base64 bytes. */
export function contentMd5(ctx: RequestContext): string | undefined {
  const value = header(ctx, 'content-md5');
  if (value === undefined) return undefined;
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length !== 16 || bytes.toString('base64') !== value.trim()) {
    throw s3Error('InvalidDigest', 'The Content-MD5 you specified is not valid.');
  }
  return bytes.toString('hex');
}

export function declaredLength(ctx: RequestContext, maxSize: number): number {
  const value = header(ctx, 'content-length');
  if (value === undefined) throw s3Error('MissingContentLength');
  if (!/^\d+$/.test(value)) throw s3Error('InvalidArgument', 'Content-Length must be a non-negative integer.');
  const length = Number(value);
  if (length > maxSize) throw s3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.');
  return length;
}

async function putObject(ctx: RequestContext<'PutObject'>, services: GatewayServices): Promise<void> {
  const mode = payloadMode(ctx.signed);
  if (mode.kind === 'streaming') throw s3Error('NotImplemented', `x-amz-content-sha256: ${mode.value} is not supported yet`);
  const length = declaredLength(ctx, services.config.maxPutSize);
  const md5 = contentMd5(ctx);
  const attributes = attributesFromRequest(ctx.headers);
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);

  let written;
  try {
    written = await services.writer.write({
      source: ctx.req.iterator({ destroyOnReturn: false }),
      bucketId: bucket.id,
      key: ctx.op.key,
      kind: 'put',
      digests: { md5: true, sha256: mode.kind === 'sha256' },
      maxSize: length,
    });
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw s3Error('InvalidRequest', 'The body is longer than Content-Length.');
    throw error;
  }
  const reject = (code: string): Promise<never> =>
    services.store.abortOpenKey(written.objectId).then(() => {
      throw s3Error(code);
    });
  if (written.size !== length) return reject('IncompleteBody');
  if (mode.kind === 'sha256' && written.digests.sha256 !== mode.expected) return reject('XAmzContentSHA256Mismatch');
  if (md5 !== undefined && written.digests.md5 !== md5) return reject('BadDigest');

  const etag = written.digests.md5!;
  try {
    await services.store.commitKey({
      objectId: written.objectId,
      bucketId: bucket.id,
      key: ctx.op.key,
      size: written.size,
      etag,
      attributes,
      blocks: written.blocks,
    });
  } catch (error) {
    await services.store.abortOpenKey(written.objectId).catch(() => undefined);
    throw error;
  }
  sendEmpty(ctx.res, 200, { ETag: `"${etag}"` });
}

export const putHandlers: HandlerTable = { PutObject: putObject };
