// The process runtime: a job runs on the host as a child process in its own cgroup
// (jobcgroup.ts: memory limit, kill and accounting cover everything it starts, setsid'd
// children included) and its own session/process group, with stdout and stderr going
// straight to its log files (no pipes through Node). Where cgroups cannot be written the
// process group is the fallback: kills reach the group, and a watchdog over the group's
// resident memory enforces the limit. The process is held before exec until the request's
// beforeExec resolved (the attempt is durable before the command runs).

import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, existsSync, statSync, unlinkSync } from 'node:fs';
import { WarrenError, isWarrenError } from '../common/index.js';
import { Spawner, nulError, requestDefect } from './spawner.js';
import { JobCgroup, jobIsolation, sweepDeadJobCgroups, type JobAccounting } from './jobcgroup.js';
import type { ExitInfo, LaunchRequest, RunningTask, Runtime } from './types.js';

const PAGE = 4096;

/** Sums the resident memory of process groups, polling /proc once per tick for all of them. */
class MemoryWatchdog {
  private readonly watched = new Map<number, { limit: number; onExceed: (rss: number) => void }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly intervalMs = 200) {}

  watch(pgid: number, limit: number, onExceed: (rss: number) => void): () => void {
    this.watched.set(pgid, { limit, onExceed });
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.intervalMs);
      this.timer.unref();
    }
    return () => {
      this.watched.delete(pgid);
      if (this.watched.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  private tick(): void {
    const rss = new Map<number, number>();
    let pids: string[];
    try {
      pids = readdirSync('/proc');
    } catch {
      return;
    }
    for (const p of pids) {
      if (p.charCodeAt(0) < 48 || p.charCodeAt(0) > 57) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${p}/stat`, 'latin1');
      } catch {
        continue;
      }
      // Fields after the command name (which may contain spaces) start after the last ')'.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pgrp = Number(f[2]);
      if (!this.watched.has(pgrp)) continue;
      rss.set(pgrp, (rss.get(pgrp) ?? 0) + Number(f[21]) * PAGE);
    }
    for (const [pgid, w] of this.watched) {
      const used = rss.get(pgid) ?? 0;
      if (used > w.limit) w.onExceed(used);
    }
  }
}

const watchdog = new MemoryWatchdog();

function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, sig);
  } catch {
    /* already gone */
  }
}

export interface ProcessRuntimeOptions {
  /** How to start processes: `spawner` (warren-spawn, fast), `node` (child_process), or `auto`
   *  (the spawner when it is built, default). */
  launcher?: 'auto' | 'spawner' | 'node';
  /** `auto` (default): a cgroup per job where this node allows it (see jobIsolation());
   *  `process-group`: never use cgroups (the fallback, forced). */
  isolation?: 'auto' | 'process-group';
  /** Limit on the number of processes of one job (pids.max; cgroups only). */
  pidsMax?: number;
}

/** Holds a process before exec when Node's child_process starts it: joins the cgroups given
 *  as arguments, waits for a line on stdin ("go"), then execs the command. */
const HOLD_STUB = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs" || exit 126; shift; n=$((n-1)); done; if [ "$1" = 1 ]; then IFS= read -r go || exit 127; fi; shift; exec 0</dev/null; exec "$@"';

/** Open a log file for appending; `created` when this call made it. */
function openLog(path: string): { fd: number; created: boolean } {
  try {
    return { fd: openSync(path, 'ax'), created: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return { fd: openSync(path, 'a'), created: false };
  }
}

/** Remove a log file this runtime created when the job wrote nothing to it. */
function dropIfEmpty(path: string): void {
  try {
    if (statSync(path).size === 0) unlinkSync(path);
  } catch {
    /* gone or not ours to judge */
  }
}

/** Jobs in flight in this process: a Warren process that exits does not leave them running. */
const live = new Set<() => void>();
let exitHooked = false;
function onOwnerExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const k of live) k();
  });
}

const mib = (b: number): string => (b / 2 ** 20).toFixed(0);

export function createProcessRuntime(opts: ProcessRuntimeOptions = {}): Runtime {
  const launcher = opts.launcher ?? 'auto';
  if (launcher === 'spawner' && !Spawner.get()) {
    throw new WarrenError('RUNTIME_NO_SPAWNER', 'the process launcher dist/bin/warren-spawn is not built', {
      hint: 'run scripts/setup.sh (it compiles it with cc), or use the node launcher',
    });
  }
  const isolation = (): 'cgroup-v1' | 'cgroup-v2' | null => {
    if (opts.isolation === 'process-group') return null;
    sweepDeadJobCgroups();
    const m = jobIsolation().mode;
    return m === 'process-group' ? null : m;
  };
  return {
    name: 'process',
    async check(req: LaunchRequest): Promise<void> {
      const defect = requestDefect(req);
      if (defect) throw nulError(defect);
      if (!existsSync(req.cwd) || !statSync(req.cwd).isDirectory()) {
        throw new WarrenError('RUNTIME_BAD_CWD', `working directory ${req.cwd} does not exist`, {
          hint: 'create it, or set the job\'s `cwd` to a directory that exists (or inside one of its mounts)',
        });
      }
    },
    launch(req: LaunchRequest): RunningTask {
      const t0 = Date.now();
      let resolveExit!: (e: ExitInfo) => void;
      const exited = new Promise<ExitInfo>((r) => (resolveExit = r));
      let killReason: 'canceled' | 'timeout' | 'oom' | null = null;
      let oomMessage = '';
      let done = false;
      let ending = false;
      let timeoutTimer: NodeJS.Timeout | null = null;
      let killTimer: NodeJS.Timeout | null = null;
      let unwatch: (() => void) | null = null;
      let cg: JobCgroup | null = null;
      let created = { stdout: false, stderr: false };
      /** Why the command never ran although the process existed (beforeExec rejected, exec failed). */
      let notRun: string | null = null;

      const finish = (info: Omit<ExitInfo, 'durationMs'>): void => {
        if (done) return;
        done = true;
        live.delete(killNow);
        if (timeoutTimer) clearTimeout(timeoutTimer);
        if (killTimer) clearTimeout(killTimer);
        unwatch?.();
        resolveStarted(null); // no-op once started
        resolveExit({ ...info, durationMs: Date.now() - t0 });
      };

      let pid: number | undefined;
      let pendingKill = false;
      let resolveStarted!: (pid: number | null) => void;
      const started = new Promise<number | null>((r) => (resolveStarted = r));
      const cmd = req.argv[0];
      const timeoutMessage = (): string => `killed after the ${req.timeoutSec}s timeout (policy.timeout.execute)`;

      /** After the leader ended: nothing of the job may outlive it; then account and clean up. */
      const endJob = async (code: number | null, signal: NodeJS.Signals | null, leaderCpuMs?: number): Promise<void> => {
        if (ending || done) return;
        ending = true;
        // The leader is gone; take down anything it left behind in its group (and cgroup).
        signalGroup(pid, 'SIGKILL');
        let acct: JobAccounting | undefined;
        if (cg) {
          if (cg.pids().length) cg.kill();
          for (let i = 0; i < 400 && cg.pids().length; i++) await new Promise((r) => setTimeout(r, i < 20 ? 5 : 20));
          acct = cg.account();
          await cg.destroy();
        }
        if (created.stdout) dropIfEmpty(req.stdoutPath);
        if (created.stderr && req.stderrPath !== req.stdoutPath) dropIfEmpty(req.stderrPath);
        const cpuMs = acct?.cpuMs ?? leaderCpuMs;
        const usage = { ...(acct?.memoryPeakBytes !== undefined ? { memoryPeakBytes: acct.memoryPeakBytes } : {}), ...(cpuMs !== undefined ? { cpuMs } : {}) };
        if (notRun !== null) {
          finish({ exitCode: null, signal: null, reason: 'spawn-error', message: notRun, ...usage });
        } else if (killReason === 'oom' || (acct && acct.oomKills > 0 && killReason !== 'canceled')) {
          const limit = req.memoryBytes ?? 0;
          const msg =
            oomMessage ||
            `out of memory: the job reached its ${mib(limit)} MiB limit (resource.memory.size) and the kernel killed ${acct!.oomKills} of its processes${acct?.memoryPeakBytes ? ` (peak ${mib(acct.memoryPeakBytes)} MiB)` : ''}; raise the limit or use less memory`;
          finish({ exitCode: code, signal, reason: 'oom', message: msg, ...usage });
        } else if (killReason) {
          finish({ exitCode: code, signal, reason: killReason, message: killReason === 'timeout' ? timeoutMessage() : undefined, ...usage });
        } else if (signal) {
          finish({ exitCode: null, signal, reason: 'signal', ...usage });
        } else {
          finish({ exitCode: code, signal: null, reason: 'exit', ...usage });
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null, cpuMs?: number): void => void endJob(code, signal, cpuMs);

      const spawnMessage = (errno: string | undefined, stage: string, raw: string): string =>
        stage === 'chdir'
          ? `working directory ${req.cwd} does not exist or is not accessible (${errno})`
          : stage === 'open'
            ? `cannot open the log files ${req.stdoutPath} (${errno})`
            : stage === 'cgroup'
              ? `cannot put the job into its cgroup ${cg?.path ?? ''} (${errno})`
              : errno === 'ENOENT'
                ? `command not found: ${cmd} (check the spelling, or give the full path; PATH=${req.env.PATH ?? ''})`
                : errno === 'EACCES'
                  ? `permission denied running ${cmd} (is it executable? chmod +x it, or run it through its interpreter)`
                  : `${cmd}: ${raw}`;
      const spawnError = (errno: string | undefined, stage: string, raw: string): void => {
        const message = spawnMessage(errno, stage, raw);
        if (pid !== undefined) {
          // It had started (the launcher died under it): stop what is left, then end.
          notRun = notRun ?? `${message}; the job was stopped`;
          void endJob(null, 'SIGKILL');
          return;
        }
        if (cg) void cg.destroy();
        finish({ exitCode: null, signal: null, reason: 'spawn-error', message });
      };

      let release: ((go: boolean) => void) | null = null;
      const onStarted = (p: number, made: { stdout: boolean; stderr: boolean }): void => {
        pid = p;
        created = made;
        if (pendingKill) signalAll('SIGTERM');
        if (req.memoryBytes !== undefined && !cg) {
          const limit = req.memoryBytes;
          unwatch = watchdog.watch(p, limit, (rss) => {
            oomMessage = `out of memory: used ${mib(rss)} MiB, over its ${mib(limit)} MiB limit (resource.memory.size); raise the limit or use less memory`;
            if (!killReason) {
              killReason = 'oom';
              signalGroup(p, 'SIGKILL');
            }
          });
        }
        if (!req.beforeExec) {
          resolveStarted(p);
          return;
        }
        let hook: Promise<void>;
        try {
          hook = req.beforeExec({ pid: p, cgroup: cg?.path ?? null });
        } catch (e) {
          hook = Promise.reject(e);
        }
        hook.then(
          () => {
            if (killReason || ending || done) {
              release?.(false);
              return;
            }
            release?.(true);
            resolveStarted(p);
          },
          (e: unknown) => {
            notRun = isWarrenError(e) ? `error[${e.code}]: ${e.message}` : e instanceof Error ? e.message : String(e);
            release?.(false);
            signalAll('SIGKILL');
          },
        );
      };

      const defect = requestDefect(req);
      if (defect) {
        const e = nulError(defect);
        queueMicrotask(() => finish({ exitCode: null, signal: null, reason: 'spawn-error', message: `error[${e.code}]: ${e.message} (hint: ${e.hint})` }));
        return { pid: undefined, started, exited, cgroup: null, kill: () => {} };
      }
      const mode = isolation();
      if (mode) {
        try {
          cg = JobCgroup.create(mode, req.id, { ...(req.memoryBytes !== undefined ? { memoryBytes: req.memoryBytes } : {}), ...(opts.pidsMax !== undefined ? { pidsMax: opts.pidsMax } : {}) });
        } catch {
          cg = null; // this one job runs in its process group only (the watchdog enforces memory)
        }
      }
      onOwnerExit();
      live.add(killNow);
      const hold = req.beforeExec !== undefined;
      const spawner = launcher === 'node' ? null : Spawner.get();
      if (spawner) {
        const handle = spawner.spawn(
          { argv: req.argv, env: req.env, cwd: req.cwd, stdoutPath: req.stdoutPath, stderrPath: req.stderrPath, hold, cgroups: cg?.dirs ?? [], ...(req.user ? { credentials: req.user } : {}) },
          {
            started: onStarted,
            failed: (raw, errno, stage) => spawnError(errno, stage, raw),
            execFailed: (errno) => {
              notRun = spawnMessage(errno, 'exec', `exec failed: ${errno}`);
            },
            exited: onExit,
          },
        );
        release = (go) => (go ? spawner.go(handle) : spawner.abort(handle));
      } else {
        let out: { fd: number; created: boolean } | null = null;
        let err: { fd: number; created: boolean } | null = null;
        try {
          if (req.user) throw Object.assign(new Error(`running a job as ${req.user.name} needs the warren-spawn launcher (dist/bin/warren-spawn; run scripts/setup.sh)`), { code: 'EPERM' });
          out = openLog(req.stdoutPath);
          err = req.stderrPath === req.stdoutPath ? out : openLog(req.stderrPath);
          const made = { stdout: out.created, stderr: err.created };
          const stub = hold || cg !== null;
          const dirs = cg?.dirs ?? [];
          const child = stub
            ? spawn('/bin/sh', ['-c', HOLD_STUB, 'warren-hold', String(dirs.length), ...dirs, hold ? '1' : '0', ...req.argv], {
                cwd: req.cwd,
                env: req.env,
                detached: true,
                stdio: [hold ? 'pipe' : 'ignore', out.fd, err.fd],
              })
            : spawn(req.argv[0]!, req.argv.slice(1), {
                cwd: req.cwd,
                env: req.env,
                detached: true, // own process group (setsid)
                stdio: ['ignore', out.fd, err.fd],
              });
          child.on('error', (e: NodeJS.ErrnoException) => spawnError(e.code, 'exec', e.message));
          child.on('exit', (code, sig) => onExit(code, sig));
          child.stdin?.on('error', () => {});
          if (hold) release = (go) => (go ? child.stdin!.end('go\n') : child.stdin!.destroy());
          if (child.pid) onStarted(child.pid, made);
        } catch (e) {
          spawnError((e as NodeJS.ErrnoException).code, 'open', (e as Error).message);
        } finally {
          if (out) closeSync(out.fd);
          if (err && err !== out) closeSync(err.fd);
        }
      }

      /** At the owner's exit (synchronous): SIGKILL all of the job. */
      function killNow(): void {
        signalAll('SIGKILL');
        if (!cg) return;
        // Nobody will be left to remove the cgroup: wait (briefly, synchronously) for the
        // killed processes to leave it.
        const t = Date.now();
        while (!cg.remove() && Date.now() - t < 500) cg.kill();
      }

      /** Signal the job: its process group and, in a cgroup, every process in it. */
      function signalAll(sig: NodeJS.Signals): void {
        signalGroup(pid, sig);
        if (!cg) return;
        if (sig === 'SIGKILL') cg.kill();
        else cg.signal(sig);
      }

      const kill = (reason: 'canceled' | 'timeout' | 'oom', graceMs = 1000): void => {
        if (done || killReason) return;
        killReason = reason;
        if (pid === undefined) pendingKill = true;
        signalAll('SIGTERM');
        killTimer = setTimeout(() => signalAll('SIGKILL'), graceMs);
      };

      if (req.timeoutSec !== undefined && req.timeoutSec > 0) {
        timeoutTimer = setTimeout(() => kill('timeout'), req.timeoutSec * 1000);
      }
      return {
        get pid() {
          return pid;
        },
        started,
        exited,
        get cgroup() {
          return cg?.path ?? null;
        },
        kill: (reason, graceMs) => kill(reason, graceMs),
      };
    },
  };
}
