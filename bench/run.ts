// s3g's benchmark suite (`make bench`, `make bench-quick`): every server is started here,
// on 127.0.0.1, and stopped by its PID; every load is bounded in time. Prints one table to
// stdout (progress goes to stderr) and writes bench/results/<date>.json.
//
//   node --import tsx bench/run.ts [--quick] [--only REGEX] [--rounds N] [--results DIR] [--profile]
//
// --only runs the workloads whose id matches (a regular expression); --rounds sets how many
// alternating rounds each compared workload runs (full mode 3, quick 1); --results is where
// the JSON goes (default bench/results); --profile runs the large signed PUT (or the s3g
// workloads --only selects) against a gateway started with --cpu-prof and prints its top
// self-time functions instead.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startBaseline } from './baselines.js';
import { benchConfig, type BenchConfig } from './config.js';
import { createBucket, type Endpoint } from './endpoint.js';
import { metadataPath, populateListBucket } from './list-fixture.js';
import { openMetadataStore } from '../src/metadata/open.js';
import { peerUnavailable, startPeer, tmpfsWithRoom, type PeerServer } from './peer.js';
import { renderProfile, summariseProfile, type ProfileSummary } from './profile.js';
import { combineRounds } from './rounds.js';
import { ROOT, startS3g, tempDir, type S3gServer } from './s3g-server.js';
import { evaluateTargets, render, type BudgetRow, type Environment, type Row } from './table.js';
import {
  LIST_BUCKET,
  directoryListWorkload,
  largeGetWorkload,
  largePutWorkload,
  listDirectory,
  listKeys,
  listWorkload,
  renameWorkload,
  smallWorkload,
  type ListFixture,
  type ListCase,
  type Measurement,
  type PutMode,
  type SmallMethod,
  type Workload,
} from './workloads.js';

const RESULTS = join(ROOT, 'bench', 'results');

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const name = error.name && error.name !== 'Error' ? `${error.name}: ` : '';
  // fetch's own message ("fetch failed") says nothing; its cause says what failed.
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${status ? `HTTP ${status} ` : ''}${name}${error.message}${cause}`.replace(/\s+/g, ' ').slice(0, 300);
}

/** Servers started for one section, stopped (by PID, in reverse order) when it ends. */
class Servers {
  private readonly stops: (() => Promise<void>)[] = [];
  async add<T extends { stop(): Promise<void> }>(starting: Promise<T>): Promise<T> {
    const server = await starting;
    this.stops.push(() => server.stop());
    return server;
  }
  async stopAll(): Promise<void> {
    for (const stop of this.stops.reverse()) await stop().catch((error: unknown) => log(`stop failed: ${describe(error)}`));
  }
}

/** One server's share of a comparison: the workload, where it runs, and the gateway to watch (s3g's). */
interface Run {
  workload: Workload;
  endpoint: Endpoint;
  gateway?: S3gServer;
}

/** The extra CPU per request (µs) that the budget section makes bare servers spend. */
const BUDGET_EXTRA_CPU_US = [40, 80];

class Bench {
  readonly rows: Row[] = [];
  readonly budgets: BudgetRow[] = [];
  readonly notes: string[] = [];
  private readonly only: RegExp | undefined;

  constructor(readonly config: BenchConfig, only: string | undefined) {
    this.only = only === undefined ? undefined : new RegExp(only);
  }

  selected(id: string): boolean {
    return !this.only || this.only.test(id);
  }

  /** Prepares, then runs the workload; for s3g, inside a /stats window. Failures become the measurement's error. */
  async measure(workload: Workload, endpoint: Endpoint, gateway?: S3gServer, round = ''): Promise<Measurement> {
    log(`${workload.id} on ${endpoint.name}${round}`);
    try {
      const run = await workload.prepare(endpoint);
      await gateway?.stats(true);
      const measurement = await run();
      const stats = await gateway?.stats();
      if (stats) Object.assign(measurement, { loopP99Ms: stats.eventLoopDelayMs.p99, peakRssBytes: stats.peakRssBytes });
      return measurement;
    } catch (error) {
      log(`  ${workload.id} on ${endpoint.name} failed: ${describe(error)}`);
      if (gateway) log(`  the gateway's last output:\n${gateway.output().slice(-3000)}`);
      return { error: `${workload.id} on ${endpoint.name}: ${describe(error)}` };
    }
  }

  /**
   * One table row: s3g, its baseline (the row's workload unless another is given) and the
   * peer, in alternating rounds (config.rounds unless given); each figure combines its rounds
   * (rounds.ts). A server that failed a round sits out the rounds after it.
   */
  async compare(
    workload: Workload,
    s3g: S3gServer,
    options: { baseline?: { endpoint: Endpoint; workload?: Workload }; peer?: PeerServer; rounds?: number },
  ): Promise<void> {
    if (!this.selected(workload.id)) return;
    const runs: (Run & { column: 's3g' | 'baseline' | 'peer' })[] = [{ column: 's3g', workload, endpoint: s3g.endpoint, gateway: s3g }];
    if (options.baseline) runs.push({ column: 'baseline', workload: options.baseline.workload ?? workload, endpoint: options.baseline.endpoint });
    if (options.peer) runs.push({ column: 'peer', workload, endpoint: options.peer.endpoint });
    const [mine, ...others] = await this.inTurn(runs, options.rounds ?? this.config.rounds);
    const row: Row = { id: workload.id, workload: workload.title, unit: workload.unit, s3g: mine! };
    others.forEach((figure, i) => (row[runs[i + 1]!.column] = figure));
    this.rows.push(row);
    log(`  ${JSON.stringify(row)}`);
  }

  /**
   * Measures the runs in turn, round after round (a server that failed a round sits out the
   * rounds after it); each run's rounds combined into one figure (rounds.ts).
   */
  private async inTurn(runs: Run[], rounds: number): Promise<Measurement[]> {
    const measured = runs.map((): Measurement[] => []);
    for (let round = 1; round <= rounds; round++) {
      for (const [i, run] of runs.entries()) {
        if (measured[i]!.some((m) => m.error !== undefined)) continue;
        measured[i]!.push(await this.measure(run.workload, run.endpoint, run.gateway, rounds > 1 ? ` (round ${round} of ${rounds})` : ''));
      }
    }
    return measured.map(combineRounds);
  }

  /** The peer, or undefined with the reason noted (its column then stays empty). */
  async startPeer(servers: Servers, parentDir?: string): Promise<PeerServer | undefined> {
    const reason = peerUnavailable();
    if (reason) {
      if (!this.notes.includes(`peer: ${reason}`)) this.notes.push(`peer: ${reason}`);
      return undefined;
    }
    try {
      return await servers.add(startPeer({ parentDir }));
    } catch (error) {
      this.notes.push(`peer: s3rver did not start: ${describe(error)}`);
      return undefined;
    }
  }

  /** Small and large objects against s3g, the baselines and s3rver; peak RSS under 32 uploads. */
  async objects(): Promise<void> {
    const { config } = this;
    const servers = new Servers();
    try {
      const s3g = await servers.add(startS3g());
      const peer = await this.startPeer(servers);
      const bareSmall = await servers.add(startBaseline('small'));
      const bareLarge = await servers.add(startBaseline('large'));

      const idealPut = largePutWorkload('plain', config.large);
      for (const workload of objectWorkloads(config)) {
        if (!this.selected(workload.id)) continue;
        if (workload.id === 'rss') {
          // s3g's alone: one peak of 32 uploads.
          await this.compare(workload, s3g, { rounds: 1 });
          continue;
        }
        let baseline: { endpoint: Endpoint; workload?: Workload } | undefined;
        if (workload.id.startsWith('small-')) baseline = { endpoint: bareSmall.endpoint };
        else if (workload.id === 'large-get') baseline = { endpoint: bareLarge.endpoint }; // reads the files the plain PUT wrote
        // The bare server has no auth to vary: the ideal pipeline's plain PUT is every PUT mode's baseline.
        else if (workload.id.startsWith('large-put-')) baseline = { endpoint: bareLarge.endpoint, workload: idealPut };
        await this.compare(workload, s3g, { baseline, peer });
      }
      // The same GET with every byte through the datanode process, as a gateway on another host reads.
      const overGrpc = largeGetWorkload({ ...config.large, id: 'large-get-grpc', how: 'over gRPC (short-circuit-reads false)' });
      if (this.selected(overGrpc.id)) {
        const s3gOverGrpc = await servers.add(startS3g({ args: ['--short-circuit-reads', 'false'] }));
        await (await largePutWorkload('signed', config.large).prepare(s3gOverGrpc.endpoint))();
        await this.compare(overGrpc, s3gOverGrpc, { baseline: { endpoint: bareLarge.endpoint } });
      }
      // Small objects again with two processes on the S3 port, the lever for them (README, Gateway processes).
      const twoProcesses = (['PUT', 'GET'] as const)
        .map((method) => smallWorkload(config, method, { id: `small-${method.toLowerCase()}-2p`, how: 'with --gateway-processes 2' }))
        .filter((workload) => this.selected(workload.id));
      if (twoProcesses.length > 0) {
        const s3gTwo = await servers.add(startS3g({ args: ['--gateway-processes', '2'] }));
        for (const workload of twoProcesses) await this.compare(workload, s3gTwo, { baseline: { endpoint: bareSmall.endpoint } });
      }
    } finally {
      await servers.stopAll();
    }
  }

  /**
   * The small PUT and GET against bare servers that spend BUDGET_EXTRA_CPU_US more CPU per
   * request, each beside the bare server in alternating rounds: what a ratio to bare leaves
   * a server for all its own work on this machine, where the load generator takes its share.
   */
  async budget(): Promise<void> {
    const { config } = this;
    const cases = (['PUT', 'GET'] as const).flatMap((method) =>
      BUDGET_EXTRA_CPU_US.map((extraCpuUs) => ({ method, extraCpuUs, id: `budget-${method.toLowerCase()}-${extraCpuUs}us` })),
    ).filter((c) => this.selected(c.id));
    if (cases.length === 0) return;
    const servers = new Servers();
    try {
      const bare = await servers.add(startBaseline('small'));
      const burdened = new Map<number, Endpoint>();
      for (const { extraCpuUs } of cases) {
        if (!burdened.has(extraCpuUs)) burdened.set(extraCpuUs, (await servers.add(startBaseline('small', extraCpuUs))).endpoint);
      }
      for (const { method, extraCpuUs, id } of cases) {
        const workload = smallWorkload(config, method);
        const busy = { ...burdened.get(extraCpuUs)!, name: `bare + ${extraCpuUs} µs` };
        const [busyFigure, bareFigure] = await this.inTurn([{ workload, endpoint: busy }, { workload, endpoint: bare.endpoint }], config.rounds);
        const row: BudgetRow = { id, workload: workload.title, extraCpuUs, burdened: busyFigure!, bare: bareFigure! };
        this.budgets.push(row);
        log(`  ${JSON.stringify(row)}`);
      }
    } finally {
      await servers.stopAll();
    }
  }

  /**
   * ListObjectsV2 pages over a pre-populated bucket, on s3g and s3rver; then 4 KiB PUTs of new
   * keys, spread over its directories, into the same bucket: ingest into a large bucket.
   */
  async listing(): Promise<void> {
    const { config } = this;
    const cases: ListCase[] = ['first', 'middle', 'root-delimiter', 'directory-delimiter'];
    // The PUTs last: the listings see the fixture as it was written.
    const workloads = [...cases.map((c) => listWorkload(config, c)), ingestWorkload(config)].filter((w) => this.selected(w.id));
    if (workloads.length === 0) return;
    const servers = new Servers();
    const dataDir = tempDir('s3g-bench-list-');
    try {
      let started = performance.now();
      log(`populating s3g metadata with ${config.list.keys} keys`);
      await populateListBucket(listFixture(config), dataDir);
      this.notes.push(`list fixture: ${config.list.keys} keys written to s3g's metadata in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      const s3g = await servers.add(startS3g({ dataDir }));
      const tmpfs = tmpfsWithRoom(2 * config.list.keys);
      const peer = await this.startPeer(servers, tmpfs);
      if (peer) {
        started = performance.now();
        log(`populating s3rver with ${config.list.keys} keys`);
        await createBucket(peer.endpoint, LIST_BUCKET);
        peer.populate(LIST_BUCKET, listKeys(config.list));
        this.notes.push(
          `list fixture: ${config.list.keys} keys written to s3rver's directory${tmpfs ? ` (on ${tmpfs}, tmpfs)` : ''} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
      }
      // Each listing figure is already the median of many pages; the PUTs write new keys once.
      for (const workload of workloads) await this.compare(workload, s3g, { peer, rounds: 1 });
    } finally {
      await servers.stopAll();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  /**
   * FSO against OBS: one directory of a bucket of config.list.keys keys against one of a bucket
   * holding only that directory's worth, with delimiter '/'; and the rename of a directory of
   * 1 key against one of config.renameKeys keys (FSO only). s3g only: s3rver has no layouts.
   */
  async directories(): Promise<void> {
    const { config } = this;
    const { keys, directories } = config.list;
    const perDirectory = Math.ceil(keys / directories);
    const listings: ListFixture[] = (['OBS', 'FSO'] as const).flatMap((layout) => [
      { bucket: `dirs-${layout.toLowerCase()}-large`, layout, keys, directories },
      { bucket: `dirs-${layout.toLowerCase()}-small`, layout, keys: perDirectory, directories: 1 },
    ]);
    const renames: ListFixture[] = [1, config.renameKeys].map((n) => ({ bucket: `rename-${n}`, layout: 'FSO', keys: n, directories: 1 }));
    const dataDir = tempDir('s3g-bench-dirs-');
    const rename = (fixture: ListFixture) => async (from: string, to: string) => {
      // What `s3g admin rename` does: the store, beside the running gateway. Only the rename is timed.
      const store = await openMetadataStore(`sqlite:${metadataPath(dataDir)}`);
      try {
        const bucket = await store.getBucket('s3v', fixture.bucket);
        const started = performance.now();
        await store.rename(bucket!.id, from, to);
        return performance.now() - started;
      } finally {
        await store.close();
      }
    };
    const workloads = [
      ...listings.map((fixture) => ({ fixture, workload: directoryListWorkload(config, fixture) })),
      ...renames.map((fixture) => ({ fixture, workload: renameWorkload(config, fixture, rename(fixture)) })),
    ].filter(({ workload }) => this.selected(workload.id));
    const servers = new Servers();
    try {
      if (workloads.length === 0) return;
      for (const { fixture } of workloads) {
        const started = performance.now();
        log(`populating ${fixture.layout} bucket ${fixture.bucket} with ${fixture.keys} keys`);
        await populateListBucket(fixture, dataDir);
        this.notes.push(`${fixture.bucket}: ${fixture.keys} keys (${fixture.layout}) written to s3g's metadata in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
      const s3g = await servers.add(startS3g({ dataDir }));
      for (const { workload } of workloads) await this.compare(workload, s3g, { rounds: 1 });
    } finally {
      await servers.stopAll();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
}

function environment(config: BenchConfig): Environment {
  let nproc = availableParallelism();
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // no coreutils: the Node count stands
  }
  return {
    date: new Date().toISOString(),
    mode: config.quick ? 'quick' : 'full',
    nproc,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    rounds: config.rounds,
    loadAverage: { start: loadavg()[0]! },
  };
}

function resultFile(env: Environment, dir: string, suffix = ''): string {
  mkdirSync(dir, { recursive: true });
  return join(dir, `${env.date.slice(0, 19).replace(/:/g, '-')}${env.mode === 'quick' ? '-quick' : ''}${suffix}.json`);
}

const INGEST_ID = 'ingest-put-new';

/** The bucket of config.list.keys keys the listings read and ingestWorkload writes into. */
function listFixture(config: BenchConfig): ListFixture {
  return { bucket: LIST_BUCKET, layout: 'OBS', keys: config.list.keys, directories: config.list.directories };
}

/** 4 KiB PUTs of new keys, spread over the directories of listFixture's bucket. */
function ingestWorkload(config: BenchConfig): Workload {
  const newKeys = Array.from({ length: config.list.newKeys }, (_, i) => `${listDirectory(i % config.list.directories)}/new${String(i).padStart(6, '0')}`);
  return smallWorkload(
    config,
    'PUT',
    { id: INGEST_ID, how: `of new keys into the bucket of ${config.list.keys.toLocaleString('en-US')} keys` },
    { bucket: LIST_BUCKET, keys: newKeys },
  );
}

/** The objects section's workloads, in running order: the large GET reads what the signed PUT wrote. */
function objectWorkloads(config: BenchConfig): Workload[] {
  const rss = largePutWorkload('signed', { ...config.rss, id: 'rss', keyPrefix: 'rss' });
  rss.title = `peak RSS: ${rss.title}`;
  return [
    ...(['PUT', 'GET', 'HEAD'] satisfies SmallMethod[]).map((method) => smallWorkload(config, method)),
    ...(['signed', 'unsigned', 'sdk'] satisfies PutMode[]).map((mode) => largePutWorkload(mode, config.large)),
    largeGetWorkload(config.large),
    rss,
  ];
}

/**
 * The workloads matching `only` (default: the large signed PUT) against a gateway started
 * with --cpu-prof; summarises the self time of the gateway's threads and its datanodes.
 */
async function profile(config: BenchConfig, env: Environment, resultsDir: string, only = '^large-put-signed$'): Promise<void> {
  const dir = join(resultsDir, `profile-${env.date.slice(0, 19).replace(/:/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  const workloads = [...objectWorkloads(config), ingestWorkload(config)].filter((w) => new RegExp(only).test(w.id));
  if (workloads.length === 0) throw new Error(`no workload matches ${only}`);
  // The PUTs of new keys go into the listings' bucket, written beforehand as the full run does.
  const dataDir = workloads.some((w) => w.id === INGEST_ID) ? tempDir('s3g-bench-profile-') : undefined;
  let s3g: S3gServer;
  try {
    if (dataDir) await populateListBucket(listFixture(config), dataDir);
    s3g = await startS3g({ dataDir, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const bench = new Bench(config, undefined);
  const measurements: { id: string; measurement: Measurement }[] = [];
  try {
    for (const workload of workloads) measurements.push({ id: workload.id, measurement: await bench.measure(workload, s3g.endpoint, s3g) });
  } finally {
    await s3g.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread.
  const summaries: { title: string; summary: ProfileSummary }[] = [];
  for (const file of readdirSync(dir).sort()) {
    const match = /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(file);
    if (!match) continue;
    const pid = Number(match[1]);
    const title = pid === s3g.pid ? (match[2] === '0' ? 'gateway main thread' : `gateway worker thread ${match[2]}`) : `datanode process ${pid}`;
    summaries.push({ title, summary: summariseProfile(join(dir, file), ROOT, 15) });
  }
  const order = (t: string): number => (t.startsWith('gateway main') ? 0 : t.startsWith('gateway') ? 1 : 2);
  summaries.sort((a, b) => order(a.title) - order(b.title));
  const results = measurements.map(({ id, measurement: m }) =>
    `${id}: ${m.error ?? `${m.value?.toFixed(1)} ${workloads.find((w) => w.id === id)!.unit}, loop p99 ${m.loopP99Ms} ms, peak RSS ${Math.round((m.peakRssBytes ?? 0) / (1 << 20))} MiB`}`);
  process.stdout.write(`s3g CPU profile, ${env.date} (${env.mode} mode, load average ${env.loadAverage.start.toFixed(2)})\n${results.join('\n')}\n\n`);
  process.stdout.write(`${summaries.map((s) => renderProfile(s.title, s.summary)).join('\n\n')}\n`);
  const file = resultFile(env, resultsDir, '-profile');
  writeFileSync(file, JSON.stringify({ environment: env, measurements, profiles: summaries }, null, 2) + '\n');
  process.stdout.write(`\nprofiles in ${dir}\nsummary written to ${file}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      profile: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      results: { type: 'string', default: RESULTS },
    },
  });
  const config = benchConfig(values.quick);
  if (values.rounds !== undefined) {
    config.rounds = Number(values.rounds);
    if (!Number.isInteger(config.rounds) || config.rounds < 1) throw new Error(`--rounds ${values.rounds}: a whole number of at least 1`);
  }
  const env = environment(config);
  if (values.profile) return profile(config, env, values.results, values.only);

  const started = performance.now();
  const bench = new Bench(config, values.only);
  await bench.objects();
  await bench.budget();
  await bench.listing();
  await bench.directories();
  env.loadAverage.end = loadavg()[0]!;
  const targets = evaluateTargets(bench.rows);
  const notes = [...bench.notes, `total bench time ${((performance.now() - started) / 1000).toFixed(0)} s`];
  process.stdout.write(`${render(env, bench.rows, targets, bench.budgets)}\n\n${notes.map((n) => `note: ${n}`).join('\n')}\n`);
  const file = resultFile(env, values.results);
  writeFileSync(file, JSON.stringify({ environment: env, config, rows: bench.rows, budgets: bench.budgets, targets, notes }, null, 2) + '\n');
  process.stdout.write(`results written to ${file}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
