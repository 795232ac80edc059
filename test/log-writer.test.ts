// The log destination: access lines arrive whole and in order, in large writes; a quiet
// process's still go out within flushMs; any other line goes out at the end of its turn; an
// exit writes what is pending; a reader that stops reading costs dropped lines (counted), never
// unbounded memory or a stalled caller; a descriptor that refuses writes stops the logging,
// not the process.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { LogWriter } from '../src/observability/log-writer.js';
import { waitFor } from './helpers/wait.js';

const DIST_LOG_WRITER = fileURLToPath(new URL('../dist/observability/log-writer.js', import.meta.url));

function tempFile(t: Test): { path: string; fd: number } {
  const dir = mkdtempSync(join(tmpdir(), 's3g-log-writer-'));
  const path = join(dir, 'log');
  const fd = openSync(path, 'a');
  t.teardown(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, fd };
}

const flushed = (writer: LogWriter): Promise<void> => new Promise((resolve) => writer.flush(() => resolve()));
const line = (i: number): string => `${JSON.stringify({ i, text: `line ${i} ünïcødé ✓` })}\n`;

t.test('lines from many turns arrive whole and in order', async (t) => {
  const { path, fd } = tempFile(t);
  const writer = new LogWriter(fd, { bufferBytes: 4096, flushMs: 60_000 });
  const expected: string[] = [];
  for (let turn = 0; turn < 50; turn++) {
    for (let i = 0; i < 20; i++) {
      const text = line(turn * 20 + i);
      expected.push(text);
      writer.writeBatched(text);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Full buffers go out on their own (through the thread pool, for a file), long before flushMs.
  await waitFor('the first full buffers', () => readFileSync(path, 'utf8').length > 0, 5_000, 10);
  const early = readFileSync(path, 'utf8');
  t.ok(expected.join('').startsWith(early) && early.endsWith('\n'), 'full buffers are written, whole lines, without waiting for a flush');
  await flushed(writer);
  t.equal(readFileSync(path, 'utf8'), expected.join(''), 'everything, in order, after flush');
});

t.test('an access line waits for the timer; any other line goes out at the end of its turn, taking it along', async (t) => {
  const { path, fd } = tempFile(t);
  const writer = new LogWriter(fd, { bufferBytes: 1 << 20, flushMs: 300 });
  const written = (): string => readFileSync(path, 'utf8');
  writer.writeBatched(line(1));
  await sleep(50);
  t.equal(written(), '', 'an access line waits while the buffer is far from full');
  writer.write(line(2));
  await sleep(50);
  t.equal(written(), line(1) + line(2), 'a warning goes out at once, after the line before it');
  writer.writeBatched(line(3));
  await sleep(50);
  t.equal(written(), line(1) + line(2), 'the next access line waits again');
  await sleep(400);
  t.equal(written(), line(1) + line(2) + line(3), 'written by the timer');
});

t.test('an exit writes what is pending, even lines of the same turn', async (t) => {
  const { path } = tempFile(t);
  const script = `
    import { openSync } from 'node:fs';
    import { LogWriter } from ${JSON.stringify(DIST_LOG_WRITER)};
    const writer = new LogWriter(openSync(${JSON.stringify(path)}, 'a'), { bufferBytes: 1 << 20, flushMs: 60_000 });
    for (let i = 0; i < 1000; i++) writer.writeBatched('line ' + i + '\\n');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
  const code = await new Promise((resolve) => child.once('exit', resolve));
  t.equal(code, 0);
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  t.equal(lines.length, 1000, 'every line');
  t.equal(lines[999], 'line 999');
});

// A writer in a child of its own, its descriptor a shell's pipe (blocking as the shell makes it;
// under tap, node starts with it non-blocking already, cause unknown) whose reader sleeps
// READER_SLEEP_MS first. The child writes how long its 200 turns of logging
// took, and the longest its event loop was held, to the file REPORT.
const READER_SLEEP_MS = 2000;
const stalledReaderWriter = (fd: number): string => `
  import { writeFileSync } from 'node:fs';
  import { LogWriter } from ${JSON.stringify(DIST_LOG_WRITER)};
  const writer = new LogWriter(${fd}, { bufferBytes: 1024, flushMs: 20, maxPendingBytes: 256 * 1024 });
  let lastTick = performance.now();
  let longestGap = 0;
  const ticker = setInterval(() => {
    longestGap = Math.max(longestGap, performance.now() - lastTick);
    lastTick = performance.now();
  }, 5);
  const text = 'x'.repeat(999) + '\\n';
  const started = performance.now();
  for (let turn = 0; turn < 200; turn++) {
    for (let i = 0; i < 10; i++) writer.writeBatched(text);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const busyMs = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, ${READER_SLEEP_MS} + 500));
  writer.write('{"last":true}\\n');
  writer.flush(() => {
    clearInterval(ticker);
    writeFileSync(process.env.REPORT, JSON.stringify({ busyMs, longestGap }));
  });
`;

for (const { fd, how } of [
  { fd: 2, how: 'stderr, written in the event loop thread' },
  { fd: 3, how: 'another pipe, written through the thread pool' },
]) {
  t.test(`a reader that stops reading (${how}): lines past maxPendingBytes are dropped and counted, the event loop never waits, logging resumes`, async (t) => {
    const { path } = tempFile(t);
    const report = `${path}.report`;
    const pipeline = `"$NODE" --input-type=module -e "$SCRIPT" ${fd}>&1 >/dev/null | { sleep ${READER_SLEEP_MS / 1000}; cat > "$LOG"; }`;
    // Nothing of tap's environment (its NODE_OPTIONS preloads): the child runs the built writer alone.
    const env = { PATH: process.env.PATH, NODE: process.execPath, SCRIPT: stalledReaderWriter(fd), LOG: path, REPORT: report };
    const shell = spawn('sh', ['-c', pipeline], { stdio: 'inherit', env });
    t.equal(await new Promise((resolve) => shell.once('exit', resolve)), 0);
    const { busyMs, longestGap } = JSON.parse(readFileSync(report, 'utf8')) as { busyMs: number; longestGap: number };
    t.ok(busyMs < READER_SLEEP_MS / 2, `the writer never waited for the reader (${Math.round(busyMs)} ms)`);
    t.ok(longestGap < READER_SLEEP_MS / 2, `nor did its event loop (longest gap ${Math.round(longestGap)} ms)`);
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    const notes = lines.filter((l) => l.includes('log lines dropped')).map((l) => JSON.parse(l) as { level: string; dropped: number });
    t.ok(notes.length > 0 && notes.every((n) => n.level === 'warn' && n.dropped > 0), 'a warning says how many lines were dropped');
    const dropped = notes.reduce((sum, n) => sum + n.dropped, 0);
    const kept = lines.filter((l) => l === 'x'.repeat(999)).length;
    t.equal(kept + dropped, 2000, 'every line either written whole or counted as dropped');
    t.equal(lines.at(-1), '{"last":true}', 'and logging goes on');
  });
}

t.test('processes sharing one pipe (gateway workers, datanodes) never mix their lines, even when the reader lags', async (t) => {
  const { path } = tempFile(t);
  const reader = spawn('sh', ['-c', `sleep 1; cat > ${JSON.stringify(path)}`], { stdio: ['pipe', 'inherit', 'inherit'] });
  const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  const script = (tag: string): string => `
    import { LogWriter } from ${JSON.stringify(DIST_LOG_WRITER)};
    const writer = new LogWriter(2, { bufferBytes: 16384, flushMs: 20 });
    let i = 0;
    const turn = () => {
      for (let k = 0; k < 40; k++) writer.writeBatched(JSON.stringify({ tag: '${tag}', i: i++, pad: 'x'.repeat(250) }) + '\\n');
      if (i < 20000) setImmediate(turn);
      else writer.flush(() => process.exit(0));
    };
    turn();
  `;
  const writers = ['a', 'b', 'c', 'd'].map((tag) => spawn(process.execPath, ['--input-type=module', '-e', script(tag)], { stdio: ['ignore', 'ignore', fd] }));
  await Promise.all(writers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
  reader.stdin!.end();
  await new Promise((resolve) => reader.once('exit', resolve));
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  const mangled = lines.filter((l) => {
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
  t.same(mangled.slice(0, 3), [], 'every line whole');
  t.equal(lines.length, 80_000, 'every line of every writer');
});

t.test('a descriptor that refuses writes (a reader gone, EPIPE; here EBADF): logging stops quietly, flush still answers', async (t) => {
  const { path } = tempFile(t);
  const readOnly = openSync(path, 'r');
  t.teardown(() => closeSync(readOnly));
  const writer = new LogWriter(readOnly, { bufferBytes: 16, flushMs: 20 });
  writer.write(line(1));
  await flushed(writer);
  writer.write(line(2));
  await flushed(writer);
  writer.flushSync();
  t.equal(readFileSync(path, 'utf8'), '', 'nothing written, nothing thrown, no hang');
});
