// What a handler receives: the typed operation, the authenticated user and the parts of
// the gateway it may use.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BucketLayout, MetadataStore, User } from '../metadata/store.js';
import type { SignedRequest } from '../auth/sigv4.js';
import type { HashPool } from '../hashing/pool.js';
import type { ObjectWriter, StorageConfig } from '../pipeline/object-writer.js';
import type { ObjectReader } from '../pipeline/object-reader.js';
import type { OperationName, OperationOf } from './router.js';

export interface GatewayConfig {
  /** Virtual-hosted-style domains: `bucket.<domain>` addresses `bucket`. */
  domains: string[];
  region: string;
  storage: StorageConfig;
  /** Layout of buckets created by CreateBucket. */
  defaultBucketLayout: BucketLayout;
  /** Largest single PUT (AWS: 5 GiB). */
  maxPutSize: number;
  /** How long in-flight requests may finish after SIGTERM. */
  shutdownGraceMs: number;
  limits: ConnectionLimits;
}

/** What a client may cost the gateway before it is refused or cut off. */
export interface ConnectionLimits {
  /** Requests served at once; beyond that, 503 SlowDown. */
  maxRequests: number;
  /** The request line and headers must arrive within this (slowloris). */
  headersTimeoutMs: number;
  /** A connection silent this long is closed. */
  idleTimeoutMs: number;
  /** A body arriving slower than this, over a window of bodyRateWindowMs, is cut off with RequestTimeout. */
  minBodyBytesPerSecond: number;
  bodyRateWindowMs: number;
}

export interface GatewayServices {
  store: MetadataStore;
  pool: HashPool;
  writer: ObjectWriter;
  reader: ObjectReader;
  config: GatewayConfig;
}

interface RequestBase {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  query: URLSearchParams;
  headers: Map<string, string[]>;
  user: User;
  signed: SignedRequest;
  secretAccessKey: string;
}

export type RequestContext<N extends OperationName = OperationName> = RequestBase & { op: OperationOf<N> };

export type Handler<N extends OperationName> = (ctx: RequestContext<N>, services: GatewayServices) => Promise<void>;

export type HandlerTable = { [N in OperationName]?: Handler<N> };

export function header(ctx: RequestContext, name: string): string | undefined {
  return ctx.headers.get(name)?.[0];
}
