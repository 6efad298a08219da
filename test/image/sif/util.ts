// Helpers of the SIF tests: test data paths and a CLI runner.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sharedDir } from '../../helpers.js';

export const SIF_DATA = join(sharedDir, 'sif-testdata');
export const img = (name: string): string => join(SIF_DATA, 'images', name);
export const key = (name: string): string => join(SIF_DATA, 'keys', name);

const here = fileURLToPath(import.meta.url);
const harness = join(here, '..', here.endsWith('.ts') ? 'harness.ts' : 'harness.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the SIF CLI commands in a child process with WARREN_HOME set. */
export function cli(args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), harness, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Copy a (read-only) reference image into a temp dir as a writable file. */
export function copyImage(src: string, dest: string): void {
  copyFileSync(src, dest);
  chmodSync(dest, 0o644);
}
