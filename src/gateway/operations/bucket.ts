// Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.
import type { HandlerTable } from '../context.js';
import { s3Error } from '../errors.js';
import { readVerifiedBody } from '../body.js';
import { sendEmpty, sendXml, isoDate } from '../respond.js';
import { ownerElement, requireBucket, volumeOf } from './common.js';

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** AWS's naming rules for new buckets. */
export function validateBucketName(name: string): void {
  const valid =
    BUCKET_NAME.test(name) &&
    !name.includes('..') &&
    !name.includes('.-') &&
    !name.includes('-.') &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(name) &&
    !name.startsWith('xn--') &&
    !name.endsWith('-s3alias');
  if (!valid) throw s3Error('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: name });
}

export const bucketHandlers: HandlerTable = {
  async ListBuckets(ctx, services) {
    const buckets = await services.store.listBuckets(volumeOf(ctx.user), ctx.user.admin ? undefined : ctx.user.name);
    sendXml(ctx.res, 200, 'ListAllMyBucketsResult', {
      Owner: await ownerElement(services, ctx.user.name),
      Buckets: { Bucket: buckets.map((b) => ({ Name: b.name, CreationDate: isoDate(b.createdAt) })) },
    });
  },

  async CreateBucket(ctx, services) {
    const name = ctx.op.bucket;
    validateBucketName(name);
    // The optional CreateBucketConfiguration (LocationConstraint) is read and ignored: one region.
    await readVerifiedBody(ctx, services);
    await services.store.createBucket({ volume: volumeOf(ctx.user), name, owner: ctx.user.name, layout: services.config.defaultBucketLayout });
    sendEmpty(ctx.res, 200, { Location: `/${name}` });
  },

  async HeadBucket(ctx, services) {
    await requireBucket(services, ctx.user, ctx.op.bucket);
    sendEmpty(ctx.res, 200, { 'x-amz-bucket-region': services.config.region });
  },

  async DeleteBucket(ctx, services) {
    await requireBucket(services, ctx.user, ctx.op.bucket);
    await services.store.deleteBucket(volumeOf(ctx.user), ctx.op.bucket);
    sendEmpty(ctx.res, 204);
  },

  async GetBucketLocation(ctx, services) {
    await requireBucket(services, ctx.user, ctx.op.bucket);
    // AWS answers an empty LocationConstraint for us-east-1.
    const region = services.config.region === 'us-east-1' ? '' : services.config.region;
    sendXml(ctx.res, 200, 'LocationConstraint', { '#text': region });
  },
};
