// The server's JSON log lines (stderr): one access line per request, found by the
// x-amz-request-id the client saw, with operation, bucket, key, status, bytes and duration;
// no secret in any line; levels.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACCESS_KEY, SECRET_KEY, disposeServer, startServer, type TestServer } from './helpers/server.js';
import { presignedPath, send, signedRequest } from './helpers/raw.js';
import { redactUrl } from '../src/observability/logger.js';

type LogLine = Record<string, unknown>;

function logLines(server: TestServer): LogLine[] {
  return server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** The access-log lines of one request, waiting a little for the asynchronous log writer. */
async function linesOf(server: TestServer, requestId: string, count = 1): Promise<LogLine[]> {
  for (let i = 0; i < 50; i++) {
    const found = logLines(server).filter((l) => l.requestId === requestId);
    if (found.length >= count) return found;
    await sleep(50);
  }
  return logLines(server).filter((l) => l.requestId === requestId);
}

const server = await startServer();
t.teardown(() => disposeServer(server));

t.test('every line is JSON with a level and a time', async (t) => {
  for (let i = 0; i < 50 && !logLines(server).some((l) => l.msg === 'serving'); i++) await sleep(50);
  const lines = logLines(server);
  for (const line of lines) t.match(line, { level: /^(trace|debug|info|warn|error|fatal)$/, time: /^\d{4}-\d\d-\d\dT/, msg: String });
  t.ok(lines.some((l) => l.msg === 'serving'), 'the start is logged');
  const nonJson = server.output().split('\n').filter((l) => l !== '' && !l.startsWith('{'));
  t.same(nonJson.filter((l) => !/^s3g (admin|ready) /.test(l)), [], 'everything else is the CLI\'s own lines');
});

t.test('a PUT and a GET are found by their x-amz-request-id', async (t) => {
  t.equal((await signedRequest(server, { method: 'PUT', path: '/logbucket' })).status, 200);
  const body = randomBytes(12_345);
  const put = await signedRequest(server, { method: 'PUT', path: '/logbucket/dir/photo%20one.jpg', body, headers: { 'content-length': String(body.length) } });
  t.equal(put.status, 200);
  const putId = String(put.headers['x-amz-request-id']);
  t.match(putId, /^[0-9A-F]{16}$/);
  const [putLine, ...more] = await linesOf(server, putId);
  t.same(more, [], 'one line per request');
  t.match(putLine, {
    level: 'info',
    msg: 'request',
    requestId: putId,
    operation: 'PutObject',
    bucket: 'logbucket',
    key: 'dir/photo one.jpg',
    status: 200,
    bytesIn: 12_345,
    bytesOut: 0,
    durationMs: Number,
    method: 'PUT',
    user: 'admin',
    complete: true,
  });
  t.ok((putLine!.durationMs as number) > 0);

  const get = await signedRequest(server, { method: 'GET', path: '/logbucket/dir/photo%20one.jpg' });
  t.not(get.headers['x-amz-request-id'], putId, 'every request its own id');
  const [getLine] = await linesOf(server, String(get.headers['x-amz-request-id']));
  t.match(getLine, { operation: 'GetObject', status: 200, bytesIn: 0, bytesOut: 12_345, key: 'dir/photo one.jpg' });

  const missing = await signedRequest(server, { method: 'GET', path: '/logbucket/absent' });
  t.equal(missing.status, 404);
  const [missingLine] = await linesOf(server, String(missing.headers['x-amz-request-id']));
  t.match(missingLine, { level: 'info', operation: 'GetObject', status: 404, error: 'NoSuchKey', bytesOut: missing.body.length });
});

t.test('every answer carries its request id (x-amz-request-id, x-amz-id-2) and Server, an error\'s also in its document', async (t) => {
  const answers = {
    createBucket: await signedRequest(server, { method: 'PUT', path: '/idbucket' }),
    put: await signedRequest(server, { method: 'PUT', path: '/idbucket/k', body: Buffer.from('hello'), headers: { 'content-length': '5' } }),
    get: await signedRequest(server, { method: 'GET', path: '/idbucket/k' }),
    head: await signedRequest(server, { method: 'HEAD', path: '/idbucket/k' }),
    range: await signedRequest(server, { method: 'GET', path: '/idbucket/k', headers: { range: 'bytes=1-2' } }),
    list: await signedRequest(server, { method: 'GET', path: '/idbucket?list-type=2' }),
    missing: await signedRequest(server, { method: 'GET', path: '/idbucket/absent' }),
    badRange: await signedRequest(server, { method: 'GET', path: '/idbucket/k', headers: { range: 'bytes=9-10' } }),
  };
  const ids = new Set<string>();
  for (const [name, answer] of Object.entries(answers)) {
    const id = String(answer.headers['x-amz-request-id']);
    t.match(id, /^[0-9A-F]{16}$/, `${name}: x-amz-request-id`);
    t.equal(answer.headers['x-amz-id-2'], id, `${name}: x-amz-id-2`);
    t.equal(answer.headers.server, 's3g', `${name}: Server`);
    ids.add(id);
  }
  t.equal(ids.size, Object.keys(answers).length, 'each its own id');
  t.equal(answers.range.status, 206);
  for (const error of [answers.missing, answers.badRange]) {
    t.equal(/<RequestId>([^<]+)<\/RequestId>/.exec(error.body.toString())?.[1], error.headers['x-amz-request-id'], 'the error document names the same id');
  }
  t.equal(answers.badRange.headers['content-range'], 'bytes */5', 'headers set before the answer are kept with it');
});

t.test('no secret reaches the log: Authorization, secret keys, presigned signatures', async (t) => {
  const signed = await signedRequest(server, { method: 'GET', path: '/logbucket/dir/photo%20one.jpg' });
  t.equal(signed.status, 200);
  const path = await presignedPath(server, 'GET', 'logbucket', 'dir/photo one.jpg');
  const signature = new URL(path, 'http://x').searchParams.get('X-Amz-Signature')!;
  t.match(signature, /^[0-9a-f]{64}$/);
  const presigned = await send(server, 'GET', path, { host: `127.0.0.1:${server.port}` });
  t.equal(presigned.status, 200);
  const [line] = await linesOf(server, String(presigned.headers['x-amz-request-id']));
  t.match(line, { operation: 'GetObject', status: 200, url: /X-Amz-Signature=\[redacted\]/ });
  t.match(line!.url, /X-Amz-Credential=/, 'the rest of the URL stays');

  const everything = server.output();
  t.notOk(everything.includes(signature), 'the presigned signature appears nowhere');
  t.notOk(everything.includes(SECRET_KEY), 'the secret key appears nowhere');
  t.notMatch(everything, /AWS4-HMAC-SHA256 Credential=/, 'no Authorization header');
  t.ok(everything.includes(ACCESS_KEY), 'the access key id (not a secret) may appear in URLs');
});

t.test('--log-level warn drops the access lines, keeps warnings', async (t) => {
  const quiet = await startServer({ args: ['--log-level', 'warn'] });
  t.teardown(() => disposeServer(quiet));
  const res = await signedRequest(quiet, { method: 'PUT', path: '/quiet' });
  t.equal(res.status, 200);
  await sleep(300);
  t.same(await linesOf(quiet, String(res.headers['x-amz-request-id'])), [], 'no info line for the request');
  t.notOk(logLines(quiet).some((l) => l.level === 'info'), 'no info lines at all');
});

t.test('S3G_LOG_LEVEL=debug is taken from the environment', async (t) => {
  const chatty = await startServer({ env: { S3G_LOG_LEVEL: 'debug' } });
  t.teardown(() => disposeServer(chatty));
  const res = await signedRequest(chatty, { method: 'PUT', path: '/chatty' });
  t.match((await linesOf(chatty, String(res.headers['x-amz-request-id'])))[0], { level: 'info', operation: 'CreateBucket', status: 200 });
});

t.test('redactUrl blanks signatures and tokens, whatever their case, and nothing else', async (t) => {
  t.equal(redactUrl('/b/k'), '/b/k');
  t.equal(
    redactUrl('/b/k?X-Amz-Credential=AK%2F2026&X-Amz-Signature=abc123&x-amz-security-token=tok&partNumber=1'),
    '/b/k?X-Amz-Credential=AK%2F2026&X-Amz-Signature=[redacted]&x-amz-security-token=[redacted]&partNumber=1',
  );
  t.equal(redactUrl('/b/k?AWSAccessKeyId=AK&Signature=sig%3D&Expires=1'), '/b/k?AWSAccessKeyId=AK&Signature=[redacted]&Expires=1', 'SigV2 presigned');
});

