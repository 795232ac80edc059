// Datanode clients and replica placement: which datanodes hold the next block.
import type { MetadataStore, DatanodeRecord } from '../metadata/store.js';
import { DatanodeClient } from '../datanode/client.js';
import { s3Error } from '../gateway/errors.js';

export class Placement {
  private readonly clients = new Map<string, { address: string; client: DatanodeClient }>();
  private datanodes: DatanodeRecord[] = [];
  private next = 0;

  constructor(private readonly store: MetadataStore) {}

  /** Reloads the datanode list from metadata (addresses may change across restarts). */
  async refresh(): Promise<void> {
    this.datanodes = await this.store.listDatanodes();
  }

  client(datanodeId: string): DatanodeClient {
    const node = this.datanodes.find((d) => d.id === datanodeId);
    if (!node) throw new Error(`unknown datanode ${datanodeId}`);
    const cached = this.clients.get(datanodeId);
    if (cached && cached.address === node.address) return cached.client;
    cached?.client.close();
    const client = new DatanodeClient(node.address);
    this.clients.set(datanodeId, { address: node.address, client });
    return client;
  }

  /** `replication` distinct live datanodes, rotating the first so load spreads. */
  choose(replication: number): string[] {
    const live = this.datanodes.filter((d) => d.state === 'live');
    if (live.length < replication) {
      throw s3Error('ServiceUnavailable', `need ${replication} live datanodes, have ${live.length}`);
    }
    const start = this.next++ % live.length;
    return Array.from({ length: replication }, (_, i) => live[(start + i) % live.length]!.id);
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}
