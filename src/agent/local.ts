// The node agent (the `Agent` contract, ./contract.ts) that runs work on this machine: it
// admits tasks against the node's cores and memory, resolves everything node-local for a
// node-independent task (job script, working directory, volume directories, log files,
// secrets, data transfers), starts it on the right runtime (process or container), and
// reports when it starts and ends. `warren run` uses it in-process; `warren agent` runs it
// behind the server–agent protocol on each cluster node.

import { createReadStream, existsSync, mkdirSync, writeFileSync, appendFileSync, statSync, watch, chownSync } from 'node:fs';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import { WarrenError, isWarrenError } from '../common/index.js';
import type { ExitInfo, LaunchRequest, RunningTask, Runtime } from '../runtime/index.js';
import type { JobSpec, VolumeSpec } from '../workflow/index.js';
import { lookupAccount, ownAccount, type Account } from './accounts.js';
import type { DataOptions, EgressFn, IngressFn, SecretResolver } from '../data/index.js';
import {
  AGENT_PROTOCOL,
  type AdmissionRequest,
  type Agent,
  type AgentListener,
  type AttemptExited,
  type AttemptState,
  type GpuInfo,
  type LogRequest,
  type NodeInfo,
  type SubmitHooks,
  type TaskAssignment,
} from './contract.js';

export interface LocalAgentOptions {
  /** The node's name (default: the host name). */
  name?: string;
  /** The agent's data directory ($WARREN_HOME): runs/<workflow>/{logs,work,scripts,volumes}, volumes/ (persistent), cache/. */
  home: string;
  /** Cores this agent may use (default: all the machine has). */
  cores?: number;
  /** Memory this agent may hand out, bytes (default: the machine's total). */
  memoryBytes?: number;
  labels?: Record<string, string>;
  /** The node's GPUs (from nvidia-smi; see ./gpus.ts). */
  gpus?: GpuInfo[];
  process: Runtime;
  container?: Runtime;
  /** The container runtime under a workflow's own trust policy (cluster nodes; else `container`). */
  containerFor?: (trust: TaskAssignment['trust']) => Runtime | undefined;
  /** Data movement (src/data), injected so the agent stays testable. */
  transfers?: { ingress: IngressFn; egress: EgressFn };
  data?: Partial<DataOptions>;
  /** Registry credentials and data secrets, resolved on the node. */
  secrets?: SecretResolver;
  /** Give host jobs this process's environment (the embedded default: the user's own shell). */
  inheritEnv?: boolean;
  agentVersion?: string;
}

type Entry = { task: TaskAssignment; cores: number; memoryBytes: number; exclusive: boolean; hooks: SubmitHooks };
type Running = { entry: Entry; handle: RunningTask | null; killed: 'canceled' | 'timeout' | null; stopping: boolean; abort?: AbortController };

const safe = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_');

/** Where a job's (or task's) stdout and stderr go, under its run directory. */
export function logPaths(runDir: string, job: string, task: number | null): { out: string; err: string } {
  const base = join(runDir, 'logs', task === null ? safe(job) : `${safe(job)}.${task}`);
  return { out: `${base}.out`, err: `${base}.err` };
}

export class LocalAgent implements Agent {
  readonly cores: number;
  readonly memoryBytes: number;
  readonly name: string;
  private usedCores = 0;
  private usedMemory = 0;
  private exclusiveRunning = false;
  private readonly queue: Entry[] = [];
  private readonly running = new Map<string, Running>();
  private listener: AgentListener | null = null;
  /** Per workflow: scripts written, work dirs made, volume dirs (once per job, not per task). */
  private readonly prepared = new Map<string, Set<string>>();

  constructor(private readonly opts: LocalAgentOptions) {
    this.cores = Math.max(1, Math.floor(opts.cores ?? availableParallelism()));
    this.memoryBytes = opts.memoryBytes ?? totalmem();
    this.name = opts.name ?? hostname();
  }

  info(): NodeInfo {
    return {
      name: this.name,
      cores: this.cores,
      memoryBytes: this.memoryBytes,
      gpus: [...(this.opts.gpus ?? [])],
      labels: { ...(this.opts.labels ?? {}) },
      platform: `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`,
      containers: this.opts.container !== undefined,
      agentVersion: this.opts.agentVersion ?? '0.1.0',
      protocol: { ...AGENT_PROTOCOL },
    };
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  /** The run directory of a workflow on this node. */
  runDir(workflowId: string): string {
    return join(this.opts.home, 'runs', workflowId);
  }

  admit(req: AdmissionRequest): WarrenError | null {
    if (req.cores > this.cores) {
      return new WarrenError('AGENT_NOT_ENOUGH_CORES', `${req.name} needs ${req.cores} cores but this node has ${this.cores}`, {
        hint: `lower resource.cpu.cores to at most ${this.cores}, raise --cores, or run it on a larger node or cluster`,
      });
    }
    if (req.memoryBytes > this.memoryBytes) {
      return new WarrenError(
        'AGENT_NOT_ENOUGH_MEMORY',
        `${req.name} needs ${(req.memoryBytes / 2 ** 30).toFixed(1)} GiB of memory but this node has ${(this.memoryBytes / 2 ** 30).toFixed(1)} GiB`,
        { hint: 'lower resource.memory.size (mind `by-core`), or run it on a larger node' },
      );
    }
    if (req.container && !this.opts.container) {
      return new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${req.name} names an image but this node has no container runtime`, {
        hint: 'install runc (apt-get install runc), or remove `image:` to run the job as a host process',
      });
    }
    return null;
  }

  submit(task: TaskAssignment, hooks: SubmitHooks = {}): void {
    const spec = task.job;
    const entry: Entry = {
      task,
      hooks,
      cores: task.kind === 'job' && spec ? spec.resources.cores : 0,
      memoryBytes: task.kind === 'job' && spec ? (spec.resources.memoryBytes ?? 0) : 0,
      exclusive: task.kind === 'job' && spec ? spec.resources.exclusive : false,
    };
    // Data units take no core slot: they wait on the network, not the CPU.
    if (task.kind !== 'job') {
      this.start(entry);
      return;
    }
    this.queue.push(entry);
    this.pump();
  }

  /** Stop a queued or running task. */
  kill(id: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    const qi = this.queue.findIndex((t) => t.task.attemptId === id);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      this.emitExit(id, { exitCode: null, signal: null, reason: reason === 'stop-service' ? 'stopped' : 'canceled', durationMs: 0 });
      return;
    }
    const r = this.running.get(id);
    if (!r) return;
    if (reason === 'stop-service') r.stopping = true;
    r.killed = reason === 'timeout' ? 'timeout' : 'canceled';
    if (r.abort) r.abort.abort();
    r.handle?.kill(r.killed);
  }

  get load(): { usedCores: number; queued: number; running: number } {
    return { usedCores: this.usedCores, queued: this.queue.length, running: this.running.size };
  }

  /** In-process, the attempts died with the process that ran them: nothing to recover. */
  async recover(): Promise<AttemptState[]> {
    // Queued ones too: the node has them (they start when they fit).
    return [
      ...[...this.running.values()].map((r) => ({ attemptId: r.entry.task.attemptId, state: 'running' as const, pid: r.handle?.pid ?? null, cgroup: null, startedAt: null })),
      ...this.queue.map((q) => ({ attemptId: q.task.attemptId, state: 'running' as const, pid: null, cgroup: null, startedAt: null })),
    ];
  }

  async *logs(req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const paths = logPaths(this.runDir(req.workflowId), req.job, req.task);
    const path = req.stream === 'stderr' ? paths.err : paths.out;
    let pos = req.offset ?? 0;
    const readFrom = async function* (start: number): AsyncGenerator<Buffer> {
      if (!existsSync(path)) return;
      for await (const c of createReadStream(path, { start })) yield c as Buffer;
    };
    const key = req.task === null ? req.job : `${req.job}[${req.task}]`;
    const isRunning = (): boolean => {
      for (const r of this.running.values()) if (r.entry.task.workflowId === req.workflowId && r.entry.task.key === `job:${key}`) return true;
      for (const q of this.queue) if (q.task.workflowId === req.workflowId && q.task.key === `job:${key}`) return true;
      return false;
    };
    for (;;) {
      for await (const c of readFrom(pos)) {
        pos += c.length;
        yield c;
      }
      if (!req.follow || signal?.aborted || !isRunning()) break;
      await waitForChange(path, 250, signal);
    }
    if (req.follow) for await (const c of readFrom(pos)) yield c;
  }

  async close(): Promise<void> {
    for (const id of [...this.running.keys()]) this.kill(id, 'canceled');
  }

  /** Start queued tasks that fit, first come first served, letting smaller ones through
   *  when the head does not fit (backfill). */
  private pump(): void {
    for (let i = 0; i < this.queue.length; ) {
      if (this.exclusiveRunning) return;
      // Every task needs a core: with none free nothing fits, so stop looking (keeps each
      // admission O(1) while the queue is full of tasks waiting for cores).
      if (this.usedCores >= this.cores) return;
      const t = this.queue[i]!;
      const fits = t.exclusive
        ? this.usedCores === 0
        : this.usedCores + t.cores <= this.cores && this.usedMemory + t.memoryBytes <= this.memoryBytes;
      if (!fits) {
        if (t.exclusive) return; // do not starve an exclusive job by backfilling around it
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.start(t);
    }
  }

  private emitExit(id: string, info: ExitInfo, failure?: WarrenError): void {
    const ev: AttemptExited = { attemptId: id, exitCode: info.exitCode, signal: info.signal, reason: info.reason, durationMs: info.durationMs, at: Date.now() };
    if (info.message !== undefined) ev.message = info.message;
    if (failure) ev.failure = failure.toWire();
    this.listener?.exited(ev);
  }

  private start(e: Entry): void {
    const t = e.task;
    const cores = e.exclusive ? this.cores : e.cores;
    this.usedCores += cores;
    this.usedMemory += e.memoryBytes;
    if (e.exclusive) this.exclusiveRunning = true;
    const r: Running = { entry: e, handle: null, killed: null, stopping: false };
    this.running.set(t.attemptId, r);
    const release = (info: ExitInfo, failure?: WarrenError): void => {
      if (!this.running.delete(t.attemptId)) return;
      this.usedCores -= cores;
      this.usedMemory -= e.memoryBytes;
      if (e.exclusive) this.exclusiveRunning = false;
      this.emitExit(t.attemptId, info, failure);
      this.pump();
    };
    if (t.kind !== 'job') {
      this.runData(r, release);
      return;
    }
    let req: LaunchRequest;
    let runtime: Runtime;
    try {
      req = this.launchRequest(t);
      runtime = req.container ? (t.trust && this.opts.containerFor ? this.opts.containerFor(t.trust)! : this.opts.container!) : this.opts.process;
      if (!runtime) throw new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${t.name} names an image but this node has no container runtime`, { hint: 'install runc (apt-get install runc)' });
    } catch (err) {
      const w = isWarrenError(err) ? err : new WarrenError('RUNTIME_BAD_REQUEST', (err as Error).message);
      queueMicrotask(() => release({ exitCode: null, signal: null, reason: 'spawn-error', message: w.hint ? `${w.message} (${w.hint})` : w.message, durationMs: 0 }, w));
      return;
    }
    const durable = e.hooks.durable;
    if (durable) req.beforeExec = (info) => durable(info);
    const go = (): void => {
      if (!this.running.has(t.attemptId)) return;
      const h = runtime.launch(req);
      r.handle = h;
      if (r.killed) h.kill(r.killed);
      const started = (pid: number | null): void => this.listener?.started({ attemptId: t.attemptId, pid, cgroup: null, at: Date.now() });
      if (h.started) {
        void h.started.then((pid) => {
          if (pid !== null) started(pid);
        });
      } else started(h.pid ?? null);
      void h.exited.then((info) => release(info));
    };
    if (runtime.check) {
      runtime.check(req).then(go, (err: unknown) => {
        const w = isWarrenError(err) ? err : new WarrenError('RUNTIME_BAD_REQUEST', String((err as Error)?.message ?? err));
        release({ exitCode: null, signal: null, reason: 'spawn-error', message: w.hint ? `${w.message} (${w.hint})` : w.message, durationMs: 0 }, w);
      });
    } else go();
  }

  /** Directories of the volumes a unit touches (made on first use). */
  private volumeDirs(t: TaskAssignment): Map<string, string> {
    const dirs = new Map<string, string>();
    const done = this.preparedOf(t.workflowId);
    for (const v of t.volumes) {
      const dir = volumeDir(this.opts.home, this.runDir(t.workflowId), v);
      if (!done.has(`vol:${dir}`)) {
        mkdirSync(dir, { recursive: true });
        done.add(`vol:${dir}`);
      }
      dirs.set(v.name, dir);
    }
    return dirs;
  }

  private preparedOf(workflowId: string): Set<string> {
    let s = this.prepared.get(workflowId);
    if (!s) {
      // Keep the memo bounded: a long-lived agent sees many workflows.
      if (this.prepared.size > 256) this.prepared.delete(this.prepared.keys().next().value!);
      s = new Set();
      this.prepared.set(workflowId, s);
    }
    return s;
  }

  /** The identity a task runs as: the user's account on this node (null: the agent's own). */
  private identity(t: TaskAssignment): Account | null {
    if (!t.user) return null;
    const name = t.user.unixUser;
    if (name === ownAccount()) return null;
    const acc = lookupAccount(name);
    if (!acc) {
      throw new WarrenError('AGENT_NO_ACCOUNT', `user ${t.user.name} maps to the Unix account ${name}, which node ${this.name} does not have`, {
        hint: `create the account on the node (or in its directory service), or map the user to another: \`warren user add ${t.user.name} --unix-user NAME\``,
        details: { node: this.name, user: t.user.name, unixUser: name },
      });
    }
    if (process.getuid?.() !== 0 && acc.uid !== process.getuid?.()) {
      throw new WarrenError('AGENT_NO_ACCOUNT', `the agent on ${this.name} runs as ${ownAccount()} and cannot start jobs as ${name}`, {
        hint: 'run `warren agent` as root on a shared node (jobs then run as their users), or map the user to the agent\'s account',
        details: { node: this.name, user: t.user.name, unixUser: name },
      });
    }
    return acc;
  }

  private launchRequest(t: TaskAssignment): LaunchRequest {
    const spec = t.job as JobSpec;
    const runDir = this.runDir(t.workflowId);
    const who = this.identity(t);
    const own = (p: string): void => {
      if (who) chownSync(p, who.uid, who.gid);
    };
    const done = this.preparedOf(t.workflowId);
    if (!done.has('dirs')) {
      mkdirSync(join(runDir, 'logs'), { recursive: true });
      mkdirSync(join(runDir, 'work'), { recursive: true });
      done.add('dirs');
    }
    const volumeDirs = this.volumeDirs(t);
    if (who) for (const d of volumeDirs.values()) own(d);
    const mounts = spec.mounts.map((m) => ({ host: volumeDirs.get(m.volume)!, target: m.location, readOnly: m.readOnly }));
    const simulate = t.simulate !== undefined || t.sleepSec !== undefined;
    const container = spec.image !== undefined && !simulate;
    let argv: string[];
    if (simulate) {
      argv = ['sleep', String(Math.max(0, t.sleepSec ?? (spec.estimateSec ?? 0) * (t.simulate ?? 1)))];
    } else if (spec.script !== undefined) {
      const path = join(runDir, 'scripts', safe(spec.name));
      if (!done.has(`script:${spec.name}`)) {
        mkdirSync(join(runDir, 'scripts'), { recursive: true });
        writeFileSync(path, spec.script, { mode: 0o755 });
        done.add(`script:${spec.name}`);
      }
      argv = [path, ...spec.args];
    } else {
      argv = [...(spec.command ?? []), ...spec.args];
    }
    // Host process jobs see each volume at its host directory (exported as
    // WARREN_VOLUME_<NAME>); containers see it at its `location`.
    const env: Record<string, string> = {};
    if (!container && this.opts.inheritEnv !== false && !who) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    if (who) Object.assign(env, { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: who.home, USER: who.name, LOGNAME: who.name });
    for (const m of spec.mounts) env[`WARREN_VOLUME_${m.volume.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`] = container ? m.location : volumeDirs.get(m.volume)!;
    Object.assign(env, spec.env);
    env.WARREN_WORKFLOW_ID = t.workflowId;
    env.WARREN_JOB = spec.name;
    env.WARREN_ATTEMPT = String(t.attempt);
    env.WARREN_ATTEMPT_ID = t.attemptId;
    env.WARREN_NODE = this.name;
    if (t.task !== null) {
      env.WARREN_TASK_ID = String(t.task);
      env.FB_TASK_ID = String(t.task);
    }
    let cwd: string;
    const toHost = (p: string): string => {
      for (const m of mounts) if (p === m.target || p.startsWith(m.target.endsWith('/') ? m.target : m.target + '/')) return m.host + p.slice(m.target.length);
      return p;
    };
    if (spec.cwd !== undefined) cwd = container ? spec.cwd : toHost(spec.cwd);
    else if (mounts.length > 0) cwd = container ? mounts[0]!.target : mounts[0]!.host;
    else {
      cwd = join(runDir, 'work', safe(spec.name));
      if (!done.has(`cwd:${spec.name}`)) {
        if (!existsSync(cwd)) mkdirSync(cwd, { recursive: true });
        own(cwd);
        done.add(`cwd:${spec.name}`);
      }
    }
    const logs = logPaths(runDir, spec.name, t.task);
    if (t.attempt > 1) appendFileSync(logs.err, `--- warren: attempt ${t.attempt} ---\n`);
    return {
      id: t.attemptId,
      argv,
      env,
      cwd,
      stdoutPath: logs.out,
      stderrPath: logs.err,
      timeoutSec: spec.policy.timeoutSec,
      memoryBytes: spec.resources.memoryBytes,
      cores: spec.resources.cores,
      mounts,
      ...(who ? { user: { uid: who.uid, gid: who.gid, groups: who.groups, name: who.name } } : {}),
      // A simulated run replays estimates as host sleeps: no image is needed.
      container: spec.image && container ? { image: spec.image.uri, hostname: spec.name, ...this.registryAuth(spec.image.secret) } : undefined,
    };
  }

  /** Registry credentials for `image.secret` (username/password or token), resolved on the node. */
  private registryAuth(secret: string | undefined): { auth?: { username: string; password: string } | { token: string } } {
    if (!secret) return {};
    const s = (this.opts.secrets ?? this.opts.data?.secrets)?.(secret);
    if (s?.token) return { auth: { token: s.token } };
    if (s?.username !== undefined && s.password !== undefined) return { auth: { username: s.username, password: s.password } };
    throw new WarrenError('RUN_SECRET_NOT_FOUND', `image secret ${secret} has no username/password or token`, {
      hint: 'put {"username": ..., "password": ...} or {"token": ...} in $WARREN_HOME/secrets/NAME.json (see docs/data.md), or use `warren registry login`',
    });
  }

  /** Ingress of one volume, or the workflow's egress, run as a unit. */
  private runData(r: Running, release: (info: ExitInfo, failure?: WarrenError) => void): void {
    const t = r.entry.task;
    const ac = new AbortController();
    r.abort = ac;
    const t0 = Date.now();
    const dataOpts: DataOptions = {
      cacheDir: join(this.opts.home, 'cache', 'data'),
      ...(this.opts.secrets ? { secrets: this.opts.secrets } : {}),
      ...this.opts.data,
      signal: ac.signal,
      onProgress: (p) => this.listener?.progress?.(t.attemptId, p),
    };
    queueMicrotask(() => this.listener?.started({ attemptId: t.attemptId, pid: null, cgroup: null, at: Date.now() }));
    const tx = this.opts.transfers;
    const work = async (): Promise<void> => {
      if (r.entry.hooks.durable) await r.entry.hooks.durable({ pid: null, cgroup: null });
      if (!tx) throw new WarrenError('DATA_UNAVAILABLE', 'this agent has no data mover', { hint: 'this is a bug: the agent is always composed with one' });
      const dirs = this.volumeDirs(t);
      if (t.kind === 'ingress') {
        const v = t.volumes.find((x) => x.name === t.name)!;
        for (const x of v.ingress) await tx.ingress(x, dirs.get(v.name)!, dataOpts);
      } else {
        for (const v of t.volumes) for (const x of v.egress) await tx.egress(x, dirs.get(v.name)!, dataOpts);
      }
    };
    work().then(
      () => release({ exitCode: 0, signal: null, reason: 'exit', durationMs: Date.now() - t0 }),
      (e: unknown) => {
        const err = e as WarrenError;
        const message = err.hint ? `${err.message} (hint: ${err.hint})` : String(err.message ?? e);
        release({ exitCode: null, signal: null, reason: ac.signal.aborted ? 'canceled' : 'error', message, durationMs: Date.now() - t0 }, isWarrenError(e) ? e : undefined);
      },
    );
  }
}

/** Where a volume lives on a node: persistent ones under volumes/, ephemeral ones in the run. */
export function volumeDir(home: string, runDir: string, v: VolumeSpec): string {
  return v.kind === 'persistent' ? join(home, 'volumes', safe(v.persistentName ?? v.name)) : join(runDir, 'volumes', safe(v.name));
}

function waitForChange(path: string, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    let w: ReturnType<typeof watch> | null = null;
    const done = (): void => {
      clearTimeout(t);
      w?.close();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    try {
      if (existsSync(path) && statSync(path).isFile()) w = watch(path, done);
    } catch {
      /* polling is enough */
    }
  });
}
