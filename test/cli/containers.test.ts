// `warren run` with container images, end to end through the real CLI: a busybox root
// file system directory, a SIF built and signed with Warren's own commands, runc, and the
// trust policy refusing unsigned or unknown-signer images before anything runs.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeBusyboxRootfs } from '../runtime/container/fixtures.js';
import { startRegistry } from '../image/oci/registry.js';
import { pushBusybox } from '../image/oci/fixtures.js';
import { tempDir, warrenBin } from '../helpers.js';

interface Res { code: number | null; stdout: string; stderr: string }

describe('warren run with container images', () => {
  const t = tempDir('warren-ctr-');
  const home = join(t.dir, 'home');
  const warren = (args: string[], env: NodeJS.ProcessEnv = {}): Res => {
    const r = spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home, ...env }, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  let rootfs = '';
  let sif = '';
  let signed = '';
  let fingerprint = '';

  before(() => {
    rootfs = makeBusyboxRootfs(join(t.dir, 'rootfs'));
    sif = join(t.dir, 'busybox.sif');
    const b = warren(['image', 'build', rootfs, '-o', sif, '--env', 'GREETING=from-the-image']);
    assert.equal(b.code, 0, b.stderr);
    signed = join(t.dir, 'signed.sif');
    writeFileSync(signed, readFileSync(sif));
    const g = warren(['key', 'generate', '--name', 'ci', '--no-trust']);
    assert.equal(g.code, 0, g.stderr);
    fingerprint = /[0-9a-f]{64}/.exec(g.stdout + g.stderr)![0];
    const s = warren(['image', 'sign', signed, '--key', fingerprint]);
    assert.equal(s.code, 0, s.stderr);
  });
  after(t.cleanup);

  const flow = (image: string, policy = ''): string => {
    const f = join(t.dir, `flow-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      f,
      `version: v1
${policy}volumes:
  work:
    reference: volume://user/ephemeral
jobs:
  inside:
    image: {uri: "${image}"}
    command: [/bin/sh, -c, 'echo "$GREETING pid=$$ host=$(hostname) uid=$(id -u)"; echo made > /work/out.txt']
    mounts:
      work: {location: /work}
  after:
    command: [/bin/sh, -c, 'cat "$WARREN_VOLUME_WORK/out.txt"']
    requires: [inside]
    mounts:
      work: {location: /work}
`,
    );
    return f;
  };

  test('a job runs in a SIF image with runc: image env, own PID namespace, hostname, caller uid, volume shared with a host job', { timeout: 120_000 }, () => {
    const r = warren(['run', flow(`file://${sif}`), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.status, 'succeeded');
    const log = warren(['logs', out.id, 'inside']).stdout;
    assert.equal(log, `from-the-image pid=1 host=inside uid=${process.getuid!()}\n`);
    assert.equal(warren(['logs', out.id, 'after']).stdout, 'made\n');
  });

  test('a docker:// image is pulled from a registry (loopback) before the run, then runs with its config', { timeout: 120_000 }, async () => {
    const reg = await startRegistry();
    try {
      const uri = `docker://${reg.host}/test/busybox:1`;
      await pushBusybox(uri);
      const f = join(t.dir, 'docker.yaml');
      writeFileSync(f, `version: v1\njobs:\n  arch:\n    image: {uri: "${uri}"}\n    command: [/bin/sh, -c, 'cat /etc/arch; echo "test=$WARREN_TEST"']\n`);
      const r = warren(['run', f, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(warren(['logs', out.id, 'arch']).stdout, 'amd64\ntest=1\n');
      assert.match(warren(['image', 'ls']).stdout, /test\/busybox/);
      // unknown tag: a clear error before anything is accepted
      const bad = join(t.dir, 'bad-tag.yaml');
      writeFileSync(bad, `version: v1\njobs:\n  x:\n    image: {uri: "docker://${reg.host}/test/busybox:nope"}\n    command: [/bin/true]\n`);
      const b = warren(['run', bad]);
      assert.equal(b.code, 2, b.stderr);
      assert.match(b.stderr, /error\[IMAGE_NOT_FOUND\].*busybox:nope/);
    } finally {
      await reg.stop();
    }
  });

  test('a root file system directory works as an image too', { timeout: 120_000 }, () => {
    const r = warren(['run', flow(rootfs), '--json']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('require-signed refuses an unsigned image before anything runs, naming it', { timeout: 120_000 }, () => {
    const count = () => JSON.parse(warren(['list', '--json', '--limit', '1000']).stdout).length;
    const before = count();
    const r = warren(['run', flow(`file://${sif}`, 'policy:\n  require-signed: true\n')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error\[IMAGE_UNSIGNED\]: .*busybox\.sif.* not signed/);
    assert.match(r.stderr, /hint: /);
    assert.equal(count(), before, 'nothing was accepted');
  });

  test('require-signed refuses an unknown signer, naming the fingerprint; trusting the key lets it run', { timeout: 120_000 }, () => {
    const r = warren(['run', flow(`file://${signed}`, 'policy:\n  require-signed: true\n')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error\[IMAGE_UNTRUSTED_SIGNER\]/);
    assert.ok(r.stderr.includes(fingerprint), r.stderr);
    const ok = warren(['run', flow(`file://${signed}`, `policy:\n  require-signed: true\n  trusted-keys: [${fingerprint}]\n`), '--json']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('the node policy (policy.json) applies to every workflow', { timeout: 120_000 }, () => {
    writeFileSync(join(home, 'policy.json'), JSON.stringify({ 'require-signed': true, 'trusted-keys': [fingerprint] }));
    try {
      assert.equal(warren(['run', flow(`file://${sif}`)]).code, 2);
      assert.equal(warren(['run', flow(`file://${signed}`)]).code, 0);
    } finally {
      writeFileSync(join(home, 'policy.json'), '{}');
    }
  });

  test('an image that does not exist is a clear error, nothing runs', { timeout: 60_000 }, () => {
    const r = warren(['run', flow(`file://${t.dir}/missing.sif`)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /missing\.sif/);
    assert.match(r.stderr, /hint:/);
    assert.ok(!existsSync(join(t.dir, 'should-not-exist')));
  });
});
