// PostgreSQL out of reach: a query fails with ServiceUnavailable (503 to S3 clients, which
// retry) instead of a 500, and a server that accepts connections but never answers is given
// up on after the connect timeout instead of holding every request forever.
import t from 'tap';
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { PostgresMetadataStore, connectTimeoutOf } from '../src/metadata/postgres.js';
import { MetadataError } from '../src/metadata/store.js';
import { S3G, TEST_KEK, startServer } from './helpers/server.js';
import { errorCode, signedRequest } from './helpers/raw.js';
import { postgresUnavailable, startPostgres } from './helpers/postgres.js';

/** A TCP server on 127.0.0.1 that takes connections and says nothing, as a hung host does. */
async function silentServer(): Promise<{ port: number; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => accepted,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on: one the kernel just handed out and took back. */
async function closedPort(): Promise<number> {
  const { port, close } = await silentServer();
  await close();
  return port;
}

const unavailable = { constructor: MetadataError, code: 'ServiceUnavailable' };

t.test('a store whose server never answers, or refuses, fails with ServiceUnavailable', async (t) => {
  const silent = await silentServer();
  t.teardown(() => silent.close());
  const hung = new PostgresMetadataStore(`postgres://s3g@127.0.0.1:${silent.port}/s3g`, { connectTimeoutMs: 300 });
  t.teardown(() => hung.close());
  await t.rejects(hung.getBucket('s3v', 'b'), unavailable, 'a read waits for the connect timeout, then fails');
  await t.rejects(hung.createUser({ name: 'alice' }), unavailable, 'and so does a write');
  t.ok(silent.connections() >= 2, 'each tried the server');

  const refused = new PostgresMetadataStore(`postgres://s3g@127.0.0.1:${await closedPort()}/s3g`);
  t.teardown(() => refused.close());
  await t.rejects(refused.getBucket('s3v', 'b'), unavailable, 'a refused connection fails at once');
});

t.test("the connect timeout is libpq's: the URL's connect_timeout, then PGCONNECT_TIMEOUT, then 10 s", async (t) => {
  const base = 'postgres://s3g@127.0.0.1:5432/s3g';
  const saved = process.env.PGCONNECT_TIMEOUT;
  t.teardown(() => (saved === undefined ? delete process.env.PGCONNECT_TIMEOUT : (process.env.PGCONNECT_TIMEOUT = saved)));
  delete process.env.PGCONNECT_TIMEOUT;
  t.equal(connectTimeoutOf(base), 10_000, 'unset: 10 s');
  t.equal(connectTimeoutOf(`${base}?connect_timeout=3`), 3_000, 'from the URL, in seconds');
  t.equal(connectTimeoutOf(`${base}?sslmode=disable&connect_timeout=0.5`), 500, 'among other parameters');
  t.equal(connectTimeoutOf(`${base}?connect_timeout=0`), 10_000, "0 (libpq's forever) is not taken");
  t.equal(connectTimeoutOf(`${base}?connect_timeout=soon`), 10_000, 'nor a word');
  process.env.PGCONNECT_TIMEOUT = '7';
  t.equal(connectTimeoutOf(base), 7_000, 'from PGCONNECT_TIMEOUT');
  t.equal(connectTimeoutOf(`${base}?connect_timeout=2`), 2_000, 'the URL first');

  const silent = await silentServer();
  t.teardown(() => silent.close());
  const store = new PostgresMetadataStore(`postgres://s3g@127.0.0.1:${silent.port}/s3g?connect_timeout=1`);
  t.teardown(() => store.close());
  const started = performance.now();
  await t.rejects(store.getBucket('s3v', 'b'), unavailable, 'a store opened with it gives up');
  const waited = performance.now() - started;
  t.ok(waited >= 900 && waited < 8_000, `after about the URL's second, not the default 10 (${Math.round(waited)} ms)`);
});

t.test('a gateway whose PostgreSQL never answers stops starting after the connect timeout', async (t) => {
  const silent = await silentServer();
  t.teardown(() => silent.close());
  const started = performance.now();
  // The timeout is a last resort: before the connect timeout, this start waited forever.
  const failure = await promisify(execFile)(S3G, ['gateway', '--meta', `postgres://s3g@127.0.0.1:${silent.port}/s3g`, '--port', '0', '--admin-port', '0'], {
    env: { ...process.env, S3G_KEK: TEST_KEK },
    timeout: 60_000,
  }).then(
    () => undefined,
    (error: { code?: number; killed?: boolean; stderr: string }) => error,
  );
  t.equal(failure?.killed, false, `gave up by itself (after ${Math.round(performance.now() - started)} ms)`);
  t.equal(failure?.code, 1, 'exit code 1');
  t.match(failure?.stderr, /PostgreSQL cannot be reached: .*timeout/, 'and says why');
});

// Under CI a missing PostgreSQL is a failure, never a skip (as in the other PostgreSQL tests).
const noPostgres = process.env.CI === 'true' ? undefined : postgresUnavailable();
t.test('a gateway whose PostgreSQL goes away answers 503 ServiceUnavailable and stays up', { skip: noPostgres ?? false }, async (t) => {
  const postgres = await startPostgres();
  let stopped = false;
  t.teardown(() => (stopped ? undefined : postgres.stop()));
  const gateway = await startServer({ command: 'gateway', args: ['--meta', await postgres.createDatabase()] });
  t.teardown(() => gateway.kill9());

  t.equal((await signedRequest(gateway, { method: 'PUT', path: '/outage' })).status, 200, 'bucket created');
  const put = await signedRequest(gateway, { method: 'PUT', path: '/outage/k', body: Buffer.from('kept') });
  t.equal(put.status, 200, 'object written while PostgreSQL runs');

  await postgres.stop();
  stopped = true;
  for (const [what, request] of [
    ['GET', { method: 'GET', path: '/outage/k' }],
    ['PUT', { method: 'PUT', path: '/outage/k2', body: Buffer.from('lost') }],
    ['ListObjectsV2', { method: 'GET', path: '/outage', query: { 'list-type': '2' } }],
  ] as const) {
    const answer = await signedRequest(gateway, request);
    t.equal(answer.status, 503, `${what}: 503`);
    t.equal(errorCode(answer), 'ServiceUnavailable', `${what}: ServiceUnavailable`);
  }
  const ready = await fetch(`${gateway.adminUrl}/ready`);
  t.equal(ready.status, 503, '/ready says the gateway is not ready');
  t.match(await ready.text(), /metadata/i, 'and why');
  t.equal(gateway.proc.exitCode, null, 'the gateway is still running');
});
