// DeleteObject and DeleteObjects: keys go, their blocks go to the deleted-block log for the
// purge service. Deleting a key that does not exist succeeds, as in S3.
import type { GatewayServices, HandlerTable, RequestContext } from '../context.js';
import { s3Error, toS3Error } from '../errors.js';
import { sendEmpty, sendXml } from '../respond.js';
import { readVerifiedBody } from '../body.js';
import { parseXml, xmlText } from '../xml.js';
import { MAX_KEY_BYTES } from '../router.js';
import { requireBucket } from './common.js';

const MAX_KEYS_PER_REQUEST = 1000;

async function deleteObjects(ctx: RequestContext<'DeleteObjects'>, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const body = await readVerifiedBody(ctx, services, { integrityRequired: true });
  const document = parseXml(body, 'Delete');
  const objects = (document.Object ?? []) as Record<string, unknown>[];
  if (objects.length === 0 || objects.length > MAX_KEYS_PER_REQUEST) {
    throw s3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  const quiet = xmlText(document.Quiet)?.trim().toLowerCase() === 'true';
  const deleted: Record<string, string>[] = [];
  const errors: Record<string, string>[] = [];
  for (const entry of objects) {
    const key = xmlText(entry.Key);
    if (key === undefined) throw s3Error('MalformedXML', 'Each Object needs a Key.');
    try {
      if (key.length === 0) throw s3Error('InvalidArgument', 'The key must not be empty.');
      if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw s3Error('KeyTooLongError', 'Your key is too long');
      await services.store.deleteObject(bucket.id, key);
      if (!quiet) deleted.push({ Key: key });
    } catch (error) {
      const s3 = toS3Error(error);
      errors.push({ Key: key, Code: s3.code, Message: s3.message });
    }
  }
  sendXml(ctx.res, 200, 'DeleteResult', { Deleted: deleted, Error: errors });
}

export const deleteHandlers: HandlerTable = {
  async DeleteObject(ctx, services) {
    const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
    await services.store.deleteObject(bucket.id, ctx.op.key);
    sendEmpty(ctx.res, 204);
  },
  DeleteObjects: deleteObjects,
};
