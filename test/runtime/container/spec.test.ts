// Pure parts of the container runtime: OCI config generation, GPU pass-through config from
// fake device and library lists, ldconfig/nvidia-smi parsing, squashfs superblock checks.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildOciSpec,
  mergeEnv,
  sanitizeHostname,
  mountpointsInRootfs,
  parseLdconfig,
  parseGpuUuids,
  gpuDevices,
  checkSquashfs,
  locateSquashfs,
  GPU_LIB_DIR,
  GPU_BIN_DIR,
  ROOT_CAPABILITIES,
  rootMountOptions,
  type OciSpecInput,
} from '../../../src/runtime/container/index.js';
import { tempDir } from '../../helpers.js';

const base = (over: Partial<OciSpecInput> = {}): OciSpecInput => ({
  rootfs: '/state/b/rootfs',
  argv: ['/bin/app', '--x'],
  env: ['PATH=/usr/bin:/bin', 'A=1'],
  cwd: '/data',
  uid: 1000,
  gid: 1000,
  asRoot: false,
  hostname: 'align',
  mounts: [
    { host: '/vol/in/sub', target: '/data/sub', readOnly: true },
    { host: '/vol/in', target: '/data', readOnly: false },
  ],
  shmBytes: 64 * 2 ** 20,
  isolateNetwork: false,
  ...over,
});

describe('buildOciSpec', () => {
  test('process, root, hostname, namespaces', () => {
    const s = buildOciSpec(base());
    assert.deepEqual(s.process.args, ['/bin/app', '--x']);
    assert.deepEqual(s.process.user, { uid: 1000, gid: 1000 });
    assert.equal(s.process.cwd, '/data');
    assert.equal(s.process.terminal, false);
    assert.equal(s.process.noNewPrivileges, true);
    assert.deepEqual(s.process.capabilities.effective, []);
    // Read-only by readonlyPaths '/', which keeps the nosuid,nodev of the first mount (see rootMountOptions).
    assert.deepEqual(s.root, { path: '/state/b/rootfs', readonly: false });
    assert.equal(s.linux.readonlyPaths[0], '/');
    assert.equal(s.hostname, 'align');
    assert.deepEqual(s.linux.namespaces.map((n) => n.type).sort(), ['ipc', 'mount', 'pid', 'uts']);
    assert.equal(s.linux.uidMappings, undefined);
    assert.equal(s.linux.resources, undefined);
    assert.ok(s.linux.maskedPaths.includes('/proc/kcore'));
  });

  test('is deterministic and does not alias its input', () => {
    const i = base();
    const a = buildOciSpec(i);
    a.process.args.push('changed');
    assert.deepEqual(buildOciSpec(i), buildOciSpec(base()));
    assert.deepEqual(i.argv, ['/bin/app', '--x']);
  });

  test('mounts: system mounts first, /dev/shm sized, /tmp tmpfs, volumes by depth with ro/rw', () => {
    const s = buildOciSpec(base({ shmBytes: 2 * 2 ** 30 }));
    const dests = s.mounts.map((m) => m.destination);
    assert.deepEqual(dests.slice(0, 5), ['/', '/proc', '/dev', '/dev/pts', '/dev/mqueue']);
    const shm = s.mounts.find((m) => m.destination === '/dev/shm')!;
    assert.equal(shm.type, 'tmpfs');
    assert.ok(shm.options!.includes(`size=${2 * 2 ** 30}`));
    assert.equal(s.mounts.find((m) => m.destination === '/tmp')!.type, 'tmpfs');
    assert.ok(dests.indexOf('/data') < dests.indexOf('/data/sub'), 'parent volume mounted before the one inside it');
    const data = s.mounts.find((m) => m.destination === '/data')!;
    assert.deepEqual([data.source, data.type], ['/vol/in', 'none']);
    assert.ok(data.options!.includes('rbind') && data.options!.includes('rw'));
    assert.ok(s.mounts.find((m) => m.destination === '/data/sub')!.options!.includes('ro'));
  });

  test('a volume at /tmp or /dev/shm replaces the default tmpfs', () => {
    const s = buildOciSpec(base({ mounts: [{ host: '/scratch', target: '/tmp', readOnly: false }, { host: '/big', target: '/dev/shm/', readOnly: false }] }));
    assert.deepEqual(s.mounts.filter((m) => m.destination === '/tmp').map((m) => m.type), ['none']);
    assert.deepEqual(s.mounts.filter((m) => m.destination === '/dev/shm').map((m) => m.type), ['none']);
  });

  test('asRoot: uid 0 with the minimal capability set', () => {
    const s = buildOciSpec(base({ uid: 0, gid: 0, asRoot: true }));
    assert.deepEqual(s.process.user, { uid: 0, gid: 0 });
    assert.deepEqual(s.process.capabilities.bounding, ROOT_CAPABILITIES);
    assert.deepEqual(s.process.capabilities.ambient, []);
  });

  test('node files (resolver) bound read-only at their paths, unless a volume is there', () => {
    const s = buildOciSpec(base({ nodeFiles: ['/etc/resolv.conf', '/etc/hosts'] }));
    const r = s.mounts.find((m) => m.destination === '/etc/resolv.conf')!;
    assert.equal(r.source, '/etc/resolv.conf');
    assert.ok(r.options!.includes('ro'));
    const v = buildOciSpec(base({ nodeFiles: ['/etc/hosts'], mounts: [{ host: '/my/hosts', target: '/etc/hosts', readOnly: true }] }));
    assert.deepEqual(v.mounts.filter((m) => m.destination === '/etc/hosts').map((m) => m.source), ['/my/hosts']);
  });

  test('network isolation adds a network namespace', () => {
    assert.ok(buildOciSpec(base({ isolateNetwork: true })).linux.namespaces.some((n) => n.type === 'network'));
    assert.ok(!buildOciSpec(base()).linux.namespaces.some((n) => n.type === 'network'));
  });

  test('rootless: user namespace mapping the node user, /sys bound, no cgroup mount', () => {
    const s = buildOciSpec(base({ rootless: { hostUid: 1234, hostGid: 2345 } }));
    assert.ok(s.linux.namespaces.some((n) => n.type === 'user'));
    assert.deepEqual(s.linux.uidMappings, [{ containerID: 1000, hostID: 1234, size: 1 }]);
    assert.deepEqual(s.linux.gidMappings, [{ containerID: 1000, hostID: 2345, size: 1 }]);
    assert.equal(s.mounts.find((m) => m.destination === '/sys')!.type, 'none');
    assert.ok(!s.mounts.some((m) => m.destination === '/sys/fs/cgroup'));
    assert.ok(!s.mounts.find((m) => m.destination === '/dev/pts')!.options!.includes('gid=5'));
    const asRoot = buildOciSpec(base({ uid: 0, gid: 0, asRoot: true, rootless: { hostUid: 1234, hostGid: 2345 } }));
    assert.deepEqual(asRoot.linux.uidMappings, [{ containerID: 0, hostID: 1234, size: 1 }]);
  });

  test('resources: memory with swap equal to it, CPU quota from cores, cgroups path', () => {
    const s = buildOciSpec(base({ cgroupsPath: '/warren/x/ctr', resources: { memoryBytes: 2 ** 30, limitSwap: true, cores: 2.5 } }));
    assert.equal(s.linux.cgroupsPath, '/warren/x/ctr');
    assert.deepEqual(s.linux.resources!.memory, { limit: 2 ** 30, swap: 2 ** 30 });
    assert.deepEqual(s.linux.resources!.cpu, { quota: 250_000, period: 100_000 });
    const noSwap = buildOciSpec(base({ resources: { memoryBytes: 2 ** 30 } }));
    assert.deepEqual(noSwap.linux.resources!.memory, { limit: 2 ** 30 });
  });

  test('env: PATH added when missing', () => {
    assert.ok(buildOciSpec(base({ env: ['A=1'] })).process.env[0]!.startsWith('PATH=/usr/local/sbin'));
    assert.deepEqual(buildOciSpec(base()).process.env, ['PATH=/usr/bin:/bin', 'A=1']);
  });

  test('GPUs: device nodes + cgroup allow rules, driver libraries and tools bound read-only, visible devices set', () => {
    const gpu = {
      devices: [
        { path: '/dev/nvidia1', major: 195, minor: 1, fileMode: 0o666 },
        { path: '/dev/nvidiactl', major: 195, minor: 255, fileMode: 0o666 },
        { path: '/dev/nvidia-uvm', major: 508, minor: 0, fileMode: 0o666 },
      ],
      libraries: [
        { name: 'libcuda.so.1', path: '/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15' },
        { name: 'libnvidia-ml.so.1', path: '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.15' },
      ],
      binaries: [{ name: 'nvidia-smi', path: '/usr/bin/nvidia-smi' }],
      visibleDevices: 'GPU-1111',
    };
    const s = buildOciSpec(base({ gpu, env: ['PATH=/bin', 'LD_LIBRARY_PATH=/opt/lib'] }));
    assert.deepEqual(s.linux.devices!.map((d) => [d.path, d.type, d.major, d.minor]), [
      ['/dev/nvidia1', 'c', 195, 1],
      ['/dev/nvidiactl', 'c', 195, 255],
      ['/dev/nvidia-uvm', 'c', 508, 0],
    ]);
    const rules = s.linux.resources!.devices!;
    assert.deepEqual(rules[0], { allow: false, access: 'rwm' });
    assert.ok(rules.some((r) => r.allow && r.major === 195 && r.minor === 1));
    assert.ok(rules.some((r) => r.allow && r.major === 1 && r.minor === 3), '/dev/null stays allowed');
    const lib = s.mounts.find((m) => m.destination === `${GPU_LIB_DIR}/libcuda.so.1`)!;
    assert.equal(lib.source, '/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15');
    assert.ok(lib.options!.includes('ro'));
    assert.ok(s.mounts.some((m) => m.destination === `${GPU_BIN_DIR}/nvidia-smi` && m.options!.includes('ro')));
    assert.ok(s.process.env.includes('CUDA_VISIBLE_DEVICES=GPU-1111'));
    assert.ok(s.process.env.includes('NVIDIA_VISIBLE_DEVICES=GPU-1111'));
    assert.ok(s.process.env.includes(`LD_LIBRARY_PATH=/opt/lib:${GPU_LIB_DIR}`));
    assert.ok(s.process.env.includes(`PATH=/bin:${GPU_BIN_DIR}`));
    const noEnv = buildOciSpec(base({ gpu, env: [] }));
    assert.ok(noEnv.process.env.includes(`PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${GPU_BIN_DIR}`));
    assert.ok(noEnv.process.env.includes(`LD_LIBRARY_PATH=${GPU_LIB_DIR}`));
    // Rootless: runc binds device nodes itself; no device cgroup rules.
    const rl = buildOciSpec(base({ gpu, rootless: { hostUid: 1, hostGid: 1 } }));
    assert.equal(rl.linux.resources, undefined);
    assert.equal(rl.linux.devices!.length, 3);
  });

  test('root: mounted nosuid,nodev and read-only by default; allow-setuid drops nosuid and no_new_privs only', () => {
    for (const input of [base(), base({ rootless: { hostUid: 1000, hostGid: 1000 } }), base({ asRoot: true })]) {
      const s = buildOciSpec(input);
      const root = s.mounts[0]!;
      assert.deepEqual(root, { destination: '/', type: 'none', source: '/state/b/rootfs', options: ['rbind', 'nosuid', 'nodev'] });
      assert.deepEqual(rootMountOptions(false), root.options);
      assert.equal(s.process.noNewPrivileges, true);
      assert.equal(s.linux.readonlyPaths[0], '/', 'the root is made read-only after the mounts');
      // No mount of the spec lets setuid bits or device nodes of an image work, except /dev (runc's device tmpfs).
      for (const m of s.mounts) {
        if (m.destination === '/dev' || m.destination === '/dev/pts') continue;
        assert.ok(m.options?.includes('nosuid') && m.options.includes('nodev'), `${m.destination}: ${m.options}`);
      }
    }
    const allowed = buildOciSpec(base({ allowSetuid: true }));
    assert.deepEqual(allowed.mounts[0]!.options, ['rbind', 'nodev']);
    assert.equal(allowed.process.noNewPrivileges, false);
    assert.equal(allowed.linux.readonlyPaths[0], '/');
    // Volumes stay nosuid,nodev even when setuid is allowed in the image.
    assert.ok(allowed.mounts.filter((m) => m.destination.startsWith('/data')).every((m) => m.options!.includes('nosuid') && m.options!.includes('nodev')));
  });

  test('mountpointsInRootfs: mount points inside tmpfs/sysfs need not exist in the image', () => {
    const s = buildOciSpec(base({ mounts: [{ host: '/a', target: '/tmp/job', readOnly: false }, { host: '/b', target: '/scratch', readOnly: false }, { host: '/c', target: '/scratch/in', readOnly: false }] }));
    const need = mountpointsInRootfs(s);
    assert.ok(need.includes('/scratch'));
    assert.ok(need.includes('/scratch/in'), 'inside a bind mount: created in the bound directory, so it counts');
    assert.ok(!need.includes('/tmp/job'));
    assert.ok(!need.includes('/dev/shm') && !need.includes('/sys/fs/cgroup'));
    assert.ok(need.includes('/proc') && need.includes('/dev') && need.includes('/tmp'));
  });
});

describe('helpers', () => {
  test('mergeEnv: later wins, first position kept, values with =', () => {
    assert.deepEqual(mergeEnv(['A=1', 'B=x=y', 'C'], { A: '2', D: '4' }), ['A=2', 'B=x=y', 'C=', 'D=4']);
  });

  test('sanitizeHostname', () => {
    assert.equal(sanitizeHostname('Align_Reads.v2'), 'align-reads-v2');
    assert.equal(sanitizeHostname('___'), 'warren');
    assert.equal(sanitizeHostname('x'.repeat(80)).length, 63);
  });

  test('parseLdconfig: driver libraries for this ABI, first per name', () => {
    const text = [
      '1234 libs found in cache `/etc/ld.so.cache\'',
      '\tlibnvidia-ml.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnvidia-ml.so.1',
      '\tlibnvidia-ml.so.1 (libc6) => /lib/i386-linux-gnu/libnvidia-ml.so.1',
      '\tlibcuda.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcuda.so.1',
      '\tlibcuda.so.1 (libc6,x86-64) => /usr/local/lib/libcuda.so.1',
      '\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6',
      '\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12',
      '\tlibnvcuvid.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnvcuvid.so.1',
    ].join('\n');
    assert.deepEqual(parseLdconfig(text, 'x86-64'), [
      { name: 'libnvidia-ml.so.1', path: '/lib/x86_64-linux-gnu/libnvidia-ml.so.1' },
      { name: 'libcuda.so.1', path: '/lib/x86_64-linux-gnu/libcuda.so.1' },
      { name: 'libnvcuvid.so.1', path: '/lib/x86_64-linux-gnu/libnvcuvid.so.1' },
    ]);
  });

  test('gpuDevices: allocated nodes + control devices; UUIDs when known, else 0..n-1', () => {
    const nodes = new Map([
      ['/dev/nvidia0', { major: 195, minor: 0, mode: 0o666 }],
      ['/dev/nvidia2', { major: 195, minor: 2, mode: 0o666 }],
      ['/dev/nvidiactl', { major: 195, minor: 255, mode: 0o666 }],
    ]);
    const uuids = parseGpuUuids('0, GPU-aaa\n1, GPU-bbb\n2, GPU-ccc\n');
    const a = gpuDevices([2], nodes, uuids);
    assert.deepEqual(a.devices.map((d) => d.path), ['/dev/nvidia2', '/dev/nvidiactl']);
    assert.equal(a.visible, 'GPU-ccc');
    assert.deepEqual(a.missing, []);
    const b = gpuDevices([0, 2], nodes, new Map());
    assert.equal(b.visible, '0,1');
    assert.deepEqual(gpuDevices([5], nodes, uuids).missing, ['/dev/nvidia5']);
  });
});

describe('squashfs checks', () => {
  const sb = (over: (b: Buffer) => void = () => {}): Buffer => {
    const b = Buffer.alloc(4096);
    b.writeUInt32LE(0x73717368, 0);
    b.writeUInt32LE(131072, 12);
    b.writeUInt16LE(1, 20);
    b.writeUInt16LE(17, 22);
    b.writeUInt16LE(4, 28);
    b.writeBigUInt64LE(4096n, 40);
    over(b);
    return b;
  };
  const check = (buf: Buffer, offset = 0, size = buf.length - offset): Error | undefined => {
    const d = tempDir();
    try {
      const f = join(d.dir, 'img.sif');
      writeFileSync(f, buf);
      checkSquashfs(f, { offset, size }, 'oras://reg/img:1');
      return undefined;
    } catch (e) {
      return e as Error;
    } finally {
      d.cleanup();
    }
  };

  test('a sound superblock passes, also at an offset', () => {
    assert.equal(check(sb()), undefined);
    assert.equal(check(Buffer.concat([Buffer.alloc(512), sb()]), 512), undefined);
  });

  test('damage is RUNTIME_IMAGE_CORRUPT naming the image and what to do', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['magic', sb((b) => b.writeUInt32LE(0, 0)), /bad magic/],
      ['version', sb((b) => b.writeUInt16LE(3, 28)), /version 3/],
      ['block size', sb((b) => b.writeUInt16LE(9, 22)), /block size/],
      ['compression', sb((b) => b.writeUInt16LE(99, 20)), /compression/],
      ['truncated', sb((b) => b.writeBigUInt64LE(1n << 30n, 40)), /truncated/],
      ['short', sb().subarray(0, 50), /no complete superblock/],
    ];
    for (const [what, buf, re] of cases) {
      const e = check(buf) as Error & { code?: string; hint?: string; exitCode?: number };
      assert.ok(e, `${what}: accepted`);
      assert.equal(e.code, 'RUNTIME_IMAGE_CORRUPT', what);
      assert.match(e.message, /oras:\/\/reg\/img:1/);
      assert.match(e.message, re, what);
      assert.match(e.hint ?? '', /again/);
      assert.equal(e.exitCode, 2);
    }
  });

  test('locateSquashfs: plain squashfs at 0, SIF via the injected reader, anything else corrupt', async () => {
    const d = tempDir();
    try {
      const plain = join(d.dir, 'a.sqfs');
      writeFileSync(plain, sb());
      assert.deepEqual(await locateSquashfs(plain, 'a'), { offset: 0, size: 4096 });
      const sif = join(d.dir, 'b.sif');
      const head = Buffer.alloc(8192);
      head.write('#!/usr/bin/env run-singularity\n', 0);
      head.write('SIF_MAGIC', 32);
      sb().copy(head, 4096);
      writeFileSync(sif, head);
      await assert.rejects(locateSquashfs(sif, 'b'), /no SIF reader/);
      assert.deepEqual(await locateSquashfs(sif, 'b', async () => ({ offset: 4096, size: 4096 })), { offset: 4096, size: 4096 });
      await assert.rejects(locateSquashfs(sif, 'b', async () => ({ offset: 4096, size: 99999 })), /RUNTIME_IMAGE_CORRUPT|outside/);
      const junk = join(d.dir, 'c.sif');
      writeFileSync(junk, 'hello');
      await assert.rejects(locateSquashfs(junk, 'c'), (e: Error & { code?: string }) => e.code === 'RUNTIME_IMAGE_CORRUPT' && /neither a SIF nor a squashfs/.test(e.message));
      await assert.rejects(locateSquashfs(join(d.dir, 'nope.sif'), 'n'), (e: Error & { code?: string }) => e.code === 'RUNTIME_IMAGE_NOT_FOUND');
    } finally {
      d.cleanup();
    }
  });
});
