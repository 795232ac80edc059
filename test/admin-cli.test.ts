// bin/s3g admin user create/info against a data directory, and the printed keys working over S3.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { S3G, startServer, disposeServer, ACCESS_KEY } from './helpers/server.js';
import { sdkClient } from './helpers/clients.js';

const run = promisify(execFile);
const server = await startServer();
t.teardown(() => disposeServer(server));

t.test('user create and info print keys and the <Owner> identity', async (t) => {
  const created = JSON.parse((await run(S3G, ['admin', '--data', server.dataDir, 'user', 'create', 'alice', '--json'])).stdout);
  t.match(created, { name: 'alice', displayName: 'alice', accessKeyId: /^[A-Z0-9]{20}$/, secretAccessKey: /^.{40}$/, canonicalId: /^[0-9a-f]{64}$/ });
  const info = JSON.parse((await run(S3G, ['admin', '--data', server.dataDir, 'user', 'info', 'alice', '--json'])).stdout);
  t.same([info.accessKeyId, info.secretAccessKey, info.canonicalId], [created.accessKeyId, created.secretAccessKey, created.canonicalId]);

  const admin = JSON.parse((await run(S3G, ['admin', '--data', server.dataDir, 'user', 'info', 'admin', '--json'])).stdout);
  t.equal(admin.accessKeyId, ACCESS_KEY, 'the bootstrap admin comes from S3G_ACCESS_KEY');

  // The running server accepts the new key at once and shows alice as the owner.
  const alice = sdkClient(server, { accessKeyId: created.accessKeyId, secretAccessKey: created.secretAccessKey });
  const list = await alice.send(new ListBucketsCommand({}));
  t.same(list.Owner, { ID: created.canonicalId, DisplayName: 'alice' });

  await t.rejects(run(S3G, ['admin', '--data', server.dataDir, 'user', 'create', 'alice', '--json']), 'a duplicate user is refused');
  await t.rejects(run(S3G, ['admin', '--data', server.dataDir, 'user', 'info', 'nobody', '--json']), 'an unknown user is an error');
});
