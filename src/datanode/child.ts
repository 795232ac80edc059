// A datanode in its own process, so the gateway's event loop never carries the datanode's
// side of the gRPC traffic. `s3g serve` forks this file:
//   child.js --id ID --dir DIR --host 127.0.0.1 --port 0 [--nice N] [--reserved-space BYTES]
// and waits for the IPC message { type: 'ready', id, port } (or { type: 'error', id, message }).
// Without an IPC channel (started by hand) it prints one "datanode ID ready HOST:PORT" line.
// SIGTERM, SIGINT or the parent going away (IPC disconnect) close it gracefully, exit 0.
import { parseArgs } from 'node:util';
import { lowerPriority } from '../common/priority.js';
import { startDatanodeServer, type DatanodeServer } from './server.js';

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    dir: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'grace-ms': { type: 'string', default: '5000' },
    nice: { type: 'string', default: '0' },
    'reserved-space': { type: 'string', default: '0' },
  },
  strict: true,
});

const id = values.id;
const dir = values.dir;
const port = Number(values.port);
const graceMs = Number(values['grace-ms']);
const nice = Number(values.nice);
const reservedBytes = Number(values['reserved-space']);
if (
  !id || !dir || !Number.isInteger(port) || port < 0 || port > 65535 || !Number.isFinite(graceMs) ||
  !Number.isInteger(nice) || nice < 0 || !Number.isSafeInteger(reservedBytes) || reservedBytes < 0
) {
  process.stderr.write('usage: child --id ID --dir DIR [--host HOST] [--port PORT] [--grace-ms MS] [--nice N] [--reserved-space BYTES]\n');
  process.exit(2);
}
if (nice > 0) lowerPriority(nice);

let server: DatanodeServer | undefined;
let stopping = false;

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await server?.close(graceMs);
  } finally {
    process.exit(0);
  }
}

process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.on('disconnect', () => void stop());

try {
  server = await startDatanodeServer({ id, dir, host: values.host!, port, reservedBytes });
  if (process.send) process.send({ type: 'ready', id, port: server.port });
  else process.stdout.write(`datanode ${id} ready ${server.address}\n`);
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  if (process.send) process.send({ type: 'error', id, message }, undefined, {}, () => process.exit(1));
  else {
    process.stderr.write(`datanode ${id} failed to start: ${message}\n`);
    process.exit(1);
  }
}
