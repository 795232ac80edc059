// The client scenario with rclone's S3 backend (provider Other, path-style), from a
// temporary rclone.conf.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWorkspace, PART_SIZE, runScenario, type ScenarioClient } from '../helpers/client-scenario.js';
import { envWithout, findTool, run, runOk } from '../helpers/exec.js';
import { ACCESS_KEY, SECRET_KEY, disposeServer, startServer } from '../helpers/server.js';

const tool = await findTool(['rclone'], ['version'], /^rclone v1\./);
t.comment(tool.version);

const server = await startServer();
t.teardown(() => disposeServer(server));
const ws = createWorkspace();
t.teardown(() => ws.dispose());

const config = join(ws.dir, 'rclone.conf');
writeFileSync(
  config,
  [
    '[s3g]',
    'type = s3',
    'provider = Other',
    'env_auth = false',
    `access_key_id = ${ACCESS_KEY}`,
    `secret_access_key = ${SECRET_KEY}`,
    `endpoint = ${server.url}`,
    'region = us-east-1',
    'force_path_style = true',
    '',
  ].join('\n'),
);
// rclone's AWS SDK reads AWS_* (AWS_CA_BUNDLE breaks an http endpoint) even with env_auth = false.
const env = envWithout('AWS_', 'RCLONE_');
const part = `${PART_SIZE / 1024 / 1024}M`;
const base = ['--config', config, '--cache-dir', join(ws.dir, 'rclone-cache'), '--s3-upload-cutoff', part, '--s3-chunk-size', part, '--retries', '1', '--low-level-retries', '1'];
const rclone = (...args: string[]): Promise<string> => runOk(tool.path, [...base, ...args], { env });
/** rclone addresses `bucket/prefix` without the trailing slash. */
const remote = (bucket: string, path = ''): string => `s3g:${bucket}/${path.replace(/\/$/, '')}`;

interface Entry {
  Path: string;
  Size: number;
  MimeType: string;
  IsDir: boolean;
  Metadata?: Record<string, string>;
}
const lsjson = async (...args: string[]): Promise<Entry[]> => JSON.parse(await rclone('lsjson', ...args));

/** The status of the first response after the request line matching `request` in a `--dump headers` log. */
function dumpedStatus(log: string, request: RegExp): number | undefined {
  const at = log.search(request);
  return at < 0 ? undefined : Number(/: HTTP\/1\.[01] (\d{3})/.exec(log.slice(at))?.[1]);
}

const client: ScenarioClient = {
  async createBucket(bucket) {
    await rclone('mkdir', remote(bucket));
  },
  listBuckets: async () => (await lsjson('s3g:')).map((e) => e.Path),
  async putFile(bucket, key, file, meta) {
    const metaArgs = meta ? ['-M', ...Object.entries({ 'content-type': meta.contentType, ...meta.metadata }).flatMap(([k, v]) => ['--metadata-set', `${k}=${v}`])] : [];
    await rclone('copyto', ...metaArgs, file, remote(bucket, key));
  },
  async putDir(bucket, prefix, dir) {
    await rclone('copy', dir, remote(bucket, prefix));
  },
  async getDir(bucket, prefix, dir) {
    await rclone('copy', remote(bucket, prefix), dir);
  },
  // rclone shows no ETag: its MD5 hash is the ETag only for single-part objects.
  async head(bucket, key) {
    const entry = JSON.parse(await rclone('lsjson', '--stat', '-M', remote(bucket, key))) as Entry;
    return { size: entry.Size, contentType: entry.MimeType, metadata: entry.Metadata };
  },
  async getFile(bucket, key, dest) {
    await rclone('copyto', remote(bucket, key), dest);
  },
  async getRange(bucket, key, range) {
    const count = range.end === undefined ? [] : ['--count', String(range.end - range.start + 1)];
    const result = await run(tool.path, [...base, 'cat', '--offset', String(range.start), ...count, remote(bucket, key)], { env });
    if (result.code !== 0) throw new Error(`rclone cat exited ${result.code}:\n${result.stderr}`);
    return result.stdout;
  },
  async uploadMultipart(bucket, key, file) {
    await rclone('copyto', file, remote(bucket, key));
  },
  async list(bucket, prefix, delimiter) {
    const entries = await lsjson(...(delimiter ? [] : ['-R', '--files-only']), remote(bucket, prefix));
    return {
      keys: entries.filter((e) => !e.IsDir).map((e) => prefix + e.Path),
      prefixes: entries.filter((e) => e.IsDir).map((e) => `${prefix}${e.Path}/`),
    };
  },
  async listPaged(bucket, prefix, pageSize) {
    const result = await run(tool.path, [...base, 'lsjson', '-R', '--files-only', '--s3-list-chunk', String(pageSize), '--dump', 'headers', remote(bucket, prefix)], { env });
    if (result.code !== 0) throw new Error(`rclone lsjson exited ${result.code}:\n${result.stderr}`);
    const entries = JSON.parse(result.stdout.toString()) as Entry[];
    const pages = result.stderr.split('\n').filter((line) => line.includes(`: GET /${bucket}?`) && line.includes(`max-keys=${pageSize}`)).length;
    return { keys: entries.map((e) => prefix + e.Path), pages };
  },
  async copy(bucket, from, to) {
    await rclone('copyto', remote(bucket, from), remote(bucket, to));
  },
  presignGet: async (bucket, key) => (await rclone('link', '--expire', '5m', remote(bucket, key))).trim().split('\n').pop()!,
  async deleteObject(bucket, key) {
    await rclone('deletefile', remote(bucket, key));
  },
  // rclone has no batch delete for S3: `delete` lists and removes the objects one by one.
  async deleteObjects(bucket) {
    await rclone('delete', remote(bucket));
  },
  async headStatus(bucket, key) {
    const result = await run(tool.path, [...base, 'lsjson', '--stat', '--dump', 'headers', remote(bucket, key)], { env });
    const status = dumpedStatus(result.stderr, /: HEAD \//);
    if (status === undefined) throw new Error(`rclone sent no HEAD (exit ${result.code}):\n${result.stderr}`);
    return status;
  },
  async deleteBucket(bucket) {
    await rclone('rmdir', remote(bucket));
  },
};

runScenario(t, client, ws, { bucket: 'rclone', presignedHost: `127.0.0.1:${server.port}` });
