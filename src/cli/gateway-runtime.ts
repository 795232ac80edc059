// What every gateway runs, whether `serve` (with its local datanodes) or a cluster's
// `gateway`: the S3 front (and its worker processes, with --gateway-processes), background
// services, metrics, the admin port, the ready line, and an orderly shutdown on SIGTERM.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { parseArgs } from 'node:util';
import { AggregatorRegistry } from 'prom-client';
import type { MetadataStore } from '../metadata/store.js';
import type { Placement } from '../pipeline/placement.js';
import { BlockPurgeService } from '../services/block-purge.js';
import { ReReplicationService } from '../services/re-replication.js';
import { startAdminServer } from './admin-http.js';
import { GatewayProcesses, type WorkerInit } from './gateway-processes.js';
import type { PoolStats } from '../hashing/pool.js';
import { createS3Front, keepPlacementFresh } from './s3-front.js';
import { log } from '../common/log.js';
import { flagOptions, loadConfig, type Config } from '../observability/config.js';
import { flushLogs, setLogLevel } from '../observability/logger.js';
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
  /** What worker processes need to open the same metadata (--gateway-processes above 1). */
  workerInit: Omit<WorkerInit, 'config'>;
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
  const placementRefresh = keepPlacementFresh(placement);

  const monitor = new ClusterMonitor(store, { intervalMs: config.statsInterval * 1000, replication });
  monitor.start();
  const readiness = new ReadinessCheck({
    store,
    probe: async (d) => placement.client(d.id).info(),
    // What Placement.choose accepts for a pipeline: a majority of the replication factor.
    minDatanodes: Math.ceil(replication / 2),
  });
  // Every LeasedService of this process, for the s3g_background_* metrics.
  const backgroundServices = [purge, reReplication];
  const { gateway, pool, metrics } = createS3Front(config, store, placement, { cluster: () => monitor.snapshot(), services: () => backgroundServices });
  const workers = config.gatewayProcesses > 1 ? new GatewayProcesses(config.gatewayProcesses - 1, { config, ...options.workerInit }) : undefined;
  const history = new ThroughputHistory(() => workers?.totals(metrics.totals) ?? metrics.totals);
  history.start();

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
  await workers?.start();
  const listener = workers ? dealConnections(gateway.server, workers) : gateway.server;
  await new Promise<void>((resolveListen, reject) => {
    listener.once('error', reject);
    listener.listen(config.port, config.host, () => resolveListen());
  });
  const port = portOf(listener.address(), config.port);
  const adminUrl = { value: '' };
  const status = new StatusReporter({
    s3Url: `http://${config.host}:${port}`,
    adminUrl: () => adminUrl.value,
    cluster: monitor,
    history,
    readiness: () => readiness.check(),
    inFlight: () => gateway.inFlight() + (workers?.inFlight() ?? 0),
    pool: () => sumPools([pool.stats, ...(workers?.pools() ?? [])]),
    purgeRunning: () => purging,
    services: () => backgroundServices,
  });
  const adminServer = await startAdminServer(config.host, config.adminPort, {
    readiness: () => readiness.check(),
    metrics: workers
      ? { text: async () => AggregatorRegistry.aggregate([await metrics.registry.getMetricsAsJSON(), ...(await workers.metrics())]).metrics(), contentType: metrics.contentType }
      : metrics,
    status: () => status.status(),
    purge: purgeNow,
    otherProcesses: workers && ((statsOptions) => workers.stats(statsOptions)),
  });
  const adminPort = portOf(adminServer.server.address(), config.adminPort);
  adminUrl.value = `http://${config.host}:${adminPort}`;
  if (options.adminUser) process.stdout.write(`s3g admin credentials: access key ${options.adminUser.accessKeyId} secret ${options.adminUser.secretAccessKey}\n`);
  process.stdout.write(`s3g admin ${adminUrl.value}\n`);
  process.stdout.write(`s3g ready http://${config.host}:${port}\n`);
  log('info', 'serving', { port, adminPort, replication, version: VERSION, ...(workers ? { gatewayWorkers: workers.pids() } : {}), ...options.logFields });

  await new Promise<void>((resolveSignal) => {
    process.once('SIGTERM', resolveSignal);
    process.once('SIGINT', resolveSignal);
  });
  // Not ready from here on, so load balancers move away while in-flight requests finish.
  readiness.beginShutdown();
  log('info', 'shutting down');
  if (workers) listener.close();
  await Promise.all([gateway.shutdown(), workers?.stop(config.shutdownGrace * 1000)]);
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

/**
 * The listening socket of several gateway processes: each connection, accepted paused, goes to
 * the next worker or to this process's own server, whose connection tracking (headers
 * timeout, idle connections) starts on 'listening' as if it listened itself.
 */
function dealConnections(server: Server, workers: GatewayProcesses): NetServer {
  const listener = createNetServer({ pauseOnConnect: true }, (socket) => {
    if (workers.dispatch(socket)) return;
    server.emit('connection', socket);
    socket.resume();
  });
  listener.once('listening', () => server.emit('listening'));
  return listener;
}

function sumPools(pools: PoolStats[]): PoolStats {
  const threads = pools.reduce((sum, p) => sum + p.threads, 0);
  return {
    threads,
    queueSize: pools.reduce((sum, p) => sum + p.queueSize, 0),
    utilization: threads === 0 ? 0 : pools.reduce((sum, p) => sum + p.utilization * p.threads, 0) / threads,
  };
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
