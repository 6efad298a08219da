// Egress: upload a file of a volume to file://, http(s):// (PUT) or s3:// destinations.
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { TransferSpec } from '../workflow/types.js';
import type { DataOptions, EgressFn, TransferResult } from './types.js';
import { badUri, checksumMismatch, dataError, fsError, sizeMismatch, tooLarge } from './errors.js';
import { copyToTemp, hashFile, syncDir } from './fsutil.js';
import { httpPutAttempt } from './http.js';
import { checkSha256, credentials } from './ingress.js';
import { s3Client, s3PutAttempt } from './s3.js';
import { Progress, withRetries } from './transfer.js';
import { parseLocation, resolveInVolume, withName } from './uri.js';

const DEFAULT_TIMEOUT_MS = 30_000;

export const egress: EgressFn = async (t: TransferSpec, volumeRoot: string, opts: DataOptions): Promise<TransferResult> => {
  const srcLoc = parseLocation(t.source.uri);
  if (srcLoc.scheme !== 'file') throw badUri(t.source.uri, 'an egress source must be a file:// path in the volume');
  const dst = parseLocation(t.destination.uri);
  const uri = t.destination.uri;
  const expected = checkSha256(t);
  const srcPath = resolveInVolume(volumeRoot, srcLoc.path, t.source.uri);
  let st;
  try {
    st = await stat(srcPath);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw dataError('DATA_NOT_FOUND', `egress source ${t.source.uri} does not exist in the volume (${srcPath})`,
        'check that a job wrote this file into the volume, and the path in the egress section');
    }
    throw fsError(e, srcPath, t.source.uri);
  }
  if (!st.isFile()) {
    throw dataError('DATA_NOT_A_FILE', `egress source ${t.source.uri} (${srcPath}) is not a regular file`,
      'egress uploads single files: let a job archive the directory (tar) and egress the archive', { usage: true });
  }
  const size = st.size;
  // A declared size is checked, like the digest, before anything leaves the volume.
  if (t.sizeBytes !== undefined && size > t.sizeBytes) throw tooLarge(t.source.uri, { bytes: t.sizeBytes, fromSize: true }, { bytes: size, declared: true });
  if (t.sizeBytes !== undefined && size < t.sizeBytes) throw sizeMismatch(t.source.uri, t.sizeBytes, size);
  const progress = new Progress(uri, opts.onProgress, size);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const ctx = { uri, opts };
  // A declared digest is checked before anything leaves the volume.
  if (expected) {
    const actual = (await hashFile(srcPath)).digest('hex');
    if (actual !== expected) throw checksumMismatch(t.source.uri, expected, actual);
  }
  const name = basename(srcPath);
  const done = (target: string, sha256: string): TransferResult => {
    progress.set(size);
    progress.done();
    return { uri, target, bytes: size, sha256, cached: false };
  };

  if (dst.scheme === 'file') {
    const destPath = withName(dst.absolute ? dst.path : resolve(opts.baseDir ?? process.cwd(), dst.path) + (dst.path.endsWith('/') ? '/' : ''), name);
    let c;
    try {
      await mkdir(dirname(destPath), { recursive: true });
      c = await copyToTemp(srcPath, destPath, { onBytes: (n) => progress.add(n), signal: opts.signal });
    } catch (e) {
      throw fsError(e, destPath, t.source.uri);
    }
    try {
      await rename(c.tmp, destPath);
      await syncDir(dirname(destPath));
    } catch (e) {
      await rm(c.tmp, { force: true });
      throw fsError(e, destPath, t.source.uri);
    }
    return done(destPath, c.sha256);
  }

  const creds = credentials(t.destination.secret, opts, `egress to ${uri}`);
  if (dst.scheme === 'http') {
    if (dst.url.pathname.endsWith('/')) dst.url.pathname += encodeURIComponent(name);
    let sha = '';
    await withRetries(ctx, async () => {
      const hash = createHash('sha256');
      progress.set(0);
      await httpPutAttempt(srcPath, size, dst.url, uri, creds, timeoutMs, progress, hash, opts.signal);
      sha = hash.digest('hex');
    });
    return done(dst.url.toString(), sha);
  }

  const key = !dst.key || dst.key.endsWith('/') ? dst.key + name : dst.key;
  const client = s3Client(opts.s3, creds, timeoutMs);
  try {
    let sha = '';
    await withRetries(ctx, async () => {
      const hash = createHash('sha256');
      progress.set(0);
      await s3PutAttempt(client, srcPath, dst.bucket, key, uri, opts.s3, progress, hash, opts.signal);
      sha = hash.digest('hex');
    });
    return done(`s3://${dst.bucket}/${key}`, sha);
  } finally {
    client.destroy();
  }
};


