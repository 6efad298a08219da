// Copying %files into a tree without ever leaving it. Every destination path is resolved
// inside the tree (resolveInRoot: the tree's own links, an absolute one restarting at the
// tree's root) one level at a time, and nothing is written through an existing link: a link
// at a destination is replaced, not followed. `cp` would follow a destination link, and an
// image's links (e.g. `/var/etc -> /etc`) point at the host's files when seen from outside.
import { spawnSync } from 'node:child_process';
import { chmodSync, constants, copyFileSync, lchownSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';
import { pathInTree, resolveInRoot } from '../runtime/index.js';

export { resolveInRoot, pathInTree };

/** The node path for `inside` with its parent resolved in the tree and its last component as written (not followed). */
const destPath = pathInTree;

/** Write a file at `inside` in the tree: a link there is replaced, never written through. */
export function writeInTree(root: string, inside: string, data: string | Buffer, mode: number): void {
  const p = pathInTree(root, inside);
  const have = lstatOrNull(p);
  if (have?.isSymbolicLink()) unlinkSync(p);
  else if (have?.isDirectory()) rmSync(p, { recursive: true, force: true });
  writeFileSync(p, data, { mode });
  chmodSync(p, mode);
}

/** mkdir -p of `inside` in the tree (links on the way resolved inside it). */
export function mkdirInTree(root: string, inside: string, mode = 0o755): string {
  const p = resolveInRoot(root, inside);
  mkdirSync(p, { recursive: true, mode });
  return p;
}

/** Read a file of the tree (links resolved inside it); undefined when it is not a file. */
export function readInTree(root: string, inside: string): string | undefined {
  try {
    const p = resolveInRoot(root, inside);
    return statSync(p).isFile() ? readFileSync(p, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

/** Does `inside` exist in the tree (as anything, a link included)? */
export function existsInTree(root: string, inside: string): boolean {
  return lstatOrNull(pathInTree(root, inside)) !== null;
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

export interface CopyOptions {
  /** Follow links in the source (host %files: Apptainer's `cp -L`); else copy them as links. */
  follow: boolean;
  /** Keep owners (copies out of a stage's tree by root); else the copies belong to the builder. */
  preserveOwner: boolean;
}

/** Is `inside` an existing directory of the tree (links resolved inside it)? */
export function isDirInTree(root: string, inside: string): boolean {
  try {
    return statSync(resolveInRoot(root, inside)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Copy `src` (a node path) to `inside` (a path in the tree `root`): a directory recursively,
 * merged into an existing directory there; a file or link replacing what is there.
 */
export function copyIntoTree(src: string, root: string, inside: string, opts: CopyOptions, seen = new Set<string>(), depth = 0): void {
  if (depth > 256) throw new Error(`${src}: directories nested too deep (a link loop?)`);
  const st = opts.follow ? statSync(src) : lstatSync(src);
  const dest = destPath(root, inside);
  const have = lstatOrNull(dest);
  const finish = (isLink: boolean): void => {
    if (opts.preserveOwner) lchownSync(dest, st.uid, st.gid);
    if (!isLink) {
      chmodSync(dest, st.mode & 0o7777);
      utimesSync(dest, st.atime, st.mtime);
    } else {
      try {
        lutimesSync(dest, st.atime, st.mtime);
      } catch {
        /* not supported: times of links do not matter */
      }
    }
  };
  if (st.isDirectory()) {
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) throw new Error(`${src}: a link loop`);
    seen.add(key);
    if (have && !have.isDirectory()) rmSync(dest, { recursive: true, force: true });
    if (!have || !have.isDirectory()) mkdirSync(dest, { mode: 0o700 });
    for (const name of readdirSync(src).sort()) copyIntoTree(join(src, name), root, posix.join(inside, name), opts, seen, depth + 1);
    finish(false);
    seen.delete(key);
    return;
  }
  if (have) {
    if (have.isDirectory()) throw new Error(`cannot replace the directory ${inside} of the image with the non-directory ${src}`);
    unlinkSync(dest);
  }
  if (st.isSymbolicLink()) {
    symlinkSync(readlinkSync(src), dest);
    finish(true);
  } else if (st.isFile()) {
    copyFileSync(src, dest, constants.COPYFILE_EXCL);
    finish(false);
  } else {
    // Device nodes, fifos, sockets (out of a stage's tree): cp makes them; the destination does not exist.
    const r = spawnSync('cp', ['-a', '--', src, dest], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${src}: ${(r.stderr || '').trim() || `cp exited with ${r.status}`}`);
  }
}
