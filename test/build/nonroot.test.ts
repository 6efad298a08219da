// A build by a non-root user (created here, removed after): %post runs as root inside a user
// namespace that maps the user (rootless runc, "fakeroot"), the image's files belong to root,
// and a failing build leaves nothing behind either. The user runs the built CLI with node,
// with a WARREN_HOME in a temp dir of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSifMetadata } from '../../src/image/index.js';
import { repoRoot, warrenBin } from '../helpers.js';
import { buildSkip, copyRecipe, extractSif, isRoot } from './helpers.js';

const USER = `warren-build-${process.pid}`;
const skip = buildSkip() || (isRoot ? false : 'needs root to create the test user') || (Number(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8')) > 0 ? false : 'user namespaces are disabled (user.max_user_namespaces=0)');

test('a non-root user builds with %post as root in a user namespace', { skip, timeout: 300_000 }, (t) => {
  execFileSync('useradd', ['-M', '-d', '/nonexistent', '-s', '/bin/sh', USER], { stdio: 'ignore' });
  const work = mkdtempSync('/tmp/warren-build-nonroot-');
  t.after(() => {
    rmSync(work, { recursive: true, force: true });
    spawnSync('userdel', [USER], { stdio: 'ignore' });
  });
  const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }));
  const recipe = copyRecipe('busybox/Apptainer', work, 'r.def', (s) => s + '\n%post\n    id -u > /post-uid\n    touch /made-by-post\n    mkdir /locked && chmod 000 /locked\n');
  writeFileSync(join(work, 'fail.def'), 'Bootstrap: busybox\n%post\n    mkdir -p /deep/ro && touch /deep/ro/f && chmod 500 /deep/ro /deep\n    echo failing now\n    exit 3\n');
  execFileSync('chown', ['-R', `${uid}:${gid}`, work]);
  chownSync(work, uid, gid);
  const home = join(work, 'home');
  const as = (args: string[]) =>
    spawnSync('runuser', ['-u', USER, '--', process.execPath, warrenBin, ...args], {
      encoding: 'utf8',
      cwd: work,
      timeout: 200_000,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', HOME: work, LANG: 'C.UTF-8', WARREN_HOME: home },
    });
  assert.ok(existsSync(warrenBin) && statSync(repoRoot).mode & 0o005, 'the repository must be readable by other users');

  const r = as(['image', 'build', '--fakeroot', join(work, 'out.sif'), recipe]);
  assert.equal(r.status, 0, `${r.stderr}\n${r.stdout}`);
  assert.match(r.stdout, /rootless \(fakeroot\)/);
  assert.equal(statSync(join(work, 'out.sif')).uid, uid);
  const tree = extractSif(join(work, 'out.sif'), join(work, 'tree'));
  assert.equal(readFileSync(join(tree, 'post-uid'), 'utf8'), '0\n', '%post runs as root inside');
  // In the image, everything belongs to root (the user was root inside).
  assert.equal(statSync(join(tree, 'made-by-post')).uid, 0);
  assert.ok(existsSync(join(tree, 'scif/apps/testapp/bin/testapp.sh')));
  const meta = readSifMetadata(join(work, 'out.sif'));
  assert.match(meta.deffile!, /BootStrap: busybox/);
  assert.match(meta.runscript!, /Running command/);
  assert.deepEqual(readdirSync(join(home, 'build')), [], 'the build tree (with its mode-000 directory) is removed');

  const f = as(['image', 'build', join(work, 'fail.sif'), join(work, 'fail.def')]);
  assert.equal(f.status, 1, f.stderr);
  assert.match(f.stderr, /error\[BUILD_POST_FAILED\]: .*fail\.def:2:1: %post of stage 1\/1 failed: it exited with status 3/);
  assert.match(f.stderr, /failing now/);
  assert.match(f.stderr, /APT::Sandbox::User=root/, 'the hint explains the single-uid mapping');
  assert.equal(existsSync(join(work, 'fail.sif')), false);
  assert.deepEqual(readdirSync(join(home, 'build')), []);
  assert.deepEqual(readdirSync(work).filter((n) => n.startsWith('.')), [], 'no partial output');

  // A base SIF (built by root) with a device node: extracted without it, with a note.
  writeFileSync(join(work, 'dev.def'), 'Bootstrap: busybox\n%setup\n    mknod $APPTAINER_ROOTFS/dev/null c 1 3\n');
  const rootBuild = spawnSync(process.execPath, [warrenBin, 'image', 'build', join(work, 'dev.sif'), join(work, 'dev.def')], { encoding: 'utf8', cwd: work, env: { ...process.env, WARREN_HOME: join(work, 'roothome') } });
  assert.equal(rootBuild.status, 0, rootBuild.stderr);
  execFileSync('chown', ['-R', `${uid}:${gid}`, work]);
  writeFileSync(join(work, 'top.def'), 'Bootstrap: localimage\nFrom: dev.sif\n%post\n    touch /on-top\n');
  chownSync(join(work, 'top.def'), uid, gid);
  const top = as(['image', 'build', join(work, 'top.sif'), join(work, 'top.def')]);
  assert.equal(top.status, 0, top.stderr);
  assert.match(top.stderr, /skipped 1 device node\(s\)/);
  assert.ok(existsSync(join(extractSif(join(work, 'top.sif'), join(work, 'top-tree')), 'on-top')));

  // debootstrap needs root: said so, before anything is fetched.
  writeFileSync(join(work, 'deb.def'), 'Bootstrap: debootstrap\nOSVersion: bookworm\n');
  chownSync(join(work, 'deb.def'), uid, gid);
  const d = as(['image', 'build', join(work, 'deb.sif'), join(work, 'deb.def')]);
  assert.equal(d.status, 2, d.stderr);
  assert.match(d.stderr, /error\[BUILD_NEEDS_ROOT\]: .*deb\.def:1:12: "Bootstrap: debootstrap" needs root/);
});
