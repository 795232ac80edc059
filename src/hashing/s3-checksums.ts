// The x-amz-checksum-* algorithms as running checksums with base64 digests (AWS's encoding).
import { createHash } from 'node:crypto';
import { crc32, crc32c } from '@node-rs/crc32';
import { asBuffer } from './checksums.js';

export const CHECKSUM_ALGORITHMS = ['crc32', 'crc32c', 'sha1', 'sha256', 'crc64nvme'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface RunningChecksum {
  update(data: Uint8Array): void;
  digest(): string;
}

export function isChecksumAlgorithm(name: string): name is ChecksumAlgorithm {
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(name);
}

function crc32Family(fn: (input: Buffer, initial?: number) => number): RunningChecksum {
  let value = 0;
  return {
    update(data) {
      value = fn(asBuffer(data), value);
    },
    digest() {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(value >>> 0);
      return out.toString('base64');
    },
  };
}

// CRC-64/NVME (reflected, poly 0xAD93D23594C93659, init and xorout all ones), table driven.
const CRC64_TABLE = (() => {
  const poly = 0x9a6c9329ac4bc9b5n; // reflected form of 0xAD93D23594C93659
  const table = new BigUint64Array(256);
  for (let i = 0n; i < 256n; i++) {
    let crc = i;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
    table[Number(i)] = crc;
  }
  // Split into 32-bit halves so the hot loop avoids BigInt arithmetic.
  const lo = new Uint32Array(256);
  const hi = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    lo[i] = Number(table[i]! & 0xffffffffn);
    hi[i] = Number(table[i]! >> 32n);
  }
  return { lo, hi };
})();

function crc64nvme(): RunningChecksum {
  let lo = 0xffffffff;
  let hi = 0xffffffff;
  return {
    update(data) {
      const { lo: tlo, hi: thi } = CRC64_TABLE;
      for (let i = 0; i < data.length; i++) {
        const index = (lo ^ data[i]!) & 0xff;
        // crc = table[index] ^ (crc >> 8)
        const shiftedLo = (lo >>> 8) | ((hi & 0xff) << 24);
        const shiftedHi = hi >>> 8;
        lo = (tlo[index]! ^ shiftedLo) >>> 0;
        hi = (thi[index]! ^ shiftedHi) >>> 0;
      }
    },
    digest() {
      const out = Buffer.alloc(8);
      out.writeUInt32BE((hi ^ 0xffffffff) >>> 0, 0);
      out.writeUInt32BE((lo ^ 0xffffffff) >>> 0, 4);
      return out.toString('base64');
    },
  };
}

export function createChecksum(algorithm: ChecksumAlgorithm): RunningChecksum {
  switch (algorithm) {
    case 'crc32':
      return crc32Family(crc32);
    case 'crc32c':
      return crc32Family(crc32c);
    case 'crc64nvme':
      return crc64nvme();
    case 'sha1':
    case 'sha256': {
      const hash = createHash(algorithm);
      return { update: (data) => void hash.update(data), digest: () => hash.digest('base64') };
    }
  }
}
