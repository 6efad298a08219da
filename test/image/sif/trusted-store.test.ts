// The trusted SIF store and the trust gate: content-addressed, Warren-private copies; a verdict
// keyed by content and key set; a copy that is no longer intact is never used.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, linkSync, readFileSync, readdirSync, statSync, writeFileSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { isWarrenError } from '../../../src/common/index.js';
import { KeyStore } from '../../../src/image/keys/index.js';
import { TrustedSifStore } from '../../../src/image/cache/index.js';
import { TrustGate } from '../../../src/image/sif/index.js';
import { ED_FP, ED_PUBLIC, makeSif, markerSquashfs, partition } from './trust-fixtures.js';
import { key } from './util.js';

describe('trusted SIF store', () => {
  const t = tempDir('warren-trusted-');
  let signed = '';
  let unsigned = '';
  before(async () => {
    const good = markerSquashfs(t.dir, 'signed');
    const bad = markerSquashfs(t.dir, 'forged');
    signed = await makeSif(join(t.dir, 'signed.sif'), [partition(good, 1)]);
    unsigned = await makeSif(join(t.dir, 'unsigned.sif'), [partition(bad, 1)], false);
  });
  after(t.cleanup);

  test('admit: a 0400 copy named by the SHA-256 of its bytes, in a 0700 directory; the same bytes once', () => {
    const dir = join(t.dir, 'store1');
    const s = new TrustedSifStore(dir);
    const c = s.admit(signed);
    const hex = createHash('sha256').update(readFileSync(signed)).digest('hex');
    assert.equal(c.digest, `sha256:${hex}`);
    assert.equal(c.path, join(dir, `${hex}.sif`));
    assert.ok(readFileSync(c.path).equals(readFileSync(signed)));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(c.path).mode & 0o7777, 0o400);
    assert.ok(s.intact(c.path));
    const again = s.admit(signed);
    assert.equal(again.path, c.path);
    assert.deepEqual(readdirSync(dir), [`${hex}.sif`], 'no temporary files left');
  });

  test('intact() is false for a copy with a write bit, a second link, or in a directory others can enter', () => {
    const dir = join(t.dir, 'store2');
    const s = new TrustedSifStore(dir);
    const c = s.admit(signed);
    chmodSync(c.path, 0o600);
    assert.equal(s.intact(c.path), false);
    chmodSync(c.path, 0o400);
    assert.equal(s.intact(c.path), true);
    linkSync(c.path, join(t.dir, 'other-link'));
    assert.equal(s.intact(c.path), false);
    unlinkSync(join(t.dir, 'other-link'));
    chmodSync(dir, 0o755);
    assert.equal(s.intact(c.path), false);
    chmodSync(dir, 0o700);
    assert.equal(s.intact(c.path), true);
  });

  test('the gate: verified once per content and key set (verdict recorded, 0400); another key set is checked anew', async () => {
    const dir = join(t.dir, 'store3');
    const ks = new KeyStore(join(t.dir, 'keys3'));
    const v = join(t.dir, 'v3.sif');
    copyFileSync(signed, v);
    const g1 = new TrustGate({ requireSigned: true, trustedKeys: [ED_PUBLIC], keyStore: ks }, { dir });
    const a = await g1.admit({ uri: 'x', kind: 'sif', path: v });
    assert.deepEqual(a.signers, [ED_FP]);
    const oks = readdirSync(dir).filter((f) => f.endsWith('.ok'));
    assert.equal(oks.length, 1);
    assert.equal(statSync(join(dir, oks[0]!)).mode & 0o777, 0o400);
    // A new gate (a new process) with the same keys: same copy, the recorded verdict.
    const g2 = new TrustGate({ requireSigned: true, trustedKeys: [ED_PUBLIC], keyStore: ks }, { dir });
    assert.equal((await g2.admit({ uri: 'x', kind: 'sif', path: v })).path, a.path);
    // Another key set: the same bytes are refused (the verdict of the first key set does not count).
    const g3 = new TrustGate({ requireSigned: true, trustedKeys: [key('rsa-public.pem')], keyStore: ks }, { dir });
    await assert.rejects(g3.admit({ uri: 'x', kind: 'sif', path: v }), (e: unknown) => isWarrenError(e) && e.code === 'IMAGE_UNTRUSTED_SIGNER');
  });

  test('the gate keeps the verified copy for the run; a tampered copy is not used: the source is copied and checked again', async () => {
    const dir = join(t.dir, 'store4');
    const ks = new KeyStore(join(t.dir, 'keys4'));
    const v = join(t.dir, 'v4.sif');
    copyFileSync(signed, v);
    const gate = new TrustGate({ requireSigned: true, trustedKeys: [ED_PUBLIC], keyStore: ks }, { dir });
    const first = await gate.admit({ uri: 'x', kind: 'sif', path: v });
    // The source swapped: the run keeps its verified copy.
    copyFileSync(unsigned, v);
    const second = await gate.admit({ uri: 'x', kind: 'sif', path: v });
    assert.equal(second.path, first.path);
    assert.ok(readFileSync(second.path).equals(readFileSync(signed)));
    // The copy tampered with (made writable and rewritten): not intact, so the (now unsigned) source is read again and refused.
    chmodSync(first.path, 0o600);
    writeFileSync(first.path, readFileSync(unsigned));
    await assert.rejects(gate.admit({ uri: 'x', kind: 'sif', path: v }), (e: unknown) => isWarrenError(e) && e.code === 'IMAGE_UNSIGNED');
  });

  test('no policy: the gate passes images through untouched and copies nothing', async () => {
    const dir = join(t.dir, 'store5');
    const gate = new TrustGate({ requireSigned: false }, { dir });
    const img = { uri: 'x', kind: 'sif' as const, path: unsigned };
    assert.deepEqual(await gate.admit(img), img);
    assert.equal(existsSync(dir), false);
  });

  test('under a policy a root file system directory is refused (IMAGE_UNSIGNED), nothing copied', async () => {
    const dir = join(t.dir, 'store6');
    const gate = new TrustGate({ requireSigned: true, trustedKeys: [ED_PUBLIC], keyStore: new KeyStore(join(t.dir, 'keys6')) }, { dir });
    await assert.rejects(gate.admit({ uri: 'dir', kind: 'rootfs', path: t.dir }), (e: unknown) => isWarrenError(e) && e.code === 'IMAGE_UNSIGNED' && e.message.includes('root file system directory'));
    assert.equal(existsSync(dir), false);
  });
});
