// What every process serving S3 requests builds: its hashing pool, the object writer and
// reader, request metrics, and the node:http gateway (not yet listening). `serve` and
// `gateway` build one; with --gateway-processes N, each of the N - 1 worker processes too.
import type { Config } from '../observability/config.js';
import type { MetadataStore } from '../metadata/store.js';
import type { Placement } from '../pipeline/placement.js';
import { HashPool } from '../hashing/pool.js';
import { ChunkBufferPool } from '../pipeline/chunk-buffers.js';
import { ObjectWriter, type StorageConfig } from '../pipeline/object-writer.js';
import { ObjectReader } from '../pipeline/object-reader.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import { GatewayMetrics, type MetricsSources } from '../observability/metrics.js';
import { requestObserver } from '../observability/requests.js';
import { accessLog } from '../observability/logger.js';
import { VERSION } from '../observability/status.js';
import { log } from '../common/log.js';

export interface S3Front {
  gateway: Gateway;
  pool: HashPool;
  metrics: GatewayMetrics;
}

/** Cluster-wide sources of the metrics: only the process that runs the background services has them. */
export type ClusterSources = Pick<MetricsSources, 'cluster' | 'services'>;

function storageConfig(config: Config): StorageConfig {
  return {
    chunkSize: config.chunkSize,
    blockSize: config.blockSize,
    bytesPerChecksum: config.bytesPerChecksum,
    replication: config.replication,
    maxBuffersPerRequest: 4,
    inlineThreshold: config.inlineThreshold,
  };
}

/** Datanodes come and go (cluster mode: they register themselves); placement follows the metadata. */
export function keepPlacementFresh(placement: Placement): NodeJS.Timeout {
  return setInterval(() => void placement.refresh().catch(() => undefined), 5000).unref();
}

export function createS3Front(config: Config, store: MetadataStore, placement: Placement, cluster: ClusterSources): S3Front {
  const storage = storageConfig(config);
  const pool = new HashPool({ threads: config.hashThreads, niceIncrement: config.hashNice });
  let inFlight = (): number => 0;
  const metrics = new GatewayMetrics({ inFlight: () => inFlight(), pool: () => pool.stats, inlineCache: () => store.inlineCacheStats?.(), objectCache: () => store.objectCacheStats?.(), walCheckpoints: () => store.walCheckpointStats?.(), ...cluster }, VERSION);
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
    requestObserver(metrics, accessLog),
  );
  inFlight = gateway.inFlight;
  return { gateway, pool, metrics };
}
