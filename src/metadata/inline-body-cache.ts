// The bodies of small objects kept inline in their metadata rows, as reads last fetched them,
// by object id. An object id names one version's bytes, which never change (a new PUT is a new
// id; tagging rewrites attributes only), so an entry needs no invalidation and holds across
// processes sharing the database: a stale id is simply never asked for again, and ages out.
// It spares a read the copy of the blob out of SQLite, which is most of a small GET's lookup.

/** What an entry costs beyond its body (its id and the map's slot), so empty bodies count too. */
const ENTRY_BYTES = 100;

export class InlineBodyCache {
  /** Map order is recency order: a hit moves its entry to the end, eviction takes the front. */
  private readonly bodies = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(objectId: string): Buffer | undefined {
    const body = this.bodies.get(objectId);
    if (body !== undefined) {
      this.bodies.delete(objectId);
      this.bodies.set(objectId, body);
    }
    return body;
  }

  /** Keeps body (which callers must not modify) unless it alone is over a tenth of the budget. */
  set(objectId: string, body: Buffer): void {
    if (body.length + ENTRY_BYTES > this.maxBytes / 10 || this.bodies.has(objectId)) return;
    this.bodies.set(objectId, body);
    this.bytes += body.length + ENTRY_BYTES;
    for (const [id, oldest] of this.bodies) {
      if (this.bytes <= this.maxBytes) break;
      this.bodies.delete(id);
      this.bytes -= oldest.length + ENTRY_BYTES;
    }
  }

  /** What is held now, in bytes, entries' overhead included. */
  size(): number {
    return this.bytes;
  }
}
