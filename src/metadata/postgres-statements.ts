// Statements and row mapping shared by the PostgreSQL store's operations (postgres.ts).
// Each statement helper runs inside the caller's transaction, on its connection.
import pg from 'pg';
import type { CustomTypesConfig, PoolClient, QueryResultRow } from 'pg';
import { newCanonicalId, prefixUpperBound } from './shared.js';
import { requireSecretBox, type SecretBox } from './secret-box.js';
import { internalName, ROOT_DIRECTORY } from './namespace.js';
import {
  MetadataError,
  type AccessKey,
  type BlockLocation,
  type BlockRef,
  type Bucket,
  type BucketLayout,
  type ObjectAttributes,
  type ObjectRecord,
  type ObjectSummary,
  type OpenKey,
  type OpenKeyKind,
  type PartRecord,
  type User,
  type UserWithKeys,
} from './store.js';

export interface UserRow { name: string; canonical_id: string; display_name: string; admin: boolean; tenant: string | null; created_at: number }
export interface KeyRow { access_key_id: string; secret: string; kek_id: string | null; user_name: string; created_at: number }
export interface BucketRow { id: number; volume: string; name: string; owner: string; layout: BucketLayout; created_at: number }
export interface ObjectRow { bucket_id: number; name: string; object_id: string; size: number; etag: string; modified_at: number; attributes: string; inline_data?: Buffer | null }
export interface OpenKeyRow { object_id: string; bucket_id: number; name: string; kind: OpenKeyKind; created_at: number; attributes: string | null }
export interface PartRow {
  upload_id: string; part_number: number; part_id: string; size: number; etag: string;
  checksum_algorithm: string | null; checksum_value: string | null; modified_at: number;
}
/** A block joined with one of its replicas; all null for an object or part without blocks. */
export interface BlockReplicaRow { local_id: number | null; container_id: number | null; length: number | null; datanode_id: string | null }
export interface DatanodeRow { id: string; address: string; capacity_bytes: number; used_bytes: number; last_heartbeat: number; state: 'live' | 'dead' }

export type Params = readonly unknown[];

const INT8_OID = 20;
/** SELECT columns of open_keys that become an OpenKey. */
export const OPEN_KEY_COLUMNS = 'object_id, bucket_id, name, kind, created_at, attributes';

// BIGINT arrives as a string (it may exceed 2^53); every id, size and time here is far
// below that, so it becomes a number, and one that would not fit is an error, not a rounding.
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`metadata integer ${text} exceeds JavaScript's safe range`);
  return n;
}

// Per pool, not pg.types.setTypeParser: other pg users in the process keep their parsing.
export const pgTypes: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as CustomTypesConfig['getTypeParser'],
};

export async function one<R extends QueryResultRow>(c: PoolClient, sql: string, params: Params): Promise<R | undefined> {
  return (await c.query<R>(sql, params as unknown[])).rows[0];
}

export function userRow(c: PoolClient, name: string): Promise<UserRow | undefined> {
  return one<UserRow>(c, 'SELECT * FROM users WHERE name = $1', [name]);
}

export function bucketRow(c: PoolClient, volume: string, name: string): Promise<BucketRow | undefined> {
  return one<BucketRow>(c, 'SELECT * FROM buckets WHERE volume = $1 AND name = $2', [volume, name]);
}

/** The version of a key about to be replaced or deleted, locked until the transaction ends. */
export function currentVersion(c: PoolClient, bucketId: number, key: string): Promise<ObjectRow | undefined> {
  return one<ObjectRow>(c, 'SELECT * FROM objects WHERE bucket_id = $1 AND name = $2 FOR UPDATE', [bucketId, key]);
}

/**
 * Writes the new version of a key. A replaced version is updated in place rather than
 * deleted and inserted: a concurrent committer waiting for its lock then sees the new
 * version (and judges its conditions on it), not a key that seems missing.
 */
export async function putVersion(c: PoolClient, row: ObjectRow, replacing: boolean): Promise<void> {
  const values = [row.bucket_id, row.name, row.object_id, row.size, row.etag, row.modified_at, row.attributes, row.inline_data ?? null];
  await c.query(
    replacing
      ? 'UPDATE objects SET object_id = $3, size = $4, etag = $5, modified_at = $6, attributes = $7, inline_data = $8 WHERE bucket_id = $1 AND name = $2'
      : 'INSERT INTO objects (bucket_id, name, object_id, size, etag, modified_at, attributes, inline_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
    values,
  );
}

export type RowLock = '' | 'FOR UPDATE' | 'FOR KEY SHARE';

export function openKeyRow(c: PoolClient, objectId: string, lock: RowLock = ''): Promise<OpenKeyRow | undefined> {
  return one<OpenKeyRow>(c, `SELECT ${OPEN_KEY_COLUMNS} FROM open_keys WHERE object_id = $1 ${lock}`, [objectId]);
}

export async function uploadRow(c: PoolClient, uploadId: string, lock: RowLock = ''): Promise<OpenKeyRow | undefined> {
  const row = await openKeyRow(c, uploadId, lock);
  return row?.kind === 'multipart' ? row : undefined;
}

/** The bucket must exist, and keeps existing until this transaction ends (deleteBucket waits). */
export async function requireBucket(c: PoolClient, bucketId: number): Promise<void> {
  if (!(await one(c, 'SELECT 1 FROM buckets WHERE id = $1 FOR SHARE', [bucketId]))) {
    throw new MetadataError('NoSuchBucket', `bucket id ${bucketId} does not exist`);
  }
}

/** Serializes changes to one block's replica set with its retirement; false when the block is gone. */
export async function lockBlock(c: PoolClient, localId: number): Promise<boolean> {
  return (await one(c, 'SELECT 1 FROM blocks WHERE local_id = $1 FOR UPDATE', [localId])) !== undefined;
}

export async function userWithKeys(c: PoolClient, name: string, secrets: SecretBox | undefined): Promise<UserWithKeys | undefined> {
  const user = await userRow(c, name);
  if (!user) return undefined;
  const { rows } = await c.query<KeyRow>('SELECT * FROM access_keys WHERE user_name = $1 ORDER BY created_at, access_key_id', [name]);
  return { ...toUser(user), accessKeys: rows.map((r) => toAccessKey(r, secrets)) };
}

export async function insertUser(c: PoolClient, name: string, admin: boolean, tenant?: string): Promise<void> {
  await c.query(
    'INSERT INTO users (name, canonical_id, display_name, admin, tenant, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [name, newCanonicalId(), name, admin, tenant ?? null, Date.now()],
  );
}

export async function insertAccessKey(c: PoolClient, userName: string, accessKeyId: string, secret: string, secrets: SecretBox | undefined): Promise<void> {
  if (await one(c, 'SELECT 1 FROM access_keys WHERE access_key_id = $1', [accessKeyId])) throw new Error(`access key ${accessKeyId} already exists`);
  const sealed = requireSecretBox(secrets).seal(accessKeyId, secret);
  await c.query(
    'INSERT INTO access_keys (access_key_id, secret, kek_id, user_name, created_at) VALUES ($1, $2, $3, $4, $5)',
    [accessKeyId, sealed.secret, sealed.kekId, userName, Date.now()],
  );
}

/** Seals the secret with the current KEK and stores it in place of what the row held. */
export async function storeSecret(c: PoolClient, accessKeyId: string, secret: string, secrets: SecretBox | undefined): Promise<void> {
  const sealed = requireSecretBox(secrets).seal(accessKeyId, secret);
  await c.query('UPDATE access_keys SET secret = $1, kek_id = $2 WHERE access_key_id = $3', [sealed.secret, sealed.kekId, accessKeyId]);
}

/** The replicas of a block, in preference order, in one statement. */
export async function insertReplicas(c: PoolClient, localId: number, replicas: readonly string[]): Promise<void> {
  await c.query(
    `INSERT INTO block_replicas (local_id, position, datanode_id)
     SELECT $1, r.ord - 1, r.datanode_id FROM unnest($2::text[]) WITH ORDINALITY AS r(datanode_id, ord)`,
    [localId, replicas],
  );
}

/**
 * Moves the blocks of these object ids (only the uncommitted ones if asked) to the
 * deleted-block log, one row per replica, oldest block first.
 */
export async function retireBlocks(c: PoolClient, objectIds: string[], now: number, uncommittedOnly = false): Promise<void> {
  if (objectIds.length === 0) return;
  // Locked first: a replica change in flight (replaceReplicas, dropReplica) either commits
  // before the replicas are read below, or waits and then finds the block gone.
  const { rows } = await c.query<{ local_id: number }>(
    `SELECT local_id FROM blocks WHERE object_id = ANY($1::text[]) ${uncommittedOnly ? 'AND idx IS NULL' : ''} ORDER BY local_id FOR UPDATE`,
    [objectIds],
  );
  if (rows.length === 0) return;
  const ids = rows.map((r) => r.local_id);
  await c.query(
    `INSERT INTO deleted_blocks (datanode_id, container_id, local_id, created_at)
     SELECT r.datanode_id, b.container_id, b.local_id, $2 FROM blocks b JOIN block_replicas r ON r.local_id = b.local_id
     WHERE b.local_id = ANY($1::bigint[]) ORDER BY b.local_id, r.position`,
    [ids, now],
  );
  // ON DELETE CASCADE takes the replica rows.
  await c.query('DELETE FROM blocks WHERE local_id = ANY($1::bigint[])', [ids]);
}

/**
 * Removes an open key and its blocks, and a multipart upload's parts with theirs; true when
 * it was there. `guard` (SQL over the row, $2 = guardValue) must still hold once the row is
 * locked. A committed object's blocks are never touched.
 */
export async function dropOpenKey(c: PoolClient, objectId: string, now: number, guard?: string, guardValue?: number): Promise<boolean> {
  const dropped = await c.query<{ kind: OpenKeyKind }>(
    `DELETE FROM open_keys WHERE object_id = $1 ${guard ? `AND ${guard}` : ''} RETURNING kind`,
    guard ? [objectId, guardValue] : [objectId],
  );
  if (dropped.rows.length === 0) return false;
  // The DELETE waited for parts being committed (they hold the upload's row): all are seen here.
  const { rows } = dropped.rows[0]!.kind === 'multipart'
    ? await c.query<{ part_id: string }>('SELECT part_id FROM multipart_parts WHERE upload_id = $1', [objectId])
    : { rows: [] };
  await retireBlocks(c, [objectId, ...rows.map((p) => p.part_id)], now);
  if (rows.length > 0) await c.query('DELETE FROM multipart_parts WHERE upload_id = $1', [objectId]);
  return true;
}

/** Drops the open keys found stale, each only if it still is once locked (a PUT may have written since); returns how many. */
export async function dropStale(c: PoolClient, rows: { object_id: string }[], guard: string, cutoff: number): Promise<number> {
  const now = Date.now();
  let dropped = 0;
  // In id order, so that two gateways expiring at once lock in the same order.
  for (const id of rows.map((r) => r.object_id).sort()) {
    if (await dropOpenKey(c, id, now, guard, cutoff)) dropped++;
  }
  return dropped;
}

/** Every listed block must have been allocated to objectId, and be listed once. */
export async function checkAllocated(c: PoolClient, what: string, objectId: string, blocks: readonly BlockRef[]): Promise<void> {
  const { rows } = await c.query<{ local_id: number; container_id: number }>('SELECT local_id, container_id FROM blocks WHERE object_id = $1', [objectId]);
  const allocated = new Map(rows.map((b) => [b.local_id, b.container_id]));
  const seen = new Set<number>();
  for (const b of blocks) {
    if (allocated.get(b.localId) !== b.containerId || seen.has(b.localId)) {
      throw new Error(`${what}: block ${b.containerId}/${b.localId} was not allocated to ${objectId} or is listed twice`);
    }
    seen.add(b.localId);
  }
}

/** Commits blocks in this order (one statement); the object's other allocated blocks (a failed pipeline) become garbage. */
export async function placeBlocks(c: PoolClient, objectId: string, blocks: readonly { localId: number; length: number }[], now: number): Promise<void> {
  if (blocks.length > 0) {
    await c.query(
      `UPDATE blocks SET idx = p.ord - 1, length = p.length
       FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS p(local_id, length, ord)
       WHERE blocks.local_id = p.local_id`,
      [blocks.map((b) => b.localId), blocks.map((b) => b.length)],
    );
  }
  await retireBlocks(c, [objectId], now, true);
}

export async function objectRecord(c: PoolClient, row: ObjectRow): Promise<ObjectRecord> {
  // An inline object has no blocks.
  if (row.inline_data !== null && row.inline_data !== undefined) return toObjectRecord(row, []);
  const { rows } = await c.query<BlockReplicaRow>(
    `SELECT b.local_id, b.container_id, b.length, r.datanode_id FROM blocks b JOIN block_replicas r ON r.local_id = b.local_id
     WHERE b.object_id = $1 AND b.idx IS NOT NULL ORDER BY b.idx, r.position`,
    [row.object_id],
  );
  return toObjectRecord(row, groupBlocks(rows));
}

/** Rows of (block, replica) in block order, then preference order, become blocks with their replica lists. */
export function groupBlocks(rows: readonly BlockReplicaRow[]): BlockLocation[] {
  const blocks: BlockLocation[] = [];
  for (const r of rows) {
    if (r.local_id === null) continue;
    const last = blocks[blocks.length - 1];
    if (last && last.localId === r.local_id) last.replicas.push(r.datanode_id!);
    else blocks.push({ containerId: r.container_id!, localId: r.local_id, length: r.length!, replicas: [r.datanode_id!] });
  }
  return blocks;
}

// ---- FSO directories (namespace.ts) ----
// A writer into a directory holds every directory on its path FOR KEY SHARE: a rename
// (which updates name or parent_id, both in a unique key) and a removal (FOR UPDATE, then
// DELETE) wait for it, and a removal judges emptiness only once it holds the row.

export function childDirectory(c: PoolClient, bucketId: number, parentId: number, name: string, lock: RowLock = ''): Promise<{ id: number } | undefined> {
  return one<{ id: number }>(c, `SELECT id FROM directories WHERE bucket_id = $1 AND parent_id = $2 AND name = $3 ${lock}`, [bucketId, parentId, name]);
}

/**
 * The directory at this path of names. 'create' (writers): each held FOR KEY SHARE, missing
 * ones created. 'find': read as they are, undefined when one is missing.
 */
export async function directoryAt(c: PoolClient, bucketId: number, names: readonly string[], mode: 'create' | 'find'): Promise<number | undefined> {
  let id = ROOT_DIRECTORY;
  for (const name of names) {
    let child = (await childDirectory(c, bucketId, id, name, mode === 'create' ? 'FOR KEY SHARE' : ''))?.id;
    if (child === undefined) {
      if (mode === 'find') return undefined;
      // A concurrent creation of the same directory collides on the unique key (23505): retried.
      child = (await one<{ id: number }>(
        c, 'INSERT INTO directories (bucket_id, parent_id, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id', [bucketId, id, name, Date.now()],
      ))!.id;
    }
    id = child;
  }
  return id;
}

export async function directoryIsEmpty(c: PoolClient, bucketId: number, id: number): Promise<boolean> {
  const found = await one(
    c,
    `SELECT 1 WHERE EXISTS (SELECT 1 FROM objects WHERE bucket_id = $1 AND name > $2 AND name < $3)
        OR EXISTS (SELECT 1 FROM directories WHERE bucket_id = $1 AND parent_id = $4)`,
    [bucketId, internalName(id, ''), `${id}0`, id],
  );
  return found === undefined;
}

/** Removes this directory and its ancestors while they hold nothing and have no marker. */
export async function pruneDirectories(c: PoolClient, bucketId: number, id: number): Promise<void> {
  while (id !== ROOT_DIRECTORY) {
    const row = await one<{ parent_id: number }>(c, 'SELECT parent_id FROM directories WHERE id = $1 FOR UPDATE', [id]);
    if (!row || (await one(c, 'SELECT 1 FROM objects WHERE bucket_id = $1 AND name = $2', [bucketId, internalName(id, '')]))) return;
    if (!(await directoryIsEmpty(c, bucketId, id))) return;
    await c.query('DELETE FROM directories WHERE id = $1', [id]);
    id = row.parent_id;
  }
}

/** A WHERE clause for a listing in one bucket, with numbered parameters. */
export class Where {
  readonly params: unknown[] = [];
  private readonly terms: string[] = [];

  constructor(bucketId: number) {
    this.add('bucket_id = ?', bucketId);
  }

  /** term uses ? for each value, in order. */
  add(term: string, ...values: unknown[]): void {
    let next = 0;
    this.terms.push(term.replace(/\?/g, () => this.param(values[next++])));
  }

  param(value: unknown): string {
    return `$${this.params.push(value)}`;
  }

  /** Keys starting with prefix, as a range (the prefix is not a LIKE pattern). */
  prefix(prefix: string | undefined): void {
    if (!prefix) return;
    this.add('name >= ?', prefix);
    const upper = prefixUpperBound(prefix);
    if (upper !== undefined) this.add('name < ?', upper);
  }

  sql(): string {
    return this.terms.join(' AND ');
  }
}

export function limitOf(limit: number): number {
  return Math.max(0, Math.trunc(limit));
}

export function toUser(r: UserRow): User {
  const user: User = { name: r.name, canonicalId: r.canonical_id, displayName: r.display_name, admin: r.admin, createdAt: r.created_at };
  if (r.tenant !== null) user.tenant = r.tenant;
  return user;
}

export function toAccessKey(r: KeyRow, secrets: SecretBox | undefined): AccessKey {
  const secretAccessKey = requireSecretBox(secrets).open(r.access_key_id, { kekId: r.kek_id, secret: r.secret });
  return { accessKeyId: r.access_key_id, secretAccessKey, userName: r.user_name, createdAt: r.created_at };
}

export function toBucket(r: BucketRow): Bucket {
  return { id: r.id, volume: r.volume, name: r.name, owner: r.owner, layout: r.layout, createdAt: r.created_at };
}

export function toObjectRecord(r: ObjectRow, blocks: BlockLocation[]): ObjectRecord {
  return {
    bucketId: r.bucket_id,
    key: r.name,
    objectId: r.object_id,
    size: r.size,
    etag: r.etag,
    modifiedAt: r.modified_at,
    attributes: parseAttributes(r.attributes),
    blocks,
    ...(r.inline_data ? { inlineData: r.inline_data } : {}),
  };
}

export type ObjectSummaryRow = Omit<ObjectRow, 'attributes' | 'inline_data'>;
export const SUMMARY_COLUMNS = 'bucket_id, name, object_id, size, etag, modified_at';

export function toSummary(r: ObjectSummaryRow): ObjectSummary {
  return { bucketId: r.bucket_id, key: r.name, objectId: r.object_id, size: r.size, etag: r.etag, modifiedAt: r.modified_at };
}

export function toOpenKey(r: OpenKeyRow): OpenKey {
  const open: OpenKey = { objectId: r.object_id, bucketId: r.bucket_id, key: r.name, kind: r.kind, createdAt: r.created_at };
  if (r.attributes !== null) open.attributes = parseAttributes(r.attributes);
  return open;
}

export function parseAttributes(json: string | null): ObjectAttributes {
  return json === null ? {} : (JSON.parse(json) as ObjectAttributes);
}

export function toPart(r: PartRow): PartRecord {
  const part: PartRecord = { partNumber: r.part_number, size: r.size, etag: r.etag, modifiedAt: r.modified_at };
  if (r.checksum_algorithm !== null && r.checksum_value !== null) part.checksum = { algorithm: r.checksum_algorithm, value: r.checksum_value };
  return part;
}
