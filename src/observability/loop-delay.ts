// Event-loop delay as lateness. Node's monitorEventLoopDelay records the whole interval
// between runs of its timer, the sampling interval included (an idle loop shows 10 ms at a
// 10 ms resolution), so the interval is taken off, as @fastify/under-pressure does.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

const RESOLUTION_MS = 10;

export class LoopDelay {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.histogram.enable();
  }

  /** The p-th percentile of how late the loop ran, in ms. */
  percentileMs(p: number): number {
    return lateness(this.histogram.percentile(p));
  }

  get maxMs(): number {
    return lateness(this.histogram.max);
  }

  reset(): void {
    this.histogram.reset();
  }

  disable(): void {
    this.histogram.disable();
  }
}

function lateness(intervalNs: number): number {
  return Math.max(0, intervalNs / 1e6 - RESOLUTION_MS);
}
