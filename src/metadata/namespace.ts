// The namespace of FSO (file system optimized) buckets, shared by both stores. As in Ozone,
// directories are rows of their own (table `directories`: id, parent id, name with its
// trailing '/'), and a file is an `objects` row named `<parent directory id>/<leaf>`, the
// root directory being id 0. A directory's files are therefore one key range, listing one
// directory reads what it holds, and renaming a directory is one UPDATE of its row. A
// directory created by a PUT of `a/b/` (a marker) also has an objects row, named
// `<its own id>/`, which carries the object's metadata (ETag, tags, headers).
import { MetadataError, type ListObjectsQuery, type ObjectSummary } from './store.js';
import { byteOrder, prefixUpperBound } from './shared.js';

export const ROOT_DIRECTORY = 0;

/**
 * An S3 key as FSO stores it, the way Ozone normalises it: a leading '/' and empty segments
 * go (`a//b` is `a/b`), a trailing '/' stays (it names a directory); undefined when a segment
 * is `.` or `..`, or nothing is left.
 */
export function normaliseKey(key: string): string | undefined {
  const segments = key.split('/');
  const directory = key.endsWith('/');
  const kept = segments.filter((s) => s !== '');
  if (kept.length === 0 || kept.some((s) => s === '.' || s === '..')) return undefined;
  return kept.join('/') + (directory ? '/' : '');
}

/** An FSO key normalised, or InvalidKey. */
export function fsoKey(key: string): string {
  const normalised = normaliseKey(key);
  if (normalised === undefined) throw new MetadataError('InvalidKey', `${key}: a key of an FSO bucket has no '.' or '..' segment and is not only slashes`);
  return normalised;
}

/** `a/b/c` → directories ['a/', 'b/'] and leaf 'c'; `a/b/` → ['a/', 'b/'] and leaf '' (the marker of a/b). */
export function splitKey(normalisedKey: string): { directories: string[]; leaf: string } {
  const segments = normalisedKey.split('/');
  const leaf = segments.pop()!;
  return { directories: segments.map((s) => s + '/'), leaf };
}

/** The objects row name of a file (or, with leaf '', of a directory's marker). */
export function internalName(directoryId: number, leaf: string): string {
  return `${directoryId}/${leaf}`;
}

export interface DirectoryRow {
  id: number;
  /** With its trailing '/'. */
  name: string;
}

/** A lower bound of a range of leaves or directory names. */
export interface Bound {
  value: string;
  inclusive: boolean;
}

/** The reads an FSO listing needs; each store answers them from its tables. */
export interface NamespaceReader {
  directory(parentId: number, name: string): Promise<number | undefined>;
  /** The marker object of a directory, if it was created explicitly. */
  marker(directoryId: number): Promise<ObjectSummary | undefined>;
  /** Files of a directory (marker excluded) with leaf in [lower, upper), by leaf; key = the internal name. */
  files(directoryId: number, lower: Bound, upper: string | undefined, limit: number): Promise<ObjectSummary[]>;
  /** Subdirectories with name in [lower, upper), by name. */
  directories(directoryId: number, lower: Bound, upper: string | undefined, limit: number): Promise<DirectoryRow[]>;
}

/** The directory a path of directory names leads to, or undefined. */
export async function resolveDirectory(reader: NamespaceReader, directories: readonly string[]): Promise<number | undefined> {
  let id: number | undefined = ROOT_DIRECTORY;
  for (const name of directories) {
    id = await reader.directory(id, name);
    if (id === undefined) return undefined;
  }
  return id;
}

/**
 * ListObjects of an FSO bucket with the OBS contract (keys after `after` under `prefix`, in
 * UTF-8 byte order): a depth-first walk in which each directory's files and subdirectories
 * (`d/` sorting as the prefix of everything in it) are merged in byte order. Only explicit
 * directories (markers) are keys; the position comes from `after` alone, so a continuation
 * stays valid whatever changed in the tree since.
 */
export async function listFsoObjects(reader: NamespaceReader, query: ListObjectsQuery): Promise<ObjectSummary[]> {
  const prefix = query.prefix ?? '';
  const limit = Math.max(0, Math.trunc(query.limit));
  if (limit === 0) return [];
  const cut = prefix.lastIndexOf('/') + 1;
  const path = prefix.slice(0, cut);
  const top = await resolveDirectory(reader, splitKey(path).directories);
  if (top === undefined) return [];
  let after = query.after;
  if (after !== undefined && byteOrder(after, prefix) < 0) after = undefined;
  // At or past the prefix but outside its directory: past everything under it.
  if (after !== undefined && !after.startsWith(path)) return [];
  const found: ObjectSummary[] = [];
  const walk = walkDirectory(reader, { id: top, path, partial: prefix.slice(cut), after: after?.slice(path.length), batch: Math.min(limit, 1000) });
  for await (const object of walk) {
    found.push(object);
    if (found.length === limit) break;
  }
  return found;
}

interface WalkFrom {
  id: number;
  /** The directory's key: '' for the root, else ending in '/'. */
  path: string;
  /** Only entries starting with this (the last, partial segment of a prefix). */
  partial: string;
  /** Relative to path; undefined: from the start, marker included. */
  after: string | undefined;
  batch: number;
}

async function* walkDirectory(reader: NamespaceReader, from: WalkFrom): AsyncGenerator<ObjectSummary> {
  const { id, path, partial, after, batch } = from;
  if (after === undefined && partial === '' && id !== ROOT_DIRECTORY) {
    const marker = await reader.marker(id);
    if (marker) yield { ...marker, key: path };
  }
  const slash = after?.indexOf('/') ?? -1;
  if (after !== undefined && slash >= 0) {
    // The position lies inside a subdirectory: finish that one first.
    const name = after.slice(0, slash + 1);
    const child = name.startsWith(partial) ? await reader.directory(id, name) : undefined;
    if (child !== undefined) yield* walkDirectory(reader, { id: child, path: path + name, partial: '', after: after.slice(slash + 1), batch });
  }
  const lower: Bound = after !== undefined && byteOrder(after, partial) >= 0 ? { value: after, inclusive: false } : { value: partial, inclusive: true };
  const upper = partial === '' ? undefined : prefixUpperBound(partial);
  const files = new Cursor((bound) => reader.files(id, bound, upper, batch), (f) => f.key.slice(f.key.indexOf('/') + 1), lower, batch);
  const directories = new Cursor((bound) => reader.directories(id, bound, upper, batch), (d) => d.name, lower, batch);
  for (;;) {
    const file = await files.peek();
    const directory = await directories.peek();
    if (file === undefined && directory === undefined) return;
    // A leaf never contains '/' and a directory name ends with it: the two never tie.
    if (directory === undefined || (file !== undefined && byteOrder(files.nameOf(file), directory.name) < 0)) {
      files.advance();
      yield { ...file!, key: path + files.nameOf(file!) };
    } else {
      directories.advance();
      yield* walkDirectory(reader, { id: directory.id, path: path + directory.name, partial: '', after: undefined, batch });
    }
  }
}

/** Reads one ordered range in batches. */
class Cursor<T> {
  private rows: T[] = [];
  private index = 0;
  private exhausted = false;

  constructor(
    private readonly fetch: (lower: Bound) => Promise<T[]>,
    readonly nameOf: (row: T) => string,
    private lower: Bound,
    private readonly batch: number,
  ) {}

  async peek(): Promise<T | undefined> {
    if (this.index === this.rows.length && !this.exhausted) {
      this.rows = await this.fetch(this.lower);
      this.index = 0;
      // A short batch is the end of the range: no query to find out.
      this.exhausted = this.rows.length < this.batch;
      const last = this.rows.at(-1);
      if (last !== undefined) this.lower = { value: this.nameOf(last), inclusive: false };
    }
    return this.rows[this.index];
  }

  advance(): void {
    this.index++;
  }
}
