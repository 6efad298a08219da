// Raw tar layers for the hardening and fuzz tests: any entry type tar-stream can write
// (device nodes, FIFOs, names no builder would produce), optionally gzip-compressed.
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export interface RawEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  data?: Buffer | string;
  mode?: number;
  linkname?: string;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
}

/** A tar archive of `entries` (gzip-compressed when `gzip`). */
export async function rawTar(entries: RawEntry[], gzip = false): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    const header: Partial<tar.Header> & { name: string } = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date(0),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      if (type === 'file') pack.entry({ ...header, size: data.length }, data, (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  const t = Buffer.concat(chunks);
  return gzip ? gzipSync(t) : t;
}

export function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/**
 * Everything under `dir` (not following symlinks) as `path type mode content-hash`: two
 * equal snapshots mean nothing was written, removed, re-linked or re-moded there.
 */
export function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    const st = lstatSync(p);
    let what: string;
    if (st.isSymbolicLink()) what = `l ${readlinkSync(p)}`;
    else if (st.isDirectory()) what = 'd';
    else if (st.isFile()) what = `f ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`;
    else what = 'other';
    out.push(`${rel} ${what} ${(st.mode & 0o7777).toString(8)} ${st.nlink}`);
    if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e), `${rel}/${e}`);
  };
  walk(dir, '.');
  return out;
}

/** Paths under `dir` that are setuid/setgid files or directories, device nodes, FIFOs or sockets. */
export function privilegedEntries(dir: string): string[] {
  const bad: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if ((st.mode & 0o6000) !== 0) bad.push(`${p} mode ${(st.mode & 0o7777).toString(8)}`);
    if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO() || st.isSocket()) bad.push(`${p} is a special file`);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dir);
  return bad;
}
