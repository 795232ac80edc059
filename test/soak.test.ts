// Soak: a few thousand hostile requests (malformed and entity-laden XML, broken aws-chunked
// framing, bad percent-encoding, contradictory headers, `..` and NUL in keys, unsatisfiable
// ranges, invalid part numbers, bad signatures, slow bodies, malformed HTTP) mixed with normal
// PUT/GET traffic. Afterwards every normal object reads back intact, the process is up, its heap
// is back near where it started, and every hostile request got a 4xx with an S3 error code.
import t from 'tap';
import { connect } from 'node:net';
import { createHash } from 'node:crypto';
import { disposeServer, startServer } from './helpers/server.js';
import { errorCode, send, signedRequest, signer, type RawRequest, type RawResponse } from './helpers/raw.js';

const server = await startServer({
  args: ['--min-body-rate', '512', '--body-rate-window', '2', '--headers-timeout', '5', '--hash-threads', '2'],
  env: { S3G_NODE_ARGS: '--expose-gc' },
});
t.teardown(() => disposeServer(server));

/** A seeded generator, so that a failing mix can be replayed. */
let seed = 0x5eed;
const random = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const md5 = (body: Buffer | string): string => createHash('md5').update(body).digest('base64');
const withBody = (req: RawRequest, body: string | Buffer, headers: Record<string, string> = {}): RawRequest => {
  const bytes = Buffer.from(body);
  return { ...req, body: bytes, headers: { 'content-length': String(bytes.length), ...headers, ...req.headers } };
};

/** One HTTP exchange written byte for byte (what no client library will send); resolves with the answer. */
function rawExchange(text: string): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const answer = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
      resolve({ status, headers: {}, body: Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1'), aborted: false });
    });
    socket.end(text);
  });
}

async function stats(): Promise<{ heapUsedBytes: number }> {
  await fetch(`${server.adminUrl}/stats?gc=1`);
  return (await fetch(`${server.adminUrl}/stats?gc=1`)).json() as Promise<{ heapUsedBytes: number }>;
}

// Setup: a bucket, an object to read ranges of, a multipart upload to aim part numbers and XML at.
const must = async (response: Promise<RawResponse>): Promise<string> => {
  const r = await response;
  if (r.status !== 200) throw new Error(`setup: ${r.status} ${r.body.toString()}`);
  return r.body.toString();
};
await must(signedRequest(server, { method: 'PUT', path: '/soak' }));
await must(signedRequest(server, withBody({ method: 'PUT', path: '/soak/ranged' }, 'x'.repeat(1000))));
const uploadId = /<UploadId>([^<]+)</.exec(await must(signedRequest(server, { method: 'POST', path: '/soak/mp', query: { uploads: '' } })))![1]!;

const host = `127.0.0.1:${server.port}`;
const bomb = `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "${'a'.repeat(100)}"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>`;

/** Hostile requests by kind; each returns the answer. `raw` kinds are refused by the HTTP parser. */
const hostile: Record<string, () => Promise<RawResponse>> = {
  'malformed XML (DeleteObjects)': () => {
    const body = pick(['<Delete><Object><Key>a</Key></Object>', '<<<>>>', '<Delete><Object><Key>a</Object></Key></Delete>', '\u0000\u0001', '<Delete>'.repeat(500), '']);
    return signedRequest(server, withBody({ method: 'POST', path: '/soak', query: { delete: '' } }, body, { 'content-md5': md5(body) }));
  },
  'DOCTYPE and entities (DeleteObjects)': () => {
    const body = `${bomb}<Delete><Object><Key>&b;</Key></Object></Delete>`;
    return signedRequest(server, withBody({ method: 'POST', path: '/soak', query: { delete: '' } }, body, { 'content-md5': md5(body) }));
  },
  'malformed or DOCTYPE XML (CompleteMultipartUpload)': () => {
    const body = pick([`${bomb}<CompleteMultipartUpload><Part><PartNumber>&b;</PartNumber></Part></CompleteMultipartUpload>`, '<CompleteMultipartUpload><Part>', '<x/>', '<CompleteMultipartUpload></CompleteMultipartUpload>']);
    return signedRequest(server, withBody({ method: 'POST', path: '/soak/mp', query: { uploadId } }, body));
  },
  'broken aws-chunked framing': () => {
    const body = pick(['zz\r\nhello\r\n0\r\n\r\n', '5\r\nhel', 'ffffffffffffffff\r\nhello\r\n0\r\n\r\n', '5\r\nhelloXX0\r\n\r\n', '-5\r\nhello\r\n0\r\n\r\n', '5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n', '\r\n\r\n']);
    return signedRequest(server, withBody({ method: 'PUT', path: `/soak/chunked-${Math.floor(random() * 50)}`, payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' }, body, {
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '5',
    }));
  },
  'bad chunk signatures': () => {
    const body = `5;chunk-signature=${'0'.repeat(64)}\r\nhello\r\n0;chunk-signature=${'1'.repeat(64)}\r\n\r\n`;
    return signedRequest(server, withBody({ method: 'PUT', path: '/soak/signed-chunks', payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' }, body, {
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '5',
    }));
  },
  'bad percent-encoding': () => signedRequest(server, { method: pick(['GET', 'PUT', 'DELETE']), path: pick(['/soak/%zz', '/soak/%E0%A4', '/soak/a%', '/soak/%C0%AF', '/%ff%fe/x']) }),
  '.. and NUL in keys': () =>
    signedRequest(server, pick<RawRequest>([
      { method: 'GET', path: '/soak/../../../etc/passwd' },
      { method: 'GET', path: '/soak/..%2F..%2Fetc%2Fpasswd' },
      { method: 'PUT', path: '/soak/a%00b' },
      { method: 'GET', path: '/soak/%00' },
      { method: 'GET', path: '/soak/./../soak/ranged%00' },
    ])),
  'unsatisfiable ranges': () =>
    signedRequest(server, { method: 'GET', path: '/soak/ranged', headers: { range: pick(['bytes=1000-', 'bytes=99999999999999999999-', 'bytes=5000-6000', 'bytes=-0', 'bytes=1001-2000']) } }),
  'invalid part numbers': () => {
    const partNumber = pick(['0', '10001', '-1', 'abc', '1.5', '99999999999999999999', '']);
    return random() < 0.5
      ? signedRequest(server, withBody({ method: 'PUT', path: '/soak/mp', query: { partNumber, uploadId } }, 'part'))
      : signedRequest(server, { method: 'GET', path: '/soak/ranged', query: { partNumber } });
  },
  'contradictory or invalid headers': () =>
    signedRequest(server, pick<RawRequest>([
      withBody({ method: 'PUT', path: '/soak/digest' }, 'body', { 'content-md5': md5('other') }),
      withBody({ method: 'PUT', path: '/soak/digest' }, 'body', { 'content-md5': 'not base64!' }),
      withBody({ method: 'PUT', path: '/soak/digest', payloadHash: 'not-a-hash' }, 'body'),
      withBody({ method: 'PUT', path: '/soak/digest', payloadHash: 'a'.repeat(64) }, 'body'),
      withBody({ method: 'PUT', path: '/soak/digest' }, 'body', { 'x-amz-checksum-crc32': 'AAAAAA==' }),
      { method: 'PUT', path: '/soak/copy', headers: { 'x-amz-copy-source': '/soak/missing-source' } },
      { method: 'PUT', path: '/soak/copy', headers: { 'x-amz-copy-source': '/soak/ranged', 'x-amz-metadata-directive': 'SIDEWAYS' } },
      { method: 'PUT', path: '/soak/copy', headers: { 'x-amz-copy-source': '%' } },
      { method: 'GET', path: '/soak/ranged', headers: { 'if-match': '"nope"' } },
      { method: 'GET', path: '/soak', query: { 'max-keys': '-5' } },
      { method: 'GET', path: '/soak', query: { 'list-type': '2', 'continuation-token': '%%%' } },
      { method: 'GET', path: '/soak', query: { 'encoding-type': 'base64' } },
      { method: 'PUT', path: '/Bad_Bucket..Name' },
      { method: 'PUT', path: `/soak/${'k'.repeat(1025)}` },
      { method: 'PUT', path: '/soak/no-length', headers: { 'transfer-encoding': 'chunked' }, body: Buffer.from('') },
    ])),
  'invalid tagging, metadata and part lists': () =>
    signedRequest(server, pick<RawRequest>([
      withBody({ method: 'PUT', path: '/soak/ranged', query: { tagging: '' } }, `${bomb}<Tagging><TagSet><Tag><Key>&b;</Key><Value>v</Value></Tag></TagSet></Tagging>`),
      withBody({ method: 'PUT', path: '/soak/ranged', query: { tagging: '' } }, `<Tagging><TagSet>${'<Tag><Key>k</Key><Value>v</Value></Tag>'.repeat(11)}</TagSet></Tagging>`),
      withBody({ method: 'PUT', path: '/soak/ranged', query: { tagging: '' } }, '<Tagging><TagSet><Tag><Key></Key></Tag></TagSet></Tagging>'),
      withBody({ method: 'PUT', path: '/soak/tagged' }, 'x', { 'x-amz-tagging': '%%%=&&&' }),
      withBody({ method: 'PUT', path: '/soak/tagged' }, 'x', { 'x-amz-meta-big': 'm'.repeat(3000) }),
      withBody({ method: 'POST', path: '/soak/mp', query: { uploadId } }, '<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>'),
      withBody({ method: 'POST', path: '/soak/mp', query: { uploadId } }, '<CompleteMultipartUpload><Part><PartNumber>abc</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>'),
      withBody({ method: 'POST', path: '/soak/mp', query: { uploadId } }, '<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>"x"</ETag></Part><Part><PartNumber>1</PartNumber><ETag>"y"</ETag></Part></CompleteMultipartUpload>'),
      withBody({ method: 'POST', path: '/soak/mp', query: { uploadId: 'no-such-upload' } }, '<CompleteMultipartUpload></CompleteMultipartUpload>'),
      { method: 'PUT', path: '/soak/mp', query: { partNumber: '1', uploadId }, headers: { 'x-amz-copy-source': '/soak/ranged', 'x-amz-copy-source-range': pick(['bytes=5-1', 'bytes=0-99999', 'bits=0-1', 'bytes=-5']) } },
      { method: 'GET', path: '/soak', query: { uploads: '', 'max-uploads': 'many' } },
      { method: 'GET', path: '/soak/mp', query: { uploadId, 'part-number-marker': '-3' } },
      { method: 'GET', path: '/soak/ranged', query: { [`response-${pick(['content-type', 'cache-control', 'content-disposition'])}`]: pick(['x\r\ninjected: 1', 'nul\u0000', 'snow\u2603']) } },
    ])),
  'bad signatures': () => {
    const credentials = pick([{ accessKeyId: 'AKIANOTAKEYATALL0000', secretAccessKey: 'whatever' }, { accessKeyId: 'AKIAS3GTESTADMIN0001', secretAccessKey: 'wrong-secret' }]);
    return signedRequest(server, { method: pick(['GET', 'PUT', 'DELETE']), path: '/soak/ranged' }, signer(credentials));
  },
  'garbage Authorization': () =>
    send(server, 'GET', '/soak/ranged', {
      host,
      'x-amz-date': pick(['20991301T000000Z', 'yesterday', new Date().toISOString().replace(/[-:]|\.\d{3}/g, '')]),
      authorization: pick(['AWS4-HMAC-SHA256 Credential=/', 'AWS4-HMAC-SHA256', 'Basic Zm9vOmJhcg==', `AWS4-HMAC-SHA256 Credential=AKIAS3GTESTADMIN0001/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`, 'AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=, Signature=zz']),
    }),
  'anonymous and expired presigned': () =>
    send(server, 'GET', pick(['/soak/ranged', '/soak/ranged?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x&X-Amz-Expires=999999999', '/soak/ranged?AWSAccessKeyId=x&Expires=1&Signature=y']), { host }),
  'malformed HTTP (raw)': () =>
    rawExchange(pick([
      `PUT /soak/x HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello`,
      `PUT /soak/x HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      `GET /soak/x HTTP/1.1\r\nHost: ${host}\r\nX-Bad\x01Header: y\r\n\r\n`,
      `GET /soak/x HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'b'.repeat(20000)}\r\n\r\n`,
      'GET /a b c HTTP/1.1\r\n\r\n',
      'NONSENSE\r\n\r\n',
    ])),
};
/** Slow bodies take the whole body-rate window each: a handful, not thousands. */
const slowBody = async (): Promise<RawResponse> => {
  const slow = (async function* () {
    for (let i = 0; i < 6; i++) {
      yield Buffer.from('x');
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return signedRequest(server, { method: 'PUT', path: '/soak/slow', body: slow, headers: { 'content-length': '100000' } });
};

const HOSTILE_REQUESTS = 3000;
const NORMAL_OBJECTS = 300;
const written = new Map<string, string>();
const normal = async (i: number): Promise<void> => {
  const size = pick([0, 1, 1000, 70_000, 200_000]);
  const body = Buffer.alloc(size, i % 251);
  body.write(`object ${i}`);
  const key = `normal/${i}`;
  const response = await signedRequest(server, withBody({ method: 'PUT', path: `/soak/${key}` }, body));
  if (response.status !== 200) throw new Error(`normal PUT ${key}: ${response.status} ${response.body.toString()}`);
  written.set(key, md5(body));
  if (i % 3 === 0) {
    const read = await signedRequest(server, { method: 'GET', path: `/soak/${key}` });
    if (md5(read.body) !== written.get(key)) throw new Error(`normal GET ${key} during the soak: wrong body`);
  }
};

type Job = { kind: string; run: () => Promise<RawResponse> } | { kind: 'normal'; run: () => Promise<void> };
function jobs(hostileCount: number, normalCount: number, firstNormal: number): Job[] {
  const kinds = Object.keys(hostile);
  const list: Job[] = [];
  for (let i = 0; i < hostileCount; i++) {
    const kind = kinds[i % kinds.length]!;
    list.push({ kind, run: hostile[kind]! });
  }
  for (let i = 0; i < normalCount; i++) list.push({ kind: 'normal', run: () => normal(firstNormal + i) });
  // Interleaved, the same way on every run.
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

interface Outcome {
  kind: string;
  status: number;
  code?: string;
}
async function runAll(list: Job[], concurrency: number): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < list.length) {
        const job = list[next++]!;
        if (job.kind === 'normal') {
          await (job.run as () => Promise<void>)();
          continue;
        }
        const response = await (job.run as () => Promise<RawResponse>)();
        outcomes.push({ kind: job.kind, status: response.status, code: /<Code>([^<]+)<\/Code>/.exec(response.body.toString())?.[1] });
      }
    }),
  );
  return outcomes;
}

t.test('thousands of hostile requests among normal traffic', async (t) => {
  const started = Date.now();
  // Warm-up: code paths compiled, pools and caches at their working size, before the baseline.
  await runAll(jobs(300, 30, 100_000), 8);
  const before = await stats();

  const slow = Array.from({ length: 5 }, slowBody);
  const outcomes = await runAll(jobs(HOSTILE_REQUESTS, NORMAL_OBJECTS, 0), 16);
  const slowAnswers = await Promise.all(slow);
  t.ok(slowAnswers.every((r) => r.status === 400 && errorCode(r) === 'RequestTimeout'), 'slow bodies: 400 RequestTimeout');

  t.equal(outcomes.length, HOSTILE_REQUESTS);
  const byKind = new Map<string, Map<string, number>>();
  for (const o of outcomes) {
    const counts = byKind.get(o.kind) ?? new Map<string, number>();
    const label = `${o.status} ${o.code ?? '(no code)'}`;
    counts.set(label, (counts.get(label) ?? 0) + 1);
    byKind.set(o.kind, counts);
  }
  for (const [kind, counts] of byKind) {
    const wrong = [...counts].filter(([label]) => !/^4\d\d [A-Za-z0-9]+$/.test(label));
    const seen = [...counts].map(([label, n]) => `${label} ×${n}`).join(', ');
    t.same(wrong, [], `${kind}: every answer a 4xx with an S3 error code (${seen})`);
  }

  // Every normal object reads back intact.
  let intact = 0;
  for (const [key, digest] of written) {
    const read = await signedRequest(server, { method: 'GET', path: `/soak/${key}` });
    if (read.status === 200 && md5(read.body) === digest) intact++;
  }
  t.equal(intact, written.size, `all ${written.size} normal objects read back intact`);
  t.equal(server.proc.exitCode, null, 'the gateway is still up');
  t.equal((await fetch(`${server.adminUrl}/health`)).status, 200);

  const after = await stats();
  const grownMiB = (after.heapUsedBytes - before.heapUsedBytes) / 1024 ** 2;
  t.ok(grownMiB < 16, `heap after the soak within 16 MiB of before (${(before.heapUsedBytes / 1024 ** 2).toFixed(1)} → ${(after.heapUsedBytes / 1024 ** 2).toFixed(1)} MiB)`);
  t.notMatch(server.output(), /"level":"(error|fatal)"/, 'no server fault logged');
  t.comment(`soak took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
