// Storage classes: which `use: CLASS` and `volume://SCOPE/CLASS[/NAME]` a workflow may name.
// Two are built in (`ephemeral`, `persistent`); a machine adds its own in
// `$WARREN_HOME/storage-classes.yaml`. Parsing is pure; `readStorageClasses` reads the file.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load as loadYaml, CORE_SCHEMA } from 'js-yaml';
import { WarrenError } from '../common/index.js';
import { badName, NAME_RULE } from './limits.js';
import { formatPath } from './path.js';
import { Reader, isObj, type Seg } from './reader.js';
import { locate, parseWithPositions, syntaxDiagnostics } from './syntax.js';
import type { Diagnostic } from './types.js';
import { JOB_NAME_RE, invalid } from './wfformat.js';

export interface StorageClass {
  name: string;
  /**
   * What a `volume://SCOPE/CLASS/NAME` reference to this class is: a persistent volume
   * called NAME, or an ephemeral one (NAME ignored). v4 `use: CLASS` volumes are persistent
   * when they have a `name`, ephemeral otherwise, whatever this says.
   */
  persistent: boolean;
  description?: string;
  builtin: boolean;
}

/** The classes every Warren knows. */
export const BUILTIN_STORAGE_CLASSES: Readonly<Record<string, StorageClass>> = Object.freeze({
  ephemeral: { name: 'ephemeral', persistent: false, description: 'scratch space for one run, created empty, removed with the run', builtin: true },
  persistent: { name: 'persistent', persistent: true, description: 'kept between runs, shared by name', builtin: true },
});

/** The file of a machine's own classes, under `$WARREN_HOME`. */
export const STORAGE_CLASSES_FILE = 'storage-classes.yaml';

const CLASS_KEYS = ['persistent', 'description'];

/**
 * Parse a storage-classes file: a mapping of class name to `{persistent?: bool, description?: string}`.
 * Returns the classes it defines (not the built-in ones), or diagnostics with positions.
 */
export function parseStorageClasses(text: string, file: string): { classes?: Record<string, StorageClass>; diagnostics: Diagnostic[] } {
  const pd = parseWithPositions(text);
  const { diagnostics: syntax } = syntaxDiagnostics(text, pd, file, 'YAML');
  if (syntax.length > 0) return { diagnostics: syntax };
  let root: unknown;
  try {
    root = loadYaml(text, { schema: CORE_SCHEMA, filename: file });
  } catch (e) {
    return { diagnostics: [{ file, line: 1, col: 1, path: '', message: `malformed YAML: ${(e as Error).message}`, severity: 'error' }] };
  }
  const r = new Reader(file);
  const classes: Record<string, StorageClass> = {};
  if (root !== null && root !== undefined) {
    if (!isObj(root)) r.typeError([], 'a mapping of storage class name to {persistent: true|false, description: ...}', root);
    else {
      for (const [name, spec] of Object.entries(root)) {
        const p: Seg[] = [name];
        const bad = badName(name, JOB_NAME_RE);
        if (bad) {
          r.error(p, `invalid storage class name "${name}": it ${bad}`, NAME_RULE, true);
          continue;
        }
        if (Object.hasOwn(BUILTIN_STORAGE_CLASSES, name)) {
          r.error(p, `"${name}" is a built-in storage class`, 'give your class another name (ephemeral and persistent are always there)', true);
          continue;
        }
        const o = spec === null ? {} : r.obj(spec, p, CLASS_KEYS, 'a storage class');
        if (!o) continue;
        const persistent = o.persistent === undefined ? false : r.bool(o.persistent, [...p, 'persistent']);
        const description = o.description === undefined ? undefined : r.str(o.description, [...p, 'description'], false);
        if (persistent === undefined || (o.description !== undefined && description === undefined)) continue;
        classes[name] = { name, persistent, ...(description !== undefined ? { description } : {}), builtin: false };
      }
    }
  }
  const diagnostics: Diagnostic[] = r.issues.map((i) => {
    const { line, col } = locate(pd, i.path, i.onKey);
    return { file, line, col, path: formatPath(i.path), message: i.message, severity: i.severity, ...(i.hint !== undefined ? { hint: i.hint } : {}) };
  });
  diagnostics.sort((a, b) => a.line - b.line || a.col - b.col);
  return r.hasErrors() ? { diagnostics } : { classes, diagnostics };
}

/**
 * The storage classes a machine adds, from `HOME/storage-classes.yaml` (none when the file
 * does not exist). Throws SPEC_INVALID (exit 2) with the file's diagnostics when it is wrong.
 */
export function readStorageClasses(home: string): Record<string, StorageClass> {
  const file = join(home, STORAGE_CLASSES_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new WarrenError('SPEC_FILE_UNREADABLE', `cannot read ${file}: ${(e as Error).message}`, { hint: 'check the file permissions', cause: e });
  }
  const { classes, diagnostics } = parseStorageClasses(text, file);
  if (!classes) throw invalid(file, diagnostics);
  return classes;
}
