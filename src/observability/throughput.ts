// The last few minutes of gateway throughput, one sample per second, kept so the admin page
// draws its graphs from the moment it opens rather than after minutes of polling.
import type { RequestTotals } from './metrics.js';

export interface ThroughputSample {
  /** End of the second, ms since the epoch. */
  t: number;
  requests: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
}

export class ThroughputHistory {
  private readonly samples: ThroughputSample[] = [];
  private last: RequestTotals;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Running totals since the start (this process's, or the sum of a gateway's processes). */
    private readonly totals: () => RequestTotals,
    private readonly keep = 300,
  ) {
    this.last = { ...totals() };
  }

  start(periodMs = 1000): void {
    this.timer = setInterval(() => this.sample(), periodMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  sample(at = Date.now()): void {
    const now = this.totals();
    this.samples.push({
      t: at,
      requests: now.requests - this.last.requests,
      errors: now.errors - this.last.errors,
      bytesIn: now.bytesIn - this.last.bytesIn,
      bytesOut: now.bytesOut - this.last.bytesOut,
    });
    if (this.samples.length > this.keep) this.samples.shift();
    this.last = { ...now };
  }

  /** Oldest first; each sample is one second's worth. */
  history(): ThroughputSample[] {
    return this.samples.slice();
  }

  /** Per-second averages over the last `seconds` samples. */
  recent(seconds = 10): { requestsPerSecond: number; bytesInPerSecond: number; bytesOutPerSecond: number } {
    const window = this.samples.slice(-seconds);
    const n = Math.max(1, window.length);
    const sum = (pick: (s: ThroughputSample) => number) => window.reduce((a, s) => a + pick(s), 0) / n;
    return { requestsPerSecond: sum((s) => s.requests), bytesInPerSecond: sum((s) => s.bytesIn), bytesOutPerSecond: sum((s) => s.bytesOut) };
  }
}
