// Fuzzball's values files (the catalog's values.yaml): a list of entries
//
//   values:
//     - name: Cores
//       display_name: How many CPU cores
//       display_category: Resources
//       uint_value: 4                      # or string_value, bool_value,
//       options_input: {options: [...]}    #    secret_value: {reference}, volume_value: {reference}
//
// (the TemplateValues message of Fuzzball's API; its JSON names, displayName, uintValue...,
// are accepted too), checked with positions, and `--set NAME=VALUE` overrides typed by the
// entry's kind. Pure (the caller reads the file).
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YNode, type Pair, type Scalar, type YAMLMap } from 'yaml';
import { WarrenError, didYouMean } from '../common/index.js';
import { GoInt, type GoMap } from './gotemplate/values.js';

export type ValueKind = 'string' | 'uint' | 'bool' | 'secret' | 'volume';

export interface TemplateValue {
  name: string;
  kind: ValueKind;
  value: string | bigint | boolean;
  displayName?: string;
  displayCategory?: string;
  /** options_input.options: the allowed values. */
  options?: string[];
  /** secret_value.type, as written. */
  secretType?: string;
  /** Where the entry is. */
  line: number;
  col: number;
}

export interface ValuesProblem {
  file: string;
  line: number;
  col: number;
  message: string;
  hint?: string;
}

const KIND_KEYS: Record<string, ValueKind> = {
  string_value: 'string',
  stringValue: 'string',
  uint_value: 'uint',
  uintValue: 'uint',
  bool_value: 'bool',
  boolValue: 'bool',
  secret_value: 'secret',
  secretValue: 'secret',
  volume_value: 'volume',
  volumeValue: 'volume',
};
const OTHER_KEYS = ['name', 'display_name', 'displayName', 'display_category', 'displayCategory', 'options_input', 'optionsInput'];
const ENTRY_KEYS = ['name', 'display_name', 'display_category', 'string_value', 'uint_value', 'bool_value', 'secret_value', 'volume_value', 'options_input'];
const KINDS_HINT = 'each entry has a name and exactly one of string_value, uint_value, bool_value, secret_value: {reference: ...}, volume_value: {reference: ...}';
const MAX_UINT64 = (1n << 64n) - 1n;

export const KIND_KEY: Record<ValueKind, string> = {
  string: 'string_value',
  uint: 'uint_value',
  bool: 'bool_value',
  secret: 'secret_value',
  volume: 'volume_value',
};

function fail(file: string, problems: ValuesProblem[]): never {
  const first = problems[0]!;
  const text = problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}${p.hint ? `\n  hint: ${p.hint}` : ''}`).join('\n');
  throw new WarrenError('APP_VALUES_INVALID', problems.length === 1 ? text.split('\n')[0]! : `${file} has ${problems.length} problems:\n${text}`, {
    hint: problems.length === 1 ? (first.hint ?? KINDS_HINT) : KINDS_HINT,
    details: { file, problems },
  });
}

/** Read a values file's text; throws APP_VALUES_INVALID (every problem, with positions). */
export function parseValuesText(text: string, file: string): TemplateValue[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, intAsBigInt: true });
  const problems: ValuesProblem[] = [];
  const at = (n: { range?: [number, number, number] | null } | null | undefined): { line: number; col: number } => lc.linePos(n?.range?.[0] ?? 0);
  const problem = (n: { range?: [number, number, number] | null } | null | undefined, message: string, hint?: string): void => {
    problems.push({ file, ...at(n), message, ...(hint !== undefined ? { hint } : {}) });
  };
  for (const e of doc.errors) {
    const { line, col } = lc.linePos(e.pos[0]);
    problems.push({ file, line, col, message: `malformed YAML: ${e.message.replace(/ at line \d+, column \d+.*$/s, '')}`, hint: 'check the indentation (spaces, not tabs) and the quoting near this position' });
  }
  if (problems.length > 0) fail(file, problems.slice(0, 1));
  const root = doc.contents;
  if (!isMap(root)) {
    problem(root, 'a values file is a mapping with a "values:" list', 'start the file with "values:" and list the entries under it: - name: NAME, string_value: ...');
    fail(file, problems);
  }
  let list: YNode | null | undefined;
  for (const pair of root.items) {
    const k = keyName(pair);
    if (k === 'values') list = pair.value as YNode | null;
    else problem(pair.key as YNode, `unknown key "${k}"${suggest(k, ['values'])}`, 'a values file has one key, "values:", a list of entries');
  }
  if (list === undefined) {
    problem(root, 'missing required key "values"', 'list the entries under "values:", e.g. values: [{name: Cores, uint_value: 4}]');
    fail(file, problems);
  }
  const out: TemplateValue[] = [];
  if (list === null || (isScalar(list) && list.value === null)) return problems.length ? fail(file, problems) : out;
  if (!isSeq(list)) {
    problem(list, '"values" must be a list of entries', KINDS_HINT);
    fail(file, problems);
  }
  const seen = new Map<string, number>();
  for (const item of list.items as (YNode | null)[]) {
    if (!isMap(item)) {
      problem(item, 'each entry of "values" must be a mapping', KINDS_HINT);
      continue;
    }
    const namePair = item.items.find((p) => keyName(p) === 'name');
    const name = namePair && isScalar(namePair.value) ? String(namePair.value.value) : undefined;
    if (name !== undefined) {
      const prev = seen.get(name);
      if (prev !== undefined) {
        problem(item, `the value "${name}" is defined twice (also at line ${prev})`, 'give each value one entry');
        continue;
      }
      seen.set(name, at(item).line);
    }
    const v = readEntry(item, problem, at);
    if (v) out.push(v);
  }
  if (problems.length > 0) fail(file, problems);
  return out;
}

type Problem = (n: { range?: [number, number, number] | null } | null | undefined, message: string, hint?: string) => void;

function keyName(pair: Pair): string {
  return isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
}

function suggest(word: string, candidates: string[]): string {
  const m = didYouMean(word, candidates);
  return m !== undefined ? ` (did you mean "${m}"?)` : '';
}

function scalarText(n: Scalar): string {
  if (typeof n.value === 'string') return n.value;
  if (n.source !== undefined && typeof n.source === 'string') return n.source;
  return String(n.value);
}

function readEntry(item: YAMLMap, problem: Problem, at: (n: YNode) => { line: number; col: number }): TemplateValue | undefined {
  let name: string | undefined;
  let kind: ValueKind | undefined;
  let kindNode: YNode | undefined;
  let value: string | bigint | boolean | undefined;
  const v: Partial<TemplateValue> = {};
  let ok = true;
  const str = (n: unknown, what: string): string | undefined => {
    if (isScalar(n) && (typeof n.value === 'string' || typeof n.value === 'number' || typeof n.value === 'bigint' || typeof n.value === 'boolean')) return scalarText(n);
    if (isScalar(n) && n.value === null) return '';
    problem(n as YNode, `${what} must be a string`);
    ok = false;
    return undefined;
  };
  const reference = (n: unknown, what: string): string | undefined => {
    if (!isMap(n)) {
      problem(n as YNode, `${what} must be a mapping {reference: ...}`, `write ${what}: {reference: "secret://user/NAME"}`);
      ok = false;
      return undefined;
    }
    let ref: string | undefined = '';
    for (const p of n.items) {
      const k = keyName(p);
      if (k === 'reference') ref = str(p.value, `${what}.reference`);
      else if (k === 'type' && what.startsWith('secret')) v.secretType = str(p.value, `${what}.type`);
      else {
        problem(p.key as YNode, `unknown key "${k}" in ${what}${suggest(k, what.startsWith('secret') ? ['reference', 'type'] : ['reference'])}`);
        ok = false;
      }
    }
    return ref;
  };
  for (const pair of item.items) {
    const k = keyName(pair);
    const val = pair.value;
    if (Object.hasOwn(KIND_KEYS, k)) {
      if (kind !== undefined) {
        problem(pair.key as YNode, `an entry has one value, but this one has both ${KIND_KEY[kind]} and ${k}`, KINDS_HINT);
        ok = false;
        continue;
      }
      kind = KIND_KEYS[k]!;
      kindNode = (pair.value ?? pair.key) as YNode;
      switch (kind) {
        case 'string':
          value = str(val, k);
          break;
        case 'uint': {
          const u = isScalar(val) ? (typeof val.value === 'bigint' ? val.value : typeof val.value === 'number' && Number.isInteger(val.value) ? BigInt(val.value) : typeof val.value === 'string' && /^[0-9]+$/.test(val.value) ? BigInt(val.value) : undefined) : undefined;
          if (u === undefined || u < 0n || u > MAX_UINT64) {
            problem(val as YNode, `${k} must be a whole number from 0 to 18446744073709551615, got ${isScalar(val) ? JSON.stringify(scalarText(val)) : 'a collection'}`, 'write e.g. uint_value: 4');
            ok = false;
          } else value = u;
          break;
        }
        case 'bool':
          if (isScalar(val) && typeof val.value === 'boolean') value = val.value;
          else {
            problem(val as YNode, `${k} must be true or false, got ${isScalar(val) ? JSON.stringify(scalarText(val)) : 'a collection'}`);
            ok = false;
          }
          break;
        case 'secret':
        case 'volume':
          value = reference(val, k);
          break;
      }
    } else if (k === 'name') {
      name = str(val, 'name');
      if (name === '') {
        problem(val as YNode, 'name must not be empty');
        ok = false;
      }
    } else if (k === 'display_name' || k === 'displayName') v.displayName = str(val, k);
    else if (k === 'display_category' || k === 'displayCategory') v.displayCategory = str(val, k);
    else if (k === 'options_input' || k === 'optionsInput') {
      if (!isMap(val)) {
        problem(val as YNode, `${k} must be a mapping {options: [...]}`);
        ok = false;
        continue;
      }
      for (const p of val.items) {
        const ok2 = keyName(p) === 'options';
        if (!ok2) {
          problem(p.key as YNode, `unknown key "${keyName(p)}" in ${k}${suggest(keyName(p), ['options'])}`);
          ok = false;
          continue;
        }
        if (!isSeq(p.value)) {
          problem(p.value as YNode, 'options must be a list of strings');
          ok = false;
          continue;
        }
        v.options = (p.value.items as unknown[]).map((o) => str(o, 'an option') ?? '');
      }
    } else {
      const hint = /^(int|float|double|number|integer|string|bool|boolean|secret|volume)(_value|Value)?$/.test(k) || /_value$/.test(k) ? KINDS_HINT : `the keys of an entry are: ${ENTRY_KEYS.join(', ')}`;
      problem(pair.key as YNode, `unknown key "${k}"${suggest(k, [...Object.keys(KIND_KEYS).filter((x) => x.includes('_')), ...OTHER_KEYS.filter((x) => x.includes('_') || x === 'name')])}`, hint);
      ok = false;
    }
  }
  if (name === undefined) {
    problem(item, 'missing required key "name"', 'each entry names the value the template reads as {{.NAME}}');
    return undefined;
  }
  if (kind === undefined) {
    if (ok) problem(item, `the value "${name}" has no value: add one of string_value, uint_value, bool_value, secret_value, volume_value`, KINDS_HINT);
    return undefined;
  }
  if (!ok || value === undefined) return undefined;
  const pos = at(item);
  const entry: TemplateValue = { name, kind, value, line: pos.line, col: pos.col, ...v } as TemplateValue;
  if (entry.options && kind === 'string' && !entry.options.includes(value as string)) {
    problem(kindNode, `the value "${name}" is ${JSON.stringify(value)}, which is not one of its options: ${entry.options.join(', ')}`, 'choose one of the options listed in options_input');
    return undefined;
  }
  return entry;
}

/** Apply `--set NAME=VALUE` overrides (in order; the last one for a name wins). Throws APP_VALUES_INVALID. */
export function applySets(values: TemplateValue[], sets: readonly string[], valuesFile: string): TemplateValue[] {
  const out = values.map((v) => ({ ...v }));
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) {
      throw new WarrenError('APP_VALUES_INVALID', `--set ${JSON.stringify(s)}: expected NAME=VALUE`, { hint: 'e.g. --set Cores=8 --set ContainerUri=docker://alpine:3.20' });
    }
    const name = s.slice(0, eq);
    const raw = s.slice(eq + 1);
    const v = out.find((x) => x.name === name);
    if (!v) {
      const m = didYouMean(name, out.map((x) => x.name));
      throw new WarrenError('APP_VALUES_INVALID', `--set ${name}=...: ${valuesFile} has no value named "${name}"${m !== undefined ? ` (did you mean "${m}"?)` : ''}`, {
        hint: out.length > 0 && out.length <= 30 ? `the values are: ${out.map((x) => x.name).join(', ')}` : `add an entry for ${name} to ${valuesFile}, or check the name's spelling (names are case-sensitive)`,
      });
    }
    switch (v.kind) {
      case 'uint': {
        if (!/^[0-9]+$/.test(raw) || BigInt(raw) > MAX_UINT64) {
          throw new WarrenError('APP_VALUES_INVALID', `--set ${name}=${raw}: ${name} is a uint_value: expected a whole number from 0 to 18446744073709551615`, { hint: `e.g. --set ${name}=4` });
        }
        v.value = BigInt(raw);
        break;
      }
      case 'bool': {
        const t = ['1', 't', 'T', 'TRUE', 'true', 'True'];
        const f = ['0', 'f', 'F', 'FALSE', 'false', 'False'];
        if (!t.includes(raw) && !f.includes(raw)) {
          throw new WarrenError('APP_VALUES_INVALID', `--set ${name}=${raw}: ${name} is a bool_value: expected true or false`, { hint: `e.g. --set ${name}=true` });
        }
        v.value = t.includes(raw);
        break;
      }
      default:
        if (v.options && v.kind === 'string' && !v.options.includes(raw)) {
          const m = didYouMean(raw, v.options);
          throw new WarrenError('APP_VALUES_INVALID', `--set ${name}=${raw}: ${name} must be one of ${v.options.join(', ')}${m !== undefined ? ` (did you mean "${m}"?)` : ''}`, { hint: `the options of ${name} are listed in ${valuesFile} (options_input)` });
        }
        v.value = raw;
    }
  }
  return out;
}

/** The data a template sees: {{.NAME}} is the value (uint_value a uint64; secrets and volumes their reference). */
export function templateData(values: readonly TemplateValue[]): GoMap {
  const m: GoMap = new Map();
  for (const v of values) m.set(v.name, v.kind === 'uint' ? new GoInt('uint64', v.value as bigint) : (v.value as string | boolean));
  return m;
}
