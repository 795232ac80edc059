// Datanode: block store + gRPC server + client, against real servers on 127.0.0.1 and one
// datanode forked as its own process.
import t, { type Test } from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { firstBadSlice, sliceChecksums } from '../src/hashing/checksums.js';
import { DatanodeClient, type BlockPiece, type BlockRef, type BlockSource } from '../src/datanode/client.js';
import { LocalBlockReader } from '../src/datanode/local-reader.js';
import { HashPool } from '../src/hashing/pool.js';
import { ObjectReader } from '../src/pipeline/object-reader.js';
import type { Placement } from '../src/pipeline/placement.js';
import { startDatanodeServer, type DatanodeServer } from '../src/datanode/server.js';
import { encodeChunk } from '../src/datanode/chunk-encoding.js';
import { copyBytes, SharedStaging } from '../src/hashing/shared-memory.js';
import { datanodeService, type WriteBlockRequest } from '../src/datanode/proto.js';
import { releaseReceived } from '../src/datanode/receive-buffers.js';
import { createRequire } from 'node:module';
import fc from 'fast-check';

// grpc-js's decoder, as receive-buffers.ts (loaded with the datanode server) replaced its write.
const { StreamDecoder } = createRequire(import.meta.url)('@grpc/grpc-js/build/src/stream-decoder.js') as {
  StreamDecoder: new (maxReadMessageLength: number) => { write(data: Buffer): Buffer[] };
};

const BPC = 512;
const MiB = 1024 * 1024;

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 's3g-datanode-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}


async function startNode(t: Test, dir?: string): Promise<{ server: DatanodeServer; client: DatanodeClient; dir: string }> {
  dir ??= await tempDir(t);
  const server = await startDatanodeServer({ id: 'dn-test', dir, host: '127.0.0.1', port: 0 });
  const client = new DatanodeClient(server.address);
  t.teardown(async () => {
    client.close();
    await server.close(100);
  });
  return { server, client, dir };
}

function sums(data: Uint8Array, bpc = BPC): { bytesPerChecksum: number; crc32c: number[] } {
  return { bytesPerChecksum: bpc, crc32c: sliceChecksums(data, bpc) };
}

async function putBlock(client: DatanodeClient, block: BlockRef, data: Buffer, chunkSize: number, bpc = BPC): Promise<void> {
  const writer = client.openBlockWriter(block);
  const acks: Promise<void>[] = [];
  for (let at = 0; at < data.length; at += chunkSize) {
    const chunk = data.subarray(at, at + chunkSize);
    acks.push(writer.writeChunk(at, chunk, sums(chunk, bpc)));
  }
  await Promise.all(acks);
  await writer.commit(data.length);
}

t.test('a hand-encoded chunk is gRPC-framed and decodes with protobufjs to the same fields', async (t) => {
  const decode = (bytes: Buffer) => datanodeService.WriteBlock!.requestDeserialize(bytes) as WriteBlockRequest;
  const cases = [
    { containerId: 0, localId: 0, offset: 0, length: 0 },
    { containerId: 1, localId: 127, offset: 128, length: 13 },
    { containerId: 2 ** 40 + 5, localId: 2 ** 53 - 1, offset: 2 ** 33 + 7, length: 3 * BPC + 100 },
  ];
  for (const c of cases) {
    // Shared memory at an unaligned offset: the word-wise copy must fall back cleanly.
    const shared = new Uint8Array(new SharedArrayBuffer(c.length + 3), 3, c.length);
    shared.set(randomBytes(c.length));
    const checksums = sums(shared);
    const { framed } = encodeChunk({ containerId: c.containerId, localId: c.localId }, c.offset, shared, checksums);
    t.equal(framed[0], 0, 'gRPC prefix: not compressed');
    t.equal(framed.readUInt32BE(1), framed.length - 5, 'gRPC prefix: the message length');
    const request = decode(framed.subarray(5));
    t.equal(request.body, 'chunk');
    t.same(request.chunk?.block, { containerId: c.containerId, localId: c.localId });
    t.equal(request.chunk?.offset, c.offset);
    t.same(request.chunk?.checksums, checksums);
    t.ok(request.chunk?.data.equals(shared), `data of ${c.length} bytes intact`);
  }
  const source = new Uint8Array(new SharedArrayBuffer(1027));
  source.set(randomBytes(1027));
  for (const [from, at] of [[0, 0], [0, 8], [8, 16], [1, 3], [0, 5]] as const) {
    const target = new Uint8Array(1100);
    copyBytes(source.subarray(from), target, at);
    t.ok(Buffer.from(target.subarray(at, at + 1027 - from)).equals(source.subarray(from)), `copyBytes from ${from} to ${at}`);
  }
  const staging = new SharedStaging();
  for (const offset of [0, 3, 8, 13]) {
    const piece = randomBytes(2000 + offset).subarray(offset);
    const shared = staging.share(piece);
    t.ok(shared.buffer instanceof SharedArrayBuffer && Buffer.from(shared).equals(piece), `a piece at offset ${offset} shared intact`);
    t.equal(shared.byteOffset % 8, piece.byteOffset % 8, 'at the same alignment');
  }
});

async function getRange(client: BlockSource, block: BlockRef, offset: number, length: number): Promise<{ pieces: BlockPiece[]; data: Buffer }> {
  const pieces: BlockPiece[] = [];
  for await (const piece of client.readBlock(block, offset, length)) pieces.push(piece);
  const data = Buffer.concat(pieces.map((p) => p.data));
  return { pieces, data };
}

/** Checks a ranged read against the source: aligned, contiguous, verified pieces covering the range. */
function checkRange(t: Test, source: Buffer, offset: number, length: number, pieces: BlockPiece[], bpc: number): void {
  const start = Math.floor(offset / bpc) * bpc;
  const end = Math.min(Math.ceil((offset + length) / bpc) * bpc, source.length);
  t.equal(pieces[0]?.offset, start, `range ${offset}+${length} starts at slice boundary ${start}`);
  let at = start;
  for (const piece of pieces) {
    if (piece.offset !== at) return void t.fail(`piece at ${piece.offset}, expected ${at}`);
    if (piece.data.length > MiB) return void t.fail(`piece of ${piece.data.length} bytes exceeds 1 MiB`);
    if (piece.checksums.bytesPerChecksum !== bpc) return void t.fail('wrong bytesPerChecksum');
    if (firstBadSlice(piece.data, bpc, piece.checksums.crc32c) !== -1) return void t.fail(`checksum mismatch in piece at ${piece.offset}`);
    at += piece.data.length;
  }
  t.equal(at, end, 'pieces end at the widened range end');
  const data = Buffer.concat(pieces.map((p) => p.data));
  t.ok(data.subarray(offset - start, offset - start + length).equals(source.subarray(offset, offset + length)), `bytes of ${offset}+${length} match`);
}

/** File descriptors of this process that point into dir. */
async function openFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) out.push(target);
  }
  return out;
}

async function eventually(check: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

/** A payload as gRPC frames it: compression flag 0, big-endian length, bytes. */
function grpcFramed(payload: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

t.test('gRPC reassembly: messages cut at any points come out whole and in order, released or not', async (t) => {
  fc.assert(
    fc.property(
      // Small messages (shared pool) and large ones (recycled memory), empty ones included.
      fc.array(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 256 * 1024 - 5, max: MiB + 7 })), { minLength: 1, maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 12 }),
      fc.boolean(),
      (sizes, cuts, release) => {
        // Each message one byte value of its own: a stale byte from reused memory would show.
        const expected = sizes.map((size, i) => grpcFramed(Buffer.alloc(size, i + 1)));
        const stream = Buffer.concat(expected);
        const decoder = new StreamDecoder(-1);
        const received: Buffer[] = [];
        for (let at = 0, cut = 0; at < stream.length; at += cuts[cut++ % cuts.length]!) {
          for (const message of decoder.write(stream.subarray(at, at + cuts[cut % cuts.length]!))) {
            received.push(Buffer.from(message));
            if (release) releaseReceived(message);
          }
        }
        return received.length === expected.length && received.every((message, i) => message.equals(expected[i]!));
      },
    ),
    { numRuns: 150 },
  );
  t.throws(() => new StreamDecoder(10).write(grpcFramed(Buffer.alloc(11))), /Received message larger than max \(11 vs 10\)/);
});

t.test('gRPC reassembly: a released message\'s memory takes the next large message, an unreleased one\'s does not', async (t) => {
  const decoder = new StreamDecoder(-1);
  // Framed, all three fit the same capacity (1 MiB).
  const [first] = decoder.write(grpcFramed(Buffer.alloc(MiB - 5, 1)));
  const [second] = decoder.write(grpcFramed(Buffer.alloc(MiB - 5, 2)));
  t.not(second!.buffer, first!.buffer, 'memory still in use is not handed out again');
  releaseReceived(second!.subarray(5));
  releaseReceived(Buffer.alloc(MiB)); // not reassembly memory: ignored
  const [third] = decoder.write(grpcFramed(Buffer.alloc(MiB - 100, 3)));
  t.equal(third!.buffer, second!.buffer, 'a released buffer is reused (views of it release it too)');
  t.ok(third!.equals(grpcFramed(Buffer.alloc(MiB - 100, 3))), 'and holds exactly the new message');
  t.ok(first!.equals(grpcFramed(Buffer.alloc(MiB - 5, 1))), 'the unreleased message is intact');
  const [small] = decoder.write(grpcFramed(Buffer.alloc(10, 4)));
  releaseReceived(small!);
  t.ok(small!.equals(grpcFramed(Buffer.alloc(10, 4))), 'small messages come from Buffer\'s pool');
});

t.test('multi-chunk block with 4 MiB chunks: write, commit, read whole and ranged', async (t) => {
  const { client } = await startNode(t);
  const bpc = 16 * 1024;
  const data = randomBytes(3 * 4 * MiB + 100_001);
  const block = { containerId: 1, localId: 1 };
  await putBlock(client, block, data, 4 * MiB, bpc);

  const info = await client.blockInfo(block);
  t.match(info, { containerId: 1, localId: 1, length: data.length, committed: true, chunkCount: 4 });

  const whole = await getRange(client, block, 0, data.length);
  t.ok(whole.data.equals(data), 'whole block reads back');
  checkRange(t, data, 0, data.length, whole.pieces, bpc);
  t.ok(whole.pieces.length >= 13, 'read comes in pieces of at most 1 MiB');

  for (const [offset, length] of [
    [1, 10],
    [bpc - 1, 2],
    [5_000_000, 1_234_567],
    [4 * MiB - 3, 7],
    [data.length - 1, 1],
    [data.length - 100_001, 100_001],
  ] as const) {
    const { pieces } = await getRange(client, block, offset, length);
    checkRange(t, data, offset, length, pieces, bpc);
  }
});

t.test('small slices, a short last chunk, and early stop of a read', async (t) => {
  const { client, dir } = await startNode(t);
  const data = randomBytes(4096 * 3 + 1000);
  const block = { containerId: 7, localId: 42 };
  await putBlock(client, block, data, 4096);
  t.ok(existsSync(join(dir, 'containers', '7', '42.block')), 'documented layout: containers/<cid>/<lid>.block');
  t.ok(existsSync(join(dir, 'containers', '7', '42.crc')));
  t.ok(existsSync(join(dir, 'containers', '7', '42.meta')));
  for (const [offset, length] of [
    [0, data.length],
    [100, 1],
    [511, 2],
    [4095, 4097],
    [12_300, 988],
  ] as const) {
    const { pieces } = await getRange(client, block, offset, length);
    checkRange(t, data, offset, length, pieces, BPC);
  }
  // Consumer stops after the first piece: the call is cancelled, nothing hangs.
  const big = randomBytes(3 * MiB);
  await putBlock(client, { containerId: 7, localId: 43 }, big, MiB);
  for await (const piece of client.readBlock({ containerId: 7, localId: 43 }, 0, big.length)) {
    t.equal(piece.offset, 0);
    break;
  }
  t.ok(await eventually(async () => (await openFilesUnder(dir)).length === 0), 'server closed the block files after the cancelled read');
  t.match(await client.info(), { healthy: true });
});

t.test('bad checksum is rejected with DATA_LOSS and nothing is committed', async (t) => {
  const { client } = await startNode(t);
  const block = { containerId: 2, localId: 1 };
  const good = randomBytes(4096);
  const bad = randomBytes(4096);
  const badSums = sums(bad);
  badSums.crc32c[3] = (badSums.crc32c[3]! ^ 1) >>> 0;
  const writer = client.openBlockWriter(block);
  await writer.writeChunk(0, good, sums(good));
  await t.rejects(writer.writeChunk(4096, bad, badSums), { code: status.DATA_LOSS, message: /slice 3/ });
  await t.rejects(writer.commit(8192), { code: status.DATA_LOSS }, 'the stream is dead after the rejection');
  t.match(await client.blockInfo(block), { committed: false });
  await t.rejects(getRange(client, block, 0, 1), { code: status.NOT_FOUND });
});

t.test('wrong offset, misaligned chunk, bad bpc and commit length mismatch are rejected', async (t) => {
  const { client } = await startNode(t);
  const chunk = randomBytes(1024);

  const w1 = client.openBlockWriter({ containerId: 3, localId: 1 });
  await w1.writeChunk(0, chunk, sums(chunk));
  await t.rejects(w1.writeChunk(100, chunk, sums(chunk)), { code: status.FAILED_PRECONDITION, message: /offset 100/ });

  const w2 = client.openBlockWriter({ containerId: 3, localId: 2 });
  const odd = randomBytes(700);
  await w2.writeChunk(0, odd, sums(odd));
  await t.rejects(w2.writeChunk(700, chunk, sums(chunk)), { code: status.INVALID_ARGUMENT, message: /mid-slice/ });

  const w3 = client.openBlockWriter({ containerId: 3, localId: 3 });
  await w3.writeChunk(0, chunk, sums(chunk));
  await t.rejects(w3.writeChunk(1024, chunk, sums(chunk, 256)), { code: status.INVALID_ARGUMENT, message: /bytesPerChecksum/ });

  const w4 = client.openBlockWriter({ containerId: 3, localId: 4 });
  await w4.writeChunk(0, chunk, sums(chunk));
  await t.rejects(w4.commit(1025), { code: status.FAILED_PRECONDITION, message: /commit length 1025/ });
  t.match(await client.blockInfo({ containerId: 3, localId: 4 }), { committed: false, length: 1024 });
  await t.rejects(getRange(client, { containerId: 3, localId: 4 }, 0, 10), { code: status.NOT_FOUND });
});

t.test('reads: uncommitted is NOT_FOUND, past the end is OUT_OF_RANGE; committed blocks are immutable', async (t) => {
  const { client } = await startNode(t);
  const chunk = randomBytes(2048);
  const block = { containerId: 4, localId: 1 };
  const writer = client.openBlockWriter(block);
  await writer.writeChunk(0, chunk, sums(chunk));
  t.match(await client.blockInfo(block), { committed: false, length: 2048, chunkCount: 1 });
  await t.rejects(getRange(client, block, 0, 2048), { code: status.NOT_FOUND });

  const other = client.openBlockWriter(block);
  await t.rejects(other.writeChunk(0, chunk, sums(chunk)), { code: status.ABORTED }, 'one writer per block');

  await writer.commit(2048);
  await t.rejects(getRange(client, block, 2000, 49), { code: status.OUT_OF_RANGE });
  await t.rejects(getRange(client, block, 4096, 1), { code: status.OUT_OF_RANGE });
  t.same((await getRange(client, block, 2048, 0)).pieces, [], 'empty range at the end reads nothing');

  const again = client.openBlockWriter(block);
  await t.rejects(again.writeChunk(0, chunk, sums(chunk)), { code: status.ALREADY_EXISTS });
  await t.rejects(client.blockInfo({ containerId: 4, localId: 999 }), { code: status.NOT_FOUND });
});

t.test('a flipped byte on disk is caught by the reader through the stored checksums', async (t) => {
  const { server, client } = await startNode(t);
  const data = randomBytes(8192);
  const block = { containerId: 5, localId: 9 };
  await putBlock(client, block, data, 4096);
  const at = 5000;
  const fh = await open(server.store.paths(block).data, 'r+');
  const byte = Buffer.alloc(1);
  await fh.read(byte, 0, 1, at);
  byte[0] = byte[0]! ^ 0x40;
  await fh.write(byte, 0, 1, at);
  await fh.close();

  const { pieces } = await getRange(client, block, 4000, 2000);
  t.equal(pieces.length, 1);
  const piece = pieces[0]!;
  t.equal(firstBadSlice(piece.data, BPC, piece.checksums.crc32c), Math.floor(at / BPC) - piece.offset / BPC, 'reader finds the corrupted slice');
  const clean = await getRange(client, block, 0, 4096);
  t.equal(firstBadSlice(clean.data, BPC, clean.pieces[0]!.checksums.crc32c), -1, 'untouched slices still verify');
});

t.test('short-circuit: the datanode files read on its host give the same pieces, and only where its instance id is', async (t) => {
  const { server, client, dir } = await startNode(t);
  const bpc = 16 * 1024;
  const data = randomBytes(2 * MiB + 5000);
  const block = { containerId: 3, localId: 4 };
  await putBlock(client, block, data, MiB, bpc);
  const info = await client.info();
  t.equal(info.dataDir, server.store.dir, 'Info reports the data directory');
  t.match(info.instanceId, /^[0-9a-f-]{36}$/, 'and a random instance id');
  const reader = await LocalBlockReader.forDatanode(info);
  if (!reader) return void t.fail('the files of a datanode on this host are found');
  for (const [offset, length] of [
    [0, data.length],
    [1, 10],
    [bpc - 1, 2],
    [MiB - 3, MiB + 7],
    [data.length - 1, 1],
  ] as const) {
    const local = await getRange(reader, block, offset, length);
    const remote = await getRange(client, block, offset, length);
    checkRange(t, data, offset, length, local.pieces, bpc);
    t.same(
      local.pieces.map((p) => [p.offset, p.data.length, p.checksums]),
      remote.pieces.map((p) => [p.offset, p.data.length, p.checksums]),
      `${offset}+${length}: the same pieces as over gRPC`,
    );
  }
  const staging = new SharedStaging();
  let at = MiB - 3;
  for await (const piece of reader.readBlock(block, at, MiB + 7, (length) => staging.take(length))) {
    t.ok(piece.data.buffer instanceof SharedArrayBuffer, `the piece at ${piece.offset} is read into the memory given`);
    t.ok(piece.data.equals(data.subarray(piece.offset, piece.offset + piece.data.length)), 'with the right bytes');
    at = piece.offset + piece.data.length;
  }
  t.equal(at, data.length, 'up to the end of the slice that holds the last byte (here the block end)');
  await t.rejects(getRange(reader, { containerId: 3, localId: 5 }, 0, 1), { code: status.NOT_FOUND }, 'a missing block is NOT_FOUND, as over gRPC');
  await t.rejects(getRange(reader, block, data.length, 1), { code: status.OUT_OF_RANGE });

  t.equal(await LocalBlockReader.forDatanode({ ...info, instanceId: randomBytes(16).toString('hex') }), undefined, 'a namesake directory of another datanode is not read');
  t.equal(await LocalBlockReader.forDatanode({ ...info, dataDir: await tempDir(t) }), undefined, 'nor a directory without the instance file');
  t.equal(await LocalBlockReader.forDatanode({ ...info, dataDir: '' }), undefined, 'nor an unknown one');
  await server.close(100);
  const restarted = await startDatanodeServer({ id: 'dn-test', dir, host: '127.0.0.1', port: 0 });
  t.teardown(() => restarted.close(100));
  t.not(restarted.store.instanceId, info.instanceId, 'a restarted datanode has a new instance id');
  t.equal(await LocalBlockReader.forDatanode(info), undefined, 'so what the old one reported no longer matches');
});

t.test('ObjectReader: a failed short-circuit read goes on over gRPC from the same replica', async (t) => {
  const { client } = await startNode(t);
  const bpc = 16 * 1024;
  const data = randomBytes(3 * MiB + 777);
  const block = { containerId: 8, localId: 1 };
  await putBlock(client, block, data, MiB, bpc);
  const pool = new HashPool({ threads: 1 });
  t.teardown(() => pool.close());
  let localTries = 0;
  const failing: BlockSource = {
    via: 'short-circuit',
    // eslint-disable-next-line require-yield -- fails before the first piece, as an unreadable file does
    async *readBlock() {
      localTries++;
      throw new Error('EACCES: permission denied');
    },
  };
  // The one stand-in: a short-circuit read that fails cannot be made here (tests run as root).
  const placement = { sources: () => [failing, client] } as unknown as Placement;
  const bytesVia = { grpc: 0, 'short-circuit': 0 };
  const failovers: string[] = [];
  const reader = new ObjectReader(pool, placement, {
    onRead: (via, bytes) => (bytesVia[via] += bytes),
    onFailover: (_block, datanodeId, error) => failovers.push(`${datanodeId}: ${String(error)}`),
  });
  const pieces: Uint8Array[] = [];
  for await (const piece of reader.read([{ ...block, length: data.length, replicas: ['dn-test'] }], 100, data.length - 2)) pieces.push(Buffer.from(piece)); // a piece may share memory with the next
  t.ok(Buffer.concat(pieces).equals(data.subarray(100, data.length - 1)), 'the range reads correctly');
  t.equal(localTries, 1);
  t.same(failovers, ['dn-test: Error: EACCES: permission denied'], 'the failed local read is reported');
  t.same(bytesVia, { grpc: data.length, 'short-circuit': 0 }, 'every byte came over gRPC (whole slices)');
});

t.test('delete frees used bytes; info reports capacity and used', async (t) => {
  const { server, client } = await startNode(t);
  const before = await client.info();
  t.match(before, { datanodeId: 'dn-test', healthy: true, usedBytes: 0, blockCount: 0 });
  t.ok(before.capacityBytes > 0, 'capacity from statfs');

  const data = randomBytes(100_000);
  await putBlock(client, { containerId: 6, localId: 1 }, data, 16 * 1024);
  await putBlock(client, { containerId: 6, localId: 2 }, data, 16 * 1024);
  const leftover = client.openBlockWriter({ containerId: 6, localId: 3 });
  const chunk = randomBytes(1024);
  await leftover.writeChunk(0, chunk, sums(chunk));
  leftover.abort();

  const full = await client.info();
  t.equal(full.usedBytes, 2 * data.length + 1024, 'used counts committed blocks and the uncommitted leftover');
  t.equal(full.blockCount, 2);
  t.ok(full.capacityBytes >= full.usedBytes);

  // Deleting a block whose writer is still open (the abort may not have arrived) aborts it.
  const deleted = await client.deleteBlocks([
    { containerId: 6, localId: 1 },
    { containerId: 6, localId: 3 },
    { containerId: 99, localId: 1 },
  ]);
  t.equal(deleted, 2, 'two existed; the missing one counts as done');
  const after = await client.info();
  t.equal(after.usedBytes, data.length);
  t.equal(after.blockCount, 1);
  t.notOk(existsSync(server.store.paths({ containerId: 6, localId: 1 }).data), 'data file removed');
  t.notOk(existsSync(server.store.paths({ containerId: 6, localId: 3 }).data), 'leftover removed');
  t.equal(await client.deleteBlocks([{ containerId: 6, localId: 1 }]), 0, 'deleting again is a no-op');
  await t.rejects(getRange(client, { containerId: 6, localId: 1 }, 0, 1), { code: status.NOT_FOUND });
});

t.test('committed blocks survive a restart on the same directory', async (t) => {
  const dir = await tempDir(t);
  const first = await startDatanodeServer({ id: 'dn-r', dir, host: '127.0.0.1', port: 0 });
  const c1 = new DatanodeClient(first.address);
  const data = randomBytes(50_000);
  await putBlock(c1, { containerId: 8, localId: 1 }, data, 8192);
  const pending = c1.openBlockWriter({ containerId: 8, localId: 2 });
  const chunk = randomBytes(4096);
  await pending.writeChunk(0, chunk, sums(chunk));
  // The open stream is cut by the shutdown; the block stays uncommitted.
  await first.close(50);
  await t.rejects(pending.commit(4096), 'the cut stream cannot commit');
  c1.close();

  const { client } = await startNode(t, dir);
  const { data: back } = await getRange(client, { containerId: 8, localId: 1 }, 0, data.length);
  t.ok(back.equals(data), 'committed block readable after restart');
  t.match(await client.info(), { usedBytes: data.length + 4096, blockCount: 1 });
  await t.rejects(getRange(client, { containerId: 8, localId: 2 }, 0, 1), { code: status.NOT_FOUND });
  // An uncommitted leftover may be written again from scratch.
  const fresh = randomBytes(3000);
  await putBlock(client, { containerId: 8, localId: 2 }, fresh, 1024);
  t.ok((await getRange(client, { containerId: 8, localId: 2 }, 0, 3000)).data.equals(fresh));
  t.match(await client.info(), { usedBytes: data.length + 3000, blockCount: 2 });
});

t.test('client abort mid-write leaves the server healthy and no file open', async (t) => {
  const { client, dir } = await startNode(t);
  const block = { containerId: 10, localId: 1 };
  const writer = client.openBlockWriter(block);
  const chunk = randomBytes(MiB);
  await writer.writeChunk(0, chunk, sums(chunk));
  const inFlight = writer.writeChunk(MiB, chunk, sums(chunk));
  writer.abort();
  await t.rejects(inFlight, { code: status.CANCELLED });
  await t.rejects(writer.commit(2 * MiB), { code: status.CANCELLED });

  t.ok(await eventually(async () => (await openFilesUnder(dir)).length === 0), 'no file handle left open');
  t.match(await client.blockInfo(block), { committed: false });
  t.match(await client.info(), { healthy: true, blockCount: 0 });
  const data = randomBytes(10_000);
  await putBlock(client, block, data, 4096);
  t.ok((await getRange(client, block, 0, data.length)).data.equals(data), 'the block can be written again');
});

t.test('a datanode child process: ready message, SIGKILL fails the client fast, SIGTERM exits 0', async (t) => {
  const dir = await tempDir(t);
  const child = forkDatanode(['--id', 'dn-child', '--dir', dir, '--host', '127.0.0.1', '--port', '0']);
  t.teardown(() => void child.kill('SIGKILL'));
  const ready = await new Promise<{ type: string; id: string; port: number }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { type: string; id: string; port: number }));
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
  t.match(ready, { type: 'ready', id: 'dn-child' });
  t.ok(ready.port > 0);

  const client = new DatanodeClient(`127.0.0.1:${ready.port}`);
  t.teardown(() => client.close());
  const data = randomBytes(20_000);
  await putBlock(client, { containerId: 1, localId: 1 }, data, 4096);
  t.match(await client.info(), { datanodeId: 'dn-child', usedBytes: data.length });

  const writer = client.openBlockWriter({ containerId: 1, localId: 2 });
  const chunk = randomBytes(4096);
  await writer.writeChunk(0, chunk, sums(chunk));
  const reads = client.readBlock({ containerId: 1, localId: 1 }, 0, data.length)[Symbol.asyncIterator]();

  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  const started = Date.now();
  await t.rejects(writer.commit(4096), { code: status.UNAVAILABLE }, 'open write stream fails');
  await t.rejects(client.info(), { code: status.UNAVAILABLE }, 'unary call fails');
  await t.rejects(reads.next(), { code: status.UNAVAILABLE }, 'read fails');
  t.ok(Date.now() - started < 5000, `failed fast (${Date.now() - started} ms)`);

  // Restarted on the same directory, it serves the committed block; SIGTERM exits cleanly.
  const again = forkDatanode(['--id', 'dn-child', '--dir', dir, '--port', '0']);
  t.teardown(() => void again.kill('SIGKILL'));
  const ready2 = await new Promise<{ port: number }>((resolve) => again.once('message', (m) => resolve(m as { port: number })));
  const c2 = new DatanodeClient(`127.0.0.1:${ready2.port}`);
  t.teardown(() => c2.close());
  t.ok((await getRange(c2, { containerId: 1, localId: 1 }, 0, data.length)).data.equals(data));
  const exit = new Promise<number | null>((resolve) => again.once('exit', resolve));
  again.kill('SIGTERM');
  t.equal(await exit, 0, 'SIGTERM exits 0');
});

/** Forks child.ts; from TypeScript sources it needs a TS loader (tsx if installed, else tap's). */
function forkDatanode(args: string[]): ChildProcess {
  const js = fileURLToPath(new URL('../src/datanode/child.js', import.meta.url));
  const ts = fileURLToPath(new URL('../src/datanode/child.ts', import.meta.url));
  if (existsSync(js)) return fork(js, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return fork(ts, args, { execArgv: ['--import', tsLoader()], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function tsLoader(): string {
  for (const candidate of ['tsx', '@tapjs/typescript/import']) {
    try {
      return import.meta.resolve(candidate);
    } catch {
      // not installed; try the next
    }
  }
  throw new Error('no TypeScript loader (tsx or @tapjs/typescript) to run child.ts');
}
