// aws-chunked decoding (SigV4 streaming uploads). Bodies are built by an encoder written here
// from AWS's description, independently of src/auth (its own HMAC chain and checksums); the
// encoder itself is pinned to the example signatures published in AWS's documentation.
import t from 'tap';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { crc32, crc32c } from '@node-rs/crc32';
import { HashPool } from '../src/hashing/pool.js';
import { createChecksum, type ChecksumAlgorithm } from '../src/hashing/s3-checksums.js';
import {
  AwsChunkedDecoder,
  awsChunkedOptions,
  MAX_CHUNK_SIZE,
  STREAMING_SIGNED,
  STREAMING_SIGNED_TRAILER,
  STREAMING_UNSIGNED_TRAILER,
  type AwsChunkedOptions,
  type Sha256Hasher,
} from '../src/auth/streaming.js';
import type { SignedRequest } from '../src/auth/sigv4.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Mode = 'signed' | 'signed-trailer' | 'unsigned-trailer';

// ---- the reference encoder ----------------------------------------------------------------

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const AMZ_DATE = '20130524T000000Z';
const SCOPE = '20130524/us-east-1/s3/aws4_request';
const SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
const TRAILER_SEED = '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e';

const mac = (key: Buffer | string, text: string): Buffer => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
const KEY = ['20130524', 'us-east-1', 's3', 'aws4_request'].reduce<Buffer | string>((key, part) => mac(key, part), 'AWS4' + SECRET) as Buffer;

function chunkSig(previous: string, data: Uint8Array): string {
  return mac(KEY, ['AWS4-HMAC-SHA256-PAYLOAD', AMZ_DATE, SCOPE, previous, sha256(''), sha256(data)].join('\n')).toString('hex');
}

function trailerSig(previous: string, canonical: string): string {
  return mac(KEY, ['AWS4-HMAC-SHA256-TRAILER', AMZ_DATE, SCOPE, previous, sha256(canonical)].join('\n')).toString('hex');
}

/** CRC-64/NVME, bit by bit (check value for "123456789": 0xae8b14860a799888). */
function crc64nvmeRef(data: Uint8Array): bigint {
  const poly = 0x9a6c9329ac4bc9b5n;
  let crc = 0xffffffffffffffffn;
  for (const byte of data) {
    crc ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return crc ^ 0xffffffffffffffffn;
}

function checksumRef(algorithm: ChecksumAlgorithm, data: Buffer): string {
  const be = (bytes: number, value: bigint): string => {
    const out = Buffer.alloc(bytes);
    if (bytes === 4) out.writeUInt32BE(Number(value));
    else out.writeBigUInt64BE(value);
    return out.toString('base64');
  };
  switch (algorithm) {
    case 'crc32':
      return be(4, BigInt(crc32(data) >>> 0));
    case 'crc32c':
      return be(4, BigInt(crc32c(data) >>> 0));
    case 'crc64nvme':
      return be(8, crc64nvmeRef(data));
    default:
      return createHash(algorithm).update(data).digest('base64');
  }
}

interface Encoding {
  mode: Mode;
  data: Buffer;
  /** Data chunk sizes; the last one may be short. */
  chunkSize: number;
  checksum?: ChecksumAlgorithm;
  seed?: string;
}

interface Encoded {
  body: Buffer;
  data: Buffer;
  /** Offsets in `body` of each chunk's data, with its length. */
  chunks: { at: number; length: number }[];
  checksum?: { name: string; value: string };
}

/** Encodes as the SDKs do: Java v2 for the signed modes, JS v3 for the unsigned one. */
function encode({ mode, data, chunkSize, checksum, seed = SEED }: Encoding): Encoded {
  const parts: Buffer[] = [];
  const chunks: Encoded['chunks'] = [];
  let length = 0;
  const push = (part: Buffer | string): void => {
    const buffer = typeof part === 'string' ? Buffer.from(part, 'latin1') : part;
    parts.push(buffer);
    length += buffer.length;
  };
  let previous = seed;
  const header = (chunk: Buffer): string => {
    if (mode === 'unsigned-trailer') return `${chunk.length.toString(16)}\r\n`;
    previous = chunkSig(previous, chunk);
    return `${chunk.length.toString(16)};chunk-signature=${previous}\r\n`;
  };
  for (let at = 0; at < data.length; at += chunkSize) {
    const chunk = data.subarray(at, at + chunkSize);
    push(header(chunk));
    chunks.push({ at: length, length: chunk.length });
    push(chunk);
    push('\r\n');
  }
  push(header(Buffer.alloc(0)));
  let trailer: Encoded['checksum'];
  if (checksum) trailer = { name: `x-amz-checksum-${checksum}`, value: checksumRef(checksum, data) };
  if (mode === 'signed') push('\r\n');
  else {
    if (trailer) push(`${trailer.name}:${trailer.value}\r\n`);
    if (mode === 'signed-trailer') {
      push(`x-amz-trailer-signature:${trailerSig(previous, trailer ? `${trailer.name}:${trailer.value}\n` : '')}\r\n`);
    }
    push('\r\n');
  }
  return { body: Buffer.concat(parts), data, chunks, checksum: trailer };
}

// ---- decoding helpers -------------------------------------------------------------------

const pool = new HashPool({ threads: 2 });
t.teardown(() => pool.close());

function options(mode: Mode, decodedLength: number, checksum?: ChecksumAlgorithm, seed = SEED, hasher: Sha256Hasher = pool): AwsChunkedOptions {
  return {
    signing: mode === 'unsigned-trailer' ? undefined : { key: KEY, amzDate: AMZ_DATE, scope: SCOPE, seedSignature: seed },
    trailers: mode !== 'signed',
    checksum,
    decodedLength,
    hasher,
  };
}

/** The body cut at `cuts`; alternately as Buffers and as plain Uint8Array views. */
async function* pieces(body: Buffer, cuts: number[]): AsyncGenerator<Uint8Array> {
  let previous = 0;
  let plain = false;
  for (const cut of [...cuts, body.length]) {
    const piece = body.subarray(previous, cut);
    plain = !plain;
    yield plain ? new Uint8Array(piece.buffer, piece.byteOffset, piece.length) : piece;
    previous = cut;
  }
}

async function decode(body: Buffer, opts: AwsChunkedOptions, cuts: number[] = []): Promise<{ data: Buffer; decoder: AwsChunkedDecoder }> {
  const decoder = new AwsChunkedDecoder(pieces(body, cuts), opts);
  const out: Buffer[] = [];
  for await (const piece of decoder) out.push(Buffer.from(piece)); // a copy, as a consumer would
  return { data: Buffer.concat(out), decoder };
}

function randomCuts(length: number, maxPiece: number): number[] {
  const cuts: number[] = [];
  for (let at = 1 + Math.floor(Math.random() * maxPiece); at < length; at += 1 + Math.floor(Math.random() * maxPiece)) cuts.push(at);
  return cuts;
}

async function expectDecoded(t: Test, encoded: Encoded, opts: AwsChunkedOptions, cuts: number[] = []): Promise<void> {
  const { data, decoder } = await decode(encoded.body, opts, cuts);
  if (!data.equals(encoded.data)) t.fail(`decoded bytes differ (cuts ${cuts.slice(0, 8).join(',')}…)`);
  t.same(decoder.checksum && { name: decoder.checksum.name, value: decoder.checksum.value }, encoded.checksum);
}

const withByte = (body: Buffer, at: number, byte: number): Buffer => {
  const copy = Buffer.from(body);
  copy[at] = byte;
  return copy;
};
const replace = (body: Buffer, from: string, to: string): Buffer => {
  const text = body.toString('latin1');
  if (!text.includes(from)) throw new Error(`test bug: ${from} not in body`);
  return Buffer.from(text.replace(from, to), 'latin1');
};

// ---- tests ------------------------------------------------------------------------------

t.test('the reference encoder reproduces AWS documentation examples', async (t) => {
  t.equal(crc64nvmeRef(Buffer.from('123456789')), 0xae8b14860a799888n);
  const data = Buffer.alloc(66560, 'a');
  const signed = encode({ mode: 'signed', data, chunkSize: 65536 }).body.toString('latin1');
  t.ok(signed.startsWith('10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n'));
  t.ok(signed.includes('\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n'));
  t.ok(signed.endsWith('\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n'));
  const trailer = encode({ mode: 'signed-trailer', data, chunkSize: 65536, checksum: 'crc32c', seed: TRAILER_SEED }).body.toString('latin1');
  t.ok(trailer.startsWith('10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n'));
  t.ok(
    trailer.endsWith(
      '0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n' +
        'x-amz-checksum-crc32c:sOO8/Q==\r\n' +
        'x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n',
    ),
  );
});

t.test('decodes the AWS documentation bodies verbatim', async (t) => {
  const a = (n: number): string => 'a'.repeat(n);
  const signed = Buffer.from(
    '10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n' + a(65536) + '\r\n' +
      '400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n' + a(1024) + '\r\n' +
      '0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n',
  );
  t.same((await decode(signed, options('signed', 66560))).data, Buffer.alloc(66560, 'a'));
  // The trailer example as printed: a blank line before the trailers and none at the end.
  const trailer = Buffer.from(
    '10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n' + a(65536) + '\r\n' +
      '400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n' + a(1024) + '\r\n' +
      '0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n\r\n' +
      'x-amz-checksum-crc32c:sOO8/Q==\r\n' +
      'x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435',
  );
  const { data, decoder } = await decode(trailer, options('signed-trailer', 66560, 'crc32c', TRAILER_SEED));
  t.same(data, Buffer.alloc(66560, 'a'));
  t.same(decoder.checksum, { name: 'x-amz-checksum-crc32c', algorithm: 'crc32c', value: 'sOO8/Q==' });
});

const small = Buffer.from('The quick brown fox jumps over the lazy dog, twice: the quick brown fox.');
const smallCases: { mode: Mode; checksum?: ChecksumAlgorithm }[] = [
  { mode: 'signed' },
  { mode: 'signed-trailer', checksum: 'crc32' },
  { mode: 'signed-trailer', checksum: 'crc64nvme' },
  { mode: 'unsigned-trailer', checksum: 'crc32' },
  { mode: 'unsigned-trailer', checksum: 'crc32c' },
  { mode: 'unsigned-trailer', checksum: 'crc64nvme' },
  { mode: 'unsigned-trailer', checksum: 'sha256' },
];

t.test('small bodies split at every byte boundary', async (t) => {
  for (const { mode, checksum } of smallCases) {
    const encoded = encode({ mode, data: small, chunkSize: 25, checksum });
    const opts = options(mode, small.length, checksum);
    await expectDecoded(t, encoded, opts);
    for (let cut = 1; cut < encoded.body.length; cut++) await expectDecoded(t, encoded, opts, [cut]);
    await expectDecoded(t, encoded, opts, Array.from({ length: encoded.body.length - 1 }, (_, i) => i + 1));
    // The trailer value is what the caller's running checksum must equal.
    if (checksum) {
      const running = createChecksum(checksum);
      running.update(small);
      t.equal(running.digest(), encoded.checksum!.value, `${mode} ${checksum} matches the gateway's checksum`);
    }
  }
});

t.test('empty bodies', async (t) => {
  for (const { mode, checksum } of smallCases) {
    const encoded = encode({ mode, data: Buffer.alloc(0), chunkSize: 10, checksum });
    await expectDecoded(t, encoded, options(mode, 0, checksum));
  }
});

t.test('large bodies split at random', async (t) => {
  const data = randomBytes(5 * 1024 * 1024 + 12345);
  for (const { mode, chunkSize } of [
    { mode: 'signed', chunkSize: 65536 },
    { mode: 'signed-trailer', chunkSize: 1 << 20 },
    { mode: 'unsigned-trailer', chunkSize: 65536 },
    { mode: 'signed', chunkSize: 4 << 20 }, // past the pipeline's byte budget
  ] as const) {
    const encoded = encode({ mode, data, chunkSize, checksum: mode === 'signed' ? undefined : 'crc32' });
    const opts = options(mode, data.length, mode === 'signed' ? undefined : 'crc32');
    for (const maxPiece of [1000, 70000, 1 << 20]) await expectDecoded(t, encoded, opts, randomCuts(encoded.body.length, maxPiece));
  }
  // Tiny pieces over several chunks.
  const part = data.subarray(0, 150_000);
  for (const mode of ['signed', 'unsigned-trailer'] as const) {
    const checksum = mode === 'signed' ? undefined : 'crc32c';
    const encoded = encode({ mode, data: part, chunkSize: 65536, checksum });
    await expectDecoded(t, encoded, options(mode, part.length, checksum), randomCuts(encoded.body.length, 7));
  }
});

t.test('unsigned data is passed through as it arrives, as views of the input', async (t) => {
  const data = randomBytes(200_000);
  const encoded = encode({ mode: 'unsigned-trailer', data, chunkSize: 65536, checksum: 'crc32' });
  const input = encoded.body;
  const decoder = new AwsChunkedDecoder(pieces(input, randomCuts(input.length, 5000)), options('unsigned-trailer', data.length, 'crc32'));
  let views = 0;
  for await (const piece of decoder) if (piece.buffer === input.buffer) views++;
  t.ok(views > 0 && decoder.checksum !== undefined);
});

t.test('signed chunks: many small chunks, hashes finishing out of order', async (t) => {
  const data = randomBytes(3000 * 100 + 7);
  const encoded = encode({ mode: 'signed-trailer', data, chunkSize: 100, checksum: 'crc32c' });
  let inFlight = 0;
  let maxInFlight = 0;
  const jittery: Sha256Hasher = {
    async sha256(chunk) {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      inFlight--;
      return sha256(chunk);
    },
  };
  await expectDecoded(t, encoded, options('signed-trailer', data.length, 'crc32c', SEED, jittery), randomCuts(encoded.body.length, 9000));
  t.ok(maxInFlight > 1, `hashing overlaps reading (max ${maxInFlight} in flight)`);
  t.ok(maxInFlight <= 17, 'the pipeline is bounded');
});

t.test('signature errors', async (t) => {
  const data = randomBytes(100_000);
  const signed = encode({ mode: 'signed', data, chunkSize: 30_000 });
  const trailer = encode({ mode: 'signed-trailer', data, chunkSize: 30_000, checksum: 'crc32' });
  const opts = options('signed', data.length);
  const trailerOpts = options('signed-trailer', data.length, 'crc32');

  for (const [i, chunk] of signed.chunks.entries()) {
    const at = chunk.at + Math.floor(chunk.length / 2);
    const tampered = withByte(signed.body, at, signed.body[at]! ^ 1);
    // Verified data before the bad chunk may have been released; the bad chunk never is.
    const decoder = new AwsChunkedDecoder(pieces(tampered, randomCuts(tampered.length, 20_000)), opts);
    const out: Buffer[] = [];
    await t.rejects(
      (async () => {
        for await (const piece of decoder) out.push(Buffer.from(piece));
      })(),
      { code: 'SignatureDoesNotMatch', status: 403 },
      `tampered data in chunk ${i}`,
    );
    t.ok(Buffer.concat(out).length <= i * 30_000, 'nothing of the tampered chunk was released');
  }

  const sigs = [...signed.body.toString('latin1').matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1]!);
  for (const [i, sig] of sigs.entries()) {
    const other = sig.slice(0, 10) + (sig[10] === '0' ? '1' : '0') + sig.slice(11);
    await t.rejects(decode(replace(signed.body, sig, other), opts), { code: 'SignatureDoesNotMatch' }, `tampered signature ${i}`);
  }
  // The first two chunks swapped, each with its own valid signature: the chain breaks.
  const second = signed.chunks[0]!.at + 30_000 + 2;
  const third = signed.chunks[1]!.at + 30_000 + 2;
  const swapped = Buffer.concat([signed.body.subarray(second, third), signed.body.subarray(0, second), signed.body.subarray(third)]);
  await t.rejects(decode(swapped, opts), { code: 'SignatureDoesNotMatch' }, 'chunks reordered');
  await t.rejects(decode(signed.body, options('signed', data.length, undefined, TRAILER_SEED)), { code: 'SignatureDoesNotMatch' }, 'wrong seed');

  const trailerSignature = /x-amz-trailer-signature:([0-9a-f]{64})/.exec(trailer.body.toString('latin1'))![1]!;
  await t.rejects(decode(replace(trailer.body, trailerSignature, 'f'.repeat(64)), trailerOpts), { code: 'SignatureDoesNotMatch' }, 'bad trailer signature');
  const value = trailer.checksum!.value;
  const forged = Buffer.from(value, 'base64');
  forged[0]! ^= 1;
  await t.rejects(
    decode(replace(trailer.body, `crc32:${value}`, `crc32:${forged.toString('base64')}`), trailerOpts),
    { code: 'SignatureDoesNotMatch' },
    'the trailer signature covers the checksum value',
  );
});

t.test('framing errors', async (t) => {
  const data = Buffer.from('0123456789abcdefghij');
  const signed = encode({ mode: 'signed', data, chunkSize: 8 });
  const unsigned = encode({ mode: 'unsigned-trailer', data, chunkSize: 8, checksum: 'crc32' });
  const sOpts = options('signed', data.length);
  const uOpts = options('unsigned-trailer', data.length, 'crc32');
  const cases: [string, Buffer, AwsChunkedOptions, string][] = [
    ['non-hex size', replace(unsigned.body, '8\r\n01234567', 'z8\r\n01234567'), uOpts, 'InvalidChunkSizeError'],
    ['negative size', replace(unsigned.body, '8\r\n01234567', '-8\r\n01234567'), uOpts, 'InvalidChunkSizeError'],
    ['empty size', replace(unsigned.body, '8\r\n01234567', '\r\n01234567'), uOpts, 'InvalidChunkSizeError'],
    ['size over the limit', Buffer.from(`${(MAX_CHUNK_SIZE + 1).toString(16)}\r\n`), options('unsigned-trailer', 1 << 30, 'crc32'), 'InvalidChunkSizeError'],
    ['chunk longer than declared', replace(unsigned.body, '8\r\n01234567', '7\r\n01234567'), uOpts, 'InvalidChunkSizeError'],
    ['chunk shorter than declared', replace(unsigned.body, '8\r\n01234567', '9\r\n01234567'), uOpts, 'InvalidChunkSizeError'],
    ['data without CRLF', replace(unsigned.body, '01234567\r\n', '01234567\n'), uOpts, 'InvalidChunkSizeError'],
    ['header with bare LF', replace(unsigned.body, '8\r\n01234567', '8\n01234567'), uOpts, 'InvalidChunkSizeError'],
    ['chunk-signature missing', replace(signed.body, /^8;chunk-signature=[0-9a-f]{64}/.exec(signed.body.toString('latin1'))![0], '8'), sOpts, 'InvalidChunkSizeError'],
    ['chunk-signature not hex', replace(signed.body, ';chunk-signature=', ';chunk-signature=x'), sOpts, 'InvalidChunkSizeError'],
    ['endless header line', Buffer.alloc(10_000, '1'), uOpts, 'InvalidChunkSizeError'],
    ['endless trailer line', Buffer.concat([unsigned.body.subarray(0, unsigned.body.indexOf('x-amz')), Buffer.alloc(10_000, 'x')]), uOpts, 'MalformedTrailerError'],
    ['data after the end', Buffer.concat([unsigned.body, Buffer.from('0\r\n')]), uOpts, 'InvalidChunkSizeError'],
    ['data after the end (signed)', Buffer.concat([signed.body, Buffer.from('x')]), sOpts, 'InvalidChunkSizeError'],
    ['trailer in a mode without', Buffer.concat([signed.body.subarray(0, -2), Buffer.from('x-amz-checksum-crc32:AAAAAA==\r\n\r\n')]), sOpts, 'InvalidChunkSizeError'],
    ['decoded length too small', unsigned.body, options('unsigned-trailer', data.length - 1, 'crc32'), 'IncompleteBody'],
    ['decoded length too large', unsigned.body, options('unsigned-trailer', data.length + 1, 'crc32'), 'IncompleteBody'],
    ['decoded length too large (signed)', signed.body, options('signed', data.length + 1), 'IncompleteBody'],
    ['trailer missing', replace(unsigned.body, `x-amz-checksum-crc32:${unsigned.checksum!.value}\r\n`, ''), uOpts, 'MalformedTrailerError'],
    ['unexpected trailer', replace(unsigned.body, 'x-amz-checksum-crc32:', 'x-amz-checksum-crc32c:'), uOpts, 'MalformedTrailerError'],
    ['trailer without colon', replace(unsigned.body, 'x-amz-checksum-crc32:', 'x-amz-checksum-crc32 '), uOpts, 'MalformedTrailerError'],
    ['repeated trailer', replace(unsigned.body, 'x-amz-checksum-crc32:', `x-amz-checksum-crc32:${unsigned.checksum!.value}\r\nx-amz-checksum-crc32:`), uOpts, 'MalformedTrailerError'],
    ['trailer signature on an unsigned body', replace(unsigned.body, '==\r\n', `==\r\nx-amz-trailer-signature:${'a'.repeat(64)}\r\n`), uOpts, 'MalformedTrailerError'],
    ['checksum value of the wrong size', replace(unsigned.body, `crc32:${unsigned.checksum!.value}`, 'crc32:AAAAAAAA'), uOpts, 'InvalidRequest'],
  ];
  for (const [name, body, opts, code] of cases) {
    await t.rejects(decode(body, opts), { code }, name);
    await t.rejects(decode(body, opts, Array.from({ length: body.length - 1 }, (_, i) => i + 1)), { code }, `${name}, byte by byte`);
  }
  // Signed trailer: the trailer signature is required, and must come last.
  const trailer = encode({ mode: 'signed-trailer', data, chunkSize: 8, checksum: 'crc32' });
  const tOpts = options('signed-trailer', data.length, 'crc32');
  const text = trailer.body.toString('latin1');
  const sigLine = /x-amz-trailer-signature:[0-9a-f]{64}\r\n/.exec(text)![0];
  await t.rejects(decode(replace(trailer.body, sigLine, ''), tOpts), { code: 'MalformedTrailerError' }, 'trailer signature missing');
  const checksumLine = `x-amz-checksum-crc32:${trailer.checksum!.value}\r\n`;
  await t.rejects(decode(Buffer.from(text.replace(checksumLine + sigLine, sigLine + checksumLine), 'latin1'), tOpts), { code: 'MalformedTrailerError' }, 'trailer signature not last');
});

t.test('truncated bodies never decode to something else', async (t) => {
  for (const { mode, checksum } of smallCases) {
    const encoded = encode({ mode, data: small, chunkSize: 25, checksum });
    const opts = options(mode, small.length, checksum);
    const finalChunk = encoded.body.lastIndexOf(mode === 'unsigned-trailer' ? '\r\n0\r\n' : '\r\n0;chunk-signature=') + 2;
    for (let length = 0; length < encoded.body.length; length++) {
      const prefix = encoded.body.subarray(0, length);
      try {
        const { data, decoder } = await decode(prefix, opts);
        // Only the optional end (the last CRLFs after the verified trailer) may be missing.
        t.ok(data.equals(small) && length >= encoded.body.length - 4, `${mode}: prefix of ${length} accepted`);
        t.same(decoder.checksum?.value, encoded.checksum?.value);
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (length <= finalChunk) t.equal(code, 'IncompleteBody', `${mode}: prefix of ${length}`);
        else t.ok(code && code !== 'InternalError', `${mode}: prefix of ${length} rejected with ${code}`);
      }
    }
  }
});

t.test('a failing hasher fails the decoding, without unhandled rejections', async (t) => {
  const data = randomBytes(10_000);
  const encoded = encode({ mode: 'signed', data, chunkSize: 1000 });
  let calls = 0;
  const failing: Sha256Hasher = {
    sha256: async (chunk) => {
      if (++calls === 3) throw new Error('pool closed');
      return sha256(chunk);
    },
  };
  await t.rejects(decode(encoded.body, options('signed', data.length, undefined, SEED, failing)), { message: 'pool closed' });
  // Stopping early leaves queued hashes behind; they must not surface as unhandled rejections.
  const decoder = new AwsChunkedDecoder(pieces(encoded.body, []), options('signed', data.length, undefined, SEED, { sha256: async () => Promise.reject(new Error('late')) }));
  const iterator = decoder[Symbol.asyncIterator]();
  await t.rejects(iterator.next(), { message: 'late' });
  await new Promise((resolve) => setTimeout(resolve, 20));
});

t.test('awsChunkedOptions reads the request headers', async (t) => {
  const signed = (payloadHash: string): SignedRequest => ({
    credential: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', date: '20130524', region: 'us-east-1', service: 's3' },
    signedHeaders: [],
    signature: SEED,
    amzDate: AMZ_DATE,
    payloadHash,
    presigned: false,
  });
  const headers = (entries: Record<string, string>): Map<string, string[]> => new Map(Object.entries(entries).map(([k, v]) => [k, [v]]));

  const opts = awsChunkedOptions(headers({ 'x-amz-decoded-content-length': '66560' }), signed(STREAMING_SIGNED), SECRET, pool);
  t.same(opts.signing, { key: KEY, amzDate: AMZ_DATE, scope: SCOPE, seedSignature: SEED });
  t.same([opts.trailers, opts.checksum, opts.decodedLength], [false, undefined, 66560]);
  const doc = encode({ mode: 'signed', data: Buffer.alloc(66560, 'a'), chunkSize: 65536 });
  await expectDecoded(t, doc, opts);

  const unsigned = awsChunkedOptions(
    headers({ 'x-amz-decoded-content-length': '5', 'x-amz-trailer': 'x-amz-checksum-crc64nvme' }),
    signed(STREAMING_UNSIGNED_TRAILER),
    SECRET,
    pool,
  );
  t.same([unsigned.signing, unsigned.trailers, unsigned.checksum], [undefined, true, 'crc64nvme']);
  const trailer = awsChunkedOptions(headers({ 'x-amz-decoded-content-length': '0', 'x-amz-trailer': 'X-Amz-Checksum-CRC32' }), signed(STREAMING_SIGNED_TRAILER), SECRET, pool);
  t.same([trailer.trailers, trailer.checksum], [true, 'crc32']);

  t.throws(() => awsChunkedOptions(headers({}), signed(STREAMING_SIGNED), SECRET, pool), { code: 'MissingContentLength' });
  t.throws(() => awsChunkedOptions(headers({ 'x-amz-decoded-content-length': '-1' }), signed(STREAMING_SIGNED), SECRET, pool), { code: 'InvalidArgument' });
  t.throws(() => awsChunkedOptions(headers({ 'x-amz-decoded-content-length': '1' }), signed('STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD'), SECRET, pool), { code: 'NotImplemented' });
  t.throws(
    () => awsChunkedOptions(headers({ 'x-amz-decoded-content-length': '1', 'x-amz-trailer': 'x-amz-checksum-md5' }), signed(STREAMING_UNSIGNED_TRAILER), SECRET, pool),
    { code: 'InvalidRequest' },
  );
  t.throws(
    () => awsChunkedOptions(headers({ 'x-amz-decoded-content-length': '1', 'x-amz-trailer': 'x-amz-checksum-crc32' }), signed(STREAMING_SIGNED), SECRET, pool),
    { code: 'InvalidRequest' },
  );
});
