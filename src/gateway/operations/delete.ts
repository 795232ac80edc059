// DeleteObject: the key goes, its blocks go to the deleted-block log for the purge service.
import type { HandlerTable } from '../context.js';
import { sendEmpty } from '../respond.js';
import { requireBucket } from './common.js';

export const deleteHandlers: HandlerTable = {
  async DeleteObject(ctx, services) {
    const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
    // Deleting a missing key succeeds, as in S3.
    await services.store.deleteObject(bucket.id, ctx.op.key);
    sendEmpty(ctx.res, 204);
  },
};
