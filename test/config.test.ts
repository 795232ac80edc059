// Configuration: file (YAML or JSON) < environment < flags, one schema with clear errors, and
// a README that documents every option with its default.
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { CONFIG_KEYS, ConfigError, OPTIONS, envName, loadConfig, optionName } from '../src/observability/config.js';
import { ROOT, S3G, datanodePids, disposeServer, outputWith, startServer, tempDir } from './helpers/server.js';
import { signedRequest } from './helpers/raw.js';
import { waitFor } from './helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 's3g-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

t.test('defaults', async (t) => {
  t.same(loadConfig({ env: {} }), {
    host: '127.0.0.1',
    port: 9878,
    adminPort: 9879,
    data: './data',
    datanodes: 1,
    replication: 1,
    domain: [],
    region: 'us-east-1',
    chunkSize: 4 * 1024 ** 2,
    blockSize: 256 * 1024 ** 2,
    bytesPerChecksum: 16 * 1024,
    inlineThreshold: 64 * 1024,
    inlineCache: 32 * 1024 ** 2,
    uploadBuffers: 8,
    gatewayProcesses: 1,
    hashNice: 10,
    datanodeNice: 10,
    datanodeReservedSpace: 1024 ** 3,
    shortCircuitReads: true,
    purgeInterval: 30,
    replicationInterval: 30,
    openKeyTimeout: 3600,
    logLevel: 'info',
    statsInterval: 10,
    shutdownGrace: 30,
    maxRequests: 1024,
    headersTimeout: 20,
    idleTimeout: 60,
    minBodyRate: 512,
    bodyRateWindow: 20,
    defaultBucketLayout: 'OBS',
  });
});

t.test('file < environment < flags', async (t) => {
  const yaml = file('s3g.yaml', 'port: 7000\nadmin-port: 7001\nregion: from-file\ndatanodes: 3\nreplication: 2\ndomain: [a.example, b.example]\nchunk-size: 1MiB\n');
  const env = { S3G_PORT: '8000', S3G_REGION: 'from-env', S3G_DOMAIN: 'env.example,other.example' };
  const c = loadConfig({ file: yaml, env, flags: { port: '9000' } });
  t.equal(c.port, 9000, 'the flag wins');
  t.equal(c.region, 'from-env', 'the environment beats the file');
  t.equal(c.adminPort, 7001, 'the file beats the default');
  t.same([c.datanodes, c.replication, c.chunkSize], [3, 2, 1024 ** 2]);
  t.same(c.domain, ['env.example', 'other.example'], 'lists: comma-separated in the environment');
  t.same(loadConfig({ file: yaml, env: {}, flags: { domain: ['flag.example'] } }).domain, ['flag.example'], 'repeatable flags');
  t.equal(loadConfig({ env: { S3G_CONFIG: yaml } }).port, 7000, 'S3G_CONFIG names the file');
  t.equal(loadConfig({ env: { S3G_PORT: '' } }).port, 9878, 'an empty variable counts as unset');
});

t.test('JSON files', async (t) => {
  const json = file('s3g.json', JSON.stringify({ 'log-level': 'debug', 'stats-interval': 2.5, 'hash-threads': 3 }));
  t.match(loadConfig({ file: json, env: {} }), { logLevel: 'debug', statsInterval: 2.5, hashThreads: 3 });
  t.match(problems(() => loadConfig({ file: file('bad.json', '{"port": 1,}'), env: {} })), [/bad\.json: not valid JSON/]);
});

t.test('bad values name the option, the rule, the source and the value', async (t) => {
  t.same(problems(() => loadConfig({ env: {}, flags: { port: 'http' } })), ['port: must be an integer from 0 to 65535 (flag --port: "http")']);
  t.same(problems(() => loadConfig({ env: { S3G_ADMIN_PORT: '70000' } })), ['admin-port: must be an integer from 0 to 65535 (environment S3G_ADMIN_PORT: "70000")']);
  const yaml = file('bad.yaml', 'chunk-size: 4 potatoes\nlog-level: loud\npurge-interval: -1\n');
  t.same(problems(() => loadConfig({ file: yaml, env: {} })), [
    `chunk-size: must be a size such as 4MiB, 16KiB or 1048576 (config file ${yaml}: "4 potatoes")`,
    `purge-interval: must be a number of seconds > 0 (config file ${yaml}: -1)`,
    `log-level: must be one of trace, debug, info, warn, error, fatal, silent (config file ${yaml}: "loud")`,
  ]);
  t.same(problems(() => loadConfig({ env: { S3G_DEFAULT_BUCKET_LAYOUT: 'tree' } })), ['default-bucket-layout: must be OBS or FSO (environment S3G_DEFAULT_BUCKET_LAYOUT: "tree")']);
  t.equal(loadConfig({ env: { S3G_DEFAULT_BUCKET_LAYOUT: 'fso' } }).defaultBucketLayout, 'FSO', 'the layout in either case');
  t.match(problems(() => loadConfig({ env: {}, flags: { replication: '3' } })), [/^replication: 3 needs at least as many datanodes \(datanodes is 1\)/]);
  t.match(problems(() => loadConfig({ env: {}, flags: { 'chunk-size': '5000', 'block-size': '10000', 'bytes-per-checksum': '3000' } })), [/^chunk-size: must be a multiple of bytes-per-checksum/]);
  t.match(problems(() => loadConfig({ env: {}, flags: { 'block-size': '6MiB' } })), [/^block-size: must be a multiple of chunk-size/]);
  t.same(problems(() => loadConfig({ env: { S3G_SHORT_CIRCUIT_READS: 'maybe' } })), ['short-circuit-reads: must be true or false (environment S3G_SHORT_CIRCUIT_READS: "maybe")']);
  for (const [given, expected] of [['false', false], ['OFF', false], ['0', false], ['no', false], ['true', true], ['on', true], ['1', true]] as const) {
    t.equal(loadConfig({ env: {}, flags: { 'short-circuit-reads': given } }).shortCircuitReads, expected, `short-circuit-reads ${given}`);
  }
  t.equal(loadConfig({ file: file('bool.yaml', 'short-circuit-reads: false\n'), env: {} }).shortCircuitReads, false, 'a YAML boolean');
});

t.test('file mistakes', async (t) => {
  t.match(problems(() => loadConfig({ file: file('typo.yaml', 'adminPort: 1\nprot: 2\n'), env: {} })), [
    /^adminPort: unknown option in .*typo\.yaml \(did you mean 'admin-port'\?\); known: host, port, admin-port/,
    /^prot: unknown option/,
  ]);
  t.match(problems(() => loadConfig({ file: join(dir, 'absent.yaml'), env: {} })), [/absent\.yaml: not found/]);
  t.match(problems(() => loadConfig({ file: file('list.yaml', '- port\n'), env: {} })), [/must be a mapping of option names to values/]);
  t.match(problems(() => loadConfig({ file: file('broken.yaml', 'port: [1\n'), env: {} })), [/broken\.yaml: not valid YAML/]);
  t.same(loadConfig({ file: file('empty.yaml', ''), env: {} }).port, 9878, 'an empty file is no options');
});

t.test('README documents every option with its flag, variable and default', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const key of CONFIG_KEYS) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${optionName(key)}\``));
    t.ok(row, `a row for ${optionName(key)}`);
    t.match(row, `\`--${optionName(key)}\``, `${optionName(key)}: flag`);
    t.match(row, `\`${envName(key)}\``, `${optionName(key)}: variable`);
    t.match(row, OPTIONS[key].shown, `${optionName(key)}: default ${OPTIONS[key].shown}`);
  }
});

t.test('serve --help lists every option', async (t) => {
  const { stdout } = await promisify(execFile)(S3G, ['serve', '--help']);
  for (const key of CONFIG_KEYS) t.match(stdout, `--${optionName(key)} `);
  t.match(stdout, '--config FILE');
});

t.test('serve takes the three layers, flags winning', async (t) => {
  const yaml = file('serve.yaml', 'datanodes: 2\nregion: file-region-1\nlog-level: debug\nport: 1\nstats-interval: 0.5\n');
  // The test helper passes --port 0 and --admin-port 0: those flags beat the file's port 1.
  const server = await startServer({ args: ['--config', yaml, '--log-level', 'info'], env: { S3G_REGION: 'env-region-1', S3G_LOG_LEVEL: 'warn' } });
  t.teardown(() => disposeServer(server));
  t.not(server.port, 1);
  t.equal((await signedRequest(server, { method: 'PUT', path: '/layers' })).status, 200);
  const head = await signedRequest(server, { method: 'HEAD', path: '/layers' });
  t.equal(head.headers['x-amz-bucket-region'], 'env-region-1', 'region from the environment over the file');
  const status = (await (await fetch(`${server.adminUrl}/api/status`)).json()) as { datanodes: unknown[] };
  t.equal(status.datanodes.length, 2, 'datanodes from the file');
  t.match(await outputWith(server, '"operation":"HeadBucket"'), /"level":"info".*"operation":"HeadBucket"/, 'log level info from the flag over warn from the environment');
  t.notMatch(server.output(), /"level":"debug"/);
});

t.test('serve refuses a bad configuration before starting anything', async (t) => {
  const data = tempDir();
  t.teardown(() => rmSync(data, { recursive: true, force: true }));
  const yaml = file('refused.yaml', 'replication: 2\nblock-size: lots\n');
  const failure = await promisify(execFile)(S3G, ['serve', '--config', yaml, '--data', data]).then(
    () => undefined,
    (error: { code: number; stderr: string; stdout: string }) => error,
  );
  t.ok(failure, 'exits non-zero');
  t.equal(failure?.code, 1);
  t.equal(failure?.stdout, '', 'no ready line');
  t.match(failure?.stderr, 's3g: invalid configuration:');
  t.match(failure?.stderr, `block-size: must be a size such as 4MiB, 16KiB or 1048576 (config file ${yaml}: "lots")`);
});

t.test('serve whose S3 port is taken exits 1 with the reason, and its datanodes stop', async (t) => {
  const data = tempDir();
  t.teardown(() => rmSync(data, { recursive: true, force: true }));
  const taken = createNetServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const port = String((taken.address() as AddressInfo).port);
  const failure = await promisify(execFile)(S3G, ['serve', '--data', data, '--port', port, '--admin-port', '0', '--gateway-processes', '2'], { timeout: 30_000 }).then(
    () => undefined,
    (error: { code: number; stderr: string; stdout: string }) => error,
  );
  t.equal(failure?.code, 1, 'exit 1, not a hang');
  t.match(failure?.stderr, /s3g: listen EADDRINUSE/);
  t.notMatch(failure?.stdout, /s3g ready/);
  const datanodesOf = (): string[] =>
    readdirSync('/proc').filter((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(join(data, 'datanodes'));
      } catch {
        return false; // ended while we looked
      }
    });
  await waitFor('the datanode processes to exit', () => datanodesOf().length === 0, 10_000);
  t.pass('no datanode process left');
});

t.test('serve runs its datanodes and hashing threads nicer than the event loop', async (t) => {
  const server = await startServer({ args: ['--datanodes', '2', '--hash-threads', '2', '--hash-nice', '3', '--datanode-nice', '7'] });
  t.teardown(() => disposeServer(server));
  // Field 19 of /proc/…/stat is the nice value; Linux keeps one per thread.
  const niceOf = (path: string): number => Number(readFileSync(path, 'utf8').split(') ')[1]!.split(' ')[16]);
  const threadNices = (pid: number): number[] => readdirSync(`/proc/${pid}/task`).map((tid) => niceOf(`/proc/${pid}/task/${tid}/stat`));
  const gateway = server.proc.pid!;
  const base = niceOf(`/proc/${gateway}/stat`);
  // A worker lowers its priority as it starts, which may be just after the ready line.
  await waitFor('both hashing threads at +3', () => threadNices(gateway).filter((nice) => nice === base + 3).length === 2, 10_000);
  t.equal(threadNices(gateway).filter((nice) => nice === base).length, threadNices(gateway).length - 2, 'every other thread as started');
  const datanodes = Object.values(datanodePids(server));
  t.equal(datanodes.length, 2);
  for (const pid of datanodes) t.same(new Set(threadNices(pid)), new Set([base + 7]), `every thread of datanode ${pid} at +7`);
  // Still serving, with the priorities in place.
  t.equal((await signedRequest(server, { method: 'PUT', path: '/nice' })).status, 200);
});
