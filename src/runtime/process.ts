// The process runtime: a job runs on the host as a child process in its own process
// group (so a timeout or cancel reaches everything it started), with stdout and stderr
// going straight to its log files (no pipes through Node), and an optional memory limit
// enforced by a watchdog over the group's resident memory.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { WarrenError } from '../common/index.js';
import { Spawner } from './spawner.js';
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
}

export function createProcessRuntime(opts: ProcessRuntimeOptions = {}): Runtime {
  const launcher = opts.launcher ?? 'auto';
  if (launcher === 'spawner' && !Spawner.get()) {
    throw new WarrenError('RUNTIME_NO_SPAWNER', 'the process launcher dist/bin/warren-spawn is not built', {
      hint: 'run scripts/setup.sh (it compiles it with cc), or use the node launcher',
    });
  }
  return {
    name: 'process',
    async check(req: LaunchRequest): Promise<void> {
      if (!existsSync(req.cwd) || !statSync(req.cwd).isDirectory()) {
        throw new WarrenError('RUNTIME_BAD_CWD', `working directory ${req.cwd} does not exist`, {
          hint: 'create it, or set the job\'s `cwd` to a directory that exists (or inside one of its mounts)',
          exitCode: 2,
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
      let timeoutTimer: NodeJS.Timeout | null = null;
      let killTimer: NodeJS.Timeout | null = null;
      let unwatch: (() => void) | null = null;

      const finish = (info: Omit<ExitInfo, 'durationMs'>): void => {
        if (done) return;
        done = true;
        if (timeoutTimer) clearTimeout(timeoutTimer);
        if (killTimer) clearTimeout(killTimer);
        unwatch?.();
        resolveExit({ ...info, durationMs: Date.now() - t0 });
      };

      let pid: number | undefined;
      let pendingKill = false;
      let resolveStarted!: (pid: number | null) => void;
      const started = new Promise<number | null>((r) => (resolveStarted = r));
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        // The leader is gone; take down anything it left behind in its group.
        signalGroup(pid, 'SIGKILL');
        if (killReason === 'oom') {
          finish({ exitCode: code, signal, reason: 'oom', message: oomMessage });
        } else if (killReason) {
          finish({ exitCode: code, signal, reason: killReason, message: killReason === 'timeout' ? `killed after the ${req.timeoutSec}s timeout (policy.timeout.execute)` : undefined });
        } else if (signal) {
          finish({ exitCode: null, signal, reason: 'signal' });
        } else {
          finish({ exitCode: code, signal: null, reason: 'exit' });
        }
      };
      const cmd = req.argv[0];
      const spawnError = (errno: string | undefined, stage: string, raw: string): void => {
        const message =
          stage === 'chdir'
            ? `working directory ${req.cwd} does not exist or is not accessible (${errno})`
            : stage === 'open'
              ? `cannot open the log files ${req.stdoutPath} (${errno})`
              : errno === 'ENOENT'
                ? `command not found: ${cmd} (check the spelling, or give the full path; PATH=${req.env.PATH ?? ''})`
                : errno === 'EACCES'
                  ? `permission denied running ${cmd} (is it executable? chmod +x it, or run it through its interpreter)`
                  : `${cmd}: ${raw}`;
        resolveStarted(null);
        finish({ exitCode: null, signal: null, reason: 'spawn-error', message });
      };
      const onStarted = (p: number): void => {
        pid = p;
        resolveStarted(p);
        if (pendingKill) signalGroup(pid, 'SIGTERM');
        if (req.memoryBytes !== undefined) {
          const limit = req.memoryBytes;
          unwatch = watchdog.watch(p, limit, (rss) => {
            oomMessage = `out of memory: used ${(rss / 2 ** 20).toFixed(0)} MiB, over its ${(limit / 2 ** 20).toFixed(0)} MiB limit (resource.memory.size); raise the limit or use less memory`;
            if (!killReason) {
              killReason = 'oom';
              signalGroup(p, 'SIGKILL');
            }
          });
        }
      };

      const spawner = launcher === 'node' ? null : Spawner.get();
      if (spawner) {
        spawner.spawn(
          { argv: req.argv, env: req.env, cwd: req.cwd, stdoutPath: req.stdoutPath, stderrPath: req.stderrPath },
          { started: onStarted, failed: (raw, errno, stage) => spawnError(errno, stage, raw), exited: onExit },
        );
      } else {
        let out = -1;
        let err = -1;
        try {
          out = openSync(req.stdoutPath, 'a');
          err = req.stderrPath === req.stdoutPath ? out : openSync(req.stderrPath, 'a');
          const child = spawn(req.argv[0]!, req.argv.slice(1), {
            cwd: req.cwd,
            env: req.env,
            detached: true, // own process group (setsid)
            stdio: ['ignore', out, err],
          });
          child.on('error', (e: NodeJS.ErrnoException) => spawnError(e.code, 'exec', e.message));
          child.on('exit', onExit);
          if (child.pid) onStarted(child.pid);
        } catch (e) {
          spawnError((e as NodeJS.ErrnoException).code, 'open', (e as Error).message);
        } finally {
          if (out >= 0) closeSync(out);
          if (err >= 0 && err !== out) closeSync(err);
        }
      }

      const kill = (reason: 'canceled' | 'timeout' | 'oom', graceMs = 1000): void => {
        if (done || killReason) return;
        killReason = reason;
        if (pid === undefined) pendingKill = true;
        signalGroup(pid, 'SIGTERM');
        killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
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
        kill: (reason, graceMs) => kill(reason, graceMs),
      };
    },
  };
}
