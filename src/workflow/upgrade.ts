// `warren upgrade`: rewrite a v1 Fuzzfile as v4, as `fuzzball workflow upgrade` does, by
// editing the file's text in place (the `yaml` package's Document API gives every node's
// exact source range): only the words that change are replaced, so comments, key order,
// quoting, blank lines and the layout of everything else stay as they were.
//
// What differs between the dialects (src/workflow/fuzzfile.ts):
//   version: v1                        -> version: v4
//   requires: [a, b]                   -> depends-on: [{name: a, status: SUCCEEDED}, ...]
//     (the status is the condition the v1 reader gives the dependency, so it runs the same)
//   mounts: {VOL: {location: /p, ...}} -> mounts: {/p: {volume: VOL, ...}}
// in jobs, services, defaults.job and the mappings they merge (`<<: *anchor`).
//
// The result is checked before it is returned: it must read as a valid v4 workflow whose
// normalized model equals the original's (except the dialect); otherwise UPGRADE_UNSUPPORTED.
// Pure (no I/O).
import { isAlias, isMap, isScalar, isSeq, parseDocument, Scalar, type Document, type Node as YNode, type Pair, type YAMLMap } from 'yaml';
import { WarrenError } from '../common/index.js';
import { parseWorkflowText } from './load.js';
import type { Workflow } from './types.js';
import { invalid } from './wfformat.js';

export interface UpgradeResult {
  /** The v4 text (the input itself when it was v4 already). */
  text: string;
  /** The dialect the input was in. */
  from: 'v1' | 'v4';
  /** False when the input was v4 already. */
  changed: boolean;
  /** One line per rewritten construct (`jobs.b: requires -> depends-on`), for the CLI's report. */
  changes: string[];
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

/**
 * Upgrade a Fuzzfile's text. Throws SPEC_INVALID (with the diagnostics) for an invalid
 * file, UPGRADE_NOT_FUZZFILE for WfFormat JSON, UPGRADE_UNSUPPORTED when the rewrite cannot
 * keep the workflow the same.
 */
export function upgradeFuzzfile(text: string, file: string): UpgradeResult {
  const { workflow, diagnostics } = parseWorkflowText(text, file);
  if (!workflow) throw invalid(file, diagnostics);
  if (workflow.dialect === 'wfformat') {
    throw new WarrenError('UPGRADE_NOT_FUZZFILE', `${file} is a WfFormat (WfCommons JSON) workflow, not a Fuzzfile: there is nothing to upgrade`, {
      hint: 'warren runs WfFormat files as they are; `warren upgrade` converts Fuzzfiles from version v1 to v4',
    });
  }
  if (workflow.dialect === 'v4') return { text, from: 'v4', changed: false, changes: [] };

  const doc = parseDocument(text, { merge: true, keepSourceTokens: false });
  const u = new Upgrader(text, doc, workflow);
  u.run();
  const out = u.apply();
  verify(out, file, workflow);
  return { text: out, from: 'v1', changed: true, changes: u.changes };
}

const keyText = (k: unknown): string => (isScalar(k) ? (typeof k.value === 'symbol' ? (k.value.description ?? '') : String(k.value)) : '');

class Upgrader {
  private readonly edits: Edit[] = [];
  private readonly done = new Set<unknown>();
  readonly changes: string[] = [];
  private readonly json: boolean;

  constructor(
    private readonly text: string,
    private readonly doc: Document.Parsed,
    private readonly workflow: Workflow,
  ) {
    // A JSON-looking file gets JSON-looking new text.
    this.json = /^\s*\{\s*"/.test(text);
  }

  private deref(n: unknown): unknown {
    return isAlias(n) ? n.resolve(this.doc) : n;
  }

  private src(n: { range?: [number, number, number] | null }): string {
    const r = n.range!;
    return this.text.slice(r[0], r[1]);
  }

  private edit(n: { range?: [number, number, number] | null }, text: string): void {
    const r = n.range;
    if (!r) throw unsupported('a node without a source position');
    this.edits.push({ start: r[0], end: r[1], text });
  }

  /** A key renamed, keeping its quoting style. */
  private renameKey(key: unknown, to: string): void {
    if (!isScalar(key)) return;
    const s = this.src(key);
    const q = s.startsWith('"') ? '"' : s.startsWith("'") ? "'" : '';
    this.edit(key, `${q}${to}${q}`);
  }

  run(): void {
    const root = this.doc.contents;
    if (!isMap(root)) return;
    for (const pair of root.items) {
      const k = keyText(pair.key);
      if (k === 'version' && isScalar(pair.value)) {
        this.edit(pair.value, this.src(pair.value).replace('v1', 'v4'));
        this.changes.push('version: v1 -> v4');
      } else if (k === 'jobs' || k === 'services') {
        const m = this.deref(pair.value);
        if (!isMap(m)) continue;
        for (const jp of m.items) this.job(this.deref(jp.value), `${k}.${keyText(jp.key)}`, keyText(jp.key));
      } else if (k === 'volumes') {
        const m = this.deref(pair.value);
        if (!isMap(m)) continue;
        for (const vp of m.items) this.volume(this.deref(vp.value), keyText(vp.key));
      } else if (k === 'defaults') {
        const d = this.deref(pair.value);
        if (!isMap(d)) continue;
        for (const dp of d.items) if (keyText(dp.key) === 'job') this.job(this.deref(dp.value), 'defaults.job', undefined);
      }
    }
  }

  private job(node: unknown, where: string, jobName: string | undefined): void {
    if (!isMap(node) || this.done.has(node)) return;
    this.done.add(node);
    for (const pair of node.items) {
      const k = keyText(pair.key);
      if (k === '<<') {
        const v = this.deref(pair.value);
        for (const m of isSeq(v) ? v.items.map((x) => this.deref(x)) : [v]) this.job(m, `${where} (merged)`, jobName);
      } else if (k === 'requires') {
        const dependsOn = node.items.find((p) => keyText(p.key) === 'depends-on');
        if (dependsOn) this.mergeRequires(pair, dependsOn, where, jobName);
        else this.requires(pair, where, jobName);
      }
      else if (k === 'mounts') this.mounts(this.deref(pair.value), where);
    }
  }

  /** Fuzzball's deprecated v1 `type: EPHEMERAL` (before references): v4 has only references
   *  and `use`, so it becomes the reference the v1 reader made of it. */
  private volume(node: unknown, name: string): void {
    if (!isMap(node) || this.done.has(node)) return;
    this.done.add(node);
    const t = node.items.find((p) => keyText(p.key) === 'type');
    const ref = this.workflow.volumes[name]?.reference;
    if (!t || !isScalar(t.value) || ref === undefined) return;
    this.renameKey(t.key, 'reference');
    this.edit(t.value, this.json ? JSON.stringify(ref) : ref);
    this.changes.push(`volumes.${name}: type: ${String(t.value.value)} -> reference: ${ref}`);
  }

  /** The v4 status of a v1 requirement: the condition the v1 reader gave it. */
  private status(jobName: string | undefined, dep: string): string {
    const own = jobName !== undefined ? this.workflow.jobs[jobName]?.requires.find((d) => d.job === dep) : undefined;
    const any = own ?? Object.values(this.workflow.jobs).flatMap((j) => j.requires).find((d) => d.job === dep);
    return (any?.condition ?? 'succeeded').toUpperCase();
  }

  private requires(pair: Pair, where: string, jobName: string | undefined): void {
    this.renameKey(pair.key, 'depends-on');
    const v = this.deref(pair.value);
    if (isSeq(v) && !this.done.has(v)) {
      this.done.add(v);
      for (const item of v.items) {
        const target = this.deref(item);
        if (!isScalar(target) || !(item as YNode).range) continue;
        const name = String(target.value);
        const status = this.status(jobName, name);
        const itemText = this.src(item as YNode);
        this.edit(item as YNode, this.json ? `{"name": ${itemText}, "status": "${status}"}` : `{name: ${itemText}, status: ${status}}`);
      }
    }
    this.changes.push(`${where}: requires -> depends-on`);
  }

  /** A v1 job with both `requires` and `depends-on` (v1 reads both): the requirements join
   *  the `depends-on` list, and the `requires` line goes. */
  private mergeRequires(req: Pair, dep: Pair, where: string, jobName: string | undefined): void {
    const names = this.deref(req.value);
    const list = this.deref(dep.value);
    if (!isSeq(names) || !isSeq(list) || !isScalar(req.key) || !(req.value as YNode | null)?.range || !list.range) throw unsupported(`the requires and depends-on of ${where} (write them as one depends-on list)`);
    const entries = names.items.map((item) => {
      const t = this.deref(item);
      if (!isScalar(t)) throw unsupported(`a requirement of ${where} that is not a name`);
      const name = String(t.value);
      const status = this.status(jobName, name);
      return this.json ? `{"name": ${JSON.stringify(name)}, "status": "${status}"}` : `{name: ${this.scalarAs(t, true, false)}, status: ${status}}`;
    });
    // Drop `requires: ...` (the line keeps its indentation and becomes blank, or, in a flow
    // mapping, the entry and its comma go).
    const start = req.key.range![0];
    let end = (req.value as YNode).range![1];
    if ((this.deref(req.value) as YAMLMap).flow !== undefined && /^\s*,/.test(this.text.slice(end))) end += this.text.slice(end).indexOf(',') + 1;
    const ls = this.text.lastIndexOf('\n', start - 1) + 1;
    const nl = this.text.indexOf('\n', end);
    const rest = nl >= 0 ? this.text.slice(end, nl) : '';
    if (/^[ ]*$/.test(this.text.slice(ls, start)) && nl >= 0 && /^[ ]*$/.test(rest)) this.edits.push({ start: ls, end: nl + 1, text: '' });
    else this.edits.push({ start, end: end + (/^[ ]*(#|$)/.test(rest) || /^[ ]/.test(this.text.slice(end)) ? (/^[ ]*/.exec(this.text.slice(end))?.[0].length ?? 0) : 0), text: '' });
    // First in the list, as the v1 reader orders them (requires, then depends-on).
    if (list.flow === true || this.json) {
      const open = this.text.indexOf('[', list.range[0]);
      const empty = list.items.length === 0;
      this.edits.push({ start: open + 1, end: open + 1, text: `${entries.join(', ')}${empty ? '' : ', '}` });
    } else {
      const first = list.items[0] as YNode | undefined;
      if (!first?.range) throw unsupported(`the depends-on list of ${where}`);
      const lineStart = this.text.lastIndexOf('\n', first.range[0]) + 1;
      const indent = this.text.slice(lineStart, first.range[0]).replace(/-\s*$/, '');
      if (!/^[ ]*$/.test(indent)) throw unsupported(`the depends-on list of ${where}`);
      this.edits.push({ start: lineStart, end: lineStart, text: entries.map((e) => `${indent}- ${e}\n`).join('') });
    }
    this.changes.push(`${where}: requires merged into depends-on`);
  }

  private mounts(node: unknown, where: string): void {
    if (!isMap(node) || this.done.has(node)) return;
    this.done.add(node);
    const flow = (node as YAMLMap).flow === true;
    for (const pair of node.items) {
      const vol = keyText(pair.key);
      if (vol === '<<') {
        const v = this.deref(pair.value);
        for (const m of isSeq(v) ? v.items.map((x) => this.deref(x)) : [v]) this.mounts(m, where);
        continue;
      }
      const spec = this.deref(pair.value);
      if (!isMap(spec)) continue;
      if (this.done.has(spec)) throw unsupported(`the mounts of ${where} share one mapping between volumes (an alias)`);
      this.done.add(spec);
      const loc = spec.items.find((p) => keyText(p.key) === 'location');
      if (!loc || !isScalar(loc.value) || !isScalar(pair.key)) continue;
      // key: the volume's name -> the location; location: /p -> volume: NAME
      this.edit(pair.key, this.scalarAs(loc.value, flow || (spec as YAMLMap).flow === true, true));
      this.renameKey(loc.key, 'volume');
      this.edit(loc.value, this.scalarAs(pair.key, flow || (spec as YAMLMap).flow === true, false));
      this.changes.push(`${where}.mounts.${vol}: keyed by volume -> keyed by path ${String(loc.value.value)}`);
    }
  }

  /** A scalar's text for a new place (a key, or a value), as written when that is safe there. */
  private scalarAs(n: Scalar, inFlow: boolean, asKey: boolean): string {
    const s = this.src(n);
    const value = String(n.value);
    if (this.json) return JSON.stringify(value);
    const quoted = (n.type === Scalar.QUOTE_DOUBLE || n.type === Scalar.QUOTE_SINGLE) && !s.includes('\n');
    if (quoted) return s;
    const plainOk =
      n.type === Scalar.PLAIN &&
      s === value &&
      !s.includes('\n') &&
      /^[^\s#,[\]{}'"!&*|>%@`?:-][^\n]*$/.test(s) &&
      !/: |\s#|:$/.test(s) &&
      !(inFlow && /[,[\]{}]/.test(s)) &&
      !(asKey && s.length > 1000) &&
      !/^(true|false|null|~|[-+]?[0-9.]+([eE][-+]?[0-9]+)?)$/i.test(s);
    return plainOk ? s : JSON.stringify(value);
  }

  apply(): string {
    const edits = [...this.edits].sort((a, b) => b.start - a.start);
    let out = this.text;
    let prev = Infinity;
    for (const e of edits) {
      if (e.end > prev) throw unsupported('two rewrites of the same place');
      out = out.slice(0, e.start) + e.text + out.slice(e.end);
      prev = e.start;
    }
    return out;
  }
}

function unsupported(what: string): WarrenError {
  return new WarrenError('UPGRADE_UNSUPPORTED', `cannot upgrade this file automatically: ${what}`, {
    hint: 'rewrite that part by hand (docs/workflow-format.md#v1-and-v4-side-by-side lists the differences), then run `warren validate` on the result',
  });
}

/** The model without what may differ between the two files (dialect, positions). */
function comparable(w: Workflow): string {
  return JSON.stringify(w, (k, v: unknown) => (k === 'dialect' || k === 'pos' || k === 'file' ? undefined : v));
}

function verify(out: string, file: string, before: Workflow): void {
  const { workflow: after, diagnostics } = parseWorkflowText(out, file);
  if (!after || after.dialect !== 'v4') {
    const first = diagnostics.find((d) => d.severity === 'error');
    throw unsupported(`the rewritten file does not read as v4${first ? ` (${first.line}:${first.col}: ${first.path}: ${first.message})` : ''}`);
  }
  const a = comparable(before);
  const b = comparable(after);
  if (a !== b) {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    throw unsupported(`the v4 file would not run the same (the workflows differ near ${JSON.stringify(a.slice(Math.max(0, i - 40), i + 40))})`);
  }
}
