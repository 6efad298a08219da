// The driver of one run: the engine's driving loop, as one class. It owns the run through
// its ownership lease (taken by the caller), feeds the engine events and carries out its
// actions: a launch becomes a node-independent task for an agent (the agent contract), a
// kill goes to the agent that has the attempt, timers go to the injected clock, and every
// change is written behind through a fenced BatchWriter. One table, `attempts`, holds every
// attempt in flight; an agent's report is applied only while its attempt is the unit's
// current one.

import { WarrenError, toLogger, type LogFn, type Logger } from '../common/index.js';
import { Engine, type EngineAction, type NodeCounts, type UnitSnapshot, type WorkflowStatus } from '../engine/index.js';
import { endpointUrl, type Agent, type AttemptExited, type AttemptReady, type AttemptStarted, type ServiceLocation, type TaskAssignment, type TaskUser } from '../agent/index.js';
import type { Workflow } from '../workflow/index.js';
import { BatchWriter, type AttemptRecord, type RunLease, type Store, type WriteBatch } from '../store/index.js';
import type { Placement } from './placement.js';
import type { TransferProgress } from '../data/index.js';
import type { RunMetrics } from './metrics.js';

/** Time and timers, injected so the driver can be driven by a test clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(h: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export interface DriveHooks {
  /** Every unit change, in order. */
  onUnit?: (u: UnitSnapshot) => void;
  onEvent?: (level: 'info' | 'warn' | 'error', key: string | null, message: string) => void;
  onProgress?: (key: string, p: TransferProgress) => void;
}

export interface RunOptions {
  failFast?: boolean;
  /** Cores of the local agent when the run was accepted (shown by `warren status`). */
  agentCores?: number;
  /** Replace every job's command by a sleep of its estimate × this factor (WfFormat replay). */
  simulate?: number;
}

export interface RunDriverOptions {
  store: Store;
  agent: Agent;
  workflowId: string;
  lease: RunLease;
  /** This runner's owner id (host:pid:random), for renewing the lease. */
  owner: string;
  ttlMs: number;
  cancelPollMs?: number;
  clock?: Clock;
  hooks?: DriveHooks;
  /** Who the run's tasks run as (cluster mode: the submitting user's account). */
  user?: TaskUser;
  /** Run across sites: one agent per site, jobs placed (and re-placed) by a plan. */
  sites?: { agents: Map<string, Agent>; placement: Placement };
  /** The server's log: store outages, attempts' starts (debug) and failures, the run's end.
   *  Every line carries the workflowId, and the job (unit key) and attemptId where it concerns one. */
  log?: LogFn;
  /** Told of each unit's wait for a node and each attempt's run time. */
  metrics?: RunMetrics;
}

/** The store cannot be reached now (PostgreSQL down or restarting): wait and retry. */
export function storeUnavailable(e: unknown): boolean {
  return (e as { code?: string })?.code === 'STORE_UNAVAILABLE';
}

/** A store whose every write is fenced by a run lease's term. */
function fencedStore(store: Store, fence: { workflowId: string; term: number }): Store {
  const f = Object.create(store) as Store;
  f.write = (batch: WriteBatch) => store.write({ ...batch, fence: batch.fence ?? fence });
  return f;
}

interface InFlight {
  key: string;
  /** The job (or volume) it is a unit of. */
  job: string;
  kind: string;
  attempt: number;
  /** When it started running (clock ms): its run time is observed at its end. */
  runningAt: number | null;
  agent: Agent;
  node: string;
  stopping: boolean;
  durable: boolean;
  data: boolean;
  /** A service that reported ready, and the address its ports are reached at. */
  ready?: { host: string };
}

export class RunDriver {
  private readonly clock: Clock;
  private readonly store: Store;
  private readonly id: string;
  private readonly fence: { workflowId: string; term: number };
  private readonly hooks: DriveHooks;
  /** The one table of attempts in flight: attempt id -> what it is and where it runs. */
  private readonly attempts = new Map<string, InFlight>();
  /** Unit key -> its current attempt id. */
  private readonly current = new Map<string, string>();
  private readonly timers = new Set<unknown>();
  private engine!: Engine;
  private writer!: BatchWriter;
  private wf!: Workflow;
  private options: RunOptions = {};
  private final: WorkflowStatus | null = null;
  private lost: WarrenError | null = null;
  private stepping = false;
  private window = 64;
  private finished!: (s: WorkflowStatus) => void;
  private failed!: (e: unknown) => void;
  private readonly placedJobs = new Set<string>();
  private cancelAsked = false;
  private started = false;

  /** The engine runs (and every attempt of a previous driver is adopted): reports of this run's
   *  attempts that the driver does not have are stale from now on. */
  get running(): boolean {
    return this.started;
  }
  /** Cluster mode: the node where this run's volumes live (the first unit touching a volume
   *  fixes it; every later one goes there). */
  private dataNode: string | null = null;
  /** Attempts a previous driver dispatched that may still run (adopted, never run twice). */
  private readonly adoptable = new Map<string, AttemptRecord>();
  /** Ready services by unit key (kept apart from the attempts: a launch never walks every attempt). */
  private readonly ready = new Map<string, ServiceLocation>();
  /** The units an earlier run left (resume, adoption): an adopted service that was ready is ready again. */
  private previous = new Map<string, UnitSnapshot>();
  /** Unit key -> since when it waits to run (ready, or handed out), in that order: the first is the oldest. */
  private readonly waitingSince = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: RunDriverOptions) {
    this.clock = opts.clock ?? systemClock;
    this.store = opts.store;
    this.id = opts.workflowId;
    this.fence = { workflowId: opts.workflowId, term: opts.lease.term };
    this.hooks = opts.hooks ?? {};
    this.log = toLogger(opts.log).child({ workflowId: opts.workflowId });
  }

  /** Since when (clock ms) the unit that has waited longest to run waits; null: none waits. */
  oldestWaiting(): number | null {
    for (const t of this.waitingSince.values()) return t;
    return null;
  }

  /** Track each unit's wait to run (ready, or handed out, until running), for the metrics. */
  private waits(u: UnitSnapshot): void {
    const now = this.clock.now();
    if (u.state === 'ready') {
      this.waitingSince.delete(u.key);
      this.waitingSince.set(u.key, now);
    } else if (u.state === 'starting') {
      if (!this.waitingSince.has(u.key)) this.waitingSince.set(u.key, now);
    } else {
      const t = this.waitingSince.get(u.key);
      if (t === undefined) return;
      this.waitingSince.delete(u.key);
      if (u.state === 'running') this.opts.metrics?.queueWait(u.kind, Math.max(0, now - t) / 1000);
    }
  }

  /** Per job, how many units ended in each state (tasks that never started included). */
  counts(): NodeCounts[] {
    return this.engine ? this.engine.counts() : [];
  }

  /** Write what is pending now (the node's reports are acknowledged after this). */
  async flush(): Promise<void> {
    if (this.writer) await this.writer.flush();
  }

  /**
   * Stop driving without touching the jobs or writing anything more: this server is no longer
   * the cluster's leader, and the next one adopts the run's attempts (its takeover of the run
   * lease, a newer term, fences anything of ours still in flight). run() rejects RUN_LEASE_LOST.
   */
  abandon(why: string): void {
    if (this.abandoned || this.final !== null) return;
    this.abandoned = true;
    this.lost ??= new WarrenError('RUN_LEASE_LOST', `stopped driving workflow ${this.id}: ${why}`, {
      hint: `the leader drives it now (see \`warren status ${this.id}\`); its jobs kept running and are adopted there`,
    });
    if (this.failed) this.failed(this.lost);
  }

  private abandoned = false;

  /** Cancel the run (Ctrl-C, `warren cancel`). */
  cancel(): void {
    if (!this.engine) {
      this.cancelAsked = true;
      return;
    }
    if (this.final === null) this.step({ type: 'cancel', now: this.clock.now() });
  }

  private get agents(): Agent[] {
    return this.opts.sites ? [...this.opts.sites.agents.values()] : [this.opts.agent];
  }

  async run(): Promise<WorkflowStatus> {
    const rec = await this.store.getWorkflow(this.id);
    if (!rec) throw new WarrenError('RUN_NOT_FOUND', `no workflow ${this.id}`, { hint: 'see `warren list` for the ids' });
    this.wf = rec.spec;
    this.options = rec.options as RunOptions;
    const prevUnits = await this.store.units(this.id);
    const previous = new Map(prevUnits.map((u) => [u.key, u]));
    this.previous = new Map(previous);
    if (this.opts.agent.adopt) {
      // Cluster mode: what a previous server dispatched may still run on its node. The unit
      // goes back one attempt so that the engine's relaunch *is* that attempt (same id): the
      // driver adopts it instead of dispatching a second copy.
      const rows = await this.store.attempts(this.id);
      const hasRow = new Set(rows.map((a) => `${a.key}\u0000${a.attempt}`));
      // Where the volumes are: the node of the last attempt of a unit that touched one.
      const touches = (key: string): boolean => {
        if (key.startsWith('@')) return true; // ingress and egress units
        const job = this.wf.jobs[key.replace(/\[\d+\]$/, '')];
        return job !== undefined && job.mounts.length > 0;
      };
      const last = rows.filter((a) => a.node && a.startedAt !== null && touches(a.key)).sort((a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0)).pop();
      if (last?.node) this.dataNode = last.node;
      for (const a of rows) {
        if (a.endedAt !== null) continue;
        const u = previous.get(a.key);
        if (u && u.attempt === a.attempt && u.state !== 'succeeded') {
          previous.set(a.key, { ...u, attempt: a.attempt - 1 });
          this.adoptable.set(a.attemptId, a);
        }
      }
      // A unit handed out but never dispatched (its attempt has no row: it waited for a node
      // when the previous server died) did not make that attempt: it is not counted.
      for (const [key, u] of previous) {
        if ((u.state === 'starting' || u.state === 'running') && u.attempt > 0 && !hasRow.has(`${key}\u0000${u.attempt}`)) previous.set(key, { ...u, attempt: u.attempt - 1 });
      }
    }
    this.engine = new Engine(this.wf, { failFast: this.options.failFast, previous });
    this.writer = new BatchWriter(fencedStore(this.store, this.fence), 50, { onError: (e) => this.onWriteError(e) });
    // How many launched job units may wait in the agents' queues: enough to keep every core
    // busy between two events, few enough that memory stays flat for a million tasks.
    this.window = Math.max(64, 4 * this.agents.reduce((n, a) => n + a.info().cores, 0));
    const done = new Promise<WorkflowStatus>((r, j) => {
      this.finished = r;
      this.failed = j;
    });
    const now = this.clock.now();
    this.writer.workflow(this.id, { status: 'running', startedAt: rec.startedAt ?? now, endedAt: null, cancelRequested: false });

    // Abandoned before the promise existed (a leader stepping down while this run started).
    if (this.abandoned) this.failed(this.lost);
    const listener = {
      started: (ev: AttemptStarted) => !this.abandoned && this.onStarted(ev),
      exited: (ev: AttemptExited) => !this.abandoned && this.onExited(ev),
      progress: (attemptId: string, p: TransferProgress) => !this.abandoned && this.onProgress(attemptId, p),
      ready: (ev: AttemptReady) => !this.abandoned && this.onReady(ev),
    };
    // An agent that serves several runs (the cluster pool) routes this workflow's reports here;
    // another has one listener, this run's.
    const unlisten = this.agents.map((a) => (a.listen ? a.listen(this.id, listener) : (a.setListener(listener), () => {})));

    const renew = this.clock.setInterval(() => {
      this.store.renewRunLease(this.id, this.opts.owner, this.fence.term, this.opts.ttlMs, this.clock.now()).then(
        (ok) => {
          if (!ok) this.loseLease('its lease was taken over');
        },
        () => {},
      );
    }, Math.max(50, Math.floor(this.opts.ttlMs / 3)));
    const cancelPoll = this.clock.setInterval(() => {
      this.store.getWorkflow(this.id).then(
        (r) => {
          if (r?.cancelRequested && this.final === null) this.step({ type: 'cancel', now: this.clock.now() });
        },
        () => {},
      );
    }, this.opts.cancelPollMs ?? 500);

    try {
      this.step({ type: 'start', now: this.clock.now() });
      this.started = true;
      if (this.cancelAsked) this.step({ type: 'cancel', now: this.clock.now() });
      return await done;
    } finally {
      this.clock.clearInterval(cancelPoll);
      this.clock.clearInterval(renew);
      for (const u of unlisten) u();
      for (const t of this.timers) this.clock.clearTimeout(t);
      if (this.retrying !== null) this.clock.clearTimeout(this.retrying);
      // The last writes: waited for through an outage of the store (they are the run's end).
      for (let delay = 250; ; delay = Math.min(5000, delay * 2)) {
        try {
          await this.writer.flush();
          break;
        } catch (e) {
          if ((e as WarrenError).code === 'STORE_FENCED') this.loseLease('its lease was taken over');
          if (this.lost) break;
          if (!storeUnavailable(e)) throw e;
          this.onWriteError(e);
          if (this.retrying !== null) this.clock.clearTimeout(this.retrying);
          this.retrying = null;
          await new Promise((r) => this.clock.setTimeout(() => r(undefined), delay));
        }
      }
      // Adopted attempts the engine never relaunched (the run ended first): stop them.
      for (const [attemptId, a] of this.abandoned ? [] : this.adoptable) {
        this.opts.agent.adopt?.(attemptId, a.node);
        this.opts.agent.kill(attemptId, 'canceled');
      }
      if (this.lost) throw this.lost;
    }
  }

  private retrying: unknown = null;
  private outageSince: number | null = null;

  /** A background write failed: fenced -> the run is another's; unavailable -> retry until it is back. */
  private onWriteError(e: unknown): void {
    if (this.abandoned) return;
    if ((e as WarrenError).code === 'STORE_FENCED') {
      this.loseLease('its lease was taken over');
      return;
    }
    if (this.outageSince === null) {
      this.outageSince = this.clock.now();
      this.log('warn', `workflow ${this.id}: cannot write to the store (${(e as Error).message}); retrying every second, nothing is lost`);
    }
    if (this.retrying !== null) return;
    this.retrying = this.clock.setTimeout(() => {
      this.retrying = null;
      this.writer.flush().then(
        () => {
          if (this.outageSince !== null) this.log('info', `workflow ${this.id}: the store is back after ${Math.round((this.clock.now() - this.outageSince) / 1000)} s; its writes are done`);
          this.outageSince = null;
        },
        (e2: unknown) => this.onWriteError(e2),
      );
    }, 1000);
  }

  /** Make an attempt durable, waiting out a store outage (the node hears of it only after). */
  private async durably(rec: AttemptRecord): Promise<void> {
    for (let delay = 250; ; delay = Math.min(5000, delay * 2)) {
      try {
        await this.writer.attemptNow(rec, this.fence);
        return;
      } catch (e) {
        if (!storeUnavailable(e) || this.lost || this.final !== null) throw e;
        this.onWriteError(e);
        await new Promise((r) => this.clock.setTimeout(() => r(undefined), delay));
      }
    }
  }

  private step(ev: Parameters<Engine['step']>[0]): void {
    if (this.abandoned) return;
    this.apply(this.engine.step(ev));
    this.pump();
  }

  /** Pull launches from the engine while the agents have room. */
  private pump(): void {
    if (this.stepping || this.lost || this.final !== null) return;
    this.stepping = true;
    try {
      for (let rounds = 0; rounds < 64; rounds++) {
        let queued = 0;
        for (const a of this.agents) queued += a.load.queued;
        const room = this.window - queued;
        if (room <= 0 || !this.engine.hasLaunchable) break;
        const acts = this.engine.pull(room);
        if (acts.length === 0) break;
        this.apply(acts);
      }
    } finally {
      this.stepping = false;
    }
  }

  private apply(actions: EngineAction[]): void {
    const id = this.id;
    for (const a of actions) {
      switch (a.type) {
        case 'changed':
          this.writer.unit(id, a.unit);
          this.waits(a.unit);
          this.hooks.onUnit?.(a.unit);
          break;
        case 'event':
          this.writer.event({ workflowId: id, at: this.clock.now(), key: a.key, level: a.level, message: a.message });
          this.hooks.onEvent?.(a.level, a.key, a.message);
          break;
        case 'timer': {
          const t = this.clock.setTimeout(() => {
            this.timers.delete(t);
            this.step({ type: 'tick', now: this.clock.now() });
          }, Math.max(0, a.at - this.clock.now()));
          this.timers.add(t);
          break;
        }
        case 'launch':
          this.launch(a);
          break;
        case 'kill': {
          const attemptId = this.current.get(a.key);
          if (!attemptId) break;
          const f = this.attempts.get(attemptId);
          if (!f) break;
          if (a.reason === 'stop-service') f.stopping = true;
          f.agent.kill(attemptId, a.reason === 'timeout' ? 'timeout' : a.reason === 'stop-service' ? 'stop-service' : 'canceled');
          break;
        }
        case 'done':
          this.final = a.status;
          this.waitingSince.clear();
          this.log(a.status === 'succeeded' || a.status === 'canceled' ? 'info' : 'warn', `workflow ${id} ${a.status}`, { status: a.status });
          this.writer.workflow(id, { status: a.status, endedAt: this.clock.now() });
          this.finished(a.status);
          break;
      }
    }
  }

  private launch(a: Extract<EngineAction, { type: 'launch' }>): void {
    const id = this.id;
    const wf = this.wf;
    const attemptId = `${id}/${a.key}/${a.attempt}`;
    const sites = this.opts.sites;
    let agent = this.opts.agent;
    const task: TaskAssignment = {
      attemptId,
      workflowId: id,
      key: a.key,
      attempt: a.attempt,
      kind: a.kind,
      name: a.job,
      task: a.task,
      volumes: [],
      term: this.fence.term,
    };
    if (this.opts.user) task.user = this.opts.user;
    if (wf.policy.requireSigned !== undefined || wf.policy.trustedKeys !== undefined) task.trust = { ...(wf.policy.requireSigned !== undefined ? { requireSigned: wf.policy.requireSigned } : {}), ...(wf.policy.trustedKeys ? { trustedKeys: wf.policy.trustedKeys } : {}) };
    if (this.options.simulate !== undefined) task.simulate = this.options.simulate;
    if (a.kind === 'job') {
      const spec = wf.jobs[a.job]!;
      task.job = spec;
      task.volumes = spec.mounts.map((m) => wf.volumes[m.volume]!).filter((v) => v !== undefined);
      const services = this.readyServices();
      if (services.length) task.services = services;
      if (sites) {
        const site = sites.placement.siteOf(a.key);
        agent = sites.agents.get(site) ?? agent;
        if (this.options.simulate !== undefined) {
          task.sleepSec = (sites.placement.stageInSec(a.key) + (spec.estimateSec ?? 0) / sites.placement.speedOf(site, a.key)) * this.options.simulate;
        }
        if (!this.placedJobs.has(spec.name)) {
          this.placedJobs.add(spec.name);
          this.writer.event({ workflowId: id, at: this.clock.now(), key: a.key, level: 'info', message: `${spec.name} placed at ${site}` });
        }
      }
    } else if (a.kind === 'ingress') {
      task.volumes = [wf.volumes[a.job]!];
    } else {
      task.volumes = Object.values(wf.volumes);
    }
    const touchesVolumes = task.volumes.length > 0;
    if (touchesVolumes && this.opts.agent.adopt && this.dataNode) task.pin = this.dataNode;
    const adopted = this.adoptable.get(attemptId);
    const entry: InFlight = { key: a.key, job: a.job, kind: a.kind, attempt: a.attempt, runningAt: null, agent, node: adopted?.node ?? agent.info().name, stopping: false, durable: adopted !== undefined, data: a.kind !== 'job' };
    this.attempts.set(attemptId, entry);
    this.current.set(a.key, attemptId);
    if (adopted && agent.adopt) {
      this.adoptable.delete(attemptId);
      // It waited and started under a previous server: neither is this one's to measure.
      this.waitingSince.delete(a.key);
      entry.runningAt = adopted.startedAt ?? this.clock.now();
      this.log('debug', `adopted attempt ${a.attempt} of ${a.key} on ${adopted.node ?? 'its node'}`, { job: a.key, attemptId, node: adopted.node ?? undefined });
      agent.adopt(attemptId, adopted.node, task, { pid: adopted.pid ?? null });
      this.writer.event({ workflowId: id, at: this.clock.now(), key: a.key, level: 'info', message: `adopted attempt ${a.attempt} of ${a.key} on ${adopted.node ?? 'its node'} (dispatched by a previous server)` });
      queueMicrotask(() => {
        this.onStarted({ attemptId, node: adopted.node ?? undefined, pid: adopted.pid ?? null, cgroup: adopted.cgroup, at: this.clock.now() });
        // A service that was ready under the previous server is ready still (its probe passed once).
        if (this.previous.get(a.key)?.reason === 'ready' && this.previous.get(a.key)?.attempt === a.attempt) this.onReady({ attemptId, at: this.clock.now() });
      });
      return;
    }
    const base = this.attemptRow(attemptId, entry);
    if (a.kind === 'job') {
      // The attempt is durable (id, node, pid, cgroup, term) before its command runs: the
      // agent holds the exec (or, remote, the dispatch) until this resolves.
      agent.submit(task, {
        durable: (info) => {
          entry.durable = true;
          if (info.node) entry.node = info.node;
          return this.durably({ ...base, node: entry.node, startedAt: this.clock.now(), pid: info.pid, cgroup: info.cgroup });
        },
      });
    } else {
      this.writer.attempt(base);
      agent.submit(task);
    }
  }

  private attemptRow(attemptId: string, f: InFlight): AttemptRecord {
    return { workflowId: this.id, key: f.key, attempt: f.attempt, attemptId, term: this.fence.term, cgroup: null, node: f.node, startedAt: null, endedAt: null, exitCode: null, signal: null, reason: null, message: null };
  }

  private onProgress(attemptId: string, p: TransferProgress): void {
    const f = this.attempts.get(attemptId);
    if (!f) return;
    // A download waiting on another process's lock is said in the live view and recorded as
    // an event, so `warren status` shows it too.
    if (p.kind === 'waiting-lock' && p.lock) {
      const who = p.lock.pid > 0 ? `process ${p.lock.pid} on ${p.lock.host}` : 'another process';
      const message = `waiting ${Math.round(p.lock.waitedMs / 1000)} s for ${p.uri}: ${who} is downloading it (lock ${p.lock.path})`;
      this.writer.event({ workflowId: this.id, at: this.clock.now(), key: f.key, level: 'warn', message });
      this.hooks.onEvent?.('warn', f.key, message);
    } else this.hooks.onProgress?.(f.key, p);
  }

  private onStarted(ev: AttemptStarted): void {
    const f = this.attempts.get(ev.attemptId);
    if (!f || this.current.get(f.key) !== ev.attemptId) return;
    if (ev.node) f.node = ev.node;
    if (f.runningAt === null) {
      f.runningAt = this.clock.now();
      if (this.log.enabled('debug')) this.log('debug', `${f.key} attempt ${f.attempt} started on ${f.node}`, { job: f.key, attemptId: ev.attemptId, node: f.node, pid: ev.pid ?? undefined });
    }
    // A runtime that does not hold the exec (data units): record it now.
    if (!f.durable) this.writer.attempt({ ...this.attemptRow(ev.attemptId, f), startedAt: this.clock.now(), pid: ev.pid });
    // A remote attempt was durable at dispatch: its pid says it reached the node and started.
    else if (ev.pid !== null && ev.node) this.writer.attempt({ ...this.attemptRow(ev.attemptId, f), pid: ev.pid });
    if (this.opts.sites && !f.data) this.opts.sites.placement.started(f.key, this.clock.now());
    // A service without a readiness probe is ready when it started: known before the jobs that need it are launched.
    const spec = f.data ? undefined : this.wf.jobs[f.job];
    if (spec?.service && !spec.serviceSpec?.probe && !f.ready) this.markReady(f, undefined, undefined);
    this.step({ type: 'launched', key: f.key, attempt: f.attempt, now: this.clock.now() });
  }

  /** The workflow's services that are ready now, and where (a job's variables and NAME.svc). */
  private readyServices(): ServiceLocation[] {
    return [...this.ready.values()];
  }

  /** A service is ready: its readiness probe passed (or it started, without one). */
  private onReady(ev: AttemptReady): void {
    const f = this.attempts.get(ev.attemptId);
    if (!f || this.current.get(f.key) !== ev.attemptId || f.ready) return;
    const spec = this.wf.jobs[f.job];
    if (!spec?.service) return;
    this.markReady(f, ev.host, ev.message);
    this.step({ type: 'ready', key: f.key, attempt: f.attempt, now: this.clock.now(), ...(ev.message ? { message: ev.message } : {}) });
  }

  /** Record a service ready (where its ports are) and say so, with its endpoints. */
  private markReady(f: InFlight, reportedHost: string | undefined, detail: string | undefined): void {
    const spec = this.wf.jobs[f.job]!;
    // Where its ports are: what its agent says; else its node's address (a pool of nodes), else this machine.
    const host = reportedHost ?? this.opts.agent.addressOf?.(f.node) ?? (this.opts.agent.addressOf ? f.node : '127.0.0.1');
    f.ready = { host };
    this.ready.set(f.key, { name: spec.name, host, node: f.node, spec: spec.serviceSpec ?? { ports: [], endpoints: [], persist: false } });
    const s = spec.serviceSpec;
    const where: string[] = [];
    for (const e of s?.endpoints ?? []) {
      const url = endpointUrl(spec.name, s!, e, host);
      if (url) where.push(`endpoint ${e.name} ${url}`);
    }
    if (where.length === 0) for (const p of s?.ports ?? []) where.push(`port ${p.name} ${host.includes(':') ? `[${host}]` : host}:${p.port}`);
    const message = `service ${f.key} is ready${where.length ? `: ${where.join(', ')}` : ''}${detail ? ` (${detail})` : ''}`;
    this.writer.event({ workflowId: this.id, at: this.clock.now(), key: f.key, level: 'info', message });
    this.hooks.onEvent?.('info', f.key, message);
  }

  /** A unit's end, by its attempt id: applied only while that attempt is the unit's current one. */
  private onExited(ev: AttemptExited): void {
    const f = this.attempts.get(ev.attemptId);
    if (!f) return;
    this.attempts.delete(ev.attemptId);
    if (f.ready) this.ready.delete(f.key);
    const isCurrent = this.current.get(f.key) === ev.attemptId;
    if (isCurrent) this.current.delete(f.key);
    if (this.lost) {
      if (this.attempts.size === 0) this.failed(this.lost);
      return;
    }
    const now = this.clock.now();
    if (!isCurrent) {
      // A stale copy (replaced meanwhile): its row is ended, the engine never hears of it.
      this.writer.attempt({ ...this.attemptRow(ev.attemptId, f), endedAt: now, exitCode: ev.exitCode, signal: ev.signal, reason: 'stale', message: ev.message ?? null });
      return;
    }
    const sites = this.opts.sites;
    if (sites && !f.data && ev.reason === 'exit' && ev.exitCode === 0) {
      const replanned = sites.placement.ended(f.key, now);
      if (replanned) {
        this.writer.event({ workflowId: this.id, at: now, key: f.key, level: 'info', message: replanned });
        this.hooks.onEvent?.('info', f.key, replanned);
      }
    }
    const reason = f.stopping ? 'stopped' : ev.reason;
    const result = reason === 'exit' && ev.exitCode === 0 ? 'succeeded' : reason === 'canceled' || reason === 'stopped' ? 'canceled' : 'failed';
    if (f.runningAt !== null) this.opts.metrics?.runTime(f.kind, result, Math.max(0, now - f.runningAt) / 1000);
    if (result === 'failed' ? this.log.enabled('info') : this.log.enabled('debug')) {
      const fields = { job: f.key, attemptId: ev.attemptId, node: f.node, reason, exitCode: ev.exitCode ?? undefined, signal: ev.signal ?? undefined };
      if (result === 'failed') this.log('info', `${f.key} attempt ${f.attempt} failed on ${f.node}: ${reason}${ev.exitCode !== null ? ` (exit code ${ev.exitCode})` : ''}${ev.message ? `: ${ev.message}` : ''}`, fields);
      else this.log('debug', `${f.key} attempt ${f.attempt} ${result === 'succeeded' ? 'succeeded' : 'ended'} on ${f.node}`, fields);
    }
    this.writer.attempt({ ...this.attemptRow(ev.attemptId, f), endedAt: now, exitCode: ev.exitCode, signal: ev.signal, reason, message: ev.message ?? null });
    this.step({ type: 'exited', key: f.key, attempt: f.attempt, now, exitCode: ev.exitCode, signal: ev.signal, reason, message: ev.message });
  }

  /** The lease is gone (another runner took the run over): launch nothing more, stop ours, fail. */
  private loseLease(why: string): void {
    if (this.lost || this.final !== null) return;
    this.lost = new WarrenError('RUN_LEASE_LOST', `lost the lease on workflow ${this.id}: ${why}; stopped its jobs here`, {
      hint: `another runner drives it now (see \`warren status ${this.id}\`); nothing was lost: what did not finish here runs there`,
    });
    for (const [attemptId, f] of this.attempts) f.agent.kill(attemptId, 'canceled');
    if (this.attempts.size === 0) this.failed(this.lost);
  }
}
