// Per-slice CRC32C, the datanode checksum (one value per bytesPerChecksum slice, as Ozone).
// Used by the hashing pool's workers and by the datanode, each on its own thread.
import { crc32c } from '@node-rs/crc32';

export function sliceChecksums(data: Uint8Array, bytesPerChecksum: number): number[] {
  const sums: number[] = [];
  for (let at = 0; at < data.length; at += bytesPerChecksum) {
    sums.push(crc32c(asBuffer(data.subarray(at, at + bytesPerChecksum))));
  }
  return sums;
}

/** Index of the first slice whose checksum differs, or -1 when all match. */
export function firstBadSlice(data: Uint8Array, bytesPerChecksum: number, expected: readonly number[]): number {
  const slices = Math.ceil(data.length / bytesPerChecksum);
  if (expected.length !== slices) return Math.min(expected.length, slices);
  for (let i = 0; i < slices; i++) {
    const at = i * bytesPerChecksum;
    if (crc32c(asBuffer(data.subarray(at, at + bytesPerChecksum))) !== expected[i]) return i;
  }
  return -1;
}

/** A Buffer view of the same bytes (native hashers take Buffers), without copying. */
export function asBuffer(view: Uint8Array): Buffer {
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}
