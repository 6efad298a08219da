// File system helpers: atomic placement (temp name in the same directory, fsync, rename),
// hard link with copy fallback, streamed hashing, and a cross-process lock file.
import { createHash, randomBytes } from 'node:crypto';
import { constants as FS, closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, link, mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pidAlive } from '../common/index.js';

/** A fresh temporary name beside `path` (same directory, hence same file system). */
export function tempBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.warren-tmp-${randomBytes(6).toString('hex')}`);
}

/** fsync a directory so a rename inside it is durable. */
export async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // some file systems do not support fsync on directories
  } finally {
    await fh?.close();
  }
}

/** Write `data` to `path` atomically. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempBeside(path);
  try {
    const fh = await open(tmp, 'w', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
}

export interface CopyOptions {
  /** Called with each chunk's length. */
  onBytes?: (n: number) => void;
  signal?: AbortSignal | undefined;
  mode?: number;
}

/** Stream-copy `src` to a temp file beside `dest`, hashing as it goes; fsync; returns the
 *  temp path (the caller renames it into place or removes it). */
export async function copyToTemp(src: string, dest: string, opts: CopyOptions = {}): Promise<{ tmp: string; sha256: string; bytes: number }> {
  const tmp = tempBeside(dest);
  const hash = createHash('sha256');
  let bytes = 0;
  const input = await open(src, 'r');
  let out;
  try {
    out = await open(tmp, 'wx', opts.mode ?? 0o644);
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      opts.signal?.throwIfAborted();
      const { bytesRead } = await input.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      let off = 0;
      while (off < bytesRead) off += (await out.write(chunk, off, bytesRead - off)).bytesWritten;
      bytes += bytesRead;
      opts.onBytes?.(bytesRead);
    }
    await out.sync();
    await out.close();
    out = undefined;
  } catch (e) {
    await out?.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  } finally {
    await input.close();
  }
  return { tmp, sha256: hash.digest('hex'), bytes };
}

/** Hash a file (one sequential read). */
export async function hashFile(path: string, upTo?: number, hash = createHash('sha256')): Promise<ReturnType<typeof createHash>> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let left = upTo ?? Number.POSITIVE_INFINITY;
    while (left > 0) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      left -= bytesRead;
    }
  } finally {
    await fh.close();
  }
  return hash;
}

/** Place `blob` at `dest` atomically: hard link when possible (same file system), else a
 *  copy. Returns how it was placed. */
export async function placeFile(blob: string, dest: string, opts: CopyOptions = {}): Promise<'link' | 'copy'> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = tempBeside(dest);
  try {
    await link(blob, tmp);
    await rename(tmp, dest);
    // rename() of two links to one inode succeeds without doing anything: drop the temp name.
    await rm(tmp, { force: true });
    await syncDir(dirname(dest));
    return 'link';
  } catch (e) {
    await rm(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
  }
  const c = await copyToTemp(blob, dest, opts);
  try {
    if (opts.mode !== undefined) await chmod(c.tmp, opts.mode);
    await rename(c.tmp, dest);
  } catch (e) {
    await rm(c.tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(dest));
  return 'copy';
}


const inProcess = new Map<string, Promise<unknown>>();

/** Run `fn` holding an exclusive lock on `lockPath` (in this process and across processes;
 *  a lock left by a dead process is taken over). */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const prev = inProcess.get(lockPath) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chain = prev.then(() => mine);
  inProcess.set(lockPath, chain);
  await prev.catch(() => {});
  try {
    await mkdir(dirname(lockPath), { recursive: true });
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      signal?.throwIfAborted();
      try {
        const fd = openSync(lockPath, FS.O_CREAT | FS.O_EXCL | FS.O_WRONLY, 0o644);
        writeFileSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let holder = NaN;
        try { holder = parseInt(readFileSync(lockPath, 'utf8'), 10); } catch { /* racing */ }
        if (Number.isFinite(holder) && holder !== process.pid && !pidAlive(holder)) {
          await unlink(lockPath).catch(() => {});
          continue;
        }
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    try {
      return await fn();
    } finally {
      await unlink(lockPath).catch(() => {});
    }
  } finally {
    release();
    if (inProcess.get(lockPath) === chain) inProcess.delete(lockPath);
  }
}

