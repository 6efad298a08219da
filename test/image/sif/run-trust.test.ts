// Issue 7, signed images, end to end through `warren run` / `warren resume` with runc: what runs
// is what was verified. Each job prints /marker of the image it ran in: "signed" for the bytes
// that were signed, "forged" for the attacker's.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { startRegistry, registryAvailable } from '../oci/registry.js';
import { prepareImage, pushSif } from '../../../src/image/index.js';
import { ED_PUBLIC, makeSif, markerSquashfs, partition, rewriteTarget, warrenIn, type Res } from './trust-fixtures.js';

describe('warren run: what runs is what was verified', () => {
  const t = tempDir('warren-run-trust-');
  const home = join(t.dir, 'home');
  const warren = warrenIn(home);
  let good = '';
  let bad = '';
  let signed = ''; // pristine signed SIF (never changed)
  let unsigned = ''; // an unsigned SIF with /marker = forged
  let attack = ''; // signed, plus an ungrouped primary partition first in the table
  let n = 0;

  before(async () => {
    good = markerSquashfs(t.dir, 'signed');
    bad = markerSquashfs(t.dir, 'forged');
    signed = await makeSif(join(t.dir, 'signed.sif'), [partition(good, 1)]);
    unsigned = await makeSif(join(t.dir, 'unsigned.sif'), [partition(bad, 1)], false);
    attack = await makeSif(join(t.dir, 'attack.sif'), [partition(bad, 0), partition(good, 1)]);
  });
  after(t.cleanup);

  /** A fresh copy of the signed image (the one a job names, which the test then attacks). */
  const victim = (): string => {
    const f = join(t.dir, `victim-${++n}.sif`);
    copyFileSync(signed, f);
    return f;
  };
  const flow = (body: string, policy = ''): string => {
    const f = join(t.dir, `flow-${++n}.yaml`);
    writeFileSync(f, `version: v1\n${policy}jobs:\n${body}`);
    return f;
  };
  const wfPolicy = `policy:\n  require-signed: true\n  trusted-keys: ["${ED_PUBLIC}"]\n`;
  const nodePolicy = (keys: string[] = [ED_PUBLIC]): void => writeFileSync(join(home, 'policy.json'), JSON.stringify({ 'require-signed': true, 'trusted-keys': keys }));
  const noNodePolicy = (): void => rmSync(join(home, 'policy.json'), { force: true });
  const count = (): number => JSON.parse(warren(['list', '--json', '--limit', '1000']).stdout || '[]').length;
  const idOf = (r: Res): string => (JSON.parse(r.stdout) as { id: string }).id;
  const logOf = (id: string, job: string): string => warren(['logs', id, job]).stdout;
  const markerJob = (name: string, image: string, requires?: string): string =>
    `  ${name}:\n    image: {uri: "file://${image}"}\n    command: [/bin/cat, /marker]\n${requires ? `    requires: [${requires}]\n` : ''}`;

  test('the ungrouped-partition image: refused before the run under workflow and node require-signed; nothing accepted, "forged" never runs', { timeout: 120_000 }, () => {
    noNodePolicy();
    const before = count();
    const r = warren(['run', flow(markerJob('inside', attack), wfPolicy), '--json']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /error\[IMAGE_UNCOVERED_OBJECT\].*attack\.sif/);
    nodePolicy();
    try {
      const r2 = warren(['run', flow(markerJob('inside', attack)), '--json']);
      assert.notEqual(r2.code, 0, r2.stdout);
      assert.match(r2.stderr, /error\[IMAGE_UNCOVERED_OBJECT\]/);
    } finally {
      noNodePolicy();
    }
    assert.equal(count(), before, 'nothing was accepted');
  });

  test('the ungrouped-partition image without any policy: the runtime refuses to choose (SIF_PARTITION_AMBIGUOUS), "forged" never runs', { timeout: 120_000 }, () => {
    noNodePolicy();
    const r = warren(['run', flow(markerJob('inside', attack)), '--json']);
    assert.notEqual(r.code, 0, r.stdout + r.stderr);
    const id = idOf(r);
    assert.doesNotMatch(logOf(id, 'inside'), /forged/);
    assert.match(warren(['status', id]).stdout, /has 2 primary system partitions \(objects 1, 2\): which one to run is ambiguous/);
  });

  test('workflow require-signed: a file:// image swapped during the run does not run; the later job runs the verified bytes', { timeout: 120_000 }, () => {
    noNodePolicy();
    const v = victim();
    const body = markerJob('first', v) + `  swap:\n    command: [/bin/cp, "${unsigned}", "${v}"]\n    requires: [first]\n` + markerJob('second', v, 'swap');
    const r = warren(['run', flow(body, wfPolicy), '--json']);
    const id = idOf(r);
    assert.equal(logOf(id, 'first'), 'signed\n');
    assert.doesNotMatch(logOf(id, 'second'), /forged/);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(logOf(id, 'second'), 'signed\n');
  });

  test('workflow require-signed: the cached image.sif of an oras:// pull swapped during the run does not run', { timeout: 120_000 }, async (t) => {
    if (!registryAvailable()) {
      t.skip('docker-registry is not installed (scripts/apt)');
      return;
    }
    noNodePolicy();
    const reg = await startRegistry();
    try {
      const uri = `oras://${reg.host}/sifs/signed:1`;
      await pushSif(uri, signed);
      // Pull it into the node's cache as the run will, to know where the cached copy lies.
      const cached = (await prepareImage(uri, { cacheDir: join(home, 'cache', 'images') })).path;
      const job = (name: string, requires?: string): string => `  ${name}:\n    image: {uri: "${uri}"}\n    command: [/bin/cat, /marker]\n${requires ? `    requires: [${requires}]\n` : ''}`;
      const body = job('first') + `  swap:\n    command: [/bin/cp, -f, "${unsigned}", "${cached}"]\n    requires: [first]\n` + job('second', 'swap');
      const r = warren(['run', flow(body, wfPolicy), '--json']);
      const id = idOf(r);
      assert.equal(logOf(id, 'first'), 'signed\n');
      assert.doesNotMatch(logOf(id, 'second'), /forged/);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(logOf(id, 'second'), 'signed\n');
    } finally {
      await reg.stop();
    }
  });

  test('warren resume checks the policy again: an image swapped before the resume is refused, the original resumes', { timeout: 120_000 }, () => {
    noNodePolicy();
    const v = victim();
    const go = join(t.dir, `go-${n}`);
    const body = `  gate:\n    command: [/bin/test, -e, "${go}"]\n` + markerJob('inside', v, 'gate');
    const r = warren(['run', flow(body, wfPolicy), '--json']);
    assert.equal(r.code, 1, r.stderr);
    const id = idOf(r);
    copyFileSync(unsigned, v);
    writeFileSync(go, '');
    const r2 = warren(['resume', id, '--json']);
    assert.equal(r2.code, 2, r2.stdout + r2.stderr);
    assert.match(r2.stderr, /error\[IMAGE_UNSIGNED\].*victim/);
    assert.doesNotMatch(logOf(id, 'inside'), /forged/);
    copyFileSync(signed, v);
    const r3 = warren(['resume', id, '--json']);
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(logOf(id, 'inside'), 'signed\n');
  });

  test('node require-signed: a same-size rewrite in place with the mtime restored does not run; a later run refuses the image', { timeout: 120_000 }, () => {
    const v = victim();
    const { offset, size } = rewriteTarget(v, bad);
    const st0 = statSync(v);
    // Rewrite the partition with the forged squashfs (same size), then put the mtime back.
    const rewrite = `touch -r "${v}" "${v}.stamp" && dd if="${bad}" of="${v}" bs=65536 oflag=seek_bytes seek=${offset} conv=notrunc status=none && touch -r "${v}.stamp" "${v}"`;
    const body = markerJob('first', v) + `  rewrite:\n    command: [/bin/sh, -c, '${rewrite}']\n    requires: [first]\n` + markerJob('second', v, 'rewrite');
    nodePolicy();
    try {
      const r = warren(['run', flow(body), '--json']);
      const id = idOf(r);
      const st1 = statSync(v);
      assert.deepEqual([st1.size, st1.mtimeMs, st1.ino], [st0.size, st0.mtimeMs, st0.ino], 'the attack kept size, mtime and inode');
      assert.equal(size, statSync(bad).size);
      assert.equal(logOf(id, 'first'), 'signed\n');
      assert.doesNotMatch(logOf(id, 'second'), /forged/);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(logOf(id, 'second'), 'signed\n');
      // A new run reads the rewritten bytes: they no longer match the signature.
      const r2 = warren(['run', flow(markerJob('again', v)), '--json']);
      assert.notEqual(r2.code, 0, r2.stdout);
      assert.match(r2.stderr, /error\[SIF_INTEGRITY\].*changed since signing/);
    } finally {
      noNodePolicy();
    }
  });

  test('a key only in the workflow\'s trusted-keys, under a node require-signed policy: refused before the run (the same rule as at launch), nothing accepted', { timeout: 120_000 }, () => {
    nodePolicy([]); // the node trusts no key (its key store has none trusted)
    try {
      const before = count();
      const r = warren(['run', flow(markerJob('inside', signed), wfPolicy), '--json']);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /error\[IMAGE_UNTRUSTED_SIGNER\]/);
      assert.match(r.stderr, /hint: .*node policy.*do not widen it/);
      assert.equal(count(), before, 'nothing was accepted');
      // Trusted by the node: accepted before the run and at launch.
      nodePolicy([ED_PUBLIC]);
      const ok = warren(['run', flow(markerJob('inside', signed), wfPolicy), '--json']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(logOf(idOf(ok), 'inside'), 'signed\n');
    } finally {
      noNodePolicy();
    }
  });

  test('the trusted store holds only Warren-private, content-addressed copies (0700 dir, 0400 files)', () => {
    const dir = join(home, 'cache', 'trusted-sif');
    assert.ok(existsSync(dir));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
  });
});
