// Interrupted downloads: DIR/partial/<urlhash>.partial with a small JSON beside it saying which
// URL and which version (ETag / Last-Modified / total length) the bytes belong to.
import { createHash, type Hash } from 'node:crypto';
import { readFile, rm, stat, open } from 'node:fs/promises';
import type { DataCache } from './cache.js';
import { writeFileAtomic, hashFile } from './fsutil.js';
import { fsError } from './errors.js';
import { classifyNetError, Progress } from './transfer.js';

export interface PartialMeta {
  uri: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

export interface PartialState {
  meta: PartialMeta | undefined;
  /** Bytes already in the partial file (0 when there is none or it cannot be trusted). */
  have: number;
  path: string;
}

export async function readPartial(cache: DataCache, uri: string): Promise<PartialState> {
  const path = cache.partialPath(uri);
  let meta: PartialMeta | undefined;
  try {
    meta = JSON.parse(await readFile(cache.partialMetaPath(uri), 'utf8')) as PartialMeta;
    if (meta.uri !== uri) meta = undefined;
  } catch {
    meta = undefined;
  }
  const st = await stat(path).catch(() => undefined);
  const have = meta && st ? st.size : 0;
  return { meta, have, path };
}

export async function resetPartial(cache: DataCache, uri: string): Promise<void> {
  await rm(cache.partialPath(uri), { force: true });
  await rm(cache.partialMetaPath(uri), { force: true });
}

export async function writePartialMeta(cache: DataCache, meta: PartialMeta): Promise<void> {
  try {
    await writeFileAtomic(cache.partialMetaPath(meta.uri), JSON.stringify(meta));
  } catch (e) {
    throw fsError(e, cache.partialMetaPath(meta.uri), meta.uri);
  }
}

/** The hash of the first `have` bytes already downloaded (read once, before the rest streams in). */
export async function prefixHash(path: string, have: number): Promise<Hash> {
  return have > 0 ? hashFile(path, have) : createHash('sha256');
}

export interface StreamTarget {
  path: string;
  append: boolean;
  uri: string;
  host: string;
  /** For messages: where the data finally goes. */
  dest?: string;
  hash: Hash;
  progress: Progress;
  signal?: AbortSignal | undefined;
}

/** Stream `body` into the partial file, hashing as it goes; fsync. Returns bytes written.
 *  Network errors become Transient (the bytes written so far stay for resuming), disk
 *  errors DATA_DISK_FULL / DATA_IO naming the file. */
export async function streamToFile(body: AsyncIterable<Uint8Array>, t: StreamTarget): Promise<number> {
  let fh;
  try {
    fh = await open(t.path, t.append ? 'a' : 'w', 0o644);
  } catch (e) {
    throw fsError(e, t.path, t.uri, t.dest);
  }
  let written = 0;
  const it = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (e) {
        throw classifyNetError(e, t.uri, t.host);
      }
      if (r.done) break;
      const chunk = r.value;
      try {
        let off = 0;
        while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
      } catch (e) {
        throw fsError(e, t.path, t.uri, t.dest);
      }
      t.hash.update(chunk);
      written += chunk.length;
      t.progress.add(chunk.length);
    }
    try {
      await fh.sync();
    } catch (e) {
      throw fsError(e, t.path, t.uri, t.dest);
    }
  } catch (e) {
    await it.return?.().catch(() => {});
    throw e;
  } finally {
    await fh.close().catch(() => {});
  }
  return written;
}
