// The cluster at a glance, as one JSON document: what `s3g admin status` prints and the admin
// page draws. Built from state the process keeps anyway (the cluster monitor's latest view,
// the throughput history, readiness), so polling it costs no metadata work.
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { LoopDelay } from './loop-delay.js';
import type { PoolStats } from '../hashing/pool.js';
import type { BucketUsage, DatanodeRecord } from '../metadata/store.js';
import type { ClusterMonitor, ReplicationHealth } from './cluster.js';
import type { Readiness } from './health.js';
import type { BacklogView } from './progress.js';
import type { ThroughputHistory, ThroughputSample } from './throughput.js';
import type { ServiceProgress } from '../services/leased-service.js';

export interface GatewayStatus {
  id: string;
  s3Url: string;
  adminUrl: string;
  pid: number;
  version: string;
  startedAt: number;
  uptimeSeconds: number;
  inFlight: number;
  requestsPerSecond: number;
  bytesInPerSecond: number;
  bytesOutPerSecond: number;
  hashPool: PoolStats;
  eventLoopDelayP99Ms: number;
  rssBytes: number;
}

export interface ClusterStatus {
  generatedAt: number;
  readiness: Readiness;
  gateways: GatewayStatus[];
  datanodes: DatanodeRecord[];
  /** When the stored totals below were counted (they refresh every stats-interval). */
  statsAt: number | undefined;
  totals: { buckets: number; objects: number; bytes: number };
  /** The largest buckets by bytes, at most BUCKETS_SHOWN. */
  buckets: BucketUsage[];
  openKeys: number;
  replication: ReplicationHealth | undefined;
  purge: (BacklogView & { running: boolean }) | undefined;
  /** Background services of this gateway: whether it holds their lease, and their passes. */
  services: ({ name: string } & ServiceProgress)[];
  /** Gateway throughput, one sample per second, oldest first. */
  history: ThroughputSample[];
}

export const BUCKETS_SHOWN = 100;

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export interface StatusSources {
  s3Url: string;
  adminUrl(): string;
  cluster: ClusterMonitor;
  history: ThroughputHistory;
  readiness(): Promise<Readiness>;
  inFlight(): number;
  pool(): GatewayStatus['hashPool'];
  purgeRunning(): boolean;
  services(): readonly { name: string; progress: ServiceProgress }[];
}

export class StatusReporter {
  private readonly startedAt = Date.now();
  // A window of its own (10 s), apart from /stats and the Prometheus collector, which reset theirs.
  private readonly loop = new LoopDelay();
  private lastP99Ms = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly sources: StatusSources) {
    this.timer = setInterval(() => {
      this.lastP99Ms = this.loop.percentileMs(99);
      this.loop.reset();
    }, 10_000);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.loop.disable();
  }

  async status(): Promise<ClusterStatus> {
    const s = this.sources;
    // Right after start the first view may still be on its way (usage runs off the event loop).
    const snapshot = s.cluster.snapshot() ?? (await s.cluster.refresh().catch(() => undefined));
    const now = Date.now();
    const recent = s.history.recent(10);
    const gateway: GatewayStatus = {
      id: `${hostname()}:${new URL(s.s3Url).port}`,
      s3Url: s.s3Url,
      adminUrl: s.adminUrl(),
      pid: process.pid,
      version: VERSION,
      startedAt: this.startedAt,
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      inFlight: s.inFlight(),
      ...recent,
      hashPool: s.pool(),
      eventLoopDelayP99Ms: Math.round(Math.max(this.lastP99Ms, this.loop.percentileMs(99)) * 100) / 100,
      rssBytes: process.memoryUsage.rss(),
    };
    return {
      generatedAt: now,
      readiness: await s.readiness(),
      gateways: [gateway],
      datanodes: snapshot?.datanodes ?? [],
      statsAt: snapshot?.at,
      totals: snapshot?.totals ?? { buckets: 0, objects: 0, bytes: 0 },
      buckets: [...(snapshot?.usage.buckets ?? [])].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name)).slice(0, BUCKETS_SHOWN),
      openKeys: snapshot?.usage.openKeys ?? 0,
      replication: snapshot?.replication,
      purge: snapshot ? { ...snapshot.purge, running: s.purgeRunning() } : undefined,
      services: s.services().map((x) => ({ name: x.name, ...x.progress })),
      history: s.history.history(),
    };
  }
}
