// The CPU time a server process has used (all its threads), and its main thread alone, from
// /proc: what a small request costs the server, beside what the load generator sharing the
// machine costs; and how busy the thread that runs the event loop was, which one core bounds.
import { readFileSync } from 'node:fs';

/** Linux's USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of the process so far; undefined without a PID or where /proc cannot tell. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : cpuSeconds(`/proc/${pid}/stat`);
}

/** The same for the process's main thread (its thread id is the PID): Node's event loop. */
export function mainThreadCpuSeconds(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : cpuSeconds(`/proc/${pid}/task/${pid}/stat`);
}

function cpuSeconds(statFile: string): number | undefined {
  try {
    // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
    const stat = readFileSync(statFile, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}
