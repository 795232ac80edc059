// Progress of long-running work (an import, draining the deleted-block log, re-replication):
// done and total, a smoothed rate and an ETA, plus the formatting people read.

/** An exponentially smoothed rate (units per second) of a growing count, sampled now and then. */
export class RateMeter {
  private last: { at: number; count: number } | undefined;
  private smoothed: number | undefined;

  /** halfLifeMs: how fast old samples stop mattering. */
  constructor(private readonly halfLifeMs = 5000) {}

  sample(count: number, at = Date.now()): void {
    if (!this.last) {
      this.last = { at, count };
      return;
    }
    const dt = at - this.last.at;
    if (dt <= 0) return;
    const instant = ((count - this.last.count) * 1000) / dt;
    const keep = Math.pow(0.5, dt / this.halfLifeMs);
    this.smoothed = this.smoothed === undefined ? instant : this.smoothed * keep + instant * (1 - keep);
    this.last = { at, count };
  }

  /** Units per second; undefined until two samples. */
  get rate(): number | undefined {
    return this.smoothed;
  }
}

export interface ProgressView {
  doneObjects: number;
  totalObjects?: number;
  doneBytes: number;
  totalBytes?: number;
  /** Bytes per second (objects per second when bytes are not counted). */
  rate?: number;
  etaSeconds?: number;
  elapsedSeconds: number;
}

/** Work of known size done piece by piece (an import). */
export class Progress {
  doneObjects = 0;
  doneBytes = 0;
  private readonly meter = new RateMeter(3000);
  private readonly startedAt = Date.now();

  constructor(
    readonly totalObjects: number,
    readonly totalBytes: number,
  ) {}

  addBytes(n: number): void {
    this.doneBytes += n;
  }

  objectDone(): void {
    this.doneObjects++;
  }

  view(now = Date.now()): ProgressView {
    this.meter.sample(this.doneBytes, now);
    const elapsedSeconds = (now - this.startedAt) / 1000;
    // Until the meter has two samples, the average so far.
    const rate = this.meter.rate ?? (elapsedSeconds > 0 ? this.doneBytes / elapsedSeconds : undefined);
    const left = this.totalBytes - this.doneBytes;
    return {
      doneObjects: this.doneObjects,
      totalObjects: this.totalObjects,
      doneBytes: this.doneBytes,
      totalBytes: this.totalBytes,
      rate,
      etaSeconds: left <= 0 ? 0 : rate && rate > 0 ? left / rate : undefined,
      elapsedSeconds,
    };
  }
}

export interface BacklogView {
  /** Items still waiting. */
  backlog: number;
  /** Since the backlog last became non-empty: items that arrived, and items worked off (net of arrivals between samples). */
  total: number;
  done: number;
  /** Items per second worked off, smoothed. */
  rate?: number;
  etaSeconds?: number;
}

/**
 * Progress of a background service seen only through its backlog (deleted-block log rows,
 * under-replicated blocks): the service needs no hooks, and a pass started anywhere shows.
 */
export class BacklogProgress {
  private backlog = 0;
  private total = 0;
  private done = 0;
  private readonly meter = new RateMeter(20_000);

  sample(backlog: number, at = Date.now()): void {
    if (this.backlog === 0 && backlog > 0) {
      this.total = 0;
      this.done = 0;
    }
    const delta = backlog - this.backlog;
    if (delta > 0) this.total += delta;
    else this.done -= delta;
    this.backlog = backlog;
    this.meter.sample(this.done, at);
  }

  view(): BacklogView {
    const rate = this.meter.rate;
    return {
      backlog: this.backlog,
      total: this.total,
      done: this.done,
      rate,
      etaSeconds: this.backlog === 0 ? 0 : rate && rate > 0 ? this.backlog / rate : undefined,
    };
  }
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** `12/40 objects, 120.0 MiB/400.0 MiB (30%), 45.2 MiB/s, ETA 6s` */
export function formatProgress(view: ProgressView): string {
  const objects = `${view.doneObjects}${view.totalObjects !== undefined ? `/${view.totalObjects}` : ''} objects`;
  const bytes = `${formatBytes(view.doneBytes)}${view.totalBytes !== undefined ? `/${formatBytes(view.totalBytes)}` : ''}`;
  const percent = view.totalBytes ? ` (${Math.floor((100 * view.doneBytes) / view.totalBytes)}%)` : '';
  const rate = view.rate !== undefined ? `${formatBytes(view.rate)}/s` : '-/s';
  return `${objects}, ${bytes}${percent}, ${rate}, ETA ${formatDuration(view.etaSeconds)}`;
}
