// Secret access keys at rest: AES-256-GCM under a key-encryption key (KEK) that never
// enters the metadata store. A KEK ring is the current KEK followed by earlier ones still
// accepted for reading; each ciphertext is stored with the id of the KEK that sealed it, so
// rotation is: put the new KEK first, keep the old ones after it, re-seal (`admin key rekey`),
// then drop the old ones. The access key id is the additional authenticated data: a
// ciphertext copied onto another key's row does not open.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A secret as a store keeps it: kekId null is a row written before secrets were encrypted. */
export interface StoredSecret {
  kekId: string | null;
  secret: string;
}

/** Stable, public name of a KEK: the first 16 hex digits of a SHA-256 of it. */
export function kekIdOf(key: Buffer): string {
  return createHash('sha256').update('s3g-kek-id\0').update(key).digest('hex').slice(0, 16);
}

/** A new KEK in the text form a KEK file or S3G_KEK holds (base64 of 32 random bytes). */
export function newKekText(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** Deciphered secrets kept in memory, like the signing keys derived from them. */
const OPENED_CACHE_ENTRIES = 10_000;

export class SecretBox {
  private readonly keys: Map<string, Buffer>;
  private readonly opened = new Map<string, string>();
  readonly currentKekId: string;

  constructor(ring: Buffer[]) {
    if (ring.length === 0) throw new Error('a KEK ring needs at least one key');
    for (const key of ring) if (key.length !== KEY_BYTES) throw new Error(`a KEK must be ${KEY_BYTES} bytes`);
    this.keys = new Map(ring.map((key) => [kekIdOf(key), key]));
    this.currentKekId = kekIdOf(ring[0]!);
  }

  /**
   * A ring from text: KEKs separated by newlines or commas, current first, each the base64
   * (44 characters) or hex (64 digits) of 32 bytes; '#' starts a comment line. `source` names
   * where the text came from in errors; the text itself is never repeated.
   */
  static parse(text: string, source: string): SecretBox {
    const entries = text.split(/[\n,]/).map((s) => s.trim()).filter((s) => s !== '' && !s.startsWith('#'));
    if (entries.length === 0) throw new Error(`${source}: no key-encryption key in it`);
    const ring = entries.map((entry, i) => {
      const key = /^[0-9a-f]{64}$/i.test(entry) ? Buffer.from(entry, 'hex') : /^[A-Za-z0-9+/]{43}=$/.test(entry) ? Buffer.from(entry, 'base64') : undefined;
      if (!key) throw new Error(`${source}: key ${i + 1} is not 32 bytes in base64 (44 characters) or hex (64 digits)`);
      return key;
    });
    return new SecretBox(ring);
  }

  seal(accessKeyId: string, secret: string): StoredSecret {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKekId)!, iv);
    cipher.setAAD(Buffer.from(accessKeyId));
    const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return { kekId: this.currentKekId, secret: Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64') };
  }

  open(accessKeyId: string, stored: StoredSecret): string {
    if (stored.kekId === null) return stored.secret;
    // Every request looks its key up (a revocation takes effect at once); deciphering the
    // same ciphertext again each time would only cost CPU.
    const cacheKey = `${accessKeyId}\0${stored.kekId}\0${stored.secret}`;
    const known = this.opened.get(cacheKey);
    if (known !== undefined) return known;
    const secret = this.decipher(accessKeyId, { kekId: stored.kekId, secret: stored.secret });
    if (this.opened.size >= OPENED_CACHE_ENTRIES) this.opened.clear();
    this.opened.set(cacheKey, secret);
    return secret;
  }

  private decipher(accessKeyId: string, stored: { kekId: string; secret: string }): string {
    const key = this.keys.get(stored.kekId);
    if (!key) throw new Error(`the secret of access key ${accessKeyId} is sealed with KEK ${stored.kekId}, which is not configured`);
    const sealed = Buffer.from(stored.secret, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(accessKeyId));
    decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(`the secret of access key ${accessKeyId} does not decrypt with KEK ${stored.kekId}`);
    }
  }
}

/** What a store holds when opened without a KEK (a datanode, a tool that reads no secret). */
export function requireSecretBox(box: SecretBox | undefined): SecretBox {
  if (!box) throw new Error('no key-encryption key configured: set S3G_KEK or kek-file (see README, Secrets at rest)');
  return box;
}
