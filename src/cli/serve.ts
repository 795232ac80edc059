// s3g serve: the all-in-one server (gateway + SQLite metadata + local datanode processes).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openMetadataStore, storeTuning } from '../metadata/open.js';
import { Placement } from '../pipeline/placement.js';
import { LocalDatanodes } from './local-datanodes.js';
import { bootstrapAdmin, runGateway, serverConfig } from './gateway-runtime.js';
import { optionsUsage } from '../observability/config.js';
import { loadSecretBox } from './kek.js';

const USAGE = `usage: s3g serve [--config FILE] [options]

  --config FILE               YAML or JSON file of the options below (or S3G_CONFIG)
${optionsUsage()}
Precedence: config file < environment (S3G_PORT, S3G_ADMIN_PORT, …) < flags.
Credentials of the bootstrap admin: S3G_ACCESS_KEY / S3G_SECRET_KEY.
Key-encryption keys of secrets at rest: S3G_KEK, else --kek-file, else DATA/kek (created if missing).
`;

export async function serve(argv: string[]): Promise<number> {
  const config = serverConfig(argv, USAGE);
  if (!config) return 0;
  process.env.S3G_LOG_LEVEL = config.logLevel; // the datanode processes inherit it

  const dataDir = resolve(config.data);
  mkdirSync(join(dataDir, 'meta'), { recursive: true });
  const kek = { kekFile: config.kekFile, defaultFile: join(dataDir, 'kek') };
  const secrets = loadSecretBox({ ...kek, createDefault: true })!;
  const meta = config.meta ?? `sqlite:${join(dataDir, 'meta', 's3g.db')}`;
  const store = await openMetadataStore(meta, secrets, storeTuning(config));
  const adminUser = await bootstrapAdmin(store);
  const placement = new Placement(store, config.shortCircuitReads);
  const datanodes = new LocalDatanodes(dataDir, config.datanodes, store, placement, {
    nice: config.datanodeNice,
    reservedBytes: config.datanodeReservedSpace,
  });
  await datanodes.start();
  return runGateway({
    config,
    store,
    placement,
    adminUser,
    workerInit: { meta, kek },
    afterGatewayStop: () => datanodes.stop(),
    logFields: { datanodes: datanodes.pids(), dataDir },
  });
}
