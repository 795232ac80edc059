// Signature Version 2 in the query string: the legacy presigned URL (AWSAccessKeyId, Expires,
// Signature). Some tools still make only these (s3cmd's signurl), so GET/HEAD links work;
// SigV2 in the Authorization header is refused.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { s3Error } from '../gateway/errors.js';
import { MAX_PRESIGN_EXPIRY_S, type RequestParts } from './sigv4.js';

/** Query parameters that are part of the signed resource, as AWS lists them for SigV2. */
const SIGNED_SUBRESOURCES = [
  'acl', 'cors', 'delete', 'lifecycle', 'location', 'logging', 'notification', 'partNumber', 'policy',
  'requestPayment', 'response-cache-control', 'response-content-disposition', 'response-content-encoding',
  'response-content-language', 'response-content-type', 'response-expires', 'tagging', 'torrent', 'uploadId',
  'uploads', 'versionId', 'versioning', 'versions', 'website',
];

export function isPresignedV2(query: URLSearchParams): boolean {
  return query.has('AWSAccessKeyId') && query.has('Signature');
}

export function presignedV2AccessKey(query: URLSearchParams): string {
  return query.get('AWSAccessKeyId')!;
}

/** Checks expiry and signature of a path-style SigV2 URL; throws the S3 error AWS sends. */
export function verifyPresignedV2(parts: RequestParts, query: URLSearchParams, secret: string, now: number): void {
  const expires = Number(query.get('Expires'));
  if (!Number.isInteger(expires)) throw s3Error('AccessDenied', 'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters');
  if (now > expires * 1000) throw s3Error('AccessDenied', 'Request has expired');
  if (expires * 1000 - now > MAX_PRESIGN_EXPIRY_S * 1000) {
    throw s3Error('AuthorizationQueryParametersError', 'Expires must be less than a week (in seconds) from now');
  }
  const header = (name: string): string => parts.headers.get(name)?.[0]?.trim() ?? '';
  const amzHeaders = [...parts.headers.keys()]
    .filter((name) => name.startsWith('x-amz-'))
    .sort()
    .map((name) => `${name}:${parts.headers.get(name)!.map((v) => v.trim()).join(',')}\n`)
    .join('');
  const subresources = [...query.keys()]
    .filter((name) => SIGNED_SUBRESOURCES.includes(name))
    .sort()
    .map((name) => (query.get(name) ? `${name}=${query.get(name)}` : name));
  const resource = parts.rawPath + (subresources.length ? `?${subresources.join('&')}` : '');
  const toSign = `${parts.method}\n${header('content-md5')}\n${header('content-type')}\n${expires}\n${amzHeaders}${resource}`;
  const expected = Buffer.from(createHmac('sha1', secret).update(toSign, 'utf8').digest('base64'));
  const given = Buffer.from(query.get('Signature')!);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw s3Error('SignatureDoesNotMatch');
}
