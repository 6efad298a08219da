// Reading workflow files: dialect detection by content, and the file-level errors.
import { readFileSync, statSync } from 'node:fs';
import { WarrenError, EXIT } from '../common/index.js';
import { parseFuzzfile, type ReadOptions } from './fuzzfile.js';
import { parseWithPositions, syntaxDiagnostics } from './syntax.js';
import type { Diagnostic, Workflow } from './types.js';
import { convertWfFormat, invalid, isWfFormat } from './wfformat.js';

/**
 * Parse and validate a workflow from its text: a YAML Fuzzfile (v1 or v4) or WfFormat JSON,
 * told apart by content. Never throws for bad input: every problem is a diagnostic, and
 * `workflow` is set only when there is no error.
 */
export function parseWorkflowText(text: string, file: string, opts: ReadOptions = {}): { workflow?: Workflow; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // Not JSON. YAML flow mappings also start with "{": when it does not look like JSON, let
      // the YAML reader have it; otherwise report where the JSON breaks.
      if (!/^\{\s*("|\}|$)/.test(trimmed)) return parseFuzzfile(text, file, 'YAML', opts);
      const { diagnostics: syntax } = syntaxDiagnostics(text, parseWithPositions(text), file, 'JSON');
      if (syntax.length === 0) return parseFuzzfile(text, file, 'YAML', opts); // valid YAML after all
      return { diagnostics: syntax };
    }
    if (isWfFormat(json)) {
      const workflow = convertWfFormat(json, file, diagnostics, text);
      sortDiagnostics(diagnostics);
      return workflow ? { workflow, diagnostics } : { diagnostics };
    }
  }
  return parseFuzzfile(text, file, 'YAML', opts);
}

/** In file order (stable for diagnostics at the same place). */
export function sortDiagnostics(d: Diagnostic[]): void {
  d.sort((a, b) => a.line - b.line || a.col - b.col);
}

/**
 * Read, parse and validate a workflow file. Throws WarrenError: SPEC_FILE_NOT_FOUND,
 * SPEC_FILE_IS_DIR, SPEC_FILE_UNREADABLE, SPEC_FILE_NOT_TEXT or SPEC_INVALID (with
 * `details.diagnostics`), all with exitCode 2.
 */
export function loadWorkflowFile(path: string, opts: ReadOptions = {}): Workflow {
  const text = readWorkflowText(path);
  const { workflow, diagnostics } = parseWorkflowText(text, path, opts);
  if (!workflow) throw invalid(path, diagnostics);
  return workflow;
}

/** Parse and validate a workflow's text (as a server receives it); throws SPEC_INVALID like loadWorkflowFile. */
export function loadWorkflowText(text: string, file: string, opts: ReadOptions = {}): Workflow {
  if (text.includes('\u0000')) {
    throw new WarrenError('SPEC_FILE_NOT_TEXT', `${file} is not a text file`, { hint: 'a workflow is a YAML Fuzzfile or a WfFormat JSON file' });
  }
  const { workflow, diagnostics } = parseWorkflowText(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, file, opts);
  if (!workflow) throw invalid(file, diagnostics);
  return workflow;
}

/** The text of a workflow file, with friendly errors for missing/unreadable files. */
export function readWorkflowText(path: string): string {
  let buf: Buffer;
  try {
    if (statSync(path).isDirectory()) {
      throw new WarrenError('SPEC_FILE_IS_DIR', `${path} is a directory, not a workflow file`, {
        hint: 'pass the workflow file itself, e.g. `warren validate examples/hello.yaml`',
      });
    }
    buf = readFileSync(path);
  } catch (e) {
    if (e instanceof WarrenError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new WarrenError('SPEC_FILE_NOT_FOUND', `workflow file ${path} does not exist`, {
        hint: 'check the path (it is relative to the current directory)',
        cause: e,
      });
    }
    throw new WarrenError('SPEC_FILE_UNREADABLE', `cannot read workflow file ${path}: ${(e as Error).message}`, {
      hint: code === 'EACCES' || code === 'EPERM' ? 'check the file permissions' : 'check that the file is a readable regular file',
      cause: e,
    });
  }
  if (buf.includes(0)) {
    throw new WarrenError('SPEC_FILE_NOT_TEXT', `${path} is not a text file`, {
      hint: 'a workflow is a YAML Fuzzfile or a WfFormat JSON file',
    });
  }
  const bad = firstInvalidUtf8(buf);
  if (bad >= 0) {
    // Decoding would turn the bytes into U+FFFD and run the job with arguments it was not given.
    const lineStart = buf.lastIndexOf(10, bad - 1) + 1;
    let line = 1;
    for (let i = buf.indexOf(10); i >= 0 && i < bad; i = buf.indexOf(10, i + 1)) line++;
    const col = buf.subarray(lineStart, bad).toString('utf8').length + 1;
    throw new WarrenError('SPEC_FILE_NOT_UTF8', `${path}:${line}:${col}: byte 0x${buf[bad]!.toString(16).padStart(2, '0')} is not valid UTF-8: a workflow is UTF-8 text`, {
      hint: 'convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE`); arguments are passed to programs as UTF-8 exactly as written',
      details: { file: path, line, col, offset: bad },
    });
  }
  let text = buf.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

/** Offset of the first byte that is not part of well-formed UTF-8 (no overlongs, no
 *  surrogates, nothing above U+10FFFF), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const x = b[i + k];
      if (x === undefined) return i;
      if (k === 1 ? x < lo || x > hi : x < 0x80 || x > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}
