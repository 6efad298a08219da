// Contract of the data subsystem: moving volume contents in (ingress) and out (egress).

import type { TransferSpec } from '../workflow/types.js';

/** A progress report. Without `kind` (or with kind 'bytes'): `bytes` of `totalBytes` have
 *  been transferred. With kind 'waiting-lock': another process (`lock.pid` on `lock.host`)
 *  is downloading the same URL and this transfer has waited `lock.waitedMs` for it; `bytes`
 *  is 0. Sent after `lockWaitReportMs` of waiting, then every few seconds while it lasts. */
export interface TransferProgress {
  uri: string;
  bytes: number;
  totalBytes?: number;
  kind?: 'bytes' | 'waiting-lock';
  lock?: LockWait;
}

export interface LockWait {
  /** The lock file waited on (DIR/locks/<urlhash>.lock). */
  path: string;
  /** The owner as recorded in the lock (0 when the lock file could not be read). */
  pid: number;
  host: string;
  waitedMs: number;
}

export interface S3Options {
  /** e.g. http://127.0.0.1:4569 for a loopback S3 server; default: AWS. */
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
}

/** Credentials resolved from a `secret://...` reference. */
export type SecretResolver = (ref: string) => Record<string, string> | undefined;

export interface DataOptions {
  /** Content-addressed download cache directory (`$WARREN_HOME/cache/data`). */
  cacheDir: string;
  s3?: S3Options;
  secrets?: SecretResolver;
  /** Attempts for transient failures (default 4), with exponential backoff from `retryBaseMs` (default 200). */
  retries?: number;
  retryBaseMs?: number;
  onProgress?: (p: TransferProgress) => void;
  signal?: AbortSignal;
  /** Directory that relative `file://` sources (ingress) and destinations (egress) are
   *  resolved against (default: the current directory). */
  baseDir?: string;
  /** Idle timeout of a network request, in milliseconds (default 30000). */
  timeoutMs?: number;
  /** A download stalls when fewer than `stallMinBytes` (default 1024) arrive within
   *  `stallTimeoutMs` (default 60000, or $WARREN_DATA_STALL_TIMEOUT): the attempt is abandoned
   *  (and retried, resuming); DATA_STALLED when every attempt stalls. */
  stallTimeoutMs?: number;
  stallMinBytes?: number;
  /** Largest download accepted, in bytes (default 100 GiB, or $WARREN_DATA_MAX_SIZE); a
   *  transfer's `sizeBytes` lowers it for that transfer. */
  maxBytes?: number;
  /** Report a wait for another process's lock after this long (default 3000 ms). */
  lockWaitReportMs?: number;
}

export interface TransferResult {
  uri: string;
  /** Absolute path written (ingress) or URI written (egress). */
  target: string;
  bytes: number;
  sha256: string;
  /** Ingress only: served from the cache without a download. */
  cached: boolean;
}

/** Fetch `t.source.uri` into the volume rooted at `volumeRoot` (destination is relative to it). */
export type IngressFn = (t: TransferSpec, volumeRoot: string, opts: DataOptions) => Promise<TransferResult>;
/** Upload `t.source.uri` (relative to `volumeRoot`) to `t.destination.uri`. */
export type EgressFn = (t: TransferSpec, volumeRoot: string, opts: DataOptions) => Promise<TransferResult>;

export interface CacheEntry {
  key: string;
  uri: string;
  bytes: number;
  sha256: string;
  etag?: string;
  lastUsed: string; // ISO time
}
