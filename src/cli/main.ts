// bin/s3g: serve (all in one) | gateway and datanode (a cluster's parts) | admin.
import { serve } from './serve.js';
import { admin } from './admin.js';
import { datanode } from './datanode.js';
import { gateway } from './gateway.js';
import { flushLogs } from '../observability/logger.js';

const USAGE = `usage: s3g <command> [options]

commands:
  serve     all-in-one: gateway + SQLite metadata + local datanodes (see s3g serve --help)
  gateway   one gateway of a cluster, on a shared metadata store (see s3g gateway --help)
  datanode  one datanode of a cluster, registered in the metadata store (see s3g datanode --help)
  admin     cluster status, purge, bulk import, users and access keys (see s3g admin --help)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'gateway':
      return gateway(rest);
    case 'datanode':
      return datanode(rest);
    case 'admin':
      return admin(rest);
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`s3g: unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`s3g: ${error instanceof Error ? error.message : String(error)}\n`);
    // Exit now: what had started before the failure (serve's datanodes and worker processes,
    // timers of background services) would otherwise keep the process alive.
    void flushLogs().finally(() => process.exit(1));
  },
);
