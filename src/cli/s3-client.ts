// A minimal S3 client for the admin CLI (bulk import): SigV4 header signing with the
// gateway's own signing code, UNSIGNED-PAYLOAD bodies streamed from disk, no SDK.
import { createHash } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ALGORITHM, computeSignature, type SignedRequest } from '../auth/sigv4.js';
import { awsUriEncode } from '../auth/uri-encode.js';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface S3Request {
  method: string;
  bucket: string;
  key?: string;
  /** Raw query string without '?', e.g. `partNumber=1&uploadId=…` (values URI-encoded). */
  query?: string;
  headers?: Record<string, string>;
  /** A small body, signed by its SHA-256. */
  body?: Buffer;
  /** A streamed body of `length` bytes, sent UNSIGNED-PAYLOAD. */
  stream?: Readable;
  length?: number;
}

export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'S3Error';
  }
}

export class S3Client {
  constructor(
    private readonly endpoint: URL,
    private readonly credentials: Credentials,
    private readonly region = 'us-east-1',
  ) {}

  async send(r: S3Request): Promise<S3Response> {
    const rawPath = awsUriEncode(`/${r.bucket}${r.key !== undefined ? `/${r.key}` : ''}`, true);
    const rawQuery = r.query ?? '';
    const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const payloadHash = r.stream ? 'UNSIGNED-PAYLOAD' : createHash('sha256').update(r.body ?? Buffer.alloc(0)).digest('hex');
    const headers: Record<string, string> = {
      ...r.headers,
      host: this.endpoint.host,
      'x-amz-date': amzDate,
      'x-amz-content-sha256': payloadHash,
      'content-length': String(r.stream ? (r.length ?? 0) : (r.body?.length ?? 0)),
    };
    const signedHeaders = ['host', 'x-amz-content-sha256', 'x-amz-date'];
    const signed: SignedRequest = {
      credential: { accessKeyId: this.credentials.accessKeyId, date: amzDate.slice(0, 8), region: this.region, service: 's3' },
      signedHeaders,
      signature: '',
      amzDate,
      payloadHash,
      presigned: false,
    };
    const parts = { method: r.method, rawPath, rawQuery, headers: new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]])) };
    const signature = computeSignature(parts, signed, this.credentials.secretAccessKey);
    const c = signed.credential;
    headers.authorization = `${ALGORITHM} Credential=${c.accessKeyId}/${c.date}/${c.region}/s3/aws4_request, SignedHeaders=${signedHeaders.join(';')}, Signature=${signature}`;

    const send = this.endpoint.protocol === 'https:' ? httpsRequest : request;
    return new Promise<S3Response>((resolve, reject) => {
      const req = send(new URL(rawPath + (rawQuery ? `?${rawQuery}` : ''), this.endpoint), { method: r.method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      if (r.stream) pipeline(r.stream, req).catch(reject);
      else req.end(r.body);
    });
  }

  /** send(), throwing an S3Error for any status outside 2xx. */
  async call(r: S3Request): Promise<S3Response> {
    const res = await this.send(r);
    if (res.status >= 200 && res.status < 300) return res;
    const text = res.body.toString('utf8');
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `HTTP${res.status}`;
    const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? text.slice(0, 200);
    throw new S3Error(res.status, code, `${r.method} ${r.bucket}${r.key !== undefined ? `/${r.key}` : ''}: ${res.status} ${code}: ${message}`);
  }
}
