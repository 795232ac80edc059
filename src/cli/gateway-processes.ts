// --gateway-processes N: N - 1 worker processes beside this one serve the same S3 port, so
// that small requests, whose cost is the event loop's, use more than one core. This process
// accepts every connection (paused) and deals them round-robin to itself and the ready
// workers, as node:cluster does; keep-alive clients stay on the process they were given.
// Workers are stateless gateways on the same metadata: they run no background service and
// no admin port. They report their totals every second and answer /stats and /metrics
// questions, which this process adds to its own. A worker that dies is started again.
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config } from '../observability/config.js';
import type { RequestTotals } from '../observability/metrics.js';
import type { ProcessStats, StatsOptions } from '../observability/process-stats.js';
import type { PoolStats } from '../hashing/pool.js';
import type { KekSources } from './kek.js';
import { log } from '../common/log.js';

const workerFile = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './gateway-worker.ts' : './gateway-worker.js', import.meta.url));

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export interface WorkerInit {
  config: Config;
  meta: string;
  kek: KekSources;
}

export interface WorkerReport {
  totals: RequestTotals;
  inFlight: number;
  pool: PoolStats;
}

export type ToWorker =
  | { type: 'init'; init: WorkerInit }
  | { type: 'connection' }
  | { type: 'ask'; id: number; what: 'stats'; options: StatsOptions }
  | { type: 'ask'; id: number; what: 'metrics' }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | ({ type: 'report' } & WorkerReport)
  | { type: 'answer'; id: number; value: unknown };

/** How long a question to a worker may take before it is left out of the answer. */
const ASK_TIMEOUT_MS = 2000;

interface Worker {
  child: ChildProcess;
  ready: boolean;
  report?: WorkerReport;
}

export class GatewayProcesses {
  private readonly workers = new Map<number, Worker>();
  private readonly asked = new Map<number, { resolve: (value: unknown) => void; timer: NodeJS.Timeout }>();
  private nextQuestion = 0;
  private turn = 0;
  private stopping = false;
  /** Totals of workers that exited, so that the sum never goes back. */
  private readonly retired: RequestTotals = { requests: 0, errors: 0, bytesIn: 0, bytesOut: 0 };

  constructor(
    private readonly count: number,
    private readonly init: WorkerInit,
  ) {}

  /** Starts the workers and resolves once all are ready to take connections. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.count }, (_, slot) => this.launch(slot)));
  }

  /** The PIDs of the workers (for the log). */
  pids(): number[] {
    return [...this.workers.values()].flatMap((w) => (w.child.pid === undefined ? [] : [w.child.pid]));
  }

  /**
   * Hands the connection to the next ready worker, or returns false when it is this process's
   * turn (or no worker can take it).
   */
  dispatch(socket: Socket): boolean {
    const turns = this.count + 1;
    for (let tries = 0; tries < turns; tries++) {
      const slot = this.turn++ % turns;
      if (slot === this.count) return false;
      const worker = this.workers.get(slot);
      if (!worker?.ready || !worker.child.connected) continue;
      worker.child.send({ type: 'connection' } satisfies ToWorker, socket);
      return true;
    }
    return false;
  }

  totals(own: RequestTotals): RequestTotals {
    const all = { ...own };
    for (const part of [this.retired, ...this.reports().map((r) => r.totals)]) addTotals(all, part);
    return all;
  }

  inFlight(): number {
    return this.reports().reduce((sum, r) => sum + r.inFlight, 0);
  }

  pools(): PoolStats[] {
    return this.reports().map((r) => r.pool);
  }

  /** Each ready worker's /stats (those that answer in time). */
  async stats(options: StatsOptions): Promise<ProcessStats[]> {
    return (await this.askAll({ what: 'stats', options })) as ProcessStats[];
  }

  /** Each ready worker's metrics, as prom-client's JSON. */
  async metrics(): Promise<MetricsJson[]> {
    return (await this.askAll({ what: 'metrics' })) as MetricsJson[];
  }

  /** Asks every worker to drain and exit; kills those still running after the grace period. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.workers.values()].map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        if (child.connected) child.send({ type: 'shutdown' } satisfies ToWorker);
        else child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs + 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  private reports(): WorkerReport[] {
    return [...this.workers.values()].flatMap((w) => (w.report ? [w.report] : []));
  }

  private async askAll(question: { what: 'stats'; options: StatsOptions } | { what: 'metrics' }): Promise<unknown[]> {
    const ready = [...this.workers.values()].filter((w) => w.ready && w.child.connected);
    const answers = await Promise.all(
      ready.map(
        (worker) =>
          new Promise<unknown>((resolve) => {
            const id = this.nextQuestion++;
            const timer = setTimeout(() => {
              this.asked.delete(id);
              resolve(undefined);
            }, ASK_TIMEOUT_MS);
            this.asked.set(id, { resolve, timer });
            worker.child.send({ type: 'ask', id, ...question } satisfies ToWorker);
          }),
      ),
    );
    return answers.filter((answer) => answer !== undefined);
  }

  private launch(slot: number): Promise<void> {
    // The parent's node flags (heap sizing, a TypeScript loader, --cpu-prof) apply to workers too.
    const child = fork(workerFile, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const worker: Worker = { child, ready: false };
    this.workers.set(slot, worker);
    // A message that cannot be sent (the worker died meanwhile) loses that connection only.
    child.on('error', (error) => log('warn', 'gateway worker unreachable', { worker: slot + 1, error: String(error) }));
    const ready = new Promise<void>((resolve, reject) => {
      child.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ready':
            worker.ready = true;
            resolve();
            break;
          case 'failed':
            reject(new Error(`gateway worker ${slot + 1} failed to start: ${message.message}`));
            break;
          case 'report':
            worker.report = { totals: message.totals, inFlight: message.inFlight, pool: message.pool };
            break;
          case 'answer': {
            const question = this.asked.get(message.id);
            if (!question) break;
            this.asked.delete(message.id);
            clearTimeout(question.timer);
            question.resolve(message.value);
            break;
          }
        }
      });
      child.once('exit', (code, signal) => reject(new Error(`gateway worker ${slot + 1} exited (${signal ?? code}) before it was ready`)));
    });
    child.once('exit', (code, signal) => {
      worker.ready = false;
      if (worker.report) addTotals(this.retired, worker.report.totals);
      worker.report = undefined;
      if (this.stopping) return;
      log('warn', 'gateway worker exited; restarting', { worker: slot + 1, pid: child.pid, code, signal });
      setTimeout(() => void this.launch(slot).catch((error: unknown) => log('error', 'gateway worker restart failed', { worker: slot + 1, error: String(error) })), 500).unref();
    });
    child.send({ type: 'init', init: this.init } satisfies ToWorker);
    return ready;
  }
}

function addTotals(into: RequestTotals, part: RequestTotals): void {
  into.requests += part.requests;
  into.errors += part.errors;
  into.bytesIn += part.bytesIn;
  into.bytesOut += part.bytesOut;
}
