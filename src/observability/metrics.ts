// Prometheus metrics of a gateway process (prom-client). The per-request path is one call,
// observeRequest, with labels from small fixed sets (operation name, status code; never a
// bucket or key) and label children cached so a request allocates nothing here. Everything
// else (pool, datanodes, stored totals, backlogs) is read at scrape time from sources the
// process keeps anyway.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Aggregator } from 'prom-client';
import type { ClusterSnapshot } from './cluster.js';
import type { BacklogView } from './progress.js';
import type { ServiceProgress } from '../services/leased-service.js';
import type { BlockSource } from '../datanode/client.js';
import type { PoolStats } from '../hashing/pool.js';
import type { InlineCacheStats } from '../metadata/inline-body-cache.js';
import type { ObjectCacheStats } from '../metadata/object-record-cache.js';
import type { WalCheckpointStats } from '../metadata/wal-checkpointer.js';

export interface MetricsSources {
  inFlight(): number;
  pool(): PoolStats;
  /** The metadata store's cache of inline bodies; undefined where the store has none. */
  inlineCache(): InlineCacheStats | undefined;
  /** The metadata store's cache of object records; undefined where the store has none. */
  objectCache(): ObjectCacheStats | undefined;
  /** The SQLite store's WAL checkpoints on its worker thread; undefined where there are none. */
  walCheckpoints(): WalCheckpointStats | undefined;
  /** The latest periodic view of datanodes and stored totals; undefined before the first. */
  cluster(): ClusterSnapshot | undefined;
  /** Background services (purge, re-replication) and what their passes did. */
  services(): readonly { name: string; progress: ServiceProgress }[];
}

/** Plain running totals, for the admin page's throughput history (cheaper to read than the registry). */
export interface RequestTotals {
  requests: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
}

type CounterChild = ReturnType<Counter['labels']>;
type HistogramChild = ReturnType<Histogram['labels']>;

interface OperationChildren {
  duration: HistogramChild;
  bytesIn: CounterChild;
  bytesOut: CounterChild;
  byStatus: Map<number, CounterChild>;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly totals: RequestTotals = { requests: 0, errors: 0, bytesIn: 0, bytesOut: 0 };
  private readonly requests: Counter<'operation' | 'status'>;
  private readonly duration: Histogram<'operation'>;
  private readonly bytesIn: Counter<'operation'>;
  private readonly bytesOut: Counter<'operation'>;
  private readonly children = new Map<string, OperationChildren>();
  private readonly blockReadBytes: Record<BlockSource['via'], CounterChild>;

  constructor(sources: MetricsSources, version: string) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // `aggregator`: how the admin port adds up the processes of --gateway-processes (sum by default).
    new Gauge({ name: 's3g_build_info', help: 'Always 1; labels name the running version', labelNames: ['version', 'node'], registers, aggregator: 'first' }).set(
      { version, node: process.version },
      1,
    );

    this.requests = new Counter({ name: 's3g_requests_total', help: 'S3 requests by operation and HTTP status', labelNames: ['operation', 'status'], registers });
    this.duration = new Histogram({
      name: 's3g_request_duration_seconds',
      help: 'S3 request latency, from the request headers to the last response byte',
      labelNames: ['operation'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.bytesIn = new Counter({ name: 's3g_received_bytes_total', help: 'Request body bytes received in full, by operation', labelNames: ['operation'], registers });
    this.bytesOut = new Counter({ name: 's3g_sent_bytes_total', help: 'Response body bytes sent, by operation', labelNames: ['operation'], registers });
    const blockReads = new Counter({
      name: 's3g_block_read_bytes_total',
      help: 'Verified block bytes read from datanodes, over gRPC or from their files on this host (short-circuit)',
      labelNames: ['via'],
      registers,
    });
    this.blockReadBytes = { grpc: blockReads.labels('grpc'), 'short-circuit': blockReads.labels('short-circuit') };
    for (const child of Object.values(this.blockReadBytes)) child.inc(0); // both series exist from the start
    gauge(registers, 's3g_requests_in_flight', 'S3 requests being served', (g) => g.set(sources.inFlight()));

    gauge(registers, 's3g_hash_pool_threads', 'Hashing pool worker threads', (g) => g.set(sources.pool().threads));
    gauge(registers, 's3g_hash_pool_queue_depth', 'Hashing tasks waiting for a worker', (g) => g.set(sources.pool().queueSize));
    gauge(registers, 's3g_hash_pool_utilization', 'Share of the hashing pool busy, 0..1', (g) => g.set(sources.pool().utilization), [], 'average');

    cacheMetrics(registers, () => sources.inlineCache(), {
      size: ['s3g_inline_cache_bytes', 'Memory held by the cache of inline objects\' bodies (inline-cache)', (stats) => stats.bytes],
      hits: ['s3g_inline_cache_hits_total', 'Reads of an inline object\'s body that found it in the cache'],
      misses: ['s3g_inline_cache_misses_total', 'Reads of an inline object\'s body that fetched it into the cache'],
    });
    cacheMetrics(registers, () => sources.objectCache(), {
      size: ['s3g_object_cache_entries', 'Object records held by the metadata store\'s cache', (stats) => stats.entries],
      hits: ['s3g_object_cache_hits_total', 'Object lookups (GET, HEAD) served from the cache of object records'],
      misses: ['s3g_object_cache_misses_total', 'Object lookups (GET, HEAD) read from the database, not from the cache of object records'],
    });
    scrapedCounter(registers, 's3g_metadata_wal_checkpoints_total', "SQLite WAL checkpoints run on the metadata store's worker thread", () => sources.walCheckpoints()?.checkpoints);
    scrapedCounter(registers, 's3g_metadata_wal_restarts_total', 'Of those, checkpoints that started the WAL over', () => sources.walCheckpoints()?.restarts);
    scrapedCounter(registers, 's3g_metadata_wal_checkpoint_failures_total', "Failed checkpoints (the first hands them back to SQLite, in the store's commits)", () => sources.walCheckpoints()?.failures);
    gauge(registers, 's3g_metadata_wal_frames', 'Pages in the SQLite WAL at the last checkpoint', (g) => {
      g.reset();
      const stats = sources.walCheckpoints();
      if (stats) g.set(stats.walFrames);
    }, [], 'max');

    const cluster = (fn: (g: Gauge, c: ClusterSnapshot) => void) => (g: Gauge) => {
      const c = sources.cluster();
      g.reset();
      if (c) fn(g, c);
    };
    gauge(registers, 's3g_buckets', 'Buckets', cluster((g, c) => g.set(c.totals.buckets)));
    gauge(registers, 's3g_objects', 'Committed objects', cluster((g, c) => g.set(c.totals.objects)));
    gauge(registers, 's3g_stored_bytes', 'Bytes of committed objects (one copy, before replication)', cluster((g, c) => g.set(c.totals.bytes)));
    gauge(registers, 's3g_open_keys', 'Uploads in flight or abandoned, and unfinished multipart uploads', cluster((g, c) => g.set(c.usage.openKeys)));
    gauge(registers, 's3g_stats_age_seconds', 'Age of the stored totals and replication figures', cluster((g, c) => g.set((Date.now() - c.at) / 1000)));
    gauge(registers, 's3g_stats_query_seconds', 'How long the last metadata aggregate query took', cluster((g, c) => g.set(c.queryMs / 1000)));

    const perDatanode = (pick: (d: ClusterSnapshot['datanodes'][number]) => number) =>
      cluster((g, c) => {
        for (const d of c.datanodes) g.set({ datanode: d.id }, pick(d));
      });
    gauge(registers, 's3g_datanode_capacity_bytes', 'Datanode disk capacity', perDatanode((d) => d.capacityBytes), ['datanode']);
    gauge(registers, 's3g_datanode_used_bytes', 'Datanode bytes used', perDatanode((d) => d.usedBytes), ['datanode']);
    gauge(registers, 's3g_datanode_up', '1 when the datanode heartbeats, 0 when it is dead', perDatanode((d) => (d.state === 'live' ? 1 : 0)), ['datanode']);

    gauge(
      registers,
      's3g_blocks',
      'Blocks by how many of their replicas are on live datanodes',
      cluster((g, c) => {
        for (const [live, n] of Object.entries(c.usage.blocksByLiveReplicas)) g.set({ live_replicas: live }, n);
      }),
      ['live_replicas'],
    );
    gauge(registers, 's3g_replication_backlog_blocks', 'Blocks with fewer live replicas than the replication factor', cluster((g, c) => g.set(c.replication.backlog)));
    const background = (pick: (v: BacklogView) => number | undefined) =>
      cluster((g, c) => {
        for (const [service, view] of [['re-replication', c.replication], ['block-purge', c.purge]] as const) {
          const value = pick(view);
          if (value !== undefined) g.set({ service }, value);
        }
      });
    gauge(registers, 's3g_background_backlog', 'Work waiting per background service (blocks to re-replicate, replicas to purge)', background((v) => v.backlog), ['service']);
    gauge(registers, 's3g_background_done', 'Work done since the backlog last became non-empty', background((v) => v.done), ['service']);
    gauge(registers, 's3g_background_rate', 'Work done per second, smoothed', background((v) => v.rate), ['service']);
    gauge(registers, 's3g_background_eta_seconds', 'Estimated time until the backlog is empty', background((v) => v.etaSeconds), ['service']);

    new Counter({
      name: 's3g_background_passes_total',
      help: 'Passes run by this process per background service',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.services()) this.inc({ service: s.name }, s.progress.passes);
      },
    });
    const perService = (fn: (g: Gauge, name: string, p: ServiceProgress) => void) => (g: Gauge) => {
      g.reset();
      for (const s of sources.services()) fn(g, s.name, s.progress);
    };
    gauge(registers, 's3g_background_leader', '1 when this process holds the service\'s lease and runs its passes', perService((g, service, p) => g.set({ service }, p.leader ? 1 : 0)), ['service']);
    gauge(
      registers,
      's3g_background_last_pass_timestamp_seconds',
      'When the last pass of the service ended',
      perService((g, service, p) => {
        if (p.lastPassAt !== undefined) g.set({ service }, p.lastPassAt / 1000);
      }),
      ['service'],
    );
    gauge(
      registers,
      's3g_background_last_pass_work',
      'What the last pass did, in the service\'s units (blocks, bytes, keys)',
      perService((g, service, p) => {
        for (const [unit, n] of Object.entries(p.lastPass)) g.set({ service, unit }, n);
      }),
      ['service', 'unit'],
    );
  }

  /** Verified block bytes read from a datanode (ObjectReader). */
  observeBlockRead(via: BlockSource['via'], bytes: number): void {
    this.blockReadBytes[via].inc(bytes);
  }

  /** One finished (or cut) request. */
  observeRequest(operation: string, status: number, seconds: number, bytesIn: number, bytesOut: number): void {
    let c = this.children.get(operation);
    if (!c) {
      c = { duration: this.duration.labels(operation), bytesIn: this.bytesIn.labels(operation), bytesOut: this.bytesOut.labels(operation), byStatus: new Map() };
      this.children.set(operation, c);
    }
    let byStatus = c.byStatus.get(status);
    if (!byStatus) {
      byStatus = this.requests.labels(operation, String(status));
      c.byStatus.set(status, byStatus);
    }
    byStatus.inc();
    c.duration.observe(seconds);
    if (bytesIn > 0) c.bytesIn.inc(bytesIn);
    if (bytesOut > 0) c.bytesOut.inc(bytesOut);
    this.totals.requests++;
    if (status >= 500) this.totals.errors++;
    this.totals.bytesIn += bytesIn;
    this.totals.bytesOut += bytesOut;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A cache's size gauge and its hit and miss counters, read at scrape time; absent stats (no such cache) read as 0. */
function cacheMetrics<Stats extends { hits: number; misses: number }>(
  registers: Registry[],
  stats: () => Stats | undefined,
  names: { size: [string, string, (stats: Stats) => number]; hits: [string, string]; misses: [string, string] },
): void {
  const [sizeName, sizeHelp, size] = names.size;
  gauge(registers, sizeName, sizeHelp, (g) => {
    g.reset();
    const current = stats();
    if (current) g.set(size(current));
  });
  for (const outcome of ['hits', 'misses'] as const) {
    const [name, help] = names[outcome];
    scrapedCounter(registers, name, help, () => stats()?.[outcome]);
  }
}

/** A counter whose total is read at scrape time; an absent total (no such source) reads as 0. */
function scrapedCounter(registers: Registry[], name: string, help: string, total: () => number | undefined): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      const current = total();
      if (current) this.inc(current);
    },
  });
}

function gauge(registers: Registry[], name: string, help: string, collect: (g: Gauge) => void, labelNames: string[] = [], aggregator: Aggregator = 'sum'): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers,
    aggregator,
    collect() {
      collect(this);
    },
  });
}
