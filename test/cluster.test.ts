// Cluster mode against real processes: PostgreSQL metadata, two gateways, separate datanodes
// that are killed with SIGKILL mid-upload, re-replication back to three copies.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { rmSync } from 'node:fs';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { S3G, startDatanode, startServer, type TestDatanode, type TestServer } from './helpers/server.js';
import { s3Failure, sdkClient } from './helpers/clients.js';
import { patternBody, presignedPath, send } from './helpers/raw.js';
import { startPostgres } from './helpers/postgres.js';

const run = promisify(execFile);
const postgres = await startPostgres();
const meta = await postgres.createDatabase();
const datanodes: TestDatanode[] = [];
const gateways: TestServer[] = [];
t.teardown(async () => {
  for (const gateway of gateways) await gateway.kill9();
  for (const datanode of datanodes) {
    await datanode.kill9();
    rmSync(datanode.dataDir, { recursive: true, force: true });
  }
  await postgres.stop();
});

const gatewayArgs = ['--meta', meta, '--replication', '3', '--chunk-size', '1MiB', '--block-size', '8MiB', '--replication-interval', '1', '--purge-interval', '1'];
for (let i = 0; i < 3; i++) datanodes.push(await startDatanode(meta));
for (let i = 0; i < 2; i++) gateways.push(await startServer({ command: 'gateway', args: gatewayArgs }));
const [gw1, gw2] = gateways as [TestServer, TestServer];
const s3a = sdkClient(gw1);
const s3b = sdkClient(gw2);

const read = async (client: typeof s3a, key: string): Promise<Buffer> =>
  Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: 'cluster', Key: key }))).Body!.transformToByteArray());

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Replica datanode ids of every block of every object, from the metadata itself. */
async function replicaSets(): Promise<string[][]> {
  const rows = await postgres.query(
    meta,
    `SELECT b.local_id, string_agg(r.datanode_id, ',' ORDER BY r.datanode_id) AS replicas
     FROM objects o JOIN blocks b ON b.object_id = o.object_id JOIN block_replicas r ON r.local_id = b.local_id
     GROUP BY b.local_id ORDER BY b.local_id`,
  );
  return rows.map((row) => String(row.replicas).split(','));
}

const datanodeIds = async (): Promise<Map<string, string>> => {
  const rows = await postgres.query(meta, 'SELECT id, address FROM datanodes');
  return new Map(rows.map((r) => [String(r.address), String(r.id)]));
};

t.test('a datanode serves /ready and /metrics on its admin port', async (t) => {
  const ready = await fetch(`${datanodes[0]!.adminUrl}/ready`);
  t.equal(ready.status, 200);
  const metrics = await (await fetch(`${datanodes[0]!.adminUrl}/metrics`)).text();
  t.match(metrics, /s3g_datanode_capacity_bytes\{datanode="[^"]+"\} \d+/);
});

t.test('an object written through one gateway reads through the other', async (t) => {
  await s3a.send(new CreateBucketCommand({ Bucket: 'cluster' }));
  const body = randomBytes(3 * 1024 * 1024 + 7);
  await s3a.send(new PutObjectCommand({ Bucket: 'cluster', Key: 'shared', Body: body }));
  t.ok((await read(s3b, 'shared')).equals(body));
  const sets = await replicaSets();
  t.ok(sets.length > 0 && sets.every((set) => set.length === 3), 'every block on 3 datanodes');
});

t.test('8 concurrent writers of one key through both gateways leave one complete version', async (t) => {
  const bodies = Array.from({ length: 8 }, (_, i) => Buffer.concat([Buffer.from(`writer ${i} `), randomBytes(1024 * 1024 + i)]));
  await Promise.all(bodies.map((body, i) => (i % 2 ? s3a : s3b).send(new PutObjectCommand({ Bucket: 'cluster', Key: 'contended', Body: body }))));
  const winner = await read(s3a, 'contended');
  t.ok(bodies.some((body) => body.equals(winner)), 'the stored object is exactly one of the bodies');
  const head = await s3b.send(new GetObjectCommand({ Bucket: 'cluster', Key: 'contended' }));
  t.equal(head.ETag, `"${createHash('md5').update(winner).digest('hex')}"`, 'ETag and bytes agree');
});

t.test('kill -9 of a datanode mid-upload; reads without it; re-replication; a second failure', async (t) => {
  const earlier = randomBytes(5 * 1024 * 1024);
  await s3a.send(new PutObjectCommand({ Bucket: 'cluster', Key: 'earlier', Body: earlier }));
  const size = 300 * 1024 * 1024;
  const pattern = randomBytes(1 << 20);
  const upload = send(gw1, 'PUT', await presignedPath(gw1, 'PUT', 'cluster', 'big'), { 'content-length': String(size) }, patternBody(size, pattern));
  const victim = datanodes[1]!;
  await new Promise((r) => setTimeout(r, 2500));
  await victim.kill9();
  const res = await upload;
  t.equal(res.status, 200, `the upload succeeds without the killed datanode ${res.body.toString()}`);
  const big = await read(s3b, 'big');
  let same = big.length === size;
  for (let at = 0; same && at < size; at += pattern.length) same = big.subarray(at, at + pattern.length).equals(pattern);
  t.ok(same, 'byte-identical');
  t.ok((await read(s3b, 'earlier')).equals(earlier), 'earlier objects read with the datanode down');
  t.ok((await read(s3a, 'shared')).length > 0);

  // A replacement datanode joins; the dead one is declared dead; three copies come back.
  datanodes.push(await startDatanode(meta));
  const victimId = (await datanodeIds()).get(victim.address)!;
  await run(S3G, ['admin', '--meta', meta, 'datanode', 'dead', victimId]);
  await waitFor('every block back at 3 live replicas', async () => {
    const sets = await replicaSets();
    return sets.every((set) => set.length === 3 && !set.includes(victimId));
  }, 120_000);
  t.pass('re-replication restored 3 replicas without the dead datanode');

  // Losing another datanode still loses nothing.
  await datanodes[0]!.kill9();
  t.ok((await read(s3b, 'earlier')).equals(earlier));
  t.equal((await read(s3a, 'big')).length, size);
  t.ok((await read(s3b, 'shared')).length > 0);
});

t.test('kill -9 of a gateway mid-upload: the other serves, nothing partial is visible', async (t) => {
  const size = 64 * 1024 * 1024;
  // Paced at about 16 MiB/s, so that the kill after one second surely lands mid-upload.
  async function* paced(): AsyncGenerator<Buffer> {
    for await (const piece of patternBody(size, randomBytes(1 << 20))) {
      yield piece;
      await new Promise((r) => setTimeout(r, 60));
    }
  }
  const upload = send(gw1, 'PUT', await presignedPath(gw1, 'PUT', 'cluster', 'orphan'), { 'content-length': String(size) }, paced()).catch((error: unknown) => error);
  await new Promise((r) => setTimeout(r, 1000));
  await gw1.kill9();
  await upload;
  t.same(await s3Failure(s3b.send(new GetObjectCommand({ Bucket: 'cluster', Key: 'orphan' }))), { code: 'NoSuchKey', status: 404 });
  t.ok((await read(s3b, 'earlier')).length > 0, 'the other gateway keeps serving');
});
