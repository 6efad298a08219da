// One small logger for the server and the agent: a line has a level, a message and fields.
// A Logger is itself the `(level, msg, fields?)` callback that the subsystems take as their
// `log` option (so every existing call site keeps working), with `child(fields)` to carry the
// ids of what a line concerns (workflowId, job = the unit key, attemptId, node) onto every
// line below it. Two formats: JSON lines (`{"time","level","msg",...fields}`) for log
// shippers, and readable lines (`TIME LEVEL msg key=value ...`) for a person.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;
/** The callback form the subsystems take (`log?: LogFn`). */
export type LogFn = (level: LogLevel, msg: string, fields?: LogFields) => void;
export type LogFormat = 'json' | 'text';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

export interface Logger {
  (level: LogLevel, msg: string, fields?: LogFields): void;
  /** A logger that adds these fields to every line (its own fields win over the parent's). */
  child(fields: LogFields): Logger;
  /** Whether a line of this level is written (skip building costly fields when not). */
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  format?: LogFormat;
  /** The lowest level written (default info). */
  level?: LogLevel;
  /** Where a line goes (default: stderr). */
  write?: (line: string) => void;
  /** The clock of the `time` field (default Date.now). */
  now?: () => number;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
/** Keys of a JSON line that fields cannot replace. */
const RESERVED = new Set(['time', 'level', 'msg']);

function build(sink: (level: LogLevel, msg: string, fields: LogFields | undefined) => void, enabled: (l: LogLevel) => boolean, base: LogFields | undefined): Logger {
  const merge = (f: LogFields | undefined): LogFields | undefined => (base ? (f ? { ...base, ...f } : base) : f);
  const logger = ((level: LogLevel, msg: string, fields?: LogFields) => {
    if (enabled(level)) sink(level, msg, merge(fields));
  }) as Logger;
  logger.child = (fields) => build(sink, enabled, merge(fields));
  logger.enabled = enabled;
  logger.debug = (m, f) => logger('debug', m, f);
  logger.info = (m, f) => logger('info', m, f);
  logger.warn = (m, f) => logger('warn', m, f);
  logger.error = (m, f) => logger('error', m, f);
  return logger;
}

/** A logger that formats and writes lines (JSON or text) of `level` and above. */
export function createLogger(o: LoggerOptions = {}): Logger {
  const min = RANK[o.level ?? 'info'];
  const write = o.write ?? ((line: string) => void process.stderr.write(line));
  const now = o.now ?? Date.now;
  const format = o.format ?? 'text';
  return build(
    (level, msg, fields) => write(format === 'json' ? jsonLine(now(), level, msg, fields) : textLine(now(), level, msg, fields)),
    (l) => RANK[l] >= min,
    undefined,
  );
}

/** A Logger over a plain callback (a test's, or a caller's `log` option); none: nothing is written. */
export function toLogger(fn: LogFn | Logger | undefined): Logger {
  if (fn && typeof (fn as Logger).child === 'function') return fn as Logger;
  if (!fn) return build(() => {}, () => false, undefined);
  return build((level, msg, fields) => fn(level, msg, fields), () => true, undefined);
}

/** The ids of an attempt (`<workflowId>/<unit key>/<attempt>[#<gang member>]`) as log fields. */
export function attemptFields(attemptId: string): LogFields {
  const first = attemptId.indexOf('/');
  const last = attemptId.lastIndexOf('/');
  if (first <= 0 || last <= first) return { attemptId };
  return { workflowId: attemptId.slice(0, first), job: attemptId.slice(first + 1, last), attemptId };
}

function jsonValue(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Error) return { message: v.message, ...((v as { code?: unknown }).code !== undefined ? { code: (v as { code?: unknown }).code } : {}) };
  return v;
}

export function jsonLine(at: number, level: LogLevel, msg: string, fields?: LogFields): string {
  const o: LogFields = { time: new Date(at).toISOString(), level, msg };
  if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined && !RESERVED.has(k)) o[k] = v;
  try {
    return JSON.stringify(o, jsonValue) + '\n';
  } catch {
    // A field that cannot be written (a cycle): the line without its fields.
    return JSON.stringify({ time: o.time, level, msg }) + '\n';
  }
}

function textValue(v: unknown): string {
  const s = typeof v === 'string' ? v : v instanceof Error ? v.message : (JSON.stringify(v, jsonValue) ?? String(v));
  return /^[A-Za-z0-9_.:/@+,[\]#-]+$/.test(s) ? s : JSON.stringify(s);
}

export function textLine(at: number, level: LogLevel, msg: string, fields?: LogFields): string {
  let line = `${new Date(at).toISOString()} ${level} ${msg}`;
  if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) line += ` ${k}=${textValue(v)}`;
  return line + '\n';
}
