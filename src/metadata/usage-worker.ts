// Piscina worker of the SQLite store's usage totals (sqlite-usage.ts): one read-only
// connection per database file, kept while the worker lives.
import Database from 'better-sqlite3';
import { readUsage } from './sqlite-usage.js';
import type { StoreUsage } from './store.js';

export interface UsageTask {
  path: string;
  deadAfterMs: number;
}

const connections = new Map<string, Database.Database>();

export default function usage({ path, deadAfterMs }: UsageTask): StoreUsage {
  let db = connections.get(path);
  if (!db) {
    db = new Database(path, { readonly: true, fileMustExist: true });
    connections.set(path, db);
  }
  return readUsage(db, deadAfterMs);
}
