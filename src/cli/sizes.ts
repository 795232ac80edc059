// Human sizes on the command line: 4MiB, 256MiB, 16KiB, 1048576.
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4 };

export function parseSize(value: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) === 0) throw new Error(`not a size: '${value}' (e.g. 4MiB, 16KiB)`);
  return Number(m[1]) * unit;
}

/** A size, or 0 written as such (a size of 0 is usually a mistake; where it means "none", say so). */
export function parseSizeOrZero(value: string): number {
  return value.trim() === '0' ? 0 : parseSize(value);
}
