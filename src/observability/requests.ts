// What happens when an S3 request ends: one access-log line and the request metrics. The
// gateway calls requestDone once per request, when its response closes (finished or cut).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayMetrics } from './metrics.js';
import { redactUrl, type AccessLog } from './logger.js';

/** What the gateway knows about a request by the time it ends. */
export interface RequestRecord {
  requestId: string;
  /** Undefined when the request never reached an operation (bad URI, unknown route). */
  operation: string | undefined;
  bucket: string | undefined;
  key: string | undefined;
  /** The authenticated user's name. */
  user: string | undefined;
  /** The S3 error code answered, if any. */
  errorCode: string | undefined;
  /** The response's declared Content-Length (0 if none). */
  contentLength: number;
  /** performance.now() when the request's headers had arrived. */
  startedAt: number;
  /** The connection's byte counters then, for requests or responses cut short. */
  readBefore: number;
  writtenBefore: number;
}

export type RequestObserver = (req: IncomingMessage, res: ServerResponse, record: RequestRecord) => void;

/** Status recorded for a client that went away before any response (nginx's convention). */
export const CLIENT_CLOSED = 499;

export function requestObserver(metrics: GatewayMetrics, log: AccessLog): RequestObserver {
  return (req, res, r) => {
    const seconds = (performance.now() - r.startedAt) / 1000;
    const status = res.headersSent ? res.statusCode : CLIENT_CLOSED;
    const complete = res.writableFinished;
    const socket = req.socket;
    // Bodies as declared when they arrived in full; otherwise what crossed the connection.
    const declaredIn = Number(req.headers['content-length'] ?? 0) || 0;
    const bytesIn = req.complete ? declaredIn : Math.min(declaredIn, Math.max(0, socket.bytesRead - r.readBefore));
    let bytesOut = 0;
    if (complete) {
      if (req.method !== 'HEAD' && status !== 204 && status !== 304) bytesOut = r.contentLength;
    } else {
      bytesOut = Math.max(0, socket.bytesWritten - r.writtenBefore);
    }
    const operation = r.operation ?? 'Unknown';
    metrics.observeRequest(operation, status, seconds, bytesIn, bytesOut);
    const level = status >= 500 ? 'warn' : 'info';
    if (!log.enabled(level)) return;
    log.write(level, {
      requestId: r.requestId,
      operation,
      bucket: r.bucket,
      key: r.key,
      status,
      error: r.errorCode,
      bytesIn,
      bytesOut,
      durationMs: Math.round(seconds * 1e6) / 1000,
      complete,
      method: req.method,
      url: redactUrl(req.url ?? '/'),
      user: r.user,
      remote: socket.remoteAddress,
    });
  };
}
