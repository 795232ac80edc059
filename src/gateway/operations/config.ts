// Bucket configurations that tools probe (policy, CORS, lifecycle, …) and ACLs. s3g keeps none
// of these configurations, so each GET answers what AWS answers for a bucket without one; ACLs
// are the owner's FULL_CONTROL, the only grant s3g has.
import type { GatewayServices, Handler, HandlerTable, RequestContext } from '../context.js';
import { s3Error } from '../errors.js';
import { sendXml } from '../respond.js';
import type { OperationName } from '../router.js';
import { ownerElement, requireBucket } from './common.js';

const ABSENT: [OperationName, string, string][] = [
  ['GetBucketPolicy', 'NoSuchBucketPolicy', 'The bucket policy does not exist'],
  ['GetBucketCors', 'NoSuchCORSConfiguration', 'The CORS configuration does not exist'],
  ['GetBucketLifecycleConfiguration', 'NoSuchLifecycleConfiguration', 'The lifecycle configuration does not exist'],
  ['GetBucketWebsite', 'NoSuchWebsiteConfiguration', 'The specified bucket does not have a website configuration'],
  ['GetBucketEncryption', 'ServerSideEncryptionConfigurationNotFoundError', 'The server side encryption configuration was not found'],
  ['GetBucketReplication', 'ReplicationConfigurationNotFoundError', 'The replication configuration was not found'],
  ['GetObjectLockConfiguration', 'ObjectLockConfigurationNotFoundError', 'Object Lock configuration does not exist for this bucket'],
  ['GetBucketTagging', 'NoSuchTagSet', 'The TagSet does not exist'],
];

function absent(code: string, message: string): Handler<OperationName> {
  return async (ctx, services) => {
    const bucket = (ctx.op as { bucket: string }).bucket;
    await requireBucket(services, ctx.user, bucket);
    throw s3Error(code, message, { BucketName: bucket });
  };
}

async function accessControlPolicy(ctx: RequestContext, services: GatewayServices, ownerName: string): Promise<void> {
  const owner = await ownerElement(services, ownerName);
  sendXml(ctx.res, 200, 'AccessControlPolicy', {
    Owner: owner,
    AccessControlList: {
      Grant: [
        {
          Grantee: { '@xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance', '@xsi:type': 'CanonicalUser', ...owner },
          Permission: 'FULL_CONTROL',
        },
      ],
    },
  });
}

export const configHandlers: HandlerTable = {
  ...(Object.fromEntries(ABSENT.map(([name, code, message]) => [name, absent(code, message)])) as HandlerTable),

  async GetBucketVersioning(ctx, services) {
    await requireBucket(services, ctx.user, ctx.op.bucket);
    sendXml(ctx.res, 200, 'VersioningConfiguration', {});
  },

  async GetBucketAcl(ctx, services) {
    const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
    await accessControlPolicy(ctx, services, bucket.owner);
  },

  async GetObjectAcl(ctx, services) {
    const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
    if (!(await services.store.getObject(bucket.id, ctx.op.key, { body: false }))) throw s3Error('NoSuchKey', undefined, { Key: ctx.op.key });
    await accessControlPolicy(ctx, services, bucket.owner);
  },
};
