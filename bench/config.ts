// Sizes and durations of a run: full (the numbers the issue asks for) or --quick (seconds,
// tiny sizes: only checks that the suite still runs).
const MiB = 1 << 20;

export interface BenchConfig {
  quick: boolean;
  /**
   * Times each compared workload runs on each server, in alternating order (s3g, baseline,
   * peer, s3g, ...); the table shows medians. One load on this shared machine varies by a
   * fifth or more from one minute to the next.
   */
  rounds: number;
  small: { size: number; connections: number; durationS: number; keys: number };
  large: { size: number; streams: number; deadlineMs: number };
  /** Peak RSS of the gateway while this many uploads of `size` run at once. */
  rss: { size: number; streams: number; deadlineMs: number };
  /** newKeys: how many new keys the 4 KiB PUTs into the listing bucket rotate over (more than a run writes). */
  list: { keys: number; directories: number; pageSize: number; reps: number; budgetMs: number; requestTimeoutMs: number; newKeys: number };
  /** Keys in the directory renamed by the FSO rename workload. */
  renameKeys: number;
}

export function benchConfig(quick: boolean): BenchConfig {
  return quick
    ? {
        quick,
        rounds: 1,
        small: { size: 4096, connections: 64, durationS: 1, keys: 64 },
        large: { size: 8 * MiB, streams: 4, deadlineMs: 20_000 },
        rss: { size: 8 * MiB, streams: 32, deadlineMs: 20_000 },
        list: { keys: 10_000, directories: 1000, pageSize: 1000, reps: 5, budgetMs: 3_000, requestTimeoutMs: 10_000, newKeys: 1_000 },
        renameKeys: 1_000,
      }
    : {
        quick,
        rounds: 3,
        small: { size: 4096, connections: 64, durationS: 10, keys: 1024 },
        large: { size: 256 * MiB, streams: 4, deadlineMs: 180_000 },
        rss: { size: 256 * MiB, streams: 32, deadlineMs: 600_000 },
        list: { keys: 1_000_000, directories: 1000, pageSize: 1000, reps: 21, budgetMs: 60_000, requestTimeoutMs: 60_000, newKeys: 50_000 },
        renameKeys: 100_000,
      };
}
