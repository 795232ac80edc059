// The SQLite store's object records (a key's current version, without its body) as reads last
// found them, trusted only while the database is exactly as it was then. The store compares
// two counters of SQLite's with the pair its entries were read under:
//
// - `data_version`, which moves whenever another connection commits (another gateway process,
//   `s3g admin`, any tool on the file): SQLite documents it for this very use;
// - `total_changes()`, which moves with every row this connection writes, triggers included.
//
// Any change empties the cache: there is no per-key invalidation to get wrong, and a read never
// sees a record older than the last commit. So it serves read-mostly traffic (hot objects, a sync
// tool's HEADs); under writes it is emptied again and again and costs two statements per lookup batch.
// A batch whose keys all hit skips SQLite's read transaction and row lookups: 0.86–0.89× the CPU
// per 4 KiB GET on this machine, served side by side with the build before (bench/HISTORY.md).
import type { ObjectRecord } from './store.js';

/**
 * Records kept at most. A full cache takes no more until a change empties it: GETs over a
 * working set larger than this keep the part already cached rather than churning through it
 * (GETs over 40,000 keys: 1.05× the CPU of no cache at all when a full cache started again
 * empty, 1.03× this way; bench/HISTORY.md).
 */
const MAX_ENTRIES = 16_384;

/** The state of the database that entries were read under. */
export interface ChangeStamp {
  /** SQLite's total_changes() of the store's connection. */
  changes: number;
  /** PRAGMA data_version of that connection. */
  version: number;
}

/** A cached record never carries its inline body (the inline body cache has those); `inline` says whether it has one. */
export interface CachedObject {
  record: ObjectRecord;
  inline: boolean;
}

/** For tests and metrics: how lookups fared since the process started. */
export interface ObjectCacheStats {
  entries: number;
  hits: number;
  misses: number;
}

export class ObjectRecordCache {
  private readonly entries = new Map<string, CachedObject>();
  private stamp: ChangeStamp = { changes: -1, version: -1 };
  private hits = 0;
  private misses = 0;

  /**
   * Whether the entries hold for the database as `now` finds it. If not, they are dropped and
   * `now` becomes the stamp of what is cached next: read it in the same snapshot as the rows.
   */
  holds(now: ChangeStamp): boolean {
    if (now.changes === this.stamp.changes && now.version === this.stamp.version) return true;
    this.entries.clear();
    this.stamp = now;
    return false;
  }

  get(bucketId: number, key: string): CachedObject | undefined {
    return this.entries.get(cacheKey(bucketId, key));
  }

  /** Counts a batch of lookups: how many the cache served, how many were read from rows. */
  tally(served: number, read: number): void {
    this.hits += served;
    this.misses += read;
  }

  /** Keeps `record` without its body, frozen: every request that hits it shares it. */
  set(bucketId: number, key: string, record: ObjectRecord, inline: boolean): void {
    if (this.entries.size >= MAX_ENTRIES) return;
    this.entries.set(cacheKey(bucketId, key), { record: deepFreeze(record.inlineData === undefined ? record : withBody(record, undefined)), inline });
  }

  stats(): ObjectCacheStats {
    return { entries: this.entries.size, hits: this.hits, misses: this.misses };
  }
}

/**
 * A record as a new object, with the given body or none. Written out: a spread of a frozen
 * record took V8's slow path (4 µs of a GET), and `delete` would leave a slow object behind.
 */
export function withBody(record: ObjectRecord, inlineData: Buffer | undefined): ObjectRecord {
  const { bucketId, key, objectId, size, etag, modifiedAt, attributes, blocks } = record;
  const copy: ObjectRecord = { bucketId, key, objectId, size, etag, modifiedAt, attributes, blocks };
  if (inlineData !== undefined) copy.inlineData = inlineData;
  return copy;
}

// A bucket id has no '/', so the first one ends it.
const cacheKey = (bucketId: number, key: string): string => `${bucketId}/${key}`;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}
