// Helpers of the build tests: run the CLI, read a built SIF's tree, copy Apptainer's recipes.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findPrimaryPartition } from '../../src/image/index.js';
import { sharedDir, warrenBin } from '../helpers.js';

export const testdata = join(sharedDir, 'apptainer-testdata');
export const examples = join(testdata, 'examples');
export const haveRunc = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc', '/usr/local/bin/runc'].some((p) => existsSync(p));
export const haveSquashfs = existsSync('/usr/bin/mksquashfs') && existsSync('/usr/bin/unsquashfs');
export const isRoot = process.getuid?.() === 0;

export function buildSkip(): string | false {
  if (!existsSync(testdata)) return `${testdata} is missing (see ../shared/README.md)`;
  if (!haveRunc) return 'runc is not installed (scripts/apt/runtime.txt; run scripts/setup.sh)';
  if (!haveSquashfs) return 'squashfs-tools are not installed (scripts/apt/runtime.txt; run scripts/setup.sh)';
  if (!existsSync('/bin/busybox')) return 'busybox-static is not installed (scripts/apt/image.txt)';
  return false;
}

/** Run `warren ARGS` (the built CLI) in `cwd`. */
export function warren(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [warrenBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd ?? process.cwd(), env: { ...process.env, ...(opts.env ?? {}) } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/** Extract the squashfs of a SIF into `dest` (created). */
export function extractSif(sif: string, dest: string): string {
  const p = findPrimaryPartition(sif);
  const r = spawnSync('unsquashfs', ['-n', '-f', '-d', dest, '-o', String(p.offset), sif], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`unsquashfs ${sif}: ${r.stderr}`);
  return dest;
}

/** Copy one of Apptainer's example recipes to `dir`, changed by `edit`. */
export function copyRecipe(rel: string, dir: string, name: string, edit: (text: string) => string = (t) => t): string {
  const text = readFileSync(join(rel.startsWith('/') ? '' : examples, rel), 'utf8');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, name);
  writeFileSync(out, edit(text));
  return out;
}

/** Everything under `dir` except names matching `keep` (for "nothing left behind" checks). */
export function leftovers(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

export { copyFileSync };
