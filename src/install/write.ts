// Where the unit's programs are (this node binary, this package's bin/warren.js), writing the
// unit file, and what may keep the unit from starting (a path its user cannot read).

import { chmodSync, existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarrenError } from '../common/index.js';
import type { Unit, UnitProgram } from './systemd.js';

/** This package's root: dist/src/install/ is three levels below it. */
function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** Node's options on bin/warren.js's first line (`#!/usr/bin/env -S node OPTS`): the unit runs node directly, so it passes them itself. */
export function shebangNodeArgs(firstLine: string): string[] {
  const m = /^#!\S*env\s+-S\s+\S*node\s+(.*)$/.exec(firstLine.trim());
  return m ? m[1]!.split(/\s+/).filter(Boolean) : [];
}

/** The node binary running now and this package's launcher, as absolute paths. */
export function thisProgram(): UnitProgram {
  const script = join(packageRoot(), 'bin', 'warren.js');
  const first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  return { node: process.execPath, nodeArgs: shebangNodeArgs(first), script };
}

/**
 * Paths a non-root account cannot reach by the "other" permission bits: the outermost
 * directory above them without o+x (e.g. /root, mode 0700, above a checkout), or the file
 * itself without o+r.
 */
export function unreadableByOthers(paths: readonly string[]): string[] {
  const out: string[] = [];
  const mode = (p: string): number | undefined => {
    try {
      return statSync(p).mode & 0o777;
    } catch {
      return undefined; // not there: the unit's start says so
    }
  };
  for (const p of paths) {
    let blocked: string | undefined;
    for (let d = dirname(p); ; d = dirname(d)) {
      const m = mode(d);
      if (m !== undefined && (m & 0o001) === 0) blocked = `${d} (mode ${m.toString(8).padStart(4, '0')}, above ${p})`;
      if (dirname(d) === d) break;
    }
    if (blocked) out.push(blocked);
    const m = mode(p);
    if (m !== undefined && (m & 0o004) === 0) out.push(`${p} (not readable by other users)`);
  }
  return [...new Set(out)];
}

/** Write the unit into `dir` (0644, atomically); refuse to replace one unless `force`. */
export function writeUnit(dir: string, unit: Unit, force: boolean): { path: string; replaced: boolean } {
  const path = join(dir, unit.name);
  const replaced = existsSync(path);
  if (replaced && !force) {
    throw new WarrenError('INSTALL_UNIT_EXISTS', `${path} exists already; it is left as it is`, {
      hint: `see the difference with \`warren install systemd ... --print | diff ${path} -\`; add --force to replace it`,
      details: { path },
    });
  }
  const tmp = `${path}.warren-${process.pid}.tmp`;
  try {
    writeFileSync(tmp, unit.text, { mode: 0o644 });
    chmodSync(tmp, 0o644); // whatever the umask
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never made */
    }
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const why = code === 'ENOENT' ? `${dir} does not exist` : code === 'EACCES' || code === 'EPERM' ? `permission denied in ${dir}` : `${code || (e as Error).message}`;
    throw new WarrenError('INSTALL_WRITE_FAILED', `cannot write ${path}: ${why}`, {
      hint: code === 'ENOENT' ? `create ${dir} first, or give --dir DIR` : 'run it as root (sudo), give --dir DIR, or --print to see the unit',
      details: { path, code },
      cause: e,
    });
  }
  return { path, replaced };
}
