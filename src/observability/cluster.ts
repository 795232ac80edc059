// A periodic view of the cluster from metadata: datanodes, stored totals, replication health
// and the purge backlog. Metrics, /ready and the admin page read the latest view; only this
// refresh queries the store's aggregate, so scrapes and page polls cost no database work.
import type { DatanodeRecord, MetadataStore, StoreUsage } from '../metadata/store.js';
import { BacklogProgress, type BacklogView } from './progress.js';
import { log } from '../common/log.js';

export interface ReplicationHealth extends BacklogView {
  /** The configured replication factor. */
  factor: number;
  blocks: number;
  /** Blocks with fewer live replicas than factor (= backlog), and those with none at all. */
  underReplicated: number;
  lost: number;
}

export interface ClusterSnapshot {
  at: number;
  /** Duration of the aggregate query, which scans metadata. */
  queryMs: number;
  datanodes: DatanodeRecord[];
  usage: StoreUsage;
  totals: { buckets: number; objects: number; bytes: number };
  replication: ReplicationHealth;
  /** The deleted-block log, drained by the purge service. */
  purge: BacklogView;
}

/** The periodic query takes at most 1/QUERY_COST_FACTOR of the time: 5%. */
export const QUERY_COST_FACTOR = 20;

export class ClusterMonitor {
  private current: ClusterSnapshot | undefined;
  private running: Promise<ClusterSnapshot> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly replicationProgress = new BacklogProgress();
  private readonly purgeProgress = new BacklogProgress();

  constructor(
    private readonly store: MetadataStore,
    private readonly options: { intervalMs: number; replication: number },
  ) {}

  /**
   * Refreshes now, then again intervalMs after each refresh ends, or QUERY_COST_FACTOR times the
   * query's own duration if that is longer: the query scans every object row, so in a bucket of
   * a hundred million keys it outlasts any interval, and would otherwise run back to back. The
   * first query's duration does not count: it includes starting the store's worker thread.
   */
  start(): void {
    let first = true;
    const next = (): void => {
      void this.refresh().then((snapshot) => snapshot.queryMs, () => 0).then((queryMs) => {
        if (this.stopped) return;
        this.timer = setTimeout(next, Math.max(this.options.intervalMs, first ? 0 : QUERY_COST_FACTOR * queryMs));
        this.timer.unref();
        first = false;
      });
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  snapshot(): ClusterSnapshot | undefined {
    return this.current;
  }

  /** The current view if younger than maxAgeMs, else a new one. */
  async fresh(maxAgeMs: number): Promise<ClusterSnapshot> {
    if (this.current && Date.now() - this.current.at <= maxAgeMs) return this.current;
    return this.refresh();
  }

  /** Queries metadata now; concurrent callers share one query. */
  refresh(): Promise<ClusterSnapshot> {
    this.running ??= this.query().finally(() => (this.running = undefined));
    return this.running;
  }

  private async query(): Promise<ClusterSnapshot> {
    const started = performance.now();
    try {
      const [datanodes, usage] = await Promise.all([this.store.listDatanodes(), this.store.usage()]);
      const at = Date.now();
      const factor = this.options.replication;
      let blocks = 0;
      let underReplicated = 0;
      for (const [live, n] of Object.entries(usage.blocksByLiveReplicas)) {
        blocks += n;
        if (Number(live) < factor) underReplicated += n;
      }
      this.replicationProgress.sample(underReplicated, at);
      this.purgeProgress.sample(usage.pendingBlockDeletions, at);
      this.current = {
        at,
        queryMs: performance.now() - started,
        datanodes,
        usage,
        totals: {
          buckets: usage.buckets.length,
          objects: usage.buckets.reduce((a, b) => a + b.objects, 0),
          bytes: usage.buckets.reduce((a, b) => a + b.bytes, 0),
        },
        replication: { ...this.replicationProgress.view(), factor, blocks, underReplicated, lost: usage.blocksByLiveReplicas['0'] ?? 0 },
        purge: this.purgeProgress.view(),
      };
      return this.current;
    } catch (error) {
      log('warn', 'cluster stats refresh failed', { error: String(error) });
      throw error;
    }
  }
}
