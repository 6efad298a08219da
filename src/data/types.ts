// Contract of the data subsystem: moving volume contents in (ingress) and out (egress).

import type { TransferSpec } from '../workflow/types.js';

export interface TransferProgress {
  uri: string;
  bytes: number;
  totalBytes?: number;
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
