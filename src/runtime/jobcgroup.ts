// One cgroup per host job, as Slurm's proctrack/cgroup does: a job and everything it
// starts (setsid, double forks, daemons) stay in it, so limits, kills and accounting
// cover all of them. Layout: `/warren/jobs/<name>` in the v2 hierarchy, or in the v1
// hierarchies a job needs: freezer always (tracking and kill), memory when it has a memory
// limit, pids when it has a pids limit. (Joining a v1 memory cgroup can wait for an RCU
// grace period, milliseconds on a busy node, so jobs without a limit skip it.) CPU time
// comes from the launcher's wait4() (cheaper than a cpuacct cgroup per job on v1). Where cgroups cannot be written
// (not root, no delegation, read-only /sys/fs/cgroup) the process runtime falls back to
// process groups and `jobIsolation()` says why.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CGROUP_ROOT, detectCgroups } from './container/cgroups.js';
import { pidAlive } from '../common/index.js';

export type JobIsolationMode = 'cgroup-v2' | 'cgroup-v1' | 'process-group';
export interface JobIsolation {
  mode: JobIsolationMode;
  /** Why the process-group fallback is in use. */
  reason?: string;
}

/** Parent of every job cgroup, within each hierarchy. */
export const JOBS_PARENT = '/warren/jobs';
/** v1 hierarchies used, the first one required (pids only for jobs with a pids limit). */
const V1_CONTROLLERS = ['memory', 'freezer', 'pids'] as const;

let probed: JobIsolation | undefined;
let v1Ctrls: string[] = [];

function errText(e: unknown): string {
  const x = e as NodeJS.ErrnoException;
  return x.code ? `${x.code}${x.path ? ` on ${x.path}` : ''}` : String(e);
}

function enableControllers(dir: string, wanted: string[]): void {
  let have: string[] = [];
  try {
    have = readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  } catch {
    return;
  }
  let on: string[] = [];
  try {
    on = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/);
  } catch {
    /* none */
  }
  const add = wanted.filter((c) => have.includes(c) && !on.includes(c));
  if (add.length) writeFileSync(join(dir, 'cgroup.subtree_control'), add.map((c) => `+${c}`).join(' '));
}

function probe(): JobIsolation {
  const forced = process.env.WARREN_JOB_ISOLATION;
  if (forced === 'process-group') return { mode: 'process-group', reason: 'forced by WARREN_JOB_ISOLATION=process-group' };
  const info = detectCgroups();
  if (info.mode === 'none') return { mode: 'process-group', reason: `no cgroup file system at ${CGROUP_ROOT}` };
  const test = `probe-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    if (info.mode === 'v2') {
      const parent = join(CGROUP_ROOT, JOBS_PARENT);
      const root = join(CGROUP_ROOT, 'warren');
      // Controllers flow down: root -> warren -> warren/jobs -> each job.
      enableControllers(CGROUP_ROOT, ['memory', 'pids']);
      mkdirSync(parent, { recursive: true });
      enableControllers(root, ['memory', 'pids']);
      enableControllers(parent, ['memory', 'pids']);
      const ctrls = readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8');
      if (!/\bmemory\b/.test(ctrls)) return { mode: 'process-group', reason: `the memory controller cannot be enabled in ${parent} (cgroup v2)` };
      mkdirSync(join(parent, test));
      rmdirSync(join(parent, test));
      return { mode: 'cgroup-v2' };
    }
    const ctrls = V1_CONTROLLERS.filter((c) => existsSync(join(CGROUP_ROOT, c, 'cgroup.procs')));
    if (!ctrls.includes('memory')) return { mode: 'process-group', reason: 'no v1 memory hierarchy' };
    for (const c of ctrls) {
      const parent = join(CGROUP_ROOT, c, JOBS_PARENT);
      mkdirSync(parent, { recursive: true });
      mkdirSync(join(parent, test));
      rmdirSync(join(parent, test));
    }
    v1Ctrls = ctrls;
    return { mode: 'cgroup-v1' };
  } catch (e) {
    return { mode: 'process-group', reason: `cgroups cannot be written by uid ${process.getuid?.() ?? '?'} (${errText(e)})` };
  }
}

/** How this node isolates host jobs: 'cgroup-v2' | 'cgroup-v1' | 'process-group' (+ why, for `warren status`). */
export function jobIsolation(): JobIsolation {
  return (probed ??= probe());
}

/** The directories of cgroup `path` (e.g. `/warren/jobs/x`) in each hierarchy this node uses. */
function dirsOf(mode: JobIsolationMode, path: string, need?: { memory: boolean; pids: boolean }): string[] {
  if (mode === 'cgroup-v2') return [join(CGROUP_ROOT, path)];
  if (mode !== 'cgroup-v1') return [];
  // Without freezer, memory is what tracks the job.
  const use = need ? v1Ctrls.filter((c) => (c === 'freezer' ? true : c === 'memory' ? need.memory || !v1Ctrls.includes('freezer') : need.pids)) : v1Ctrls;
  return use.map((c) => join(CGROUP_ROOT, c, path));
}

function readText(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

function readKv(p: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readText(p).split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}

function sanitize(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[._-]+/, '').slice(0, 64) || 'job';
}

let counter = 0;

export interface JobAccounting {
  /** Peak memory of the whole job (bytes), when the kernel reports it. */
  memoryPeakBytes?: number;
  /** CPU time of the whole job (user + system, ms). */
  cpuMs?: number;
  /** Processes the kernel's OOM killer killed in the job. */
  oomKills: number;
}

/** The cgroup of one host job. */
export class JobCgroup {
  /** Path inside the hierarchy, e.g. `/warren/jobs/wf1_a_1.4242.7.ab12cd` (what is recorded). */
  readonly path: string;
  /** Absolute directories, one per hierarchy; the job joins all of them. */
  readonly dirs: string[];

  private constructor(
    readonly mode: 'cgroup-v1' | 'cgroup-v2',
    path: string,
    need?: { memory: boolean; pids: boolean },
  ) {
    this.path = path;
    this.dirs = dirsOf(mode, path, need);
  }

  /** Make the cgroup for a job with its limits. Throws (an fs error) when it cannot. */
  static create(mode: 'cgroup-v1' | 'cgroup-v2', id: string, limits: { memoryBytes?: number; pidsMax?: number }): JobCgroup {
    const name = `${sanitize(id)}.${process.pid}.${++counter}.${randomBytes(3).toString('hex')}`;
    const cg = new JobCgroup(mode, `${JOBS_PARENT}/${name}`, { memory: limits.memoryBytes !== undefined, pids: limits.pidsMax !== undefined });
    const made: string[] = [];
    try {
      for (const d of cg.dirs) {
        mkdirSync(d);
        made.push(d);
      }
      if (mode === 'cgroup-v2') {
        const d = cg.dirs[0]!;
        if (limits.memoryBytes !== undefined) {
          writeFileSync(join(d, 'memory.max'), String(limits.memoryBytes));
          if (existsSync(join(d, 'memory.swap.max'))) writeFileSync(join(d, 'memory.swap.max'), '0');
          // One process over the limit ends the whole job, not only the biggest process.
          writeFileSync(join(d, 'memory.oom.group'), '1');
        }
        if (limits.pidsMax !== undefined) writeFileSync(join(d, 'pids.max'), String(limits.pidsMax));
      } else {
        for (const d of cg.dirs) {
          if (limits.memoryBytes !== undefined && d.includes('/memory/')) {
            writeFileSync(join(d, 'memory.limit_in_bytes'), String(limits.memoryBytes));
            if (existsSync(join(d, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(d, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
          }
          if (limits.pidsMax !== undefined && d.includes('/pids/')) writeFileSync(join(d, 'pids.max'), String(limits.pidsMax));
        }
      }
    } catch (e) {
      for (const d of made) {
        try {
          rmdirSync(d);
        } catch {
          /* best effort */
        }
      }
      throw e;
    }
    return cg;
  }

  /** The cgroup recorded for an attempt (`/warren/jobs/<name>`), or null when the path is not one of Warren's job cgroups. */
  static fromRecord(path: string): JobCgroup | null {
    const iso = jobIsolation();
    if (iso.mode === 'process-group') {
      // Recorded by a Warren that could write cgroups: look for it all the same.
      const info = detectCgroups();
      if (info.mode === 'none') return null;
      if (info.mode === 'v1') v1Ctrls = V1_CONTROLLERS.filter((c) => existsSync(join(CGROUP_ROOT, c, 'cgroup.procs')));
      return JobCgroup.checked(info.mode === 'v2' ? 'cgroup-v2' : 'cgroup-v1', path);
    }
    return JobCgroup.checked(iso.mode, path);
  }

  private static checked(mode: 'cgroup-v1' | 'cgroup-v2', path: string): JobCgroup | null {
    const name = path.startsWith(`${JOBS_PARENT}/`) ? path.slice(JOBS_PARENT.length + 1) : '';
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') return null;
    return new JobCgroup(mode, path);
  }

  /** Does the cgroup still exist (in any hierarchy)? */
  exists(): boolean {
    return this.dirs.some((d) => existsSync(d));
  }

  /** Every process in the job (each joins every hierarchy: the first one lists them all). */
  pids(): number[] {
    const out = new Set<number>();
    for (const d of this.dirs) {
      if (!existsSync(d)) continue;
      for (const l of readText(join(d, 'cgroup.procs')).split('\n')) if (l) out.add(Number(l));
      break;
    }
    return [...out];
  }

  /** Send `sig` to every process in the job. */
  signal(sig: NodeJS.Signals): void {
    for (const p of this.pids()) {
      try {
        process.kill(p, sig);
      } catch {
        /* gone */
      }
    }
  }

  /** SIGKILL everything in the job at once: cgroup.kill (v2), or freeze, kill every pid, thaw (v1). */
  kill(): void {
    if (this.mode === 'cgroup-v2') {
      const d = this.dirs[0]!;
      try {
        writeFileSync(join(d, 'cgroup.kill'), '1');
        return;
      } catch {
        /* kernel < 5.14 or gone: freeze and kill below */
      }
      this.frozen(join(d, 'cgroup.freeze'), '1', '0');
      return;
    }
    const fz = this.dirs.find((d) => d.includes('/freezer/'));
    if (fz) this.frozen(join(fz, 'freezer.state'), 'FROZEN', 'THAWED');
    else this.signal('SIGKILL');
  }

  /** Freeze (no process can fork while frozen), SIGKILL every one, thaw (the kills land). */
  private frozen(file: string, on: string, off: string): void {
    let froze = false;
    try {
      writeFileSync(file, on);
      froze = true;
    } catch {
      /* gone, or no freezer: plain kills */
    }
    this.signal('SIGKILL');
    if (froze) {
      try {
        writeFileSync(file, off);
      } catch {
        /* gone */
      }
    }
  }

  /** Peak memory, CPU time and OOM kills of the whole job. */
  account(): JobAccounting {
    const num = (p: string): number | undefined => {
      const t = readText(p).trim();
      return t === '' || Number.isNaN(Number(t)) ? undefined : Number(t);
    };
    if (this.mode === 'cgroup-v2') {
      const d = this.dirs[0]!;
      const ev = readKv(join(d, 'memory.events'));
      const cpu = readKv(join(d, 'cpu.stat'));
      const peak = num(join(d, 'memory.peak'));
      return {
        oomKills: ev.oom_kill ?? 0,
        ...(peak !== undefined ? { memoryPeakBytes: peak } : {}),
        ...(cpu.usage_usec !== undefined ? { cpuMs: Math.round(cpu.usage_usec / 1000) } : {}),
      };
    }
    const mem = this.dirs.find((d) => d.includes('/memory/'));
    const peak = mem ? num(join(mem, 'memory.max_usage_in_bytes')) : undefined;
    return {
      oomKills: mem ? (readKv(join(mem, 'memory.oom_control')).oom_kill ?? 0) : 0,
      ...(peak !== undefined ? { memoryPeakBytes: peak } : {}),
    };
  }

  /** Remove the cgroup in every hierarchy. False while a process is still in it. Never throws. */
  remove(): boolean {
    let all = true;
    for (const d of this.dirs) {
      try {
        rmdirSync(d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') all = false;
      }
    }
    return all;
  }

  /** Kill what is left and remove the cgroup, waiting (up to `waitMs`) until it is empty. */
  async destroy(waitMs = 5000): Promise<boolean> {
    const t0 = Date.now();
    for (let i = 0; ; i++) {
      if (this.remove()) return true;
      if (Date.now() - t0 > waitMs) return false;
      if (this.pids().length) this.kill();
      await new Promise((r) => setTimeout(r, i < 10 ? 5 : 50));
    }
  }
}

let swept = false;

/**
 * Remove the EMPTY job cgroups whose owner (the Warren process whose pid is in the name,
 * `<id>.<pid>.<n>.<rand>`) is gone, in every hierarchy: what a killed Warren or launcher
 * could not remove. Jobs still running in such a cgroup are left alone (a resume stops them
 * through `stopRecordedAttempt`). Once per process; never throws.
 */
export function sweepDeadJobCgroups(): number {
  if (swept) return 0;
  swept = true;
  const iso = jobIsolation();
  const parents = iso.mode === 'cgroup-v2' ? [join(CGROUP_ROOT, JOBS_PARENT)] : iso.mode === 'cgroup-v1' ? v1Ctrls.map((c) => join(CGROUP_ROOT, c, JOBS_PARENT)) : [];
  let removed = 0;
  for (const parent of parents) {
    let names: string[] = [];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const name of names) {
      const m = /^[A-Za-z0-9_.-]+\.(\d+)\.\d+\.[0-9a-f]+$/.exec(name);
      if (!m) continue;
      const owner = Number(m[1]);
      if (owner === process.pid || pidAlive(owner)) continue;
      try {
        rmdirSync(join(parent, name)); // fails (EBUSY) while a process is in it
        removed++;
      } catch {
        /* in use, or gone */
      }
    }
  }
  return removed;
}

/** Names of the job cgroups in the jobs parent (for sweeps and tests). */
export function listJobCgroups(): string[] {
  const iso = jobIsolation();
  const d = iso.mode === 'cgroup-v2' ? join(CGROUP_ROOT, JOBS_PARENT) : iso.mode === 'cgroup-v1' ? join(CGROUP_ROOT, v1Ctrls.includes('freezer') ? 'freezer' : 'memory', JOBS_PARENT) : '';
  if (!d) return [];
  try {
    return readdirSync(d, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `${JOBS_PARENT}/${e.name}`);
  } catch {
    return [];
  }
}

/** Does /proc/PID/environ hold exactly `WARREN_ATTEMPT_ID=<attemptId>`? */
export function attemptOfPid(pid: number, attemptId: string): boolean {
  let env: Buffer;
  try {
    env = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  const want = `WARREN_ATTEMPT_ID=${attemptId}`;
  return env.toString('utf8').split('\0').includes(want);
}

/**
 * Stop a job that a dead Warren process left, by its recorded cgroup (kills every process
 * in it, then removes it), else by its process group after checking /proc/PID/environ holds
 * WARREN_ATTEMPT_ID=attemptId (and every other process whose environment holds it: setsid
 * children). Never kills what is not that attempt's.
 */
export async function stopRecordedAttempt(rec: { attemptId: string; pid: number | null; cgroup: string | null }): Promise<'stopped' | 'gone'> {
  const cg = rec.cgroup ? JobCgroup.fromRecord(rec.cgroup) : null;
  if (cg) {
    if (!cg.exists()) return 'gone';
    const had = cg.pids().length > 0;
    if (had) cg.kill();
    await cg.destroy();
    return had ? 'stopped' : 'gone';
  }
  if (!rec.attemptId) return 'gone';
  // The recorded pid leads the job's session and group; a process that left them (setsid)
  // still carries the attempt's id in its environment, so every process with it is the job's.
  const members = (): number[] => {
    const out: number[] = [];
    let names: string[] = [];
    try {
      names = readdirSync('/proc');
    } catch {
      return out;
    }
    for (const n of names) {
      const c = n.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const p = Number(n);
      if (p !== process.pid && attemptOfPid(p, rec.attemptId)) out.push(p);
    }
    return out;
  };
  let stopped = false;
  for (let i = 0; i < 100; i++) {
    const ps = members();
    if (ps.length === 0) break;
    stopped = true;
    for (const p of ps) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return stopped ? 'stopped' : 'gone';
}
