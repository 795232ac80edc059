// The workloads: each one prepares against an endpoint (buckets, seed objects, signatures:
// not timed), then runs one bounded load and returns a Measurement. The same workload
// runs against s3g, its baseline and the peer; only the endpoint (and so the signing)
// differs.
import { Readable } from 'node:stream';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { BucketLayout } from '../src/metadata/store.js';
import { bodyDigests, patternSlices, smallBody } from './body.js';
import { mainThreadCpuSeconds, processCpuSeconds } from './cpu.js';
import type { BenchConfig } from './config.js';
import { createBucket, objectPath, s3Client, signedHeaders, type Endpoint } from './endpoint.js';
import { concurrently, exchange, hammer, type Exchange } from './load.js';
import { median } from './rounds.js';

export type Unit = 'ops/s' | 'MB/s' | 'ms';

export interface Measurement {
  value?: number;
  p99Ms?: number;
  /** Why there is no value (the workload failed, or the server refused the mode). */
  error?: string;
  note?: string;
  /** Requests that failed during an ops/s load (errors, timeouts, non-2xx answers). */
  failed?: number;
  /** CPU time of the server's process per request of an ops/s load, in µs (bench/cpu.ts). */
  cpuUsPerOp?: number;
  /** The part of it on the process's main thread, which runs the event loop... */
  mainThreadUsPerOp?: number;
  /** ...and that thread's CPU time over the load's duration: 1 is a core kept busy throughout. */
  mainThreadBusy?: number;
  /** Of the s3g gateway during the load (admin /stats). */
  loopP99Ms?: number;
  peakRssBytes?: number;
  /** Each round as measured, when the figure combines several (bench/rounds.ts). */
  rounds?: Measurement[];
}

export interface Workload {
  id: string;
  title: string;
  unit: Unit;
  /** Untimed setup against the endpoint; resolves with the timed, bounded load. */
  prepare(endpoint: Endpoint): Promise<() => Promise<Measurement>>;
}

const SMALL_BUCKET = 'bench-small';
const LARGE_BUCKET = 'bench-large';
export const LIST_BUCKET = 'bench-list';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function httpFailure(response: Exchange): Error {
  const code = /<Code>([^<]+)<\/Code>/.exec(response.text)?.[1];
  const message = /<Message>([^<]+)<\/Message>/.exec(response.text)?.[1];
  return new Error(`HTTP ${response.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`);
}

/** Runs fn over items, `width` at a time. */
async function inParallel<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

// ---- small objects: autocannon, presigned URLs rotating over `keys` objects ----

export type SmallMethod = 'PUT' | 'GET' | 'HEAD';

/** Where a small-object workload goes: a bucket and the keys it rotates over. */
export interface SmallTarget {
  bucket: string;
  keys: readonly string[];
}

/**
 * `variant` names a second measurement of the same exchange (another id, and how it differs);
 * `target` another bucket and keys than the bench's own `small-N` (config.small.keys of them).
 */
export function smallWorkload(config: BenchConfig, method: SmallMethod, variant?: { id: string; how: string }, target?: SmallTarget): Workload {
  const { size } = config.small;
  const { bucket, keys } = target ?? smallTarget(config);
  return {
    id: variant?.id ?? `small-${method.toLowerCase()}`,
    title: `${size / 1024} KiB ${method}${variant ? ` ${variant.how}` : ''}`,
    unit: 'ops/s',
    async prepare(endpoint) {
      await createBucket(endpoint, bucket);
      if (method !== 'PUT') {
        await inParallel(keys, 16, async (key) => {
          const response = await exchange(endpoint.url, {
            method: 'PUT', path: await objectPath(endpoint, 'PUT', bucket, key), size, signal: AbortSignal.timeout(30_000),
          });
          if (response.status !== 200) throw httpFailure(response);
        });
      }
      return smallLoad(config, endpoint, method, { bucket, keys });
    },
  };
}

/** The bench's own small objects: `small-N` in its bucket (config.small.keys of them). */
export function smallTarget(config: BenchConfig): SmallTarget {
  return { bucket: SMALL_BUCKET, keys: Array.from({ length: config.small.keys }, (_, i) => `small-${i}`) };
}

/**
 * The load of a small-object workload on objects that exist (for GET and HEAD): autocannon on
 * presigned URLs, with the server's CPU per request. bench/essentials.ts runs it on another
 * server over the objects s3g's workload prepared.
 */
export async function smallLoad(config: BenchConfig, endpoint: Endpoint, method: SmallMethod, { bucket, keys }: SmallTarget): Promise<() => Promise<Measurement>> {
  const { size, connections, durationS } = config.small;
  const body = method === 'PUT' ? smallBody(size) : undefined;
  const paths = await Promise.all(keys.map((key) => objectPath(endpoint, method, bucket, key)));
  return async () => {
    const cpuBefore = processCpuSeconds(endpoint.pid);
    const mainBefore = mainThreadCpuSeconds(endpoint.pid);
    const started = performance.now();
    const result = await hammer({ url: endpoint.url, method, paths, body, connections, durationS });
    if (result.ok === 0) throw new Error(`no 2xx answer (${result.failed} failed requests)`);
    const seconds = (performance.now() - started) / 1000;
    const used = (before: number | undefined, after: number | undefined) => (before === undefined || after === undefined ? undefined : after - before);
    const cpu = used(cpuBefore, processCpuSeconds(endpoint.pid));
    const main = used(mainBefore, mainThreadCpuSeconds(endpoint.pid));
    const perOp = (cpuSeconds: number) => (cpuSeconds * 1e6) / (result.ok + result.failed);
    return {
      value: result.opsPerSec,
      p99Ms: result.p99Ms,
      ...(result.failed ? { failed: result.failed } : {}),
      ...(cpu === undefined ? {} : { cpuUsPerOp: perOp(cpu) }),
      ...(main === undefined ? {} : { mainThreadUsPerOp: perOp(main), mainThreadBusy: main / seconds }),
    };
  };
}

// ---- large objects: concurrent streams of the pattern body ----

/**
 * plain: an unsigned PUT (the bare baselines); signed: x-amz-content-sha256 = the body's
 * hex SHA-256 in a SigV4 header signature; unsigned: a presigned URL (UNSIGNED-PAYLOAD);
 * sdk: the AWS SDK v3 with its defaults (aws-chunked, CRC32 trailer).
 */
export type PutMode = 'plain' | 'signed' | 'unsigned' | 'sdk';

const PUT_TITLES: Record<PutMode, string> = {
  plain: 'PUT',
  signed: 'PUT signed payload',
  unsigned: 'PUT UNSIGNED-PAYLOAD',
  sdk: 'PUT SDK v3 defaults',
};

/** Keys each mode writes; GET reads those of the signed (or plain) PUT. */
const PUT_KEYS: Record<PutMode, string> = { plain: 'large-put', signed: 'large-put', unsigned: 'large-unsigned', sdk: 'large-sdk' };

function mib(bytes: number): string {
  return `${bytes / (1 << 20)} MiB`;
}

export function largePutWorkload(
  mode: PutMode,
  options: { size: number; streams: number; deadlineMs: number; id?: string; keyPrefix?: string },
): Workload {
  const { size, streams, deadlineMs } = options;
  const keyPrefix = options.keyPrefix ?? PUT_KEYS[mode];
  return {
    id: options.id ?? `large-put-${mode}`,
    title: `${mib(size)} ×${streams} ${PUT_TITLES[mode]}`,
    unit: 'MB/s',
    async prepare(endpoint) {
      await createBucket(endpoint, LARGE_BUCKET);
      const { sha256Hex, md5Hex } = bodyDigests(size);
      const keys = Array.from({ length: streams }, (_, i) => `${keyPrefix}-${i}`);
      const sdk = mode === 'sdk' ? s3Client(endpoint, true) : undefined;
      const requests = await Promise.all(keys.map(async (key) => {
        const path = `/${LARGE_BUCKET}/${key}`;
        if (mode === 'unsigned' || mode === 'plain') return { path: await objectPath(endpoint, 'PUT', LARGE_BUCKET, key), headers: {} };
        if (mode === 'signed') return { path, headers: await signedHeaders(endpoint, { method: 'PUT', path, payloadHash: sha256Hex }) };
        return { path, headers: {} };
      }));
      return async () => {
        try {
          const { mbPerSec } = await concurrently(streams, size, deadlineMs, async (i, signal) => {
            let etag: string | undefined;
            if (sdk) {
              const output = await sdk.send(
                new PutObjectCommand({ Bucket: LARGE_BUCKET, Key: keys[i]!, Body: Readable.from(patternSlices(size)), ContentLength: size }),
                { abortSignal: signal },
              );
              etag = output.ETag;
            } else {
              const response = await exchange(endpoint.url, { method: 'PUT', ...requests[i]!, size, signal });
              if (response.status !== 200) throw httpFailure(response);
              etag = typeof response.headers.etag === 'string' ? response.headers.etag : undefined;
            }
            if (etag?.replace(/"/g, '') !== md5Hex) throw new Error(`ETag ${etag} is not the body's MD5 ${md5Hex}: the server stored other bytes`);
          });
          return { value: mbPerSec };
        } finally {
          sdk?.destroy();
        }
      };
    },
  };
}

export function largeGetWorkload(options: { size: number; streams: number; deadlineMs: number; id?: string; how?: string }): Workload {
  const { size, streams, deadlineMs } = options;
  return {
    id: options.id ?? 'large-get',
    title: `${mib(size)} ×${streams} GET${options.how ? ` ${options.how}` : ''}`,
    unit: 'MB/s',
    async prepare(endpoint) {
      const paths = await Promise.all(
        Array.from({ length: streams }, (_, i) => objectPath(endpoint, 'GET', LARGE_BUCKET, `${PUT_KEYS.signed}-${i}`)),
      );
      return async () => {
        const { mbPerSec } = await concurrently(streams, size, deadlineMs, async (i, signal) => {
          const response = await exchange(endpoint.url, { method: 'GET', path: paths[i]!, signal });
          if (response.status !== 200) throw httpFailure(response);
          if (response.bytes !== size) throw new Error(`GET returned ${response.bytes} bytes, expected ${size}`);
        });
        return { value: mbPerSec };
      };
    },
  };
}

// ---- ListObjectsV2 over a pre-populated bucket ----

/** How a listing fixture's keys spread over its directories. */
export interface KeySpread {
  keys: number;
  directories: number;
}

/** Key i of a listing fixture: `dirDDDD/fileFFFFFF`, spread evenly over the directories. */
export function listKey(spread: KeySpread, index: number): string {
  const perDirectory = Math.ceil(spread.keys / spread.directories);
  return `${listDirectory(Math.floor(index / perDirectory))}/file${String(index % perDirectory).padStart(6, '0')}`;
}

export function listDirectory(index: number): string {
  return `dir${String(index).padStart(4, '0')}`;
}

export function* listKeys(spread: KeySpread): Generator<string> {
  for (let i = 0; i < spread.keys; i++) yield listKey(spread, i);
}

export type ListCase = 'first' | 'middle' | 'root-delimiter' | 'directory-delimiter';

export function listWorkload(config: BenchConfig, listCase: ListCase): Workload {
  const { keys, directories, pageSize } = config.list;
  const perDirectory = Math.ceil(keys / directories);
  const middle = Math.floor(keys / 2);
  const cases: Record<ListCase, { title: string; query: Record<string, string>; entries: number }> = {
    first: { title: 'first page', query: {}, entries: Math.min(pageSize, keys) },
    middle: { title: 'middle page (start-after)', query: { 'start-after': listKey(config.list, middle) }, entries: Math.min(pageSize, keys - middle - 1) },
    'root-delimiter': { title: "delimiter '/' at the root", query: { delimiter: '/' }, entries: Math.min(pageSize, directories) },
    'directory-delimiter': {
      title: "delimiter '/' in one directory",
      query: { prefix: `${listDirectory(Math.floor(directories / 2))}/`, delimiter: '/' },
      entries: Math.min(pageSize, perDirectory),
    },
  };
  const { title, entries } = cases[listCase];
  return {
    id: `list-${listCase}`,
    title: `ListObjectsV2 ${pageSize} of ${keys.toLocaleString('en-US')}: ${title}`,
    unit: 'ms',
    async prepare(endpoint) {
      return () => timedListing(config, endpoint, LIST_BUCKET, cases[listCase].query, entries);
    },
  };
}

/** Untimed pages before a listing's samples, for at least one page and this long. */
const LIST_WARM_UP_MS = 1000;

/** One ListObjectsV2 page, which must hold `entries`; resolves with the time of its exchange (ms). */
async function listPage(config: BenchConfig, endpoint: Endpoint, bucket: string, extra: Record<string, string>, entries: number): Promise<number> {
  const { pageSize, requestTimeoutMs } = config.list;
  const query: Record<string, string> = { 'list-type': '2', 'max-keys': String(pageSize), ...extra };
  const headers = await signedHeaders(endpoint, { method: 'GET', path: `/${bucket}`, query, payloadHash: EMPTY_SHA256 });
  const started = performance.now();
  const response = await exchange(endpoint.url, {
    method: 'GET', path: `/${bucket}?${new URLSearchParams(query).toString()}`, headers, signal: AbortSignal.timeout(requestTimeoutMs), keepText: Infinity,
  });
  const elapsed = performance.now() - started;
  if (response.status !== 200) throw httpFailure(response);
  const count = listedEntries(response.text);
  if (count !== entries) throw new Error(`page listed ${count} entries, expected ${entries}`);
  return elapsed;
}

/**
 * The median time of one ListObjectsV2 page, repeated within the listing budget, after a
 * second of untimed pages: the servers start just before, with cold code and caches (s3g
 * took twice as long for its first 21 pages over a million keys as for the next 21).
 */
async function timedListing(config: BenchConfig, endpoint: Endpoint, bucket: string, extra: Record<string, string>, entries: number): Promise<Measurement> {
  const { reps, budgetMs } = config.list;
  const warm = performance.now() + LIST_WARM_UP_MS;
  do await listPage(config, endpoint, bucket, extra, entries);
  while (performance.now() < warm);
  const samples: number[] = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < reps && (samples.length === 0 || performance.now() < deadline)) {
    samples.push(await listPage(config, endpoint, bucket, extra, entries));
  }
  return medianOf(samples);
}

function medianOf(samples: number[]): Measurement {
  return { value: median(samples), note: `median of ${samples.length}` };
}

// ---- FSO and OBS: one directory of a large bucket, and a directory rename ----

/** A bucket of `keys` empty objects `dirDDDD/fileFFFFFF` (list-fixture.ts). */
export interface ListFixture extends KeySpread {
  bucket: string;
  layout: BucketLayout;
}

/** ListObjectsV2 of the middle directory of `fixture` with delimiter '/'. */
export function directoryListWorkload(config: BenchConfig, fixture: ListFixture): Workload {
  const perDirectory = Math.ceil(fixture.keys / fixture.directories);
  return {
    id: `fso-list-${fixture.layout.toLowerCase()}-${fixture.keys}`,
    title: `${fixture.layout}: one directory of ${perDirectory.toLocaleString('en-US')} ('/' delimiter), bucket of ${fixture.keys.toLocaleString('en-US')} keys`,
    unit: 'ms',
    async prepare(endpoint) {
      const query = { prefix: `${listDirectory(Math.floor(fixture.directories / 2))}/`, delimiter: '/' };
      return () => timedListing(config, endpoint, fixture.bucket, query, Math.min(config.list.pageSize, perDirectory));
    },
  };
}

/**
 * The median time (ms, as `rename` measures it) of moving the directory dir0000 of `fixture`
 * back and forth, as `s3g admin rename` does, then a check through S3 that all its keys list
 * under the new name.
 */
export function renameWorkload(config: BenchConfig, fixture: ListFixture, rename: (from: string, to: string) => Promise<number>): Workload {
  return {
    id: `fso-rename-${fixture.keys}`,
    title: `FSO: admin rename of a directory of ${fixture.keys.toLocaleString('en-US')} keys`,
    unit: 'ms',
    async prepare(endpoint) {
      return async () => {
        const names = [listDirectory(0), `renamed/${listDirectory(0)}`];
        const samples: number[] = [];
        for (let i = 0; i < config.list.reps; i++) samples.push(await rename(names[i % 2]!, names[(i + 1) % 2]!));
        const current = names[config.list.reps % 2]!;
        let listed = 0;
        let token: string | undefined;
        do {
          const page = await s3Client(endpoint).send(new ListObjectsV2Command({ Bucket: fixture.bucket, Prefix: `${current}/`, ContinuationToken: token }));
          listed += page.KeyCount ?? 0;
          token = page.NextContinuationToken;
        } while (token);
        if (listed !== fixture.keys) throw new Error(`${listed} keys listed under ${current}/ after the renames, expected ${fixture.keys}`);
        return { ...medianOf(samples), note: `median of ${samples.length}; ${listed} keys listed under the new name` };
      };
    },
  };
}

/** Keys plus common prefixes in a ListBucketResult. */
function listedEntries(xml: string): number {
  const contents = xml.match(/<Contents>/g)?.length ?? 0;
  const prefixes = xml.match(/<CommonPrefixes>\s*<Prefix>/g)?.length ?? 0;
  return contents + prefixes;
}
