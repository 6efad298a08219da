// Signing: byte-for-byte like the reference (DSSE, deterministic), and round trips with every
// key type.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { tempDir } from '../../helpers.js';
import { loadKeyFile, pemKeyFromText } from '../../../src/image/keys/index.js';
import { DataType, appendObject, readSif, signSif, verifySif } from '../../../src/image/sif/index.js';
import { cli, copyImage, img, key } from './util.js';

describe('sign', () => {
  test('Ed25519 + RSA, deterministic: the same bytes as the reference one-group-signed-dsse.sif', async () => {
    const { dir, cleanup } = tempDir('warren-sif-sign-');
    try {
      const f = join(dir, 'one-group.sif');
      copyImage(img('one-group.sif'), f);
      const r = await signSif(f, [await loadKeyFile(key('ed25519-private.pem')), await loadKeyFile(key('rsa-private.pem'))], { deterministic: true, time: new Date('2020-06-30T00:01:56Z') });
      assert.deepEqual(r.signatureIds, [3]);
      const ours = readFileSync(f);
      const ref = readFileSync(img('one-group-signed-dsse.sif'));
      // Descriptors, header and the DSSE envelope (payload and both signatures) are identical.
      const a = readSif(f).descriptors[2]!;
      const b = readSif(img('one-group-signed-dsse.sif')).descriptors[2]!;
      assert.deepEqual(a.raw, b.raw);
      assert.equal(ours.subarray(a.offset, a.offset + a.size).toString(), ref.subarray(b.offset, b.offset + b.size).toString());
      assert.ok(ours.equals(ref), 'the whole file is byte-identical');
    } finally {
      cleanup();
    }
  });

  test('round trips: ed25519, ecdsa-p256, rsa (PEM, DSSE) and OpenPGP; each verifies only with its key', async () => {
    const { dir, cleanup } = tempDir('warren-sif-sign-');
    try {
      const kinds: [string, string, string][] = [
        ['ed25519', 'ed25519-private.pem', 'ed25519-public.pem'],
        ['ecdsa', 'ecdsa-private.pem', 'ecdsa-public.pem'],
        ['rsa', 'rsa-private.pem', 'rsa-public.pem'],
        ['pgp', 'private.asc', 'private.asc'],
      ];
      const pubs = await Promise.all(kinds.map(([, , p]) => loadKeyFile(key(p))));
      for (const [i, [name, priv]] of kinds.entries()) {
        const f = join(dir, `${name}.sif`);
        copyImage(img('two-groups.sif'), f);
        const r = await signSif(f, [await loadKeyFile(key(priv))]);
        assert.deepEqual(r.groups, [1, 2]);
        assert.equal(r.signatureIds.length, 2, 'one signature per group');
        const s = readSif(f);
        const sigs = s.descriptors.filter((d) => d.dataType === DataType.Signature);
        assert.deepEqual(sigs.map((d) => [d.groupId, d.link, d.linkIsGroup]), [[0, 1, true], [0, 2, true]]);
        if (name === 'pgp') assert.equal(sigs[0]!.signature?.fingerprint, pubs[3]!.fingerprint);
        const ok = await verifySif(f, [pubs[i]!]);
        assert.equal(ok.verified, true, `${name}: ${ok.error?.message}`);
        assert.deepEqual(ok.signers, [pubs[i]!.fingerprint]);
        for (const [j, other] of pubs.entries()) {
          if (j === i) continue;
          const bad = await verifySif(f, [other]);
          assert.equal(bad.verified, false, `${name} must not verify with ${kinds[j]![0]}`);
          assert.equal(bad.error?.code, 'SIF_SIGNER_UNKNOWN');
        }
      }
    } finally {
      cleanup();
    }
  });

  test('a freshly generated OpenPGP key and a new RSA key sign and verify', async () => {
    const { dir, cleanup } = tempDir('warren-sif-sign-');
    try {
      const { privateKey, publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: 'Warren Test', email: 'test@example.org' }], format: 'armored' });
      writeFileSync(join(dir, 'p.asc'), privateKey);
      writeFileSync(join(dir, 'pub.asc'), publicKey);
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const rsaKey = pemKeyFromText(rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(), 'rsa-pkcs1');
      const f = join(dir, 'x.sif');
      copyImage(img('one-group.sif'), f);
      await signSif(f, [await loadKeyFile(join(dir, 'p.asc')), rsaKey]);
      const r = await verifySif(f, [await loadKeyFile(join(dir, 'pub.asc'))]);
      assert.equal(r.verified, true, r.error?.message);
      const r2 = await verifySif(f, [pemKeyFromText(rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'rsa-pub')]);
      assert.equal(r2.verified, true, r2.error?.message);
      assert.equal(r2.signatures.length, 2);
    } finally {
      cleanup();
    }
  });

  test('an object added to a signed group after signing fails verification', async () => {
    const { dir, cleanup } = tempDir('warren-sif-sign-');
    try {
      const f = join(dir, 'x.sif');
      copyImage(img('one-group-signed-dsse.sif'), f);
      await appendObject(f, { dataType: DataType.GenericJSON, groupId: 1, name: 'evil.json', data: Buffer.from('{"x":1}') }, 0);
      const r = await verifySif(f, [await loadKeyFile(key('ed25519-public.pem'))]);
      assert.equal(r.error?.code, 'SIF_INTEGRITY');
      assert.match(r.error!.message, /object 4 .* not covered/);
    } finally {
      cleanup();
    }
  });

  test('signing with a public key, or no key, is refused; CLI sign then verify', async () => {
    const { dir, cleanup } = tempDir('warren-sif-sign-');
    try {
      const f = join(dir, 'x.sif');
      copyImage(img('one-group.sif'), f);
      await assert.rejects(signSif(f, [await loadKeyFile(key('rsa-public.pem'))]), (e: Error & { code?: string }) => e.code === 'KEY_PRIVATE_REQUIRED');
      await assert.rejects(signSif(f, []), (e: Error & { code?: string }) => e.code === 'SIF_SIGN_NO_KEY');
      assert.equal(readSif(f).descriptors.length, 2, 'nothing was written');
      const ro = join(dir, 'ro.sif');
      copyImage(img('one-group.sif'), ro);
      chmodSync(ro, 0o444);
      await assert.rejects(signSif(ro, [await loadKeyFile(key('rsa-private.pem'))]), (e: Error & { code?: string }) => e.code === 'SIF_READ_ONLY' && e.message.includes(ro));
      assert.ok(readFileSync(ro).equals(readFileSync(img('one-group.sif'))), 'a read-only image is left alone');
      const home = join(dir, 'home');
      const s = cli(['image', 'sign', f, '--key', key('ecdsa-private.pem'), '--deterministic'], { WARREN_HOME: home });
      assert.equal(s.code, 0, s.stderr);
      assert.match(s.stdout, /signed .*group\(s\) 1/);
      const v = cli(['image', 'verify', f, '--key', key('ecdsa-public.pem')], { WARREN_HOME: home });
      assert.equal(v.code, 0, v.stderr);
      const pgpWrong = cli(['image', 'sign', f, '--key', key('rsa-private.pem'), '--pgp'], { WARREN_HOME: home });
      assert.equal(pgpWrong.code, 2);
      assert.match(pgpWrong.stderr, /KEY_TYPE_UNSUPPORTED/);
      const pub = cli(['image', 'sign', f, '--key', key('rsa-public.pem')], { WARREN_HOME: home });
      assert.equal(pub.code, 2);
      assert.match(pub.stderr, /KEY_PRIVATE_REQUIRED/);
    } finally {
      cleanup();
    }
  });
});
