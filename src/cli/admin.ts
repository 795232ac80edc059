// s3g admin: tenants, users and access keys against the metadata store (--data DIR or
// --meta URL); the cluster view, purges and imports against a running server (its admin
// port, its S3 port).
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openMetadataStore } from '../metadata/open.js';
import type { MetadataStore, UserWithKeys } from '../metadata/store.js';
import { manageBuckets } from './admin-buckets.js';
import { printResult } from './print.js';
import { loadConfig } from '../observability/config.js';
import { adminPurge, adminStatus } from './admin-status.js';
import { importFolder } from './admin-import.js';
import { S3Client, type Credentials } from './s3-client.js';
import { parseSize } from './sizes.js';
import { loadSecretBox } from './kek.js';

const USAGE = `usage: s3g admin [options] <command>

commands:
  status                            the cluster at a glance: gateways, datanodes, buckets, objects,
                                    bytes, replication (exit status 3 when not ready)
  purge                             run a purge pass now and follow its progress
  import DIR s3://BUCKET[/PREFIX]   upload a local folder (the bucket is created if missing), showing
                                    objects, bytes, rate and ETA
  tenant create NAME                create a tenant and its volume (named NAME)
  tenant info NAME                  show a tenant, its users and buckets
  tenant list                       list tenants
  user create NAME [--tenant T] [--admin]
                                    create a user with a new access key (its buckets live in
                                    T's volume, else in s3v); the secret is shown only here
  user info NAME                    show a user and its access key ids
  user list [--tenant T]            list users (of one tenant)
  key create USER                   a new access key for USER; the secret is shown only here
  key list USER                     USER's access key ids
  key revoke ACCESS_KEY_ID          delete an access key: it stops working at once on every gateway
  key rekey                         re-seal every secret with the current KEK (after a rotation)
  bucket create NAME [--layout obs|fso] [--owner USER]
                                    create a bucket (default layout obs, owner admin)
  bucket list [--tenant T]          buckets (of s3v or of tenant T) with layout and owner
  rename BUCKET/FROM BUCKET/TO [--tenant T]
                                    FSO buckets: move a directory (or a file) atomically, one
                                    metadata write whatever the directory holds
  datanode list                     registered datanodes with address, capacity, used bytes and state
  datanode dead ID                  declare a datanode dead: re-replication copies its blocks elsewhere

options:
  --data DIR | --meta URL     the metadata store (tenant, user, key, datanode commands; default ./data)
  --kek-file FILE             key-encryption keys, current first (or S3G_KEK; with --data, default DIR/kek)
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

function fields(view: Record<string, unknown>): string {
  return Object.entries(view).filter(([, v]) => typeof v !== 'object').map(([k, v]) => `${k}: ${String(v)}`).join('\n');
}

/** A user as `user create` (with the new secret) or `user info` (key ids only) shows it. */
function printUser(user: UserWithKeys, json: boolean, withSecret: boolean): void {
  const key = user.accessKeys[0];
  const view = {
    name: user.name,
    displayName: user.displayName,
    canonicalId: user.canonicalId,
    admin: user.admin,
    tenant: user.tenant,
    volume: user.tenant ?? 's3v',
    accessKeyId: key?.accessKeyId,
    ...(withSecret ? { secretAccessKey: key?.secretAccessKey } : {}),
    accessKeys: user.accessKeys.map((k) => ({ accessKeyId: k.accessKeyId, createdAt: k.createdAt })),
  };
  printResult(json, view, fields(view));
}

const TENANT_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/** tenant, user and key commands; undefined when the command is none of them. */
async function manageIdentities(store: MetadataStore, positionals: string[], values: { json: boolean; admin: boolean; tenant?: string }): Promise<number | undefined> {
  const [group, action, name] = positionals;
  const json = values.json;
  if (group === 'tenant' && action === 'create' && name) {
    if (!TENANT_NAME.test(name)) throw new Error(`tenant name '${name}': 3 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen`);
    const tenant = await store.createTenant(name);
    printResult(json, tenant, `tenant ${tenant.name} created (volume ${tenant.volume})`);
    return 0;
  }
  if (group === 'tenant' && action === 'info' && name) {
    const tenant = await store.getTenant(name);
    if (!tenant) throw new Error(`no tenant '${name}'`);
    const view = {
      ...tenant,
      users: (await store.listUsers(name)).map((u) => u.name),
      buckets: (await store.listBuckets(tenant.volume)).map((b) => b.name),
    };
    printResult(json, view, `${fields(view)}\nusers: ${view.users.join(' ')}\nbuckets: ${view.buckets.join(' ')}`);
    return 0;
  }
  if (group === 'tenant' && action === 'list') {
    const tenants = await store.listTenants();
    printResult(json, tenants, tenants.map((t) => t.name).join('\n'));
    return 0;
  }
  if (group === 'user' && action === 'create' && name) {
    printUser(await store.createUser({ name, admin: values.admin, tenant: values.tenant }), json, true);
    return 0;
  }
  if (group === 'user' && action === 'info' && name) {
    const user = await store.getUser(name);
    if (!user) throw new Error(`no user '${name}'`);
    printUser(user, json, false);
    return 0;
  }
  if (group === 'user' && action === 'list') {
    const users = await store.listUsers(values.tenant);
    printResult(json, users, users.map((u) => u.name).join('\n'));
    return 0;
  }
  if (group === 'key' && action === 'create' && name) {
    const key = await store.createAccessKey(name);
    printResult(json, key, fields({ ...key }));
    return 0;
  }
  if (group === 'key' && action === 'list' && name) {
    const user = await store.getUser(name);
    if (!user) throw new Error(`no user '${name}'`);
    const keys = user.accessKeys.map((k) => ({ accessKeyId: k.accessKeyId, createdAt: k.createdAt }));
    printResult(json, keys, keys.map((k) => `${k.accessKeyId}  created ${new Date(k.createdAt).toISOString()}`).join('\n'));
    return 0;
  }
  if (group === 'key' && action === 'revoke' && name) {
    await store.revokeAccessKey(name);
    printResult(json, { accessKeyId: name, revoked: true }, `access key ${name} revoked`);
    return 0;
  }
  if (group === 'key' && action === 'rekey') {
    const { resealed, total } = await store.rekeySecrets();
    printResult(json, { resealed, total }, `${resealed} of ${total} secrets re-sealed with the current KEK`);
    return 0;
  }
  return undefined;
}

/** The metadata store of --data / --meta, with the KEKs of S3G_KEK, --kek-file (or the config's kek-file), or DIR/kek. */
async function openAdminStore(values: { data?: string; meta?: string; config?: string; 'kek-file'?: string }): Promise<MetadataStore> {
  const { kekFile } = loadConfig({ file: values.config, flags: { 'kek-file': values['kek-file'] } });
  const secrets = loadSecretBox({ kekFile, defaultFile: values.meta ? undefined : join(values.data ?? './data', 'kek') });
  return openMetadataStore(metadataUrl(values), secrets);
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
      tenant: { type: 'string' },
      'kek-file': { type: 'string' },
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
  const store = await openAdminStore(values);
  try {
    const done = await manageIdentities(store, positionals, values);
    if (done !== undefined) return done;
    const bucketsDone = await manageBuckets(store, positionals, values);
    if (bucketsDone !== undefined) return bucketsDone;
    if (group === 'datanode' && action === 'list') {
      const datanodes = await store.listDatanodes();
      printResult(values.json, datanodes, datanodes.map((d) => `${d.id}  ${d.address}  ${d.state}  used ${d.usedBytes} of ${d.capacityBytes}`).join('\n'));
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

async function importCredentials(values: { data?: string; meta?: string; config?: string; 'kek-file'?: string }): Promise<Credentials> {
  const env = process.env;
  if (env.S3G_ACCESS_KEY && env.S3G_SECRET_KEY) return { accessKeyId: env.S3G_ACCESS_KEY, secretAccessKey: env.S3G_SECRET_KEY };
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY };
  const url = metadataUrl(values);
  // Never create a metadata database just to look for a key in it.
  if (values.meta || existsSync(url.slice('sqlite:'.length))) {
    const store = await openAdminStore(values);
    try {
      const key = (await store.getUser('admin'))?.accessKeys[0];
      if (key) return key;
    } finally {
      await store.close();
    }
  }
  throw new Error('no credentials: set S3G_ACCESS_KEY and S3G_SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or pass the server\'s --data');
}
