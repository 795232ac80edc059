// WalSync: every durable() resolves only after an fdatasync that started after it was
// called, and concurrent callers share syncs. A power cut cannot be staged here, so the WAL
// file is a stand-in that records its datasync calls.
import t from 'tap';
import { WalSync } from '../src/metadata/wal-sync.js';

function recordingWal() {
  const syncs: { finish: () => void; fail: (error: Error) => void }[] = [];
  return {
    syncs,
    handle: {
      datasync: () => new Promise<void>((finish, fail) => syncs.push({ finish, fail })),
      close: async () => undefined,
    },
  };
}

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

t.test('callers during a running sync wait for the next one, and share it', async (t) => {
  const wal = recordingWal();
  const sync = new WalSync(wal.handle);
  const first = sync.durable();
  await new Promise((r) => setImmediate(r));
  t.equal(wal.syncs.length, 1, 'one datasync started');
  const second = sync.durable();
  const third = sync.durable();
  wal.syncs[0]!.finish();
  t.ok(await settled(first), 'the first commit is durable');
  t.notOk(await settled(second), 'a commit made during that sync is not');
  t.equal(wal.syncs.length, 2, 'one more datasync for both later commits');
  wal.syncs[1]!.finish();
  t.ok(await settled(second));
  t.ok(await settled(third));
  t.equal(wal.syncs.length, 2);
});

t.test('a failed datasync fails its waiters and the next call tries again', async (t) => {
  const wal = recordingWal();
  const sync = new WalSync(wal.handle);
  const failed = sync.durable();
  await new Promise((r) => setImmediate(r));
  wal.syncs[0]!.fail(new Error('EIO'));
  await t.rejects(failed, /EIO/);
  const retried = sync.durable();
  await new Promise((r) => setImmediate(r));
  t.equal(wal.syncs.length, 2);
  wal.syncs[1]!.finish();
  await retried;
});
