// The container's root mount flags for real (runc as root): `nosuid,nodev` and read-only by
// default; with the node's `allow-setuid`, read-only and nodev without nosuid. Read from
// /proc/self/mountinfo inside the container.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createContainerRuntime } from '../../../src/runtime/container/index.js';
import { findExecutable, defaultToolPath } from '../../../src/runtime/container/rootfs.js';
import { tempDir } from '../../helpers.js';
import { emptyConfig, fakePrepare, makeBusyboxRootfs, mountsUnder } from './fixtures.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'runs runc as root' : !findExecutable('runc', defaultToolPath()) ? 'runc is not installed' : false;
const work = tempDir('warren-rootflags-');

after(() => {
  const mounts = mountsUnder(work.dir);
  const left = existsSync(join(work.dir, 'state', 'runc')) ? readdirSync(join(work.dir, 'state', 'runc')) : [];
  work.cleanup();
  assert.deepEqual(mounts, [], 'mounts left behind');
  assert.deepEqual(left, [], 'runc containers left behind');
});

/** Mount options of every mount at `/` as the container sees them, and whether / is writable. */
async function rootMounts(allowSetuid: boolean): Promise<{ opts: string[][]; writable: string }> {
  const rootfs = join(work.dir, 'rootfs');
  if (!existsSync(rootfs)) makeBusyboxRootfs(rootfs);
  const rt = createContainerRuntime({
    stateDir: join(work.dir, 'state'),
    prepareImage: fakePrepare({ busybox: { kind: 'rootfs', path: rootfs, config: emptyConfig() } }),
    ...(allowSetuid ? { allowSetuid } : {}),
  });
  const d = tempDir('warren-rootflags-job-');
  try {
    const info = await rt.launch({
      id: `wf/rootflags-${allowSetuid}/1/1`,
      argv: ['/bin/sh', '-c', 'cat /proc/self/mountinfo; touch /x 2>/dev/null && echo WRITABLE || echo READONLY'],
      env: {},
      cwd: '/',
      stdoutPath: join(d.dir, 'out'),
      stderrPath: join(d.dir, 'err'),
      mounts: [],
      container: { image: 'busybox' },
    }).exited;
    const out = readFileSync(join(d.dir, 'out'), 'utf8');
    assert.equal(info.reason, 'exit', `${JSON.stringify(info)} ${readFileSync(join(d.dir, 'err'), 'utf8')}`);
    const lines = out.trim().split('\n');
    const opts = lines
      .map((l) => l.split(' '))
      .filter((f) => f[4] === '/')
      .map((f) => f[5]!.split(','));
    return { opts, writable: lines[lines.length - 1]! };
  } finally {
    d.cleanup();
  }
}

describe('container root mount flags (runc)', { skip, timeout: 60_000 }, () => {
  test('default: the root is read-only, nosuid and nodev', async () => {
    const r = await rootMounts(false);
    assert.ok(r.opts.length >= 1, 'a mount at /');
    for (const o of r.opts) assert.ok(o.includes('nosuid') && o.includes('nodev'), `root mounted ${o}`);
    assert.ok(r.opts.some((o) => o.includes('ro')), `read-only: ${JSON.stringify(r.opts)}`);
    assert.equal(r.writable, 'READONLY');
  });

  test('allow-setuid: read-only and nodev, without nosuid', async () => {
    const r = await rootMounts(true);
    assert.ok(r.opts.every((o) => !o.includes('nosuid') && o.includes('nodev')), JSON.stringify(r.opts));
    assert.equal(r.writable, 'READONLY');
  });
});
