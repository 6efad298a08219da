// The store's reserve: a preallocated file beside the SQLite database (warren.db.reserve).
// When a store write fails for lack of space, it is deleted, so that the write can be retried
// and the run's final state recorded; the next open re-makes it when space allows.

import { closeSync, existsSync, fsyncSync, openSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';

export const DEFAULT_RESERVE_BYTES = 4 * 1024 * 1024;

/** Make the reserve file if it is missing or short and the file system has room for it (twice
 *  its size free, so it never takes the last bytes itself). True when it is there afterwards. */
export function ensureReserve(path: string, bytes: number): boolean {
  if (bytes <= 0) return false;
  try {
    if (existsSync(path) && statSync(path).size >= bytes) return true;
    const fs = statfsSync(path.replace(/\/[^/]*$/, '') || '/');
    if (fs.bavail * fs.bsize < 2 * bytes) return false;
  } catch {
    return false;
  }
  let fd: number | null = null;
  try {
    fd = openSync(path, 'w', 0o600);
    // Real blocks (zeros), not a sparse file: the space must be taken now.
    const chunk = Buffer.alloc(Math.min(bytes, 1024 * 1024));
    for (let off = 0; off < bytes; ) {
      const n = writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off), off);
      off += n;
    }
    fsyncSync(fd);
    closeSync(fd);
    return true;
  } catch {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
    return false;
  }
}

/** Delete the reserve; true when there was one to free. */
export function releaseReserve(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}
