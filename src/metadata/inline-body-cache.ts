// The bodies of small objects kept inline in their metadata rows, as reads last fetched them,
// by object id. An object id names one version's bytes, which never change (a new PUT is a new
// id; tagging rewrites attributes only), so an entry needs no invalidation and holds across
// processes sharing the database: a stale id is simply never asked for again, and ages out.
// It spares a read the copy of the blob out of SQLite, which is most of a small GET's lookup.

/** `inline-cache`'s default: as much as SQLite's page cache (sqlite.ts). */
export const DEFAULT_INLINE_CACHE_BYTES = 32 * 1024 ** 2;

/** What an entry costs beyond its body (its id and the map's slot), so empty bodies count too. */
const ENTRY_BYTES = 100;

/** For the metrics: what the cache holds and how reads fared since the process started. */
export interface InlineCacheStats {
  bytes: number;
  hits: number;
  misses: number;
}

interface Entry {
  body: Buffer;
  /** Read since it was last passed over for eviction. */
  read: boolean;
}

/**
 * Evicts by "second chance" (CLOCK): a hit only marks its entry, where moving it to the end of
 * the map, as an LRU list does, cost as much as the lookup; eviction passes marked entries over
 * once, to the end, and takes the first unmarked one.
 */
export class InlineBodyCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  constructor(private readonly maxBytes: number) {}

  get(objectId: string): Buffer | undefined {
    const entry = this.entries.get(objectId);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    entry.read = true;
    return entry.body;
  }

  /** Keeps body (which callers must not modify) unless it alone is over a tenth of the budget. */
  set(objectId: string, body: Buffer): void {
    if (body.length + ENTRY_BYTES > this.maxBytes / 10 || this.entries.has(objectId)) return;
    this.entries.set(objectId, { body, read: false });
    this.bytes += body.length + ENTRY_BYTES;
    while (this.bytes > this.maxBytes) {
      const [id, oldest] = this.entries.entries().next().value as [string, Entry];
      this.entries.delete(id);
      if (oldest.read) {
        oldest.read = false;
        this.entries.set(id, oldest);
      } else {
        this.bytes -= oldest.body.length + ENTRY_BYTES;
      }
    }
  }

  /** Bytes held now (entries' overhead included), and the reads that found their body or not. */
  stats(): InlineCacheStats {
    return { bytes: this.bytes, hits: this.hits, misses: this.misses };
  }
}
