// s3g gateway: one stateless gateway of a cluster. Metadata is shared (--meta postgres://…),
// datanodes register themselves there (s3g datanode), and any number of gateways serve the
// same buckets; background services run on one of them at a time, by lease.
import { openMetadataStore, storeTuning } from '../metadata/open.js';
import { Placement } from '../pipeline/placement.js';
import { bootstrapAdmin, runGateway, serverConfig } from './gateway-runtime.js';
import { optionsUsage } from '../observability/config.js';
import { loadSecretBox } from './kek.js';

const USAGE = `usage: s3g gateway --meta URL [--config FILE] [options]

  --config FILE               YAML or JSON file of the options below (or S3G_CONFIG)
${optionsUsage()}
The datanodes are those registered in the metadata store (s3g datanode --meta URL …).
Key-encryption keys of secrets at rest: S3G_KEK or --kek-file (required; the same on every gateway).
`;

export async function gateway(argv: string[]): Promise<number> {
  const config = serverConfig(argv, USAGE);
  if (!config) return 0;
  if (!config.meta) throw new Error('s3g gateway needs --meta URL (sqlite:PATH or postgres://…)');
  const secrets = loadSecretBox({ kekFile: config.kekFile });
  if (!secrets) throw new Error('s3g gateway needs key-encryption keys: S3G_KEK or --kek-file FILE (see README, Secrets at rest)');
  const store = await openMetadataStore(config.meta, secrets, storeTuning(config));
  const adminUser = await bootstrapAdmin(store);
  const placement = new Placement(store, config.shortCircuitReads);
  await placement.refresh();
  return runGateway({ config, store, placement, adminUser, workerInit: { meta: config.meta, kek: { kekFile: config.kekFile } }, logFields: { meta: config.meta.replace(/\/\/[^@/]*@/, '//…@') } });
}
