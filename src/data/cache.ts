// The content-addressed download cache.
//
//   DIR/blobs/<sha256>          verified content, read-only (0444); volumes get hard links
//   DIR/entries/<key>.json      one per (URL, validator): CacheEntry + blob mtime
//   DIR/partial/<urlhash>.partial  an interrupted download, resumed with a ranged request
//   DIR/partial/<urlhash>.json  what the partial is: URL and validator (ETag / Last-Modified)
//   DIR/locks/<urlhash>.lock    one download of a URL at a time (across processes)
//
// key = sha256("sha256:" + declared digest) when the transfer declares sha256 (any URL
// with that digest hits, with no request at all), else sha256(URL + "\n" + validator)
// with validator `etag:<ETag>` (HTTP, S3), `file:<size>:<mtimeMs>` (file://) or
// `lm:<Last-Modified>:<length>` (HTTP without ETag).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheEntry } from './types.js';
import { syncDir, writeFileAtomic } from './fsutil.js';

export interface StoredEntry extends CacheEntry {
  validator: string;
  /** mtime of the blob when it was stored: a changed blob (written through a hard link) is not trusted. */
  blobMtimeMs: number;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

export function keyFor(uri: string, validator: string): string {
  return validator.startsWith('sha256:') ? sha(validator) : sha(`${uri}\n${validator}`);
}

export function urlHash(uri: string): string {
  return sha(uri).slice(0, 32);
}

export class DataCache {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  get blobsDir(): string { return join(this.dir, 'blobs'); }
  get entriesDir(): string { return join(this.dir, 'entries'); }
  get partialDir(): string { return join(this.dir, 'partial'); }
  get locksDir(): string { return join(this.dir, 'locks'); }
  blobPath(sha256: string): string { return join(this.blobsDir, sha256); }
  partialPath(uri: string): string { return join(this.partialDir, `${urlHash(uri)}.partial`); }
  partialMetaPath(uri: string): string { return join(this.partialDir, `${urlHash(uri)}.json`); }
  lockPath(uri: string): string { return join(this.locksDir, `${urlHash(uri)}.lock`); }

  private readEntry(file: string): StoredEntry | undefined {
    try {
      const e = JSON.parse(readFileSync(file, 'utf8')) as StoredEntry;
      return typeof e.key === 'string' && typeof e.sha256 === 'string' ? e : undefined;
    } catch {
      return undefined;
    }
  }

  private entries(): StoredEntry[] {
    let names: string[];
    try {
      names = readdirSync(this.entriesDir);
    } catch {
      return [];
    }
    const out: StoredEntry[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const e = this.readEntry(join(this.entriesDir, n));
      if (e) out.push(e);
    }
    return out;
  }

  /** All entries, most recently used first. */
  list(): CacheEntry[] {
    return this.entries()
      .sort((a, b) => b.lastUsed.localeCompare(a.lastUsed))
      .map(({ key, uri, bytes, sha256, etag, lastUsed }) => ({ key, uri, bytes, sha256, ...(etag !== undefined ? { etag } : {}), lastUsed }));
  }

  /** Entries of one URL (to revalidate with If-None-Match). */
  entriesFor(uri: string): StoredEntry[] {
    return this.entries().filter((e) => e.uri === uri);
  }

  /** A usable entry for `key`: its blob exists unchanged. Touches lastUsed. Drops a bad entry. */
  async lookup(key: string): Promise<(StoredEntry & { blob: string }) | undefined> {
    const file = join(this.entriesDir, `${key}.json`);
    const e = this.readEntry(file);
    if (!e) return undefined;
    const blob = this.blobPath(e.sha256);
    try {
      const st = await stat(blob);
      if (st.size !== e.bytes || Math.abs(st.mtimeMs - e.blobMtimeMs) > 1) throw new Error('blob changed');
    } catch {
      await rm(file, { force: true });
      return undefined;
    }
    e.lastUsed = new Date().toISOString();
    await writeFileAtomic(file, JSON.stringify(e, null, 1)).catch(() => {});
    return { ...e, blob };
  }

  /** Move a verified file (same file system as the cache) into blobs/ and record the entry. */
  async commit(file: string, entry: Omit<StoredEntry, 'blobMtimeMs' | 'lastUsed'>): Promise<StoredEntry & { blob: string }> {
    await mkdir(this.blobsDir, { recursive: true });
    await mkdir(this.entriesDir, { recursive: true });
    const blob = this.blobPath(entry.sha256);
    let st = await stat(blob).catch(() => undefined);
    if (st && st.size === entry.bytes) {
      await rm(file, { force: true }); // same content already stored
    } else {
      await chmod(file, 0o444);
      await rename(file, blob);
      await syncDir(this.blobsDir);
      st = await stat(blob);
    }
    const stored: StoredEntry = { ...entry, blobMtimeMs: st.mtimeMs, lastUsed: new Date().toISOString() };
    await writeFileAtomic(join(this.entriesDir, `${entry.key}.json`), JSON.stringify(stored, null, 1));
    return { ...stored, blob };
  }

  /** Remove entries (all, unused for `olderThanSec`, then least recently used until the
   *  cache holds at most `maxBytes`), blobs no entry refers to, and stale partial downloads. */
  prune(opts: { olderThanSec?: number; maxBytes?: number; all?: boolean } = {}): { removed: number; bytes: number } {
    const now = Date.now();
    let removed = 0;
    let bytes = 0;
    const entries = this.entries().sort((a, b) => a.lastUsed.localeCompare(b.lastUsed)); // LRU first
    const keep: StoredEntry[] = [];
    for (const e of entries) {
      const age = (now - Date.parse(e.lastUsed)) / 1000;
      if (opts.all || (opts.olderThanSec !== undefined && age > opts.olderThanSec)) {
        this.dropEntry(e);
        removed++;
      } else keep.push(e);
    }
    if (opts.maxBytes !== undefined) {
      const size = (list: StoredEntry[]): number => {
        const blobs = new Map(list.map((e) => [e.sha256, e.bytes]));
        let t = 0;
        for (const b of blobs.values()) t += b;
        return t;
      };
      while (keep.length > 0 && size(keep) > opts.maxBytes) {
        this.dropEntry(keep.shift()!);
        removed++;
      }
    }
    // Blobs nobody refers to any more.
    const live = new Set(keep.map((e) => e.sha256));
    for (const n of safeReaddir(this.blobsDir)) {
      if (live.has(n)) continue;
      const p = join(this.blobsDir, n);
      try {
        const st = statSync(p);
        rmSync(p, { force: true });
        bytes += st.size;
      } catch { /* raced */ }
    }
    // Partial downloads: all, or those untouched for olderThanSec.
    const partialMaxAge = opts.all ? -1 : opts.olderThanSec;
    if (partialMaxAge !== undefined) {
      for (const n of safeReaddir(this.partialDir)) {
        const p = join(this.partialDir, n);
        try {
          const st = statSync(p);
          if ((now - st.mtimeMs) / 1000 > partialMaxAge) {
            if (existsSync(join(this.locksDir, n.replace(/\.(partial|json)$/, '.lock')))) continue; // in use
            rmSync(p, { force: true });
            if (n.endsWith('.partial')) {
              bytes += st.size;
              removed++;
            }
          }
        } catch { /* raced */ }
      }
    }
    return { removed, bytes };
  }

  private dropEntry(e: StoredEntry): void {
    rmSync(join(this.entriesDir, `${e.key}.json`), { force: true });
  }

  /** Total bytes of blobs and partial downloads. */
  size(): number {
    let t = 0;
    for (const d of [this.blobsDir, this.partialDir]) {
      for (const n of safeReaddir(d)) {
        try { t += statSync(join(d, n)).size; } catch { /* raced */ }
      }
    }
    return t;
  }

  ensure(): void {
    for (const d of [this.blobsDir, this.entriesDir, this.partialDir, this.locksDir]) mkdirSync(d, { recursive: true });
  }
}

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

