// A cluster datanode's own /metrics: capacity, used bytes and committed blocks of its store,
// read when scraped, plus Node's process metrics.
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { StoreStats } from '../datanode/block-store.js';

export class DatanodeMetrics {
  private readonly registry = new Registry();

  constructor(datanodeId: string, stats: () => Promise<StoreStats>) {
    this.registry.setDefaultLabels({ datanode: datanodeId });
    collectDefaultMetrics({ register: this.registry, prefix: 's3g_datanode_' });
    const gauge = (name: string, help: string, pick: (s: StoreStats) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          this.set(pick(await stats()));
        },
      });
    };
    gauge('s3g_datanode_capacity_bytes', 'Bytes this datanode can hold (used plus free on its filesystem).', (s) => s.capacityBytes);
    gauge('s3g_datanode_used_bytes', 'Bytes of block files on this datanode.', (s) => s.usedBytes);
    gauge('s3g_datanode_blocks', 'Committed blocks on this datanode.', (s) => s.blockCount);
    gauge('s3g_datanode_healthy', '1 when the block store is usable.', (s) => (s.healthy ? 1 : 0));
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
