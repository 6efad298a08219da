// Signing keys: PEM (Ed25519, ECDSA P-256, RSA; PKCS#8 / SPKI / PKCS#1 / SEC1) and OpenPGP
// (armored). A PEM key's fingerprint is the SHA-256 of its public key in SSH wire format, in
// hex (what `ssh-keygen -l` shows as SHA256:base64, and what the SIF reference writes as the
// DSSE key id). For OpenPGP keys it is the usual v4/v6
// fingerprint in hex.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
// OpenPGP (~40 ms to load) is imported when a PGP key is read, not with this module.
import type * as openpgp from 'openpgp';
import { WarrenError, EXIT, type ErrorCode } from '../../common/index.js';

export type KeyType = 'ed25519' | 'ecdsa-p256' | 'rsa' | 'pgp';

export interface PemKey {
  kind: 'pem';
  type: Exclude<KeyType, 'pgp'>;
  fingerprint: string;
  publicKey: KeyObject;
  privateKey?: KeyObject;
  /** Public key as SPKI PEM. */
  publicPem: string;
  source?: string;
}

export interface PgpKey {
  kind: 'pgp';
  type: 'pgp';
  fingerprint: string;
  publicKey: openpgp.Key;
  privateKey?: openpgp.PrivateKey;
  /** Armored public key. */
  publicArmored: string;
  /** First user id, if any. */
  userId?: string;
  source?: string;
}

export type LoadedKey = PemKey | PgpKey;

function keyError(code: ErrorCode, what: string, hint: string): WarrenError {
  return new WarrenError(code, what, { hint });
}

function sshString(b: Buffer): Buffer {
  const l = Buffer.alloc(4);
  l.writeUInt32BE(b.length);
  return Buffer.concat([l, b]);
}

function sshMpint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  let v = b.subarray(i);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return sshString(v);
}

/** The public key in SSH wire format (RFC 4253/5656/8709), which the DSSE key id digests. */
export function sshPublicKeyBlob(pub: KeyObject): Buffer {
  const jwk = pub.export({ format: 'jwk' }) as { kty?: string; crv?: string; x?: string; y?: string; n?: string; e?: string };
  const b64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(b64(jwk.x))]);
  if (jwk.kty === 'RSA') return Buffer.concat([sshString(Buffer.from('ssh-rsa')), sshMpint(b64(jwk.e)), sshMpint(b64(jwk.n))]);
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') {
    return Buffer.concat([sshString(Buffer.from('ecdsa-sha2-nistp256')), sshString(Buffer.from('nistp256')), sshString(Buffer.concat([Buffer.from([4]), b64(jwk.x), b64(jwk.y)]))]);
  }
  return pub.export({ type: 'spki', format: 'der' });
}

/**
 * A PEM key's fingerprint: SHA-256 of the public key in SSH wire format, in hex. The same digest
 * as `ssh-keygen -l` and as the DSSE key id of the SIF reference ("SHA256:" + unpadded base64).
 */
export function pemFingerprint(pub: KeyObject): string {
  return createHash('sha256').update(sshPublicKeyBlob(pub)).digest('hex');
}

/** The DSSE key id the reference writes: "SHA256:" + unpadded standard base64 of the SSH-format key digest. */
export function dsseKeyId(pub: KeyObject): string {
  return 'SHA256:' + createHash('sha256').update(sshPublicKeyBlob(pub)).digest('base64').replace(/=+$/, '');
}

/** Hex fingerprint from a DSSE key id ("SHA256:base64"), or undefined when it is not one. */
export function fingerprintFromKeyId(keyid: string): string | undefined {
  const m = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(keyid);
  if (!m) return undefined;
  const b = Buffer.from(m[1]!, 'base64');
  return b.length === 32 ? b.toString('hex') : undefined;
}

function pemType(pub: KeyObject, source: string): PemKey['type'] {
  const t = pub.asymmetricKeyType;
  if (t === 'ed25519') return 'ed25519';
  if (t === 'rsa' || t === 'rsa-pss') return 'rsa';
  if (t === 'ec') {
    const curve = pub.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') return 'ecdsa-p256';
    throw keyError('KEY_TYPE_UNSUPPORTED', `key ${source}: ECDSA curve ${curve ?? '?'} is not supported`, 'use an Ed25519, ECDSA P-256 or RSA key (`warren key generate --type ed25519`)');
  }
  throw keyError('KEY_TYPE_UNSUPPORTED', `key ${source}: ${t ?? 'unknown'} keys are not supported`, 'use an Ed25519, ECDSA P-256 or RSA key, or an OpenPGP key');
}

export function pemKeyFromText(text: string, source: string, passphrase?: string): PemKey {
  const isPrivate = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(text);
  try {
    if (isPrivate) {
      const priv = createPrivateKey(passphrase !== undefined ? { key: text, passphrase } : text);
      const pub = createPublicKey(priv);
      return { kind: 'pem', type: pemType(pub, source), fingerprint: pemFingerprint(pub), publicKey: pub, privateKey: priv, publicPem: pub.export({ type: 'spki', format: 'pem' }).toString(), source };
    }
    const pub = createPublicKey(text);
    return { kind: 'pem', type: pemType(pub, source), fingerprint: pemFingerprint(pub), publicKey: pub, publicPem: pub.export({ type: 'spki', format: 'pem' }).toString(), source };
  } catch (e) {
    if (e instanceof WarrenError) throw e;
    const msg = (e as Error).message;
    if (/passphrase/i.test(msg)) throw keyError('KEY_PASSPHRASE_REQUIRED', `key ${source} is encrypted with a passphrase`, 'decrypt it first (`openssl pkey -in KEY -out PLAIN.pem`) or use an unencrypted key');
    throw keyError('KEY_INVALID', `key ${source} is not a valid PEM key (${msg})`, 'give a PEM public or private key (Ed25519, ECDSA P-256 or RSA), e.g. made by `warren key generate`');
  }
}

export async function pgpKeyFromText(text: string, source: string): Promise<PgpKey> {
  let key: openpgp.Key;
  try {
    const pgp = await import('openpgp');
    key = await pgp.readKey({ armoredKey: text });
  } catch (e) {
    throw keyError('KEY_INVALID', `key ${source} is not a valid OpenPGP key (${(e as Error).message})`, 'give an ASCII-armored OpenPGP key (`gpg --armor --export FINGERPRINT`)');
  }
  const pub = key.isPrivate() ? key.toPublic() : key;
  const uid = key.getUserIDs()[0];
  const out: PgpKey = { kind: 'pgp', type: 'pgp', fingerprint: key.getFingerprint().toLowerCase(), publicKey: pub, publicArmored: pub.armor(), source };
  if (uid) out.userId = uid;
  if (key.isPrivate()) {
    const priv = key as openpgp.PrivateKey;
    if (!priv.isDecrypted()) {
      throw keyError('KEY_PASSPHRASE_REQUIRED', `OpenPGP key ${source} is protected by a passphrase`, 'export an unprotected copy for signing (`gpg --export-secret-keys` after removing the passphrase) or use a PEM key');
    }
    out.privateKey = priv;
  }
  return out;
}

/** Parse a key from text: PEM or armored OpenPGP, public or private. */
export async function parseKey(text: string, source: string): Promise<LoadedKey> {
  if (text.includes('-----BEGIN PGP ')) return pgpKeyFromText(text, source);
  if (/-----BEGIN [A-Z ]*KEY-----/.test(text)) return pemKeyFromText(text, source);
  throw keyError('KEY_INVALID', `key ${source} is neither a PEM key nor an armored OpenPGP key`, 'give a PEM key (-----BEGIN PUBLIC KEY-----) or an armored OpenPGP key (-----BEGIN PGP PUBLIC KEY BLOCK-----)');
}

/** Read a key file (PEM or armored OpenPGP, public or private). */
export async function loadKeyFile(path: string): Promise<LoadedKey> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw keyError('KEY_NOT_FOUND', `key file ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`, 'check the path of the key file, or use a key of the key store (`warren key list`)');
  }
  return parseKey(text, path);
}

/** Does `want` (a full hex fingerprint, a prefix of at least 8 hex digits, or a DSSE key id) name `fp`? */
export function fingerprintMatches(fp: string, want: string): boolean {
  const w = want.trim().toLowerCase().replace(/^0x/, '').replace(/[\s:]/g, '');
  const fromId = fingerprintFromKeyId(want.trim());
  if (fromId) return fromId === fp;
  return /^[0-9a-f]{8,}$/.test(w) && fp.startsWith(w);
}
