// The ListObjectsV2 fixtures for s3g: a bucket of `keys` empty objects (OBS or FSO), written into the
// metadata store of a data directory while no server runs on it. Creating a million
// objects through S3 would take far too long, and through the store API (openKey +
// commitKey of an object with no blocks, which is what an empty PUT commits) about
// 6,500 keys/s here, so: the first key of each directory goes through the store API, and every
// other key is a copy of the first committed row with only its key name and object id
// changed, inserted with better-sqlite3 in large transactions. Copying the row (all its
// columns, whatever the schema version) is what keeps this equal to commitKey's result:
// with zero blocks, commitKey writes exactly one `objects` row (the open key it deletes is
// never left behind).
//
// In an FSO bucket a row is named `<directory id>/<leaf>` (src/metadata/namespace.ts): the
// first key of every directory goes through the store API, which creates the directory rows,
// and the copies take the name their key resolves to.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { openMetadataStore } from '../src/metadata/open.js';
import { loadSecretBox } from '../src/cli/kek.js';
import { internalName, ROOT_DIRECTORY } from '../src/metadata/namespace.js';
import { newObjectId } from '../src/metadata/shared.js';
import { S3G_CREDENTIALS } from './s3g-server.js';
import { listKey, type ListFixture } from './workloads.js';

const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';
const ROWS_PER_TRANSACTION = 50_000;

export function metadataPath(dataDir: string): string {
  return join(dataDir, 'meta', 's3g.db');
}

export async function populateListBucket(fixture: ListFixture, dataDir: string): Promise<void> {
  // The KEK `s3g serve` will find in the data directory, so that it can open the admin's secret.
  const secrets = loadSecretBox({ defaultFile: join(dataDir, 'kek'), createDefault: true });
  // SQLite's own checkpoints: a bulk load, and the store is closed right after it.
  const store = await openMetadataStore(`sqlite:${metadataPath(dataDir)}`, secrets, { walCheckpoint: false });
  const perDirectory = Math.ceil(fixture.keys / fixture.directories);
  // The first key of every directory: in an FSO bucket its commit creates the directory.
  const viaApi = new Set(Array.from({ length: Math.ceil(fixture.keys / perDirectory) }, (_, d) => d * perDirectory));
  let bucketId: number;
  try {
    // The same admin user `s3g serve` bootstraps from S3G_ACCESS_KEY, so it owns the bucket.
    await store.ensureUser({ name: 'admin', admin: true, ...S3G_CREDENTIALS });
    bucketId = (await store.createBucket({ volume: 's3v', name: fixture.bucket, owner: 'admin', layout: fixture.layout })).id;
    // Concurrent calls share group commits, as concurrent PUTs do in the gateway.
    const open = await Promise.all([...viaApi].map((i) => store.openKey({ bucketId, key: listKey(fixture, i), kind: 'put' })));
    await Promise.all(open.map((o) => store.commitKey({ objectId: o.objectId, bucketId, key: o.key, size: 0, etag: EMPTY_MD5, attributes: {}, blocks: [] })));
  } finally {
    await store.close();
  }
  if (viaApi.size === fixture.keys) return;

  const db = new Database(metadataPath(dataDir));
  try {
    db.pragma('journal_mode = WAL');
    const directoryIds = new Map(
      (db.prepare('SELECT id, name FROM directories WHERE bucket_id = ? AND parent_id = ?').all(bucketId, ROOT_DIRECTORY) as { id: number; name: string }[])
        .map((d) => [d.name, d.id]),
    );
    const storedName = (key: string): string => {
      if (fixture.layout === 'OBS') return key;
      const slash = key.indexOf('/');
      return internalName(directoryIds.get(key.slice(0, slash + 1))!, key.slice(slash + 1));
    };
    const template = db.prepare('SELECT * FROM objects WHERE bucket_id = ? AND name = ?').get(bucketId, storedName(listKey(fixture, 0))) as Record<string, unknown> | undefined;
    if (!template) throw new Error('the template object row is missing');
    const columns = Object.keys(template);
    const insert = db.prepare(`INSERT INTO objects (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`);
    const insertRange = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        if (!viaApi.has(i)) insert.run({ ...template, name: storedName(listKey(fixture, i)), object_id: newObjectId() });
      }
    });
    for (let from = 0; from < fixture.keys; from += ROWS_PER_TRANSACTION) {
      insertRange(from, Math.min(fixture.keys, from + ROWS_PER_TRANSACTION));
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}
