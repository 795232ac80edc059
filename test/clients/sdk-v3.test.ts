// The client scenario with @aws-sdk/client-s3 at its defaults (aws-chunked bodies with a
// CRC32 trailer) and @aws-sdk/lib-storage for the multipart upload, path-style and
// virtual-hosted-style.
import t from 'tap';
import { createReadStream, createWriteStream, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createWorkspace, filesUnder, PART_SIZE, runScenario, type ScenarioClient } from '../helpers/client-scenario.js';
import { localhostAgent, resolvesToLoopback, VHOST_DOMAIN } from '../helpers/localhost-dns.js';
import { ACCESS_KEY, SECRET_KEY, disposeServer, startServer } from '../helpers/server.js';
import { s3Failure } from '../helpers/clients.js';

const server = await startServer({ args: ['--domain', VHOST_DOMAIN] });
t.teardown(() => disposeServer(server));
const ws = createWorkspace();
t.teardown(() => ws.dispose());

const vhostBucket = 'sdk-vhost';
const resolves = await resolvesToLoopback(`${vhostBucket}.${VHOST_DOMAIN}`);
t.comment(`${vhostBucket}.${VHOST_DOMAIN} ${resolves ? 'resolves to loopback' : "doesn't resolve here: the SDK's http.Agent maps *.localhost to 127.0.0.1"}`);

/** Hosts the client sent requests to, and how it sent object bodies. */
const hosts = new Set<string>();
const bodyEncodings = new Set<string>();

function sdk(virtual: boolean): S3Client {
  const client = new S3Client({
    endpoint: virtual ? `http://${VHOST_DOMAIN}:${server.port}` : server.url,
    forcePathStyle: !virtual,
    region: 'us-east-1',
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    maxAttempts: 1,
    ...(virtual && !resolves ? { requestHandler: { httpAgent: localhostAgent() } } : {}),
  });
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { hostname?: string; port?: number; method?: string; headers?: Record<string, string> };
      hosts.add(`${request.hostname}:${request.port}`);
      const h = request.headers ?? {};
      if (h['content-encoding']) bodyEncodings.add(`${h['content-encoding']} ${h['x-amz-content-sha256']} ${h['x-amz-trailer']}`);
      return next(args);
    },
    { step: 'deserialize' },
  );
  return client;
}

function adapter(s3: S3Client): ScenarioClient {
  return {
    async createBucket(bucket) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    },
    async listBuckets() {
      return ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name!);
    },
    async putFile(bucket, key, file, meta) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: createReadStream(file), ContentLength: statSync(file).size, ContentType: meta?.contentType, Metadata: meta?.metadata }));
    },
    async putDir(bucket, prefix, dir) {
      for (const path of filesUnder(dir)) await this.putFile(bucket, prefix + path, join(dir, path));
    },
    async getDir(bucket, prefix, dir) {
      for (const key of (await this.list(bucket, prefix)).keys) {
        mkdirSync(dirname(join(dir, key.slice(prefix.length))), { recursive: true });
        await this.getFile(bucket, key, join(dir, key.slice(prefix.length)));
      }
    },
    async head(bucket, key) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: head.ContentLength!, etag: head.ETag?.replaceAll('"', ''), contentType: head.ContentType, metadata: head.Metadata };
    },
    async getFile(bucket, key, dest) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      await pipeline(got.Body as Readable, createWriteStream(dest));
    },
    async getRange(bucket, key, range) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${range.start}-${range.end ?? ''}` }));
      return Buffer.from(await got.Body!.transformToByteArray());
    },
    async uploadMultipart(bucket, key, file) {
      await new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: createReadStream(file) }, partSize: PART_SIZE, queueSize: 4 }).done();
    },
    async list(bucket, prefix, delimiter) {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter }));
      return { keys: (listed.Contents ?? []).map((o) => o.Key!), prefixes: (listed.CommonPrefixes ?? []).map((p) => p.Prefix!) };
    },
    async listPaged(bucket, prefix, pageSize) {
      const keys: string[] = [];
      let pages = 0;
      for await (const page of paginateListObjectsV2({ client: s3, pageSize }, { Bucket: bucket, Prefix: prefix })) {
        pages++;
        keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      }
      return { keys, pages };
    },
    async copy(bucket, from, to) {
      await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: encodeURIComponent(`${bucket}/${from}`) }));
    },
    presignGet: (bucket, key) => getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 300 }),
    async deleteObject(bucket, key) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async deleteObjects(bucket, keys) {
      const result = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
      if (result.Errors?.length) throw new Error(`DeleteObjects errors: ${JSON.stringify(result.Errors)}`);
    },
    async headStatus(bucket, key) {
      return (await s3Failure(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })))).status ?? 0;
    },
    async deleteBucket(bucket) {
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    },
  };
}

t.test('path-style', async (t) => {
  runScenario(t, adapter(sdk(false)), ws, { bucket: 'sdk-path', presignedHost: `127.0.0.1:${server.port}` });
  t.test('the SDK sent its default: aws-chunked bodies with a CRC32 trailer', async (t) => {
    t.same([...bodyEncodings], ['aws-chunked STREAMING-UNSIGNED-PAYLOAD-TRAILER x-amz-checksum-crc32']);
  });
});

t.test('virtual-hosted-style', async (t) => {
  hosts.clear();
  runScenario(t, adapter(sdk(true)), ws, { bucket: vhostBucket, presignedHost: `${vhostBucket}.${VHOST_DOMAIN}:${server.port}` });
  t.test('every request went to BUCKET.s3.localhost (or s3.localhost for ListBuckets)', async (t) => {
    t.same([...hosts].sort(), [`${vhostBucket}.${VHOST_DOMAIN}:${server.port}`, `${VHOST_DOMAIN}:${server.port}`].sort());
  });
});
