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
    if (this.shortCircuitReads) await Promise.all(this.datanodes.filter((d) => d.state === 'live').map((d) => this.probe(d).probed));
  }

  /**
   * Where to read a datanode's replicas from, best first: its files when they are on this
   * host and it is live, then gRPC (which also covers a local read that fails). An unknown
   * datanode is a source that fails, as an unreachable one does.
   */
  sources(datanodeId: string): BlockSource[] {
    const node = this.datanodes.find((d) => d.id === datanodeId);
    if (!node) return [failingSource(new Error(`unknown datanode ${datanodeId}`))];
    const client = this.clientOf(node);
    const reader = this.shortCircuitReads && node.state === 'live' ? this.probe(node).reader : undefined;
    return reader ? [reader, client] : [client];
  }

  client(datanodeId: string): DatanodeClient {
    const node = this.datanodes.find((d) => d.id === datanodeId);
    if (!node) throw new Error(`unknown datanode ${datanodeId}`);
    return this.clientOf(node);
  }

  private clientOf(node: DatanodeRecord): DatanodeClient {
    const cached = this.clients.get(node.id);
    if (cached && cached.address === node.address) return cached.client;
    cached?.client.close();
    const client = new DatanodeClient(node.address);
    this.clients.set(node.id, { address: node.address, client });
    return client;
  }

  /** Whether a datanode's files are on this host: probed once per address, the answer set when known. */
  private probe(node: DatanodeRecord): LocalProbe {
    const known = this.local.get(node.id);
    if (known?.address === node.address) return known;
    const probe: LocalProbe = { address: node.address, reader: undefined, probed: Promise.resolve() };
    this.local.set(node.id, probe);
    probe.probed = this.clientOf(node)
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
    return probe;
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

function failingSource(error: Error): BlockSource {
  return {
    via: 'grpc',
    // eslint-disable-next-line require-yield -- fails before any piece
    async *readBlock() {
      throw error;
    },
  };
}
