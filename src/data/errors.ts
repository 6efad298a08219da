// Typed errors of the data subsystem (catalogued in docs/errors/data.md).
import { EXIT, WarrenError, isWarrenError, type ErrorCode } from '../common/index.js';

export function dataError(code: ErrorCode, message: string, hint: string, opts: { usage?: boolean; cause?: unknown; details?: Record<string, unknown> } = {}): WarrenError {
  return new WarrenError(code, message, {
    hint,
    ...(opts.cause !== undefined ? { cause: opts.cause } : {}),
    ...(opts.details ? { details: opts.details } : {}),
  });
}

export function badUri(uri: string, why: string): WarrenError {
  return dataError('DATA_BAD_URI', `invalid data URI '${uri}': ${why}`,
    'use file://PATH, http(s)://HOST/PATH or s3://BUCKET/KEY (see docs/data.md)', { usage: true });
}

export function pathEscape(uri: string, root: string): WarrenError {
  return dataError('DATA_PATH_ESCAPE', `path '${uri}' leaves the volume root ${root}`,
    'volume paths are relative to the volume root: remove `..` components and symbolic links that point outside it', { usage: true });
}

export function notFound(uri: string, detail: string): WarrenError {
  return dataError('DATA_NOT_FOUND', `${uri} was not found (${detail})`,
    'check the URL, bucket and key (or file path) for typos, and that the object exists');
}

export function accessDenied(uri: string, detail: string): WarrenError {
  return dataError('DATA_ACCESS_DENIED', `access to ${uri} was denied (${detail})`,
    'give the transfer a `secret:` with valid credentials (docs/data.md#secrets), or check the permissions of the object');
}

export function checksumMismatch(uri: string, expected: string, actual: string): WarrenError {
  return dataError('DATA_CHECKSUM_MISMATCH', `sha256 of ${uri} is ${actual}, expected ${expected}`,
    'the content changed or the declared sha256 is wrong: fix the `sha256:` in the workflow or the source; nothing was kept',
    { details: { uri, expected, actual } });
}

export function diskFull(path: string, uri: string, cause: unknown, dest?: string): WarrenError {
  const into = dest && dest !== path ? ` into ${dest}` : '';
  return dataError('DATA_DISK_FULL', `no space left on device writing ${path} (transfer of ${uri}${into})`,
    'free space on that file system, or put the volume / WARREN_HOME on a larger one, then run the workflow again (an interrupted download resumes)',
    { cause, details: { path, uri } });
}

export function transferFailed(uri: string, reason: string, attempts: number, cause?: unknown): WarrenError {
  return dataError('DATA_TRANSFER_FAILED', `transfer of ${uri} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reason}`,
    'this looked temporary (server error, dropped connection, timeout): retry later, or raise the retries; a partial download resumes',
    { cause, details: { uri, reason, attempts } });
}

export function stalled(uri: string, reason: string, attempts: number): WarrenError {
  return dataError('DATA_STALLED', `transfer of ${uri} stalled on all ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reason}`,
    'the server sends (almost) nothing: check it, or raise the stall timeout (WARREN_DATA_STALL_TIMEOUT, e.g. 5m); a partial download resumes',
    { details: { uri, reason, attempts } });
}

/** A body longer than the limit: the workflow's `size:` or the largest download accepted. */
export function tooLarge(uri: string, limit: { bytes: number; fromSize: boolean }, got: { bytes: number; declared: boolean }): WarrenError {
  const what = limit.fromSize ? `the size the workflow gives (size: ${limit.bytes} bytes)` : `the download limit of ${limit.bytes} bytes`;
  const seen = got.declared ? `its size is ${got.bytes} bytes` : `more than ${limit.bytes} bytes arrived`;
  return dataError('DATA_TOO_LARGE', `${uri} is larger than ${what}: ${seen}; nothing was kept`,
    limit.fromSize
      ? 'fix the `size:` of the transfer in the workflow, or the source if it is not what you expect'
      : 'raise the limit (WARREN_DATA_MAX_SIZE, e.g. 500GiB) if this download is expected to be that large, or check the URL',
    { details: { uri, limit: limit.bytes, got: got.bytes, declared: got.declared, fromSize: limit.fromSize } });
}

export function sizeMismatch(uri: string, expected: number, actual: number): WarrenError {
  return dataError('DATA_SIZE_MISMATCH', `${uri} has ${actual} bytes, but the workflow gives size: ${expected}; nothing was kept`,
    'fix the `size:` of the transfer in the workflow, or the source if it was truncated',
    { details: { uri, expected, actual } });
}

export function unreachable(uri: string, host: string, reason: string, cause?: unknown): WarrenError {
  return dataError('DATA_UNREACHABLE', `cannot reach ${host} for ${uri}: ${reason}`,
    'check the host name and port, that the server is running, and that this machine can reach it (proxy, firewall)',
    { cause, details: { uri, host } });
}

/** Rethrow WarrenErrors unchanged; map well-known file system errors on `path`. */
export function fsError(e: unknown, path: string, uri: string, dest?: string): WarrenError {
  if (isWarrenError(e)) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return diskFull(path, uri, e, dest);
  if (code === 'ABORT_ERR' || (e as Error).name === 'AbortError') return canceled(uri, e);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return dataError('DATA_PERMISSION', `cannot write ${path} for ${uri}: ${(e as Error).message}`,
      'check the permissions of the volume or cache directory (WARREN_HOME)', { cause: e });
  }
  return dataError('DATA_IO', `I/O error on ${path} for ${uri}: ${(e as Error).message}`,
    'check the file system holding that path', { cause: e });
}

export function canceled(uri: string, cause?: unknown): WarrenError {
  return new WarrenError('DATA_CANCELED', `transfer of ${uri} was canceled`, {
    hint: 'run the workflow again to continue; a partial download resumes',
    ...(cause !== undefined ? { cause } : {}),
  });
}

export function secretNotFound(ref: string, where: string): WarrenError {
  return dataError('DATA_SECRET_NOT_FOUND', `secret '${ref}' needed for ${where} is not defined`,
    'create $WARREN_HOME/secrets/NAME.json (mode 600) or set WARREN_SECRET_<NAME>_<KEY> variables (docs/data.md#secrets)', { usage: true });
}
