// Load generators: autocannon (programmatic API) for small requests, and streaming HTTP
// clients for large transfers. Every load is bounded in time.
import { setMaxListeners } from 'node:events';
import { request, type IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { patternSlices } from './body.js';

// ---- autocannon ----

interface AutocannonRequest {
  method?: string;
  path?: string;
  body?: Buffer;
  headers?: Record<string, string>;
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest;
}

interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  timeout: number;
  requests: AutocannonRequest[];
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

const require = createRequire(import.meta.url);
const autocannon = require('autocannon') as (options: AutocannonOptions) => Promise<AutocannonResult>;

// autocannon's HTTP parser (http-parser-js) is not told that a response answers a HEAD, so
// it waits for the Content-Length bytes of a body that never comes. While `headResponses`
// is set, every response it parses ends with its headers (the parser's skipBody), which is
// what HTTP says about HEAD. The hook sits on the prototype slot autocannon's client
// assigns its onHeadersComplete callback to.
let headResponses = false;
{
  const { HTTPParser } = createRequire(require.resolve('autocannon'))('http-parser-js') as {
    HTTPParser: { prototype: object; kOnHeadersComplete: number };
  };
  const slot = HTTPParser.kOnHeadersComplete;
  Object.defineProperty(HTTPParser.prototype, slot, {
    configurable: true,
    set(this: object, callback: (...args: unknown[]) => unknown) {
      Object.defineProperty(this, slot, {
        configurable: true,
        writable: true,
        value(this: unknown, ...args: unknown[]) {
          const skipBody = callback.apply(this, args);
          return headResponses ? true : skipBody;
        },
      });
    },
  });
}

export interface HammerOptions {
  url: string;
  method: 'GET' | 'PUT' | 'HEAD';
  /** Paths (with query) the requests rotate through. */
  paths: string[];
  body?: Buffer;
  connections: number;
  durationS: number;
}

export interface HammerResult {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  /** Connection errors, timeouts and non-2xx answers. */
  failed: number;
}

/** Requests as fast as `connections` keep-alive connections allow, for durationS seconds. */
export async function hammer(options: HammerOptions): Promise<HammerResult> {
  let next = 0;
  const { paths } = options;
  headResponses = options.method === 'HEAD';
  try {
    const result = await autocannon({
      url: options.url,
      connections: options.connections,
      duration: options.durationS,
      timeout: 10,
      requests: [
        {
          method: options.method,
          ...(options.body ? { body: options.body, headers: { 'content-type': 'application/octet-stream' } } : {}),
          setupRequest: (req) => ({ ...req, path: paths[next++ % paths.length]! }),
        },
      ],
    });
    return {
      opsPerSec: result.requests.average,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      ok: result['2xx'],
      failed: result.errors + result.timeouts + result.non2xx,
    };
  } finally {
    headResponses = false;
  }
}

// ---- large transfers ----

export interface Exchange {
  status: number;
  headers: IncomingHttpHeaders;
  /** Response body bytes received. */
  bytes: number;
  /** The response body as text, up to `keepText` characters. */
  text: string;
}

/**
 * One HTTP exchange: `size` bytes of the pattern body streamed with backpressure (none
 * when size is 0), the response body counted. Rejects on `signal`.
 */
export function exchange(
  url: string,
  options: { method: string; path: string; headers?: Record<string, string>; size?: number; signal: AbortSignal; keepText?: number },
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const size = options.size ?? 0;
    const keepText = options.keepText ?? 4096;
    const headers = { ...options.headers, ...(options.method === 'PUT' ? { 'content-length': String(size) } : {}) };
    const req = request(url + options.path, { method: options.method, headers, agent: false, signal: options.signal }, (res) => {
      let bytes = 0;
      let text = '';
      res.on('data', (piece: Buffer) => {
        bytes += piece.length;
        if (text.length < keepText) text += piece.toString('utf8', 0, Math.min(piece.length, keepText - text.length));
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    void (async () => {
      for (const slice of patternSlices(size)) {
        if (req.destroyed) return;
        if (!req.write(slice)) {
          await new Promise<void>((resolve) => {
            const resume = (): void => {
              req.off('drain', resume).off('close', resume);
              resolve();
            };
            req.on('drain', resume).on('close', resume);
          });
        }
      }
      req.end();
    })();
  });
}

/** Runs `streams` transfers at once under one deadline; MB/s (10^6 bytes) over the wall time. */
export async function concurrently(
  streams: number,
  bytesPerStream: number,
  deadlineMs: number,
  transfer: (index: number, signal: AbortSignal) => Promise<void>,
): Promise<{ mbPerSec: number; seconds: number }> {
  const controller = new AbortController();
  setMaxListeners(streams * 4 + 10, controller.signal);
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${deadlineMs / 1000} s`)), deadlineMs);
  const started = performance.now();
  try {
    // The first failure (or the deadline) aborts the other streams.
    const runs = Array.from({ length: streams }, (_, i) =>
      transfer(i, controller.signal).catch((error: unknown) => {
        if (!controller.signal.aborted) controller.abort(error);
        throw error;
      }),
    );
    await Promise.allSettled(runs);
    if (controller.signal.aborted) throw controller.signal.reason;
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - started) / 1000;
  return { mbPerSec: (streams * bytesPerStream) / 1e6 / seconds, seconds };
}
