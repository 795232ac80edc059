// What every gateway process runs, whether `serve` (with its local datanodes) or a cluster's
// `gateway`: the hashing pool, the S3 front, background services, metrics, the admin port,
// the ready line, and an orderly shutdown on SIGTERM.
import { randomBytes, randomUUID } from 'node:crypto';
import type { MetadataStore } from '../metadata/store.js';
import { HashPool } from '../hashing/pool.js';
import { ChunkBufferPool } from '../pipeline/chunk-buffers.js';
import type { Placement } from '../pipeline/placement.js';
import { ObjectWriter, type StorageConfig } from '../pipeline/object-writer.js';
import { ObjectReader } from '../pipeline/object-reader.js';
import { createGateway } from '../gateway/server.js';
import { BlockPurgeService } from '../services/block-purge.js';
import { ReReplicationService } from '../services/re-replication.js';
import { startAdminServer } from './admin-http.js';
import { log } from '../common/log.js';
import { flagOptions, loadConfig, type Config } from '../observability/config.js';
import { parseArgs } from 'node:util';
import { accessLogger, flushLogs, setLogLevel } from '../observability/logger.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { requestObserver } from '../observability/requests.js';
import { ThroughputHistory } from '../observability/throughput.js';
import { ClusterMonitor } from '../observability/cluster.js';
import { ReadinessCheck } from '../observability/health.js';
import { StatusReporter, VERSION } from '../observability/status.js';

export interface GatewayRuntimeOptions {
  config: Config;
  store: MetadataStore;
  placement: Placement;
  /** A development key pair to print (no S3G_ACCESS_KEY / S3G_SECRET_KEY given). */
  adminUser?: { accessKeyId: string; secretAccessKey: string };
  /** Stops what the caller started (serve's datanodes) once the gateway has drained. */
  afterGatewayStop?: () => Promise<void>;
  logFields?: Record<string, unknown>;
}

/** The options of `serve` and `gateway` (file < environment < flags), or undefined after printing --help. */
export function serverConfig(argv: string[], usage: string): Config | undefined {
  const { values } = parseArgs({
    args: argv,
    options: { ...flagOptions(), config: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  const config = loadConfig({ file: values.config, flags: values });
  setLogLevel(config.logLevel);
  return config;
}

/** Serves until SIGTERM or SIGINT, then drains and stops; resolves with the exit code. */
export async function runGateway(options: GatewayRuntimeOptions): Promise<number> {
  const { config, store, placement } = options;
  const { replication } = config;
  const storage: StorageConfig = {
    chunkSize: config.chunkSize,
    blockSize: config.blockSize,
    bytesPerChecksum: config.bytesPerChecksum,
    replication,
    maxBuffersPerRequest: 4,
    inlineThreshold: config.inlineThreshold,
  };
  const pool = new HashPool({ threads: config.hashThreads, niceIncrement: config.hashNice });
  // This process's identity for the leases of background services.
  const gatewayId = randomUUID();
  const purge = new BlockPurgeService(
    store,
    placement,
    { intervalMs: config.purgeInterval * 1000, openKeyTimeoutMs: config.openKeyTimeout * 1000, multipartTimeoutMs: 7 * 24 * 3600 * 1000 },
    gatewayId,
  );
  purge.start();
  const reReplication = new ReReplicationService(store, placement, { intervalMs: config.replicationInterval * 1000, replication }, gatewayId);
  reReplication.start();
  // Datanodes come and go (cluster mode: they register themselves); placement follows the metadata.
  const placementRefresh = setInterval(() => void placement.refresh().catch(() => undefined), 5000);
  placementRefresh.unref();

  const monitor = new ClusterMonitor(store, { intervalMs: config.statsInterval * 1000, replication });
  monitor.start();
  const readiness = new ReadinessCheck({
    store,
    probe: async (d) => placement.client(d.id).info(),
    // What Placement.choose accepts for a pipeline: a majority of the replication factor.
    minDatanodes: Math.ceil(replication / 2),
  });
  let gatewayInFlight = (): number => 0;
  // Every LeasedService of this process, for the s3g_background_* metrics.
  const backgroundServices = [purge, reReplication];
  const metrics = new GatewayMetrics(
    { inFlight: () => gatewayInFlight(), pool: () => pool.stats, cluster: () => monitor.snapshot(), services: () => backgroundServices },
    VERSION,
  );
  const history = new ThroughputHistory(metrics.totals);
  history.start();

  const gateway = createGateway(
    {
      store,
      pool,
      writer: new ObjectWriter(store, pool, placement, new ChunkBufferPool(storage.chunkSize, storage.bytesPerChecksum, config.uploadBuffers), storage),
      reader: new ObjectReader(pool, placement, {
        onFailover: (block, datanodeId, error) =>
          log('warn', 'replica read failed; trying the next', { block: `${block.containerId}/${block.localId}`, datanodeId, error: String(error) }),
        onRead: (via, bytes) => metrics.observeBlockRead(via, bytes),
      }),
      config: {
        domains: config.domain,
        region: config.region,
        storage,
        defaultBucketLayout: config.defaultBucketLayout,
        maxPutSize: 5 * 1024 ** 3,
        shutdownGraceMs: config.shutdownGrace * 1000,
        limits: {
          maxRequests: config.maxRequests,
          headersTimeoutMs: config.headersTimeout * 1000,
          idleTimeoutMs: config.idleTimeout * 1000,
          minBodyBytesPerSecond: config.minBodyRate,
          bodyRateWindowMs: config.bodyRateWindow * 1000,
        },
      },
    },
    requestObserver(metrics, accessLogger),
  );
  gatewayInFlight = gateway.inFlight;

  let purging = false;
  const purgeNow = async (): Promise<void> => {
    purging = true;
    // Progress shows through the deleted-block log's backlog: count it often while the pass runs.
    const ticker = setInterval(() => void monitor.refresh().catch(() => undefined), 1000);
    try {
      await monitor.refresh().catch(() => undefined);
      await purge.runOnce();
    } finally {
      clearInterval(ticker);
      purging = false;
      await monitor.refresh().catch(() => undefined);
    }
  };
  await new Promise<void>((resolveListen, reject) => {
    gateway.server.once('error', reject);
    gateway.server.listen(config.port, config.host, () => resolveListen());
  });
  const port = portOf(gateway.server.address(), config.port);
  const adminUrl = { value: '' };
  const status = new StatusReporter({
    s3Url: `http://${config.host}:${port}`,
    adminUrl: () => adminUrl.value,
    cluster: monitor,
    history,
    readiness: () => readiness.check(),
    inFlight: gateway.inFlight,
    pool: () => pool.stats,
    purgeRunning: () => purging,
    services: () => backgroundServices,
  });
  const adminServer = await startAdminServer(config.host, config.adminPort, {
    readiness: () => readiness.check(),
    metrics,
    status: () => status.status(),
    purge: purgeNow,
  });
  const adminPort = portOf(adminServer.server.address(), config.adminPort);
  adminUrl.value = `http://${config.host}:${adminPort}`;
  if (options.adminUser) process.stdout.write(`s3g admin credentials: access key ${options.adminUser.accessKeyId} secret ${options.adminUser.secretAccessKey}\n`);
  process.stdout.write(`s3g admin ${adminUrl.value}\n`);
  process.stdout.write(`s3g ready http://${config.host}:${port}\n`);
  log('info', 'serving', { port, adminPort, replication, version: VERSION, ...options.logFields });

  await new Promise<void>((resolveSignal) => {
    process.once('SIGTERM', resolveSignal);
    process.once('SIGINT', resolveSignal);
  });
  // Not ready from here on, so load balancers move away while in-flight requests finish.
  readiness.beginShutdown();
  log('info', 'shutting down');
  await gateway.shutdown();
  clearInterval(placementRefresh);
  await purge.stop();
  await reReplication.stop();
  monitor.stop();
  history.stop();
  status.close();
  adminServer.close();
  placement.close();
  await options.afterGatewayStop?.();
  await pool.close();
  await store.close();
  log('info', 'stopped');
  await flushLogs();
  return 0;
}

function portOf(address: ReturnType<import('node:net').Server['address']>, fallback: number): number {
  return typeof address === 'object' && address ? address.port : fallback;
}

/** The admin from S3G_ACCESS_KEY/S3G_SECRET_KEY; without them a development pair, kept across restarts and printed. */
export async function bootstrapAdmin(store: MetadataStore): Promise<{ accessKeyId: string; secretAccessKey: string } | undefined> {
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
