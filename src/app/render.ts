// Rendering a Fuzzball application template (Go text/template with slim-sprig functions)
// with its values into a Fuzzfile, and mapping positions of the rendered text back to the
// template. Template problems become WarrenErrors with the template's file:line:col:
// APP_TEMPLATE_ERROR (syntax, unknown function, a type error...), APP_VALUE_MISSING (the
// template reads a value the values file lacks), APP_TEMPLATE_FAILED (the template's own
// `fail` or `required` refused the values). Pure: the clock and the random numbers come in
// through the options.
import { WarrenError, didYouMean } from '../common/index.js';
import { FuncError, TemplateExecError, executeTemplate, type Segment } from './gotemplate/exec.js';
import { ACCEPTS_MISSING, functionNames, templateFunctions } from './gotemplate/funcs.js';
import { TemplateSyntaxError, parseTemplate } from './gotemplate/parse.js';
import { templateData, type TemplateValue } from './values.js';
import { goInt, stringSlice, type GoValue } from './gotemplate/values.js';

export interface RenderOptions {
  /** The template's file name (for positions). */
  templateFile: string;
  /** The values file's name (for messages). */
  valuesFile: string;
  /** Random numbers in [0, 1) for randInt (default Math.random). */
  random?: () => number;
  /** The clock for now (default Date.now). */
  now?: () => number;
}

export interface Rendered {
  text: string;
  /** Output offset -> template offset, for `templatePosition`. */
  segments: Segment[];
  /** The template's text (positions are computed from it). */
  template: string;
}

const SYNTAX_HINT = 'templates are Go text/template with the slim-sprig functions: see docs/templates.md for what Warren supports';

/** 1-based line and column of a character offset. */
export function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let last = -1;
  const end = Math.min(Math.max(offset, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  }
  return { line, col: end - last };
}

function offsetOf(text: string, line: number, col: number): number {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return Math.min(off + col - 1, text.length);
}

/** Parse a template whose functions are `funcs`; an unknown function's error suggests the nearest name. */
function parseWithSuggestions(template: string, funcs: ReturnType<typeof templateFunctions>): ReturnType<typeof parseTemplate> {
  const names = functionNames();
  return parseTemplate(template, (n) => funcs.has(n), (n) => {
    const m = didYouMean(n, names);
    return m !== undefined ? ` (did you mean "${m}"?)` : '';
  });
}

/** Render `template` with `values`. Throws APP_TEMPLATE_ERROR, APP_VALUE_MISSING or APP_TEMPLATE_FAILED. */
export function renderTemplate(template: string, values: readonly TemplateValue[], opts: RenderOptions): Rendered {
  const funcs = templateFunctions({ random: opts.random ?? Math.random, now: opts.now ?? Date.now });
  const file = opts.templateFile;
  let parsed;
  try {
    parsed = parseWithSuggestions(template, funcs);
  } catch (e) {
    if (!(e instanceof TemplateSyntaxError)) throw e;
    const { line, col } = lineCol(template, e.pos);
    const unknownFn = /^function "([^"]+)" not defined/.exec(e.message);
    throw new WarrenError('APP_TEMPLATE_ERROR', `${file}:${line}:${col}: ${e.message}`, {
      hint: unknownFn ? `Warren knows Go's builtins and the slim-sprig functions listed in docs/templates.md; ${JSON.stringify(unknownFn[1])} is not one of them` : SYNTAX_HINT,
      details: { file, line, col, kind: 'syntax' },
    });
  }
  const data = templateData(values);
  try {
    const { output, segments } = executeTemplate(parsed, data, { funcs, missingRoot: 'error-on-use', acceptsMissing: ACCEPTS_MISSING });
    return { text: output, segments, template };
  } catch (e) {
    if (!(e instanceof TemplateExecError)) throw e;
    const { line, col } = lineCol(template, e.pos);
    const where = `${file}:${line}:${col}`;
    if (e.kind === 'missing') {
      const name = e.values[0]!;
      const m = didYouMean(name, values.map((v) => v.name));
      throw new WarrenError('APP_VALUE_MISSING', `${where}: the template uses the value "${name}", which ${opts.valuesFile} does not define${m !== undefined ? ` (did you mean "${m}"?)` : ''}`, {
        hint: `add an entry to ${opts.valuesFile}: - name: ${name} with its value (string_value, uint_value, bool_value, secret_value or volume_value)`,
        details: { file, line, col, value: name },
      });
    }
    if (e.kind === 'fail') {
      // The values the failing call and its enclosing conditions read, and those its message names.
      const named = values.filter((x) => new RegExp(`(^|[^A-Za-z0-9_])${x.name.replace(/[^A-Za-z0-9_]/g, '\\$&')}($|[^A-Za-z0-9_])`).test(e.message)).map((x) => x.name);
      const involved = [...new Set([...e.values, ...named])].filter((v) => values.some((x) => x.name === v));
      throw new WarrenError('APP_TEMPLATE_FAILED', `${where}: the template refused its values (${e.funcName}): ${e.message}${involved.length ? ` [values: ${involved.join(', ')}]` : ''}`, {
        hint: involved.length
          ? `change ${involved.length === 1 ? 'this value' : 'these values'} in ${opts.valuesFile}, or with --set ${involved[0]}=VALUE`
          : `the template's own check failed: change the values in ${opts.valuesFile} (or with --set NAME=VALUE) as its message says`,
        details: { file, line, col, values: involved, message: e.message },
      });
    }
    const typeErr = /wrong type for value|invalid value; expected|expected (integer|string|bool|float)/.test(e.message);
    throw new WarrenError('APP_TEMPLATE_ERROR', `${where}: executing at <${e.at}>: ${e.message}`, {
      hint: typeErr
        ? 'Go templates are typed: convert the argument first, e.g. (int .X), (toString .X), (int64 .X); a uint_value is a uint64, and sprig arithmetic (add, sub, mul, max...) returns int64'
        : SYNTAX_HINT,
      details: { file, line, col, kind: 'exec', at: e.at },
    });
  }
}

/** Where in the template a place of the rendered text came from. */
export function templatePosition(r: Rendered, line: number, col: number): { line: number; col: number } {
  const off = offsetOf(r.text, line, col);
  let lo = 0;
  let hi = r.segments.length - 1;
  let seg: Segment | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (r.segments[mid]!.out <= off) {
      seg = r.segments[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (!seg) return { line: 1, col: 1 };
  return lineCol(r.template, seg.text ? seg.tpl + (off - seg.out) : seg.tpl);
}

/** A template that does not parse or run, at its 1-based line and column (for callers other than Fuzzfiles). */
export class GoTemplateError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly col: number,
    /** syntax; exec (a type error, nil...); fail (the template's own fail/required); missingKey (a field the data lacks). */
    readonly kind: 'syntax' | 'exec' | 'fail' | 'missingKey',
    /** For missingKey: the field, and the fields the map has. */
    readonly key?: string,
    readonly keys?: string[],
  ) {
    super(message);
    this.name = 'GoTemplateError';
  }
}

export interface GoTemplateOptions {
  /** Go's Option("missingkey=..."): `error` refuses a field the data lacks (default `zero`). */
  missingKey?: 'zero' | 'error';
  /**
   * Define `file NAME` (Warewulf's): the output that follows it, up to the next one, is the
   * file NAME (a plain name: no "/") beside the template; see executeGoTemplateFiles.
   */
  fileFunction?: boolean;
  random?: () => number;
  now?: () => number;
}

/**
 * Run a Go text/template (with the slim-sprig functions) over any data (see `toGoValue`) and
 * return its text; problems are GoTemplateErrors with the line and column. Pure.
 */
export function executeGoTemplate(template: string, data: GoValue, opts: GoTemplateOptions = {}): string {
  const funcs = templateFunctions({ random: opts.random ?? Math.random, now: opts.now ?? Date.now });
  if (opts.fileFunction) {
    funcs.set('file', {
      params: ['string'],
      fn: (a) => {
        const name = a[0] as string;
        if (name === '' || name === '.' || name === '..' || /[/\0]/.test(name)) throw new FuncError(`${JSON.stringify(name)} is not a plain file name (no "/")`);
        return `${FILE_MARK}${name}${FILE_MARK}`;
      },
    });
  }
  let parsed;
  try {
    parsed = parseWithSuggestions(template, funcs);
  } catch (e) {
    if (!(e instanceof TemplateSyntaxError)) throw e;
    const { line, col } = lineCol(template, e.pos);
    throw new GoTemplateError(e.message, line, col, 'syntax');
  }
  try {
    return executeTemplate(parsed, data, { funcs, missingRoot: 'novalue', ...(opts.missingKey ? { missingKey: opts.missingKey } : {}) }).output;
  } catch (e) {
    if (!(e instanceof TemplateExecError)) throw e;
    const { line, col } = lineCol(template, e.pos);
    if (e.kind === 'missingKey') throw new GoTemplateError(`executing at <${e.at}>: ${e.message}`, line, col, 'missingKey', e.values[0], e.values.slice(1));
    if (e.kind === 'fail') throw new GoTemplateError(e.message, line, col, 'fail');
    throw new GoTemplateError(`executing at <${e.at}>: ${e.message}`, line, col, 'exec');
  }
}

const FILE_MARK = '\u0000file\u0000';

/**
 * A template with `file NAME` calls: the text before the first call (`name` null), then each
 * file's text. A name given twice is appended to.
 */
export function executeGoTemplateFiles(template: string, data: GoValue, opts: GoTemplateOptions = {}): { name: string | null; text: string }[] {
  const parts = executeGoTemplate(template, data, { ...opts, fileFunction: true }).split(FILE_MARK);
  const out: { name: string | null; text: string }[] = [{ name: null, text: parts[0]! }];
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const name = parts[i]!;
    const had = out.find((f) => f.name === name);
    if (had) had.text += parts[i + 1]!;
    else out.push({ name, text: parts[i + 1]! });
  }
  return out;
}

/**
 * Plain JavaScript data as Go values: objects become maps, arrays lists (of strings: a
 * []string), whole numbers Go ints, other numbers float64, null nil.
 */
export function toGoValue(v: unknown): GoValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? goInt(v) : v;
  if (typeof v === 'bigint') return goInt(v);
  if (Array.isArray(v)) return v.every((x) => typeof x === 'string') ? stringSlice(v as string[]) : v.map(toGoValue);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [String(k), toGoValue(x)]));
  return new Map(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toGoValue(x)]));
}
