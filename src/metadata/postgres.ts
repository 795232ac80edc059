// The PostgreSQL metadata store, for several gateways on several machines sharing one
// database (or a CockroachDB / YugabyteDB cluster speaking the same protocol). Semantics
// match SqliteMetadataStore exactly; the difference is how concurrency is made safe.
//
// Every write is one transaction that locks what it decides on before deciding, so that
// the check and the write are atomic: a bucket is held FOR SHARE by whoever writes into
// it (deleteBucket takes it FOR UPDATE), an open key FOR UPDATE by whoever commits or
// drops it, the current version of a key FOR UPDATE by whoever replaces it (so If-Match
// and If-None-Match are judged on the version being replaced), blocks FOR UPDATE before
// they are retired. A row that does not exist yet cannot be locked: primary keys make two
// inserts of one key collide (unique_violation, 23505). That, serialization_failure
// (40001) and deadlock_detected (40P01) make the whole transaction run again from the
// start after a short random backoff; it then sees what the winner committed.
//
// The default level is READ COMMITTED: with those locks it is all the level needed, and it
// scales. Under SERIALIZABLE, PostgreSQL's predicate locks are page- or table-grained, so
// concurrent PUTs of unrelated keys abort each other (measured: most transactions retried
// at 4 writers, throughput falling as writers are added). The code is also correct under
// SERIALIZABLE (option `isolation`), which is what CockroachDB runs unless its read
// committed setting is on. Multi-statement reads use a REPEATABLE READ READ ONLY snapshot.
// PUTs without blocks (inline or empty) that arrive in one turn of the event loop share a
// transaction, and object lookups a statement (postgres-batches.ts); every other call is its
// own transaction (PostgreSQL shares WAL flushes among concurrent commits itself).
import pg from 'pg';
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { migratePostgres } from './postgres-migrations.js';
import { RequestLookups } from './lookup-cache.js';
import { BatchDeclined, commitPutBatch, selectObjects, versionKey, type BatchedPut } from './postgres-batches.js';
import { TurnBatch, type Pending } from '../common/turn-batch.js';
import { requireSecretBox, type SecretBox } from './secret-box.js';
import {
  type BlockReplicaRow,
  type BucketRow,
  bucketRow,
  checkAllocated,
  childDirectory,
  currentVersion,
  directoryAt,
  directoryIsEmpty,
  type DatanodeRow,
  dropOpenKey,
  dropStale,
  groupBlocks,
  insertAccessKey,
  insertReplicas,
  insertUser,
  type KeyRow,
  limitOf,
  lockBlock,
  objectRecord,
  type ObjectRow,
  type ObjectSummaryRow,
  one,
  OPEN_KEY_COLUMNS,
  type OpenKeyRow,
  openKeyRow,
  type Params,
  parseAttributes,
  type PartRow,
  pgTypes,
  placeBlocks,
  pruneDirectories,
  putVersion,
  requireBucket,
  retireBlocks,
  storeSecret,
  toAccessKey,
  SUMMARY_COLUMNS,
  toBucket,
  toOpenKey,
  toPart,
  toSummary,
  toUser,
  uploadRow,
  type UserRow,
  userRow,
  userWithKeys,
  Where,
} from './postgres-statements.js';
import { fsoKey, internalName, listFsoObjects, ROOT_DIRECTORY, splitKey, type Bound, type DirectoryRow, type NamespaceReader } from './namespace.js';
import { checkPreconditions, commitColumns, containerIdOf, mayCommit, newAccessKeyId, newObjectId, newSecretAccessKey, toTenant, type TenantRow } from './shared.js';
import {
  MetadataError,
  type AccessKey,
  type BlockDeletion,
  type BlockRef,
  type Bucket,
  type BucketLayout,
  type BucketUsage,
  type CommitKeyInput,
  type CommitPartInput,
  type CompleteMultipartUploadInput,
  type DatanodeRecord,
  type ListMultipartUploadsQuery,
  type ListObjectsQuery,
  type MetadataStore,
  type MultipartUpload,
  type ObjectAttributes,
  type ObjectRecord,
  type ObjectSummary,
  type OpenKey,
  type OpenKeyKind,
  type PartRecord,
  type PartWithBlocks,
  type StoreUsage,
  type Tenant,
  type UnderReplicatedBlock,
  type User,
  type UserWithKeys,
} from './store.js';

export interface PostgresMetadataStoreOptions {
  /** A datanode without a heartbeat for this long is listed as 'dead'. */
  datanodeDeadAfterMs?: number;
  /** Connections in this store's pool. */
  poolSize?: number;
  /** Attempts of one transaction before a conflict is reported. */
  maxAttempts?: number;
  /** Isolation of write transactions; see the top of this file. */
  isolation?: 'read committed' | 'serializable';
  /** Seals and opens secret access keys; without it, any method touching a secret throws. */
  secrets?: SecretBox;
  /** How stale a cached access key or bucket may be after another process changed it (lookup-cache.ts). */
  lookupRecheckMs?: number;
  /**
   * How long a query waits for a connection (a new one, or a free one of the pool) before it
   * fails with ServiceUnavailable. Otherwise libpq's: the URL's connect_timeout, then
   * PGCONNECT_TIMEOUT (seconds; 0 is libpq's "forever", not taken here), then 10 s.
   */
  connectTimeoutMs?: number;
}

const EXPIRE_BATCH = 256;
/** Bounds the rows one batched statement names, and the locks one batched transaction holds. */
const MAX_BATCH = 256;
/** Conflict codes after which the whole transaction is run again. */
const RETRYABLE = new Set(['40001', '40P01', '23505']);
/** Without a bound, a server that accepts connections and never answers holds every request forever. */
const CONNECT_TIMEOUT_MS = 10_000;

export class PostgresMetadataStore implements MetadataStore {
  private readonly pool: pg.Pool;
  private readonly deadAfterMs: number;
  private readonly maxAttempts: number;
  private readonly begin: string;
  private readonly secrets: SecretBox | undefined;
  private closed = false;
  /** A bucket's layout never changes and its id is never reused: safe to keep (until it is found gone). */
  private readonly layouts = new Map<number, BucketLayout>();
  private readonly lookupRecheckMs: number | undefined;
  /** Access keys and buckets as every request looks them up (lookup-cache.ts); from migrate(). */
  private lookups: RequestLookups | undefined;
  private readonly putBatches = new TurnBatch<BatchedPut, ObjectRecord>((batch) => void this.commitPuts(batch), MAX_BATCH);
  private readonly objectReads = new TurnBatch<{ bucketId: number; name: string }, ObjectRecord | undefined>((batch) => this.lookUpObjects(batch), MAX_BATCH);

  constructor(url: string, options: PostgresMetadataStoreOptions = {}) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      types: pgTypes,
      connectionTimeoutMillis: options.connectTimeoutMs ?? connectTimeoutOf(url),
      // TCP keepalives find a server that vanished (a host down, a dropped route) under idle connections.
      keepAlive: true,
    });
    // An idle connection dropped by the server must not crash the process; the pool
    // discards it and the next query opens a new one.
    this.pool.on('error', () => {});
    this.deadAfterMs = options.datanodeDeadAfterMs ?? 60_000;
    this.maxAttempts = options.maxAttempts ?? 30;
    this.begin = `BEGIN ISOLATION LEVEL ${(options.isolation ?? 'read committed').toUpperCase()}`;
    this.secrets = options.secrets;
    this.lookupRecheckMs = options.lookupRecheckMs;
  }

  async migrate(): Promise<void> {
    await migratePostgres((fn) => this.write(fn));
    await this.statement('INSERT INTO volumes (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', ['s3v', Date.now()]);
    if (this.secrets) await this.reseal('kek_id IS NULL', []);
    this.lookups ??= new RequestLookups({
      readEpoch: async () => Number((await this.select<{ n: number }>('SELECT n FROM lookup_epoch WHERE id = 1'))[0]!.n),
      recheckMs: this.lookupRecheckMs,
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Waits for transactions in flight to release their connections.
    await this.pool.end();
  }

  // ---- tenants ----

  async createTenant(name: string): Promise<Tenant> {
    return this.write(async (c) => {
      if (await one(c, 'SELECT 1 FROM volumes WHERE name = $1', [name])) throw new MetadataError('TenantAlreadyExists', `tenant or volume ${name} already exists`);
      const now = Date.now();
      await c.query('INSERT INTO volumes (name, created_at) VALUES ($1, $2)', [name, now]);
      return toTenant((await one<TenantRow>(c, 'INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING *', [name, now]))!);
    });
  }

  async getTenant(name: string): Promise<Tenant | undefined> {
    const [row] = await this.select<TenantRow>('SELECT * FROM tenants WHERE name = $1', [name]);
    return row && toTenant(row);
  }

  async listTenants(): Promise<Tenant[]> {
    return (await this.select<TenantRow>('SELECT * FROM tenants ORDER BY name')).map(toTenant);
  }

  // ---- users and access keys ----

  async createUser(input: { name: string; admin?: boolean; tenant?: string; accessKeyId?: string; secretAccessKey?: string }): Promise<UserWithKeys> {
    return this.writeLookups(async (c) => {
      if (await userRow(c, input.name)) throw new MetadataError('UserAlreadyExists', `user ${input.name} already exists`);
      if (input.tenant !== undefined && !(await one(c, 'SELECT 1 FROM tenants WHERE name = $1', [input.tenant]))) {
        throw new MetadataError('NoSuchTenant', `tenant ${input.tenant} does not exist`);
      }
      await insertUser(c, input.name, input.admin ?? false, input.tenant);
      await insertAccessKey(c, input.name, input.accessKeyId ?? newAccessKeyId(), input.secretAccessKey ?? newSecretAccessKey(), this.secrets);
      return (await userWithKeys(c, input.name, this.secrets))!;
    });
  }

  async ensureUser(input: { name: string; admin: boolean; accessKeyId: string; secretAccessKey: string }): Promise<UserWithKeys> {
    // The bootstrap credential comes from the environment, which is the source of truth.
    return this.writeLookups(async (c) => {
      const user = await userRow(c, input.name);
      if (!user) await insertUser(c, input.name, input.admin);
      else if (user.admin !== input.admin) await c.query('UPDATE users SET admin = $1 WHERE name = $2', [input.admin, input.name]);
      const key = await one<KeyRow>(c, 'SELECT * FROM access_keys WHERE access_key_id = $1', [input.accessKeyId]);
      if (!key) await insertAccessKey(c, input.name, input.accessKeyId, input.secretAccessKey, this.secrets);
      else if (key.user_name !== input.name) throw new Error(`access key ${input.accessKeyId} belongs to another user`);
      else if (toAccessKey(key, this.secrets).secretAccessKey !== input.secretAccessKey) {
        await storeSecret(c, input.accessKeyId, input.secretAccessKey, this.secrets);
      }
      return (await userWithKeys(c, input.name, this.secrets))!;
    });
  }

  async getUser(name: string): Promise<UserWithKeys | undefined> {
    return this.read((c) => userWithKeys(c, name, this.secrets));
  }

  async listUsers(tenant?: string): Promise<User[]> {
    const rows = tenant === undefined
      ? await this.select<UserRow>('SELECT * FROM users ORDER BY name')
      : await this.select<UserRow>('SELECT * FROM users WHERE tenant = $1 ORDER BY name', [tenant]);
    return rows.map(toUser);
  }

  async lookupAccessKey(accessKeyId: string): Promise<{ user: User; secretAccessKey: string } | undefined> {
    const load = async () => {
      const [row] = await this.select<UserRow & { secret: string; kek_id: string | null }>(
        'SELECT u.*, k.secret, k.kek_id FROM access_keys k JOIN users u ON u.name = k.user_name WHERE k.access_key_id = $1',
        [accessKeyId],
      );
      return row && { user: Object.freeze(toUser(row)), secretAccessKey: requireSecretBox(this.secrets).open(accessKeyId, { kekId: row.kek_id, secret: row.secret }) };
    };
    return this.lookups ? this.lookups.accessKey(accessKeyId, load) : load();
  }

  async createAccessKey(userName: string): Promise<AccessKey> {
    return this.writeLookups(async (c) => {
      if (!(await userRow(c, userName))) throw new MetadataError('NoSuchUser', `user ${userName} does not exist`);
      const accessKeyId = newAccessKeyId();
      await insertAccessKey(c, userName, accessKeyId, newSecretAccessKey(), this.secrets);
      return toAccessKey((await one<KeyRow>(c, 'SELECT * FROM access_keys WHERE access_key_id = $1', [accessKeyId]))!, this.secrets);
    });
  }

  async revokeAccessKey(accessKeyId: string): Promise<void> {
    await this.writeLookups(async (c) => {
      const deleted = await c.query('DELETE FROM access_keys WHERE access_key_id = $1', [accessKeyId]);
      if (deleted.rowCount === 0) throw new MetadataError('NoSuchAccessKey', `access key ${accessKeyId} does not exist`);
    });
  }

  async rekeySecrets(): Promise<{ resealed: number; total: number }> {
    const current = requireSecretBox(this.secrets).currentKekId;
    const resealed = await this.reseal('kek_id IS NULL OR kek_id <> $1', [current]);
    const [row] = await this.select<{ n: number }>('SELECT CAST(COUNT(*) AS BIGINT) AS n FROM access_keys');
    return { resealed, total: row!.n };
  }

  /** Seals again, with the current KEK, the secrets of the rows matching `where`; returns how many. */
  private reseal(where: string, params: Params): Promise<number> {
    return this.writeLookups(async (c) => {
      const { rows } = await c.query<KeyRow>(`SELECT * FROM access_keys WHERE ${where} FOR UPDATE`, params as unknown[]);
      for (const row of rows) await storeSecret(c, row.access_key_id, toAccessKey(row, this.secrets).secretAccessKey, this.secrets);
      return rows.length;
    });
  }

  // ---- volumes and buckets ----

  async createBucket(input: { volume: string; name: string; owner: string; layout?: BucketLayout }): Promise<Bucket> {
    return this.writeLookups(async (c) => {
      if (!(await userRow(c, input.owner))) throw new MetadataError('NoSuchUser', `user ${input.owner} does not exist`);
      const existing = await bucketRow(c, input.volume, input.name);
      if (existing) {
        throw existing.owner === input.owner
          ? new MetadataError('BucketAlreadyOwnedByYou', `bucket ${input.name} already exists and is yours`)
          : new MetadataError('BucketAlreadyExists', `bucket ${input.name} already exists`);
      }
      // Volumes other than s3v (tenants) come into being with their first bucket.
      await c.query('INSERT INTO volumes (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [input.volume, Date.now()]);
      const row = await one<BucketRow>(
        c,
        'INSERT INTO buckets (volume, name, owner, layout, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING *',
        [input.volume, input.name, input.owner, input.layout ?? 'OBS', Date.now()],
      );
      return toBucket(row!);
    });
  }

  async getBucket(volume: string, name: string): Promise<Bucket | undefined> {
    const load = async () => {
      const [row] = await this.select<BucketRow>('SELECT * FROM buckets WHERE volume = $1 AND name = $2', [volume, name]);
      return row && toBucket(row);
    };
    return this.lookups ? this.lookups.bucket(volume, name, load) : load();
  }

  async bucketExists(name: string): Promise<boolean> {
    return (await this.select('SELECT 1 FROM buckets WHERE name = $1 LIMIT 1', [name])).length > 0;
  }

  async listBuckets(volume: string, owner?: string): Promise<Bucket[]> {
    const rows = owner === undefined
      ? await this.select<BucketRow>('SELECT * FROM buckets WHERE volume = $1 ORDER BY name', [volume])
      : await this.select<BucketRow>('SELECT * FROM buckets WHERE volume = $1 AND owner = $2 ORDER BY name', [volume, owner]);
    return rows.map(toBucket);
  }

  async deleteBucket(volume: string, name: string): Promise<void> {
    await this.writeLookups(async (c) => {
      // FOR UPDATE waits for writers holding the bucket FOR SHARE: what they committed is seen below.
      const bucket = await one<BucketRow>(c, 'SELECT * FROM buckets WHERE volume = $1 AND name = $2 FOR UPDATE', [volume, name]);
      if (!bucket) throw new MetadataError('NoSuchBucket', `bucket ${name} does not exist`);
      // Open 'put' keys do not block deletion (as in S3); they fail to commit and expire.
      const busy = (await one(c, 'SELECT 1 FROM objects WHERE bucket_id = $1 LIMIT 1', [bucket.id]))
        ?? (await one(c, "SELECT 1 FROM open_keys WHERE bucket_id = $1 AND kind = 'multipart' LIMIT 1", [bucket.id]));
      if (busy) throw new MetadataError('BucketNotEmpty', `bucket ${name} is not empty`);
      // FSO: directories left without a file (only explicit ones count as objects).
      await c.query('DELETE FROM directories WHERE bucket_id = $1', [bucket.id]);
      await c.query('DELETE FROM buckets WHERE id = $1', [bucket.id]);
    });
  }

  // ---- objects ----

  async openKey(input: { bucketId: number; key: string; kind: OpenKeyKind; attributes?: ObjectAttributes }): Promise<OpenKey> {
    const attributes = input.attributes === undefined ? null : JSON.stringify(input.attributes);
    const now = Date.now();
    const objectId = newObjectId();
    // One statement: the bucket row is held FOR SHARE while the key is inserted (deleteBucket waits).
    const inserted = await this.statement(
      `INSERT INTO open_keys (object_id, bucket_id, name, kind, created_at, updated_at, attributes)
       SELECT $1, id, $3, $4, $5, $5, $6 FROM buckets WHERE id = $2 FOR SHARE`,
      [objectId, input.bucketId, input.key, input.kind, now, attributes],
    );
    if (inserted.rowCount === 0) throw new MetadataError('NoSuchBucket', `bucket id ${input.bucketId} does not exist`);
    return toOpenKey({ object_id: objectId, bucket_id: input.bucketId, name: input.key, kind: input.kind, created_at: now, attributes });
  }

  async getOpenKey(objectId: string): Promise<OpenKey | undefined> {
    const [row] = await this.select<OpenKeyRow>(`SELECT ${OPEN_KEY_COLUMNS} FROM open_keys WHERE object_id = $1`, [objectId]);
    return row && toOpenKey(row);
  }

  async allocateBlock(objectId: string, replicas: string[]): Promise<BlockRef> {
    if (replicas.length === 0) throw new Error('allocateBlock needs at least one replica');
    if (new Set(replicas).size !== replicas.length) throw new Error(`allocateBlock: duplicate datanode in ${replicas.join(',')}`);
    return this.write(async (c) => {
      // Refreshing updated_at (which also locks the open key against a concurrent commit or
      // abort) keeps a long upload from being expired while it still writes; the block and
      // its replicas are inserted only if the open key is there.
      const row = await one<{ local_id: number }>(
        c,
        `WITH touched AS (UPDATE open_keys SET updated_at = $2 WHERE object_id = $1 RETURNING object_id),
              block AS (INSERT INTO blocks (container_id, object_id, created_at) SELECT 0, object_id, $2 FROM touched RETURNING local_id)
         INSERT INTO block_replicas (local_id, position, datanode_id)
         SELECT block.local_id, r.ord - 1, r.datanode_id FROM block CROSS JOIN unnest($3::text[]) WITH ORDINALITY AS r(datanode_id, ord)
         RETURNING local_id`,
        [objectId, Date.now(), replicas],
      );
      if (!row) throw new MetadataError('NoSuchUpload', `no open key ${objectId}`);
      // The container follows from the id, which the database hands out: insert, then set it.
      const containerId = containerIdOf(row.local_id);
      await c.query('UPDATE blocks SET container_id = $1 WHERE local_id = $2', [containerId, row.local_id]);
      return { containerId, localId: row.local_id };
    });
  }

  async commitKey(input: CommitKeyInput): Promise<ObjectRecord> {
    // Without blocks there is no open key to settle: such PUTs (inline, empty) are batched.
    if (input.blocks.length === 0) return this.putBatches.add({ commit: input, ...commitColumns(input) });
    return this.commitAlone(input);
  }

  /** Commits the PUTs asked for during one turn of the event loop in batches (postgres-batches.ts). */
  private async commitPuts(queued: Pending<BatchedPut, ObjectRecord>[]): Promise<void> {
    const batch: typeof queued = [];
    const keys = new Set<string>();
    const commitAlone = (put: (typeof queued)[number]) =>
      this.commitAlone(put.input.commit).then(put.resolve, (error: unknown) => {
        // A bucket gone: its next PUTs go alone from the start rather than decline batches.
        if (error instanceof MetadataError && error.code === 'NoSuchBucket') this.layouts.delete(put.input.commit.bucketId);
        put.reject(error);
      });
    for (const put of queued) {
      const { bucketId, key } = put.input.commit;
      const version = versionKey(bucketId, key);
      // A second PUT of a key replaces a version the batch has not written yet; an FSO name
      // needs its directories; an unknown bucket gets its NoSuchBucket alone.
      const layout = await this.layoutOf(bucketId).catch(() => undefined);
      if (keys.has(version) || layout === undefined || layout === 'FSO') void commitAlone(put);
      else {
        keys.add(version);
        batch.push(put);
      }
    }
    if (batch.length === 0) return;
    this.write((c) => commitPutBatch(c, batch.map((put) => put.input), Date.now())).then(
      (outcomes) => outcomes.forEach((outcome, i) => (outcome.ok ? batch[i]!.resolve(outcome.record) : batch[i]!.reject(outcome.error))),
      (error: unknown) => (error instanceof BatchDeclined ? batch.forEach(commitAlone) : batch.forEach((put) => put.reject(error))),
    );
  }

  /** A commit in a transaction of its own. */
  private async commitAlone(input: CommitKeyInput): Promise<ObjectRecord> {
    const { inline, attributes } = commitColumns(input);
    return this.write(async (c) => {
      await requireBucket(c, input.bucketId);
      const open = await openKeyRow(c, input.objectId, 'FOR UPDATE');
      const committed = !open && (await c.query('SELECT 1 FROM objects WHERE object_id = $1', [input.objectId])).rows.length > 0;
      if (!mayCommit(open, input, committed)) throw new MetadataError('NoSuchUpload', `no open key ${input.objectId} for ${input.key}`);
      const name = (await this.storedName(c, input.bucketId, input.key, 'create'))!;
      const current = await currentVersion(c, input.bucketId, name);
      checkPreconditions(input, current);
      const now = Date.now();
      if (current) await retireBlocks(c, [current.object_id], now);
      // Without an open key nothing was allocated (mayCommit): no block to place or retire.
      if (open) {
        await checkAllocated(c, `commitKey ${input.key}`, input.objectId, input.blocks);
        await placeBlocks(c, input.objectId, input.blocks, now);
        await c.query('DELETE FROM open_keys WHERE object_id = $1', [input.objectId]);
      }
      const row = { bucket_id: input.bucketId, name, object_id: input.objectId, size: input.size, etag: input.etag, modified_at: now, attributes, inline_data: inline };
      await putVersion(c, row, current !== undefined);
      return { ...(await objectRecord(c, row)), key: input.key };
    });
  }

  async dropReplica(block: BlockRef, datanodeId: string): Promise<void> {
    await this.write(async (c) => {
      await lockBlock(c, block.localId);
      const dropped = await c.query('DELETE FROM block_replicas WHERE local_id = $1 AND datanode_id = $2', [block.localId, datanodeId]);
      if ((dropped.rowCount ?? 0) > 0) {
        await c.query(
          'INSERT INTO deleted_blocks (datanode_id, container_id, local_id, created_at) VALUES ($1, $2, $3, $4)',
          [datanodeId, block.containerId, block.localId, Date.now()],
        );
      }
    });
  }

  async abortOpenKey(objectId: string): Promise<void> {
    await this.write((c) => dropOpenKey(c, objectId, Date.now()));
  }

  async getObject(bucketId: number, key: string): Promise<ObjectRecord | undefined> {
    // One statement, one snapshot: the row and its blocks agree even if a concurrent
    // commit replaces the key meanwhile. FSO: the path is resolved in the same snapshot.
    if ((await this.layoutOf(bucketId)) !== 'FSO') return this.objectReads.add({ bucketId, name: key });
    const [record] = await this.read(async (c) => {
      const name = await this.storedName(c, bucketId, key, 'find');
      return name === undefined ? [] : selectObjects(async (sql, params) => (await c.query<ObjectRow & BlockReplicaRow>(sql, params)).rows, [{ bucketId, name }]);
    });
    return record && { ...record, key };
  }

  /** Looks up the OBS objects asked for during one turn of the event loop (postgres-batches.ts). */
  private lookUpObjects(reads: Pending<{ bucketId: number; name: string }, ObjectRecord | undefined>[]): void {
    selectObjects((sql, params) => this.select<ObjectRow & BlockReplicaRow>(sql, params), reads.map((read) => read.input)).then(
      (records) => records.forEach((record, i) => reads[i]!.resolve(record)),
      (error: unknown) => reads.forEach((read) => read.reject(error)),
    );
  }

  async deleteObject(bucketId: number, key: string): Promise<boolean> {
    const fso = (await this.layoutOf(bucketId)) === 'FSO';
    return this.write(async (c) => {
      if (fso) return this.deleteFsoEntry(c, bucketId, fsoKey(key));
      const row = await currentVersion(c, bucketId, key);
      if (!row) return false;
      await retireBlocks(c, [row.object_id], Date.now());
      await c.query('DELETE FROM objects WHERE bucket_id = $1 AND name = $2', [bucketId, key]);
      return true;
    });
  }

  async setObjectAttributes(bucketId: number, key: string, objectId: string, attributes: ObjectAttributes): Promise<boolean> {
    const update = (c: Pick<PoolClient, 'query'>, name: string) =>
      c.query('UPDATE objects SET attributes = $1 WHERE bucket_id = $2 AND name = $3 AND object_id = $4', [JSON.stringify(attributes), bucketId, name, objectId]);
    if ((await this.layoutOf(bucketId)) !== 'FSO') return (await update(this.pool, key)).rowCount === 1;
    return this.write(async (c) => {
      const name = await this.storedName(c, bucketId, key, 'find');
      return name !== undefined && (await update(c, name)).rowCount === 1;
    });
  }

  async rename(bucketId: number, from: string, to: string): Promise<'directory' | 'file'> {
    if ((await this.layoutOf(bucketId)) !== 'FSO') throw new MetadataError('InvalidRequest', 'only FSO buckets have directories to rename');
    const source = splitKey(fsoKey(from).replace(/\/$/, ''));
    const target = splitKey(fsoKey(to).replace(/\/$/, ''));
    return this.write(async (c) => {
      await requireBucket(c, bucketId);
      // The source first, locked FOR UPDATE: writers into it finish before, or wait.
      const sourceParent = await directoryAt(c, bucketId, source.directories, 'find');
      const sourceDirectory = sourceParent === undefined ? undefined : (await childDirectory(c, bucketId, sourceParent, source.leaf + '/', 'FOR UPDATE'))?.id;
      const sourceFile = sourceParent === undefined || sourceDirectory !== undefined
        ? undefined
        : await currentVersion(c, bucketId, internalName(sourceParent, source.leaf));
      if (sourceParent === undefined || (sourceDirectory === undefined && !sourceFile)) throw new MetadataError('NoSuchKey', `${from} does not exist`);
      const targetParent = (await directoryAt(c, bucketId, target.directories, 'create'))!;
      if (sourceDirectory !== undefined) {
        if (await childDirectory(c, bucketId, targetParent, target.leaf + '/')) throw new MetadataError('KeyAlreadyExists', `${to} exists`);
        for (let id = targetParent; id !== ROOT_DIRECTORY; id = (await one<{ parent_id: number }>(c, 'SELECT parent_id FROM directories WHERE id = $1', [id]))!.parent_id) {
          if (id === sourceDirectory) throw new MetadataError('InvalidRequest', `cannot move ${from} into itself`);
        }
        // The one write that moves the whole subtree.
        await c.query('UPDATE directories SET parent_id = $1, name = $2 WHERE id = $3', [targetParent, target.leaf + '/', sourceDirectory]);
      } else {
        const targetName = internalName(targetParent, target.leaf);
        if (await one(c, 'SELECT 1 FROM objects WHERE bucket_id = $1 AND name = $2', [bucketId, targetName])) throw new MetadataError('KeyAlreadyExists', `${to} exists`);
        await c.query('UPDATE objects SET name = $1 WHERE bucket_id = $2 AND name = $3', [targetName, bucketId, sourceFile!.name]);
      }
      await pruneDirectories(c, bucketId, sourceParent);
      return sourceDirectory !== undefined ? 'directory' : 'file';
    });
  }

  async listObjects(bucketId: number, query: ListObjectsQuery): Promise<ObjectSummary[]> {
    // FSO: a page is read from one snapshot, however many directories it walks.
    if ((await this.layoutOf(bucketId)) === 'FSO') return this.read((c) => listFsoObjects(this.namespaceReader(c, bucketId), query));
    // Prefix as a key range (not LIKE, which has wildcards), so the primary key serves it;
    // the "C" collation of name makes both the range and ORDER BY byte order.
    const where = new Where(bucketId);
    where.prefix(query.prefix);
    if (query.after !== undefined) where.add('name > ?', query.after);
    const rows = await this.select<ObjectSummaryRow>(
      `SELECT ${SUMMARY_COLUMNS} FROM objects WHERE ${where.sql()} ORDER BY name LIMIT ${where.param(limitOf(query.limit))}`,
      where.params,
    );
    return rows.map(toSummary);
  }

  // ---- multipart uploads ----

  async commitPart(input: CommitPartInput): Promise<PartRecord> {
    const size = input.blocks.reduce((sum, b) => sum + b.length, 0);
    if (size !== input.size) throw new Error(`commitPart ${input.uploadId}/${input.partNumber}: block lengths sum to ${size}, size is ${input.size}`);
    return this.write(async (c) => {
      // KEY SHARE: parts of one upload commit side by side, while completion and abort
      // (FOR UPDATE, DELETE) wait for them; the closing touch of updated_at does not conflict with it.
      const upload = await uploadRow(c, input.uploadId, 'FOR KEY SHARE');
      const part = await openKeyRow(c, input.objectId, 'FOR UPDATE');
      if (!upload) throw new MetadataError('NoSuchUpload', `no multipart upload ${input.uploadId}`);
      if (!part || part.kind !== 'part' || part.bucket_id !== upload.bucket_id || part.name !== upload.name) {
        throw new MetadataError('NoSuchUpload', `no open part ${input.objectId} for upload ${input.uploadId}`);
      }
      await checkAllocated(c, `commitPart ${input.uploadId}/${input.partNumber}`, input.objectId, input.blocks);
      const now = Date.now();
      const previous = await one<PartRow>(
        c, 'SELECT * FROM multipart_parts WHERE upload_id = $1 AND part_number = $2 FOR UPDATE', [input.uploadId, input.partNumber],
      );
      if (previous) await retireBlocks(c, [previous.part_id], now);
      await placeBlocks(c, input.objectId, input.blocks, now);
      // Replaced in place, so that a concurrent commit of this number waiting for the row sees the new part.
      const values = [input.uploadId, input.partNumber, input.objectId, input.size, input.etag, input.checksum?.algorithm ?? null, input.checksum?.value ?? null, now];
      const row = previous
        ? await one<PartRow>(
          c,
          `UPDATE multipart_parts SET part_id = $3, size = $4, etag = $5, checksum_algorithm = $6, checksum_value = $7, modified_at = $8
           WHERE upload_id = $1 AND part_number = $2 RETURNING *`,
          values,
        )
        : await one<PartRow>(
          c,
          `INSERT INTO multipart_parts (upload_id, part_number, part_id, size, etag, checksum_algorithm, checksum_value, modified_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
          values,
        );
      await c.query('DELETE FROM open_keys WHERE object_id = $1', [input.objectId]);
      await c.query('UPDATE open_keys SET updated_at = $1 WHERE object_id = $2', [now, input.uploadId]);
      return toPart(row!);
    });
  }

  async listParts(uploadId: string, query: { after?: number; limit: number }): Promise<PartRecord[]> {
    return this.read(async (c) => {
      if (!(await uploadRow(c, uploadId))) throw new MetadataError('NoSuchUpload', `no multipart upload ${uploadId}`);
      const { rows } = await c.query<PartRow>(
        'SELECT * FROM multipart_parts WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3',
        [uploadId, Math.trunc(query.after ?? 0), limitOf(query.limit)],
      );
      return rows.map(toPart);
    });
  }

  async getParts(uploadId: string): Promise<PartWithBlocks[]> {
    return this.read(async (c) => {
      if (!(await uploadRow(c, uploadId))) throw new MetadataError('NoSuchUpload', `no multipart upload ${uploadId}`);
      // One query for every part and its blocks: an upload may have 10 000 parts.
      const { rows } = await c.query<PartRow & BlockReplicaRow>(
        `SELECT p.*, b.local_id, b.container_id, b.length, r.datanode_id FROM multipart_parts p
         LEFT JOIN blocks b ON b.object_id = p.part_id AND b.idx IS NOT NULL
         LEFT JOIN block_replicas r ON r.local_id = b.local_id
         WHERE p.upload_id = $1 ORDER BY p.part_number, b.idx, r.position`,
        [uploadId],
      );
      const parts: PartWithBlocks[] = [];
      let group: (PartRow & BlockReplicaRow)[] = [];
      const flush = () => group.length > 0 && parts.push({ ...toPart(group[0]!), blocks: groupBlocks(group) });
      for (const r of rows) {
        if (group.length > 0 && group[0]!.part_number !== r.part_number) {
          flush();
          group = [];
        }
        group.push(r);
      }
      flush();
      return parts;
    });
  }

  async listMultipartUploads(bucketId: number, query: ListMultipartUploadsQuery): Promise<MultipartUpload[]> {
    const where = new Where(bucketId);
    where.add("kind = 'multipart'");
    where.prefix(query.prefix);
    if (query.keyMarker !== undefined) {
      if (query.uploadIdMarker !== undefined) where.add('(name > ? OR (name = ? AND object_id > ?))', query.keyMarker, query.keyMarker, query.uploadIdMarker);
      else where.add('name > ?', query.keyMarker);
    }
    const rows = await this.select<OpenKeyRow>(
      `SELECT ${OPEN_KEY_COLUMNS} FROM open_keys WHERE ${where.sql()} ORDER BY name, object_id LIMIT ${where.param(limitOf(query.limit))}`,
      where.params,
    );
    return rows.map((r) => ({ uploadId: r.object_id, bucketId: r.bucket_id, key: r.name, createdAt: r.created_at, attributes: parseAttributes(r.attributes) }));
  }

  async completeMultipartUpload(input: CompleteMultipartUploadInput): Promise<ObjectRecord> {
    const attributes = JSON.stringify(input.attributes);
    return this.write(async (c) => {
      await requireBucket(c, input.bucketId);
      // Waits for parts being committed; none can start until this transaction ends.
      const upload = await uploadRow(c, input.uploadId, 'FOR UPDATE');
      if (!upload || upload.bucket_id !== input.bucketId || upload.name !== input.key) {
        throw new MetadataError('NoSuchUpload', `no multipart upload ${input.uploadId} for ${input.key}`);
      }
      if (input.parts.length === 0) throw new MetadataError('InvalidPart', 'a multipart upload completes with at least one part');
      for (let i = 1; i < input.parts.length; i++) {
        if (input.parts[i]! <= input.parts[i - 1]!) throw new MetadataError('InvalidPartOrder', 'part numbers must be strictly ascending');
      }
      if (input.partEtags !== undefined && input.partEtags.length !== input.parts.length) {
        throw new Error(`completeMultipartUpload ${input.uploadId}: ${input.partEtags.length} etags for ${input.parts.length} parts`);
      }
      // Each part with the number of its committed blocks, in one query.
      const { rows } = await c.query<PartRow & { blocks: number }>(
        `SELECT p.*, (SELECT COUNT(*) FROM blocks b WHERE b.object_id = p.part_id AND b.idx IS NOT NULL) AS blocks
         FROM multipart_parts p WHERE p.upload_id = $1`,
        [input.uploadId],
      );
      const parts = new Map(rows.map((p) => [p.part_number, p]));
      let size = 0;
      input.parts.forEach((number, i) => {
        const part = parts.get(number);
        if (!part) throw new MetadataError('InvalidPart', `part ${number} of upload ${input.uploadId} does not exist`);
        if (input.partEtags !== undefined && input.partEtags[i] !== part.etag) {
          throw new MetadataError('InvalidPart', `part ${number} of upload ${input.uploadId} has another etag`);
        }
        size += part.size;
      });
      // The caller computed size and etag from the parts it read: a part replaced since then shows here.
      if (size !== input.size) throw new MetadataError('InvalidPart', `the chosen parts hold ${size} bytes, not ${input.size}`);
      const name = (await this.storedName(c, input.bucketId, input.key, 'create'))!;
      const current = await currentVersion(c, input.bucketId, name);
      checkPreconditions(input, current);

      const now = Date.now();
      if (current) await retireBlocks(c, [current.object_id], now);
      // Blocks allocated to the upload id itself were never part of a part.
      await retireBlocks(c, [input.uploadId], now);
      // The chosen parts' blocks move to the upload id, renumbered after the parts before them.
      const chosen: string[] = [];
      const offsets: number[] = [];
      let offset = 0;
      for (const number of input.parts) {
        const part = parts.get(number)!;
        chosen.push(part.part_id);
        offsets.push(offset);
        offset += part.blocks;
        parts.delete(number);
      }
      await c.query(
        `UPDATE blocks SET object_id = $1, idx = blocks.idx + m.shift
         FROM unnest($2::text[], $3::int[]) AS m(part_id, shift)
         WHERE blocks.object_id = m.part_id AND blocks.idx IS NOT NULL`,
        [input.uploadId, chosen, offsets],
      );
      await retireBlocks(c, [...parts.values()].map((p) => p.part_id), now);
      await c.query('DELETE FROM multipart_parts WHERE upload_id = $1', [input.uploadId]);
      await c.query('DELETE FROM open_keys WHERE object_id = $1', [input.uploadId]);
      const row = { bucket_id: input.bucketId, name, object_id: input.uploadId, size: input.size, etag: input.etag, modified_at: now, attributes };
      await putVersion(c, row, current !== undefined);
      return { ...(await objectRecord(c, row)), key: input.key };
    });
  }

  async abortMultipartUpload(uploadId: string): Promise<void> {
    await this.write(async (c) => {
      if (!(await uploadRow(c, uploadId, 'FOR UPDATE'))) throw new MetadataError('NoSuchUpload', `no multipart upload ${uploadId}`);
      await dropOpenKey(c, uploadId, Date.now());
    });
  }

  // ---- datanodes ----

  async registerDatanode(input: { id: string; address: string; capacityBytes: number; usedBytes: number }): Promise<void> {
    await this.statement(
      `INSERT INTO datanodes (id, address, capacity_bytes, used_bytes, last_heartbeat, state) VALUES ($1, $2, $3, $4, $5, 'live')
       ON CONFLICT (id) DO UPDATE SET address = excluded.address, capacity_bytes = excluded.capacity_bytes,
         used_bytes = excluded.used_bytes, last_heartbeat = excluded.last_heartbeat, state = 'live'`,
      [input.id, input.address, input.capacityBytes, input.usedBytes, Date.now()],
    );
  }

  async heartbeat(id: string, usage: { capacityBytes: number; usedBytes: number }): Promise<void> {
    const result = await this.statement(
      "UPDATE datanodes SET capacity_bytes = $1, used_bytes = $2, last_heartbeat = $3, state = 'live' WHERE id = $4",
      [usage.capacityBytes, usage.usedBytes, Date.now(), id],
    );
    // As in Ozone, an unknown datanode must register (again) before it heartbeats.
    if (result.rowCount === 0) throw new Error(`datanode ${id} is not registered`);
  }

  async listDatanodes(): Promise<DatanodeRecord[]> {
    const rows = await this.select<DatanodeRow>('SELECT * FROM datanodes ORDER BY id');
    const now = Date.now();
    return rows.map((r) => ({
      id: r.id,
      address: r.address,
      capacityBytes: r.capacity_bytes,
      usedBytes: r.used_bytes,
      lastHeartbeat: r.last_heartbeat,
      // Dead when silent too long: no service has to write the verdict down.
      state: r.state === 'dead' || now - r.last_heartbeat > this.deadAfterMs ? 'dead' : 'live',
    }));
  }

  async declareDatanodeDead(id: string): Promise<void> {
    const result = await this.statement("UPDATE datanodes SET state = 'dead' WHERE id = $1", [id]);
    if (result.rowCount === 0) throw new Error(`datanode ${id} is not registered`);
  }

  // ---- background services ----

  async tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    // One conditional upsert: the conflicting row is locked and the condition judged on its
    // latest version, so of two gateways racing for a lease exactly one gets it.
    const result = await this.statement(
      `INSERT INTO service_leases (name, holder, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE service_leases.holder = excluded.holder OR service_leases.expires_at < $4`,
      [name, holder, now + ttlMs, now],
    );
    return result.rowCount === 1;
  }

  async underReplicatedBlocks(replication: number, limit: number): Promise<UnderReplicatedBlock[]> {
    const liveSince = Date.now() - this.deadAfterMs;
    const rows = await this.select<{ local_id: number; container_id: number; length: number; datanode_id: string; live: number }>(
      `WITH short AS (
         SELECT b.local_id FROM blocks b
         JOIN block_replicas r ON r.local_id = b.local_id
         LEFT JOIN datanodes d ON d.id = r.datanode_id
         WHERE b.idx IS NOT NULL
         GROUP BY b.local_id
         HAVING SUM(CASE WHEN d.state = 'live' AND d.last_heartbeat >= $1 THEN 1 ELSE 0 END) BETWEEN 1 AND $2 - 1
         ORDER BY b.local_id LIMIT $3)
       SELECT b.local_id, b.container_id, b.length, r.datanode_id,
              CASE WHEN d.state = 'live' AND d.last_heartbeat >= $1 THEN 1 ELSE 0 END AS live
       FROM short s JOIN blocks b ON b.local_id = s.local_id
       JOIN block_replicas r ON r.local_id = b.local_id
       LEFT JOIN datanodes d ON d.id = r.datanode_id
       ORDER BY b.local_id, r.position`,
      [liveSince, Math.trunc(replication), limitOf(limit)],
    );
    const blocks = new Map<number, UnderReplicatedBlock>();
    for (const row of rows) {
      let block = blocks.get(row.local_id);
      if (!block) blocks.set(row.local_id, (block = { containerId: row.container_id, localId: row.local_id, length: row.length, replicas: [], live: [] }));
      block.replicas.push(row.datanode_id);
      if (row.live) block.live.push(row.datanode_id);
    }
    return [...blocks.values()];
  }

  async replaceReplicas(block: BlockRef, replicas: string[]): Promise<void> {
    await this.write(async (c) => {
      const now = Date.now();
      const exists = await lockBlock(c, block.localId);
      const { rows } = await c.query<{ datanode_id: string }>('SELECT datanode_id FROM block_replicas WHERE local_id = $1', [block.localId]);
      const old = rows.map((r) => r.datanode_id);
      // A block deleted meanwhile: every copy, the new ones included, is garbage.
      const retired = exists ? old.filter((id) => !replicas.includes(id)) : replicas;
      if (retired.length > 0) {
        await c.query(
          `INSERT INTO deleted_blocks (datanode_id, container_id, local_id, created_at)
           SELECT r.datanode_id, $2, $3, $4 FROM unnest($1::text[]) WITH ORDINALITY AS r(datanode_id, ord) ORDER BY r.ord`,
          [retired, block.containerId, block.localId, now],
        );
      }
      if (!exists) return;
      await c.query('DELETE FROM block_replicas WHERE local_id = $1', [block.localId]);
      await insertReplicas(c, block.localId, replicas);
    });
  }

  async expireMultipartUploads(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    return this.write(async (c) => {
      const { rows } = await c.query<{ object_id: string }>(
        "SELECT object_id FROM open_keys WHERE kind = 'multipart' AND created_at < $1 ORDER BY created_at LIMIT $2", [cutoff, EXPIRE_BATCH],
      );
      return dropStale(c, rows, "kind = 'multipart' AND created_at < $2", cutoff);
    });
  }

  async expireOpenKeys(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let expired = 0;
    // Small batches, each its own transaction, so that a conflict retries little work.
    for (;;) {
      const batch = await this.write(async (c) => {
        const { rows } = await c.query<{ object_id: string }>(
          "SELECT object_id FROM open_keys WHERE kind IN ('put', 'part') AND updated_at < $1 ORDER BY updated_at LIMIT $2", [cutoff, EXPIRE_BATCH],
        );
        return { found: rows.length, dropped: await dropStale(c, rows, "kind IN ('put', 'part') AND updated_at < $2", cutoff) };
      });
      expired += batch.dropped;
      if (batch.found < EXPIRE_BATCH) return expired;
    }
  }

  async pendingBlockDeletions(limit: number): Promise<BlockDeletion[]> {
    const rows = await this.select<{ id: number; datanode_id: string; container_id: number; local_id: number }>(
      'SELECT id, datanode_id, container_id, local_id FROM deleted_blocks ORDER BY id LIMIT $1', [limitOf(limit)],
    );
    return rows.map((r) => ({ id: r.id, datanodeId: r.datanode_id, block: { containerId: r.container_id, localId: r.local_id } }));
  }

  async completeBlockDeletions(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.statement('DELETE FROM deleted_blocks WHERE id = ANY($1::bigint[])', [ids.map((id) => Math.trunc(id))]);
  }

  // ---- monitoring ----

  async usage(): Promise<StoreUsage> {
    return this.read(async (c) => {
      // SUM of BIGINT is NUMERIC in PostgreSQL (a string here): cast back to BIGINT.
      const { rows: buckets } = await c.query<BucketUsage>(
        `SELECT b.volume AS volume, b.name AS name, COUNT(o.object_id) AS objects, CAST(COALESCE(SUM(o.size), 0) AS BIGINT) AS bytes
         FROM buckets b LEFT JOIN objects o ON o.bucket_id = b.id
         GROUP BY b.id, b.volume, b.name ORDER BY b.volume, b.name`,
      );
      const openKeys = (await one<{ n: number }>(c, 'SELECT COUNT(*) AS n FROM open_keys', []))!.n;
      const pendingBlockDeletions = (await one<{ n: number }>(c, 'SELECT COUNT(*) AS n FROM deleted_blocks', []))!.n;
      // Liveness as listDatanodes judges it: marked live and heard from recently.
      const { rows } = await c.query<{ live: number; blocks: number }>(
        `SELECT live, COUNT(*) AS blocks FROM (
           SELECT r.local_id, CAST(SUM(CASE WHEN d.id IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS live
           FROM block_replicas r
           LEFT JOIN datanodes d ON d.id = r.datanode_id AND d.state = 'live' AND d.last_heartbeat >= $1
           GROUP BY r.local_id
         ) per_block GROUP BY live ORDER BY live`,
        [Date.now() - this.deadAfterMs],
      );
      return { buckets, openKeys, pendingBlockDeletions, blocksByLiveReplicas: Object.fromEntries(rows.map((r) => [String(r.live), r.blocks])) };
    });
  }

  // ---- FSO namespace (namespace.ts) ----

  /**
   * Inside a transaction, pass its client: a second connection from the pool could wait forever,
   * once every connection is held by a transaction waiting likewise (a fresh gateway's first
   * pool-size concurrent PUTs into a bucket, before the layout was known).
   */
  private async layoutOf(bucketId: number, c?: PoolClient): Promise<BucketLayout | undefined> {
    const known = this.layouts.get(bucketId);
    if (known !== undefined) return known;
    const sql = 'SELECT layout FROM buckets WHERE id = $1';
    const [row] = c ? (await c.query<{ layout: BucketLayout }>(sql, [bucketId])).rows : await this.select<{ layout: BucketLayout }>(sql, [bucketId]);
    if (row) this.layouts.set(bucketId, row.layout);
    return row?.layout;
  }

  /** The objects row name of an S3 key: itself in an OBS bucket, `<directory id>/<leaf>` in an FSO bucket. */
  private async storedName(c: PoolClient, bucketId: number, key: string, mode: 'create' | 'find'): Promise<string | undefined> {
    if ((await this.layoutOf(bucketId, c)) !== 'FSO') return key;
    const { directories, leaf } = splitKey(fsoKey(key));
    const parent = await directoryAt(c, bucketId, directories, mode);
    return parent === undefined ? undefined : internalName(parent, leaf);
  }

  /** A file goes; a directory goes only when empty (DirectoryNotEmpty otherwise), with its marker. */
  private async deleteFsoEntry(c: PoolClient, bucketId: number, key: string): Promise<boolean> {
    const { directories, leaf } = splitKey(key);
    const parent = await directoryAt(c, bucketId, directories, 'find');
    if (parent === undefined) return false;
    if (leaf === '') {
      // Held first, so that no file can arrive between the check and the removal.
      if (!(await one(c, 'SELECT 1 FROM directories WHERE id = $1 FOR UPDATE', [parent]))) return false;
      if (!(await directoryIsEmpty(c, bucketId, parent))) throw new MetadataError('DirectoryNotEmpty', `${key} is not empty`);
    }
    const row = await currentVersion(c, bucketId, internalName(parent, leaf));
    if (row) {
      await retireBlocks(c, [row.object_id], Date.now());
      await c.query('DELETE FROM objects WHERE bucket_id = $1 AND name = $2', [bucketId, row.name]);
    }
    await pruneDirectories(c, bucketId, parent);
    return row !== undefined || leaf === '';
  }

  private namespaceReader(c: PoolClient, bucketId: number): NamespaceReader {
    const range = (where: Where, lower: Bound, upper: string | undefined, wrap: (v: string) => string) => {
      where.add(`name ${lower.inclusive ? '>=' : '>'} ?`, wrap(lower.value));
      if (upper !== undefined) where.add('name < ?', wrap(upper));
    };
    return {
      directory: async (parentId, name) => (await childDirectory(c, bucketId, parentId, name))?.id,
      marker: async (id) => {
        const row = await one<ObjectSummaryRow>(c, `SELECT ${SUMMARY_COLUMNS} FROM objects WHERE bucket_id = $1 AND name = $2`, [bucketId, internalName(id, '')]);
        return row && toSummary(row);
      },
      files: async (id, lower, upper, limit) => {
        // Beyond `<id>/` (the marker) and below `<id>0` ('0' follows '/'): this directory's files.
        const file = (leaf: string) => internalName(id, leaf);
        const where = new Where(bucketId);
        where.add('name > ? AND name < ?', file(''), `${id}0`);
        range(where, lower, upper, file);
        const { rows } = await c.query<ObjectSummaryRow>(
          `SELECT ${SUMMARY_COLUMNS} FROM objects WHERE ${where.sql()} ORDER BY name LIMIT ${where.param(limit)}`, where.params,
        );
        return rows.map(toSummary);
      },
      directories: async (id, lower, upper, limit) => {
        const where = new Where(bucketId);
        where.add('parent_id = ?', id);
        range(where, lower, upper, (v) => v);
        return (await c.query<DirectoryRow>(`SELECT id, name FROM directories WHERE ${where.sql()} ORDER BY name LIMIT ${where.param(limit)}`, where.params)).rows;
      },
    };
  }

  // ---- transactions ----

  /** One read-write transaction, run again from the start on a conflict. */
  private write<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    return this.transaction(this.begin, fn);
  }

  /**
   * A write to users, access keys or buckets: it moves the lookup epoch in its transaction and
   * resolves once every gateway's cache must read the epoch again (lookup-cache.ts).
   */
  private async writeLookups<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const result = await this.write(async (c) => {
      const value = await fn(c);
      // Before migrate() has made the table (migrate's own reseal), there is no cache to tell.
      if (this.lookups) await c.query('UPDATE lookup_epoch SET n = n + 1 WHERE id = 1');
      return value;
    });
    if (this.lookups) {
      this.lookups.recheck();
      await this.lookups.settled();
    }
    return result;
  }

  /** One snapshot for reads of several statements. */
  private read<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    return this.transaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', fn);
  }

  /**
   * One statement on its own: atomic, one snapshot, and no BEGIN/COMMIT round trips. Reads,
   * and writes that are a single conditional statement (row locks taken by the statement
   * are held until it ends).
   */
  private statement<R extends QueryResultRow>(sql: string, params: Params = []): Promise<QueryResult<R>> {
    return this.retrying(() => this.pool.query<R>(sql, params as unknown[]));
  }

  private async select<R extends QueryResultRow>(sql: string, params: Params = []): Promise<R[]> {
    return (await this.statement<R>(sql, params)).rows;
  }

  private transaction<T>(begin: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
    return this.retrying(async () => {
      const client = await this.pool.connect();
      let broken = false;
      try {
        await client.query(begin);
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        // A connection that cannot even roll back is discarded, not reused.
        await client.query('ROLLBACK').catch(() => (broken = true));
        throw error;
      } finally {
        client.release(broken);
      }
    });
  }

  private async retrying<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      if (this.closed) throw new Error('metadata store is closed');
      try {
        return await attempt();
      } catch (error) {
        if (isUnreachable(error)) throw new MetadataError('ServiceUnavailable', `PostgreSQL cannot be reached: ${(error as Error).message}`);
        // Its disk (disk_full): 507, as from a full SQLite database or full datanodes; the transaction is rolled back.
        if (error instanceof pg.DatabaseError && error.code === DISK_FULL) throw new MetadataError('InsufficientStorage', `the metadata database is full: ${error.message}`);
        if (n >= this.maxAttempts || !(error instanceof pg.DatabaseError) || !RETRYABLE.has(error.code ?? '')) throw error;
      }
      // Random backoff, growing to ~100 ms, so that the retried transactions do not collide again.
      await sleep(Math.random() * Math.min(100, 2 ** n));
    }
  }
}

/** libpq's connect timeout (seconds) for url, in ms; CONNECT_TIMEOUT_MS when unset or not a positive number. */
export function connectTimeoutOf(url: string): number {
  const given = URL.canParse(url) ? new URL(url).searchParams.get('connect_timeout') : null;
  const seconds = Number(given ?? process.env.PGCONNECT_TIMEOUT);
  return seconds > 0 ? Math.round(seconds * 1000) : CONNECT_TIMEOUT_MS;
}

/** Socket errors of a server that is down, refusing, or unreachable. */
const UNREACHABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT']);
/** SQLSTATE disk_full: a table, index or temporary file could not grow. */
const DISK_FULL = '53100';
/** PostgreSQL's own: connection exceptions (class 08), shutting down or starting up, too many connections. */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * Whether a query failed because the server is out of reach rather than because of the query.
 * node-postgres gives its own connection failures (the pool's connect timeout, a connection
 * that ended mid-query) no code, only these messages.
 */
function isUnreachable(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return error.code?.startsWith('08') === true || UNAVAILABLE_SQLSTATES.has(error.code ?? '');
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined) return UNREACHABLE_ERRNOS.has(code);
  return /^(timeout exceeded when trying to connect|Connection terminated)/.test(error.message);
}
