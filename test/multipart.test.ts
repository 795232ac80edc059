// Multipart uploads against a real server: the AWS SDK's Upload and the aws CLI end to end,
// every error AWS answers with its status and code, listings and their pagination, abort and
// block reclamation, part replacement, completion with a subset of parts, and a restart.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type ListMultipartUploadsCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { disposeServer, startServer, tempDir, type TestServer } from './helpers/server.js';
import { aws, s3Failure, sdkClient } from './helpers/clients.js';
import { errorCode, signedRequest } from './helpers/raw.js';
import { MIN_PART_SIZE, multipartEtag, parseCompleteRequest, parsePartNumber, partRange } from '../src/gateway/operations/multipart.js';
import type { ObjectRecord } from '../src/metadata/store.js';
import { S3Error } from '../src/gateway/errors.js';
import { waitFor } from './helpers/wait.js';

const MiB = 1024 * 1024;
const md5 = (data: Uint8Array): string => createHash('md5').update(data).digest('hex');
/** What S3 gives a multipart object: md5 of the concatenated binary part MD5s, then -N. */
const expectedEtag = (parts: Uint8Array[]): string =>
  `"${createHash('md5').update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()))).digest('hex')}-${parts.length}"`;

// Purge every second, so aborted uploads' blocks are seen leaving the datanodes.
const server = await startServer({ args: ['--purge-interval', '1'] });
t.teardown(() => disposeServer(server));
const s3 = sdkClient(server);
const bucket = 'multipart';
await s3.send(new CreateBucketCommand({ Bucket: bucket }));

async function getBytes(client: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  const got = await client.send(new GetObjectCommand({ Bucket, Key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

async function createUpload(Key: string, Bucket = bucket): Promise<string> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  return UploadId!;
}

async function uploadPart(Key: string, UploadId: string, PartNumber: number, Body: Buffer, Bucket = bucket): Promise<string> {
  const { ETag } = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body }));
  return ETag!;
}

/** Block files (not their .crc/.meta companions) on every datanode of a server. */
function blockFiles(srv: TestServer): Set<string> {
  const found = new Set<string>();
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.block')) found.add(path);
    }
  };
  const root = join(srv.dataDir, 'datanodes');
  if (existsSync(root)) for (const dn of readdirSync(root)) walk(join(root, dn, 'containers'));
  return found;
}

t.test('SDK Upload of 20 MiB in 5 MiB parts: byte-identical, ETag md5-of-md5s-4, stored headers', async (t) => {
  const body = randomBytes(20 * MiB);
  const upload = new Upload({
    client: s3,
    params: { Bucket: bucket, Key: 'sdk/big.bin', Body: body, ContentType: 'application/x-big', Metadata: { colour: 'teal' }, Tagging: 'a=1&b=2' },
    partSize: 5 * MiB,
    queueSize: 4,
  });
  const result = await upload.done();
  const parts = [0, 1, 2, 3].map((i) => body.subarray(i * 5 * MiB, (i + 1) * 5 * MiB));
  t.equal(result.ETag, expectedEtag(parts), 'ETag = md5(concat part md5s)-4');
  t.match(result.ETag, /^"[0-9a-f]{32}-4"$/);

  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'sdk/big.bin' }));
  t.equal(head.ContentLength, body.length);
  t.equal(head.ETag, result.ETag);
  t.equal(head.ContentType, 'application/x-big', 'Content-Type given at CreateMultipartUpload');
  t.same(head.Metadata, { colour: 'teal' }, 'user metadata given at CreateMultipartUpload');
  t.equal(head.TagCount, 2, 'tags given at CreateMultipartUpload');
  t.ok((await getBytes(s3, bucket, 'sdk/big.bin')).equals(body), 'GET returns the same bytes');

  const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sdk/big.bin', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }));
  t.ok(Buffer.from(await ranged.Body!.transformToByteArray()).equals(body.subarray(5 * MiB - 10, 5 * MiB + 10)), 'a range across a part boundary');
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  t.same(uploads.Uploads ?? [], [], 'the completed upload is gone');
});

t.test('aws s3 cp of 20 MiB (multipart above 8 MiB) and back', async (t) => {
  const dir = tempDir('s3g-mp-cli-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const body = randomBytes(20 * MiB);
  await writeFile(join(dir, 'in.bin'), body);
  await aws(server, ['s3', 'cp', join(dir, 'in.bin'), `s3://${bucket}/cli/big.bin`, '--only-show-errors']);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cli/big.bin' }));
  t.equal(head.ContentLength, body.length);
  const chunks = [body.subarray(0, 8 * MiB), body.subarray(8 * MiB, 16 * MiB), body.subarray(16 * MiB)];
  t.equal(head.ETag, expectedEtag(chunks), 'three parts of 8, 8 and 4 MiB');
  await aws(server, ['s3', 'cp', `s3://${bucket}/cli/big.bin`, join(dir, 'out.bin'), '--only-show-errors']);
  t.ok((await readFile(join(dir, 'out.bin'))).equals(body), 'downloaded file is byte-identical');
});

t.test('NoSuchUpload: upload-part, complete, abort, list-parts', async (t) => {
  const bogus = 'f'.repeat(32);
  const notFound = { code: 'NoSuchUpload', status: 404 };
  t.same(await s3Failure(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'k', UploadId: bogus, PartNumber: 1, Body: Buffer.from('x') }))), notFound, 'UploadPart');
  t.same(
    await s3Failure(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'k', UploadId: bogus, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: `"${md5(Buffer.from('x'))}"` }] } }))),
    notFound,
    'CompleteMultipartUpload',
  );
  t.same(await s3Failure(s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'k', UploadId: bogus }))), notFound, 'AbortMultipartUpload');
  t.same(await s3Failure(s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'k', UploadId: bogus }))), notFound, 'ListParts');

  // An upload id names one key of one bucket.
  const uploadId = await createUpload('mine');
  t.same(await s3Failure(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'not-mine', UploadId: uploadId, PartNumber: 1, Body: Buffer.from('x') }))), notFound, 'the upload of another key');
  t.same(await s3Failure(s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'not-mine', UploadId: uploadId }))), notFound, 'ListParts of another key');
  t.same(await s3Failure(s3.send(new UploadPartCommand({ Bucket: 'no-such-bucket', Key: 'mine', UploadId: uploadId, PartNumber: 1, Body: Buffer.from('x') }))), { code: 'NoSuchBucket', status: 404 });
  // A PutObject's id is not an upload either, and a completed or aborted upload is gone.
  await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mine', UploadId: uploadId }));
  t.same(await s3Failure(s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mine', UploadId: uploadId }))), notFound, 'aborting twice');
  t.same(await s3Failure(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mine', UploadId: uploadId, PartNumber: 1, Body: Buffer.from('x') }))), notFound, 'UploadPart after abort');
});

t.test('InvalidArgument for part numbers 0 and 10001', async (t) => {
  const uploadId = await createUpload('numbers');
  t.teardown(() => s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'numbers', UploadId: uploadId })));
  for (const partNumber of ['0', '10001', '-1', 'abc']) {
    const res = await signedRequest(server, {
      method: 'PUT',
      path: `/${bucket}/numbers`,
      query: { partNumber, uploadId },
      headers: { 'content-length': '1' },
      body: Buffer.from('x'),
    });
    t.equal(res.status, 400, `partNumber=${partNumber}: 400`);
    t.equal(errorCode(res), 'InvalidArgument', `partNumber=${partNumber}: InvalidArgument`);
  }
  t.same(await s3Failure(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'numbers', UploadId: uploadId, PartNumber: 10001, Body: Buffer.from('x') }))), { code: 'InvalidArgument', status: 400 }, 'SDK, 10001');
  t.ok(await uploadPart('numbers', uploadId, 10000, Buffer.from('x')), '10000 is fine');
  t.ok(await uploadPart('numbers', uploadId, 1, Buffer.from('x')), '1 is fine');
  const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'numbers', UploadId: uploadId }));
  t.same(parts.Parts?.map((p) => p.PartNumber), [1, 10000]);
});

t.test('CompleteMultipartUpload errors: InvalidPart, InvalidPartOrder, EntityTooSmall, MalformedXML', async (t) => {
  const key = 'errors.bin';
  const uploadId = await createUpload(key);
  t.teardown(() => s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => undefined));
  const small = randomBytes(MiB);
  const big = randomBytes(MIN_PART_SIZE);
  const e1 = await uploadPart(key, uploadId, 1, small);
  const e2 = await uploadPart(key, uploadId, 2, small);
  const e3 = await uploadPart(key, uploadId, 3, big);
  t.equal(e1, `"${md5(small)}"`, 'part ETag is the quoted hex MD5');
  const complete = (Parts: { PartNumber: number; ETag: string }[]) =>
    s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts } }));

  t.same(await s3Failure(complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 4, ETag: e3 }])), { code: 'InvalidPart', status: 400 }, 'a part never uploaded');
  t.same(await s3Failure(complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 3, ETag: `"${md5(Buffer.from('other'))}"` }])), { code: 'InvalidPart', status: 400 }, 'a wrong ETag');
  t.same(await s3Failure(complete([{ PartNumber: 2, ETag: e2 }, { PartNumber: 1, ETag: e1 }])), { code: 'InvalidPartOrder', status: 400 }, 'descending');
  t.same(await s3Failure(complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 1, ETag: e1 }])), { code: 'InvalidPartOrder', status: 400 }, 'repeated');
  t.same(await s3Failure(complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 3, ETag: e3 }])), { code: 'EntityTooSmall', status: 400 }, 'a 1 MiB part before the last');
  t.same(await s3Failure(complete([])), { code: 'MalformedXML', status: 400 }, 'no parts');

  for (const [what, xml] of [
    ['not well-formed', '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>'],
    ['not XML', 'hello'],
    ['another document', '<Delete><Object><Key>k</Key></Object></Delete>'],
    ['a part without ETag', '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>'],
    ['a non-numeric part number', `<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>${e1}</ETag></Part></CompleteMultipartUpload>`],
    ['an entity declaration', `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "${'A'.repeat(100)}">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&a;</ETag></Part></CompleteMultipartUpload>`],
  ] as const) {
    const body = Buffer.from(xml);
    const res = await signedRequest(server, {
      method: 'POST',
      path: `/${bucket}/${key}`,
      query: { uploadId },
      headers: { 'content-length': String(body.length) },
      body,
      payloadHash: createHash('sha256').update(body).digest('hex'),
    });
    t.equal(res.status, 400, `${what}: 400`);
    t.equal(errorCode(res), 'MalformedXML', `${what}: MalformedXML`);
  }
  const body = Buffer.from(`<CompleteMultipartUpload><Part><PartNumber>3</PartNumber><ETag>${e3}</ETag></Part></CompleteMultipartUpload>`);
  const mismatch = await signedRequest(server, {
    method: 'POST', path: `/${bucket}/${key}`, query: { uploadId }, headers: { 'content-length': String(body.length) }, body, payloadHash: 'a'.repeat(64),
  });
  t.equal(errorCode(mismatch), 'XAmzContentSHA256Mismatch', 'the signed payload hash of the document is checked');

  const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  t.same(listed.Parts?.map((p) => p.PartNumber), [1, 2, 3], 'failed completions leave the upload intact');
  // The last part may be small; a single small part is a valid object.
  const done = await complete([{ PartNumber: 2, ETag: e2 }]);
  t.equal(done.ETag, expectedEtag([small]));
  t.ok((await getBytes(s3, bucket, key)).equals(small));
});

t.test('UploadPart verifies Content-MD5 and keeps no part on a mismatch', async (t) => {
  const key = 'digest.bin';
  const uploadId = await createUpload(key);
  t.teardown(() => s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })));
  const body = randomBytes(1000);
  const wrong = createHash('md5').update('something else').digest('base64');
  t.same(await s3Failure(s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: 1, Body: body, ContentMD5: wrong }))), { code: 'BadDigest', status: 400 });
  const res = await signedRequest(server, {
    method: 'PUT', path: `/${bucket}/${key}`, query: { partNumber: '1', uploadId }, headers: { 'content-length': String(body.length) }, body, payloadHash: 'b'.repeat(64),
  });
  t.equal(errorCode(res), 'XAmzContentSHA256Mismatch', 'the signed SHA-256 is checked');
  const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  t.same(listed.Parts ?? [], [], 'no part recorded');
  const right = createHash('md5').update(body).digest('base64');
  const ok = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: 1, Body: body, ContentMD5: right }));
  t.equal(ok.ETag, `"${md5(body)}"`);
});

t.test('ListParts pagination', async (t) => {
  const key = 'listparts.bin';
  const uploadId = await createUpload(key);
  t.teardown(() => s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })));
  const bodies = new Map<number, Buffer>();
  for (const n of [1, 2, 3, 5, 8]) {
    bodies.set(n, randomBytes(100 + n));
    await uploadPart(key, uploadId, n, bodies.get(n)!);
  }
  const first = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MaxParts: 2 }));
  t.equal(first.IsTruncated, true);
  t.equal(first.MaxParts, 2);
  t.equal(first.NextPartNumberMarker, '2');
  t.same(first.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag]), [1, 2].map((n) => [n, 100 + n, `"${md5(bodies.get(n)!)}"`]));
  t.ok(first.Parts?.every((p) => p.LastModified instanceof Date && Math.abs(p.LastModified.getTime() - Date.now()) < 60_000), 'LastModified');
  t.equal(first.Bucket, bucket);
  t.equal(first.Key, key);
  t.equal(first.UploadId, uploadId);
  t.equal(first.StorageClass, 'STANDARD');
  t.match(first.Owner?.ID, /^[0-9a-f]{64}$/);
  t.equal(first.Initiator?.ID, first.Owner?.ID, 'initiated by the bucket owner');
  t.equal(first.Initiator?.DisplayName, 'admin');

  const second = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MaxParts: 2, PartNumberMarker: first.NextPartNumberMarker }));
  t.same(second.Parts?.map((p) => p.PartNumber), [3, 5]);
  t.equal(second.IsTruncated, true);
  t.equal(second.PartNumberMarker, '2');
  const third = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MaxParts: 2, PartNumberMarker: second.NextPartNumberMarker }));
  t.same(third.Parts?.map((p) => p.PartNumber), [8]);
  t.equal(third.IsTruncated, false);
  const all = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  t.equal(all.MaxParts, 1000, 'max-parts defaults to 1000');
  t.same(all.Parts?.map((p) => p.PartNumber), [1, 2, 3, 5, 8]);
  t.equal(all.IsTruncated, false);
  const bad = await signedRequest(server, { method: 'GET', path: `/${bucket}/${key}`, query: { uploadId, 'max-parts': 'many' } });
  t.equal(errorCode(bad), 'InvalidArgument', 'max-parts must be an integer');
});

t.test('ListMultipartUploads pagination, prefix and delimiter', async (t) => {
  const b = 'mpu-listing';
  await s3.send(new CreateBucketCommand({ Bucket: b }));
  const keys = ['a/1', 'a/2', 'b', 'c', 'c', 'd/x/y'];
  const created: [string, string][] = [];
  for (const key of keys) created.push([key, await createUpload(key, b)]);
  t.teardown(async () => {
    for (const [Key, UploadId] of created) await s3.send(new AbortMultipartUploadCommand({ Bucket: b, Key, UploadId })).catch(() => undefined);
    await s3.send(new DeleteBucketCommand({ Bucket: b }));
  });
  const expected = [...created].sort(([k1, u1], [k2, u2]) => Buffer.compare(Buffer.from(k1), Buffer.from(k2)) || Buffer.compare(Buffer.from(u1), Buffer.from(u2)));

  const all = await s3.send(new ListMultipartUploadsCommand({ Bucket: b }));
  t.same(all.Uploads?.map((u) => [u.Key, u.UploadId]), expected, 'by key, then upload id');
  t.equal(all.IsTruncated, false);
  t.equal(all.MaxUploads, 1000);
  t.equal(all.Bucket, b);
  const first = all.Uploads![0]!;
  t.equal(first.StorageClass, 'STANDARD');
  t.ok(first.Initiated instanceof Date && Math.abs(first.Initiated.getTime() - Date.now()) < 60_000, 'Initiated');
  t.match(first.Owner?.ID, /^[0-9a-f]{64}$/);
  t.equal(first.Initiator?.DisplayName, 'admin');

  const pages: [string, string][][] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: b, MaxUploads: 2, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
    pages.push((page.Uploads ?? []).map((u) => [u.Key!, u.UploadId!]));
    if (!page.IsTruncated) break;
    t.equal(page.NextKeyMarker, page.Uploads!.at(-1)!.Key, 'NextKeyMarker is the last key');
    t.equal(page.NextUploadIdMarker, page.Uploads!.at(-1)!.UploadId, 'NextUploadIdMarker is the last upload id');
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
    if (pages.length > 10) throw new Error('pagination does not end');
  }
  t.same(pages.map((p) => p.length), [2, 2, 2], 'three pages of two');
  t.same(pages.flat(), expected, 'the pages add up to the whole list, splitting the two uploads of c');

  const cUploads = expected.filter(([k]) => k === 'c');
  const afterC = await s3.send(new ListMultipartUploadsCommand({ Bucket: b, KeyMarker: 'c' }));
  t.same(afterC.Uploads?.map((u) => u.Key), ['d/x/y'], 'key-marker alone skips every upload of that key');
  const inC = await s3.send(new ListMultipartUploadsCommand({ Bucket: b, KeyMarker: 'c', UploadIdMarker: cUploads[0]![1] }));
  t.same(inC.Uploads?.map((u) => [u.Key, u.UploadId]), [cUploads[1], expected.at(-1)], 'with upload-id-marker it resumes inside the key');

  const grouped = await s3.send(new ListMultipartUploadsCommand({ Bucket: b, Delimiter: '/' }));
  t.same(grouped.Uploads?.map((u) => u.Key), ['b', 'c', 'c']);
  t.same(grouped.CommonPrefixes?.map((p) => p.Prefix), ['a/', 'd/']);
  t.equal(grouped.Delimiter, '/');
  const prefixed = await s3.send(new ListMultipartUploadsCommand({ Bucket: b, Prefix: 'a/' }));
  t.same(prefixed.Uploads?.map((u) => u.Key), ['a/1', 'a/2']);
  t.equal(prefixed.Prefix, 'a/');
  const nested = await s3.send(new ListMultipartUploadsCommand({ Bucket: b, Prefix: 'd/', Delimiter: '/' }));
  t.same(nested.Uploads ?? [], []);
  t.same(nested.CommonPrefixes?.map((p) => p.Prefix), ['d/x/']);

  // Paging through a mix of uploads and common prefixes, one entry at a time.
  const seen: string[] = [];
  keyMarker = undefined;
  uploadIdMarker = undefined;
  for (let i = 0; i < 10; i++) {
    const page: ListMultipartUploadsCommandOutput = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: b, Delimiter: '/', MaxUploads: 1, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
    );
    seen.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix!), ...(page.Uploads ?? []).map((u) => u.Key!));
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker || undefined;
  }
  t.same(seen, ['a/', 'b', 'c', 'c', 'd/'], 'one entry per page, prefixes once each');
});

t.test('abort removes the upload and its blocks are reclaimed', async (t) => {
  const key = 'aborted.bin';
  const before = blockFiles(server);
  const uploadId = await createUpload(key);
  await uploadPart(key, uploadId, 1, randomBytes(2 * MiB));
  await uploadPart(key, uploadId, 2, randomBytes(MiB));
  await uploadPart(key, uploadId, 1, randomBytes(MiB)); // replaces part 1; the first one is garbage at once
  const during = blockFiles(server);
  const added = [...during].filter((f) => !before.has(f));
  t.ok(added.length >= 2, `the parts wrote block files (${added.length})`);

  const res = await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  t.equal(res.$metadata.httpStatusCode, 204);
  t.same(await s3Failure(s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))), { code: 'NoSuchUpload', status: 404 });
  const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
  t.same(listed.Uploads ?? [], [], 'not listed any more');
  await waitFor('the aborted parts\' block files to be deleted', () => {
    const now = blockFiles(server);
    return added.every((f) => !now.has(f));
  });
  t.pass('every block file of the aborted upload is gone');
});

t.test('a bucket with an unfinished upload cannot be deleted', async (t) => {
  const b = 'mpu-busy';
  await s3.send(new CreateBucketCommand({ Bucket: b }));
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: b, Key: 'pending' }));
  t.same(await s3Failure(s3.send(new DeleteBucketCommand({ Bucket: b }))), { code: 'BucketNotEmpty', status: 409 });
  await s3.send(new AbortMultipartUploadCommand({ Bucket: b, Key: 'pending', UploadId }));
  const deleted = await s3.send(new DeleteBucketCommand({ Bucket: b }));
  t.equal(deleted.$metadata.httpStatusCode, 204, 'deletable once the upload is aborted');
});

t.test('re-uploading a part replaces it', async (t) => {
  const key = 'replaced.bin';
  const uploadId = await createUpload(key);
  const first = randomBytes(MIN_PART_SIZE);
  const second = randomBytes(MIN_PART_SIZE);
  const tail = randomBytes(1234);
  const oldEtag = await uploadPart(key, uploadId, 1, first);
  const newEtag = await uploadPart(key, uploadId, 1, second);
  const tailEtag = await uploadPart(key, uploadId, 2, tail);
  t.not(oldEtag, newEtag);
  const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  t.same(listed.Parts?.map((p) => [p.PartNumber, p.ETag, p.Size]), [[1, newEtag, MIN_PART_SIZE], [2, tailEtag, 1234]], 'one part 1: the new one');
  const complete = (etag: string) =>
    s3.send(new CompleteMultipartUploadCommand({
      Bucket: bucket, Key: key, UploadId: uploadId,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: etag }, { PartNumber: 2, ETag: tailEtag }] },
    }));
  t.same(await s3Failure(complete(oldEtag)), { code: 'InvalidPart', status: 400 }, 'the replaced ETag no longer completes');
  const done = await complete(newEtag);
  t.equal(done.ETag, expectedEtag([second, tail]));
  t.ok((await getBytes(s3, bucket, key)).equals(Buffer.concat([second, tail])), 'the object holds the second upload of part 1');
});

t.test('completing with a subset of parts', async (t) => {
  const key = 'subset.bin';
  const uploadId = await createUpload(key);
  const parts = [randomBytes(MIN_PART_SIZE), randomBytes(MIN_PART_SIZE + 1), randomBytes(MIN_PART_SIZE + 2), randomBytes(777)];
  const etags: string[] = [];
  for (const [i, body] of parts.entries()) etags.push(await uploadPart(key, uploadId, i + 1, body));
  const done = await s3.send(new CompleteMultipartUploadCommand({
    Bucket: bucket, Key: key, UploadId: uploadId,
    MultipartUpload: { Parts: [{ PartNumber: 1, ETag: etags[0] }, { PartNumber: 3, ETag: etags[2] }, { PartNumber: 4, ETag: etags[3] }] },
  }));
  t.equal(done.ETag, expectedEtag([parts[0]!, parts[2]!, parts[3]!]));
  t.equal(done.Bucket, bucket);
  t.equal(done.Key, key);
  t.equal(done.Location, `${server.url}/${bucket}/${key}`);
  const got = await getBytes(s3, bucket, key);
  t.ok(got.equals(Buffer.concat([parts[0]!, parts[2]!, parts[3]!])), 'parts 1, 3 and 4, in order; part 2 left out');
  t.same(await s3Failure(s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))), { code: 'NoSuchUpload', status: 404 }, 'the upload is gone');
  t.same(
    await s3Failure(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: etags[0] }] } }))),
    { code: 'NoSuchUpload', status: 404 },
    'completing twice',
  );
});

t.test('conditional completion: If-None-Match: * and If-Match', async (t) => {
  const key = 'conditional.bin';
  const existing = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from('v1') }));
  const uploadId = await createUpload(key);
  const body = randomBytes(100);
  const etag = await uploadPart(key, uploadId, 1, body);
  const complete = (extra: { IfNoneMatch?: string; IfMatch?: string }) =>
    s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: etag }] }, ...extra }));
  t.same(await s3Failure(complete({ IfNoneMatch: '*' })), { code: 'PreconditionFailed', status: 412 }, 'If-None-Match: * on an existing key');
  t.same(await s3Failure(complete({ IfMatch: '"0123456789abcdef0123456789abcdef"' })), { code: 'PreconditionFailed', status: 412 }, 'If-Match with another ETag');
  t.ok((await getBytes(s3, bucket, key)).equals(Buffer.from('v1')), 'the object is unchanged');
  const done = await complete({ IfMatch: existing.ETag! });
  t.equal(done.ETag, expectedEtag([body]), 'If-Match with the current ETag completes the upload it kept');
  t.ok((await getBytes(s3, bucket, key)).equals(body));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
});

t.test('the aws CLI s3api: create, upload-part with CRC32, list, complete', async (t) => {
  const dir = tempDir('s3g-mp-api-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const key = 'api/two.bin';
  const a = randomBytes(MIN_PART_SIZE);
  const b = randomBytes(4321);
  await writeFile(join(dir, 'a'), a);
  await writeFile(join(dir, 'b'), b);
  const created = JSON.parse(await aws(server, ['s3api', 'create-multipart-upload', '--bucket', bucket, '--key', key, '--checksum-algorithm', 'CRC32'])) as { UploadId: string; ChecksumAlgorithm?: string };
  t.equal(created.ChecksumAlgorithm, 'CRC32');
  const parts = [];
  for (const [n, file] of [[1, 'a'], [2, 'b']] as const) {
    const out = JSON.parse(await aws(server, ['s3api', 'upload-part', '--bucket', bucket, '--key', key, '--upload-id', created.UploadId, '--part-number', String(n), '--body', join(dir, file), '--checksum-algorithm', 'CRC32'])) as { ETag: string; ChecksumCRC32?: string };
    t.match(out.ChecksumCRC32, /^[A-Za-z0-9+/]{6}==$/, `part ${n} CRC32 echoed`);
    parts.push({ PartNumber: n, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 });
  }
  const listed = JSON.parse(await aws(server, ['s3api', 'list-parts', '--bucket', bucket, '--key', key, '--upload-id', created.UploadId])) as { Parts: { ChecksumCRC32?: string }[] };
  t.same(listed.Parts.map((p) => p.ChecksumCRC32), parts.map((p) => p.ChecksumCRC32), 'ListParts carries the part checksums');
  await writeFile(join(dir, 'parts.json'), JSON.stringify({ Parts: parts }));
  const done = JSON.parse(await aws(server, ['s3api', 'complete-multipart-upload', '--bucket', bucket, '--key', key, '--upload-id', created.UploadId, '--multipart-upload', `file://${join(dir, 'parts.json')}`])) as { ETag: string; ChecksumCRC32?: string };
  t.equal(done.ETag, expectedEtag([a, b]));
  t.match(done.ChecksumCRC32, /^[A-Za-z0-9+/]{6}==-2$/, 'a COMPOSITE CRC32 of the object');
  t.ok((await getBytes(s3, bucket, key)).equals(Buffer.concat([a, b])));
});

t.test('partRange, parsePartNumber, multipartEtag, parseCompleteRequest', async (t) => {
  const object = (size: number, parts?: { number: number; size: number }[]): ObjectRecord => ({
    bucketId: 1, key: 'k', objectId: 'o', size, etag: 'e', modifiedAt: 0, blocks: [], attributes: parts ? { headers: {}, userMetadata: {}, parts } : {},
  });
  const mp = object(15, [{ number: 1, size: 5 }, { number: 3, size: 6 }, { number: 7, size: 4 }]);
  t.same(partRange(mp, 1), { start: 0, end: 4, partsCount: 3 });
  t.same(partRange(mp, 2), { start: 5, end: 10, partsCount: 3 }, 'the N-th part of the object, whatever its upload number');
  t.same(partRange(mp, 3), { start: 11, end: 14, partsCount: 3 });
  const codeOf = (fn: () => unknown): [string, number] | undefined => {
    try {
      fn();
    } catch (error) {
      return error instanceof S3Error ? [error.code, error.status] : undefined;
    }
    return undefined;
  };
  t.same(codeOf(() => partRange(mp, 4)), ['InvalidPartNumber', 416], 'past the last part');
  t.same(codeOf(() => partRange(mp, 0)), ['InvalidArgument', 400]);
  t.same(codeOf(() => partRange(mp, 10001)), ['InvalidArgument', 400]);
  t.same(codeOf(() => partRange(mp, 1.5)), ['InvalidArgument', 400]);
  t.same(partRange(object(9), 1), { start: 0, end: 8, partsCount: 1 }, 'a single-PUT object is one part');
  t.same(codeOf(() => partRange(object(9), 2)), ['InvalidPartNumber', 416]);
  t.equal(parsePartNumber('10000'), 10000);
  t.same(codeOf(() => parsePartNumber(null)), ['InvalidArgument', 400]);
  t.same(codeOf(() => parsePartNumber('01a')), ['InvalidArgument', 400]);

  const one = Buffer.from('one');
  const two = Buffer.from('two');
  t.equal(`"${multipartEtag([md5(one), md5(two)])}"`, expectedEtag([one, two]));
  const parsed = parseCompleteRequest(Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    '<Part><ETag>&quot;AABB&quot;</ETag><PartNumber>1</PartNumber></Part>' +
    '<Part><PartNumber> 2 </PartNumber><ETag>"ccdd"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></CompleteMultipartUpload>',
  ));
  t.same(parsed, [
    { partNumber: 1, etag: 'aabb', checksums: {} },
    { partNumber: 2, etag: 'ccdd', checksums: { crc32: 'AAAAAA==' } },
  ], 'namespace, escaped or bare quotes, any element order, part checksums');
});

t.test('multipart objects and unfinished uploads survive a restart', async (t) => {
  const dataDir = tempDir('s3g-mp-restart-');
  let srv = await startServer({ dataDir });
  t.teardown(() => disposeServer(srv));
  let client = sdkClient(srv);
  await client.send(new CreateBucketCommand({ Bucket: 'durable' }));
  const body = randomBytes(11 * MiB);
  const done = await new Upload({ client, params: { Bucket: 'durable', Key: 'whole.bin', Body: body }, partSize: 5 * MiB }).done();
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'durable', Key: 'later.bin' }));
  const p1 = randomBytes(MIN_PART_SIZE);
  const p2 = randomBytes(10);
  const e1 = (await client.send(new UploadPartCommand({ Bucket: 'durable', Key: 'later.bin', UploadId, PartNumber: 1, Body: p1 }))).ETag!;
  const e2 = (await client.send(new UploadPartCommand({ Bucket: 'durable', Key: 'later.bin', UploadId, PartNumber: 2, Body: p2 }))).ETag!;
  t.equal(await srv.stop(), 0, 'clean shutdown');

  srv = await startServer({ dataDir });
  client = sdkClient(srv);
  const head = await client.send(new HeadObjectCommand({ Bucket: 'durable', Key: 'whole.bin' }));
  t.equal(head.ETag, done.ETag, 'same ETag after restart');
  t.ok((await getBytes(client, 'durable', 'whole.bin')).equals(body), 'same bytes after restart');
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: 'durable' }));
  t.same(uploads.Uploads?.map((u) => [u.Key, u.UploadId]), [['later.bin', UploadId]], 'the unfinished upload is still listed');
  const parts = await client.send(new ListPartsCommand({ Bucket: 'durable', Key: 'later.bin', UploadId }));
  t.same(parts.Parts?.map((p) => [p.PartNumber, p.ETag]), [[1, e1], [2, e2]], 'with its parts');
  await client.send(new CompleteMultipartUploadCommand({
    Bucket: 'durable', Key: 'later.bin', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] },
  }));
  t.ok((await getBytes(client, 'durable', 'later.bin')).equals(Buffer.concat([p1, p2])), 'and it completes after the restart');
});
