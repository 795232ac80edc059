// Property-based tests (fast-check): for arbitrary input, the router, SigV4 canonicalisation,
// the aws-chunked decoder and the XML parser return a result or an S3 error, and never throw
// anything else. Also a few round-trip properties that pin down behaviour, not just survival.
import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { route } from '../src/gateway/router.js';
import { S3Error } from '../src/gateway/errors.js';
import { canonicalRequest, headerMap, parseAuthorizationHeader, parsePresignedQuery, type RequestParts } from '../src/auth/sigv4.js';
import { awsUriEncode, canonicalQueryComponent, safeDecode } from '../src/auth/uri-encode.js';
import { AwsChunkedDecoder, type AwsChunkedOptions } from '../src/auth/streaming.js';
import { XMLBuilder } from 'fast-xml-parser';
import { parseXml, xmlDocument, xmlElement, xmlText } from '../src/gateway/xml.js';
import { isoDate } from '../src/gateway/respond.js';
import { HashPool } from '../src/hashing/pool.js';
import { sliceChecksums } from '../src/hashing/checksums.js';
import { CHECKSUM_ALGORITHMS, createChecksum } from '../src/hashing/s3-checksums.js';
import { accessLine } from '../src/observability/logger.js';

const RUNS = 400;

/** Characters XML 1.0 allows in text (no other control characters, no U+FFFE/U+FFFF). */
const xmlChar = (c: string): boolean => {
  const code = c.codePointAt(0)!;
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code !== 0xfffe && code !== 0xffff);
};

/** Runs fn; an S3Error is an accepted answer, anything else thrown fails the property. */
function s3ErrorOr<T>(fn: () => T): T | S3Error {
  try {
    return fn();
  } catch (error) {
    if (error instanceof S3Error) return error;
    throw error;
  }
}

async function s3ErrorOrAsync<T>(fn: () => Promise<T>): Promise<T | S3Error> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof S3Error) return error;
    throw error;
  }
}

// Strings with the characters that break parsers: percent signs, slashes, unicode, NULs, CR/LF.
const nasty = fc.string({ unit: fc.oneof(fc.constantFrom('%', '/', '?', '&', '=', '+', ' ', '\0', '\r', '\n', '.', '~', '<', '>'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 40 });

t.test('router: any method, path, query and host gives an operation or an S3 error', async (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS'),
      nasty,
      fc.array(fc.tuple(nasty, nasty), { maxLength: 4 }),
      fc.option(nasty),
      fc.boolean(),
      (method, path, pairs, host, copySource) => {
        const query = new URLSearchParams(pairs);
        const result = s3ErrorOr(() =>
          route({ method, rawPath: '/' + path, query, host: host ?? undefined, hasHeader: (name) => copySource && name === 'x-amz-copy-source' }, ['s3.localhost']),
        );
        if (!(result instanceof S3Error)) {
          if ('key' in result) return Buffer.byteLength(result.key) <= 1024 && !result.key.includes('\0');
          return true;
        }
        return result.status >= 400 && result.status < 600;
      },
    ),
    { numRuns: RUNS * 2 },
  );
  t.pass('no unexpected exception');
});

t.test('response XML: xmlElement writes what fast-xml-parser\'s XMLBuilder writes', async (t) => {
  const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: false, processEntities: true });
  const name = fc.constantFrom('Key', 'Size', 'Contents', 'Owner', 'ID', 'Prefix', 'x');
  const text = fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom('&', '<', '>', "'", '"', 'a', ' ', 'é') }));
  const scalar = fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined));
  const { element } = fc.letrec<{ element: unknown; object: Record<string, unknown> }>((tie) => ({
    // No null inside arrays: XMLBuilder moves those to the front (no S3 response has one).
    element: fc.oneof({ depthSize: 'small' }, scalar, tie('object'), fc.array(fc.oneof(scalar.filter((v) => v !== null), tie('object')), { maxLength: 3 })),
    object: fc.oneof(
      fc.dictionary(name, tie('element'), { maxKeys: 4 }),
      fc.record({ '@xmlns': text, Child: tie('element') }),
      fc.record({ '@a': text, '#text': text }),
    ) as fc.Arbitrary<Record<string, unknown>>,
  }));
  fc.assert(
    fc.property(element, (value) => xmlElement('Root', value) === builder.build({ Root: value })),
    { numRuns: RUNS * 5 },
  );
  t.pass();
});

t.test('isoDate writes what Date.prototype.toISOString writes, in runs of one second or not', async (t) => {
  // The instants a Date can hold: ±8.64e15 ms around 1970.
  const valid = (ms: number): boolean => Math.abs(ms) <= 8.64e15;
  const instant = fc.integer({ min: -8.64e15, max: 8.64e15 });
  const sameSecond = fc
    .tuple(instant, fc.array(fc.integer({ min: 0, max: 999 }), { maxLength: 20 }))
    .map(([ms, millis]) => millis.map((m) => Math.floor(ms / 1000) * 1000 + m).filter(valid));
  const runs = fc.array(fc.oneof(instant, sameSecond));
  fc.assert(
    fc.property(runs, (values) => {
      for (const ms of values.flat()) if (isoDate(ms) !== new Date(ms).toISOString()) return false;
      return true;
    }),
    { numRuns: 2000 },
  );
  for (const ms of [0, -1, 999, 1000, 253402300799999, 253402300800000, -62167219200001, Date.now()]) t.equal(isoDate(ms), new Date(ms).toISOString(), `${ms}`);
});

t.test('awsUriEncode: every byte but A-Z a-z 0-9 - . _ ~ (and / in a path) as upper-case %XY', async (t) => {
  const byteWise = (value: string, keepSlash: boolean): string => {
    let out = '';
    for (const byte of Buffer.from(value, 'utf8')) {
      const ch = String.fromCharCode(byte);
      out += /[A-Za-z0-9\-._~]/.test(ch) || (keepSlash && ch === '/') ? ch : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
    }
    return out;
  };
  const anyString = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom(...'aZ09-._~/!\'()*% +=&?#\ud800\udc00é😀') }));
  fc.assert(
    fc.property(anyString, fc.boolean(), (value, keepSlash) => awsUriEncode(value, keepSlash) === byteWise(value, keepSlash)),
    { numRuns: RUNS * 5 },
  );
  t.equal(awsUriEncode("a b/c!'()*~", false), '%20b%2Fc%21%27%28%29%2A~'.replace(/^/, 'a'));
  t.equal(awsUriEncode('dir/\ud800.txt', true), 'dir/%EF%BF%BD.txt', 'a lone surrogate as U+FFFD');
});

t.test('router: path-style keys round-trip through percent-encoding', async (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((k) => !k.includes('\0') && Buffer.byteLength(k) <= 1024), (key) => {
      const op = route({ method: 'GET', rawPath: '/bucket/' + awsUriEncode(key, true), query: new URLSearchParams(), host: '127.0.0.1:9878', hasHeader: () => false });
      return op.name === 'GetObject' && 'key' in op && op.key === key;
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test('SigV4: canonicalisation of arbitrary requests yields a string or an S3 error', async (t) => {
  fc.assert(
    fc.property(
      nasty,
      nasty,
      fc.array(fc.tuple(fc.constantFrom('host', 'x-amz-date', 'x-amz-meta-a', 'content-type', 'X-Amz-Content-Sha256'), nasty), { maxLength: 6 }),
      fc.array(fc.constantFrom('host', 'x-amz-date', 'x-amz-meta-a', 'missing'), { maxLength: 4 }),
      (path, rawQuery, headerPairs, signedHeaders) => {
        const parts: RequestParts = { method: 'GET', rawPath: '/' + path, rawQuery, headers: headerMap(headerPairs.flat()) };
        const signed = {
          credential: { accessKeyId: 'AK', date: '20250101', region: 'us-east-1', service: 's3' },
          signedHeaders,
          signature: '00',
          amzDate: '20250101T000000Z',
          payloadHash: 'UNSIGNED-PAYLOAD',
          presigned: false,
        };
        const result = s3ErrorOr(() => canonicalRequest(parts, signed));
        return result instanceof S3Error || typeof result === 'string';
      },
    ),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(nasty, fc.array(fc.tuple(fc.constantFrom('x-amz-date', 'x-amz-content-sha256', 'date'), nasty), { maxLength: 3 }), (authorization, headerPairs) => {
      const parts: RequestParts = { method: 'GET', rawPath: '/', rawQuery: '', headers: headerMap(headerPairs.flat()) };
      const result = s3ErrorOr(() => parseAuthorizationHeader('AWS4-HMAC-SHA256 ' + authorization, parts));
      return result instanceof S3Error || Array.isArray(result.signedHeaders);
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature'), nasty), { maxLength: 8 }), (pairs) => {
      const result = s3ErrorOr(() => parsePresignedQuery(new URLSearchParams(pairs), Date.now()));
      return result instanceof S3Error || result.presigned;
    }),
    { numRuns: RUNS },
  );
  t.pass('no unexpected exception');
});

// Query components as clients write them: unreserved characters, '+', and %XY escapes of any
// byte in either case (valid UTF-8 or not), so that every shortcut and its edges come up.
// The bytes at the edges of the unreserved ranges (- . 0 9 A Z _ a z ~) come up as often as all others.
const edgeByte = fc.constantFrom(0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x39, 0x3a, 0x40, 0x41, 0x5a, 0x5b, 0x5e, 0x5f, 0x60, 0x61, 0x7a, 0x7b, 0x7d, 0x7e, 0x7f, 0x80);
const escape = fc.tuple(fc.oneof(edgeByte, fc.integer({ min: 0, max: 255 })), fc.boolean()).map(([byte, upper]) => {
  const hex = byte.toString(16).padStart(2, '0');
  return '%' + (upper ? hex.toUpperCase() : hex);
});
const queryComponent = fc.array(fc.oneof(fc.constantFrom(...'aZ09-._~+='), escape), { maxLength: 12 }).map((units) => units.join(''));

t.test('SigV4: a query component with a shortcut is canonical exactly as decoding and encoding it again makes it', async (t) => {
  const component = fc.oneof(nasty, fc.stringMatching(/^[A-Za-z0-9\-._~%+]{0,30}$/), queryComponent);
  fc.assert(
    fc.property(component, (raw) => {
      const decoded = safeDecode(raw.replace(/\+/g, ' '));
      return canonicalQueryComponent(raw) === (decoded === undefined ? undefined : awsUriEncode(decoded));
    }),
    { numRuns: RUNS },
  );
  t.equal(canonicalQueryComponent('AKIA%2F20261127%2Fus-east-1'), 'AKIA%2F20261127%2Fus-east-1');
  t.equal(canonicalQueryComponent('a+b%7e'), 'a%20b~');
  t.equal(canonicalQueryComponent('%E0%A4%A'), undefined, 'malformed percent-encoding');
  t.equal(canonicalQueryComponent('%2f%41'), '%2FA', 'lower-case hex, an escaped letter');
});

t.test('SigV4: the canonical query is every pair decoded, encoded again and sorted, whatever the order sent', async (t) => {
  // SigV4's definition, spelled out the long way.
  const reference = (rawQuery: string, presigned: boolean): string | undefined => {
    const pairs: [string, string][] = [];
    for (const item of rawQuery.split('&').filter(Boolean)) {
      const eq = item.indexOf('=');
      const [name, value] = [eq < 0 ? item : item.slice(0, eq), eq < 0 ? '' : item.slice(eq + 1)].map((raw) => safeDecode(raw.replace(/\+/g, ' ')));
      if (name === undefined || value === undefined) return undefined;
      if (!(presigned && name === 'X-Amz-Signature')) pairs.push([awsUriEncode(name), awsUriEncode(value)]);
    }
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    return pairs.map(([n, v]) => `${n}=${v}`).join('&');
  };
  // Few distinct names, so that repeated names (ordered by value) come up often.
  const name = fc.oneof(fc.constantFrom('X-Amz-Signature', 'X-Amz-Date', 'a', 'a-b', 'A', 'x-id', 'prefix'), queryComponent);
  const item = fc.oneof(fc.tuple(name, queryComponent).map(([n, v]) => `${n}=${v}`), name, fc.constant(''));
  fc.assert(
    fc.property(fc.array(item, { maxLength: 8 }), fc.boolean(), fc.boolean(), (items, sortFirst, presigned) => {
      const rawQuery = (sortFirst ? [...items].sort() : items).join('&');
      const signed = { credential: { accessKeyId: 'AK', date: '20250101', region: 'us-east-1', service: 's3' }, signedHeaders: [], signature: '00', amzDate: '20250101T000000Z', payloadHash: 'UNSIGNED-PAYLOAD', presigned };
      const result = s3ErrorOr(() => canonicalRequest({ method: 'GET', rawPath: '/', rawQuery, headers: new Map() }, signed));
      const expected = reference(rawQuery, presigned);
      return result instanceof S3Error ? expected === undefined && result.code === 'InvalidArgument' : result.split('\n')[2] === expected;
    }),
    { numRuns: RUNS * 2 },
  );
  t.pass();
});

const noHash = { sha256: async (data: Uint8Array) => createHash('sha256').update(data).digest('hex') };

async function decodeAll(pieces: Uint8Array[], options: AwsChunkedOptions): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const piece of new AwsChunkedDecoder((async function* () { yield* pieces; })(), options)) out.push(Buffer.from(piece));
  return Buffer.concat(out);
}

/** Splits bytes at the given cut points. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const point of points) {
    pieces.push(bytes.subarray(at, point));
    at = point;
  }
  pieces.push(bytes.subarray(at));
  return pieces;
}

t.test('aws-chunked: arbitrary bytes give data or an S3 error, never a hang or a crash', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 5 }), fc.nat({ max: 400 }), async (body, cuts, declared) => {
      const result = await s3ErrorOrAsync(() => decodeAll(split(Buffer.from(body), cuts), { trailers: true, checksum: 'crc32', decodedLength: declared, hasher: noHash }));
      return result instanceof S3Error || result.length === declared;
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test('aws-chunked: well-framed unsigned bodies decode to their data at any split', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), async (chunks, cuts) => {
      const data = Buffer.concat(chunks.map((c) => Buffer.from(c)));
      const framed = Buffer.concat([
        ...chunks.flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), Buffer.from(c), Buffer.from('\r\n')]),
        Buffer.from('0\r\n\r\n'),
      ]);
      const decoded = await decodeAll(split(framed, cuts), { trailers: false, decodedLength: data.length, hasher: noHash });
      return decoded.equals(data);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test('XML: arbitrary documents parse or give MalformedXML; text round-trips', async (t) => {
  fc.assert(
    fc.property(fc.oneof(nasty, fc.string({ maxLength: 200 }), fc.constantFrom('<Delete>', '<!DOCTYPE x [<!ENTITY a "b">]><Delete/>', '<Delete><Object><Key>&lt;</Key></Object></Delete>')), (text) => {
      const result = s3ErrorOr(() => parseXml(Buffer.from(text), 'Delete'));
      return result instanceof S3Error ? result.code === 'MalformedXML' : typeof result === 'object';
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 50 }).filter((s) => s.length > 0 && s.trim() === s && [...s].every(xmlChar)), (key) => {
      const document = Buffer.from(xmlDocument('Delete', { Object: [{ Key: key }] }, false));
      const parsed = parseXml(document, 'Delete');
      return xmlText((parsed.Object as Record<string, unknown>[])[0]!.Key) === key;
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test('hash pool: bodies handed over in one turn, batched into shared tasks, each get their own digests', async (t) => {
  const pool = new HashPool({ threads: 2 });
  t.teardown(() => pool.close());
  const job = fc.record({
    // Up to 400 KiB each, so that some turns pass the 1 MiB batch limit and flush early.
    data: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 400 << 10 }).map((n) => new Uint8Array(n).map((_, i) => (i * 31 + n) & 0xff))),
    md5: fc.boolean(),
    sha256: fc.boolean(),
    checksum: fc.option(fc.constantFrom(...CHECKSUM_ALGORITHMS), { nil: undefined }),
    // Without it, no slice CRCs (bodies kept inline, small bodies checked before use).
    bytesPerChecksum: fc.option(fc.constantFrom(512, 16 << 10), { nil: undefined }),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(job, { minLength: 1, maxLength: 12 }), async (jobs) => {
      const results = await Promise.all(jobs.map(({ data, ...options }) => pool.whole(data, options)));
      jobs.forEach((job, i) => {
        const checksum = job.checksum && createChecksum(job.checksum);
        checksum?.update(job.data);
        t.same(results[i], {
          crc32c: job.bytesPerChecksum ? sliceChecksums(job.data, job.bytesPerChecksum) : [],
          digests: {
            md5: job.md5 ? createHash('md5').update(job.data).digest('hex') : undefined,
            sha256: job.sha256 ? createHash('sha256').update(job.data).digest('hex') : undefined,
            checksum: checksum?.digest(),
          },
        });
      });
    }),
    { numRuns: 40 },
  );
});

t.test('access log: every line is one line of JSON, with each field exactly as given', async (t) => {
  // Any code points, lone surrogates, quotes, backslashes and control characters included.
  const text = fc.string({ unit: 'binary', maxLength: 40 });
  const maybe = fc.option(text, { nil: undefined });
  fc.assert(
    fc.property(
      fc.constantFrom('info' as const, 'warn' as const),
      fc.record({
        bucket: maybe, key: maybe, error: maybe, method: maybe, user: maybe, remote: maybe, url: text,
        status: fc.integer({ min: 100, max: 599 }), bytesIn: fc.nat(), bytesOut: fc.nat(),
        durationMs: fc.double({ min: 0, max: 1e7, noNaN: true }), complete: fc.boolean(),
      }),
      (level, fields) => {
        const line = accessLine(level, { requestId: '0123456789ABCDEF', operation: 'PutObject', ...fields });
        const parsed = JSON.parse(line) as Record<string, unknown>;
        const expected = JSON.parse(JSON.stringify({ level, time: parsed.time, pid: process.pid, requestId: '0123456789ABCDEF', operation: 'PutObject', ...fields, msg: 'request' }));
        return line.indexOf('\n') === line.length - 1 && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(String(parsed.time)) && isDeepStrictEqual(parsed, expected);
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});
