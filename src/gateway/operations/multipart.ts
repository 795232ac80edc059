// Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
// AbortMultipartUpload, ListParts, ListMultipartUploads. An upload is an open key of kind
// 'multipart' whose object id is the UploadId; each part is written like an object (under its
// own 'part' open key) and then attached to the upload in one metadata transaction. Completion
// hands the chosen parts' blocks to the object in order, without copying a byte.
import { createHash } from 'node:crypto';
import type { ObjectRecord, OpenKey, PartRecord } from '../../metadata/store.js';
import type { GatewayServices, HandlerTable, RequestContext } from '../context.js';
import { header } from '../context.js';
import { s3Error } from '../errors.js';
import { readSmallBody, readVerifiedBody } from '../body.js';
import { parseXml, xmlText } from '../xml.js';
import { isoDate, sendEmpty, sendXml } from '../respond.js';
import { attributesFromRequest, tagsFromHeader, type StoredAttributes } from '../object-attributes.js';
import { receiveBody } from '../upload.js';
import { createChecksum, isChecksumAlgorithm, type ChecksumAlgorithm } from '../../hashing/s3-checksums.js';
import { writeConditions } from './put.js';
import { objectBytes, readCopySource } from './copy.js';
import type { WrittenObject } from '../../pipeline/object-writer.js';
import { byteOrder, checkWritableKey, encodingOf, ownerElement, requireBucket } from './common.js';

/** S3's smallest part, except the last: fixed, as in AWS (no option or environment variable changes it). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_NUMBER = 10_000;
const MAX_LISTED = 1000;
/** A CompleteMultipartUpload document naming 10 000 parts with SHA-256 checksums stays well under this. */
const MAX_COMPLETE_BODY = 8 << 20;
const SCAN_BATCH = 1000;
const MALFORMED = 'The XML you provided was not well-formed or did not validate against our published schema.';

/** What CreateMultipartUpload stores with the upload; all but `initiator` go to the object. */
interface UploadAttributes extends StoredAttributes {
  initiator?: string;
  checksumAlgorithm?: ChecksumAlgorithm;
  checksumType?: string;
}

const checksumElement = (algorithm: string): string => `Checksum${algorithm.toUpperCase()}`;

/** partNumber query value: an integer 1..10000, else 400 InvalidArgument (as AWS). */
export function parsePartNumber(value: string | null): number {
  const number = value !== null && /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(number >= 1 && number <= MAX_PART_NUMBER)) {
    throw s3Error('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`, {
      ArgumentName: 'partNumber',
      ArgumentValue: value ?? '',
    });
  }
  return number;
}

/**
 * The bytes of part `partNumber` (1-based, the N-th part of the completed object) for
 * GET/HEAD ?partNumber=N. An object written in one PUT has one part, the whole object.
 * InvalidArgument outside 1..10000; 416 InvalidPartNumber past the object's parts (as AWS).
 * For an empty single-PUT object, part 1 is start 0, end -1.
 */
export function partRange(object: ObjectRecord, partNumber: number): { start: number; end: number; partsCount: number } {
  parsePartNumber(String(partNumber));
  const parts = (object.attributes as Partial<StoredAttributes>).parts ?? [{ number: 1, size: object.size }];
  if (partNumber > parts.length) {
    throw s3Error('InvalidPartNumber', 'The requested partnumber is not satisfiable', {
      PartNumberRequested: String(partNumber),
      ActualPartCount: String(parts.length),
    });
  }
  let start = 0;
  for (let i = 0; i < partNumber - 1; i++) start += parts[i]!.size;
  return { start, end: start + parts[partNumber - 1]!.size - 1, partsCount: parts.length };
}

/** The upload named by ?uploadId, if it is an upload of this bucket and key; else 404 NoSuchUpload. */
async function requireUpload(ctx: RequestContext, services: GatewayServices, bucketId: number, key: string): Promise<OpenKey> {
  const uploadId = ctx.query.get('uploadId') ?? '';
  const upload = uploadId ? await services.store.getOpenKey(uploadId) : undefined;
  if (!upload || upload.kind !== 'multipart' || upload.bucketId !== bucketId || upload.key !== key) {
    throw s3Error('NoSuchUpload', undefined, { UploadId: uploadId });
  }
  return upload;
}

function parseCount(value: string | null, name: string, max: number, fallback: number): number {
  if (value === null) return fallback;
  if (!/^\d{1,10}$/.test(value)) {
    throw s3Error('InvalidArgument', `Provided ${name} not an integer or within integer range`, { ArgumentName: name, ArgumentValue: value });
  }
  return Math.min(Number(value), max);
}

/** Owner elements by user name, looked up once per request. */
function owners(services: GatewayServices): (name: string) => Promise<{ ID: string; DisplayName: string }> {
  const cache = new Map<string, Promise<{ ID: string; DisplayName: string }>>();
  return (name) => {
    let found = cache.get(name);
    if (!found) cache.set(name, (found = ownerElement(services, name)));
    return found;
  };
}

// ---- CreateMultipartUpload ----

async function createMultipartUpload(ctx: RequestContext<'CreateMultipartUpload'>, services: GatewayServices): Promise<void> {
  const attributes: UploadAttributes = { ...attributesFromRequest(ctx.headers), initiator: ctx.user.name };
  const tags = tagsFromHeader(header(ctx, 'x-amz-tagging'));
  if (tags) attributes.tags = tags;
  const algorithm = header(ctx, 'x-amz-checksum-algorithm')?.trim().toLowerCase();
  if (algorithm !== undefined) {
    if (!isChecksumAlgorithm(algorithm)) throw s3Error('InvalidRequest', 'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]');
    attributes.checksumAlgorithm = algorithm;
  }
  const checksumType = header(ctx, 'x-amz-checksum-type')?.trim().toUpperCase();
  if (checksumType !== undefined) {
    if (checksumType !== 'COMPOSITE' && checksumType !== 'FULL_OBJECT') throw s3Error('InvalidRequest', 'Value for x-amz-checksum-type header is invalid.');
    attributes.checksumType = checksumType;
  }
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  checkWritableKey(bucket, ctx.op.key);
  await readSmallBody(ctx.req); // none expected; read so the connection stays usable
  const upload = await services.store.openKey({ bucketId: bucket.id, key: ctx.op.key, kind: 'multipart', attributes });
  const headers: Record<string, string> = {};
  if (attributes.checksumAlgorithm) headers['x-amz-checksum-algorithm'] = attributes.checksumAlgorithm.toUpperCase();
  if (attributes.checksumType) headers['x-amz-checksum-type'] = attributes.checksumType;
  for (const [name, value] of Object.entries(headers)) ctx.res.setHeader(name, value);
  sendXml(ctx.res, 200, 'InitiateMultipartUploadResult', { Bucket: bucket.name, Key: ctx.op.key, UploadId: upload.objectId });
}

// ---- UploadPart ----

async function uploadPart(ctx: RequestContext<'UploadPart'>, services: GatewayServices): Promise<void> {
  const partNumber = parsePartNumber(ctx.query.get('partNumber'));
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const upload = await requireUpload(ctx, services, bucket.id, ctx.op.key);
  const { written, md5, checksum } = await receiveBody(ctx, services, {
    bucketId: bucket.id,
    key: ctx.op.key,
    kind: 'part',
    maxSize: services.config.maxPutSize,
  });
  await commitUploadedPart(services, upload, partNumber, written, checksum);
  const headers: Record<string, string> = { ETag: `"${md5}"` };
  if (checksum) headers[`x-amz-checksum-${checksum.algorithm}`] = checksum.value;
  sendEmpty(ctx.res, 200, headers);
}

/** Records a written part in its upload; on failure its blocks are given back. */
async function commitUploadedPart(
  services: GatewayServices,
  upload: OpenKey,
  partNumber: number,
  written: WrittenObject,
  checksum: { algorithm: ChecksumAlgorithm; value: string } | undefined,
): Promise<PartRecord> {
  try {
    return await services.store.commitPart({
      uploadId: upload.objectId,
      partNumber,
      objectId: written.objectId,
      size: written.size,
      etag: written.digests.md5!,
      blocks: written.blocks,
      ...(checksum ? { checksum: { algorithm: checksum.algorithm, value: checksum.value } } : {}),
    });
  } catch (error) {
    await services.store.abortOpenKey(written.objectId).catch(() => undefined);
    throw error;
  }
}

// ---- UploadPartCopy ----

/** x-amz-copy-source-range: exactly `bytes=first-last`, inside the source. */
export function copySourceRange(value: string | undefined, size: number): { start: number; end: number } {
  if (value === undefined) return { start: 0, end: size - 1 };
  const m = /^bytes=(\d+)-(\d+)$/.exec(value.trim());
  if (!m) {
    throw s3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy', { ArgumentName: 'x-amz-copy-source-range' });
  }
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (start > end || end >= size) {
    throw s3Error('InvalidArgument', `Range specified is not valid for source object of size: ${size}`, { ArgumentName: 'x-amz-copy-source-range' });
  }
  return { start, end };
}

async function uploadPartCopy(ctx: RequestContext<'UploadPartCopy'>, services: GatewayServices): Promise<void> {
  const partNumber = parsePartNumber(ctx.query.get('partNumber'));
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const upload = await requireUpload(ctx, services, bucket.id, ctx.op.key);
  const source = await readCopySource(ctx, services);
  const { start, end } = copySourceRange(header(ctx, 'x-amz-copy-source-range'), source.object.size);
  const length = end - start + 1;
  if (length > services.config.maxPutSize) throw s3Error('EntityTooLarge', 'A part may be at most 5 GiB.');
  const algorithm = (upload.attributes as UploadAttributes | undefined)?.checksumAlgorithm;
  const written = await services.writer.write({
    source: objectBytes(services, source.object, start, end),
    bucketId: bucket.id,
    key: ctx.op.key,
    kind: 'part',
    digests: { md5: true, sha256: false, checksum: algorithm },
    maxSize: length,
  });
  const checksum = algorithm && written.digests.checksum ? { algorithm, value: written.digests.checksum } : undefined;
  const part = await commitUploadedPart(services, upload, partNumber, written, checksum);
  sendXml(ctx.res, 200, 'CopyPartResult', {
    ETag: `"${part.etag}"`,
    LastModified: isoDate(part.modifiedAt),
    ...(checksum ? { [checksumElement(checksum.algorithm)]: checksum.value } : {}),
  });
}

// ---- CompleteMultipartUpload ----

interface RequestedPart {
  partNumber: number;
  etag: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
}

/** The <Part> list of a CompleteMultipartUpload document, in document order. */
export function parseCompleteRequest(body: Buffer): RequestedPart[] {
  const document = parseXml(body, 'CompleteMultipartUpload');
  const parts = document.Part;
  if (!Array.isArray(parts) || parts.length === 0) throw s3Error('MalformedXML', MALFORMED);
  return parts.map((entry: unknown) => {
    const part = (entry ?? {}) as Record<string, unknown>;
    const number = xmlText(part.PartNumber)?.trim();
    const etag = xmlText(part.ETag)?.trim();
    if (number === undefined || !/^\d{1,9}$/.test(number) || etag === undefined) throw s3Error('MalformedXML', MALFORMED);
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
    for (const algorithm of ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'] as const) {
      const value = xmlText(part[checksumElement(algorithm)])?.trim();
      if (value) checksums[algorithm] = value;
    }
    return { partNumber: Number(number), etag: etag.replace(/^"(.*)"$/, '$1').toLowerCase(), checksums };
  });
}

/** md5(concatenated binary part MD5s)-N: the ETag of a multipart object. */
export function multipartEtag(partEtags: string[]): string {
  const md5 = createHash('md5');
  for (const etag of partEtags) md5.update(Buffer.from(etag, 'hex'));
  return `${md5.digest('hex')}-${partEtags.length}`;
}

/**
 * The COMPOSITE checksum AWS gives a multipart object: the algorithm over the concatenated
 * binary part checksums, then -N. Only when every chosen part carries one of that algorithm;
 * CRC64NVME and FULL_OBJECT checksums (a combination of CRCs) are not computed.
 */
function compositeChecksum(attributes: UploadAttributes, parts: PartRecord[]): StoredAttributes['checksum'] {
  const algorithm = attributes.checksumAlgorithm;
  if (!algorithm || algorithm === 'crc64nvme' || attributes.checksumType === 'FULL_OBJECT') return undefined;
  if (!parts.every((p) => p.checksum?.algorithm === algorithm)) return undefined;
  const running = createChecksum(algorithm);
  for (const part of parts) running.update(Buffer.from(part.checksum!.value, 'base64'));
  return { algorithm, value: `${running.digest()}-${parts.length}`, type: 'COMPOSITE' };
}

async function completeMultipartUpload(ctx: RequestContext<'CompleteMultipartUpload'>, services: GatewayServices): Promise<void> {
  const conditions = writeConditions(ctx);
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const body = await readVerifiedBody(ctx, services, { maxBytes: MAX_COMPLETE_BODY });
  const requested = parseCompleteRequest(body);
  const upload = await requireUpload(ctx, services, bucket.id, ctx.op.key);

  for (let i = 1; i < requested.length; i++) {
    if (requested[i]!.partNumber <= requested[i - 1]!.partNumber) {
      throw s3Error('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.', { UploadId: upload.objectId });
    }
  }
  const stored = new Map((await services.store.listParts(upload.objectId, { limit: MAX_PART_NUMBER })).map((p) => [p.partNumber, p]));
  const chosen: PartRecord[] = [];
  for (const want of requested) {
    const part = stored.get(want.partNumber);
    const checksumsMatch = Object.entries(want.checksums).every(([algorithm, value]) => part?.checksum?.algorithm !== algorithm || part.checksum.value === value);
    if (!part || part.etag !== want.etag || !checksumsMatch) {
      throw s3Error(
        'InvalidPart',
        'One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part\'s entity tag.',
        { UploadId: upload.objectId, PartNumber: String(want.partNumber), ETag: `"${want.etag}"` },
      );
    }
    chosen.push(part);
  }
  chosen.slice(0, -1).forEach((part) => {
    if (part.size < MIN_PART_SIZE) {
      throw s3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', {
        ProposedSize: String(part.size),
        MinSizeAllowed: String(MIN_PART_SIZE),
        PartNumber: String(part.partNumber),
        ETag: `"${part.etag}"`,
      });
    }
  });

  const uploadAttributes = (upload.attributes ?? {}) as UploadAttributes;
  const attributes: UploadAttributes = {
    ...uploadAttributes,
    headers: uploadAttributes.headers ?? {},
    userMetadata: uploadAttributes.userMetadata ?? {},
    parts: chosen.map((p) => ({ number: p.partNumber, size: p.size })),
  };
  // What only the upload needs stays behind.
  delete attributes.initiator;
  delete attributes.checksumAlgorithm;
  delete attributes.checksumType;
  const checksum = compositeChecksum(uploadAttributes, chosen);
  if (checksum) attributes.checksum = checksum;
  const etag = multipartEtag(chosen.map((p) => p.etag));
  const object = await services.store.completeMultipartUpload({
    uploadId: upload.objectId,
    bucketId: bucket.id,
    key: ctx.op.key,
    parts: chosen.map((p) => p.partNumber),
    partEtags: chosen.map((p) => p.etag),
    size: chosen.reduce((sum, p) => sum + p.size, 0),
    etag,
    attributes,
    ...conditions,
  });

  const result: Record<string, unknown> = {
    Location: `http://${header(ctx, 'host') ?? 'localhost'}${(ctx.req.url ?? '/').split('?')[0]}`,
    Bucket: bucket.name,
    Key: ctx.op.key,
    ETag: `"${object.etag}"`,
  };
  if (checksum) {
    result[checksumElement(checksum.algorithm)] = checksum.value;
    result.ChecksumType = checksum.type;
  }
  sendXml(ctx.res, 200, 'CompleteMultipartUploadResult', result);
}

// ---- AbortMultipartUpload ----

async function abortMultipartUpload(ctx: RequestContext<'AbortMultipartUpload'>, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const upload = await requireUpload(ctx, services, bucket.id, ctx.op.key);
  await services.store.abortMultipartUpload(upload.objectId);
  sendEmpty(ctx.res, 204);
}

// ---- ListParts ----

async function listParts(ctx: RequestContext<'ListParts'>, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const maxParts = parseCount(ctx.query.get('max-parts'), 'max-parts', MAX_LISTED, MAX_LISTED);
  const marker = parseCount(ctx.query.get('part-number-marker'), 'part-number-marker', Number.MAX_SAFE_INTEGER, 0);
  const upload = await requireUpload(ctx, services, bucket.id, ctx.op.key);
  const found = await services.store.listParts(upload.objectId, { after: marker, limit: maxParts + 1 });
  const page = found.slice(0, maxParts);
  const truncated = found.length > maxParts;
  const attributes = (upload.attributes ?? {}) as UploadAttributes;
  const owner = owners(services);
  const body: Record<string, unknown> = {
    Bucket: bucket.name,
    Key: ctx.op.key,
    UploadId: upload.objectId,
    Initiator: await owner(attributes.initiator ?? bucket.owner),
    Owner: await owner(bucket.owner),
    StorageClass: 'STANDARD',
    PartNumberMarker: marker,
    NextPartNumberMarker: page.at(-1)?.partNumber ?? marker,
    MaxParts: maxParts,
    IsTruncated: truncated,
  };
  if (attributes.checksumAlgorithm) body.ChecksumAlgorithm = attributes.checksumAlgorithm.toUpperCase();
  if (attributes.checksumType) body.ChecksumType = attributes.checksumType;
  body.Part = page.map((p) => ({
    PartNumber: p.partNumber,
    LastModified: isoDate(p.modifiedAt),
    ETag: `"${p.etag}"`,
    Size: p.size,
    ...(p.checksum ? { [checksumElement(p.checksum.algorithm)]: p.checksum.value } : {}),
  }));
  sendXml(ctx.res, 200, 'ListPartsResult', body);
}

// ---- ListMultipartUploads ----

async function listMultipartUploads(ctx: RequestContext<'ListMultipartUploads'>, services: GatewayServices): Promise<void> {
  const bucket = await requireBucket(services, ctx.user, ctx.op.bucket);
  const q = ctx.query;
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const maxUploads = parseCount(q.get('max-uploads'), 'max-uploads', MAX_LISTED, MAX_LISTED);
  const encode = encodingOf(q);
  const keyMarker = q.get('key-marker') || undefined;
  // As S3: upload-id-marker means nothing without key-marker.
  const uploadIdMarker = keyMarker !== undefined ? q.get('upload-id-marker') || undefined : undefined;

  type Entry = { upload: { key: string; uploadId: string; createdAt: number; attributes: UploadAttributes } } | { prefix: string };
  const entries: Entry[] = [];
  let truncated = false;
  let cursor: { keyMarker?: string; uploadIdMarker?: string } = { keyMarker, uploadIdMarker };
  let lastPrefix: string | undefined;
  if (maxUploads > 0) {
    scan: for (;;) {
      const batch = await services.store.listMultipartUploads(bucket.id, { prefix, ...cursor, limit: SCAN_BATCH });
      for (const upload of batch) {
        cursor = { keyMarker: upload.key, uploadIdMarker: upload.uploadId };
        const cut = delimiter ? upload.key.indexOf(delimiter, prefix.length) : -1;
        const common = cut >= 0 ? upload.key.slice(0, cut + delimiter.length) : undefined;
        if (common !== undefined && (common === lastPrefix || (keyMarker !== undefined && byteOrder(common, keyMarker) <= 0))) continue;
        if (entries.length === maxUploads) {
          truncated = true;
          break scan;
        }
        if (common !== undefined) {
          entries.push({ prefix: common });
          lastPrefix = common;
          // Skip the rest of this common prefix in one step.
          cursor = { keyMarker: common + '\u{10FFFF}' };
          continue scan;
        }
        entries.push({ upload: { ...upload, attributes: upload.attributes as UploadAttributes } });
      }
      if (batch.length < SCAN_BATCH) break;
    }
  }

  const owner = owners(services);
  const bucketOwner = await owner(bucket.owner);
  const uploads = [];
  for (const entry of entries) {
    if (!('upload' in entry)) continue;
    const { key, uploadId, createdAt, attributes } = entry.upload;
    uploads.push({
      ...(attributes.checksumAlgorithm ? { ChecksumAlgorithm: attributes.checksumAlgorithm.toUpperCase() } : {}),
      ...(attributes.checksumType ? { ChecksumType: attributes.checksumType } : {}),
      Key: encode(key),
      UploadId: uploadId,
      Initiator: await owner(attributes.initiator ?? bucket.owner),
      Owner: bucketOwner,
      StorageClass: 'STANDARD',
      Initiated: isoDate(createdAt),
    });
  }
  const body: Record<string, unknown> = {
    Bucket: bucket.name,
    KeyMarker: encode(keyMarker ?? ''),
    UploadIdMarker: uploadIdMarker ?? '',
  };
  const last = entries.at(-1);
  if (truncated && last) {
    body.NextKeyMarker = encode('upload' in last ? last.upload.key : last.prefix);
    body.NextUploadIdMarker = 'upload' in last ? last.upload.uploadId : '';
  }
  body.Prefix = encode(prefix);
  if (delimiter) body.Delimiter = encode(delimiter);
  body.MaxUploads = maxUploads;
  if (q.get('encoding-type') !== null) body.EncodingType = 'url';
  body.IsTruncated = truncated;
  body.Upload = uploads;
  body.CommonPrefixes = entries.flatMap((e) => ('prefix' in e ? [{ Prefix: encode(e.prefix) }] : []));
  sendXml(ctx.res, 200, 'ListMultipartUploadsResult', body);
}

export const multipartHandlers: HandlerTable = {
  CreateMultipartUpload: createMultipartUpload,
  UploadPart: uploadPart,
  UploadPartCopy: uploadPartCopy,
  CompleteMultipartUpload: completeMultipartUpload,
  AbortMultipartUpload: abortMultipartUpload,
  ListParts: listParts,
  ListMultipartUploads: listMultipartUploads,
};
