// Datanodes short of disk space: a datanode takes no new block while its filesystem has less
// free than its reserve (--reserved-space; serve: --datanode-reserved-space), reports only the
// room above it, and an upload that finds no room anywhere fails with 507 InsufficientStorage
// (not a 500, and before any data is lost); where some datanode has room, blocks go there.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { BlockStore } from '../src/datanode/block-store.js';
import { openMetadataStore } from '../src/metadata/open.js';
import { disposeServer, outputWith, startDatanode, startServer, tempDir } from './helpers/server.js';
import { s3Failure, sdkClient } from './helpers/clients.js';

/** More free space than any disk here has. */
const HUGE = '1024TiB';
const MiB = 1024 * 1024;

t.test('a block store below its reserve refuses new blocks and reports no room', async (t) => {
  const dir = tempDir('s3g-test-reserve-');
  const roomy = await BlockStore.open(join(dir, 'roomy'));
  const full = await BlockStore.open(join(dir, 'full'), { reservedBytes: 1024 ** 5 });
  t.teardown(async () => {
    await roomy.close();
    await full.close();
  });
  const writer = await roomy.openWriter({ containerId: 1, localId: 1 });
  await writer.abort();
  const roomyStats = await roomy.stats();
  t.ok(roomyStats.capacityBytes > roomyStats.usedBytes, 'without a reserve: room to spare');

  await t.rejects(
    full.openWriter({ containerId: 1, localId: 1 }),
    { name: 'StoreError', code: status.RESOURCE_EXHAUSTED, message: /bytes free, below the reserve of 1125899906842624/ },
    'a StoreError with RESOURCE_EXHAUSTED, as for ENOSPC',
  );
  const fullStats = await full.stats();
  t.equal(fullStats.capacityBytes, fullStats.usedBytes, 'capacity reported = used: no room');
  t.ok(fullStats.healthy, 'still healthy: it serves what it has');
  // The refused block left nothing behind, and the block id can be written once there is room.
  t.same(await full.delete([{ containerId: 1, localId: 1 }]), 0, 'no leftover of the refused block');
});

t.test('serve with no room: 507 InsufficientStorage, and nothing else breaks', async (t) => {
  const server = await startServer({ args: ['--datanodes', '2', '--datanode-reserved-space', HUGE, '--chunk-size', '1MiB'] });
  t.teardown(() => disposeServer(server));
  const s3 = sdkClient(server);
  await s3.send(new CreateBucketCommand({ Bucket: 'full' }));

  const small = randomBytes(1024);
  await s3.send(new PutObjectCommand({ Bucket: 'full', Key: 'inline', Body: small }));
  const back = await s3.send(new GetObjectCommand({ Bucket: 'full', Key: 'inline' }));
  t.same(Buffer.from(await back.Body!.transformToByteArray()), small, 'an object kept inline in metadata needs no datanode');

  const failure = await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'full', Key: 'big', Body: randomBytes(3 * MiB) })));
  t.same(failure, { code: 'InsufficientStorage', status: 507 }, 'a PUT that needs a block: 507 InsufficientStorage, at once (the SDK does not retry it)');
  t.same(await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'full', Key: 'big' }))), { code: 'NotFound', status: 404 }, 'no object was created');

  const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'full', Key: 'parts' }));
  const part = await s3Failure(s3.send(new UploadPartCommand({ Bucket: 'full', Key: 'parts', UploadId: upload.UploadId!, PartNumber: 1, Body: randomBytes(5 * MiB) })));
  t.same(part, { code: 'InsufficientStorage', status: 507 }, 'UploadPart: the same');
  const complete = await s3Failure(
    s3.send(new CompleteMultipartUploadCommand({ Bucket: 'full', Key: 'parts', UploadId: upload.UploadId!, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"0"' }] } })),
  );
  t.equal(complete.code, 'InvalidPart', 'the refused part was never stored');

  const logged = (await outputWith(server, 'RESOURCE_EXHAUSTED')).split('\n').find((l) => l.includes('replica failed during write') && l.includes('RESOURCE_EXHAUSTED'));
  t.ok(logged, 'the log names the datanode and the cause');
  const res = await fetch(`${server.adminUrl}/health`);
  t.equal(res.status, 200, 'the gateway stays healthy');
});

t.test('a cluster with one datanode full places every block on the one with room', async (t) => {
  const meta = `sqlite:${join(tempDir('s3g-test-capacity-'), 's3g.db')}`;
  const full = await startDatanode(meta, undefined, ['--reserved-space', HUGE]);
  const roomy = await startDatanode(meta);
  t.teardown(async () => {
    await full.stop();
    await roomy.stop();
  });
  const gateway = await startServer({ command: 'gateway', args: ['--meta', meta, '--chunk-size', '1MiB', '--block-size', '2MiB'] });
  t.teardown(() => disposeServer(gateway));
  const s3 = sdkClient(gateway);
  await s3.send(new CreateBucketCommand({ Bucket: 'spread' }));
  const bodies = Array.from({ length: 6 }, () => randomBytes(3 * MiB));
  for (const [i, body] of bodies.entries()) await s3.send(new PutObjectCommand({ Bucket: 'spread', Key: `k${i}`, Body: body }));
  for (const [i, body] of bodies.entries()) {
    const got = await s3.send(new GetObjectCommand({ Bucket: 'spread', Key: `k${i}` }));
    t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body), `k${i} reads back whole`);
  }

  const store = await openMetadataStore(meta);
  t.teardown(() => store.close());
  const datanodes = await store.listDatanodes();
  const fullRecord = datanodes.find((d) => d.address === full.address);
  const roomyRecord = datanodes.find((d) => d.address === roomy.address);
  t.ok(fullRecord && roomyRecord, 'both datanodes registered');
  t.equal(fullRecord!.capacityBytes, fullRecord!.usedBytes, 'the full one reports no room');
  t.equal(fullRecord!.usedBytes, 0, 'and holds no block');
  t.ok(roomyRecord!.capacityBytes > roomyRecord!.usedBytes, 'the other reports room');
});
