// s3g admin status and s3g admin purge: read a running server's admin port and print the
// cluster at a glance, or start a purge pass and follow its progress.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterStatus } from '../observability/status.js';
import { formatBytes, formatDuration } from '../observability/progress.js';

async function fetchStatus(adminUrl: string): Promise<ClusterStatus> {
  let res: Response;
  try {
    res = await fetch(new URL('/api/status', adminUrl), { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    throw new Error(`cannot reach the admin port at ${adminUrl}: ${(error as Error).cause ?? (error as Error).message}`);
  }
  if (!res.ok) throw new Error(`${adminUrl}/api/status: HTTP ${res.status}`);
  return (await res.json()) as ClusterStatus;
}

function table(rows: string[][], rightAligned: Set<number>): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => '  ' + r.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

const rate = (n: number | undefined | null, unit: string): string => (n === undefined || n === null ? '-' : `${n.toFixed(1)} ${unit}/s`);

export function formatStatus(s: ClusterStatus): string {
  const lines: string[] = [];
  const ready = s.readiness.ready ? 'ready' : `NOT READY (${s.readiness.reasons.join('; ')})`;
  lines.push(`s3g cluster: ${ready}`);
  lines.push('');
  lines.push(`gateways (${s.gateways.length})`);
  lines.push(
    table(
      [
        ['GATEWAY', 'S3', 'VERSION', 'UP', 'REQ/S', 'IN/S', 'OUT/S', 'IN FLIGHT', 'HASH QUEUE', 'LOOP P99'],
        ...s.gateways.map((g) => [
          g.id, g.s3Url, g.version, formatDuration(g.uptimeSeconds), g.requestsPerSecond.toFixed(1), formatBytes(g.bytesInPerSecond), formatBytes(g.bytesOutPerSecond),
          String(g.inFlight), String(g.hashPool.queueSize), `${g.eventLoopDelayP99Ms} ms`,
        ]),
      ],
      new Set([3, 4, 5, 6, 7, 8, 9]),
    ).trimEnd(),
  );
  const live = s.datanodes.filter((d) => d.state === 'live').length;
  lines.push('');
  lines.push(`datanodes (${live} live of ${s.datanodes.length})`);
  if (s.datanodes.length > 0) {
    lines.push(
      table(
        [
          ['ID', 'ADDRESS', 'STATE', 'USED', 'CAPACITY', 'USE%', 'HEARTBEAT'],
          ...s.datanodes.map((d) => [
            d.id, d.address, d.state, formatBytes(d.usedBytes), formatBytes(d.capacityBytes),
            d.capacityBytes > 0 ? `${((100 * d.usedBytes) / d.capacityBytes).toFixed(1)}%` : '-',
            `${formatDuration((s.generatedAt - d.lastHeartbeat) / 1000)} ago`,
          ]),
        ],
        new Set([3, 4, 5, 6]),
      ).trimEnd(),
    );
  }
  lines.push('');
  const age = s.statsAt ? ` (counted ${formatDuration((s.generatedAt - s.statsAt) / 1000)} ago)` : ' (not counted yet)';
  lines.push(`buckets ${s.totals.buckets}, objects ${s.totals.objects}, bytes ${formatBytes(s.totals.bytes)} (${s.totals.bytes})${age}`);
  if (s.openKeys > 0) lines.push(`uploads in flight or unfinished: ${s.openKeys}`);
  const r = s.replication;
  if (r) {
    const health =
      r.underReplicated === 0
        ? `healthy: all ${r.blocks} blocks have ${r.factor} live replica${r.factor === 1 ? '' : 's'}`
        : `${r.underReplicated} of ${r.blocks} blocks below ${r.factor} live replicas (${r.lost} with none), re-replicating ${rate(r.rate, 'blocks')}, ETA ${formatDuration(r.etaSeconds)}`;
    lines.push(`replication: ${health}`);
  }
  const p = s.purge;
  if (p) {
    lines.push(
      p.backlog === 0
        ? `purge: deleted-block log empty${p.running ? ' (pass running)' : ''}`
        : `purge: ${p.backlog} replicas waiting, ${p.done} removed, ${rate(p.rate, 'replicas')}, ETA ${formatDuration(p.etaSeconds)}${p.running ? ' (pass running)' : ''}`,
    );
  }
  for (const svc of s.services ?? []) {
    const work = Object.entries(svc.lastPass).map(([unit, n]) => `${unit} ${n}`).join(', ');
    const last = svc.lastPassAt ? `, last ${formatDuration((s.generatedAt - svc.lastPassAt) / 1000)} ago${work ? `: ${work}` : ''}` : '';
    lines.push(`service ${svc.name}: ${svc.leader ? 'runs here' : 'runs elsewhere (lease held by another gateway)'}, ${svc.passes} passes${last}`);
  }
  return lines.join('\n') + '\n';
}

export async function adminStatus(adminUrl: string, json: boolean): Promise<number> {
  const s = await fetchStatus(adminUrl);
  process.stdout.write(json ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
  return s.readiness.ready ? 0 : 3;
}

/** Starts a purge pass on the server and follows the deleted-block log until the pass is over. */
export async function adminPurge(adminUrl: string, json: boolean, out: NodeJS.WriteStream = process.stderr): Promise<number> {
  const before = await fetchStatus(adminUrl);
  const started = Date.now();
  const res = await fetch(new URL('/api/purge', adminUrl), { method: 'POST', signal: AbortSignal.timeout(10_000) });
  if (res.status !== 202) throw new Error(`${adminUrl}/api/purge: HTTP ${res.status}`);
  const waiting = before.purge?.backlog ?? 0;
  let last = before;
  for (;;) {
    await sleep(500);
    last = await fetchStatus(adminUrl);
    const p = last.purge;
    if (!p) break;
    const done = Math.max(0, waiting - p.backlog);
    out.write(`purge: ${done}/${waiting} replicas removed, ${p.backlog} waiting, ${rate(p.rate, 'replicas')}, ETA ${p.backlog === 0 ? '0s' : formatDuration(p.etaSeconds)}\n`);
    if (!p.running) break;
  }
  const left = last.purge?.backlog ?? 0;
  const summary = { removed: Math.max(0, waiting - left), waiting: left, seconds: (Date.now() - started) / 1000 };
  process.stdout.write(
    json ? JSON.stringify(summary) + '\n' : `purge pass done: ${summary.removed} replicas removed, ${left} still waiting, ${formatDuration(summary.seconds)}\n`,
  );
  return 0;
}
