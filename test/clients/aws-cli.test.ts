// The client scenario with the aws CLI v2 (Debian's awscli), `aws s3` and `aws s3api`,
// path-style and virtual-hosted-style, each from its own temporary AWS_CONFIG_FILE.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWorkspace, runScenario, type ScenarioClient } from '../helpers/client-scenario.js';
import { envWithout, findTool, jsonLineProcess, run } from '../helpers/exec.js';
import { pythonLocalhostEnv, resolvesToLoopback, VHOST_DOMAIN } from '../helpers/localhost-dns.js';
import { ACCESS_KEY, SECRET_KEY, disposeServer, startServer } from '../helpers/server.js';

// Debian's v2 is /usr/bin/aws; a pip-installed v1 may come first on PATH.
const cli = await findTool(['/usr/bin/aws', 'aws'], ['--version'], /^aws-cli\/2\./);
// Each `aws` costs about a second of Python start-up: when the CLI is a Python script (Debian's
// is), its commands run in forks of aws_cli_runner.py, which has imported the CLI once.
const python = existsSync(cli.path) ? /^#!(\S*python\S*)/.exec(readFileSync(cli.path, 'utf8'))?.[1] : undefined;
t.comment(`${cli.path}: ${cli.version}${python ? ', run in forks of aws_cli_runner.py' : ''}`);

const server = await startServer({ args: ['--domain', VHOST_DOMAIN] });
t.teardown(() => disposeServer(server));
const ws = createWorkspace();
t.teardown(() => ws.dispose());

const vhostBucket = 'cli-vhost';
const resolves = await resolvesToLoopback(`${vhostBucket}.${VHOST_DOMAIN}`);
t.comment(`${vhostBucket}.${VHOST_DOMAIN} ${resolves ? 'resolves to loopback' : "doesn't resolve here: the CLI gets test/helpers/localhost-dns/sitecustomize.py"}`);

function awsCli(style: 'path' | 'virtual'): ScenarioClient {
  const config = join(ws.dir, `aws-config-${style}`);
  writeFileSync(
    config,
    ['[default]', 'region = us-east-1', 'max_attempts = 1', 'cli_pager =', 's3 =', `  addressing_style = ${style}`, '  multipart_threshold = 5MB', '  multipart_chunksize = 5MB', ''].join('\n'),
  );
  const baseEnv: NodeJS.ProcessEnv = {
    ...envWithout('AWS_'),
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const env = style === 'virtual' && !resolves ? pythonLocalhostEnv(baseEnv) : baseEnv;
  const endpoint = style === 'virtual' ? `http://${VHOST_DOMAIN}:${server.port}` : server.url;
  const args = (rest: string[]): string[] => ['--endpoint-url', endpoint, '--output', 'json', ...rest];
  const runner = python ? jsonLineProcess(python, [fileURLToPath(new URL('aws_cli_runner.py', import.meta.url))], env) : undefined;
  t.teardown(() => runner?.close());
  const exec = async (rest: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    if (!runner) return run(cli.path, args(rest), { env }).then((r) => ({ ...r, stdout: r.stdout.toString() }));
    const [stdout, stderr] = [ws.scratch(), ws.scratch()];
    const { code } = await runner.request<{ code: number }>({ args: args(rest), stdout, stderr });
    return { code, stdout: readFileSync(stdout, 'utf8'), stderr: readFileSync(stderr, 'utf8') };
  };
  const aws = async (...rest: string[]): Promise<string> => {
    const result = await exec(rest);
    if (result.code !== 0) throw new Error(`aws ${rest.join(' ')} exited ${result.code}:\n${result.stderr}`);
    return result.stdout;
  };
  const json = async (...rest: string[]): Promise<Record<string, unknown>> => {
    const out = (await aws(...rest)).trim();
    return out ? JSON.parse(out) : {};
  };
  type Listed = { Contents?: { Key: string }[]; CommonPrefixes?: { Prefix: string }[]; NextContinuationToken?: string };

  return {
    async createBucket(bucket) {
      await aws('s3', 'mb', `s3://${bucket}`);
    },
    async listBuckets() {
      return ((await json('s3api', 'list-buckets')).Buckets as { Name: string }[]).map((b) => b.Name);
    },
    async putFile(bucket, key, file, meta) {
      if (!meta) return void (await aws('s3', 'cp', file, `s3://${bucket}/${key}`));
      const metadata = Object.entries(meta.metadata).map(([k, v]) => `${k}=${v}`).join(',');
      await aws('s3api', 'put-object', '--bucket', bucket, '--key', key, '--body', file, '--content-type', meta.contentType, '--metadata', metadata);
    },
    async putDir(bucket, prefix, dir) {
      await aws('s3', 'cp', '--recursive', dir, `s3://${bucket}/${prefix}`);
    },
    async head(bucket, key) {
      const head = await json('s3api', 'head-object', '--bucket', bucket, '--key', key);
      return {
        size: head.ContentLength as number,
        etag: (head.ETag as string).replaceAll('"', ''),
        contentType: head.ContentType as string,
        metadata: head.Metadata as Record<string, string>,
      };
    },
    async getFile(bucket, key, dest) {
      await aws('s3', 'cp', `s3://${bucket}/${key}`, dest);
    },
    async getDir(bucket, prefix, dir) {
      await aws('s3', 'cp', '--recursive', `s3://${bucket}/${prefix}`, dir);
    },
    async getRange(bucket, key, range) {
      const dest = ws.scratch();
      await aws('s3api', 'get-object', '--bucket', bucket, '--key', key, '--range', `bytes=${range.start}-${range.end ?? ''}`, dest);
      return readFileSync(dest);
    },
    async uploadMultipart(bucket, key, file) {
      await aws('s3', 'cp', file, `s3://${bucket}/${key}`);
    },
    async list(bucket, prefix, delimiter) {
      const listed = (await json('s3api', 'list-objects-v2', '--bucket', bucket, '--prefix', prefix, ...(delimiter ? ['--delimiter', delimiter] : []))) as Listed;
      return { keys: (listed.Contents ?? []).map((o) => o.Key), prefixes: (listed.CommonPrefixes ?? []).map((p) => p.Prefix) };
    },
    async listPaged(bucket, prefix, pageSize) {
      const keys: string[] = [];
      let pages = 0;
      let token: string | undefined;
      do {
        const page = (await json('s3api', 'list-objects-v2', '--no-paginate', '--bucket', bucket, '--prefix', prefix, '--max-keys', String(pageSize), ...(token ? ['--continuation-token', token] : []))) as Listed;
        pages++;
        keys.push(...(page.Contents ?? []).map((o) => o.Key));
        token = page.NextContinuationToken;
      } while (token);
      return { keys, pages };
    },
    async copy(bucket, from, to) {
      await aws('s3api', 'copy-object', '--bucket', bucket, '--key', to, '--copy-source', `${bucket}/${from}`);
    },
    presignGet: async (bucket, key) => (await aws('s3', 'presign', `s3://${bucket}/${key}`, '--expires-in', '300')).trim(),
    async deleteObject(bucket, key) {
      await aws('s3', 'rm', `s3://${bucket}/${key}`);
    },
    async deleteObjects(bucket, keys) {
      const result = await json('s3api', 'delete-objects', '--bucket', bucket, '--delete', JSON.stringify({ Objects: keys.map((Key) => ({ Key })) }));
      if (result.Errors) throw new Error(`DeleteObjects errors: ${JSON.stringify(result.Errors)}`);
    },
    async headStatus(bucket, key) {
      const result = await exec(['s3api', 'head-object', '--bucket', bucket, '--key', key]);
      if (result.code === 0) return 200;
      const status = /An error occurred \((\d{3})\)/.exec(result.stderr)?.[1];
      if (!status) throw new Error(`head-object failed without an HTTP status:\n${result.stderr}`);
      return Number(status);
    },
    async deleteBucket(bucket) {
      await aws('s3', 'rb', `s3://${bucket}`);
    },
  };
}

// The two styles run side by side.
t.jobs = 2;
t.test('path-style', async (t) => {
  runScenario(t, awsCli('path'), ws, { bucket: 'cli-path', presignedHost: `127.0.0.1:${server.port}` });
});

t.test('virtual-hosted-style', async (t) => {
  runScenario(t, awsCli('virtual'), ws, { bucket: vhostBucket, presignedHost: `${vhostBucket}.${VHOST_DOMAIN}:${server.port}` });
});
