// Issue 7, "Unsigned partition runs under require-signed": a signed SIF with an extra
// ungrouped primary-system partition placed earlier in the descriptor table. Verification
// must not pass it, the partition to mount is chosen by Apptainer's rule (refusing two), and
// under a trust policy any object that no trusted signature covers is a refusal.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { loadKeyFile, KeyStore } from '../../../src/image/keys/index.js';
import { PartType, TrustGate, checkImageTrust, effectiveTrustPolicy, findPrimaryPartition, readSif, verifySif } from '../../../src/image/sif/index.js';
import { isWarrenError } from '../../../src/common/index.js';
import { cli, img } from './util.js';
import { ED_FP, ED_PUBLIC, makeSif, markerSquashfs, partition } from './trust-fixtures.js';

const code = (c: string) => (e: unknown) => isWarrenError(e) && e.code === c && !!e.hint;

describe('signed SIF with an extra ungrouped partition', () => {
  const t = tempDir('warren-sif-attack-');
  let good = '';
  let bad = '';
  let attack = '';
  let systemAttack = '';
  before(async () => {
    good = markerSquashfs(t.dir, 'signed');
    bad = markerSquashfs(t.dir, 'forged');
    // The unsigned partition first in the table (object 1, no group), the signed one in group 1.
    attack = await makeSif(join(t.dir, 'attack.sif'), [partition(bad, 0), partition(good, 1)]);
    // The same with the extra partition typed "system" (not primary system).
    systemAttack = await makeSif(join(t.dir, 'system-attack.sif'), [partition(bad, 0, PartType.System), partition(good, 1)]);
  });
  after(t.cleanup);

  test('the attack image is what the issue describes: signed group 1, object 1 in no group, first in the table', () => {
    const im = readSif(attack);
    assert.deepEqual(im.descriptors.map((d) => [d.id, d.groupId, d.partition?.part ?? d.type]), [[1, 0, 'primary-system'], [2, 1, 'primary-system'], [3, 0, 'Signature']]);
  });

  test('verifySif does not verify it: SIF_UNCOVERED_OBJECT naming object 1', async () => {
    const r = await verifySif(attack, [await loadKeyFile(ED_PUBLIC)]);
    assert.equal(r.verified, false);
    assert.deepEqual(r.uncoveredObjects, [1]);
    assert.equal(r.error?.code, 'SIF_UNCOVERED_OBJECT');
    assert.match(r.error!.message, /object 1.*primary-system partition, in no group/);
  });

  test('`warren image verify` exits 1 and says the object is not covered (no longer only a note)', () => {
    const r = cli(['image', 'verify', attack, '--key', ED_PUBLIC]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /error\[SIF_UNCOVERED_OBJECT\]/);
    assert.doesNotMatch(r.stdout, /verified \(signers/);
  });

  test('the partition to mount: two primary system partitions are refused (SIF_PARTITION_AMBIGUOUS)', () => {
    assert.throws(() => findPrimaryPartition(attack), code('SIF_PARTITION_AMBIGUOUS'));
  });

  test('the partition to mount is the primary system one, never an earlier "system" one', () => {
    const p = findPrimaryPartition(systemAttack);
    assert.equal(p.id, 2);
  });

  test('trust policy: refused (IMAGE_UNCOVERED_OBJECT), both through checkImageTrust and the trust gate', async () => {
    const { dir, cleanup } = tempDir('warren-sif-gate-');
    try {
      const policy = { requireSigned: true, trustedKeys: [ED_PUBLIC], keyStore: new KeyStore(join(dir, 'keys')) };
      for (const f of [attack, systemAttack]) {
        await assert.rejects(checkImageTrust(f, policy), (e: unknown) => (isWarrenError(e) && (e.code === 'IMAGE_UNCOVERED_OBJECT' || e.code === 'SIF_UNCOVERED_OBJECT')) || (console.error(e), false));
        const gate = new TrustGate(policy, { dir: join(dir, 'trusted') });
        await assert.rejects(gate.admit({ uri: `file://${f}`, kind: 'sif', path: f }), code('IMAGE_UNCOVERED_OBJECT'));
      }
    } finally {
      cleanup();
    }
  });

  test('trust policy: a legacy signature over one object leaves the group\'s other object uncovered: refused', async () => {
    const { dir, cleanup } = tempDir('warren-sif-legacy-');
    try {
      const keys = [await loadKeyFile(join(img('..'), 'keys', 'private.asc'))];
      const r = await verifySif(img('one-group-signed-legacy.sif'), keys);
      assert.equal(r.verified, true); // plain verification: legacy, flagged
      assert.deepEqual(r.uncoveredObjects, [1]);
      await assert.rejects(
        checkImageTrust(img('one-group-signed-legacy.sif'), { requireSigned: true, trustedKeys: [join(img('..'), 'keys', 'private.asc')], keyStore: new KeyStore(join(dir, 'keys')) }),
        code('IMAGE_UNCOVERED_OBJECT'),
      );
    } finally {
      cleanup();
    }
  });

  test('a correctly signed image still passes the gate, and the gate hands back its copy and partition', async () => {
    const { dir, cleanup } = tempDir('warren-sif-gate-');
    try {
      const ok = await makeSif(join(dir, 'ok.sif'), [partition(good, 1)]);
      const gate = new TrustGate({ requireSigned: true, trustedKeys: [ED_PUBLIC], keyStore: new KeyStore(join(dir, 'keys')) }, { dir: join(dir, 'trusted') });
      const got = await gate.admit({ uri: `file://${ok}`, kind: 'sif' as const, path: ok });
      assert.deepEqual(got.signers, [ED_FP]);
      assert.ok(got.path.startsWith(join(dir, 'trusted') + '/'));
      assert.match(got.contentDigest!, /^sha256:[0-9a-f]{64}$/);
      const p = findPrimaryPartition(ok);
      assert.deepEqual(got.partition, { offset: p.offset, size: p.size });
    } finally {
      cleanup();
    }
  });
});

describe('one trust rule for the workflow and the node', () => {
  test('effectiveTrustPolicy: a workflow\'s trusted-keys count only when the node does not require signing', () => {
    const { dir, cleanup } = tempDir('warren-rule-');
    try {
      const ks = new KeyStore(join(dir, 'keys'));
      const wf = { requireSigned: true, trustedKeys: [ED_PUBLIC] };
      const open = effectiveTrustPolicy({ requireSigned: false, trustedKeys: [] }, wf, ks);
      assert.equal(open.requireSigned, true);
      assert.deepEqual(open.trustedKeys, [ED_PUBLIC]);
      const locked = effectiveTrustPolicy({ requireSigned: true, trustedKeys: [] }, wf, ks);
      assert.equal(locked.requireSigned, true);
      assert.equal(locked.trustedKeys, undefined, 'only the key store\'s trusted keys');
      assert.deepEqual(locked.ignoredWorkflowKeys, [ED_PUBLIC]);
      const both = effectiveTrustPolicy({ requireSigned: true, trustedKeys: ['/node/key.pem'] }, wf, ks);
      assert.deepEqual(both.trustedKeys, ['/node/key.pem']);
      assert.equal(effectiveTrustPolicy({ requireSigned: false, trustedKeys: [] }, undefined, ks).requireSigned, false);
    } finally {
      cleanup();
    }
  });

  test('the gate applies the rule: under a node policy an image signed by a workflow-only key is refused, the hint says why', async () => {
    const { dir, cleanup } = tempDir('warren-rule-');
    try {
      const ks = new KeyStore(join(dir, 'keys'));
      const ok = await makeSif(join(dir, 'ok.sif'), [partition(markerSquashfs(dir, 'signed'), 1)]);
      const wf = { requireSigned: true, trustedKeys: [ED_PUBLIC] };
      const image = { uri: `file://${ok}`, kind: 'sif' as const, path: ok };
      const open = new TrustGate(effectiveTrustPolicy({ requireSigned: false, trustedKeys: [] }, wf, ks), { dir: join(dir, 'trusted') });
      assert.deepEqual((await open.admit(image)).signers, [ED_FP]);
      const locked = new TrustGate(effectiveTrustPolicy({ requireSigned: true, trustedKeys: [] }, wf, ks), { dir: join(dir, 'trusted') });
      await assert.rejects(locked.admit(image), (e: unknown) => isWarrenError(e) && e.code === 'IMAGE_UNTRUSTED_SIGNER' && /node policy.*do not widen it/.test(e.hint ?? ''));
    } finally {
      cleanup();
    }
  });
});
