// Verification of the reference's signed images (DSSE, OpenPGP, legacy) with the shipped keys.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { loadKeyFile } from '../../../src/image/keys/index.js';
import { readSif, verifySif } from '../../../src/image/sif/index.js';
import { cli, copyImage, img, key } from './util.js';

const ED = 'c7a97c65b9694925c668f302cf249e75683cf01c0815ccfc8e53dbe9e974985b';
const RSA = '0610b0afba99ba561c38c4a5d89b760ee607c4736737ab61e0d74ca91fcf19ae';
const PGP = '12045c8c0b1004d058de4beda20c27ee7ff7ba84';

function flipByte(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x01;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

describe('verify reference-signed images', () => {
  test('fingerprints of the shipped keys match the DSSE key ids (SHA256 of the SSH-format key)', async () => {
    assert.equal((await loadKeyFile(key('ed25519-public.pem'))).fingerprint, ED);
    assert.equal((await loadKeyFile(key('ed25519-private.pem'))).fingerprint, ED);
    assert.equal((await loadKeyFile(key('rsa-public.pem'))).fingerprint, RSA);
    assert.equal((await loadKeyFile(key('private.asc'))).fingerprint, PGP);
  });

  test('DSSE: verifies with the Ed25519 key and with the RSA key, naming the signer', async () => {
    const a = await verifySif(img('one-group-signed-dsse.sif'), [await loadKeyFile(key('ed25519-public.pem'))]);
    assert.equal(a.verified, true, a.error?.message);
    assert.deepEqual(a.signers, [ED]);
    assert.deepEqual(a.signatures[0]!.objects, [1, 2]);
    assert.deepEqual(a.signatures[0]!.unknownSigners, [RSA]);
    const b = await verifySif(img('one-group-signed-dsse.sif'), [await loadKeyFile(key('rsa-public.pem'))]);
    assert.equal(b.verified, true, b.error?.message);
    assert.deepEqual(b.signers, [RSA]);
    const both = await verifySif(img('one-group-signed-dsse.sif'), [await loadKeyFile(key('rsa-public.pem')), await loadKeyFile(key('ed25519-public.pem'))]);
    assert.deepEqual(both.signers.sort(), [ED, RSA].sort());
  });

  test('DSSE: rejected with a wrong key (ECDSA, OpenPGP) and without keys', async () => {
    for (const k of ['ecdsa-public.pem', 'private.asc']) {
      const r = await verifySif(img('one-group-signed-dsse.sif'), [await loadKeyFile(key(k))]);
      assert.equal(r.verified, false, k);
      assert.equal(r.error?.code, 'SIF_SIGNER_UNKNOWN');
      assert.match(r.error!.message, new RegExp(ED));
      assert.match(r.error!.message, /one-group-signed-dsse\.sif/);
    }
    assert.equal((await verifySif(img('one-group-signed-dsse.sif'), [])).error?.code, 'SIF_SIGNER_UNKNOWN');
  });

  test('OpenPGP clear-signed: verifies with the OpenPGP key, rejected with PEM keys', async () => {
    const r = await verifySif(img('one-group-signed-pgp.sif'), [await loadKeyFile(key('private.asc'))]);
    assert.equal(r.verified, true, r.error?.message);
    assert.deepEqual(r.signers, [PGP]);
    assert.equal(r.signatures[0]!.kind, 'pgp');
    const w = await verifySif(img('one-group-signed-pgp.sif'), [await loadKeyFile(key('ed25519-public.pem'))]);
    assert.equal(w.error?.code, 'SIF_SIGNER_UNKNOWN');
    assert.match(w.error!.message, new RegExp(PGP));
  });

  test('legacy (SingularityCE 3.x) signature: verifies the signed object, flagged as legacy', async () => {
    const r = await verifySif(img('one-group-signed-legacy.sif'), [await loadKeyFile(key('private.asc'))]);
    assert.equal(r.verified, true, r.error?.message);
    assert.equal(r.legacy, true);
    assert.deepEqual(r.signers, [PGP]);
    assert.deepEqual(r.signatures[0]!.objects, [2]);
    assert.equal((await verifySif(img('one-group-signed-legacy.sif'), [await loadKeyFile(key('rsa-public.pem'))])).verified, false);
  });

  test('unsigned images are refused', async () => {
    for (const name of ['one-group.sif', 'empty.sif', 'two-groups.sif']) {
      const r = await verifySif(img(name), [await loadKeyFile(key('ed25519-public.pem'))]);
      assert.equal(r.verified, false);
      assert.equal(r.error?.code, 'SIF_UNSIGNED', name);
      assert.match(r.error!.message, new RegExp(name.replace('.', '\\.')));
    }
  });

  test('one changed byte in any signed object, descriptor or the header fails verification', async () => {
    const { dir, cleanup } = tempDir('warren-sif-flip-');
    try {
      const cases: [string, string, (f: string) => number][] = [
        ['one-group-signed-dsse.sif', 'ed25519-public.pem', () => 32768 + 2], // raw partition data
        ['one-group-signed-dsse.sif', 'rsa-public.pem', () => 36864 + 1000], // squashfs partition data
        ['one-group-signed-dsse.sif', 'ed25519-public.pem', () => 4096 + 585 + 73], // descriptor 2 name
        ['one-group-signed-dsse.sif', 'ed25519-public.pem', () => 50], // header UUID
        ['one-group-signed-pgp.sif', 'private.asc', () => 36864 + 5],
        ['one-group-signed-legacy.sif', 'private.asc', () => 36864 + 1],
      ];
      let n = 0;
      for (const [name, k, at] of cases) {
        const f = join(dir, `${n++}-${name}`);
        copyImage(img(name), f);
        flipByte(f, at(f));
        const r = await verifySif(f, [await loadKeyFile(key(k))]);
        assert.equal(r.verified, false, `${name} @${at(f)}`);
        assert.equal(r.error?.code, 'SIF_INTEGRITY', `${name} @${at(f)}: ${r.error?.message}`);
        assert.match(r.error!.message, /changed|no longer matches/);
        assert.match(r.error!.message, new RegExp(name.replace('.', '\\.')));
      }
      // A byte of the DSSE signature itself.
      const f = join(dir, 'sig.sif');
      copyImage(img('one-group-signed-dsse.sif'), f);
      const sig = readSif(f).descriptors.find((d) => d.id === 3)!;
      flipByte(f, sig.offset + sig.size - 10);
      const r = await verifySif(f, [await loadKeyFile(key('rsa-public.pem'))]);
      assert.equal(r.verified, false);
      assert.equal(r.error?.code, 'SIF_INTEGRITY');
      assert.match(r.error!.message, /signature by key 0610b0af.* does not verify/);
      // The same damaged envelope still verifies with the other signer's key (its signature is intact).
      assert.equal((await verifySif(f, [await loadKeyFile(key('ed25519-public.pem'))])).verified, true);
      // A signature object that is no longer a DSSE envelope.
      const g = join(dir, 'json.sif');
      copyImage(img('one-group-signed-dsse.sif'), g);
      flipByte(g, sig.offset); // '{' -> 'z'
      const j = await verifySif(g, [await loadKeyFile(key('rsa-public.pem'))]);
      assert.equal(j.error?.code, 'SIF_SIGNATURE_INVALID');
      // An OpenPGP signature packet changed.
      const h = join(dir, 'pgp.sif');
      copyImage(img('one-group-signed-pgp.sif'), h);
      const ps = readSif(h).descriptors.find((d) => d.id === 3)!;
      flipByte(h, ps.offset + ps.size - 60);
      const pr = await verifySif(h, [await loadKeyFile(key('private.asc'))]);
      assert.equal(pr.verified, false);
      assert.equal(pr.error?.code, 'SIF_INTEGRITY', pr.error?.message);
    } finally {
      cleanup();
    }
  });

  test('CLI: exit 0 naming the signer; non-zero with a wrong key; --json report', () => {
    const ok = cli(['image', 'verify', img('one-group-signed-dsse.sif'), '--key', key('rsa-public.pem')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`verified .*${RSA}`));
    const bad = cli(['image', 'verify', img('one-group-signed-dsse.sif'), '--key', key('ecdsa-public.pem')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error\[SIF_SIGNER_UNKNOWN\]: image .*one-group-signed-dsse\.sif/);
    assert.match(bad.stderr, /hint: /);
    const j = cli(['image', 'verify', img('one-group-signed-pgp.sif'), '--key', key('private.asc'), '--json']);
    assert.equal(j.code, 0, j.stderr);
    const rep = JSON.parse(j.stdout) as { verified: boolean; signers: string[] };
    assert.deepEqual([rep.verified, rep.signers], [true, [PGP]]);
    const uns = cli(['image', 'verify', img('one-group.sif'), '--key', key('rsa-public.pem')]);
    assert.equal(uns.code, 1);
    assert.match(uns.stderr, /SIF_UNSIGNED/);
  });
});
