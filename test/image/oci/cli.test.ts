// `warren image pull|ls|rm|prune` and `warren registry login|logout`, run as a process
// against a real loopback registry.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sharedDir, tempDir } from '../../helpers.js';
import { registryAvailable, startRegistry, type LoopbackRegistry } from './registry.js';
import { pushBusybox } from './fixtures.js';

const skip = registryAvailable() ? false : 'docker-registry is not installed (scripts/apt/image.txt; run scripts/setup.sh)';
const here = fileURLToPath(import.meta.url);
const child = join(dirname(here), `cli-child${extname(here)}`);

function warren(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), child, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env ?? {}) },
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    p.stdin.end(opts.input ?? '');
  });
}

describe('warren image / registry commands', { skip, timeout: 300_000 }, () => {
  let reg: LoopbackRegistry;
  let priv: LoopbackRegistry;
  let t: { dir: string; cleanup: () => void };
  const creds = { user: 'carol', password: 'pw-carol' };
  before(async () => {
    t = tempDir('warren-image-cli-');
    reg = await startRegistry();
    priv = await startRegistry({ htpasswd: creds });
    await pushBusybox(`docker://${reg.host}/cli/busybox:1`);
    await pushBusybox(`docker://${priv.host}/cli/private:1`, { auth: { username: creds.user, password: creds.password } });
  });
  after(async () => {
    await reg?.stop();
    await priv?.stop();
    t?.cleanup();
  });

  test('pull, ls, rm, prune', async () => {
    const cache = join(t.dir, 'cache');
    const pull = await warren(['image', 'pull', `${reg.host}/cli/busybox:1`, '--cache-dir', cache, '-q']);
    assert.equal(pull.code, 0, pull.err);
    const path = pull.out.trim();
    assert.ok(existsSync(join(path, 'bin', 'busybox')), path);
    const again = await warren(['image', 'pull', `docker://${reg.host}/cli/busybox:1`, '--cache-dir', cache]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /already cached/);
    const ls = await warren(['image', 'ls', '--cache-dir', cache]);
    assert.equal(ls.code, 0);
    assert.match(ls.out, /^DIGEST\s+KIND\s+SIZE\s+LAST USED\s+IMAGE$/m);
    assert.ok(ls.out.includes(`docker://${reg.host}/cli/busybox:1 (linux/amd64)`) || ls.out.includes(`docker://${reg.host}/cli/busybox:1 (`), ls.out);
    const json = JSON.parse((await warren(['image', 'ls', '--json', '--cache-dir', cache])).out) as { path: string }[];
    assert.deepEqual(json.map((i) => i.path), [path]);
    const rm = await warren(['image', 'rm', `${reg.host}/cli/busybox:1`, '--cache-dir', cache]);
    assert.equal(rm.code, 0, rm.err);
    assert.match(rm.out, /^removed sha256:/m);
    assert.equal(existsSync(path), false);
    const rm2 = await warren(['image', 'rm', `${reg.host}/cli/busybox:1`, '--cache-dir', cache]);
    assert.equal(rm2.code, 2);
    assert.match(rm2.err, /error\[IMAGE_NOT_IN_CACHE\]/);
    assert.match(rm2.err, /hint: /);
    const prune = await warren(['image', 'prune', '--cache-dir', cache]);
    assert.equal(prune.code, 0, prune.err);
    assert.match(prune.out, /pruned 0 image\(s\), 3 blob\(s\)/);
    const badDur = await warren(['image', 'prune', '--older-than', 'soon', '--cache-dir', cache]);
    assert.equal(badDur.code, 2);
    assert.match(badDur.err, /error\[IMAGE_PRUNE_INVALID\]/);
  });

  test('push a rootfs directory and a SIF, pull them back', async () => {
    const cache = join(t.dir, 'cache-push');
    const src = (await warren(['image', 'pull', `${reg.host}/cli/busybox:1`, '--cache-dir', cache, '-q'])).out.trim();
    const push = await warren(['image', 'push', src, `${reg.host}/cli/copy:1`]);
    assert.equal(push.code, 0, push.err);
    assert.match(push.out, /^pushed docker:\/\/127\.0\.0\.1:\d+\/cli\/copy:1\n  digest: sha256:[0-9a-f]{64}$/m);
    const back = await warren(['image', 'pull', `${reg.host}/cli/copy:1`, '--cache-dir', join(t.dir, 'cache-push2'), '-q']);
    assert.equal(back.code, 0, back.err);
    const dst = back.out.trim();
    assert.ok(readFileSync(join(dst, 'bin', 'busybox')).equals(readFileSync(join(src, 'bin', 'busybox'))));
    assert.equal(statSync(join(dst, 'bin', 'bb-hard')).ino, statSync(join(dst, 'bin', 'busybox')).ino, 'hard link kept');
    assert.equal(readFileSync(join(dst, 'etc', 'motd'), 'utf8'), 'updated\n');
    assert.equal(statSync(join(dst, 'etc', 'secret')).mode & 0o777, 0o600);
    const sif = join(sharedDir, 'sif-testdata', 'images', 'one-group.sif');
    if (existsSync(sif)) {
      const ps = await warren(['image', 'push', sif, `oras://${reg.host}/cli/sif:1`]);
      assert.equal(ps.code, 0, ps.err);
      const pulled = await warren(['image', 'pull', `oras://${reg.host}/cli/sif:1`, '--cache-dir', cache, '-q']);
      assert.equal(pulled.code, 0, pulled.err);
      assert.ok(readFileSync(pulled.out.trim()).equals(readFileSync(sif)));
      const wrong = await warren(['image', 'push', sif, `${reg.host}/cli/sif:1`]);
      assert.equal(wrong.code, 2);
      assert.match(wrong.err, /error\[IMAGE_REF_INVALID\].*oras:\/\//);
    }
    const missing = await warren(['image', 'push', join(t.dir, 'nope'), `${reg.host}/cli/x:1`]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /error\[IMAGE_LOCAL_NOT_FOUND\]/);
  });

  test('bad pulls: clear error, hint, non-zero exit', async () => {
    const cache = join(t.dir, 'cache-bad');
    const nf = await warren(['image', 'pull', `${reg.host}/cli/busybox:nope`, '--cache-dir', cache]);
    assert.equal(nf.code, 2);
    assert.match(nf.err, /error\[IMAGE_NOT_FOUND\]: image docker:\/\/127\.0\.0\.1:\d+\/cli\/busybox:nope not found/);
    assert.match(nf.err, /hint: /);
    const bad = await warren(['image', 'pull', 'docker://Bad Name', '--cache-dir', cache]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /error\[IMAGE_REF_INVALID\]/);
    const plat = await warren(['image', 'pull', `${reg.host}/cli/busybox:1`, '--platform', 'amd64', '--cache-dir', cache]);
    assert.equal(plat.code, 2);
    assert.match(plat.err, /is not a platform/);
    const auth = await warren(['image', 'pull', `${priv.host}/cli/private:1`, '--cache-dir', cache], { env: { WARREN_HOME: join(t.dir, 'nohome') } });
    assert.equal(auth.code, 1);
    assert.match(auth.err, /error\[IMAGE_AUTH_REQUIRED\]/);
    assert.match(auth.err, /warren registry login/);
  });

  test('registry login stores verified credentials (0600) that pulls then use; logout forgets them', async () => {
    const home = join(t.dir, 'home');
    const env = { WARREN_HOME: home };
    const wrong = await warren(['registry', 'login', priv.host, '-u', creds.user, '--password-stdin'], { env, input: 'nope\n' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.err, /error\[IMAGE_AUTH_FAILED\]/);
    assert.equal(existsSync(join(home, 'registries.json')), false, 'nothing stored');
    const noPw = await warren(['registry', 'login', priv.host, '-u', creds.user], { env });
    assert.equal(noPw.code, 2);
    assert.match(noPw.err, /--password-stdin/);
    const ok = await warren(['registry', 'login', `http://${priv.host}/`, '-u', creds.user, '--password-stdin'], { env, input: creds.password + '\n' });
    assert.equal(ok.code, 0, ok.err);
    const file = join(home, 'registries.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')).registries[priv.host], { username: creds.user, password: creds.password });
    const pull = await warren(['image', 'pull', `${priv.host}/cli/private:1`, '-q', '--cache-dir', join(t.dir, 'cache-auth')], { env });
    assert.equal(pull.code, 0, pull.err);
    const out = await warren(['registry', 'logout', priv.host], { env });
    assert.equal(out.code, 0, out.err);
    const out2 = await warren(['registry', 'logout', priv.host], { env });
    assert.equal(out2.code, 2);
    assert.match(out2.err, /error\[IMAGE_NOT_LOGGED_IN\]/);
  });
});
