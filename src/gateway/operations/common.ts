// Lookups every operation group needs: the user's volume, the addressed bucket, owners.
import type { Bucket, User } from '../../metadata/store.js';
import { fsoKey } from '../../metadata/namespace.js';
import type { GatewayServices } from '../context.js';
import { s3Error } from '../errors.js';

/** Users outside a tenant keep their buckets in Ozone's `s3v` volume. */
export function volumeOf(_user: User): string {
  return 's3v';
}

export async function requireBucket(services: GatewayServices, user: User, name: string): Promise<Bucket> {
  const bucket = await services.store.getBucket(volumeOf(user), name);
  if (!bucket) throw s3Error('NoSuchBucket', undefined, { BucketName: name });
  return bucket;
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
