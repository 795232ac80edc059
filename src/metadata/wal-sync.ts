// Durability of the SQLite store's commits without blocking the event loop. The store runs
// WAL mode with synchronous = NORMAL, so SQLite writes a commit to the WAL without an fsync;
// before anything is acknowledged, WalSync makes it durable with fdatasync of the WAL file
// on libuv's thread pool. One fdatasync covers every commit written before it started, so
// group commits that pile up during a slow one share the next. (fdatasync is per file, not
// per descriptor: it flushes what SQLite's own descriptor wrote.)
import { open, type FileHandle } from 'node:fs/promises';

export class WalSync {
  /** Commits counted so far, and how many of them are known durable. */
  private written = 0;
  private synced = 0;
  private running: Promise<void> | undefined;

  /** `wal`: the open WAL file (a test may pass anything that datasyncs and closes). */
  constructor(private readonly wal: Pick<FileHandle, 'datasync' | 'close'>) {}

  /** The WAL file exists once the database has been opened in WAL mode and written. */
  static async open(walPath: string): Promise<WalSync> {
    return new WalSync(await open(walPath, 'r'));
  }

  /**
   * Resolves once everything committed to the database so far, by this or any other
   * connection, is on disk. Call it after a commit, before acknowledging it, and before
   * acting outside the database on what a read returned (deleting blocks it lists).
   */
  durable(): Promise<void> {
    return this.through(++this.written);
  }

  async close(): Promise<void> {
    await this.durable();
    await this.wal.close();
  }

  private async through(commit: number): Promise<void> {
    while (this.synced < commit) {
      this.running ??= this.sync();
      await this.running;
    }
  }

  private async sync(): Promise<void> {
    const covered = this.written;
    try {
      await this.wal.datasync();
      this.synced = covered;
    } finally {
      this.running = undefined;
    }
  }
}
