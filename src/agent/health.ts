// The node's health check (`warren agent --health-check CMD`), as Slurm's HealthCheckProgram:
// a command run by the agent at an interval, with a timeout. Exit 0 is healthy; anything else
// (another exit code, a signal, a timeout, a command that cannot start) is not, and its output
// is the reason. The server drains a node whose check fails and undrains it when it passes
// again (src/server/nodes.ts); this side only runs the command and reports.
//
// The check runs in its own process group; past its timeout the whole group is killed
// (SIGKILL: a hung check may ignore anything else), and so is whatever the check left behind
// when it ends. Its output is kept to its last 2 KiB.
import { spawn } from 'node:child_process';
import type { HealthReport } from './protocol.js';

export interface HealthCheckOptions {
  /** Run with /bin/sh -c. */
  command: string;
  /** Between the end of one check and the start of the next (default 60 s). */
  intervalMs?: number;
  /** A check running longer is killed and fails (default 30 s). */
  timeoutMs?: number;
  /** Extra environment (WARREN_NODE is set to the node's name by the daemon). */
  env?: Record<string, string>;
}

export const DEFAULT_HEALTH_INTERVAL_MS = 60_000;
export const DEFAULT_HEALTH_TIMEOUT_MS = 30_000;
const OUTPUT_LIMIT = 2048;

/** Run the check once. Never throws: a check that cannot run is a failed check. An abort kills it. */
export function runHealthCheck(o: HealthCheckOptions, signal?: AbortSignal): Promise<HealthReport> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
  const started = Date.now();
  return new Promise((resolve) => {
    let out = Buffer.alloc(0);
    const keep = (b: Buffer): void => {
      out = Buffer.concat([out, b]);
      if (out.length > 2 * OUTPUT_LIMIT) out = out.subarray(out.length - OUTPUT_LIMIT);
    };
    let timedOut = false;
    let settled = false;
    const finish = (exitCode: number | null, extra?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killGroup();
      let text = out.subarray(Math.max(0, out.length - OUTPUT_LIMIT)).toString('utf8');
      if (extra) text = text ? `${text}\n${extra}` : extra;
      resolve({ ok: exitCode === 0 && !timedOut, at: Date.now(), command: o.command, exitCode: timedOut ? null : exitCode, timedOut, output: text, durationMs: Date.now() - started });
    };
    const child = spawn('/bin/sh', ['-c', o.command], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(o.env ?? {}) },
    });
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    signal?.addEventListener('abort', () => finish(null, 'the health check was stopped (the agent is stopping)'), { once: true });
    child.on('error', (e) => finish(null, `cannot run the health check: ${e.message}`));
    // 'exit', not 'close': a grandchild that keeps the pipes open must not hold the result up.
    child.on('exit', (code, signal) => {
      // What is already in the pipes comes within a moment.
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        if (timedOut) finish(null, `the health check did not end within ${formatMs(timeoutMs)}: it was killed`);
        else finish(code, signal ? `the health check was killed by ${signal}` : undefined);
      }, 20);
    });
  });
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** Runs the check at its interval until stopped; each result goes to `onResult`. */
export class HealthChecker {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | null = null;
  private readonly abort = new AbortController();
  last: HealthReport | null = null;

  constructor(
    private readonly o: HealthCheckOptions,
    private readonly onResult: (r: HealthReport) => void,
  ) {}

  /** The first check runs at once. */
  start(): void {
    this.stopped = false;
    this.tick();
  }

  private tick(): void {
    if (this.stopped) return;
    this.running = runHealthCheck(this.o, this.abort.signal).then((r) => {
      this.running = null;
      if (this.stopped) return;
      this.last = r;
      this.onResult(r);
      this.timer = setTimeout(() => this.tick(), this.o.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS);
      this.timer.unref();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort();
    await this.running;
  }
}
