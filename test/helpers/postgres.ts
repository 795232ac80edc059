// A throwaway PostgreSQL server for tests: a fresh cluster (initdb) in a temp directory,
// listening on 127.0.0.1 at a free port with its unix socket in that directory, trust
// auth, no fsync. One server per test file; createDatabase() gives each test its own
// database. PostgreSQL refuses to run as root, so under root the cluster belongs to the
// `postgres` user that Debian's package creates, and the server runs as that user.
//
// S3G_TEST_POSTGRES_URL=postgres://user@host:port/db uses an existing server instead (a
// CockroachDB or YugabyteDB cluster, say): databases are created and dropped on it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

const run = promisify(execFile);

export interface PostgresServer {
  /** A new, empty database; returns its URL. */
  createDatabase(): Promise<string>;
  dropDatabase(url: string): Promise<void>;
  /** Runs parameterless SQL on the database at url, on a connection of its own. */
  query(url: string, sql: string): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

/** The newest installed server's bin directory (Debian: /usr/lib/postgresql/N/bin), if any. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, 'bin')).find((bin) => existsSync(join(bin, 'postgres')) && existsSync(join(bin, 'initdb')));
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresUnavailable(): string | undefined {
  if (process.env.S3G_TEST_POSTGRES_URL || postgresBinDir()) return undefined;
  return 'PostgreSQL is not installed (apt-get install postgresql, or make test-deps)';
}

export async function startPostgres(): Promise<PostgresServer> {
  const external = process.env.S3G_TEST_POSTGRES_URL;
  if (external) return databasesOn(external, async () => {});
  const bin = postgresBinDir();
  if (!bin) throw new Error(postgresUnavailable());

  const dir = await mkdtemp(join(tmpdir(), 's3g-pg-'));
  const data = join(dir, 'data');
  const sockets = join(dir, 'sockets');
  await mkdir(sockets);
  const owner = process.getuid?.() === 0 ? postgresUser() : undefined;
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    await chown(sockets, owner.uid, owner.gid);
  }
  const asOwner = { ...(owner ?? {}), env: { ...process.env, LC_ALL: 'C.UTF-8' } };
  try {
    // An ICU English default collation (not byte order, 'a' < 'Z'), so that the suite proves
    // the schema's COLLATE "C" rather than passing by luck of a C-locale cluster.
    await run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8',
      '--locale=C.UTF-8', '--locale-provider=icu', '--icu-locale=en-US', '--no-sync'], asOwner);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(err as { stderr?: string }).stderr ?? err}`);
  }

  const port = await freePort();
  const log = await open(join(dir, 'postgres.log'), 'w');
  // Durability is not under test: no fsync, and room for the suite's many short-lived pools.
  const child = spawn(join(bin, 'postgres'), [
    '-D', data, '-h', '127.0.0.1', '-p', String(port), '-k', sockets,
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300',
  ], { ...asOwner, stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // If the test process dies before teardown, the server must not outlive it.
  const killOnExit = () => signal(child, 'SIGQUIT');
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    // SIGINT: fast shutdown (disconnect clients, stop). SIGQUIT if it lingers.
    if (signal(child, 'SIGINT')) {
      const timeout = sleep(10_000).then(() => signal(child, 'SIGQUIT'));
      await Promise.race([exited, timeout]);
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };

  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  try {
    await waitUntilReady(admin, exited, join(dir, 'postgres.log'));
  } catch (err) {
    await stop();
    throw err;
  }
  return databasesOn(admin, stop);
}

function databasesOn(adminUrl: string, stop: () => Promise<void>): PostgresServer {
  let counter = 0;
  const withClient = async <T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };
  const urlOf = (name: string) => {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  };
  return {
    async createDatabase() {
      const name = `s3g_test_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`;
      await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
      return urlOf(name);
    },
    async dropDatabase(url) {
      const name = new URL(url).pathname.slice(1);
      if (!/^s3g_test_\w+$/.test(name)) throw new Error(`refusing to drop ${name}: not a test database`);
      // FORCE (PostgreSQL 13+) ends connections a failed test left open.
      await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((err: { code?: string }) => {
        if (err.code !== '42601') throw err; // syntax error: a server without FORCE
        return c.query(`DROP DATABASE IF EXISTS ${name}`);
      }));
    },
    query: (url, sql) => withClient(url, async (c) => (await c.query(sql)).rows as Record<string, unknown>[]),
    stop,
  };
}

/** The uid and gid PostgreSQL runs as when the tests run as root. */
export function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, and there is no postgres user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** True when the signal was sent (the process was still running). */
function signal(child: ChildProcess, name: NodeJS.Signals): boolean {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return false;
  try {
    return process.kill(child.pid, name);
  } catch {
    return false;
  }
}

async function waitUntilReady(url: string, exited: Promise<void>, logPath: string): Promise<void> {
  let dead = false;
  void exited.then(() => (dead = true));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (dead || Date.now() > deadline) {
        const log = await readFile(logPath, 'utf8').catch(() => '');
        throw new Error(`PostgreSQL did not start (${(err as Error).message}):\n${log}`);
      }
    }
    await sleep(50);
  }
}
