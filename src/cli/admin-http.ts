// The admin port, apart from S3 traffic:
//   GET  /health       the process is up
//   GET  /ready        it serves S3 requests (metadata and enough datanodes reachable, not shutting down)
//   GET  /metrics      Prometheus metrics
//   GET  /             the admin page; GET /api/status is the JSON it polls (and `s3g admin status` prints)
//   POST /api/purge    starts a purge pass now (`s3g admin purge`)
//   GET  /stats        event-loop delay and memory as JSON, for benchmarks; `?reset=1` starts a new window,
//                      `?gc=1` collects garbage first (node --expose-gc); with several gateway
//                      processes, the worst loop and the summed memory, and each process's own
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ProcessStatsSampler, combineStats, type ProcessStats, type StatsOptions } from '../observability/process-stats.js';
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
  /** The other processes serving the same S3 port, whose /stats are added to this one's. */
  otherProcesses?(options: StatsOptions): Promise<ProcessStats[]>;
}

export async function startAdminServer(host: string, port: number, endpoints: AdminEndpoints): Promise<AdminServer> {
  const sampler = new ProcessStatsSampler();

  const stats = async (url: URL): Promise<unknown> => {
    const options = { reset: url.searchParams.has('reset'), gc: url.searchParams.has('gc') };
    const own = sampler.read(options);
    if (!endpoints.otherProcesses) return own;
    return combineStats([own, ...(await endpoints.otherProcesses(options))]);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (get && url.pathname === '/health') return text(res, 200, 'ok\n');
    if (get && url.pathname === '/ready') {
      const r = await endpoints.readiness();
      return text(res, r.ready ? 200 : 503, r.ready ? 'ready\n' : `not ready: ${r.reasons.join('; ')}\n`);
    }
    if (get && url.pathname === '/stats') return json(res, 200, await stats(url));
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
      sampler.close();
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
