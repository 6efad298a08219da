// The node's key store, `$WARREN_HOME/keys/`:
//   keys.json                 index: [{ fingerprint, type, name, trusted, private, created }]
//   <fingerprint>.pub.pem     public key (PEM keys)   | <fingerprint>.pub.asc (OpenPGP)
//   <fingerprint>.key.pem     private key, mode 0600  | <fingerprint>.key.asc (OpenPGP)
// Trusted keys are what `warren image verify` uses without --key and what the trust policy
// (`require-signed`) accepts.
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError, EXIT, warrenHome } from '../../common/index.js';
import { fingerprintMatches, loadKeyFile, parseKey, pemKeyFromText, type KeyType, type LoadedKey } from './keys.js';

export interface StoredKey {
  fingerprint: string;
  type: KeyType;
  name: string;
  trusted: boolean;
  /** The store holds the private key too. */
  private: boolean;
  created: string;
}

export function defaultKeyDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(warrenHome(env), 'keys');
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export class KeyStore {
  readonly dir: string;

  constructor(dir: string = defaultKeyDir()) {
    this.dir = dir;
  }

  private get indexFile(): string {
    return join(this.dir, 'keys.json');
  }

  list(): StoredKey[] {
    if (!existsSync(this.indexFile)) return [];
    try {
      const v = JSON.parse(readFileSync(this.indexFile, 'utf8')) as { keys?: StoredKey[] };
      return Array.isArray(v.keys) ? v.keys : [];
    } catch (e) {
      throw new WarrenError('KEY_STORE_INVALID', `key store index ${this.indexFile} is not valid JSON (${(e as Error).message})`, {
        hint: 'repair or remove the file, then import the keys again (`warren key import FILE --trust`)',
      });
    }
  }

  private save(keys: StoredKey[]): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeAtomic(this.indexFile, JSON.stringify({ keys }, null, 2) + '\n', 0o644);
  }

  /** The stored key named by a fingerprint (or unique prefix, or DSSE key id) or by its name. */
  find(ref: string): StoredKey | undefined {
    const keys = this.list();
    const byFp = keys.filter((k) => fingerprintMatches(k.fingerprint, ref));
    if (byFp.length > 1) {
      throw new WarrenError('KEY_AMBIGUOUS', `key ${ref} matches ${byFp.length} keys in the key store`, { hint: 'give more digits of the fingerprint (`warren key list`)' });
    }
    return byFp[0] ?? keys.find((k) => k.name === ref);
  }

  publicPath(k: StoredKey): string {
    return join(this.dir, `${k.fingerprint}.pub.${k.type === 'pgp' ? 'asc' : 'pem'}`);
  }

  privatePath(k: StoredKey): string {
    return join(this.dir, `${k.fingerprint}.key.${k.type === 'pgp' ? 'asc' : 'pem'}`);
  }

  /** Load a stored key (the private one when `wantPrivate` and the store has it). */
  async load(k: StoredKey, wantPrivate = false): Promise<LoadedKey> {
    const path = wantPrivate && k.private ? this.privatePath(k) : this.publicPath(k);
    return loadKeyFile(path);
  }

  /** The trusted keys, loaded. */
  async trustedKeys(): Promise<LoadedKey[]> {
    const out: LoadedKey[] = [];
    for (const k of this.list()) if (k.trusted) out.push(await this.load(k));
    return out;
  }

  private add(key: LoadedKey, name: string, trusted: boolean, privateText?: string): StoredKey {
    const keys = this.list();
    const existing = keys.find((k) => k.fingerprint === key.fingerprint);
    const entry: StoredKey = existing ?? { fingerprint: key.fingerprint, type: key.type, name, trusted, private: false, created: new Date().toISOString() };
    if (existing) {
      entry.trusted = existing.trusted || trusted;
      if (name && name !== key.fingerprint.slice(0, 16)) entry.name = name;
    }
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeAtomic(this.publicPath(entry), key.kind === 'pem' ? key.publicPem : key.publicArmored, 0o644);
    if (privateText !== undefined) {
      writeAtomic(this.privatePath(entry), privateText, 0o600);
      entry.private = true;
    }
    const rest = keys.filter((k) => k.fingerprint !== key.fingerprint);
    this.save([...rest, entry]);
    return entry;
  }

  /** Generate a key pair (PEM) and store it; trusted unless `trusted: false`. */
  generate(opts: { type?: Exclude<KeyType, 'pgp'>; name?: string; trusted?: boolean } = {}): StoredKey {
    const type = opts.type ?? 'ed25519';
    let privPem: string;
    if (type === 'ed25519') {
      privPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    } else if (type === 'ecdsa-p256') {
      privPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    } else if (type === 'rsa') {
      privPem = generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    } else {
      throw new WarrenError('KEY_TYPE_UNSUPPORTED', `key type ${String(type)} cannot be generated`, { hint: 'use --type ed25519, ecdsa-p256 or rsa' });
    }
    const key = pemKeyFromText(privPem, 'generated key');
    return this.add(key, opts.name ?? key.fingerprint.slice(0, 16), opts.trusted ?? true, privPem);
  }

  /** Import a key file (public or private; PEM or armored OpenPGP). */
  async import(file: string, opts: { trusted?: boolean; name?: string } = {}): Promise<StoredKey> {
    const key = await loadKeyFile(file);
    const text = readFileSync(file, 'utf8');
    let privateText: string | undefined;
    if (key.kind === 'pem' && key.privateKey) privateText = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    if (key.kind === 'pgp' && key.privateKey) privateText = text;
    const name = opts.name ?? (key.kind === 'pgp' && key.userId ? key.userId : key.fingerprint.slice(0, 16));
    return this.add(key, name, opts.trusted ?? false, privateText);
  }

  /** The stored key `ref`, or KEY_NOT_FOUND. */
  get(ref: string): StoredKey {
    const k = this.find(ref);
    if (!k) throw new WarrenError('KEY_NOT_FOUND', `no key ${ref} in the key store ${this.dir}`, { hint: 'see `warren key list`, or import it with `warren key import FILE`' });
    return k;
  }

  /**
   * The text of a stored key: its public key (PEM or armored OpenPGP), or with `secret` its
   * private key (KEY_PRIVATE_REQUIRED when the store holds only the public part).
   */
  exportText(ref: string, secret = false): { key: StoredKey; text: string } {
    const k = this.get(ref);
    if (secret && !k.private) {
      throw new WarrenError('KEY_PRIVATE_REQUIRED', `key ${k.fingerprint} (${k.name}) has no private key in the key store`, {
        hint: 'export the public key (leave out --secret), or import the private key first (`warren key import PRIVATE.pem`)',
      });
    }
    return { key: k, text: readFileSync(secret ? this.privatePath(k) : this.publicPath(k), 'utf8') };
  }

  /**
   * Write a stored key to `file` (atomically; 0600 for a private key, 0644 for a public one).
   * An existing file is refused (KEY_EXPORT_EXISTS) unless `force`.
   */
  exportToFile(ref: string, file: string, opts: { secret?: boolean; force?: boolean } = {}): StoredKey {
    const { key, text } = this.exportText(ref, opts.secret === true);
    if (existsSync(file) && !opts.force) {
      throw new WarrenError('KEY_EXPORT_EXISTS', `${file} already exists`, { hint: 'choose another file, or add --force to replace it' });
    }
    writeAtomic(file, text, opts.secret ? 0o600 : 0o644);
    return key;
  }

  /**
   * Remove a key from the store: the whole entry, or with `secretOnly` just its private part
   * (the public key stays, and so does its trust). A trusted key is refused (KEY_TRUSTED)
   * unless `force`: removing it changes what the trust policy accepts.
   */
  remove(ref: string, opts: { secretOnly?: boolean; force?: boolean } = {}): StoredKey {
    const k = this.get(ref);
    if (opts.secretOnly) {
      if (!k.private) {
        throw new WarrenError('KEY_PRIVATE_REQUIRED', `key ${k.fingerprint} (${k.name}) has no private key in the key store: nothing to remove with --secret`, {
          hint: 'leave out --secret to remove the whole key',
        });
      }
      rmSync(this.privatePath(k), { force: true });
      const entry = { ...k, private: false };
      this.save(this.list().map((x) => (x.fingerprint === k.fingerprint ? entry : x)));
      return entry;
    }
    if (k.trusted && !opts.force) {
      throw new WarrenError('KEY_TRUSTED', `key ${k.fingerprint} (${k.name}) is trusted: removing it changes which images verify and what the require-signed policy accepts`, {
        hint: `stop trusting it first (\`warren key untrust ${k.fingerprint.slice(0, 16)}\`), or remove it anyway with --force`,
      });
    }
    this.save(this.list().filter((x) => x.fingerprint !== k.fingerprint));
    rmSync(this.publicPath(k), { force: true });
    rmSync(this.privatePath(k), { force: true });
    return k;
  }

  /** Mark a stored key trusted or not. */
  setTrusted(ref: string, trusted: boolean): StoredKey {
    const k = this.get(ref);
    const keys = this.list().map((x) => (x.fingerprint === k.fingerprint ? { ...x, trusted } : x));
    this.save(keys);
    return { ...k, trusted };
  }
}

/** Resolve a key reference: a file path, else a key of the store (fingerprint, prefix or name). */
export async function resolveKey(ref: string, opts: { store?: KeyStore; wantPrivate?: boolean } = {}): Promise<LoadedKey> {
  if (existsSync(ref)) return loadKeyFile(ref);
  const store = opts.store ?? new KeyStore();
  const k = store.find(ref);
  if (!k) {
    throw new WarrenError('KEY_NOT_FOUND', `key ${ref} is neither a file nor a key of the key store ${store.dir}`, {
      hint: 'give the path of a PEM or armored OpenPGP key file, or a fingerprint from `warren key list`',
    });
  }
  if (opts.wantPrivate && !k.private) {
    throw new WarrenError('KEY_PRIVATE_REQUIRED', `key ${k.fingerprint} (${k.name}) has no private key in the key store`, {
      hint: 'signing needs the private key: give the private key file, or import it (`warren key import PRIVATE.pem`)',
    });
  }
  return store.load(k, opts.wantPrivate);
}

export { parseKey };
