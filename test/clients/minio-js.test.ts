// The client scenario with minio-js (path-style, 5 MiB parts for its multipart uploads).
import t from 'tap';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Client, CopyDestinationOptions, CopySourceOptions, S3Error } from 'minio';
import { createWorkspace, filesUnder, PART_SIZE, runScenario, type ScenarioClient } from '../helpers/client-scenario.js';
import { ACCESS_KEY, SECRET_KEY, disposeServer, startServer } from '../helpers/server.js';

const server = await startServer();
t.teardown(() => disposeServer(server));
const ws = createWorkspace();
t.teardown(() => ws.dispose());

const mc = new Client({
  endPoint: '127.0.0.1',
  port: server.port,
  useSSL: false,
  accessKey: ACCESS_KEY,
  secretKey: SECRET_KEY,
  region: 'us-east-1',
  pathStyle: true,
  partSize: PART_SIZE,
});

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

const client: ScenarioClient = {
  createBucket: (bucket) => mc.makeBucket(bucket, 'us-east-1'),
  listBuckets: async () => (await mc.listBuckets()).map((b) => b.name),
  async putFile(bucket, key, file, meta) {
    await mc.fPutObject(bucket, key, file, meta ? { 'Content-Type': meta.contentType, ...meta.metadata } : {});
  },
  async putDir(bucket, prefix, dir) {
    for (const path of filesUnder(dir)) await mc.fPutObject(bucket, prefix + path, join(dir, path));
  },
  async getDir(bucket, prefix, dir) {
    for (const { name } of await collect(mc.listObjectsV2(bucket, prefix, true))) {
      const dest = join(dir, name!.slice(prefix.length));
      mkdirSync(dirname(dest), { recursive: true });
      await mc.fGetObject(bucket, name!, dest);
    }
  },
  async head(bucket, key) {
    const stat = await mc.statObject(bucket, key);
    return { size: stat.size, etag: stat.etag, contentType: stat.metaData['content-type'] as string, metadata: stat.metaData as Record<string, string> };
  },
  getFile: (bucket, key, dest) => mc.fGetObject(bucket, key, dest),
  async getRange(bucket, key, range) {
    const length = range.end === undefined ? undefined : range.end - range.start + 1;
    return Buffer.concat(await collect<Buffer>(await mc.getPartialObject(bucket, key, range.start, length)));
  },
  async uploadMultipart(bucket, key, file) {
    await mc.fPutObject(bucket, key, file);
  },
  async list(bucket, prefix, delimiter) {
    const items = await collect(mc.listObjectsV2(bucket, prefix, !delimiter));
    return { keys: items.filter((i) => i.name !== undefined).map((i) => i.name!), prefixes: items.filter((i) => i.prefix !== undefined).map((i) => i.prefix!) };
  },
  async listPaged(bucket, prefix, pageSize) {
    const keys: string[] = [];
    let pages = 0;
    let token = '';
    do {
      const page = await mc.listObjectsV2Query(bucket, prefix, token, '', pageSize, '');
      pages++;
      keys.push(...page.objects.map((o) => o.name!));
      token = page.isTruncated ? page.nextContinuationToken : '';
    } while (token);
    return { keys, pages };
  },
  async copy(bucket, from, to) {
    await mc.copyObject(new CopySourceOptions({ Bucket: bucket, Object: from }), new CopyDestinationOptions({ Bucket: bucket, Object: to }));
  },
  presignGet: (bucket, key) => mc.presignedGetObject(bucket, key, 300),
  deleteObject: (bucket, key) => mc.removeObject(bucket, key),
  async deleteObjects(bucket, keys) {
    const failed = (await mc.removeObjects(bucket, keys)).filter((r) => r?.Error);
    if (failed.length) throw new Error(`DeleteObjects errors: ${JSON.stringify(failed)}`);
  },
  async headStatus(bucket, key) {
    try {
      await mc.statObject(bucket, key);
      return 200;
    } catch (error) {
      // A HEAD has no error body: minio-js names the status (404 → NotFound) instead.
      if (error instanceof S3Error && error.code === 'NotFound') return 404;
      throw error;
    }
  },
  deleteBucket: (bucket) => mc.removeBucket(bucket),
};

runScenario(t, client, ws, { bucket: 'minio-js', presignedHost: `127.0.0.1:${server.port}` });
