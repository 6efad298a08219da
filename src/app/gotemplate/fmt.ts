// Go's fmt (Sprint, Sprintln, Sprintf) and strconv.Quote for the template values of
// values.ts: the verbs %v %s %q %d %b %o %O %x %X %c %U %e %E %f %F %g %G %t %T %%, the flags
// "+-# 0", width and precision (also "*"), and Go's own text for mistakes (%!d(string=x),
// %!s(MISSING), %!(EXTRA ...)). Pure.
import { GoInt, GoTime, isStringSlice, isUnsigned, typeName, type GoValue } from './values.js';

interface Flags {
  plus: boolean;
  minus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  width?: number;
  prec?: number;
}

const NO_FLAGS: Flags = { plus: false, minus: false, sharp: false, space: false, zero: false };

const runeCount = (s: string): number => [...s].length;

/** fmt.Sprint: operands formatted with %v; a space between two operands when neither is a string. */
export function sprint(args: readonly GoValue[]): string {
  let out = '';
  args.forEach((a, i) => {
    const isString = typeof a === 'string';
    if (i > 0 && !isString && typeof args[i - 1] !== 'string') out += ' ';
    out += formatValue(a, 'v', NO_FLAGS);
  });
  return out;
}

/** fmt.Sprintln: spaces between all operands and a newline. */
export function sprintln(args: readonly GoValue[]): string {
  return `${args.map((a) => formatValue(a, 'v', NO_FLAGS)).join(' ')}\n`;
}

/** %v of one value. */
export function formatV(v: GoValue): string {
  return formatValue(v, 'v', NO_FLAGS);
}

/** fmt.Sprintf. */
export function sprintf(format: string, args: readonly GoValue[]): string {
  let out = '';
  let argNum = 0;
  const cps = [...format];
  let i = 0;
  while (i < cps.length) {
    const c = cps[i]!;
    if (c !== '%') {
      out += c;
      i++;
      continue;
    }
    i++;
    const f: Flags = { plus: false, minus: false, sharp: false, space: false, zero: false };
    // flags
    for (; i < cps.length; i++) {
      const ch = cps[i];
      if (ch === '#') f.sharp = true;
      else if (ch === '0') f.zero = !f.minus;
      else if (ch === '+') f.plus = true;
      else if (ch === '-') {
        f.minus = true;
        f.zero = false;
      } else if (ch === ' ') f.space = true;
      else break;
    }
    // width
    if (cps[i] === '*') {
      i++;
      const a = args[argNum++];
      if (a instanceof GoInt) {
        let w = Number(a.v);
        if (w < 0) {
          f.minus = true;
          f.zero = false;
          w = -w;
        }
        if (w > 1e6) out += '%!(BADWIDTH)';
        else f.width = w;
      } else out += '%!(BADWIDTH)';
    } else {
      let w = '';
      while (i < cps.length && cps[i]! >= '0' && cps[i]! <= '9') w += cps[i++];
      if (w !== '') f.width = Number(w);
    }
    // precision
    if (cps[i] === '.') {
      i++;
      if (cps[i] === '*') {
        i++;
        const a = args[argNum++];
        if (a instanceof GoInt && a.v >= 0n && a.v <= 1000000n) f.prec = Number(a.v);
        else out += '%!(BADPREC)';
      } else {
        let p = '';
        while (i < cps.length && cps[i]! >= '0' && cps[i]! <= '9') p += cps[i++];
        f.prec = p === '' ? 0 : Number(p);
      }
    }
    if (i >= cps.length) {
      out += '%!(NOVERB)';
      break;
    }
    const verb = cps[i++]!;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (argNum >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    out += formatValue(args[argNum++], verb, f);
  }
  if (argNum < args.length) {
    out += `%!(EXTRA ${args
      .slice(argNum)
      .map((a) => (a === undefined || a === null ? '<nil>' : `${typeName(a)}=${formatValue(a, 'v', NO_FLAGS)}`))
      .join(', ')})`;
  }
  return out;
}

function pad(s: string, f: Flags, zeroOk = true): string {
  if (f.width === undefined) return s;
  const n = f.width - runeCount(s);
  if (n <= 0) return s;
  if (f.minus) return s + ' '.repeat(n);
  return (f.zero && zeroOk ? '0' : ' ').repeat(n) + s;
}

function badVerb(v: GoValue, verb: string): string {
  if (v === undefined || v === null) return `%!${verb}(<nil>)`;
  return `%!${verb}(${typeName(v)}=${formatValue(v, 'v', NO_FLAGS)})`;
}

function formatValue(v: GoValue, verb: string, f: Flags): string {
  if (verb === 'T') return pad(typeName(v), f, false);
  if (v === undefined || v === null) return verb === 'v' ? pad('<nil>', f, false) : badVerb(v, verb);
  if (typeof v === 'boolean') return verb === 't' || verb === 'v' ? pad(String(v), f, false) : badVerb(v, verb);
  if (typeof v === 'string') return formatString(v, verb, f);
  if (typeof v === 'number') return formatFloatVerb(v, verb, f);
  if (v instanceof GoInt) return formatInteger(v, verb, f);
  if (v instanceof GoTime) {
    if (['v', 's', 'q', 'x', 'X'].includes(verb)) return formatString(timeString(v), verb, f);
    return badVerb(v, verb);
  }
  if (Array.isArray(v)) {
    if (f.sharp && verb === 'v') {
      const t = isStringSlice(v) ? '[]string' : '[]interface {}';
      return `${t}{${v.map((e) => goSyntax(e)).join(', ')}}`;
    }
    return `[${v.map((e) => formatValue(e, verb, f)).join(' ')}]`;
  }
  // map: keys in sorted order, as fmt prints them
  const keys = [...v.keys()].sort(compareStrings);
  return `map[${keys.map((k) => `${formatValue(k, verb, f)}:${formatValue(v.get(k), verb, f)}`).join(' ')}]`;
}

/** Go compares strings by bytes (UTF-8), which is code point order. */
export function compareStrings(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return Buffer.compare(x, y);
}

function goSyntax(v: GoValue): string {
  if (v === undefined || v === null) return 'interface {}(nil)';
  if (typeof v === 'string') return quoteGo(v);
  return formatValue(v, 'v', NO_FLAGS);
}

function formatString(s: string, verb: string, f: Flags): string {
  switch (verb) {
    case 'v':
      if (f.sharp) return pad(quoteGo(s), f);
      return pad(truncate(s, f.prec), f);
    case 's':
      return pad(truncate(s, f.prec), f);
    case 'q': {
      const t = truncate(s, f.prec);
      if (f.sharp && !/[`\u0000-\u0008\u000a-\u001f\u007f\ufeff]/.test(t)) return pad(`\`${t}\``, f);
      return pad(f.plus ? quoteGo(t, true) : quoteGo(t), f);
    }
    case 'x':
    case 'X': {
      let b = Buffer.from(s, 'utf8');
      if (f.prec !== undefined) b = b.subarray(0, f.prec);
      const hex = [...b].map((x) => x.toString(16).padStart(2, '0'));
      let h = f.space ? hex.map((x) => (f.sharp ? `0x${x}` : x)).join(' ') : (f.sharp && hex.length ? '0x' : '') + hex.join('');
      if (verb === 'X') h = h.toUpperCase();
      return pad(h, f, false);
    }
  }
  return badVerb(s, verb);
}

function truncate(s: string, prec: number | undefined): string {
  if (prec === undefined) return s;
  return [...s].slice(0, prec).join('');
}

function formatInteger(n: GoInt, verb: string, f: Flags): string {
  const signed = !isUnsigned(n.type);
  switch (verb) {
    case 'v':
    case 'd':
      return intDigits(n.v, 10, signed, verb, f, false);
    case 'b':
      return intDigits(n.v, 2, signed, verb, f, false);
    case 'o':
    case 'O':
      return intDigits(n.v, 8, signed, verb, f, false);
    case 'x':
      return intDigits(n.v, 16, signed, verb, f, false);
    case 'X':
      return intDigits(n.v, 16, signed, verb, f, true);
    case 'c':
      return pad(runeOf(n.v), f, false);
    case 'q':
      return pad(quoteRune(n.v), f, false);
    case 'U': {
      const hex = (n.v < 0n ? n.v + (1n << 64n) : n.v).toString(16).toUpperCase().padStart(4, '0');
      let s = `U+${hex}`;
      if (f.sharp && n.v >= 0n && n.v <= 0x10ffffn && isPrint(runeOf(n.v))) s += ` '${runeOf(n.v)}'`;
      return pad(s, f, false);
    }
  }
  return badVerb(n, verb);
}

function runeOf(v: bigint): string {
  if (v < 0n || v > 0x10ffffn || (v >= 0xd800n && v <= 0xdfffn)) return '\ufffd';
  return String.fromCodePoint(Number(v));
}

function intDigits(v: bigint, base: number, signed: boolean, verb: string, f: Flags, upper: boolean): string {
  const negative = signed && v < 0n;
  const u = negative ? -v : v;
  if (f.prec !== undefined && f.prec === 0 && u === 0n) return pad('', { ...f, zero: false });
  let digits = u.toString(base);
  if (upper) digits = digits.toUpperCase();
  let prec = 0;
  if (f.prec !== undefined) prec = f.prec;
  else if (f.zero && !f.minus && f.width !== undefined) {
    prec = f.width;
    if (negative || f.plus || f.space) prec--;
  }
  if (digits.length < prec) digits = '0'.repeat(prec - digits.length) + digits;
  if (f.sharp) {
    if (base === 2) digits = `0b${digits}`;
    else if (base === 8 && !digits.startsWith('0')) digits = `0${digits}`;
    else if (base === 16) digits = `${upper ? '0X' : '0x'}${digits}`;
  }
  if (verb === 'O') digits = `0o${digits}`;
  if (negative) digits = `-${digits}`;
  else if (f.plus) digits = `+${digits}`;
  else if (f.space) digits = ` ${digits}`;
  return pad(digits, { ...f, zero: false });
}

function formatFloatVerb(x: number, verb: string, f: Flags): string {
  let s: string;
  switch (verb) {
    case 'v':
      s = formatFloat(x, 'g', f.prec ?? -1);
      break;
    case 'g':
    case 'G':
    case 'e':
    case 'E':
    case 'f':
    case 'F':
      s = formatFloat(x, verb === 'F' ? 'f' : (verb as 'g' | 'G' | 'e' | 'E' | 'f'), f.prec ?? (verb === 'g' || verb === 'G' ? -1 : 6));
      break;
    default:
      return badVerb(x, verb);
  }
  if (Number.isNaN(x)) return pad(f.plus ? '+NaN' : f.space ? ' NaN' : 'NaN', { ...f, zero: false });
  if (!Number.isFinite(x)) return pad(x > 0 ? (f.plus ? '+Inf' : f.space ? ' Inf' : '+Inf') : '-Inf', { ...f, zero: false });
  const neg = s.startsWith('-');
  let body = neg ? s.slice(1) : s;
  if (f.sharp && !body.includes('.') && !/[eE]/.test(body)) body += '.';
  const sign = neg ? '-' : f.plus ? '+' : f.space ? ' ' : '';
  if (f.zero && !f.minus && f.width !== undefined && f.width > runeCount(sign + body)) {
    return sign + '0'.repeat(f.width - runeCount(sign + body)) + body;
  }
  return pad(sign + body, { ...f, zero: false });
}

/** The decimal digits of |x| (no leading zeros, trailing zeros removed) and the decimal point position. */
function digitsOf(expForm: string): { digits: string; dp: number } {
  // expForm: "d.ddde+N" from toExponential
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(expForm)!;
  let digits = m[1]! + (m[2] ?? '');
  const exp = Number(m[3]);
  digits = digits.replace(/0+$/, '');
  if (digits === '') return { digits: '', dp: 0 };
  return { digits, dp: exp + 1 };
}

/** strconv.FormatFloat(x, fmt, prec, 64) for 'e', 'E', 'f', 'g', 'G'; prec -1 is the shortest exact form. */
export function formatFloat(x: number, fmt: 'e' | 'E' | 'f' | 'g' | 'G', prec: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  const sign = neg ? '-' : '';
  const shortest = prec < 0;
  const lower = fmt.toLowerCase() as 'e' | 'f' | 'g';
  const e = fmt === 'E' || fmt === 'G' ? 'E' : 'e';
  if (lower === 'f') {
    if (shortest) {
      const d = digitsOf(a.toExponential());
      return sign + fmtF(d.digits, d.dp, Math.max(d.digits.length - d.dp, 0));
    }
    if (a < 1e21) return sign + a.toFixed(prec);
    const d = digitsOf(a.toExponential());
    return sign + fmtF(d.digits, d.dp, prec);
  }
  if (lower === 'e') {
    if (shortest) {
      const d = digitsOf(a.toExponential());
      return sign + fmtE(d.digits, d.dp, Math.max(d.digits.length - 1, 0), e);
    }
    const d = digitsOf(a.toExponential(Math.min(prec, 100)));
    return sign + fmtE(d.digits, d.dp, prec, e);
  }
  // 'g'
  let p = prec;
  let d: { digits: string; dp: number };
  if (shortest) {
    d = digitsOf(a.toExponential());
    p = d.digits.length;
  } else {
    if (p === 0) p = 1;
    d = digitsOf(a.toExponential(Math.min(p - 1, 100)));
  }
  const nd = d.digits.length;
  let eprec = p;
  if (eprec > nd && nd >= d.dp) eprec = nd;
  if (shortest) eprec = 6;
  const exp = nd === 0 ? 0 : d.dp - 1;
  if (exp < -4 || exp >= eprec) {
    let q = p;
    if (q > nd) q = nd;
    return sign + fmtE(d.digits, d.dp, Math.max(q - 1, 0), e);
  }
  let q = p;
  if (q > d.dp) q = nd;
  return sign + fmtF(d.digits, d.dp, Math.max(q - d.dp, 0));
}

function fmtE(digits: string, dp: number, prec: number, e: string): string {
  const ds = digits === '' ? '0' : digits;
  let s = ds[0]!;
  if (prec > 0) s += `.${ds.slice(1, 1 + prec).padEnd(prec, '0')}`;
  const exp = digits === '' ? 0 : dp - 1;
  const ae = Math.abs(exp);
  return `${s}${e}${exp < 0 ? '-' : '+'}${ae < 10 ? `0${ae}` : ae}`;
}

function fmtF(digits: string, dp: number, prec: number): string {
  let s = '';
  if (dp > 0) s = digits.slice(0, dp).padEnd(dp, '0');
  else s = '0';
  if (prec > 0) {
    s += '.';
    for (let i = 0; i < prec; i++) {
      const j = dp + i;
      s += j >= 0 && j < digits.length ? digits[j] : '0';
    }
  }
  return s;
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const isPrint = (c: string): boolean => PRINTABLE.test(c);

/** strconv.Quote (or QuoteToASCII): a Go "..." literal. */
export function quoteGo(s: string, asciiOnly = false): string {
  let out = '"';
  for (const c of s) out += escapeRune(c, '"', asciiOnly);
  return `${out}"`;
}

function quoteRune(v: bigint): string {
  return `'${escapeRune(runeOf(v), "'", false)}'`;
}

function escapeRune(c: string, quote: string, asciiOnly: boolean): string {
  if (c === quote || c === '\\') return `\\${c}`;
  const cp = c.codePointAt(0)!;
  if (asciiOnly ? cp < 0x80 && isPrint(c) : isPrint(c)) return c;
  switch (c) {
    case '\x07':
      return '\\a';
    case '\b':
      return '\\b';
    case '\f':
      return '\\f';
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    case '\t':
      return '\\t';
    case '\v':
      return '\\v';
  }
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  let r = cp;
  if (r >= 0xd800 && r <= 0xdfff) r = 0xfffd;
  if (r < 0x10000) return `\\u${r.toString(16).padStart(4, '0')}`;
  return `\\U${r.toString(16).padStart(8, '0')}`;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** time.Time.String(), in UTC: "2006-01-02 15:04:05.999999999 +0000 UTC". */
export function timeString(t: GoTime): string {
  return formatTime(t, '2006-01-02 15:04:05.999999999 -0700 MST');
}

/** time.Time.Format(layout) in UTC, for the layout elements Go documents. */
export function formatTime(t: GoTime, layout: string): string {
  const d = new Date(t.ms);
  const Y = d.getUTCFullYear();
  const M = d.getUTCMonth();
  const D = d.getUTCDate();
  const h = d.getUTCHours();
  const m = d.getUTCMinutes();
  const s = d.getUTCSeconds();
  const ms = d.getUTCMilliseconds();
  const nanos = String(ms * 1_000_000).padStart(9, '0');
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const yday = Math.floor((Date.UTC(Y, M, D) - Date.UTC(Y, 0, 1)) / 86400000) + 1;
  // Longest first, as Go's layout scanner matches them.
  const tokens: [string, () => string][] = [
    ['January', () => MONTHS[M]!],
    ['Jan', () => MONTHS[M]!.slice(0, 3)],
    ['Monday', () => DAYS[d.getUTCDay()]!],
    ['Mon', () => DAYS[d.getUTCDay()]!.slice(0, 3)],
    ['MST', () => 'UTC'],
    ['2006', () => String(Y).padStart(4, '0')],
    ['Z07:00:00', () => 'Z'],
    ['-07:00:00', () => '+00:00:00'],
    ['Z070000', () => 'Z'],
    ['-070000', () => '+000000'],
    ['Z07:00', () => 'Z'],
    ['-07:00', () => '+00:00'],
    ['Z0700', () => 'Z'],
    ['-0700', () => '+0000'],
    ['Z07', () => 'Z'],
    ['-07', () => '+00'],
    ['002', () => String(yday).padStart(3, '0')],
    ['__2', () => String(yday).padStart(3, ' ')],
    ['01', () => p2(M + 1)],
    ['02', () => p2(D)],
    ['_2', () => String(D).padStart(2, ' ')],
    ['03', () => p2(h % 12 === 0 ? 12 : h % 12)],
    ['04', () => p2(m)],
    ['05', () => p2(s)],
    ['06', () => p2(Y % 100)],
    ['15', () => p2(h)],
    ['PM', () => (h >= 12 ? 'PM' : 'AM')],
    ['pm', () => (h >= 12 ? 'pm' : 'am')],
    ['1', () => String(M + 1)],
    ['2', () => String(D)],
    ['3', () => String(h % 12 === 0 ? 12 : h % 12)],
    ['4', () => String(m)],
    ['5', () => String(s)],
  ];
  let out = '';
  let i = 0;
  while (i < layout.length) {
    const frac = /^[.,](0+|9+)/.exec(layout.slice(i));
    if (frac && !/[0-9]/.test(layout[i + frac[0].length] ?? '')) {
      const n = frac[1]!.length;
      let digits = nanos.slice(0, Math.min(n, 9));
      if (frac[1]![0] === '9') {
        digits = digits.replace(/0+$/, '');
        out += digits === '' ? '' : layout[i] + digits;
      } else out += layout[i] + digits.padEnd(n, '0');
      i += frac[0].length;
      continue;
    }
    const tok = tokens.find(([k]) => layout.startsWith(k, i));
    if (tok) {
      out += tok[1]();
      i += tok[0].length;
    } else out += layout[i++];
  }
  return out;
}
