// Access keys and buckets as last read, for the two lookups every S3 request makes before its
// own work. Read under load, each was a cold SQLite lookup of 17–30 µs (its pages, SQLite's
// code and the WAL lock's fcntl calls all evicted by the rest of the request), a sixth of a
// small GET's CPU; on PostgreSQL each is a round trip.
//
// Entries are trusted while the epoch they were read under is current. Every change to users,
// access keys or buckets moves the epoch, whichever process makes it (SQLite: triggers;
// PostgreSQL: the store's own writes). The epoch is read again at most once per `recheckMs`,
// and before the first lookup after a write of this process that moved it. Such a write is
// acknowledged only `recheckMs` after its commit (settled()): by then every cache, in any
// process, reads the epoch again before its next lookup, so a revoked key fails on every
// gateway once the revocation is acknowledged.
import type { Bucket, User } from './store.js';

/** How stale a lookup may be after another process changed it. */
export const DEFAULT_RECHECK_MS = 1;
/** Entries per map; a full map starts again empty (many keys or buckets: a bounded cache, not a copy). */
const MAX_ENTRIES = 10_000;

type MaybePromise<T> = T | Promise<T>;

export interface LookupCacheOptions {
  /** Reads the current epoch. */
  readEpoch: () => MaybePromise<number>;
  recheckMs?: number;
}

/** A cache of one kind of lookup, sharing the epoch of the LookupCache it was made by. */
export interface CachedLookup<V> {
  /** The cached value for key, or what load returns (kept unless undefined: misses are not cached). */
  get(key: string, load: () => MaybePromise<V | undefined>): Promise<V | undefined>;
}

export class LookupCache {
  private readonly readEpoch: () => MaybePromise<number>;
  private readonly recheckMs: number;
  private epoch: number | undefined;
  /** When the epoch read that last validated the cache was started. */
  private checkedAt = -Infinity;
  /** When recheck() was last called: an epoch read started before then validates nothing. */
  private recheckAt = -Infinity;
  /** The epoch read in flight, which lookups arriving meanwhile wait for, and when it started. */
  private checking: Promise<void> | undefined;
  private checkingSince = -Infinity;
  /** Moves whenever the maps are emptied, so that a load begun before keeps its value to itself. */
  private generation = 0;
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
      get: async (key, load) => {
        const validating = this.validate();
        if (validating) await validating;
        const cached = map.get(key);
        if (cached !== undefined) return cached;
        const generation = this.generation;
        const value = await load();
        if (value === undefined || generation !== this.generation) return value;
        if (map.size >= MAX_ENTRIES) map.clear();
        map.set(key, Object.freeze(value));
        return value;
      },
    };
  }

  /** This process moved the epoch: read it again before the next lookup. */
  recheck(): void {
    this.recheckAt = performance.now();
    this.checkedAt = -Infinity;
  }

  /**
   * Resolves once every cache has to read the epoch again: wait for it after a commit that moved
   * the epoch. Measured on the clock validate() reads: a timer alone counts from the event loop's
   * cached time, which a synchronous commit leaves behind, and fired before recheckMs had passed.
   */
  settled(): Promise<void> {
    const until = performance.now() + this.recheckMs;
    return new Promise((resolve) => {
      const wait = (): void => {
        const left = until - performance.now();
        if (left > 0) setTimeout(wait, Math.ceil(left));
        else resolve();
      };
      wait();
    });
  }

  private validate(): Promise<void> | undefined {
    const now = performance.now();
    if (now - this.checkedAt < this.recheckMs) return undefined;
    if (this.checking && this.checkingSince > this.recheckAt) return this.checking;
    const checking = this.check(now);
    const done = () => {
      if (this.checking === checking) this.checking = undefined;
    };
    checking.then(done, done);
    this.checking = checking;
    this.checkingSince = now;
    return checking;
  }

  private async check(startedAt: number): Promise<void> {
    const epoch = await this.readEpoch();
    if (startedAt > this.recheckAt) this.checkedAt = startedAt;
    if (epoch === this.epoch) return;
    // Values are read after the epoch: one read under an older epoch is dropped at the next check.
    this.epoch = epoch;
    this.generation++;
    for (const map of this.maps) map.clear();
  }
}

/** The two lookups every request makes, cached under one epoch: what both metadata stores keep. */
export class RequestLookups extends LookupCache {
  private readonly accessKeys = this.lookup<{ user: User; secretAccessKey: string }>();
  private readonly buckets = this.lookup<Bucket>();

  accessKey(accessKeyId: string, load: () => MaybePromise<{ user: User; secretAccessKey: string } | undefined>) {
    return this.accessKeys.get(accessKeyId, load);
  }

  bucket(volume: string, name: string, load: () => MaybePromise<Bucket | undefined>) {
    // The volume's length first: unambiguous whatever characters either name holds.
    return this.buckets.get(`${volume.length}:${volume}/${name}`, load);
  }
}
