// The report: one table of every workload (s3g, its baseline, the peer, the ratios, the
// gateway's event-loop delay and peak RSS), errors as footnotes, each server's CPU per small
// request, the CPU budget a ratio to bare leaves, and the issue's targets marked met or missed.
import type { Measurement, Unit } from './workloads.js';

export interface Row {
  id: string;
  workload: string;
  unit: Unit;
  s3g: Measurement;
  baseline?: Measurement;
  peer?: Measurement;
}

/** A bare server that spends extraCpuUs more CPU per request, against the bare server (bench/run.ts budget). */
export interface BudgetRow {
  id: string;
  workload: string;
  extraCpuUs: number;
  burdened: Measurement;
  bare: Measurement;
}

export interface Environment {
  date: string;
  mode: 'full' | 'quick';
  nproc: number;
  cpu: string;
  node: string;
  /** Alternating rounds of each compared workload (BenchConfig.rounds). */
  rounds: number;
  /** 1-minute load average at the start and the end: other work on the machine skews the numbers. */
  loadAverage: { start: number; end?: number };
}

export interface TargetResult {
  target: string;
  actual: string;
  /** undefined: not measured (a workload failed or was skipped). */
  met: boolean | undefined;
}

/** How many times faster s3g is than `other`: for ms rows, other's time over s3g's. */
export function speedRatio(unit: Unit, s3g: Measurement | undefined, other: Measurement | undefined): number | undefined {
  if (s3g?.value === undefined || other?.value === undefined || s3g.value === 0 || other.value === 0) return undefined;
  return unit === 'ms' ? other.value / s3g.value : s3g.value / other.value;
}

const MiB = 1 << 20;

function formatValue(unit: Unit, m: Measurement): string {
  const v = m.value!;
  if (unit === 'ops/s') {
    const p99 = m.p99Ms !== undefined ? ` p99 ${m.p99Ms} ms` : '';
    return `${Math.round(v).toLocaleString('en-US')} ops/s${p99}${m.failed ? ` (${m.failed} failed)` : ''}`;
  }
  if (unit === 'MB/s') return `${v.toFixed(v < 100 ? 1 : 0)} MB/s`;
  return `${v.toFixed(v < 100 ? 2 : 0)} ms`;
}

/** The ratio of each round's pair of figures (measured minutes apart, not hours). */
export function roundRatios(unit: Unit, s3g: Measurement | undefined, other: Measurement | undefined): number[] {
  const mine = s3g?.rounds ?? [];
  const theirs = other?.rounds ?? [];
  if (mine.length < 2 || mine.length !== theirs.length) return [];
  return mine.flatMap((round, i) => speedRatio(unit, round, theirs[i]) ?? []);
}

/** An event-loop delay to a tenth of a millisecond (a median of two rounds is their mean). */
function loopMs(ms: number): string {
  return ms.toFixed(1);
}

/** A figure with, in parentheses, the lowest and highest of its rounds. */
function withSpread(figure: string, perRound: number[], digits: number): string {
  return perRound.length < 2 ? figure : `${figure} (${Math.min(...perRound).toFixed(digits)}–${Math.max(...perRound).toFixed(digits)})`;
}

function formatRatio(unit: Unit, s3g: Measurement | undefined, other: Measurement | undefined): string {
  const ratio = speedRatio(unit, s3g, other);
  if (ratio === undefined) return '';
  return withSpread(`${ratio.toFixed(2)}×`, roundRatios(unit, s3g, other), 2);
}

export function render(environment: Environment, rows: Row[], targets: TargetResult[], budgets: BudgetRow[] = []): string {
  const footnotes: string[] = [];
  const cell = (unit: Unit, m: Measurement | undefined): string => {
    if (!m) return '';
    if (m.error !== undefined) {
      footnotes.push(m.error);
      return `error [${footnotes.length}]`;
    }
    return m.value === undefined ? '' : formatValue(unit, m);
  };
  const header = ['workload', 's3g', 'baseline', 'ratio', 'peer (s3rver)', 's3g/peer', 'loop p99', 'peak RSS'];
  const body = rows.map((row) => [
    row.workload,
    cell(row.unit, row.s3g),
    cell(row.unit, row.baseline),
    formatRatio(row.unit, row.s3g, row.baseline),
    cell(row.unit, row.peer),
    formatRatio(row.unit, row.s3g, row.peer),
    row.s3g.loopP99Ms === undefined ? '' : withSpread(`${loopMs(row.s3g.loopP99Ms)} ms`, (row.s3g.rounds ?? []).flatMap((m) => m.loopP99Ms ?? []), 1),
    row.s3g.peakRssBytes === undefined ? '' : `${Math.round(row.s3g.peakRssBytes / MiB)} MiB`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const out = [
    `s3g benchmark, ${environment.date} (${environment.mode} mode): nproc ${environment.nproc}, ${environment.cpu}, Node ${environment.node}, ` +
      `load average ${environment.loadAverage.start.toFixed(2)} at start, ${environment.loadAverage.end?.toFixed(2) ?? '?'} at end`,
    '',
    line(header),
    `|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`,
    ...body.map(line),
    '',
    'Ratios compare speed (for ms rows: the other server\'s time over s3g\'s). MB/s = 10^6 bytes/s.',
    'Baselines: bare node:http (small objects); an ideal hash+write pipeline and a bare file stream (large objects).',
    'loop p99 / peak RSS: the s3g gateway process during that workload (admin /stats).',
  ];
  if (environment.rounds > 1) {
    out.push(
      `Figures are medians of ${environment.rounds} rounds run in turn (s3g, baseline, peer, s3g, ...); in parentheses, the lowest and ` +
        'highest ratio of one round\'s pair, and of one round\'s loop p99. Peak RSS: the highest round. Listings: medians of their pages, one round.',
    );
  }
  if (environment.mode === 'quick') out.push('Quick mode: tiny sizes and short loads; the numbers only show that the suite runs.');
  out.push(...cpuLines(rows), ...budgetLines(budgets));
  if (footnotes.length > 0) out.push('', ...footnotes.map((f, i) => `[${i + 1}] ${f}`));
  const targetWidth = Math.max(...targets.map((t) => t.target.length));
  out.push('', 'Targets (issue "Throughput"):');
  for (const t of targets) {
    const mark = t.met === undefined ? 'not measured' : t.met ? 'met' : 'MISSED';
    out.push(`  ${t.target.padEnd(targetWidth)}  ${mark.padEnd(12)}  ${t.actual}`);
  }
  return out.join('\n');
}

/** Each server's CPU per request, on the rows where s3g's was counted (one gateway process). */
function cpuLines(rows: Row[]): string[] {
  const columns = [['s3g', 's3g'], ['baseline', 'bare'], ['peer', 's3rver']] as const;
  const lines = rows.flatMap((row) => {
    if (row.s3g.cpuUsPerOp === undefined) return [];
    const cells = columns.flatMap(([column, name]) => {
      const measurement = row[column];
      if (measurement?.cpuUsPerOp === undefined) return [];
      const { cpuUsPerOp, mainThreadUsPerOp, mainThreadBusy } = measurement;
      const main = mainThreadUsPerOp === undefined || mainThreadBusy === undefined ? '' : ` (main thread ${Math.round(mainThreadUsPerOp)}, ${Math.round(mainThreadBusy * 100)}% busy)`;
      return [`${name} ${Math.round(cpuUsPerOp)} µs${main}`];
    });
    return [`  ${row.workload}: ${cells.join(', ')}`];
  });
  return lines.length === 0 ? [] : ['', 'CPU per request (each server\'s process, all its threads, over the load; in parentheses its main thread, which runs the event loop, and how much of the load\'s time that thread was on a core; the load generator shares the machine):', ...lines];
}

function budgetLines(budgets: BudgetRow[]): string[] {
  if (budgets.length === 0) return [];
  const lines = budgets.map((b) => {
    const failure = b.burdened.error ?? b.bare.error;
    const cpu = b.burdened.cpuUsPerOp === undefined || b.bare.cpuUsPerOp === undefined ? '' : ` (CPU per request ${Math.round(b.burdened.cpuUsPerOp)} µs against ${Math.round(b.bare.cpuUsPerOp)})`;
    return `  ${b.workload}, ${b.extraCpuUs} µs more per request: ${failure === undefined ? formatRatio('ops/s', b.burdened, b.bare) + cpu : `error: ${failure}`}`;
  });
  return ['', 'Budget: bare node:http made to spend more CPU per request, against itself (what a ratio to bare leaves a server for its own work):', ...lines];
}

export function evaluateTargets(rows: Row[]): TargetResult[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const results: TargetResult[] = [];
  const ratioOf = (id: string): number | undefined => {
    const row = byId.get(id);
    return row && speedRatio(row.unit, row.s3g, row.baseline);
  };
  /** Judged on the default configuration; `variant` (another row of the same workload) is shown beside it. */
  const ratioTarget = (target: string, id: string, minimum: number, variant?: { id: string; label: string }): void => {
    const ratio = ratioOf(id);
    const other = variant && ratioOf(variant.id);
    const actual = (ratio === undefined ? 'no ratio' : `${ratio.toFixed(2)}×`) + (other === undefined ? '' : ` (${variant!.label}: ${other.toFixed(2)}×)`);
    results.push({ target, actual, met: ratio === undefined ? undefined : ratio >= minimum });
  };
  ratioTarget('small PUT >= 0.35x bare PUT', 'small-put', 0.35, { id: 'small-put-2p', label: '2 gateway processes' });
  ratioTarget('small GET >= 0.5x bare GET', 'small-get', 0.5, { id: 'small-get-2p', label: '2 gateway processes' });
  ratioTarget('large signed PUT >= 0.7x ideal pipeline', 'large-put-signed', 0.7);
  ratioTarget('large GET >= 0.7x bare file stream', 'large-get', 0.7);

  const peerRows = rows.filter((r) => r.peer !== undefined);
  const peerRatios = peerRows.map((r) => ({ row: r, ratio: speedRatio(r.unit, r.s3g, r.peer) }));
  const measured = peerRatios.filter((p): p is { row: Row; ratio: number } => p.ratio !== undefined);
  const below = measured.filter((p) => p.ratio < 5);
  results.push({
    target: '>= 5x s3rver on every workload',
    actual: measured.length === 0
      ? 'no ratio'
      : `${measured.length - below.length}/${measured.length} workloads at >= 5x` +
        (below.length ? `; below: ${below.map((p) => `${p.row.id} ${p.ratio.toFixed(2)}x`).join(', ')}` : '') +
        (measured.length < peerRows.length ? `; ${peerRows.length - measured.length} without a ratio` : ''),
    met: measured.length === 0 ? undefined : below.length === 0,
  });

  const largePuts = rows.filter((r) => r.id.startsWith('large-put-') && r.s3g.loopP99Ms !== undefined && r.s3g.error === undefined);
  const worstLoop = Math.max(...largePuts.map((r) => r.s3g.loopP99Ms!));
  results.push({
    target: 'event-loop p99 <= 20 ms during large PUT',
    actual: largePuts.length === 0 ? 'not measured' : largePuts.map((r) => `${r.id.replace('large-put-', '')} ${loopMs(r.s3g.loopP99Ms!)} ms`).join(', '),
    met: largePuts.length === 0 ? undefined : worstLoop <= 20,
  });

  const rss = byId.get('rss');
  const peak = rss?.s3g.error === undefined ? rss?.s3g.peakRssBytes : undefined;
  results.push({
    target: 'peak RSS < 512 MiB, 32 concurrent large uploads',
    actual: peak === undefined ? 'not measured' : `${Math.round(peak / MiB)} MiB`,
    met: peak === undefined ? undefined : peak < 512 * MiB,
  });

  const lists = rows.filter((r) => r.id.startsWith('list-'));
  const listed = lists.filter((r) => r.s3g.value !== undefined);
  results.push({
    target: 'ListObjectsV2 page of 1000 < 50 ms median',
    actual: lists.map((r) => `${r.id.replace('list-', '')} ${r.s3g.value === undefined ? 'error' : `${r.s3g.value.toFixed(1)} ms`}`).join(', '),
    met: listed.some((r) => r.s3g.value! >= 50) ? false : lists.length > 0 && listed.length === lists.length ? true : undefined,
  });
  return results;
}
