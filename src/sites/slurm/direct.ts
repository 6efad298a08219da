// Direct mode (issue 14): each Warren job is a Slurm job. SlurmDirectAgent implements the agent
// contract (src/agent/contract.ts): a task that fits the cores Warren may use at the site
// (first come, first served) is made durable (its attempt recorded), then submitted with
// `sbatch --parsable` and a generated script (its command, environment, working directory,
// cores, memory, timeout; stdout and stderr into the run's log files as the local agent writes
// them). The tasks of a task array submitted together go as one `--array`; a multinode job runs
// its command through `srun --mpi=pmix` (Open MPI) or `--mpi=pmi2` (MPICH, which has no PMIx).
// Its state is read with `squeue` and `scontrol show job` (no slurmdbd needed), its exit code
// mapped back, and kill is `scancel`. Dependencies stay Warren's: the engine submits a job when
// its requirements are met, never with Slurm's --dependency.
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { arch } from 'node:os';
import { join } from 'node:path';
import { WarrenError } from '../../common/index.js';
import { AGENT_PROTOCOL, logPaths, type AdmissionRequest, type Agent, type AgentListener, type AttemptExited, type AttemptState, type LogRequest, type NodeInfo, type SubmitHooks, type TaskAssignment } from '../../agent/index.js';
import { SlurmCommands, shellQuote } from './commands.js';
import { slurmTime, type SlurmSiteSettings } from './settings.js';

export interface SlurmDirectOptions {
  /** Where run directories (logs, work directories, scripts) are: on a file system the Slurm nodes share. */
  home: string;
  /** Most cores Warren's jobs hold in Slurm at once (queued or running there). */
  cores: number;
  /** The most memory one job may ask for, bytes. */
  memoryBytes: number;
  /** How often Slurm is asked for the jobs' states (default 500 ms). */
  pollMs?: number;
  commands?: SlurmCommands;
}

type Phase = 'queued' | 'submitting' | 'slurm' | 'running' | 'done';

interface Entry {
  t: TaskAssignment;
  cores: number;
  phase: Phase;
  hooks: SubmitHooks;
  jobId?: string;
  startedAt?: number;
  killed?: 'canceled' | 'timeout' | 'stop-service';
  exit?: AttemptExited;
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_');

/** A task's attempt id with its index as `#` (`wf/job:sim[#]/1`): the tasks that can share one
 *  Slurm job array. null: not a task of a task array, or a multinode one. */
function arrayTemplate(t: TaskAssignment): string | null {
  if (t.task === null || (t.job?.multinode?.nodes ?? 1) > 1) return null;
  const mark = `[${t.task}]`;
  const i = t.attemptId.lastIndexOf(mark);
  if (i < 0 || t.attemptId.includes('#')) return null;
  return t.attemptId.slice(0, i) + '[#]' + t.attemptId.slice(i + mark.length);
}

/** `scontrol -o show job` fields. */
function fields(line: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of line.trim().split(/\s+/)) {
    const i = w.indexOf('=');
    if (i > 0) m.set(w.slice(0, i), w.slice(i + 1));
  }
  return m;
}

const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'OUT_OF_MEMORY', 'SPECIAL_EXIT', 'REVOKED']);

export class SlurmDirectAgent implements Agent {
  readonly commands: SlurmCommands;
  private listener: AgentListener | null = null;
  private readonly entries = new Map<string, Entry>();
  private queue: Entry[] = [];
  private usedCores = 0;
  private readonly timer: NodeJS.Timeout;
  private polling = false;
  private pumpQueued = false;
  private closed = false;

  constructor(readonly settings: SlurmSiteSettings, private readonly o: SlurmDirectOptions) {
    if (settings.mode !== 'direct') throw new WarrenError('SITE_SLURM_SETTINGS_INVALID', `Slurm site "${settings.name}" is in ${settings.mode} mode, not direct mode`, { hint: 'use the pilot driver for it, or set mode: direct' });
    this.commands = o.commands ?? new SlurmCommands(settings);
    this.timer = setInterval(() => void this.poll(), o.pollMs ?? 500);
    this.timer.unref();
  }

  get name(): string {
    return `slurm-${this.settings.name}`;
  }

  info(): NodeInfo {
    return { name: this.name, cores: this.o.cores, memoryBytes: this.o.memoryBytes, gpus: [], labels: { site: this.settings.name }, platform: `linux/${arch() === 'x64' ? 'amd64' : arch()}`, containers: false, agentVersion: '0.1.0', protocol: { ...AGENT_PROTOCOL } };
  }

  admit(req: AdmissionRequest): WarrenError | null {
    const site = `Slurm site "${this.settings.name}"`;
    const nodes = req.nodes ?? 1;
    if (req.cores * nodes > this.o.cores) {
      return new WarrenError('AGENT_NOT_ENOUGH_CORES', `${req.name} needs ${nodes > 1 ? `${nodes} nodes × ${req.cores}` : req.cores} cores but ${site} gives Warren ${this.o.cores}`, { hint: `lower resource.cpu.cores to at most ${this.o.cores}, or raise the cores the site gives Warren` });
    }
    if (req.memoryBytes > this.o.memoryBytes) {
      return new WarrenError('AGENT_NOT_ENOUGH_MEMORY', `${req.name} needs ${(req.memoryBytes / 2 ** 30).toFixed(1)} GiB of memory but a job of ${site} may have ${(this.o.memoryBytes / 2 ** 30).toFixed(1)} GiB`, { hint: 'lower resource.memory.size (mind `by-core`), or run it at another site' });
    }
    if (req.gpus > 0) return new WarrenError('AGENT_NOT_ENOUGH_GPUS', `${req.name} needs ${req.gpus} GPUs; ${site} in direct mode runs no GPU jobs yet`, { hint: 'run it at another site, or in pilot mode' });
    if (req.container) return new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${req.name} names an image; ${site} in direct mode runs host processes only`, { hint: 'remove `image:`, or run it in pilot mode (the pilot\'s agent runs containers)' });
    return null;
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  get load(): { usedCores: number; queued: number; running: number } {
    let running = 0;
    for (const e of this.entries.values()) if (e.phase === 'submitting' || e.phase === 'slurm' || e.phase === 'running') running++;
    return { usedCores: this.usedCores, queued: this.queue.length, running };
  }

  submit(t: TaskAssignment, hooks: SubmitHooks = {}): void {
    if (this.entries.has(t.attemptId)) return;
    const spec = t.job;
    const cores = (spec?.resources.cores ?? 1) * (spec?.multinode?.nodes ?? 1);
    const e: Entry = { t, cores, phase: 'queued', hooks };
    this.entries.set(t.attemptId, e);
    this.queue.push(e);
    // After the current burst of submits: the tasks of one array submitted together are grouped.
    if (!this.pumpQueued) {
      this.pumpQueued = true;
      queueMicrotask(() => {
        this.pumpQueued = false;
        this.pump();
      });
    }
  }

  private pump(): void {
    while (this.queue.length && this.usedCores + this.queue[0]!.cores <= this.o.cores) {
      const e = this.queue.shift()!;
      this.usedCores += e.cores;
      e.phase = 'submitting';
      // The tasks of one task array queued right behind it (same attempt, single node) that fit
      // too go with it as one Slurm job array (`--array`): Slurm is asked once.
      const group = [e];
      const tmpl = arrayTemplate(e.t);
      while (tmpl !== null && this.queue.length && this.usedCores + this.queue[0]!.cores <= this.o.cores) {
        const n = this.queue[0]!;
        if (n.t.workflowId !== e.t.workflowId || n.t.name !== e.t.name || n.t.attempt !== e.t.attempt || arrayTemplate(n.t) !== tmpl) break;
        this.queue.shift();
        this.usedCores += n.cores;
        n.phase = 'submitting';
        group.push(n);
      }
      void this.sbatchTasks(group);
    }
  }

  runDir(workflowId: string): string {
    return join(this.o.home, 'runs', workflowId);
  }

  /** The batch script of a task, or of the tasks `array` of its task array as one Slurm job array. */
  script(t: TaskAssignment, array?: number[]): string {
    const spec = t.job!;
    const s = this.settings;
    const runDir = this.runDir(t.workflowId);
    const tmpl = array ? arrayTemplate(t) : null;
    if (array && tmpl === null) throw new WarrenError('SITE_SLURM_SETTINGS_INVALID', `${t.attemptId} is not a task of a task array`, { hint: 'submit it on its own' });
    // Slurm's %a is the array index, i.e. the task: the same files as logPaths names.
    const logs = tmpl ? { out: join(runDir, 'logs', `${safe(t.name)}.%a.out`), err: join(runDir, 'logs', `${safe(t.name)}.%a.err`) } : logPaths(runDir, t.name, t.task);
    const cwd = spec.cwd ?? join(runDir, 'work', safe(t.name));
    const nodes = spec.multinode?.nodes ?? 1;
    const env: Record<string, string> = {
      ...spec.env,
      WARREN_WORKFLOW_ID: t.workflowId,
      WARREN_JOB: spec.name,
      WARREN_JOB_NAME: spec.name,
      WARREN_ATTEMPT: String(t.attempt),
      WARREN_ATTEMPT_ID: t.attemptId,
      WARREN_NODE: this.name,
      ...(t.task !== null ? { WARREN_TASK_ID: String(t.task), FB_TASK_ID: String(t.task) } : {}),
    };
    // In a job array, the task's own values come from SLURM_ARRAY_TASK_ID (set after these).
    const perTask = tmpl
      ? ['WARREN_TASK_ID=$SLURM_ARRAY_TASK_ID; export WARREN_TASK_ID', 'FB_TASK_ID=$SLURM_ARRAY_TASK_ID; export FB_TASK_ID', `WARREN_ATTEMPT_ID=${tmpl.split('#').map(shellQuote).join('"$SLURM_ARRAY_TASK_ID"')}; export WARREN_ATTEMPT_ID`]
      : [];
    let argv: string[];
    if (spec.script !== undefined) {
      const path = join(runDir, 'scripts', safe(spec.name));
      mkdirSync(join(runDir, 'scripts'), { recursive: true });
      if (!existsSync(path)) writeFileSync(path, spec.script, { mode: 0o755 });
      argv = [path, ...spec.args];
    } else argv = [...(spec.command ?? []), ...spec.args];
    const mem = spec.resources.memoryBytes;
    const timeout = spec.policy.timeoutSec;
    const lines = [
      '#!/bin/sh',
      `#SBATCH --job-name=warren-${safe(spec.name)}${t.task !== null && !array ? `.${t.task}` : ''}`,
      ...(array ? [`#SBATCH --array=${array.join(',')}`] : []),
      `#SBATCH --partition=${s.partition}`,
      ...(s.account ? [`#SBATCH --account=${s.account}`] : []),
      ...(s.qos ? [`#SBATCH --qos=${s.qos}`] : []),
      `#SBATCH --nodes=${nodes}`,
      nodes > 1 ? `#SBATCH --ntasks-per-node=${spec.multinode?.procsPerNode ?? spec.resources.cores}` : '#SBATCH --ntasks=1',
      nodes > 1 ? '#SBATCH --cpus-per-task=1' : `#SBATCH --cpus-per-task=${spec.resources.cores}`,
      ...(mem !== undefined ? [`#SBATCH --mem=${Math.max(1, Math.ceil(mem / nodes / (1 << 20)))}M`] : []),
      ...(timeout !== undefined ? [`#SBATCH --time=${slurmTime(timeout)}`] : []),
      `#SBATCH --output=${logs.out}`,
      `#SBATCH --error=${logs.err}`,
      '#SBATCH --open-mode=append',
      `#SBATCH --chdir=${cwd}`,
      `#SBATCH --comment=warren-attempt=${tmpl ?? t.attemptId}`,
      ...Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}; export ${k}`),
      ...perTask,
      nodes > 1 ? `exec srun --mpi=${spec.multinode?.implementation === 'mpich' ? 'pmi2' : 'pmix'} ${argv.map(shellQuote).join(' ')}` : `exec ${argv.map(shellQuote).join(' ')}`,
      '',
    ];
    return lines.join('\n');
  }

  /** Submit one task, or several tasks of one task array as one Slurm job array. */
  private async sbatchTasks(group: Entry[]): Promise<void> {
    const t = group[0]!.t;
    try {
      const runDir = this.runDir(t.workflowId);
      mkdirSync(join(runDir, 'logs'), { recursive: true });
      mkdirSync(t.job?.cwd ?? join(runDir, 'work', safe(t.name)), { recursive: true });
      // Every attempt is durable before Slurm may run its command.
      await Promise.all(group.map((e) => e.hooks.durable?.({ pid: null, cgroup: null, node: this.name })));
      const live = group.filter((e) => {
        if (!e.killed) return true;
        this.finish(e, { exitCode: null, signal: null, reason: 'canceled', message: `stopped before it was submitted to Slurm site "${this.settings.name}"` });
        return false;
      });
      if (!live.length) return;
      const array = live.length > 1 ? live.map((e) => e.t.task!) : undefined;
      const script = this.script(live[0]!.t, array);
      const path = join(runDir, 'scripts', `slurm-${safe(live[0]!.t.key)}-${t.attempt}${array ? `-array${array.length}` : ''}.sh`);
      mkdirSync(join(runDir, 'scripts'), { recursive: true });
      writeFileSync(path, script, { mode: 0o700 });
      const id = (await this.commands.must('sbatch', ['--parsable', path])).trim().split(';')[0]!.trim();
      for (const e of live) {
        e.jobId = array ? `${id}_${e.t.task}` : id;
        e.phase = 'slurm';
        if (e.killed) await this.commands.run('scancel', [e.jobId]);
      }
    } catch (err) {
      const w = err instanceof WarrenError ? err : new WarrenError('SITE_SLURM_COMMAND_FAILED', String((err as Error).message));
      for (const e of group) this.finish(e, { exitCode: null, signal: null, reason: 'spawn-error', message: w.message, failure: w.toWire() });
    }
  }

  private finish(e: Entry, x: Omit<AttemptExited, 'attemptId' | 'at' | 'durationMs'>): void {
    if (e.phase === 'done') return;
    if (e.phase !== 'queued') this.usedCores -= e.cores;
    e.phase = 'done';
    const now = Date.now();
    e.exit = { attemptId: e.t.attemptId, durationMs: e.startedAt ? now - e.startedAt : 0, at: now, ...x };
    this.listener?.exited(e.exit);
    this.pump();
  }

  private started(e: Entry, at = Date.now()): void {
    if (e.startedAt !== undefined) return;
    e.startedAt = at;
    e.phase = 'running';
    this.listener?.started({ attemptId: e.t.attemptId, node: this.name, pid: null, cgroup: null, at });
  }

  /** Ask Slurm about every job it has of ours. */
  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    const live = [...this.entries.values()].filter((e) => e.jobId && (e.phase === 'slurm' || e.phase === 'running'));
    if (!live.length) return;
    this.polling = true;
    try {
      const byId = new Map(live.map((e) => [e.jobId!, e]));
      const r = await this.commands.run('squeue', ['-h', '-r', '-t', 'all', '-j', [...byId.keys()].join(','), '-o', '%i|%T']);
      const states = new Map<string, string>();
      if (r.code === 0) for (const l of r.stdout.split('\n')) {
        const [id, st] = l.trim().split('|');
        if (id && st) states.set(id, st);
      }
      for (const [id, e] of byId) {
        const st = states.get(id);
        if (st === 'RUNNING' || st === 'COMPLETING') this.started(e);
        if (st !== undefined && !ENDED.has(st)) continue;
        // Ended (or no longer listed): its exit code from the controller.
        const show = await this.commands.run('scontrol', ['-o', 'show', 'job', id]);
        const f = fields(show.stdout);
        const state = (f.get('JobState') ?? st ?? '').split(/\s/)[0]!;
        if (show.code !== 0 || !ENDED.has(state)) {
          if (show.code !== 0 && st === undefined) {
            this.started(e);
            this.finish(e, { exitCode: null, signal: null, reason: 'error', message: `Slurm job ${id} of site "${this.settings.name}" is no longer known to Slurm; its end is not known` });
          }
          continue;
        }
        const [code, sig] = (f.get('ExitCode') ?? '0:0').split(':').map(Number) as [number, number];
        this.started(e, Date.parse(f.get('StartTime') ?? '') || Date.now());
        const msg = `Slurm job ${id} ${state}${f.get('Reason') && f.get('Reason') !== 'None' ? ` (${f.get('Reason')})` : ''}`;
        if (e.killed) this.finish(e, { exitCode: null, signal: sig ? String(sig) : null, reason: e.killed === 'stop-service' ? 'stopped' : e.killed, message: msg });
        else if (state === 'TIMEOUT') this.finish(e, { exitCode: null, signal: null, reason: 'timeout', message: msg });
        else if (state === 'OUT_OF_MEMORY') this.finish(e, { exitCode: null, signal: null, reason: 'oom', message: msg });
        else if (state === 'CANCELLED') this.finish(e, { exitCode: null, signal: null, reason: 'signal', message: `${msg}: canceled in Slurm (scancel)` });
        else if (sig) this.finish(e, { exitCode: null, signal: String(sig), reason: 'signal', message: msg });
        else if (state === 'COMPLETED' || state === 'FAILED') this.finish(e, { exitCode: code, signal: null, reason: 'exit', ...(state === 'FAILED' ? { message: msg } : {}) });
        else this.finish(e, { exitCode: null, signal: null, reason: 'error', message: msg });
      }
    } finally {
      this.polling = false;
    }
  }

  kill(attemptId: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    const e = this.entries.get(attemptId);
    if (!e || e.phase === 'done') return;
    e.killed = reason;
    if (e.phase === 'queued') {
      this.queue = this.queue.filter((q) => q !== e);
      this.finish(e, { exitCode: null, signal: null, reason: reason === 'stop-service' ? 'stopped' : reason });
    } else if (e.jobId) void this.commands.run('scancel', [e.jobId]);
  }

  async recover(): Promise<AttemptState[]> {
    return [...this.entries.values()].filter((e) => e.phase !== 'queued').map((e) => ({ attemptId: e.t.attemptId, state: e.phase === 'done' ? 'exited' : 'running', pid: null, cgroup: null, startedAt: e.startedAt ?? null, ...(e.exit ? { exit: e.exit } : {}) }));
  }

  async *logs(req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const p = logPaths(this.runDir(req.workflowId), req.job, req.task);
    const path = req.stream === 'stdout' ? p.out : p.err;
    let offset = req.offset ?? 0;
    const live = (): boolean => [...this.entries.values()].some((e) => e.t.workflowId === req.workflowId && e.t.name === req.job && e.t.task === req.task && e.phase !== 'done');
    for (;;) {
      const running = live();
      if (existsSync(path)) {
        const size = statSync(path).size;
        if (size > offset) {
          const fd = openSync(path, 'r');
          try {
            const buf = Buffer.alloc(size - offset);
            const n = readSync(fd, buf, 0, buf.length, offset);
            offset += n;
            if (n) yield buf.subarray(0, n);
          } finally {
            closeSync(fd);
          }
        }
      }
      if (!req.follow || !running || signal?.aborted) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const ids = [...this.entries.values()].filter((e) => e.jobId && e.phase !== 'done').map((e) => e.jobId!);
    if (ids.length) await this.commands.run('scancel', ids);
  }
}
