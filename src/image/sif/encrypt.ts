// Encryption of a SIF's primary system partition (scheme "warren-sif-enc-v1", docs/encryption.md):
//  - a random 256-bit data key encrypts the partition with AES-256-GCM in 1 MiB chunks; chunk i
//    uses the nonce noncePrefix(4 bytes) || i (uint64 BE) and the additional data
//    "warren-sif-enc-v1" || i (u64 BE) || last (u8) || plainSize (u64 BE), so chunks cannot be
//    reordered, dropped or truncated unnoticed; each chunk is ciphertext || 16-byte tag;
//  - the data key is wrapped with RSA-OAEP (SHA-256) to a PEM RSA public key, or with AES-256-GCM
//    under a key derived from a passphrase with scrypt (N=2^15, r=8, p=1, 16-byte salt);
//  - the parameters and the wrapped key are a generic JSON object `warren-encryption.json` in the
//    partition's group, linked to the partition; the partition's fs type becomes
//    "encrypted squashfs" (5), as the reference names it.
// decrypt reverses it and restores a plain, runnable squashfs partition. Signatures are dropped
// by both (the signed bytes change): sign the result again.
import { createCipheriv, createDecipheriv, privateDecrypt, publicEncrypt, randomBytes, scrypt as scryptCb, constants as C, type ScryptOptions } from 'node:crypto';
import { open } from 'node:fs/promises';
import { WarrenError, EXIT } from '../../common/index.js';
import type { PemKey } from '../keys/index.js';
import { DataType, FsType, primaryPartition, readObject, readSif, sifError, type SifDescriptor, type SifImage } from './format.js';
import { createSif, type ObjectInput } from './write.js';
import { luksUnsupported, readLuksHeader } from './luks.js';

export const ENCRYPTION_OBJECT_NAME = 'warren-encryption.json';
const SCHEME = 'warren-sif-enc-v1';
const CHUNK = 1 << 20;
const TAG = 16;
const SCRYPT = { N: 1 << 15, r: 8, p: 1 };

export interface EncryptionDoc {
  scheme: typeof SCHEME;
  cipher: 'aes-256-gcm';
  chunkSize: number;
  plainSize: number;
  noncePrefix: string;
  /** fs type of the partition before encryption. */
  fsType: number;
  key:
    | { type: 'rsa-oaep-sha256'; fingerprint: string; wrapped: string }
    | { type: 'scrypt'; salt: string; N: number; r: number; p: number; iv: string; wrapped: string; tag: string };
}

export interface EncryptOptions {
  /** RSA public (or private) key to wrap the data key to. */
  key?: PemKey;
  passphrase?: string;
  image?: string;
}

export interface EncryptResult {
  out: string;
  partitionId: number;
  droppedSignatures: number;
}

function scrypt(pass: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Buffer> {
  const o: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + (16 << 20) };
  return new Promise((resolve, reject) => scryptCb(pass, salt, 32, o, (e, k) => (e ? reject(e) : resolve(k))));
}

function aad(i: number, last: boolean, plainSize: number): Buffer {
  const b = Buffer.alloc(SCHEME.length + 17);
  b.write(SCHEME, 0, 'latin1');
  b.writeBigUInt64BE(BigInt(i), SCHEME.length);
  b[SCHEME.length + 8] = last ? 1 : 0;
  b.writeBigUInt64BE(BigInt(plainSize), SCHEME.length + 9);
  return b;
}

function nonce(prefix: Buffer, i: number): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 4);
  n.writeBigUInt64BE(BigInt(i), 4);
  return n;
}

async function* readChunks(path: string, offset: number, size: number, chunk: number): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  try {
    let pos = 0;
    while (pos < size) {
      const want = Math.min(chunk, size - pos);
      const b = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(b, got, want - got, offset + pos + got);
        if (bytesRead === 0) throw new Error(`unexpected end of file at ${offset + pos + got}`);
        got += bytesRead;
      }
      pos += want;
      yield b;
    }
  } finally {
    await fh.close();
  }
}

/** The other objects of the image, copied as they are (signatures left out). */
function copyObjects(img: SifImage, replace: Map<number, ObjectInput>, skip: (d: SifDescriptor) => boolean): ObjectInput[] {
  const out: ObjectInput[] = [];
  for (const d of [...img.descriptors].sort((a, b) => a.id - b.id)) {
    if (d.dataType === DataType.Signature || skip(d)) continue;
    const r = replace.get(d.id);
    if (r) {
      out.push(r);
      continue;
    }
    out.push({
      dataType: d.dataType,
      groupId: d.groupId,
      ...(d.link ? { link: d.link, linkIsGroup: d.linkIsGroup } : {}),
      name: d.name,
      extra: d.raw.subarray(201, 585),
      data: { file: img.path, offset: d.offset, size: d.size },
      createdAt: d.createdAt,
      uid: d.uid,
      gid: d.gid,
    });
  }
  return out;
}

function keepIds(objs: ObjectInput[], img: SifImage): void {
  // Objects are renumbered 1..n in order; links to objects must follow.
  const order = [...img.descriptors].sort((a, b) => a.id - b.id).filter((d) => d.dataType !== DataType.Signature);
  const map = new Map<number, number>();
  order.forEach((d, i) => map.set(d.id, i + 1));
  for (const o of objs) if (o.link && !o.linkIsGroup && map.has(o.link)) o.link = map.get(o.link)!;
}

/** Encrypt the primary partition of the SIF `input` into a new SIF `out`. */
export async function encryptSif(input: string, out: string, opts: EncryptOptions): Promise<EncryptResult> {
  const image = opts.image ?? input;
  if (!opts.key && opts.passphrase === undefined) {
    throw new WarrenError('SIF_ENCRYPT_NO_KEY', `image ${image}: no key or passphrase to encrypt with`, { hint: 'give --key RSA-PUBLIC.pem or --passphrase-env VAR' });
  }
  if (opts.key && opts.key.type !== 'rsa') {
    throw new WarrenError('KEY_TYPE_UNSUPPORTED', `key ${opts.key.source ?? opts.key.fingerprint} is an ${opts.key.type} key; encryption needs an RSA key`, {
      hint: 'use an RSA public key (`warren key generate --type rsa`, or `openssl genpkey -algorithm RSA`), or a passphrase',
    });
  }
  if (opts.passphrase !== undefined && opts.passphrase.length === 0) {
    throw new WarrenError('SIF_PASSPHRASE_MISSING', `image ${image}: the passphrase is empty`, { hint: 'set the environment variable named by --passphrase-env to a non-empty passphrase' });
  }
  const img = readSif(input, image);
  const part = primaryPartition(img, image);
  if (!part) throw sifError('SIF_NO_PARTITION', image, 'has no system partition to encrypt', 'build the image with `warren image build` first');
  if (part.partition!.fsType === FsType.EncryptedSquashfs || img.descriptors.some((d) => d.name === ENCRYPTION_OBJECT_NAME)) {
    throw sifError('SIF_ALREADY_ENCRYPTED', image, 'its system partition is already encrypted', 'decrypt it first, or use it as it is');
  }
  if (part.partition!.fsType !== FsType.Squashfs) {
    throw sifError('SIF_ENCRYPT_UNSUPPORTED', image, `its system partition is ${part.partition!.fs}; only squashfs partitions can be encrypted`, 'rebuild the image with a squashfs partition (`warren image build`)');
  }
  const dataKey = randomBytes(32);
  const noncePrefix = randomBytes(4);
  let keyDoc: EncryptionDoc['key'];
  if (opts.key) {
    const wrapped = publicEncrypt({ key: opts.key.publicKey, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, dataKey);
    keyDoc = { type: 'rsa-oaep-sha256', fingerprint: opts.key.fingerprint, wrapped: wrapped.toString('base64') };
  } else {
    const salt = randomBytes(16);
    const kek = await scrypt(opts.passphrase!, salt, SCRYPT);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', kek, iv);
    c.setAAD(Buffer.from(SCHEME));
    const wrapped = Buffer.concat([c.update(dataKey), c.final()]);
    keyDoc = { type: 'scrypt', salt: salt.toString('base64'), ...SCRYPT, iv: iv.toString('base64'), wrapped: wrapped.toString('base64'), tag: c.getAuthTag().toString('base64') };
  }
  const plainSize = part.size;
  const doc: EncryptionDoc = { scheme: SCHEME, cipher: 'aes-256-gcm', chunkSize: CHUNK, plainSize, noncePrefix: noncePrefix.toString('hex'), fsType: part.partition!.fsType, key: keyDoc };
  const nChunks = Math.max(1, Math.ceil(plainSize / CHUNK));
  async function* encrypted(): AsyncGenerator<Buffer> {
    let i = 0;
    if (plainSize === 0) {
      const c = createCipheriv('aes-256-gcm', dataKey, nonce(noncePrefix, 0));
      c.setAAD(aad(0, true, 0));
      c.final();
      yield c.getAuthTag();
      return;
    }
    for await (const chunk of readChunks(input, part!.offset, plainSize, CHUNK)) {
      const c = createCipheriv('aes-256-gcm', dataKey, nonce(noncePrefix, i));
      c.setAAD(aad(i, i === nChunks - 1, plainSize));
      yield Buffer.concat([c.update(chunk), c.final(), c.getAuthTag()]);
      i++;
    }
  }
  const extra = Buffer.from(part.raw.subarray(201, 585));
  extra.writeInt32LE(FsType.EncryptedSquashfs, 0);
  const replaced: ObjectInput = {
    dataType: DataType.Partition,
    groupId: part.groupId,
    name: part.name,
    extra,
    data: { stream: encrypted },
    createdAt: part.createdAt,
  };
  const objs = copyObjects(img, new Map([[part.id, replaced]]), () => false);
  keepIds(objs, img);
  const newPartId = objs.indexOf(replaced) + 1;
  objs.push({ dataType: DataType.GenericJSON, groupId: part.groupId, link: newPartId, name: ENCRYPTION_OBJECT_NAME, data: Buffer.from(JSON.stringify(doc, null, 2) + '\n') });
  await createSif(out, objs, { id: img.header.id, launch: img.header.launch });
  return { out, partitionId: newPartId, droppedSignatures: img.descriptors.filter((d) => d.dataType === DataType.Signature).length };
}

export interface DecryptOptions {
  /** RSA private key the data key was wrapped to. */
  key?: PemKey;
  passphrase?: string;
  image?: string;
}

function decryptFailed(image: string, why: string, hint: string): WarrenError {
  return new WarrenError('SIF_DECRYPT_FAILED', `image ${image}: cannot decrypt: ${why}`, { hint });
}

/** The encryption parameters of an encrypted SIF, or undefined when it is not encrypted. */
export function encryptionInfo(path: string, image = path): (EncryptionDoc & { partitionId: number }) | undefined {
  const img = readSif(path, image);
  const d = img.descriptors.find((x) => x.dataType === DataType.GenericJSON && x.name === ENCRYPTION_OBJECT_NAME);
  if (!d) return undefined;
  try {
    const doc = JSON.parse(readObject(img, d).toString('utf8')) as EncryptionDoc;
    return { ...doc, partitionId: d.link };
  } catch {
    throw sifError('SIF_CORRUPT', image, `its ${ENCRYPTION_OBJECT_NAME} object is not valid JSON`, 'the image is damaged: get it again');
  }
}

/** The encrypted partition of `input` and its parameters; SIF_NOT_ENCRYPTED / SIF_ENCRYPTION_UNSUPPORTED otherwise. */
export function locateEncrypted(input: string, image: string): { img: SifImage; info: EncryptionDoc & { partitionId: number }; metaDesc: SifDescriptor; part: SifDescriptor } {
  const img = readSif(input, image);
  const info = encryptionInfo(input, image);
  const metaDesc = img.descriptors.find((x) => x.dataType === DataType.GenericJSON && x.name === ENCRYPTION_OBJECT_NAME);
  if (!info || !metaDesc) {
    const prim = primaryPartition(img, image);
    const luks = prim ? readLuksHeader(input, prim.offset, prim.size) : undefined;
    if (luks) throw luksUnsupported(image, luks);
    throw sifError('SIF_NOT_ENCRYPTED', image, 'is not encrypted by Warren (no warren-encryption.json object)', 'use the image as it is');
  }
  if (info.scheme !== SCHEME || info.cipher !== 'aes-256-gcm' || !(info.chunkSize > 0)) {
    throw sifError('SIF_ENCRYPT_UNSUPPORTED', image, `unknown encryption scheme ${String(info.scheme)}`, 'decrypt it with the Warren version that encrypted it');
  }
  const part = img.descriptors.find((d) => d.id === info.partitionId && d.dataType === DataType.Partition);
  if (!part) throw sifError('SIF_CORRUPT', image, `the encrypted partition ${info.partitionId} is missing`, 'the image is damaged: get it again');
  const nChunks = Math.max(1, Math.ceil(info.plainSize / info.chunkSize));
  if (!(Number.isSafeInteger(info.plainSize) && info.plainSize >= 0) || part.size !== info.plainSize + nChunks * TAG) {
    throw decryptFailed(image, `the encrypted partition is ${part.size} bytes, expected ${info.plainSize + nChunks * TAG} (truncated?)`, 'the image is damaged: get it again');
  }
  return { img, info, metaDesc, part };
}

/** The data key of an encrypted image, unwrapped with the RSA private key or the passphrase; SIF_DECRYPT_FAILED for a wrong one. */
export async function unwrapDataKey(info: EncryptionDoc, opts: DecryptOptions, image: string): Promise<Buffer> {
  if (info.key.type === 'rsa-oaep-sha256') {
    if (!opts.key) throw decryptFailed(image, `it is encrypted to RSA key ${info.key.fingerprint}${opts.passphrase !== undefined ? ', not with a passphrase' : ''}`, 'give the RSA private key with --key PRIVATE.pem');
    if (!opts.key.privateKey) throw decryptFailed(image, `key ${opts.key.source ?? opts.key.fingerprint} is a public key`, 'give the RSA private key (PEM PRIVATE KEY) with --key');
    if (opts.key.fingerprint !== info.key.fingerprint) {
      throw decryptFailed(image, `it is encrypted to RSA key ${info.key.fingerprint}, not to ${opts.key.fingerprint}`, 'give the private key of the key it was encrypted to');
    }
    try {
      return privateDecrypt({ key: opts.key.privateKey, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(info.key.wrapped, 'base64'));
    } catch {
      throw decryptFailed(image, 'the RSA key does not unwrap the data key', 'give the private key of the key it was encrypted to');
    }
  }
  if (opts.passphrase === undefined) throw decryptFailed(image, `it is encrypted with a passphrase${opts.key ? ', not to an RSA key' : ''}`, 'give it with --passphrase-env VAR');
  const k = info.key;
  const kek = await scrypt(opts.passphrase, Buffer.from(k.salt, 'base64'), { N: k.N, r: k.r, p: k.p });
  try {
    const d = createDecipheriv('aes-256-gcm', kek, Buffer.from(k.iv, 'base64'));
    d.setAAD(Buffer.from(SCHEME));
    d.setAuthTag(Buffer.from(k.tag, 'base64'));
    return Buffer.concat([d.update(Buffer.from(k.wrapped, 'base64')), d.final()]);
  } catch {
    throw decryptFailed(image, 'wrong passphrase', 'check the passphrase in the environment variable given with --passphrase-env');
  }
}

/**
 * The plaintext of the encrypted partition, one authenticated chunk at a time (1 MiB): a chunk
 * is yielded only after its GCM tag checked, so a consumer never sees unauthenticated bytes;
 * a changed, reordered or dropped chunk throws SIF_DECRYPT_FAILED.
 */
export async function* decryptedChunks(input: string, part: { offset: number; size: number }, info: EncryptionDoc, dataKey: Buffer, image: string): AsyncGenerator<Buffer> {
  const prefix = Buffer.from(info.noncePrefix, 'hex');
  const plainSize = info.plainSize;
  const nChunks = Math.max(1, Math.ceil(plainSize / info.chunkSize));
  let i = 0;
  for await (const chunk of readChunks(input, part.offset, part.size, info.chunkSize + TAG)) {
    const d = createDecipheriv('aes-256-gcm', dataKey, nonce(prefix, i));
    d.setAAD(aad(i, i === nChunks - 1, plainSize));
    d.setAuthTag(chunk.subarray(chunk.length - TAG));
    const plain = d.update(chunk.subarray(0, chunk.length - TAG));
    try {
      d.final();
    } catch {
      throw decryptFailed(image, `chunk ${i} of the partition does not authenticate (the data was changed or damaged)`, 'get the image again');
    }
    yield plain;
    i++;
  }
  if (i !== nChunks) throw decryptFailed(image, `the partition has ${i} chunks, expected ${nChunks}`, 'the image is damaged: get it again');
}

/** Decrypt the encrypted partition of `input` into a new, runnable SIF `out`. */
export async function decryptSif(input: string, out: string, opts: DecryptOptions): Promise<EncryptResult> {
  const image = opts.image ?? input;
  const { img, info, metaDesc, part } = locateEncrypted(input, image);
  const dataKey = await unwrapDataKey(info, opts, image);
  const decrypted = (): AsyncGenerator<Buffer> => decryptedChunks(input, part, info, dataKey, image);
  const extra = Buffer.from(part.raw.subarray(201, 585));
  extra.writeInt32LE(info.fsType, 0);
  const replaced: ObjectInput = { dataType: DataType.Partition, groupId: part.groupId, name: part.name, extra, data: { stream: decrypted }, createdAt: part.createdAt };
  const objs = copyObjects(img, new Map([[part.id, replaced]]), (d) => d.id === metaDesc.id);
  keepIdsExcept(objs, img, metaDesc.id);
  await createSif(out, objs, { id: img.header.id, launch: img.header.launch });
  return { out, partitionId: objs.indexOf(replaced) + 1, droppedSignatures: img.descriptors.filter((d) => d.dataType === DataType.Signature).length };
}

function keepIdsExcept(objs: ObjectInput[], img: SifImage, skipId: number): void {
  const order = [...img.descriptors].sort((a, b) => a.id - b.id).filter((d) => d.dataType !== DataType.Signature && d.id !== skipId);
  const map = new Map<number, number>();
  order.forEach((d, i) => map.set(d.id, i + 1));
  for (const o of objs) if (o.link && !o.linkIsGroup && map.has(o.link)) o.link = map.get(o.link)!;
}
