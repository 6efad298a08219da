// File system helpers: atomic placement (temp name in the same directory, fsync, rename),
// hard link with copy fallback, streamed hashing, and a cross-process lock file.
import { createHash, randomBytes } from 'node:crypto';
import { constants as FS, closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { chmod, link, mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pidAlive } from '../common/index.js';
import type { LockWait } from './types.js';

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
/** Lock files this process holds now (absolute paths). */
const held = new Set<string>();

/** Who holds a lock: pid, the process's start time (/proc/PID/stat field 22, clock ticks
 *  since boot: a reused pid has another) and the host name. */
export interface LockOwner {
  pid: number;
  start: number | null;
  host: string;
}

/** Start time of process `pid` (field 22 of /proc/PID/stat), or null when it is gone or unknown. */
export function processStartTicks(pid: number | 'self'): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 2 (the command) is in parentheses and may hold spaces and parentheses itself.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]); // fields 3.. start at index 0: field 22 is index 19
    return Number.isSafeInteger(v) ? v : null;
  } catch {
    return null;
  }
}

let me: LockOwner | undefined;
function self(): LockOwner {
  me ??= { pid: process.pid, start: processStartTicks('self'), host: hostname() };
  return me;
}

/** The owner recorded in a lock file: JSON {pid, start, host}, or a bare pid (older Warren). */
export function parseLockOwner(text: string): LockOwner | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { pid: Number(t), start: null, host: '' };
  try {
    const o = JSON.parse(t) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || !Number.isSafeInteger(o.pid) || o.pid <= 0) return undefined;
    return { pid: o.pid, start: typeof o.start === 'number' ? o.start : null, host: typeof o.host === 'string' ? o.host : '' };
  } catch {
    return undefined;
  }
}

/** Boot time in ms since the epoch (/proc/stat btime), for turning start ticks into a date. */
function bootTimeMs(): number | null {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
    return m ? Number(m[1]) * 1000 : null;
  } catch {
    return null;
  }
}
const CLK_TCK = 100; // USER_HZ: 100 on every Linux architecture Node runs on

/**
 * Whether the lock's owner is certainly gone: its pid is dead, or it is alive but is another
 * process (its start time differs from the recorded one; for a bare-pid lock, it started
 * after the lock file was written). Locks of other hosts (a cache on a shared file system)
 * cannot be checked from here and are never stale. `mtimeMs`: the lock file's.
 */
export function lockIsStale(owner: LockOwner | undefined, mtimeMs: number, now = Date.now(), lockPath?: string): boolean {
  if (!owner) return now - mtimeMs > 10_000; // empty or garbled: its writer died between create and write
  const mine = self();
  if (owner.host !== '' && owner.host !== mine.host) return false;
  // This process: leaked (this process holds no such lock now), else held by another path spelling.
  if (owner.pid === mine.pid && (owner.start === null || owner.start === mine.start)) return lockPath !== undefined && !held.has(resolve(lockPath));
  if (!pidAlive(owner.pid)) return true;
  const start = processStartTicks(owner.pid);
  if (start === null) return false;
  if (owner.start !== null) return start !== owner.start;
  const boot = bootTimeMs();
  return boot !== null && boot + (start * 1000) / CLK_TCK > mtimeMs + 2000;
}

export interface LockOptions {
  signal?: AbortSignal | undefined;
  /** Told about a wait for another process's lock after `reportAfterMs`, then every 5 s (at most). */
  onWait?: (w: LockWait) => void;
  reportAfterMs?: number;
}

/** Run `fn` holding an exclusive lock on `lockPath` (in this process and across processes).
 *  A lock whose owner is gone (dead, or its pid reused by another process) is taken over. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, signalOrOpts?: AbortSignal | LockOptions): Promise<T> {
  const opts: LockOptions = signalOrOpts instanceof AbortSignal ? { signal: signalOrOpts } : (signalOrOpts ?? {});
  const signal = opts.signal;
  const prev = inProcess.get(lockPath) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chain = prev.then(() => mine);
  inProcess.set(lockPath, chain);
  await prev.catch(() => {});
  try {
    await mkdir(dirname(lockPath), { recursive: true });
    const began = Date.now();
    const reportAfter = opts.reportAfterMs ?? 3000;
    let nextReport = began + reportAfter;
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      signal?.throwIfAborted();
      try {
        const fd = openSync(lockPath, FS.O_CREAT | FS.O_EXCL | FS.O_WRONLY, 0o644);
        writeFileSync(fd, JSON.stringify(self()));
        closeSync(fd);
        held.add(resolve(lockPath));
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let text: string | undefined;
        let mtimeMs = Date.now();
        try {
          mtimeMs = statSync(lockPath).mtimeMs;
          text = readFileSync(lockPath, 'utf8');
        } catch { /* released meanwhile */ }
        if (text === undefined) continue;
        const owner = parseLockOwner(text);
        if (lockIsStale(owner, mtimeMs, Date.now(), lockPath)) {
          // Take it over, unless someone else did first (the content changed).
          let now: string | undefined;
          try { now = readFileSync(lockPath, 'utf8'); } catch { /* gone */ }
          if (now === text) await unlink(lockPath).catch(() => {});
          continue;
        }
        const t = Date.now();
        if (opts.onWait && t >= nextReport) {
          opts.onWait({ path: lockPath, pid: owner?.pid ?? 0, host: owner?.host || self().host, waitedMs: t - began });
          nextReport = t + Math.max(reportAfter, 5000);
        }
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    try {
      return await fn();
    } finally {
      held.delete(resolve(lockPath));
      await unlink(lockPath).catch(() => {});
    }
  } finally {
    release();
    if (inProcess.get(lockPath) === chain) inProcess.delete(lockPath);
  }
}
