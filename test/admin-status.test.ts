// The admin side of a running server: /health and /ready (down while a datanode is frozen and
// from SIGTERM on), `s3g admin status`, `s3g admin purge` and `s3g admin import` with progress.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACCESS_KEY, S3G, SECRET_KEY, disposeServer, startServer, tempDir, type TestServer } from './helpers/server.js';
import { signedRequest } from './helpers/raw.js';
import { BacklogProgress, Progress, formatBytes, formatDuration, formatProgress } from '../src/observability/progress.js';

const exec = promisify(execFile);
const s3g = (args: string[], env: NodeJS.ProcessEnv = {}) => exec(S3G, args, { env: { ...process.env, ...env }, maxBuffer: 16 << 20 });

async function put(server: TestServer, path: string, body: Buffer): Promise<void> {
  const res = await signedRequest(server, { method: 'PUT', path, body, headers: { 'content-length': String(body.length) } });
  if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${res.body.toString()}`);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Datanode process ids, from the server's 'serving' log line. */
function datanodePids(server: TestServer): Record<string, number> {
  const line = server.output().split('\n').find((l) => l.includes('"msg":"serving"'));
  return (JSON.parse(line!) as { datanodes: Record<string, number> }).datanodes;
}

t.test('progress arithmetic: rate, ETA, backlogs, formatting', async (t) => {
  t.match(new Progress(4, 4000).view(), { doneObjects: 0, totalObjects: 4, doneBytes: 0, totalBytes: 4000 });
  const start = Date.now();
  const p = new Progress(4, 4000);
  p.addBytes(1000);
  p.objectDone();
  p.view(start + 1000);
  p.addBytes(1000);
  const v = p.view(start + 2000);
  t.equal(v.rate, 1000, '1000 bytes in the second between samples');
  t.equal(v.etaSeconds, 2, '2000 bytes left at 1000 B/s');
  t.equal(formatProgress({ ...v, elapsedSeconds: 2 }), '1/4 objects, 1.95 KiB/3.91 KiB (50%), 1000 B/s, ETA 2s');

  const b = new BacklogProgress();
  b.sample(0, 0);
  t.match(b.view(), { backlog: 0, total: 0, done: 0, etaSeconds: 0 });
  b.sample(100, 1000);
  b.sample(60, 2000);
  b.sample(80, 3000); // more work arrived
  b.sample(40, 4000);
  t.match(b.view(), { backlog: 40, total: 120, done: 80 });
  t.ok(b.view().rate! > 0 && b.view().etaSeconds! > 0);
  b.sample(0, 5000);
  t.match(b.view(), { backlog: 0, done: 120, etaSeconds: 0 });
  b.sample(10, 6000);
  t.match(b.view(), { backlog: 10, total: 10, done: 0 }, 'a new episode starts from zero');

  t.equal(formatBytes(0), '0 B');
  t.equal(formatBytes(1536), '1.50 KiB');
  t.equal(formatBytes(5 * 1024 ** 3), '5.00 GiB');
  t.same([formatDuration(undefined), formatDuration(42), formatDuration(192), formatDuration(7322), formatDuration(90_000)], ['?', '42s', '3m12s', '2h02m', '1d01h']);
});

// Small objects would be kept inline (no blocks); this test counts blocks and replicas.
const server = await startServer({ args: ['--datanodes', '2', '--replication', '2', '--stats-interval', '0.3', '--purge-interval', '3600', '--inline-threshold', '0'] });
t.teardown(() => disposeServer(server));

t.test('health and readiness', async (t) => {
  const health = await fetch(`${server.adminUrl}/health`);
  t.equal(health.status, 200);
  const ready = await fetch(`${server.adminUrl}/ready`);
  t.equal(ready.status, 200);
  t.equal(await ready.text(), 'ready\n');

  // A datanode that stops answering (SIGSTOP: alive, so not restarted) leaves 1 of the 2 a
  // majority of replication 2 needs: still ready. Both frozen: not ready.
  const pids = Object.values(datanodePids(server));
  t.equal(pids.length, 2);
  try {
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    const body = await until('not ready', async () => {
      const res = await fetch(`${server.adminUrl}/ready`);
      return res.status === 503 ? res.text() : undefined;
    });
    t.match(body, /^not ready: 0 datanodes reachable, 1 needed/);
    t.equal((await fetch(`${server.adminUrl}/health`)).status, 200, 'still healthy: the process is up');
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  }
  await until('ready again', async () => ((await fetch(`${server.adminUrl}/ready`)).status === 200 ? true : undefined));
  t.pass('ready again once the datanodes answer');
});

t.test('admin status: gateways, datanodes, buckets, objects, bytes, replication', async (t) => {
  t.equal((await signedRequest(server, { method: 'PUT', path: '/status-a' })).status, 200);
  t.equal((await signedRequest(server, { method: 'PUT', path: '/status-b' })).status, 200);
  await put(server, '/status-a/one', randomBytes(1000));
  await put(server, '/status-a/two', randomBytes(2000));
  await put(server, '/status-b/three', randomBytes(3000));
  const status = await until('the new objects counted', async () => {
    const { stdout } = await s3g(['admin', 'status', '--admin-url', server.adminUrl, '--json']);
    const s = JSON.parse(stdout) as { totals: { objects: number } };
    return s.totals.objects === 3 ? (s as Record<string, unknown>) : undefined;
  });
  t.match(status, {
    readiness: { ready: true },
    gateways: [{ s3Url: server.url, adminUrl: server.adminUrl, version: '0.1.0', inFlight: Number, hashPool: { threads: Number } }],
    datanodes: [
      { id: '1', state: 'live', capacityBytes: Number, usedBytes: Number },
      { id: '2', state: 'live', capacityBytes: Number, usedBytes: Number },
    ],
    totals: { buckets: 2, objects: 3, bytes: 6000 },
    buckets: [
      { name: 'status-a', objects: 2, bytes: 3000 },
      { name: 'status-b', objects: 1, bytes: 3000 },
    ],
    replication: { factor: 2, blocks: 3, underReplicated: 0, lost: 0 },
    purge: { backlog: 0, running: false },
  });

  const { stdout } = await s3g(['admin', 'status', '--admin-url', server.adminUrl]);
  t.match(stdout, /^s3g cluster: ready\n/);
  t.match(stdout, /gateways \(1\)\n +GATEWAY +S3 .*\n +\S+ +http:\/\/127\.0\.0\.1:\d+ +0\.1\.0 /);
  t.match(stdout, /datanodes \(2 live of 2\)\n +ID +ADDRESS +STATE +USED +CAPACITY +USE% +HEARTBEAT\n +1 +127\.0\.0\.1:\d+ +live /);
  t.match(stdout, /buckets 2, objects 3, bytes 5\.86 KiB \(6000\)/);
  t.match(stdout, /replication: healthy: all 3 blocks have 2 live replicas/);
  t.match(stdout, /purge: deleted-block log empty/);

  // From the config (environment) rather than a flag.
  const port = new URL(server.adminUrl).port;
  const viaEnv = await s3g(['admin', 'status'], { S3G_ADMIN_PORT: port });
  t.match(viaEnv.stdout, /^s3g cluster: ready/);
  await t.rejects(s3g(['admin', 'status', '--admin-url', 'http://127.0.0.1:1']), /cannot reach the admin port at http:\/\/127\.0\.0\.1:1/);
});

t.test('admin purge follows the deleted-block log to empty', async (t) => {
  for (let i = 0; i < 20; i++) await put(server, `/status-b/doomed-${i}`, randomBytes(100));
  for (let i = 0; i < 20; i++) t.equal((await signedRequest(server, { method: 'DELETE', path: `/status-b/doomed-${i}` })).status, 204);
  // 20 objects × 1 block × 2 replicas wait in the log (purge-interval is an hour).
  await until('the backlog counted', async () => {
    const s = (await (await fetch(`${server.adminUrl}/api/status`)).json()) as { purge: { backlog: number } };
    return s.purge.backlog === 40 ? true : undefined;
  });
  const { stdout, stderr } = await s3g(['admin', 'purge', '--admin-url', server.adminUrl]);
  t.match(stderr, /^purge: \d+\/40 replicas removed, \d+ waiting, .*, ETA \S+$/m, 'progress lines');
  t.match(stdout, /^purge pass done: 40 replicas removed, 0 still waiting, \d+s\n$/);
  const after = (await (await fetch(`${server.adminUrl}/api/status`)).json()) as { purge: { backlog: number; done: number; running: boolean } };
  t.match(after.purge, { backlog: 0, done: 40, running: false });

  const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
  t.match(metrics, /^s3g_background_passes_total\{service="block-purge"\} [1-9]\d*$/m, 'the pass is counted');
  t.match(metrics, /^s3g_background_last_pass_work\{service="block-purge",unit="deletedReplicas"\} 40$/m, 'and what it did');
  t.match(metrics, /^s3g_background_backlog\{service="block-purge"\} 0$/m);
  t.match(metrics, /^s3g_background_done\{service="block-purge"\} 40$/m);
  const status = await s3g(['admin', 'status', '--admin-url', server.adminUrl]);
  t.match(status.stdout, /^service block-purge: runs here, \d+ passes, last \d+s ago: .*deletedReplicas 40/m);
});

t.test('admin import uploads a folder with progress, in parts above the threshold', async (t) => {
  const dir = tempDir('s3g-import-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, Buffer> = {
    'a.txt': Buffer.from('hello\n'),
    'empty': Buffer.alloc(0),
    'sub/b.bin': randomBytes(300_000),
    'sub/deeper/c d.bin': randomBytes(70_000),
    'big.bin': randomBytes(11 * 1024 * 1024),
  };
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), body);
  }
  const total = Object.values(files).reduce((a, b) => a + b.length, 0);
  const env = { S3G_ACCESS_KEY: ACCESS_KEY, S3G_SECRET_KEY: SECRET_KEY };
  const args = ['admin', 'import', dir, 's3://imported/batch-1', '--endpoint', server.url, '--multipart-threshold', '8MiB', '--part-size', '5MiB'];
  const { stdout, stderr } = await s3g([...args, '--json'], env);
  t.match(stderr, /^import: created bucket imported$/m);
  t.match(stderr, new RegExp(`^import: 5/5 objects, 11\\.\\d+ MiB/11\\.\\d+ MiB \\(100%\\), \\S+ \\S+/s, ETA \\S+$`, 'm'), 'a final progress line');
  t.match(JSON.parse(stdout), { target: 's3://imported/batch-1/', objects: 5, bytes: total, seconds: Number, bytesPerSecond: Number, failed: [] });

  for (const [name, body] of Object.entries(files)) {
    const res = await signedRequest(server, { method: 'GET', path: `/imported/batch-1/${name.split('/').map(encodeURIComponent).join('/')}` });
    t.equal(res.status, 200, `${name} is there`);
    t.ok(res.body.equals(body), `${name} has the file's bytes`);
    if (name === 'big.bin') t.match(res.headers.etag, /-3"$/, 'the big file went up in 3 parts');
  }

  const again = await s3g(args, env);
  t.match(again.stdout, /^imported 5 objects, 11\.\d+ MiB in \d+s \(.+\/s\) to s3:\/\/imported\/batch-1\/\n$/);
  t.notMatch(again.stderr, /created bucket/, 'an existing bucket is used as it is');

  const refused = await s3g([...args.slice(0, 4), '--endpoint', server.url], { S3G_ACCESS_KEY: ACCESS_KEY, S3G_SECRET_KEY: 'wrong' }).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  );
  t.equal(refused?.code, 1, 'bad credentials fail the import');
  t.match(refused?.stderr, /SignatureDoesNotMatch/);
});

t.test('readiness drops at SIGTERM while in-flight requests drain', async (t) => {
  const own = await startServer({ args: ['--shutdown-grace', '20'] });
  t.teardown(() => disposeServer(own));
  t.equal((await signedRequest(own, { method: 'PUT', path: '/draining' })).status, 200);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  async function* slowBody(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(1000, 1);
    await held;
    yield Buffer.alloc(1000, 2);
  }
  const upload = signedRequest(own, { method: 'PUT', path: '/draining/slow', body: slowBody(), headers: { 'content-length': '2000' } });
  await until('the upload in flight', async () => {
    const s = (await (await fetch(`${own.adminUrl}/api/status`)).json()) as { gateways: { inFlight: number }[] };
    return s.gateways[0]!.inFlight === 1 ? true : undefined;
  });
  const exited = new Promise<number | null>((resolve) => own.proc.once('exit', (code) => resolve(code)));
  own.proc.kill('SIGTERM');
  const body = await until('not ready', async () => {
    const res = await fetch(`${own.adminUrl}/ready`);
    return res.status === 503 ? res.text() : undefined;
  });
  t.equal(body, 'not ready: shutting down\n');
  t.equal((await fetch(`${own.adminUrl}/health`)).status, 200, 'alive while draining');
  release();
  t.equal((await upload).status, 200, 'the in-flight upload completes');
  t.equal(await exited, 0, 'then the server exits cleanly');
});
