// A background service that runs a pass every interval on one gateway of the cluster at a
// time: the one holding its lease in the metadata store (no home-made election).
import type { MetadataStore } from '../metadata/store.js';
import { log } from '../common/log.js';

export interface ServiceProgress {
  passes: number;
  lastPassAt: number | undefined;
  /** Work done by the last pass, in the service's own units (blocks, keys, bytes). */
  lastPass: Record<string, number>;
  leader: boolean;
}

export abstract class LeasedService {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  readonly progress: ServiceProgress = { passes: 0, lastPassAt: undefined, lastPass: {}, leader: false };

  constructor(
    protected readonly store: MetadataStore,
    readonly name: string,
    /** This gateway's identity for leases. */
    private readonly holder: string,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  /** One pass if this gateway holds (or takes) the lease; concurrent calls share the pass in progress. */
  runOnce(): Promise<void> {
    this.running ??= this.leasedPass().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  protected abstract pass(): Promise<Record<string, number>>;

  private async leasedPass(): Promise<void> {
    try {
      // The lease outlives a few missed intervals, so a slow pass keeps it.
      this.progress.leader = await this.store.tryAcquireLease(this.name, this.holder, Math.max(3 * this.intervalMs, 10_000));
      if (!this.progress.leader) return;
      this.progress.lastPass = await this.pass();
      this.progress.passes++;
      this.progress.lastPassAt = Date.now();
    } catch (error) {
      log('error', 'background service pass failed', { service: this.name, error: String(error) });
    }
  }
}
