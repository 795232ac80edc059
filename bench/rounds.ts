// Several rounds of one workload on one server as one figure. The value is the median (the
// middle round resists one disturbed minute on a shared machine); the gateway's event-loop
// p99 and peak RSS are the worst round's, since their targets are bounds.
import type { Measurement } from './workloads.js';

export function median(values: number[]): number {
  if (values.length === 0) throw new Error('the median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const worst = (values: (number | undefined)[]): number | undefined => {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length === 0 ? undefined : Math.max(...known);
};

/** One round that failed fails the figure: a server that fails once in three is not measured. */
export function combineRounds(rounds: Measurement[]): Measurement {
  if (rounds.length === 0) throw new Error('no rounds to combine');
  const failedRound = rounds.findIndex((m) => m.error !== undefined);
  if (failedRound >= 0) {
    const failure = rounds[failedRound]!;
    return rounds.length === 1 ? failure : { ...failure, error: `round ${failedRound + 1} of ${rounds.length}: ${failure.error}` };
  }
  if (rounds.length === 1) return rounds[0]!;
  const values = rounds.map((m) => m.value).filter((v): v is number => v !== undefined);
  const p99s = rounds.map((m) => m.p99Ms).filter((v): v is number => v !== undefined);
  const failed = rounds.reduce((sum, m) => sum + (m.failed ?? 0), 0);
  const notes = [...new Set(rounds.map((m) => m.note).filter((n): n is string => n !== undefined))];
  const combined: Measurement = { rounds: rounds.map((m) => m.value ?? Number.NaN) };
  if (values.length === rounds.length) combined.value = median(values);
  if (p99s.length === rounds.length) combined.p99Ms = median(p99s);
  if (failed > 0) combined.failed = failed;
  if (notes.length > 0) combined.note = notes.join('; ');
  const loopP99Ms = worst(rounds.map((m) => m.loopP99Ms));
  const peakRssBytes = worst(rounds.map((m) => m.peakRssBytes));
  if (loopP99Ms !== undefined) combined.loopP99Ms = loopP99Ms;
  if (peakRssBytes !== undefined) combined.peakRssBytes = peakRssBytes;
  return combined;
}
