// s3g admin: users against the metadata store (--data DIR or --meta URL); the cluster view,
// purges and imports against a running server (its admin port, its S3 port).
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openMetadataStore } from '../metadata/open.js';
import type { BucketLayout, MetadataStore, UserWithKeys } from '../metadata/store.js';
import { loadConfig } from '../observability/config.js';
import { adminPurge, adminStatus } from './admin-status.js';
import { importFolder } from './admin-import.js';
import { S3Client, type Credentials } from './s3-client.js';
import { parseSize } from './sizes.js';

const USAGE = `usage: s3g admin [options] <command>

commands:
  status                            the cluster at a glance: gateways, datanodes, buckets, objects,
                                    bytes, replication (exit status 3 when not ready)
  purge                             run a purge pass now and follow its progress
  import DIR s3://BUCKET[/PREFIX]   upload a local folder (the bucket is created if missing), showing
                                    objects, bytes, rate and ETA
  user create NAME [--admin]        create a user with a new access key
  user info NAME                    show a user and its access keys
  user list                         list users
  bucket create NAME [--layout obs|fso] [--owner USER]
                                    create a bucket (default layout obs, owner admin)
  bucket list                       buckets with owner and layout
  rename BUCKET/FROM BUCKET/TO      FSO buckets: move a directory (or a file) atomically, one
                                    metadata write whatever the directory holds
  datanode list                     registered datanodes with address, capacity, used bytes and state
  datanode dead ID                  declare a datanode dead: re-replication copies its blocks elsewhere

options:
  --data DIR | --meta URL     the metadata store (user commands; default ./data)
  --admin-url URL             a server's admin port (status, purge); default http://HOST:ADMIN-PORT
  --endpoint URL              S3 endpoint (import); default http://HOST:PORT
  --config FILE               where HOST, PORT and ADMIN-PORT come from (also S3G_CONFIG, S3G_HOST, …)
  --concurrency N             import: files uploaded at once (default 4)
  --multipart-threshold SIZE  import: files larger than this go up in parts (default 1GiB)
  --part-size SIZE            import: part size (default 64MiB)
  --json                      machine-readable output

import signs with S3G_ACCESS_KEY/S3G_SECRET_KEY (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), else
with the admin user of --data/--meta.
`;

export function metadataUrl(values: { data?: string; meta?: string }): string {
  return values.meta ?? `sqlite:${join(values.data ?? './data', 'meta', 's3g.db')}`;
}

function printUser(user: UserWithKeys, json: boolean): void {
  const key = user.accessKeys[0];
  const view = {
    name: user.name,
    displayName: user.displayName,
    canonicalId: user.canonicalId,
    admin: user.admin,
    accessKeyId: key?.accessKeyId,
    secretAccessKey: key?.secretAccessKey,
    accessKeys: user.accessKeys.map((k) => ({ accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey })),
  };
  if (json) process.stdout.write(JSON.stringify(view, null, 2) + '\n');
  else process.stdout.write(Object.entries(view).filter(([k]) => k !== 'accessKeys').map(([k, v]) => `${k}: ${String(v)}`).join('\n') + '\n');
}

export async function admin(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      meta: { type: 'string' },
      json: { type: 'boolean', default: false },
      admin: { type: 'boolean', default: false },
      'admin-url': { type: 'string' },
      endpoint: { type: 'string' },
      config: { type: 'string' },
      concurrency: { type: 'string', default: '4' },
      'multipart-threshold': { type: 'string', default: '1GiB' },
      'part-size': { type: 'string', default: '64MiB' },
      layout: { type: 'string', default: 'obs' },
      owner: { type: 'string', default: 'admin' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const [group, action, name] = positionals;
  if (group === 'status' || group === 'purge' || group === 'import') {
    // A server's addresses as its own configuration (file, environment) gives them.
    const config = loadConfig({ file: values.config });
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    const adminUrl = values['admin-url'] ?? `http://${host}:${config.adminPort}`;
    if (group === 'status') return adminStatus(adminUrl, values.json);
    if (group === 'purge') return adminPurge(adminUrl, values.json);
    if (!action || !name) {
      process.stderr.write(`s3g admin import: needs DIR and s3://BUCKET[/PREFIX]\n${USAGE}`);
      return 2;
    }
    const concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`--concurrency must be a positive integer, got '${values.concurrency}'`);
    const client = new S3Client(new URL(values.endpoint ?? `http://${host}:${config.port}`), await importCredentials(values), config.region);
    return importFolder({
      dir: action,
      target: name,
      client,
      concurrency,
      multipartThreshold: parseSize(values['multipart-threshold']),
      partSize: parseSize(values['part-size']),
      json: values.json,
    });
  }
  const store = await openMetadataStore(metadataUrl(values));
  try {
    if (group === 'user' && action === 'create' && name) {
      printUser(await store.createUser({ name, admin: values.admin }), values.json);
      return 0;
    }
    if (group === 'user' && action === 'info' && name) {
      const user = await store.getUser(name);
      if (!user) {
        process.stderr.write(`s3g admin: no user '${name}'\n`);
        return 1;
      }
      printUser(user, values.json);
      return 0;
    }
    if (group === 'user' && action === 'list') {
      const users = await store.listUsers();
      process.stdout.write(values.json ? JSON.stringify(users, null, 2) + '\n' : users.map((u) => u.name).join('\n') + '\n');
      return 0;
    }
    if (group === 'bucket' && action === 'create' && name) {
      const layout = values.layout.toUpperCase();
      if (layout !== 'OBS' && layout !== 'FSO') throw new Error(`--layout must be obs or fso, got '${values.layout}'`);
      const bucket = await store.createBucket({ volume: S3_VOLUME, name, owner: values.owner, layout: layout as BucketLayout });
      process.stdout.write(values.json ? JSON.stringify(bucket) + '\n' : `bucket ${bucket.name} created (${bucket.layout}, owner ${bucket.owner})\n`);
      return 0;
    }
    if (group === 'bucket' && action === 'list') {
      const buckets = await store.listBuckets(S3_VOLUME);
      process.stdout.write(values.json ? JSON.stringify(buckets, null, 2) + '\n' : buckets.map((b) => `${b.name}  ${b.layout}  ${b.owner}`).join('\n') + '\n');
      return 0;
    }
    // Awaited here: the store closes in finally.
    if (group === 'rename' && action && name) return await rename(store, action, name, values.json);
    if (group === 'datanode' && action === 'list') {
      const datanodes = await store.listDatanodes();
      process.stdout.write(
        values.json
          ? JSON.stringify(datanodes, null, 2) + '\n'
          : datanodes.map((d) => `${d.id}  ${d.address}  ${d.state}  used ${d.usedBytes} of ${d.capacityBytes}`).join('\n') + '\n',
      );
      return 0;
    }
    if (group === 'datanode' && action === 'dead' && name) {
      await store.declareDatanodeDead(name);
      process.stdout.write(values.json ? JSON.stringify({ id: name, state: 'dead' }) + '\n' : `datanode ${name} declared dead\n`);
      return 0;
    }
    process.stderr.write(`s3g admin: unknown command '${positionals.join(' ')}'\n${USAGE}`);
    return 2;
  } finally {
    await store.close();
  }
}

/** Buckets created here live where S3 users without a tenant keep theirs. */
const S3_VOLUME = 's3v';

async function rename(store: MetadataStore, from: string, to: string, json: boolean): Promise<number> {
  const [bucketName, source] = splitPath(from);
  const [targetBucket, target] = splitPath(to);
  if (targetBucket !== bucketName) throw new Error('rename stays within one bucket');
  const bucket = await store.getBucket(S3_VOLUME, bucketName);
  if (!bucket) throw new Error(`no bucket '${bucketName}'`);
  const started = performance.now();
  const moved = await store.rename(bucket.id, source, target);
  const ms = performance.now() - started;
  process.stdout.write(json ? JSON.stringify({ bucket: bucketName, from: source, to: target, moved, ms }) + '\n' : `renamed ${moved} ${from} to ${to} in ${ms.toFixed(1)} ms\n`);
  return 0;
}

/** `bucket/a/b` → ['bucket', 'a/b']. */
function splitPath(path: string): [string, string] {
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1) throw new Error(`'${path}' is not BUCKET/PATH`);
  return [path.slice(0, slash), path.slice(slash + 1)];
}

async function importCredentials(values: { data?: string; meta?: string }): Promise<Credentials> {
  const env = process.env;
  if (env.S3G_ACCESS_KEY && env.S3G_SECRET_KEY) return { accessKeyId: env.S3G_ACCESS_KEY, secretAccessKey: env.S3G_SECRET_KEY };
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY };
  const url = metadataUrl(values);
  // Never create a metadata database just to look for a key in it.
  if (values.meta || existsSync(url.slice('sqlite:'.length))) {
    const store = await openMetadataStore(url);
    try {
      const key = (await store.getUser('admin'))?.accessKeys[0];
      if (key) return key;
    } finally {
      await store.close();
    }
  }
  throw new Error('no credentials: set S3G_ACCESS_KEY and S3G_SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or pass the server\'s --data');
}
