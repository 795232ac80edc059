// Event-loop delay and memory of one process, as the admin port's /stats reports them (for
// benchmarks), and the sum of a gateway's processes when several serve its port.
import { LoopDelay } from './loop-delay.js';

export interface ProcessStats {
  pid: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  rssBytes: number;
  /** Highest RSS seen (sampled every 100 ms) since the start or the last reset. */
  peakRssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
}

export interface StatsOptions {
  /** Starts a new window (loop delay, peak RSS) after this reading. */
  reset?: boolean;
  /** A full collection first (node started with --expose-gc), so heapUsed is what is live. */
  gc?: boolean;
}

export class ProcessStatsSampler {
  private readonly loopDelay = new LoopDelay();
  private peakRss = process.memoryUsage.rss();
  private readonly sampler = setInterval(() => (this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss())), 100);

  constructor() {
    this.sampler.unref();
  }

  read(options: StatsOptions = {}): ProcessStats {
    const ms = (value: number): number => Math.round(value * 100) / 100;
    if (options.gc) (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    const stats: ProcessStats = {
      pid: process.pid,
      eventLoopDelayMs: { p50: ms(this.loopDelay.percentileMs(50)), p99: ms(this.loopDelay.percentileMs(99)), max: ms(this.loopDelay.maxMs) },
      rssBytes: memory.rss,
      peakRssBytes: Math.max(this.peakRss, memory.rss),
      heapUsedBytes: memory.heapUsed,
      externalBytes: memory.external,
    };
    if (options.reset) {
      this.loopDelay.reset();
      this.peakRss = memory.rss;
    }
    return stats;
  }

  close(): void {
    clearInterval(this.sampler);
    this.loopDelay.disable();
  }
}

/**
 * Several processes as one: the worst event loop (each percentile's highest), memory summed
 * (peaks too: an upper bound of the peak of the sum), and each process's own figures.
 */
export function combineStats(all: ProcessStats[]): Omit<ProcessStats, 'pid'> & { processes: ProcessStats[] } {
  const worst = (pick: (s: ProcessStats) => number): number => Math.max(...all.map(pick));
  const sum = (pick: (s: ProcessStats) => number): number => all.reduce((total, s) => total + pick(s), 0);
  return {
    eventLoopDelayMs: { p50: worst((s) => s.eventLoopDelayMs.p50), p99: worst((s) => s.eventLoopDelayMs.p99), max: worst((s) => s.eventLoopDelayMs.max) },
    rssBytes: sum((s) => s.rssBytes),
    peakRssBytes: sum((s) => s.peakRssBytes),
    heapUsedBytes: sum((s) => s.heapUsedBytes),
    externalBytes: sum((s) => s.externalBytes),
    processes: all,
  };
}
