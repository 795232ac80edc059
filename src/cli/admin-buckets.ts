// s3g admin bucket create|list and rename: buckets of a chosen layout, and the FSO directory
// rename that costs one metadata write whatever the directory holds.
import type { BucketLayout, MetadataStore } from '../metadata/store.js';
import { volumeOf } from '../gateway/operations/common.js';
import { validateBucketName } from '../gateway/operations/bucket.js';
import { printResult } from './print.js';

interface BucketOptions {
  json: boolean;
  layout: string;
  owner: string;
  tenant?: string;
}

/** bucket and rename commands; undefined when the command is none of them. */
export async function manageBuckets(store: MetadataStore, positionals: string[], values: BucketOptions): Promise<number | undefined> {
  const [group, action, name] = positionals;
  if (group === 'bucket' && action === 'create' && name) {
    const layout = values.layout.toUpperCase();
    if (layout !== 'OBS' && layout !== 'FSO') throw new Error(`--layout must be obs or fso, got '${values.layout}'`);
    validateBucketName(name);
    const owner = await store.getUser(values.owner);
    if (!owner) throw new Error(`no user '${values.owner}'`);
    // The bucket lives where its owner's S3 requests look for it.
    const bucket = await store.createBucket({ volume: volumeOf(owner), name, owner: owner.name, layout: layout as BucketLayout });
    printResult(values.json, bucket, `bucket ${bucket.name} created (${bucket.layout}, volume ${bucket.volume}, owner ${bucket.owner})`);
    return 0;
  }
  if (group === 'bucket' && action === 'list') {
    const buckets = await store.listBuckets(values.tenant ?? 's3v');
    printResult(values.json, buckets, buckets.map((b) => `${b.name}  ${b.layout}  ${b.owner}`).join('\n'));
    return 0;
  }
  if (group === 'rename' && action && name) return rename(store, action, name, values);
  return undefined;
}

async function rename(store: MetadataStore, from: string, to: string, values: BucketOptions): Promise<number> {
  const [bucketName, source] = splitPath(from);
  const [targetBucket, target] = splitPath(to);
  if (targetBucket !== bucketName) throw new Error('rename stays within one bucket');
  const bucket = await store.getBucket(values.tenant ?? 's3v', bucketName);
  if (!bucket) throw new Error(`no bucket '${bucketName}'`);
  const started = performance.now();
  const moved = await store.rename(bucket.id, source, target);
  const ms = performance.now() - started;
  printResult(values.json, { bucket: bucketName, from: source, to: target, moved, ms }, `renamed ${moved} ${from} to ${to} in ${ms.toFixed(1)} ms`);
  return 0;
}

/** `bucket/a/b` → ['bucket', 'a/b']. */
function splitPath(path: string): [string, string] {
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1) throw new Error(`'${path}' is not BUCKET/PATH`);
  return [path.slice(0, slash), path.slice(slash + 1)];
}

