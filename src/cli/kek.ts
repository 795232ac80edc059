// Where a process finds its key-encryption keys (KEKs) for secrets at rest: the environment
// variable S3G_KEK holding the keys themselves, else the file named by kek-file, else a
// default file (serve: DATA/kek, created with mode 0600 on first start so that `make run`
// needs no setup). The keys never come from a flag or a config file's text, only by reference.
import { readFileSync, writeFileSync } from 'node:fs';
import { SecretBox, newKekText } from '../metadata/secret-box.js';

export interface KekSources {
  /** The kek-file option (config file, S3G_KEK_FILE or --kek-file). */
  kekFile?: string;
  /** Used when neither S3G_KEK nor kekFile is given. */
  defaultFile?: string;
  /** Create defaultFile with a new KEK when it does not exist. */
  createDefault?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** The KEK ring, or undefined when none is configured (and no default file exists). */
export function loadSecretBox(sources: KekSources): SecretBox | undefined {
  const fromEnv = (sources.env ?? process.env).S3G_KEK;
  if (fromEnv && sources.kekFile) throw new Error('S3G_KEK and kek-file are both set: give the key-encryption keys one way');
  if (fromEnv) return SecretBox.parse(fromEnv, 'S3G_KEK');
  if (sources.kekFile) return SecretBox.parse(readKekFile(sources.kekFile), `KEK file ${sources.kekFile}`);
  if (!sources.defaultFile) return undefined;
  if (sources.createDefault) {
    try {
      // 'wx': never overwrite a KEK another process just created.
      writeFileSync(sources.defaultFile, `# s3g key-encryption key (current first); keep this file private\n${newKekText()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  try {
    return SecretBox.parse(readFileSync(sources.defaultFile, 'utf8'), `KEK file ${sources.defaultFile}`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function readKekFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`KEK file ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : String(error)}`);
  }
}
