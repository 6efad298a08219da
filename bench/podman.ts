// Shared by the container benchmarks: Debian's podman on an image imported from a root file
// system (no registry, no network), and the summary statistics of a series of timings.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Podman {
  /** `podman run ...` arguments that work on this machine, or null (see `why`). */
  args: string[] | null;
  why: string;
  remove(): void;
}

/** Import `rootfs` as `image` and find `podman run --rm` arguments this machine allows. */
export function preparePodman(rootfs: string, work: string, image: string, argv: string[] = ['/bin/true']): Podman {
  const none = (why: string): Podman => ({ args: null, why, remove: () => undefined });
  if (spawnSync('podman', ['--version']).status !== 0) return none('podman not installed (apt-get install podman)');
  const tar = join(work, 'podman-rootfs.tar');
  spawnSync('tar', ['-C', rootfs, '-cf', tar, '.']);
  const imp = spawnSync('podman', ['import', '-q', tar, image], { encoding: 'utf8' });
  if (imp.status !== 0) return none(`podman import failed: ${imp.stderr.trim()}`);
  const remove = (): void => void spawnSync('podman', ['rmi', '-f', image], { stdio: 'ignore' });
  // Where the machine's hard limits are below podman's default rlimits (e.g. in a sandbox
  // without CAP_SYS_RESOURCE), pass limits the machine allows.
  const hard = (name: string) => /(\d+)\s+\S+\s*$/.exec(readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name)) ?? '')?.[1];
  const candidates = [[], ['--ulimit', `nofile=${hard('Max open files') ?? 1024}:${hard('Max open files') ?? 1024}`, '--ulimit', 'nproc=32768:32768']];
  let why = '';
  for (const extra of candidates) {
    const args = ['run', '--rm', ...extra, image, ...argv];
    const r = spawnSync('podman', args, { encoding: 'utf8' });
    if (r.status === 0) return { args, why: '', remove };
    why = `podman run failed: ${r.stderr.trim().split('\n').pop()}`;
  }
  remove();
  return none(why);
}

export function stats(xs: number[]): { median: number; mean: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median, mean: xs.reduce((a, b) => a + b, 0) / xs.length, min: s[0]!, max: s[s.length - 1]! };
}

/**
 * Run each runner `n` times after `warmup` rounds, interleaved (one of each per round, the order
 * rotating) so machine noise hits all alike; a pause after each run (400 ms after podman, whose
 * conmon and storage cleanup would otherwise slow down whatever runs next).
 */
export async function interleave(runners: [string, () => Promise<number>][], n: number, warmup: number): Promise<Record<string, number[]>> {
  const t: Record<string, number[]> = Object.fromEntries(runners.map(([name]) => [name, []]));
  for (let i = 0; i < warmup; i++) for (const [, fn] of runners) await fn();
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < runners.length; k++) {
      const [name, fn] = runners[(i + k) % runners.length]!;
      t[name]!.push(await fn());
      await new Promise((r) => setTimeout(r, name === 'podman' ? 400 : 50));
    }
  }
  return t;
}

/** Spawn `cmd` with its output appended to `logs/out` and `logs/err`; its wall time from spawn to exit. */
export function timeSpawn(logs: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ ms: number; code: number | null }> {
  const out = openSync(join(logs, 'out'), 'a');
  const err = openSync(join(logs, 'err'), 'a');
  const t0 = process.hrtime.bigint();
  const p = spawn(cmd, args, { stdio: ['ignore', out, err], ...(opts.env ? { env: opts.env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  closeSync(out);
  closeSync(err);
  return new Promise((resolve) => p.on('exit', (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code })));
}

/** One timed `podman run` of a prepared image (its log files in `logs`). */
export async function timePodman(logs: string, pm: Podman): Promise<number> {
  const r = await timeSpawn(logs, 'podman', pm.args!);
  if (r.code !== 0) throw new Error(`podman run failed (${r.code})`);
  return r.ms;
}
