// Root file systems for containers: an unpacked directory used in place, or the squashfs
// partition of a SIF made available read-only, by (in order of preference):
//   1. a loop mount (`mount -o loop,ro,offset=N,sizelimit=M`), when running as root;
//   2. squashfuse (FUSE), for unprivileged users or where loop mounts are refused;
//   3. extraction with unsquashfs into a cache directory, when neither works.
// A writable overlay on top (upper layer in the bundle) is added only when the container
// needs mount points the image does not have.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readSync, closeSync, renameSync, rmSync, rmdirSync, statSync, accessSync, constants } from 'node:fs';
import { join, delimiter } from 'node:path';
import { WarrenError, EXIT } from '../../common/index.js';

export const SQUASHFS_MAGIC = 0x73717368; // "hsqs"
const SIF_MAGIC = 'SIF_MAGIC';

export interface SquashfsLocation {
  offset: number;
  size: number;
}

/** Find an executable on PATH (or check an absolute path). */
export function findExecutable(name: string, path = defaultToolPath()): string | undefined {
  const candidates = name.includes('/') ? [name] : path.split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** PATH plus the sbin directories (mount, runc live there; a user's PATH may lack them). */
export function defaultToolPath(): string {
  return [process.env.PATH ?? '', '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin'].filter(Boolean).join(delimiter);
}

export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && !stderr ? err.message : '')) });
    });
  });
}

function readAt(file: string, offset: number, len: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(len);
    const n = readSync(fd, b, 0, len, offset);
    return b.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function corrupt(image: string, why: string): WarrenError {
  return new WarrenError('RUNTIME_IMAGE_CORRUPT', `image ${image} is corrupt: ${why}`, {
    hint: 'the file is damaged or truncated: download or build the image again (e.g. `apptainer build`, or re-pull it), then rerun the job',
  });
}

/**
 * Where the squashfs is in `file`: offset 0 for a plain squashfs file, else the SIF's
 * primary partition found by `locateSif`. Throws RUNTIME_IMAGE_CORRUPT when neither.
 */
export async function locateSquashfs(
  file: string,
  image: string,
  locateSif?: (path: string) => Promise<SquashfsLocation>,
): Promise<SquashfsLocation> {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new WarrenError('RUNTIME_IMAGE_NOT_FOUND', `image ${image}: file ${file} does not exist`, {
      hint: 'check the image path, or prepare the image again',
    });
  }
  const head = readAt(file, 0, 64);
  if (head.length >= 4 && head.readUInt32LE(0) === SQUASHFS_MAGIC) return { offset: 0, size };
  if (head.subarray(32, 32 + SIF_MAGIC.length).toString('latin1') === SIF_MAGIC) {
    if (!locateSif) {
      throw new WarrenError('RUNTIME_SIF_UNSUPPORTED', `image ${image} is a SIF, but no SIF reader is configured in this runtime`, {
        hint: 'create the container runtime with `sifPartition` (from the image subsystem), or convert the image to a squashfs or a directory',
      });
    }
    const loc = await locateSif(file);
    if (loc.offset < 0 || loc.size <= 0 || loc.offset + loc.size > size) throw corrupt(image, `its system partition (offset ${loc.offset}, ${loc.size} bytes) lies outside the ${size}-byte file`);
    return loc;
  }
  throw corrupt(image, 'it is neither a SIF nor a squashfs file (no SIF header, no squashfs magic)');
}

/** Check the squashfs superblock at `loc` (cheap: 96 bytes), so a damaged image never gets mounted. */
export function checkSquashfs(file: string, loc: SquashfsLocation, image: string): void {
  const sb = readAt(file, loc.offset, 96);
  if (sb.length < 96) throw corrupt(image, `the squashfs at offset ${loc.offset} is truncated (no complete superblock)`);
  if (sb.readUInt32LE(0) !== SQUASHFS_MAGIC) throw corrupt(image, `no squashfs file system at offset ${loc.offset} (bad magic)`);
  const blockSize = sb.readUInt32LE(12);
  const compression = sb.readUInt16LE(20);
  const blockLog = sb.readUInt16LE(22);
  const major = sb.readUInt16LE(28);
  const bytesUsed = Number(sb.readBigUInt64LE(40));
  if (major !== 4) throw corrupt(image, `unsupported squashfs version ${major} (expected 4)`);
  if (blockLog < 12 || blockLog > 20 || blockSize !== 2 ** blockLog) throw corrupt(image, 'the squashfs superblock is damaged (inconsistent block size)');
  if (compression < 1 || compression > 6) throw corrupt(image, `the squashfs superblock is damaged (unknown compression ${compression})`);
  if (bytesUsed < 96 || bytesUsed > loc.size) {
    throw corrupt(image, `the squashfs says it is ${bytesUsed} bytes but only ${loc.size} are there (truncated download?)`);
  }
}

/** A root file system ready for one container; `release` undoes whatever made it. */
export interface RootfsHandle {
  path: string;
  /** How it was made: 'dir' | 'loop' | 'squashfuse' | 'extracted'. */
  via: 'dir' | 'loop' | 'squashfuse' | 'extracted';
  /** True when the container runtime may create mount points in it (our own extraction). */
  writable: boolean;
  release(): Promise<void>;
}

export interface SquashfsTools {
  mount?: string;
  umount?: string;
  squashfuse?: string;
  fusermount?: string;
  unsquashfs?: string;
}

export function findSquashfsTools(path = defaultToolPath()): SquashfsTools {
  const t: SquashfsTools = {};
  const set = (k: keyof SquashfsTools, ...names: string[]) => {
    for (const n of names) {
      const p = findExecutable(n, path);
      if (p) {
        t[k] = p;
        return;
      }
    }
  };
  set('mount', 'mount');
  set('umount', 'umount');
  set('squashfuse', 'squashfuse');
  set('fusermount', 'fusermount3', 'fusermount');
  set('unsquashfs', 'unsquashfs');
  return t;
}

/** Make the squashfs at `loc` in `file` available as a directory, or throw naming the image. */
export async function mountSquashfs(opts: {
  file: string;
  loc: SquashfsLocation;
  image: string;
  mountpoint: string;
  /** Directory for extracted images (shared across tasks). */
  extractDir: string;
  tools: SquashfsTools;
  root: boolean;
  /** sha256 of `file` when it is an immutable verified copy: extractions are then keyed by content. */
  contentDigest?: string;
}): Promise<RootfsHandle> {
  const { file, loc, image, mountpoint, tools } = opts;
  const tried: string[] = [];
  mkdirSync(mountpoint, { recursive: true });
  if (opts.root && tools.mount && tools.umount) {
    const r = await run(tools.mount, ['-t', 'squashfs', '-o', `loop,ro,nodev,offset=${loc.offset},sizelimit=${loc.size}`, file, mountpoint]);
    if (r.code === 0) {
      const umount = tools.umount;
      return { path: mountpoint, via: 'loop', writable: false, release: () => unmount(umount, ['-l'], mountpoint) };
    }
    tried.push(`loop mount: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  if (tools.squashfuse) {
    const r = await run(tools.squashfuse, ['-o', `ro,offset=${loc.offset}`, file, mountpoint], 30_000);
    if (r.code === 0) {
      const fm = tools.fusermount;
      const um = tools.umount;
      return {
        path: mountpoint,
        via: 'squashfuse',
        writable: false,
        release: () => (fm ? unmount(fm, ['-u', '-z'], mountpoint) : um ? unmount(um, ['-l'], mountpoint) : Promise.resolve()),
      };
    }
    tried.push(`squashfuse: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  if (tools.unsquashfs) {
    // A verified image: keyed by its content. Otherwise by the file's identity (no trust claimed).
    const st = statSync(file);
    const ident = opts.contentDigest ? `content\n${opts.contentDigest}` : `${file}\n${st.size}\n${st.mtimeMs}\n${st.ino}`;
    const key = createHash('sha256').update(`${ident}\n${loc.offset}\n${loc.size}`).digest('hex').slice(0, 32);
    const dest = join(opts.extractDir, key);
    if (!existsSync(dest)) {
      mkdirSync(opts.extractDir, { recursive: true });
      const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
      const args = ['-q', '-n', '-no-xattrs', '-d', tmp];
      if (loc.offset) args.push('-o', String(loc.offset));
      if (!opts.root) args.push('-ignore-errors'); // device nodes cannot be created unprivileged
      args.push(file);
      const r = await run(tools.unsquashfs, args, 600_000);
      if (r.code !== 0 && !(r.code === 2 && existsSync(tmp))) {
        rmSync(tmp, { recursive: true, force: true });
        tried.push(`unsquashfs: ${r.stderr.trim().split('\n').slice(-2).join(' ') || `exit ${r.code}`}`);
        throw cannotMount(image, tried);
      }
      try {
        renameSync(tmp, dest);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another task extracted it first
      }
    }
    rmSync(mountpoint, { recursive: true, force: true });
    return { path: dest, via: 'extracted', writable: true, release: async () => {} };
  }
  if (!tools.squashfuse && !tools.unsquashfs && !(opts.root && tools.mount)) {
    throw new WarrenError('RUNTIME_SQUASHFS_MISSING', `cannot open image ${image}: no way to read squashfs on this node (no loop mounts${opts.root ? '' : ' as a non-root user'}, squashfuse and unsquashfs not installed)`, {
      hint: 'install squashfuse and squashfs-tools (`apt-get install squashfuse squashfs-tools`), or run Warren as root for loop mounts',
    });
  }
  throw cannotMount(image, tried);
}

function cannotMount(image: string, tried: string[]): WarrenError {
  const notInstalled = tried.length === 0;
  return new WarrenError(
    notInstalled ? 'RUNTIME_SQUASHFS_MISSING' : 'RUNTIME_IMAGE_MOUNT_FAILED',
    notInstalled
      ? `cannot open image ${image}: squashfuse and squashfs-tools are not installed`
      : `cannot open image ${image}: ${tried.join('; ')}`,
    {
      hint: notInstalled
        ? 'install them: `apt-get install squashfuse squashfs-tools`'
        : 'the image may be corrupt (rebuild or re-download it); otherwise install squashfuse and squashfs-tools (`apt-get install squashfuse squashfs-tools`)',
    },
  );
}

async function unmount(cmd: string, flags: string[], mountpoint: string): Promise<void> {
  await run(cmd, [...flags, mountpoint], 30_000);
  try {
    rmdirSync(mountpoint);
  } catch {
    /* still busy: left for the next cleanup */
  }
}

/**
 * An overlay (lower: `lower`, upper+work in `dir`) so the container can get mount points
 * the read-only image lacks, without writing to the image. Root only.
 */
export async function mountOverlay(tools: SquashfsTools, lower: string, dir: string): Promise<{ path: string; release: () => Promise<void> }> {
  const upper = join(dir, 'upper');
  const work = join(dir, 'work');
  const merged = join(dir, 'merged');
  for (const d of [upper, work, merged]) mkdirSync(d, { recursive: true });
  if (!tools.mount || !tools.umount) throw new Error('mount(8) not found');
  const r = await run(tools.mount, ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  if (r.code !== 0) throw new Error(`overlay mount failed: ${r.stderr.trim()}`);
  const umount = tools.umount;
  return { path: merged, release: () => unmount(umount, ['-l'], merged) };
}

/** A rootfs directory: check it is usable. */
export function checkRootfsDir(dir: string, image: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new WarrenError('RUNTIME_IMAGE_NOT_FOUND', `image ${image}: root file system ${dir} does not exist`, {
      hint: 'prepare the image again (`warren image pull`), or check the path',
    });
  }
  if (!st.isDirectory()) {
    throw new WarrenError('RUNTIME_IMAGE_BAD_ROOTFS', `image ${image}: ${dir} is not a directory`, {
      hint: 'give a root file system directory or a .sif file',
    });
  }
}
