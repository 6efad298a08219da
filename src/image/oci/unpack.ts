// Applying OCI layers (tar, tar+gzip, tar+zstd) onto a root file system directory, with
// OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`), hard links, symbolic links and file modes.
// Every path is resolved inside the root: a symlink in the tree can never make an entry
// land outside it (symlinks are followed as if the root were `/`).
//
//
// On a shared node the unpacked tree must give no local user more than they had:
// setuid/setgid bits are dropped (unless the node's admin sets `allow-setuid`), device
// nodes and FIFOs are never created, and an entry whose name (after whiteout decoding)
// would address the root itself, its parent or another directory is refused
// (IMAGE_LAYER_UNSAFE) before anything is removed or written. See
// docs/security.md.
//
// zstd: Node 20's zlib has no zstd, so zstd layers are decompressed by the `zstd` program
// (Debian package zstd), streamed; gzip uses node:zlib.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  createReadStream,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
  constants as fsc,
  type Stats,
} from 'node:fs';
import { join, posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { createRequire } from 'node:module';
import type TarStream from 'tar-stream';
// tar-stream (and its stream stack: ~12 modules) is loaded when a layer is read or written.
const tarStream = (): typeof TarStream => createRequire(import.meta.url)('tar-stream') as typeof TarStream;
import { WarrenError } from '../../common/index.js';

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';
const MAX_SYMLINK_HOPS = 40;

type EntryStream = AsyncIterable<unknown> & { resume(): unknown };

/** The setuid and setgid bits (the sticky bit, 0o1000, is kept: /tmp needs it). */
const SETID_BITS = 0o6000;

export interface RootfsWriterOptions {
  /**
   * Keep setuid/setgid bits of the layers (node setting `allow-setuid`); default false:
   * they are dropped, so no unpacked file runs with its owner's (root's) privileges.
   */
  allowSetuid?: boolean;
}

/** Thrown for a layer entry that tries to leave, or delete, the root: never a plain unpack error. */
function unsafeEntry(what: string, why: string): WarrenError {
  return new WarrenError('IMAGE_LAYER_UNSAFE', `refusing a layer of image ${what}: ${why}`, {
    hint: 'the image is malformed or hostile; do not run it. Rebuild it with a standard tool (docker/buildah/apptainer) or ask its author',
  });
}

/** A tar name as a list of components, or the reason it is refused (`..`, NUL). */
function checkEntryPath(raw: string): string | undefined {
  if (raw.includes('\0')) return 'contains a NUL byte';
  for (const c of raw.split('/')) if (c === '..') return "has a '..' component";
  return undefined;
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/** State kept across the layers of one image while unpacking. */
export class RootfsWriter {
  readonly root: string;
  private readonly isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  /** The process umask: files whose mode it does not touch need no chmod after open. */
  private readonly umask = process.umask();
  /** Directories this unpack created (empty when made): an entry in one exists only if this layer wrote it. */
  private readonly freshDirs = new Set<string>();
  /** Absolute paths known to be real directories (not symlinks) inside root. */
  private readonly realDirs = new Set<string>();
  /** Directory metadata, applied once at the end (so read-only dirs stay writable meanwhile). */
  private readonly dirMeta = new Map<string, { mode: number; mtime?: Date }>();
  /** Paths written by the layer being applied (for opaque whiteouts). */
  private layerPaths = new Set<string>();
  files = 0;
  bytes = 0;
  /** setuid/setgid bits dropped so far (files and directories). */
  setidDropped = 0;
  /** Device nodes and FIFOs skipped so far. */
  devicesSkipped = 0;
  private readonly allowSetuid: boolean;
  /** The image being unpacked, for messages. */
  private what = '';

  constructor(root: string, opts: RootfsWriterOptions = {}) {
    this.root = root;
    this.realDirs.add(root);
    this.allowSetuid = opts.allowSetuid === true;
  }

  /** `mode` with setuid/setgid dropped unless the node allows them. */
  private safeMode(mode: number): number {
    if (this.allowSetuid || (mode & SETID_BITS) === 0) return mode;
    this.setidDropped++;
    return mode & ~SETID_BITS;
  }

  private invalidate(abs: string): void {
    const prefix = abs + '/';
    for (const d of this.realDirs) if (d === abs || d.startsWith(prefix)) this.realDirs.delete(d);
    for (const d of this.dirMeta.keys()) if (d === abs || d.startsWith(prefix)) this.dirMeta.delete(d);
    for (const d of this.freshDirs) if (d === abs || d.startsWith(prefix)) this.freshDirs.delete(d);
  }

  /**
   * Resolve the directory `rel` (normalized, relative to root) to a real directory inside
   * root, following symlinks within the root, creating missing directories when `create`.
   * Returns undefined when it does not exist and `create` is false.
   */
  private resolveDir(rel: string, create: boolean, hops = 0): string | undefined {
    if (hops > MAX_SYMLINK_HOPS) throw new Error(`too many levels of symbolic links resolving /${rel}`);
    let cur = this.root;
    const parts = rel === '' || rel === '.' ? [] : rel.split('/');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (p === '' || p === '.') continue;
      if (p === '..') {
        if (cur !== this.root) cur = cur.slice(0, cur.lastIndexOf('/'));
        continue;
      }
      const next = join(cur, p);
      if (this.realDirs.has(next)) {
        cur = next;
        continue;
      }
      let st;
      try {
        st = lstatSync(next);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        if (!create) return undefined;
        mkdirSync(next, { mode: 0o755 });
        this.realDirs.add(next);
        this.freshDirs.add(next);
        cur = next;
        continue;
      }
      if (st.isDirectory()) {
        this.realDirs.add(next);
        cur = next;
      } else if (st.isSymbolicLink()) {
        const target = readlinkSync(next);
        const base = posix.isAbsolute(target) ? '' : cur.slice(this.root.length + 1);
        const joined = posix.normalize('/' + posix.join(base, target, ...parts.slice(i + 1))).slice(1);
        return this.resolveDir(joined, create, hops + 1);
      } else {
        if (!create) return undefined;
        unlinkSync(next);
        mkdirSync(next, { mode: 0o755 });
        this.realDirs.add(next);
        cur = next;
      }
    }
    return cur;
  }

  /** Remove `abs` (file, link or whole directory) without following symlinks. */
  private remove(abs: string, isDir: boolean): void {
    if (isDir) {
      this.invalidate(abs);
      rmSync(abs, { recursive: true, force: true });
    } else {
      try {
        unlinkSync(abs);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }

  /** Apply an opaque whiteout to `dirAbs`: drop everything not written by the current layer. */
  private opaque(dirAbs: string): void {
    let names: string[];
    try {
      names = readdirSync(dirAbs);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dirAbs, n);
      const st = lstatSync(p);
      if (!this.layerPaths.has(p)) this.remove(p, st.isDirectory());
      else if (st.isDirectory()) this.opaque(p);
    }
  }

  private async entry(h: TarStream.Header, stream: EntryStream): Promise<void> {
    const bad = checkEntryPath(h.name);
    if (bad) throw unsafeEntry(this.what, `entry '${h.name}' ${bad}`);
    const name = posix.normalize('/' + h.name).slice(1).replace(/\/+$/, '');
    if (name === '' || name === '.') {
      stream.resume();
      return;
    }
    const slash = name.lastIndexOf('/');
    const dirRel = slash < 0 ? '' : name.slice(0, slash);
    const base = slash < 0 ? name : name.slice(slash + 1);

    if (base === WH_OPAQUE) {
      stream.resume();
      const d = this.resolveDir(dirRel, false);
      if (d) this.opaque(d);
      return;
    }
    if (base.startsWith(WH_PREFIX)) {
      stream.resume();
      const target = base.slice(WH_PREFIX.length);
      // `.wh..` and `bin/.wh...` would name the directory itself or its parent (the root).
      if (target === '' || target === '.' || target === '..' || target.includes('/') || target.includes('\0')) {
        throw unsafeEntry(this.what, `whiteout '${h.name}' names '${target}', not an entry of its directory`);
      }
      const d = this.resolveDir(dirRel, false);
      if (!d) return;
      const victim = join(d, target);
      if (victim === this.root || !victim.startsWith(this.root + '/')) {
        throw unsafeEntry(this.what, `whiteout '${h.name}' resolves outside the image`);
      }
      if (this.layerPaths.has(victim)) return;
      const st = lstatOrUndefined(victim);
      if (st) this.remove(victim, st.isDirectory());
      return;
    }

    const parent = this.resolveDir(dirRel, true)!;
    const dest = join(parent, base);
    const seen = this.layerPaths.has(dest);
    this.layerPaths.add(dest);
    // In a directory this unpack created in this layer, only this layer's entries exist.
    const existing = this.freshDirs.has(parent) && !seen ? undefined : lstatOrUndefined(dest);
    const mode = this.safeMode((h.mode ?? 0o644) & 0o7777);
    const type = h.type ?? 'file';

    if (type === 'directory') {
      if (existing && !existing.isDirectory()) this.remove(dest, false);
      if (!existing || !existing.isDirectory()) {
        mkdirSync(dest, { mode: 0o755 });
        this.freshDirs.add(dest);
      }
      this.realDirs.add(dest);
      this.dirMeta.set(dest, { mode, ...(h.mtime ? { mtime: h.mtime } : {}) });
      if (this.isRoot) lchownSync(dest, h.uid ?? 0, h.gid ?? 0);
      stream.resume();
      return;
    }
    if (existing) this.remove(dest, existing.isDirectory());

    switch (type) {
      case 'file':
      case 'contiguous-file': {
        // Synchronous calls: one entry's few syscalls cost far less than thread-pool
        // round trips (20,000 small files: ~5x faster); the event loop runs between chunks.
        const fd = openSync(dest, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o777);
        try {
          for await (const chunk of stream) {
            const b = chunk as Buffer;
            let off = 0;
            while (off < b.length) off += writeSync(fd, b, off, b.length - off);
            this.bytes += b.length;
          }
          if (this.isRoot) fchownSync(fd, h.uid ?? 0, h.gid ?? 0);
          if ((mode & 0o7000) !== 0 || (mode & this.umask) !== 0) fchmodSync(fd, mode);
          if (h.mtime) futimesSync(fd, h.mtime, h.mtime);
        } finally {
          closeSync(fd);
        }
        this.files++;
        return;
      }
      case 'symlink': {
        stream.resume();
        symlinkSync(h.linkname ?? '', dest);
        if (this.isRoot) lchownSync(dest, h.uid ?? 0, h.gid ?? 0);
        if (h.mtime) {
          try {
            lutimesSync(dest, h.mtime, h.mtime);
          } catch {
            /* not supported everywhere */
          }
        }
        this.files++;
        return;
      }
      case 'link': {
        stream.resume();
        const badLink = checkEntryPath(h.linkname ?? '');
        if (badLink) throw unsafeEntry(this.what, `hard link '${h.name}' points to '${h.linkname}', which ${badLink}`);
        const target = posix.normalize('/' + (h.linkname ?? '')).slice(1);
        const ts = target.lastIndexOf('/');
        const tParent = this.resolveDir(ts < 0 ? '' : target.slice(0, ts), false);
        const tAbs = tParent ? join(tParent, ts < 0 ? target : target.slice(ts + 1)) : undefined;
        const tst = tAbs ? lstatOrUndefined(tAbs) : undefined;
        if (!tAbs || !tst || tst.isDirectory()) throw new Error(`hard link /${name} points to /${target}, which is not a file in the image`);
        linkSync(tAbs, dest);
        this.files++;
        return;
      }
      default:
        // Device nodes and FIFOs are never created (the container runtime provides /dev):
        // a device node in a cache that users can reach would bypass the node's devices.
        stream.resume();
        if (type === 'character-device' || type === 'block-device' || type === 'fifo') this.devicesSkipped++;
        this.layerPaths.delete(dest);
        return;
    }
  }

  /** Apply one layer blob (a tar stream, compressed as `compression`) on top of the tree. */
  async applyLayer(blobPath: string, compression: 'none' | 'gzip' | 'zstd', what: string): Promise<void> {
    this.what = what;
    this.layerPaths = new Set();
    this.freshDirs.clear();
    const src = createReadStream(blobPath, { highWaterMark: 1 << 20 });
    let decompressed: Readable;
    let child: ReturnType<typeof spawn> | undefined;
    let childErr = '';
    let childExit: Promise<number | null> = Promise.resolve(0);
    const stages: Promise<unknown>[] = [];
    if (compression === 'gzip') {
      const gz = createGunzip({ chunkSize: 1 << 17 });
      stages.push(pipeline(src, gz).catch((e) => gz.destroy(e)));
      decompressed = gz;
    } else if (compression === 'zstd') {
      child = spawn('zstd', ['-d', '-c', '-q', '--no-progress', blobPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      src.destroy();
      const spawnError = new Promise<never>((_, reject) => child!.once('error', reject));
      spawnError.catch(() => undefined);
      child.stderr!.on('data', (d: Buffer) => (childErr += d.toString()));
      childExit = new Promise<number | null>((resolve, reject) => {
        child!.once('close', (code) => resolve(code));
        child!.once('error', reject);
      });
      const pt = new PassThrough({ highWaterMark: 1 << 20 });
      child.stdout!.pipe(pt);
      decompressed = pt;
    } else {
      decompressed = src;
    }
    const extract = tarStream().extract();
    const feed = pipeline(decompressed, extract).catch((e: unknown) => {
      extract.destroy(e as Error);
    });
    try {
      for await (const e of extract) {
        await this.entry(e.header, e);
      }
      await feed;
      await Promise.all(stages);
      const code = await childExit;
      if (code !== 0) throw new Error(`zstd exited with status ${code}: ${childErr.trim()}`);
    } catch (e) {
      extract.destroy();
      child?.kill('SIGKILL');
      if (e instanceof WarrenError) throw e;
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT' && (err as { syscall?: string }).syscall?.startsWith('spawn')) {
        throw new WarrenError('IMAGE_ZSTD_MISSING', `layer of image ${what} is zstd-compressed but the zstd program is not installed`, {
          hint: 'install it (apt-get install zstd) and pull again',
        });
      }
      if (err.code === 'ENOSPC' || err.code === 'EACCES' || err.code === 'EPERM' || err.code === 'EROFS') throw e;
      throw new WarrenError('IMAGE_LAYER_INVALID', `cannot unpack a layer of image ${what}: ${err.message}${childErr ? ` (${childErr.trim()})` : ''}`, {
        hint: 'the layer is not a valid (compressed) tar archive; check the image with `skopeo inspect`, rebuild or push it again',
        cause: e,
      });
    }
  }

  /** Apply directory modes and times, deepest first. */
  async finish(): Promise<void> {
    const dirs = [...this.dirMeta.entries()].sort((a, b) => b[0].length - a[0].length);
    const realRoot = realpathSync(this.root);
    for (const [d, m] of dirs) {
      try {
        // chmod and utimes follow symlinks: touch only a real directory reached without one.
        if (!lstatSync(d).isDirectory() || realpathSync(d) !== realRoot + d.slice(this.root.length)) continue;
        chmodSync(d, m.mode);
        if (m.mtime) utimesSync(d, m.mtime, m.mtime);
      } catch {
        /* removed by a later layer */
      }
    }
  }
}
