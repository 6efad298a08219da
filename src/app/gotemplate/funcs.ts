// The functions templates can call: Go's text/template builtins (and, or, not, len, index,
// print, printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery), the slim-sprig library
// (github.com/go-task/slim-sprig, what Fuzzball's catalog templates are written against:
// strings, lists, dicts, math, defaults, encoding, paths, regular expressions, a few date
// functions), and Helm's `required` and `toYaml` (named by issue 11). Each follows its Go
// source: argument order (`trimPrefix "/" .X`), types (an int parameter refuses an int64),
// nil handling, and what happens on bad input (sprig's panics become "error calling X").
// The clock and the random numbers come from the caller, so rendering stays testable.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { stringify as yamlStringify } from 'yaml';
import { FuncError, TemplateFail, type FuncSpec, type ParamType } from './exec.js';
import { compareStrings, formatFloat, formatTime, formatV, quoteGo, sprint, sprintf, sprintln, timeString } from './fmt.js';
import { GoInt, GoTime, byteLength, goInt, goInt64, isTrue, isUnsigned, kindOf, makeInt, stringSlice, typeName, type GoMap, type GoValue } from './values.js';

export interface FuncEnv {
  /** A random number in [0, 1) (randInt). */
  random: () => number;
  /** The current time in milliseconds (now). */
  now: () => number;
}

type Fn = (args: GoValue[]) => GoValue;

function def(params: ParamType[], fn: Fn, variadic = false): FuncSpec {
  return { params, fn, variadic };
}

// ---- conversions (sprig's toInt64, toFloat64, strval, strslice, empty) ----------------------

const MAX_INT64 = (1n << 63n) - 1n;

export function toInt64(v: GoValue): bigint {
  if (typeof v === 'string') {
    if (!/^[+-]?[0-9]+$/.test(v)) return 0n;
    const b = BigInt(v);
    return b > MAX_INT64 || b < -(1n << 63n) ? 0n : b;
  }
  if (v instanceof GoInt) return isUnsigned(v.type) && v.v > MAX_INT64 ? MAX_INT64 : v.v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return -(1n << 63n);
    const t = Math.trunc(v);
    return Math.abs(t) >= 2 ** 63 ? -(1n << 63n) : BigInt(t);
  }
  if (typeof v === 'boolean') return v ? 1n : 0n;
  return 0n;
}

export function toFloat64(v: GoValue): number {
  if (typeof v === 'string') {
    const t = v.replace(/_/g, '');
    if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
    if (/^nan$/i.test(t)) return NaN;
    if (!/^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(t)) return 0;
    return Number(t);
  }
  if (v instanceof GoInt) return Number(v.v);
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return 0;
}

/** sprig's strval: strings as they are, time.Time by its String(), the rest by %v. */
export function strval(v: GoValue): string {
  if (typeof v === 'string') return v;
  if (v instanceof GoTime) return timeString(v);
  return formatV(v === undefined ? null : v);
}

function strslice(v: GoValue): string[] {
  if (Array.isArray(v)) return v.filter((x) => x !== null && x !== undefined).map(strval);
  if (v === null || v === undefined) return [];
  return [strval(v)];
}

export function empty(v: GoValue): boolean {
  return !isTrue(v);
}

function asList(v: GoValue, what: string): GoValue[] {
  if (Array.isArray(v)) return v;
  throw new FuncError(`Cannot ${what} on type ${kindName(v)}`);
}

/** reflect.Kind's name. */
function kindName(v: GoValue): string {
  const k = kindOf(v);
  if (k === 'invalid' || k === 'nil') return 'invalid';
  if (k === 'int' || k === 'uint' || k === 'float') return (v as GoInt).type ?? 'float64';
  return k === 'struct' ? 'struct' : k === 'slice' ? 'slice' : k === 'map' ? 'map' : k;
}

export function deepEqual(a: GoValue, b: GoValue): boolean {
  if (a === undefined || a === null || b === undefined || b === null) return (a ?? null) === (b ?? null);
  if (typeName(a) !== typeName(b)) return false;
  if (a instanceof GoInt) return a.v === (b as GoInt).v;
  if (a instanceof GoTime) return a.ms === (b as GoTime).ms;
  if (Array.isArray(a)) {
    const y = b as GoValue[];
    return a.length === y.length && a.every((x, i) => deepEqual(x, y[i]));
  }
  if (a instanceof Map) {
    const y = b as GoMap;
    if (a.size !== y.size) return false;
    for (const [k, x] of a) if (!y.has(k) || !deepEqual(x, y.get(k))) return false;
    return true;
  }
  return a === b || (typeof a === 'number' && Number.isNaN(a) && false);
}

// ---- bytes (Go strings are UTF-8 bytes) ---------------------------------------------------

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
const fromUtf8 = (b: Buffer): string => b.toString('utf8');

function sliceBytes(s: string, start: number, end: number): string {
  const b = utf8(s);
  if (end > b.length) throw new FuncError(`runtime error: slice bounds out of range [:${end}] with length ${b.length}`);
  if (start < 0 || start > end) throw new FuncError(`runtime error: slice bounds out of range [${start}:${end}]`);
  return fromUtf8(b.subarray(start, end));
}

const num = (v: GoValue): number => Number((v as GoInt).v);

// ---- Go's comparison builtins -------------------------------------------------------------

type BasicKind = 'bool' | 'int' | 'uint' | 'float' | 'string' | 'invalid';

function basicKind(v: GoValue): BasicKind {
  const k = kindOf(v);
  if (k === 'bool' || k === 'int' || k === 'uint' || k === 'float' || k === 'string') return k;
  return 'invalid';
}

function eqOne(a: GoValue, b: GoValue): boolean {
  const k1 = basicKind(a);
  const k2 = basicKind(b);
  if (k1 !== k2) {
    if ((k1 === 'int' && k2 === 'uint') || (k1 === 'uint' && k2 === 'int')) return (a as GoInt).v === (b as GoInt).v;
    if (a !== undefined && a !== null && b !== undefined && b !== null) throw new FuncError('incompatible types for comparison');
    return false;
  }
  switch (k1) {
    case 'bool':
    case 'string':
    case 'float':
      return a === b;
    case 'int':
    case 'uint':
      return (a as GoInt).v === (b as GoInt).v;
  }
  // both non-basic
  const nilA = a === undefined || a === null;
  const nilB = b === undefined || b === null;
  if (nilA || nilB) return nilA === nilB;
  if (kindOf(a) !== kindOf(b)) throw new FuncError(`non-comparable types ${formatV(a)}: ${typeName(a)}, ${typeName(b)}: ${formatV(b)}`);
  if (Array.isArray(b) || b instanceof Map) throw new FuncError(`non-comparable type ${formatV(b)}: ${typeName(b)}`);
  return deepEqual(a, b);
}

function lt(a: GoValue, b: GoValue): boolean {
  const k1 = basicKind(a);
  const k2 = basicKind(b);
  if (k1 === 'invalid' || k2 === 'invalid') throw new FuncError('invalid type for comparison');
  if (k1 !== k2) {
    if ((k1 === 'int' && k2 === 'uint') || (k1 === 'uint' && k2 === 'int')) return (a as GoInt).v < (b as GoInt).v;
    throw new FuncError('incompatible types for comparison');
  }
  switch (k1) {
    case 'bool':
      throw new FuncError('invalid type for comparison');
    case 'float':
      return (a as number) < (b as number);
    case 'string':
      return compareStrings(a as string, b as string) < 0;
    default:
      return (a as GoInt).v < (b as GoInt).v;
  }
}

function indexValue(item: GoValue, indexes: GoValue[]): GoValue {
  let cur = item;
  if (cur === undefined || cur === null) throw new FuncError('index of untyped nil');
  for (const ix of indexes) {
    if (cur === undefined || cur === null) throw new FuncError('index of nil pointer');
    if (Array.isArray(cur) || typeof cur === 'string') {
      const len = typeof cur === 'string' ? byteLength(cur) : cur.length;
      if (ix === undefined || ix === null) throw new FuncError('cannot index slice/array with nil');
      if (!(ix instanceof GoInt)) throw new FuncError(`cannot index slice/array with type ${typeName(ix)}`);
      const x = ix.v;
      if (x < 0n || x >= BigInt(len)) throw new FuncError(`index out of range: ${x}`);
      cur = typeof cur === 'string' ? makeInt('uint8', BigInt(utf8(cur)[Number(x)]!)) : cur[Number(x)];
    } else if (cur instanceof Map) {
      if (ix === undefined || ix === null) throw new FuncError('value is nil; should be of type string');
      if (typeof ix !== 'string') throw new FuncError(`value has type ${typeName(ix)}; should be string`);
      cur = cur.has(ix) ? cur.get(ix) : null;
    } else throw new FuncError(`can't index item of type ${typeName(cur)}`);
  }
  return cur;
}

/** html/template-free escapers of text/template. */
function evalArgs(args: GoValue[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args.map((a) => (a === undefined ? null : a)));
}

function htmlEscape(s: string): string {
  return s.replace(/[\0"'&<>]/g, (c) => ({ '\0': '\uFFFD', '"': '&#34;', "'": '&#39;', '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
}

function jsEscape(s: string): string {
  let out = '';
  for (const c of s) {
    const cp = c.codePointAt(0)!;
    if (c === '\\') out += '\\\\';
    else if (c === "'") out += "\\'";
    else if (c === '"') out += '\\"';
    else if (c === '<') out += '\\u003C';
    else if (c === '>') out += '\\u003E';
    else if (c === '&') out += '\\u0026';
    else if (c === '=') out += '\\u003D';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (cp < 0x20) out += `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    else out += c;
  }
  return out;
}

// ---- JSON, as Go's encoding/json writes it -------------------------------------------------

function jsonFloat(f: number): string {
  if (!Number.isFinite(f)) throw new FuncError(`json: unsupported value: ${formatV(f)}`);
  const a = Math.abs(f);
  if (a !== 0 && (a < 1e-6 || a >= 1e21)) return formatFloat(f, 'e', -1).replace(/e-0(\d)$/, 'e-$1');
  return formatFloat(f, 'f', -1);
}

function jsonString(s: string, html: boolean): string {
  let j = JSON.stringify(s).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  if (html) j = j.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  return j;
}

export function toJsonText(v: GoValue, html: boolean, indent = '', level = 0): string {
  if (v === undefined || v === null) return 'null';
  if (typeof v === 'string') return jsonString(v, html);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return jsonFloat(v);
  if (v instanceof GoInt) return v.v.toString();
  if (v instanceof GoTime) return jsonString(formatTime(v, '2006-01-02T15:04:05.999999999Z07:00'), html);
  const nl = indent ? `\n${indent.repeat(level + 1)}` : '';
  const end = indent ? `\n${indent.repeat(level)}` : '';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[${v.map((x) => nl + toJsonText(x, html, indent, level + 1)).join(',')}${end}]`;
  }
  const keys = [...v.keys()].sort(compareStrings);
  if (keys.length === 0) return '{}';
  return `{${keys.map((k) => `${nl}${jsonString(k, html)}:${indent ? ' ' : ''}${toJsonText(v.get(k), html, indent, level + 1)}`).join(',')}${end}}`;
}

function fromJsonValue(x: unknown): GoValue {
  if (x === null) return null;
  if (typeof x === 'number') return x;
  if (typeof x === 'string' || typeof x === 'boolean') return x;
  if (Array.isArray(x)) return x.map(fromJsonValue);
  const m: GoMap = new Map();
  for (const [k, val] of Object.entries(x as Record<string, unknown>)) m.set(k, fromJsonValue(val));
  return m;
}

function toPlain(v: GoValue): unknown {
  if (v === undefined || v === null) return null;
  if (v instanceof GoInt) return Number.isSafeInteger(Number(v.v)) ? Number(v.v) : v.v;
  if (v instanceof GoTime) return formatTime(v, '2006-01-02T15:04:05.999999999Z07:00');
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const k of [...v.keys()].sort(compareStrings)) o[k] = toPlain(v.get(k));
    return o;
  }
  return v;
}

// ---- regular expressions (Go's RE2 syntax, run by JavaScript's engine) ---------------------

function compileRegex(re: string, global = false): RegExp {
  let src = re;
  let flags = 'u';
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    if (lead[1]!.includes('U')) throw new FuncError(`error parsing regexp: the (?U) flag is not supported: \`${re}\``);
    for (const f of lead[1]!) if (!flags.includes(f)) flags += f;
    src = src.slice(lead[0].length);
  }
  src = src.replace(/\(\?P</g, '(?<'); // Go's named groups
  try {
    return new RegExp(src, global ? `${flags}g` : flags);
  } catch (e) {
    throw new FuncError(`error parsing regexp: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`);
  }
}

/** Go's Regexp.Expand of $1, ${1}, $name, ${name}. */
function expandTemplate(repl: string, m: RegExpExecArray): string {
  return repl.replace(/\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g, (_all, what: string, braced?: string, bare?: string) => {
    if (what === '$') return '$';
    const name = braced ?? bare!;
    if (/^[0-9]+$/.test(name)) return m[Number(name)] ?? '';
    return m.groups?.[name] ?? '';
  });
}

/** Go's FindAllStringIndex(s, n): at most n matches (all when n < 0); an empty match right
 *  after the previous match is skipped. */
function findAllIndex(re: string, s: string, n: number): [number, number][] {
  const r = compileRegex(re, true);
  const out: [number, number][] = [];
  let prevEnd = -1;
  let m: RegExpExecArray | null;
  while ((n < 0 || out.length < n) && (m = r.exec(s)) !== null) {
    const start = m.index;
    const end = start + m[0].length;
    if (m[0] === '') {
      r.lastIndex = start + (s.codePointAt(start)! > 0xffff ? 2 : 1);
      if (start === prevEnd) continue;
    }
    out.push([start, end]);
    prevEnd = end;
    if (start >= s.length && m[0] === '') break;
  }
  return out;
}

function regexFindAll(re: string, s: string, n: number): string[] {
  return findAllIndex(re, s, n).map(([a, b]) => s.slice(a, b));
}

/** Go's Regexp.Split. */
function regexSplit(re: string, s: string, n: number): string[] {
  if (n === 0) return [];
  if (re.length > 0 && s.length === 0) return [''];
  const out: string[] = [];
  let beg = 0;
  let end = 0;
  for (const [a, b] of findAllIndex(re, s, n)) {
    if (n > 0 && out.length === n - 1) break;
    end = a;
    if (b !== 0) out.push(s.slice(beg, end));
    beg = b;
  }
  if (end !== s.length) out.push(s.slice(beg));
  return out;
}

// ---- durations ----------------------------------------------------------------------------

/** time.Duration.String() of a number of nanoseconds. */
export function durationString(ns: bigint): string {
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    // sub-second: ns, µs, ms
    const units: [bigint, string][] = [
      [1_000_000n, 'ms'],
      [1_000n, 'µs'],
      [1n, 'ns'],
    ];
    const [div, unit] = units.find(([d]) => u >= d)!;
    out = fraction(u, div) + unit;
  } else {
    const h = u / 3_600_000_000_000n;
    u -= h * 3_600_000_000_000n;
    const m = u / 60_000_000_000n;
    u -= m * 60_000_000_000n;
    out = `${h > 0n ? `${h}h` : ''}${h > 0n || m > 0n ? `${m}m` : ''}${fraction(u, 1_000_000_000n)}s`;
  }
  return neg ? `-${out}` : out;
}

function fraction(v: bigint, div: bigint): string {
  const whole = v / div;
  const rest = v % div;
  if (rest === 0n) return whole.toString();
  const digits = div.toString().length - 1;
  return `${whole}.${rest.toString().padStart(digits, '0').replace(/0+$/, '')}`;
}

// ---- the table ----------------------------------------------------------------------------

const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM_SPACE = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'g');

function trimCutset(s: string, cutset: string, left: boolean, right: boolean): string {
  const set = new Set([...cutset]);
  const cps = [...s];
  let a = 0;
  let b = cps.length;
  if (left) while (a < b && set.has(cps[a]!)) a++;
  if (right) while (b > a && set.has(cps[b - 1]!)) b--;
  return cps.slice(a, b).join('');
}

/** strings.Title: the first letter of each word in upper case. */
function title(s: string): string {
  const isSeparator = (c: string): boolean => {
    if (c.codePointAt(0)! < 0x80) return !/[A-Za-z0-9_]/.test(c);
    if (/[\p{L}\p{Nd}]/u.test(c)) return false;
    return /\s/u.test(c);
  };
  let prev = ' ';
  let out = '';
  for (const c of s) {
    out += isSeparator(prev) ? c.toUpperCase() : c;
    prev = c;
  }
  return out;
}

function adler32(s: string): number {
  let a = 1;
  let b = 0;
  for (const x of utf8(s)) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

function untilStep(start: number, stop: number, step: number): GoValue[] {
  const v: GoValue[] = [];
  if (stop < start) {
    if (step >= 0) return v;
    for (let i = start; i > stop; i += step) v.push(goInt(i));
    return v;
  }
  if (step <= 0) return v;
  for (let i = start; i < stop; i += step) v.push(goInt(i));
  return v;
}

function seq(params: number[]): string {
  const join = (l: GoValue[]): string => l.map((x) => formatV(x)).join(' ');
  switch (params.length) {
    case 0:
      return '';
    case 1: {
      const end = params[0]!;
      const inc = end < 1 ? -1 : 1;
      return join(untilStep(1, end + inc, inc));
    }
    case 2: {
      const [start, end] = params as [number, number];
      const step = end < start ? -1 : 1;
      return join(untilStep(start, end + step, step));
    }
    case 3: {
      const [start, step, end] = params as [number, number, number];
      let inc = 1;
      if (end < start) {
        inc = -1;
        if (step > 0) return '';
      }
      return join(untilStep(start, end + inc, step));
    }
  }
  return '';
}

function dictOf(v: GoValue): GoMap {
  if (v instanceof Map) return v;
  return new Map();
}

function base64decode(s: string, alphabet: 'base64' | 'base32'): string {
  if (alphabet === 'base64') {
    const bad = /[^A-Za-z0-9+/=]/.exec(s);
    if (bad) return `illegal base64 data at input byte ${bad.index}`;
    if (s.length % 4 !== 0) return `illegal base64 data at input byte ${s.length - (s.length % 4)}`;
    return Buffer.from(s, 'base64').toString('utf8');
  }
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const body = s.replace(/=+$/, '');
  let bits = 0;
  let acc = 0;
  const out: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const x = A.indexOf(body[i]!);
    if (x < 0) return `illegal base32 data at input byte ${i}`;
    acc = (acc << 5) | x;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Buffer.from(out).toString('utf8');
}

function base32encode(s: string): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const b = utf8(s);
  let out = '';
  let bits = 0;
  let acc = 0;
  for (const x of b) {
    acc = (acc << 8) | x;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += A[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += A[(acc << (5 - bits)) & 31];
  while (out.length % 8 !== 0) out += '=';
  return out;
}

function pathClean(p: string): string {
  if (p === '') return '.';
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function pathBase(p: string): string {
  if (p === '') return '.';
  const t = p.replace(/\/+$/, '');
  if (t === '') return '/';
  return t.slice(t.lastIndexOf('/') + 1);
}

function pathDir(p: string): string {
  const i = p.lastIndexOf('/');
  return pathClean(p.slice(0, i + 1));
}

function pathExt(p: string): string {
  for (let i = p.length - 1; i >= 0 && p[i] !== '/'; i--) if (p[i] === '.') return p.slice(i);
  return '';
}

/** Every function a template may call, by name. */
export function templateFunctions(env: FuncEnv): Map<string, FuncSpec> {
  const f = new Map<string, FuncSpec>();
  const set = (names: string | string[], spec: FuncSpec): void => {
    for (const n of Array.isArray(names) ? names : [names]) f.set(n, spec);
  };
  const s = (i: number, a: GoValue[]): string => a[i] as string;
  const i64 = (v: bigint): GoInt => goInt64(v);

  // Go's builtins.
  set('and', { params: ['value', 'value'], variadic: true, shortCircuit: 'and', fn: () => undefined });
  set('or', { params: ['value', 'value'], variadic: true, shortCircuit: 'or', fn: () => undefined });
  set('not', def(['value'], (a) => !isTrue(a[0])));
  set(
    'len',
    def(['value'], (a) => {
      const v = a[0];
      if (typeof v === 'string') return goInt(byteLength(v));
      if (Array.isArray(v)) return goInt(v.length);
      if (v instanceof Map) return goInt(v.size);
      if (v === undefined || v === null) throw new FuncError('len of nil pointer');
      throw new FuncError(`len of type ${typeName(v)}`);
    }),
  );
  set('index', def(['value', 'value'], (a) => indexValue(a[0], a.slice(1)), true));
  set('print', def(['any'], (a) => sprint(a), true));
  set('printf', def(['string', 'any'], (a) => sprintf(s(0, a), a.slice(1)), true));
  set('println', def(['any'], (a) => sprintln(a), true));
  set('html', def(['any'], (a) => htmlEscape(evalArgs(a)), true));
  set('js', def(['any'], (a) => jsEscape(evalArgs(a)), true));
  set('urlquery', def(['any'], (a) => encodeURIComponent(evalArgs(a)).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`), true));
  set(
    'eq',
    def(
      ['value', 'value'],
      (a) => {
        if (a.length < 2) throw new FuncError('missing argument for comparison');
        return a.slice(1).some((b) => eqOne(a[0], b));
      },
      true,
    ),
  );
  set('ne', def(['value', 'value'], (a) => !eqOne(a[0], a[1])));
  set('lt', def(['value', 'value'], (a) => lt(a[0], a[1])));
  set('le', def(['value', 'value'], (a) => lt(a[0], a[1]) || eqOne(a[0], a[1])));
  set('gt', def(['value', 'value'], (a) => !(lt(a[0], a[1]) || eqOne(a[0], a[1]))));
  set('ge', def(['value', 'value'], (a) => !lt(a[0], a[1])));
  set('call', def(['value', 'value'], (a) => {
    throw new FuncError(`non-function of type ${typeName(a[0])}`);
  }, true));

  // slim-sprig: strings.
  set('trunc', def(['int', 'string'], (a) => {
    const c = num(a[0]);
    const b = utf8(s(1, a));
    if (c < 0 && b.length + c > 0) return fromUtf8(b.subarray(b.length + c));
    if (c >= 0 && b.length > c) return fromUtf8(b.subarray(0, c));
    return s(1, a);
  }));
  set('trim', def(['string'], (a) => s(0, a).replace(TRIM_SPACE, '')));
  set('upper', def(['string'], (a) => s(0, a).toUpperCase()));
  set('lower', def(['string'], (a) => s(0, a).toLowerCase()));
  set('title', def(['string'], (a) => title(s(0, a))));
  set('substr', def(['int', 'int', 'string'], (a) => {
    const start = num(a[0]);
    const end = num(a[1]);
    const str = s(2, a);
    const len = byteLength(str);
    if (start < 0) return sliceBytes(str, 0, end);
    if (end < 0 || end > len) return sliceBytes(str, start, len);
    return sliceBytes(str, start, end);
  }));
  set('repeat', def(['int', 'string'], (a) => {
    const n = num(a[0]);
    if (n < 0) throw new FuncError('strings: negative Repeat count');
    if (n * s(1, a).length > 64 * 1024 * 1024) throw new FuncError('strings: Repeat output length overflow');
    return s(1, a).repeat(n);
  }));
  set(['trimall', 'trimAll'], def(['string', 'string'], (a) => trimCutset(s(1, a), s(0, a), true, true)));
  set('trimSuffix', def(['string', 'string'], (a) => (s(1, a).endsWith(s(0, a)) ? s(1, a).slice(0, s(1, a).length - s(0, a).length) : s(1, a))));
  set('trimPrefix', def(['string', 'string'], (a) => (s(1, a).startsWith(s(0, a)) ? s(1, a).slice(s(0, a).length) : s(1, a))));
  set('contains', def(['string', 'string'], (a) => s(1, a).includes(s(0, a))));
  set('hasPrefix', def(['string', 'string'], (a) => s(1, a).startsWith(s(0, a))));
  set('hasSuffix', def(['string', 'string'], (a) => s(1, a).endsWith(s(0, a))));
  set('quote', def(['any'], (a) => a.filter((x) => x !== null && x !== undefined).map((x) => quoteGo(strval(x))).join(' '), true));
  set('squote', def(['any'], (a) => a.filter((x) => x !== null && x !== undefined).map((x) => `'${formatV(x)}'`).join(' '), true));
  set('cat', def(['any'], (a) => a.filter((x) => x !== null && x !== undefined).map((x) => formatV(x)).join(' '), true));
  const indent = (n: number, v: string): string => {
    const pad = ' '.repeat(Math.max(n, 0));
    return pad + v.replace(/\n/g, `\n${pad}`);
  };
  set('indent', def(['int', 'string'], (a) => indent(num(a[0]), s(1, a))));
  set('nindent', def(['int', 'string'], (a) => `\n${indent(num(a[0]), s(1, a))}`));
  set('replace', def(['string', 'string', 'string'], (a) => {
    const [old, nu, src] = [s(0, a), s(1, a), s(2, a)];
    if (old === '') return [...src].reduce((acc, c) => acc + c + nu, nu);
    return src.split(old).join(nu);
  }));
  set('plural', def(['string', 'string', 'int'], (a) => (num(a[2]) === 1 ? s(0, a) : s(1, a))));
  set('sha1sum', def(['string'], (a) => createHash('sha1').update(s(0, a), 'utf8').digest('hex')));
  set('sha256sum', def(['string'], (a) => createHash('sha256').update(s(0, a), 'utf8').digest('hex')));
  set('adler32sum', def(['string'], (a) => String(adler32(s(0, a)))));
  set('toString', def(['any'], (a) => strval(a[0])));
  set('toStrings', def(['any'], (a) => stringSlice(strslice(a[0]))));

  // conversions and numbers.
  set('atoi', def(['string'], (a) => goInt(/^[+-]?[0-9]+$/.test(s(0, a)) && BigInt(s(0, a)) <= MAX_INT64 && BigInt(s(0, a)) >= -(1n << 63n) ? BigInt(s(0, a)) : 0n)));
  set('int64', def(['any'], (a) => i64(toInt64(a[0]))));
  set('int', def(['any'], (a) => goInt(toInt64(a[0]))));
  set('float64', def(['any'], (a) => toFloat64(a[0])));
  set('toDecimal', def(['any'], (a) => {
    const t = formatV(a[0] ?? null);
    return i64(/^[+-]?[0-7]+$/.test(t) ? BigInt.asIntN(64, BigInt(t.startsWith('-') ? `-0o${t.slice(1)}` : `0o${t.replace(/^\+/, '')}`)) : 0n);
  }));
  set('seq', def(['int'], (a) => seq(a.map(num)), true));
  set('until', def(['int'], (a) => untilStep(0, num(a[0]), num(a[0]) < 0 ? -1 : 1)));
  set('untilStep', def(['int', 'int', 'int'], (a) => untilStep(num(a[0]), num(a[1]), num(a[2]))));
  set('add1', def(['any'], (a) => i64(toInt64(a[0]) + 1n)));
  set('add', def(['any'], (a) => i64(a.reduce<bigint>((acc, x) => acc + toInt64(x), 0n)), true));
  set('sub', def(['any', 'any'], (a) => i64(toInt64(a[0]) - toInt64(a[1]))));
  set('div', def(['any', 'any'], (a) => {
    const d = toInt64(a[1]);
    if (d === 0n) throw new FuncError('runtime error: integer divide by zero');
    return i64(toInt64(a[0]) / d);
  }));
  set('mod', def(['any', 'any'], (a) => {
    const d = toInt64(a[1]);
    if (d === 0n) throw new FuncError('runtime error: integer divide by zero');
    return i64(toInt64(a[0]) % d);
  }));
  set('mul', def(['any', 'any'], (a) => i64(a.slice(1).reduce<bigint>((acc, x) => acc * toInt64(x), toInt64(a[0]))), true));
  set('randInt', def(['int', 'int'], (a) => {
    const lo = (a[0] as GoInt).v;
    const n = (a[1] as GoInt).v - lo;
    if (n <= 0n) throw new FuncError('invalid argument to Intn');
    return goInt(lo + BigInt(Math.floor(env.random() * Number(n))));
  }));
  set(['max', 'biggest'], def(['any', 'any'], (a) => i64(a.map(toInt64).reduce((x, y) => (y > x ? y : x))), true));
  set('min', def(['any', 'any'], (a) => i64(a.map(toInt64).reduce((x, y) => (y < x ? y : x))), true));
  set('maxf', def(['any', 'any'], (a) => a.map(toFloat64).reduce((x, y) => Math.max(x, y)), true));
  set('minf', def(['any', 'any'], (a) => a.map(toFloat64).reduce((x, y) => Math.min(x, y)), true));
  set('ceil', def(['any'], (a) => Math.ceil(toFloat64(a[0]))));
  set('floor', def(['any'], (a) => Math.floor(toFloat64(a[0]))));
  set('round', def(['any', 'int', 'float64'], (a) => {
    const roundOn = a.length > 2 ? (a[2] as number) : 0.5;
    const pow = 10 ** num(a[1]);
    const digit = pow * toFloat64(a[0]);
    const frac = digit - Math.trunc(digit);
    return (frac >= roundOn ? Math.ceil(digit) : Math.floor(digit)) / pow;
  }, true));

  // lists.
  set('join', def(['string', 'any'], (a) => strslice(a[1]).join(s(0, a))));
  set('sortAlpha', def(['any'], (a) => (Array.isArray(a[0]) ? stringSlice(strslice(a[0]).sort(compareStrings)) : stringSlice([strval(a[0])]))));
  set('splitList', def(['string', 'string'], (a) => stringSlice(s(0, a) === '' ? [...s(1, a)] : s(1, a).split(s(0, a)))));
  set('split', def(['string', 'string'], (a) => {
    const parts = s(0, a) === '' ? [...s(1, a)] : s(1, a).split(s(0, a));
    return new Map(parts.map((p, i) => [`_${i}`, p]));
  }));
  set('splitn', def(['string', 'int', 'string'], (a) => {
    const n = num(a[1]);
    const all = s(0, a) === '' ? [...s(2, a)] : s(2, a).split(s(0, a));
    let parts = all;
    if (n === 0) parts = [];
    else if (n > 0 && all.length > n) parts = [...all.slice(0, n - 1), all.slice(n - 1).join(s(0, a))];
    return new Map(parts.map((p, i) => [`_${i}`, p]));
  }));
  set(['list', 'tuple'], def(['any'], (a) => [...a], true));
  set(['append', 'push', 'mustAppend', 'mustPush'], def(['any', 'any'], (a) => [...asList(a[0], 'push'), a[1]]));
  set(['prepend', 'mustPrepend'], def(['any', 'any'], (a) => [a[1], ...asList(a[0], 'prepend')]));
  set(['first', 'mustFirst'], def(['any'], (a) => (asList(a[0], 'find first').length ? (a[0] as GoValue[])[0] : null)));
  set(['last', 'mustLast'], def(['any'], (a) => {
    const l = asList(a[0], 'find last');
    return l.length ? l[l.length - 1] : null;
  }));
  set(['rest', 'mustRest'], def(['any'], (a) => (asList(a[0], 'find rest').length ? (a[0] as GoValue[]).slice(1) : null)));
  set(['initial', 'mustInitial'], def(['any'], (a) => (asList(a[0], 'find initial').length ? (a[0] as GoValue[]).slice(0, -1) : null)));
  set(['reverse', 'mustReverse'], def(['any'], (a) => [...asList(a[0], 'find reverse')].reverse()));
  set(['uniq', 'mustUniq'], def(['any'], (a) => {
    const out: GoValue[] = [];
    for (const x of asList(a[0], 'find uniq')) if (!out.some((y) => deepEqual(x, y))) out.push(x);
    return out;
  }));
  set(['without', 'mustWithout'], def(['any', 'any'], (a) => asList(a[0], 'find without').filter((x) => !a.slice(1).some((y) => deepEqual(x, y))), true));
  set(['has', 'mustHas'], def(['any', 'any'], (a) => {
    if (a[1] === null || a[1] === undefined) return false;
    return asList(a[1], 'find has').some((x) => deepEqual(x, a[0]));
  }));
  set(['compact', 'mustCompact'], def(['any'], (a) => asList(a[0], 'compact').filter((x) => !empty(x))));
  set(['slice', 'mustSlice'], def(['any', 'any'], (a) => {
    const l = asList(a[0], 'slice');
    if (l.length === 0) return null;
    const ix = a.slice(1).map((x) => Number(toInt64(x)));
    const start = ix.length > 0 ? ix[0]! : 0;
    const end = ix.length > 1 ? ix[1]! : l.length;
    if (start < 0 || end > l.length || start > end) throw new FuncError(`runtime error: slice bounds out of range [${start}:${end}] with capacity ${l.length}`);
    return l.slice(start, end);
  }, true));
  set('concat', def(['any'], (a) => a.flatMap((x) => asList(x, 'concat')), true));
  set(['chunk', 'mustChunk'], def(['int', 'any'], (a) => {
    const size = num(a[0]);
    const l = asList(a[1], 'chunk');
    if (size <= 0) throw new FuncError('runtime error: integer divide by zero');
    const out: GoValue[] = [];
    for (let i = 0; i < l.length; i += size) out.push(l.slice(i, i + size));
    return out;
  }));

  // dicts.
  set('dict', def(['any'], (a) => {
    const m: GoMap = new Map();
    for (let i = 0; i < a.length; i += 2) m.set(strval(a[i]), i + 1 < a.length ? a[i + 1] : '');
    return m;
  }, true));
  set('get', def(['map', 'string'], (a) => (dictOf(a[0]).has(s(1, a)) ? dictOf(a[0]).get(s(1, a)) : '')));
  set('set', def(['map', 'string', 'any'], (a) => {
    if (!(a[0] instanceof Map)) throw new FuncError('assignment to entry in nil map');
    a[0].set(s(1, a), a[2]);
    return a[0];
  }));
  set('unset', def(['map', 'string'], (a) => {
    if (a[0] instanceof Map) a[0].delete(s(1, a));
    return a[0];
  }));
  set('hasKey', def(['map', 'string'], (a) => dictOf(a[0]).has(s(1, a))));
  set('pluck', def(['string', 'map'], (a) => a.slice(1).filter((d) => dictOf(d).has(s(0, a))).map((d) => dictOf(d).get(s(0, a))), true));
  set('keys', def(['map'], (a) => stringSlice(a.flatMap((d) => [...dictOf(d).keys()]).sort(compareStrings)), true));
  set('values', def(['map'], (a) => {
    const d = dictOf(a[0]);
    return [...d.keys()].sort(compareStrings).map((k) => d.get(k));
  }));
  set('pick', def(['map', 'string'], (a) => {
    const d = dictOf(a[0]);
    return new Map(a.slice(1).filter((k) => d.has(k as string)).map((k) => [k as string, d.get(k as string)]));
  }, true));
  set('omit', def(['map', 'string'], (a) => {
    const d = dictOf(a[0]);
    const drop = new Set(a.slice(1) as string[]);
    return new Map([...d].filter(([k]) => !drop.has(k)));
  }, true));
  set('dig', def(['any', 'any'], (a) => {
    if (a.length < 3) throw new FuncError(`dig needs at least three arguments`);
    const dict = a[a.length - 1];
    const dflt = a[a.length - 2];
    let cur: GoValue = dict;
    for (const k of a.slice(0, -2)) {
      if (!(cur instanceof Map) || !cur.has(strval(k))) return dflt;
      cur = cur.get(strval(k));
    }
    return cur;
  }, true));

  // defaults and flow control.
  set('default', def(['any', 'any'], (a) => (a.length < 2 || empty(a[1]) ? a[0] : a[1]), true));
  set('empty', def(['any'], (a) => empty(a[0])));
  set('coalesce', def(['any'], (a) => a.find((x) => !empty(x)) ?? null, true));
  set('all', def(['any'], (a) => a.every((x) => !empty(x)), true));
  set('any', def(['any'], (a) => a.some((x) => !empty(x)), true));
  set('ternary', def(['any', 'any', 'bool'], (a) => (a[2] ? a[0] : a[1])));
  set('fail', def(['string'], (a) => {
    throw new TemplateFail(s(0, a));
  }));
  set('required', def(['string', 'any'], (a) => {
    const v = a[1];
    if (v === null || v === undefined || v === '') throw new TemplateFail(s(0, a));
    return v;
  }));

  // encoding.
  set('toJson', def(['any'], (a) => {
    try {
      return toJsonText(a[0], true);
    } catch {
      return '';
    }
  }));
  set('mustToJson', def(['any'], (a) => toJsonText(a[0], true)));
  set('toPrettyJson', def(['any'], (a) => {
    try {
      return toJsonText(a[0], true, '  ');
    } catch {
      return '';
    }
  }));
  set('mustToPrettyJson', def(['any'], (a) => toJsonText(a[0], true, '  ')));
  set(['toRawJson', 'mustToRawJson'], def(['any'], (a) => toJsonText(a[0], false)));
  set('fromJson', def(['string'], (a) => {
    try {
      return fromJsonValue(JSON.parse(s(0, a)));
    } catch {
      return null;
    }
  }));
  set('mustFromJson', def(['string'], (a) => {
    try {
      return fromJsonValue(JSON.parse(s(0, a)));
    } catch (e) {
      throw new FuncError((e as Error).message);
    }
  }));
  set('toYaml', def(['any'], (a) => {
    const plain = toPlain(a[0]);
    return yamlStringify(plain, { indentSeq: false, lineWidth: 0 }).replace(/\n$/, '');
  }));
  set('b64enc', def(['string'], (a) => Buffer.from(s(0, a), 'utf8').toString('base64')));
  set('b64dec', def(['string'], (a) => base64decode(s(0, a), 'base64')));
  set('b32enc', def(['string'], (a) => base32encode(s(0, a))));
  set('b32dec', def(['string'], (a) => base64decode(s(0, a), 'base32')));

  // reflection.
  set('typeOf', def(['any'], (a) => typeName(a[0])));
  set('typeIs', def(['string', 'any'], (a) => s(0, a) === typeName(a[1])));
  set('typeIsLike', def(['string', 'any'], (a) => s(0, a) === typeName(a[1]) || s(0, a) === `*${typeName(a[1])}`));
  set('kindOf', def(['any'], (a) => kindName(a[0])));
  set('kindIs', def(['string', 'any'], (a) => s(0, a) === kindName(a[1])));
  set('deepEqual', def(['any', 'any'], (a) => deepEqual(a[0], a[1])));

  // paths (path, and on Linux filepath: the same).
  set(['base', 'osBase'], def(['string'], (a) => pathBase(s(0, a))));
  set(['dir', 'osDir'], def(['string'], (a) => pathDir(s(0, a))));
  set(['clean', 'osClean'], def(['string'], (a) => pathClean(s(0, a))));
  set(['ext', 'osExt'], def(['string'], (a) => pathExt(s(0, a))));
  set(['isAbs', 'osIsAbs'], def(['string'], (a) => s(0, a).startsWith('/')));

  // regular expressions.
  const regexMatch = (a: GoValue[]): boolean => compileRegex(s(0, a)).test(s(1, a));
  set('regexMatch', def(['string', 'string'], (a) => {
    try {
      return regexMatch(a);
    } catch {
      return false;
    }
  }));
  set('mustRegexMatch', def(['string', 'string'], regexMatch));
  set(['regexFindAll', 'mustRegexFindAll'], def(['string', 'string', 'int'], (a) => stringSlice(regexFindAll(s(0, a), s(1, a), num(a[2])))));
  set(['regexFind', 'mustRegexFind'], def(['string', 'string'], (a) => compileRegex(s(0, a)).exec(s(1, a))?.[0] ?? ''));
  set(['regexReplaceAll', 'mustRegexReplaceAll'], def(['string', 'string', 'string'], (a) => {
    const r = compileRegex(s(0, a), true);
    return s(1, a).replace(r, (...m: unknown[]) => {
      const groups = typeof m[m.length - 1] === 'object' ? (m[m.length - 1] as Record<string, string>) : undefined;
      const arr = m.slice(0, groups ? -3 : -2) as string[];
      const exec = Object.assign(arr, { index: 0, input: '', groups }) as unknown as RegExpExecArray;
      return expandTemplate(s(2, a), exec);
    });
  }));
  set(['regexReplaceAllLiteral', 'mustRegexReplaceAllLiteral'], def(['string', 'string', 'string'], (a) => s(1, a).replace(compileRegex(s(0, a), true), () => s(2, a))));
  set(['regexSplit', 'mustRegexSplit'], def(['string', 'string', 'int'], (a) => stringSlice(regexSplit(s(0, a), s(1, a), num(a[2])))));
  set('regexQuoteMeta', def(['string'], (a) => s(0, a).replace(/[\\.+*?()|[\]{}^$]/g, '\\$&')));

  // dates (in UTC).
  set('now', def([], () => new GoTime(env.now())));
  set('unixEpoch', def(['time'], (a) => String(Math.floor((a[0] as GoTime).ms / 1000))));
  const asTime = (v: GoValue): GoTime => {
    if (v instanceof GoTime) return v;
    if (v instanceof GoInt && (v.type === 'int64' || v.type === 'int' || v.type === 'int32')) return new GoTime(Number(v.v) * 1000);
    return new GoTime(env.now());
  };
  set('date', def(['string', 'any'], (a) => formatTime(asTime(a[1]), s(0, a))));
  set(['dateInZone', 'date_in_zone'], def(['string', 'any', 'string'], (a) => formatTime(asTime(a[1]), s(0, a))));
  set('htmlDate', def(['any'], (a) => formatTime(asTime(a[0]), '2006-01-02')));
  set('htmlDateInZone', def(['any', 'string'], (a) => formatTime(asTime(a[0]), '2006-01-02')));
  set('duration', def(['any'], (a) => {
    const v = a[0];
    let n = 0n;
    if (typeof v === 'string') n = /^[+-]?[0-9]+$/.test(v) ? BigInt(v) : 0n;
    else if (v instanceof GoInt && v.type === 'int64') n = v.v;
    return durationString(BigInt.asIntN(64, n * 1_000_000_000n));
  }));

  return f;
}

/** The functions that test whether a value is there, and so may be given a missing one. */
export const ACCEPTS_MISSING: ReadonlySet<string> = new Set(['and', 'or', 'not', 'eq', 'ne', 'default', 'empty', 'coalesce', 'all', 'any', 'required', 'ternary', 'typeOf', 'typeIs', 'typeIsLike', 'kindOf', 'kindIs', 'deepEqual']);

/** The names of the functions, for "did you mean" and the docs. */
export function functionNames(): string[] {
  return [...templateFunctions({ random: () => 0, now: () => 0 }).keys()].sort();
}

