// Raw HTTP requests signed by AWS's own signer (@smithy/signature-v4), for cases the SDKs
// won't produce: a wrong payload hash, a body streamed from a generator, a corrupted read.
import { request } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { sdkClient } from './clients.js';
import { ACCESS_KEY, SECRET_KEY, type TestServer } from './server.js';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The connection broke before the declared body arrived. */
  aborted: boolean;
}

export function signer(credentials = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY }): SignatureV4 {
  return new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false });
}

export interface RawRequest {
  method: string;
  /** Already percent-encoded path, e.g. /bucket/key. */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer | AsyncIterable<Uint8Array>;
  /** x-amz-content-sha256 as signed; defaults to UNSIGNED-PAYLOAD. */
  payloadHash?: string;
  /** When the request claims to be signed (default now). */
  signingDate?: Date;
}

export async function signedRequest(server: TestServer, req: RawRequest, sig = signer()): Promise<RawResponse> {
  const headers: Record<string, string> = {
    host: `127.0.0.1:${server.port}`,
    'x-amz-content-sha256': req.payloadHash ?? 'UNSIGNED-PAYLOAD',
    ...req.headers,
  };
  const signed = await sig.sign(new HttpRequest({ method: req.method, protocol: 'http:', hostname: '127.0.0.1', port: server.port, path: req.path, query: req.query ?? {}, headers }), { signingDate: req.signingDate });
  const qs = new URLSearchParams(req.query ?? {}).toString();
  return send(server, req.method, req.path + (qs ? `?${qs}` : ''), signed.headers as Record<string, string>, req.body);
}

/** Path and query of a presigned GET or PUT made by the AWS SDK's presigner. */
export async function presignedPath(server: TestServer, method: 'GET' | 'PUT', bucket: string, key: string, expiresIn = 300): Promise<string> {
  const command = method === 'GET' ? new GetObjectCommand({ Bucket: bucket, Key: key }) : new PutObjectCommand({ Bucket: bucket, Key: key });
  const url = await getSignedUrl(sdkClient(server), command, { expiresIn });
  return url.slice(server.url.length);
}

export function send(
  server: TestServer,
  method: string,
  pathAndQuery: string,
  headers: Record<string, string>,
  body?: Buffer | AsyncIterable<Uint8Array>,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path: pathAndQuery, headers }, (res) => {
      const chunks: Buffer[] = [];
      let aborted = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      res.on('close', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), aborted: aborted || !res.complete }),
      );
    });
    req.on('error', reject);
    void (async () => {
      try {
        if (body === undefined) req.end();
        else if (Buffer.isBuffer(body)) req.end(body);
        else {
          for await (const piece of body) if (!req.write(piece)) await new Promise((r) => req.once('drain', r));
          req.end();
        }
      } catch (error) {
        req.destroy(error as Error);
      }
    })();
  });
}

/** `<Code>` of an S3 XML error body. */
export function errorCode(response: RawResponse): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(response.body.toString())?.[1];
}

/** `size` bytes of a repeating random pattern, streamed without holding them. */
export async function* patternBody(size: number, pattern: Buffer): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < size; sent += pattern.length) yield pattern.subarray(0, Math.min(pattern.length, size - sent));
}
