// Piscina worker: every per-byte computation of the gateway runs here, off the event loop.
// A request's running hashes (MD5, SHA-256, the x-amz-checksum algorithm) cannot move
// between threads, so a streaming session is one long task fed through a MessagePort;
// independent work (slice CRCs for a read, the small bodies handed over in one turn of the
// event loop) is one short task each.
import { createHash, hash, type Hash } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { firstBadSlice, sliceChecksums } from './checksums.js';
import { createChecksum, type ChecksumAlgorithm, type RunningChecksum } from './s3-checksums.js';

export interface DigestOptions {
  md5: boolean;
  sha256: boolean;
  checksum?: ChecksumAlgorithm;
  bytesPerChecksum: number;
}

export interface Digests {
  md5?: string; // hex
  sha256?: string; // hex
  checksum?: string; // base64, as in x-amz-checksum-*
}

export type SessionMessage = { id: number; data: Uint8Array } | { id: number; end: true } | { abort: true };
export type SessionReply = { id: number; crc32c: number[] } | { id: number; released: true } | { id: number; digests: Digests };

export type Task =
  | ({ kind: 'session'; port: MessagePort } & DigestOptions)
  | { kind: 'wholes'; jobs: WholeJob[] }
  | { kind: 'verify'; data: Uint8Array; bytesPerChecksum: number; expected: number[] }
  | { kind: 'sha256'; data: Uint8Array };

/** A body hashed at once; its slice CRCs only when it goes to datanodes (bytesPerChecksum given). */
export type WholeJob = { data: Uint8Array } & Omit<DigestOptions, 'bytesPerChecksum'> & { bytesPerChecksum?: number };
export type WholeResult = { crc32c: number[]; digests: Digests };

class RunningDigests {
  private readonly md5?: Hash;
  private readonly sha256?: Hash;
  private readonly checksum?: RunningChecksum;
  constructor(options: DigestOptions) {
    if (options.md5) this.md5 = createHash('md5');
    if (options.sha256) this.sha256 = createHash('sha256');
    if (options.checksum) this.checksum = createChecksum(options.checksum);
  }
  update(data: Uint8Array): void {
    this.md5?.update(data);
    this.sha256?.update(data);
    this.checksum?.update(data);
  }
  digest(): Digests {
    return {
      md5: this.md5?.digest('hex'),
      sha256: this.sha256?.digest('hex'),
      checksum: this.checksum?.digest(),
    };
  }
}

function runSession(task: Extract<Task, { kind: 'session' }>): Promise<void> {
  const running = new RunningDigests(task);
  const { port } = task;
  return new Promise((resolve) => {
    port.on('message', (message: SessionMessage) => {
      if ('abort' in message) {
        port.close();
        resolve();
      } else if ('end' in message) {
        port.postMessage({ id: message.id, digests: running.digest() } satisfies SessionReply);
        port.close();
        resolve();
      } else {
        // Slice CRCs first: the gateway sends the chunk to the datanodes while we go on with
        // the slower MD5/SHA-256 over the same shared bytes.
        port.postMessage({ id: message.id, crc32c: sliceChecksums(message.data, task.bytesPerChecksum) } satisfies SessionReply);
        running.update(message.data);
        port.postMessage({ id: message.id, released: true } satisfies SessionReply);
      }
    });
  });
}

/** One-shot hashes: no running hash objects for bytes that are all here (0.5 µs of a 4 KiB MD5). */
function hashWhole(job: WholeJob): WholeResult {
  const checksum = job.checksum && createChecksum(job.checksum);
  checksum?.update(job.data);
  return {
    crc32c: job.bytesPerChecksum ? sliceChecksums(job.data, job.bytesPerChecksum) : [],
    digests: {
      md5: job.md5 ? hash('md5', job.data, 'hex') : undefined,
      sha256: job.sha256 ? hash('sha256', job.data, 'hex') : undefined,
      checksum: checksum?.digest(),
    },
  };
}

export default function handle(task: Task): Promise<void> | WholeResult[] | number | string {
  switch (task.kind) {
    case 'session':
      return runSession(task);
    case 'wholes':
      return task.jobs.map(hashWhole);
    case 'verify':
      return firstBadSlice(task.data, task.bytesPerChecksum, task.expected);
    case 'sha256':
      return createHash('sha256').update(task.data).digest('hex');
  }
}
