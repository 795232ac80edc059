// The first S3 slice against a real server: buckets, objects, ranges, and the errors AWS sends.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { disposeServer, startServer } from './helpers/server.js';
import { s3Failure, sdkClient } from './helpers/clients.js';
import { errorCode, send, signedRequest } from './helpers/raw.js';

const server = await startServer();
t.teardown(() => disposeServer(server));
const s3 = sdkClient(server);
const bucket = 'basics';

t.test('buckets: create, list, head, duplicate', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const list = await s3.send(new ListBucketsCommand({}));
  t.ok(list.Buckets?.some((b) => b.Name === bucket));
  t.equal(list.Owner?.DisplayName, 'admin');
  t.match(list.Owner?.ID, /^[0-9a-f]{64}$/);
  const head = await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  t.equal(head.$metadata.httpStatusCode, 200);
  t.same(await s3Failure(s3.send(new CreateBucketCommand({ Bucket: bucket }))), { code: 'BucketAlreadyOwnedByYou', status: 409 });
  t.same(await s3Failure(s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' }))), { code: 'InvalidBucketName', status: 400 });
  t.same(await s3Failure(s3.send(new HeadBucketCommand({ Bucket: 'no-such-bucket' }))), { code: 'NotFound', status: 404 });
});

t.test('objects: put, head, get, ranges, delete', async (t) => {
  const body = randomBytes(300_000);
  const md5 = createHash('md5').update(body).digest('hex');
  const put = await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: 'a/b c+é.bin', Body: body, ContentType: 'application/x-test', Metadata: { color: 'blue' } }),
  );
  t.equal(put.ETag, `"${md5}"`);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a/b c+é.bin' }));
  t.equal(head.ContentLength, body.length);
  t.equal(head.ContentType, 'application/x-test');
  t.same(head.Metadata, { color: 'blue' });
  const get = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/b c+é.bin' }));
  t.ok(Buffer.from(await get.Body!.transformToByteArray()).equals(body));
  for (const [range, start, end] of [
    ['bytes=0-0', 0, 0],
    ['bytes=1000-70000', 1000, 70000],
    ['bytes=299990-', 299990, 299999],
    ['bytes=-17', 299983, 299999],
    ['bytes=299000-999999', 299000, 299999],
  ] as const) {
    const part = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/b c+é.bin', Range: range }));
    t.equal(part.$metadata.httpStatusCode, 206, range);
    t.equal(part.ContentRange, `bytes ${start}-${end}/${body.length}`, range);
    t.ok(Buffer.from(await part.Body!.transformToByteArray()).equals(body.subarray(start, end + 1)), range);
  }
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/b c+é.bin', Range: 'bytes=300000-' }))), {
    code: 'InvalidRange',
    status: 416,
  });
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  t.same(listed.Contents?.map((o) => [o.Key, o.Size, o.ETag]), [['a/b c+é.bin', body.length, `"${md5}"`]]);

  const empty = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'empty', Body: Buffer.alloc(0) }));
  t.equal(empty.ETag, '"d41d8cd98f00b204e9800998ecf8427e"');
  const emptyGet = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'empty' }));
  t.equal((await emptyGet.Body!.transformToByteArray()).length, 0);

  t.same(await s3Failure(s3.send(new DeleteBucketCommand({ Bucket: bucket }))), { code: 'BucketNotEmpty', status: 409 });
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'a/b c+é.bin' }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'empty' }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'never-existed' }));
  t.same(await s3Failure(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a/b c+é.bin' }))), { code: 'NotFound', status: 404 });
});

t.test('errors carry the AWS code and status', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'errors' }));
  const wrongSecret = sdkClient(server, { accessKeyId: 'AKIAS3GTESTADMIN0001', secretAccessKey: 'not-the-secret' });
  t.same(await s3Failure(wrongSecret.send(new ListBucketsCommand({}))), { code: 'SignatureDoesNotMatch', status: 403 });
  const unknownKey = sdkClient(server, { accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: 'x' });
  t.same(await s3Failure(unknownKey.send(new ListBucketsCommand({}))), { code: 'InvalidAccessKeyId', status: 403 });
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'k' }))), { code: 'NoSuchBucket', status: 404 });
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'errors', Key: 'missing' }))), { code: 'NoSuchKey', status: 404 });
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'no-such-bucket', Key: 'k', Body: 'x' }))), { code: 'NoSuchBucket', status: 404 });

  const anonymous = await send(server, 'GET', '/', {});
  t.equal(anonymous.status, 403);
  t.equal(errorCode(anonymous), 'AccessDenied');
  t.ok(anonymous.headers['x-amz-request-id'], 'every response carries x-amz-request-id');
});

t.test('Content-MD5 and x-amz-content-sha256 mismatches commit nothing', async (t) => {
  const body = randomBytes(5000);
  const otherMd5 = createHash('md5').update('other').digest('base64');
  const badMd5 = await signedRequest(server, {
    method: 'PUT',
    path: '/errors/md5',
    headers: { 'content-md5': otherMd5, 'content-length': String(body.length) },
    body,
  });
  t.equal(badMd5.status, 400);
  t.equal(errorCode(badMd5), 'BadDigest');
  const malformedMd5 = await signedRequest(server, {
    method: 'PUT',
    path: '/errors/md5',
    headers: { 'content-md5': 'nope', 'content-length': String(body.length) },
    body,
  });
  t.equal(errorCode(malformedMd5), 'InvalidDigest');

  const wrongSha = createHash('sha256').update('something else').digest('hex');
  const badSha = await signedRequest(server, {
    method: 'PUT',
    path: '/errors/sha',
    headers: { 'content-length': String(body.length) },
    payloadHash: wrongSha,
    body,
  });
  t.equal(badSha.status, 400);
  t.equal(errorCode(badSha), 'XAmzContentSHA256Mismatch');
  const rightSha = createHash('sha256').update(body).digest('hex');
  const good = await signedRequest(server, {
    method: 'PUT',
    path: '/errors/sha',
    headers: { 'content-length': String(body.length), 'content-md5': createHash('md5').update(body).digest('base64') },
    payloadHash: rightSha,
    body,
  });
  t.equal(good.status, 200);
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'errors' }));
  t.same(listed.Contents?.map((o) => o.Key), ['sha'], 'only the verified upload is visible');

  const noLength = await signedRequest(server, { method: 'PUT', path: '/errors/nolength', headers: { 'transfer-encoding': 'chunked' }, body: (async function* () { yield body; })() });
  t.equal(noLength.status, 411);
  t.equal(errorCode(noLength), 'MissingContentLength');
});
