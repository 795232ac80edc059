// Virtual-hosted-style tests address http://BUCKET.s3.localhost:PORT. RFC 6761 says every
// *.localhost name is loopback, but glibc resolves it only with nss-myhostname or
// systemd-resolved. Where the system resolver doesn't, clients get the same mapping
// in-process: a socket `lookup` for Node, a getaddrinfo wrapper for Python. Either way the
// request goes to 127.0.0.1 with `Host: BUCKET.s3.localhost:PORT`.
import { Agent } from 'node:http';
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { join } from 'node:path';
import { ROOT } from './server.js';
import { run } from './exec.js';

export const VHOST_DOMAIN = 's3.localhost';

const isLocalhost = (hostname: string): boolean => hostname === 'localhost' || hostname.endsWith('.localhost');

/** Whether the system resolver maps `name` to loopback (getent follows nsswitch.conf). */
export async function resolvesToLoopback(name: string): Promise<boolean> {
  const result = await run('getent', ['ahostsv4', name]).catch(() => undefined);
  return result?.code === 0 && result.stdout.toString().startsWith('127.');
}

/** An http.Agent whose connections resolve *.localhost to 127.0.0.1. */
export function localhostAgent(): Agent {
  const lookup = (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    if (!isLocalhost(hostname)) return dnsLookup(hostname, options, callback as never);
    if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  };
  return new Agent({ keepAlive: true, lookup: lookup as never });
}

/** Environment for a Python client so that it resolves *.localhost (a sitecustomize on PYTHONPATH). */
export function pythonLocalhostEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const shim = join(ROOT, 'test', 'helpers', 'localhost-dns');
  return { ...env, PYTHONPATH: env.PYTHONPATH ? `${shim}:${env.PYTHONPATH}` : shim, PYTHONDONTWRITEBYTECODE: '1' };
}
