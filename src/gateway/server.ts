// The node:http front: request id, routing, authentication, the operation's handler, and
// S3 XML errors. Nothing here touches payload bytes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { authenticate } from '../auth/authenticate.js';
import { headerMap, type RequestParts } from '../auth/sigv4.js';
import { MetadataError } from '../metadata/store.js';
import { ReplicasExhaustedError } from '../pipeline/object-reader.js';
import type { GatewayServices, Handler, HandlerTable, RequestContext } from './context.js';
import { S3Error, s3Error } from './errors.js';
import { route, type Operation, type OperationName } from './router.js';
import { xmlDocument } from './xml.js';
import { log } from '../common/log.js';
import type { RequestObserver } from '../observability/requests.js';
import { bucketHandlers } from './operations/bucket.js';
import { putHandlers } from './operations/put.js';
import { getHandlers } from './operations/get.js';
import { deleteHandlers } from './operations/delete.js';
import { listHandlers } from './operations/list.js';
import { copyHandlers } from './operations/copy.js';
import { configHandlers } from './operations/config.js';
import { taggingHandlers } from './operations/tagging.js';
import { multipartHandlers } from './operations/multipart.js';

const HANDLERS: HandlerTable = { ...bucketHandlers, ...putHandlers, ...getHandlers, ...deleteHandlers, ...listHandlers, ...copyHandlers, ...configHandlers, ...taggingHandlers, ...multipartHandlers };

export interface Gateway {
  server: Server;
  /** Stops accepting, lets in-flight requests finish within the grace period, then closes. */
  shutdown(): Promise<void>;
  /** Requests being served now. */
  inFlight(): number;
}

/** `observe` hears of every request once its response closes (metrics, the access log). */
export function createGateway(services: GatewayServices, observe?: RequestObserver): Gateway {
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const accept = (expectsContinue: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    res.once('close', () => {
      if (--inFlight === 0) drained?.();
    });
    void handleRequest(req, res, services, expectsContinue, observe);
  };
  const server = createServer(accept(false));
  // Expect: 100-continue: the client waits with the body until the request is authenticated.
  server.on('checkContinue', accept(true));
  return {
    server,
    inFlight: () => inFlight,
    async shutdown() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (drained = resolve)),
          new Promise<void>((resolve) => setTimeout(resolve, services.config.shutdownGraceMs).unref()),
        ]);
      }
      server.closeAllConnections();
      await closed;
    },
  };
}

function requestParts(req: IncomingMessage): { parts: RequestParts; query: URLSearchParams } {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  return {
    parts: { method: req.method ?? 'GET', rawPath, rawQuery, headers: headerMap(req.rawHeaders) },
    query: new URLSearchParams(rawQuery),
  };
}

async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  services: GatewayServices,
  expectsContinue: boolean,
  observe: RequestObserver | undefined,
): Promise<void> {
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  res.setHeader('x-amz-request-id', requestId);
  res.setHeader('x-amz-id-2', requestId);
  res.setHeader('Server', 's3g');
  let op: Operation | undefined;
  let userName: string | undefined;
  let errorCode: string | undefined;
  if (observe) {
    const startedAt = performance.now();
    const { bytesRead: readBefore, bytesWritten: writtenBefore } = req.socket;
    res.once('close', () =>
      observe(req, res, {
        requestId,
        operation: op?.name,
        bucket: op && 'bucket' in op ? op.bucket : undefined,
        key: op && 'key' in op ? op.key : undefined,
        user: userName,
        errorCode,
        startedAt,
        readBefore,
        writtenBefore,
      }),
    );
  }
  try {
    const { parts, query } = requestParts(req);
    if (!parts.rawPath.startsWith('/')) throw s3Error('InvalidURI', 'Couldn\'t parse the specified URI.');
    op = route(
      { method: parts.method, rawPath: parts.rawPath, query, host: req.headers.host, hasHeader: (name) => parts.headers.has(name) },
      services.config.domains,
    );
    const { user, signed, secretAccessKey } = await authenticate(parts, query, services.store);
    userName = user.name;
    const handler = HANDLERS[op.name] as Handler<OperationName> | undefined;
    if (!handler) throw s3Error('NotImplemented', `${op.name} is not implemented by s3g`);
    if (expectsContinue) res.writeContinue();
    const ctx: RequestContext = { req, res, requestId, op, query, headers: parts.headers, user, signed, secretAccessKey };
    await handler(ctx, services);
  } catch (error) {
    errorCode = sendError(req, res, requestId, op, error);
  }
}

const METADATA_ERRORS: Record<string, string> = { NoSuchUser: 'InvalidAccessKeyId', UserAlreadyExists: 'InvalidRequest' };

function toS3Error(error: unknown): S3Error {
  if (error instanceof S3Error) return error;
  if (error instanceof MetadataError) return s3Error(METADATA_ERRORS[error.code] ?? error.code);
  return s3Error('InternalError');
}

/** Answers with the S3 error (or cuts the connection); returns its code. */
function sendError(req: IncomingMessage, res: ServerResponse, requestId: string, op: Operation | undefined, error: unknown): string {
  const s3 = toS3Error(error);
  if (s3.status >= 500) {
    log('error', 'request failed', {
      requestId,
      operation: op?.name,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      replicas: error instanceof ReplicasExhaustedError ? error.causes.map(String) : undefined,
    });
  }
  if (res.headersSent) {
    // The status line is gone: cutting the connection is the only honest signal left.
    res.destroy();
    return s3.code;
  }
  // A request whose body we did not read to the end cannot leave the connection reusable.
  if (!req.complete) res.setHeader('Connection', 'close');
  if (s3.status === 304 || req.method === 'HEAD') {
    res.writeHead(s3.status, { 'Content-Length': 0 });
    res.end();
    return s3.code;
  }
  const resource = op && 'bucket' in op ? `/${op.bucket}${'key' in op ? `/${op.key}` : ''}` : '/';
  const body = Buffer.from(
    xmlDocument('Error', { Code: s3.code, Message: s3.message, ...s3.details, Resource: resource, RequestId: requestId }, false),
  );
  if (s3.code === 'InvalidRange' && s3.details.ActualObjectSize) res.setHeader('Content-Range', `bytes */${s3.details.ActualObjectSize}`);
  res.writeHead(s3.status, { 'Content-Type': 'application/xml', 'Content-Length': body.length });
  res.end(body);
  return s3.code;
}
