// Datanode clients and replica placement: which datanodes hold the next block.
import type { MetadataStore, DatanodeRecord } from '../metadata/store.js';
import { DatanodeClient, type BlockSource } from '../datanode/client.js';
import { LocalBlockReader } from '../datanode/local-reader.js';
import { s3Error } from '../gateway/errors.js';

interface LocalProbe {
  address: string;
  /** Set when the probe found the datanode's files on this host. */
  reader: LocalBlockReader | undefined;
  probed: Promise<void>;
}

export class Placement {
  private readonly clients = new Map<string, { address: string; client: DatanodeClient }>();
  private datanodes: DatanodeRecord[] = [];
  /** Datanode id → until when it is avoided. */
  private readonly suspects = new Map<string, number>();
  /** Datanode id → whether its files are on this host, as probed at that address. */
  private readonly local = new Map<string, LocalProbe>();

  constructor(
    private readonly store: MetadataStore,
    /** Read blocks of datanodes on this host from their files (short-circuit reads). */
    private readonly shortCircuitReads = false,
  ) {}

  /** Reloads the datanode list from metadata (addresses may change across restarts). */
  async refresh(): Promise<void> {
    this.datanodes = await this.store.listDatanodes();
    if (this.shortCircuitReads) await Promise.all(this.datanodes.filter((d) => d.state === 'live').map((d) => this.probe(d)));
  }

  /**
   * Where to read a datanode's replicas from, best first: its files when they are on this
   * host and it is live, then gRPC (which also covers a local read that fails).
   */
  sources(datanodeId: string): BlockSource[] {
    const client = this.client(datanodeId);
    const node = this.datanodes.find((d) => d.id === datanodeId);
    if (!this.shortCircuitReads || node?.state !== 'live') return [client];
    const known = this.local.get(node.id);
    if (known?.address !== node.address) {
      void this.probe(node);
      return [client];
    }
    return known.reader ? [known.reader, client] : [client];
  }

  /** Finds out, once per address, whether a datanode's files are on this host. */
  private probe(node: DatanodeRecord): Promise<void> {
    const known = this.local.get(node.id);
    if (known?.address === node.address) return known.probed;
    const probe: LocalProbe = { address: node.address, reader: undefined, probed: Promise.resolve() };
    this.local.set(node.id, probe);
    probe.probed = this.client(node.id)
      .info()
      .then((info) => LocalBlockReader.forDatanode(info))
      .then(
        (reader) => {
          probe.reader = reader;
        },
        () => {
          // Unreachable now: probe again on the next read or refresh.
          if (this.local.get(node.id) === probe) this.local.delete(node.id);
        },
      );
    return probe.probed;
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

  /**
   * `replication` distinct live datanodes, drawn at random weighted by free space, so that
   * load spreads and fuller datanodes fill more slowly; the order drawn is the read preference.
   * With datanodes excluded or suspected, a pipeline may come out shorter, down to `minimum`
   * (a majority of `replication`): the write goes on, under-replicated, and re-replication
   * restores the rest.
   */
  choose(replication: number, exclude: ReadonlySet<string> = new Set(), minimum = Math.ceil(replication / 2)): string[] {
    const now = Date.now();
    const usable = this.datanodes.filter((d) => d.state === 'live' && !exclude.has(d.id) && (this.suspects.get(d.id) ?? 0) < now);
    if (usable.length < minimum) {
      throw s3Error('ServiceUnavailable', `need ${replication} live datanodes (at least ${minimum}), have ${usable.length}`);
    }
    const chosen: string[] = [];
    while (chosen.length < replication && usable.length > 0) {
      const weights = usable.map((d) => Math.max(1, d.capacityBytes - d.usedBytes));
      let draw = Math.random() * weights.reduce((a, b) => a + b, 0);
      let index = 0;
      while (index < usable.length - 1 && draw >= weights[index]!) draw -= weights[index++]!;
      chosen.push(usable.splice(index, 1)[0]!.id);
    }
    return chosen;
  }

  /** A datanode that just failed gets no new blocks for a while, until heartbeats say otherwise. */
  suspect(datanodeId: string, forMs = 30_000): void {
    this.suspects.set(datanodeId, Date.now() + forMs);
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
    this.local.clear();
  }
}
