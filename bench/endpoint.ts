// An HTTP endpoint under test, and how to authorise requests to it. The S3 servers (s3g,
// s3rver) get presigned URLs or SigV4 header signatures made by AWS's own signers; the bare
// baselines take the same requests unsigned.
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface Endpoint {
  /** Column it reports to: the server under test, its baseline, or the peer. */
  name: string;
  url: string;
  port: number;
  /** Absent for the bare baselines, which take unsigned requests. */
  credentials?: Credentials;
  /** The server's one process, whose CPU time the small workloads count (cpu.ts). */
  pid?: number;
}

export type ObjectMethod = 'GET' | 'PUT' | 'HEAD';

/** Presigned URLs live this long: longer than any workload. */
const PRESIGN_EXPIRY_S = 6 * 3600;

export function endpointAt(name: string, url: string, credentials?: Credentials, pid?: number): Endpoint {
  return { name, url, port: Number(new URL(url).port), credentials, pid };
}

/**
 * An S3 client for the endpoint. `sdkDefaults` keeps the SDK's checksum behaviour (for a
 * PUT of a stream: aws-chunked with a CRC32 trailer); otherwise the payload is signed whole.
 */
export function s3Client(endpoint: Endpoint, sdkDefaults = false): S3Client {
  if (!endpoint.credentials) throw new Error(`${endpoint.name} is not an S3 endpoint`);
  return new S3Client({
    endpoint: endpoint.url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: endpoint.credentials,
    maxAttempts: 1,
    ...(sdkDefaults ? {} : { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }),
  });
}

const presigners = new WeakMap<Endpoint, S3Client>();

/** Path and query for one object request: presigned on S3 endpoints, plain on baselines. */
export async function objectPath(endpoint: Endpoint, method: ObjectMethod, bucket: string, key: string): Promise<string> {
  const plain = `/${bucket}/${encodeURIComponent(key)}`;
  if (!endpoint.credentials) return plain;
  const input = { Bucket: bucket, Key: key };
  const command =
    method === 'GET' ? new GetObjectCommand(input) : method === 'HEAD' ? new HeadObjectCommand(input) : new PutObjectCommand(input);
  let client = presigners.get(endpoint);
  if (!client) presigners.set(endpoint, (client = s3Client(endpoint)));
  const url = await getSignedUrl(client, command, { expiresIn: PRESIGN_EXPIRY_S });
  return url.slice(endpoint.url.length);
}

/**
 * Headers of a request signed with SigV4 in the Authorization header. `payloadHash` is the
 * x-amz-content-sha256 value (hex SHA-256 of the body, or UNSIGNED-PAYLOAD).
 */
export async function signedHeaders(
  endpoint: Endpoint,
  request: { method: string; path: string; query?: Record<string, string>; headers?: Record<string, string>; payloadHash: string },
): Promise<Record<string, string>> {
  const headers: Record<string, string> = { host: `127.0.0.1:${endpoint.port}`, ...request.headers };
  if (!endpoint.credentials) return headers;
  const signer = new SignatureV4({
    credentials: endpoint.credentials,
    region: 'us-east-1',
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });
  headers['x-amz-content-sha256'] = request.payloadHash;
  const signed = await signer.sign(
    new HttpRequest({ method: request.method, protocol: 'http:', hostname: '127.0.0.1', port: endpoint.port, path: request.path, query: request.query ?? {}, headers }),
  );
  return signed.headers as Record<string, string>;
}

export async function createBucket(endpoint: Endpoint, bucket: string): Promise<void> {
  if (!endpoint.credentials) return;
  const client = s3Client(endpoint);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    // s3rver answers BucketAlreadyExists for a bucket of its only user.
    const name = (error as { name?: string }).name;
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw error;
  } finally {
    client.destroy();
  }
}
