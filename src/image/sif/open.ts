// Running an encrypted SIF (warren-sif-enc-v1, encrypt.ts) without its plaintext touching a
// disk: the system partition is decrypted, one authenticated 1 MiB chunk at a time, into a
// file in memory-backed storage that only this user can read, and mounted from there.
//   - as root: a private tmpfs (mode 0700, size = partition + slack) mounted on a fresh,
//     empty directory; the plaintext squashfs is a 0600 file in it;
//   - as another user: a 0700 directory in /dev/shm (a tmpfs), the file 0600 in it.
// Either place is checked with statfs(2) to be tmpfs or ramfs before a byte is written; a disk
// is refused (SIF_DECRYPT_SCRATCH). The key never leaves this process: decryption is Node's
// crypto, no child process gets it in its arguments or environment, nothing logs it.
// Scratch directories are named `w-<pid>-<random>` so that a later Warren removes what a dead
// one left (sweepDecryptScratch).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, statfsSync, statSync, chmodSync, lstatSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { WarrenError, pidAlive, warrenHome } from '../../common/index.js';
import { pemKeyFromText, type PemKey } from '../keys/index.js';
import { decryptedChunks, encryptionInfo, locateEncrypted, unwrapDataKey } from './encrypt.js';

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
const OWNED = /^w-(\d+)-[0-9a-f]+$/;
const PLAIN_NAME = 'image.squashfs';

/** What opens an encrypted image: an RSA private key (PEM text or loaded) or a passphrase. */
export interface SifDecryptionKey {
  key?: PemKey | string;
  passphrase?: string;
}

export interface OpenEncryptedOptions extends SifDecryptionKey {
  /** Name of the image in messages (default: the path). */
  image?: string;
  /** Mount a private tmpfs (needs root; default: when running as root), else use /dev/shm. */
  root?: boolean;
  /** As root: the directory to mount the tmpfs on (created; must be absent or empty).
   *  Default: `$WARREN_HOME/run/crypt/w-<pid>-<random>`. */
  mountpoint?: string;
  /** Not as root: the tmpfs directory to make the private directory in (default /dev/shm). */
  shmDir?: string;
  /** Room to leave in the tmpfs beyond the plaintext (e.g. for an unsquashfs extraction). */
  extraBytes?: number;
  /** mount(8) and umount(8) (default: found on PATH and in the sbin directories). */
  mountPath?: string;
  umountPath?: string;
}

export interface OpenedEncryptedSif {
  /** The plaintext squashfs file, in tmpfs. */
  path: string;
  /** The private tmpfs directory holding it (and room for an extraction, `extraBytes`). */
  dir: string;
  /** Where the squashfs is in `path` (the whole file). */
  partition: { offset: number; size: number };
  /** The encrypted partition in the SIF (object id, offset, size). */
  source: { id: number; offset: number; size: number };
  via: 'tmpfs-mount' | 'shm';
  /** Unmount / remove all of it; safe to call more than once. */
  release(): Promise<void>;
}

/** True when `path` is a SIF that Warren encrypted (a warren-encryption.json object). */
export function isEncryptedSif(path: string, image = path): boolean {
  return encryptionInfo(path, image) !== undefined;
}

/**
 * How a secret's value is told apart: text holding a PEM private key block
 * (`-----BEGIN ... PRIVATE KEY-----`) is an RSA private key, anything else a passphrase.
 */
export function decryptionKeyFromText(text: string): SifDecryptionKey {
  return /-----BEGIN (?:RSA |ENCRYPTED )?PRIVATE KEY-----/.test(text) ? { key: text } : { passphrase: text };
}

function scratchError(image: string, why: string, hint: string): WarrenError {
  return new WarrenError('SIF_DECRYPT_SCRATCH', `image ${image}: cannot open it in memory: ${why}`, { hint });
}

/** statfs(2): tmpfs or ramfs, else SIF_DECRYPT_SCRATCH (a disk would keep the plaintext). */
export function assertMemoryBacked(dir: string, image: string): void {
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch (e) {
    throw scratchError(image, `cannot statfs ${dir}: ${(e as Error).message}`, 'check that the directory exists');
  }
  if (type !== TMPFS_MAGIC && type !== RAMFS_MAGIC) {
    throw scratchError(image, `${dir} is not a tmpfs or ramfs (file system type 0x${type.toString(16)}), and the decrypted image must not be written to a disk`, 'mount a tmpfs on /dev/shm (`mount -t tmpfs tmpfs /dev/shm`), or run as root (Warren then mounts a private tmpfs)');
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    // Arguments are paths and sizes only: never key material; secrets given as environment
    // variables (WARREN_SECRET_*) are not passed on either.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WARREN_SECRET_')));
    execFile(cmd, args, { timeout: 30_000, env }, (err, _out, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stderr: String(stderr || (err ? err.message : '')) });
    });
  });
}

function tool(name: string): string {
  for (const d of ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin']) if (existsSync(join(d, name))) return join(d, name);
  return name;
}

function isMountpoint(dir: string): boolean {
  try {
    const text = readFileSync('/proc/self/mountinfo', 'utf8');
    const esc = dir.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
    return text.split('\n').some((l) => l.split(' ')[4] === esc);
  } catch {
    return false;
  }
}

function scratchName(): string {
  return `w-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Where non-root scratch directories go: `<shm>/warren-crypt-<uid>` (0700, owned by the user). */
export function shmScratchParent(shmDir = '/dev/shm'): string {
  return join(shmDir, `warren-crypt-${process.getuid?.() ?? 0}`);
}

/** Where root's default tmpfs mount points go (for `warren exec`; the container runtime uses its bundles). */
export function rootScratchParent(home = warrenHome()): string {
  return join(home, 'run', 'crypt');
}

/** A 0700 directory of this user's, not a symlink. */
function privateParent(parent: string, image: string): void {
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  const st = lstatSync(parent);
  if (!st.isDirectory() || st.uid !== (process.getuid?.() ?? 0)) {
    throw scratchError(image, `${parent} is not a directory owned by this user`, `remove ${parent}, or give another scratch directory`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(parent, 0o700);
}

function keyOptions(opts: SifDecryptionKey & { image?: string }, image: string): { key?: PemKey; passphrase?: string } {
  if (!opts.key && opts.passphrase === undefined) {
    throw new WarrenError('SIF_DECRYPT_FAILED', `image ${image}: cannot decrypt: no key or passphrase given`, { hint: 'give the RSA private key or the passphrase the image was encrypted with' });
  }
  const key = typeof opts.key === 'string' ? pemKeyFromText(opts.key, 'the decryption key') : opts.key;
  return { ...(key ? { key } : {}), ...(opts.passphrase !== undefined ? { passphrase: opts.passphrase } : {}) };
}

/** Check that the key or passphrase opens the image (SIF_DECRYPT_FAILED otherwise) without decrypting its data. */
export async function checkDecryptionKey(path: string, opts: SifDecryptionKey & { image?: string }): Promise<void> {
  const image = opts.image ?? path;
  const { info } = locateEncrypted(path, image);
  (await unwrapDataKey(info, keyOptions(opts, image), image)).fill(0);
}

/**
 * Open the encrypted system partition of `path`: unwrap the data key (SIF_DECRYPT_FAILED for a
 * wrong key or passphrase), decrypt the partition into memory-backed storage, every chunk
 * authenticated before it is written, and return where the plaintext squashfs is. Nothing is
 * returned (and nothing is left) unless the whole partition authenticated.
 */
export async function openEncryptedSif(path: string, opts: OpenEncryptedOptions): Promise<OpenedEncryptedSif> {
  const image = opts.image ?? path;
  const { info, part } = locateEncrypted(path, image);
  const dataKey = await unwrapDataKey(info, keyOptions(opts, image), image);
  const root = opts.root ?? (process.getuid?.() ?? 0) === 0;
  let dir: string;
  let via: OpenedEncryptedSif['via'];
  let released = false;
  let undo: () => Promise<void>;
  if (root) {
    dir = opts.mountpoint ?? join(rootScratchParent(), scratchName());
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (readdirSync(dir).length > 0 || isMountpoint(dir)) throw scratchError(image, `${dir} is not an empty directory`, 'give an empty directory to mount the private tmpfs on');
    const size = info.plainSize + (opts.extraBytes ?? 0) + (1 << 20);
    const r = await run(opts.mountPath ?? tool('mount'), ['-t', 'tmpfs', '-o', `size=${size},mode=0700,nodev,nosuid,noexec,uid=0,gid=0`, 'warren-crypt', dir]);
    if (r.code !== 0) {
      rmdirQuiet(dir);
      throw scratchError(image, `mounting a private tmpfs on ${dir} failed: ${r.stderr.trim() || `exit ${r.code}`}`, 'check that this node allows tmpfs mounts (root, not in a restricted container)');
    }
    const umount = opts.umountPath ?? tool('umount');
    undo = async () => {
      await run(umount, [dir]);
      if (isMountpoint(dir)) await run(umount, ['-l', dir]);
      rmdirQuiet(dir);
    };
    via = 'tmpfs-mount';
  } else {
    const shm = opts.shmDir ?? '/dev/shm';
    assertMemoryBacked(shm, image);
    const parent = shmScratchParent(shm);
    privateParent(parent, image);
    dir = join(parent, scratchName());
    mkdirSync(dir, { mode: 0o700 });
    undo = async () => rmSync(dir, { recursive: true, force: true });
    via = 'shm';
  }
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await undo();
  };
  const file = join(dir, PLAIN_NAME);
  try {
    assertMemoryBacked(dir, image);
    const fh = await open(file, 'wx', 0o600);
    try {
      let pos = 0;
      for await (const chunk of decryptedChunks(path, part, info, dataKey, image)) {
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, pos);
          off += bytesWritten;
          pos += bytesWritten;
        }
      }
      if (pos !== info.plainSize) throw new WarrenError('SIF_DECRYPT_FAILED', `image ${image}: cannot decrypt: ${pos} bytes decrypted, expected ${info.plainSize}`, { hint: 'the image is damaged: get it again' });
    } finally {
      await fh.close();
    }
  } catch (e) {
    dataKey.fill(0);
    await release();
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw scratchError(image, `no room in ${dir} for the ${info.plainSize}-byte partition`, 'free memory in /dev/shm, or make its tmpfs larger');
    throw e;
  }
  dataKey.fill(0);
  return { path: file, dir, partition: { offset: 0, size: statSync(file).size }, source: { id: part.id, offset: part.offset, size: part.size }, via, release };
}

function rmdirQuiet(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    /* busy or gone: the sweep tries again */
  }
}

/**
 * Remove the scratch directories (tmpfs mounts and /dev/shm directories) that dead Warren
 * processes left: entries `w-<pid>-*` of `parents` whose pid is gone. Returns the paths removed.
 * Never throws.
 */
export async function sweepDecryptScratch(parents: string[] = [shmScratchParent(), rootScratchParent()], umountPath = tool('umount')): Promise<string[]> {
  const out: string[] = [];
  for (const parent of parents) {
    let names: string[] = [];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const name of names) {
      const m = OWNED.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      const dir = join(parent, name);
      try {
        if (isMountpoint(dir)) await run(umountPath, ['-l', dir]);
        if (!isMountpoint(dir)) {
          rmSync(dir, { recursive: true, force: true });
          out.push(dir);
        }
      } catch {
        /* best effort */
      }
    }
  }
  return out;
}
