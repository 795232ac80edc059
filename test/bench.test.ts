// The benchmark suite: how rounds combine into one figure and how the table shows them, then
// `bench/run.ts --quick` end to end (two rounds, so the combining runs on real measurements):
// every workload measured on every server it names, the JSON complete, the targets judged.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers/server.js';
import { run } from './helpers/exec.js';
import { combineRounds, median } from '../bench/rounds.js';
import { render, roundRatios, type BudgetRow, type Environment, type Row } from '../bench/table.js';
import type { Measurement } from '../bench/workloads.js';

t.test('median: the middle value, or the mean of the two middle ones', async (t) => {
  t.equal(median([5]), 5);
  t.equal(median([9, 1, 5]), 5, 'unsorted input');
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.throws(() => median([]), /no values/);
});

t.test('combineRounds', async (t) => {
  const single: Measurement = { value: 7, p99Ms: 3, loopP99Ms: 4 };
  t.same(combineRounds([single]), single, 'one round is the figure as measured');

  const rounds: Measurement[] = [
    { value: 300, p99Ms: 40, loopP99Ms: 9, peakRssBytes: 200, failed: 1 },
    { value: 100, p99Ms: 60, loopP99Ms: 21, peakRssBytes: 250 },
    { value: 200, p99Ms: 50, loopP99Ms: 12, peakRssBytes: 240, failed: 2 },
  ];
  t.same(
    combineRounds(rounds),
    { rounds, value: 200, p99Ms: 50, loopP99Ms: 12, peakRssBytes: 250, failed: 3 },
    'medians of the values, request p99s and loop p99s; the highest peak RSS; failed requests summed; each round kept',
  );
  t.equal(combineRounds([{ value: 1, loopP99Ms: 5 }, { value: 3 }]).loopP99Ms, undefined, 'no median of a number some rounds lack');

  const failure = combineRounds([{ value: 1 }, { error: 'large-get on s3g: HTTP 500' }]);
  t.equal(failure.value, undefined, 'a failed round leaves no value');
  t.equal(failure.error, 'round 2 of 2: large-get on s3g: HTTP 500', 'and says which round failed');
  t.throws(() => combineRounds([]), /no rounds/);
});

t.test('the table shows medians and the spread of the rounds\' own ratios', async (t) => {
  const rows: Row[] = [
    {
      id: 'large-get',
      workload: '256 MiB ×4 GET',
      unit: 'MB/s',
      s3g: combineRounds([{ value: 400, loopP99Ms: 8 }, { value: 300, loopP99Ms: 22.04 }, { value: 350, loopP99Ms: 9.5 }]),
      baseline: combineRounds([{ value: 400 }, { value: 500 }, { value: 350 }]),
    },
    { id: 'list-first', workload: 'ListObjectsV2', unit: 'ms', s3g: { value: 10 }, peer: { value: 50 } },
  ];
  t.same(roundRatios('MB/s', rows[0]!.s3g, rows[0]!.baseline), [1, 0.6, 1], 'each round\'s s3g over its baseline');
  t.same(roundRatios('ms', rows[1]!.s3g, rows[1]!.peer), [], 'no spread for a single round');
  const environment: Environment = { date: '2026-11-27T00:00:00Z', mode: 'full', nproc: 2, cpu: 'test', node: 'v20', rounds: 3, loadAverage: { start: 1 } };
  const table = render(environment, rows, []);
  t.match(table, /350 MB\/s \| +400 MB\/s \| 0\.88× \(0\.60–1\.00\)/, 'median over median, then the lowest and highest round ratio');
  t.match(table, /\| 9\.5 ms \(8\.0–22\.0\) \|/, 'the median loop p99, then the lowest and highest round');
  t.match(table, /10\.00 ms \|.*50\.00 ms \| +5\.00× \|/, 'ms rows: the other server\'s time over s3g\'s, without a spread');
  t.match(table, /Figures are medians of 3 rounds/);
  t.notMatch(render({ ...environment, rounds: 1 }, rows, []), /Figures are medians/, 'one round: no word about rounds');
});

t.test('the report counts each server\'s CPU per request and what a CPU budget leaves of bare', async (t) => {
  const environment: Environment = { date: '2026-11-27T00:00:00Z', mode: 'full', nproc: 2, cpu: 'test', node: 'v20', rounds: 2, loadAverage: { start: 1 } };
  const rows: Row[] = [
    {
      id: 'small-get',
      workload: '4 KiB GET',
      unit: 'ops/s',
      s3g: { value: 8000, cpuUsPerOp: 118.4, mainThreadUsPerOp: 101.6, mainThreadBusy: 0.926 },
      baseline: { value: 24000, cpuUsPerOp: 27.2 },
      peer: { value: 1600 },
    },
    { id: 'large-get', workload: '256 MiB ×4 GET', unit: 'MB/s', s3g: { value: 400 }, baseline: { value: 350 } },
    { id: 'small-get-2p', workload: '4 KiB GET with --gateway-processes 2', unit: 'ops/s', s3g: { value: 9000 }, baseline: { value: 24000, cpuUsPerOp: 30 } },
  ];
  const budgets: BudgetRow[] = [
    {
      id: 'budget-get-40us',
      workload: '4 KiB GET',
      extraCpuUs: 40,
      burdened: combineRounds([{ value: 10_000, cpuUsPerOp: 75 }, { value: 12_000, cpuUsPerOp: 79 }]),
      bare: combineRounds([{ value: 25_000, cpuUsPerOp: 27 }, { value: 24_000, cpuUsPerOp: 29 }]),
    },
    { id: 'budget-put-80us', workload: '4 KiB PUT', extraCpuUs: 80, burdened: { error: 'budget-put-80us on bare: HTTP 500' }, bare: { value: 20_000 } },
  ];
  const table = render(environment, rows, [], budgets);
  t.match(table, /\n {2}4 KiB GET: s3g 118 µs \(main thread 102, 93% busy\), bare 27 µs\n/, 'the servers that counted, rounded, with their main thread where counted; none for a row without counts');
  t.notMatch(table, /256 MiB ×4 GET: /, 'no CPU line for a row without counts');
  t.notMatch(table, /--gateway-processes 2: /, 'nor for one whose gateway was not counted');
  t.match(table, /4 KiB GET, 40 µs more per request: 0\.45× \(0\.40–0\.50\) \(CPU per request 77 µs against 28\)/, 'the ratio of medians, its spread, and the CPU both spent');
  t.match(table, /4 KiB PUT, 80 µs more per request: error: budget-put-80us on bare: HTTP 500/, 'a failed budget says why');
  t.notMatch(render(environment, rows.slice(1), [], []), /CPU per request|Budget/, 'neither section without figures');
});

interface BenchResults {
  environment: Environment;
  rows: Row[];
  budgets: BudgetRow[];
  targets: { target: string; met: boolean | undefined }[];
}

t.test('bench/run.ts --quick --rounds 2 measures every workload', async (t) => {
  const results = tempDir('s3g-test-bench-');
  // The bench bounds every load; the timeout is a last resort.
  const bench = await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--rounds', '2', '--results', results], { cwd: ROOT, timeoutMs: 480_000 });
  const { code, stderr } = bench;
  const stdout = bench.stdout.toString();
  t.equal(code, 0, 'exits 0', { stderr: stderr.slice(-4000) });
  const files = readdirSync(results).filter((f) => f.endsWith('-quick.json'));
  t.equal(files.length, 1, 'one JSON file in --results');
  const json = JSON.parse(readFileSync(join(results, files[0]!), 'utf8')) as BenchResults;
  t.equal(json.environment.rounds, 2);

  const ids = json.rows.map((r) => r.id);
  const compared = ['small-put', 'small-get', 'small-head', 'large-put-signed', 'large-put-unsigned', 'large-put-sdk', 'large-get', 'large-get-grpc', 'small-put-2p', 'small-get-2p'];
  const listings = ['list-first', 'list-middle', 'list-root-delimiter', 'list-directory-delimiter'];
  t.same(ids.filter((id) => compared.includes(id)).sort(), [...compared].sort(), 'every compared workload has a row');
  t.ok(ids.includes('rss'), 'the peak RSS row');
  t.ok(listings.every((id) => ids.includes(id)), 'the listing rows');
  t.ok(ids.includes('ingest-put-new'), 'the PUTs of new keys into the listing bucket');
  t.ok(ids.filter((id) => id.startsWith('fso-')).length === 6, 'the FSO and OBS rows');

  for (const row of json.rows) {
    t.equal(row.s3g.error, undefined, `${row.id}: s3g measured`);
    t.ok(row.s3g.value !== undefined && row.s3g.value > 0, `${row.id}: s3g has a figure`);
    if (compared.includes(row.id)) {
      t.equal(row.s3g.rounds?.length, 2, `${row.id}: two rounds of s3g`);
      t.equal(row.baseline?.error, undefined, `${row.id}: baseline measured`);
      t.equal(row.baseline?.rounds?.length, 2, `${row.id}: two rounds of the baseline`);
      t.equal(row.s3g.value, median(row.s3g.rounds!.map((m) => m.value!)), `${row.id}: the figure is the median of its rounds`);
    } else {
      t.equal(row.s3g.rounds, undefined, `${row.id}: one round`);
    }
  }
  for (const id of ['small-put', 'small-get', 'small-head']) {
    const row = json.rows.find((r) => r.id === id)!;
    for (const column of ['s3g', 'baseline', 'peer'] as const) {
      const { cpuUsPerOp, mainThreadUsPerOp, mainThreadBusy } = row[column]!;
      t.ok(cpuUsPerOp! > 0, `${id}: ${column}'s CPU per request counted`);
      // /proc counts in ticks of 10 ms, each thread's and the process's rounded on their own.
      t.ok(mainThreadUsPerOp! > 0 && mainThreadUsPerOp! <= cpuUsPerOp! * 1.1, `${id}: ${column}'s main thread counted, within the process's`);
      t.ok(mainThreadBusy! > 0 && mainThreadBusy! <= 1.05, `${id}: ${column}'s main thread busy for part of the load`);
    }
  }
  t.equal(json.rows.find((r) => r.id === 'small-get-2p')!.s3g.cpuUsPerOp, undefined, 'no CPU count for a gateway of several processes');
  t.same(json.budgets.map((b) => b.id), ['budget-put-40us', 'budget-put-80us', 'budget-get-40us', 'budget-get-80us'], 'every budget measured');
  for (const budget of json.budgets) {
    t.equal(budget.burdened.rounds?.length, 2, `${budget.id}: two rounds of the burdened server`);
    t.ok(budget.burdened.value! < budget.bare.value!, `${budget.id}: the busier server answers fewer requests`);
    t.ok(budget.burdened.cpuUsPerOp! > budget.bare.cpuUsPerOp! + budget.extraCpuUs / 2, `${budget.id}: and spends the extra CPU on each`);
  }
  t.match(stdout, /Budget: bare node:http made to spend more CPU per request/);
  // The peer answers every workload it is given except the SDK's aws-chunked PUT, which s3rver stores verbatim.
  for (const row of json.rows.filter((r) => r.peer !== undefined && r.id !== 'large-put-sdk')) {
    t.equal(row.peer!.error, undefined, `${row.id}: s3rver measured`);
  }
  t.equal(json.targets.length, 8, 'every target judged');
  t.ok(json.targets.every((target) => typeof target.met === 'boolean'), 'each met or missed, none left unmeasured');
  t.match(stdout, /Figures are medians of 2 rounds/, 'the table says what its figures are');
});

t.test('bench/run.ts --profile profiles the PUTs of new keys into the listing bucket', async (t) => {
  const results = tempDir('s3g-test-bench-profile-');
  const before = new Set(readdirSync(tmpdir()));
  const bench = await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--profile', '--only', '^ingest-put-new$', '--results', results], { cwd: ROOT, timeoutMs: 180_000 });
  const stdout = bench.stdout.toString();
  t.equal(bench.code, 0, 'exits 0', { stderr: bench.stderr.slice(-4000) });
  t.match(stdout, /\ningest-put-new: \d+\.\d ops\/s, loop p99 [\d.]+ ms/, 'the workload measured on the gateway being profiled');
  const main = /gateway main thread: (\d+) ms busy of (\d+) ms sampled/.exec(stdout);
  t.ok(main && Number(main[1]) > 0 && Number(main[1]) <= Number(main[2]), 'the main thread\'s busy time, within what was sampled');
  t.match(stdout, /%\s+\d+ ms {2}\S+ {2}dist\/metadata\//, 'its top functions include the metadata store\'s');
  const [summary] = readdirSync(results).filter((f) => f.endsWith('-quick-profile.json'));
  const json = JSON.parse(readFileSync(join(results, summary!), 'utf8')) as { measurements: { id: string }[]; profiles: { title: string }[] };
  t.same(json.measurements.map((m) => m.id), ['ingest-put-new'], 'the summary names the workload');
  t.ok(json.profiles.some((p) => p.title === 'gateway main thread'), 'and holds the main thread\'s profile');
  t.same(readdirSync(tmpdir()).filter((f) => f.startsWith('s3g-bench-profile-') && !before.has(f)), [], 'the fixture\'s data directory is removed');
});

t.test('bench/paired.ts serves two builds side by side and compares their CPU per request', async (t) => {
  const paired = await run(process.execPath, ['--import', 'tsx', 'bench/paired.ts', '--baseline', '.', '--workload', 'get,put', '--rounds', '2', '--duration', '1', '--connections', '4'], { cwd: ROOT, timeoutMs: 120_000 });
  const stdout = paired.stdout.toString();
  t.equal(paired.code, 0, 'exits 0', { stderr: paired.stderr.slice(-4000) });
  for (const method of ['GET', 'PUT']) {
    t.equal(stdout.match(new RegExp(`4 KiB ${method} round \\d: baseline \\d+ ops/s [\\d.]+ µs/op, this build \\d+ ops/s [\\d.]+ µs/op`, 'g'))?.length, 2, `${method}: two rounds, each with both servers' figures`);
    const ratio = Number(new RegExp(`4 KiB ${method}: CPU per request, this build / baseline: median ([\\d.]+)`).exec(stdout)?.[1]);
    t.ok(ratio > 0.5 && ratio < 2, `${method}: a build against itself comes out near 1 (${ratio})`);
  }
  const refused = await run(process.execPath, ['--import', 'tsx', 'bench/paired.ts', '--baseline', '/nonexistent'], { cwd: ROOT, timeoutMs: 60_000 });
  t.not(refused.code, 0, 'a baseline that is not a built checkout is refused');
  t.match(refused.stderr, /--baseline DIR: a built s3g checkout/);
});

t.test('bench/essentials.ts loads s3g, the essentials server over s3g\'s objects, and bare node:http in turn', async (t) => {
  const essentials = await run(process.execPath, ['--import', 'tsx', 'bench/essentials.ts', '--workload', 'get,put,head', '--rounds', '1', '--duration', '1', '--connections', '4'], { cwd: ROOT, timeoutMs: 180_000 });
  const stdout = essentials.stdout.toString();
  t.equal(essentials.code, 0, 'exits 0', { stderr: essentials.stderr.slice(-4000) });
  for (const method of ['GET', 'PUT', 'HEAD']) {
    t.match(stdout, new RegExp(`${method} round 1: s3g \\d+ ops/s \\(\\d+ µs\\), essentials \\d+ \\(\\d+ µs\\), bare \\d+ \\(\\d+ µs\\): s3g [\\d.]+×, essentials [\\d.]+× of bare`), `${method}: each server answered, none failed`);
    t.match(stdout, new RegExp(`${method} medians: s3g [\\d.]+× of bare at \\d+ µs per request, essentials [\\d.]+× at \\d+ µs, bare \\d+ µs`), `${method}: the medians`);
  }
});
