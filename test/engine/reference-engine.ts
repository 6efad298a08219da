// The engine as it was before task arrays were held as ranges (kept verbatim, as the
// reference the property test in engine.test.ts compares the ranged engine against).
// The workflow state machine. Pure and deterministic: `step(event)` returns the actions
// to carry out; it never reads a clock, touches a file or spawns anything. The I/O shell
// (src/server/orchestrator.ts) feeds it events from agents and timers and carries out
// its actions.
//
// Model: every job (and every volume's ingress, and the workflow's egress) is a *node*
// with one or more *units* (a task array has one unit per task). Dependencies are edges
// between nodes with a condition. A node is released when all its incoming edges are
// satisfied; it is doomed (its units skipped) as soon as one edge can never be.

import type { Dependency, DependencyCondition, JobSpec, Workflow } from '../../src/workflow/types.js';
import {
  TERMINAL,
  type EngineAction,
  type EngineEvent,
  type EngineOptions,
  type UnitKind,
  type UnitSnapshot,
  type UnitState,
  type WorkflowStatus,
} from '../../src/engine/types.js';

interface Unit extends UnitSnapshot {
  node: Node;
  /** Index in node.units. */
  idx: number;
  /** Attempt number at which this run began (resume keeps counting). */
  attemptBase: number;
  retryAt: number | null;
}

interface Edge {
  from: Node;
  to: Node;
  condition: DependencyCondition;
  resolved: boolean;
}

interface Node {
  name: string;
  kind: UnitKind;
  service: boolean;
  spec: JobSpec | null;
  units: Unit[];
  inEdges: Edge[];
  outEdges: Edge[];
  unmet: number;
  released: boolean;
  /** Units of this node that can be launched now, in order (indices into units). */
  readyQ: number[];
  readyHead: number;
  /** Units starting or running. */
  active: number;
  /** Units in a terminal state. */
  finished: number;
  /** Units running (for `running` conditions on services). */
  runningCount: number;
  concurrency: number; // 0 = unlimited
  maxAttempts: number;
  backoffMs: number;
  terminal: boolean;
  outcome: 'succeeded' | 'failed' | 'canceled' | 'skipped' | null;
}

export const EGRESS_KEY = '@egress';
export const ingressKey = (volume: string): string => `@ingress/${volume}`;
export const unitKey = (job: string, task: number | null): string => (task === null ? job : `${job}[${task}]`);

const MAX_BACKOFF_MS = 5 * 60_000;

export class Engine {
  private readonly nodes: Node[] = [];
  private readonly byName = new Map<string, Node>();
  private readonly units = new Map<string, Unit>();
  /** Nodes that may have launchable units, in first-ready order. */
  private readonly launchable = new Set<Node>();
  private readonly waitingRetry = new Set<Unit>();
  private actions: EngineAction[] = [];
  private status: WorkflowStatus = 'pending';
  private canceling = false;
  private cancelReason: string | null = null;
  private stopNew = false;
  private anyFailed = false;
  private nonServiceLeft = 0;
  private nodesLeft = 0;
  private deadline: number | null = null;

  constructor(
    private readonly wf: Workflow,
    private readonly opts: EngineOptions = {},
  ) {
    this.build();
  }

  get workflowStatus(): WorkflowStatus {
    return this.status;
  }

  /** All units in creation order (jobs in file order, tasks in index order). */
  snapshot(): UnitSnapshot[] {
    return [...this.units.values()].map(toSnapshot);
  }

  unit(key: string): UnitSnapshot | undefined {
    const u = this.units.get(key);
    return u ? toSnapshot(u) : undefined;
  }

  /** Feed one event; returns the actions to carry out, in order. */
  step(ev: EngineEvent): EngineAction[] {
    this.actions = [];
    switch (ev.type) {
      case 'start':
        this.onStart(ev.now);
        break;
      case 'launched':
        this.onLaunched(ev.key, ev.attempt, ev.now);
        break;
      case 'exited':
        this.onExited(ev);
        break;
      case 'tick':
        this.onTick(ev.now);
        break;
      case 'cancel':
        this.onCancel(ev.now, ev.reason ?? 'canceled');
        break;
    }
    const out = this.actions;
    this.actions = [];
    return out;
  }

  // ---------------------------------------------------------------- construction

  private build(): void {
    const prev = this.opts.previous;
    const addNode = (name: string, kind: UnitKind, spec: JobSpec | null): Node => {
      const n: Node = {
        name,
        kind,
        service: spec?.service ?? false,
        spec,
        units: [],
        inEdges: [],
        outEdges: [],
        unmet: 0,
        released: false,
        readyQ: [],
        readyHead: 0,
        active: 0,
        finished: 0,
        runningCount: 0,
        concurrency: spec?.taskArray?.concurrency ?? 0,
        maxAttempts: Math.max(1, spec?.policy.attempts ?? 1),
        backoffMs: Math.max(0, (spec?.policy.backoffSec ?? 1) * 1000),
        terminal: false,
        outcome: null,
      };
      const tasks: (number | null)[] = [];
      if (spec?.taskArray) for (let i = spec.taskArray.start; i <= spec.taskArray.end; i++) tasks.push(i);
      else tasks.push(null);
      for (const task of tasks) {
        const key = kind === 'job' ? unitKey(name, task) : name;
        const p = prev?.get(key);
        const done = p?.state === 'succeeded';
        const u: Unit = {
          key,
          kind,
          job: kind === 'ingress' ? name.slice('@ingress/'.length) : name,
          task,
          state: done ? 'succeeded' : 'pending',
          attempt: p?.attempt ?? 0,
          exitCode: done ? p!.exitCode : null,
          reason: done ? p!.reason : null,
          message: done ? p!.message : null,
          startedAt: done ? p!.startedAt : null,
          endedAt: done ? p!.endedAt : null,
          node: n,
          idx: n.units.length,
          attemptBase: p?.attempt ?? 0,
          retryAt: null,
        };
        n.units.push(u);
        this.units.set(key, u);
      }
      this.nodes.push(n);
      this.byName.set(name, n);
      return n;
    };
    const link = (from: Node, to: Node, condition: DependencyCondition): void => {
      const e: Edge = { from, to, condition, resolved: false };
      from.outEdges.push(e);
      to.inEdges.push(e);
      to.unmet++;
    };

    // Ingress nodes first: one per volume that has ingress.
    const ingressOf = new Map<string, Node>();
    for (const v of Object.values(this.wf.volumes)) {
      if (v.ingress.length > 0) ingressOf.set(v.name, addNode(ingressKey(v.name), 'ingress', null));
    }
    for (const spec of Object.values(this.wf.jobs)) addNode(spec.name, 'job', spec);
    for (const spec of Object.values(this.wf.jobs)) {
      const to = this.byName.get(spec.name)!;
      for (const d of spec.requires as Dependency[]) {
        const from = this.byName.get(d.job);
        if (!from) throw new Error(`engine: unknown requirement ${d.job} of ${spec.name} (spec validation should have caught this)`);
        link(from, to, d.condition);
      }
      for (const m of spec.mounts) {
        const ing = ingressOf.get(m.volume);
        if (ing) link(ing, to, 'succeeded');
      }
    }
    if (Object.values(this.wf.volumes).some((v) => v.egress.length > 0)) {
      const eg = addNode(EGRESS_KEY, 'egress', null);
      for (const n of this.nodes) if (n.kind === 'job' && !n.service) link(n, eg, 'succeeded');
    }
    this.nodesLeft = this.nodes.length;
    this.nonServiceLeft = this.nodes.filter((n) => !n.service).length;
  }

  // ---------------------------------------------------------------- events

  private onStart(now: number): void {
    if (this.status !== 'pending') return;
    this.status = 'running';
    if (this.wf.policy.timeoutSec !== undefined) {
      this.deadline = now + this.wf.policy.timeoutSec * 1000;
      this.actions.push({ type: 'timer', at: this.deadline });
    }
    // Nodes finished in an earlier run (resume) resolve their edges first.
    for (const n of this.nodes) {
      n.finished = n.units.filter((u) => TERMINAL.has(u.state)).length;
      if (n.finished === n.units.length) this.finishNode(n);
    }
    for (const n of this.nodes) if (!n.terminal && n.unmet === 0 && !n.released) this.release(n);
    this.dispatchAll();
    this.checkDone();
  }

  private onLaunched(key: string, attempt: number, now: number): void {
    const u = this.units.get(key);
    if (!u || u.attempt !== attempt || u.state !== 'starting') return; // stale
    u.state = 'running';
    u.startedAt = now;
    this.changed(u);
    const n = u.node;
    n.runningCount++;
    if (n.service && n.runningCount === n.units.length) {
      for (const e of n.outEdges) if (e.condition === 'running') this.resolveEdge(e, true);
    }
  }

  private onExited(ev: Extract<EngineEvent, { type: 'exited' }>): void {
    const u = this.units.get(ev.key);
    if (!u || u.attempt !== ev.attempt || (u.state !== 'starting' && u.state !== 'running')) return; // stale
    const n = u.node;
    if (u.state === 'running') n.runningCount--;
    n.active--;
    u.endedAt = ev.now;
    if (u.startedAt === null) u.startedAt = ev.now;
    u.exitCode = ev.exitCode;
    u.reason = ev.reason;
    u.message = ev.message ?? null;
    const ok = ev.reason === 'exit' && ev.exitCode === 0;
    if (ok || (n.service && ev.reason === 'stopped')) {
      u.state = 'succeeded';
      this.unitTerminal(u);
    } else if (this.canceling || ev.reason === 'canceled') {
      u.state = 'canceled';
      this.unitTerminal(u);
    } else if (u.attempt - u.attemptBase < n.maxAttempts && !this.stopNew && !n.service) {
      const tries = u.attempt - u.attemptBase;
      const delay = Math.min(MAX_BACKOFF_MS, n.backoffMs * 2 ** (tries - 1));
      u.state = 'pending';
      u.retryAt = ev.now + delay;
      this.waitingRetry.add(u);
      this.changed(u);
      this.event(u.key, 'warn', `${describe(u)} failed (${exitText(ev)}), retrying in ${(delay / 1000).toFixed(1)}s (attempt ${tries + 1} of ${n.maxAttempts})`);
      this.actions.push({ type: 'timer', at: u.retryAt });
    } else {
      u.state = 'failed';
      this.event(u.key, 'error', `${describe(u)} failed (${exitText(ev)})${ev.message ? `: ${ev.message}` : ''}`);
      this.anyFailed = true;
      if (this.opts.failFast && !this.stopNew) this.haltNew('fail-fast: an earlier job failed');
      this.unitTerminal(u);
    }
    this.dispatch(n);
    this.checkDone();
  }

  private onTick(now: number): void {
    if (this.deadline !== null && now >= this.deadline && !this.canceling && this.status === 'running') {
      this.event(null, 'error', `workflow timeout reached (policy.timeout ${this.wf.policy.timeoutSec}s)`);
      this.anyFailed = true;
      this.onCancel(now, 'timeout');
      return;
    }
    let next = Infinity;
    for (const u of [...this.waitingRetry]) {
      if (u.retryAt !== null && u.retryAt <= now) {
        this.waitingRetry.delete(u);
        u.retryAt = null;
        this.makeReady(u);
      } else if (u.retryAt !== null) next = Math.min(next, u.retryAt);
    }
    if (next !== Infinity) this.actions.push({ type: 'timer', at: next });
    for (const n of this.launchable) this.dispatch(n);
    this.checkDone();
  }

  private onCancel(now: number, reason: string): void {
    if (this.status !== 'running' && this.status !== 'pending') return;
    if (this.canceling) return;
    this.canceling = true;
    this.cancelReason = reason;
    this.status = 'running';
    this.event(null, 'warn', reason === 'timeout' ? 'stopping: workflow timeout' : 'canceling the workflow');
    for (const n of this.nodes) {
      for (const u of n.units) {
        if (u.state === 'starting' || u.state === 'running') {
          this.actions.push({ type: 'kill', key: u.key, reason: reason === 'timeout' ? 'timeout' : 'canceled' });
        } else if (u.state === 'pending' || u.state === 'ready') {
          this.waitingRetry.delete(u);
          u.state = 'canceled';
          u.reason = reason === 'timeout' ? 'timeout' : 'canceled';
          u.endedAt = now;
          this.unitTerminal(u);
        }
      }
    }
    this.checkDone();
  }

  // ---------------------------------------------------------------- transitions

  private release(n: Node): void {
    n.released = true;
    for (let i = 0; i < n.units.length; i++) {
      const u = n.units[i]!;
      if (u.state === 'pending') this.makeReady(u);
    }
  }

  private makeReady(u: Unit): void {
    if (this.canceling || this.stopNew) return;
    u.state = 'ready';
    this.changed(u);
    const n = u.node;
    n.readyQ.push(u.idx);
    this.launchable.add(n);
  }

  private dispatchAll(): void {
    for (const n of this.launchable) this.dispatch(n);
  }

  /** Launch ready units of `n` while its task-array concurrency allows. */
  private dispatch(n: Node): void {
    if (this.canceling || this.stopNew) return;
    while (n.readyHead < n.readyQ.length && (n.concurrency === 0 || n.active < n.concurrency)) {
      const u = n.units[n.readyQ[n.readyHead++]!]!;
      if (u.state !== 'ready') continue;
      u.state = 'starting';
      u.attempt++;
      n.active++;
      this.changed(u);
      this.actions.push({ type: 'launch', key: u.key, kind: u.kind, job: u.job, task: u.task, attempt: u.attempt });
    }
    if (n.readyHead >= n.readyQ.length) {
      n.readyQ.length = 0;
      n.readyHead = 0;
      this.launchable.delete(n);
    }
  }

  private unitTerminal(u: Unit): void {
    this.changed(u);
    const n = u.node;
    n.finished++;
    if (n.finished === n.units.length) this.finishNode(n);
  }

  /** A node has all units terminal: settle its outcome and resolve its outgoing edges. */
  private finishNode(first: Node): void {
    const work: Node[] = [first];
    while (work.length > 0) {
      const n = work.pop()!;
      if (n.terminal) continue;
      n.terminal = true;
      this.nodesLeft--;
      if (!n.service) this.nonServiceLeft--;
      let failed = 0;
      let canceled = 0;
      let skipped = 0;
      for (const u of n.units) {
        if (u.state === 'failed') failed++;
        else if (u.state === 'canceled') canceled++;
        else if (u.state === 'skipped') skipped++;
      }
      n.outcome = failed > 0 ? 'failed' : canceled > 0 ? 'canceled' : skipped === n.units.length ? 'skipped' : 'succeeded';
      for (const e of n.outEdges) {
        if (e.resolved) continue;
        const ok =
          e.condition === 'finished' ||
          (e.condition === 'succeeded' && n.outcome === 'succeeded') ||
          (e.condition === 'failed' && n.outcome === 'failed');
        const doomed = this.resolveEdge(e, ok);
        if (doomed) work.push(e.to);
      }
      if (this.nonServiceLeft === 0) this.stopServices();
    }
  }

  /** Resolve an edge; returns true when its target became doomed and fully skipped. */
  private resolveEdge(e: Edge, ok: boolean): boolean {
    e.resolved = true;
    const to = e.to;
    if (to.terminal) return false;
    if (ok) {
      to.unmet--;
      if (to.unmet === 0 && !to.released) {
        this.release(to);
        this.dispatch(to);
      }
      return false;
    }
    // Can never run: skip every unit that has not started (none has: it was not released).
    const why = `requirement "${e.from.name}" ${e.from.outcome === null ? 'did not start' : e.from.outcome}${e.condition === 'succeeded' ? '' : ` (needed: ${e.condition})`}`;
    let all = true;
    for (const u of to.units) {
      if (TERMINAL.has(u.state)) continue;
      if (u.state === 'starting' || u.state === 'running') {
        all = false;
        continue;
      }
      this.waitingRetry.delete(u);
      u.state = this.canceling ? 'canceled' : 'skipped';
      u.reason = this.canceling ? 'canceled' : 'dependency';
      u.message = why;
      to.finished++;
      this.changed(u);
    }
    if (!this.canceling) this.event(to.name, 'warn', `${to.kind === 'job' ? 'job ' : ''}${to.name} skipped: ${why}`);
    return all && to.finished === to.units.length;
  }

  private haltNew(why: string): void {
    this.stopNew = true;
    for (const n of this.nodes) {
      for (const u of n.units) {
        if (u.state === 'pending' || u.state === 'ready') {
          this.waitingRetry.delete(u);
          u.state = 'skipped';
          u.reason = 'fail-fast';
          u.message = why;
          this.unitTerminal(u);
        }
      }
    }
  }

  private stopServices(): void {
    for (const n of this.nodes) {
      if (!n.service || n.terminal) continue;
      for (const u of n.units) {
        if (u.state === 'starting' || u.state === 'running') this.actions.push({ type: 'kill', key: u.key, reason: 'stop-service' });
        else if (u.state === 'pending' || u.state === 'ready') {
          u.state = 'skipped';
          u.reason = 'not-needed';
          this.unitTerminal(u);
        }
      }
    }
  }

  private checkDone(): void {
    if (this.status !== 'running' || this.nodesLeft > 0) return;
    const status = this.canceling && this.cancelReason !== 'timeout' ? 'canceled' : this.anyFailed ? 'failed' : 'succeeded';
    this.status = status;
    this.actions.push({ type: 'done', status });
  }

  private changed(u: Unit): void {
    this.actions.push({ type: 'changed', unit: toSnapshot(u) });
  }

  private event(key: string | null, level: 'info' | 'warn' | 'error', message: string): void {
    this.actions.push({ type: 'event', key, level, message });
  }
}

function toSnapshot(u: Unit): UnitSnapshot {
  return {
    key: u.key,
    kind: u.kind,
    job: u.job,
    task: u.task,
    state: u.state as UnitState,
    attempt: u.attempt,
    exitCode: u.exitCode,
    reason: u.reason,
    message: u.message,
    startedAt: u.startedAt,
    endedAt: u.endedAt,
  };
}

function describe(u: Unit): string {
  if (u.kind === 'ingress') return `ingress of volume ${u.job}`;
  if (u.kind === 'egress') return 'egress';
  return u.task === null ? `job ${u.job}` : `job ${u.job} task ${u.task}`;
}

function exitText(ev: Extract<EngineEvent, { type: 'exited' }>): string {
  switch (ev.reason) {
    case 'exit':
      return `exit code ${ev.exitCode}`;
    case 'signal':
      return `killed by ${ev.signal ?? 'a signal'}`;
    case 'timeout':
      return 'timed out';
    case 'oom':
      return 'out of memory';
    case 'spawn-error':
      return 'could not start';
    default:
      return ev.reason;
  }
}
