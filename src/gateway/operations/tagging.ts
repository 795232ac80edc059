// Object tagging: ?tagging PUT, GET and DELETE. Tags live in the object's attributes and are
// replaced on the version that was read, so a concurrent overwrite is never mixed with old tags.
import type { ObjectRecord } from '../../metadata/store.js';
import type { GatewayServices, HandlerTable, RequestContext } from '../context.js';
import { s3Error } from '../errors.js';
import { readVerifiedBody } from '../body.js';
import { parseXml, xmlText } from '../xml.js';
import { sendEmpty, sendXml } from '../respond.js';
import { validateTags, type StoredAttributes } from '../object-attributes.js';
import { requireBucket } from './common.js';

type TaggingOperation = 'PutObjectTagging' | 'GetObjectTagging' | 'DeleteObjectTagging';

async function currentObject(ctx: RequestContext<TaggingOperation>, services: GatewayServices): Promise<ObjectRecord> {
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const object = await services.store.getObject(bucket.id, ctx.op.key, { body: false });
  if (!object) throw s3Error('NoSuchKey', undefined, { Key: ctx.op.key });
  return object;
}

/** Sets the current version's tags; retried if the key is overwritten meanwhile. */
async function updateTags(ctx: RequestContext<TaggingOperation>, services: GatewayServices, tags: Record<string, string>): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const object = await currentObject(ctx, services);
    const attributes: StoredAttributes = { ...(object.attributes as StoredAttributes) };
    if (Object.keys(tags).length > 0) attributes.tags = tags;
    else delete attributes.tags;
    if (await services.store.setObjectAttributes(object.bucketId, object.key, object.objectId, attributes)) return;
  }
  throw s3Error('SlowDown', 'The object is being overwritten too often to tag it; retry.');
}

function parseTagging(body: Buffer): Record<string, string> {
  const document = parseXml(body, 'Tagging');
  const tagSet = document.TagSet as Record<string, unknown> | undefined;
  const tags = ((tagSet && typeof tagSet === 'object' ? tagSet.Tag : undefined) ?? []) as Record<string, unknown>[];
  return validateTags(
    tags.map((tag) => {
      const key = xmlText(tag.Key);
      if (key === undefined) throw s3Error('MalformedXML', 'Each Tag needs a Key.');
      return [key, xmlText(tag.Value) ?? ''];
    }),
  );
}

export const taggingHandlers: HandlerTable = {
  async PutObjectTagging(ctx, services) {
    const tags = parseTagging(await readVerifiedBody(ctx, services));
    await updateTags(ctx, services, tags);
    sendEmpty(ctx.res, 200);
  },

  async GetObjectTagging(ctx, services) {
    const object = await currentObject(ctx, services);
    const tags = (object.attributes as StoredAttributes).tags ?? {};
    sendXml(ctx.res, 200, 'Tagging', { TagSet: { Tag: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) } });
  },

  async DeleteObjectTagging(ctx, services) {
    await updateTags(ctx, services, {});
    sendEmpty(ctx.res, 204);
  },
};
