// A revoked access key stops working at once on every gateway: two `s3g gateway` processes
// share one metadata store (a SQLite file) and look keys up there on every request.
import t from 'tap';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { S3G, TEST_KEK, startServer, tempDir, type TestServer } from './helpers/server.js';
import { errorCode, signedRequest, signer } from './helpers/raw.js';

const run = promisify(execFile);
const dir = tempDir();
const meta = `sqlite:${join(dir, 'meta', 's3g.db')}`;
const gateways: TestServer[] = [];
t.teardown(async () => {
  for (const gateway of gateways) await gateway.kill9();
  rmSync(dir, { recursive: true, force: true });
});
for (let i = 0; i < 2; i++) gateways.push(await startServer({ command: 'gateway', args: ['--meta', meta] }));

async function admin(...args: string[]): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const { stdout } = await run(S3G, ['admin', '--meta', meta, ...args, '--json'], { env: { ...process.env, S3G_KEK: TEST_KEK } });
  return JSON.parse(stdout);
}

t.test('revoked on one store, refused by both gateways on the next request', async (t) => {
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
    t.notMatch(gateway.output(), key.secretAccessKey, `gateway ${i + 1}: the secret is in no log line`);
  }
});

t.test('a gateway without key-encryption keys refuses to start', async (t) => {
  const failure = await run(S3G, ['gateway', '--meta', meta, '--port', '0', '--admin-port', '0'], { env: { ...process.env, S3G_KEK: '' } }).then(
    () => undefined,
    (error: { stderr: string }) => error.stderr,
  );
  t.match(failure, /needs key-encryption keys/);
});
