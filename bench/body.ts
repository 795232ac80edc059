// Request bodies for the benchmarks: every byte comes from one reused random pattern, so a
// 256 MiB body costs no memory, and its digests are computed once per size.
import { createHash, randomBytes } from 'node:crypto';

/** 1 MiB of random bytes; every body is this pattern repeated and cut to size. */
export const PATTERN = randomBytes(1 << 20);

export interface BodyDigests {
  sha256Hex: string;
  md5Hex: string;
}

const digestCache = new Map<number, BodyDigests>();

/** The pattern body of `size` bytes, as slices of PATTERN (no copies). */
export function* patternSlices(size: number): Generator<Buffer> {
  for (let sent = 0; sent < size; sent += PATTERN.length) yield PATTERN.subarray(0, Math.min(PATTERN.length, size - sent));
}

/** SHA-256 and MD5 of the pattern body of `size` bytes, computed on first use. */
export function bodyDigests(size: number): BodyDigests {
  let digests = digestCache.get(size);
  if (!digests) {
    const sha256 = createHash('sha256');
    const md5 = createHash('md5');
    for (const slice of patternSlices(size)) {
      sha256.update(slice);
      md5.update(slice);
    }
    digests = { sha256Hex: sha256.digest('hex'), md5Hex: md5.digest('hex') };
    digestCache.set(size, digests);
  }
  return digests;
}

/** A small body held whole (the 4 KiB object). */
export function smallBody(size: number): Buffer {
  return Buffer.from(PATTERN.subarray(0, size));
}
