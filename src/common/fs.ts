// File system helpers shared by subsystems.
import { chmodSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * rm -rf, also of a tree that holds directories its owner made unwritable (a rootless %post,
 * overlayfs's 000-mode `work/work`): on EACCES/EPERM every directory is made 0700 and the
 * removal tried again. Synchronous: for cleanups that must be done before the caller goes on.
 */
export function removeTreeSync(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOTEMPTY') throw e;
  }
  const writable = (p: string): void => {
    try {
      if (!lstatSync(p).isDirectory()) return;
      chmodSync(p, 0o700);
      for (const n of readdirSync(p)) writable(join(p, n));
    } catch {
      /* best effort: the second removal says what is left */
    }
  };
  writable(path);
  rmSync(path, { recursive: true, force: true });
}
