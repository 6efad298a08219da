// Key store ($WARREN_HOME/keys) and the trust policy (require-signed).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { KeyStore, loadKeyFile, resolveKey } from '../../../src/image/keys/index.js';
import { checkImageTrust, signSif, verifySif } from '../../../src/image/sif/index.js';
import { cli, copyImage, img, key } from './util.js';

const ED = 'c7a97c65b9694925c668f302cf249e75683cf01c0815ccfc8e53dbe9e974985b';
const RSA = '0610b0afba99ba561c38c4a5d89b760ee607c4736737ab61e0d74ca91fcf19ae';
const PGP = '12045c8c0b1004d058de4beda20c27ee7ff7ba84';

describe('key store', () => {
  test('generate (0600 private key), import, list, trust, resolve by fingerprint prefix', async () => {
    const { dir, cleanup } = tempDir('warren-keys-');
    try {
      const store = new KeyStore(join(dir, 'keys'));
      const types = ['ed25519', 'ecdsa-p256', 'rsa'] as const;
      for (const t of types) {
        const k = store.generate({ type: t, name: `my-${t}` });
        assert.equal(k.type, t);
        assert.equal(k.trusted, true);
        assert.equal(k.private, true);
        assert.match(k.fingerprint, /^[0-9a-f]{64}$/);
        assert.equal(statSync(store.privatePath(k)).mode & 0o777, 0o600);
        const loaded = await store.load(k, true);
        assert.equal(loaded.fingerprint, k.fingerprint);
        assert.ok(loaded.privateKey);
      }
      const imported = await store.import(key('rsa-public.pem'));
      assert.deepEqual([imported.fingerprint, imported.trusted, imported.private], [RSA, false, false]);
      const pgp = await store.import(key('private.asc'), { trusted: true });
      assert.deepEqual([pgp.fingerprint, pgp.type, pgp.private, pgp.trusted], [PGP, 'pgp', true, true]);
      assert.equal(store.list().length, 5);
      assert.equal((await store.trustedKeys()).length, 4);
      store.setTrusted(RSA.slice(0, 12), true);
      assert.equal((await store.trustedKeys()).length, 5);
      assert.equal((await resolveKey(RSA.slice(0, 10), { store })).fingerprint, RSA);
      assert.equal((await resolveKey('my-rsa', { store, wantPrivate: true })).privateKey !== undefined, true);
      await assert.rejects(resolveKey(RSA, { store, wantPrivate: true }), (e: Error & { code?: string }) => e.code === 'KEY_PRIVATE_REQUIRED');
      await assert.rejects(resolveKey('deadbeefdeadbeef', { store }), (e: Error & { code?: string }) => e.code === 'KEY_NOT_FOUND');
      writeFileSync(join(dir, 'junk.pem'), '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n');
      await assert.rejects(loadKeyFile(join(dir, 'junk.pem')), (e: Error & { code?: string; hint?: string }) => e.code === 'KEY_INVALID' && e.message.includes('junk.pem') && !!e.hint);
      writeFileSync(join(dir, 'junk.txt'), 'hello');
      await assert.rejects(loadKeyFile(join(dir, 'junk.txt')), (e: Error & { code?: string }) => e.code === 'KEY_INVALID');
    } finally {
      cleanup();
    }
  });

  test('CLI: key generate prints the fingerprint; list --json; import --trust; sign and verify with store keys', () => {
    const { dir, cleanup } = tempDir('warren-keys-');
    try {
      const env = { WARREN_HOME: join(dir, 'home') };
      const g = cli(['key', 'generate', '--type', 'ecdsa-p256', '--name', 'ci'], env);
      assert.equal(g.code, 0, g.stderr);
      const fp = g.stdout.trim();
      assert.match(fp, /^[0-9a-f]{64}$/);
      const i = cli(['key', 'import', key('ed25519-public.pem'), '--trust'], env);
      assert.equal(i.code, 0, i.stderr);
      assert.equal(i.stdout.trim(), ED);
      const l = cli(['key', 'list', '--json'], env);
      const keys = JSON.parse(l.stdout) as { fingerprint: string; type: string; name: string; trusted: boolean }[];
      assert.deepEqual(keys.map((k) => [k.fingerprint, k.type, k.trusted]), [[fp, 'ecdsa-p256', true], [ED, 'ed25519', true]]);
      const t = cli(['key', 'list'], env);
      assert.match(t.stdout, new RegExp(`^${fp}\\s+ecdsa-p256\\s+yes\\s+yes\\s+ci$`, 'm'));
      const f = join(dir, 'x.sif');
      copyImage(img('one-group.sif'), f);
      const s = cli(['image', 'sign', f, '--key', fp.slice(0, 12)], env);
      assert.equal(s.code, 0, s.stderr);
      // Without --key: the trusted keys.
      const v = cli(['image', 'verify', f], env);
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stdout, new RegExp(`${fp} \\(ci\\)`));
      const u = cli(['key', 'untrust', 'ci'], env);
      assert.equal(u.code, 0, u.stderr);
      const v2 = cli(['image', 'verify', f], env);
      assert.equal(v2.code, 1);
      assert.match(v2.stderr, /SIF_SIGNER_UNKNOWN/);
      const bad = cli(['key', 'generate', '--type', 'dsa'], env);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /KEY_TYPE_UNSUPPORTED/);
      const missing = cli(['key', 'import', join(dir, 'nope.pem')], env);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /KEY_NOT_FOUND.*nope\.pem/);
    } finally {
      cleanup();
    }
  });
});

describe('trust policy (require-signed)', () => {
  test('unsigned refused, unknown signer refused, trusted signer accepted, changed image refused', async () => {
    const { dir, cleanup } = tempDir('warren-trust-');
    try {
      const store = new KeyStore(join(dir, 'keys'));
      await store.import(key('rsa-public.pem'), { trusted: true });
      // Not required: nothing checked.
      assert.deepEqual(await checkImageTrust(img('one-group.sif'), { requireSigned: false, keyStore: store }), { signers: [] });
      await assert.rejects(checkImageTrust(img('one-group.sif'), { requireSigned: true, keyStore: store }), (e: Error & { code?: string; exitCode?: number }) =>
        e.code === 'IMAGE_UNSIGNED' && e.message.includes('one-group.sif') && e.exitCode === 2);
      // Signed by the PGP key, which is not trusted: the fingerprint is named.
      await assert.rejects(checkImageTrust(img('one-group-signed-pgp.sif'), { requireSigned: true, keyStore: store }), (e: Error & { code?: string }) =>
        e.code === 'IMAGE_UNTRUSTED_SIGNER' && e.message.includes(PGP) && e.message.includes('one-group-signed-pgp.sif'));
      // DSSE signed by Ed25519 and RSA; RSA is trusted.
      assert.deepEqual(await checkImageTrust(img('one-group-signed-dsse.sif'), { requireSigned: true, keyStore: store }), { signers: [RSA] });
      // Trusted keys named in the policy: fingerprints of the store, or key files.
      assert.deepEqual(await checkImageTrust(img('one-group-signed-dsse.sif'), { requireSigned: true, keyStore: store, trustedKeys: [key('ed25519-public.pem')] }), { signers: [ED] });
      assert.deepEqual(await checkImageTrust(img('one-group-signed-dsse.sif'), { requireSigned: true, keyStore: store, trustedKeys: [RSA] }), { signers: [RSA] });
      // The DSSE key id form (SHA256:base64, as in the envelope and `ssh-keygen -l`) names the same key.
      assert.deepEqual(await checkImageTrust(img('one-group-signed-dsse.sif'), { requireSigned: true, keyStore: store, trustedKeys: ['SHA256:BhCwr7qZulYcOMSl2Jt2DuYHxHNnN6th4NdMqR/PGa4'] }), { signers: [RSA] });
      await assert.rejects(checkImageTrust(img('one-group-signed-dsse.sif'), { requireSigned: true, keyStore: store, trustedKeys: [key('ecdsa-public.pem')] }), (e: Error & { code?: string }) =>
        e.code === 'IMAGE_UNTRUSTED_SIGNER' && e.message.includes(ED) && e.message.includes(RSA));
      await assert.rejects(checkImageTrust(img('one-group-signed-dsse.sif'), { requireSigned: true, keyStore: store, trustedKeys: ['ffffffffffff'] }), (e: Error & { code?: string }) => e.code === 'KEY_NOT_FOUND');
      // An empty store trusts nobody.
      await assert.rejects(checkImageTrust(img('one-group-signed-dsse.sif'), { requireSigned: true, keyStore: new KeyStore(join(dir, 'empty')) }), (e: Error & { code?: string }) => e.code === 'IMAGE_UNTRUSTED_SIGNER');
      // A root file system directory cannot be signed.
      mkdirSync(join(dir, 'rootfs'));
      await assert.rejects(checkImageTrust(join(dir, 'rootfs'), { requireSigned: true, keyStore: store }), (e: Error & { code?: string }) => e.code === 'IMAGE_UNSIGNED');
      // Changed after signing by a trusted key.
      const f = join(dir, 'x.sif');
      copyImage(img('one-group.sif'), f);
      await signSif(f, [await loadKeyFile(key('rsa-private.pem'))]);
      assert.equal((await verifySif(f, [await loadKeyFile(key('rsa-public.pem'))])).verified, true);
      const { openSync, writeSync, closeSync } = await import('node:fs');
      const fd = openSync(f, 'r+');
      writeSync(fd, Buffer.from([0x00]), 0, 1, 32768);
      closeSync(fd);
      await assert.rejects(checkImageTrust(f, { requireSigned: true, keyStore: store }), (e: Error & { code?: string }) => e.code === 'SIF_INTEGRITY' && e.message.includes(f));
    } finally {
      cleanup();
    }
  });
});
