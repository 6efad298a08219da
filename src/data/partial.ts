// Interrupted downloads: DIR/partial/<urlhash>.partial with a small JSON beside it saying which
// URL and which version (ETag / Last-Modified / total length) the bytes belong to.
import { createHash, type Hash } from 'node:crypto';
import { readFile, rm, stat, open } from 'node:fs/promises';
import type { DataCache } from './cache.js';
import { writeFileAtomic, hashFile } from './fsutil.js';
import { fsError, tooLarge } from './errors.js';
import { isWarrenError } from '../common/index.js';
import { classifyNetError, Progress, Transient } from './transfer.js';

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
  /** Abandon the attempt (Transient, stalled) when fewer than `minBytes` arrive within `timeoutMs`. */
  stall?: { timeoutMs: number; minBytes: number };
  /** At most this many bytes in this stream: more throws `error()` (the caller discards the partial). */
  cap?: { bytes: number; error: () => Error };
}

/** Watches a stream's byte count; `stalled` rejects when fewer than minBytes arrived in the last timeoutMs. */
class StallWatch {
  readonly stalled: Promise<never>;
  private timer: NodeJS.Timeout | undefined;
  private readonly samples: { t: number; n: number }[] = [];
  count = 0;
  /** `onStall` is told first (to destroy the body, which ends a pending read with the error). */
  constructor(private readonly o: { timeoutMs: number; minBytes: number }, onStall?: (e: Error) => void) {
    let reject!: (e: Error) => void;
    this.stalled = new Promise<never>((_, r) => (reject = r));
    const fail = (e: Error): void => {
      onStall?.(e);
      reject(e);
    };
    this.stalled.catch(() => {}); // observed through the race below
    const start = Date.now();
    this.samples.push({ t: start, n: 0 });
    const tick = Math.max(20, Math.min(1000, Math.floor(o.timeoutMs / 4)));
    this.timer = setInterval(() => {
      const now = Date.now();
      this.samples.push({ t: now, n: this.count });
      // Keep the newest sample at or before the window start, and everything after it.
      while (this.samples.length > 1 && this.samples[1]!.t <= now - o.timeoutMs) this.samples.shift();
      const first = this.samples[0]!;
      if (now - first.t >= o.timeoutMs && this.count - first.n < o.minBytes) {
        this.stop();
        const secs = o.timeoutMs / 1000;
        fail(new Transient(`stalled: ${this.count - first.n} byte${this.count - first.n === 1 ? '' : 's'} in the last ${secs} s (fewer than ${o.minBytes})`, { stalled: true }));
      }
    }, tick);
    this.timer.unref();
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

interface EmitterStream {
  on(ev: string, f: (...a: unknown[]) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

function isEmitterStream(b: unknown): b is EmitterStream {
  const o = b as Partial<EmitterStream> | null;
  return !!o && typeof o.on === 'function' && typeof o.pause === 'function' && typeof o.resume === 'function';
}

/** The chunks of a Node stream in order, then its error (if any) after every chunk that came before it. */
function drain(stream: EmitterStream, highWater = 4 * 1024 * 1024): AsyncIterator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let err: unknown = null;
  let ended = false;
  let wake: (() => void) | null = null;
  const notify = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  stream.on('data', (c: unknown) => {
    const chunk = c as Uint8Array;
    queue.push(chunk);
    queued += chunk.length;
    if (queued > highWater) stream.pause();
    notify();
  });
  stream.on('error', (e: unknown) => {
    if (err === null) err = e;
    notify();
  });
  stream.on('end', () => {
    ended = true;
    notify();
  });
  stream.on('close', () => {
    if (!ended && err === null) err = Object.assign(new Error('the connection closed before the body ended'), { code: 'ECONNRESET' });
    notify();
  });
  // It may have ended or failed before we listened (while the file was being opened).
  const st = stream as { errored?: unknown; destroyed?: boolean; readableEnded?: boolean };
  if (st.readableEnded) ended = true;
  else if (st.errored) err = st.errored;
  else if (st.destroyed) err = Object.assign(new Error('the connection closed before the body ended'), { code: 'ECONNRESET' });
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const c = queue.shift();
      if (c !== undefined) {
        queued -= c.length;
        if (queued <= highWater / 2) stream.resume();
        yield c;
        continue;
      }
      if (err !== null) throw err;
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
    }
  }
  return chunks();
}

/** Start reading a response body into our own queue now (see drain), so that what arrives
 *  while the caller still prepares the partial file is not lost if the connection drops. */
export function captureBody(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> & { destroy: (e?: Error) => void } {
  const raw = body as { on?: (ev: string, f: () => void) => void; destroy?: (e?: Error) => void };
  const it = isEmitterStream(body) ? drain(body) : body[Symbol.asyncIterator]();
  return {
    [Symbol.asyncIterator]: () => it,
    destroy: (e?: Error) => {
      raw.on?.('error', () => {}); // (destroying it reports an abort)
      raw.destroy?.(e);
    },
  };
}

/** Stream `body` into the partial file, hashing as it goes; fsync. Returns bytes written.
 *  Network errors become Transient (the bytes written so far stay for resuming), disk
 *  errors DATA_DISK_FULL / DATA_IO naming the file. */
export async function streamToFile(body: AsyncIterable<Uint8Array>, t: StreamTarget): Promise<number> {
  // A Node stream is read through its 'data' events into our own queue, from now on (before
  // the file is opened): when the connection drops, what arrived before the drop is still
  // written (a destroyed stream throws its buffer away), so a resume continues from every
  // byte received.
  const it = isEmitterStream(body) ? drain(body) : body[Symbol.asyncIterator]();
  let fh;
  try {
    fh = await open(t.path, t.append ? 'a' : 'w', 0o644);
  } catch (e) {
    (body as { destroy?: () => void }).destroy?.();
    throw fsError(e, t.path, t.uri, t.dest);
  }
  let written = 0;
  // A stall destroys the body with the Transient, which ends the pending read; only a body
  // that cannot be destroyed needs a race on every read.
  const destroyable = typeof (body as { destroy?: unknown }).destroy === 'function';
  const watch = t.stall && t.stall.timeoutMs > 0
    ? new StallWatch(t.stall, destroyable ? (e) => (body as unknown as { destroy: (e: Error) => void }).destroy(e) : undefined)
    : undefined;
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        const next = it.next();
        if (watch && !destroyable) {
          next.catch(() => {}); // a stalled read is abandoned; its late rejection is not an error
          r = await Promise.race([next, watch.stalled]);
        } else r = await next;
      } catch (e) {
        throw classifyNetError(e, t.uri, t.host);
      }
      if (r.done) break;
      const chunk = r.value;
      if (t.cap && written + chunk.length > t.cap.bytes) throw t.cap.error();
      if (watch) watch.count += chunk.length;
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
    watch?.stop();
    // Destroy the body (a stalled read is pending: return() alone would wait for it), which
    // also closes its connection.
    const stream = body as { destroy?: () => void; on?: (ev: string, f: () => void) => void };
    stream.on?.('error', () => {}); // (destroying it reports an abort)
    stream.destroy?.();
    const ret = it.return?.();
    if (ret) await Promise.race([ret.catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
    throw e;
  } finally {
    watch?.stop();
    await fh.close().catch(() => {});
  }
  return written;
}

/** `streamToFile` of a download resumed at `start` under a size limit: more than the limit
 *  is DATA_TOO_LARGE, and then the partial is discarded (nothing of it is kept). */
export async function streamToPartial(
  body: AsyncIterable<Uint8Array>,
  t: Omit<StreamTarget, 'cap'>,
  o: { cache: DataCache; start: number; limit?: { bytes: number; fromSize: boolean } | undefined },
): Promise<number> {
  const limit = o.limit;
  try {
    return await streamToFile(body, {
      ...t,
      ...(limit ? { cap: { bytes: limit.bytes - o.start, error: () => tooLarge(t.uri, limit, { bytes: limit.bytes, declared: false }) } } : {}),
    });
  } catch (e) {
    if (isWarrenError(e) && e.code === 'DATA_TOO_LARGE') await resetPartial(o.cache, t.uri);
    throw e;
  }
}
