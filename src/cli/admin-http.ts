// The admin port, apart from S3 traffic:
//   GET  /health       the process is up
//   GET  /ready        it serves S3 requests (metadata and enough datanodes reachable, not shutting down)
//   GET  /metrics      Prometheus metrics
//   GET  /             the admin page; GET /api/status is the JSON it polls (and `s3g admin status` prints)
//   POST /api/purge    starts a purge pass now (`s3g admin purge`)
//   GET  /stats        event-loop delay and memory as JSON, for benchmarks; `?reset=1` starts a new window,
//                      `?gc=1` collects garbage first (node --expose-gc)
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { LoopDelay } from '../observability/loop-delay.js';
import type { Readiness } from '../observability/health.js';
import type { ClusterStatus } from '../observability/status.js';
import { ADMIN_PAGE, ADMIN_PAGE_CSP } from '../observability/admin-page.js';
import { log } from '../common/log.js';

export interface AdminServer {
  server: Server;
  close(): void;
}

/** A Prometheus registry as the admin port serves it (the gateway's, or a datanode's). */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface AdminEndpoints {
  readiness(): Promise<Readiness>;
  metrics?: MetricsSource;
  status?(): Promise<ClusterStatus>;
  /** Starts a purge pass; resolves when it is over. */
  purge?(): Promise<void>;
}

export async function startAdminServer(host: string, port: number, endpoints: AdminEndpoints): Promise<AdminServer> {
  const loopDelay = new LoopDelay();
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);
  sampler.unref();

  const stats = (url: URL): unknown => {
    const ms = (value: number): number => Math.round(value * 100) / 100;
    // ?gc=1: a full collection first (node started with --expose-gc), so heapUsed is what is live.
    if (url.searchParams.has('gc')) (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    const result = {
      eventLoopDelayMs: { p50: ms(loopDelay.percentileMs(50)), p99: ms(loopDelay.percentileMs(99)), max: ms(loopDelay.maxMs) },
      rssBytes: memory.rss,
      peakRssBytes: Math.max(peakRss, memory.rss),
      heapUsedBytes: memory.heapUsed,
      externalBytes: memory.external,
    };
    if (url.searchParams.has('reset')) {
      loopDelay.reset();
      peakRss = memory.rss;
    }
    return result;
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (get && url.pathname === '/health') return text(res, 200, 'ok\n');
    if (get && url.pathname === '/ready') {
      const r = await endpoints.readiness();
      return text(res, r.ready ? 200 : 503, r.ready ? 'ready\n' : `not ready: ${r.reasons.join('; ')}\n`);
    }
    if (get && url.pathname === '/stats') return json(res, 200, stats(url));
    if (get && url.pathname === '/metrics' && endpoints.metrics) {
      const body = await endpoints.metrics.text();
      res.writeHead(200, { 'Content-Type': endpoints.metrics.contentType, 'Cache-Control': 'no-store' }).end(body);
      return;
    }
    if (get && url.pathname === '/api/status' && endpoints.status) return json(res, 200, await endpoints.status());
    if (get && (url.pathname === '/' || url.pathname === '/admin') && endpoints.status) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': ADMIN_PAGE_CSP, 'Cache-Control': 'no-store' }).end(ADMIN_PAGE);
      return;
    }
    if (url.pathname === '/api/purge' && endpoints.purge) {
      if (req.method !== 'POST') return text(res, 405, 'use POST\n');
      const purge = endpoints.purge;
      void purge().catch((error: unknown) => log('error', 'purge requested from the admin port failed', { error: String(error) }));
      return json(res, 202, { started: true });
    }
    return text(res, 404, 'not found\n');
  };

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      log('error', 'admin request failed', { url: req.url, error: String(error) });
      if (!res.headersSent) text(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    close() {
      clearInterval(sampler);
      loopDelay.disable();
      server.close();
      server.closeAllConnections();
    },
  };
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end(body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body) + '\n');
}
