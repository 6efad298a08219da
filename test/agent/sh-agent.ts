// A small Agent for the protocol tests: each assignment runs `/bin/sh -c SCRIPT` (the job's
// script, or its command joined) as a real process in its own process group, stdout and
// stderr to files, and the contract's reports. Enough of a node executor to test the wire;
// the real one is NodeAgent (src/agent/node.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, fstatSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { WarrenError } from '../../src/common/index.js';
import {
  AGENT_PROTOCOL,
  type Agent,
  type AdmissionRequest,
  type AgentListener,
  type AttemptExited,
  type AttemptState,
  type LogRequest,
  type NodeInfo,
  type SubmitHooks,
  type TaskAssignment,
} from '../../src/agent/index.js';
import type { JobSpec } from '../../src/workflow/index.js';

interface Run {
  task: TaskAssignment;
  child: ChildProcess | null;
  pid: number | null;
  startedAt: number | null;
  exit: AttemptExited | null;
  killed: 'canceled' | 'timeout' | 'stop-service' | null;
  out: string;
  err: string;
}

export class ShAgent implements Agent {
  /** Changes to what info() says (tests of impossible resources). */
  infoOverride: Partial<NodeInfo> = {};
  readonly runs = new Map<string, Run>();
  private readonly latest = new Map<string, Run>();
  private listener: AgentListener | null = null;
  /** Log iterations that were stopped by their signal (the server told the agent to stop). */
  abortedLogs = 0;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  info(): NodeInfo {
    return { name: 'sh', cores: 4, memoryBytes: 8 * 2 ** 30, gpus: [], labels: { test: 'yes' }, platform: 'linux/amd64', containers: false, agentVersion: 'test', protocol: { ...AGENT_PROTOCOL }, ...this.infoOverride };
  }

  admit(_req: AdmissionRequest): WarrenError | null {
    return null;
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  submit(task: TaskAssignment, hooks?: SubmitHooks): void {
    if (this.runs.has(task.attemptId)) return;
    const script = task.job?.script ?? (task.job?.command ?? ['true']).join(' ');
    const safe = task.attemptId.replace(/[^A-Za-z0-9._-]/g, '_');
    const run: Run = { task, child: null, pid: null, startedAt: null, exit: null, killed: null, out: join(this.dir, `${safe}.out`), err: join(this.dir, `${safe}.err`) };
    this.runs.set(task.attemptId, run);
    this.latest.set(logKey(task.workflowId, task.name, task.task), run);
    const go = (): void => {
      if (run.killed) {
        this.finish(run, { exitCode: null, signal: null, reason: 'canceled', durationMs: 0 });
        return;
      }
      const out = openSync(run.out, 'a');
      const err = openSync(run.err, 'a');
      const t0 = Date.now();
      const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: ['ignore', out, err] });
      closeSync(out);
      closeSync(err);
      run.child = child;
      child.once('spawn', () => {
        run.pid = child.pid ?? null;
        run.startedAt = Date.now();
        this.listener?.started({ attemptId: task.attemptId, pid: run.pid, cgroup: null, at: run.startedAt });
      });
      child.once('error', (e) => this.finish(run, { exitCode: null, signal: null, reason: 'spawn-error', message: e.message, durationMs: Date.now() - t0 }));
      child.once('exit', (code, signal) => {
        const reason = run.killed ? (run.killed === 'timeout' ? 'timeout' : 'canceled') : signal ? 'signal' : 'exit';
        this.finish(run, { exitCode: code, signal, reason, durationMs: Date.now() - t0 });
      });
    };
    if (hooks?.durable) void hooks.durable({ pid: null, cgroup: null }).then(go);
    else go();
  }

  private finish(run: Run, e: Omit<AttemptExited, 'attemptId' | 'at'>): void {
    if (run.exit) return;
    run.exit = { attemptId: run.task.attemptId, ...e, at: Date.now() };
    run.child = null;
    this.listener?.exited(run.exit);
  }

  kill(attemptId: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    const run = this.runs.get(attemptId);
    if (!run || run.exit) return;
    run.killed = reason;
    if (run.child?.pid) {
      try {
        process.kill(-run.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  async recover(): Promise<AttemptState[]> {
    return [...this.runs.values()].map((r) => ({
      attemptId: r.task.attemptId,
      state: r.exit ? 'exited' : 'running',
      pid: r.pid,
      cgroup: null,
      startedAt: r.startedAt,
      ...(r.exit ? { exit: r.exit } : {}),
    }));
  }

  async *logs(req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const run = this.latest.get(logKey(req.workflowId, req.job, req.task));
    if (!run) throw new WarrenError('RUN_UNKNOWN_JOB', `no job ${req.job} of ${req.workflowId} ran on this node`, { hint: 'ask the node that ran it' });
    const path = req.stream === 'stdout' ? run.out : run.err;
    let offset = req.offset ?? 0;
    for (;;) {
      if (signal?.aborted) {
        this.abortedLogs++;
        return;
      }
      const ended = run.exit !== null;
      if (existsSync(path)) {
        const fd = openSync(path, 'r');
        try {
          const size = fstatSync(fd).size;
          while (offset < size) {
            const buf = Buffer.alloc(Math.min(65536, size - offset));
            const n = readSync(fd, buf, 0, buf.length, offset);
            if (n <= 0) break;
            offset += n;
            yield buf.subarray(0, n);
          }
        } finally {
          closeSync(fd);
        }
      }
      if (!req.follow || ended) return;
      await delay(20);
    }
  }

  get load(): { usedCores: number; queued: number; running: number } {
    let running = 0;
    for (const r of this.runs.values()) if (!r.exit) running++;
    return { usedCores: running, queued: 0, running };
  }

  async close(): Promise<void> {
    for (const r of this.runs.values()) if (!r.exit) this.kill(r.task.attemptId, 'canceled');
    for (let i = 0; i < 200 && [...this.runs.values()].some((r) => !r.exit && r.child); i++) await delay(10);
  }
}

function logKey(workflowId: string, job: string, task: number | null): string {
  return `${workflowId}\0${job}\0${task ?? ''}`;
}

let n = 0;
/** An assignment that runs `script` with /bin/sh. */
export function shTask(script: string, opts: { workflowId?: string; name?: string; attemptId?: string } = {}): TaskAssignment {
  const workflowId = opts.workflowId ?? 'wf1';
  const name = opts.name ?? `job${++n}`;
  const job = { name, service: false, script, args: [], env: {}, mounts: [], requires: [], resources: { cores: 1, affinity: 'none', threads: false, memoryByCore: false, devices: {}, exclusive: false }, policy: {} } as unknown as JobSpec;
  return { attemptId: opts.attemptId ?? `${workflowId}/job:${name}/1`, workflowId, key: `job:${name}`, attempt: 1, kind: 'job', name, task: null, job, volumes: [], term: 1 };
}
