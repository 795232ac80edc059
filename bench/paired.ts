// Two builds of s3g served side by side under equal load, for changes of a few percent: this
// machine's speed moves by a fifth or more within minutes, far more than such a change, but it
// moves for both servers of a pair alike. Each round loads both at once (one load generator,
// the same connections each) and compares their CPU per request (/proc, all threads).
//   node --import tsx bench/paired.ts --baseline DIR [--workload GET,PUT,HEAD] [--rounds 5]
//     [--duration 5] [--connections 32] [--args "serve flags for both"]
//     [--node-args="node flags for this build only"]
// DIR is another checkout, built (make build), e.g. `git worktree add /tmp/base HEAD~1`.
// `--baseline .` pairs this build with itself: how far apart two equal servers come out, or,
// with --node-args, what a node flag changes.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchConfig } from './config.js';
import { median } from './rounds.js';
import { ROOT, startS3g, type S3gServer } from './s3g-server.js';
import { smallWorkload, type SmallMethod } from './workloads.js';

const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    workload: { type: 'string', default: 'GET,PUT,HEAD' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    args: { type: 'string', default: '' },
    'node-args': { type: 'string', default: '' },
  },
});
const baseline = resolve(values.baseline ?? '');
if (!values.baseline || !existsSync(`${baseline}/dist/cli/main.js`)) throw new Error('--baseline DIR: a built s3g checkout (make build there)');
const methods = values.workload.split(',').map((m) => m.trim().toUpperCase());
for (const m of methods) if (!['GET', 'PUT', 'HEAD'].includes(m)) throw new Error(`--workload ${m}: GET, PUT or HEAD`);
const rounds = Number(values.rounds);
const config = benchConfig(false);
config.small.durationS = Number(values.duration);
config.small.connections = Number(values.connections);
const args = values.args.split(' ').filter(Boolean);

const servers: S3gServer[] = [];
try {
  const base = await startS3g({ args, root: baseline });
  servers.push(base);
  const nodeArgs = values['node-args'].split(' ').filter(Boolean);
  const head = await startS3g({ args, nodeArgs: nodeArgs.length > 0 ? nodeArgs : undefined });
  servers.push(head);
  process.stdout.write(`paired: ${ROOT} against ${baseline}, ${rounds} rounds of ${config.small.durationS} s, ${config.small.connections} connections each\n`);
  for (const method of methods as SmallMethod[]) {
    const runBase = await smallWorkload(config, method).prepare(base.endpoint);
    const runHead = await smallWorkload(config, method).prepare(head.endpoint);
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const [b, h] = await Promise.all([runBase(), runHead()]);
      if (b.cpuUsPerOp === undefined || h.cpuUsPerOp === undefined) throw new Error('no CPU count from /proc');
      ratios.push(h.cpuUsPerOp / b.cpuUsPerOp);
      process.stdout.write(`  4 KiB ${method} round ${r + 1}: baseline ${Math.round(b.value!)} ops/s ${b.cpuUsPerOp.toFixed(1)} µs/op, this build ${Math.round(h.value!)} ops/s ${h.cpuUsPerOp.toFixed(1)} µs/op\n`);
    }
    process.stdout.write(`4 KiB ${method}: CPU per request, this build / baseline: median ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})\n`);
  }
} finally {
  await Promise.all(servers.map((s) => s.stop()));
}
