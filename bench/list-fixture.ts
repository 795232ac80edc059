// The ListObjectsV2 fixture for s3g: a bucket of `keys` empty objects, written into the
// metadata store of a data directory while no server runs on it. Creating a million
// objects through S3 would take far too long, and through the store API (openKey +
// commitKey of an object with no blocks, which is what an empty PUT commits) about
// 6,500 keys/s here, so: the first directory's keys go through the store API, and every
// other key is a copy of the first committed row with only its key name and object id
// changed, inserted with better-sqlite3 in large transactions. Copying the row (all its
// columns, whatever the schema version) is what keeps this equal to commitKey's result:
// with zero blocks, commitKey writes exactly one `objects` row (the open key it deletes is
// never left behind).
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { openMetadataStore } from '../src/metadata/open.js';
import { loadSecretBox } from '../src/cli/kek.js';
import { newObjectId } from '../src/metadata/shared.js';
import type { BenchConfig } from './config.js';
import { S3G_CREDENTIALS } from './s3g-server.js';
import { LIST_BUCKET, listKey } from './workloads.js';

const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';
const ROWS_PER_TRANSACTION = 50_000;

export function metadataPath(dataDir: string): string {
  return join(dataDir, 'meta', 's3g.db');
}

export async function populateListBucket(config: BenchConfig, dataDir: string): Promise<void> {
  // The KEK `s3g serve` will find in the data directory, so that it can open the admin's secret.
  const secrets = loadSecretBox({ defaultFile: join(dataDir, 'kek'), createDefault: true });
  const store = await openMetadataStore(`sqlite:${metadataPath(dataDir)}`, secrets);
  const viaApi = Math.min(config.list.keys, Math.ceil(config.list.keys / config.list.directories));
  let bucketId: number;
  try {
    // The same admin user `s3g serve` bootstraps from S3G_ACCESS_KEY, so it owns the bucket.
    await store.ensureUser({ name: 'admin', admin: true, ...S3G_CREDENTIALS });
    bucketId = (await store.createBucket({ volume: 's3v', name: LIST_BUCKET, owner: 'admin' })).id;
    const indexes = Array.from({ length: viaApi }, (_, i) => i);
    // Concurrent calls share group commits, as concurrent PUTs do in the gateway.
    const open = await Promise.all(indexes.map((i) => store.openKey({ bucketId, key: listKey(config, i), kind: 'put' })));
    await Promise.all(open.map((o) => store.commitKey({ objectId: o.objectId, bucketId, key: o.key, size: 0, etag: EMPTY_MD5, attributes: {}, blocks: [] })));
  } finally {
    await store.close();
  }
  if (viaApi === config.list.keys) return;

  const db = new Database(metadataPath(dataDir));
  try {
    db.pragma('journal_mode = WAL');
    const template = db.prepare('SELECT * FROM objects WHERE bucket_id = ? AND name = ?').get(bucketId, listKey(config, 0)) as Record<string, unknown> | undefined;
    if (!template) throw new Error('the template object row is missing');
    const columns = Object.keys(template);
    const insert = db.prepare(`INSERT INTO objects (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`);
    const insertRange = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) insert.run({ ...template, name: listKey(config, i), object_id: newObjectId() });
    });
    for (let from = viaApi; from < config.list.keys; from += ROWS_PER_TRANSACTION) {
      insertRange(from, Math.min(config.list.keys, from + ROWS_PER_TRANSACTION));
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}
