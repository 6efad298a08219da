// HTTP(S) transfers with undici: streamed ranged downloads into the cache's partial file,
// and streamed PUT uploads.
import { createReadStream } from 'node:fs';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import type { DataCache } from './cache.js';
import { accessDenied, dataError, notFound, tooLarge } from './errors.js';
import { captureBody, prefixHash, readPartial, resetPartial, streamToPartial, writePartialMeta } from './partial.js';
import { classifyNetError, Progress, retryAfterMs, Transient } from './transfer.js';

let plain: Agent | undefined;
let redirecting: Dispatcher | undefined;
function dispatchers(): { plain: Agent; redirecting: Dispatcher } {
  plain ??= new Agent({ keepAliveTimeout: 2000, connect: { timeout: 15_000 } });
  redirecting ??= plain.compose(interceptors.redirect({ maxRedirections: 5 }));
  return { plain, redirecting };
}

export function authHeaders(creds: Record<string, string> | undefined): Record<string, string> {
  if (!creds) return {};
  if (creds.token) return { authorization: `Bearer ${creds.token}` };
  if (creds.username !== undefined && creds.password !== undefined) {
    return { authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` };
  }
  return {};
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Errors for a non-success HTTP status. */
export function statusError(uri: string, status: number, headers: Record<string, string | string[] | undefined>, hasCreds: boolean): Error {
  if (status === 404 || status === 410) return notFound(uri, `HTTP ${status}`);
  if (status === 401 || status === 403) {
    return accessDenied(uri, `HTTP ${status}${hasCreds ? ', with the credentials of the secret' : ', no credentials sent'}`);
  }
  if (status === 408 || status === 429 || status >= 500) {
    const ra = retryAfterMs(headers['retry-after']);
    return new Transient(`HTTP ${status}`, ra !== undefined ? { retryAfterMs: ra } : {});
  }
  return dataError('DATA_TRANSFER_FAILED', `${uri} answered HTTP ${status}`,
    'the server rejected the request: check the URL and the server', { details: { uri, status } });
}

async function drain(body: Dispatcher.ResponseData['body']): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    /* ignore */
  }
}

export interface HttpFetch {
  uri: string;
  url: URL;
  cache: DataCache;
  creds: Record<string, string> | undefined;
  /** ETag of a cached copy: revalidate with If-None-Match (a 304 means use the cache). */
  ifNoneMatch?: string | undefined;
  /** Last-Modified of a cached copy without ETag: revalidate with If-Modified-Since. */
  ifModifiedSince?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  progress: Progress;
  dest?: string;
  /** Largest body accepted (DataOptions.maxBytes, or the transfer's size when smaller). */
  limit?: { bytes: number; fromSize: boolean };
  stall?: { timeoutMs: number; minBytes: number };
}

export type HttpFetchResult =
  | { notModified: true }
  | { notModified: false; bytes: number; sha256: string; etag?: string; lastModified?: string; resumedFrom: number };

const strong = (etag: string | undefined): string | undefined => (etag && !etag.startsWith('W/') ? etag : undefined);

/** One attempt at downloading `f.url` into the cache's partial file, resuming what is there. */
export async function httpAttempt(f: HttpFetch): Promise<HttpFetchResult> {
  const host = f.url.host;
  let p = await readPartial(f.cache, f.uri);
  const validator = strong(p.meta?.etag) ?? p.meta?.lastModified;
  if (p.have > 0 && (!validator || (f.limit && p.have > f.limit.bytes))) {
    await resetPartial(f.cache, f.uri);
    p = { ...p, have: 0, meta: undefined };
  }
  // A partial that is already complete (we stopped between the last byte and the commit).
  if (p.have > 0 && p.meta?.total === p.have) {
    const hash = await prefixHash(p.path, p.have);
    f.progress.totalBytes = p.have;
    f.progress.set(p.have);
    return complete(p.have, hash.digest('hex'), p.meta, 0);
  }
  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...authHeaders(f.creds) };
  if (p.have > 0) {
    headers.range = `bytes=${p.have}-`;
    headers['if-range'] = validator!;
  } else if (f.ifNoneMatch) {
    headers['if-none-match'] = f.ifNoneMatch;
  } else if (f.ifModifiedSince) {
    headers['if-modified-since'] = f.ifModifiedSince;
  }
  let res: Dispatcher.ResponseData;
  try {
    res = await request(f.url, {
      method: 'GET',
      headers,
      dispatcher: dispatchers().redirecting,
      headersTimeout: f.timeoutMs,
      bodyTimeout: f.timeoutMs,
      ...(f.signal ? { signal: f.signal } : {}),
    });
  } catch (e) {
    throw classifyNetError(e, f.uri, host);
  }
  const st = res.statusCode;
  const h = res.headers;
  if (st === 304) {
    await drain(res.body);
    return { notModified: true };
  }
  if (st === 416 && p.have > 0) {
    await drain(res.body);
    await resetPartial(f.cache, f.uri);
    throw new Transient('the server refused to resume (HTTP 416); starting over', { retryAfterMs: 0 });
  }
  if (st < 200 || st >= 300) {
    await drain(res.body);
    throw statusError(f.uri, st, h, f.creds !== undefined);
  }
  const body = captureBody(res.body);
  const etag = header(h, 'etag');
  const lastModified = header(h, 'last-modified');
  let start = 0;
  let total: number | undefined;
  if (st === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(h, 'content-range') ?? '');
    if (!m || parseInt(m[1]!, 10) !== p.have) {
      body.destroy();
      await resetPartial(f.cache, f.uri);
      throw new Transient('the server answered a different range; starting over', { retryAfterMs: 0 });
    }
    start = p.have;
    if (m[3] !== '*') total = parseInt(m[3]!, 10);
  } else {
    const len = header(h, 'content-length');
    if (len !== undefined && /^\d+$/.test(len)) total = parseInt(len, 10);
  }
  if (f.limit && total !== undefined && total > f.limit.bytes) {
    body.destroy();
    await resetPartial(f.cache, f.uri);
    throw tooLarge(f.uri, f.limit, { bytes: total, declared: true });
  }
  const meta = { uri: f.uri, ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}), ...(total !== undefined ? { total } : {}) };
  if (start === 0) await resetPartial(f.cache, f.uri);
  await writePartialMeta(f.cache, meta);
  const hash = await prefixHash(p.path, start);
  f.progress.totalBytes = total;
  f.progress.set(start);
  const written = await streamToPartial(
    body,
    {
      path: p.path, append: start > 0, uri: f.uri, host, hash, progress: f.progress, signal: f.signal,
      ...(f.dest ? { dest: f.dest } : {}),
      ...(f.stall ? { stall: f.stall } : {}),
    },
    { cache: f.cache, start, limit: f.limit },
  );
  const bytes = start + written;
  if (total !== undefined && bytes < total) {
    throw new Transient(`connection closed after ${bytes} of ${total} bytes`);
  }
  return complete(bytes, hash.digest('hex'), meta, start);
}

function complete(bytes: number, sha256: string, meta: { etag?: string; lastModified?: string }, resumedFrom: number): HttpFetchResult {
  return {
    notModified: false, bytes, sha256, resumedFrom,
    ...(meta.etag ? { etag: meta.etag } : {}),
    ...(meta.lastModified ? { lastModified: meta.lastModified } : {}),
  };
}

/** One attempt at uploading `file` with PUT, hashing it as it streams. */
export async function httpPutAttempt(file: string, size: number, url: URL, uri: string, creds: Record<string, string> | undefined,
  timeoutMs: number, progress: Progress, hash: import('node:crypto').Hash, signal?: AbortSignal): Promise<void> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  stream.on('data', (c) => {
    hash.update(c as Buffer);
    progress.add((c as Buffer).length);
  });
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size), ...authHeaders(creds) },
      body: stream,
      dispatcher: dispatchers().plain,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ...(signal ? { signal } : {}),
    });
  } catch (e) {
    stream.destroy();
    throw classifyNetError(e, uri, url.host);
  }
  await drain(res.body);
  if (res.statusCode < 200 || res.statusCode >= 300) throw statusError(uri, res.statusCode, res.headers, creds !== undefined);
}
