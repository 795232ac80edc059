// Usage totals of the SQLite store. They scan every object row (about 240 ms for a million
// here), so the store runs them on a worker thread with a read-only connection of its own
// (store-worker.ts) rather than on the gateway's event loop; an in-memory database, which
// no other connection can see, is read in place.
import type Database from 'better-sqlite3';
import type { BucketUsage, StoreUsage } from './store.js';

export function readUsage(db: Database.Database, deadAfterMs: number): StoreUsage {
  return db.transaction(() => {
    const buckets = db
      .prepare(
        `SELECT b.volume AS volume, b.name AS name, COUNT(o.object_id) AS objects, COALESCE(SUM(o.size), 0) AS bytes
         FROM buckets b LEFT JOIN objects o ON o.bucket_id = b.id
         GROUP BY b.id, b.volume, b.name ORDER BY b.volume, b.name`,
      )
      .all() as BucketUsage[];
    const openKeys = (db.prepare('SELECT COUNT(*) AS n FROM open_keys').get() as { n: number }).n;
    const pendingBlockDeletions = (db.prepare('SELECT COUNT(*) AS n FROM deleted_blocks').get() as { n: number }).n;
    // Liveness as listDatanodes judges it: marked live and heard from recently.
    const rows = db
      .prepare(
        `SELECT live, COUNT(*) AS blocks FROM (
           SELECT r.local_id, SUM(CASE WHEN d.id IS NULL THEN 0 ELSE 1 END) AS live
           FROM block_replicas r
           LEFT JOIN datanodes d ON d.id = r.datanode_id AND d.state = 'live' AND d.last_heartbeat >= ?
           GROUP BY r.local_id
         ) per_block GROUP BY live ORDER BY live`,
      )
      .all(Date.now() - deadAfterMs) as { live: number; blocks: number }[];
    return { buckets, openKeys, pendingBlockDeletions, blocksByLiveReplicas: Object.fromEntries(rows.map((r) => [String(r.live), r.blocks])) };
  }).deferred();
}
