// s3g admin import DIR s3://bucket/prefix: uploads every regular file under DIR through a
// gateway's S3 API (so it works against any gateway of a cluster), a few files at a time,
// showing objects, bytes, rate and ETA as it goes. Files above the multipart threshold go
// up in parts.
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Client, S3Error } from './s3-client.js';
import { Progress, formatBytes, formatDuration, formatProgress } from '../observability/progress.js';

export interface ImportOptions {
  dir: string;
  target: string;
  client: S3Client;
  concurrency: number;
  multipartThreshold: number;
  partSize: number;
  json: boolean;
  /** Where progress lines go (stderr). */
  out?: NodeJS.WriteStream;
}

interface LocalFile {
  path: string;
  key: string;
  size: number;
}

const ATTEMPTS = 3;

export function parseTarget(target: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(target);
  if (!m) throw new Error(`target must look like s3://bucket/prefix, got '${target}'`);
  const prefix = m[2] ?? '';
  return { bucket: m[1]!, prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/` };
}

/** Regular files under dir, in a stable order; symbolic links and special files are skipped. */
async function walk(dir: string, root = dir, found: string[] = []): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path, root, found);
    else if (entry.isFile()) found.push(path);
  }
  return found;
}

export async function importFolder(o: ImportOptions): Promise<number> {
  const out = o.out ?? process.stderr;
  const { bucket, prefix } = parseTarget(o.target);
  const files: LocalFile[] = [];
  for (const path of await walk(o.dir)) {
    files.push({ path, key: prefix + relative(o.dir, path).split(sep).join('/'), size: (await stat(path)).size });
  }
  await ensureBucket(o.client, bucket, out);

  const progress = new Progress(files.length, files.reduce((a, f) => a + f.size, 0));
  const failed: { key: string; error: string }[] = [];
  const tty = out.isTTY === true;
  const show = (final = false): void => {
    const line = `import: ${formatProgress(progress.view())}`;
    if (tty) out.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
    else out.write(`${line}\n`);
  };
  const ticker = setInterval(() => show(), tty ? 1000 : 5000);
  ticker.unref();

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++]!;
      try {
        await withRetries(progress, () => (file.size > o.multipartThreshold ? uploadMultipart(o, bucket, file, progress) : uploadWhole(o.client, bucket, file, progress)));
        progress.objectDone();
      } catch (error) {
        failed.push({ key: file.key, error: error instanceof Error ? error.message : String(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  clearInterval(ticker);
  show(true);

  const view = progress.view();
  const summary = {
    target: `s3://${bucket}/${prefix}`,
    objects: view.doneObjects,
    bytes: view.doneBytes,
    seconds: Math.round(view.elapsedSeconds * 1000) / 1000,
    bytesPerSecond: Math.round(view.doneBytes / Math.max(view.elapsedSeconds, 0.001)),
    failed,
  };
  if (o.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  else {
    process.stdout.write(
      `imported ${summary.objects} objects, ${formatBytes(summary.bytes)} in ${formatDuration(summary.seconds)} (${formatBytes(summary.bytesPerSecond)}/s) to ${summary.target}\n`,
    );
    for (const f of failed) process.stdout.write(`failed: ${f.key}: ${f.error}\n`);
  }
  return failed.length === 0 ? 0 : 1;
}

async function ensureBucket(client: S3Client, bucket: string, out: NodeJS.WriteStream): Promise<void> {
  // GetBucketLocation rather than HEAD: an error comes with its code (SignatureDoesNotMatch, AccessDenied).
  try {
    await client.call({ method: 'GET', bucket, query: 'location' });
    return;
  } catch (error) {
    if (!(error instanceof S3Error && error.code === 'NoSuchBucket')) throw error;
  }
  await client.call({ method: 'PUT', bucket });
  out.write(`import: created bucket ${bucket}\n`);
}

/** Retries network errors and 5xx answers; bytes counted by a failed attempt are taken back. */
async function withRetries(progress: Progress, upload: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const before = progress.doneBytes;
    try {
      return await upload();
    } catch (error) {
      progress.addBytes(before - progress.doneBytes);
      const retryable = !(error instanceof S3Error) || error.status >= 500;
      if (!retryable || attempt >= ATTEMPTS) throw error;
      await sleep(500 * attempt);
    }
  }
}

function counted(path: string, progress: Progress, range?: { start: number; end: number }) {
  const stream = createReadStream(path, range ? { start: range.start, end: range.end - 1 } : {});
  stream.on('data', (chunk) => progress.addBytes(chunk.length));
  return stream;
}

async function uploadWhole(client: S3Client, bucket: string, file: LocalFile, progress: Progress): Promise<void> {
  await client.call({ method: 'PUT', bucket, key: file.key, stream: counted(file.path, progress), length: file.size });
}

async function uploadMultipart(o: ImportOptions, bucket: string, file: LocalFile, progress: Progress): Promise<void> {
  const created = await o.client.call({ method: 'POST', bucket, key: file.key, query: 'uploads' });
  const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body.toString('utf8'))?.[1];
  if (!uploadId) throw new Error(`CreateMultipartUpload ${file.key}: no UploadId in the answer`);
  const id = encodeURIComponent(uploadId);
  try {
    const etags: string[] = [];
    for (let start = 0, n = 1; start < file.size; start += o.partSize, n++) {
      const end = Math.min(file.size, start + o.partSize);
      const res = await o.client.call({
        method: 'PUT',
        bucket,
        key: file.key,
        query: `partNumber=${n}&uploadId=${id}`,
        stream: counted(file.path, progress, { start, end }),
        length: end - start,
      });
      etags.push(String(res.headers.etag ?? ''));
    }
    const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    await o.client.call({ method: 'POST', bucket, key: file.key, query: `uploadId=${id}`, body: Buffer.from(xml) });
  } catch (error) {
    await o.client.send({ method: 'DELETE', bucket, key: file.key, query: `uploadId=${id}` }).catch(() => undefined);
    throw error;
  }
}
