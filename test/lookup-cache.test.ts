// The SQLite store's cache of access keys and buckets (src/metadata/lookup-cache.ts): what
// another process changes is seen by the time the change is acknowledged, what this process
// changes at once, and object writes leave the cache alone. Two store instances on one file
// stand for two processes (each has its own connection and cache).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { LookupCache } from '../src/metadata/lookup-cache.js';
import { SecretBox } from '../src/metadata/secret-box.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite.js';

const secrets = new SecretBox([randomBytes(32)]);
/** Long enough that no test step outlasts it by chance. */
const RECHECK_MS = 300;

async function fixture(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 's3g-lookups-'));
  const path = join(dir, 's3g.db');
  const stores: SqliteMetadataStore[] = [];
  const open = async () => {
    const store = new SqliteMetadataStore(path, { secrets, lookupRecheckMs: RECHECK_MS });
    await store.migrate();
    stores.push(store);
    return store;
  };
  const raw = new Database(path);
  t.teardown(async () => {
    raw.close();
    for (const store of stores) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const epoch = () => (raw.prepare('SELECT n FROM lookup_epoch WHERE id = 1').get() as { n: number }).n;
  return { open, raw, epoch };
}

t.test('LookupCache: values kept while the epoch stands, misses not kept, values frozen', async (t) => {
  let epoch = 0;
  let epochReads = 0;
  const cache = new LookupCache({ readEpoch: () => (epochReads++, epoch), recheckMs: 60_000 });
  const users = cache.lookup<{ name: string }>();
  let loads = 0;
  const load = (name: string) => () => (loads++, name === 'ghost' ? undefined : { name });
  t.same(users.get('alice', load('alice')), { name: 'alice' });
  t.same(users.get('alice', load('alice')), { name: 'alice' });
  t.equal(loads, 1, 'the second lookup is served from the cache');
  t.ok(Object.isFrozen(users.get('alice', load('alice'))), 'shared values are frozen');
  t.equal(users.get('ghost', load('ghost')), undefined);
  t.equal(users.get('ghost', load('ghost')), undefined);
  t.equal(loads, 3, 'a miss is looked up every time (unknown keys cannot fill the cache)');
  t.equal(epochReads, 1, 'the epoch is read once per recheck interval');

  epoch = 1;
  users.get('alice', load('alice'));
  t.equal(loads, 3, 'a moved epoch is not seen before the interval ends or a recheck');
  cache.recheck();
  users.get('alice', load('alice'));
  t.equal(epochReads, 2, 'recheck() makes the next lookup read the epoch');
  t.equal(loads, 4, 'a moved epoch empties the cache');
});

t.test('a revoked key or a replaced bucket is seen by another instance once the change is acknowledged', async (t) => {
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

t.test('what this instance changes it sees at once', async (t) => {
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

t.test('the cache serves lookups from memory until the epoch moves', async (t) => {
  const { open, raw, epoch } = await fixture(t);
  const store = await open();
  const key = (await store.createUser({ name: 'bob' })).accessKeys[0]!;
  t.ok(await store.lookupAccessKey(key.accessKeyId));
  // A change behind the triggers' back: only the epoch tells caches to look again.
  raw.exec('DROP TRIGGER access_keys_delete_epoch');
  raw.prepare('DELETE FROM access_keys WHERE access_key_id = ?').run(key.accessKeyId);
  t.ok(await store.lookupAccessKey(key.accessKeyId), 'still cached: the epoch has not moved');
  const before = epoch();
  raw.exec('UPDATE lookup_epoch SET n = n + 1');
  t.equal(epoch(), before + 1);
  await sleep(RECHECK_MS + 20);
  t.equal(await store.lookupAccessKey(key.accessKeyId), undefined, 'looked up again once the epoch moved');
});

t.test('the epoch moves with users, keys and buckets, not with objects', async (t) => {
  const { open, epoch } = await fixture(t);
  const store = await open();
  let last = epoch();
  const moves = async (what: string, change: () => Promise<unknown>, expected: boolean) => {
    const started = performance.now();
    await change();
    const now = epoch();
    t.equal(now !== last, expected, `${what}: epoch ${expected ? 'moves' : 'stays'}`);
    // Only changes that move the epoch wait for the caches of other instances.
    if (!expected) t.ok(performance.now() - started < RECHECK_MS, `${what}: acknowledged without waiting for caches`);
    last = now;
  };
  await moves('create user', () => store.createUser({ name: 'bob' }), true);
  await moves('create key', () => store.createAccessKey('bob'), true);
  const bucket = await store.createBucket({ volume: 's3v', name: 'photos', owner: 'bob' });
  t.not(epoch(), last, 'create bucket: epoch moves');
  last = epoch();
  await moves('open a key', () => store.openKey({ bucketId: bucket.id, key: 'a', kind: 'put' }), false);
  const { objectId } = await store.openKey({ bucketId: bucket.id, key: 'a', kind: 'put' });
  await moves('commit an object', () => store.commitKey({ objectId, bucketId: bucket.id, key: 'a', size: 1, etag: 'e', attributes: { contentType: 'text/plain', userMetadata: {} }, blocks: [], inlineData: new Uint8Array([1]) }), false);
  await moves('delete the object', () => store.deleteObject(bucket.id, 'a'), false);
  await moves('delete the bucket', () => store.deleteBucket('s3v', 'photos'), true);
});
