// Typed, user-facing errors. Every error a user can cause is a WarrenError with a
// stable code (catalogued in docs/errors.md), a message that says what is wrong and
// a hint that says what to do next. The CLI prints `error[CODE]: message` and
// `hint: ...` and exits with `exitCode`.

/** Exit codes of the CLI (docs/cli.md). */
export const EXIT = {
  ok: 0,
  failed: 1, // the workflow ran and failed
  usage: 2, // invalid input or usage
  canceled: 130,
} as const;

export interface WarrenErrorOptions {
  hint?: string;
  exitCode?: number;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class WarrenError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, opts: WarrenErrorOptions = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'WarrenError';
    this.code = code;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? EXIT.failed;
    this.details = opts.details;
  }

  /** `error[CODE]: message\n  hint: ...` as printed by the CLI. */
  format(): string {
    let s = `error[${this.code}]: ${this.message}`;
    if (this.hint) s += `\n  hint: ${this.hint}`;
    return s;
  }
}

/** Is this a WarrenError (also across duplicated module instances)? */
export function isWarrenError(e: unknown): e is WarrenError {
  return e instanceof WarrenError || (typeof e === 'object' && e !== null && (e as { name?: string }).name === 'WarrenError');
}

/** Wrap an unknown thrown value so the CLI can always print code, message and hint. */
export function toWarrenError(e: unknown, code = 'WARREN_INTERNAL'): WarrenError {
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
