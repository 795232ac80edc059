// What this design's essential work allows for 4 KiB requests on this machine, for the ratio
// targets of the issue "Throughput" (where one is missed, what limits it). Each round loads, in
// turn, s3g, the essentials server (essentials-server.ts: s3g's own SigV4, metadata store and
// hashing pool, and nothing else) over the objects s3g's workload prepared, and the bare
// node:http server; it prints each one's ops/s, CPU per request and ratio to bare.
//   node --import tsx bench/essentials.ts [--workload GET,PUT] [--rounds 3] [--duration 8] [--connections 64]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBaseline } from './baselines.js';
import { benchConfig } from './config.js';
import { endpointAt } from './endpoint.js';
import { metadataPath } from './list-fixture.js';
import { spawnServer, type ServerProcess } from './proc.js';
import { median } from './rounds.js';
import { ROOT, S3G_CREDENTIALS, s3gNodeFlags, startS3g } from './s3g-server.js';
import { smallLoad, smallTarget, smallWorkload, type Measurement, type SmallMethod } from './workloads.js';

const { values } = parseArgs({
  options: {
    workload: { type: 'string', default: 'GET,PUT' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '64' },
  },
});
const methods = values.workload.split(',').map((m) => m.trim().toUpperCase() as SmallMethod);
for (const m of methods) if (!['GET', 'PUT', 'HEAD'].includes(m)) throw new Error(`--workload ${m}: GET, PUT or HEAD`);
const rounds = Number(values.rounds);
const config = benchConfig(false);
config.small.durationS = Number(values.duration);
config.small.connections = Number(values.connections);
const target = smallTarget(config);

const s3g = await startS3g();
const bare = await startBaseline('small').catch(async (error: unknown) => {
  await s3g.stop();
  throw error;
});
let essentials: ServerProcess | undefined;
const servers = ['s3g', 'essentials', 'bare'] as const;
// smallLoad's measurements always have a value (it throws when nothing was answered).
const ops = (m: Measurement) => m.value!;
const cpu = (m: Measurement) => `${Math.round(m.cpuUsPerOp ?? NaN)} µs${m.failed ? `, ${m.failed} failed` : ''}`;
try {
  for (const method of methods) {
    const loadS3g = await smallWorkload(config, method).prepare(s3g.endpoint);
    // After s3g's workload made the bucket and its objects: the essentials server serves those.
    essentials ??= await spawnServer({
      name: 'essentials',
      command: process.execPath,
      args: [...s3gNodeFlags(), '--import', 'tsx', fileURLToPath(new URL('./essentials-server.ts', import.meta.url)), metadataPath(s3g.dataDir), target.bucket, S3G_CREDENTIALS.secretAccessKey],
      cwd: ROOT,
      ready: /^essentials ready (http:\/\/\S+)$/m,
    });
    const loads = {
      s3g: loadS3g,
      essentials: await smallLoad(config, endpointAt('essentials', essentials.url, S3G_CREDENTIALS, essentials.pid), method, target),
      bare: await smallWorkload(config, method).prepare(bare.endpoint),
    };
    const measured: Record<(typeof servers)[number], Measurement[]> = { s3g: [], essentials: [], bare: [] };
    for (let round = 0; round < rounds; round++) {
      for (const server of servers) measured[server].push(await loads[server]());
      const [s, e, b] = servers.map((server) => measured[server][round]!) as [Measurement, Measurement, Measurement];
      console.log(
        `${method} round ${round + 1}: s3g ${Math.round(ops(s))} ops/s (${cpu(s)}), essentials ${Math.round(ops(e))} (${cpu(e)}), bare ${Math.round(ops(b))} (${cpu(b)}): ` +
          `s3g ${(ops(s) / ops(b)).toFixed(2)}×, essentials ${(ops(e) / ops(b)).toFixed(2)}× of bare`,
      );
    }
    const ratio = (server: 's3g' | 'essentials') => median(measured[server].map((m, i) => ops(m) / ops(measured.bare[i]!)));
    const cpuMedian = (server: (typeof servers)[number]) => Math.round(median(measured[server].map((m) => m.cpuUsPerOp ?? NaN)));
    console.log(
      `${method} medians: s3g ${ratio('s3g').toFixed(2)}× of bare at ${cpuMedian('s3g')} µs per request, essentials ${ratio('essentials').toFixed(2)}× at ${cpuMedian('essentials')} µs, bare ${cpuMedian('bare')} µs`,
    );
  }
} finally {
  await essentials?.stop();
  await bare.stop();
  await s3g.stop();
}
