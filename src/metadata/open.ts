// Opens the metadata store named by a URL (`sqlite:PATH`, a bare path, or
// `postgres://user@host:port/db`) and brings its schema up to date.
import { PostgresMetadataStore } from './postgres.js';
import type { SecretBox } from './secret-box.js';
import { SqliteMetadataStore } from './sqlite.js';
import type { MetadataStore } from './store.js';
import type { WalCheckpointOptions } from './wal-checkpointer.js';
import type { Config } from '../observability/config.js';

/** How a gateway tunes its store; what a store has no use for it ignores. */
export interface StoreTuning {
  /** Bytes of inline bodies a SQLite store keeps for reads (inline-body-cache.ts). */
  inlineCacheBytes?: number;
  /** A SQLite store's WAL checkpoints: on its worker thread (the default), or false for SQLite's own, in commits. */
  walCheckpoint?: Partial<WalCheckpointOptions> | false;
}

/** The store tuning a gateway process's configuration asks for. */
export function storeTuning(config: Pick<Config, 'inlineCache'>): StoreTuning {
  return { inlineCacheBytes: config.inlineCache };
}

/** `secrets` seals and opens secret access keys; without it the store serves everything else. */
export async function openMetadataStore(url: string, secrets?: SecretBox, tuning: StoreTuning = {}): Promise<MetadataStore> {
  const store = createStore(url, secrets, tuning);
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

function createStore(url: string, secrets: SecretBox | undefined, tuning: StoreTuning): MetadataStore {
  if (url.startsWith('sqlite:')) {
    // sqlite:/abs/path, sqlite:rel/path and sqlite:///abs/path all name a file.
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new Error(`metadata URL ${url} names no file`);
    return new SqliteMetadataStore(path, { secrets, ...tuning });
  }
  // postgres:// and postgresql:// (also CockroachDB and YugabyteDB), parsed by pg itself.
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresMetadataStore(url, { secrets });
  // Anything else with a scheme is a mistake; a plain path (not a Windows drive) is SQLite.
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  if (scheme && !/^[a-z]:[\\/]/i.test(url)) {
    throw new Error(`metadata URL ${url}: unknown scheme '${scheme[1]}:' (expected sqlite:PATH or postgres://…)`);
  }
  if (!url) throw new Error('metadata URL is empty');
  return new SqliteMetadataStore(url, { secrets, ...tuning });
}
