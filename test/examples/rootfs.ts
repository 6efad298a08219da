// Root file systems for stand-in images, made of this machine's own files: Debian's
// busybox-static (every applet), programs from Debian packages with every shared library
// they load (ldd) and whole trees (plugins, data), and files written by the test. Pushed as
// an OCI image (one layer) or built into a SIF with Warren's own code.
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, openSync, readSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { buildSif, pushLocalImage, pushSif } from '../../src/image/index.js';

export const BUSYBOX = '/bin/busybox';

/** A root file system under construction in `dir` (Debian's merged /usr layout). */
export class Rootfs {
  private readonly copied = new Set<string>();

  constructor(readonly dir: string) {
    for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/local/bin', 'etc', 'root', 'tmp', 'dev', 'proc', 'sys']) mkdirSync(join(dir, d), { recursive: true });
    chmodSync(join(dir, 'tmp'), 0o1777);
    for (const [l, t] of [['bin', 'usr/bin'], ['sbin', 'usr/sbin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64']]) symlinkSync(t!, join(dir, l!));
    writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n');
    writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  }

  /** busybox at /usr/bin/busybox and a link for each of its applets that is not there yet. */
  busybox(): this {
    copyFileSync(BUSYBOX, join(this.dir, 'usr/bin/busybox'));
    chmodSync(join(this.dir, 'usr/bin/busybox'), 0o755);
    const list = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const a of list) {
      const p = join(this.dir, 'usr/bin', a);
      if (a !== 'busybox' && !exists(p)) symlinkSync('busybox', p);
    }
    return this;
  }

  /** Write a file (a script with mode 0755). */
  file(path: string, content: string | Buffer, mode = 0o644): this {
    const p = join(this.dir, path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
    chmodSync(p, mode);
    return this;
  }

  script(path: string, content: string): this {
    return this.file(path, content, 0o755);
  }

  link(path: string, target: string): this {
    const p = join(this.dir, path);
    mkdirSync(dirname(p), { recursive: true });
    if (exists(p)) spawnSync('rm', ['-f', p]);
    symlinkSync(target, p);
    return this;
  }

  /**
   * Copy host files (programs, and every file under the given trees) with the shared
   * libraries the ELF files among them load, at the same paths; links stay links, with
   * their targets copied too.
   */
  host(paths: string[], trees: string[] = []): this {
    const files: string[] = [...paths];
    for (const t of trees) walk(t, files);
    for (const f of files) this.copyHost(f);
    for (const f of files) {
      const real = canonical(f);
      if (!lstatSync(real).isFile()) continue;
      if (!isElf(real)) continue;
      for (const lib of libsOf(real)) this.copyHost(lib);
    }
    return this;
  }

  private copyHost(path: string): void {
    const p = canonical(path);
    if (this.copied.has(p)) return;
    this.copied.add(p);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    const dest = join(this.dir, p);
    if (st.isDirectory()) {
      mkdirSync(dest, { recursive: true });
      return;
    }
    mkdirSync(dirname(dest), { recursive: true });
    if (exists(dest)) spawnSync('rm', ['-f', dest]);
    if (st.isSymbolicLink()) {
      const target = readlinkSync(p);
      symlinkSync(target, dest);
      this.copyHost(resolve(dirname(p), target));
    } else if (st.isFile()) {
      copyFileSync(p, dest);
      chmodSync(dest, st.mode & 0o7777);
    }
  }

  /** Push as a one-layer OCI image to `uri` (docker://…), with these environment variables. */
  async pushOci(uri: string, env: string[] = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']): Promise<void> {
    await pushLocalImage(this.dir, uri, { config: { Env: env } });
  }

  /** Build a SIF at `out` and push it to `uri` (oras://…). lz4: squashfs in a tenth of gzip's time (the kernel and squashfuse read it). */
  async pushSif(uri: string, out: string, env: string[] = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']): Promise<void> {
    await buildSif({ rootfs: this.dir, out, config: { env }, compression: 'lz4' });
    await pushSif(uri, out);
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The path under its real directory (/lib64/x is /usr/lib64/x here); the name itself may be a link. */
function canonical(p: string): string {
  try {
    return join(realpathSync(dirname(p)), basename(p));
  } catch {
    return p;
  }
}

function walk(p: string, out: string[]): void {
  if (!exists(p)) return;
  out.push(p);
  if (lstatSync(p).isDirectory()) for (const e of readdirSync(p)) walk(join(p, e), out);
}

function isElf(p: string): boolean {
  const fd = openSync(p, 'r');
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === '\x7fELF';
  } finally {
    closeSync(fd);
  }
}

const lddCache = new Map<string, string[]>();

/** The libraries an ELF file loads (absolute paths), from ldd (once per file and process). */
function libsOf(file: string): string[] {
  const known = lddCache.get(file);
  if (known) return known;
  const libs = ldd(file);
  lddCache.set(file, libs);
  return libs;
}

function ldd(file: string): string[] {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  const out: string[] = [];
  for (const l of r.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(l) ?? /^\s+(\/\S+)\s+\(/.exec(l);
    if (m && existsSync(m[1]!)) out.push(m[1]!);
  }
  return out;
}
