// Lookups every operation group needs: the user's volume, the addressed bucket, owners.
import type { Bucket, User } from '../../metadata/store.js';
import { fsoKey } from '../../metadata/namespace.js';
import type { GatewayServices } from '../context.js';
import { s3Error } from '../errors.js';

/** A tenant's users keep their buckets in the tenant's volume (named after it); everyone else in Ozone's `s3v`. */
export function volumeOf(user: User): string {
  return user.tenant ?? 's3v';
}

/**
 * The bucket of that name in the user's volume. A user reaches no other volume: a name taken
 * only in another one is 403 AccessDenied (as AWS answers for someone else's bucket), a name
 * taken nowhere 404 NoSuchBucket.
 */
export async function requireBucket(services: GatewayServices, user: User, name: string): Promise<Bucket> {
  const bucket = await services.store.getBucket(volumeOf(user), name);
  if (bucket) return bucket;
  if (await services.store.bucketExists(name)) throw s3Error('AccessDenied', undefined, { BucketName: name });
  throw s3Error('NoSuchBucket', undefined, { BucketName: name });
}

/** The object of a write to an FSO bucket needs a key that normalises: refused before any byte is written. */
export function checkWritableKey(bucket: Bucket, key: string): void {
  if (bucket.layout === 'FSO') fsoKey(key);
}

/** The <Owner> element of a user (canonical id and display name). */
export async function ownerElement(services: GatewayServices, userName: string): Promise<{ ID: string; DisplayName: string }> {
  const user = await services.store.getUser(userName);
  return { ID: user?.canonicalId ?? '', DisplayName: user?.displayName ?? userName };
}

/** encoding-type=url in listings: S3 encodes like a form, spaces as '+', everything unsafe percent-escaped. */
export function encodingOf(query: URLSearchParams): (value: string) => string {
  const type = query.get('encoding-type');
  if (type === null) return (v) => v;
  if (type !== 'url') throw s3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type' });
  return (v) => encodeURIComponent(v).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

export { byteOrder } from '../../metadata/shared.js';
