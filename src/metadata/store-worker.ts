// The SQLite store's worker thread (one Piscina thread per store): work on the database file
// that would stall the gateway's event loop, each kind on a connection of its own, kept while
// the worker lives.
//  - usage: the usage totals (sqlite-usage.ts), on a read-only connection;
//  - checkpoint: WAL checkpoints (wal-checkpointer.ts), on a read-write connection.
// One default export takes both kinds, as the hashing worker's does: Piscina loads a worker's
// default export with require() first, and only named ones through the ESM loader, which
// worker threads of `node --import tsx` lack (the store then could not start its worker there).
import Database from 'better-sqlite3';
import { readUsage } from './sqlite-usage.js';
import type { StoreUsage } from './store.js';

export interface UsageTask {
  kind: 'usage';
  path: string;
  deadAfterMs: number;
}

export interface CheckpointTask {
  kind: 'checkpoint';
  path: string;
  /** A WAL of at least this many frames is started over (RESTART) once copied back. */
  restartFrames: number;
  /** How long a RESTART waits for the gateway's writer lock and for readers of the WAL. */
  restartWaitMs: number;
}

/** What a checkpoint tells the store: frames in the WAL, and whether it was started over. */
export interface CheckpointReport {
  walFrames: number;
  /** A RESTART completed: the next commit writes the WAL from its start. */
  restarted: boolean;
}

export default function handle(task: UsageTask | CheckpointTask): StoreUsage | CheckpointReport {
  return task.kind === 'usage' ? usage(task) : checkpoint(task);
}

const readers = new Map<string, Database.Database>();
const writers = new Map<string, Database.Database>();

function usage({ path, deadAfterMs }: UsageTask): StoreUsage {
  let db = readers.get(path);
  if (!db) {
    db = new Database(path, { readonly: true, fileMustExist: true });
    readers.set(path, db);
  }
  return readUsage(db, deadAfterMs);
}

/**
 * A PASSIVE checkpoint: copies the WAL's committed frames into the database file and syncs
 * it, without taking any lock a writer or reader waits on. A writer starts the WAL over only
 * when every frame has been copied, which under steady commits never happens between them:
 * so once the WAL is long, a RESTART takes the writer lock (the gateway's group commits retry
 * meanwhile), copies what came since, and waits for readers, so that the next commit does.
 */
function checkpoint({ path, restartFrames, restartWaitMs }: CheckpointTask): CheckpointReport {
  let db = writers.get(path);
  if (!db) {
    db = new Database(path, { fileMustExist: true });
    db.pragma('busy_timeout = 0');
    writers.set(path, db);
  }
  const passive = walCheckpoint(db, 'PASSIVE');
  if (passive.busy || passive.log < restartFrames) return { walFrames: passive.log, restarted: false };
  db.pragma(`busy_timeout = ${restartWaitMs}`);
  try {
    const restart = walCheckpoint(db, 'RESTART');
    return { walFrames: restart.log, restarted: !restart.busy };
  } finally {
    db.pragma('busy_timeout = 0');
  }
}

/** SQLite's answer: busy if the checkpoint could not finish, log the frames in the WAL. */
function walCheckpoint(db: Database.Database, mode: 'PASSIVE' | 'RESTART'): { busy: boolean; log: number } {
  const [row] = db.pragma(`wal_checkpoint(${mode})`) as { busy: number; log: number }[];
  return { busy: row!.busy !== 0, log: row!.log };
}
