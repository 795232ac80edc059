// AWS Signature Version 4 for S3: the Authorization header and presigned query forms.
// Only the canonical request and HMACs live here; hashing of payload bytes is the pool's job.
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import { s3Error } from '../gateway/errors.js';
import { awsUriEncode, canonicalQueryComponent, safeDecode } from './uri-encode.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
export const MAX_PRESIGN_EXPIRY_S = 7 * 24 * 3600;

export interface Credential {
  accessKeyId: string;
  date: string; // YYYYMMDD
  region: string;
  service: string;
}

/** What the client signed, extracted from the request before the secret is known. */
export interface SignedRequest {
  credential: Credential;
  signedHeaders: string[];
  signature: string;
  amzDate: string; // YYYYMMDDTHHMMSSZ
  /** The payload hash that went into the canonical request. */
  payloadHash: string;
  presigned: boolean;
}

export interface RequestParts {
  method: string;
  /** Raw path as received, still percent-encoded. */
  rawPath: string;
  /** Raw query string without '?'. */
  rawQuery: string;
  /** Lower-case name → values in arrival order (from rawHeaders). */
  headers: Map<string, string[]>;
}

export function headerMap(rawHeaders: string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const values = map.get(name);
    if (values) values.push(rawHeaders[i + 1]!);
    else map.set(name, [rawHeaders[i + 1]!]);
  }
  return map;
}

function parseCredential(value: string, malformed: string): Credential {
  const parts = value.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1]!)) {
    throw s3Error(malformed, `the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  if (parts[3] !== 's3') throw s3Error(malformed, `the service in the Credential is wrong; expecting "s3"`);
  return { accessKeyId: parts[0]!, date: parts[1]!, region: parts[2]!, service: parts[3]! };
}

/** Parses `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`. */
export function parseAuthorizationHeader(value: string, parts: RequestParts): SignedRequest {
  if (!value.startsWith(ALGORITHM + ' ')) {
    if (value.startsWith('AWS ')) throw s3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
    throw s3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; unsupported algorithm.');
  }
  const fields = new Map<string, string>();
  for (const item of value.slice(ALGORITHM.length + 1).split(',')) {
    const eq = item.indexOf('=');
    if (eq > 0) fields.set(item.slice(0, eq).trim(), item.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) {
    throw s3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; missing Credential, SignedHeaders or Signature.');
  }
  const amzDate = first(parts.headers, 'x-amz-date') ?? dateHeaderAsAmzDate(first(parts.headers, 'date'));
  if (!amzDate) throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  const payloadHash = first(parts.headers, 'x-amz-content-sha256');
  if (!payloadHash) throw s3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  return {
    credential: parseCredential(credential, 'AuthorizationHeaderMalformed'),
    signedHeaders: signedHeaders.split(';'),
    signature,
    amzDate,
    payloadHash,
    presigned: false,
  };
}

/** Parses the X-Amz-* query parameters of a presigned URL. */
export function parsePresignedQuery(query: URLSearchParams, now: number): SignedRequest {
  const get = (name: string): string => {
    const value = query.get(name);
    if (value === null) throw s3Error('AuthorizationQueryParametersError', `Query-string authentication version 4 requires the ${name} parameter.`);
    return value;
  };
  if (get('X-Amz-Algorithm') !== ALGORITHM) {
    throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  }
  const amzDate = get('X-Amz-Date');
  const expires = Number(get('X-Amz-Expires'));
  if (!Number.isInteger(expires) || expires < 0) {
    throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Expires should be a number');
  }
  if (expires > MAX_PRESIGN_EXPIRY_S) {
    throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Expires must be less than a week (in seconds) that is 604800');
  }
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined) throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
  if (signedAt - now > MAX_CLOCK_SKEW_MS) throw s3Error('AccessDenied', 'Request is not valid yet');
  if (now > signedAt + expires * 1000) throw s3Error('AccessDenied', 'Request has expired');
  return {
    credential: parseCredential(get('X-Amz-Credential'), 'AuthorizationQueryParametersError'),
    signedHeaders: get('X-Amz-SignedHeaders').split(';'),
    signature: get('X-Amz-Signature'),
    amzDate,
    // Presigned URLs sign UNSIGNED-PAYLOAD unless the signer put a hash in the query.
    payloadHash: query.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD',
    presigned: true,
  };
}

export function parseAmzDate(value: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return Number.isNaN(ms) ? undefined : ms;
}

function dateHeaderAsAmzDate(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function first(headers: Map<string, string[]>, name: string): string | undefined {
  return headers.get(name)?.[0];
}

/**
 * The query's names and values decoded, encoded again and sorted by name, then value. Clients
 * mostly send them in that order already, so sorting is only done when needed.
 */
function canonicalQuery(rawQuery: string, presigned: boolean): string {
  if (!rawQuery) return '';
  const pairs: [string, string][] = [];
  let sorted = true;
  for (const item of rawQuery.split('&')) {
    if (!item) continue;
    const eq = item.indexOf('=');
    const name = canonicalQueryComponent(eq < 0 ? item : item.slice(0, eq));
    const value = eq < 0 ? '' : canonicalQueryComponent(item.slice(eq + 1));
    if (name === undefined || value === undefined) throw s3Error('InvalidArgument', 'Invalid percent-encoding in the query string');
    if (presigned && name === 'X-Amz-Signature') continue;
    const pair: [string, string] = [name, value];
    if (sorted && pairs.length > 0 && comparePairs(pairs[pairs.length - 1]!, pair) > 0) sorted = false;
    pairs.push(pair);
  }
  if (!sorted) pairs.sort(comparePairs);
  let canonical = '';
  for (let i = 0; i < pairs.length; i++) canonical += `${i === 0 ? '' : '&'}${pairs[i]![0]}=${pairs[i]![1]}`;
  return canonical;
}

function comparePairs(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

export function canonicalRequest(parts: RequestParts, signed: SignedRequest): string {
  const path = safeDecode(parts.rawPath);
  if (path === undefined) throw s3Error('InvalidURI', 'Couldn\'t parse the specified URI.');
  const headerLines = signed.signedHeaders.map((name) => {
    const values = parts.headers.get(name);
    if (!values) throw s3Error('SignatureDoesNotMatch', `The header ${name} is signed but missing from the request.`);
    return `${name}:${values.map((v) => v.trim().replace(/\s+/g, ' ')).join(',')}\n`;
  });
  return [
    parts.method,
    awsUriEncode(path, true),
    canonicalQuery(parts.rawQuery, signed.presigned),
    headerLines.join(''),
    signed.signedHeaders.join(';'),
    signed.payloadHash,
  ].join('\n');
}

export function scope(credential: Credential): string {
  return `${credential.date}/${credential.region}/${credential.service}/aws4_request`;
}

export function stringToSign(amzDate: string, credentialScope: string, hashedPayloadOrRequest: string): string {
  return `${ALGORITHM}\n${amzDate}\n${credentialScope}\n${hashedPayloadOrRequest}`;
}

/** A signing key, and its HMAC-SHA256 pads (RFC 2104) for the one HMAC every request computes with it. */
interface DerivedKey {
  key: Buffer;
  innerPad: Buffer;
  outerPad: Buffer;
}

const signingKeys = new Map<string, DerivedKey>();
const SHA256_BLOCK_BYTES = 64;

function derivedKey(secret: string, credential: Credential): DerivedKey {
  const cacheKey = `${secret}\0${scope(credential)}`;
  let derived = signingKeys.get(cacheKey);
  if (!derived) {
    const kDate = hmac('AWS4' + secret, credential.date);
    const kRegion = hmac(kDate, credential.region);
    const kService = hmac(kRegion, credential.service);
    const key = hmac(kService, 'aws4_request');
    // The key (32 bytes) is shorter than SHA-256's block: zero-padded, XORed with ipad and opad.
    const innerPad = Buffer.alloc(SHA256_BLOCK_BYTES, 0x36);
    const outerPad = Buffer.alloc(SHA256_BLOCK_BYTES, 0x5c);
    for (let i = 0; i < key.length; i++) {
      innerPad[i]! ^= key[i]!;
      outerPad[i]! ^= key[i]!;
    }
    derived = { key, innerPad, outerPad };
    if (signingKeys.size > 10_000) signingKeys.clear();
    signingKeys.set(cacheKey, derived);
  }
  return derived;
}

/** Derived per secret, day and region; cached because every request needs it. */
export function signingKey(secret: string, credential: Credential): Buffer {
  return derivedKey(secret, credential).key;
}

export function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/**
 * HMAC-SHA256 as two one-shot hashes over the cached pads. createHmac builds a stream object
 * and looks the digest up in OpenSSL each time: 6 µs of a gateway's GET in its profile.
 */
function hmacWithPadsHex(derived: DerivedKey, data: string): string {
  const inner = hash('sha256', Buffer.concat([derived.innerPad, Buffer.from(data, 'utf8')]), 'buffer');
  return hash('sha256', Buffer.concat([derived.outerPad, inner]), 'hex');
}

export function sha256Hex(data: string): string {
  return hash('sha256', data, 'hex');
}

/** Constant-time comparison of hex signatures. */
export function signaturesMatch(expectedHex: string, givenHex: string): boolean {
  const expected = Buffer.from(expectedHex, 'utf8');
  const given = Buffer.from(givenHex, 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** The signature the client should have sent, given the secret. */
export function computeSignature(parts: RequestParts, signed: SignedRequest, secret: string): string {
  const toSign = stringToSign(signed.amzDate, scope(signed.credential), sha256Hex(canonicalRequest(parts, signed)));
  return hmacWithPadsHex(derivedKey(secret, signed.credential), toSign);
}
