// The one place that turns an HTTP request into a typed S3 operation, from one table
// (as Garage's router.rs): method, what the path addresses, a sub-resource query word or
// a header. The handler and the permission an operation needs follow from its name.
import { s3Error } from './errors.js';
import { safeDecode } from '../auth/uri-encode.js';

type Target = 'service' | 'bucket' | 'object';

interface Route {
  method: string;
  target: Target;
  /** A query parameter that must be present (a sub-resource such as `uploads`). */
  query?: string;
  /** A query parameter with a required value (`list-type=2`). */
  queryValue?: [string, string];
  /** A header that must be present (`x-amz-copy-source`). */
  header?: string;
  name: string;
}

// Most specific first: the first matching row wins.
const ROUTES = [
  { method: 'GET', target: 'service', name: 'ListBuckets' },

  { method: 'GET', target: 'bucket', query: 'location', name: 'GetBucketLocation' },
  { method: 'GET', target: 'bucket', query: 'acl', name: 'GetBucketAcl' },
  { method: 'GET', target: 'bucket', query: 'uploads', name: 'ListMultipartUploads' },
  { method: 'GET', target: 'bucket', query: 'versioning', name: 'GetBucketVersioning' },
  { method: 'GET', target: 'bucket', query: 'policy', name: 'GetBucketPolicy' },
  { method: 'GET', target: 'bucket', query: 'cors', name: 'GetBucketCors' },
  { method: 'GET', target: 'bucket', query: 'lifecycle', name: 'GetBucketLifecycleConfiguration' },
  { method: 'GET', target: 'bucket', query: 'website', name: 'GetBucketWebsite' },
  { method: 'GET', target: 'bucket', query: 'encryption', name: 'GetBucketEncryption' },
  { method: 'GET', target: 'bucket', query: 'replication', name: 'GetBucketReplication' },
  { method: 'GET', target: 'bucket', query: 'object-lock', name: 'GetObjectLockConfiguration' },
  { method: 'GET', target: 'bucket', query: 'tagging', name: 'GetBucketTagging' },
  { method: 'GET', target: 'bucket', queryValue: ['list-type', '2'], name: 'ListObjectsV2' },
  { method: 'GET', target: 'bucket', name: 'ListObjects' },
  { method: 'HEAD', target: 'bucket', name: 'HeadBucket' },
  { method: 'PUT', target: 'bucket', name: 'CreateBucket' },
  { method: 'DELETE', target: 'bucket', name: 'DeleteBucket' },
  { method: 'POST', target: 'bucket', query: 'delete', name: 'DeleteObjects' },

  { method: 'GET', target: 'object', query: 'uploadId', name: 'ListParts' },
  { method: 'GET', target: 'object', query: 'tagging', name: 'GetObjectTagging' },
  { method: 'GET', target: 'object', query: 'acl', name: 'GetObjectAcl' },
  { method: 'GET', target: 'object', name: 'GetObject' },
  { method: 'HEAD', target: 'object', name: 'HeadObject' },
  { method: 'PUT', target: 'object', query: 'partNumber', header: 'x-amz-copy-source', name: 'UploadPartCopy' },
  { method: 'PUT', target: 'object', query: 'partNumber', name: 'UploadPart' },
  { method: 'PUT', target: 'object', query: 'tagging', name: 'PutObjectTagging' },
  { method: 'PUT', target: 'object', header: 'x-amz-copy-source', name: 'CopyObject' },
  { method: 'PUT', target: 'object', name: 'PutObject' },
  { method: 'DELETE', target: 'object', query: 'uploadId', name: 'AbortMultipartUpload' },
  { method: 'DELETE', target: 'object', query: 'tagging', name: 'DeleteObjectTagging' },
  { method: 'DELETE', target: 'object', name: 'DeleteObject' },
  { method: 'POST', target: 'object', query: 'uploads', name: 'CreateMultipartUpload' },
  { method: 'POST', target: 'object', query: 'uploadId', name: 'CompleteMultipartUpload' },
] as const satisfies readonly Route[];

type RouteRow = (typeof ROUTES)[number];
export type OperationName = RouteRow['name'];

type NamesOf<T extends Target> = Extract<RouteRow, { target: T }>['name'];

/** One variant per operation name; bucket and key present exactly when the route addresses them. */
export type OperationOf<N extends OperationName> = N extends NamesOf<'service'>
  ? { name: N }
  : N extends NamesOf<'bucket'>
    ? { name: N; bucket: string }
    : { name: N; bucket: string; key: string };

export type Operation = OperationOf<OperationName>;

/**
 * Sub-resources S3 defines. A request naming one that no row above handles gets 501,
 * never a listing or a plain GET by accident (Ozone's mistake).
 */
const SUBRESOURCES = new Set([
  'accelerate', 'acl', 'analytics', 'attributes', 'cors', 'delete', 'encryption', 'intelligent-tiering',
  'inventory', 'legal-hold', 'lifecycle', 'location', 'logging', 'metadataTable', 'metrics', 'notification',
  'object-lock', 'ownershipControls', 'policy', 'policyStatus', 'publicAccessBlock', 'replication',
  'requestPayment', 'restore', 'retention', 'select', 'session', 'tagging', 'torrent', 'uploadId', 'uploads',
  'versionId', 'versioning', 'versions', 'website', 'renameObject',
]);

export interface RouteInput {
  method: string;
  /** Raw path, still percent-encoded. */
  rawPath: string;
  query: URLSearchParams;
  host: string | undefined;
  hasHeader: (name: string) => boolean;
}

export const MAX_KEY_BYTES = 1024;

/** Splits `bucket.<domain>` hosts (virtual-hosted style) from path-style addressing. */
function addressed(input: RouteInput, domains: readonly string[]): { bucket?: string; key?: string } {
  const path = safeDecode(input.rawPath);
  if (path === undefined || path.includes('\0')) throw s3Error('InvalidURI', 'Couldn\'t parse the specified URI.');
  const hostname = (input.host ?? '').replace(/:\d+$/, '').toLowerCase();
  const domain = domains.find((d) => hostname.endsWith('.' + d));
  if (domain) {
    const bucket = hostname.slice(0, -(domain.length + 1));
    const key = path.slice(1);
    return key ? { bucket, key } : { bucket };
  }
  const rest = path.slice(1);
  const slash = rest.indexOf('/');
  if (!rest) return {};
  if (slash < 0) return { bucket: rest };
  const key = rest.slice(slash + 1);
  return key ? { bucket: rest.slice(0, slash), key } : { bucket: rest.slice(0, slash) };
}

export function route(input: RouteInput, domains: readonly string[] = []): Operation {
  const { bucket, key } = addressed(input, domains);
  const target: Target = key !== undefined ? 'object' : bucket !== undefined ? 'bucket' : 'service';
  if (key !== undefined && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw s3Error('KeyTooLongError', 'Your key is too long');
  }
  const row = ROUTES.find(
    (r: Route) =>
      r.method === input.method &&
      r.target === target &&
      (!r.query || input.query.has(r.query)) &&
      (!r.queryValue || input.query.get(r.queryValue[0]) === r.queryValue[1]) &&
      (!r.header || input.hasHeader(r.header)),
  );
  const unhandled = [...input.query.keys()].find((word) => SUBRESOURCES.has(word) && !(row as Route | undefined)?.query?.includes(word));
  if (unhandled && !(row && isParameterOf(row.name, unhandled))) {
    throw s3Error('NotImplemented', `${input.method} ?${unhandled} is not implemented by s3g`);
  }
  if (!row) throw s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  if (target === 'object') return { name: row.name, bucket: bucket!, key: key! } as Operation;
  if (target === 'bucket') return { name: row.name, bucket: bucket! } as Operation;
  return { name: row.name } as Operation;
}

/** Query words that are parameters, not sub-resources, of a matched operation. */
function isParameterOf(name: OperationName, word: string): boolean {
  return (word === 'uploadId' && (name === 'UploadPart' || name === 'UploadPartCopy')) || (word === 'versionId' && name.endsWith('Object'));
}
