// The commit protocol against real processes: restarts, kill -9 mid-upload, reclaimed
// orphans, replicas that fail over on corruption, and bounded memory.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync, openSync, readSync, writeSync, closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { datanodePids, outputWith, startServer, tempDir, type TestServer } from './helpers/server.js';
import { aws, awsEnv, s3Failure, sdkClient } from './helpers/clients.js';
import { patternBody, presignedPath, send } from './helpers/raw.js';
import { waitFor } from './helpers/wait.js';

function blockFiles(dataDir: string, datanode?: number): string[] {
  const roots = datanode ? [join(dataDir, 'datanodes', String(datanode))] : readdirSync(join(dataDir, 'datanodes')).map((d) => join(dataDir, 'datanodes', d));
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.block')) files.push(path);
    }
  };
  for (const root of roots) walk(root);
  return files;
}

/** Size of a file, 0 when the purge removed it between listing and looking. */
const sizeOf = (file: string): number => statSync(file, { throwIfNoEntry: false })?.size ?? 0;
const diskBytes = (dataDir: string, datanode?: number): number => blockFiles(dataDir, datanode).reduce((sum, f) => sum + sizeOf(f), 0);

function flipByte(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, at);
  byte[0] ^= 0xff;
  writeSync(fd, byte, 0, 1, at);
  closeSync(fd);
}

t.test('aws CLI round trip of 50 MiB, byte-identical, before and after a restart', async (t) => {
  const dataDir = tempDir();
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const file = join(dataDir, 'upload.bin');
  const content = randomBytes(50 * 1024 * 1024);
  writeFileSync(file, content);
  const md5 = createHash('md5').update(content).digest('hex');

  let server = await startServer({ dataDir });
  await aws(server, ['s3api', 'create-bucket', '--bucket', 'durable']);
  const put = JSON.parse(await aws(server, ['s3api', 'put-object', '--bucket', 'durable', '--key', 'big/file.bin', '--body', file]));
  t.equal(put.ETag, `"${md5}"`, 'ETag is the MD5');
  const out = join(dataDir, 'download.bin');
  await aws(server, ['s3api', 'get-object', '--bucket', 'durable', '--key', 'big/file.bin', out]);
  t.ok(readFileSync(out).equals(content), 'byte-identical');
  t.equal(await server.stop(), 0, 'SIGTERM exits 0');

  server = await startServer({ dataDir });
  t.teardown(() => server.kill9());
  rmSync(out);
  const head = JSON.parse(await aws(server, ['s3api', 'head-object', '--bucket', 'durable', '--key', 'big/file.bin']));
  t.equal(head.ETag, `"${md5}"`);
  await aws(server, ['s3api', 'get-object', '--bucket', 'durable', '--key', 'big/file.bin', out]);
  t.ok(readFileSync(out).equals(content), 'byte-identical after restart');
  await server.stop();
});

t.test('kill -9 during a 200 MiB upload: the key is absent, earlier objects intact, orphans reclaimed', async (t) => {
  const dataDir = tempDir();
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  // No inline objects here: this test watches every byte on the datanodes' disks.
  const args = ['--open-key-timeout', '2', '--purge-interval', '1', '--chunk-size', '1MiB', '--block-size', '16MiB', '--inline-threshold', '0'];
  let server = await startServer({ dataDir, args });
  const s3 = sdkClient(server);
  await s3.send(new CreateBucketCommand({ Bucket: 'crash' }));
  const earlier = randomBytes(3 * 1024 * 1024 + 17);
  await s3.send(new PutObjectCommand({ Bucket: 'crash', Key: 'earlier', Body: earlier }));
  const committedBytes = diskBytes(dataDir);
  t.equal(committedBytes, earlier.length);

  // A 200 MiB upload with the aws CLI (signed payload), killed once half of it is on disk.
  const file = join(dataDir, 'big.bin');
  writeFileSync(file, randomBytes(200 * 1024 * 1024));
  const upload = spawn('aws', ['--endpoint-url', server.url, 's3api', 'put-object', '--bucket', 'crash', '--key', 'victim', '--body', file], {
    env: awsEnv(),
    stdio: 'ignore',
  });
  const uploadDone = new Promise((resolve) => upload.once('exit', resolve));
  await waitFor('half the upload on disk', () => diskBytes(dataDir) > committedBytes + 100 * 1024 * 1024, 120_000);
  await server.kill9();
  await uploadDone;
  t.ok(diskBytes(dataDir) > committedBytes + 50 * 1024 * 1024, 'orphaned data was on disk at the crash');

  server = await startServer({ dataDir, args });
  t.teardown(() => server.kill9());
  const s3again = sdkClient(server);
  t.same(await s3Failure(s3again.send(new HeadObjectCommand({ Bucket: 'crash', Key: 'victim' }))), { code: 'NotFound', status: 404 });
  const got = await s3again.send(new GetObjectCommand({ Bucket: 'crash', Key: 'earlier' }));
  t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(earlier), 'earlier object intact');
  await waitFor('orphaned blocks removed from the datanodes', () => diskBytes(dataDir) === committedBytes);
  t.pass('datanode disk usage is back to the committed objects');

  // Deleting and overwriting objects gives their blocks back too.
  await s3again.send(new PutObjectCommand({ Bucket: 'crash', Key: 'earlier', Body: Buffer.alloc(1000) }));
  await waitFor('the overwritten version reclaimed', () => diskBytes(dataDir) === 1000);
  await s3again.send(new DeleteObjectCommand({ Bucket: 'crash', Key: 'earlier' }));
  await waitFor('the deleted object reclaimed', () => diskBytes(dataDir) === 0);
  t.pass('overwrites and deletes free datanode space');
  await server.stop();
});

/** s3g_block_read_bytes_total of a server, by how the bytes were read. */
async function blockReadBytes(server: TestServer): Promise<{ grpc: number; shortCircuit: number }> {
  const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
  const via = (label: string): number => Number(new RegExp(`^s3g_block_read_bytes_total\\{via="${label}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { grpc: via('grpc'), shortCircuit: via('short-circuit') };
}

t.test('3 replicas: corrupted copies are skipped; a single corrupted replica fails the GET', async (t) => {
  const content = randomBytes(6 * 1024 * 1024 + 123);
  const server3 = await startServer({ args: ['--datanodes', '3', '--replication', '3', '--chunk-size', '1MiB'] });
  t.teardown(() => server3.kill9());
  const s3 = sdkClient(server3);
  await s3.send(new CreateBucketCommand({ Bucket: 'replicas' }));
  await s3.send(new PutObjectCommand({ Bucket: 'replicas', Key: 'obj', Body: content }));
  const files1 = blockFiles(server3.dataDir, 1);
  t.equal(files1.length, 1);
  t.equal(blockFiles(server3.dataDir).length, 3, 'one block on each of 3 datanodes');
  // Corrupt two of the three copies, at different places; reads must still be correct.
  flipByte(files1[0]!, 10);
  flipByte(blockFiles(server3.dataDir, 2)[0]!, 5 * 1024 * 1024);
  for (let i = 0; i < 3; i++) {
    const got = await s3.send(new GetObjectCommand({ Bucket: 'replicas', Key: 'obj' }));
    t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(content), `read ${i} is correct`);
  }
  const ranged = await s3.send(new GetObjectCommand({ Bucket: 'replicas', Key: 'obj', Range: 'bytes=5242000-5243000' }));
  t.ok(Buffer.from(await ranged.Body!.transformToByteArray()).equals(content.subarray(5242000, 5243001)), 'ranged read is correct');
  const reads3 = await blockReadBytes(server3);
  t.ok(reads3.shortCircuit >= 3 * content.length, `read from the datanodes' files on this host (${reads3.shortCircuit} bytes)`);
  t.equal(reads3.grpc, 0, 'a corrupted copy fails over gRPC too: no byte of it is served');
  await server3.stop();

  // The same failures over gRPC only.
  const server1 = await startServer({ args: ['--chunk-size', '1MiB', '--short-circuit-reads', 'false'] });
  t.teardown(() => server1.kill9());
  const s3single = sdkClient(server1);
  await s3single.send(new CreateBucketCommand({ Bucket: 'single' }));
  await s3single.send(new PutObjectCommand({ Bucket: 'single', Key: 'head-corrupt', Body: content }));
  await s3single.send(new PutObjectCommand({ Bucket: 'single', Key: 'tail-corrupt', Body: content }));
  const [first, second] = blockFiles(server1.dataDir).sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  flipByte(first!, 100);
  flipByte(second!, 5 * 1024 * 1024 + 7);
  const early = await send(server1, 'GET', await presignedPath(server1, 'GET', 'single', 'head-corrupt'), {});
  t.equal(early.status, 500, 'corruption in the first bytes: a clean 500');
  const late = await send(server1, 'GET', await presignedPath(server1, 'GET', 'single', 'tail-corrupt'), {});
  t.ok(late.status !== 200 || late.aborted, 'corruption later: the response never completes as a 200');
  t.ok(late.body.length < content.length, 'fewer bytes than the object');
  t.ok(content.subarray(0, late.body.length).equals(late.body), 'every byte sent was correct');
  const reads1 = await blockReadBytes(server1);
  t.equal(reads1.shortCircuit, 0, 'short-circuit-reads false: no block byte read from files');
  t.ok(reads1.grpc > 0, `all over gRPC (${reads1.grpc} bytes)`);
  await server1.stop();
});

/** Peak RSS (VmHWM) of a fresh server's gateway process after one streamed upload of `size` bytes. */
async function peakRssDuringUpload(size: number): Promise<number> {
  const server: TestServer = await startServer();
  try {
    await sdkClient(server).send(new CreateBucketCommand({ Bucket: 'memory' }));
    const res = await send(server, 'PUT', await presignedPath(server, 'PUT', 'memory', 'object'), { 'content-length': String(size) }, patternBody(size, randomBytes(1 << 20)));
    if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${res.body.toString()}`);
    const status = readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
  } finally {
    await server.kill9();
    rmSync(server.dataDir, { recursive: true, force: true });
  }
}

t.test('peak RSS uploading 1 GiB stays within 64 MiB of uploading 64 MiB', async (t) => {
  const small = await peakRssDuringUpload(64 * 1024 * 1024);
  const large = await peakRssDuringUpload(1024 * 1024 * 1024);
  t.comment(`peak RSS: 64 MiB upload ${(small / 2 ** 20).toFixed(1)} MiB, 1 GiB upload ${(large / 2 ** 20).toFixed(1)} MiB`);
  t.ok(large - small < 64 * 1024 * 1024, `difference ${((large - small) / 2 ** 20).toFixed(1)} MiB`);
});

t.test('3 replicas: a datanode killed during an upload is excluded and the upload succeeds', async (t) => {
  const server = await startServer({ args: ['--datanodes', '3', '--replication', '3', '--chunk-size', '1MiB', '--block-size', '8MiB'] });
  t.teardown(() => server.kill9());
  const pids = datanodePids(server);
  // bin/s3g's node flags (heap sizing) reach the datanodes serve forks, not only the gateway.
  const nodeFlags = (pid: number): string[] => {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.slice(1, args.findIndex((arg) => arg.endsWith('.js')));
  };
  t.ok(nodeFlags(server.proc.pid!).some((flag) => /^--initial-old-space-size=\d+$/.test(flag)), 'the gateway runs with bin/s3g\'s heap flag');
  for (const pid of Object.values(pids)) t.same(nodeFlags(pid), nodeFlags(server.proc.pid!), `datanode ${pid} runs with the same flags`);
  const s3 = sdkClient(server);
  await s3.send(new CreateBucketCommand({ Bucket: 'failover' }));
  const size = 96 * 1024 * 1024;
  const pattern = randomBytes(1 << 20);
  const upload = send(server, 'PUT', await presignedPath(server, 'PUT', 'failover', 'big'), { 'content-length': String(size) }, patternBody(size, pattern));
  await waitFor('a third of the upload on datanode 2', () => diskBytes(server.dataDir, 2) > 32 * 1024 * 1024, 60_000);
  process.kill(pids['2']!, 'SIGKILL');
  const res = await upload;
  t.equal(res.status, 200, `upload succeeded: ${res.body.toString()}`);
  const got = await s3.send(new GetObjectCommand({ Bucket: 'failover', Key: 'big' }));
  const bytes = Buffer.from(await got.Body!.transformToByteArray());
  t.equal(bytes.length, size);
  let intact = true;
  for (let at = 0; at < size; at += pattern.length) intact &&= bytes.subarray(at, at + pattern.length).equals(pattern.subarray(0, Math.min(pattern.length, size - at)));
  t.ok(intact, 'byte-identical');
  t.match(await outputWith(server, 'replica failed during write'), /replica failed during write; excluding it/);
  await server.stop();
});

t.test('small objects live in the metadata row: no block files, same answers, survive a restart', async (t) => {
  const dataDir = tempDir();
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  let server = await startServer({ dataDir, args: ['--inline-threshold', '64KiB'] });
  let s3 = sdkClient(server);
  await s3.send(new CreateBucketCommand({ Bucket: 'inline' }));
  const small = randomBytes(64 * 1024);
  const put = await s3.send(new PutObjectCommand({ Bucket: 'inline', Key: 'small', Body: small }));
  t.equal(put.ETag, `"${createHash('md5').update(small).digest('hex')}"`);
  // Bodies sent in sixteen writes, up to the threshold: whether all of one is at hand when its
  // handler runs (then joined from its pieces) or still arriving, the same bytes go inline.
  const inPieces = [1, 16 * 1024 + 3, 64 * 1024 - 1, 64 * 1024].map((size) => randomBytes(size));
  for (const body of inPieces) {
    const pieces = Array.from({ length: 16 }, (_, i) => body.subarray(Math.floor((i * body.length) / 16), Math.floor(((i + 1) * body.length) / 16)));
    const path = await presignedPath(server, 'PUT', 'inline', `pieces-${body.length}`);
    const response = await send(server, 'PUT', path, { 'content-length': String(body.length) }, (async function* () { yield* pieces; })());
    t.equal(response.status, 200, `${body.length} bytes in pieces`);
    t.equal(response.headers.etag, `"${createHash('md5').update(body).digest('hex')}"`);
  }
  t.equal(blockFiles(dataDir).length, 0, 'nothing on the datanodes');
  await s3.send(new PutObjectCommand({ Bucket: 'inline', Key: 'large', Body: randomBytes(64 * 1024 + 1) }));
  t.equal(blockFiles(dataDir).length, 1, 'one byte over the threshold goes to a block');
  await server.stop();
  server = await startServer({ dataDir });
  t.teardown(() => server.kill9());
  s3 = sdkClient(server);
  const got = await s3.send(new GetObjectCommand({ Bucket: 'inline', Key: 'small' }));
  t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(small), 'after a restart');
  for (const body of inPieces) {
    const stored = await s3.send(new GetObjectCommand({ Bucket: 'inline', Key: `pieces-${body.length}` }));
    t.ok(Buffer.from(await stored.Body!.transformToByteArray()).equals(body), `${body.length} bytes sent in pieces, after a restart`);
  }
  const ranged = await s3.send(new GetObjectCommand({ Bucket: 'inline', Key: 'small', Range: 'bytes=100-199' }));
  t.ok(Buffer.from(await ranged.Body!.transformToByteArray()).equals(small.subarray(100, 200)));
  await s3.send(new CopyObjectCommand({ Bucket: 'inline', Key: 'copy', CopySource: 'inline/small' }));
  const copied = await s3.send(new GetObjectCommand({ Bucket: 'inline', Key: 'copy' }));
  t.ok(Buffer.from(await copied.Body!.transformToByteArray()).equals(small), 'copied');
  await server.stop();
});
