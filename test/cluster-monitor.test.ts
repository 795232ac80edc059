// The cluster view's periodic query scans every object row: the monitor waits at least
// QUERY_COST_FACTOR times as long as a query took before the next, so that in a large store
// the scans do not run back to back; in a small one, stats-interval still sets the pace.
import t from 'tap';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { populateListBucket, metadataPath } from '../bench/list-fixture.js';
import { loadSecretBox } from '../src/cli/kek.js';
import { openMetadataStore } from '../src/metadata/open.js';
import type { MetadataStore } from '../src/metadata/store.js';
import { ClusterMonitor, QUERY_COST_FACTOR } from '../src/observability/cluster.js';
import { tempDir } from './helpers/server.js';

interface Query {
  start: number;
  end: number;
}

/** The store's own usage(), timed at each call. */
function timeUsage(store: MetadataStore): Query[] {
  const queries: Query[] = [];
  const usage = store.usage.bind(store);
  store.usage = async () => {
    const query = { start: performance.now(), end: Number.NaN };
    queries.push(query);
    try {
      return await usage();
    } finally {
      query.end = performance.now();
    }
  };
  return queries;
}

function finished(queries: Query[]): Query[] {
  return queries.filter((q) => !Number.isNaN(q.end));
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(50);
}

async function openStore(keys: number): Promise<MetadataStore> {
  const dataDir = tempDir('s3g-test-cluster-monitor-');
  await populateListBucket({ bucket: 'scanned', layout: 'OBS', keys, directories: 10 }, dataDir);
  return openMetadataStore(`sqlite:${metadataPath(dataDir)}`, loadSecretBox({ defaultFile: join(dataDir, 'kek') }));
}

t.test('a query that takes long spaces out the next ones', async (t) => {
  const store = await openStore(50_000);
  t.teardown(() => store.close());
  const queries = timeUsage(store);
  const monitor = new ClusterMonitor(store, { intervalMs: 10, replication: 1 });
  monitor.start();
  await until(() => finished(queries).length >= 4, 30_000);
  monitor.stop();
  const done = finished(queries);
  t.ok(done.length >= 4, `queries ran (${done.length})`);
  t.equal(monitor.snapshot()?.totals.objects, 50_000, 'and counted every object');
  t.ok(done[1]!.start - done[0]!.end < 500, 'the first query, which started the worker thread, sets no spacing');
  for (let i = 2; i < done.length; i++) {
    const took = done[i - 1]!.end - done[i - 1]!.start;
    const gap = done[i]!.start - done[i - 1]!.end;
    // Less a little for the timer's and the clock's grain.
    t.ok(gap >= QUERY_COST_FACTOR * took * 0.95 - 2, `query ${i + 1} started ${gap.toFixed(0)} ms after one of ${took.toFixed(1)} ms ended`);
  }
  const count = queries.length;
  await sleep(300);
  t.equal(queries.length, count, 'none after stop()');
});

t.test('quick queries follow stats-interval', async (t) => {
  const store = await openStore(10);
  t.teardown(() => store.close());
  await store.usage();
  const queries = timeUsage(store);
  const monitor = new ClusterMonitor(store, { intervalMs: 100, replication: 1 });
  monitor.start();
  await sleep(1_050);
  monitor.stop();
  t.ok(queries.length >= 3 && queries.length <= 11, `about one every 100 ms (${queries.length} in 1,050 ms)`);
  for (let i = 1; i < queries.length; i++) t.ok(queries[i]!.start - queries[i - 1]!.end >= 95, `query ${i + 1} waited the interval`);
});
