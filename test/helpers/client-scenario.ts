// The one scenario every S3 client in test/clients/ runs, and the data it uses. Each client
// test implements `ScenarioClient` with the client's own commands; the steps and
// assertions live here, once. (This module sits in test/helpers/ because tap runs every
// other file under test/ as a test file.)
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { Test } from 'tap';
import { run } from './exec.js';
import { tempDir } from './server.js';

export const MiB = 1024 * 1024;
/** Every client is configured to upload multipart with parts of this size. */
export const PART_SIZE = 5 * MiB;

export const DATA = {
  small: {
    key: 'docs/report.bin',
    size: 256 * 1024 + 17,
    contentType: 'application/x-s3g-test',
    metadata: { color: 'blue', project: 's3g' } as Record<string, string>,
  },
  big: { key: 'big/20MiB.bin', size: 20 * MiB },
  /** Ranges of the small object; `end` absent is an open range (`bytes=START-`). */
  ranges: [{ start: 0, end: 0 }, { start: 1000, end: 70_000 }, { start: 200_000 }] as ByteRange[],
  tree: { prefix: 'tree/', files: ['a.txt', 'b/1.txt', 'b/2.txt', 'c/3.txt'] },
  /** Listing `page/` `pageSize` keys at a time must take several requests. */
  paging: { prefix: 'page/', count: 12, pageSize: 5 },
  copy: 'copy/report copy.bin',
  odd: ['odd/naïve café ☃.txt', 'odd/with space.txt', 'odd/a+b=c.txt', 'odd/plus+ and space ü.txt'],
  missing: 'no/such/key.bin',
};

export interface ByteRange {
  start: number;
  end?: number;
}

export interface ObjectHead {
  size: number;
  /** Unquoted; undefined when the client doesn't expose the ETag. */
  etag?: string;
  contentType?: string;
  /** User metadata, names without `x-amz-meta-`. */
  metadata?: Record<string, string>;
}

export interface Listing {
  keys: string[];
  prefixes: string[];
}

/** One client's way to do each step. Keys are plain strings; encoding is the client's job. */
export interface ScenarioClient {
  createBucket(bucket: string): Promise<void>;
  listBuckets(): Promise<string[]>;
  /** A single PutObject, with content type and user metadata when given. */
  putFile(bucket: string, key: string, file: string, meta?: { contentType: string; metadata: Record<string, string> }): Promise<void>;
  /** Uploads every file under `dir` to `prefix` + its relative path. */
  putDir(bucket: string, prefix: string, dir: string): Promise<void>;
  /** Downloads every key under `prefix` to `dir` + the rest of the key. */
  getDir(bucket: string, prefix: string, dir: string): Promise<void>;
  head(bucket: string, key: string): Promise<ObjectHead>;
  getFile(bucket: string, key: string, dest: string): Promise<void>;
  getRange(bucket: string, key: string, range: ByteRange): Promise<Buffer>;
  /** Uploads `file` as a multipart upload of PART_SIZE parts. */
  uploadMultipart(bucket: string, key: string, file: string): Promise<void>;
  list(bucket: string, prefix: string, delimiter?: '/'): Promise<Listing>;
  /** All keys under `prefix`, fetched `pageSize` at a time; `pages` is the number of list requests, if known. */
  listPaged(bucket: string, prefix: string, pageSize: number): Promise<{ keys: string[]; pages?: number }>;
  copy(bucket: string, from: string, to: string): Promise<void>;
  presignGet(bucket: string, key: string): Promise<string>;
  deleteObject(bucket: string, key: string): Promise<void>;
  /** Deletes all of `keys` (the rest of the bucket) the way the client deletes many objects. */
  deleteObjects(bucket: string, keys: string[]): Promise<void>;
  /** The HTTP status of a HeadObject of `key`. */
  headStatus(bucket: string, key: string): Promise<number>;
  deleteBucket(bucket: string): Promise<void>;
}

export interface ScenarioOptions {
  bucket: string;
  /** The client can only ask for open ranges (`bytes=N-`). */
  openRangesOnly?: boolean;
  /** Overrides DATA.paging for clients whose page size is fixed; `putDir` uploads the keys if the client is too slow for `count` of them. */
  paging?: { count: number; pageSize: number; putDir?: ScenarioClient['putDir'] };
  /** The `host` of the presigned URL (says which addressing style the client used). */
  presignedHost?: string;
}

export interface Workspace {
  dir: string;
  small: { file: string; data: Buffer };
  big: { file: string; data: Buffer };
  treeDir: string;
  treeData: Map<string, Buffer>;
  pageDir: (count: number) => string;
  /** DATA.odd's keys, under `oddDir` without their `odd/`. */
  oddDir: string;
  oddData: Map<string, Buffer>;
  /** A fresh path in the workspace for a client's scratch file. */
  scratch(): string;
  dispose(): void;
}

const md5 = (data: Buffer): string => createHash('md5').update(data).digest('hex');

/** The ETag S3 gives a multipart upload of `data` in `partSize` parts. */
export function multipartEtag(data: Buffer, partSize = PART_SIZE): string {
  const digests: Buffer[] = [];
  for (let at = 0; at < data.length; at += partSize) digests.push(createHash('md5').update(data.subarray(at, at + partSize)).digest());
  return `${md5(Buffer.concat(digests))}-${digests.length}`;
}

/** S3 lists keys in UTF-8 byte order. */
const byteOrder = (keys: string[]): string[] => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

function writeFile(path: string, data: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}

/** The scenario's local files, random bytes in a temp dir. */
export function createWorkspace(): Workspace {
  const dir = tempDir('s3g-clients-');
  const file = (name: string, size: number): { file: string; data: Buffer } => {
    const data = randomBytes(size);
    writeFile(join(dir, name), data);
    return { file: join(dir, name), data };
  };
  const treeDir = join(dir, 'tree');
  const treeData = new Map(DATA.tree.files.map((f) => [DATA.tree.prefix + f, file(join('tree', f), 100 + f.length).data]));
  const pageDirs = new Map<number, string>();
  let scratchFiles = 0;
  return {
    dir,
    small: file('small.bin', DATA.small.size),
    big: file('big.bin', DATA.big.size),
    treeDir,
    treeData,
    pageDir(count) {
      const existing = pageDirs.get(count);
      if (existing) return existing;
      const pages = join(dir, `page-${count}`);
      for (let i = 0; i < count; i++) writeFile(join(pages, pageKey(i).slice(DATA.paging.prefix.length)), Buffer.from(`page ${i}\n`));
      pageDirs.set(count, pages);
      return pages;
    },
    oddDir: join(dir, 'odd'),
    oddData: new Map(DATA.odd.map((key, i) => [key, file(key, 1000 + i).data])),
    scratch: () => join(dir, `scratch-${++scratchFiles}`),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Paths of the files under `dir`, relative to it, with `/` separators, sorted. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

const pageKey = (i: number): string => `${DATA.paging.prefix}${String(i).padStart(4, '0')}.txt`;

/** GETs a (presigned) URL with curl into `dest`; resolves with the HTTP status. */
export async function curlGet(url: string, dest: string): Promise<number> {
  const result = await run('curl', ['-sS', '-g', '-o', dest, '-w', '%{http_code}', url]);
  if (result.code !== 0) throw new Error(`curl ${url} exited ${result.code}: ${result.stderr}`);
  return Number(result.stdout.toString());
}

function sameBytes(t: Test, actual: Buffer, expected: Buffer, what: string): void {
  t.equal(actual.length, expected.length, `${what}: length`);
  t.equal(md5(actual), md5(expected), `${what}: byte-identical`);
}

/** Registers the scenario's steps as subtests of `t`, in order. */
export function runScenario(t: Test, client: ScenarioClient, ws: Workspace, options: ScenarioOptions): void {
  const { bucket } = options;
  const paging: NonNullable<ScenarioOptions['paging']> = options.paging ?? DATA.paging;
  const pageKeys = Array.from({ length: paging.count }, (_, i) => pageKey(i));
  const out = (name: string): string => join(ws.dir, `${bucket}-${name}`);
  const step = (name: string, fn: (t: Test) => Promise<void>): void => void t.test(name, fn);
  const small = DATA.small;

  step('create bucket, list buckets', async (t) => {
    await client.createBucket(bucket);
    t.ok((await client.listBuckets()).includes(bucket), `${bucket} is listed`);
  });

  step('put with metadata and content type, head, get', async (t) => {
    await client.putFile(bucket, small.key, ws.small.file, { contentType: small.contentType, metadata: small.metadata });
    const head = await client.head(bucket, small.key);
    t.equal(head.size, small.size, 'size');
    if (head.etag !== undefined) t.equal(head.etag, md5(ws.small.data), 'ETag is the MD5');
    t.equal(head.contentType, small.contentType, 'content type');
    t.has(head.metadata, small.metadata, 'user metadata');
    await client.getFile(bucket, small.key, out('small'));
    sameBytes(t, readFileSync(out('small')), ws.small.data, 'get');
  });

  step('20 MiB multipart upload and download', async (t) => {
    await client.uploadMultipart(bucket, DATA.big.key, ws.big.file);
    const head = await client.head(bucket, DATA.big.key);
    t.equal(head.size, DATA.big.size, 'size');
    if (head.etag !== undefined) t.equal(head.etag, multipartEtag(ws.big.data), 'multipart ETag: md5 of the part MD5s, -4');
    await client.getFile(bucket, DATA.big.key, out('big'));
    sameBytes(t, readFileSync(out('big')), ws.big.data, 'download');
  });

  step('ranged gets', async (t) => {
    const ranges = DATA.ranges.filter((r) => !options.openRangesOnly || r.end === undefined);
    const got = await Promise.all(ranges.map((range) => client.getRange(bucket, small.key, range)));
    for (const [i, { start, end }] of ranges.entries()) {
      sameBytes(t, got[i]!, ws.small.data.subarray(start, end === undefined ? undefined : end + 1), `bytes=${start}-${end ?? ''}`);
    }
  });

  step('prefix and delimiter listing', async (t) => {
    await client.putDir(bucket, DATA.tree.prefix, ws.treeDir);
    t.same(await client.list(bucket, DATA.tree.prefix, '/'), { keys: ['tree/a.txt'], prefixes: ['tree/b/', 'tree/c/'] }, 'tree/ with delimiter /');
    t.same(await client.list(bucket, 'tree/b/'), { keys: ['tree/b/1.txt', 'tree/b/2.txt'], prefixes: [] }, 'tree/b/ without delimiter');
  });

  step('paginated listing', async (t) => {
    await (paging.putDir ?? client.putDir.bind(client))(bucket, DATA.paging.prefix, ws.pageDir(paging.count));
    const listed = await client.listPaged(bucket, DATA.paging.prefix, paging.pageSize);
    t.same(listed.keys, pageKeys, `${paging.count} keys in order`);
    if (listed.pages !== undefined) t.equal(listed.pages, Math.ceil(paging.count / paging.pageSize), 'list requests');
  });

  step('copy', async (t) => {
    await client.copy(bucket, small.key, DATA.copy);
    const head = await client.head(bucket, DATA.copy);
    t.equal(head.size, small.size, 'size');
    t.equal(head.contentType, small.contentType, 'content type copied');
    t.has(head.metadata, small.metadata, 'user metadata copied');
    await client.getFile(bucket, DATA.copy, out('copy'));
    sameBytes(t, readFileSync(out('copy')), ws.small.data, 'copy');
  });

  step('keys with unicode, spaces and plus signs', async (t) => {
    await client.putDir(bucket, 'odd/', ws.oddDir);
    t.same(await client.list(bucket, 'odd/'), { keys: byteOrder(DATA.odd), prefixes: [] }, 'listed back');
    await client.getDir(bucket, 'odd/', out('odd'));
    for (const [key, data] of ws.oddData) sameBytes(t, readFileSync(join(out('odd'), key.slice('odd/'.length))), data, key);
  });

  step('presigned GET fetched with curl', async (t) => {
    const url = await client.presignGet(bucket, small.key);
    t.comment(url);
    if (options.presignedHost) t.equal(new URL(url).host, options.presignedHost, 'addressing style of the URL');
    const status = await curlGet(url, out('presigned'));
    t.equal(status, 200, 'status');
    if (status !== 200) t.comment(readFileSync(out('presigned'), 'utf8'));
    sameBytes(t, readFileSync(out('presigned')), ws.small.data, 'presigned GET');
  });

  step('delete, multi-delete, head of a missing key', async (t) => {
    await client.deleteObject(bucket, DATA.copy);
    t.equal(await client.headStatus(bucket, DATA.copy), 404, 'deleted key: 404');
    const rest = [small.key, DATA.big.key, ...ws.treeData.keys(), ...pageKeys, ...ws.oddData.keys()];
    await client.deleteObjects(bucket, rest);
    t.same(await client.list(bucket, ''), { keys: [], prefixes: [] }, 'bucket is empty');
    t.equal(await client.headStatus(bucket, DATA.missing), 404, 'missing key: 404');
  });

  step('delete bucket', async (t) => {
    await client.deleteBucket(bucket);
    t.notOk((await client.listBuckets()).includes(bucket), `${bucket} is gone`);
  });
}
