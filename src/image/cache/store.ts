// The node's content-addressed image cache, shared by all jobs (and processes) of a node:
//
//   <dir>/blobs/sha256/<hex>        verified blobs (layers, configs), written via tmp + rename
//   <dir>/images/<hex>/             one entry per image manifest digest, made in tmp/ and
//        image.json                 renamed into place whole: no half-written entry survives
//        rootfs/ | image.sif        a crash (a crashed pull leaves only tmp/, cleaned later)
//   <dir>/refs/<sha256>.json        uri + platform -> manifest digest, last use
//   <dir>/locks/<hex>.lock          O_EXCL lock files holding the owner's pid
//   <dir>/tmp/<pid>-<random>        work in progress of a live process
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WarrenError, EXIT, warrenHome, pidAlive } from '../../common/index.js';
import { parseImageRef } from '../oci/ref.js';
import type { ImageConfig } from '../oci/types.js';

/** `$WARREN_HOME/cache/images`. */
export function defaultImageCacheDir(): string {
  return join(warrenHome(), 'cache', 'images');
}

/** The record stored as images/<hex>/image.json. */
export interface ImageRecord {
  schema: 1;
  digest: string;
  kind: 'rootfs' | 'sif';
  mediaType: string;
  platform?: string;
  config: ImageConfig;
  /** Blobs this image was made from (config and layers): kept by prune while the image is. */
  blobs: string[];
  /** Bytes of the unpacked rootfs or the SIF file. */
  sizeBytes: number;
  /** rootfs images: whether setuid/setgid bits were kept (`allow-setuid`) or dropped when unpacking. */
  setuid?: 'kept' | 'dropped';
  createdAt: string;
  /** The URI it was first pulled as. */
  source: string;
}

export interface RefRecord {
  uri: string;
  platform: string;
  digest: string;
  pulledAt: string;
  lastUsed: string;
}

export interface CachedImage {
  digest: string;
  kind: 'rootfs' | 'sif';
  /** rootfs directory or .sif file. */
  path: string;
  /** URIs (with platform) that resolve to this image; empty for an unreferenced image. */
  refs: { uri: string; platform: string; lastUsed: string }[];
  sizeBytes: number;
  createdAt: string;
  lastUsed: string;
  config: ImageConfig;
}

export interface PruneOptions {
  /** Remove every image (all refs), not only unreferenced ones. */
  all?: boolean;
  /** Remove refs not used for this many seconds. */
  olderThanSec?: number;
}

export interface PruneResult {
  images: string[];
  blobs: number;
  temp: number;
  bytes: number;
  /** Unreferenced blobs left because a pull was in progress. */
  skippedBlobs: number;
}

export interface RemoveResult {
  refs: string[];
  images: string[];
}

function hexOf(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(7) : digest;
}


function duBytes(p: string): number {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of readdirSync(p)) n += duBytes(join(p, e));
  return n;
}

/** rm -rf that also works as non-root on trees with read-only directories (images have them). */
function forceRemove(p: string): void {
  try {
    rmSync(p, { recursive: true, force: true });
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw e;
  }
  const makeWritable = (d: string): void => {
    let st;
    try {
      st = lstatSync(d);
    } catch {
      return;
    }
    if (!st.isDirectory()) return;
    try {
      chmodSync(d, 0o700);
    } catch {
      /* not ours */
    }
    for (const e of readdirSync(d)) makeWritable(join(d, e));
  };
  makeWritable(p);
  rmSync(p, { recursive: true, force: true });
}

/**
 * mkdir -p `dir` where every directory it creates is 0700, and tighten `dir` itself to
 * 0700 when it exists wider and belongs to this user (an older cache, made 0755).
 */
function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  const uid = process.getuid?.();
  if ((st.mode & 0o077) !== 0 && (uid === undefined || st.uid === uid)) chmodSync(dir, st.mode & 0o700);
}

const cleanedDirs = new Set<string>();

export class ImageCache {
  readonly dir: string;

  constructor(dir: string = defaultImageCacheDir()) {
    this.dir = dir;
  }

  /**
   * Create the layout, private to its owner (0700: unpacked images hold files of other
   * owners that no other local user may reach), and, once per process, remove leftovers of
   * dead processes. A cache made by an older Warren with a wider mode is tightened.
   */
  ensure(): void {
    makePrivateDir(this.dir);
    for (const d of ['blobs/sha256', 'images', 'refs', 'locks', 'tmp']) mkdirSync(join(this.dir, d), { recursive: true, mode: 0o700 });
    if (!cleanedDirs.has(this.dir)) {
      cleanedDirs.add(this.dir);
      this.cleanStale();
    }
  }

  /** Remove tmp entries and lock files whose owning process is gone; returns how many. */
  cleanStale(): number {
    let n = 0;
    const tmp = join(this.dir, 'tmp');
    for (const e of existsSync(tmp) ? readdirSync(tmp) : []) {
      const pid = parseInt(e.split('-')[0]!, 10);
      if (!pidAlive(pid)) {
        forceRemove(join(tmp, e));
        n++;
      }
    }
    const locks = join(this.dir, 'locks');
    for (const e of existsSync(locks) ? readdirSync(locks) : []) {
      try {
        const pid = parseInt(readFileSync(join(locks, e), 'utf8'), 10);
        if (!pidAlive(pid)) {
          unlinkSync(join(locks, e));
          n++;
        }
      } catch {
        /* raced with its owner */
      }
    }
    return n;
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  hasBlob(digest: string, size?: number): boolean {
    try {
      const st = statSync(this.blobPath(digest));
      return size === undefined || st.size === size;
    } catch {
      return false;
    }
  }

  /** A fresh path under tmp/ owned by this process (not created). */
  tmpPath(suffix = ''): string {
    return join(this.dir, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}${suffix}`);
  }

  /** Move a verified file into the blob store (atomic rename). */
  putBlob(tmpFile: string, digest: string): void {
    renameSync(tmpFile, this.blobPath(digest));
  }

  imageDir(digest: string): string {
    return join(this.dir, 'images', hexOf(digest));
  }

  readImage(digest: string): ImageRecord | undefined {
    try {
      const rec = JSON.parse(readFileSync(join(this.imageDir(digest), 'image.json'), 'utf8')) as ImageRecord;
      return rec && rec.digest ? rec : undefined;
    } catch {
      return undefined;
    }
  }

  /** Path of the rootfs or .sif of a cached image. */
  imagePath(rec: ImageRecord): string {
    return join(this.imageDir(rec.digest), rec.kind === 'sif' ? 'image.sif' : 'rootfs');
  }

  /** Rename a completed tmp entry (holding image.json) into images/; a concurrent winner is kept. */
  commitImage(tmpDir: string, digest: string): void {
    try {
      renameSync(tmpDir, this.imageDir(digest));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        forceRemove(tmpDir);
        return;
      }
      throw e;
    }
  }

  private refFile(uri: string, platform: string): string {
    return join(this.dir, 'refs', createHash('sha256').update(`${uri}\n${platform}`).digest('hex') + '.json');
  }

  getRef(uri: string, platform: string): RefRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.refFile(uri, platform), 'utf8')) as RefRecord;
    } catch {
      return undefined;
    }
  }

  putRef(rec: RefRecord): void {
    const file = this.refFile(rec.uri, rec.platform);
    const tmp = this.tmpPath('.ref');
    writeFileSync(tmp, JSON.stringify(rec) + '\n');
    renameSync(tmp, file);
  }

  /** Record that `uri` (for `platform`) now resolves to `digest`, used now. */
  recordUse(uri: string, platform: string, digest: string, pulled: boolean): void {
    const now = new Date().toISOString();
    const old = this.getRef(uri, platform);
    this.putRef({ uri, platform, digest, pulledAt: pulled || !old || old.digest !== digest ? now : old.pulledAt, lastUsed: now });
  }

  private allRefs(): { file: string; rec: RefRecord }[] {
    const d = join(this.dir, 'refs');
    const out: { file: string; rec: RefRecord }[] = [];
    for (const e of existsSync(d) ? readdirSync(d) : []) {
      if (!e.endsWith('.json')) continue;
      try {
        out.push({ file: join(d, e), rec: JSON.parse(readFileSync(join(d, e), 'utf8')) as RefRecord });
      } catch {
        /* a ref being replaced; skip */
      }
    }
    return out;
  }

  private allImages(): ImageRecord[] {
    const d = join(this.dir, 'images');
    const out: ImageRecord[] = [];
    for (const e of existsSync(d) ? readdirSync(d) : []) {
      const rec = this.readImage('sha256:' + e);
      if (rec) out.push(rec);
    }
    return out;
  }

  /** Take the lock `name` (O_EXCL lock file with our pid); waits up to `timeoutMs` for a live holder. */
  async lock(name: string, what: string, timeoutMs = 30 * 60_000): Promise<() => void> {
    const file = join(this.dir, 'locks', `${name}.lock`);
    const deadline = Date.now() + timeoutMs;
    let delay = 20;
    for (;;) {
      try {
        const fd = openSync(file, 'wx', 0o644);
        try {
          writeSync(fd, `${process.pid}\n`);
        } finally {
          closeSync(fd);
        }
        let released = false;
        return () => {
          if (released) return;
          released = true;
          try {
            unlinkSync(file);
          } catch {
            /* already gone */
          }
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder = NaN;
      try {
        holder = parseInt(readFileSync(file, 'utf8'), 10);
      } catch {
        continue; // released meanwhile
      }
      if (!Number.isNaN(holder) && !pidAlive(holder)) {
        // The holder died: move its lock aside (atomic), then retry.
        try {
          renameSync(file, `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`);
        } catch {
          /* someone else did */
        }
        for (const e of readdirSync(join(this.dir, 'locks'))) if (e.startsWith(`${name}.lock.stale-`)) rmSync(join(this.dir, 'locks', e), { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new WarrenError('IMAGE_LOCK_TIMEOUT', `timed out waiting for another pull of ${what} (process ${holder}) to finish`, {
          hint: `wait for process ${holder} to finish, or stop it; a lock of a dead process is removed automatically (${file})`,
        });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
    }
  }

  private liveLocks(): number {
    const d = join(this.dir, 'locks');
    let n = 0;
    for (const e of existsSync(d) ? readdirSync(d) : []) {
      try {
        if (pidAlive(parseInt(readFileSync(join(d, e), 'utf8'), 10))) n++;
      } catch {
        /* gone */
      }
    }
    return n;
  }

  /** Remove an image entry: renamed into tmp/ first, so no half-deleted entry is ever visible. */
  private dropImage(digest: string): number {
    const src = this.imageDir(digest);
    const rec = this.readImage(digest);
    const dst = this.tmpPath('-rm');
    try {
      renameSync(src, dst);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
    forceRemove(dst);
    return rec?.sizeBytes ?? 0;
  }

  /** All cached images with the refs that point at them, most recently used first. */
  list(): CachedImage[] {
    if (!existsSync(this.dir)) return [];
    const refs = this.allRefs();
    const out = this.allImages().map((rec): CachedImage => {
      const mine = refs.filter((r) => r.rec.digest === rec.digest).map((r) => ({ uri: r.rec.uri, platform: r.rec.platform, lastUsed: r.rec.lastUsed }));
      const lastUsed = mine.reduce((m, r) => (r.lastUsed > m ? r.lastUsed : m), rec.createdAt);
      return {
        digest: rec.digest,
        kind: rec.kind,
        path: this.imagePath(rec),
        refs: mine,
        sizeBytes: rec.sizeBytes,
        createdAt: rec.createdAt,
        lastUsed,
        config: rec.config,
      };
    });
    return out.sort((a, b) => (a.lastUsed < b.lastUsed ? 1 : a.lastUsed > b.lastUsed ? -1 : 0));
  }

  /**
   * Remove `ref` from the cache: an image URI (`docker://x:1`, or `x:1` for docker://)
   * drops that ref (every platform) and the image when nothing else refers to it; a digest
   * or a unique hex prefix (at least 6 digits) drops the image and all its refs.
   */
  remove(ref: string): RemoveResult {
    const parse = (s: string) => {
      const r = parseImageRef(s.includes('://') || s.startsWith('/') ? s : `docker://${s}`);
      return r.uri;
    };
    const refs = this.allRefs();
    const images = this.allImages();
    const out: RemoveResult = { refs: [], images: [] };
    const hex = /^(?:sha256:)?([0-9a-f]{6,64})$/.exec(ref.trim());
    if (hex) {
      const matches = images.filter((i) => hexOf(i.digest).startsWith(hex[1]!));
      if (matches.length > 1) {
        throw new WarrenError('IMAGE_REF_AMBIGUOUS', `'${ref}' matches ${matches.length} cached images`, {
          hint: 'give more digits of the digest (see `warren image ls --digests`)',
        });
      }
      if (matches.length === 1) {
        const d = matches[0]!.digest;
        for (const r of refs.filter((r) => r.rec.digest === d)) {
          rmSync(r.file, { force: true });
          out.refs.push(r.rec.uri);
        }
        this.dropImage(d);
        out.images.push(d);
        return out;
      }
    }
    let uri: string;
    try {
      uri = parse(ref);
    } catch (e) {
      if (hex) uri = ref;
      else throw e;
    }
    const hit = refs.filter((r) => r.rec.uri === uri);
    if (hit.length === 0) {
      throw new WarrenError('IMAGE_NOT_IN_CACHE', `image ${ref} is not in the image cache ${this.dir}`, {
        hint: 'see what is cached with `warren image ls`',
      });
    }
    const touched = new Set<string>();
    for (const r of hit) {
      rmSync(r.file, { force: true });
      out.refs.push(`${r.rec.uri} (${r.rec.platform})`);
      touched.add(r.rec.digest);
    }
    const remaining = this.allRefs();
    for (const d of touched) {
      if (!remaining.some((r) => r.rec.digest === d)) {
        this.dropImage(d);
        out.images.push(d);
      }
    }
    return out;
  }

  /** Garbage collection: unreferenced images, blobs no image needs, leftovers of dead processes. */
  prune(opts: PruneOptions = {}): PruneResult {
    const res: PruneResult = { images: [], blobs: 0, temp: 0, bytes: 0, skippedBlobs: 0 };
    if (!existsSync(this.dir)) return res;
    this.ensure();
    res.temp = this.cleanStale();
    const now = Date.now();
    for (const r of this.allRefs()) {
      const old = opts.olderThanSec !== undefined && now - Date.parse(r.rec.lastUsed) > opts.olderThanSec * 1000;
      if (opts.all || old) rmSync(r.file, { force: true });
    }
    const refs = this.allRefs();
    const keep = new Set<string>();
    for (const img of this.allImages()) {
      if (!refs.some((r) => r.rec.digest === img.digest)) {
        res.bytes += this.dropImage(img.digest);
        res.images.push(img.digest);
      } else {
        for (const b of img.blobs) keep.add(hexOf(b));
      }
    }
    const pulling = this.liveLocks() > 0;
    const bdir = join(this.dir, 'blobs', 'sha256');
    for (const b of readdirSync(bdir)) {
      if (keep.has(b)) continue;
      if (pulling) {
        res.skippedBlobs++;
        continue;
      }
      const p = join(bdir, b);
      try {
        res.bytes += statSync(p).size;
        unlinkSync(p);
        res.blobs++;
      } catch {
        /* gone */
      }
    }
    return res;
  }

  /** Bytes used by the cache directory (for `warren image ls`). */
  diskUsage(): number {
    return duBytes(this.dir);
  }
}
