// Test images for the container runtime, made from Debian's busybox-static: a root file
// system directory, a squashfs of it, and a squashfs behind a 4096-byte header (as in a SIF).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerImage, PrepareImageFn } from '../../../src/runtime/container/index.js';

export const BUSYBOX = '/bin/busybox';

/** A busybox root file system at `dir` (bin with applet links, etc/passwd, empty mount points). */
export function makeBusyboxRootfs(dir: string): string {
  for (const d of ['bin', 'etc', 'proc', 'dev', 'sys', 'tmp', 'root', 'work']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  execFileSync('chmod', ['755', join(dir, 'bin', 'busybox')]);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) if (!existsSync(join(dir, 'bin', a))) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  // Places for the node's resolver files (bound in when the job shares the node's network).
  writeFileSync(join(dir, 'etc', 'resolv.conf'), '');
  writeFileSync(join(dir, 'etc', 'hosts'), '');
  return dir;
}

/** squashfs of `rootfs` at `file`; with `headerBytes`, that many zero bytes come first. */
export function makeSquashfs(rootfs: string, file: string, headerBytes = 0): { file: string; offset: number; size: number } {
  const plain = headerBytes ? `${file}.plain` : file;
  execFileSync('mksquashfs', [rootfs, plain, '-quiet', '-noappend', '-all-root', '-no-progress'], { stdio: 'ignore' });
  const size = statSync(plain).size;
  if (headerBytes) writeFileSync(file, Buffer.concat([Buffer.alloc(headerBytes), readFileSync(plain)]));
  return { file, offset: headerBytes, size };
}

/** A prepareImage that knows a few local test images by URI. */
export function fakePrepare(images: Record<string, Omit<ContainerImage, 'uri'>>): PrepareImageFn {
  return async (uri) => {
    const img = images[uri];
    if (!img) throw new Error(`test image ${uri} not known`);
    return { uri, ...img };
  };
}

export const emptyConfig = (): ContainerImage['config'] => ({ env: [], labels: {} });

/** Mount points under `dir` (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m && (m === dir || m.startsWith(`${dir}/`)));
}
