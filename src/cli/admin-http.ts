// The admin port: /health (the process is up), /ready (it serves S3 requests) and /stats
// (event-loop delay and memory as JSON, for benchmarks; `?reset=1` starts a new window).
import { createServer, type Server } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface AdminServer {
  server: Server;
  close(): void;
}

export async function startAdminServer(host: string, port: number, isReady: () => boolean): Promise<AdminServer> {
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);
  sampler.unref();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname === '/health') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
    } else if (url.pathname === '/ready') {
      const ready = isReady();
      res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else if (url.pathname === '/stats') {
      const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
      const memory = process.memoryUsage();
      const stats = {
        eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
        rssBytes: memory.rss,
        peakRssBytes: Math.max(peakRss, memory.rss),
        heapUsedBytes: memory.heapUsed,
        externalBytes: memory.external,
      };
      if (url.searchParams.has('reset')) {
        loopDelay.reset();
        peakRss = memory.rss;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(stats) + '\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
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
    },
  };
}
