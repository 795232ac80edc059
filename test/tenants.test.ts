// Tenant isolation over real sockets (SQLite): a user reaches only its own tenant's volume.
// Every operation class aimed at another tenant's bucket (bucket, object, list, copy,
// multipart) is 403 AccessDenied and changes nothing; names are unique per volume only.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { S3G, disposeServer, startServer } from './helpers/server.js';
import { errorCode, signedRequest, signer, type RawRequest, type RawResponse } from './helpers/raw.js';

const run = promisify(execFile);
const server = await startServer();
t.teardown(() => disposeServer(server));

async function admin(...args: string[]): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  return JSON.parse((await run(S3G, ['admin', '--data', server.dataDir, ...args, '--json'])).stdout);
}

await admin('tenant', 'create', 'acme');
await admin('tenant', 'create', 'globex');
const wile = signer(await admin('user', 'create', 'wile', '--tenant', 'acme'));
const hank = signer(await admin('user', 'create', 'hank', '--tenant', 'globex'));
const plain = signer(await admin('user', 'create', 'plain'));
type Signer = typeof wile;

const as = (who: Signer, req: RawRequest): Promise<RawResponse> => signedRequest(server, req, who);
const put = (who: Signer, path: string, body: string, headers: Record<string, string> = {}): Promise<RawResponse> =>
  as(who, { method: 'PUT', path, body: Buffer.from(body), headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } });
const md5 = (body: string): string => createHash('md5').update(body).digest('base64');

/** Setup steps: anything but 200 stops the file (no assertions before the subtests). */
async function ok(response: Promise<RawResponse>): Promise<string> {
  const { status, body } = await response;
  if (status !== 200) throw new Error(`setup failed with ${status}: ${body.toString()}`);
  return body.toString();
}
const uploadIdOf = (xml: string): string => /<UploadId>([^<]+)<\/UploadId>/.exec(xml)![1]!;

// globex's data, which acme's user must not reach.
await ok(as(hank, { method: 'PUT', path: '/globex-data' }));
await ok(put(hank, '/globex-data/secret.txt', 'globex secret'));
const hankUpload = uploadIdOf(await ok(as(hank, { method: 'POST', path: '/globex-data/big', query: { uploads: '' } })));
// acme's own bucket, to copy into and upload to.
await ok(as(wile, { method: 'PUT', path: '/acme-data' }));
await ok(put(wile, '/acme-data/mine.txt', 'acme data'));
const wileUpload = uploadIdOf(await ok(as(wile, { method: 'POST', path: '/acme-data/big', query: { uploads: '' } })));

async function denied(t: Test, what: string, req: RawRequest, body?: string): Promise<void> {
  const response = body === undefined ? await as(wile, req) : await put(wile, req.path, body, req.headers);
  t.equal(response.status, 403, `${what}: 403`);
  // A HEAD answer has no body to carry the code.
  if (req.method !== 'HEAD') t.equal(errorCode(response), 'AccessDenied', `${what}: AccessDenied`);
  t.notMatch(response.body.toString(), 'globex secret', `${what}: nothing of the object leaks`);
}

t.test('bucket operations', async (t) => {
  await denied(t, 'HeadBucket', { method: 'HEAD', path: '/globex-data' });
  await denied(t, 'GetBucketLocation', { method: 'GET', path: '/globex-data', query: { location: '' } });
  await denied(t, 'DeleteBucket', { method: 'DELETE', path: '/globex-data' });
  const missing = await as(wile, { method: 'HEAD', path: '/nowhere-at-all' });
  t.equal(missing.status, 404, 'a name taken nowhere is 404');
  t.equal(errorCode(await as(wile, { method: 'GET', path: '/nowhere-at-all' })), 'NoSuchBucket');

  const mine = (await as(wile, { method: 'GET', path: '/' })).body.toString();
  t.match(mine, '<Name>acme-data</Name>');
  t.notMatch(mine, 'globex-data', "ListBuckets shows only the user's volume");
  t.notMatch((await as(plain, { method: 'GET', path: '/' })).body.toString(), /acme-data|globex-data/, 's3v users see no tenant bucket');
});

t.test('object operations', async (t) => {
  await denied(t, 'GetObject', { method: 'GET', path: '/globex-data/secret.txt' });
  await denied(t, 'HeadObject', { method: 'HEAD', path: '/globex-data/secret.txt' });
  await denied(t, 'PutObject', { method: 'PUT', path: '/globex-data/secret.txt' }, 'overwritten');
  await denied(t, 'DeleteObject', { method: 'DELETE', path: '/globex-data/secret.txt' });
  await denied(t, 'GetObjectTagging', { method: 'GET', path: '/globex-data/secret.txt', query: { tagging: '' } });
  const deleteBody = '<Delete><Object><Key>secret.txt</Key></Object></Delete>';
  const deleteObjects = await as(wile, {
    method: 'POST',
    path: '/globex-data',
    query: { delete: '' },
    body: Buffer.from(deleteBody),
    headers: { 'content-length': String(deleteBody.length), 'content-md5': md5(deleteBody) },
  });
  t.equal(deleteObjects.status, 403, 'DeleteObjects: 403');
  t.equal(errorCode(deleteObjects), 'AccessDenied');
  const outsider = await as(plain, { method: 'GET', path: '/globex-data/secret.txt' });
  t.equal(errorCode(outsider), 'AccessDenied', 'a user without a tenant is kept out too');
});

t.test('listings', async (t) => {
  await denied(t, 'ListObjects', { method: 'GET', path: '/globex-data' });
  await denied(t, 'ListObjectsV2', { method: 'GET', path: '/globex-data', query: { 'list-type': '2', prefix: 'sec' } });
  await denied(t, 'ListMultipartUploads', { method: 'GET', path: '/globex-data', query: { uploads: '' } });
});

t.test('copy sources and targets', async (t) => {
  await denied(t, 'CopyObject from another tenant', { method: 'PUT', path: '/acme-data/stolen.txt', headers: { 'x-amz-copy-source': '/globex-data/secret.txt' } });
  await denied(t, 'CopyObject, source without a leading slash', { method: 'PUT', path: '/acme-data/stolen.txt', headers: { 'x-amz-copy-source': 'globex-data/secret.txt' } });
  await denied(t, 'CopyObject into another tenant', { method: 'PUT', path: '/globex-data/planted.txt', headers: { 'x-amz-copy-source': '/acme-data/mine.txt' } });
  await denied(t, 'UploadPartCopy from another tenant', {
    method: 'PUT',
    path: '/acme-data/big',
    query: { partNumber: '1', uploadId: wileUpload },
    headers: { 'x-amz-copy-source': '/globex-data/secret.txt' },
  });
  t.equal((await as(wile, { method: 'HEAD', path: '/acme-data/stolen.txt' })).status, 404, 'nothing was copied');
});

t.test('multipart uploads', async (t) => {
  await denied(t, 'CreateMultipartUpload', { method: 'POST', path: '/globex-data/other', query: { uploads: '' } });
  await denied(t, 'UploadPart', { method: 'PUT', path: '/globex-data/big', query: { partNumber: '1', uploadId: hankUpload } }, 'part');
  await denied(t, 'ListParts', { method: 'GET', path: '/globex-data/big', query: { uploadId: hankUpload } });
  await denied(t, 'AbortMultipartUpload', { method: 'DELETE', path: '/globex-data/big', query: { uploadId: hankUpload } });
  const complete = '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>';
  const completed = await as(wile, {
    method: 'POST',
    path: '/globex-data/big',
    query: { uploadId: hankUpload },
    body: Buffer.from(complete),
    headers: { 'content-length': String(complete.length) },
  });
  t.equal(errorCode(completed), 'AccessDenied', 'CompleteMultipartUpload: AccessDenied');
  // Another tenant's upload id through one's own bucket names no upload here.
  const smuggled = await as(wile, { method: 'PUT', path: '/acme-data/big', query: { partNumber: '1', uploadId: hankUpload }, body: Buffer.from('part'), headers: { 'content-length': '4' } });
  t.equal(smuggled.status, 404);
  t.equal(errorCode(smuggled), 'NoSuchUpload', "another tenant's upload id is no upload of this bucket");
  t.equal((await as(hank, { method: 'GET', path: '/globex-data/big', query: { uploadId: hankUpload } })).status, 200, "hank's upload is untouched");
});

t.test('names are unique per volume; after all that, globex is intact', async (t) => {
  t.equal((await as(wile, { method: 'PUT', path: '/globex-data' })).status, 200, 'a name taken only in another tenant can be created');
  t.equal((await put(wile, '/globex-data/secret.txt', 'acme copy')).status, 200);
  t.equal((await as(wile, { method: 'GET', path: '/globex-data/secret.txt' })).body.toString(), 'acme copy', 'acme reads its own bucket of that name');
  t.equal((await as(hank, { method: 'GET', path: '/globex-data/secret.txt' })).body.toString(), 'globex secret', 'globex reads its own, unchanged');
  t.match((await as(hank, { method: 'GET', path: '/globex-data', query: { 'list-type': '2' } })).body.toString(), '<KeyCount>1</KeyCount>');
  const shared = await as(plain, { method: 'PUT', path: '/globex-data' });
  t.equal(shared.status, 200, 's3v has its own namespace too');
});
