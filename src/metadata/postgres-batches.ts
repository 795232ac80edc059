// Small-object requests to PostgreSQL, many to a round trip. Under load each round trip
// wakes a backend, and the gateway spent more of its CPU writing to those sockets than on
// anything else (bench/HISTORY.md, 2026-11-27).
//
// PUTs without blocks (kept inline, or empty): alone, each costs BEGIN, five statements and
// COMMIT. A batch costs about as many round trips as one PUT alone, and one WAL flush. The
// locks and checks are those of a PUT alone (see the top of postgres.ts), taken for every
// row of the batch at once, in key order.
//
// Object lookups (GET, HEAD): one statement for all, one snapshot, as one lookup alone is.
import type { PoolClient } from 'pg';
import { checkPreconditions } from './shared.js';
import { groupBlocks, retireBlocks, toObjectRecord, type BlockReplicaRow, type ObjectRow } from './postgres-statements.js';
import type { CommitKeyInput, ObjectRecord } from './store.js';

export interface BatchedPut {
  /** blocks empty; the bucket an OBS one; no other PUT of the same key in the batch. */
  commit: CommitKeyInput;
  inline: Buffer | null;
  attributes: string;
}

export type PutOutcome = { ok: true; record: ObjectRecord } | { ok: false; error: unknown };

/**
 * The batch cannot decide for every PUT in it: a bucket was deleted meanwhile, or an object id
 * has an open key or is committed already. Each PUT then commits alone, which says why.
 */
export class BatchDeclined extends Error {}

const COLUMNS = 'bucket_id, name, object_id, size, etag, modified_at, attributes, inline_data';
/**
 * The rows of columns(): the inline bodies arrive as one binary parameter ($8) cut at $9
 * (offsets) and $10 (lengths, NULL for no body). node-postgres sends a Buffer in binary, but a
 * bytea[] as an array literal in hex text: twice the bytes, encoded here and decoded there.
 */
const ROWS = `(SELECT u.bucket_id, u.name, u.object_id, u.size, u.etag, u.modified_at, u.attributes,
    CASE WHEN u.length IS NULL THEN NULL ELSE substring($8::bytea FROM u.start + 1 FOR u.length) END
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[], $9::int[], $10::int[])
    AS u(bucket_id, name, object_id, size, etag, modified_at, attributes, start, length))`;

/** Commits the batch's PUTs in the caller's transaction; a failed precondition fails only its PUT. */
export async function commitPutBatch(c: PoolClient, puts: readonly BatchedPut[], now: number): Promise<PutOutcome[]> {
  const bucketIds = [...new Set(puts.map((p) => p.commit.bucketId))];
  // Held FOR SHARE, as by a PUT alone: deleteBucket waits for the batch to end.
  const held = await c.query('SELECT id FROM buckets WHERE id = ANY($1::bigint[]) ORDER BY id FOR SHARE', [bucketIds]);
  if (held.rows.length !== bucketIds.length) throw new BatchDeclined();
  const objectIds = puts.map((p) => p.commit.objectId);
  const used = await c.query(
    'SELECT 1 FROM open_keys WHERE object_id = ANY($1::text[]) UNION ALL SELECT 1 FROM objects WHERE object_id = ANY($1::text[]) LIMIT 1',
    [objectIds],
  );
  if (used.rows.length > 0) throw new BatchDeclined();

  const { rows: currents } = await c.query<Pick<ObjectRow, 'bucket_id' | 'name' | 'object_id' | 'etag'> & { inline: boolean }>(
    `SELECT bucket_id, name, object_id, etag, inline_data IS NOT NULL AS inline FROM objects
     WHERE (bucket_id, name) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
     ORDER BY bucket_id, name FOR UPDATE`,
    [puts.map((p) => p.commit.bucketId), puts.map((p) => p.commit.key)],
  );
  const current = new Map(currents.map((r) => [versionKey(r.bucket_id, r.name), r]));

  const outcomes: PutOutcome[] = [];
  const inserted: ObjectRow[] = [];
  const replaced: ObjectRow[] = [];
  const retired: string[] = [];
  for (const { commit, inline, attributes } of puts) {
    const version = current.get(versionKey(commit.bucketId, commit.key));
    try {
      checkPreconditions(commit, version);
    } catch (error) {
      outcomes.push({ ok: false, error });
      continue;
    }
    const row: ObjectRow = {
      bucket_id: commit.bucketId, name: commit.key, object_id: commit.objectId, size: commit.size, etag: commit.etag,
      modified_at: now, attributes, inline_data: inline,
    };
    // An inline version has no blocks to retire.
    if (version && !version.inline) retired.push(version.object_id);
    (version ? replaced : inserted).push(row);
    outcomes.push({ ok: true, record: { ...toObjectRecord(row, []), key: commit.key } });
  }

  await retireBlocks(c, retired, now);
  // Rows go in key order, as they were locked, so that two batches wait for each other
  // rather than deadlock on new keys.
  if (inserted.length > 0) await c.query(`INSERT INTO objects (${COLUMNS}) SELECT * FROM ${ROWS} AS v ORDER BY 1, 2`, columns(inserted));
  if (replaced.length > 0) {
    // Updated in place, as by a PUT alone (putVersion): a committer waiting for the row then sees this version.
    await c.query(
      `UPDATE objects o SET object_id = v.object_id, size = v.size, etag = v.etag, modified_at = v.modified_at,
         attributes = v.attributes, inline_data = v.inline_data
       FROM ${ROWS} AS v(${COLUMNS}) WHERE o.bucket_id = v.bucket_id AND o.name = v.name`,
      columns(replaced),
    );
  }
  return outcomes;
}

/** An OBS object's row with its blocks, or undefined, for each (bucket id, name); duplicates allowed. */
export async function selectObjects(
  query: (sql: string, params: unknown[]) => Promise<(ObjectRow & BlockReplicaRow)[]>,
  wanted: readonly { bucketId: number; name: string }[],
): Promise<(ObjectRecord | undefined)[]> {
  const unique = [...new Map(wanted.map((w) => [versionKey(w.bucketId, w.name), w])).values()];
  const rows = await query(
    `SELECT o.*, b.local_id, b.container_id, b.length, r.datanode_id FROM objects o
     LEFT JOIN blocks b ON b.object_id = o.object_id AND b.idx IS NOT NULL
     LEFT JOIN block_replicas r ON r.local_id = b.local_id
     WHERE (o.bucket_id, o.name) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
     ORDER BY o.bucket_id, o.name, b.idx, r.position`,
    [unique.map((w) => w.bucketId), unique.map((w) => w.name)],
  );
  const found = new Map<string, (ObjectRow & BlockReplicaRow)[]>();
  for (const row of rows) {
    const key = versionKey(row.bucket_id, row.name);
    const own = found.get(key);
    if (own) own.push(row);
    else found.set(key, [row]);
  }
  return wanted.map((w) => {
    const own = found.get(versionKey(w.bucketId, w.name));
    return own && { ...toObjectRecord(own[0]!, groupBlocks(own)), key: w.name };
  });
}

/** One key of one bucket, as a map key. */
export function versionKey(bucketId: number, name: string): string {
  return `${bucketId}/${name}`;
}

/** The parameters of ROWS: one array per column in COLUMNS order, the inline bodies joined in one buffer. */
function columns(rows: readonly ObjectRow[]): unknown[] {
  const bodies = rows.map((r) => r.inline_data ?? null);
  let start = 0;
  const starts = bodies.map((body) => {
    const at = start;
    start += body?.length ?? 0;
    return at;
  });
  return [
    rows.map((r) => r.bucket_id), rows.map((r) => r.name), rows.map((r) => r.object_id), rows.map((r) => r.size),
    rows.map((r) => r.etag), rows.map((r) => r.modified_at), rows.map((r) => r.attributes),
    Buffer.concat(bodies.filter((body) => body !== null)), starts, bodies.map((body) => body?.length ?? null),
  ];
}
