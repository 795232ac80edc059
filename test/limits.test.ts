// Limits against hostile clients: slowloris on headers and on bodies, a cap on concurrent
// requests with 503 SlowDown, and malformed request lines; normal traffic keeps working.
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { disposeServer, startServer } from './helpers/server.js';
import { sdkClient } from './helpers/clients.js';
import { presignedPath } from './helpers/raw.js';

const server = await startServer({ args: ['--headers-timeout', '2', '--min-body-rate', '512', '--body-rate-window', '2', '--max-requests', '300'] });
t.teardown(() => disposeServer(server));
const s3 = sdkClient(server);
await s3.send(new CreateBucketCommand({ Bucket: 'limits' }));

interface Trickle {
  closedAfterMs: Promise<number>;
  received: () => string;
  socket: Socket;
}

/** Opens a connection that sends `prefix` at once, then `rest` one byte a second until the server closes it. */
function trickle(prefix: string, rest: string): Trickle {
  const started = Date.now();
  const socket = connect(server.port, '127.0.0.1');
  let received = '';
  socket.on('data', (d) => (received += d.toString()));
  socket.on('error', () => undefined);
  socket.write(prefix);
  let at = 0;
  const timer = setInterval(() => {
    if (at < rest.length && !socket.destroyed) socket.write(rest[at++]!);
  }, 1000);
  const closedAfterMs = new Promise<number>((resolve) =>
    socket.once('close', () => {
      clearInterval(timer);
      resolve(Date.now() - started);
    }),
  );
  return { closedAfterMs, received: () => received, socket };
}

t.test('200 slowloris connections are closed within the timeouts while normal requests succeed', async (t) => {
  const path = await presignedPath(server, 'PUT', 'limits', 'slow-body');
  const headerTricklers = Array.from({ length: 100 }, () =>
    trickle('GET /limits/x HTTP/1.1\r\n', `Host: 127.0.0.1:${server.port}\r\nX-Slow: ${'a'.repeat(60)}\r\n\r\n`),
  );
  const bodyTricklers = Array.from({ length: 100 }, () =>
    trickle(`PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Length: 1000\r\n\r\n`, 'x'.repeat(1000)),
  );
  // Normal traffic in the meantime.
  const body = randomBytes(200_000);
  for (let i = 0; i < 5; i++) {
    await s3.send(new PutObjectCommand({ Bucket: 'limits', Key: `normal-${i}`, Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'limits', Key: `normal-${i}` }));
    t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body), `normal request ${i} served`);
  }
  const headerTimes = await Promise.all(headerTricklers.map((c) => c.closedAfterMs));
  const bodyTimes = await Promise.all(bodyTricklers.map((c) => c.closedAfterMs));
  t.ok(Math.max(...headerTimes) < 8000, `header tricklers closed after at most ${Math.max(...headerTimes)} ms (headers-timeout 2 s)`);
  t.ok(Math.max(...bodyTimes) < 10_000, `body tricklers closed after at most ${Math.max(...bodyTimes)} ms (2 s windows)`);
  t.ok(bodyTricklers.every((c) => /RequestTimeout/.test(c.received()) || c.received() === ''), 'bodies are cut with RequestTimeout');
  t.ok(headerTricklers.every((c) => !/ 200 /.test(c.received())), 'no slow header block is served');
  const after = await s3.send(new GetObjectCommand({ Bucket: 'limits', Key: 'normal-0' }));
  t.equal(after.$metadata.httpStatusCode, 200, 'still serving');
});

t.test('malformed request lines get a clean 400 and the gateway keeps serving', async (t) => {
  for (const raw of ['NONSENSE\r\n\r\n', 'GET /a b c HTTP/1.1\r\n\r\n', `GET / HTTP/1.1\r\nHost: x\r\n${'X-Big: ' + 'b'.repeat(20000)}\r\n\r\n`, 'GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n']) {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(server.port, '127.0.0.1');
      let got = '';
      socket.on('data', (d) => (got += d.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(got));
      socket.end(raw);
    });
    t.match(answer, /^HTTP\/1\.1 4\d\d /, JSON.stringify(raw.slice(0, 30)));
  }
  const ok = await s3.send(new GetObjectCommand({ Bucket: 'limits', Key: 'normal-1' }));
  t.equal(ok.$metadata.httpStatusCode, 200);
});

t.test('more than 200 header fields: 400 RequestHeaderSectionTooLarge, not a request read with some missing', async (t) => {
  const headers = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`x-filler-${i}`, 'v']));
  const response = await fetch(`${server.url}${await presignedPath(server, 'GET', 'limits', 'normal-1')}`, { headers });
  t.equal(response.status, 400);
  t.match(await response.text(), /<Code>RequestHeaderSectionTooLarge<\/Code>/);
  const fine = await fetch(`${server.url}${await presignedPath(server, 'GET', 'limits', 'normal-1')}`, { headers: Object.fromEntries(Object.entries(headers).slice(0, 150)) });
  t.equal(fine.status, 200, '150 header fields are fine');
});

t.test('beyond max-requests in flight: 503 SlowDown', async (t) => {
  const capped = await startServer({ args: ['--max-requests', '2', '--min-body-rate', '0'] });
  t.teardown(() => disposeServer(capped));
  await sdkClient(capped).send(new CreateBucketCommand({ Bucket: 'capped' }));
  const holders = await Promise.all(
    [1, 2].map(async (i) => {
      const socket = connect(capped.port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`PUT ${await presignedPath(capped, 'PUT', 'capped', `held-${i}`)} HTTP/1.1\r\nHost: 127.0.0.1:${capped.port}\r\nContent-Length: 100\r\n\r\nx`);
      return socket;
    }),
  );
  await new Promise((r) => setTimeout(r, 500));
  const refused = await fetch(`${capped.url}/capped`).then(async (r) => ({ status: r.status, text: await r.text(), headers: r.headers }));
  t.equal(refused.status, 503);
  t.match(refused.text, /<Code>SlowDown<\/Code>/);
  const id = refused.headers.get('x-amz-request-id');
  t.match(id, /^[0-9A-F]{16}$/, 'a refusal has a request id too');
  t.equal(refused.headers.get('x-amz-id-2'), id);
  t.match(refused.text, `<RequestId>${id}</RequestId>`);
  for (const socket of holders) socket.destroy();
  await new Promise((r) => setTimeout(r, 300));
  const ok = await sdkClient(capped).send(new PutObjectCommand({ Bucket: 'capped', Key: 'after', Body: 'x' }));
  t.ok(ok.ETag, 'served again once the slots free up');
});
