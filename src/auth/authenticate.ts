// Who sent a request: verifies the SigV4 signature (header or presigned query) against the
// secret in metadata. Payload bytes are checked later, by the pipeline, from the payload hash
// this returns.
import type { MetadataStore, User } from '../metadata/store.js';
import { s3Error } from '../gateway/errors.js';
import { isPresignedV2, presignedV2AccessKey, verifyPresignedV2 } from './sigv2.js';
import {
  MAX_CLOCK_SKEW_MS,
  computeSignature,
  parseAmzDate,
  parseAuthorizationHeader,
  parsePresignedQuery,
  signaturesMatch,
  type RequestParts,
  type SignedRequest,
} from './sigv4.js';

export interface Authenticated {
  user: User;
  signed: SignedRequest;
  /** Needed again for aws-chunked bodies, whose every chunk is signed with the same key. */
  secretAccessKey: string;
}

/** How the body is protected, from x-amz-content-sha256. */
export type PayloadMode = { kind: 'sha256'; expected: string } | { kind: 'unsigned' } | { kind: 'streaming'; value: string };

export async function authenticate(
  parts: RequestParts,
  query: URLSearchParams,
  store: MetadataStore,
  now = Date.now(),
): Promise<Authenticated> {
  const authorization = parts.headers.get('authorization')?.[0];
  let signed: SignedRequest;
  if (authorization !== undefined) {
    signed = parseAuthorizationHeader(authorization, parts);
    const signedAt = parseAmzDate(signed.amzDate);
    if (signedAt === undefined) throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
    if (Math.abs(now - signedAt) > MAX_CLOCK_SKEW_MS) throw s3Error('RequestTimeTooSkewed');
  } else if (query.has('X-Amz-Algorithm') || query.has('X-Amz-Credential')) {
    signed = parsePresignedQuery(query, now);
  } else if (isPresignedV2(query)) {
    return authenticatePresignedV2(parts, query, store, now);
  } else {
    throw s3Error('AccessDenied', 'Anonymous access is not allowed');
  }
  if (signed.credential.date !== signed.amzDate.slice(0, 8)) {
    throw s3Error('SignatureDoesNotMatch', 'The date in the credential scope does not match the request date.');
  }
  const found = await store.lookupAccessKey(signed.credential.accessKeyId);
  if (!found) throw s3Error('InvalidAccessKeyId');
  const expected = computeSignature(parts, signed, found.secretAccessKey);
  if (!signaturesMatch(expected, signed.signature)) throw s3Error('SignatureDoesNotMatch');
  return { user: found.user, signed, secretAccessKey: found.secretAccessKey };
}

async function authenticatePresignedV2(parts: RequestParts, query: URLSearchParams, store: MetadataStore, now: number): Promise<Authenticated> {
  if (parts.method !== 'GET' && parts.method !== 'HEAD') {
    throw s3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  const found = await store.lookupAccessKey(presignedV2AccessKey(query));
  if (!found) throw s3Error('InvalidAccessKeyId');
  verifyPresignedV2(parts, query, found.secretAccessKey, now);
  const date = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  return {
    user: found.user,
    secretAccessKey: found.secretAccessKey,
    // What the handlers need of a signature: no payload to verify (GET/HEAD only).
    signed: {
      credential: { accessKeyId: presignedV2AccessKey(query), date: date.slice(0, 8), region: '', service: 's3' },
      signedHeaders: [],
      signature: query.get('Signature')!,
      amzDate: date,
      payloadHash: 'UNSIGNED-PAYLOAD',
      presigned: true,
    },
  };
}

export function payloadMode(signed: SignedRequest): PayloadMode {
  const value = signed.payloadHash;
  if (value === 'UNSIGNED-PAYLOAD') return { kind: 'unsigned' };
  if (/^[0-9a-f]{64}$/.test(value)) return { kind: 'sha256', expected: value };
  if (value.startsWith('STREAMING-')) return { kind: 'streaming', value };
  throw s3Error('InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-…, or a SHA-256 value.');
}
