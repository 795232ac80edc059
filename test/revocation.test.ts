// A revoked access key stops working at once on every gateway: two `s3g gateway` processes
// share one metadata store (a SQLite file, then PostgreSQL), each with its cache of keys
// (lookup-cache.ts), which a revocation must reach before it is acknowledged; the admin works
// on the same store with the same KEK.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { S3G, TEST_KEK, outputWith, startServer, tempDir, type TestServer } from './helpers/server.js';
import { errorCode, signedRequest, signer } from './helpers/raw.js';
import { postgresUnavailable, startPostgres } from './helpers/postgres.js';

const run = promisify(execFile);

async function revokedOnBothGateways(t: Test, meta: string): Promise<void> {
  const gateways: TestServer[] = [];
  t.teardown(async () => {
    for (const gateway of gateways) await gateway.kill9();
  });
  for (let i = 0; i < 2; i++) gateways.push(await startServer({ command: 'gateway', args: ['--meta', meta] }));
  const admin = async (...args: string[]): Promise<{ accessKeyId: string; secretAccessKey: string }> => {
    const { stdout } = await run(S3G, ['admin', '--meta', meta, ...args, '--json'], { env: { ...process.env, S3G_KEK: TEST_KEK } });
    return JSON.parse(stdout);
  };

  await admin('user', 'create', 'bob');
  const key = await admin('key', 'create', 'bob');
  const bob = signer(key);
  for (const [i, gateway] of gateways.entries()) {
    t.equal((await signedRequest(gateway, { method: 'GET', path: '/' }, bob)).status, 200, `gateway ${i + 1} accepts the key`);
  }
  await admin('key', 'revoke', key.accessKeyId);
  for (const [i, gateway] of gateways.entries()) {
    const refused = await signedRequest(gateway, { method: 'GET', path: '/' }, bob);
    t.equal(refused.status, 403, `gateway ${i + 1}: 403 at once`);
    t.equal(errorCode(refused), 'InvalidAccessKeyId', `gateway ${i + 1}: InvalidAccessKeyId`);
    t.notMatch(await outputWith(gateway, String(refused.headers['x-amz-request-id'])), key.secretAccessKey, `gateway ${i + 1}: the secret is in no log line, the refusal's included`);
  }
}

t.test('SQLite file shared by two gateways', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const meta = `sqlite:${join(dir, 'meta', 's3g.db')}`;
  await revokedOnBothGateways(t, meta);

  const failure = await run(S3G, ['gateway', '--meta', meta, '--port', '0', '--admin-port', '0'], { env: { ...process.env, S3G_KEK: '' } }).then(
    () => undefined,
    (error: { stderr: string }) => error.stderr,
  );
  t.match(failure, /needs key-encryption keys/, 'a gateway without key-encryption keys refuses to start');
});

// Under CI a missing PostgreSQL is a failure, never a skip (as in the other PostgreSQL tests).
const noPostgres = process.env.CI === 'true' ? undefined : postgresUnavailable();
t.test('PostgreSQL shared by two gateways', { skip: noPostgres ?? false }, async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.stop());
  await revokedOnBothGateways(t, await postgres.createDatabase());
});
