// s3g admin: user management against the metadata store (--data DIR or --meta URL).
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { openMetadataStore } from '../metadata/open.js';
import type { UserWithKeys } from '../metadata/store.js';

const USAGE = `usage: s3g admin [--data DIR | --meta URL] [--json] <command>

commands:
  user create NAME [--admin]   create a user with a new access key
  user info NAME               show a user and its access keys
  user list                    list users
`;

export function metadataUrl(values: { data?: string; meta?: string }): string {
  return values.meta ?? `sqlite:${join(values.data ?? './data', 'meta', 's3g.db')}`;
}

function printUser(user: UserWithKeys, json: boolean): void {
  const key = user.accessKeys[0];
  const view = {
    name: user.name,
    displayName: user.displayName,
    canonicalId: user.canonicalId,
    admin: user.admin,
    accessKeyId: key?.accessKeyId,
    secretAccessKey: key?.secretAccessKey,
    accessKeys: user.accessKeys.map((k) => ({ accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey })),
  };
  if (json) process.stdout.write(JSON.stringify(view, null, 2) + '\n');
  else process.stdout.write(Object.entries(view).filter(([k]) => k !== 'accessKeys').map(([k, v]) => `${k}: ${String(v)}`).join('\n') + '\n');
}

export async function admin(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      meta: { type: 'string' },
      json: { type: 'boolean', default: false },
      admin: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const [group, action, name] = positionals;
  const store = await openMetadataStore(metadataUrl(values));
  try {
    if (group === 'user' && action === 'create' && name) {
      printUser(await store.createUser({ name, admin: values.admin }), values.json);
      return 0;
    }
    if (group === 'user' && action === 'info' && name) {
      const user = await store.getUser(name);
      if (!user) {
        process.stderr.write(`s3g admin: no user '${name}'\n`);
        return 1;
      }
      printUser(user, values.json);
      return 0;
    }
    if (group === 'user' && action === 'list') {
      const users = await store.listUsers();
      process.stdout.write(values.json ? JSON.stringify(users, null, 2) + '\n' : users.map((u) => u.name).join('\n') + '\n');
      return 0;
    }
    process.stderr.write(`s3g admin: unknown command '${positionals.join(' ')}'\n${USAGE}`);
    return 2;
  } finally {
    await store.close();
  }
}
