// A gateway worker process of --gateway-processes (see gateway-processes.ts): forked by
// `serve` or `gateway`, told its configuration over IPC, then given connections to serve.
// It answers the parent's questions (/stats, /metrics) and reports its totals every second.
// On { type: 'shutdown' }, SIGTERM or the parent going away, it drains and exits 0.
import { openMetadataStore, storeTuning } from '../metadata/open.js';
import type { MetadataStore } from '../metadata/store.js';
import { Placement } from '../pipeline/placement.js';
import { ProcessStatsSampler } from '../observability/process-stats.js';
import { flushLogs, setLogLevel } from '../observability/logger.js';
import { log } from '../common/log.js';
import { createS3Front, keepPlacementFresh, type S3Front } from './s3-front.js';
import { loadSecretBox } from './kek.js';
import type { FromWorker, ToWorker, WorkerInit } from './gateway-processes.js';
import type { Socket } from 'node:net';

const send = (message: FromWorker): void => {
  if (process.connected) process.send!(message);
};

let running: { front: S3Front; store: MetadataStore; placement: Placement; refresh: NodeJS.Timeout; report: NodeJS.Timeout } | undefined;
const sampler = new ProcessStatsSampler();
let stopping = false;

async function start(init: WorkerInit): Promise<void> {
  const { config } = init;
  setLogLevel(config.logLevel);
  const secrets = loadSecretBox(init.kek);
  const store = await openMetadataStore(init.meta, secrets, storeTuning(config));
  const placement = new Placement(store, config.shortCircuitReads);
  await placement.refresh();
  const refresh = keepPlacementFresh(placement);
  const front = createS3Front(config, store, placement, { cluster: () => undefined, services: () => [] });
  // Connections arrive from the parent, already accepted: the server never listens itself, but
  // its connection tracking (headers timeout, idle connections) starts on 'listening'.
  front.gateway.server.emit('listening');
  const report = setInterval(
    () => send({ type: 'report', totals: front.metrics.totals, inFlight: front.gateway.inFlight(), pool: front.pool.stats }),
    1000,
  );
  running = { front, store, placement, refresh, report };
  log('info', 'gateway worker serving');
  send({ type: 'ready' });
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (running) {
    const { front, store, placement, refresh, report } = running;
    await front.gateway.shutdown();
    clearInterval(refresh);
    clearInterval(report);
    placement.close();
    await front.pool.close();
    await store.close();
  }
  sampler.close();
  await flushLogs();
  process.exit(0);
}

async function answer(id: number, question: () => unknown): Promise<void> {
  send({ type: 'answer', id, value: await question() });
}

process.on('message', (message: ToWorker, handle?: Socket) => {
  switch (message.type) {
    case 'init':
      start(message.init).catch((error: unknown) => {
        const text = error instanceof Error ? error.message : String(error);
        if (process.connected) process.send!({ type: 'failed', message: text } satisfies FromWorker, undefined, {}, () => process.exit(1));
        else process.exit(1);
      });
      break;
    case 'connection':
      if (!handle) break;
      if (!running || stopping) handle.destroy();
      else running.front.gateway.server.emit('connection', handle);
      break;
    case 'ask':
      if (message.what === 'stats') void answer(message.id, () => sampler.read(message.options));
      else void answer(message.id, () => running?.front.metrics.registry.getMetricsAsJSON() ?? []);
      break;
    case 'shutdown':
      void stop();
      break;
  }
});
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.on('disconnect', () => void stop());
