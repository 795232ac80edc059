// bin/s3g admin: users, tenants and access keys against a data directory, the printed keys
// working over S3, revocation taking effect at once, and KEK rotation.
import t from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { S3G, startServer, disposeServer, outputWith, tempDir, ACCESS_KEY } from './helpers/server.js';
import { sdkClient } from './helpers/clients.js';
import { errorCode, signedRequest, signer } from './helpers/raw.js';

const run = promisify(execFile);
const server = await startServer();
t.teardown(() => disposeServer(server));

/** `s3g admin --data DIR …args --json`, parsed. */
async function admin(args: string[], env: Record<string, string> = {}, dataDir = server.dataDir): Promise<unknown> {
  const { stdout } = await run(S3G, ['admin', '--data', dataDir, ...args, '--json'], { env: { ...process.env, ...env } });
  return JSON.parse(stdout);
}

/** The stderr of an admin command expected to fail. */
async function adminFailure(args: string[], env: Record<string, string> = {}, dataDir = server.dataDir): Promise<string> {
  return run(S3G, ['admin', '--data', dataDir, ...args], { env: { ...process.env, ...env } }).then(
    () => 'succeeded',
    (error: { stderr: string }) => error.stderr,
  );
}

t.test('serve creates its KEK file, private to its user', async (t) => {
  const mode = statSync(join(server.dataDir, 'kek')).mode & 0o777;
  t.equal(mode.toString(8), '600');
});

t.test('user create shows the secret once; user info shows key ids only', async (t) => {
  const created = (await admin(['user', 'create', 'alice'])) as Record<string, string>;
  t.match(created, { name: 'alice', displayName: 'alice', volume: 's3v', accessKeyId: /^[A-Z0-9]{20}$/, secretAccessKey: /^.{40}$/, canonicalId: /^[0-9a-f]{64}$/ });
  const info = (await admin(['user', 'info', 'alice'])) as Record<string, unknown>;
  t.same([info.accessKeyId, info.canonicalId], [created.accessKeyId, created.canonicalId]);
  t.notOk('secretAccessKey' in info, 'no secret in user info');
  t.notMatch(JSON.stringify(info), created.secretAccessKey!);

  const adminUser = (await admin(['user', 'info', 'admin'])) as Record<string, unknown>;
  t.equal(adminUser.accessKeyId, ACCESS_KEY, 'the bootstrap admin comes from S3G_ACCESS_KEY');

  // The running server accepts the new key at once and shows alice as the owner.
  const alice = sdkClient(server, { accessKeyId: created.accessKeyId!, secretAccessKey: created.secretAccessKey! });
  const list = await alice.send(new ListBucketsCommand({}));
  t.same(list.Owner, { ID: created.canonicalId, DisplayName: 'alice' });

  t.match(await adminFailure(['user', 'create', 'alice']), /already exists/, 'a duplicate user is refused');
  t.match(await adminFailure(['user', 'info', 'nobody']), /no user 'nobody'/, 'an unknown user is an error');
});

t.test('tenants: create, list, info, users in them', async (t) => {
  t.match(await admin(['tenant', 'create', 'acme']), { name: 'acme', volume: 'acme', createdAt: Number });
  await admin(['tenant', 'create', 'globex']);
  t.match(await adminFailure(['tenant', 'create', 'acme']), /already exists/);
  t.match(await adminFailure(['tenant', 'create', 's3v']), /already exists/, 's3v is no tenant name');
  t.match(await adminFailure(['tenant', 'create', 'Bad_Name']), /tenant name 'Bad_Name'/);
  t.match(await adminFailure(['user', 'create', 'nomad', '--tenant', 'nowhere']), /tenant nowhere does not exist/);

  const wile = (await admin(['user', 'create', 'wile', '--tenant', 'acme'])) as Record<string, string>;
  t.match(wile, { tenant: 'acme', volume: 'acme' });
  await signedRequest(server, { method: 'PUT', path: '/anvils' }, signer({ accessKeyId: wile.accessKeyId!, secretAccessKey: wile.secretAccessKey! }));
  t.same(((await admin(['tenant', 'list'])) as { name: string }[]).map((x) => x.name), ['acme', 'globex']);
  t.match(await admin(['tenant', 'info', 'acme']), { name: 'acme', volume: 'acme', users: ['wile'], buckets: ['anvils'] });
  t.same(((await admin(['user', 'list', '--tenant', 'acme'])) as { name: string }[]).map((u) => u.name), ['wile']);
  t.match(await adminFailure(['tenant', 'info', 'nobody']), /no tenant 'nobody'/);

  // An admin-made bucket lives in its owner's volume, where the owner's requests find it.
  t.match(await admin(['bucket', 'create', 'crates', '--owner', 'wile', '--layout', 'fso']), { name: 'crates', volume: 'acme', owner: 'wile', layout: 'FSO' });
  t.same(((await admin(['bucket', 'list', '--tenant', 'acme'])) as { name: string }[]).map((b) => b.name), ['anvils', 'crates']);
  const head = await signedRequest(server, { method: 'HEAD', path: '/crates' }, signer({ accessKeyId: wile.accessKeyId!, secretAccessKey: wile.secretAccessKey! }));
  t.equal(head.status, 200, 'the owner reaches it');
  t.match(await adminFailure(['bucket', 'create', 'Bad_Bucket']), /not valid/, 'bucket names follow the S3 rules');
});

t.test('key create, list and revoke; a revoked key stops at once', async (t) => {
  await admin(['user', 'create', 'bob']);
  const key = (await admin(['key', 'create', 'bob'])) as { accessKeyId: string; secretAccessKey: string; userName: string };
  t.match(key, { accessKeyId: /^[A-Z0-9]{20}$/, secretAccessKey: /^.{40}$/, userName: 'bob' });
  const listed = (await admin(['key', 'list', 'bob'])) as { accessKeyId: string }[];
  t.equal(listed.length, 2);
  t.ok(listed.some((k) => k.accessKeyId === key.accessKeyId));
  t.notMatch(JSON.stringify(listed), key.secretAccessKey, 'key list shows no secret');

  const bob = signer({ accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey });
  t.equal((await signedRequest(server, { method: 'GET', path: '/' }, bob)).status, 200, 'the new key works');
  t.same(await admin(['key', 'revoke', key.accessKeyId]), { accessKeyId: key.accessKeyId, revoked: true });
  const refused = await signedRequest(server, { method: 'GET', path: '/' }, bob);
  t.equal(refused.status, 403, 'the very next request is refused');
  t.equal(errorCode(refused), 'InvalidAccessKeyId');
  t.notMatch(refused.body.toString(), key.secretAccessKey, 'no secret in the error');
  t.notMatch(await outputWith(server, String(refused.headers['x-amz-request-id'])), key.secretAccessKey, 'no secret in the logs, the refusal\'s line included');
  t.match(await adminFailure(['key', 'revoke', key.accessKeyId]), /does not exist/);
  t.match(await adminFailure(['key', 'create', 'nobody']), /user nobody does not exist/);
});

t.test('KEK rotation: a new KEK first, the old after it, rekey, then the new one alone', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const oldKek = randomBytes(32).toString('base64');
  const newKek = randomBytes(32).toString('hex');
  t.match(await adminFailure(['user', 'create', 'carol'], {}, dir), /no key-encryption key configured/, 'no KEK, no secrets');

  const carol = (await admin(['user', 'create', 'carol'], { S3G_KEK: oldKek }, dir)) as { secretAccessKey: string };
  t.match(await adminFailure(['key', 'list', 'carol'], { S3G_KEK: newKek }, dir), /not configured/, 'the new KEK alone cannot open the old secret yet');
  t.same(await admin(['key', 'rekey'], { S3G_KEK: `${newKek},${oldKek}` }, dir), { resealed: 1, total: 1 });
  t.equal(((await admin(['key', 'list', 'carol'], { S3G_KEK: newKek }, dir)) as unknown[]).length, 1, 'after rekey the new KEK suffices');
  const failure = await adminFailure(['key', 'list', 'carol'], { S3G_KEK: oldKek }, dir);
  t.match(failure, /not configured/, 'and the old one no longer does');
  t.notMatch(failure, carol.secretAccessKey);
  t.match(await adminFailure(['key', 'list', 'carol'], { S3G_KEK: 'too-short' }, dir), /S3G_KEK: key 1 is not 32 bytes/);
  t.notMatch(await adminFailure(['key', 'list', 'carol'], { S3G_KEK: 'too-short' }, dir), /too-short/, 'a malformed KEK is not echoed');
});
