import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNodeImage, findNodeImage, listNodeImages, removeNodeImages, nodeImagesDir, compareKernelVersions, type NodeImage } from '../../src/provision/index.js';
import { buildSif } from '../../src/image/index.js';
import type { WarrenError } from '../../src/common/index.js';
import { registryAvailable, startRegistry, type LoopbackRegistry } from '../image/oci/registry.js';
import { pushBusybox } from '../image/oci/fixtures.js';

const VER = '6.1.0-test-amd64';
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** A small Debian-like root file system with a kernel (just bytes: node-build does not boot it). */
function makeTree(root: string, kernels: string[] = [VER]): void {
  for (const d of ['etc', 'boot', 'usr/bin', 'proc/1', 'sys/kernel', 'dev', 'tmp', 'root']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/os-release'), 'ID=debian\nVERSION_ID=12\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 });
  writeFileSync(join(root, 'usr/bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  writeFileSync(join(root, 'proc/1/status'), 'left out\n');
  writeFileSync(join(root, 'sys/kernel/x'), 'left out\n');
  writeFileSync(join(root, 'dev/fake'), 'left out\n');
  chmodSync(join(root, 'tmp'), 0o1777);
  symlinkSync('usr/bin', join(root, 'bin'));
  for (const v of kernels) {
    writeFileSync(join(root, `boot/vmlinuz-${v}`), Buffer.from(`kernel ${v} `.repeat(1000)));
    writeFileSync(join(root, `boot/config-${v}`), `CONFIG_X=y # ${v}\n`);
    mkdirSync(join(root, `lib/modules/${v}/kernel`), { recursive: true });
    writeFileSync(join(root, `lib/modules/${v}/kernel/net.ko`), `module of ${v}\n`);
  }
  symlinkSync(`boot/vmlinuz-${kernels[0]}`, join(root, 'vmlinuz'));
}

/** Every entry of a tree: path, type, mode bits, and a file's content hash or a link's target. */
function listing(root: string): string[] {
  const out = execFileSync('find', ['.', '-mindepth', '1', '-printf', '%P %y %m %l\\n'], { cwd: root }).toString().split('\n').filter(Boolean);
  return out
    .map((l) => {
      const p = l.split(' ')[0]!;
      const st = statSync(join(root, p), { throwIfNoEntry: false });
      return l.includes(' f ') && st ? `${l.trimEnd()} ${sha(readFileSync(join(root, p)))}` : l.trimEnd();
    })
    .sort();
}

function unpack(archive: string, into: string): void {
  mkdirSync(into, { recursive: true });
  execFileSync('/bin/sh', ['-c', `gzip -dc '${archive}' | cpio --quiet -idm --no-absolute-filenames`], { cwd: into });
}

/** What is left in the images directory besides image directories and the identity cache. */
function leftovers(dataDir: string): string[] {
  const d = nodeImagesDir(dataDir);
  return existsSync(d) ? readdirSync(d).filter((n) => !/^[0-9a-f]{64}$/.test(n) && n !== '.identities.json') : [];
}

describe('node images (warren image node-build)', () => {
  const base = mkdtempSync(join(tmpdir(), 'warren-nodeimage-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  const data = join(base, 'data');
  const tree = join(base, 'tree');
  makeTree(tree);
  let first: NodeImage & { reused: boolean };

  it('builds from a root file system directory: the kernel, the whole tree as cpio.gz (proc, sys, dev left empty), image.json', async () => {
    const logs: string[] = [];
    first = await buildNodeImage({ source: tree, dataDir: data, log: (s) => logs.push(s) });
    assert.equal(first.reused, false);
    assert.match(first.digest, /^sha256:[0-9a-f]{64}$/);
    assert.match(first.sourceDigest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(first.source, tree);
    assert.equal(first.kernelVersion, VER);
    assert.equal(first.dir, join(nodeImagesDir(data), first.digest.slice(7)));
    assert.deepEqual(readdirSync(first.dir).sort(), ['image.json', 'rootfs.cpio.gz', 'vmlinuz']);
    const kernel = readFileSync(first.kernelPath);
    assert.deepEqual(kernel, readFileSync(join(tree, `boot/vmlinuz-${VER}`)));
    assert.equal(first.kernelSha256, sha(kernel));
    assert.equal(first.kernelSize, kernel.length);
    const rootfs = readFileSync(first.rootfsPath);
    assert.equal(first.rootfsSha256, sha(rootfs));
    assert.equal(first.rootfsSize, rootfs.length);
    const { reused: _r, ...stored } = first;
    assert.deepEqual(JSON.parse(readFileSync(join(first.dir, 'image.json'), 'utf8')), stored);
    assert.ok(!logs.some((l) => l.startsWith('warning')), logs.join('\n'));
    // Unpacked with real cpio: the same tree, less the contents of proc, sys and dev.
    const x = join(base, 'x1');
    unpack(first.rootfsPath, x);
    const want = listing(tree).filter((l) => !/^(proc|sys|dev)\//.test(l));
    assert.deepEqual(listing(x), want);
    assert.equal(statSync(join(x, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(statSync(join(x, 'etc/shadow')).mode & 0o777, 0o640);
    // Owned by root in the archive (as the node runs it), whoever built it.
    const owners = execFileSync('/bin/sh', ['-c', `gzip -dc '${first.rootfsPath}' | cpio --quiet -tv`]).toString();
    assert.ok(owners.split('\n').filter(Boolean).every((l) => / root +root /.test(l)), owners);
    assert.deepEqual(leftovers(data), []);
  });

  it('an unchanged tree is answered from image.json: reused, nothing repacked', async () => {
    const before = statSync(first.rootfsPath).mtimeMs;
    const t0 = process.hrtime.bigint();
    const again = await buildNodeImage({ source: `file://${tree}`, dataDir: data });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.equal(again.reused, true);
    assert.equal(again.digest, first.digest);
    assert.equal(again.builtAt, first.builtAt);
    assert.equal(statSync(first.rootfsPath).mtimeMs, before);
    assert.ok(ms < 5000, `${ms} ms`); // bounded; the speed itself is the bench's (bench/provision/nodebuild.ts)
  });

  it('a changed file makes a new digest and a new image; findNodeImage gives the newest, listNodeImages both', async () => {
    writeFileSync(join(tree, 'etc/os-release'), 'ID=debian\nVERSION_ID=12.1\n');
    const next = await buildNodeImage({ source: tree, dataDir: data });
    assert.equal(next.reused, false);
    assert.notEqual(next.digest, first.digest);
    const x = join(base, 'x2');
    unpack(next.rootfsPath, x);
    assert.equal(readFileSync(join(x, 'etc/os-release'), 'utf8'), 'ID=debian\nVERSION_ID=12.1\n');
    assert.equal((await findNodeImage(data, `file://${tree}/`))?.digest, next.digest);
    assert.deepEqual((await listNodeImages(data)).map((i) => i.digest), [next.digest, first.digest]);
    // A change of mode only is a change too.
    chmodSync(join(tree, 'usr/bin/tool'), 0o700);
    const moded = await buildNodeImage({ source: tree, dataDir: data });
    assert.notEqual(moded.digest, next.digest);
    assert.equal(await findNodeImage(data, join(base, 'elsewhere')), undefined);
  });

  it('--force builds the same digest again in place', async () => {
    const cur = await buildNodeImage({ source: tree, dataDir: data });
    assert.equal(cur.reused, true);
    const forced = await buildNodeImage({ source: tree, dataDir: data, force: true });
    assert.equal(forced.reused, false);
    assert.equal(forced.digest, cur.digest);
    assert.ok(forced.builtAt >= cur.builtAt);
    assert.equal(forced.rootfsSha256, sha(readFileSync(forced.rootfsPath)));
    assert.deepEqual(leftovers(data), []);
  });

  it('an image directory that lost its archive is not listed, and is built again in place', async () => {
    const cur = await buildNodeImage({ source: tree, dataDir: data });
    rmSync(cur.rootfsPath);
    assert.equal((await listNodeImages(data)).some((i) => i.digest === cur.digest), false);
    const again = await buildNodeImage({ source: tree, dataDir: data });
    assert.equal(again.reused, false);
    assert.equal(again.digest, cur.digest);
    assert.equal(again.rootfsSha256, sha(readFileSync(again.rootfsPath)));
    assert.deepEqual(leftovers(data), []);
  });

  it('no kernel in the image: PROVISION_NO_KERNEL naming the image and the packages, nothing written', async () => {
    const bare = join(base, 'bare');
    mkdirSync(join(bare, 'etc'), { recursive: true });
    writeFileSync(join(bare, 'etc/hostname'), 'x\n');
    const d2 = join(base, 'data-nokernel');
    await assert.rejects(buildNodeImage({ source: bare, dataDir: d2 }), (e: WarrenError) => {
      assert.equal(e.code, 'PROVISION_NO_KERNEL');
      assert.match(e.message, new RegExp(`image ${bare}: it has no kernel`));
      assert.match(e.hint ?? '', /linux-image-amd64/);
      assert.match(e.hint ?? '', /`kernel` for Rocky/);
      assert.match(e.hint ?? '', /--kernel/);
      return true;
    });
    assert.equal(existsSync(nodeImagesDir(d2)), false);
    assert.deepEqual(await listNodeImages(d2), []);
  });

  it('a directory that holds the data directory is refused (PROVISION_SOURCE_INVALID): it would pack its own archive', async () => {
    const outer = join(base, 'outer');
    makeTree(outer);
    const inner = join(outer, 'var/lib/warren');
    await assert.rejects(buildNodeImage({ source: outer, dataDir: inner }), (e: WarrenError) => e.code === 'PROVISION_SOURCE_INVALID' && e.message.includes(inner));
    assert.equal(existsSync(inner), false);
  });

  it('several kernels: the newest by version; --kernel VER picks one; an unknown version or file is refused', async () => {
    const multi = join(base, 'multi');
    makeTree(multi, ['6.9.0-1-amd64', '6.10.0-1-amd64', '5.10.0-30-amd64']);
    const logs: string[] = [];
    const img = await buildNodeImage({ source: multi, dataDir: data, log: (s) => logs.push(s) });
    assert.equal(img.kernelVersion, '6.10.0-1-amd64');
    assert.ok(logs.some((l) => /taking the newest, 6\.10\.0-1-amd64/.test(l)), logs.join('\n'));
    const old = await buildNodeImage({ source: multi, dataDir: data, kernel: '5.10.0-30-amd64' });
    assert.equal(old.kernelVersion, '5.10.0-30-amd64');
    assert.notEqual(old.digest, img.digest);
    assert.deepEqual(readFileSync(old.kernelPath), readFileSync(join(multi, 'boot/vmlinuz-5.10.0-30-amd64')));
    await assert.rejects(buildNodeImage({ source: multi, dataDir: data, kernel: '4.19.0' }), (e: WarrenError) => e.code === 'PROVISION_NO_KERNEL' && /no kernel 4\.19\.0 \(it has 6\.10\.0-1-amd64, 6\.9\.0-1-amd64, 5\.10\.0-30-amd64\)/.test(e.message));
    await assert.rejects(buildNodeImage({ source: multi, dataDir: data, kernel: join(base, 'nope/vmlinuz-1') }), (e: WarrenError) => e.code === 'PROVISION_NO_KERNEL' && /does not exist/.test(e.message));
    assert.ok(compareKernelVersions('6.10.0', '6.9.2') > 0 && compareKernelVersions('6.1.0-27', '6.1.0-3') > 0 && compareKernelVersions('6.1.0', '6.1.0') === 0);
  });

  it('--kernel FILE: a kernel from this machine; its modules missing from the image is a warning', async () => {
    const k = join(base, 'vmlinuz-6.7.7-custom');
    writeFileSync(k, Buffer.from('custom kernel bytes'));
    const logs: string[] = [];
    const img = await buildNodeImage({ source: tree, dataDir: data, kernel: k, log: (s) => logs.push(s) });
    assert.equal(img.kernelVersion, '6.7.7-custom');
    assert.deepEqual(readFileSync(img.kernelPath), readFileSync(k));
    assert.ok(logs.some((l) => /^warning: the image has no \/lib\/modules\/6\.7\.7-custom/.test(l)), logs.join('\n'));
    // A bzImage says its version in its boot header (the string at 0x200 + the word at 0x20e).
    const bz = Buffer.alloc(8192);
    bz.write('HdrS', 0x202, 'latin1');
    bz.writeUInt16LE(0x1000 - 0x200, 0x20e);
    bz.write('6.9.9-synthetic (root@build) #1 SMP\0', 0x1000, 'latin1');
    const bzFile = join(base, 'bzImage');
    writeFileSync(bzFile, bz);
    const fromHeader = await buildNodeImage({ source: tree, dataDir: data, kernel: bzFile });
    assert.equal(fromHeader.kernelVersion, '6.9.9-synthetic');
    const noName = join(base, 'bzimage');
    writeFileSync(noName, 'not a kernel');
    await assert.rejects(buildNodeImage({ source: tree, dataDir: data, kernel: noName }), (e: WarrenError) => e.code === 'PROVISION_NO_KERNEL' && /cannot tell its version/.test(e.message));
  });

  it('concurrent builds of one digest: one wins, both answer it, no corruption, no leftovers; stale builds are swept', async () => {
    const d3 = join(base, 'data-race');
    mkdirSync(join(nodeImagesDir(d3), '.build-999999999-deadbeef', 'tree'), { recursive: true });
    const [a, b] = await Promise.all([buildNodeImage({ source: tree, dataDir: d3 }), buildNodeImage({ source: tree, dataDir: d3 })]);
    assert.equal(a.digest, b.digest);
    const imgs = await listNodeImages(d3);
    assert.equal(imgs.length, 1);
    assert.equal(imgs[0]!.rootfsSha256, sha(readFileSync(imgs[0]!.rootfsPath)));
    assert.deepEqual(leftovers(d3), []);
  });

  it('a build killed half way (SIGKILL) leaves no image; the next build sweeps its leftovers and builds whole', { timeout: 120_000 }, async () => {
    const big = join(base, 'big');
    makeTree(big);
    mkdirSync(join(big, 'var/data'), { recursive: true });
    for (let i = 0; i < 24; i++) writeFileSync(join(big, `var/data/blob${i}`), randomBytes(2 << 20)); // incompressible: pigz takes a while
    const d7 = join(base, 'data-crash');
    const child = spawn(process.execPath, [join(import.meta.dirname, 'nodeimage-child.js'), big, d7], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    const dir = nodeImagesDir(d7);
    const deadline = Date.now() + 60_000;
    let partial: string | undefined;
    while (!partial && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      const b = existsSync(dir) ? readdirSync(dir).find((n) => n.startsWith('.build-')) : undefined;
      const p = b ? join(dir, b, 'rootfs.cpio.gz.partial') : undefined;
      if (p && existsSync(p) && statSync(p).size > 0) partial = p;
    }
    assert.ok(partial, 'the build never began writing its archive');
    child.kill('SIGKILL');
    await exited;
    assert.deepEqual(await listNodeImages(d7), []);
    assert.equal(readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n)).length, 0, 'no image directory after the crash');
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('.build-')).length, 1);
    const img = await buildNodeImage({ source: big, dataDir: d7 });
    assert.equal(img.reused, false);
    assert.equal(img.rootfsSha256, sha(readFileSync(img.rootfsPath)));
    assert.deepEqual(leftovers(d7), []);
  });

  it('node-rm: by digest prefix, by source; unknown or ambiguous is PROVISION_IMAGE_UNKNOWN', async () => {
    const all = await listNodeImages(data);
    const multi = all.filter((i) => i.source === join(base, 'multi'));
    assert.equal(multi.length, 2);
    const gone = await removeNodeImages(data, multi[0]!.digest.slice(7, 7 + 12));
    assert.deepEqual(gone.map((i) => i.digest), [multi[0]!.digest]);
    assert.equal(existsSync(multi[0]!.dir), false);
    const bySource = await removeNodeImages(data, `file://${join(base, 'multi')}`);
    assert.deepEqual(bySource.map((i) => i.digest), [multi[1]!.digest]);
    await assert.rejects(removeNodeImages(data, join(base, 'multi')), (e: WarrenError) => e.code === 'PROVISION_IMAGE_UNKNOWN' && /no node image/.test(e.message));
    await assert.rejects(removeNodeImages(data, 'sha256:' + '0'.repeat(64)), (e: WarrenError) => e.code === 'PROVISION_IMAGE_UNKNOWN');
    assert.equal((await listNodeImages(data)).length, all.length - 2);
    assert.deepEqual(leftovers(data), []);
  });

  describe('from a SIF', () => {
    const sifTree = join(base, 'siftree');
    const sif = join(base, 'node.sif');
    const d4 = join(base, 'data-sif');
    before(async () => {
      makeTree(sifTree);
      await buildSif({ rootfs: sifTree, out: sif });
    });

    it('reads its squashfs partition: the same tree in the archive, the kernel from its /boot', async () => {
      const img = await buildNodeImage({ source: sif, dataDir: d4 });
      assert.equal(img.reused, false);
      assert.equal(img.source, sif);
      assert.equal(img.sourceDigest, `sha256:${sha(readFileSync(sif))}`);
      assert.equal(img.kernelVersion, VER);
      assert.deepEqual(readFileSync(img.kernelPath), readFileSync(join(sifTree, `boot/vmlinuz-${VER}`)));
      const x = join(base, 'x-sif');
      unpack(img.rootfsPath, x);
      const want = listing(sifTree).filter((l) => !/^(proc|sys|dev)\//.test(l) && !/^\.singularity\.d/.test(l));
      assert.deepEqual(listing(x).filter((l) => !/^\.singularity\.d|^(environment|singularity|\.exec|\.run|\.shell|\.test) /.test(l)), want);
      assert.deepEqual(leftovers(d4), []);
      // Nothing of the build is still mounted.
      assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(nodeImagesDir(d4)));
    });

    it('unchanged: its identity comes from the cache (no second read), reused', async () => {
      const ids = JSON.parse(readFileSync(join(nodeImagesDir(d4), '.identities.json'), 'utf8')) as Record<string, { digest: string }>;
      assert.equal(Object.keys(ids).length, 1);
      // Planting another digest under the file's key shows the cache is what answers.
      const key = Object.keys(ids)[0]!;
      const again = await buildNodeImage({ source: `file://${sif}`, dataDir: d4 });
      assert.equal(again.reused, true);
      writeFileSync(join(nodeImagesDir(d4), '.identities.json'), JSON.stringify({ [key]: { digest: `sha256:${'1'.repeat(64)}`, at: Date.now() } }));
      const planted = await buildNodeImage({ source: sif, dataDir: d4 });
      assert.equal(planted.sourceDigest, `sha256:${'1'.repeat(64)}`);
      assert.equal(planted.reused, false);
    });

    it('a rebuilt SIF (new content, same path) is read again and built again', async () => {
      writeFileSync(join(sifTree, 'etc/motd'), 'new\n');
      rmSync(sif);
      await buildSif({ rootfs: sifTree, out: sif });
      const img = await buildNodeImage({ source: sif, dataDir: d4 });
      assert.equal(img.reused, false);
      assert.equal(img.sourceDigest, `sha256:${sha(readFileSync(sif))}`);
      const x = join(base, 'x-sif2');
      unpack(img.rootfsPath, x);
      assert.equal(readFileSync(join(x, 'etc/motd'), 'utf8'), 'new\n');
    });

    it('as a user who is not root: extracted with unsquashfs (no loop mount), every entry packed as root\'s', { skip: process.getuid?.() === 0 && existsSync('/usr/sbin/runuser') ? false : 'needs root to run the build as nobody (runuser)', timeout: 120_000 }, () => {
      const own = mkdtempSync(join(tmpdir(), 'warren-nodeimage-nobody-'));
      try {
        chmodSync(own, 0o755);
        const d = join(own, 'data');
        mkdirSync(d, { mode: 0o777 });
        chmodSync(d, 0o777);
        const s2 = join(own, 'node.sif');
        execFileSync('cp', [sif, s2]);
        chmodSync(s2, 0o644);
        const child = join(import.meta.dirname, 'nodeimage-child.js');
        const out = execFileSync('runuser', ['-u', 'nobody', '--', process.execPath, child, s2, d], { encoding: 'utf8', env: { ...process.env, HOME: own } });
        const img = JSON.parse(out) as NodeImage;
        assert.equal(img.kernelVersion, VER);
        const owners = execFileSync('/bin/sh', ['-c', `gzip -dc '${img.rootfsPath}' | cpio --quiet -tv`]).toString();
        assert.ok(owners.split('\n').filter(Boolean).every((l) => / root +root /.test(l)), owners);
        const x = join(own, 'x');
        unpack(img.rootfsPath, x);
        const strip = (ls: string[]) => ls.filter((l) => !/^(proc|sys|dev)\//.test(l) && !/^\.singularity\.d|^(environment|singularity|\.exec|\.run|\.shell|\.test) /.test(l));
        assert.deepEqual(strip(listing(x)), strip(listing(sifTree)));
        assert.deepEqual(readdirSync(nodeImagesDir(d)).filter((n) => n.startsWith('.build-')), [], 'the extraction is removed');
      } finally {
        rmSync(own, { recursive: true, force: true });
      }
    });

    it('a SIF without a kernel: PROVISION_NO_KERNEL, nothing left behind, nothing mounted', async () => {
      const bare = join(base, 'bare-sif-tree');
      mkdirSync(join(bare, 'etc'), { recursive: true });
      writeFileSync(join(bare, 'etc/hostname'), 'x\n');
      const bsif = join(base, 'bare.sif');
      await buildSif({ rootfs: bare, out: bsif });
      const d5 = join(base, 'data-bare-sif');
      await assert.rejects(buildNodeImage({ source: bsif, dataDir: d5 }), (e: WarrenError) => e.code === 'PROVISION_NO_KERNEL' && e.message.includes(`image ${bsif}`));
      assert.deepEqual(await listNodeImages(d5), []);
      assert.deepEqual(leftovers(d5), []);
      assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(nodeImagesDir(d5)));
    });
  });

  describe('from a registry', { skip: registryAvailable() ? false : 'docker-registry is not installed (apt-get install docker-registry)' }, () => {
    let reg: LoopbackRegistry;
    const d6 = join(base, 'data-reg');
    let manifest: string;
    before(async () => {
      reg = await startRegistry();
      const pushed = await pushBusybox(`docker://${reg.host}/test/node:1`, {}, 'amd64', [
        { name: 'boot/', type: 'directory' },
        { name: `boot/vmlinuz-${VER}`, data: 'registry kernel bytes' },
        { name: 'lib/', type: 'directory' },
        { name: 'lib/modules/', type: 'directory' },
        { name: `lib/modules/${VER}/`, type: 'directory' },
        { name: `lib/modules/${VER}/modules.dep`, data: '' },
      ]);
      manifest = pushed.digest;
    });
    after(async () => reg?.stop());

    it('the manifest digest is the identity; the tag resolved again finds the image built', async () => {
      const img = await buildNodeImage({ source: `docker://${reg.host}/test/node:1`, dataDir: d6 });
      assert.equal(img.reused, false);
      assert.equal(img.sourceDigest, manifest);
      assert.equal(img.source, `docker://${reg.host}/test/node:1`);
      assert.equal(readFileSync(img.kernelPath, 'utf8'), 'registry kernel bytes');
      const x = join(base, 'x-reg');
      unpack(img.rootfsPath, x);
      assert.equal(readFileSync(join(x, 'etc/arch'), 'utf8'), 'amd64\n');
      assert.ok(statSync(join(x, 'bin/busybox')).size > 0);
      const again = await buildNodeImage({ source: `docker://${reg.host}/test/node:1`, dataDir: d6 });
      assert.equal(again.reused, true);
      assert.equal(again.digest, img.digest);
      assert.equal((await findNodeImage(d6, `docker://${reg.host}/test/node:1`))?.digest, img.digest);
      // The tag moved to new content: resolved at the registry, it is a new image.
      const moved = await pushBusybox(`docker://${reg.host}/test/node:1`, {}, 'amd64', [
        { name: 'boot/', type: 'directory' },
        { name: `boot/vmlinuz-${VER}`, data: 'registry kernel bytes, v2' },
        { name: 'etc/release', data: 'v2\n' },
      ]);
      assert.notEqual(moved.digest, manifest);
      const next = await buildNodeImage({ source: `docker://${reg.host}/test/node:1`, dataDir: d6 });
      assert.equal(next.reused, false);
      assert.equal(next.sourceDigest, moved.digest);
      assert.equal(readFileSync(next.kernelPath, 'utf8'), 'registry kernel bytes, v2');
      assert.equal((await findNodeImage(d6, `docker://${reg.host}/test/node:1`))?.digest, next.digest);
      assert.equal((await listNodeImages(d6)).length, 2);
    });

    it('the registry out of reach: the image pulled before still answers, with a warning; a reference never pulled fails', async () => {
      await reg.stop();
      const logs: string[] = [];
      const img = await buildNodeImage({ source: `docker://${reg.host}/test/node:1`, dataDir: d6, log: (l) => logs.push(l) });
      assert.equal(img.reused, true);
      assert.equal((await findNodeImage(d6, `docker://${reg.host}/test/node:1`))?.digest, img.digest);
      assert.ok(logs.some((l) => /^warning: the registry of .* cannot be reached/.test(l)), logs.join('\n'));
      await assert.rejects(buildNodeImage({ source: `docker://${reg.host}/test/other:1`, dataDir: d6 }), (e: WarrenError) => e.code === 'IMAGE_REGISTRY_UNREACHABLE');
    });
  });
});

