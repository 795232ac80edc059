// WalCheckpointer's scheduling, with checkpoints the test finishes by hand (the store's real
// ones, on its worker thread, are tested in metadata.test.ts).
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { WalCheckpointer } from '../src/metadata/wal-checkpointer.js';
import type { CheckpointReport } from '../src/metadata/store-worker.js';

/** Checkpoints that wait for the test: each call is recorded with the functions that end it. */
function manualCheckpoints() {
  const calls: { at: number; finish(report?: Partial<CheckpointReport>): void; fail(error: Error): void }[] = [];
  const checkpoint = () =>
    new Promise<CheckpointReport>((resolve, reject) => {
      calls.push({
        at: performance.now(),
        finish: (report = {}) => resolve({ walFrames: 10, restarted: false, ...report }),
        fail: reject,
      });
    });
  return { calls, checkpoint };
}

t.test('one checkpoint per interval at most, never two at once, and one after commits that came during one', async (t) => {
  const { calls, checkpoint } = manualCheckpoints();
  const failures: unknown[] = [];
  const checkpointer = new WalCheckpointer(checkpoint, 50, (error) => failures.push(error));
  const created = performance.now();
  for (let i = 0; i < 10; i++) checkpointer.committed();
  await sleep(20);
  t.equal(calls.length, 0, 'the first waits an interval from the start');
  await sleep(60);
  t.equal(calls.length, 1, 'ten commits, one checkpoint');
  t.ok(calls[0]!.at - created >= 45, 'an interval after the checkpointer started');

  checkpointer.committed();
  await sleep(120);
  t.equal(calls.length, 1, 'a commit during a running checkpoint does not start another');
  calls[0]!.finish({ walFrames: 77, restarted: true });
  await sleep(10);
  t.equal(calls.length, 2, 'it asks for the next one, which starts once the first has ended');
  t.same(checkpointer.stats(), { checkpoints: 1, restarts: 1, failures: 0, walFrames: 77 });
  calls[1]!.finish();
  await sleep(100);
  t.equal(calls.length, 2, 'no commit, no checkpoint');
  t.same(failures, []);
  await checkpointer.close();
});

t.test('a failed checkpoint is counted and reported once, and none start after it; close waits for a running one, not for a failed worker', async (t) => {
  const { calls, checkpoint } = manualCheckpoints();
  const failures: unknown[] = [];
  const checkpointer = new WalCheckpointer(checkpoint, 1, (error) => failures.push(error));
  checkpointer.committed();
  await sleep(20);
  calls[0]!.fail(new Error('disk I/O error'));
  await sleep(5);
  t.match(failures, [/disk I\/O error/]);
  t.equal(checkpointer.stats().failures, 1);
  checkpointer.committed();
  await sleep(20);
  t.equal(calls.length, 1, 'no checkpoint after a failure');
  await checkpointer.close();

  const closing = new WalCheckpointer(checkpoint, 1, (error) => failures.push(error));
  closing.committed();
  await sleep(20);
  t.equal(calls.length, 2);
  let closed = false;
  const closeDone = closing.close().then(() => (closed = true));
  await sleep(20);
  t.notOk(closed, 'close waits for the running checkpoint');
  calls[1]!.fail(new Error('terminated'));
  await closeDone;
  t.equal(failures.length, 1, 'a failure after close is not reported');
  closing.committed();
  await sleep(20);
  t.equal(calls.length, 2, 'no checkpoint after close');

  const broken = new WalCheckpointer(checkpoint, 1, (error) => failures.push(error));
  broken.committed();
  await sleep(20);
  t.equal(calls.length, 3);
  broken.fail(new Error('worker could not start'));
  t.equal(failures.length, 2, 'a failed worker is reported');
  await broken.close();
  t.pass('close returns at once after a failed worker, its checkpoint unsettled');
  t.same(broken.stats(), { checkpoints: 0, restarts: 0, failures: 1, walFrames: 0 });
});
