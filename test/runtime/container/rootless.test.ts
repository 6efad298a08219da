// Rootless containers: a non-root user (created here) runs containers through the runtime,
// with a user namespace mapping it, no cgroup limits (reported), and SIFs opened without
// loop mounts (squashfuse, or unsquashfs extraction where FUSE is not available).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBusyboxRootfs, makeSquashfs, mountsUnder } from './fixtures.js';
import { repoRoot } from '../../helpers.js';

const USER = 'warren-test-rootless';
const isRoot = process.getuid?.() === 0;

function ensureUser(): { uid: number; gid: number } {
  if (spawnSync('id', ['-u', USER]).status !== 0) execFileSync('useradd', ['-m', '-s', '/bin/sh', USER], { stdio: 'ignore' });
  return { uid: Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' })) };
}

function chownR(dir: string, uid: number, gid: number): void {
  execFileSync('chown', ['-R', `${uid}:${gid}`, dir]);
}

test('rootless: an unprivileged user runs containers with a user namespace', { skip: isRoot ? false : 'needs root to create the test user', timeout: 120_000 }, () => {
  const maxNs = Number(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8'));
  assert.ok(maxNs > 0, 'user namespaces are disabled (user.max_user_namespaces=0): rootless containers cannot work on this node');
  // Debian kernels before 6.x gate unprivileged user namespaces behind this switch.
  const clone = '/proc/sys/kernel/unprivileged_userns_clone';
  const cloneWas = existsSync(clone) ? readFileSync(clone, 'utf8').trim() : undefined;
  if (cloneWas === '0') writeFileSync(clone, '1');
  const { uid, gid } = ensureUser();
  const work = mkdtempSync('/tmp/warren-rootless-');
  try {
    makeBusyboxRootfs(join(work, 'rootfs'));
    makeSquashfs(join(work, 'rootfs'), join(work, 'busybox.sqfs'));
    chownR(work, uid, gid);
    chownSync(work, uid, gid);
    const self = fileURLToPath(import.meta.url);
    const child = self.replace(/rootless\.test\.(ts|js)$/, 'rootless-child.$1');
    const nodeArgs = child.endsWith('.ts') ? ['--import', 'tsx', child] : [child];
    const r = spawnSync('runuser', ['-u', USER, '--', process.execPath, ...nodeArgs, work], {
      encoding: 'utf8',
      timeout: 100_000,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', HOME: `/home/${USER}`, LANG: 'C.UTF-8' },
      cwd: repoRoot, // `--import tsx` resolves from here
    });
    assert.equal(r.status, 0, `child failed: ${r.stderr}\n${r.stdout}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(res.uid, uid);
    const who = res.whoami;
    assert.equal(who.info.reason, 'exit', JSON.stringify(who));
    // Root inside the user namespace, which is the user outside: files it writes are the user's.
    assert.deepEqual(who.out.trim().split('\n'), ['0', '0', 'pid=1', 'rootless-1', 'yes', 'ro', `${uid}:${gid}`]);
    assert.equal(res.asRoot.out.trim(), '0', JSON.stringify(res.asRoot));
    assert.equal(res.squashfs.info.reason, 'exit', JSON.stringify(res.squashfs));
    assert.equal(res.squashfs.out.trim(), '/bin/busybox\n0');
    assert.equal(res.limited.info.reason, 'exit');
    assert.match(res.limited.info.message, /not enforced/);
    assert.ok(res.warnings.some((w: string) => /rootless/.test(w)));
    assert.equal(res.timeout.info.reason, 'timeout');
    assert.deepEqual(res.leftContainers, []);
    assert.deepEqual(res.leftBundles, []);
    assert.deepEqual(mountsUnder(work), []);
  } finally {
    if (cloneWas === '0') writeFileSync(clone, '0');
    // Lazy-unmount anything a failed run left, then remove the files.
    for (const m of mountsUnder(work).reverse()) spawnSync('umount', ['-l', m]);
    rmSync(work, { recursive: true, force: true });
  }
});
