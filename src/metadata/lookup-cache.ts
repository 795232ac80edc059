// Access keys and buckets as last read, for the two lookups every S3 request makes before its
// own work. Read under load, each was a cold SQLite lookup of 17–30 µs (its pages, SQLite's
// code and the WAL lock's fcntl calls all evicted by the rest of the request), a sixth of a
// small GET's CPU.
//
// Entries are trusted while the epoch they were read under is current. Triggers bump the epoch
// on any change to users, access keys or buckets, whichever process makes it (migration 8). The
// epoch is read again at most once per `recheckMs`, and before the first lookup after a write
// of this process. A write that moved the epoch is acknowledged only `recheckMs` after its
// commit (settled()): by then every cache, in any process, reads the epoch again before its
// next lookup, so a revoked key fails on every gateway once the revocation is acknowledged.

/** How stale a lookup may be after another process changed it. */
export const DEFAULT_RECHECK_MS = 1;
/** Entries per map; a full map starts again empty (many keys or buckets: a bounded cache, not a copy). */
const MAX_ENTRIES = 10_000;

export interface LookupCacheOptions {
  /** Reads the current epoch. */
  readEpoch: () => number;
  recheckMs?: number;
}

/** A cache of one kind of lookup, sharing the epoch of the LookupCache it was made by. */
export interface CachedLookup<V> {
  /** The cached value for key, or what load returns (kept unless undefined: misses are not cached). */
  get(key: string, load: () => V | undefined): V | undefined;
}

export class LookupCache {
  /** Reads the current epoch. */
  readonly readEpoch: () => number;
  private readonly recheckMs: number;
  private epoch: number | undefined;
  private checkedAt = -Infinity;
  private readonly maps: Map<string, unknown>[] = [];

  constructor(options: LookupCacheOptions) {
    this.readEpoch = options.readEpoch;
    this.recheckMs = options.recheckMs ?? DEFAULT_RECHECK_MS;
  }

  /** A map of its own for one kind of value; values are frozen, since every request shares them. */
  lookup<V extends object>(): CachedLookup<V> {
    const map = new Map<string, V>();
    this.maps.push(map);
    return {
      get: (key, load) => {
        this.validate();
        const cached = map.get(key);
        if (cached !== undefined) return cached;
        const value = load();
        if (value === undefined) return undefined;
        if (map.size >= MAX_ENTRIES) map.clear();
        map.set(key, Object.freeze(value));
        return value;
      },
    };
  }

  /** This process wrote: read the epoch again before the next lookup. */
  recheck(): void {
    this.checkedAt = -Infinity;
  }

  /** Resolves once every cache has to read the epoch again: wait for it after a commit that moved the epoch. */
  settled(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.recheckMs));
  }

  private validate(): void {
    const now = performance.now();
    if (now - this.checkedAt < this.recheckMs) return;
    const epoch = this.readEpoch();
    this.checkedAt = now;
    if (epoch === this.epoch) return;
    // Values are read after the epoch: one read under an older epoch is dropped at the next check.
    this.epoch = epoch;
    for (const map of this.maps) map.clear();
  }
}
