// s3g datanode: one datanode of a cluster. It keeps a stable id in its data directory,
// registers its address and capacity in the metadata store and heartbeats there (as Ozone's
// datanodes report to SCM), so gateways place blocks only on live datanodes.
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openMetadataStore } from '../metadata/open.js';
import { startDatanodeServer } from '../datanode/server.js';
import { parseSizeOrZero } from './sizes.js';
import { DEFAULT_RESERVED_BYTES } from '../datanode/block-store.js';
import { log } from '../common/log.js';
import { startAdminServer } from './admin-http.js';
import { DatanodeMetrics } from '../observability/datanode-metrics.js';

const USAGE = `usage: s3g datanode --meta URL --data DIR [options]

  --meta URL                  metadata store (sqlite:PATH or postgres://…)
  --data DIR                  where blocks live; the datanode id is kept in DIR/DATANODE_ID
  --host HOST                 listen address (default 127.0.0.1)
  --port N                    gRPC port (default 9880; 0 = any free port)
  --advertise HOST:PORT       address gateways use (default HOST:PORT as bound)
  --heartbeat-interval SECS   metadata heartbeat period (default 5)
  --reserved-space SIZE       take no new block while the disk has less free (default 1GiB; 0: none)
  --admin-port N              /health, /ready, /metrics (default 9879; 0 = any free port)
`;

/** The id a datanode keeps across restarts, created on first start. */
export function stableDatanodeId(dir: string): string {
  const file = join(dir, 'DATANODE_ID');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const id = randomUUID();
  writeFileSync(file, id + '\n', { flag: 'wx' });
  return id;
}

export async function datanode(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      meta: { type: 'string' },
      data: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '9880' },
      advertise: { type: 'string' },
      'heartbeat-interval': { type: 'string', default: '5' },
      'reserved-space': { type: 'string' },
      'admin-port': { type: 'string', default: '9879' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || !values.meta || !values.data) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const port = Number(values.port);
  const heartbeatMs = Number(values['heartbeat-interval']) * 1000;
  const adminPort = Number(values['admin-port']);
  for (const [flag, value] of [['--port', port], ['--admin-port', adminPort]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${flag} must be 0..65535, got '${value}'`);
  }
  if (!(heartbeatMs > 0)) throw new Error(`--heartbeat-interval must be a positive number, got '${values['heartbeat-interval']}'`);
  const reserved = values['reserved-space'];
  const reservedBytes = reserved === undefined ? DEFAULT_RESERVED_BYTES : parseSizeOrZero(reserved);

  const dir = resolve(values.data);
  mkdirSync(dir, { recursive: true });
  const id = stableDatanodeId(dir);
  const store = await openMetadataStore(values.meta);
  const server = await startDatanodeServer({ id, dir, host: values.host, port, reservedBytes });
  const address = values.advertise ?? server.address;
  const report = async (): Promise<void> => {
    const stats = await server.store.stats();
    await store.registerDatanode({ id, address, capacityBytes: stats.capacityBytes, usedBytes: stats.usedBytes });
  };
  await report();
  let registered = true;
  const heartbeat = setInterval(() => {
    void server.store
      .stats()
      .then((stats) => store.heartbeat(id, { capacityBytes: stats.capacityBytes, usedBytes: stats.usedBytes }))
      // Unknown to the metadata (a fresh database, say): register again.
      .catch(() => report())
      .then(
        () => (registered = true),
        (error: unknown) => {
          registered = false;
          log('warn', 'heartbeat failed', { datanodeId: id, error: String(error) });
        },
      );
  }, heartbeatMs);
  const admin = await startAdminServer(values.host, adminPort, {
    metrics: new DatanodeMetrics(id, () => server.store.stats()),
    readiness: async () => {
      const stats = await server.store.stats();
      const reasons = [...(stats.healthy ? [] : ['the block store is not usable']), ...(registered ? [] : ['not registered in the metadata store'])];
      return { ready: reasons.length === 0, reasons, shuttingDown: false, metadata: registered, datanodes: { required: 0, reachable: [], unreachable: [] } };
    },
  });
  const adminAddress = admin.server.address();
  process.stdout.write(`s3g admin http://${values.host}:${typeof adminAddress === 'object' && adminAddress ? adminAddress.port : adminPort}\n`);
  process.stdout.write(`s3g datanode ready ${address}\n`);
  log('info', 'datanode serving', { datanodeId: id, address, dir });

  await new Promise<void>((done) => {
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
  clearInterval(heartbeat);
  admin.close();
  await server.close();
  await store.close();
  return 0;
}
