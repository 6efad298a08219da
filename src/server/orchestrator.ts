// The orchestrator: the I/O shell around the pure engine. It accepts a workflow into the
// store, then drives the engine: engine actions become agent tasks, data transfers,
// timers and store writes; agent reports and timers become engine events.
//
// `warren run` uses it in-process with a LocalAgent; a cluster server will use the same
// class with remote agents.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { WarrenError, pidAlive } from '../common/index.js';
import { Engine, TERMINAL, type EngineAction, type NodeCounts, type UnitSnapshot, type WorkflowStatus } from '../engine/index.js';
import type { LocalAgent } from '../agent/index.js';
import { stopRecordedAttempt, type ExitInfo, type LaunchRequest } from '../runtime/index.js';
import type { JobSpec, Workflow } from '../workflow/index.js';
import { BatchWriter, type AttemptRecord, type RunLease, type Store, type WorkflowRecord, type WriteBatch } from '../store/index.js';
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
  /** How long a run's lease lasts unless renewed (renewed every third of it). Default 15 s
   *  (or $WARREN_LEASE_TTL_MS). */
  leaseTtlMs?: number;
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

/** A store whose every write is fenced by a run lease's term. */
function fencedStore(store: Store, fence: { workflowId: string; term: number }): Store {
  const f = Object.create(store) as Store;
  f.write = (batch: WriteBatch) => store.write({ ...batch, fence: batch.fence ?? fence });
  return f;
}

/** `host:pid:random` -> words for messages. */
export function describeOwner(owner: string): string {
  const [host, pid] = owner.split(':');
  return pid ? `process ${pid} on ${host}` : owner;
}

/** The lease's holder is a process of this host that no longer exists. */
export function holderIsGone(lease: RunLease): boolean {
  const [host, pid] = lease.owner.split(':');
  return host === hostname() && pid !== undefined && !pidAlive(Number(pid));
}

export class Orchestrator {
  private readonly store: Store;
  private readonly agent: LocalAgent;
  private readonly home: string;
  private cancelRequested: (() => void) | null = null;
  private pendingCancel = false;
  private counts: NodeCounts[] = [];
  private readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly ttlMs: number;

  constructor(private readonly opts: OrchestratorOptions) {
    this.store = opts.store;
    this.agent = opts.agent;
    this.home = opts.home;
    this.ttlMs = opts.leaseTtlMs ?? (Number(process.env.WARREN_LEASE_TTL_MS) || 15_000);
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
      throw new WarrenError('AGENT_CANNOT_RUN', problems.map((p) => p.message).join('\n'), { hint: problems[0]!.hint });
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
      owner: null,
    };
    // Only the units that exist before anything runs: tasks of arrays get theirs as they start.
    const units = new Engine(wf).snapshot();
    await this.store.createWorkflow(rec, units);
    return rec;
  }

  /** Cancel the workflow being driven (Ctrl-C, `warren cancel`). */
  cancel(): void {
    if (this.cancelRequested) this.cancelRequested();
    else this.pendingCancel = true;
  }

  /** Per job, how many units ended in each state, in the last drive (tasks that never started included). */
  get lastCounts(): NodeCounts[] {
    return this.counts;
  }

  /** This process's owner id for run leases: host:pid:random. */
  get ownerId(): string {
    return this.owner;
  }

  /**
   * Take the run's lease: it is free, expired, or held by a process of this host that is
   * gone (then taken over atomically in the same conditional update). Throws
   * RUN_LEASE_HELD (exit 2) when a live runner holds it.
   */
  async takeLease(id: string): Promise<RunLease> {
    const t = Date.now();
    let r = await this.store.acquireRunLease(id, this.owner, this.ttlMs, t);
    if (!r.ok && holderIsGone(r.current)) {
      // Its holder died on this host: treat the lease as expired now. The update is still
      // conditional on `expiresAt <= its recorded expiry`, so a racing taker wins or we do.
      r = await this.store.acquireRunLease(id, this.owner, Math.max(1, t + this.ttlMs - r.current.expiresAt), r.current.expiresAt);
    }
    if (!r.ok) {
      const who = describeOwner(r.current.owner);
      throw new WarrenError('RUN_LEASE_HELD', `workflow ${id} is being run by ${who} (its lease runs until ${new Date(r.current.expiresAt).toISOString()})`, {
        hint: `wait for it to end, or stop it with \`warren cancel ${id}\`; if that runner is gone, its lease expires by itself within ${Math.ceil(this.ttlMs / 1000)} s`,
      });
    }
    return r.lease;
  }

  /**
   * Stop what a dead runner left: every attempt of the workflow not marked ended is stopped
   * through its recorded cgroup (else its process group, checked by WARREN_ATTEMPT_ID),
   * then marked ended, in a write fenced by our lease. Returns how many were stopped.
   */
  async stopAbandoned(id: string, lease: RunLease): Promise<number> {
    let stopped = 0;
    const ended: AttemptRecord[] = [];
    for (const a of await this.store.attempts(id)) {
      if (a.endedAt !== null) continue;
      const attemptId = a.attemptId ?? `${id}/${a.key}/${a.attempt}`;
      if ((await stopRecordedAttempt({ attemptId, pid: a.pid ?? null, cgroup: a.cgroup ?? null })) === 'stopped') stopped++;
      ended.push({ ...a, attemptId, endedAt: Date.now(), exitCode: null, signal: null, reason: 'runner-lost', message: 'its runner died; stopped before the workflow went on' });
    }
    if (ended.length) await this.store.write({ attempts: ended, fence: { workflowId: id, term: lease.term } });
    return stopped;
  }

  /**
   * `warren cancel` of a run nobody drives (its runner died): take the lease, stop its open
   * attempts, mark what did not finish canceled and the workflow canceled.
   */
  async cancelAbandoned(id: string): Promise<void> {
    const lease = await this.takeLease(id);
    try {
      await this.stopAbandoned(id, lease);
      const t = Date.now();
      const units = (await this.store.units(id)).filter((u) => !TERMINAL.has(u.state)).map((u) => ({ workflowId: id, unit: { ...u, state: 'canceled' as const, reason: 'canceled', endedAt: t } }));
      await this.store.write({
        units,
        events: [{ workflowId: id, at: t, key: null, level: 'warn', message: 'canceled (its runner was gone)' }],
        workflows: [{ id, patch: { status: 'canceled', endedAt: t, cancelRequested: true } }],
        fence: { workflowId: id, term: lease.term },
      });
    } finally {
      await this.store.releaseRunLease(id, this.owner, lease.term);
    }
  }

  /** Drive a workflow to its end (a fresh run or a resume). */
  async drive(id: string, hooks: DriveHooks = {}): Promise<WorkflowStatus> {
    const rec0 = await this.store.getWorkflow(id);
    if (!rec0) throw new WarrenError('RUN_NOT_FOUND', `no workflow ${id}`, { hint: 'see `warren list` for the ids' });
    // Only the holder of the run's lease drives it: a second `warren resume` is refused.
    const lease = await this.takeLease(rec0.id);
    const fence = { workflowId: rec0.id, term: lease.term };
    try {
      // Before anything re-runs, what a dead runner left running is stopped (never two copies).
      await this.stopAbandoned(rec0.id, lease);
      return await this.driveLeased(rec0.id, lease, fence, hooks);
    } finally {
      await this.store.releaseRunLease(rec0.id, this.owner, lease.term).catch(() => {});
    }
  }

  private async driveLeased(id: string, lease: RunLease, fence: { workflowId: string; term: number }, hooks: DriveHooks): Promise<WorkflowStatus> {
    const rec = (await this.store.getWorkflow(id))!;
    const wf = rec.spec;
    const options = rec.options as RunOptions;
    const prevUnits = await this.store.units(id);
    const engine = new Engine(wf, { failFast: options.failFast, previous: new Map(prevUnits.map((u) => [u.key, u])) });
    const writer = new BatchWriter(fencedStore(this.store, fence));
    const runDir = rec.runDir;
    mkdirSync(join(runDir, 'logs'), { recursive: true });
    mkdirSync(join(runDir, 'work'), { recursive: true });
    const volumeDirs = this.prepareVolumes(wf, runDir);
    const scripts = new Map<string, string>();
    /** attempt id -> unit */
    const inflight = new Map<string, { key: string; attempt: number; stopping: boolean; durable: boolean }>();
    const byKey = new Map<string, string>();
    const dataAborts = new Map<string, AbortController>();
    const sites = this.opts.sites;
    const agents = sites ? [...sites.agents.values()] : [this.agent];
    const agentOf = new Map<string, LocalAgent>();
    const placedJobs = new Set<string>();
    const timers = new Set<NodeJS.Timeout>();
    let finished!: (s: WorkflowStatus) => void;
    let failed!: (e: unknown) => void;
    const done = new Promise<WorkflowStatus>((r, j) => {
      finished = r;
      failed = j;
    });
    let final: WorkflowStatus | null = null;
    let lost: WarrenError | null = null;
    const node = hostname();
    // How many launched job units may wait in the agents' queues: enough to keep every core
    // busy between two events, few enough that memory stays flat for a million tasks.
    const window = Math.max(64, 4 * agents.reduce((n, a) => n + a.cores, 0));

    const now = (): number => Date.now();
    writer.workflow(id, { status: 'running', startedAt: rec.startedAt ?? now(), endedAt: null, cancelRequested: false });

    let stepping = false;
    const step = (ev: Parameters<Engine['step']>[0]): void => {
      apply(engine.step(ev));
      pump();
    };
    /** Pull launches from the engine while the agents have room. */
    const pump = (): void => {
      if (stepping || lost || final !== null) return;
      stepping = true;
      try {
        for (let rounds = 0; rounds < 64; rounds++) {
          let queued = 0;
          for (const a of agents) queued += a.load.queued;
          const room = window - queued;
          if (room <= 0 || !engine.hasLaunchable) break;
          const acts = engine.pull(room);
          if (acts.length === 0) break;
          apply(acts);
        }
      } finally {
        stepping = false;
      }
    };

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
            const entry = { key: a.key, attempt: a.attempt, stopping: false, durable: false };
            inflight.set(attemptId, entry);
            byKey.set(a.key, attemptId);
            const base: AttemptRecord = { workflowId: id, key: a.key, attempt: a.attempt, attemptId, term: lease.term, cgroup: null, node, startedAt: null, endedAt: null, exitCode: null, signal: null, reason: null, message: null };
            if (a.kind === 'job') {
              const spec = wf.jobs[a.job]!;
              let req: LaunchRequest;
              try {
                req = this.launchRequest(rec, spec, a.task, a.attempt, attemptId, volumeDirs, scripts, options);
              } catch (e) {
                queueMicrotask(() => agentExited(attemptId, { exitCode: null, signal: null, reason: 'spawn-error', message: (e as Error).message, durationMs: 0 }));
                break;
              }
              // The attempt is durable (id, pid, cgroup, term) before its command runs: the
              // runtime holds the exec until this resolves.
              req.beforeExec = (info) => {
                entry.durable = true;
                return writer.attemptNow({ ...base, startedAt: now(), pid: info.pid, cgroup: info.cgroup }, fence);
              };
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
              writer.attempt(base);
              // A download waiting on another process's lock is said in the live view and
              // recorded as an event, so `warren status` shows it too.
              const dataHooks: DriveHooks = {
                ...hooks,
                onProgress: (key, p) => {
                  if (p.kind === 'waiting-lock' && p.lock) {
                    const who = p.lock.pid > 0 ? `process ${p.lock.pid} on ${p.lock.host}` : 'another process';
                    const message = `waiting ${Math.round(p.lock.waitedMs / 1000)} s for ${p.uri}: ${who} is downloading it (lock ${p.lock.path})`;
                    writer.event({ workflowId: id, at: now(), key, level: 'warn', message });
                    hooks.onEvent?.('warn', key, message);
                  } else hooks.onProgress?.(key, p);
                },
              };
              this.runData(a.kind, a.job, wf, volumeDirs, attemptId, dataAborts, dataHooks, agentStarted, agentExited);
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
      // A runtime that does not hold the exec (data units; a runtime without beforeExec): record it now.
      if (!f.durable) writer.attempt({ workflowId: id, key: f.key, attempt: f.attempt, attemptId, term: lease.term, cgroup: null, node, startedAt: now(), endedAt: null, exitCode: null, signal: null, reason: null, message: null, pid: pid ?? null });
      if (sites && agentOf.has(attemptId)) sites.placement.started(f.key, now());
      step({ type: 'launched', key: f.key, attempt: f.attempt, now: now() });
    };
    /** A job's end, by its attempt id: applied only while that attempt is the unit's current one. */
    const agentExited = (attemptId: string, info: ExitInfo): void => {
      const f = inflight.get(attemptId);
      if (!f) return;
      inflight.delete(attemptId);
      if (byKey.get(f.key) === attemptId) byKey.delete(f.key);
      if (lost) {
        if (inflight.size === 0) failed(lost);
        return;
      }
      if (sites && agentOf.has(attemptId) && info.reason === 'exit' && info.exitCode === 0) {
        const replanned = sites.placement.ended(f.key, now());
        if (replanned) {
          writer.event({ workflowId: id, at: now(), key: f.key, level: 'info', message: replanned });
          hooks.onEvent?.('info', f.key, replanned);
        }
      }
      agentOf.delete(attemptId);
      const reason = f.stopping ? 'stopped' : info.reason;
      writer.attempt({ workflowId: id, key: f.key, attempt: f.attempt, attemptId, term: lease.term, cgroup: null, node, startedAt: null, endedAt: now(), exitCode: info.exitCode, signal: info.signal, reason, message: info.message ?? null });
      step({ type: 'exited', key: f.key, attempt: f.attempt, now: now(), exitCode: info.exitCode, signal: info.signal, reason, message: info.message });
    };
    this.agent.setListener({ started: agentStarted, exited: agentExited });
    if (sites) for (const ag of sites.agents.values()) ag.setListener({ started: agentStarted, exited: agentExited });

    /** The lease is gone (another runner took the run over): launch nothing more, stop ours, fail. */
    const loseLease = (why: string): void => {
      if (lost || final !== null) return;
      lost = new WarrenError('RUN_LEASE_LOST', `lost the lease on workflow ${id}: ${why}; stopped its jobs here`, {
        hint: `another runner drives it now (see \`warren status ${id}\`); nothing was lost: what did not finish here runs there`,
      });
      for (const [attemptId] of inflight) {
        const ac = dataAborts.get(attemptId);
        if (ac) ac.abort();
        else (agentOf.get(attemptId) ?? this.agent).kill(attemptId, 'canceled');
      }
      if (inflight.size === 0) failed(lost);
    };
    const renew = setInterval(() => {
      this.store.renewRunLease(id, this.owner, lease.term, this.ttlMs, now()).then(
        (ok) => {
          if (!ok) loseLease('its lease was taken over');
        },
        () => {},
      );
    }, Math.max(50, Math.floor(this.ttlMs / 3)));

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
      clearInterval(renew);
      for (const t of timers) clearTimeout(t);
      this.cancelRequested = null;
      this.counts = engine.counts();
      try {
        await writer.flush();
      } catch (e) {
        if ((e as WarrenError).code === 'STORE_FENCED') loseLease('its lease was taken over');
        if (!lost) throw e;
      }
      if (lost) throw lost;
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
      // Once per job, not per task.
      if (!scripts.has(`\u0000cwd:${spec.name}`)) {
        if (!existsSync(cwd)) mkdirSync(cwd, { recursive: true });
        scripts.set(`\u0000cwd:${spec.name}`, cwd);
      }
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
