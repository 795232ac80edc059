// The peer: s3rver 3.7.1 (a Node S3 server on Koa that keeps objects as files), run as its
// own process in its own temporary directory and stopped by PID. It runs on Node 20 with
// one flag: its ListObjectsV2 continuation tokens are DES-encrypted, which OpenSSL 3 only
// offers through the legacy provider (without --openssl-legacy-provider every truncated
// listing answers 500 ERR_OSSL_EVP_UNSUPPORTED). Its listing fixture is
// written straight into its file layout, which mirrors what its FilesystemStore.putObject
// writes for an empty object: `<bucket>/<key>._S3rver_object` plus the `.md5` beside it
// (the metadata JSON is optional: s3rver treats a missing one as no metadata).
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { endpointAt, type Credentials, type Endpoint } from './endpoint.js';
import { spawnServer } from './proc.js';
import { tempDir } from './s3g-server.js';

const TMPFS = '/dev/shm';

/** s3rver accepts only its fixed development key pair. */
const S3RVER_CREDENTIALS: Credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';

export interface PeerServer {
  endpoint: Endpoint;
  dir: string;
  pid: number;
  /** Writes empty objects named `keys` into `bucket` (which must exist) through s3rver's file layout. */
  populate(bucket: string, keys: Iterable<string>): void;
  stop(): Promise<void>;
}

/** Why the peer column is empty, when s3rver cannot be used; undefined when it can. */
export function peerUnavailable(): string | undefined {
  try {
    createRequire(import.meta.url).resolve('s3rver/package.json');
    return undefined;
  } catch {
    return 's3rver is not installed (npm install --save-dev s3rver@3.7.1)';
  }
}

/**
 * A directory on tmpfs with room for `files` files, if the machine has one. The listing
 * fixture is two files per key: on a disk whose journal other processes keep busy with
 * fsyncs, creating two million of them can take the better part of an hour, while on
 * tmpfs it takes a minute. Serving s3rver from memory can only make it faster.
 */
export function tmpfsWithRoom(files: number): string | undefined {
  try {
    const fs = statfsSync(TMPFS);
    return fs.ffree > files * 1.1 + 10_000 && fs.bavail * fs.bsize > files * 4096 * 1.1 ? TMPFS : undefined;
  } catch {
    return undefined;
  }
}

export async function startPeer(options: { parentDir?: string } = {}): Promise<PeerServer> {
  const bin = join(dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const dir = options.parentDir ? mkdtempSync(join(options.parentDir, 's3rver-bench-')) : tempDir('s3rver-bench-');
  try {
    const proc = await spawnServer({
      name: 's3rver',
      command: process.execPath,
      args: ['--openssl-legacy-provider', bin, '--directory', dir, '--address', '127.0.0.1', '--port', '0', '--silent'],
      ready: /^S3rver listening on (\S+)$/m,
    });
    return {
      endpoint: endpointAt('s3rver', `http://${proc.url}`, S3RVER_CREDENTIALS, proc.pid),
      dir,
      pid: proc.pid,
      populate(bucket, keys) {
        const bucketDir = join(dir, bucket);
        if (!existsSync(bucketDir)) throw new Error(`s3rver has no bucket ${bucket}`);
        let lastDir = '';
        for (const key of keys) {
          const path = join(bucketDir, `${key}._S3rver_object`);
          const parent = dirname(path);
          if (parent !== lastDir) mkdirSync((lastDir = parent), { recursive: true });
          closeSync(openSync(path, 'w'));
          writeFileSync(`${path}.md5`, EMPTY_MD5);
        }
      },
      async stop() {
        await proc.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
