// Node images (issue 13, part 2): a container image (docker://, oras://, a .sif, a root file
// system directory) turned into what a stateless node boots: the kernel taken from the image's
// /boot and its whole root file system as one gzip-compressed cpio archive (the node's
// initramfs). Kept in DATA/provision/images/<hex>/{vmlinuz,rootfs.cpio.gz,image.json}, keyed by
// the source's content identity, so an unchanged image is answered from image.json alone:
//   registry image   its manifest digest (resolved from the registry: a moved tag is a new image)
//   SIF file         the SHA-256 of the file, remembered per (path, size, mtime, ctime, inode) in
//                    DATA/provision/images/.identities.json so it is read once, not at every build
//   directory        a SHA-256 over (path, type, mode, size, mtime in ns, uid, gid, link target)
//                    of every entry, sorted by path (find -printf: no file is read)
// A build is written into a temporary directory beside the others and renamed into place whole:
// a crash leaves no half image, and of two concurrent builds of one digest one wins.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, openSync, readSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { WarrenError, pidAlive } from '../common/index.js';
import { parseImageRef, prepareImage, sifPartition, type ImageRef } from '../image/index.js';
import { packCpioGz } from './archive.js';

export interface NodeImage {
  /** `sha256:<hex>` of the source's content identity (and the kernel choice); the directory's name is the hex. */
  digest: string;
  /** The source image, canonical: `docker://registry/repo:tag`, `oras://…`, or an absolute path. */
  source: string;
  /** The content identity of the source alone: manifest digest, SIF sha256, or the tree's hash. */
  sourceDigest: string;
  /** Where the node image lives: DATA/provision/images/<hex>. */
  dir: string;
  kernelVersion: string;
  kernelPath: string;
  rootfsPath: string;
  kernelSha256: string;
  rootfsSha256: string;
  kernelSize: number;
  rootfsSize: number;
  /** ms since the epoch. */
  builtAt: number;
}

export interface BuildNodeImageOptions {
  source: string;
  dataDir: string;
  /** A kernel version found as /boot/vmlinuz-VER in the image, or the path of a kernel file on this machine. */
  kernel?: string;
  /** Build again even when an image of this digest exists. */
  force?: boolean;
  /** Registry images: resolve the tag at the registry every time (default), or trust the cache. */
  pull?: 'always' | 'if-not-present';
  /** Image cache for registry images (default DATA/provision/cache: its own, as it keeps setuid bits). */
  cacheDir?: string;
  log?: (s: string) => void;
}

/** Bumped when what is packed changes (the archive of an old layout is not reused). */
const LAYOUT = 'warren-node-image/1';
/** Contents left out of the root file system archive (the node mounts these file systems). */
export const ROOTFS_EXCLUDE = ['proc/*', 'sys/*', 'dev/*'];
const IMAGE_JSON = 'image.json';
const IDENTITIES = '.identities.json';
const MAX_IDENTITIES = 256;

export function nodeImagesDir(dataDir: string): string {
  return join(dataDir, 'provision', 'images');
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;
const hex = (digest: string): string => digest.replace(/^sha256:/, '');

/** The canonical form of a source, as image.json keeps it and findNodeImage compares it. */
export function canonicalSource(source: string): string {
  const ref = parseImageRef(source.trim());
  return ref.kind === 'sif' || ref.kind === 'rootfs' ? resolve(ref.path) : ref.uri;
}

// --- content identity -------------------------------------------------------------------

function shellOut(script: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveP, reject) => {
    const child = spawn('/bin/bash', ['-c', script], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolveP({ code, stdout, stderr }));
  });
}

/**
 * The identity of a root file system directory: SHA-256 over one record per entry (path, type,
 * mode, size, mtime with its nanoseconds, uid, gid, link target), sorted bytewise by path; the
 * contents of proc/, sys/ and dev/ are left out as the archive leaves them out. Reads no file, so
 * a tree of tens of thousands of entries takes a fraction of a second; a change that keeps size
 * and mtime (touch -d back) is not seen: --force builds anyway.
 */
export async function treeIdentity(root: string): Promise<string> {
  const prune = ROOTFS_EXCLUDE.map((p) => `-path './${p}' -prune -o`).join(' ');
  const script = `set -o pipefail; find . -mindepth 1 ${prune} -printf '%P\\t%y %m %s %T@ %U %G %l\\0' | LC_ALL=C sort -z | sha256sum`;
  const r = await shellOut(script, root);
  const m = /^([0-9a-f]{64})\b/.exec(r.stdout);
  if (r.code !== 0 || !m) {
    throw new WarrenError('PROVISION_PACK_FAILED', `cannot read the tree ${root} (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join('; ') || 'no message'}`, {
      hint: 'check that the directory and everything in it is readable, then run the command again',
    });
  }
  return `sha256:${m[1]}`;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) h.update(c);
  });
  return h.digest('hex');
}

type IdentityCache = Record<string, { digest: string; at: number }>;

function readIdentities(dir: string): IdentityCache {
  try {
    const v = JSON.parse(readFileSync(join(dir, IDENTITIES), 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as IdentityCache) : {};
  } catch {
    return {};
  }
}

/**
 * The SHA-256 of a SIF, read once: remembered under the file's (path, size, mtime, ctime, inode)
 * in DATA/provision/images/.identities.json. Rewriting the file in place changes mtime and
 * ctime; replacing it changes the inode: either reads it again.
 */
export async function sifIdentity(dataDir: string, path: string): Promise<string> {
  const dir = nodeImagesDir(dataDir);
  const st = statSync(path, { bigint: true });
  const key = `${resolve(path)}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}\0${st.ino}\0${st.dev}`;
  const known = readIdentities(dir)[key];
  if (known && /^sha256:[0-9a-f]{64}$/.test(known.digest)) return known.digest;
  const digest = `sha256:${await sha256File(path)}`;
  mkdirSync(dir, { recursive: true });
  // Read again just before writing: another build may have added its entry meanwhile.
  const all = readIdentities(dir);
  all[key] = { digest, at: Date.now() };
  const keys = Object.keys(all).sort((a, b) => all[b]!.at - all[a]!.at);
  const kept: IdentityCache = {};
  for (const k of keys.slice(0, MAX_IDENTITIES)) kept[k] = all[k]!;
  const tmp = join(dir, `${IDENTITIES}.${process.pid}.${randomBytes(4).toString('hex')}`);
  writeFileSync(tmp, JSON.stringify(kept) + '\n', { mode: 0o600 });
  renameSync(tmp, join(dir, IDENTITIES));
  return digest;
}

// --- the kernel ---------------------------------------------------------------------------

/** Compare kernel versions the way people read them: 6.10.0 after 6.9.2, numbers as numbers. */
export function compareKernelVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    if (i % 2 === 1 && x !== '' && y !== '') return Number(x) - Number(y) || x.length - y.length;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** A path inside the image's tree, symbolic links followed inside it (an absolute link means the image's /). */
function inTree(root: string, rel: string): string | undefined {
  let p = join(root, rel);
  for (let hops = 0; hops < 16; hops++) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) return p;
    const target = readlinkSync(p);
    const next = isAbsolute(target) ? join(root, target) : resolve(dirname(p), target);
    if (next !== root && !next.startsWith(root + '/')) return undefined;
    p = next;
  }
  return undefined;
}

/** Kernel versions of the image: /boot/vmlinuz-VER (regular files, or links to them), newest first. */
export function imageKernels(root: string): string[] {
  let names: string[];
  try {
    const boot = inTree(root, 'boot');
    names = boot ? readdirSync(boot) : [];
  } catch {
    names = [];
  }
  return names
    .map((n) => /^vmlinuz-(.+)$/.exec(n)?.[1])
    .filter((v): v is string => !!v && !v.endsWith('.old'))
    .filter((v) => {
      const p = inTree(root, `boot/vmlinuz-${v}`);
      return !!p && statSync(p).isFile();
    })
    .sort((a, b) => compareKernelVersions(b, a));
}

interface KernelChoice {
  version: string;
  /** The file to copy (in the image, or given). */
  path: string;
}

function noKernel(source: string, why: string): WarrenError {
  return new WarrenError('PROVISION_NO_KERNEL', `image ${source}: ${why}`, {
    hint: 'install a kernel package in the image (`linux-image-amd64` for Debian and Ubuntu, `kernel` for Rocky and RHEL) and build it again, or give one with --kernel VERSION (a /boot/vmlinuz-VERSION of the image) or --kernel FILE',
  });
}

/** What --kernel names: a file on this machine (a path), or a version of the image. */
const kernelIsFile = (k: string): boolean => k.includes('/');

function chooseKernel(root: string, source: string, kernel: string | undefined, log: (s: string) => void): KernelChoice {
  if (kernel !== undefined && kernelIsFile(kernel)) {
    const path = resolve(kernel);
    const version = kernelFileVersion(path) ?? /vmlinuz-(.+)$/.exec(path)?.[1];
    if (!version) {
      throw new WarrenError('PROVISION_NO_KERNEL', `kernel ${path}: cannot tell its version (no Linux boot header, not named vmlinuz-VERSION)`, {
        hint: 'give a Linux kernel image (bzImage), e.g. /boot/vmlinuz-6.1.0-27-amd64',
      });
    }
    if (!moduleDir(root, version)) log(`warning: the image has no /lib/modules/${version}: the kernel ${path} boots, but loads no modules`);
    return { version, path };
  }
  const found = imageKernels(root);
  if (found.length === 0) throw noKernel(source, 'it has no kernel (no /boot/vmlinuz-VERSION)');
  const version = kernel ?? found[0]!;
  if (!found.includes(version)) throw noKernel(source, `it has no kernel ${version} (it has ${found.join(', ')})`);
  if (kernel === undefined && found.length > 1) log(`the image has kernels ${found.join(', ')}: taking the newest, ${version} (--kernel VERSION picks another)`);
  if (!moduleDir(root, version)) log(`warning: the image has no /lib/modules/${version}: the node boots, but loads no modules (install the kernel's modules package)`);
  return { version, path: inTree(root, `boot/vmlinuz-${version}`)! };
}

function moduleDir(root: string, version: string): string | undefined {
  for (const rel of [`lib/modules/${version}`, `usr/lib/modules/${version}`]) {
    const p = inTree(root, rel);
    if (p && statSync(p).isDirectory()) return p;
  }
  return undefined;
}

/** The version string in a bzImage's boot header (offset 0x20e points at it), if there is one. */
function kernelFileVersion(path: string): string | undefined {
  let buf: Buffer;
  try {
    if (!statSync(path).isFile()) return undefined;
    const fd = openSync(path, 'r');
    try {
      buf = Buffer.alloc(64 * 1024); // the boot header and the version string are in the first 64 KiB
      buf = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (buf.length < 0x210 || buf.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  const at = buf.readUInt16LE(0x20e) + 0x200;
  if (at >= buf.length) return undefined;
  const end = buf.indexOf(0, at);
  const v = buf.toString('latin1', at, end < 0 ? Math.min(buf.length, at + 256) : end).split(' ')[0];
  return v || undefined;
}

async function copyHashed(from: string, to: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  await pipeline(
    createReadStream(from),
    new Transform({
      transform(c: Buffer, _e, cb) {
        h.update(c);
        size += c.length;
        cb(null, c);
      },
    }),
    createWriteStream(to, { mode: 0o644 }),
  );
  return { sha256: h.digest('hex'), size };
}

// --- the image's tree -------------------------------------------------------------------

interface OpenTree {
  root: string;
  release(): Promise<void>;
}

/** The SIF's squashfs partition as a directory: a loop mount as root, else extracted with unsquashfs. */
async function openSif(file: string, source: string, work: string, log: (s: string) => void): Promise<OpenTree> {
  const { checkSquashfs, defaultToolPath, findExecutable, runTool } = await containerTools();
  const loc = await sifPartition(file);
  checkSquashfs(file, loc, source);
  const path = defaultToolPath();
  const mount = findExecutable('mount', path);
  const umount = findExecutable('umount', path);
  const tried: string[] = [];
  if (isRoot() && mount && umount) {
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    const r = await runTool(mount, ['-t', 'squashfs', '-o', `loop,ro,nodev,offset=${loc.offset},sizelimit=${loc.size}`, file, mnt]);
    if (r.code === 0) {
      return {
        root: mnt,
        release: async () => {
          await runTool(umount, [mnt], 60_000);
          rmdirSync(mnt);
        },
      };
    }
    rmSync(mnt, { recursive: true, force: true });
    tried.push(`loop mount: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  const unsquashfs = findExecutable('unsquashfs', path);
  if (!unsquashfs) {
    throw new WarrenError('PROVISION_TOOL_MISSING', `cannot read image ${source}: ${tried.length ? `${tried.join('; ')}, and ` : ''}unsquashfs is not installed`, {
      hint: 'install squashfs-tools (`apt-get install squashfs-tools`), or run as root for a loop mount',
    });
  }
  log(`extracting ${source} with unsquashfs${tried.length ? ` (${tried.join('; ')})` : ''}`);
  const tree = join(work, 'tree');
  const args = ['-q', '-n', '-d', tree, '-o', String(loc.offset)];
  if (!isRoot()) args.push('-ignore-errors', '-no-xattrs');
  const r = await runTool(unsquashfs, [...args, file], 24 * 3600_000);
  if (r.code !== 0 && !(r.code === 2 && !isRoot() && existsSync(tree))) {
    throw new WarrenError('PROVISION_PACK_FAILED', `cannot extract image ${source}: unsquashfs exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join('; ') || 'no message'}`, {
      hint: 'the SIF may be damaged (build or download it again), or the disk is full',
    });
  }
  return { root: tree, release: async () => rmSync(tree, { recursive: true, force: true }) };
}

// --- the store of node images -----------------------------------------------------------

function readImageJson(dir: string): NodeImage | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dir, IMAGE_JSON), 'utf8')) as NodeImage;
    if (typeof v.digest !== 'string' || typeof v.source !== 'string' || typeof v.builtAt !== 'number') return undefined;
    // Both files there (someone may have deleted one by hand): else it is built again.
    if (!existsSync(join(dir, 'vmlinuz')) || !existsSync(join(dir, 'rootfs.cpio.gz'))) return undefined;
    // The directory may have moved with its data dir: paths are where it is now.
    return { ...v, dir, kernelPath: join(dir, 'vmlinuz'), rootfsPath: join(dir, 'rootfs.cpio.gz') };
  } catch {
    return undefined;
  }
}

/** Every node image of the data dir, newest first. */
export async function listNodeImages(dataDir: string): Promise<NodeImage[]> {
  const dir = nodeImagesDir(dataDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: NodeImage[] = [];
  for (const n of names) {
    if (!/^[0-9a-f]{64}$/.test(n)) continue;
    const img = readImageJson(join(dir, n));
    if (img) out.push(img);
  }
  return out.sort((a, b) => b.builtAt - a.builtAt || a.digest.localeCompare(b.digest));
}

/** The newest node image built from `source` (any spelling of it), if there is one. */
export async function findNodeImage(dataDir: string, source: string): Promise<NodeImage | undefined> {
  const key = canonicalSource(source);
  return (await listNodeImages(dataDir)).find((i) => i.source === key);
}

/**
 * Remove node images: the one of a digest (`sha256:HEX`, HEX, or a unique prefix of 7 or more
 * hex digits), or every one built from a source. PROVISION_IMAGE_UNKNOWN when nothing matches.
 */
export async function removeNodeImages(dataDir: string, what: string): Promise<NodeImage[]> {
  const all = await listNodeImages(dataDir);
  const w = what.trim();
  let hit: NodeImage[];
  const h = w.replace(/^sha256:/, '');
  if (/^[0-9a-f]{7,64}$/.test(h)) {
    hit = all.filter((i) => hex(i.digest).startsWith(h));
    if (hit.length > 1) {
      throw new WarrenError('PROVISION_IMAGE_UNKNOWN', `node image digest ${w} is ambiguous: ${hit.map((i) => i.digest.slice(0, 19)).join(', ')}`, { hint: 'give more digits of the digest (`warren image node-list`)' });
    }
  } else {
    let key: string | undefined;
    try {
      key = canonicalSource(w);
    } catch {
      key = undefined;
    }
    hit = all.filter((i) => i.source === key);
  }
  if (hit.length === 0) {
    throw new WarrenError('PROVISION_IMAGE_UNKNOWN', `no node image ${w}: neither a digest nor the source of one`, { hint: '`warren image node-list` shows the node images, their digests and sources' });
  }
  const dir = nodeImagesDir(dataDir);
  for (const i of hit) {
    // Renamed first: a reader sees the whole image or none.
    const trash = join(dir, `.rm-${hex(i.digest)}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(i.dir, trash);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
      throw e;
    }
    rmSync(trash, { recursive: true, force: true });
  }
  return hit;
}

/** The container runtime's squashfs helpers, loaded when a SIF is opened (not for an unchanged image). */
const containerTools = () => import('../runtime/container/index.js');

/** Leftovers of builds whose process is gone (a crash, a kill): unmounted and removed. */
async function sweepStale(dir: string): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^\.(?:build-(\d+)-[0-9a-f]+|rm-.+|old-.+)$/.exec(n);
    if (!m) continue;
    if (m[1] && pidAlive(Number(m[1]))) continue;
    const p = join(dir, n);
    const mnt = join(p, 'mnt');
    if (existsSync(mnt) && mountedAt(mnt)) {
      const { defaultToolPath, findExecutable, runTool } = await containerTools();
      const umount = findExecutable('umount', defaultToolPath());
      if (umount) await runTool(umount, ['-l', mnt], 30_000);
    }
    if (!mountedAt(mnt)) rmSync(p, { recursive: true, force: true });
  }
}

function mountedAt(path: string): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === path);
  } catch {
    return false;
  }
}

// --- the build ------------------------------------------------------------------------------

/** A tree that holds the data directory would pack its own archive (and the data dir's secrets). */
function checkNotInside(tree: string, dataDir: string, source: string): void {
  const t = resolve(tree);
  const d = resolve(dataDir);
  if (d === t || d.startsWith(t === '/' ? '/' : `${t}/`)) {
    throw new WarrenError('PROVISION_SOURCE_INVALID', `image ${source}: the directory holds Warren's data directory ${d}, where node images are written`, {
      hint: 'give the root file system of the image alone (e.g. one made by debootstrap or `warren image build`), not a directory above the data directory',
    });
  }
}

/**
 * Build the node image of `source` (or find it built): the kernel and the packed root file system
 * in DATA/provision/images/<hex>/. An unchanged source answers from image.json (`reused`).
 */
export async function buildNodeImage(opts: BuildNodeImageOptions): Promise<NodeImage & { reused: boolean }> {
  const log = opts.log ?? (() => {});
  const source = canonicalSource(opts.source);
  const ref: ImageRef = parseImageRef(opts.source.trim());
  const registry = ref.kind === 'docker' || ref.kind === 'oras';
  const prepare = (policy: 'always' | 'if-not-present') =>
    prepareImage(opts.source.trim(), {
      cacheDir: opts.cacheDir ?? join(opts.dataDir, 'provision', 'cache'),
      // A node boots the image as its operating system: sudo, su, ping keep their setuid bits.
      // Jobs never run from this cache, so the node's container policy is not weakened.
      ...(registry ? { policy, allowSetuid: true } : {}),
    });
  let prepared;
  try {
    prepared = await prepare(opts.pull ?? 'always');
  } catch (e) {
    // A registry out of reach: what was pulled before of that reference still builds (a warning).
    if (!(registry && (opts.pull ?? 'always') === 'always' && e instanceof WarrenError && e.code === 'IMAGE_REGISTRY_UNREACHABLE')) throw e;
    let cached;
    try {
      cached = await prepare('if-not-present');
    } catch {
      throw e;
    }
    if (!cached.pull?.cached) throw e;
    log(`warning: the registry of ${source} cannot be reached (${e.message}): using ${cached.digest}, pulled before; a tag moved since is not seen`);
    prepared = cached;
  }
  if (prepared.kind === 'rootfs' && !registry) checkNotInside(prepared.path, opts.dataDir, source);
  // The identity of the source's content.
  let sourceDigest: string;
  if (registry) {
    if (!prepared.digest) throw new WarrenError('PROVISION_PACK_FAILED', `image ${source}: the registry gave no manifest digest`, { hint: 'pull it again: `warren image pull IMAGE`' });
    sourceDigest = prepared.digest;
  } else if (prepared.kind === 'sif') {
    sourceDigest = await sifIdentity(opts.dataDir, prepared.path);
  } else {
    sourceDigest = await treeIdentity(prepared.path);
  }
  // The kernel choice is part of the node image's identity.
  let kernelKey = 'kernel:newest';
  if (opts.kernel !== undefined) {
    if (opts.kernel.trim() === '') throw new WarrenError('PROVISION_NO_KERNEL', 'the kernel given with --kernel is empty', { hint: 'give a kernel version of the image (e.g. 6.1.0-27-amd64) or the path of a kernel file' });
    if (kernelIsFile(opts.kernel)) {
      const kp = resolve(opts.kernel);
      if (!existsSync(kp) || !statSync(kp).isFile()) {
        throw new WarrenError('PROVISION_NO_KERNEL', `kernel file ${kp} does not exist`, { hint: 'give the path of a kernel image (e.g. /boot/vmlinuz-6.1.0-27-amd64), or a version of the image\'s /boot/vmlinuz-VERSION' });
      }
      kernelKey = `kernel:file:${await sha256File(kp)}`;
    } else {
      kernelKey = `kernel:version:${opts.kernel}`;
    }
  }
  const digest = `sha256:${createHash('sha256').update(`${LAYOUT}\n${sourceDigest}\n${kernelKey}\n${ROOTFS_EXCLUDE.join(',')}\n`).digest('hex')}`;
  const dir = nodeImagesDir(opts.dataDir);
  const final = join(dir, hex(digest));
  const have = readImageJson(final);
  if (have && !opts.force) return { ...have, reused: true };
  // Built again in place: a forced build, or a directory that lost a file or its image.json.
  const replace = opts.force === true || (!have && existsSync(final));

  // A directory's kernel is checked before anything is written (a SIF's once it is opened).
  const early = prepared.kind === 'sif' ? undefined : chooseKernel(prepared.path, source, opts.kernel, log);
  mkdirSync(dir, { recursive: true });
  await sweepStale(dir);
  const work = join(dir, `.build-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(work, { mode: 0o755 });
  let tree: OpenTree | undefined;
  try {
    tree = prepared.kind === 'sif' ? await openSif(prepared.path, source, work, log) : { root: prepared.path, release: async () => {} };
    const k = early ?? chooseKernel(tree.root, source, opts.kernel, log);
    log(`kernel ${k.version}`);
    const kernel = await copyHashed(k.path, join(work, 'vmlinuz'));
    log(`packing the root file system of ${source}`);
    // As root the tree's owners are kept (the image's files belong to root, daemons' users...);
    // a user's own tree is packed as root's: the node runs it as root.
    const packed = await packCpioGz(tree.root, join(work, 'rootfs.cpio.gz'), { exclude: ROOTFS_EXCLUDE, rootOwned: !isRoot() });
    await tree.release();
    tree = undefined;
    const img: NodeImage = {
      digest,
      source,
      sourceDigest,
      dir: final,
      kernelVersion: k.version,
      kernelPath: join(final, 'vmlinuz'),
      rootfsPath: join(final, 'rootfs.cpio.gz'),
      kernelSha256: kernel.sha256,
      rootfsSha256: packed.sha256,
      kernelSize: kernel.size,
      rootfsSize: packed.size,
      builtAt: Date.now(),
    };
    writeFileSync(join(work, IMAGE_JSON), JSON.stringify(img, null, 2) + '\n', { mode: 0o644 });
    if (replace && existsSync(final)) {
      const old = join(dir, `.old-${hex(digest)}-${randomBytes(4).toString('hex')}`);
      try {
        renameSync(final, old);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      rmSync(old, { recursive: true, force: true });
    }
    try {
      renameSync(work, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      // Another build of this digest finished first: its image is the one kept.
      rmSync(work, { recursive: true, force: true });
      const won = readImageJson(final);
      if (won) return { ...won, reused: false };
      throw e;
    }
    return { ...img, reused: false };
  } catch (e) {
    if (tree) await tree.release().catch(() => {});
    // Never into a mount that would not go: the next build's sweep takes it.
    if (!mountedAt(join(work, 'mnt'))) rmSync(work, { recursive: true, force: true });
    throw e;
  }
}
