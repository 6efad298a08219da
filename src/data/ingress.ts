// Ingress: fetch a source (file://, http(s)://, s3://) into a volume through the cache.
import { resolve } from 'node:path';
import { chmod, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { parseDuration, parseSize, warrenHome } from '../common/index.js';
import type { TransferSpec } from '../workflow/types.js';
import type { DataOptions, IngressFn, TransferResult } from './types.js';
import { DataCache, keyFor, type StoredEntry } from './cache.js';
import { accessDenied, badUri, checksumMismatch, dataError, fsError, notFound, secretNotFound, sizeMismatch, tooLarge } from './errors.js';
import { copyToTemp, placeFile, withLock, type LockOptions } from './fsutil.js';
import { httpAttempt } from './http.js';
import { resetPartial } from './partial.js';
import { s3Attempt, s3Client, s3Head } from './s3.js';
import { defaultSecretResolver } from './secrets.js';
import { Progress, withRetries } from './transfer.js';
import { baseName, parseLocation, resolveInVolume, withName } from './uri.js';

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_STALL_MS = 60_000;
const DEFAULT_STALL_MIN_BYTES = 1024;
const DEFAULT_MAX_BYTES = 100 * 1024 ** 3;

function envSetting<T>(name: string, parse: (v: string) => T | undefined, example: string): T | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const x = parse(v);
  if (x === undefined) {
    throw dataError('DATA_BAD_OPTION', `${name}=${JSON.stringify(v)} is not valid`, `set it like ${name}=${example}, or unset it for the default`, { usage: true });
  }
  return x;
}

/** Stall timeout, stall floor and size limit of a transfer: options, then environment, then defaults. */
export function transferLimits(t: TransferSpec, opts: DataOptions): { stall: { timeoutMs: number; minBytes: number }; limit: { bytes: number; fromSize: boolean } } {
  const stallSec = envSetting('WARREN_DATA_STALL_TIMEOUT', (v) => parseDuration(v), '5m');
  const timeoutMs = opts.stallTimeoutMs ?? (stallSec !== undefined ? stallSec * 1000 : DEFAULT_STALL_MS);
  const max = opts.maxBytes ?? envSetting('WARREN_DATA_MAX_SIZE', (v) => { const n = parseSize(v); return n !== undefined && n > 0 ? n : undefined; }, '500GiB') ?? DEFAULT_MAX_BYTES;
  const size = t.sizeBytes;
  const limit = size !== undefined && size <= max ? { bytes: size, fromSize: true } : { bytes: max, fromSize: false };
  return { stall: { timeoutMs, minBytes: opts.stallMinBytes ?? DEFAULT_STALL_MIN_BYTES }, limit };
}

export function checkSha256(t: TransferSpec): string | undefined {
  if (t.sha256 === undefined) return undefined;
  if (!/^[0-9a-fA-F]{64}$/.test(t.sha256)) {
    throw dataError('DATA_BAD_CHECKSUM', `sha256 '${t.sha256}' of ${t.source.uri} is not 64 hex digits`,
      'write the SHA-256 digest as printed by `sha256sum FILE`', { usage: true });
  }
  return t.sha256.toLowerCase();
}

export function credentials(ref: string | undefined, opts: DataOptions, where: string): Record<string, string> | undefined {
  if (!ref) return undefined;
  const resolver = opts.secrets ?? defaultSecretResolver(warrenHome());
  const c = resolver(ref);
  if (!c) throw secretNotFound(ref, where);
  return c;
}

/** Hard-link (or copy) a cached blob to the destination; read-only, like the blob. */
async function place(blob: string, dest: string, uri: string, opts: DataOptions): Promise<void> {
  try {
    await placeFile(blob, dest, { mode: 0o444, signal: opts.signal });
  } catch (e) {
    throw fsError(e, dest, uri);
  }
}

/** An ingress whose source is one of the workflow's inline `files:` (`file://NAME`): its
 *  content is written into the volume, with the same size and checksum checks. */
async function inlineIngress(t: TransferSpec & { inlineFile: { name: string; content: string } }, volumeRoot: string): Promise<TransferResult> {
  const uri = t.source.uri;
  const dl = parseLocation(t.destination.uri);
  if (dl.scheme !== 'file') throw badUri(t.destination.uri, 'an ingress destination must be a file:// path in the volume');
  const expected = checkSha256(t);
  const dest = resolveInVolume(volumeRoot, withName(dl.path, t.inlineFile.name), t.destination.uri);
  const body = Buffer.from(t.inlineFile.content, 'utf8');
  const sha256 = createHash('sha256').update(body).digest('hex');
  if (t.sizeBytes !== undefined && body.length !== t.sizeBytes) throw sizeMismatch(uri, t.sizeBytes, body.length);
  if (expected && sha256 !== expected) throw checksumMismatch(uri, expected, sha256);
  const tmp = `${dest}.warren-${process.pid}-${Date.now()}.tmp`;
  try {
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(tmp, body, { mode: 0o444 });
    await chmod(tmp, 0o444);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw fsError(e, dest, uri);
  }
  return { uri, target: dest, bytes: body.length, sha256, cached: false };
}

export const ingress: IngressFn = async (t: TransferSpec, volumeRoot: string, opts: DataOptions): Promise<TransferResult> => {
  if (t.inlineFile) return inlineIngress({ ...t, inlineFile: t.inlineFile }, volumeRoot);
  const uri = t.source.uri;
  const src = parseLocation(uri);
  const dl = parseLocation(t.destination.uri);
  if (dl.scheme !== 'file') throw badUri(t.destination.uri, 'an ingress destination must be a file:// path in the volume');
  const expected = checkSha256(t);
  const name = baseName(src);
  if (dl.path.endsWith('/') && !name) throw badUri(t.destination.uri, `names a directory and ${uri} has no file name to put in it`);
  const dest = resolveInVolume(volumeRoot, withName(dl.path, name), t.destination.uri);
  const cache = new DataCache(opts.cacheDir);
  const creds = credentials(t.source.secret, opts, `ingress of ${uri}`);
  const progress = new Progress(uri, opts.onProgress);
  const shaKey = expected ? keyFor(uri, `sha256:${expected}`) : undefined;
  const ctx = { uri, opts };
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { stall, limit } = transferLimits(t, opts);
  const size = t.sizeBytes;
  const lockOpts: LockOptions = {
    signal: opts.signal,
    ...(opts.lockWaitReportMs !== undefined ? { reportAfterMs: opts.lockWaitReportMs } : {}),
    ...(opts.onProgress ? { onWait: (w) => opts.onProgress?.({ uri, bytes: 0, kind: 'waiting-lock', lock: w }) } : {}),
  };

  const hit = async (e: StoredEntry & { blob: string }): Promise<TransferResult> => {
    if (size !== undefined && e.bytes !== size) throw sizeMismatch(uri, size, e.bytes);
    await place(e.blob, dest, uri, opts);
    progress.totalBytes = e.bytes;
    progress.set(e.bytes);
    progress.done();
    return { uri, target: dest, bytes: e.bytes, sha256: e.sha256, cached: true };
  };
  /** Verify the downloaded file, move it into the cache, place it. */
  const finish = async (file: string, keyUri: string, r: { bytes: number; sha256: string; etag?: string | undefined }, validator: string | undefined, partial: boolean): Promise<TransferResult> => {
    if (size !== undefined && r.bytes !== size) {
      if (partial) await resetPartial(cache, keyUri);
      else await rm(file, { force: true });
      throw sizeMismatch(uri, size, r.bytes);
    }
    if (expected && r.sha256 !== expected) {
      if (partial) await resetPartial(cache, keyUri);
      else await rm(file, { force: true });
      throw checksumMismatch(uri, expected, r.sha256);
    }
    const key = shaKey ?? keyFor(keyUri, validator ?? `sha256:${r.sha256}`);
    let e;
    try {
      e = await cache.commit(file, {
        key, uri: keyUri, bytes: r.bytes, sha256: r.sha256, validator: validator ?? `sha256:${r.sha256}`,
        ...(r.etag ? { etag: r.etag } : {}),
      });
      if (partial) await resetPartial(cache, keyUri);
    } catch (err) {
      throw fsError(err, cache.blobsDir, uri, dest);
    }
    await place(e.blob, dest, uri, opts);
    progress.totalBytes = r.bytes;
    progress.set(r.bytes);
    progress.done();
    return { uri, target: dest, bytes: r.bytes, sha256: r.sha256, cached: false };
  };

  if (shaKey) {
    const e = await cache.lookup(shaKey);
    if (e) return hit(e);
  }

  if (src.scheme === 'file') {
    const path = src.absolute ? src.path : resolve(opts.baseDir ?? process.cwd(), src.path);
    const keyUri = `file://${path}`;
    let st;
    try {
      st = await stat(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw notFound(uri, `no such file: ${path}`);
      if (code === 'EACCES' || code === 'EPERM') throw accessDenied(uri, `cannot read ${path}`);
      throw fsError(e, path, uri);
    }
    if (!st.isFile()) {
      throw dataError('DATA_NOT_A_FILE', `ingress source ${uri} (${path}) is not a regular file`,
        'ingress copies single files: archive a directory (tar) and ingress the archive', { usage: true });
    }
    if (st.size > limit.bytes) throw tooLarge(uri, limit, { bytes: st.size, declared: true });
    const validator = `file:${st.size}:${st.mtimeMs}`;
    const key = shaKey ?? keyFor(keyUri, validator);
    const e = await cache.lookup(key);
    if (e) return hit(e);
    return withLock(cache.lockPath(keyUri), async () => {
      const again = await cache.lookup(key);
      if (again) return hit(again);
      progress.totalBytes = st.size;
      let c;
      try {
        await mkdir(cache.partialDir, { recursive: true });
        c = await copyToTemp(path, cache.partialPath(keyUri), { onBytes: (n) => progress.add(n), signal: opts.signal });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EACCES' || code === 'EPERM') throw accessDenied(uri, `cannot read ${path}`);
        throw fsError(err, cache.partialDir, uri, dest);
      }
      return finish(c.tmp, keyUri, c, validator, false);
    }, lockOpts);
  }

  if (src.scheme === 'http') {
    return withLock(cache.lockPath(uri), async () => {
      if (shaKey) {
        const again = await cache.lookup(shaKey);
        if (again) return hit(again);
      }
      // Revalidate the most recent cached copy of this URL (If-None-Match, else If-Modified-Since).
      let cand = shaKey ? undefined : cache.entriesFor(uri).filter((x) => x.validator.startsWith('etag:') || x.validator.startsWith('lm:'))
        .sort((a, b) => b.lastUsed.localeCompare(a.lastUsed))[0];
      for (;;) {
        const lm = cand?.validator.startsWith('lm:') ? cand.validator.slice(3, cand.validator.lastIndexOf(':')) : undefined;
        const r = await withRetries(ctx, () => httpAttempt({
          uri, url: src.url, cache, creds, ifNoneMatch: cand?.validator.startsWith('etag:') ? cand.validator.slice(5) : undefined,
          ifModifiedSince: lm, timeoutMs, signal: opts.signal, progress, dest, stall, limit,
        }));
        if (r.notModified) {
          const e = cand ? await cache.lookup(cand.key) : undefined;
          if (e) return hit(e);
          cand = undefined; // the cached copy vanished meanwhile: download
          continue;
        }
        const validator = r.etag && !r.etag.startsWith('W/') ? `etag:${r.etag}` : r.lastModified ? `lm:${r.lastModified}:${r.bytes}` : r.etag ? `etag:${r.etag}` : undefined;
        return finish(cache.partialPath(uri), uri, r, validator, true);
      }
    }, lockOpts);
  }

  // s3://
  if (!src.key || src.key.endsWith('/')) throw badUri(uri, 'names no object key (ingress fetches single objects)');
  const client = s3Client(opts.s3, creds, timeoutMs);
  try {
    let head = await withRetries(ctx, () => s3Head(client, src.bucket, src.key, uri, opts.s3, opts.signal));
    const key = shaKey ?? (head.etag ? keyFor(uri, `etag:${head.etag}`) : undefined);
    if (key) {
      const e = await cache.lookup(key);
      if (e) return hit(e);
    }
    return await withLock(cache.lockPath(uri), async () => {
      if (key) {
        const again = await cache.lookup(key);
        if (again) return hit(again);
      }
      const r = await withRetries(ctx, async (attempt) => {
        if (attempt > 1) head = await s3Head(client, src.bucket, src.key, uri, opts.s3, opts.signal);
        return s3Attempt({ uri, bucket: src.bucket, key: src.key, client, s3: opts.s3, cache, etag: head.etag, size: head.size, progress, signal: opts.signal, dest, stall, limit });
      });
      return finish(cache.partialPath(uri), uri, r, r.etag ? `etag:${r.etag}` : undefined, true);
    }, lockOpts);
  } finally {
    client.destroy();
  }
};
