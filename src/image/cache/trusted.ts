// The trusted SIF store: immutable, content-addressed copies of SIF images that a trust policy
// checks and the container runtime mounts, so what runs is exactly what was verified.
//
//   DIR/                          0700, owned by the Warren user
//   DIR/<sha256>.sif              0400: the bytes, named by their SHA-256
//   DIR/<sha256>.<policy>.ok      0400: "verified under the key set <policy>" (JSON: signers)
//
// Assumption (docs/decisions.md): only the Warren user (and root) can write here: the directory
// is 0700 and the files 0400, both owned by the Warren user. A copy is checked cheaply before
// use (regular file, one link, our owner, no write bit, in a 0700 directory of ours); the bytes
// are hashed once, when they enter. A verdict is keyed by the content digest and the trusted
// key fingerprints, never by size, mtime or inode.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, copyFileSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../common/index.js';

export interface TrustedCopy {
  /** Path of the immutable copy. */
  path: string;
  /** sha256:<hex> of its bytes. */
  digest: string;
}

const HASH_CHUNK = 4 << 20;

function sha256OfFd(fd: number): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_CHUNK);
  let pos = 0;
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(n === buf.length ? buf : buf.subarray(0, n));
    pos += n;
  }
  return h.digest('hex');
}

function storeError(dir: string, why: string): WarrenError {
  return new WarrenError('IMAGE_TRUST_STORE_UNSAFE', `the trusted image store ${dir} cannot be trusted: ${why}`, {
    hint: `it must be a directory of the Warren user with mode 0700 holding files of mode 0400; remove it (\`rm -rf ${dir}\`) and run again, so Warren makes it afresh`,
  });
}

export class TrustedSifStore {
  private readonly uid = process.getuid?.() ?? 0;
  constructor(readonly dir: string) {}

  /** Make (or check) the store directory: ours, 0700, not a symlink. */
  private ensureDir(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw storeError(this.dir, `cannot create it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const st = lstatSync(this.dir);
    if (!st.isDirectory()) throw storeError(this.dir, 'it is not a directory');
    if (st.uid !== this.uid) throw storeError(this.dir, `it is owned by uid ${st.uid}, not by the Warren user (${this.uid})`);
    if ((st.mode & 0o777) !== 0o700) chmodSync(this.dir, 0o700);
  }

  /**
   * Copy the file at `src` into the store (one pass: copy, then hash the private copy, which
   * nobody else can write) and return the immutable copy named by its digest. The source may
   * change at any time; the copy is what was read.
   */
  admit(src: string): TrustedCopy {
    this.ensureDir();
    const tmp = join(this.dir, `.in-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      // A reflink where the file system has them, else a real copy.
      copyFileSync(src, tmp, constants.COPYFILE_FICLONE);
      chmodSync(tmp, 0o400);
      const fd = openSync(tmp, 'r');
      let hex: string;
      try {
        fsyncSync(fd);
        hex = sha256OfFd(fd);
      } finally {
        closeSync(fd);
      }
      const dest = this.pathOf(hex);
      if (existsSync(dest) && this.intact(dest)) rmSync(tmp, { force: true });
      else renameSync(tmp, dest);
      return { path: dest, digest: `sha256:${hex}` };
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  pathOf(hex: string): string {
    return join(this.dir, `${hex}.sif`);
  }

  /**
   * Cheap check that a copy still holds what its name says: a regular file (not a link) in
   * our 0700 directory, owned by us, with one link and no write permission. Under the store's
   * assumption only root could have changed it then.
   */
  intact(path: string): boolean {
    try {
      const d = lstatSync(this.dir);
      if (!d.isDirectory() || d.uid !== this.uid || (d.mode & 0o077) !== 0) return false;
      const st = lstatSync(path);
      return st.isFile() && st.uid === this.uid && st.nlink === 1 && (st.mode & 0o7777) === 0o400;
    } catch {
      return false;
    }
  }

  /** The recorded verdict for (digest, key set), if any: the signers. */
  verdict(copy: TrustedCopy, policyKey: string): string[] | undefined {
    const f = this.verdictPath(copy, policyKey);
    try {
      const fd = openSync(f, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        const st = fstatSync(fd);
        if (!st.isFile() || st.uid !== this.uid || (st.mode & 0o222) !== 0) return undefined;
        const v = JSON.parse(readFileSync(fd, 'utf8')) as { signers?: unknown };
        return Array.isArray(v.signers) && v.signers.every((s) => typeof s === 'string') ? (v.signers as string[]) : undefined;
      } finally {
        closeSync(fd);
      }
    } catch {
      return undefined;
    }
  }

  /** Record that the copy verified under the key set `policyKey`. */
  recordVerdict(copy: TrustedCopy, policyKey: string, signers: string[]): void {
    const f = this.verdictPath(copy, policyKey);
    const tmp = `${f}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify({ digest: copy.digest, signers, at: new Date().toISOString() }), { mode: 0o400, flag: 'wx' });
    renameSync(tmp, f);
  }

  private verdictPath(copy: TrustedCopy, policyKey: string): string {
    return join(this.dir, `${copy.digest.replace(/^sha256:/, '')}.${policyKey}.ok`);
  }
}
