// The headers stored with an object and returned on GET/HEAD: the standard content headers
// and user metadata (x-amz-meta-*, at most 2 KiB as AWS).
import type { ObjectAttributes } from '../metadata/store.js';
import { s3Error } from './errors.js';
import type { ChecksumAlgorithm } from '../hashing/s3-checksums.js';

export const STORED_HEADERS = ['content-type', 'content-encoding', 'content-disposition', 'content-language', 'cache-control', 'expires'] as const;
const USER_METADATA_LIMIT = 2048;
const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';

export interface StoredAttributes extends ObjectAttributes {
  headers: Record<string, string>;
  userMetadata: Record<string, string>;
  tags?: Record<string, string>;
  checksum?: { algorithm: ChecksumAlgorithm; value: string; type: 'FULL_OBJECT' | 'COMPOSITE' };
  /** Sizes of a multipart object's parts, for GET ?partNumber=N. */
  parts?: { number: number; size: number }[];
}

const MAX_TAGS = 10;

/** AWS's tag rules: at most 10, keys up to 128 and values up to 256 characters, keys unique. */
export function validateTags(tags: [string, string][]): Record<string, string> {
  if (tags.length > MAX_TAGS) throw s3Error('BadRequest', 'Object tags cannot be greater than 10');
  const out: Record<string, string> = {};
  for (const [key, value] of tags) {
    if (key.length === 0 || [...key].length > 128) throw s3Error('InvalidTag', 'The TagKey you have provided is invalid');
    if ([...value].length > 256) throw s3Error('InvalidTag', 'The TagValue you have provided is invalid');
    if (key in out) throw s3Error('InvalidTag', 'Cannot provide multiple Tags with the same key');
    out[key] = value;
  }
  return out;
}

/** The x-amz-tagging header: a URL-encoded query string (URLSearchParams would pass a broken escape through as text). */
export function tagsFromHeader(value: string | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (/%(?![0-9A-Fa-f]{2})/.test(value)) {
    throw s3Error('InvalidArgument', "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.", { ArgumentName: 'x-amz-tagging' });
  }
  return validateTags([...new URLSearchParams(value)]);
}

/** What node accepts in a header value (its own check): an override outside it would be a 500. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function attributesFromRequest(headers: Map<string, string[]>): StoredAttributes {
  const stored: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    const value = headers.get(name)?.join(', ');
    if (value !== undefined) stored[name] = value;
  }
  stored['content-type'] ??= DEFAULT_CONTENT_TYPE;
  // aws-chunked describes the request framing, not the object: AWS drops it.
  if (stored['content-encoding'] !== undefined) {
    const encodings = stored['content-encoding'].split(',').map((e) => e.trim()).filter((e) => e && e !== 'aws-chunked');
    if (encodings.length > 0) stored['content-encoding'] = encodings.join(', ');
    else delete stored['content-encoding'];
  }
  const userMetadata: Record<string, string> = {};
  let size = 0;
  for (const [name, values] of headers) {
    if (!name.startsWith('x-amz-meta-')) continue;
    const key = name.slice('x-amz-meta-'.length);
    const value = values.join(',');
    size += Buffer.byteLength(key) + Buffer.byteLength(value);
    userMetadata[key] = value;
  }
  if (size > USER_METADATA_LIMIT) {
    throw s3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size of ${USER_METADATA_LIMIT} bytes.`);
  }
  return { headers: stored, userMetadata };
}

/** Response headers for a stored object, with `response-*` query overrides applied. */
export function attributeHeaders(attributes: ObjectAttributes, query?: URLSearchParams): Record<string, string> {
  const { headers = {}, userMetadata = {} } = attributes as Partial<StoredAttributes>;
  const out: Record<string, string> = { ...headers };
  for (const [key, value] of Object.entries(userMetadata)) out[`x-amz-meta-${key}`] = value;
  const tagCount = Object.keys((attributes as Partial<StoredAttributes>).tags ?? {}).length;
  if (tagCount > 0) out['x-amz-tagging-count'] = String(tagCount);
  if (query) {
    for (const name of STORED_HEADERS) {
      const override = query.get(`response-${name}`);
      if (override === null) continue;
      if (!HEADER_VALUE.test(override)) throw s3Error('InvalidArgument', `response-${name} is not a valid header value`, { ArgumentName: `response-${name}` });
      out[name] = override;
    }
  }
  return out;
}
