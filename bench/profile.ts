// Summarises V8 CPU profiles (node --cpu-prof): self time per function, the top first.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  function: string;
  /** file:line, relative to the repository when inside it. */
  location: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** totalMs less V8's (idle) samples, when the thread waited for work. */
  busyMs: number;
  top: SelfTime[];
}

export function summariseProfile(file: string, root: string, limit = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, SelfTime>();
  let totalUs = 0;
  let idleUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    totalUs += delta;
    const frame = nodes.get(id)?.callFrame;
    if (!frame) return;
    // A thread waiting for work: the shares are of the time it was doing some.
    if (frame.functionName === '(idle)') {
      idleUs += delta;
      return;
    }
    const url = frame.url.replace(/^file:\/\//, '').replace(root, '');
    const location = url ? `${url}:${frame.lineNumber + 1}` : '';
    const name = frame.functionName || '(anonymous)';
    const key = `${name} ${location}`;
    const entry = byFunction.get(key) ?? { function: name, location, ms: 0, percent: 0 };
    entry.ms += delta / 1000;
    byFunction.set(key, entry);
  });
  const busyMs = (totalUs - idleUs) / 1000;
  const top = [...byFunction.values()]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, limit)
    .map((e) => ({ ...e, ms: Math.round(e.ms), percent: Math.round((e.ms / busyMs) * 1000) / 10 }));
  return { file, totalMs: Math.round(totalUs / 1000), busyMs: Math.round(busyMs), top };
}

export function renderProfile(title: string, summary: ProfileSummary): string {
  const lines = [`${title}: ${summary.busyMs} ms busy of ${summary.totalMs} ms sampled; shares of the busy time (${summary.file})`];
  for (const e of summary.top) lines.push(`  ${e.percent.toFixed(1).padStart(5)}%  ${String(e.ms).padStart(7)} ms  ${e.function}  ${e.location}`);
  return lines.join('\n');
}
