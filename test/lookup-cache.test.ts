// The lookup cache of access keys and buckets (src/metadata/lookup-cache.ts), on both stores:
// what another process changes is seen by the time the change is acknowledged, what this
// process changes at once, and object writes leave the cache alone. Two store instances on one
// database stand for two processes (each has its own connections and cache).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { LookupCache } from '../src/metadata/lookup-cache.js';
import { PostgresMetadataStore } from '../src/metadata/postgres.js';
import { SecretBox } from '../src/metadata/secret-box.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite.js';
import type { MetadataStore } from '../src/metadata/store.js';
import { postgresUnavailable, startPostgres, type PostgresServer } from './helpers/postgres.js';

const secrets = new SecretBox([randomBytes(32)]);
/** Long enough that no test step outlasts it by chance. */
const RECHECK_MS = 300;

interface Fixture {
  /** A new, migrated store on the fixture's database, with RECHECK_MS; closed at teardown. */
  open(): Promise<MetadataStore>;
  /** Runs SQL on a connection of the test's own. */
  exec(sql: string): Promise<void>;
  epoch(): Promise<number>;
}

type FixtureFactory = (t: Test) => Promise<Fixture>;

/** Opens migrated stores made by `make`; closes them all, then runs `cleanup`, at teardown. */
function storeOpener(t: Test, make: () => MetadataStore, cleanup: () => unknown): () => Promise<MetadataStore> {
  const stores: MetadataStore[] = [];
  t.teardown(async () => {
    for (const store of stores) await store.close();
    await cleanup();
  });
  return async () => {
    const store = make();
    await store.migrate();
    stores.push(store);
    return store;
  };
}

const sqlite: FixtureFactory = async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 's3g-lookups-'));
  const path = join(dir, 's3g.db');
  const raw = new Database(path);
  return {
    open: storeOpener(t, () => new SqliteMetadataStore(path, { secrets, lookupRecheckMs: RECHECK_MS }), () => {
      raw.close();
      rmSync(dir, { recursive: true, force: true });
    }),
    exec: async (sql) => void raw.exec(sql),
    epoch: async () => (raw.prepare('SELECT n FROM lookup_epoch WHERE id = 1').get() as { n: number }).n,
  };
};

let postgres: Promise<PostgresServer> | undefined;
t.teardown(async () => {
  if (postgres) await (await postgres.catch(() => undefined))?.stop();
});

const postgresql: FixtureFactory = async (t) => {
  const server = await (postgres ??= startPostgres());
  const url = await server.createDatabase();
  return {
    open: storeOpener(t, () => new PostgresMetadataStore(url, { secrets, lookupRecheckMs: RECHECK_MS }), () => server.dropDatabase(url)),
    exec: async (sql) => void (await server.query(url, sql)),
    epoch: async () => Number((await server.query(url, 'SELECT n FROM lookup_epoch WHERE id = 1'))[0]!.n),
  };
};

t.test('LookupCache: values kept while the epoch stands, misses not kept, values frozen', async (t) => {
  let epoch = 0;
  let epochReads = 0;
  const cache = new LookupCache({ readEpoch: () => (epochReads++, epoch), recheckMs: 60_000 });
  const users = cache.lookup<{ name: string }>();
  let loads = 0;
  const load = (name: string) => () => (loads++, name === 'ghost' ? undefined : { name });
  t.same(await users.get('alice', load('alice')), { name: 'alice' });
  t.same(await users.get('alice', load('alice')), { name: 'alice' });
  t.equal(loads, 1, 'the second lookup is served from the cache');
  t.ok(Object.isFrozen(await users.get('alice', load('alice'))), 'shared values are frozen');
  t.equal(await users.get('ghost', load('ghost')), undefined);
  t.equal(await users.get('ghost', load('ghost')), undefined);
  t.equal(loads, 3, 'a miss is looked up every time (unknown keys cannot fill the cache)');
  t.equal(epochReads, 1, 'the epoch is read once per recheck interval');

  epoch = 1;
  await users.get('alice', load('alice'));
  t.equal(loads, 3, 'a moved epoch is not seen before the interval ends or a recheck');
  cache.recheck();
  await users.get('alice', load('alice'));
  t.equal(epochReads, 2, 'recheck() makes the next lookup read the epoch');
  t.equal(loads, 4, 'a moved epoch empties the cache');
});

t.test('LookupCache: an epoch read in flight is shared, and a load that straddles a change is not kept', async (t) => {
  let epoch = 0;
  let epochReads = 0;
  const cache = new LookupCache({ readEpoch: async () => (epochReads++, await sleep(20), epoch), recheckMs: 60_000 });
  const buckets = cache.lookup<{ id: number }>();
  let id = 1;
  const results = await Promise.all([1, 2, 3].map(() => buckets.get('photos', () => ({ id }))));
  t.same(results.map((r) => r?.id), [1, 1, 1]);
  t.equal(epochReads, 1, 'lookups arriving while the epoch is read wait for that one read');

  // A load under the old epoch finishes after the cache learnt of a new one: its value is not kept.
  epoch = 1;
  cache.recheck();
  let release!: () => void;
  const slowLoad = buckets.get('other', () => new Promise((resolve) => (release = () => resolve({ id: 7 }))));
  await sleep(40);
  id = 2;
  t.equal((await buckets.get('photos', () => ({ id })))?.id, 2, 'the new epoch emptied the cache');
  epoch = 2;
  cache.recheck();
  await buckets.get('photos', () => ({ id }));
  release();
  t.equal((await slowLoad)?.id, 7, 'the straddling load still answers its caller');
  let reloaded = false;
  await buckets.get('other', () => ((reloaded = true), { id: 8 }));
  t.ok(reloaded, 'but its value was not kept under the new epoch');
});

function storeSuite(name: string, fixture: FixtureFactory): void {
  t.test(`${name}: a revoked key or a replaced bucket is seen by another instance once the change is acknowledged`, async (t) => {
    const { open } = await fixture(t);
    const gateway = await open();
    const admin = await open();
    const bob = await admin.createUser({ name: 'bob' });
    const key = bob.accessKeys[0]!;
    const first = await admin.createBucket({ volume: 's3v', name: 'photos', owner: 'bob' });

    t.equal((await gateway.lookupAccessKey(key.accessKeyId))?.secretAccessKey, key.secretAccessKey);
    t.equal((await gateway.getBucket('s3v', 'photos'))?.id, first.id);
    const started = performance.now();
    await admin.revokeAccessKey(key.accessKeyId);
    t.ok(performance.now() - started >= RECHECK_MS - 1, 'the revocation is acknowledged once every cache must look again');
    t.equal(await gateway.lookupAccessKey(key.accessKeyId), undefined, 'the other instance no longer finds the key');

    await admin.deleteBucket('s3v', 'photos');
    const second = await admin.createBucket({ volume: 's3v', name: 'photos', owner: 'bob' });
    t.not(second.id, first.id);
    t.equal((await gateway.getBucket('s3v', 'photos'))?.id, second.id, 'the other instance finds the new bucket');
  });

  t.test(`${name}: what this instance changes it sees at once`, async (t) => {
    const { open } = await fixture(t);
    const store = await open();
    const bob = await store.createUser({ name: 'bob' });
    const key = bob.accessKeys[0]!;
    t.ok(await store.lookupAccessKey(key.accessKeyId));
    const bucket = await store.createBucket({ volume: 's3v', name: 'photos', owner: 'bob' });
    t.equal((await store.getBucket('s3v', 'photos'))?.id, bucket.id);
    await store.revokeAccessKey(key.accessKeyId);
    t.equal(await store.lookupAccessKey(key.accessKeyId), undefined);
    await store.deleteBucket('s3v', 'photos');
    t.equal(await store.getBucket('s3v', 'photos'), undefined);
  });

  t.test(`${name}: the cache serves lookups from memory until the epoch moves`, async (t) => {
    const { open, exec, epoch } = await fixture(t);
    const store = await open();
    const key = (await store.createUser({ name: 'bob' })).accessKeys[0]!;
    t.ok(await store.lookupAccessKey(key.accessKeyId));
    // A change behind the store's back (SQLite: past its triggers): only the epoch tells caches to look again.
    if (name === 'sqlite') await exec('DROP TRIGGER access_keys_delete_epoch');
    await exec(`DELETE FROM access_keys WHERE access_key_id = '${key.accessKeyId}'`);
    t.ok(await store.lookupAccessKey(key.accessKeyId), 'still cached: the epoch has not moved');
    const before = await epoch();
    await exec('UPDATE lookup_epoch SET n = n + 1');
    t.equal(await epoch(), before + 1);
    await sleep(RECHECK_MS + 20);
    t.equal(await store.lookupAccessKey(key.accessKeyId), undefined, 'looked up again once the epoch moved');
  });

  t.test(`${name}: the epoch moves with users, keys and buckets, not with objects`, async (t) => {
    const { open, epoch } = await fixture(t);
    const store = await open();
    let last = await epoch();
    const moves = async (what: string, change: () => Promise<unknown>, expected: boolean) => {
      const started = performance.now();
      await change();
      const now = await epoch();
      t.equal(now !== last, expected, `${what}: epoch ${expected ? 'moves' : 'stays'}`);
      // Only changes that move the epoch wait for the caches of other instances.
      if (!expected) t.ok(performance.now() - started < RECHECK_MS, `${what}: acknowledged without waiting for caches`);
      last = now;
    };
    await moves('create user', () => store.createUser({ name: 'bob' }), true);
    await moves('create key', () => store.createAccessKey('bob'), true);
    await moves('bootstrap user', () => store.ensureUser({ name: 'admin', admin: true, accessKeyId: 'ADMINKEY', secretAccessKey: 'bootstrap-secret-0123' }), true);
    await moves('create bucket', () => store.createBucket({ volume: 's3v', name: 'photos', owner: 'bob' }), true);
    const bucket = (await store.getBucket('s3v', 'photos'))!;
    await moves('open a key', () => store.openKey({ bucketId: bucket.id, key: 'a', kind: 'put' }), false);
    const { objectId } = await store.openKey({ bucketId: bucket.id, key: 'a', kind: 'put' });
    await moves('commit an object', () => store.commitKey({ objectId, bucketId: bucket.id, key: 'a', size: 1, etag: 'e', attributes: { contentType: 'text/plain', userMetadata: {} }, blocks: [], inlineData: new Uint8Array([1]) }), false);
    await moves('delete the object', () => store.deleteObject(bucket.id, 'a'), false);
    await moves('delete the bucket', () => store.deleteBucket('s3v', 'photos'), true);
  });
}

storeSuite('sqlite', sqlite);
// Under CI a missing PostgreSQL server is a failure, never a skip.
const noPostgres = postgresUnavailable();
if (!noPostgres) storeSuite('postgres', postgresql);
else if (process.env.CI === 'true') t.fail(`lookup cache: postgres: ${noPostgres}`);
else t.test('lookup cache: postgres', { skip: noPostgres }, () => {});
