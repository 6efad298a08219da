// Diagnostics: collecting, formatting, and "did you mean" suggestions. Pure.
import type { Diagnostic } from './types.js';
import { didYouMean, editDistance } from '../common/index.js';

export { didYouMean, editDistance };

/** `flow.yaml:12:7: jobs.align.requires[1]: unknown job "algn" (did you mean "align"?)` and a `  hint: ...` line. */
export function formatDiagnostic(d: Diagnostic): string {
  let s = `${d.file}:${d.line}:${d.col}: `;
  if (d.severity === 'warning') s += 'warning: ';
  if (d.path) s += `${d.path}: `;
  s += d.message;
  if (d.hint) s += `\n  hint: ${d.hint}`;
  return s;
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
