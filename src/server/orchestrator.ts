// The orchestrator: the I/O shell around the pure engine. It accepts a workflow into the
// store, then drives the engine: engine actions become agent tasks, data transfers,
// timers and store writes; agent reports and timers become engine events.
//
// `warren run` uses it in-process with a LocalAgent; a cluster server will use the same
// class with remote agents.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { WarrenError, pidAlive, type LogFn } from '../common/index.js';
import { Engine, TERMINAL, type NodeCounts, type WorkflowStatus } from '../engine/index.js';
import { gpusOfJob, type Agent, type TaskUser } from '../agent/index.js';
import { stopRecordedAttempt } from '../runtime/index.js';
import type { Workflow } from '../workflow/index.js';
import type { AttemptRecord, RunLease, Store, WorkflowRecord } from '../store/index.js';
import type { Placement } from './placement.js';
import { RunDriver, type DriveHooks, type RunOptions } from './driver.js';
import type { RunMetrics } from './metrics.js';

export type { DriveHooks, RunOptions } from './driver.js';

export interface OrchestratorOptions {
  store: Store;
  agent: Agent;
  /** $WARREN_HOME: where run directories are recorded (runs/ID). */
  home: string;
  log?: LogFn;
  /** Told of each unit's wait for a node and each attempt's run time (cluster mode). */
  metrics?: RunMetrics;
  /** Who the runs' tasks run as (cluster mode): from the workflow's owner. */
  userOf?: (owner: string | null) => Promise<TaskUser | undefined>;
  /** How often to look for a cancel request in the store (ms). */
  cancelPollMs?: number;
  /** How long a run's lease lasts unless renewed (renewed every third of it). Default 15 s
   *  (or $WARREN_LEASE_TTL_MS). */
  leaseTtlMs?: number;
  /** This runner's owner id for run leases (default host:pid:random). A cluster server's ends
   *  in `:srv-…` (serverLeaseOwner): the leader takes a run held by another server at once. */
  owner?: string;
  /** A lease held by someone else that is taken at once as if it had expired (the cluster's
   *  leader takes the runs of a server that is no longer the leader). */
  takeOver?: (lease: RunLease) => boolean;
  /** Run across sites: one agent per site, jobs placed (and re-placed) by a plan. */
  sites?: { agents: Map<string, Agent>; placement: Placement };
}

/** A short, sortable, unique workflow id: time in base 36 + random. */
export function newWorkflowId(now = Date.now()): string {
  return now.toString(36) + randomBytes(3).toString('hex');
}


/** `host:pid:random` -> words for messages. */
export function describeOwner(owner: string): string {
  const [host, pid] = owner.split(':');
  return pid ? `process ${pid} on ${host}` : owner;
}

/** A cluster server's run-lease owner id: host:pid:srv-<random> (a new one for each time it leads). */
export function serverLeaseOwner(): string {
  return `${hostname()}:${process.pid}:srv-${randomBytes(4).toString('hex')}`;
}

/** The lease is held by a cluster server (see serverLeaseOwner). */
export function heldByServer(lease: RunLease): boolean {
  return /:srv-[0-9a-f]+$/.test(lease.owner);
}

/** The lease's holder is a process of this host that no longer exists. */
export function holderIsGone(lease: RunLease): boolean {
  const [host, pid] = lease.owner.split(':');
  return host === hostname() && pid !== undefined && !pidAlive(Number(pid));
}

export class Orchestrator {
  private readonly store: Store;
  private readonly agent: Agent;
  private readonly home: string;
  private cancelRequested: (() => void) | null = null;
  private pendingCancel = false;
  private counts: NodeCounts[] = [];
  private readonly owner: string;
  private readonly ttlMs: number;

  constructor(private readonly opts: OrchestratorOptions) {
    this.store = opts.store;
    this.agent = opts.agent;
    this.home = opts.home;
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.ttlMs = opts.leaseTtlMs ?? (Number(process.env.WARREN_LEASE_TTL_MS) || 15_000);
  }

  /** Cores the local agent may use. */
  get nodeCores(): number {
    return this.agent.info().cores;
  }

  /** Check that this node can run every job at all; collects every problem before failing. */
  preflight(wf: Workflow, simulate = false): void {
    const problems: WarrenError[] = [];
    // Across sites a job needs one site that can hold it; on one node, that node.
    const agents = this.opts.sites ? [...this.opts.sites.agents.values()] : [this.agent];
    for (const j of Object.values(wf.jobs)) {
      let last: WarrenError | null = null;
      for (const agent of agents) {
        last = agent.admit({ name: `job ${j.name}`, cores: j.resources.cores, ...(j.multinode ? { nodes: j.multinode.nodes } : {}), memoryBytes: j.resources.memoryBytes ?? 0, gpus: gpusOfJob(j), container: j.image !== undefined && !simulate });
        if (!last) break;
      }
      if (last) problems.push(last);
    }
    if (problems.length === 1) throw problems[0]!;
    if (problems.length > 1) {
      throw new WarrenError('AGENT_CANNOT_RUN', problems.map((p) => p.message).join('\n'), { hint: problems[0]!.hint });
    }
  }

  /** Accept a workflow: write it and all its units to the store before anything runs. */
  async accept(wf: Workflow, options: RunOptions = {}, o: { owner?: string } = {}): Promise<WorkflowRecord> {
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
      owner: o.owner ?? null,
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
    if (!r.ok && (holderIsGone(r.current) || this.opts.takeOver?.(r.current) === true)) {
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
    const running = await this.begin(id, hooks);
    return running.done;
  }

  /**
   * Take the run's lease (RUN_LEASE_HELD while a live runner holds it), stop what a dead
   * runner left, and start driving: resolves once the run is ours, with its end to come.
   */
  async begin(id: string, hooks: DriveHooks = {}): Promise<{ id: string; done: Promise<WorkflowStatus>; driver: RunDriver }> {
    const rec0 = await this.store.getWorkflow(id);
    if (!rec0) throw new WarrenError('RUN_NOT_FOUND', `no workflow ${id}`, { hint: 'see `warren list` for the ids' });
    // Only the holder of the run's lease drives it: a second `warren resume` is refused.
    const lease = await this.takeLease(rec0.id);
    try {
      // Before anything re-runs, what a dead runner left running is stopped (never two
      // copies) — unless the agent can adopt it (cluster mode: jobs outlive a server).
      if (!this.agent.adopt) await this.stopAbandoned(rec0.id, lease);
    } catch (e) {
      await this.store.releaseRunLease(rec0.id, this.owner, lease.term).catch(() => {});
      throw e;
    }
    const user = this.opts.userOf ? await this.opts.userOf(rec0.owner ?? null) : undefined;
    const driver = this.driverFor(rec0.id, lease, hooks, user);
    this.cancelRequested = () => driver.cancel();
    if (this.pendingCancel) driver.cancel();
    const done = driver.run().finally(() => {
      this.cancelRequested = null;
      this.counts = driver.counts();
      return this.store.releaseRunLease(rec0.id, this.owner, lease.term).catch(() => {});
    });
    return { id: rec0.id, done, driver };
  }

  private driverFor(id: string, lease: RunLease, hooks: DriveHooks, user: TaskUser | undefined): RunDriver {
    return new RunDriver({
      store: this.store,
      agent: this.agent,
      workflowId: id,
      lease,
      owner: this.owner,
      ttlMs: this.ttlMs,
      cancelPollMs: this.opts.cancelPollMs,
      hooks,
      ...(user ? { user } : {}),
      ...(this.opts.log ? { log: this.opts.log } : {}),
      ...(this.opts.metrics ? { metrics: this.opts.metrics } : {}),
      ...(this.opts.sites ? { sites: this.opts.sites } : {}),
    });
  }
}
