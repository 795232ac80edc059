// FSO buckets over S3: created by default with `default-bucket-layout fso`, keys normalised,
// directories as entries (markers, DirectoryNotEmpty), the rest of the S3 surface unchanged,
// and the admin rename of a directory.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { disposeServer, S3G, startServer } from './helpers/server.js';
import { s3Failure, sdkClient } from './helpers/clients.js';
import { errorCode, signedRequest } from './helpers/raw.js';

const run = promisify(execFile);
const server = await startServer({ args: ['--default-bucket-layout', 'fso'] });
t.teardown(() => disposeServer(server));
const s3 = sdkClient(server);
const admin = async (...args: string[]) => JSON.parse((await run(S3G, ['admin', '--data', server.dataDir, ...args, '--json'])).stdout);
const keysOf = async (bucket: string, prefix?: string, delimiter?: string) => {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter }));
  return { keys: (page.Contents ?? []).map((o) => o.Key), prefixes: (page.CommonPrefixes ?? []).map((p) => p.Prefix) };
};
const text = async (bucket: string, key: string) => (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();

t.test('default-bucket-layout: CreateBucket makes FSO buckets; admin bucket create chooses', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'by-s3' }));
  await admin('bucket', 'create', 'by-admin', '--layout', 'obs');
  const buckets = await admin('bucket', 'list');
  t.same(buckets.map((b: { name: string; layout: string }) => [b.name, b.layout]), [['by-admin', 'OBS'], ['by-s3', 'FSO']]);
  await t.rejects(run(S3G, ['admin', '--data', server.dataDir, 'bucket', 'create', 'bad', '--layout', 'tree']), 'an unknown layout is refused');
});

t.test('keys are normalised; . and .. segments are InvalidArgument', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'norm' }));
  const put = await signedRequest(server, { method: 'PUT', path: '/norm/a//b///c', body: Buffer.from('abc') });
  t.equal(put.status, 200, 'a//b///c is accepted');
  t.equal(await text('norm', 'a/b/c'), 'abc', 'and stored as a/b/c');
  t.same(await keysOf('norm'), { keys: ['a/b/c'], prefixes: [] });
  for (const key of ['a/./b', 'a/../b', '..']) {
    const refused = await signedRequest(server, { method: 'PUT', path: `/norm/${key}`, body: Buffer.from('x') });
    t.same([refused.status, errorCode(refused)], [400, 'InvalidArgument'], `PUT ${key}`);
    const got = await signedRequest(server, { method: 'GET', path: `/norm/${key}` });
    t.same([got.status, errorCode(got)], [400, 'InvalidArgument'], `GET ${key}`);
  }
  const upload = await signedRequest(server, { method: 'POST', path: '/norm/x/../y', query: { uploads: '' } });
  t.same([upload.status, errorCode(upload)], [400, 'InvalidArgument'], 'a multipart upload is refused before it starts');
});

t.test('directories: markers, listing one directory, DirectoryNotEmpty', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'dirs' }));
  await s3.send(new PutObjectCommand({ Bucket: 'dirs', Key: 'empty/', Body: '' }));
  const marker = await s3.send(new HeadObjectCommand({ Bucket: 'dirs', Key: 'empty/' }));
  t.equal(marker.ContentLength, 0, 'a zero-byte PUT of empty/ is an empty directory, answered as an object');
  for (const key of ['photos/2024/a.jpg', 'photos/2024/b.jpg', 'photos/2025/c.jpg', 'photos/index', 'photos', 'top']) {
    await s3.send(new PutObjectCommand({ Bucket: 'dirs', Key: key, Body: key }));
  }
  t.same(await keysOf('dirs', '', '/'), { keys: ['photos', 'top'], prefixes: ['empty/', 'photos/'] }, 'the root: its files and its directories');
  t.same(await keysOf('dirs', 'photos/', '/'), { keys: ['photos/index'], prefixes: ['photos/2024/', 'photos/2025/'] }, 'one directory');
  t.same((await keysOf('dirs')).keys, ['empty/', 'photos', 'photos/2024/a.jpg', 'photos/2024/b.jpg', 'photos/2025/c.jpg', 'photos/index', 'top'], 'depth first, in key order');
  t.same(await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'dirs', Key: 'photos/2024/' }))), { code: 'NotFound', status: 404 }, 'an implicit directory is no object, as in OBS');

  t.same(await s3Failure(s3.send(new DeleteObjectCommand({ Bucket: 'dirs', Key: 'photos/2024/' }))), { code: 'DirectoryNotEmpty', status: 409 });
  const multi = await s3.send(new DeleteObjectsCommand({ Bucket: 'dirs', Delete: { Objects: [{ Key: 'photos/' }, { Key: 'top' }] } }));
  t.same(multi.Errors?.map((e) => [e.Key, e.Code]), [['photos/', 'DirectoryNotEmpty']], 'DeleteObjects reports the directory');
  t.same(multi.Deleted?.map((d) => d.Key), ['top']);
  await s3.send(new DeleteObjectCommand({ Bucket: 'dirs', Key: 'photos/2025/c.jpg' }));
  t.same((await keysOf('dirs', 'photos/', '/')).prefixes, ['photos/2024/'], 'a directory made by a PUT goes with its last file');
  await s3.send(new DeleteObjectCommand({ Bucket: 'dirs', Key: 'empty/' }));
  t.same(await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'dirs', Key: 'empty/' }))), { code: 'NotFound', status: 404 }, 'an empty directory is deleted');
});

t.test('multipart, copy, tagging and conditional writes in an FSO bucket', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'surface' }));
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'surface', Key: 'mp/x/y' }));
  const part = await s3.send(new UploadPartCommand({ Bucket: 'surface', Key: 'mp/x/y', UploadId, PartNumber: 1, Body: 'multipart body' }));
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'surface', Key: 'mp/x/y', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
  t.equal(await text('surface', 'mp/x/y'), 'multipart body');

  await s3.send(new CopyObjectCommand({ Bucket: 'surface', Key: 'copies/deep/y', CopySource: 'surface/mp/x/y' }));
  t.equal(await text('surface', 'copies/deep/y'), 'multipart body', 'copied into new directories');

  await s3.send(new PutObjectTaggingCommand({ Bucket: 'surface', Key: 'copies/deep/y', Tagging: { TagSet: [{ Key: 'k', Value: 'v' }] } }));
  t.same((await s3.send(new GetObjectTaggingCommand({ Bucket: 'surface', Key: 'copies/deep/y' }))).TagSet, [{ Key: 'k', Value: 'v' }]);

  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'surface', Key: 'mp/x/y', Body: 'x', IfNoneMatch: '*' }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'surface', Key: 'mp/x/new', Body: 'x', IfMatch: '"abc"' }))), { code: 'NoSuchKey', status: 404 });
  await s3.send(new PutObjectCommand({ Bucket: 'surface', Key: 'mp/x/new', Body: 'x', IfNoneMatch: '*' }));
  t.equal(await text('surface', 'mp/x/new'), 'x');
});

t.test('admin rename moves a directory and everything under it', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'moves' }));
  for (const key of ['logs/a', 'logs/2024/b', 'logs/2024/c/d', 'other']) await s3.send(new PutObjectCommand({ Bucket: 'moves', Key: key, Body: key }));
  const renamed = await admin('rename', 'moves/logs', 'moves/archive/logs');
  t.match(renamed, { bucket: 'moves', from: 'logs', to: 'archive/logs', moved: 'directory' });
  t.same((await keysOf('moves')).keys, ['archive/logs/2024/b', 'archive/logs/2024/c/d', 'archive/logs/a', 'other']);
  t.equal(await text('moves', 'archive/logs/2024/c/d'), 'logs/2024/c/d', 'data follows the new name');
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'moves', Key: 'logs/a' }))), { code: 'NoSuchKey', status: 404 });
  await t.rejects(run(S3G, ['admin', '--data', server.dataDir, 'rename', 'moves/logs', 'moves/x']), 'a source that is gone');
  await t.rejects(run(S3G, ['admin', '--data', server.dataDir, 'rename', 'moves/other', 'by-s3/other']), 'across buckets');
});
