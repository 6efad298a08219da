// Initramfs archives: a directory tree packed as a gzip-compressed cpio "newc" archive, the
// format the Linux kernel unpacks into its root file system (and iPXE hands it as an initrd).
// The packing is done by the real tools (GNU cpio, pigz or gzip), streamed: nothing is held in
// memory whatever the size of the tree, and the archive's SHA-256 is computed on the way to disk.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import { WarrenError } from '../common/index.js';

export interface PackOptions {
  /** Own every entry as root (uid 0, gid 0), as an overlay must; default: keep the tree's owners. */
  rootOwned?: boolean;
  /** gzip level, 1 (fast) to 9 (small); default 6. */
  level?: number;
  /** Paths (relative, without ./) to leave out, as `find -path` patterns. */
  exclude?: string[];
}

export interface PackResult {
  /** The archive's SHA-256, hex. */
  sha256: string;
  /** Its size in bytes. */
  size: number;
}

function which(tool: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir && existsSync(`${dir}/${tool}`)) return `${dir}/${tool}`;
  }
  return null;
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Pack `root` into `out` (written beside as `out.partial`, renamed when whole: a reader never
 * sees half an archive). Entries are sorted by name and their times kept, so the same tree gives
 * the same archive (`cpio --reproducible`).
 */
export async function packCpioGz(root: string, out: string, opts: PackOptions = {}): Promise<PackResult> {
  const cpio = which('cpio');
  if (!cpio) {
    throw new WarrenError('PROVISION_TOOL_MISSING', 'cpio is not installed: it packs node images and overlays', { hint: 'install it: apt-get install cpio (scripts/setup.sh does)' });
  }
  if (!existsSync(root)) {
    throw new WarrenError('PROVISION_PACK_FAILED', `cannot pack ${root}: no such directory`, { hint: 'check the path of the tree to pack' });
  }
  const level = opts.level ?? 6;
  const gz = which('pigz') ? `pigz -n -${level}` : `gzip -n -${level}`;
  const prune = (opts.exclude ?? []).map((p) => `-path ${shq(`./${p}`)} -prune -o`).join(' ');
  const owner = opts.rootOwned ? ' -R 0:0' : '';
  // find prints every entry (not "." itself), sorted bytewise; cpio reads the NUL-separated list.
  const script = `set -o pipefail; find . -mindepth 1 ${prune} -print0 | LC_ALL=C sort -z | ${shq(cpio)} --quiet --null -o -H newc --reproducible${owner} | ${gz}`;
  const partial = `${out}.partial`;
  const hash = createHash('sha256');
  let size = 0;
  const file = createWriteStream(partial, { mode: 0o644 });
  const child = spawn('/bin/bash', ['-c', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => {
    if (err.length < 4096) err += c.toString();
  });
  child.stdout.on('data', (c: Buffer) => {
    hash.update(c);
    size += c.length;
    if (!file.write(c)) {
      child.stdout.pause();
      file.once('drain', () => child.stdout.resume());
    }
  });
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c) => resolve(c));
    });
    await new Promise<void>((resolve, reject) => file.end((e?: Error | null) => (e ? reject(e) : resolve())));
    if (code !== 0) {
      throw new WarrenError('PROVISION_PACK_FAILED', `packing ${root} as a cpio archive failed (exit ${code}): ${err.trim().split('\n').slice(-3).join('; ') || 'no message'}`, {
        hint: 'check that the directory is readable and the disk has room, then run the command again',
      });
    }
    renameSync(partial, out);
    return { sha256: hash.digest('hex'), size };
  } catch (e) {
    file.destroy();
    rmSync(partial, { force: true });
    throw e;
  }
}
