// Encryption of the system partition: round trips with an RSA key and a passphrase; wrong key,
// wrong passphrase and tampering are refused.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, openSync, readSync, writeSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { loadKeyFile, pemKeyFromText, type PemKey } from '../../../src/image/keys/index.js';
import { buildSif, decryptSif, encryptSif, encryptionInfo, findPrimaryPartition, readSif, sifPartition, readObject, signSif, verifySif } from '../../../src/image/sif/index.js';
import { cli, img, key } from './util.js';

async function rsa(name: string): Promise<PemKey> {
  return (await loadKeyFile(key(name))) as PemKey;
}

function partitionBytes(path: string): Buffer {
  const s = readSif(path);
  const p = findPrimaryPartition(path);
  return readObject(s, s.descriptors.find((d) => d.id === p.id)!);
}

describe('encrypt / decrypt', () => {
  test('RSA key: round trip restores the squashfs partition byte for byte', async () => {
    const { dir, cleanup } = tempDir('warren-sif-enc-');
    try {
      const plain = img('one-group.sif');
      const enc = join(dir, 'enc.sif');
      const r = await encryptSif(plain, enc, { key: await rsa('rsa-public.pem') });
      const p = findPrimaryPartition(enc);
      assert.equal(p.fsType, 'encrypted-squashfs');
      assert.equal(r.partitionId, p.id);
      assert.notDeepEqual(partitionBytes(enc).subarray(0, 4096), partitionBytes(plain));
      assert.equal(partitionBytes(enc).includes(partitionBytes(plain).subarray(0, 64)), false);
      const info = encryptionInfo(enc)!;
      assert.equal(info.key.type, 'rsa-oaep-sha256');
      assert.equal(info.plainSize, 4096);
      await assert.rejects(sifPartition(enc), (e: Error & { code?: string; hint?: string }) => e.code === 'SIF_ENCRYPTED' && /decrypt/.test(e.hint ?? ''));
      const dec = join(dir, 'dec.sif');
      await decryptSif(enc, dec, { key: await rsa('rsa-private.pem') });
      assert.deepEqual(partitionBytes(dec), partitionBytes(plain));
      assert.equal(findPrimaryPartition(dec).fsType, 'squashfs');
      assert.equal(encryptionInfo(dec), undefined);
      assert.equal(readSif(dec).descriptors.length, 2);
      // The other partition is carried over unchanged.
      const a = readSif(dec).descriptors[0]!;
      assert.deepEqual(readObject(readSif(dec), a), Buffer.from('facefeed', 'hex'));
    } finally {
      cleanup();
    }
  });

  test('passphrase: round trip on a multi-chunk partition; wrong passphrase refused, nothing written', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir('warren-sif-enc-');
    try {
      const root = join(dir, 'rootfs');
      mkdirSync(root);
      writeFileSync(join(root, 'blob'), randomBytes(3_500_000)); // incompressible: several 1 MiB chunks
      const plain = join(dir, 'p.sif');
      await buildSif({ rootfs: root, out: plain, compression: 'gzip' });
      const enc = join(dir, 'e.sif');
      await encryptSif(plain, enc, { passphrase: 'correct horse battery staple' });
      const bad = join(dir, 'bad.sif');
      await assert.rejects(decryptSif(enc, bad, { passphrase: 'wrong' }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /wrong passphrase/.test(e.message) && e.message.includes(enc));
      assert.equal(existsSync(bad), false);
      const dec = join(dir, 'd.sif');
      await decryptSif(enc, dec, { passphrase: 'correct horse battery staple' });
      assert.deepEqual(partitionBytes(dec), partitionBytes(plain));
      // Tampering with the ciphertext is detected.
      const t = join(dir, 't.sif');
      copyFileSync(enc, t);
      const p = findPrimaryPartition(t);
      assert.ok(p.size > 3_000_000);
      const fd = openSync(t, 'r+');
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, p.offset + 1_500_000);
      b[0] = b[0]! ^ 0x80;
      writeSync(fd, b, 0, 1, p.offset + 1_500_000); // inside chunk 1 (1 MiB + 16-byte tag per chunk)
      closeSync(fd);
      await assert.rejects(decryptSif(t, join(dir, 't2.sif'), { passphrase: 'correct horse battery staple' }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /chunk 1/.test(e.message));
      assert.equal(existsSync(join(dir, 't2.sif')), false);
    } finally {
      cleanup();
    }
  });

  test('wrong RSA key, missing key, non-RSA key and already-encrypted images are refused', async () => {
    const { dir, cleanup } = tempDir('warren-sif-enc-');
    try {
      const enc = join(dir, 'enc.sif');
      await encryptSif(img('one-group.sif'), enc, { key: await rsa('rsa-public.pem') });
      const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      await assert.rejects(decryptSif(enc, join(dir, 'x.sif'), { key: pemKeyFromText(other, 'other.pem') }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /encrypted to RSA key/.test(e.message));
      await assert.rejects(decryptSif(enc, join(dir, 'x.sif'), { passphrase: 'x' }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED');
      await assert.rejects(decryptSif(enc, join(dir, 'x.sif'), { key: await rsa('rsa-public.pem') }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /public key/.test(e.message));
      await assert.rejects(encryptSif(img('one-group.sif'), join(dir, 'y.sif'), { key: (await loadKeyFile(key('ed25519-public.pem'))) as PemKey }), (e: Error & { code?: string }) => e.code === 'KEY_TYPE_UNSUPPORTED');
      await assert.rejects(encryptSif(enc, join(dir, 'y.sif'), { passphrase: 'p' }), (e: Error & { code?: string }) => e.code === 'SIF_ALREADY_ENCRYPTED');
      await assert.rejects(decryptSif(img('one-group.sif'), join(dir, 'y.sif'), { passphrase: 'p' }), (e: Error & { code?: string }) => e.code === 'SIF_NOT_ENCRYPTED');
      assert.equal(existsSync(join(dir, 'x.sif')) || existsSync(join(dir, 'y.sif')), false);
    } finally {
      cleanup();
    }
  });

  test('signatures are dropped by encryption; the encrypted image can be signed and verified', async () => {
    const { dir, cleanup } = tempDir('warren-sif-enc-');
    try {
      const enc = join(dir, 'enc.sif');
      const r = await encryptSif(img('one-group-signed-dsse.sif'), enc, { passphrase: 'pw' });
      assert.equal(r.droppedSignatures, 1);
      assert.equal((await verifySif(enc, [await loadKeyFile(key('ed25519-public.pem'))])).error?.code, 'SIF_UNSIGNED');
      await signSif(enc, [await loadKeyFile(key('ed25519-private.pem'))]);
      const v = await verifySif(enc, [await loadKeyFile(key('ed25519-public.pem'))]);
      assert.equal(v.verified, true, v.error?.message);
      assert.deepEqual(v.signatures[0]!.objects, [1, 2, 3], 'the encryption parameters are signed too');
    } finally {
      cleanup();
    }
  });

  test('CLI: --passphrase-env round trip; missing variable and wrong passphrase exit non-zero', () => {
    const { dir, cleanup } = tempDir('warren-sif-enc-');
    try {
      const enc = join(dir, 'e.sif');
      const dec = join(dir, 'd.sif');
      const e = cli(['image', 'encrypt', img('one-group.sif'), '--passphrase-env', 'SIFPW', '-o', enc], { SIFPW: 's3cret' });
      assert.equal(e.code, 0, e.stderr);
      const missing = cli(['image', 'decrypt', enc, '--passphrase-env', 'NOPE_NOT_SET', '-o', dec]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /SIF_PASSPHRASE_MISSING/);
      const wrong = cli(['image', 'decrypt', enc, '--passphrase-env', 'SIFPW', '-o', dec], { SIFPW: 'nope' });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /error\[SIF_DECRYPT_FAILED\]: image .*e\.sif: cannot decrypt: wrong passphrase/);
      const ok = cli(['image', 'decrypt', enc, '--passphrase-env', 'SIFPW', '-o', dec], { SIFPW: 's3cret' });
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(readFileSync(dec).subarray(36864, 36864 + 4096), readFileSync(img('one-group.sif')).subarray(36864, 36864 + 4096));
      const both = cli(['image', 'encrypt', img('one-group.sif'), '-o', enc]);
      assert.equal(both.code, 2);
      const rsaE = cli(['image', 'encrypt', img('one-group.sif'), '--key', key('rsa-public.pem'), '-o', join(dir, 'r.sif')]);
      assert.equal(rsaE.code, 0, rsaE.stderr);
      const rsaD = cli(['image', 'decrypt', join(dir, 'r.sif'), '--key', key('rsa-private.pem'), '-o', join(dir, 'r2.sif')]);
      assert.equal(rsaD.code, 0, rsaD.stderr);
    } finally {
      cleanup();
    }
  });
});
