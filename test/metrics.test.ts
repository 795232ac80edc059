// /metrics after a known workload: requests by operation and status, latency histograms,
// body bytes in and out equal to what was sent, stored totals, datanodes, pool and loop gauges.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { disposeServer, startServer } from './helpers/server.js';
import { signedRequest, signer } from './helpers/raw.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and these labels (others ignored); undefined when absent. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

const server = await startServer({ args: ['--datanodes', '2', '--stats-interval', '0.2'] });
t.teardown(() => disposeServer(server));

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${server.adminUrl}/metrics`);
  if (res.status !== 200 || !/^text\/plain; version=0\.0\.4/.test(res.headers.get('content-type') ?? '')) {
    throw new Error(`/metrics answered ${res.status} ${res.headers.get('content-type')}`);
  }
  const text = await res.text();
  return { text, samples: parseMetrics(text) };
}

t.test('counters by operation and status, and byte totals, match the workload', async (t) => {
  const sizes = [0, 1, 1000, 65_536, 300_000];
  const bodies = sizes.map((n) => randomBytes(n));
  t.equal((await signedRequest(server, { method: 'PUT', path: '/metrics-bucket' })).status, 200);
  for (const [i, body] of bodies.entries()) {
    const res = await signedRequest(server, { method: 'PUT', path: `/metrics-bucket/obj-${i}`, body, headers: { 'content-length': String(body.length) } });
    t.equal(res.status, 200, `PUT obj-${i}`);
  }
  let sentByGet = 0;
  for (const [i, body] of bodies.entries()) {
    const res = await signedRequest(server, { method: 'GET', path: `/metrics-bucket/obj-${i}` });
    t.equal(res.status, 200);
    t.ok(res.body.equals(body), `GET obj-${i} returns what was put`);
    sentByGet += res.body.length;
  }
  const range = await signedRequest(server, { method: 'GET', path: '/metrics-bucket/obj-2', headers: { range: 'bytes=0-99' } });
  t.equal(range.status, 206);
  sentByGet += range.body.length;
  const missing = await signedRequest(server, { method: 'GET', path: '/metrics-bucket/nope' });
  t.equal(missing.status, 404);
  sentByGet += missing.body.length;
  const forged = await signedRequest(server, { method: 'GET', path: '/metrics-bucket/obj-1' }, signer({ accessKeyId: 'AKIAS3GTESTADMIN0001', secretAccessKey: 'wrong' }));
  t.equal(forged.status, 403);
  sentByGet += forged.body.length;
  t.equal((await signedRequest(server, { method: 'HEAD', path: '/metrics-bucket/obj-3' })).status, 200);

  const { text, samples } = await scrape();
  const requests = (operation: string, status: number) => value(samples, 's3g_requests_total', { operation, status: String(status) });
  t.equal(requests('CreateBucket', 200), 1);
  t.equal(requests('PutObject', 200), sizes.length);
  t.equal(requests('GetObject', 200), sizes.length);
  t.equal(requests('GetObject', 206), 1);
  t.equal(requests('GetObject', 404), 1);
  t.equal(requests('GetObject', 403), 1);
  t.equal(requests('HeadObject', 200), 1);
  t.equal(value(samples, 's3g_request_duration_seconds_count', { operation: 'PutObject' }), sizes.length, 'one latency observation per PUT');
  t.equal(value(samples, 's3g_request_duration_seconds_count', { operation: 'GetObject' }), sizes.length + 3);
  t.equal(value(samples, 's3g_request_duration_seconds_bucket', { operation: 'PutObject', le: '+Inf' }), sizes.length);
  t.ok(value(samples, 's3g_request_duration_seconds_sum', { operation: 'PutObject' })! > 0);

  t.equal(value(samples, 's3g_received_bytes_total', { operation: 'PutObject' }), sizes.reduce((a, b) => a + b, 0), 'bytes in = the PUT bodies');
  t.equal(value(samples, 's3g_sent_bytes_total', { operation: 'GetObject' }), sentByGet, 'bytes out = the GET bodies, errors included');
  t.notOk(value(samples, 's3g_sent_bytes_total', { operation: 'HeadObject' }), 'HEAD sends no body');
  // Only the 300,000-byte object is on datanodes (the rest are inline), read once, from the
  // datanode's files on this host.
  t.equal(value(samples, 's3g_block_read_bytes_total', { via: 'short-circuit' }), 300_000, 'block bytes read short-circuit');
  t.equal(value(samples, 's3g_block_read_bytes_total', { via: 'grpc' }), 0, 'none over gRPC');
  t.equal(value(samples, 's3g_requests_in_flight'), 0);

  t.notMatch(text, /bucket="|key="|obj-\d/, 'no bucket or key ever becomes a label');
});

t.test('stored totals, datanodes, pool and event loop', async (t) => {
  let samples: Sample[] = [];
  for (let i = 0; i < 50; i++) {
    samples = (await scrape()).samples;
    if (value(samples, 's3g_objects') === 5) break;
    await sleep(100);
  }
  t.equal(value(samples, 's3g_buckets'), 1);
  t.equal(value(samples, 's3g_objects'), 5);
  t.equal(value(samples, 's3g_stored_bytes'), 366_537);
  t.equal(value(samples, 's3g_open_keys'), 0);
  for (const datanode of ['1', '2']) {
    t.equal(value(samples, 's3g_datanode_up', { datanode }), 1, `datanode ${datanode} up`);
    t.ok(value(samples, 's3g_datanode_capacity_bytes', { datanode })! > 0, `datanode ${datanode} capacity`);
    t.ok(value(samples, 's3g_datanode_used_bytes', { datanode })! >= 0);
  }
  t.equal(value(samples, 's3g_replication_backlog_blocks'), 0);
  t.equal(value(samples, 's3g_background_backlog', { service: 'block-purge' }), 0);
  t.ok(value(samples, 's3g_hash_pool_threads')! >= 1);
  t.equal(value(samples, 's3g_hash_pool_queue_depth'), 0);
  t.ok(value(samples, 's3g_hash_pool_utilization')! >= 0);
  t.ok(value(samples, 'nodejs_eventloop_lag_p99_seconds')! >= 0, 'event-loop delay');
  t.ok(value(samples, 'process_resident_memory_bytes')! > 0);
  t.equal(value(samples, 's3g_build_info', { version: '0.1.0' }), 1);
});

t.test('the cache of object records: lookups served from memory until anything is written', async (t) => {
  const path = '/metrics-bucket/records';
  const put = (text: string) => signedRequest(server, { method: 'PUT', path, body: Buffer.from(text), headers: { 'content-length': String(text.length) } });
  t.equal((await put('first')).status, 200);
  const before = (await scrape()).samples;
  for (let i = 0; i < 5; i++) t.equal((await signedRequest(server, { method: 'HEAD', path })).status, 200);
  const after = (await scrape()).samples;
  const delta = (name: string) => value(after, name)! - value(before, name)!;
  // A datanode's heartbeat is a write too, and empties the cache: at most one of five lookups per heartbeat misses.
  t.ok(delta('s3g_object_cache_hits_total') >= 3, `lookups after the first are served from memory (${delta('s3g_object_cache_hits_total')} of 5)`);
  t.equal(delta('s3g_object_cache_hits_total') + delta('s3g_object_cache_misses_total'), 5, 'every lookup counted once');
  t.ok(value(after, 's3g_object_cache_entries')! >= 1, 'the record is held');
  t.equal((await put('second')).status, 200);
  t.equal((await signedRequest(server, { method: 'GET', path })).body.toString(), 'second', 'a write is seen by the next read');
});

t.test('WAL checkpoints on the metadata worker thread, counted', async (t) => {
  const body = Buffer.from('checkpointed');
  t.equal((await signedRequest(server, { method: 'PUT', path: '/metrics-bucket/checkpointed', body, headers: { 'content-length': String(body.length) } })).status, 200);
  // The first checkpoint follows a commit by at most 100 ms (and the worker thread's start).
  let samples = (await scrape()).samples;
  for (const deadline = Date.now() + 15_000; value(samples, 's3g_metadata_wal_checkpoints_total')! < 1 && Date.now() < deadline; ) {
    await sleep(100);
    samples = (await scrape()).samples;
  }
  t.ok(value(samples, 's3g_metadata_wal_checkpoints_total')! >= 1, 'checkpoints run after commits');
  t.equal(value(samples, 's3g_metadata_wal_checkpoint_failures_total'), 0, 'none failed');
  t.ok(value(samples, 's3g_metadata_wal_restarts_total')! >= 0);
  t.ok(value(samples, 's3g_metadata_wal_frames')! >= 0, 'the WAL length at the last one');
});

t.test('the cache of inline bodies: what it holds, its hits and misses; none with --inline-cache 0', async (t) => {
  const before = (await scrape()).samples;
  for (let i = 0; i < 2; i++) t.equal((await signedRequest(server, { method: 'GET', path: '/metrics-bucket/obj-2' })).status, 200);
  const after = (await scrape()).samples;
  const delta = (name: string) => value(after, name)! - value(before, name)!;
  t.equal(delta('s3g_inline_cache_hits_total'), 2, 'a body read before is found');
  t.equal(delta('s3g_inline_cache_misses_total'), 0);
  t.ok(value(after, 's3g_inline_cache_bytes')! >= 1000, 'the 1,000-byte body is held');

  const body = randomBytes(500);
  t.equal((await signedRequest(server, { method: 'PUT', path: '/metrics-bucket/head-only', body, headers: { 'content-length': '500' } })).status, 200);
  for (let i = 0; i < 2; i++) t.equal((await signedRequest(server, { method: 'HEAD', path: '/metrics-bucket/head-only' })).headers['content-length'], '500');
  const afterHeads = (await scrape()).samples;
  for (const name of ['s3g_inline_cache_bytes', 's3g_inline_cache_hits_total', 's3g_inline_cache_misses_total']) {
    t.equal(value(afterHeads, name), value(after, name), `HEADs leave ${name} alone: they need no body`);
  }

  const uncached = await startServer({ args: ['--inline-cache', '0'] });
  t.teardown(() => disposeServer(uncached));
  t.equal((await signedRequest(uncached, { method: 'PUT', path: '/no-cache' })).status, 200);
  const small = randomBytes(100);
  t.equal((await signedRequest(uncached, { method: 'PUT', path: '/no-cache/k', body: small, headers: { 'content-length': '100' } })).status, 200);
  for (let i = 0; i < 2; i++) t.ok((await signedRequest(uncached, { method: 'GET', path: '/no-cache/k' })).body.equals(small), 'read from the row');
  const samples = parseMetrics(await (await fetch(`${uncached.adminUrl}/metrics`)).text());
  t.equal(value(samples, 's3g_inline_cache_bytes'), 0);
  t.equal(value(samples, 's3g_inline_cache_hits_total'), 0);
  t.equal(value(samples, 's3g_inline_cache_misses_total'), 2, 'every read fetched its body');
});
