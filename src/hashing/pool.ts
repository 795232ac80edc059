// The hashing pool as the event loop sees it: streaming sessions (one per request body,
// living in one worker) and one-off tasks (whole small bodies, slice verification).
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { DigestOptions, Digests, SessionMessage, SessionReply, Task, WholeJob, WholeResult } from './worker.js';

export type { DigestOptions, Digests } from './worker.js';

/** What to compute over a whole body; slice CRCs (for datanodes) only with bytesPerChecksum. */
export type WholeOptions = Omit<WholeJob, 'data'>;

export interface HashPoolOptions {
  threads?: number;
  /** Sessions are mostly idle between chunks, so one worker carries many. */
  tasksPerWorker?: number;
  /**
   * Added to the workers' nice value: bulk hashing yields the CPU to the event loop, whose
   * delay every request waits on (needs @napi-rs/nice; 0 leaves the priority alone).
   */
  niceIncrement?: number;
}

/** What the pool reports of itself (metrics, the admin page). */
export interface PoolStats {
  threads: number;
  queueSize: number;
  utilization: number;
}

export interface ChunkHashes {
  crc32c: number[];
  /** Resolves once the worker no longer reads the chunk's bytes, so its buffer may be reused. */
  released: Promise<void>;
}

const workerFile = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url).href;

/** A batch of whole bodies is sent once it holds this much, not only at the end of the turn. */
const MAX_BATCH_BYTES = 1 << 20;

interface BatchedWhole {
  job: WholeJob;
  resolve: (result: WholeResult) => void;
  reject: (error: unknown) => void;
}

export class HashPool {
  private readonly piscina: Piscina;
  private batch: BatchedWhole[] = [];
  private batchBytes = 0;

  constructor(options: HashPoolOptions = {}) {
    // One core stays for the event loop (and, in `serve`, the datanodes): on 2 cores, 2 workers
    // ingested about 20% slower than 1 (bench/, 256 MiB signed PUTs, side by side).
    const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
    this.piscina = new Piscina({
      filename: workerFile,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: options.tasksPerWorker ?? 512,
      idleTimeout: Infinity,
      niceIncrement: options.niceIncrement ?? 0,
    });
  }

  /** A running digest over a body that arrives in chunks. */
  session(options: DigestOptions): HashSession {
    return new HashSession(this.piscina, options);
  }

  /**
   * Slice CRCs and digests of a body that is already whole (small objects). Bodies handed over
   * in the same turn of the event loop ride in one task: a pool round trip costs the event loop
   * tens of microseconds, hashing 4 KiB a few.
   */
  whole(data: Uint8Array, options: WholeOptions): Promise<WholeResult> {
    return new Promise((resolve, reject) => {
      if (this.batch.length === 0) setImmediate(() => this.flushWholes());
      this.batch.push({ job: { data, md5: options.md5, sha256: options.sha256, checksum: options.checksum, bytesPerChecksum: options.bytesPerChecksum }, resolve, reject });
      this.batchBytes += data.byteLength;
      if (this.batchBytes >= MAX_BATCH_BYTES) this.flushWholes();
    });
  }

  private flushWholes(): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    this.batchBytes = 0;
    const results: Promise<WholeResult[]> = this.piscina.run({ kind: 'wholes', jobs: batch.map((entry) => entry.job) } satisfies Task);
    results.then(
      (wholes) => batch.forEach((entry, i) => entry.resolve(wholes[i]!)),
      (error: unknown) => batch.forEach((entry) => entry.reject(error)),
    );
  }

  /** Index of the first slice whose CRC32C differs from `expected`, or -1. */
  verify(data: Uint8Array, bytesPerChecksum: number, expected: number[]): Promise<number> {
    return this.piscina.run({ kind: 'verify', data, bytesPerChecksum, expected } satisfies Task);
  }

  /**
   * Hex SHA-256 of one buffer (an aws-chunked chunk, whose signature covers its hash). Put the
   * bytes in SharedArrayBuffer memory so that posting them shares rather than copies.
   */
  sha256(data: Uint8Array): Promise<string> {
    return this.piscina.run({ kind: 'sha256', data } satisfies Task);
  }

  get stats(): PoolStats {
    return { threads: this.piscina.threads.length, queueSize: this.piscina.queueSize, utilization: this.piscina.utilization };
  }

  close(): Promise<void> {
    return this.piscina.destroy();
  }
}

interface Pending {
  crc: (crc32c: number[]) => void;
  released: () => void;
  digests: (digests: Digests) => void;
  fail: (error: Error) => void;
}

/**
 * One request's running digests, in one worker. Chunks should live in SharedArrayBuffer
 * memory so that posting them shares rather than copies; the caller must not overwrite a
 * chunk before its `released` promise resolves.
 */
export class HashSession {
  private readonly port: MessagePort;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;
  private readonly task: Promise<void>;

  constructor(piscina: Piscina, options: DigestOptions) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    port1.on('message', (reply: SessionReply) => this.onReply(reply));
    this.task = piscina.run({ kind: 'session', port: port2, ...options } satisfies Task, { transferList: [port2] });
    this.task.catch((error: Error) => this.fail(error));
  }

  update(data: Uint8Array): Promise<ChunkHashes> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    let released!: () => void;
    const releasedPromise = new Promise<void>((resolve) => (released = resolve));
    return new Promise<ChunkHashes>((resolve, reject) => {
      this.pending.set(id, {
        crc: (crc32c) => resolve({ crc32c, released: releasedPromise }),
        released,
        digests: () => undefined,
        fail: (error) => {
          released();
          reject(error);
        },
      });
      this.port.postMessage({ id, data } satisfies SessionMessage);
    });
  }

  async digest(): Promise<Digests> {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const digests = new Promise<Digests>((resolve, reject) => {
      this.pending.set(id, { crc: () => undefined, released: () => undefined, digests: resolve, fail: reject });
    });
    this.port.postMessage({ id, end: true } satisfies SessionMessage);
    const result = await digests;
    await this.task;
    this.port.close();
    return result;
  }

  /** Ends the worker task without digests (the request failed). */
  abort(): void {
    if (this.failure) return;
    this.port.postMessage({ abort: true } satisfies SessionMessage);
    this.fail(new Error('hash session aborted'));
    this.port.close();
  }

  private onReply(reply: SessionReply): void {
    const entry = this.pending.get(reply.id);
    if (!entry) return;
    if ('crc32c' in reply) entry.crc(reply.crc32c);
    else if ('released' in reply) {
      entry.released();
      this.pending.delete(reply.id);
    } else {
      entry.digests(reply.digests);
      this.pending.delete(reply.id);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const entry of this.pending.values()) entry.fail(error);
    this.pending.clear();
  }
}
