// The S3 surface beyond the first slice: routing, listings, copy, multi-delete, conditional
// requests, checksums, configuration probes, and the error code and status of each case.
import t from 'tap';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetBucketAclCommand,
  GetBucketCorsCommand,
  GetBucketLocationCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  CompleteMultipartUploadCommand,
  PutObjectTaggingCommand,
  GetObjectTaggingCommand,
  DeleteObjectTaggingCommand,
} from '@aws-sdk/client-s3';
import { crc32 } from '@node-rs/crc32';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { disposeServer, startServer, ACCESS_KEY, S3G, SECRET_KEY } from './helpers/server.js';
import { s3Failure, sdkClient } from './helpers/clients.js';
import { errorCode, presignedPath, send, signedRequest } from './helpers/raw.js';

const server = await startServer({ args: ['--domain', 's3.localhost'] });
t.teardown(() => disposeServer(server));
const s3 = sdkClient(server);
const bucket = 'api';
await s3.send(new CreateBucketCommand({ Bucket: bucket }));
// The listing tests run on this FSO bucket too: the same keys must list the same.
const fsoBucket = 'api-fso';
await promisify(execFile)(S3G, ['admin', '--data', server.dataDir, 'bucket', 'create', fsoBucket, '--layout', 'fso']);
const listingBuckets = [['OBS', bucket], ['FSO', fsoBucket]] as const;

const text = async (body: { transformToString(): Promise<string> } | undefined): Promise<string> => (body ? body.transformToString() : '');

t.test('virtual-hosted-style addressing reaches the bucket named in Host', async (t) => {
  const put = await signedRequest(server, {
    method: 'PUT',
    path: '/vhost-key',
    headers: { host: `${bucket}.s3.localhost:${server.port}`, 'content-length': '5' },
    body: Buffer.from('hello'),
  });
  t.equal(put.status, 200);
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'vhost-key' }));
  t.equal(await text(got.Body), 'hello');
  const list = await signedRequest(server, { method: 'GET', path: '/', query: { 'list-type': '2' }, headers: { host: `${bucket}.s3.localhost:${server.port}` } });
  t.match(list.body.toString(), /<Key>vhost-key<\/Key>/);
});

t.test('unknown sub-resources are 501, configuration probes answer as AWS does for none', async (t) => {
  const versions = await signedRequest(server, { method: 'GET', path: `/${bucket}`, query: { versions: '' } });
  t.equal(versions.status, 501);
  t.equal(errorCode(versions), 'NotImplemented');
  const putPolicy = await signedRequest(server, { method: 'PUT', path: `/${bucket}`, query: { policy: '' }, headers: { 'content-length': '2' }, body: Buffer.from('{}') });
  t.equal(putPolicy.status, 501, 'a PUT of a configuration we do not keep is never a silent success');
  t.same(await s3Failure(s3.send(new GetBucketPolicyCommand({ Bucket: bucket }))), { code: 'NoSuchBucketPolicy', status: 404 });
  t.same(await s3Failure(s3.send(new GetBucketCorsCommand({ Bucket: bucket }))), { code: 'NoSuchCORSConfiguration', status: 404 });
  for (const [word, code] of [
    ['lifecycle', 'NoSuchLifecycleConfiguration'],
    ['website', 'NoSuchWebsiteConfiguration'],
    ['encryption', 'ServerSideEncryptionConfigurationNotFoundError'],
    ['replication', 'ReplicationConfigurationNotFoundError'],
    ['object-lock', 'ObjectLockConfigurationNotFoundError'],
    ['tagging', 'NoSuchTagSet'],
  ]) {
    const res = await signedRequest(server, { method: 'GET', path: `/${bucket}`, query: { [word!]: '' } });
    t.same([res.status, errorCode(res)], [404, code], word);
  }
  const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }));
  t.equal(versioning.Status, undefined, 'empty VersioningConfiguration');
  const acl = await s3.send(new GetBucketAclCommand({ Bucket: bucket }));
  t.equal(acl.Grants?.[0]?.Permission, 'FULL_CONTROL');
  t.equal(acl.Grants?.[0]?.Grantee?.ID, acl.Owner?.ID);
  const location = await s3.send(new GetBucketLocationCommand({ Bucket: bucket }));
  t.notOk(location.LocationConstraint, 'us-east-1 is the empty constraint');
  t.same(await s3Failure(s3.send(new GetBucketPolicyCommand({ Bucket: 'missing-bucket' }))), { code: 'NoSuchBucket', status: 404 });
});

for (const [layout, bucket] of listingBuckets) {
  t.test(`listings (${layout}): prefix, delimiter, pagination, start-after, url encoding, v1 markers`, async (t) => {
    const keys = ['list/a', 'list/b/1', 'list/b/2', 'list/c d', 'list/é+&<x', 'list/z%25'];
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
    const all = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'list/' }));
    t.same(all.Contents?.map((o) => o.Key), [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    t.equal(all.KeyCount, keys.length);
    const folded = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'list/', Delimiter: '/' }));
    t.same(folded.CommonPrefixes?.map((p) => p.Prefix), ['list/b/']);
    t.same(folded.Contents?.map((o) => o.Key), ['list/a', 'list/c d', 'list/z%25', 'list/é+&<x']);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'list/', MaxKeys: 2, ContinuationToken: token }));
      seen.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.NextContinuationToken;
      t.equal(page.IsTruncated, token !== undefined);
      pages++;
    } while (token);
    t.equal(pages, 3);
    t.same(seen, all.Contents?.map((o) => o.Key));
    const after = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'list/', StartAfter: 'list/b/2' }));
    t.same(after.Contents?.map((o) => o.Key), ['list/c d', 'list/z%25', 'list/é+&<x']);
    const encoded = await signedRequest(server, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', prefix: 'list/', 'encoding-type': 'url' } });
    t.match(encoded.body.toString(), /<Key>list%2Fc\+d<\/Key>/);
    t.match(encoded.body.toString(), /<Key>list%2F%C3%A9%2B%26%3Cx<\/Key>/);
    const owner = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'list/a', FetchOwner: true }));
    t.equal(owner.Contents?.[0]?.Owner?.DisplayName, 'admin');

    const v1 = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: 'list/', Delimiter: '/', MaxKeys: 2 }));
    t.equal(v1.IsTruncated, true);
    t.equal(v1.NextMarker, 'list/b/');
    const v1next = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: 'list/', Delimiter: '/', Marker: v1.NextMarker }));
    t.same(v1next.Contents?.map((o) => o.Key), ['list/c d', 'list/z%25', 'list/é+&<x']);
    const badToken = await signedRequest(server, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', 'continuation-token': '!!' } });
    t.same([badToken.status, errorCode(badToken)], [400, 'InvalidArgument']);
    const badMax = await signedRequest(server, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', 'max-keys': '-1' } });
    t.same([badMax.status, errorCode(badMax)], [400, 'InvalidArgument']);
  });
}

t.test('copy: COPY and REPLACE directives, onto itself, source conditions', async (t) => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy/src', Body: 'source body', ContentType: 'text/x-src', Metadata: { m: '1' } }));
  const copied = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst', CopySource: `${bucket}/copy/src` }));
  t.equal(copied.CopyObjectResult?.ETag, `"${createHash('md5').update('source body').digest('hex')}"`);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/dst' }));
  t.same([head.ContentType, head.Metadata], ['text/x-src', { m: '1' }]);
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst', CopySource: `${bucket}/copy/src`, MetadataDirective: 'REPLACE', ContentType: 'text/x-new', Metadata: { n: '2' } }));
  const replaced = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/dst' }));
  t.same([replaced.ContentType, replaced.Metadata], ['text/x-new', { n: '2' }]);
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/src', CopySource: `${bucket}/copy/src` }))), { code: 'InvalidRequest', status: 400 });
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/src', CopySource: `${bucket}/copy/src`, MetadataDirective: 'REPLACE', Metadata: { self: 'yes' } }));
  t.same((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/src' }))).Metadata, { self: 'yes' });
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy/src' }))).Body), 'source body');
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'x', CopySource: `${bucket}/copy/src`, CopySourceIfMatch: '"nope"' }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'x', CopySource: `${bucket}/copy/src`, CopySourceIfNoneMatch: head.ETag }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'x', CopySource: `${bucket}/copy/missing` }))), { code: 'NoSuchKey', status: 404 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'x', CopySource: 'nobucket/copy/src' }))), { code: 'NoSuchBucket', status: 404 });
});

t.test('DeleteObjects: quiet mode, integrity header required, limits', async (t) => {
  for (const key of ['del/1', 'del/2', 'del/3']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
  const result = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'del/1' }, { Key: 'del/never' }] } }));
  t.same(result.Deleted?.map((d) => d.Key).sort(), ['del/1', 'del/never']);
  const quiet = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Quiet: true, Objects: [{ Key: 'del/2' }] } }));
  t.equal(quiet.Deleted, undefined);
  const body = Buffer.from('<Delete><Object><Key>del/3</Key></Object></Delete>');
  const noMd5 = await signedRequest(server, { method: 'POST', path: `/${bucket}`, query: { delete: '' }, headers: { 'content-length': String(body.length) }, body });
  t.same([noMd5.status, errorCode(noMd5)], [400, 'InvalidRequest']);
  const wrongMd5 = await signedRequest(server, {
    method: 'POST', path: `/${bucket}`, query: { delete: '' }, body,
    headers: { 'content-length': String(body.length), 'content-md5': createHash('md5').update('x').digest('base64') },
  });
  t.same([wrongMd5.status, errorCode(wrongMd5)], [400, 'BadDigest']);
  const crcHeader = Buffer.alloc(4);
  crcHeader.writeUInt32BE(crc32(body));
  const withChecksum = await signedRequest(server, {
    method: 'POST', path: `/${bucket}`, query: { delete: '' }, body,
    headers: { 'content-length': String(body.length), 'x-amz-checksum-crc32': crcHeader.toString('base64') },
  });
  t.equal(withChecksum.status, 200, 'an x-amz-checksum-* header is accepted instead of Content-MD5');
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'del/q"t', Body: 'x' }));
  const refs = Buffer.from('<Delete><Object><Key>del/q&#34;t</Key></Object><Object><Key>del/&#x71;&quot;t2</Key></Object></Delete>');
  const numeric = await signedRequest(server, {
    method: 'POST', path: `/${bucket}`, query: { delete: '' }, body: refs,
    headers: { 'content-length': String(refs.length), 'content-md5': createHash('md5').update(refs).digest('base64') },
  });
  t.match(numeric.body.toString(), /<Key>del\/q&quot;t<\/Key>/, 'numeric character references decode (Go clients write &#34;)');
  t.same(await s3Failure(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'del/q"t' }))), { code: 'NotFound', status: 404 });
  const tooMany = Buffer.from(`<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`);
  const overLimit = await signedRequest(server, {
    method: 'POST', path: `/${bucket}`, query: { delete: '' }, body: tooMany,
    headers: { 'content-length': String(tooMany.length), 'content-md5': createHash('md5').update(tooMany).digest('base64') },
  });
  t.same([overLimit.status, errorCode(overLimit)], [400, 'MalformedXML']);
  const broken = Buffer.from('<Delete><Object><Key>k</Key></Delete>');
  const malformed = await signedRequest(server, {
    method: 'POST', path: `/${bucket}`, query: { delete: '' }, body: broken,
    headers: { 'content-length': String(broken.length), 'content-md5': createHash('md5').update(broken).digest('base64') },
  });
  t.same([malformed.status, errorCode(malformed)], [400, 'MalformedXML']);
  const dtd = Buffer.from('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Delete><Object><Key>&a;</Key></Object></Delete>');
  const entity = await signedRequest(server, {
    method: 'POST', path: `/${bucket}`, query: { delete: '' }, body: dtd,
    headers: { 'content-length': String(dtd.length), 'content-md5': createHash('md5').update(dtd).digest('base64') },
  });
  t.same([entity.status, errorCode(entity)], [400, 'MalformedXML'], 'no DTDs, no entity expansion');
});

t.test('conditional GET/HEAD and conditional writes', async (t) => {
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'v1' }));
  const etag = put.ETag!;
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond', IfMatch: '"other"' }))), { code: 'PreconditionFailed', status: 412 });
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cond', IfNoneMatch: etag })))).status, 304);
  const notModified = await signedRequest(server, { method: 'GET', path: `/${bucket}/cond`, headers: { 'if-none-match': etag } });
  t.equal(notModified.status, 304);
  const future = new Date(Date.now() + 3600_000);
  const past = new Date(Date.now() - 3600_000);
  t.equal((await signedRequest(server, { method: 'GET', path: `/${bucket}/cond`, headers: { 'if-modified-since': future.toUTCString() } })).status, 304);
  t.equal((await signedRequest(server, { method: 'GET', path: `/${bucket}/cond`, headers: { 'if-unmodified-since': past.toUTCString() } })).status, 412);
  t.equal((await signedRequest(server, { method: 'GET', path: `/${bucket}/cond`, headers: { 'if-match': etag, 'if-unmodified-since': past.toUTCString() } })).status, 200, 'If-Match wins over If-Unmodified-Since');

  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'v2', IfNoneMatch: '*' }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'v2', IfMatch: '"0123"' }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond-missing', Body: 'v2', IfMatch: etag }))), { code: 'NoSuchKey', status: 404 });
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'v2', IfMatch: etag }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond-new', Body: 'v1', IfNoneMatch: '*' }));
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond' }))).Body), 'v2');
});

t.test('response overrides, stored headers, user metadata limit', async (t) => {
  await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: 'headers', Body: 'x', ContentType: 'text/plain', ContentEncoding: 'identity', ContentDisposition: 'inline',
    ContentLanguage: 'en', CacheControl: 'max-age=60', Expires: new Date('2030-01-01T00:00:00Z'),
  }));
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'headers' }));
  t.same([head.ContentType, head.ContentEncoding, head.ContentDisposition, head.ContentLanguage, head.CacheControl], ['text/plain', 'identity', 'inline', 'en', 'max-age=60']);
  t.equal(head.Expires?.toISOString(), '2030-01-01T00:00:00.000Z');
  const overridden = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'headers', ResponseContentType: 'application/x-override', ResponseContentDisposition: 'attachment; filename="a.txt"', ResponseCacheControl: 'no-cache' }));
  t.same([overridden.ContentType, overridden.ContentDisposition, overridden.CacheControl], ['application/x-override', 'attachment; filename="a.txt"', 'no-cache']);
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'meta', Body: 'x', Metadata: { big: 'v'.repeat(2100) } }))), { code: 'MetadataTooLarge', status: 400 });
  // An override that is no valid header value (here a header injection) is the client's mistake, not a 500.
  const injected = await signedRequest(server, { method: 'GET', path: `/${bucket}/headers`, query: { 'response-content-type': 'text/plain\r\nSet-Cookie: x=1' } });
  t.same([injected.status, errorCode(injected)], [400, 'InvalidArgument']);
  t.notOk(injected.headers['set-cookie']);
});

t.test('x-amz-checksum-* validated, stored, returned only for whole-object reads', async (t) => {
  const body = randomBytes(100_000);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  const sha1 = createHash('sha1').update(body).digest('base64');
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sum', Body: body, ChecksumSHA1: sha1 }));
  t.equal(put.ChecksumSHA1, sha1);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'sum', ChecksumMode: 'ENABLED' }));
  t.equal(head.ChecksumSHA1, sha1);
  const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sum', ChecksumMode: 'ENABLED', Range: 'bytes=0-9' }));
  t.equal(ranged.ChecksumSHA1, undefined, 'no whole-object checksum on a ranged GET');
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sum2', Body: body, ChecksumCRC32: 'AAAAAA==' }))), { code: 'BadDigest', status: 400 });
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sum2', Body: body, ChecksumCRC32: 'garbage' }))), { code: 'InvalidRequest', status: 400 });
  t.same(await s3Failure(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'sum2' }))), { code: 'NotFound', status: 404 }, 'nothing committed on a bad checksum');
  const crcPut = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sum3', Body: body, ChecksumCRC32: crc.toString('base64') }));
  t.equal(crcPut.ChecksumCRC32, crc.toString('base64'));
});

t.test('Expect: 100-continue is answered only after authentication', async (t) => {
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port: server.port, method: 'PUT', path: `/${bucket}/expect`,
      headers: { expect: '100-continue', 'content-length': '4', authorization: `AWS4-HMAC-SHA256 Credential=${ACCESS_KEY}/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00`, 'x-amz-date': '20200101T000000Z', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    req.on('continue', () => reject(new Error('100 Continue sent to an unauthenticated request')));
    req.on('response', (res) => { res.resume(); resolve(res.statusCode!); });
    req.on('error', reject);
  });
  t.equal(status, 403);
});

t.test('errors: bucket names, keys, ranges, skew, methods', async (t) => {
  const longKey = 'k'.repeat(1025);
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: bucket, Key: longKey, Body: 'x' }))), { code: 'KeyTooLongError', status: 400 });
  t.same(await s3Failure(s3.send(new CreateBucketCommand({ Bucket: 'ab' }))), { code: 'InvalidBucketName', status: 400 });
  t.same(await s3Failure(s3.send(new CreateBucketCommand({ Bucket: '192.168.1.1' }))), { code: 'InvalidBucketName', status: 400 });
  const skewed = await signedRequest(server, { method: 'GET', path: '/', signingDate: new Date(Date.now() - 20 * 60_000) });
  t.same([skewed.status, errorCode(skewed)], [403, 'RequestTimeTooSkewed']);
  const badPercent = await signedRequest(server, { method: 'GET', path: `/${bucket}/%E0%A4%A` });
  t.same([badPercent.status, errorCode(badPercent)], [400, 'InvalidURI']);
  const postObject = await signedRequest(server, { method: 'POST', path: `/${bucket}/obj` });
  t.same([postObject.status, errorCode(postObject)], [405, 'MethodNotAllowed']);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'range', Body: '0123456789' }));
  const unsatisfiable = await signedRequest(server, { method: 'GET', path: `/${bucket}/range`, headers: { range: 'bytes=10-20' } });
  t.same([unsatisfiable.status, errorCode(unsatisfiable), unsatisfiable.headers['content-range']], [416, 'InvalidRange', 'bytes */10']);
  const ignored = await signedRequest(server, { method: 'GET', path: `/${bucket}/range`, headers: { range: 'bytes=5-2' } });
  t.same([ignored.status, ignored.body.toString()], [200, '0123456789'], 'an unparsable range is ignored, as AWS does');
});

t.test('object tagging: x-amz-tagging on PUT, ?tagging PUT/GET/DELETE, tag count, limits', async (t) => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tagged', Body: 'x', Tagging: 'a=1&b=two%20words' }));
  t.same((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }))).TagSet, [{ Key: 'a', Value: '1' }, { Key: 'b', Value: 'two words' }]);
  t.equal((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'tagged' }))).TagCount, 2);
  await s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'tagged', Tagging: { TagSet: [{ Key: 'k<&>', Value: 'v' }] } }));
  t.same((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }))).TagSet, [{ Key: 'k<&>', Value: 'v' }]);
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'tagged' }))).Body), 'x', 'data untouched by tagging');
  await s3.send(new DeleteObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }));
  t.same((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }))).TagSet ?? [], []);
  const brokenEscape = await signedRequest(server, { method: 'PUT', path: `/${bucket}/badly-tagged`, body: Buffer.from('x'), headers: { 'content-length': '1', 'x-amz-tagging': 'a=%zz' } });
  t.same([brokenEscape.status, errorCode(brokenEscape)], [400, 'InvalidArgument'], 'a broken escape in x-amz-tagging');
  const eleven = Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
  t.same(await s3Failure(s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'tagged', Tagging: { TagSet: eleven } }))), { code: 'BadRequest', status: 400 });
  t.same(await s3Failure(s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'tagged', Tagging: { TagSet: [{ Key: 'k'.repeat(129), Value: 'v' }] } }))), { code: 'InvalidTag', status: 400 });
  t.same(await s3Failure(s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'untagged-missing' }))), { code: 'NoSuchKey', status: 404 });
  const copied = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tagged2', Body: 'y', Tagging: 'c=3' }));
  t.ok(copied.ETag);
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'tagged3', CopySource: `${bucket}/tagged2` }));
  t.same((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged3' }))).TagSet, [{ Key: 'c', Value: '3' }], 'copy keeps tags by default');
});

t.test('UploadPartCopy with x-amz-copy-source-range, and GET ?partNumber', async (t) => {
  const source = randomBytes(7 * 1024 * 1024 + 5);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'mp/source', Body: source }));
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/copy' }));
  const five = 5 * 1024 * 1024;
  const p1 = await s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copy', UploadId, PartNumber: 1, CopySource: `${bucket}/mp/source`, CopySourceRange: `bytes=0-${five - 1}` }));
  const p2 = await s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copy', UploadId, PartNumber: 2, CopySource: `${bucket}/mp/source`, CopySourceRange: `bytes=${five}-${source.length - 1}` }));
  t.equal(p1.CopyPartResult?.ETag, `"${createHash('md5').update(source.subarray(0, five)).digest('hex')}"`);
  t.same(await s3Failure(s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copy', UploadId, PartNumber: 3, CopySource: `${bucket}/mp/source`, CopySourceRange: `bytes=0-${source.length}` }))), { code: 'InvalidArgument', status: 400 });
  t.same(await s3Failure(s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copy', UploadId, PartNumber: 3, CopySource: `${bucket}/mp/source`, CopySourceRange: 'bytes=5-' }))), { code: 'InvalidArgument', status: 400 });
  t.same(await s3Failure(s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copy', UploadId: 'nope', PartNumber: 3, CopySource: `${bucket}/mp/source` }))), { code: 'NoSuchUpload', status: 404 });
  const done = await s3.send(new CompleteMultipartUploadCommand({
    Bucket: bucket, Key: 'mp/copy', UploadId,
    MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.CopyPartResult!.ETag }, { PartNumber: 2, ETag: p2.CopyPartResult!.ETag }] },
  }));
  t.match(done.ETag, /-2"$/);
  const whole = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/copy' }));
  t.ok(Buffer.from(await whole.Body!.transformToByteArray()).equals(source), 'assembled from copied parts');
  const part2 = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/copy', PartNumber: 2 }));
  t.same([part2.$metadata.httpStatusCode, part2.PartsCount, part2.ContentRange], [206, 2, `bytes ${five}-${source.length - 1}/${source.length}`]);
  t.ok(Buffer.from(await part2.Body!.transformToByteArray()).equals(source.subarray(five)));
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/copy', PartNumber: 3 }))), { code: 'InvalidPartNumber', status: 416 });
  const single = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp/source', PartNumber: 1 }));
  t.equal(single.ContentLength, source.length, 'part 1 of a single-PUT object is the whole object');
});

t.test('presigned URLs: valid, expired, too long, tampered', async (t) => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'presigned', Body: 'signed body' }));
  const ok = await send(server, 'GET', await presignedPath(server, 'GET', bucket, 'presigned'), {});
  t.same([ok.status, ok.body.toString()], [200, 'signed body']);
  const expired = await presignedPath(server, 'GET', bucket, 'presigned', 1);
  await new Promise((r) => setTimeout(r, 2100));
  const late = await send(server, 'GET', expired, {});
  t.same([late.status, errorCode(late)], [403, 'AccessDenied']);
  const week = await presignedPath(server, 'GET', bucket, 'presigned', 7 * 24 * 3600);
  t.equal((await send(server, 'GET', week, {})).status, 200, 'seven days is allowed');
  const tooLong = week.replace('X-Amz-Expires=604800', 'X-Amz-Expires=604801');
  const refused = await send(server, 'GET', tooLong, {});
  t.same([refused.status, errorCode(refused)], [400, 'AuthorizationQueryParametersError']);
  const tampered = await send(server, 'GET', (await presignedPath(server, 'GET', bucket, 'presigned')).replace('presigned?', 'presigned2?'), {});
  t.same([tampered.status, errorCode(tampered)], [403, 'SignatureDoesNotMatch']);
});

t.test('SigV2 presigned URLs (legacy tools such as s3cmd signurl) for GET', async (t) => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'v2 key', Body: 'legacy' }));
  const v2Url = (path: string, expires: number, secret = SECRET_KEY): string => {
    const signature = createHmac('sha1', secret).update(`GET\n\n\n${expires}\n${path}`).digest('base64');
    return `${path}?AWSAccessKeyId=${ACCESS_KEY}&Expires=${expires}&Signature=${encodeURIComponent(signature)}`;
  };
  const soon = Math.floor(Date.now() / 1000) + 300;
  const ok = await send(server, 'GET', v2Url(`/${bucket}/v2%20key`, soon), {});
  t.same([ok.status, ok.body.toString()], [200, 'legacy']);
  const wrong = await send(server, 'GET', v2Url(`/${bucket}/v2%20key`, soon, 'wrong'), {});
  t.same([wrong.status, errorCode(wrong)], [403, 'SignatureDoesNotMatch']);
  const expired = await send(server, 'GET', v2Url(`/${bucket}/v2%20key`, Math.floor(Date.now() / 1000) - 5), {});
  t.same([expired.status, errorCode(expired)], [403, 'AccessDenied']);
  const header = await send(server, 'GET', `/${bucket}/v2%20key`, { authorization: `AWS ${ACCESS_KEY}:c2ln` });
  t.same([header.status, errorCode(header)], [400, 'InvalidRequest'], 'SigV2 headers are refused');
});
