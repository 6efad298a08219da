// YAML/JSON syntax errors with positions, from the `yaml` package's parser (which reports
// exact ranges, including for duplicate keys).
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YNode } from 'yaml';
import type { Diagnostic } from './types.js';
import { formatPath } from './path.js';

export interface PositionedDoc {
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

/** Parse with positions (slow on big files: only used when something needs a position). */
export function parseWithPositions(text: string): PositionedDoc {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });
  return { doc, lineCounter };
}

/** Syntax diagnostics of `text`; `onlyDuplicates` tells whether every one of them is a duplicate key. */
export function syntaxDiagnostics(
  text: string,
  pd: PositionedDoc,
  file: string,
  label: 'YAML' | 'JSON',
): { diagnostics: Diagnostic[]; onlyDuplicates: boolean } {
  const diagnostics: Diagnostic[] = [];
  let onlyDuplicates = true;
  // One syntax mistake often makes the parser report several more after it: show the first
  // one only (and every duplicate key, which do not cascade).
  const firstSyntax = pd.doc.errors.filter((e) => e.code !== 'DUPLICATE_KEY').sort((a, b) => a.pos[0] - b.pos[0])[0];
  for (const e of pd.doc.errors) {
    if (e.code !== 'DUPLICATE_KEY' && e !== firstSyntax) {
      onlyDuplicates = false;
      continue;
    }
    const { line, col } = pd.lineCounter.linePos(e.pos[0]);
    if (e.code === 'DUPLICATE_KEY') {
      const key = keyTextAt(text, e.pos[0]);
      diagnostics.push({
        file,
        line,
        col,
        path: pathOfKeyAt(pd.doc.contents, e.pos[0]) ?? '',
        message: key !== undefined ? `duplicate key "${key}"` : 'duplicate key',
        hint: 'each key may appear only once in a mapping: remove or rename one of them',
        severity: 'error',
      });
      continue;
    }
    onlyDuplicates = false;
    if (e.code === 'MULTIPLE_DOCS') {
      diagnostics.push({
        file,
        line,
        col,
        path: '',
        message: `the file holds more than one ${label} document`,
        hint: 'a workflow is one document: remove the second "---" and what follows, or put it in its own file',
        severity: 'error',
      });
      continue;
    }
    const msg = e.message.replace(/ at line \d+, column \d+.*$/s, '');
    diagnostics.push({
      file,
      line,
      col,
      path: '',
      message: `malformed ${label}: ${msg.charAt(0).toLowerCase()}${msg.slice(1)}`,
      hint:
        label === 'YAML'
          ? 'check the indentation (spaces, not tabs), the colons after keys, and unclosed quotes or brackets near this position'
          : 'check for a missing comma, quote or bracket near this position',
      severity: 'error',
    });
  }
  return { diagnostics, onlyDuplicates };
}

function keyTextAt(text: string, offset: number): string | undefined {
  const m = /^("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^:\n]*?)\s*:/.exec(text.slice(offset, offset + 500));
  if (!m) return undefined;
  return unquoteKey(m[1]!);
}

/** A YAML key as written (plain, "double" or 'single' quoted) to its value. */
export function unquoteKey(k: string): string {
  if (k.startsWith('"')) {
    try {
      return JSON.parse(k) as string;
    } catch {
      return k.slice(1, -1);
    }
  }
  if (k.startsWith("'")) return k.slice(1, -1).replace(/''/g, "'");
  return k;
}

/** The dotted path (`jobs.align.command`) of the mapping key that starts at `offset`. */
function pathOfKeyAt(root: unknown, offset: number): string | undefined {
  const segs: (string | number)[] = [];
  const walk = (n: unknown): boolean => {
    if (isMap(n)) {
      for (const pair of n.items) {
        const k = pair.key;
        const kr = isScalar(k) ? k.range : undefined;
        if (kr && kr[0] === offset) {
          segs.push(String(k && isScalar(k) ? k.value : ''));
          return true;
        }
        const v = pair.value as { range?: [number, number, number] } | null;
        if (v?.range && v.range[0] <= offset && offset <= v.range[2] && isScalar(k)) {
          segs.push(String(k.value));
          if (walk(v)) return true;
          segs.pop();
        }
      }
    } else if (isSeq(n)) {
      for (let i = 0; i < n.items.length; i++) {
        const v = n.items[i] as { range?: [number, number, number] } | null;
        if (v?.range && v.range[0] <= offset && offset <= v.range[2]) {
          segs.push(i);
          if (walk(v)) return true;
          segs.pop();
        }
      }
    }
    return false;
  };
  if (!walk(root)) return undefined;
  return formatPath(segs);
}

function keyOf(n: unknown): string | undefined {
  if (!isScalar(n)) return undefined;
  // The `yaml` package represents a `<<` merge key by a symbol.
  return typeof n.value === 'symbol' ? (n.value.description ?? '') : String(n.value);
}

/** Line and column of the node at `path` (its key when `onKey`); the deepest existing node when part of the path is missing. */
export function locate(pd: PositionedDoc, path: readonly (string | number)[], onKey: boolean): { line: number; col: number } {
  const { doc, lineCounter } = pd;
  let node: unknown = doc.contents;
  let keyNode: unknown;
  let found = true;
  const deref = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const cur = deref(node);
    let next: unknown;
    let nextKey: unknown;
    if (isMap(cur)) {
      const maps = [cur];
      // `<<` merge keys: look into the merged mappings too.
      for (let k = 0; k < maps.length && next === undefined && nextKey === undefined; k++) {
        for (const pair of maps[k]!.items) {
          if (keyOf(pair.key) === String(seg)) {
            nextKey = pair.key;
            next = pair.value;
            break;
          }
        }
        if (nextKey === undefined) {
          for (const pair of maps[k]!.items) {
            if (keyOf(pair.key) !== '<<') continue;
            const v = deref(pair.value);
            for (const m of isSeq(v) ? v.items.map(deref) : [v]) if (isMap(m)) maps.push(m);
          }
        }
      }
    } else if (isSeq(cur) && typeof seg === 'number') {
      next = cur.items[seg];
    }
    if (next === undefined && nextKey === undefined) {
      found = false;
      break;
    }
    keyNode = nextKey;
    node = next;
  }
  let target: unknown = node;
  const emptyValue = (n: unknown): boolean => n === null || n === undefined || (isScalar(n) && n.value === null && (!n.range || n.range[0] === n.range[1]));
  if (found && keyNode !== undefined && (onKey || emptyValue(node))) target = keyNode;
  else if (!found && keyNode !== undefined && emptyValue(node)) target = keyNode;
  const range = (target as YNode | undefined)?.range ?? (keyNode as YNode | undefined)?.range;
  if (!range) return { line: 1, col: 1 };
  return lineCounter.linePos(range[0]);
}
