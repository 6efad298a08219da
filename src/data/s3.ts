// S3 transfers with @aws-sdk/client-s3 (ranged GetObject for resuming) and
// @aws-sdk/lib-storage (multipart upload of large objects).
import { createReadStream } from 'node:fs';
import type { Hash } from 'node:crypto';
import { Transform } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { DataCache } from './cache.js';
import type { S3Options } from './types.js';
import { accessDenied, dataError, notFound, tooLarge } from './errors.js';
import { captureBody, prefixHash, readPartial, resetPartial, streamToPartial, writePartialMeta } from './partial.js';
import { classifyNetError, Progress, Transient } from './transfer.js';

/** Effective S3 settings: options, then WARREN_S3_ENDPOINT / WARREN_S3_FORCE_PATH_STYLE /
 *  AWS_REGION / AWS_DEFAULT_REGION, then AWS defaults. A custom endpoint implies path-style. */
export function s3Settings(o: S3Options | undefined, env: NodeJS.ProcessEnv = process.env): Required<Pick<S3Options, 'region' | 'forcePathStyle'>> & { endpoint?: string } {
  const endpoint = o?.endpoint ?? (env.WARREN_S3_ENDPOINT || undefined);
  const region = o?.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1');
  const fps = env.WARREN_S3_FORCE_PATH_STYLE;
  const forcePathStyle = o?.forcePathStyle ?? (fps !== undefined && fps !== '' ? /^(1|true|yes)$/i.test(fps) : endpoint !== undefined);
  return { region, forcePathStyle, ...(endpoint ? { endpoint } : {}) };
}

export function s3Client(o: S3Options | undefined, creds: Record<string, string> | undefined, timeoutMs: number): S3Client {
  // Warren targets Node 20; the SDK's notice about future Node versions is noise for users.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const s = s3Settings(o);
  const cfg: S3ClientConfig = {
    region: s.region,
    forcePathStyle: s.forcePathStyle,
    maxAttempts: 1, // Warren retries (and resumes) itself
    requestChecksumCalculation: 'WHEN_REQUIRED', // S3-compatible servers often lack the newer checksums
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { requestTimeout: timeoutMs, connectionTimeout: Math.min(timeoutMs, 15_000) },
  };
  if (s.endpoint) cfg.endpoint = s.endpoint;
  if (creds?.accessKeyId && creds.secretAccessKey) {
    cfg.credentials = { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, ...(creds.token ? { sessionToken: creds.token } : {}) };
  }
  return new S3Client(cfg);
}

function hostOf(o: S3Options | undefined): string {
  const s = s3Settings(o);
  if (s.endpoint) {
    try {
      return new URL(s.endpoint).host;
    } catch {
      return s.endpoint;
    }
  }
  return `s3.${s.region}.amazonaws.com`;
}

/** Map an SDK error to DATA_NOT_FOUND / DATA_ACCESS_DENIED / Transient / other. */
export function classifyS3Error(e: unknown, uri: string, o: S3Options | undefined): Error {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
  const status = err?.$metadata?.httpStatusCode;
  const name = err?.name ?? '';
  if (status === undefined || name === 'TimeoutError') return classifyNetError(e, uri, hostOf(o));
  if (name === 'NoSuchKey' || name === 'NoSuchBucket' || name === 'NotFound' || status === 404) {
    return notFound(uri, name === 'NoSuchBucket' ? 'no such bucket' : `S3 ${name || status}`);
  }
  if (status === 401 || status === 403 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Forbidden/.test(name)) {
    return accessDenied(uri, `S3 ${name || status}`);
  }
  if (status === 412 || name === 'PreconditionFailed') return new Transient('the object changed during the download; starting over', { retryAfterMs: 0 });
  if (status >= 500 || status === 429 || status === 408 || name === 'SlowDown' || name === 'RequestTimeout') {
    return new Transient(`S3 ${name || 'error'} (HTTP ${status})`);
  }
  return dataError('DATA_TRANSFER_FAILED', `S3 request for ${uri} failed: ${name} (HTTP ${status}): ${err.message ?? ''}`,
    'check the bucket, key and endpoint (WARREN_S3_ENDPOINT)', { cause: e });
}

export async function s3Head(client: S3Client, bucket: string, key: string, uri: string, o: S3Options | undefined, signal?: AbortSignal): Promise<{ etag: string | undefined; size: number }> {
  try {
    const r = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), signal ? { abortSignal: signal } : {});
    return { etag: r.ETag, size: r.ContentLength ?? 0 };
  } catch (e) {
    throw classifyS3Error(e, uri, o);
  }
}

export interface S3Fetch {
  uri: string;
  bucket: string;
  key: string;
  client: S3Client;
  s3: S3Options | undefined;
  cache: DataCache;
  /** From the HEAD just made: what we expect to download. */
  etag: string | undefined;
  size: number;
  progress: Progress;
  signal?: AbortSignal | undefined;
  dest?: string;
  limit?: { bytes: number; fromSize: boolean };
  stall?: { timeoutMs: number; minBytes: number };
}

/** One attempt at downloading the object into the partial file, resuming with a ranged
 *  GetObject guarded by If-Match (a changed object restarts the download). */
export async function s3Attempt(f: S3Fetch): Promise<{ bytes: number; sha256: string; etag: string | undefined; resumedFrom: number }> {
  if (f.limit && f.size > f.limit.bytes) {
    await resetPartial(f.cache, f.uri);
    throw tooLarge(f.uri, f.limit, { bytes: f.size, declared: true });
  }
  let p = await readPartial(f.cache, f.uri);
  if (p.have > 0 && (!f.etag || p.meta?.etag !== f.etag || p.have > f.size)) {
    await resetPartial(f.cache, f.uri);
    p = { ...p, have: 0, meta: undefined };
  }
  f.progress.totalBytes = f.size;
  if (p.have > 0 && p.have === f.size) {
    const hash = await prefixHash(p.path, p.have);
    f.progress.set(p.have);
    return { bytes: p.have, sha256: hash.digest('hex'), etag: f.etag, resumedFrom: p.have };
  }
  const start = p.have;
  let r;
  try {
    r = await f.client.send(new GetObjectCommand({
      Bucket: f.bucket, Key: f.key,
      ...(start > 0 ? { Range: `bytes=${start}-`, IfMatch: f.etag } : {}),
    }), f.signal ? { abortSignal: f.signal } : {});
  } catch (e) {
    const c = classifyS3Error(e, f.uri, f.s3);
    if (c instanceof Transient && /changed/.test(c.message)) await resetPartial(f.cache, f.uri);
    throw c;
  }
  const body = captureBody(r.Body as AsyncIterable<Uint8Array>);
  if (f.etag && r.ETag && r.ETag !== f.etag) {
    body.destroy?.();
    await resetPartial(f.cache, f.uri);
    throw new Transient('the object changed during the download; starting over', { retryAfterMs: 0 });
  }
  if (start > 0) {
    const m = /^bytes (\d+)-/.exec(r.ContentRange ?? '');
    if (!m || parseInt(m[1]!, 10) !== start) {
      body.destroy?.();
      await resetPartial(f.cache, f.uri);
      throw new Transient('the server ignored the range; starting over', { retryAfterMs: 0 });
    }
  } else {
    await resetPartial(f.cache, f.uri);
  }
  await writePartialMeta(f.cache, { uri: f.uri, ...(f.etag ? { etag: f.etag } : {}), total: f.size });
  const hash = await prefixHash(p.path, start);
  f.progress.set(start);
  const written = await streamToPartial(
    body,
    {
      path: p.path, append: start > 0, uri: f.uri, host: hostOf(f.s3), hash, progress: f.progress, signal: f.signal,
      ...(f.dest ? { dest: f.dest } : {}),
      ...(f.stall ? { stall: f.stall } : {}),
    },
    { cache: f.cache, start, limit: f.limit },
  );
  const bytes = start + written;
  if (bytes < f.size) throw new Transient(`connection closed after ${bytes} of ${f.size} bytes`);
  return { bytes, sha256: hash.digest('hex'), etag: r.ETag ?? f.etag, resumedFrom: start };
}

/** Upload `file` to s3://bucket/key (multipart above 8 MiB), hashing it as it streams. */
export async function s3PutAttempt(client: S3Client, file: string, bucket: string, key: string, uri: string, o: S3Options | undefined,
  progress: Progress, hash: Hash, signal?: AbortSignal): Promise<void> {
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      progress.add(chunk.length);
      cb(null, chunk);
    },
  });
  const src = createReadStream(file, { highWaterMark: 1 << 20 });
  src.on('error', (e) => tap.destroy(e));
  src.pipe(tap);
  const up = new Upload({
    client,
    params: { Bucket: bucket, Key: key, Body: tap, ContentType: 'application/octet-stream' },
    partSize: 8 * 1024 * 1024,
    queueSize: 4,
    leavePartsOnError: false,
  });
  const onAbort = (): void => void up.abort().catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await up.done();
  } catch (e) {
    src.destroy();
    throw classifyS3Error(e, uri, o);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
