// Readiness: the process serves S3 requests only while it is not shutting down, metadata
// answers, and enough datanodes answer a gRPC probe. Results are cached briefly so a burst
// of probes (several load balancers, the admin page) costs one round of checks.
import type { DatanodeRecord, MetadataStore } from '../metadata/store.js';

export interface Readiness {
  ready: boolean;
  /** Why not, in words; empty when ready. */
  reasons: string[];
  shuttingDown: boolean;
  metadata: boolean;
  datanodes: { required: number; reachable: string[]; unreachable: string[] };
}

export interface ReadinessOptions {
  store: MetadataStore;
  /** Resolves when the datanode answers (a gRPC Info call). */
  probe(datanode: DatanodeRecord): Promise<unknown>;
  /** Reachable datanodes needed to accept writes. */
  minDatanodes: number;
  timeoutMs?: number;
  cacheMs?: number;
}

export class ReadinessCheck {
  private shuttingDown = false;
  private cached: { at: number; result: Readiness } | undefined;
  private running: Promise<Readiness> | undefined;

  constructor(private readonly options: ReadinessOptions) {}

  /** From now on not ready, whatever the checks say (SIGTERM: let load balancers move away first). */
  beginShutdown(): void {
    this.shuttingDown = true;
    this.cached = undefined;
  }

  async check(): Promise<Readiness> {
    if (this.shuttingDown) {
      return { ready: false, reasons: ['shutting down'], shuttingDown: true, metadata: true, datanodes: { required: this.options.minDatanodes, reachable: [], unreachable: [] } };
    }
    if (this.cached && Date.now() - this.cached.at < (this.options.cacheMs ?? 1000)) return this.cached.result;
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(): Promise<Readiness> {
    const timeoutMs = this.options.timeoutMs ?? 2000;
    const required = this.options.minDatanodes;
    const reasons: string[] = [];
    let datanodes: DatanodeRecord[] = [];
    let metadata = true;
    try {
      datanodes = await withTimeout(this.options.store.listDatanodes(), timeoutMs);
    } catch (error) {
      metadata = false;
      reasons.push(`metadata unreachable: ${error instanceof Error ? error.message : String(error)}`);
    }
    const answers = await Promise.all(
      datanodes.map((d) => withTimeout(this.options.probe(d), timeoutMs).then(() => true, () => false)),
    );
    const reachable = datanodes.filter((_, i) => answers[i]).map((d) => d.id);
    const unreachable = datanodes.filter((_, i) => !answers[i]).map((d) => d.id);
    if (metadata && reachable.length < required) {
      reasons.push(`${reachable.length} datanode${reachable.length === 1 ? '' : 's'} reachable, ${required} needed`);
    }
    const result: Readiness = { ready: reasons.length === 0, reasons, shuttingDown: false, metadata, datanodes: { required, reachable, unreachable } };
    if (!this.shuttingDown) this.cached = { at: Date.now(), result };
    return this.shuttingDown ? this.check() : result;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
