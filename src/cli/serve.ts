// s3g serve: the all-in-one server (gateway + SQLite metadata + local datanode processes).
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openMetadataStore } from '../metadata/open.js';
import { HashPool } from '../hashing/pool.js';
import { ChunkBufferPool } from '../pipeline/chunk-buffers.js';
import { Placement } from '../pipeline/placement.js';
import { ObjectWriter, type StorageConfig } from '../pipeline/object-writer.js';
import { ObjectReader } from '../pipeline/object-reader.js';
import { createGateway } from '../gateway/server.js';
import { BlockPurgeService } from '../services/block-purge.js';
import { LocalDatanodes } from './local-datanodes.js';
import { startAdminServer } from './admin-http.js';
import { parseSize } from './sizes.js';
import { log } from '../common/log.js';

const USAGE = `usage: s3g serve [options]

  --host HOST                 listen address (default 127.0.0.1)
  --port N                    S3 port (default 9878)
  --admin-port N              health endpoints (default 9879)
  --data DIR                  data directory (default ./data)
  --datanodes N               local datanode processes (default 1)
  --replication R             replicas per block, at most N (default 1)
  --domain D                  virtual-hosted-style domain, repeatable (bucket.D)
  --region R                  region reported to clients (default us-east-1)
  --chunk-size SIZE           chunk size (default 4MiB)
  --block-size SIZE           block size (default 256MiB)
  --bytes-per-checksum SIZE   CRC32C slice size (default 16KiB)
  --hash-threads N            hashing pool threads (default: CPU count)
  --purge-interval SECONDS    deleted-block purge period (default 30)
  --open-key-timeout SECONDS  abandoned uploads reclaimed after (default 3600)

Credentials of the bootstrap admin: S3G_ACCESS_KEY / S3G_SECRET_KEY.
`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '9878' },
      'admin-port': { type: 'string', default: '9879' },
      data: { type: 'string', default: './data' },
      datanodes: { type: 'string', default: '1' },
      replication: { type: 'string', default: '1' },
      domain: { type: 'string', multiple: true, default: [] },
      region: { type: 'string', default: 'us-east-1' },
      'chunk-size': { type: 'string', default: '4MiB' },
      'block-size': { type: 'string', default: '256MiB' },
      'bytes-per-checksum': { type: 'string', default: '16KiB' },
      'hash-threads': { type: 'string' },
      'purge-interval': { type: 'string', default: '30' },
      'open-key-timeout': { type: 'string', default: '3600' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const datanodeCount = positiveInt(values.datanodes, '--datanodes');
  const replication = positiveInt(values.replication, '--replication');
  if (replication > datanodeCount) throw new Error(`--replication ${replication} needs at least as many --datanodes (have ${datanodeCount})`);
  const storage: StorageConfig = {
    chunkSize: parseSize(values['chunk-size']),
    blockSize: parseSize(values['block-size']),
    bytesPerChecksum: parseSize(values['bytes-per-checksum']),
    replication,
    maxBuffersPerRequest: 3,
  };
  if (storage.chunkSize % storage.bytesPerChecksum !== 0) throw new Error('--chunk-size must be a multiple of --bytes-per-checksum');
  if (storage.blockSize % storage.chunkSize !== 0) throw new Error('--block-size must be a multiple of --chunk-size');

  const dataDir = resolve(values.data);
  mkdirSync(join(dataDir, 'meta'), { recursive: true });
  const store = await openMetadataStore(`sqlite:${join(dataDir, 'meta', 's3g.db')}`);
  const adminUser = await bootstrapAdmin(store);

  const pool = new HashPool({ threads: values['hash-threads'] ? positiveInt(values['hash-threads'], '--hash-threads') : undefined });
  const placement = new Placement(store);
  const datanodes = new LocalDatanodes(dataDir, datanodeCount, store, placement);
  await datanodes.start();
  const purge = new BlockPurgeService(store, placement, {
    intervalMs: positiveNumber(values['purge-interval'], '--purge-interval') * 1000,
    openKeyTimeoutMs: positiveNumber(values['open-key-timeout'], '--open-key-timeout') * 1000,
  });
  purge.start();

  const gateway = createGateway({
    store,
    pool,
    writer: new ObjectWriter(store, pool, placement, new ChunkBufferPool(storage.chunkSize), storage),
    reader: new ObjectReader(pool, placement, {
      onFailover: (block, datanodeId, error) =>
        log('warn', 'replica read failed; trying the next', { block: `${block.containerId}/${block.localId}`, datanodeId, error: String(error) }),
    }),
    config: { domains: values.domain, region: values.region, storage, maxPutSize: 5 * 1024 ** 3, shutdownGraceMs: 30_000 },
  });
  let ready = true;
  const adminServer = await startAdminServer(values.host, positiveInt(values['admin-port'], '--admin-port', true), () => ready);
  await new Promise<void>((resolveListen, reject) => {
    gateway.server.once('error', reject);
    gateway.server.listen(positiveInt(values.port, '--port', true), values.host, () => resolveListen());
  });
  const address = gateway.server.address();
  const port = typeof address === 'object' && address ? address.port : values.port;
  if (adminUser) process.stdout.write(`s3g admin credentials: access key ${adminUser.accessKeyId} secret ${adminUser.secretAccessKey}\n`);
  const adminAddress = adminServer.server.address();
  const adminPort = typeof adminAddress === 'object' && adminAddress ? adminAddress.port : values['admin-port'];
  process.stdout.write(`s3g admin http://${values.host}:${adminPort}\n`);
  process.stdout.write(`s3g ready http://${values.host}:${port}\n`);
  log('info', 'serving', { port, datanodes: datanodes.pids(), replication, dataDir });

  await new Promise<void>((resolveSignal) => {
    process.once('SIGTERM', resolveSignal);
    process.once('SIGINT', resolveSignal);
  });
  ready = false;
  log('info', 'shutting down');
  await gateway.shutdown();
  await purge.stop();
  adminServer.close();
  placement.close();
  await datanodes.stop();
  await pool.close();
  await store.close();
  return 0;
}

/** The admin from S3G_ACCESS_KEY/S3G_SECRET_KEY; without them a development pair, kept across restarts and printed. */
async function bootstrapAdmin(store: Awaited<ReturnType<typeof openMetadataStore>>): Promise<{ accessKeyId: string; secretAccessKey: string } | undefined> {
  const accessKeyId = process.env.S3G_ACCESS_KEY;
  const secretAccessKey = process.env.S3G_SECRET_KEY;
  if (accessKeyId && secretAccessKey) {
    await store.ensureUser({ name: 'admin', admin: true, accessKeyId, secretAccessKey });
    return undefined;
  }
  const existing = await store.getUser('admin');
  if (existing?.accessKeys[0]) return existing.accessKeys[0];
  const created = await store.ensureUser({
    name: 'admin',
    admin: true,
    accessKeyId: 'S3GDEV' + randomBytes(7).toString('hex').toUpperCase(),
    secretAccessKey: randomBytes(30).toString('base64url'),
  });
  return created.accessKeys[0];
}

function positiveInt(value: string, flag: string, allowZero = false): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new Error(`${flag} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got '${value}'`);
  return n;
}

function positiveNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new Error(`${flag} must be a positive number, got '${value}'`);
  return n;
}
