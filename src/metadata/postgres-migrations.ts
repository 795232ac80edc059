// Versioned schema for the PostgreSQL metadata store: the same tables and columns as the
// SQLite migrations (same versions and names), in PostgreSQL's dialect. Applied
// migrations are never edited; a change is a new entry at the end.
//
// Dialect notes:
// - Ids the database hands out (buckets, blocks, deleted-block log) are BIGINT identity
//   columns: sequence-backed, never reused, and small enough for a JavaScript number.
//   Not SERIAL: on CockroachDB SERIAL means unique_rowid(), ~2^63, past 2^53.
// - Key and name columns are TEXT COLLATE "C": comparison is memcmp over UTF-8, i.e. the
//   S3 listing order, whatever the database's default collation (often en_US.UTF-8).
//   CockroachDB compares STRING bytewise already but, as of v23/v24, refuses "C" as a
//   column collation (cockroach#108657; only `expr COLLATE "C"` is accepted since v23.1),
//   so there the clause is dropped (see dialect below). YugabyteDB accepts it as PostgreSQL does.
// - Constraint names are explicit so that migration 2 can drop one on every dialect.
import type { PoolClient } from 'pg';
import type { Migration } from './migrations.js';

export type PostgresDialect = 'postgresql' | 'cockroachdb';

export const postgresMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE volumes (
        name        TEXT COLLATE "C" PRIMARY KEY,
        created_at  BIGINT NOT NULL
      );

      CREATE TABLE users (
        name          TEXT COLLATE "C" PRIMARY KEY,
        canonical_id  TEXT NOT NULL UNIQUE,
        display_name  TEXT NOT NULL,
        admin         BOOLEAN NOT NULL DEFAULT FALSE,
        created_at    BIGINT NOT NULL
      );

      CREATE TABLE access_keys (
        access_key_id  TEXT COLLATE "C" PRIMARY KEY,
        secret         TEXT NOT NULL,
        user_name      TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        created_at     BIGINT NOT NULL
      );
      CREATE INDEX access_keys_by_user ON access_keys(user_name);

      -- An identity is never reused, so an open key of a deleted bucket can never commit
      -- into a new bucket of the same name.
      CREATE TABLE buckets (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        volume      TEXT COLLATE "C" NOT NULL REFERENCES volumes(name),
        name        TEXT COLLATE "C" NOT NULL,
        owner       TEXT COLLATE "C" NOT NULL REFERENCES users(name),
        layout      TEXT NOT NULL CONSTRAINT buckets_layout CHECK (layout IN ('OBS', 'FSO')),
        created_at  BIGINT NOT NULL,
        CONSTRAINT buckets_volume_name UNIQUE (volume, name)
      );
      CREATE INDEX buckets_by_owner ON buckets(volume, owner);

      CREATE TABLE objects (
        bucket_id    BIGINT NOT NULL REFERENCES buckets(id),
        name         TEXT COLLATE "C" NOT NULL,
        object_id    TEXT COLLATE "C" NOT NULL UNIQUE,
        size         BIGINT NOT NULL,
        etag         TEXT NOT NULL,
        modified_at  BIGINT NOT NULL,
        -- JSON as text, as in SQLite: returned verbatim, never queried (and JSONB would
        -- refuse a \\u0000 inside a string).
        attributes   TEXT NOT NULL,
        PRIMARY KEY (bucket_id, name)
      );

      -- No foreign key to buckets: a bucket may be deleted while a PUT is in flight.
      CREATE TABLE open_keys (
        object_id   TEXT COLLATE "C" PRIMARY KEY,
        bucket_id   BIGINT NOT NULL,
        name        TEXT COLLATE "C" NOT NULL,
        kind        TEXT NOT NULL CONSTRAINT open_keys_kind CHECK (kind IN ('put', 'multipart')),
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
      );
      CREATE INDEX open_keys_by_bucket ON open_keys(bucket_id, kind);
      CREATE INDEX open_keys_by_age ON open_keys(kind, updated_at);

      -- idx and length are NULL until the block is committed as part of its object.
      CREATE TABLE blocks (
        local_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        container_id  BIGINT NOT NULL,
        object_id     TEXT COLLATE "C" NOT NULL,
        idx           INTEGER,
        length        BIGINT,
        created_at    BIGINT NOT NULL
      );
      CREATE INDEX blocks_by_object ON blocks(object_id, idx);

      CREATE TABLE block_replicas (
        local_id     BIGINT NOT NULL REFERENCES blocks(local_id) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        datanode_id  TEXT NOT NULL,
        PRIMARY KEY (local_id, position)
      );

      CREATE TABLE datanodes (
        id              TEXT COLLATE "C" PRIMARY KEY,
        address         TEXT NOT NULL,
        capacity_bytes  BIGINT NOT NULL,
        used_bytes      BIGINT NOT NULL,
        last_heartbeat  BIGINT NOT NULL,
        state           TEXT NOT NULL CONSTRAINT datanodes_state CHECK (state IN ('live', 'dead'))
      );

      CREATE TABLE deleted_blocks (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        datanode_id   TEXT NOT NULL,
        container_id  BIGINT NOT NULL,
        local_id      BIGINT NOT NULL,
        created_at    BIGINT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'multipart uploads',
    // PostgreSQL alters in place what SQLite has to rebuild.
    sql: `
      ALTER TABLE open_keys DROP CONSTRAINT open_keys_kind;
      ALTER TABLE open_keys ADD CONSTRAINT open_keys_kind_v2 CHECK (kind IN ('put', 'multipart', 'part'));
      ALTER TABLE open_keys ADD COLUMN attributes TEXT;
      -- Serves ListMultipartUploads (by key, then upload id) and deleteBucket's check.
      DROP INDEX open_keys_by_bucket;
      CREATE INDEX open_keys_by_bucket_v2 ON open_keys(bucket_id, kind, name, object_id);

      CREATE TABLE multipart_parts (
        upload_id           TEXT COLLATE "C" NOT NULL,
        part_number         INTEGER NOT NULL,
        part_id             TEXT COLLATE "C" NOT NULL UNIQUE,
        size                BIGINT NOT NULL,
        etag                TEXT NOT NULL,
        checksum_algorithm  TEXT,
        checksum_value      TEXT,
        modified_at         BIGINT NOT NULL,
        PRIMARY KEY (upload_id, part_number)
      );
    `,
  },
  {
    version: 3,
    name: 'service leases and replica lookups',
    sql: `
      -- Background services run on one gateway at a time: whoever holds the lease.
      CREATE TABLE service_leases (
        name        TEXT COLLATE "C" PRIMARY KEY,
        holder      TEXT NOT NULL,
        expires_at  BIGINT NOT NULL
      );
      -- Re-replication finds the blocks of a dead datanode.
      CREATE INDEX block_replicas_by_datanode ON block_replicas(datanode_id, local_id);
    `,
  },
  {
    version: 4,
    name: 'inline small objects',
    // NULL for objects kept in blocks.
    sql: 'ALTER TABLE objects ADD COLUMN inline_data BYTEA;',
  },
  {
    version: 5,
    name: 'tenants and sealed secrets',
    sql: `
      CREATE TABLE tenants (
        name        TEXT COLLATE "C" PRIMARY KEY REFERENCES volumes(name),
        created_at  BIGINT NOT NULL
      );
      ALTER TABLE users ADD COLUMN tenant TEXT COLLATE "C" REFERENCES tenants(name);
      CREATE INDEX users_by_tenant ON users(tenant);
      -- NULL: a plaintext secret from before, sealed as soon as a store with a KEK opens the database.
      ALTER TABLE access_keys ADD COLUMN kek_id TEXT;
      CREATE INDEX buckets_by_name ON buckets(name);
    `,
  },
  {
    version: 6,
    name: 'fso directories',
    // As in SQLite: parent_id 0 is the root; name keeps its trailing '/'.
    sql: `
      CREATE TABLE directories (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        bucket_id   BIGINT NOT NULL REFERENCES buckets(id),
        parent_id   BIGINT NOT NULL,
        name        TEXT COLLATE "C" NOT NULL,
        created_at  BIGINT NOT NULL,
        CONSTRAINT directories_by_parent UNIQUE (bucket_id, parent_id, name)
      );
    `,
  },
  {
    version: 7,
    name: 'covering index for listings',
    // As in SQLite: listing pages become index-only scans.
    sql: 'CREATE INDEX objects_listing ON objects (bucket_id, name) INCLUDE (object_id, size, etag, modified_at);',
  },
  {
    version: 8,
    name: 'lookup epoch',
    // As in SQLite, but moved by the store's own writes rather than triggers (CockroachDB has
    // had none until recently): every s3g write to users, access_keys or buckets moves it.
    sql: `
      CREATE TABLE lookup_epoch (
        id  INTEGER PRIMARY KEY CONSTRAINT lookup_epoch_one_row CHECK (id = 1),
        n   BIGINT NOT NULL
      );
      INSERT INTO lookup_epoch (id, n) VALUES (1, 0);
    `,
  },
];

/** Which server speaks the protocol: only CockroachDB needs a different spelling. */
export async function detectDialect(client: PoolClient): Promise<PostgresDialect> {
  const { rows } = await client.query<{ version: string }>('SELECT version() AS version');
  return /cockroachdb/i.test(rows[0]?.version ?? '') ? 'cockroachdb' : 'postgresql';
}

export function migrationSql(migration: Migration, dialect: PostgresDialect): string {
  return dialect === 'cockroachdb' ? migration.sql.replaceAll(' COLLATE "C"', '') : migration.sql;
}

/** Runs fn in one serializable transaction, retried on conflicts (the store's runner). */
export type TransactionRunner = <T>(fn: (client: PoolClient) => Promise<T>) => Promise<T>;

/**
 * IF NOT EXISTS is no guard against a concurrent CREATE: the loser fails on the catalog's
 * unique index (23505), or with duplicate_table / duplicate_object; once the winner has
 * committed, trying again finds the table.
 */
async function createMigrationsTable(transaction: TransactionRunner): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await transaction((c) =>
        c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)'));
      return;
    } catch (err) {
      if (attempt >= 10 || !['23505', '42P07', '42710'].includes((err as { code?: string }).code ?? '')) throw err;
    }
  }
}

/**
 * Applies the migrations not yet recorded; safe when several gateways start at once.
 * No advisory lock (CockroachDB has none): each migration first claims its version by
 * inserting it into schema_migrations, then runs its DDL, in one transaction. A second
 * gateway doing the same blocks on that primary key until the first commits, then fails
 * with a unique violation (or a serialization failure); the runner retries it, and the
 * retry finds the version recorded and skips it. A failed migration rolls back whole.
 */
export async function migratePostgres(
  transaction: TransactionRunner,
  migrations: readonly Migration[] = postgresMigrations,
): Promise<number[]> {
  await createMigrationsTable(transaction);
  const encoding = await transaction((c) => c.query<{ e: string }>("SELECT current_setting('server_encoding') AS e"));
  // Keys are stored and compared as UTF-8; any other server encoding would mangle them.
  if (encoding.rows[0]?.e.toUpperCase() !== 'UTF8') {
    throw new Error(`the metadata database must use UTF8 encoding, not ${encoding.rows[0]?.e}`);
  }
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const applied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    const ran = await transaction(async (c) => {
      const done = await c.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (done.rows.length > 0) return false;
      await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.name, Date.now()]);
      await c.query(migrationSql(migration, await detectDialect(c)));
      return true;
    });
    if (ran) applied.push(migration.version);
  }
  // A database written by a newer s3g may hold tables this code does not understand.
  const { rows } = await transaction((c) => c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations'));
  const current = rows[0]?.v ?? 0;
  if (current > latest) {
    throw new Error(`metadata schema version ${current} is newer than this s3g supports (${latest}); upgrade s3g`);
  }
  return applied;
}
