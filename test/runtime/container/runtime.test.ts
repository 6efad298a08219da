// The container runtime against real runc, as root: the shared runtime contract, isolation,
// users, limits, images (directory, squashfs loop mounts with and without offset) and bad
// input. The rootless case is in rootless.test.ts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, symlinkSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { createProcessRuntime, type ExitInfo, type LaunchRequest, type Runtime } from '../../../src/runtime/index.js';
import { LocalAgent } from '../../../src/agent/index.js';
import { Recorder, taskOf } from '../../agent/contract.js';
import { job } from '../../engine/builders.js';
import { createContainerRuntime, defaultContainerRuntime, type ContainerImage } from '../../../src/runtime/container/index.js';
import { runtimeContract } from '../contract.js';
import { repoRoot, sharedDir, tempDir } from '../../helpers.js';
import { emptyConfig, fakePrepare, makeBusyboxRootfs, makeSquashfs, mountsUnder } from './fixtures.js';

const isRoot = process.getuid?.() === 0;
const REAL_SIF = join(sharedDir, 'sif-testdata', 'images', 'one-group.sif');
const skip = isRoot ? false : 'these tests run runc as root (rootless.test.ts covers unprivileged users)';

const work = tempDir('warren-ctr-');
const rootfs = join(work.dir, 'rootfs');
const stateDir = join(work.dir, 'state');
let images: Record<string, Omit<ContainerImage, 'uri'>> = {};
let rt: Runtime;

before(() => {
  if (!isRoot) return;
  makeBusyboxRootfs(rootfs);
  const sq = makeSquashfs(rootfs, join(work.dir, 'busybox.sqfs'));
  const off = makeSquashfs(rootfs, join(work.dir, 'busybox-offset.img'), 4096);
  // A "SIF" whose squashfs is damaged in the middle of its superblock.
  const bad = join(work.dir, 'corrupt.sqfs');
  writeFileSync(bad, readFileSync(sq.file));
  const fd = openSync(bad, 'r+');
  writeSync(fd, Buffer.from([0xff, 0xff]), 0, 2, 20); // compression id
  closeSync(fd);
  const truncated = join(work.dir, 'truncated.sqfs');
  writeFileSync(truncated, readFileSync(sq.file).subarray(0, Math.floor(sq.size / 2)));
  images = {
    busybox: { kind: 'rootfs', path: rootfs, config: { env: ['IMAGE_VAR=from-image', 'GREETING=image'], workingDir: '/work', labels: {} } },
    'busybox-entry': { kind: 'rootfs', path: rootfs, config: { env: [], entrypoint: ['/bin/echo', 'from-entrypoint'], cmd: ['and-cmd'], labels: {} } },
    'busybox.sqfs': { kind: 'sif', path: sq.file, config: emptyConfig() },
    'busybox-offset': { kind: 'sif', path: off.file, partition: { offset: off.offset, size: off.size }, config: emptyConfig() },
    'corrupt.sqfs': { kind: 'sif', path: bad, config: emptyConfig() },
    'truncated.sqfs': { kind: 'sif', path: truncated, config: emptyConfig() },
    'not-an-image': { kind: 'sif', path: join(work.dir, 'rootfs', 'etc', 'passwd'), config: emptyConfig() },
  };
  rt = createContainerRuntime({ stateDir, prepareImage: fakePrepare(images) });
});

after(() => {
  if (isRoot) {
    // Nothing may be left behind: no runc containers, no mounts, no bundles, no cgroups.
    const left = existsSync(join(stateDir, 'runc')) ? readdirSync(join(stateDir, 'runc')) : [];
    const mounts = mountsUnder(work.dir);
    work.cleanup();
    assert.deepEqual(left, [], 'runc containers left behind');
    assert.deepEqual(mounts, [], 'mounts left behind');
  } else work.cleanup();
});

function req(dir: string, argv: string[], extra: Partial<LaunchRequest> = {}, container: Partial<NonNullable<LaunchRequest['container']>> = {}): LaunchRequest {
  return {
    id: `wf1/job-${Math.random().toString(36).slice(2, 8)}/1/1`,
    argv,
    env: {},
    cwd: dir,
    stdoutPath: join(dir, 'out.log'),
    stderrPath: join(dir, 'err.log'),
    mounts: [{ host: dir, target: dir, readOnly: false }],
    ...extra,
    container: { image: 'busybox', ...container },
  };
}

async function runIn(argv: string[], extra: Partial<LaunchRequest> = {}, container: Partial<NonNullable<LaunchRequest['container']>> = {}) {
  const d = tempDir();
  try {
    const info = await rt.launch(req(d.dir, argv, extra, container)).exited;
    const out = existsSync(join(d.dir, 'out.log')) ? readFileSync(join(d.dir, 'out.log'), 'utf8') : '';
    const err = existsSync(join(d.dir, 'err.log')) ? readFileSync(join(d.dir, 'err.log'), 'utf8') : '';
    return { info, out, err, dir: d.dir };
  } finally {
    d.cleanup();
  }
}

function bundlesLeft(): string[] {
  const b = join(stateDir, 'bundles');
  return existsSync(b) ? readdirSync(b) : [];
}

describe('container runtime (runc, root)', { skip }, () => {
  runtimeContract({
    name: 'container',
    runtime: () => rt,
    prepare: (r) => ({ ...r, container: { image: 'busybox' } }),
    sh: '/bin/sh',
  });

  test('isolation: own PID namespace (the job is PID 1), hostname, read-only rootfs, writable /tmp', { timeout: 30_000 }, async () => {
    const r = await runIn(['/bin/sh', '-c', 'echo pid=$$; hostname; touch /etc/x 2>/dev/null && echo rootfs-rw || echo rootfs-ro; echo hi > /tmp/t && cat /tmp/t; ps -o pid,comm | wc -l'], {}, { hostname: 'node-a1' });
    assert.equal(r.info.reason, 'exit', JSON.stringify(r.info) + r.err);
    const lines = r.out.trim().split('\n');
    assert.equal(lines[0], 'pid=1');
    assert.equal(lines[1], 'node-a1');
    assert.equal(lines[2], 'rootfs-ro');
    assert.equal(lines[3], 'hi');
    assert.ok(Number(lines[4]) <= 4, `only the job's processes are visible: ${lines[4]} lines of ps`);
  });

  test('hostname defaults to the job name; /proc/1/cmdline is the job', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const info = await rt.launch(req(d.dir, ['/bin/sh', '-c', `hostname; cat /proc/1/cmdline > ${d.dir}/cmdline; echo`])).exited;
      assert.equal(info.reason, 'exit');
      assert.match(readFileSync(join(d.dir, 'out.log'), 'utf8'), /^job-[a-z0-9]+\n\n$/);
      assert.equal(readFileSync(join(d.dir, 'cmdline'), 'utf8'), `/bin/sh\0-c\0hostname; cat /proc/1/cmdline > ${d.dir}/cmdline; echo\0`);
    } finally {
      d.cleanup();
    }
  });

  test('mounts: volume bind-mounted read-write, read-only mounts refuse writes, node files not visible', { timeout: 30_000 }, async () => {
    const d = tempDir();
    const ro = tempDir();
    try {
      writeFileSync(join(ro.dir, 'input.txt'), 'data\n');
      const info = await rt.launch(
        req(d.dir, ['/bin/sh', '-c', `echo written > ${d.dir}/result; cat /data/input.txt; echo no > /data/x 2>/dev/null || echo ro-refused; ls /work/main 2>/dev/null || echo node-hidden; grep " /data " /proc/mounts | sort -u | wc -l`], {
          mounts: [
            { host: d.dir, target: d.dir, readOnly: false },
            { host: ro.dir, target: '/data', readOnly: true },
          ],
        }),
      ).exited;
      assert.equal(info.reason, 'exit', JSON.stringify(info));
      assert.equal(readFileSync(join(d.dir, 'result'), 'utf8'), 'written\n');
      // One distinct /data mount (runc's read-only remount of `/` lists each mount twice, identically).
      assert.equal(readFileSync(join(d.dir, 'out.log'), 'utf8'), 'data\nro-refused\nnode-hidden\n1\n');
      assert.ok(!existsSync(join(ro.dir, 'x')));
      assert.ok(!existsSync(join(rootfs, 'data')), 'the image directory was not written to (mount point came from an overlay)');
    } finally {
      d.cleanup();
      ro.cleanup();
    }
  });

  test('runs as the calling user by default; as root only when asked, with minimal capabilities', { timeout: 30_000 }, async () => {
    const uid = process.getuid!();
    const gid = process.getgid!();
    const a = await runIn(['/bin/sh', '-c', 'id -u; id -g; grep CapEff /proc/self/status']);
    const [u, g, capsA] = a.out.trim().split('\n');
    assert.equal(Number(u), uid);
    assert.equal(Number(g), gid);
    // Root inside (asRoot) keeps only the minimal set; the default user has none at all.
    const b = await runIn(['/bin/sh', '-c', 'id -u; grep CapEff /proc/self/status'], {}, { asRoot: true });
    const [ub, capsB] = b.out.trim().split('\n');
    assert.equal(ub, '0');
    assert.equal(BigInt(`0x${capsB!.split(/\s+/)[1]}`), (1n << 29n) | (1n << 5n) | (1n << 10n)); // AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert.equal(BigInt(`0x${capsA!.split(/\s+/)[1]}`), 0n);
  });

  test('env: image env, then job env over it, PATH default; cwd inside a mount, else the image workingDir', { timeout: 30_000 }, async () => {
    const r = await runIn(['/bin/sh', '-c', 'echo $IMAGE_VAR $GREETING $JOB_VAR; echo $PATH; pwd'], { env: { GREETING: 'job', JOB_VAR: 'j' } });
    const [vars, path, cwd] = r.out.trim().split('\n');
    assert.equal(vars, 'from-image job j');
    assert.match(path!, /\/bin/);
    assert.equal(cwd, r.dir);
    const d = tempDir();
    try {
      const info = await rt.launch({ ...req(d.dir, ['/bin/pwd']), cwd: '/not/mounted' }).exited;
      assert.equal(info.reason, 'exit');
      assert.equal(readFileSync(join(d.dir, 'out.log'), 'utf8'), '/work\n');
    } finally {
      d.cleanup();
    }
  });

  test('a script written on the node (outside the mounts) is bound in and run', { timeout: 30_000 }, async () => {
    const scripts = join(work.dir, 'scripts'); // outside every mount of the job
    mkdirSync(scripts, { recursive: true });
    const script = join(scripts, 'job.sh');
    writeFileSync(script, '#!/bin/sh\necho "script ran as $(id -u) with $1"\n', { mode: 0o755 });
    const r = await runIn([script, 'arg1']);
    assert.equal(r.info.reason, 'exit', JSON.stringify(r.info) + r.err);
    assert.equal(r.out, `script ran as ${process.getuid!()} with arg1\n`);
  });

  test('default image preparation (src/image): a root file system directory given by path', { timeout: 30_000 }, async () => {
    const real = createContainerRuntime({ stateDir });
    const d = tempDir();
    try {
      const r = { ...req(d.dir, ['/bin/sh', '-c', 'echo real-image']), container: { image: rootfs } };
      await real.check!(r);
      const info = await real.launch(r).exited;
      assert.equal(info.reason, 'exit', JSON.stringify(info));
      assert.equal(readFileSync(join(d.dir, 'out.log'), 'utf8'), 'real-image\n');
      const missing = await real.launch({ ...r, container: { image: join(d.dir, 'no-such-rootfs') } }).exited;
      assert.equal(missing.reason, 'spawn-error');
      assert.match(missing.message ?? '', /no-such-rootfs/);
    } finally {
      d.cleanup();
    }
  });

  test('through the local agent: process and container jobs side by side', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const agent = new LocalAgent({ home: d.dir, cores: 2, process: createProcessRuntime(), container: rt });
      const rec = new Recorder(agent);
      const vol = { name: 'out', reference: 'volume://user/persistent/out', kind: 'persistent' as const, persistentName: 'out', ingress: [], egress: [] };
      const mounts = [{ volume: 'out', location: '/out', readOnly: false }];
      const ctr = taskOf(job('ctr', { image: { uri: 'busybox' }, command: ['/bin/sh', '-c', 'hostname > /out/ctr.txt'], mounts }));
      const host = taskOf(job('host', { command: ['/bin/sh', '-c', 'hostname > "$WARREN_VOLUME_OUT/host.txt"'], mounts }));
      ctr.volumes = [vol];
      host.volumes = [vol];
      agent.submit(ctr);
      agent.submit(host);
      await rec.ended(2);
      assert.equal(rec.exited.get(ctr.attemptId)!.reason, 'exit', JSON.stringify(rec.exited.get(ctr.attemptId)));
      assert.equal(rec.exited.get(host.attemptId)!.reason, 'exit');
      assert.deepEqual(rec.started.map((s) => s.attemptId).sort(), [ctr.attemptId, host.attemptId].sort());
      assert.equal(readFileSync(join(d.dir, 'volumes', 'out', 'ctr.txt'), 'utf8'), 'ctr\n');
      assert.notEqual(readFileSync(join(d.dir, 'volumes', 'out', 'host.txt'), 'utf8'), 'ctr\n');
    } finally {
      d.cleanup();
    }
  });

  test('empty argv runs the image entrypoint + cmd', { timeout: 30_000 }, async () => {
    const r = await runIn([], {}, { image: 'busybox-entry' });
    assert.equal(r.out, 'from-entrypoint and-cmd\n');
  });

  test('exit codes and signals are reported', { timeout: 30_000 }, async () => {
    assert.deepEqual(
      [(await runIn(['/bin/true'])).info.exitCode, (await runIn(['/bin/sh', '-c', 'exit 42'])).info.exitCode],
      [0, 42],
    );
    // A job that dies of a signal (runc reports 128+N) is reported as that signal.
    const c = await runIn(['/bin/sh', '-c', '/bin/sh -c "kill -USR1 \\$\\$"; exit $?']);
    assert.equal(c.info.reason, 'signal');
    assert.equal(c.info.signal, 'SIGUSR1');
  });

  test('stdout and stderr go to their files, appended', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      writeFileSync(join(d.dir, 'out.log'), 'before\n');
      await rt.launch(req(d.dir, ['/bin/sh', '-c', 'echo o1; echo e1 >&2; echo o2'])).exited;
      assert.equal(readFileSync(join(d.dir, 'out.log'), 'utf8'), 'before\no1\no2\n');
      assert.equal(readFileSync(join(d.dir, 'err.log'), 'utf8'), 'e1\n');
    } finally {
      d.cleanup();
    }
  });

  test('/dev/shm is sized; network isolation leaves only loopback', { timeout: 30_000 }, async () => {
    const r = await runIn(['/bin/sh', '-c', 'df -k /dev/shm | tail -1; ls /sys/class/net'], {}, { shmBytes: 256 * 2 ** 20, isolateNetwork: true });
    const [df, ...ifs] = r.out.trim().split('\n');
    assert.equal(df!.split(/\s+/)[1], String(256 * 1024));
    assert.deepEqual(ifs, ['lo']);
    const shared = await runIn(['/bin/sh', '-c', 'ls /sys/class/net | wc -l; cat /etc/resolv.conf']);
    const [nifs, ...resolv] = shared.out.split('\n');
    assert.ok(Number(nifs) >= 1);
    // Sharing the node's network means using its resolver; isolated jobs keep the image's.
    if (existsSync('/etc/resolv.conf')) assert.equal(resolv.join('\n'), readFileSync('/etc/resolv.conf', 'utf8'));
    const iso = await runIn(['/bin/cat', '/etc/resolv.conf'], {}, { isolateNetwork: true });
    assert.equal(iso.out, '');
  });

  test('memory: a job that allocates past its limit is killed and reported as out of memory', { timeout: 30_000 }, async () => {
    // dd writes 200 MiB into the container's /dev/shm (tmpfs pages are charged to its cgroup).
    const r = await runIn(['/bin/dd', 'if=/dev/zero', 'of=/dev/shm/fill', 'bs=1M', 'count=200'], { memoryBytes: 32 * 2 ** 20 }, { shmBytes: 512 * 2 ** 20 });
    assert.equal(r.info.reason, 'oom', JSON.stringify(r.info));
    assert.match(r.info.message ?? '', /out of memory/);
    assert.match(r.info.message ?? '', /32(\.0)?MiB/);
    const ok = await runIn(['/bin/dd', 'if=/dev/zero', 'of=/dev/shm/fill', 'bs=1M', 'count=8'], { memoryBytes: 64 * 2 ** 20, cores: 1 });
    assert.equal(ok.info.reason, 'exit', JSON.stringify(ok.info));
    assert.equal(ok.info.exitCode, 0);
  });

  test('cpu limit: cores become a CFS quota', { timeout: 30_000 }, async () => {
    const r = await runIn(['/bin/sh', '-c', 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max'], { cores: 0.5 });
    assert.match(r.out, /^(50000|50000 100000)$/m);
  });

  test('squashfs image: loop-mounted read-only, plain and at an offset (as in a SIF)', { timeout: 30_000 }, async () => {
    for (const image of ['busybox.sqfs', 'busybox-offset']) {
      const r = await runIn(['/bin/sh', '-c', 'grep " / " /proc/mounts | head -1; ls /bin/busybox'], {}, { image });
      assert.equal(r.info.reason, 'exit', `${image}: ${JSON.stringify(r.info)} ${r.err}`);
      assert.match(r.out, /\/bin\/busybox/);
    }
    assert.deepEqual(mountsUnder(stateDir), []);
    const loops = execFileSync('losetup', ['-a'], { encoding: 'utf8' });
    assert.ok(!loops.includes(work.dir), `loop devices left: ${loops}`);
  });

  test('a real SIF (reference test data): its system partition is loop-mounted at its offset', { timeout: 30_000, skip: existsSync(REAL_SIF) ? false : `${REAL_SIF} missing (../shared)` }, async () => {
    // The image subsystem owns SIF parsing; this test reads the descriptor table itself
    // (layout of the SIF spec) so that it does not depend on that code.
    const sifPartition = async (path: string) => {
      const d = readFileSync(path);
      const total = Number(d.readBigInt64LE(88));
      const off = Number(d.readBigInt64LE(96));
      for (let i = 0; i < total; i++) {
        const o = off + i * 585;
        if (d.readInt32LE(o) === 0x4004 && d[o + 4] === 1 && d.readInt32LE(o + 201) === 1 && d.readInt32LE(o + 205) === 2) {
          return { offset: Number(d.readBigInt64LE(o + 17)), size: Number(d.readBigInt64LE(o + 25)) };
        }
      }
      throw new Error('no system partition');
    };
    const sifRt = createContainerRuntime({ stateDir, sifPartition, prepareImage: async (uri) => ({ uri, kind: 'sif', path: REAL_SIF, config: emptyConfig() }) });
    const d = tempDir();
    try {
      // The image holds only hello.txt: bring a shell in through a read-only file mount.
      const r = req(d.dir, ['/bin/busybox', 'cat', '/hello.txt'], {
        mounts: [
          { host: d.dir, target: d.dir, readOnly: false },
          { host: '/bin/busybox', target: '/bin/busybox', readOnly: true },
        ],
      }, { image: 'one-group.sif' });
      await sifRt.check!(r);
      const info = await sifRt.launch(r).exited;
      assert.equal(info.reason, 'exit', `${JSON.stringify(info)} ${existsSync(join(d.dir, 'err.log')) ? readFileSync(join(d.dir, 'err.log'), 'utf8') : ''}`);
      assert.equal(info.exitCode, 0);
      assert.match(readFileSync(join(d.dir, 'out.log'), 'utf8'), /\S/);
    } finally {
      d.cleanup();
    }
    assert.deepEqual(mountsUnder(stateDir), []);
  });

  test('a real SIF through the default wiring (src/image prepares it and finds its partition); damaged SIFs refused', { timeout: 30_000, skip: existsSync(REAL_SIF) ? false : `${REAL_SIF} missing (../shared)` }, async () => {
    const real = createContainerRuntime({ stateDir });
    const d = tempDir();
    try {
      const mk = (image: string) =>
        req(d.dir, ['/bin/busybox', 'cat', '/hello.txt'], { mounts: [{ host: d.dir, target: d.dir, readOnly: false }, { host: '/bin/busybox', target: '/bin/busybox', readOnly: true }] }, { image });
      const info = await real.launch(mk(REAL_SIF)).exited;
      assert.equal(info.reason, 'exit', JSON.stringify(info));
      assert.match(readFileSync(join(d.dir, 'out.log'), 'utf8'), /\S/);
      // The squashfs inside a sound SIF is damaged: refused by the runtime's superblock check.
      const bad = join(d.dir, 'bad-squashfs.sif');
      const buf = readFileSync(REAL_SIF);
      const sq = buf.indexOf('hsqs');
      buf.writeUInt16LE(0xffff, sq + 20);
      writeFileSync(bad, buf);
      await assert.rejects(real.check!(mk(bad)), (e: Error & { code?: string }) => e.code === 'RUNTIME_IMAGE_CORRUPT' && e.message.includes(bad));
      // A truncated SIF: the image subsystem's reader refuses it, naming the image.
      const cut = join(d.dir, 'truncated.sif');
      writeFileSync(cut, readFileSync(REAL_SIF).subarray(0, 6000));
      const marker = join(d.dir, 'ran');
      const t = await real.launch({ ...mk(cut), argv: ['/bin/busybox', 'touch', marker] }).exited;
      assert.equal(t.reason, 'spawn-error');
      assert.match(t.message ?? '', /truncated\.sif/);
      assert.match(t.message ?? '', /hint/);
      assert.ok(!existsSync(marker));
    } finally {
      d.cleanup();
    }
    assert.deepEqual(mountsUnder(stateDir), []);
  });

  test('corrupt or truncated images: a clear error naming the image, nothing started', { timeout: 30_000 }, async () => {
    for (const image of ['corrupt.sqfs', 'truncated.sqfs', 'not-an-image']) {
      const d = tempDir();
      try {
        await assert.rejects(rt.check!(req(d.dir, ['/bin/true'], {}, { image })), (e: Error & { code?: string; hint?: string }) => {
          assert.equal(e.code, 'RUNTIME_IMAGE_CORRUPT');
          assert.match(e.message, new RegExp(image.replace('.', '\\.')));
          assert.match(e.hint ?? '', /again/);
          return true;
        });
        const marker = join(d.dir, 'ran');
        const info = await rt.launch(req(d.dir, ['/bin/touch', marker], {}, { image })).exited;
        assert.equal(info.reason, 'spawn-error');
        assert.match(info.message ?? '', /RUNTIME_IMAGE_CORRUPT/);
        assert.ok(!existsSync(marker), 'nothing ran');
        assert.ok(!existsSync(join(d.dir, 'out.log')), 'no log was even opened');
      } finally {
        d.cleanup();
      }
    }
    assert.deepEqual(bundlesLeft(), []);
  });

  test('runc missing: check() and launch() say so and what to install', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const bad = createContainerRuntime({ stateDir, prepareImage: fakePrepare(images), runcPath: join(d.dir, 'no-runc') });
      await assert.rejects(bad.check!(req(d.dir, ['/bin/true'])), (e: Error & { code?: string; hint?: string }) => {
        assert.equal(e.code, 'RUNTIME_RUNC_MISSING');
        assert.match(e.message, /image busybox/);
        assert.match(e.hint ?? '', /apt-get install runc/);
        return true;
      });
      const info = await bad.launch(req(d.dir, ['/bin/true'])).exited;
      assert.equal(info.reason, 'spawn-error');
      assert.match(info.message ?? '', /runc not found/);
    } finally {
      d.cleanup();
    }
  });

  test('an untrusted image (trust hook refuses it) is not started', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const seen: string[] = [];
      const strict = createContainerRuntime({
        stateDir,
        prepareImage: fakePrepare(images),
        trust: async (img) => {
          seen.push(img.uri);
          throw Object.assign(new Error(`image ${img.uri} is not signed by a trusted key`), { name: 'WarrenError', code: 'SIF_UNTRUSTED', hint: 'sign it' });
        },
      });
      const r = req(d.dir, ['/bin/touch', join(d.dir, 'ran')]);
      await assert.rejects(strict.check!(r), /not signed/);
      const info = await strict.launch(r).exited;
      assert.equal(info.reason, 'spawn-error');
      assert.match(info.message ?? '', /SIF_UNTRUSTED.*not signed/);
      assert.ok(!existsSync(join(d.dir, 'ran')));
      assert.deepEqual(seen, ['busybox', 'busybox'], 'a refused image is checked again each time');
      const ok: string[] = [];
      const trusting = createContainerRuntime({ stateDir, prepareImage: fakePrepare(images), trust: async (img) => void ok.push(img.uri) });
      await trusting.check!(r);
      assert.equal((await trusting.launch(r).exited).reason, 'exit');
      assert.deepEqual(ok, ['busybox', 'busybox'], 'the hook answers at check() and at launch: the runtime caches no trust result (by size, mtime, inode or anything)');
    } finally {
      d.cleanup();
    }
  });

  test('the image the trust hook hands back (the verified copy) is what gets mounted, at the partition it names', { timeout: 60_000 }, async () => {
    const d = tempDir();
    try {
      // The job names one file; the hook answers with another (as the trust gate answers with its
      // verified copy): only the second may be mounted.
      const named = makeBusyboxRootfs(join(d.dir, 'named'));
      writeFileSync(join(named, 'marker'), 'named\n');
      const pinned = makeBusyboxRootfs(join(d.dir, 'pinned'));
      writeFileSync(join(pinned, 'marker'), 'pinned\n');
      const a = makeSquashfs(named, join(d.dir, 'named.img'));
      const b = makeSquashfs(pinned, join(d.dir, 'pinned.img'), 8192);
      const calls: string[] = [];
      const gated = createContainerRuntime({
        stateDir,
        prepareImage: fakePrepare({ img: { kind: 'sif', path: a.file, config: emptyConfig() } }),
        trust: async (img) => {
          calls.push(img.path);
          return { ...img, path: b.file, partition: { offset: b.offset, size: b.size }, contentDigest: 'sha256:' + 'ab'.repeat(32) };
        },
      });
      const out = join(d.dir, 'out.txt');
      for (let i = 0; i < 2; i++) {
        const r: LaunchRequest = { ...req(d.dir, ['/bin/cat', '/marker']), container: { image: 'img' }, stdoutPath: out, stderrPath: out };
        const info = await gated.launch(r).exited;
        assert.equal(info.reason, 'exit', info.message);
      }
      assert.equal(readFileSync(out, 'utf8'), 'pinned\npinned\n');
      assert.deepEqual(calls, [a.file, a.file], 'asked at every launch');
    } finally {
      d.cleanup();
    }
  });

  test('no squashfs tools and no mount: a SIF cannot be opened, the error says what to install', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      // A tool path with runc only: no mount(8), squashfuse or unsquashfs.
      mkdirSync(join(d.dir, 'bin'));
      symlinkSync(execFileSync('sh', ['-c', 'command -v runc || echo /usr/sbin/runc'], { encoding: 'utf8' }).trim(), join(d.dir, 'bin', 'runc'));
      const bare = createContainerRuntime({ stateDir, prepareImage: fakePrepare(images), toolPath: join(d.dir, 'bin') });
      await assert.rejects(bare.check!(req(d.dir, ['/bin/true'], {}, { image: 'busybox.sqfs' })), /RUNTIME_SQUASHFS_MISSING|squashfs-tools/);
      await assert.rejects(bare.check!(req(d.dir, ['/bin/true'], {}, { image: 'busybox.sqfs' })), (e: Error & { hint?: string }) => /apt-get install squashfuse squashfs-tools/.test(e.hint ?? ''));
      const info = await bare.launch(req(d.dir, ['/bin/true'], {}, { image: 'busybox.sqfs' })).exited;
      assert.equal(info.reason, 'spawn-error');
      assert.match(info.message ?? '', /busybox\.sqfs/);
      assert.match(info.message ?? '', /squashfs-tools/);
    } finally {
      d.cleanup();
    }
    assert.deepEqual(bundlesLeft(), []);
  });

  test('GPUs asked for on a node without them: a clear error, nothing started', { timeout: 30_000, skip: existsSync('/dev/nvidia0') ? 'this node has NVIDIA GPUs (gpu-check.sh covers them)' : false }, async () => {
    const d = tempDir();
    try {
      const r = req(d.dir, ['/bin/touch', join(d.dir, 'ran')], {}, { gpus: [0] });
      await assert.rejects(rt.check!(r), (e: Error & { code?: string; hint?: string }) => e.code === 'RUNTIME_GPU_MISSING' && /\/dev\/nvidia0/.test(e.message) && /nvidia-smi/.test(e.hint ?? ''));
      const info = await rt.launch(r).exited;
      assert.equal(info.reason, 'spawn-error');
      assert.match(info.message ?? '', /RUNTIME_GPU_MISSING/);
      assert.ok(!existsSync(join(d.dir, 'ran')));
    } finally {
      d.cleanup();
    }
    assert.deepEqual(bundlesLeft(), []);
  });

  test('a command missing in the image is a spawn error naming it; a missing image is reported', { timeout: 30_000 }, async () => {
    const r = await runIn(['/no/such/prog']);
    assert.equal(r.info.reason, 'spawn-error');
    assert.match(r.info.message ?? '', /\/no\/such\/prog/);
    const m = await runIn(['/bin/true'], {}, { image: 'unknown-image' });
    assert.equal(m.info.reason, 'spawn-error');
    assert.match(m.info.message ?? '', /unknown-image/);
  });

  test('started resolves with the pid once running, null when it never started; defaultContainerRuntime', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const ok = rt.launch(req(d.dir, ['/bin/true']));
      const pid = await ok.started!;
      assert.ok(typeof pid === 'number' && pid > 0);
      assert.equal(ok.pid, pid);
      await ok.exited;
      const bad = rt.launch(req(d.dir, ['/bin/true'], {}, { image: 'corrupt.sqfs' }));
      assert.equal(await bad.started!, null);
      assert.equal((await bad.exited).reason, 'spawn-error');
      const home = join(d.dir, 'home');
      assert.equal(defaultContainerRuntime(home, { toolPath: join(d.dir, 'empty') }), undefined);
      const def = defaultContainerRuntime(home, { prepareImage: fakePrepare(images) })!;
      assert.equal(def.name, 'container');
      const info = await def.launch(req(d.dir, ['/bin/true'])).exited;
      assert.equal(info.reason, 'exit', JSON.stringify(info));
      assert.deepEqual(readdirSync(join(home, 'containers', 'bundles')), []);
    } finally {
      d.cleanup();
    }
  });

  test('kill before the container started: nothing runs, nothing is left', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const t = rt.launch(req(d.dir, ['/bin/touch', join(d.dir, 'ran')]));
      t.kill('canceled');
      const info = await t.exited;
      assert.equal(info.reason, 'canceled');
      assert.ok(!existsSync(join(d.dir, 'ran')));
    } finally {
      d.cleanup();
    }
  });

  test('after a crash of Warren, the next runtime removes what it left (container, mounts, cgroups, bundle)', { timeout: 60_000 }, async () => {
    const d = tempDir();
    const crashState = join(d.dir, 'state');
    const self = fileURLToPath(import.meta.url);
    const child = self.replace(/runtime\.test\.(ts|js)$/, 'crash-child.$1');
    const proc = spawn(process.execPath, [...(child.endsWith('.ts') ? ['--import', 'tsx'] : []), child, crashState, images['busybox.sqfs']!.path, d.dir], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        proc.stdout!.on('data', (b: Buffer) => {
          buf += b.toString();
          if (buf.includes('\n')) resolve(buf.trim());
        });
        proc.on('exit', (c) => reject(new Error(`child exited ${c}: ${buf}`)));
      });
      assert.match(line, /^started \d+$/);
      const runcRoot = join(crashState, 'runc');
      // `started` is runc's spawn; wait until runc has created the container.
      for (let i = 0; i < 100 && !(existsSync(runcRoot) && readdirSync(runcRoot).length); i++) await new Promise((r) => setTimeout(r, 50));
      const [cid] = readdirSync(runcRoot);
      assert.ok(cid, 'container running');
      proc.kill('SIGKILL');
      await new Promise((r) => proc.on('exit', r));
      // The crash left it all: a running container, mounts, a cgroup, the bundle.
      assert.ok(mountsUnder(join(crashState, 'bundles')).length >= 2, 'loop mount and overlay still there');
      assert.ok(readdirSync(join(crashState, 'bundles')).includes(cid!));
      const warnings: string[] = [];
      const next = createContainerRuntime({ stateDir: crashState, prepareImage: fakePrepare(images), onWarning: (w) => warnings.push(w) });
      const info = await next.launch(req(d.dir, ['/bin/true'])).exited;
      assert.equal(info.reason, 'exit');
      assert.deepEqual(readdirSync(runcRoot), []);
      assert.deepEqual(mountsUnder(crashState), []);
      assert.deepEqual(readdirSync(join(crashState, 'bundles')), []);
      assert.ok(!existsSync(`/sys/fs/cgroup/memory/warren/${cid}`));
      assert.match(warnings.join('\n'), new RegExp(cid!));
    } finally {
      proc.kill('SIGKILL');
      // If the sweep failed, do its job so the temp dir can go.
      for (const m of mountsUnder(d.dir).reverse()) spawnSync('umount', ['-l', m]);
      d.cleanup();
    }
  });

  test('cleanup: after many runs no containers, mounts, bundles or cgroups remain', { timeout: 60_000 }, async () => {
    await Promise.all([
      runIn(['/bin/true'], {}, { image: 'busybox.sqfs' }),
      runIn(['/bin/sleep', '5'], { timeoutSec: 0.3 }),
      runIn(['/bin/true'], { memoryBytes: 64 * 2 ** 20 }),
      runIn(['/bin/false']),
    ]);
    assert.deepEqual(bundlesLeft(), []);
    const list = execFileSync('runc', ['--root', join(stateDir, 'runc'), 'list', '-q'], { encoding: 'utf8' });
    assert.equal(list.trim(), '');
    assert.deepEqual(mountsUnder(stateDir), []);
    const cg = '/sys/fs/cgroup/memory/warren';
    if (existsSync(cg)) assert.deepEqual(readdirSync(cg, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name.startsWith('w-')).map((e) => e.name), []);
  });
});
