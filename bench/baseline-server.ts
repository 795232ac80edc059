// The baseline servers' program (`node --import tsx bench/baseline-server.ts KIND DIR`,
// started by baselines.ts): bare node:http servers doing the same HTTP exchanges as s3g
// and nothing else.
//
// - small: PUT reads the body and answers 200 with its MD5 as ETag; GET answers 4 KiB;
//   HEAD answers the same headers. Given EXTRA_CPU_US, it first keeps the CPU busy that many
//   microseconds per request: how much a server may add to node:http and still reach a ratio.
// - large, the "ideal pipeline": PUT cuts the body into 4 MiB SharedArrayBuffer chunks (at
//   most three in flight per request, so the socket is paused when they are all busy),
//   hashes SHA-256 + MD5 + CRC32C in a Piscina pool (one long task per request, fed
//   through a MessagePort) while the same chunk is written to a file, fdatasyncs and
//   answers the MD5; GET streams that file back.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { SessionDigests, SessionMessage } from './hash-worker.js';

export type BaselineKind = 'small' | 'large';

const SMALL_OBJECT_SIZE = 4096;
const CHUNK_SIZE = 4 << 20;
const CHUNKS_IN_FLIGHT = 3;

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

function smallHandler(extraCpuUs: number): Handler {
  const object = Buffer.alloc(SMALL_OBJECT_SIZE, 0x61);
  const objectHeaders = {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(object.length),
    ETag: `"${createHash('md5').update(object).digest('hex')}"`,
    'Last-Modified': new Date().toUTCString(),
  };
  return async (req, res) => {
    // CPU time, not wall time: on a machine shared with the load generator the process may
    // be preempted mid-spin, which a clock would count as work done.
    if (extraCpuUs > 0) {
      const start = process.cpuUsage();
      for (let spent = process.cpuUsage(start); spent.user + spent.system < extraCpuUs; spent = process.cpuUsage(start));
    }
    if (req.method === 'PUT') {
      const md5 = createHash('md5');
      for await (const piece of req) md5.update(piece as Buffer);
      res.writeHead(200, { ETag: `"${md5.digest('hex')}"`, 'Content-Length': '0' }).end();
    } else if (req.method === 'GET') {
      res.writeHead(200, objectHeaders).end(object);
    } else if (req.method === 'HEAD') {
      res.writeHead(200, objectHeaders).end();
    } else {
      res.writeHead(405, { 'Content-Length': '0' }).end();
    }
  };
}

function largeHandler(dir: string): Handler {
  const pool = new Piscina({
    filename: new URL('./hash-worker.ts', import.meta.url).href,
    maxThreads: availableParallelism(),
    minThreads: availableParallelism(),
    concurrentTasksPerWorker: 64,
  });
  const spare: Buffer[] = [];
  const fileOf = (url: string | undefined): string => join(dir, createHash('sha1').update(url ?? '/').digest('hex'));

  async function put(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const channel = new MessageChannel();
    const digests = pool.run({ port: channel.port2 }, { transferList: [channel.port2] }) as Promise<SessionDigests>;
    const acks = new Map<number, () => void>();
    channel.port1.on('message', (seq: number) => {
      acks.get(seq)?.();
      acks.delete(seq);
    });
    // A new file renamed over the old one, as an object store replaces an object: rewriting
    // the old file in place would reuse the page-cache pages its truncation just freed, which
    // on this VM made every PUT after the first one half as fast again as the first.
    const target = fileOf(req.url);
    const written = `${target}.${process.hrtime.bigint()}`;
    const file = await open(written, 'wx');
    let renamed = false;
    const inFlight = new Set<Promise<void>>();
    try {
      const owned: Buffer[] = [];
      const free: Buffer[] = [];
      for (let i = 0; i < CHUNKS_IN_FLIGHT; i++) owned.push(spare.pop() ?? Buffer.from(new SharedArrayBuffer(CHUNK_SIZE)));
      free.push(...owned);
      let released: (() => void) | undefined;
      let seq = 0;
      let position = 0;
      const dispatch = (chunk: Buffer, length: number): void => {
        const id = seq++;
        const at = position;
        position += length;
        const hashed = new Promise<void>((resolve) => acks.set(id, resolve));
        channel.port1.postMessage({ seq: id, buffer: chunk.buffer as SharedArrayBuffer, length } satisfies SessionMessage);
        const done = Promise.all([hashed, file.write(chunk, 0, length, at)]).then(() => {
          inFlight.delete(done);
          free.push(chunk);
          released?.();
        });
        inFlight.add(done);
      };
      let current: Buffer | undefined;
      let filled = 0;
      for await (const piece of req) {
        const data = piece as Buffer;
        let offset = 0;
        while (offset < data.length) {
          while (!current && !(current = free.pop())) await new Promise<void>((resolve) => (released = resolve));
          const n = data.copy(current, filled, offset);
          filled += n;
          offset += n;
          if (filled === CHUNK_SIZE) {
            dispatch(current, filled);
            current = undefined;
            filled = 0;
          }
        }
      }
      if (current && filled > 0) dispatch(current, filled);
      await Promise.all(inFlight);
      channel.port1.postMessage({ end: true } satisfies SessionMessage);
      const { md5Hex } = await digests;
      await file.datasync();
      await rename(written, target);
      renamed = true;
      spare.push(...owned);
      res.writeHead(200, { ETag: `"${md5Hex}"`, 'Content-Length': '0' }).end();
    } finally {
      channel.port1.close();
      await Promise.allSettled(inFlight);
      await file.close();
      if (!renamed) await rm(written, { force: true });
    }
  }

  async function get(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = fileOf(req.url?.replace(/\?.*/, ''));
    const size = await stat(path).then((s) => s.size, () => undefined);
    if (size === undefined) {
      res.writeHead(404, { 'Content-Length': '0' }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) });
    await pipeline(createReadStream(path), res);
  }

  return async (req, res) => {
    if (req.method === 'PUT') return put(req, res);
    if (req.method === 'GET') return get(req, res);
    res.writeHead(405, { 'Content-Length': '0' }).end();
  };
}

async function serve(kind: BaselineKind, dir: string, extraCpuUs: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const handler = kind === 'small' ? smallHandler(extraCpuUs) : largeHandler(dir);
  const server = createServer((req, res) => {
    handler(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Length': '0' }).end();
      else res.destroy(error as Error);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address && typeof address === 'object') process.stdout.write(`baseline ready http://127.0.0.1:${address.port}\n`);
  });
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}

const [kind, dir, extraCpu = '0'] = process.argv.slice(2);
const extraCpuUs = Number(extraCpu);
if ((kind !== 'small' && kind !== 'large') || !dir || !(extraCpuUs >= 0)) throw new Error('usage: baseline-server.ts small|large DIR [EXTRA_CPU_US]');
void serve(kind, dir, extraCpuUs);
