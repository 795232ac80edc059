// The client scenario with s3cmd (path-style, SigV4), from a temporary .s3cfg.
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createWorkspace, filesUnder, runScenario, type ScenarioClient } from '../helpers/client-scenario.js';
import { sdkClient } from '../helpers/clients.js';
import { envWithout, findTool, run, runOk } from '../helpers/exec.js';
import { ACCESS_KEY, SECRET_KEY, disposeServer, startServer } from '../helpers/server.js';

const tool = await findTool(['s3cmd'], ['--version'], /^s3cmd version 2\./);
t.comment(tool.version);

const server = await startServer();
t.teardown(() => disposeServer(server));
const ws = createWorkspace();
t.teardown(() => ws.dispose());

const config = join(ws.dir, 's3cfg');
const host = `127.0.0.1:${server.port}`;
writeFileSync(
  config,
  [
    '[default]',
    `access_key = ${ACCESS_KEY}`,
    `secret_key = ${SECRET_KEY}`,
    `host_base = ${host}`,
    `host_bucket = ${host}`,
    'use_https = False',
    'signature_v2 = False',
    'bucket_location = us-east-1',
    'multipart_chunk_size_mb = 5',
    'preserve_attrs = False',
    'progress_meter = False',
    '',
  ].join('\n'),
);
const env = { ...envWithout('AWS_'), LC_ALL: 'C.UTF-8' };
const s3cmd = (...args: string[]): Promise<string> => runOk(tool.path, ['-c', config, ...args], { env });
const uri = (bucket: string, key = ''): string => `s3://${bucket}/${key}`;

/** `s3cmd ls` lines end in the S3 URI; directories are `DIR  s3://…/`. */
function lsUris(out: string): string[] {
  return out
    .split('\n')
    .filter((line) => line.includes(' s3://'))
    .map((line) => line.slice(line.indexOf(' s3://') + 1));
}

const client: ScenarioClient = {
  async createBucket(bucket) {
    await s3cmd('mb', uri(bucket));
  },
  listBuckets: async () => lsUris(await s3cmd('ls')).map((u) => u.slice('s3://'.length)),
  async putFile(bucket, key, file, meta) {
    const metaArgs = meta ? ['--mime-type', meta.contentType, ...Object.entries(meta.metadata).map(([k, v]) => `--add-header=x-amz-meta-${k}:${v}`)] : [];
    await s3cmd('put', ...metaArgs, file, uri(bucket, key));
  },
  async putDir(bucket, prefix, dir) {
    await s3cmd('put', '--recursive', `${dir}/`, uri(bucket, prefix));
  },
  async getDir(bucket, prefix, dir) {
    mkdirSync(dir, { recursive: true });
    await s3cmd('get', '--recursive', uri(bucket, prefix), `${dir}/`);
  },
  async head(bucket, key) {
    const out = await s3cmd('info', uri(bucket, key));
    const field = (name: string): string | undefined => new RegExp(`^\\s+${name}:\\s*(.*)$`, 'm').exec(out)?.[1];
    const metadata = Object.fromEntries([...out.matchAll(/^\s+x-amz-meta-([^:]+): (.*)$/gm)].map(([, name, value]) => [name!, value!]));
    // s3cmd stores the file's MD5 in x-amz-meta-s3cmd-attrs and shows that instead of the ETag.
    const etag = /(^|\/)md5:/.test(metadata['s3cmd-attrs'] ?? '') ? undefined : field('MD5 sum');
    return { size: Number(field('File size')), etag, contentType: field('MIME type'), metadata };
  },
  async getFile(bucket, key, dest) {
    await s3cmd('get', '--force', uri(bucket, key), dest);
  },
  // s3cmd asks for a range only to resume a download: `get --continue` of a file of N bytes
  // sends `Range: bytes=N-` (and warns that the MD5 of our zero-filled start doesn't match).
  async getRange(bucket, key, range) {
    const dest = ws.scratch();
    writeFileSync(dest, Buffer.alloc(range.start));
    await s3cmd('get', '--continue', uri(bucket, key), dest);
    return readFileSync(dest).subarray(range.start);
  },
  async uploadMultipart(bucket, key, file) {
    await s3cmd('put', file, uri(bucket, key));
  },
  async list(bucket, prefix, delimiter) {
    const uris = lsUris(await s3cmd('ls', ...(delimiter ? [] : ['--recursive']), uri(bucket, prefix))).map((u) => u.slice(uri(bucket).length));
    return { keys: uris.filter((k) => !k.endsWith('/')), prefixes: uris.filter((k) => k.endsWith('/')) };
  },
  // s3cmd has no page size: it follows IsTruncated through the server's pages of 1000.
  async listPaged(bucket, prefix) {
    return { keys: (await this.list(bucket, prefix)).keys };
  },
  async copy(bucket, from, to) {
    await s3cmd('cp', uri(bucket, from), uri(bucket, to));
  },
  presignGet: async (bucket, key) => (await s3cmd('signurl', uri(bucket, key), '+300')).trim(),
  async deleteObject(bucket, key) {
    await s3cmd('del', uri(bucket, key));
  },
  // `del --recursive` lists the bucket and removes the keys, up to 1000 per DeleteObjects.
  async deleteObjects(bucket) {
    await s3cmd('del', '--recursive', '--force', uri(bucket));
  },
  async headStatus(bucket, key) {
    const result = await run(tool.path, ['-c', config, 'info', uri(bucket, key)], { env });
    if (result.code === 0) return 200;
    const status = /S3 error: (\d{3})/.exec(result.stderr)?.[1];
    if (!status) throw new Error(`s3cmd info failed without an HTTP status:\n${result.stderr}`);
    return Number(status);
  },
  async deleteBucket(bucket) {
    await s3cmd('rb', uri(bucket));
  },
};

// s3cmd can't choose a page size, so it pages only past the server's 1000 keys; it uploads one
// file at a time, so those 1001 keys go in through the SDK, 16 at a time.
const sdk = sdkClient(server);
async function sdkPutDir(bucket: string, prefix: string, dir: string): Promise<void> {
  const files = filesUnder(dir);
  const upload = async (): Promise<void> => {
    for (let file = files.shift(); file !== undefined; file = files.shift()) {
      await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: prefix + file, Body: readFileSync(join(dir, file)) }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, upload));
}

runScenario(t, client, ws, { bucket: 's3cmd', openRangesOnly: true, paging: { count: 1001, pageSize: 1000, putDir: sdkPutDir }, presignedHost: host });
