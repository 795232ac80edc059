// WAL checkpoints of the SQLite store, off the event loop. SQLite's own (wal_autocheckpoint)
// run inside the commit that takes the WAL past 1000 frames, on the connection's thread: the
// gateway's event loop then copies those pages back into the database file and waits for two
// fsyncs, 20-30 ms at a time when new keys land all over a bucket of a million. Here the
// store's worker thread checkpoints (store-worker.ts) after commits, at most once per
// interval, and the store's own connection keeps SQLite's only as a backstop (BACKSTOP_FACTOR
// times restartFrames), should the worker fail or fall far behind.
import type { CheckpointReport } from './store-worker.js';

export interface WalCheckpointOptions {
  /** Shortest time from the start of one checkpoint to the start of the next. */
  intervalMs: number;
  /** A WAL this long (in frames of a page) is started over once copied back. */
  restartFrames: number;
  /** How long a restart waits for the writer lock and for readers. */
  restartWaitMs: number;
}

export const DEFAULT_WAL_CHECKPOINT: WalCheckpointOptions = { intervalMs: 100, restartFrames: 4096, restartWaitMs: 200 };

/** The store connection's own wal_autocheckpoint, in multiples of restartFrames. */
export const BACKSTOP_FACTOR = 4;

export interface WalCheckpointStats {
  /** Checkpoints run, and how many of them started the WAL over. */
  checkpoints: number;
  restarts: number;
  failures: number;
  /** Frames in the WAL at the last checkpoint. */
  walFrames: number;
}

export class WalCheckpointer {
  private readonly counts: WalCheckpointStats = { checkpoints: 0, restarts: 0, failures: 0, walFrames: 0 };
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The first checkpoint waits an interval too: a short-lived store (an admin command) never starts the worker. */
  private lastStart = performance.now();
  private closed = false;
  /** A commit came while a checkpoint ran. */
  private again = false;
  private resolveAbandoned!: () => void;
  private readonly abandoned = new Promise<void>((resolve) => (this.resolveAbandoned = resolve));

  constructor(
    private readonly checkpoint: () => Promise<CheckpointReport>,
    private readonly intervalMs: number,
    private readonly onFailure: (error: unknown) => void,
  ) {}

  /** Called after each commit: a checkpoint follows, once the interval since the last one has passed. */
  committed(): void {
    if (this.closed || this.timer) return;
    const wait = Math.max(0, this.lastStart + this.intervalMs - performance.now());
    this.timer = setTimeout(() => this.start(), wait);
    this.timer.unref();
  }

  stats(): WalCheckpointStats {
    return { ...this.counts };
  }

  /** Lets a running checkpoint finish (unless its worker failed) and starts no other. */
  async close(): Promise<void> {
    this.stop();
    await Promise.race([this.running, this.abandoned]);
  }

  /**
   * A checkpoint failed, or the worker did (its task then never settles): counted, reported
   * once, and no other checkpoint starts or is waited for. The counts stay readable.
   */
  fail(error: unknown): void {
    if (this.closed) return;
    this.counts.failures++;
    this.stop();
    this.resolveAbandoned();
    this.onFailure(error);
  }

  private stop(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private start(): void {
    this.timer = undefined;
    if (this.closed) return;
    // Commits during a checkpoint ask for the next one when it ends.
    if (this.running) {
      this.again = true;
      return;
    }
    this.lastStart = performance.now();
    this.running = this.checkpoint().then(
      (report) => {
        this.counts.checkpoints++;
        if (report.restarted) this.counts.restarts++;
        this.counts.walFrames = report.walFrames;
      },
      (error: unknown) => this.fail(error),
    ).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.committed();
      }
    });
  }
}
