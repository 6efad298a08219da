// Diagnostics: collecting, formatting, and "did you mean" suggestions. Pure.
import type { Diagnostic } from './types.js';

/** `flow.yaml:12:7: jobs.align.requires[1]: unknown job "algn" (did you mean "align"?)` and a `  hint: ...` line. */
export function formatDiagnostic(d: Diagnostic): string {
  let s = `${d.file}:${d.line}:${d.col}: `;
  if (d.severity === 'warning') s += 'warning: ';
  if (d.path) s += `${d.path}: `;
  s += d.message;
  if (d.hint) s += `\n  hint: ${d.hint}`;
  return s;
}

/** Levenshtein distance, capped: returns `max + 1` as soon as it is known to exceed `max`. */
export function editDistance(a: string, b: string, max = Infinity): number {
  if (a === b) return 0;
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = cur[0];
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      cur[j] = v;
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > max) return max + 1;
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** The closest candidate to `word` (case-insensitive), if it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestD = limit + 1;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase(), bestD - 1);
    // A one-letter name is "close" to every other one-letter name: that is no suggestion.
    if (d < bestD && d < Math.min(w.length, c.length)) {
      best = c;
      bestD = d;
      if (d === 0) break;
    }
  }
  return best;
}

/** ` (did you mean "x"?)` or the empty string. */
export function suggestion(word: string, candidates: Iterable<string>): string {
  const m = didYouMean(word, candidates);
  return m !== undefined ? ` (did you mean "${m}"?)` : '';
}

/** Line and column (1-based) of a character offset in `text`. */
export function lineColAt(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let last = -1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  }
  return { line, col: end - last };
}
