// The reader of Fuzzfile values: type checks that report problems at a path into the
// document (turned into line:col by fuzzfile.ts), with did-you-mean suggestions. Pure.
import { parseDuration, parseSize } from '../common/index.js';
import { suggestion } from './diagnostics.js';
import { setOwn } from './path.js';
import { ENV_NAME_RULE, MAX_COUNT, badEnvName, fmtInt } from './limits.js';

/** A user string shortened for a message. */
export function short(s: string): string {
  return s.length > 60 ? `${s.slice(0, 40)}...(${s.length} characters)` : s;
}

export type Seg = string | number;
export type Obj = Record<string, unknown>;
export type FuzzDialect = 'v1' | 'v4';

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export const DURATION_HINT = 'write a number of seconds or a duration like 90s, 15m, 2h30m, 1.5h or 1d (units: ms, s, m, h, d, w)';
export const SIZE_HINT = 'write a number of bytes or a size like 512MB, 4GiB or 1.5G (units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB)';

export interface Issue {
  path: Seg[];
  /** Point at the key of the last path segment rather than at its value. */
  onKey: boolean;
  message: string;
  hint?: string;
  severity: 'error' | 'warning';
}

/** "a list", "a number (3)", ... for type errors. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)})`;
  if (typeof v === 'number') return `a number (${v})`;
  if (typeof v === 'boolean') return `a boolean (${v})`;
  return typeof v;
}

export class Reader {
  readonly issues: Issue[] = [];
  dialect: FuzzDialect = 'v1';
  /** The top-level `files:` (NAME -> content), read first: jobs and ingress refer to them. */
  files: Record<string, string> = {};
  /** Whether a secret reference is defined on this machine (ReadOptions.secretExists); undefined: not checked. */
  secretExists?: (ref: string) => boolean;

  constructor(readonly file: string) {}

  warn(path: Seg[], message: string, hint?: string, onKey = false): void {
    this.issues.push({ path, onKey, message, severity: 'warning', ...(hint !== undefined ? { hint } : {}) });
  }

  /** Whether an error (not only warnings) was reported. */
  hasErrors(): boolean {
    return this.issues.some((i) => i.severity === 'error');
  }

  error(path: Seg[], message: string, hint?: string, onKey = false): void {
    this.issues.push({ path, onKey, message, severity: 'error', ...(hint !== undefined ? { hint } : {}) });
  }

  typeError(path: Seg[], expected: string, v: unknown): void {
    this.error(path, `expected ${expected}, got ${describe(v)}`);
  }

  /** A mapping with only `allowed` keys (unknown keys are reported, with a did-you-mean; `hints`: a better hint for some keys that belong elsewhere). */
  obj(v: unknown, path: Seg[], allowed: readonly string[], where: string, hints: Readonly<Record<string, string>> = {}): Obj | undefined {
    if (!isObj(v)) {
      this.typeError(path, 'a mapping', v);
      return undefined;
    }
    for (const k of Object.keys(v)) {
      if (allowed.includes(k)) continue;
      let hint = `allowed keys in ${where}: ${allowed.join(', ')}`;
      if (k === 'requires' && allowed.includes('depends-on') && this.dialect === 'v4') hint = '"requires" is the v1 spelling: in a v4 file use "depends-on: [{name: JOB, status: SUCCEEDED}]", or set "version: v1"';
      else if (Object.hasOwn(hints, k)) hint = hints[k]!;
      this.error([...path, k], `unknown key "${k}"${suggestion(k, allowed)}`, hint, true);
    }
    return v;
  }

  str(v: unknown, path: Seg[], nonEmpty = true): string | undefined {
    if (typeof v !== 'string') {
      this.typeError(path, 'a string', v);
      return undefined;
    }
    if (nonEmpty && v.trim() === '') {
      this.error(path, 'must not be empty');
      return undefined;
    }
    return v;
  }

  bool(v: unknown, path: Seg[]): boolean | undefined {
    if (typeof v !== 'boolean') {
      this.typeError(path, 'true or false', v);
      return undefined;
    }
    return v;
  }

  /** An integer in [min, max], written in decimal. */
  int(v: unknown, path: Seg[], min: number, max = MAX_COUNT): number | undefined {
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    const range = `an integer from ${fmtInt(min)} to ${fmtInt(max)}`;
    const hint = `write a whole number from ${fmtInt(min)} to ${fmtInt(max)} in decimal digits (limits: docs/workflow-format.md#limits)`;
    if (typeof v === 'number' && Number.isInteger(v)) this.error(path, `${v} is out of range: expected ${range}`, hint);
    else if (typeof v === 'string' && /^\s*[-+]?[0-9]+\s*$/.test(v)) this.error(path, `${v.trim()} is out of range: expected ${range}`, hint);
    else if (typeof v === 'string' && /^\s*[-+]?(?:0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*_[0-9_]*)\s*$/.test(v)) this.error(path, `expected ${range} in decimal, got "${v}"`, `${hint}: e.g. 16, not 0x10`);
    else this.error(path, `expected ${range}, got ${describe(v)}`, hint);
    return undefined;
  }

  num(v: unknown, path: Seg[], min: number): number | undefined {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      this.error(path, `expected a number >= ${min}, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  duration(v: unknown, path: Seg[], positive: boolean): number | undefined {
    const d = parseDuration(v);
    if (d === undefined) {
      this.error(path, typeof v === 'string' ? `invalid duration "${v}"` : `expected a duration, got ${describe(v)}`, DURATION_HINT);
      return undefined;
    }
    if (positive && d <= 0) {
      this.error(path, `duration must be greater than 0, got ${JSON.stringify(v)}`, DURATION_HINT);
      return undefined;
    }
    return d;
  }

  size(v: unknown, path: Seg[]): number | undefined {
    const s = parseSize(v);
    if (s === undefined) {
      this.error(path, typeof v === 'string' ? `invalid size "${v}"` : `expected a size, got ${describe(v)}`, SIZE_HINT);
      return undefined;
    }
    if (s <= 0) {
      this.error(path, `size must be greater than 0, got ${JSON.stringify(v)}`, SIZE_HINT);
      return undefined;
    }
    return s;
  }

  /** A list of command-line words: strings, numbers and booleans (written as strings). */
  words(v: unknown, path: Seg[], what: string): string[] | undefined {
    if (!Array.isArray(v)) {
      this.error(
        path,
        `expected a list of strings, got ${describe(v)}`,
        typeof v === 'string' && /^[^[\]{},"']+$/.test(v) ? `write ${what} as a list, e.g. [${v.trim().split(/\s+/).slice(0, 3).join(', ')}], or use "script" for a shell script` : undefined,
      );
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    v.forEach((w, i) => {
      if (typeof w === 'string') out.push(w);
      else if (typeof w === 'number' || typeof w === 'boolean') out.push(String(w));
      else {
        this.typeError([...path, i], 'a string', w);
        ok = false;
      }
    });
    return ok ? out : undefined;
  }

  env(v: unknown, path: Seg[]): Record<string, string> | undefined {
    const out: Record<string, string> = {};
    if (v === null) return out; // `env:` with nothing after it
    const checkName = (name: string, p: Seg[], onKey: boolean): boolean => {
      const why = badEnvName(name);
      if (why === undefined) return true;
      this.error(p, `invalid environment variable name "${name.length > 40 ? `${name.slice(0, 37)}...` : name}": it ${why}`, ENV_NAME_RULE, onKey);
      return false;
    };
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        if (typeof item !== 'string') {
          this.typeError([...path, i], 'a string NAME=value', item);
          return;
        }
        const eq = item.indexOf('=');
        if (eq < 0) {
          this.error([...path, i], `expected NAME=value, got "${item}"`, `write "${item}=VALUE" (or use a mapping: env: {${item}: VALUE})`);
          return;
        }
        const name = item.slice(0, eq);
        if (checkName(name, [...path, i], false)) setOwn(out, name, item.slice(eq + 1));
      });
      return out;
    }
    if (isObj(v)) {
      for (const [name, val] of Object.entries(v)) {
        if (!checkName(name, [...path, name], true)) continue;
        if (typeof val === 'string') setOwn(out, name, val);
        else if (typeof val === 'number' || typeof val === 'boolean') setOwn(out, name, String(val));
        else this.typeError([...path, name], 'a string', val);
      }
      return out;
    }
    this.error(path, `expected a list of NAME=value strings or a mapping, got ${describe(v)}`);
    return undefined;
  }

  /** An enum value, case-insensitive; returned lower-cased. */
  choice<T extends string>(v: unknown, path: Seg[], allowed: readonly T[]): T | undefined {
    if (typeof v !== 'string' || !allowed.includes(v.toLowerCase() as T)) {
      const got = typeof v === 'string' ? `"${v}"` : describe(v);
      this.error(path, `expected one of ${allowed.join(', ')}, got ${got}${typeof v === 'string' ? suggestion(v, allowed) : ''}`);
      return undefined;
    }
    return v.toLowerCase() as T;
  }

  /**
   * A mapping of string to string (annotations, secrets): numbers and booleans are written as
   * strings; nothing (`annotations:` alone) is an empty mapping.
   */
  strMap(v: unknown, path: Seg[], what: string): Record<string, string> | undefined {
    if (v === null) return {};
    if (!isObj(v)) {
      this.typeError(path, `a mapping of ${what}`, v);
      return undefined;
    }
    const out: Record<string, string> = {};
    let ok = true;
    for (const [k, x] of Object.entries(v)) {
      if (k === '') {
        this.error([...path, k], 'a key must not be empty', undefined, true);
        ok = false;
      } else if (typeof x === 'string') setOwn(out, k, x);
      else if (typeof x === 'number' || typeof x === 'boolean') setOwn(out, k, String(x));
      else {
        this.typeError([...path, k], 'a string', x);
        ok = false;
      }
    }
    return ok ? out : undefined;
  }

  /** A list (nothing is an empty list); otherwise a type error. */
  list(v: unknown, path: Seg[], what: string): unknown[] | undefined {
    if (v === null) return [];
    if (!Array.isArray(v)) {
      this.typeError(path, what, v);
      return undefined;
    }
    return v;
  }

  /**
   * A key that Fuzzball spells two ways: kebab-case in its YAML (`procs-per-node`) and
   * camelCase in its API schema (`procsPerNode`). Either is read; both at once is an error.
   */
  either(o: Obj, path: Seg[], kebab: string, camel: string): { key: string; value: unknown } | undefined {
    const hasK = o[kebab] !== undefined;
    const hasC = o[camel] !== undefined;
    if (hasK && hasC) {
      this.error([...path, camel], `"${kebab}" and "${camel}" are the same setting`, `keep one of them (Warren reads both spellings: "${kebab}" is the YAML one)`, true);
      return undefined;
    }
    if (hasK) return { key: kebab, value: o[kebab] };
    if (hasC) return { key: camel, value: o[camel] };
    return undefined;
  }
}

/** A `secret://...` reference. */
export function readSecret(r: Reader, v: unknown, path: Seg[]): string | undefined {
  const s = r.str(v, path);
  if (s === undefined) return undefined;
  if (!/^secret:\/\/\S+$/.test(s)) {
    r.error(path, `invalid secret reference "${s}"`, 'secrets are references like secret://user/NAME');
    return undefined;
  }
  return s;
}

const POLICY_KEYS = ['timeout', 'retry'];
const TIMEOUT_KEYS = ['execute'];

/**
 * A step's `policy` (a job's, a service's or a transfer's): `timeout.execute` and
 * `retry.attempts` (jobs also `retry.backoff`, Warren's).
 */
export function readStepPolicy(r: Reader, v: unknown, p: Seg[], where: string, backoff: boolean): { timeoutSec?: number; attempts?: number; backoffSec?: number } {
  const out: { timeoutSec?: number; attempts?: number; backoffSec?: number } = {};
  const pol = r.obj(v, p, POLICY_KEYS, where);
  if (!pol) return out;
  if (pol.timeout !== undefined) {
    const t = r.obj(pol.timeout, [...p, 'timeout'], TIMEOUT_KEYS, 'policy.timeout');
    if (t && t.execute !== undefined) {
      const d = r.duration(t.execute, [...p, 'timeout', 'execute'], true);
      if (d !== undefined) out.timeoutSec = d;
    }
  }
  if (pol.retry !== undefined) {
    const rt = r.obj(pol.retry, [...p, 'retry'], backoff ? ['attempts', 'backoff'] : ['attempts'], 'policy.retry');
    if (rt) {
      if (rt.attempts !== undefined) {
        const a = r.int(rt.attempts, [...p, 'retry', 'attempts'], 1);
        if (a !== undefined) out.attempts = a;
      }
      if (backoff && rt.backoff !== undefined) {
        const b = r.duration(rt.backoff, [...p, 'retry', 'backoff'], false);
        if (b !== undefined) out.backoffSec = b;
      }
    }
  }
  return out;
}
