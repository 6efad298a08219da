// The orchestrator: the I/O shell around the pure engine. It accepts a workflow into the
// store, then drives the engine: engine actions become agent tasks, data transfers,
// timers and store writes; agent reports and timers become engine events.
//
// `warren run` uses it in-process with a LocalAgent; a cluster server will use the same
// class with remote agents.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { WarrenError } from '../common/index.js';
import { Engine, type EngineAction, type UnitSnapshot, type WorkflowStatus } from '../engine/index.js';
import type { LocalAgent } from '../agent/index.js';
import type { ExitInfo, LaunchRequest } from '../runtime/index.js';
import type { JobSpec, Workflow } from '../workflow/index.js';
import { BatchWriter, type Store, type WorkflowRecord } from '../store/index.js';
import type { Placement } from './placement.js';
import type { DataOptions, EgressFn, IngressFn, TransferProgress } from '../data/index.js';

export interface RunOptions {
  failFast?: boolean;
  /** Cores of the local agent when the run was accepted (shown by `warren status`). */
  agentCores?: number;
  /** Replace every job's command by a sleep of its estimate × this factor (WfFormat replay). */
  simulate?: number;
}

export interface DriveHooks {
  /** Every unit change, in order. */
  onUnit?: (u: UnitSnapshot) => void;
  onEvent?: (level: 'info' | 'warn' | 'error', key: string | null, message: string) => void;
  onProgress?: (key: string, p: TransferProgress) => void;
}

export interface OrchestratorOptions {
  store: Store;
  agent: LocalAgent;
  /** $WARREN_HOME: runs/, volumes/, cache/. */
  home: string;
  data?: Partial<DataOptions>;
  /** Data movement (src/data); injected so the orchestrator stays testable. */
  transfers?: { ingress: IngressFn; egress: EgressFn };
  /** How often to look for a cancel request in the store (ms). */
  cancelPollMs?: number;
  /** Run across sites: one agent per site, jobs placed (and re-placed) by a plan. */
  sites?: { agents: Map<string, LocalAgent>; placement: Placement };
}

/** A short, sortable, unique workflow id: time in base 36 + random. */
export function newWorkflowId(now = Date.now()): string {
  return now.toString(36) + randomBytes(3).toString('hex');
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_');

export function logPaths(runDir: string, job: string, task: number | null): { out: string; err: string } {
  const base = join(runDir, 'logs', task === null ? safe(job) : `${safe(job)}.${task}`);
  return { out: `${base}.out`, err: `${base}.err` };
}

export class Orchestrator {
  private readonly store: Store;
  private readonly agent: LocalAgent;
  private readonly home: string;
  private cancelRequested: (() => void) | null = null;
  private pendingCancel = false;

  constructor(private readonly opts: OrchestratorOptions) {
    this.store = opts.store;
    this.agent = opts.agent;
    this.home = opts.home;
  }

  /** Cores the local agent may use. */
  get nodeCores(): number {
    return this.agent.cores;
  }

  /** Check that this node can run every job at all; collects every problem before failing. */
  preflight(wf: Workflow, simulate = false): void {
    const problems: WarrenError[] = [];
    // Across sites a job needs one site that can hold it; on one node, that node.
    const agents = this.opts.sites ? [...this.opts.sites.agents.values()] : [this.agent];
    for (const j of Object.values(wf.jobs)) {
      let last: WarrenError | null = null;
      for (const agent of agents) {
        try {
          agent.checkFits(`job ${j.name}`, j.resources.cores, j.resources.memoryBytes ?? 0, j.image !== undefined && !simulate);
          last = null;
          break;
        } catch (e) {
          last = e as WarrenError;
        }
      }
      if (last) problems.push(last);
    }
    if (problems.length === 1) throw problems[0]!;
    if (problems.length > 1) {
      throw new WarrenError('AGENT_CANNOT_RUN', problems.map((p) => p.message).join('\n'), { hint: problems[0]!.hint, exitCode: 2 });
    }
  }

  /** Accept a workflow: write it and all its units to the store before anything runs. */
  async accept(wf: Workflow, options: RunOptions = {}): Promise<WorkflowRecord> {
    this.preflight(wf, options.simulate !== undefined);
    const id = newWorkflowId();
    const runDir = join(this.home, 'runs', id);
    const rec: WorkflowRecord = {
      id,
      name: wf.name,
      file: wf.file ?? null,
      status: 'pending',
      spec: wf,
      options: { ...options },
      runDir,
      createdAt: Date.now(),
      startedAt: null,
      endedAt: null,
      cancelRequested: false,
      lease: null,
    };
    const units = new Engine(wf).snapshot();
    await this.store.createWorkflow(rec, units);
    return rec;
  }

  /** Cancel the workflow being driven (Ctrl-C, `warren cancel`). */
  cancel(): void {
    if (this.cancelRequested) this.cancelRequested();
    else this.pendingCancel = true;
  }

  /** Drive a workflow to its end (a fresh run or a resume). */
  async drive(id: string, hooks: DriveHooks = {}): Promise<WorkflowStatus> {
    const rec = await this.store.getWorkflow(id);
    if (!rec) throw new WarrenError('RUN_NOT_FOUND', `no workflow ${id}`, { hint: 'see `warren list` for the ids', exitCode: 2 });
    const wf = rec.spec;
    const options = rec.options as RunOptions;
    const prevUnits = await this.store.units(id);
    const isResume = prevUnits.some((u) => u.attempt > 0);
    if (isResume) await this.reapOrphans(rec, prevUnits);
    const engine = new Engine(wf, { failFast: options.failFast, previous: new Map(prevUnits.map((u) => [u.key, u])) });
    const writer = new BatchWriter(this.store);
    const runDir = rec.runDir;
    mkdirSync(join(runDir, 'logs'), { recursive: true });
    mkdirSync(join(runDir, 'work'), { recursive: true });
    const volumeDirs = this.prepareVolumes(wf, runDir);
    const scripts = new Map<string, string>();
    /** attempt id -> unit */
    const inflight = new Map<string, { key: string; attempt: number; stopping: boolean }>();
    const byKey = new Map<string, string>();
    const dataAborts = new Map<string, AbortController>();
    const sites = this.opts.sites;
    const agentOf = new Map<string, LocalAgent>();
    const placedJobs = new Set<string>();
    const timers = new Set<NodeJS.Timeout>();
    let finished: (s: WorkflowStatus) => void;
    const done = new Promise<WorkflowStatus>((r) => (finished = r));
    let final: WorkflowStatus | null = null;

    const now = (): number => Date.now();
    // TODO(orchestrator): lease. Stand-in for the former runnerPid/runnerHost: ttl 0 records who
    // drives the run (for `warren status`/`cancel`) without holding it; take it for real,
    // renew it while driving, fence the writer with its term and refuse when another holds it.
    const leaseOwner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    const taken = await this.store.acquireRunLease(id, leaseOwner, 0, now());
    writer.workflow(id, { status: 'running', startedAt: rec.startedAt ?? now(), endedAt: null, cancelRequested: false });

    const step = (ev: Parameters<Engine['step']>[0]): void => apply(engine.step(ev));

    const apply = (actions: EngineAction[]): void => {
      for (const a of actions) {
        switch (a.type) {
          case 'changed':
            writer.unit(id, a.unit);
            hooks.onUnit?.(a.unit);
            break;
          case 'event':
            writer.event({ workflowId: id, at: now(), key: a.key, level: a.level, message: a.message });
            hooks.onEvent?.(a.level, a.key, a.message);
            break;
          case 'timer': {
            const t = setTimeout(() => {
              timers.delete(t);
              step({ type: 'tick', now: now() });
            }, Math.max(0, a.at - now()));
            timers.add(t);
            break;
          }
          case 'launch': {
            const attemptId = `${id}/${a.key}/${a.attempt}`;
            inflight.set(attemptId, { key: a.key, attempt: a.attempt, stopping: false });
            byKey.set(a.key, attemptId);
            writer.attempt({ workflowId: id, key: a.key, attempt: a.attempt, attemptId, term: null, cgroup: null, node: null, startedAt: null, endedAt: null, exitCode: null, signal: null, reason: null, message: null });
            if (a.kind === 'job') {
              const spec = wf.jobs[a.job]!;
              let req: LaunchRequest;
              try {
                req = this.launchRequest(rec, spec, a.task, a.attempt, attemptId, volumeDirs, scripts, options);
              } catch (e) {
                queueMicrotask(() => agentExited(attemptId, { exitCode: null, signal: null, reason: 'spawn-error', message: (e as Error).message, durationMs: 0 }));
                break;
              }
              let agent = this.agent;
              if (sites) {
                const site = sites.placement.siteOf(a.key);
                agent = sites.agents.get(site) ?? this.agent;
                if (options.simulate !== undefined) {
                  const sec = sites.placement.stageInSec(a.key) + (spec.estimateSec ?? 0) / sites.placement.speedOf(site, a.key);
                  req.argv = ['sleep', String(Math.max(0, sec * options.simulate))];
                }
                if (!placedJobs.has(spec.name)) {
                  placedJobs.add(spec.name);
                  writer.event({ workflowId: id, at: now(), key: a.key, level: 'info', message: `${spec.name} placed at ${site}` });
                }
              }
              agentOf.set(attemptId, agent);
              agent.submit({
                id: attemptId,
                request: req,
                cores: spec.resources.cores,
                memoryBytes: spec.resources.memoryBytes ?? 0,
                exclusive: spec.resources.exclusive,
              });
            } else {
              this.runData(a.kind, a.job, wf, volumeDirs, attemptId, dataAborts, hooks, agentStarted, agentExited);
            }
            break;
          }
          case 'kill': {
            const attemptId = byKey.get(a.key);
            if (!attemptId) break;
            const f = inflight.get(attemptId);
            if (f && a.reason === 'stop-service') f.stopping = true;
            const ac = dataAborts.get(attemptId);
            if (ac) ac.abort();
            else (agentOf.get(attemptId) ?? this.agent).kill(attemptId, a.reason === 'timeout' ? 'timeout' : 'canceled');
            break;
          }
          case 'done':
            final = a.status;
            writer.workflow(id, { status: a.status, endedAt: now() });
            finished(a.status);
            break;
        }
      }
    };

    const agentStarted = (attemptId: string, pid: number | undefined): void => {
      const f = inflight.get(attemptId);
      if (!f) return;
      writer.attempt({ workflowId: id, key: f.key, attempt: f.attempt, attemptId, term: null, cgroup: null, node: null, startedAt: now(), endedAt: null, exitCode: null, signal: null, reason: null, message: null, pid: pid ?? null });
      if (sites && agentOf.has(attemptId)) sites.placement.started(f.key, now());
      step({ type: 'launched', key: f.key, attempt: f.attempt, now: now() });
    };
    const agentExited = (attemptId: string, info: ExitInfo): void => {
      const f = inflight.get(attemptId);
      if (!f) return;
      inflight.delete(attemptId);
      if (byKey.get(f.key) === attemptId) byKey.delete(f.key);
      if (sites && agentOf.has(attemptId) && info.reason === 'exit' && info.exitCode === 0) {
        const replanned = sites.placement.ended(f.key, now());
        if (replanned) {
          writer.event({ workflowId: id, at: now(), key: f.key, level: 'info', message: replanned });
          hooks.onEvent?.('info', f.key, replanned);
        }
      }
      agentOf.delete(attemptId);
      const reason = f.stopping ? 'stopped' : info.reason;
      writer.attempt({ workflowId: id, key: f.key, attempt: f.attempt, attemptId, term: null, cgroup: null, node: null, startedAt: null, endedAt: now(), exitCode: info.exitCode, signal: info.signal, reason, message: info.message ?? null });
      step({ type: 'exited', key: f.key, attempt: f.attempt, now: now(), exitCode: info.exitCode, signal: info.signal, reason, message: info.message });
    };
    this.agent.setListener({ started: agentStarted, exited: agentExited });
    if (sites) for (const ag of sites.agents.values()) ag.setListener({ started: agentStarted, exited: agentExited });

    this.cancelRequested = () => step({ type: 'cancel', now: now() });
    const cancelPoll = setInterval(() => {
      this.store.getWorkflow(id).then(
        (r) => {
          if (r?.cancelRequested && final === null) step({ type: 'cancel', now: now() });
        },
        () => {},
      );
    }, this.opts.cancelPollMs ?? 500);

    try {
      step({ type: 'start', now: now() });
      if (this.pendingCancel) step({ type: 'cancel', now: now() });
      const status = await done;
      return status;
    } finally {
      clearInterval(cancelPoll);
      for (const t of timers) clearTimeout(t);
      this.cancelRequested = null;
      await writer.flush();
      if (taken.ok) await this.store.releaseRunLease(id, leaseOwner, taken.lease.term); // TODO(orchestrator): lease
    }
  }

  /** Kill processes left running by a runner that died (kill -9), before re-running their units. */
  private async reapOrphans(rec: WorkflowRecord, units: UnitSnapshot[]): Promise<void> {
    const open = new Set(units.filter((u) => u.state === 'running' || u.state === 'starting').map((u) => u.key));
    if (open.size === 0) return;
    for (const a of await this.store.attempts(rec.id)) {
      if (!open.has(a.key) || !a.pid || a.endedAt !== null) continue;
      const marker = `WARREN_ATTEMPT_ID=${rec.id}/${a.key}/${a.attempt}`;
      try {
        const env = readFileSync(`/proc/${a.pid}/environ`, 'latin1');
        if (env.split('\u0000').includes(marker)) process.kill(-a.pid, 'SIGKILL');
      } catch {
        /* gone, or not ours */
      }
    }
  }

  private prepareVolumes(wf: Workflow, runDir: string): Map<string, string> {
    const dirs = new Map<string, string>();
    for (const v of Object.values(wf.volumes)) {
      const dir = v.kind === 'persistent' ? join(this.home, 'volumes', safe(v.persistentName ?? v.name)) : join(runDir, 'volumes', safe(v.name));
      mkdirSync(dir, { recursive: true });
      dirs.set(v.name, dir);
    }
    return dirs;
  }

  private launchRequest(
    rec: WorkflowRecord,
    spec: JobSpec,
    task: number | null,
    attempt: number,
    attemptId: string,
    volumeDirs: Map<string, string>,
    scripts: Map<string, string>,
    options: RunOptions,
  ): LaunchRequest {
    const runDir = rec.runDir;
    const mounts = spec.mounts.map((m) => ({ host: volumeDirs.get(m.volume)!, target: m.location, readOnly: m.readOnly }));
    const container = spec.image !== undefined && options.simulate === undefined;
    let argv: string[];
    if (options.simulate !== undefined) {
      argv = ['sleep', String(Math.max(0, (spec.estimateSec ?? 0) * options.simulate))];
    } else if (spec.script !== undefined) {
      let path = scripts.get(spec.name);
      if (!path) {
        mkdirSync(join(runDir, 'scripts'), { recursive: true });
        path = join(runDir, 'scripts', safe(spec.name));
        writeFileSync(path, spec.script, { mode: 0o755 });
        scripts.set(spec.name, path);
      }
      argv = [path, ...spec.args];
    } else {
      argv = [...(spec.command ?? []), ...spec.args];
    }
    // Host process jobs see each volume at its host directory (exported as
    // WARREN_VOLUME_<NAME>); containers see it at its `location`.
    const env: Record<string, string> = {};
    if (!container) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    for (const m of spec.mounts) env[`WARREN_VOLUME_${m.volume.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`] = container ? m.location : volumeDirs.get(m.volume)!;
    Object.assign(env, spec.env);
    env.WARREN_WORKFLOW_ID = rec.id;
    env.WARREN_JOB = spec.name;
    env.WARREN_ATTEMPT = String(attempt);
    env.WARREN_ATTEMPT_ID = attemptId;
    if (task !== null) {
      env.WARREN_TASK_ID = String(task);
      env.FB_TASK_ID = String(task);
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
      if (!existsSync(cwd)) mkdirSync(cwd, { recursive: true });
    }
    const logs = logPaths(runDir, spec.name, task);
    if (attempt > 1) appendFileSync(logs.err, `--- warren: attempt ${attempt} ---\n`);
    return {
      id: attemptId,
      argv,
      env,
      cwd,
      stdoutPath: logs.out,
      stderrPath: logs.err,
      timeoutSec: spec.policy.timeoutSec,
      memoryBytes: spec.resources.memoryBytes,
      cores: spec.resources.cores,
      mounts,
      // A simulated run replays estimates as host sleeps: no image is needed.
      container: spec.image && container ? { image: spec.image.uri, hostname: spec.name, ...this.registryAuth(spec.image.secret) } : undefined,
    };
  }

  /** Registry credentials for `image.secret` (username/password or token). */
  private registryAuth(secret: string | undefined): { auth?: { username: string; password: string } | { token: string } } {
    if (!secret) return {};
    const s = this.opts.data?.secrets?.(secret);
    if (s?.token) return { auth: { token: s.token } };
    if (s?.username !== undefined && s.password !== undefined) return { auth: { username: s.username, password: s.password } };
    throw new WarrenError('RUN_SECRET_NOT_FOUND', `image secret ${secret} has no username/password or token`, {
      hint: 'put {"username": ..., "password": ...} or {"token": ...} in $WARREN_HOME/secrets/NAME.json (see docs/data.md), or use `warren registry login`',
      exitCode: 2,
    });
  }

  /** Ingress of one volume, or the workflow's egress, run as a unit. */
  private runData(
    kind: 'ingress' | 'egress',
    name: string,
    wf: Workflow,
    volumeDirs: Map<string, string>,
    attemptId: string,
    aborts: Map<string, AbortController>,
    hooks: DriveHooks,
    started: (id: string, pid: undefined) => void,
    exited: (id: string, info: ExitInfo) => void,
  ): void {
    const ac = new AbortController();
    aborts.set(attemptId, ac);
    const t0 = Date.now();
    const key = kind === 'ingress' ? `@ingress/${name}` : '@egress';
    const dataOpts: DataOptions = {
      cacheDir: join(this.home, 'cache', 'data'),
      ...this.opts.data,
      signal: ac.signal,
      onProgress: (p) => hooks.onProgress?.(key, p),
    };
    queueMicrotask(() => started(attemptId, undefined));
    const tx = this.opts.transfers;
    const work = async (): Promise<void> => {
      if (!tx) throw new WarrenError('DATA_UNAVAILABLE', 'this orchestrator has no data mover', { hint: 'this is a bug: the CLI always provides one' });
      const { ingress, egress } = tx;
      if (kind === 'ingress') {
        const v = wf.volumes[name]!;
        for (const t of v.ingress) await ingress(t, volumeDirs.get(v.name)!, dataOpts);
      } else {
        for (const v of Object.values(wf.volumes)) for (const t of v.egress) await egress(t, volumeDirs.get(v.name)!, dataOpts);
      }
    };
    work().then(
      () => {
        aborts.delete(attemptId);
        exited(attemptId, { exitCode: 0, signal: null, reason: 'exit', durationMs: Date.now() - t0 });
      },
      (e: unknown) => {
        aborts.delete(attemptId);
        const err = e as WarrenError;
        const message = err.hint ? `${err.message} (hint: ${err.hint})` : String(err.message ?? e);
        exited(attemptId, { exitCode: null, signal: null, reason: ac.signal.aborted ? 'canceled' : 'error', message, durationMs: Date.now() - t0 });
      },
    );
  }
}
