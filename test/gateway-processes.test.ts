// --gateway-processes: several processes serve one S3 port over one metadata store. Connections
// are dealt round-robin; the admin port adds up their metrics and /stats; a killed worker is
// replaced; slow clients are cut in every process; SIGTERM stops them all.
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { disposeServer, startServer, type TestServer } from './helpers/server.js';
import { sdkClient } from './helpers/clients.js';
import { waitFor } from './helpers/wait.js';

interface Stats {
  peakRssBytes: number;
  processes?: { pid: number; peakRssBytes: number }[];
}

const stats = async (server: TestServer): Promise<Stats> => (await (await fetch(`${server.adminUrl}/stats`)).json()) as Stats;

/** Sum of a counter's series whose labels match, from the admin port's /metrics. */
async function counter(server: TestServer, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

/** A client of its own, so its requests go over a connection of their own. */
function freshClients(t: Test, server: TestServer, n: number): S3Client[] {
  const clients = Array.from({ length: n }, () => sdkClient(server));
  t.teardown(() => clients.forEach((c) => c.destroy()));
  return clients;
}

/** The process that answered: request ids are a per-process prefix and a counter. */
const processOf = (requestId: string | undefined): string => (requestId ?? '').slice(0, 8);

t.test('three processes share the port and the metadata; the admin port adds them up', async (t) => {
  const server = await startServer({ args: ['--gateway-processes', '3'] });
  t.teardown(() => disposeServer(server));
  const clients = freshClients(t, server, 6);
  await clients[0]!.send(new CreateBucketCommand({ Bucket: 'shared' }));
  const bodies = clients.map(() => randomBytes(100_000));
  const answered = new Set<string>();
  for (const [i, client] of clients.entries()) {
    const put = await client.send(new PutObjectCommand({ Bucket: 'shared', Key: `k${i}`, Body: bodies[i] }));
    answered.add(processOf(put.$metadata.requestId));
  }
  // Each object read through another process than the one that wrote it, most of the time.
  for (const [i, client] of clients.entries()) {
    const j = (i + 1) % clients.length;
    const got = await client.send(new GetObjectCommand({ Bucket: 'shared', Key: `k${j}` }));
    t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(bodies[j]!), `k${j} read back whole`);
  }
  t.equal(answered.size, 3, 'six connections were dealt to three processes');

  t.equal(await counter(server, 's3g_requests_total', 'operation="PutObject",status="200"'), 6, 'PUTs counted across processes');
  t.equal(await counter(server, 's3g_requests_total', 'operation="GetObject",status="200"'), 6, 'GETs counted across processes');
  const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
  t.match(metrics, /^s3g_build_info\{[^}]*\} 1$/m, 'build info is not summed');

  const s = await stats(server);
  t.equal(s.processes?.length, 3, '/stats lists three processes');
  t.ok(s.processes?.some((p) => p.pid === server.proc.pid), 'the parent among them');
  t.equal(s.peakRssBytes, s.processes!.reduce((sum, p) => sum + p.peakRssBytes, 0), 'peak RSS is their sum');
});

t.test('a killed worker is replaced; slow headers are cut in every process; SIGTERM stops all', async (t) => {
  const server = await startServer({ args: ['--gateway-processes', '2', '--headers-timeout', '1'] });
  t.teardown(() => disposeServer(server));
  const [client] = freshClients(t, server, 1);
  await client!.send(new CreateBucketCommand({ Bucket: 'restart' }));

  const before = (await stats(server)).processes!.map((p) => p.pid);
  const worker = before.find((pid) => pid !== server.proc.pid)!;
  process.kill(worker, 'SIGKILL');
  await waitFor('a new worker', async () => {
    const pids = (await stats(server)).processes!.map((p) => p.pid);
    return pids.length === 2 && !pids.includes(worker);
  }, 15_000);
  t.match(server.output(), /gateway worker exited; restarting/, 'the parent noticed');
  const answered = new Set<string>();
  for (const c of freshClients(t, server, 4)) {
    const put = await c.send(new PutObjectCommand({ Bucket: 'restart', Key: 'k', Body: 'after' }));
    answered.add(processOf(put.$metadata.requestId));
  }
  t.equal(answered.size, 2, 'the new worker serves');

  // Header blocks that trickle in a byte a second: each process closes its own within the timeout.
  const started = Date.now();
  const closed = await Promise.all(
    Array.from({ length: 4 }, () => {
      const socket = connect(server.port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.resume(); // what the server says is read and dropped, so 'close' can come
      socket.write('GET /restart/k HTTP/1.1\r\n');
      const timer = setInterval(() => socket.writable && socket.write('X'), 1000);
      setTimeout(() => socket.destroy(), 10_000).unref(); // a process that never cuts it fails below
      return new Promise<number>((resolve) =>
        socket.once('close', () => {
          clearInterval(timer);
          resolve(Date.now() - started);
        }),
      );
    }),
  );
  t.ok(Math.max(...closed) < 8000, `slow header blocks closed after at most ${Math.max(...closed)} ms (headers-timeout 1 s)`);

  const pids = (await stats(server)).processes!.map((p) => p.pid);
  t.equal(await server.stop(), 0, 'SIGTERM: exit 0');
  await waitFor('every gateway process to exit', () => pids.every((pid) => !alive(pid)), 10_000);
  t.pass('every gateway process has exited');
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
