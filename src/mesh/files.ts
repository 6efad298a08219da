// Private files of the mesh: directories 0700, keys and certificates 0600, written
// atomically (temporary file in the same directory, fsync, rename) so that a reader never
// sees half a key and a renewal never leaves a key without its certificate.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, chmodSync, writeSync, rmSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WarrenError } from '../common/index.js';

/** Create the directory (and parents) and make it 0700, also when it already existed. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/**
 * Create the directory (0700), or take from an existing one what others could do besides
 * passing through it (listing, writing): an agent's data directory is 0711 so that jobs
 * running as their users reach their run directories below it; its key files are 0600.
 */
export function ensureClosedDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = statSync(dir).mode & 0o777;
  if (mode & 0o066) chmodSync(dir, mode & ~0o066);
}

/** Write a file with the given mode, atomically. */
export function writePrivateFile(path: string, data: string, mode = 0o600): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Refuse a key file that others than its owner can read or write (like ssh does). */
export function checkPrivateMode(path: string, what: string): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new WarrenError('MESH_KEY_PERMISSIONS', `${what} ${path} has mode ${mode.toString(8).padStart(4, '0')}: others can read it`, {
      hint: `chmod 600 ${path} (and consider the key leaked if others could read it)`,
    });
  }
}
