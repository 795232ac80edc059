// s3g's configuration: one table of options, read from a config file (YAML or JSON), the
// environment (S3G_*) and flags, in that order of precedence (flags win), and validated by
// one zod schema. An option has the same name everywhere: `admin-port` in the file,
// S3G_ADMIN_PORT in the environment, --admin-port on the command line.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseSize, parseSizeOrZero } from '../cli/sizes.js';
import { DEFAULT_RESERVED_BYTES } from '../datanode/block-store.js';
import { DEFAULT_INLINE_CACHE_BYTES } from '../metadata/inline-body-cache.js';

/** Integers arrive as numbers (file) or strings (environment, flags). */
function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  return z
    .union([z.number(), z.string().trim().regex(/^-?\d+$/).transform(Number)], { error: `must be ${range}` })
    .pipe(z.number().int({ error: `must be ${range}` }).min(min, { error: `must be ${range}` }).max(max, { error: `must be ${range}` }));
}

const SIZE_ERROR = 'must be a size such as 4MiB, 16KiB or 1048576';

function seconds() {
  return z
    .union([z.number(), z.string().trim().regex(/^\d+(\.\d+)?$/).transform(Number)], { error: 'must be a number of seconds > 0' })
    .pipe(z.number().positive({ error: 'must be a number of seconds > 0' }));
}

/** A size (4MiB, 16KiB, 1048576); with `orZero`, also 0 meaning none. */
function size({ orZero = false } = {}) {
  return z.union([z.number().int().min(orZero ? 0 : 1), z.string()], { error: SIZE_ERROR }).transform((value, ctx) => {
    if (typeof value === 'number') return value;
    try {
      return orZero ? parseSizeOrZero(value) : parseSize(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: SIZE_ERROR });
      return z.NEVER;
    }
  });
}

/** Booleans arrive as booleans (file) or strings (environment, flags). */
function boolean() {
  const words: Record<string, boolean> = { true: true, yes: true, on: true, '1': true, false: false, no: false, off: false, '0': false };
  return z.union([z.boolean(), z.string().trim().toLowerCase().refine((s) => s in words).transform((s) => words[s]!)], { error: 'must be true or false' });
}

function list() {
  return z
    .union([z.array(z.string()), z.string().transform((s) => s.split(','))], { error: 'must be a list of names' })
    .transform((items) => items.map((s) => s.trim()).filter((s) => s !== ''));
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const fields = {
  host: z.string({ error: 'must be a host name or address' }).min(1).default('127.0.0.1'),
  port: integer(0, 65535).default(9878),
  adminPort: integer(0, 65535).default(9879),
  data: z.string({ error: 'must be a directory' }).min(1).default('./data'),
  meta: z.string({ error: 'must be a metadata URL' }).regex(/^(sqlite:|postgres(ql)?:\/\/)/, { error: 'must be sqlite:PATH or postgres://…' }).optional(),
  datanodes: integer(1, 1024).default(1),
  replication: integer(1, 16).default(1),
  domain: list().default([]),
  region: z.string({ error: 'must be a region name' }).regex(/^[a-z0-9-]+$/, { error: 'must be a region name such as us-east-1' }).default('us-east-1'),
  chunkSize: size().default(4 * 1024 ** 2),
  blockSize: size().default(256 * 1024 ** 2),
  bytesPerChecksum: size().default(16 * 1024),
  inlineThreshold: size({ orZero: true }).default(64 * 1024),
  inlineCache: size({ orZero: true }).default(DEFAULT_INLINE_CACHE_BYTES),
  uploadBuffers: integer(1, 65536).default(8),
  gatewayProcesses: integer(1, 64).default(1),
  hashThreads: integer(1, 1024).optional(),
  hashNice: integer(0, 19).default(10),
  datanodeNice: integer(0, 19).default(10),
  datanodeReservedSpace: size({ orZero: true }).default(DEFAULT_RESERVED_BYTES),
  shortCircuitReads: boolean().default(true),
  purgeInterval: seconds().default(30),
  replicationInterval: seconds().default(30),
  openKeyTimeout: seconds().default(3600),
  logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  statsInterval: seconds().default(10),
  shutdownGrace: seconds().default(30),
  maxRequests: integer(1, 1_000_000).default(1024),
  headersTimeout: seconds().default(20),
  idleTimeout: seconds().default(60),
  minBodyRate: integer(0).default(512),
  bodyRateWindow: seconds().default(20),
  kekFile: z.string({ error: 'must be a file' }).min(1).optional(),
  defaultBucketLayout: z
    .string({ error: 'must be OBS or FSO' })
    .transform((s) => s.toUpperCase())
    .pipe(z.enum(['OBS', 'FSO'], { error: 'must be OBS or FSO' }))
    .default('OBS'),
};

export type ConfigKey = keyof typeof fields;

const schema = z.strictObject(fields).superRefine((c, ctx) => {
  // Only local datanodes are counted here; a cluster's gateway finds its datanodes in metadata.
  if (c.meta === undefined && c.replication > c.datanodes) {
    ctx.addIssue({ code: 'custom', path: ['replication'], message: `${c.replication} needs at least as many datanodes (datanodes is ${c.datanodes})` });
  }
  if (c.chunkSize % c.bytesPerChecksum !== 0) ctx.addIssue({ code: 'custom', path: ['chunkSize'], message: 'must be a multiple of bytes-per-checksum' });
  if (c.inlineThreshold > c.chunkSize) ctx.addIssue({ code: 'custom', path: ['inlineThreshold'], message: 'must be at most chunk-size' });
  if (c.blockSize % c.chunkSize !== 0) ctx.addIssue({ code: 'custom', path: ['blockSize'], message: 'must be a multiple of chunk-size' });
});

export type Config = z.output<typeof schema>;

interface OptionDoc {
  /** Placeholder shown in --help. */
  arg: string;
  help: string;
  /** The default as a person writes it; absent when computed. */
  shown: string;
  multiple?: boolean;
}

/** Documentation of every option, in --help order; README.md has the same table. */
export const OPTIONS: Record<ConfigKey, OptionDoc> = {
  host: { arg: 'HOST', help: 'listen address of the S3 and admin ports', shown: '127.0.0.1' },
  port: { arg: 'N', help: 'S3 port', shown: '9878' },
  adminPort: { arg: 'N', help: 'admin port: /metrics, /health, /ready, the admin page', shown: '9879' },
  data: { arg: 'DIR', help: 'data directory (serve)', shown: './data' },
  meta: { arg: 'URL', help: 'metadata store of a cluster: sqlite:PATH or postgres://… (gateway)', shown: 'serve: `sqlite:DATA/meta/s3g.db`' },
  datanodes: { arg: 'N', help: 'local datanode processes', shown: '1' },
  replication: { arg: 'R', help: 'replicas per block, at most datanodes', shown: '1' },
  domain: { arg: 'D', help: 'virtual-hosted-style domain (bucket.D), repeatable', shown: 'none', multiple: true },
  region: { arg: 'R', help: 'region reported to clients', shown: 'us-east-1' },
  chunkSize: { arg: 'SIZE', help: 'chunk size', shown: '4MiB' },
  blockSize: { arg: 'SIZE', help: 'block size', shown: '256MiB' },
  bytesPerChecksum: { arg: 'SIZE', help: 'CRC32C slice size', shown: '16KiB' },
  inlineThreshold: { arg: 'SIZE', help: 'objects up to this size live in the metadata row, not on datanodes (0: never)', shown: '64KiB' },
  inlineCache: { arg: 'SIZE', help: 'memory for inline objects\' bodies as reads fetched them (of each gateway process; SQLite metadata; 0: none)', shown: '32MiB' },
  uploadBuffers: { arg: 'N', help: 'chunk buffers shared by every upload in flight (of each gateway process), each 2 × chunk-size: bounds upload memory', shown: '8' },
  gatewayProcesses: { arg: 'N', help: 'processes serving S3 requests on the one port, connections dealt round-robin', shown: '1' },
  hashThreads: { arg: 'N', help: 'hashing pool threads (of each gateway process)', shown: 'CPU count − 1 (at least 1)' },
  hashNice: { arg: 'N', help: 'hashing threads run this much nicer than the event loop (0–19)', shown: '10' },
  datanodeNice: { arg: 'N', help: 'local datanode processes run this much nicer than the gateway (0–19, serve)', shown: '10' },
  datanodeReservedSpace: { arg: 'SIZE', help: 'local datanodes take no new block while their disk has less free (0: none; serve)', shown: '1GiB' },
  shortCircuitReads: { arg: 'BOOL', help: 'read blocks of datanodes on this host from their files, not over gRPC', shown: 'true' },
  purgeInterval: { arg: 'SECONDS', help: 'deleted-block purge period', shown: '30' },
  replicationInterval: { arg: 'SECONDS', help: 're-replication check period (under-replicated blocks are copied)', shown: '30' },
  openKeyTimeout: { arg: 'SECONDS', help: 'abandoned uploads reclaimed after', shown: '3600' },
  logLevel: { arg: 'LEVEL', help: LOG_LEVELS.join('|'), shown: 'info' },
  statsInterval: { arg: 'SECONDS', help: 'refresh of stored-object totals and replication health', shown: '10' },
  shutdownGrace: { arg: 'SECONDS', help: 'in-flight requests may finish this long after SIGTERM', shown: '30' },
  maxRequests: { arg: 'N', help: 'requests served at once; beyond that 503 SlowDown', shown: '1024' },
  headersTimeout: { arg: 'SECONDS', help: 'request line and headers must arrive within this', shown: '20' },
  idleTimeout: { arg: 'SECONDS', help: 'a silent connection is closed after this', shown: '60' },
  minBodyRate: { arg: 'BYTES', help: 'bytes per second a request body must keep up (0: no minimum)', shown: '512' },
  bodyRateWindow: { arg: 'SECONDS', help: 'window over which min-body-rate is measured', shown: '20' },
  kekFile: { arg: 'FILE', help: 'key-encryption keys of secrets at rest, current first (S3G_KEK holds them directly)', shown: 'serve: `DATA/kek`, created if missing' },
  defaultBucketLayout: { arg: 'OBS|FSO', help: 'layout of buckets created through S3 (CreateBucket)', shown: 'OBS' },
};

export const CONFIG_KEYS = Object.keys(OPTIONS) as ConfigKey[];

/** `adminPort` → `admin-port`: the name in the file and on the command line. */
export function optionName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export function envName(key: ConfigKey): string {
  return 'S3G_' + optionName(key).toUpperCase().replace(/-/g, '_');
}

const KEY_BY_NAME = new Map(CONFIG_KEYS.map((k) => [optionName(k), k]));

/** node:util parseArgs options for these flags: strings, no defaults (an absent flag must not hide the file or environment). */
export function flagOptions(): Record<string, { type: 'string'; multiple?: boolean }> {
  return Object.fromEntries(CONFIG_KEYS.map((k) => [optionName(k), OPTIONS[k].multiple ? { type: 'string', multiple: true } : { type: 'string' }]));
}

export function optionsUsage(): string {
  const rows = CONFIG_KEYS.map((k) => [`--${optionName(k)} ${OPTIONS[k].arg}`, `${OPTIONS[k].help} (default ${OPTIONS[k].shown})`]);
  const width = Math.max(...rows.map(([flag]) => flag!.length)) + 2;
  return rows.map(([flag, help]) => `  ${flag!.padEnd(width)}${help}`).join('\n') + '\n';
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** The config file; when absent, S3G_CONFIG names it (or there is none). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** parseArgs values; keys by flag name (`admin-port`). Unknown keys are ignored. */
  flags?: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

interface Raw {
  value: unknown;
  source: string;
}

export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const raw = new Map<ConfigKey, Raw>();
  const problems: string[] = [];

  const file = sources.file ?? (env.S3G_CONFIG || undefined);
  if (file) {
    for (const [name, value] of Object.entries(readConfigFile(file))) {
      const key = KEY_BY_NAME.get(name);
      if (!key) {
        const near = KEY_BY_NAME.has(optionName(name)) ? ` (did you mean '${optionName(name)}'?)` : '';
        problems.push(`${name}: unknown option in ${file}${near}; known: ${[...KEY_BY_NAME.keys()].join(', ')}`);
      } else raw.set(key, { value, source: `config file ${file}` });
    }
  }
  for (const key of CONFIG_KEYS) {
    const value = env[envName(key)];
    if (value !== undefined && value !== '') raw.set(key, { value, source: `environment ${envName(key)}` });
  }
  for (const key of CONFIG_KEYS) {
    const value = sources.flags?.[optionName(key)];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    raw.set(key, { value, source: `flag --${optionName(key)}` });
  }

  const result = schema.safeParse(Object.fromEntries([...raw].map(([k, r]) => [k, r.value])));
  if (result.success && problems.length === 0) return result.data;
  for (const issue of result.error?.issues ?? []) {
    const key = issue.path[0] as ConfigKey | undefined;
    const given = key && raw.get(key);
    const where = given ? ` (${given.source}: ${JSON.stringify(given.value)})` : '';
    problems.push(`${key ? optionName(key) : 'config'}: ${issue.message}${where}`);
  }
  throw new ConfigError(problems);
}

/** A mapping of option names to values, from YAML (.yaml, .yml, anything else) or JSON (.json). */
function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`config file ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : String(error)}`]);
  }
  let parsed: unknown;
  try {
    parsed = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError([`config file ${path}: not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message.split('\n')[0]}`]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError([`config file ${path}: must be a mapping of option names to values`]);
  return parsed as Record<string, unknown>;
}
