// Several rounds of one workload on one server as one figure: the median of each number the
// rounds measured (the middle round resists one disturbed minute on a shared machine), except
// the peak RSS, the highest of them.
import type { Measurement } from './workloads.js';

const MEDIAN_FIELDS = ['value', 'p99Ms', 'loopP99Ms', 'cpuUsPerOp', 'mainThreadUsPerOp', 'mainThreadBusy'] as const;

export function median(values: number[]): number {
  if (values.length === 0) throw new Error('the median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The median of the rounds' `field`, when every round measured it. */
function medianOf(rounds: Measurement[], field: (typeof MEDIAN_FIELDS)[number]): number | undefined {
  const values = rounds.map((m) => m[field]);
  return values.every((v): v is number => v !== undefined) ? median(values) : undefined;
}

/** One round that failed fails the figure: a server that fails once in three is not measured. */
export function combineRounds(rounds: Measurement[]): Measurement {
  if (rounds.length === 0) throw new Error('no rounds to combine');
  const failedRound = rounds.findIndex((m) => m.error !== undefined);
  if (failedRound >= 0) {
    const failure = rounds[failedRound]!;
    return rounds.length === 1 ? failure : { ...failure, error: `round ${failedRound + 1} of ${rounds.length}: ${failure.error}` };
  }
  if (rounds.length === 1) return rounds[0]!;
  const combined: Measurement = { rounds };
  for (const field of MEDIAN_FIELDS) {
    const middle = medianOf(rounds, field);
    if (middle !== undefined) combined[field] = middle;
  }
  const peaks = rounds.map((m) => m.peakRssBytes).filter((v): v is number => v !== undefined);
  if (peaks.length > 0) combined.peakRssBytes = Math.max(...peaks);
  const failed = rounds.reduce((sum, m) => sum + (m.failed ?? 0), 0);
  if (failed > 0) combined.failed = failed;
  const notes = [...new Set(rounds.map((m) => m.note).filter((n): n is string => n !== undefined))];
  if (notes.length > 0) combined.note = notes.join('; ');
  return combined;
}
