// Typed, user-facing errors. Every error a user can cause is a WarrenError with a
// stable code, declared once in ./codes.ts with its CLI exit code and HTTP status
// (catalogued for people in docs/errors/*.md; a test keeps the two in step), a message
// that says what is wrong and a hint that says what to do next. The CLI prints
// `error[CODE]: message` and `hint: ...` and exits with the code's exit code; the API
// answers with its HTTP status and the wire form `{code, message, hint, details}`.

import { ERROR_CODES, isErrorCode, type ErrorCode } from './codes.js';

/** Exit codes of the CLI (docs/cli.md). */
export const EXIT = {
  ok: 0,
  failed: 1, // the workflow ran and failed
  usage: 2, // invalid input or usage
  canceled: 130,
} as const;

export interface WarrenErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Structured, JSON-serialisable facts about the error (they cross process boundaries). */
  details?: Record<string, unknown>;
}

/** How a WarrenError crosses a process boundary (API responses, agent reports). */
export interface WireError {
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

export class WarrenError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly httpStatus: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: WarrenErrorOptions = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'WarrenError';
    this.code = code;
    this.hint = opts.hint;
    const c = ERROR_CODES[code] as { exit: number; http: number } | undefined;
    this.exitCode = c?.exit ?? EXIT.failed;
    this.httpStatus = c?.http ?? 500;
    this.details = opts.details;
  }

  /** `error[CODE]: message\n  hint: ...` as printed by the CLI. */
  format(): string {
    let s = `error[${this.code}]: ${this.message}`;
    if (this.hint) s += `\n  hint: ${this.hint}`;
    return s;
  }

  /** The wire form: structure, never a string to parse. */
  toWire(): WireError {
    const w: WireError = { code: this.code, message: this.message };
    if (this.hint !== undefined) w.hint = this.hint;
    if (this.details !== undefined) w.details = JSON.parse(JSON.stringify(this.details)) as Record<string, unknown>;
    return w;
  }

  /** Rebuild an error from its wire form. A code this build does not know (a newer peer)
   *  keeps its text, with exit code 1 and HTTP status 500. */
  static fromWire(w: unknown): WarrenError {
    const o = (typeof w === 'object' && w !== null ? w : {}) as Partial<WireError>;
    const code = typeof o.code === 'string' && o.code.length > 0 ? o.code : 'WARREN_INTERNAL';
    const message = typeof o.message === 'string' ? o.message : 'unknown error from a remote peer';
    const opts: WarrenErrorOptions = {};
    if (typeof o.hint === 'string') opts.hint = o.hint;
    if (o.details && typeof o.details === 'object') opts.details = o.details;
    const err = new WarrenError((isErrorCode(code) ? code : 'WARREN_INTERNAL') as ErrorCode, message, opts);
    if (!isErrorCode(code)) (err as { code: string }).code = code;
    return err;
  }
}

/** Is this a WarrenError (also across duplicated module instances)? */
export function isWarrenError(e: unknown): e is WarrenError {
  return e instanceof WarrenError || (typeof e === 'object' && e !== null && (e as { name?: string }).name === 'WarrenError');
}

/** Wrap an unknown thrown value so the CLI can always print code, message and hint. */
export function toWarrenError(e: unknown, code: ErrorCode = 'WARREN_INTERNAL'): WarrenError {
  if (isWarrenError(e)) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const sys = err as NodeJS.ErrnoException;
  if (sys.code === 'ENOSPC') {
    return new WarrenError('WARREN_DISK_FULL', `no space left on device${sys.path ? ` (${sys.path})` : ''}`, {
      hint: 'free some space or point WARREN_HOME / the volume at a larger file system, then run `warren resume ID`',
      cause: e,
    });
  }
  if (sys.code === 'EACCES' || sys.code === 'EPERM') {
    return new WarrenError('WARREN_PERMISSION', `permission denied${sys.path ? `: ${sys.path}` : ''}`, {
      hint: 'check the file permissions, or set WARREN_HOME to a directory you can write',
      cause: e,
    });
  }
  return new WarrenError(code, err.message, {
    hint: 'this is a bug in Warren: please report it with the command you ran and this message',
    cause: e,
  });
}
