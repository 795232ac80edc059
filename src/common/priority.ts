// CPU priority of background processes (serve's datanodes), so the gateway's event loop,
// which every request waits on, gets the CPU first when the machine is saturated.
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * Raises this process's nice value by `increment` (at most to 19). Linux keeps a nice value
 * per thread, so each thread that exists now is lowered; threads started later inherit
 * their creator's value.
 */
export function lowerPriority(increment: number): void {
  const target = Math.min(19, getPriority() + increment);
  let threads: string[];
  try {
    threads = readdirSync('/proc/self/task');
  } catch {
    setPriority(target); // no /proc: the process as a whole
    return;
  }
  for (const tid of threads) setPriority(Number(tid), target);
}
