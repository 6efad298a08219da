// The Debian node image of the provisioning end-to-end test (test/provision/e2e.test.ts).
//
//   const base = await ensureBaseImage({ log });          // cached: minutes the first time
//   const tree = await prepareNodeTree(base, dir, { log }); // per run: + Node 20 + Warren
//
// ensureBaseImage(): `debootstrap --variant=minbase` of Debian (this machine's suite and
// mirror, /etc/apt/sources.list*) with systemd, udev, iproute2, a Debian kernel and the few
// libraries Node needs, into /var/cache/warren-test/node-<suite>-<key>/ where key is a hash of
// the recipe below (change the recipe, get a new directory). It is built in a temporary
// directory beside it and renamed when whole, so a killed build never leaves a half image;
// concurrent test processes wait for each other on a lock directory. Kernel modules the VM
// never loads (GPUs, sound, wireless, InfiniBand, media...) and documentation are dropped: the
// root file system lives in the VM's memory.
//
// prepareNodeTree(): a copy of the base (cp --reflink=auto) with this machine's Node
// (process.execPath, with any shared library the image lacks) at /opt/warren/node/bin/node and
// this checkout's Warren (bin/, dist/, production node_modules/ with its native addons built
// for this Node, package.json) under /opt/warren. The result is a root file system directory,
// the source `warren image node-build DIR` takes.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { debianMirror } from '../../src/build/index.js';
import { pidAlive } from '../helpers/cleanup.js';
import { repoRoot } from '../helpers.js';

export const CACHE_DIR = process.env.WARREN_TEST_CACHE ?? '/var/cache/warren-test';

/** This machine's Debian suite (bookworm here). */
export function debianSuite(): string {
  try {
    return /^VERSION_CODENAME=(\S+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'bookworm';
  } catch {
    return 'bookworm';
  }
}

/** What the base image is made of; its hash names the cache directory. */
export function recipe(): { suite: string; mirror: string; variant: string; include: string[]; dropModules: string[]; dropPaths: string[]; version: number } {
  return {
    version: 1,
    suite: debianSuite(),
    mirror: debianMirror() ?? 'http://deb.debian.org/debian',
    variant: 'minbase',
    // libstdc++6: Node's one library that minbase lacks (the others are libc's).
    include: ['systemd', 'systemd-sysv', 'udev', 'iproute2', 'linux-image-amd64', 'ca-certificates', 'procps', 'kmod', 'libstdc++6'],
    // Under /lib/modules/<version>/kernel/: what a virtio VM (and a plain compute node) never loads.
    dropModules: ['drivers/gpu', 'drivers/media', 'drivers/infiniband', 'drivers/net/wireless', 'sound', 'drivers/staging', 'drivers/isdn', 'drivers/bluetooth', 'net/bluetooth', 'net/wireless', 'net/mac80211', 'drivers/net/ethernet', 'drivers/usb', 'drivers/hid', 'drivers/input/joystick', 'drivers/input/touchscreen', 'drivers/iio', 'drivers/mfd', 'drivers/video', 'drivers/comedi', 'drivers/net/can', 'drivers/scsi/qla2xxx', 'drivers/scsi/lpfc', 'drivers/scsi/mpt3sas', 'drivers/md', 'fs/ocfs2', 'fs/btrfs', 'fs/xfs', 'fs/gfs2', 'drivers/mtd', 'drivers/watchdog', 'drivers/hwmon', 'drivers/platform/x86', 'drivers/thunderbolt', 'drivers/nfc', 'net/nfc'],
    dropPaths: ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'var/cache/apt/archives', 'var/lib/apt/lists'],
  };
}

export function recipeKey(): string {
  return createHash('sha256').update(JSON.stringify(recipe())).digest('hex').slice(0, 12);
}

export function baseImageDir(): string {
  return join(CACHE_DIR, `node-${debianSuite()}-${recipeKey()}`);
}

function run(cmd: string, args: string[], opts: { log?: (s: string) => void; timeoutMs?: number; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let tail = '';
    const take = (d: Buffer): void => {
      const s = d.toString();
      out += s;
      tail = (tail + s).slice(-4000);
      opts.log?.(s);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} could not start: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code ?? signal}):\n${tail}`));
    });
  });
}

/** Why the base image cannot be built here, or false when it can (or is cached already). */
export async function baseImageUnavailable(): Promise<string | false> {
  if (existsSync(join(baseImageDir(), '.complete'))) return false;
  if (process.getuid?.() !== 0) return 'debootstrap needs root';
  if (!existsSync('/usr/sbin/debootstrap')) return 'debootstrap is not installed (scripts/apt/build.txt; run scripts/setup.sh)';
  const { suite, mirror } = recipe();
  try {
    const r = await fetch(`${mirror.replace(/\/+$/, '')}/dists/${suite}/Release`, { signal: AbortSignal.timeout(15_000) });
    await r.arrayBuffer();
    return r.ok ? false : `the Debian archive ${mirror} answers ${r.status} for dists/${suite}/Release`;
  } catch (e) {
    return `the Debian archive ${mirror} cannot be reached (${(e as Error).message})`;
  }
}

/** Takes the build lock (a directory holding the owner's pid); waits while a live process holds it. */
async function lock(path: string, timeoutMs: number): Promise<() => void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      return () => rmSync(path, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = 0;
      try {
        pid = Number(readFileSync(join(path, 'pid'), 'utf8'));
      } catch {
        // between mkdir and the pid file, or garbage: stale when old
        try {
          if (Date.now() - statSync(path).mtimeMs > 30_000) rmSync(path, { recursive: true, force: true });
        } catch {
          /* gone */
        }
      }
      if (pid && !pidAlive(pid)) rmSync(path, { recursive: true, force: true });
      if (Date.now() > end) throw new Error(`${path} is held by process ${pid} for more than ${timeoutMs / 1000} s`);
      await sleep(1000);
    }
  }
}

/** The cached base image's directory, built first if needed (see the top of this file). */
export async function ensureBaseImage(opts: { log?: (s: string) => void } = {}): Promise<string> {
  const dir = baseImageDir();
  if (existsSync(join(dir, '.complete'))) return dir;
  mkdirSync(CACHE_DIR, { recursive: true });
  const unlock = await lock(`${dir}.lock`, 1_200_000);
  try {
    if (existsSync(join(dir, '.complete'))) return dir;
    // What a killed build left.
    for (const e of readdirSync(CACHE_DIR)) if (e.startsWith(`.tmp-node-`)) rmSync(join(CACHE_DIR, e), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    const r = recipe();
    const tmp = join(CACHE_DIR, `.tmp-node-${recipeKey()}-${process.pid}`);
    try {
      await run('debootstrap', [`--variant=${r.variant}`, `--include=${r.include.join(',')}`, r.suite, tmp, r.mirror], { log: opts.log, timeoutMs: 1_200_000 });
      const modules = join(tmp, 'lib/modules');
      for (const v of readdirSync(modules)) {
        for (const m of r.dropModules) rmSync(join(modules, v, 'kernel', m), { recursive: true, force: true });
        // the image's own depmod (kmod is in the recipe; this machine may have none)
        await run('chroot', [tmp, '/sbin/depmod', v], { log: opts.log });
      }
      for (const p of r.dropPaths) {
        rmSync(join(tmp, p), { recursive: true, force: true });
        mkdirSync(join(tmp, p), { recursive: true });
      }
      writeFileSync(join(tmp, '.complete'), JSON.stringify({ recipe: r, builtAt: new Date().toISOString() }, null, 2) + '\n');
      renameSync(tmp, dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return dir;
  } finally {
    unlock();
  }
}

/** The shared libraries `bin` loads (absolute paths, from this machine's ldd). */
async function sharedLibraries(bin: string): Promise<string[]> {
  const out = await run('ldd', [bin]);
  const libs: string[] = [];
  for (const l of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(l) ?? /^\s*(\/\S+)\s+\(/.exec(l);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

/** Under kernel/drivers of the VM's modules, only these stay (the VM is a virtio machine). */
const VM_DRIVERS = ['virtio', 'block', 'char', 'net/virtio_net.ko', 'net/net_failover.ko', 'net/tun.ko', 'net/veth.ko', 'net/macvlan.ko', 'net/ipvlan', 'net/vxlan', 'net/dummy.ko', 'net/bonding'];

/**
 * Less for the VM's memory (its root file system is unpacked into RAM): the kernel's drivers
 * but virtio, block, char and a few virtual NICs (then depmod, with the image's own), and
 * better-sqlite3's sources and build objects (its addon stays).
 */
async function trimForVm(dest: string, log?: (s: string) => void): Promise<void> {
  const modules = join(dest, 'usr/lib/modules');
  for (const v of readdirSync(modules)) {
    const drivers = join(modules, v, 'kernel/drivers');
    const keep = (rel: string): boolean => VM_DRIVERS.some((k) => k === rel || k.startsWith(`${rel}/`) || rel.startsWith(`${k}/`));
    const walk = (rel: string): void => {
      for (const e of readdirSync(join(drivers, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (!keep(r)) rmSync(join(drivers, r), { recursive: true, force: true });
        else if (e.isDirectory() && !VM_DRIVERS.includes(r)) walk(r);
      }
    };
    walk('');
    await run('chroot', [dest, '/sbin/depmod', v], { log });
  }
  const sqlite = join(dest, 'opt/warren/node_modules/better-sqlite3');
  for (const d of ['deps', 'src', 'build/Release/obj.target', 'build/Release/obj', 'build/Release/.deps', 'build/Release/test_extension.node', 'build/deps']) rmSync(join(sqlite, d), { recursive: true, force: true });
}

/**
 * A copy of the base image at `dest` with Node and Warren under /opt/warren (see the top of
 * this file). Returns `dest`.
 */
export async function prepareNodeTree(base: string, dest: string, opts: { log?: (s: string) => void } = {}): Promise<string> {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dirname(dest), { recursive: true });
  await run('cp', ['-a', '--reflink=auto', base, dest], { log: opts.log });
  rmSync(join(dest, '.complete'), { force: true });
  // Debian's own initramfs is never used (the boot service's initrds are): leave it out of RAM.
  for (const f of readdirSync(join(dest, 'boot'))) if (f.startsWith('initrd.img-')) rmSync(join(dest, 'boot', f), { force: true });
  const opt = join(dest, 'opt/warren');
  mkdirSync(join(opt, 'node/bin'), { recursive: true });
  copyFileSync(process.execPath, join(opt, 'node/bin/node'));
  chmodSync(join(opt, 'node/bin/node'), 0o755);
  // Libraries Node needs that the image lacks come from this machine (same architecture).
  for (const lib of await sharedLibraries(process.execPath)) {
    const inImage = join(dest, lib);
    if (existsSync(inImage)) continue;
    opts.log?.(`node-image: ${lib} is not in the image; copied from this machine\n`);
    mkdirSync(dirname(inImage), { recursive: true });
    await run('cp', ['-L', lib, inImage]);
  }
  for (const d of ['bin', 'dist']) await run('cp', ['-a', join(repoRoot, d), join(opt, d)]);
  rmSync(join(opt, 'dist/test'), { recursive: true, force: true });
  rmSync(join(opt, 'dist/bench'), { recursive: true, force: true });
  for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(repoRoot, f), join(opt, f));
  await run('cp', ['-a', join(repoRoot, 'node_modules'), join(opt, 'node_modules')]);
  // Production dependencies only (no registry: the lock file says what to keep).
  await run('npm', ['prune', '--omit=dev', '--offline', '--no-audit', '--no-fund'], { cwd: opt, log: opts.log, timeoutMs: 300_000 });
  await trimForVm(dest, opts.log);
  return dest;
}
