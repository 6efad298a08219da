// runBuildStep (src/runtime/container/buildstep.ts): one build step inside a tree with real
// runc: root inside, a writable root (or read-only), the node's network and resolv.conf, the
// exit status and the tail of the output; the mount points it had to create are gone after.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOciSpec, DEFAULT_SHM_BYTES } from '../../src/runtime/container/index.js';
import { runBuildStep, lastLines } from '../../src/runtime/index.js';
import { tempDir } from '../helpers.js';
import { buildSkip } from './helpers.js';

const base = { argv: ['/bin/true'], env: [], cwd: '/', uid: 0, gid: 0, asRoot: true, hostname: 'h', mounts: [], shmBytes: DEFAULT_SHM_BYTES, isolateNetwork: false, rootfs: '/r' };

describe('buildOciSpec: writableRoot', () => {
  it('keeps / out of the read-only paths only when asked', () => {
    assert.equal(buildOciSpec(base).linux.readonlyPaths[0], '/');
    const w = buildOciSpec({ ...base, writableRoot: true });
    assert.ok(!w.linux.readonlyPaths.includes('/'));
    assert.ok(w.linux.readonlyPaths.includes('/proc/sys'));
    assert.equal(w.root.readonly, false);
  });
});

describe('runBuildStep', { skip: buildSkip(), timeout: 120_000 }, () => {
  let t: { dir: string; cleanup: () => void };
  let root: string;
  before(() => {
    t = tempDir('warren-buildstep-');
    root = join(t.dir, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    writeFileSync(join(root, 'bin/busybox'), readFileSync('/bin/busybox'), { mode: 0o755 });
    for (const a of ['sh', 'cat', 'id', 'touch', 'ls', 'echo']) symlinkSync('busybox', join(root, 'bin', a));
  });
  after(() => t?.cleanup());

  it('runs as root inside, writes into the tree, sees the node resolv.conf; placeholders are removed', async () => {
    writeFileSync(join(t.dir, 'script.sh'), 'id -u\ncat /etc/resolv.conf >/dev/null && echo resolv-ok\ntouch /written\necho "$GREETING"\n');
    let streamed = '';
    const r = await runBuildStep({
      rootfs: root,
      argv: ['/bin/sh', '/script'],
      env: ['GREETING=hello'],
      binds: [{ host: join(t.dir, 'script.sh'), target: '/script', readOnly: true }],
      stateDir: join(t.dir, 'state'),
      onOutput: (c) => (streamed += c.toString()),
    });
    assert.equal(r.exitCode, 0, r.tail);
    assert.equal(r.tail, streamed);
    const lines = r.tail.trim().split('\n');
    assert.equal(lines[0], '0');
    if (existsSync('/etc/resolv.conf')) assert.ok(lines.includes('resolv-ok'), r.tail);
    assert.equal(lines[lines.length - 1], 'hello');
    assert.ok(existsSync(join(root, 'written')));
    // The bind target and the node files' mount points were not in the tree: removed again.
    assert.equal(existsSync(join(root, 'script')), false);
    assert.equal(existsSync(join(root, 'etc/resolv.conf')), false);
    assert.equal(existsSync(join(root, 'etc/hosts')), false);
    // The runc state and bundle are gone.
    assert.deepEqual(readdirSync(join(t.dir, 'state', 'bundles')), []);
    assert.deepEqual(readdirSync(join(t.dir, 'state', 'runc')), []);
  });

  it('reports the exit status and the last lines', async () => {
    const r = await runBuildStep({ rootfs: root, argv: ['/bin/sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; done; exit 9'], env: [], stateDir: join(t.dir, 'state') });
    assert.equal(r.exitCode, 9);
    assert.equal(lastLines(r.tail, 2), 'line4\nline5');
    assert.equal(r.mode, process.getuid?.() === 0 ? 'root' : 'rootless');
  });

  it('read-only: nothing the step does stays in the tree', async () => {
    for (const d of ['proc', 'sys', 'dev', 'tmp']) mkdirSync(join(root, d), { recursive: true });
    const r = await runBuildStep({ rootfs: root, argv: ['/bin/sh', '-c', 'touch /nope 2>&1; echo tmp-ok > /tmp/x && cat /tmp/x'], env: [], stateDir: join(t.dir, 'state'), readOnly: true });
    assert.equal(r.exitCode, 0, r.tail);
    assert.match(r.tail, /Read-only file system/);
    assert.match(r.tail, /tmp-ok/);
    assert.equal(existsSync(join(root, 'nope')), false);
    assert.equal(lstatSync(join(root, 'tmp')).isDirectory(), true);
    assert.deepEqual(readdirSync(join(root, 'tmp')), [], '/tmp is a tmpfs of the step');
  });

  it('a command that is not in the tree: runc says so', async () => {
    const r = await runBuildStep({ rootfs: root, argv: ['/no/such/program'], env: [], stateDir: join(t.dir, 'state') });
    assert.notEqual(r.exitCode, 0);
    assert.match(r.runcError ?? r.tail, /no such file|not found/i);
  });
});
