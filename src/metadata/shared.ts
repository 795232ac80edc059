// Pieces every MetadataStore implementation needs to agree on (SQLite now, PostgreSQL
// later): identifier formats, the block-to-container rule, key-range and ETag helpers.
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { MetadataError, type CommitKeyInput, type Tenant } from './store.js';

const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A row of the tenants table (both stores). */
export interface TenantRow { name: string; created_at: number }

/** A tenant's volume is named after it, as Ozone names a tenant's volume by default. */
export function toTenant(r: TenantRow): Tenant {
  return { name: r.name, volume: r.name, createdAt: r.created_at };
}

/** Blocks per container: a datanode directory never holds more files than this. */
export const BLOCKS_PER_CONTAINER = 1024;

export function containerIdOf(localId: number): number {
  return Math.floor(localId / BLOCKS_PER_CONTAINER) + 1;
}

function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** 20 uppercase alphanumerics, the shape of an AWS access key id. */
export function newAccessKeyId(): string {
  return randomString(UPPER_ALNUM, 20);
}

/** 40 characters like an AWS secret, alphanumeric only so that no tool has to escape it. */
export function newSecretAccessKey(): string {
  return randomString(ALNUM, 40);
}

/** 64 hex characters, the S3 canonical user id. */
export function newCanonicalId(): string {
  return randomBytes(32).toString('hex');
}

/** The inline_data and attributes columns of a commit, after checking that its parts add up to its size. */
export function commitColumns(input: CommitKeyInput): { inline: Buffer | null; attributes: string } {
  const size = input.blocks.reduce((sum, b) => sum + b.length, input.inlineData?.length ?? 0);
  if (size !== input.size) throw new Error(`commitKey ${input.key}: block lengths and inline data sum to ${size}, size is ${input.size}`);
  // Readers skip the block lookup of an inline object, so it must have none.
  if (input.inlineData && input.blocks.length > 0) throw new Error(`commitKey ${input.key}: inline data and blocks together`);
  const inline = input.inlineData ? Buffer.from(input.inlineData.buffer, input.inlineData.byteOffset, input.inlineData.byteLength) : null;
  return { inline, attributes: JSON.stringify(input.attributes) };
}

/**
 * Whether commitKey may commit `input`, given the open key row of its object id and (when
 * there is none) whether an object already holds that id. A commit without blocks (an
 * object kept inline, or empty) needs no open key: nothing was written that a purge could
 * have reclaimed meanwhile, so the gateway skips openKey for it; its id must be fresh.
 */
export function mayCommit(open: { bucket_id: number; name: string } | undefined, input: CommitKeyInput, idCommitted: boolean): boolean {
  if (open) return open.bucket_id === input.bucketId && open.name === input.key;
  return input.blocks.length === 0 && !idCommitted;
}

let lastIdMs = 0;
let idSequence = 0;

/**
 * Opaque and URL-safe, 32 hex digits; doubles as the S3 UploadId of a multipart upload. Ids
 * grow with time (the millisecond, a sequence within it, then 64 random bits), so new rows go
 * to the right-hand edge of every index on object ids: with random ids, a new key in a bucket of
 * a million objects cost SQLite a random leaf page of that index, and about twice the time
 * (bench/HISTORY.md). A key's multipart uploads also list in the order they were started, as S3's do.
 */
export function newObjectId(): string {
  const now = Date.now();
  if (now > lastIdMs) {
    lastIdMs = now;
    idSequence = 0;
  } else if (++idSequence > 0xffff) {
    // A clock that went back, or 65,536 ids in one millisecond: run ahead rather than repeat.
    lastIdMs++;
    idSequence = 0;
  }
  // randomUUID draws from a cached pool of entropy; the first and last 8 hex digits of one are all random.
  const random = randomUUID();
  return lastIdMs.toString(16).padStart(12, '0') + idSequence.toString(16).padStart(4, '0') + random.slice(0, 8) + random.slice(28);
}

/**
 * The smallest string above every string that starts with prefix, in UTF-8 byte order
 * (which is code point order): the last code point below U+10FFFF, incremented, with what
 * follows it dropped. undefined when there is none (the prefix is all U+10FFFF).
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (points.length > 0) {
    const last = points.pop()!;
    if (last < 0x10ffff) {
      // Skip the surrogate range, which UTF-8 cannot encode.
      points.push(last + 1 === 0xd800 ? 0xe000 : last + 1);
      return String.fromCodePoint(...points);
    }
  }
  return undefined;
}

/** Keys compare in the byte order of their UTF-8 encoding, as S3 lists them. */
export const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** ETags compare without their quotes; '*' matches any existing object (RFC 9110 If-Match). */
export function sameEtag(condition: string, etag: string): boolean {
  const bare = (s: string) => s.trim().replace(/^"(.*)"$/, '$1');
  return condition.trim() === '*' || bare(condition) === bare(etag);
}

/** If-None-Match / If-Match of a commit, judged against the key's current version (both stores). */
export function checkPreconditions(input: Pick<CommitKeyInput, 'key' | 'ifNoneMatch' | 'ifMatch'>, current: { etag: string } | undefined): void {
  if (input.ifNoneMatch === '*' && current) {
    throw new MetadataError('PreconditionFailed', `${input.key} already exists`);
  }
  if (input.ifMatch !== undefined) {
    // AWS answers If-Match on a missing key with 404 NoSuchKey, not 412.
    if (!current) throw new MetadataError('NoSuchKey', `${input.key} does not exist`);
    if (!sameEtag(input.ifMatch, current.etag)) throw new MetadataError('PreconditionFailed', `${input.key} has another ETag`);
  }
}
