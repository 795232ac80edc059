// The node:http front: request id, routing, authentication, the operation's handler, and
// S3 XML errors. Nothing here touches payload bytes.
import { createServer, ServerResponse, type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { authenticate } from '../auth/authenticate.js';
import { headerMap, type RequestParts } from '../auth/sigv4.js';
import { ReplicasExhaustedError } from '../pipeline/object-reader.js';
import type { ConnectionLimits, GatewayServices, Handler, HandlerTable, RequestContext } from './context.js';
import { s3Error, toS3Error } from './errors.js';
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
  const limits = services.config.limits;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const bodies = new BodyRateGuard(limits);
  const accept = (expectsContinue: boolean) => (req: IncomingMessage, res: S3Response) => {
    if (inFlight >= limits.maxRequests) {
      refuse(req, res, 'SlowDown', 'Please reduce your request rate.');
      return;
    }
    inFlight++;
    bodies.watch(req, res);
    void handleRequest(req, res, services, expectsContinue, observe, requestClosed);
  };
  const requestClosed = (): void => {
    if (--inFlight === 0) drained?.();
  };
  const server = createServer<typeof IncomingMessage, typeof S3Response>(
    {
      ServerResponse: S3Response,
      headersTimeout: limits.headersTimeoutMs,
      // No limit on a whole request: a 5 GiB upload may take long; slow bodies are caught by rate.
      requestTimeout: 0,
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
      // A connection waiting for its next request is a silent one too. Node's 5 s default made
      // clients that reuse a socket idle for about 5 s race the server closing it (socket hang up).
      keepAliveTimeout: limits.idleTimeoutMs,
    },
    accept(false),
  );
  server.timeout = limits.idleTimeoutMs;
  // Node drops header fields past maxHeadersCount silently: one more than allowed is kept so
  // that a request with too many is refused rather than read with some missing.
  server.maxHeadersCount = MAX_HEADER_FIELDS + 1;
  // Expect: 100-continue: the client waits with the body until the request is authenticated.
  server.on('checkContinue', accept(true));
  // A malformed request line or header block: a clean 400, never a crash.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (socket.writable && !socket.writableEnded) socket.end(parserRefusal(error));
    else socket.destroy();
  });
  return {
    server,
    inFlight: () => inFlight,
    async shutdown() {
      bodies.stop();
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

// Unique per gateway start (a random prefix) and per request (a counter), 16 hex digits as
// AWS's are, without a call into OpenSSL for every request.
const REQUEST_ID_PREFIX = randomBytes(4).toString('hex').toUpperCase();
let requestCount = 0;

function newRequestId(): string {
  requestCount = (requestCount + 1) % 2 ** 32;
  return REQUEST_ID_PREFIX + requestCount.toString(16).toUpperCase().padStart(8, '0');
}

/**
 * A response born with its request id, whose status line always carries it (and Server).
 * Added in writeHead rather than with setHeader up front: once any header is set, node's
 * writeHead sets the handler's headers one by one too (its slow path), which cost about 4% of
 * a small GET's CPU.
 */
export class S3Response<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  readonly requestId = newRequestId();
  private declaredLength: number | undefined;

  /** The body length the response declared (0 if none), whichever way its headers were given. */
  contentLength(): number {
    return this.declaredLength ?? (Number(this.getHeader('content-length') ?? 0) || 0);
  }

  override writeHead(statusCode: number, reason?: string | OutgoingHttpHeaders | OutgoingHttpHeader[], headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this {
    if (typeof reason === 'string') return super.writeHead(statusCode, reason, this.withIdentity(headers));
    return super.writeHead(statusCode, this.withIdentity(reason ?? headers));
  }

  private withIdentity(headers: OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined): OutgoingHttpHeaders | OutgoingHttpHeader[] {
    if (Array.isArray(headers)) return ['x-amz-request-id', this.requestId, 'x-amz-id-2', this.requestId, 'Server', 's3g', ...headers];
    const length = headers?.['Content-Length'] ?? headers?.['content-length'];
    if (length !== undefined) this.declaredLength = Number(length) || 0;
    return { 'x-amz-request-id': this.requestId, 'x-amz-id-2': this.requestId, Server: 's3g', ...headers };
  }
}

/** The whole answer, with an S3 error document, to bytes node's HTTP parser refused (no request object exists). */
function parserRefusal(error: NodeJS.ErrnoException): string {
  const [status, code, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? ['431 Request Header Fields Too Large', 'RequestHeaderSectionTooLarge', 'Your request header section exceeds the maximum allowed size.']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['408 Request Timeout', 'RequestTimeout', 'Your socket connection to the server was not read from or written to within the timeout period.']
        : ['400 Bad Request', 'BadRequest', 'An error occurred when parsing the HTTP request.'];
  const requestId = newRequestId();
  const body = xmlDocument('Error', { Code: code, Message: message, RequestId: requestId }, false);
  return `HTTP/1.1 ${status}\r\nx-amz-request-id: ${requestId}\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** An S3 error sent before the request is handled at all; the connection is not reused. */
function refuse(req: IncomingMessage, res: S3Response, code: string, message: string): void {
  const error = s3Error(code, message);
  const body = Buffer.from(xmlDocument('Error', { Code: error.code, Message: error.message, RequestId: res.requestId }, false));
  res.writeHead(error.status, { Connection: 'close', 'Content-Type': 'application/xml', 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Cuts off request bodies that trickle (one byte a second holds a socket and a request slot
 * forever): each window, a body must bring at least minBodyBytesPerSecond × window bytes.
 * One timer for all requests, not one per request.
 */
class BodyRateGuard {
  private readonly watched = new Map<IncomingMessage, { res: S3Response; bytes: number; since: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly limits: ConnectionLimits) {
    this.timer = setInterval(() => this.sweep(), Math.max(100, limits.bodyRateWindowMs / 4));
    this.timer.unref();
  }

  watch(req: IncomingMessage, res: S3Response): void {
    if (req.complete || (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined)) return;
    this.watched.set(req, { res, bytes: req.socket.bytesRead, since: Date.now() });
    const forget = (): void => void this.watched.delete(req);
    req.once('end', forget);
    res.once('close', forget);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sweep(): void {
    const minimum = (this.limits.minBodyBytesPerSecond * this.limits.bodyRateWindowMs) / 1000;
    const now = Date.now();
    for (const [req, entry] of this.watched) {
      // Every body gets at least one whole window before it is judged.
      if (now - entry.since < this.limits.bodyRateWindowMs) continue;
      const read = req.socket.bytesRead;
      if (read - entry.bytes >= minimum || req.complete) {
        entry.bytes = read;
        entry.since = now;
        continue;
      }
      this.watched.delete(req);
      if (!entry.res.headersSent) refuse(req, entry.res, 'RequestTimeout', 'Your socket connection to the server was not read from or written to within the timeout period.');
      // Whatever the handler was waiting for ends with the socket.
      setImmediate(() => req.socket.destroy());
    }
  }
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

/** Header fields a request may carry (AWS signs with a handful; a browser sends about 20). */
const MAX_HEADER_FIELDS = 200;

async function handleRequest(
  req: IncomingMessage,
  res: S3Response,
  services: GatewayServices,
  expectsContinue: boolean,
  observe: RequestObserver | undefined,
  closed: () => void,
): Promise<void> {
  const requestId = res.requestId;
  let op: Operation | undefined;
  let userName: string | undefined;
  let errorCode: string | undefined;
  const startedAt = observe ? performance.now() : 0;
  const { bytesRead: readBefore, bytesWritten: writtenBefore } = req.socket;
  // One listener for all that happens when the response closes (close comes once: no `once` wrapper).
  res.on('close', () => {
    closed();
    observe?.(req, res, {
      requestId,
      operation: op?.name,
      bucket: op && 'bucket' in op ? op.bucket : undefined,
      key: op && 'key' in op ? op.key : undefined,
      user: userName,
      errorCode,
      contentLength: res.contentLength(),
      startedAt,
      readBefore,
      writtenBefore,
    });
  });
  try {
    if (req.rawHeaders.length / 2 > MAX_HEADER_FIELDS) throw s3Error('RequestHeaderSectionTooLarge', `Your request has more than ${MAX_HEADER_FIELDS} header fields.`);
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
