// Copying %files into a tree without ever leaving it. Every destination path is resolved
// inside the tree (resolveInRoot: the tree's own links, an absolute one restarting at the
// tree's root) one level at a time, and nothing is written through an existing link: a link
// at a destination is replaced, not followed. `cp` would follow a destination link, and an
// image's links (e.g. `/var/etc -> /etc`) point at the host's files when seen from outside.
import { spawnSync } from 'node:child_process';
import { chmodSync, constants, copyFileSync, lchownSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';

/** The node path of `p` inside the tree `root`, its links resolved as they would be inside it. */
export function resolveInRoot(root: string, p: string): string {
  const parts = posix.normalize('/' + p).split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (parts.length) {
    const c = parts.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, c);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      done.push(c); // does not exist (yet): the rest is taken as written
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`too many levels of symbolic links in ${p}`);
      const t = readlinkSync(host);
      if (t.startsWith('/')) done.length = 0;
      parts.unshift(...t.split('/').filter(Boolean));
      continue;
    }
    done.push(c);
  }
  return join(root, ...done);
}

/** The node path for `inside` with its parent resolved in the tree and its last component as written (not followed). */
function destPath(root: string, inside: string): string {
  const n = posix.normalize('/' + inside);
  if (n === '/') return root;
  return join(resolveInRoot(root, posix.dirname(n)), posix.basename(n));
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
