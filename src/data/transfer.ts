// Retries with exponential backoff, classification of network failures, throttled progress.
import { isWarrenError } from '../common/index.js';
import type { DataOptions, TransferProgress } from './types.js';
import { canceled, dataError, stalled, transferFailed, unreachable } from './errors.js';

/** A failure worth another attempt. */
export class Transient extends Error {
  readonly unreachableHost: string | undefined;
  readonly retryAfterMs: number | undefined;
  /** The attempt was abandoned because the body stalled (see DataOptions.stallTimeoutMs). */
  readonly stalled: boolean;
  constructor(reason: string, opts: { cause?: unknown; unreachableHost?: string; retryAfterMs?: number; stalled?: boolean } = {}) {
    super(reason, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'Transient';
    this.unreachableHost = opts.unreachableHost;
    this.retryAfterMs = opts.retryAfterMs;
    this.stalled = opts.stalled ?? false;
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ESOCKETTIMEDOUT',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_ABORTED', 'ERR_STREAM_PREMATURE_CLOSE',
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException',
]);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);
const TLS_CODES = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/;

function errCodes(e: unknown): string[] {
  const out: string[] = [];
  for (let x: unknown = e, i = 0; x && typeof x === 'object' && i < 5; x = (x as { cause?: unknown }).cause, i++) {
    const c = (x as { code?: unknown }).code;
    if (typeof c === 'string') out.push(c);
    const n = (x as { name?: unknown }).name;
    if (typeof n === 'string') out.push(n);
    if (Array.isArray((x as { errors?: unknown }).errors)) {
      for (const y of (x as { errors: unknown[] }).errors) out.push(...errCodes(y));
    }
  }
  return out;
}

function describe(e: unknown): string {
  const codes = errCodes(e).filter((c) => c !== 'Error');
  const msg = e instanceof Error && e.message ? e.message : String(e);
  const code = codes.find((c) => /^[A-Z_]+$/.test(c));
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

/** Map a thrown network/transport error to a Transient or a final WarrenError. */
export function classifyNetError(e: unknown, uri: string, host: string): Error {
  if (isWarrenError(e) || e instanceof Transient) return e as Error;
  const codes = errCodes(e);
  if (codes.includes('AbortError') || codes.includes('ABORT_ERR')) return canceled(uri, e);
  if (codes.includes('ENOTFOUND')) return unreachable(uri, host, 'host name not found (DNS)', e);
  if (codes.includes('EAI_AGAIN')) return new Transient('DNS lookup failed', { cause: e, unreachableHost: host });
  const u = codes.find((c) => UNREACHABLE_CODES.has(c));
  if (u) return new Transient(u === 'ECONNREFUSED' ? 'connection refused' : `network unreachable (${u})`, { cause: e, unreachableHost: host });
  if (codes.some((c) => TRANSIENT_CODES.has(c))) return new Transient(describe(e), { cause: e });
  if (codes.some((c) => TLS_CODES.test(c))) {
    return dataError('DATA_TLS', `TLS failure talking to ${host} for ${uri}: ${describe(e)}`,
      'check the server certificate; for a private CA set NODE_EXTRA_CA_CERTS=/path/ca.pem', { cause: e });
  }
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return new Transient(describe(e), { cause: e });
  return e instanceof Error ? e : new Error(String(e));
}

export interface RetryContext {
  uri: string;
  opts: Pick<DataOptions, 'retries' | 'retryBaseMs' | 'signal'>;
}

/** Run `fn` up to `retries` times while it throws Transient; backoff doubles from retryBaseMs. */
export async function withRetries<T>(ctx: RetryContext, fn: (attempt: number) => Promise<T>): Promise<T> {
  const attempts = Math.max(1, ctx.opts.retries ?? 4);
  const base = ctx.opts.retryBaseMs ?? 200;
  let last: Transient | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (ctx.opts.signal?.aborted) throw canceled(ctx.uri, ctx.opts.signal.reason);
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof Transient)) throw e;
      if (ctx.opts.signal?.aborted) throw canceled(ctx.uri, e);
      last = e;
      if (attempt === attempts) break;
      const backoff = base * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
      const delay = Math.min(Math.max(backoff, e.retryAfterMs ?? 0), 60_000);
      await sleep(delay, ctx.opts.signal, ctx.uri);
    }
  }
  if (last?.stalled) throw stalled(ctx.uri, last.message, attempts);
  if (last?.unreachableHost) throw unreachable(ctx.uri, last.unreachableHost, `${last.message} (${attempts} attempt${attempts === 1 ? '' : 's'})`, last.cause);
  throw transferFailed(ctx.uri, last?.message ?? 'unknown error', attempts, last?.cause);
}

function sleep(ms: number, signal: AbortSignal | undefined, uri: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(canceled(uri, signal?.reason));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Progress reports at most every `intervalMs`, and always at the end. */
export class Progress {
  private bytes = 0;
  private last = 0;
  constructor(
    private readonly uri: string,
    private readonly cb: ((p: TransferProgress) => void) | undefined,
    public totalBytes?: number,
    private readonly intervalMs = 100,
  ) {}
  set(bytes: number): void {
    this.bytes = bytes;
    this.maybeEmit();
  }
  add(n: number): void {
    this.bytes += n;
    this.maybeEmit();
  }
  private maybeEmit(): void {
    if (!this.cb) return;
    const now = Date.now();
    if (now - this.last >= this.intervalMs) {
      this.last = now;
      this.emit();
    }
  }
  private emit(): void {
    this.cb?.({ uri: this.uri, bytes: this.bytes, ...(this.totalBytes !== undefined ? { totalBytes: this.totalBytes } : {}) });
  }
  done(): void {
    if (this.cb) this.emit();
  }
}

/** Parse a Retry-After header (seconds or HTTP date) into milliseconds. */
export function retryAfterMs(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return undefined;
  if (/^\d+$/.test(s.trim())) return parseInt(s, 10) * 1000;
  const t = Date.parse(s);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

