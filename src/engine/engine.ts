// The workflow state machine. Pure and deterministic: `step(event)` returns the actions
// to carry out; it never reads a clock, touches a file or spawns anything. The I/O shell
// (src/server/orchestrator.ts) feeds it events from agents and timers and carries out
// its actions.
//
// Model: every job (and every volume's ingress, and the workflow's egress) is a *node*
// with one or more *units* (a task array has one unit per task). Dependencies are edges
// between nodes with a condition. A node is released when all its incoming edges are
// satisfied; it is doomed (its units skipped) as soon as one edge can never be.
//
// Scale: the work per event does not depend on the number of tasks. A task array is held
// as a range: a task that has never started has no Unit object (it is *implied* pending)
// until it is handed out; counts per node are kept incrementally; ready work sits in
// per-node queues; and launches are *pulled* (`pull(max)`) by the I/O shell as its agents
// have room, so a million-task array never produces a million actions at once. A task
// that succeeded is dropped from memory (only counted) unless `retainFinished` is set.

import type { Dependency, DependencyCondition, JobSpec, Workflow } from '../workflow/types.js';
import {
  TERMINAL,
  type EngineAction,
  type EngineEvent,
  type EngineOptions,
  type UnitKind,
  type UnitSnapshot,
  type UnitState,
  type WorkflowStatus,
} from './types.js';

interface Unit extends UnitSnapshot {
  node: Node;
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
  /** The unit of a node that is not a task array. */
  single: Unit | null;
  /** Materialized tasks of a task array (started at least once, or left by an earlier run), by index. */
  tasks: Map<number, Unit>;
  /** Task range (inclusive) of a task array. */
  start: number;
  end: number;
  total: number;
  /** Next task index that may be implied (never materialized). */
  cursor: number;
  /** On resume: which tasks (index - start) an earlier run left rows for; the cursor skips them. */
  seen: Uint8Array | null;
  /** Tasks never materialized and not yet resolved: implied pending. */
  implied: number;
  /** How tasks that never started ended (skipped, canceled), with how many. */
  impliedEnd: { state: 'skipped' | 'canceled'; reason: string; message: string | null; count: number } | null;
  inEdges: Edge[];
  outEdges: Edge[];
  unmet: number;
  released: boolean;
  /** Materialized units that can be launched now, in order. */
  readyQ: Unit[];
  readyHead: number;
  /** Units starting or running. */
  active: number;
  /** Units in a terminal state (implied ones included). */
  finished: number;
  failed: number;
  canceled: number;
  skipped: number;
  /** Units running (for `running` conditions on services). */
  runningCount: number;
  /** A service with a readiness probe: RUNNING (for `running` conditions) once the probe passed. */
  probe: boolean;
  /** A service that keeps running when no job needs it any more (`persist`, or every service
   *  of a workflow made only of services): until the workflow is canceled or times out. */
  persist: boolean;
  /** Service units that are ready (probe passed, or started without a probe). */
  readyCount: number;
  concurrency: number; // 0 = unlimited
  maxAttempts: number;
  backoffMs: number;
  terminal: boolean;
  outcome: 'succeeded' | 'failed' | 'canceled' | 'skipped' | null;
}

/** Per-job counts of unit states, implied tasks included (for status and the live view). */
export interface NodeCounts {
  name: string;
  kind: UnitKind;
  total: number;
  counts: Record<UnitState, number>;
}

export const EGRESS_KEY = '@egress';
export const ingressKey = (volume: string): string => `@ingress/${volume}`;
export const unitKey = (job: string, task: number | null): string => (task === null ? job : `${job}[${task}]`);

const MAX_BACKOFF_MS = 5 * 60_000;

/** Min-heap of units waiting for their retry's backoff, by retryAt (stale entries skipped). */
class RetryHeap {
  private readonly h: Unit[] = [];
  get size(): number {
    return this.h.length;
  }
  push(u: Unit): void {
    const h = this.h;
    h.push(u);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.retryAt! <= h[i]!.retryAt!) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  /** The earliest live entry, dropping stale ones. */
  peek(): Unit | undefined {
    while (this.h.length > 0 && (this.h[0]!.retryAt === null || this.h[0]!.state !== 'pending')) this.pop();
    return this.h[0];
  }
  pop(): Unit | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.retryAt! < h[m]!.retryAt!) m = l;
        if (r < h.length && h[r]!.retryAt! < h[m]!.retryAt!) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

export class Engine {
  private readonly nodes: Node[] = [];
  private readonly byName = new Map<string, Node>();
  /** Live units by key (single units always; array tasks while materialized). */
  private readonly units = new Map<string, Unit>();
  /** Nodes that may have launchable units, in first-ready order. */
  private readonly launchable = new Set<Node>();
  private readonly retries = new RetryHeap();
  private actions: EngineAction[] = [];
  private status: WorkflowStatus = 'pending';
  private canceling = false;
  private cancelReason: string | null = null;
  private stopNew = false;
  private anyFailed = false;
  private nonServiceLeft = 0;
  private nodesLeft = 0;
  /** The timeout reached a workflow where only persistent services were left: they are being stopped. */
  private endingServices = false;
  private deadline: number | null = null;
  private readonly retain: boolean;

  constructor(
    private readonly wf: Workflow,
    private readonly opts: EngineOptions = {},
  ) {
    this.retain = opts.retainFinished === true;
    this.build();
  }

  get workflowStatus(): WorkflowStatus {
    return this.status;
  }

  /** The materialized units in creation order (jobs in file order, tasks in index order).
   *  Tasks of an array that never started are not included (see `counts()`). */
  snapshot(): UnitSnapshot[] {
    const out: UnitSnapshot[] = [];
    for (const n of this.nodes) {
      if (n.single) out.push(toSnapshot(n.single));
      else for (const t of [...n.tasks.keys()].sort((a, b) => a - b)) out.push(toSnapshot(n.tasks.get(t)!));
    }
    return out;
  }

  /** Per job: how many units are in each state, tasks that never started included. */
  counts(): NodeCounts[] {
    return this.nodes.map((n) => {
      const counts: Record<UnitState, number> = { pending: 0, ready: 0, starting: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, skipped: 0 };
      const us = n.single ? [n.single] : n.tasks.values();
      let seen = 0;
      for (const u of us) {
        counts[u.state]++;
        seen++;
      }
      counts.pending += n.implied;
      if (n.impliedEnd) counts[n.impliedEnd.state] += n.impliedEnd.count;
      // Dropped (succeeded, not retained) tasks: whatever is left.
      counts.succeeded += n.total - seen - n.implied - (n.impliedEnd?.count ?? 0);
      return { name: n.name, kind: n.kind, total: n.total, counts };
    });
  }

  unit(key: string): UnitSnapshot | undefined {
    const u = this.units.get(key);
    return u ? toSnapshot(u) : undefined;
  }

  /** Feed one event; returns the actions to carry out, in order. Launches are not among
   *  them: ask for them with `pull()`. */
  step(ev: EngineEvent): EngineAction[] {
    this.actions = [];
    switch (ev.type) {
      case 'start':
        this.onStart(ev.now);
        break;
      case 'launched':
        this.onLaunched(ev.key, ev.attempt, ev.now);
        break;
      case 'ready':
        this.onReady(ev.key, ev.attempt, ev.now, ev.message);
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
    return this.take();
  }

  /** Hand out up to `max` units to run now (a `changed` and a `launch` action each), in the
   *  order they became ready, honouring each task array's concurrency. */
  pull(max: number): EngineAction[] {
    this.actions = [];
    if (!this.canceling && !this.stopNew && this.status === 'running') {
      let left = max;
      for (const n of this.launchable) {
        if (left <= 0) break;
        left -= this.dispatch(n, left);
      }
    }
    return this.take();
  }

  /** Is there work that `pull()` would hand out now? */
  get hasLaunchable(): boolean {
    if (this.canceling || this.stopNew || this.status !== 'running') return false;
    for (const n of this.launchable) if (n.concurrency === 0 || n.active < n.concurrency) return true;
    return false;
  }

  private take(): EngineAction[] {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  // ---------------------------------------------------------------- construction

  private newUnit(n: Node, task: number | null, p: UnitSnapshot | undefined): Unit {
    // A service is never kept from an earlier run (resume): the jobs that need it need it running.
    const done = p?.state === 'succeeded' && !n.service;
    return {
      key: n.kind === 'job' ? unitKey(n.name, task) : n.name,
      kind: n.kind,
      job: n.kind === 'ingress' ? n.name.slice('@ingress/'.length) : n.name,
      task,
      state: done ? 'succeeded' : 'pending',
      attempt: p?.attempt ?? 0,
      exitCode: done ? p!.exitCode : null,
      reason: done ? p!.reason : null,
      message: done ? p!.message : null,
      startedAt: done ? p!.startedAt : null,
      endedAt: done ? p!.endedAt : null,
      node: n,
      attemptBase: p?.attempt ?? 0,
      retryAt: null,
    };
  }

  private build(): void {
    const prev = this.opts.previous;
    const addNode = (name: string, kind: UnitKind, spec: JobSpec | null): Node => {
      const ta = spec?.taskArray;
      const n: Node = {
        name,
        kind,
        service: spec?.service ?? false,
        spec,
        single: null,
        tasks: new Map(),
        start: ta ? ta.start : 0,
        end: ta ? ta.end : 0,
        total: ta ? Math.max(0, ta.end - ta.start + 1) : 1,
        cursor: ta ? ta.start : 0,
        seen: null,
        implied: 0,
        impliedEnd: null,
        inEdges: [],
        outEdges: [],
        unmet: 0,
        released: false,
        readyQ: [],
        readyHead: 0,
        active: 0,
        finished: 0,
        failed: 0,
        canceled: 0,
        skipped: 0,
        runningCount: 0,
        probe: spec?.service === true && spec.serviceSpec?.probe !== undefined,
        persist: spec?.service === true && spec.serviceSpec?.persist === true,
        readyCount: 0,
        concurrency: ta?.concurrency ?? 0,
        maxAttempts: Math.max(1, spec?.policy.attempts ?? 1),
        backoffMs: Math.max(0, (spec?.policy.backoffSec ?? 1) * 1000),
        terminal: false,
        outcome: null,
      };
      if (!ta) {
        const u = this.newUnit(n, null, prev?.get(kind === 'job' ? name : name));
        n.single = u;
        this.units.set(u.key, u);
        if (u.state === 'succeeded') n.finished++;
      } else n.implied = n.total;
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
    // Tasks of arrays that an earlier run left rows for (resume): materialize exactly those.
    if (prev) {
      for (const p of prev.values()) {
        if (p.kind !== 'job' || p.task === null) continue;
        const n = this.byName.get(p.job);
        if (!n || n.single || p.task < n.start || p.task > n.end) continue;
        const bit = p.task - n.start;
        n.seen ??= new Uint8Array((n.total >> 3) + 1);
        if (n.seen[bit >> 3]! & (1 << (bit & 7))) continue;
        n.seen[bit >> 3]! |= 1 << (bit & 7);
        const u = this.newUnit(n, p.task, p);
        n.implied--;
        if (u.state === 'succeeded') {
          n.finished++;
          if (!this.retain) continue; // counted; nothing more to know about it
        }
        n.tasks.set(p.task, u);
        this.units.set(u.key, u);
      }
    }
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
    // A workflow made only of services runs until it is canceled or its timeout passes.
    if (!this.nodes.some((n) => n.kind === 'job' && !n.service)) for (const n of this.nodes) if (n.service) n.persist = true;
  }

  /** Give the next implied task of `n` a Unit (it is about to start). */
  private materialize(n: Node): Unit {
    const seen = n.seen;
    if (seen) while (seen[(n.cursor - n.start) >> 3]! & (1 << ((n.cursor - n.start) & 7))) n.cursor++;
    const task = n.cursor++;
    const u = this.newUnit(n, task, undefined);
    u.state = 'ready';
    n.implied--;
    n.tasks.set(task, u);
    this.units.set(u.key, u);
    return u;
  }

  /** A materialized task that reached a terminal state and will never change again. */
  private forget(u: Unit): void {
    if (this.retain || u.node.single || u.state !== 'succeeded') return;
    u.node.tasks.delete(u.task!);
    this.units.delete(u.key);
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
    for (const n of this.nodes) if (n.finished === n.total) this.finishNode(n);
    for (const n of this.nodes) if (!n.terminal && n.unmet === 0 && !n.released) this.release(n);
    this.checkDone();
  }

  private onLaunched(key: string, attempt: number, now: number): void {
    const u = this.units.get(key);
    if (!u || u.attempt !== attempt || u.state !== 'starting') return; // stale
    u.state = 'running';
    u.startedAt = now;
    const n = u.node;
    // A service without a readiness probe is ready when it started.
    if (n.service && !n.probe) u.reason = 'ready';
    this.changed(u);
    n.runningCount++;
    if (n.service && !n.probe) this.serviceReady(n);
  }

  private onReady(key: string, attempt: number, now: number, message: string | undefined): void {
    let u = this.units.get(key);
    if (!u || u.attempt !== attempt || !u.node.service) return;
    if (u.state === 'starting') {
      // Its start report was overtaken (it cannot be ready before it runs): it runs.
      this.onLaunched(key, attempt, now);
      u = this.units.get(key);
      if (!u) return;
    }
    if (u.state !== 'running' || u.reason === 'ready') return; // stale, or no probe (ready already)
    u.reason = 'ready';
    u.message = message ?? null;
    this.changed(u);
    this.serviceReady(u.node);
  }

  /** One more unit of a service is ready: once all are, jobs that need it RUNNING may start. */
  private serviceReady(n: Node): void {
    n.readyCount++;
    if (n.readyCount === n.total) {
      for (const e of n.outEdges) if (e.condition === 'running' && !e.resolved) this.resolveEdge(e, true);
    }
  }

  private onExited(ev: Extract<EngineEvent, { type: 'exited' }>): void {
    const u = this.units.get(ev.key);
    if (!u || u.attempt !== ev.attempt || (u.state !== 'starting' && u.state !== 'running')) return; // stale
    const n = u.node;
    if (u.state === 'running') n.runningCount--;
    if (n.service && u.state === 'running' && u.reason === 'ready') n.readyCount--;
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
      this.retries.push(u);
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
    this.checkDone();
  }

  private onTick(now: number): void {
    if (this.deadline !== null && now >= this.deadline && !this.canceling && this.status === 'running') {
      if (this.nonServiceLeft === 0 && !this.endingServices) {
        // Only services that persist are left (a workflow of services, or `persist: true`):
        // the timeout is their planned end, not a failure.
        this.endingServices = true;
        this.event(null, 'info', `workflow timeout reached (policy.timeout ${this.wf.policy.timeoutSec}s): stopping its services (their planned end)`);
        this.stopServices(true);
        this.checkDone();
        return;
      }
      if (this.endingServices) return;
      this.event(null, 'error', `workflow timeout reached (policy.timeout ${this.wf.policy.timeoutSec}s)`);
      this.anyFailed = true;
      this.onCancel(now, 'timeout');
      return;
    }
    for (let u = this.retries.peek(); u && u.retryAt! <= now; u = this.retries.peek()) {
      this.retries.pop();
      u.retryAt = null;
      this.makeReady(u);
    }
    const next = this.retries.peek();
    if (next) this.actions.push({ type: 'timer', at: next.retryAt! });
    this.checkDone();
  }

  private onCancel(now: number, reason: string): void {
    if (this.status !== 'running' && this.status !== 'pending') return;
    if (this.canceling) return;
    this.canceling = true;
    this.cancelReason = reason;
    this.status = 'running';
    this.event(null, 'warn', reason === 'timeout' ? 'stopping: workflow timeout' : 'canceling the workflow');
    const why = reason === 'timeout' ? 'timeout' : 'canceled';
    for (const n of this.nodes) {
      for (const u of this.live(n)) {
        if (u.state === 'starting' || u.state === 'running') {
          this.actions.push({ type: 'kill', key: u.key, reason: reason === 'timeout' ? 'timeout' : 'canceled' });
        } else if (u.state === 'pending' || u.state === 'ready') {
          u.retryAt = null;
          u.state = 'canceled';
          u.reason = why;
          u.endedAt = now;
          this.unitTerminal(u);
        }
      }
      this.resolveImplied(n, 'canceled', why, null);
    }
    this.checkDone();
  }

  // ---------------------------------------------------------------- transitions

  /** The materialized units of a node (a copy: callers change the map). */
  private live(n: Node): Unit[] {
    return n.single ? [n.single] : [...n.tasks.values()];
  }

  private release(n: Node): void {
    n.released = true;
    for (const u of this.live(n)) if (u.state === 'pending' && u.retryAt === null) this.makeReady(u);
    if (n.implied > 0 && !this.canceling && !this.stopNew) this.launchable.add(n);
  }

  private makeReady(u: Unit): void {
    if (this.canceling || this.stopNew) return;
    u.state = 'ready';
    this.changed(u);
    const n = u.node;
    n.readyQ.push(u);
    this.launchable.add(n);
  }

  /** Launch up to `max` ready units of `n` while its task-array concurrency allows; returns how many. */
  private dispatch(n: Node, max: number): number {
    let k = 0;
    while (k < max && (n.concurrency === 0 || n.active < n.concurrency)) {
      let u: Unit;
      if (n.readyHead < n.readyQ.length) {
        u = n.readyQ[n.readyHead++]!;
        if (u.state !== 'ready') continue;
      } else if (n.released && n.implied > 0) {
        u = this.materialize(n);
      } else break;
      u.state = 'starting';
      u.attempt++;
      n.active++;
      k++;
      this.changed(u);
      this.actions.push({ type: 'launch', key: u.key, kind: u.kind, job: u.job, task: u.task, attempt: u.attempt });
    }
    if (n.readyHead >= n.readyQ.length) {
      n.readyQ.length = 0;
      n.readyHead = 0;
      if (!(n.released && n.implied > 0)) this.launchable.delete(n);
    }
    return k;
  }

  /** Tasks of `n` that never started end without a Unit: counted as `state`. */
  private resolveImplied(n: Node, state: 'skipped' | 'canceled', reason: string, message: string | null): void {
    if (n.implied === 0) return;
    const count = n.implied;
    n.implied = 0;
    if (n.impliedEnd) n.impliedEnd.count += count;
    else n.impliedEnd = { state, reason, message, count };
    if (state === 'skipped') n.skipped += count;
    else n.canceled += count;
    this.launchable.delete(n);
    n.finished += count;
    if (n.finished === n.total) this.finishNode(n);
  }

  private unitTerminal(u: Unit): void {
    this.changed(u);
    const n = u.node;
    if (u.state === 'failed') n.failed++;
    else if (u.state === 'canceled') n.canceled++;
    else if (u.state === 'skipped') n.skipped++;
    n.finished++;
    this.forget(u);
    if (n.finished === n.total) this.finishNode(n);
  }

  /** A node has all units terminal: settle its outcome and resolve its outgoing edges. */
  private finishNode(first: Node): void {
    const work: Node[] = [first];
    while (work.length > 0) {
      const n = work.pop()!;
      if (n.terminal) continue;
      n.terminal = true;
      this.launchable.delete(n);
      this.nodesLeft--;
      if (!n.service) this.nonServiceLeft--;
      n.outcome = n.failed > 0 ? 'failed' : n.canceled > 0 ? 'canceled' : n.skipped === n.total ? 'skipped' : 'succeeded';
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
      if (to.unmet === 0 && !to.released) this.release(to);
      return false;
    }
    // Can never run: skip every unit that has not started (none has: it was not released).
    const why = `requirement "${e.from.name}" ${e.from.outcome === null ? 'did not start' : e.from.outcome}${e.condition === 'succeeded' ? '' : ` (needed: ${e.condition})`}`;
    let all = true;
    for (const u of this.live(to)) {
      if (TERMINAL.has(u.state)) continue;
      if (u.state === 'starting' || u.state === 'running') {
        all = false;
        continue;
      }
      u.retryAt = null;
      u.state = this.canceling ? 'canceled' : 'skipped';
      u.reason = this.canceling ? 'canceled' : 'dependency';
      u.message = why;
      if (u.state === 'skipped') to.skipped++;
      else to.canceled++;
      to.finished++;
      this.changed(u);
    }
    if (to.implied > 0) {
      const count = to.implied;
      to.implied = 0;
      const state = this.canceling ? 'canceled' : 'skipped';
      if (to.impliedEnd) to.impliedEnd.count += count;
      else to.impliedEnd = { state, reason: this.canceling ? 'canceled' : 'dependency', message: why, count };
      if (state === 'skipped') to.skipped += count;
      else to.canceled += count;
      to.finished += count;
    }
    this.launchable.delete(to);
    if (!this.canceling) this.event(to.name, 'warn', `${to.kind === 'job' ? 'job ' : ''}${to.name} skipped: ${why}`);
    return all && to.finished === to.total;
  }

  private haltNew(why: string): void {
    this.stopNew = true;
    for (const n of this.nodes) {
      for (const u of this.live(n)) {
        if (u.state === 'pending' || u.state === 'ready') {
          u.retryAt = null;
          u.state = 'skipped';
          u.reason = 'fail-fast';
          u.message = why;
          this.unitTerminal(u);
        }
      }
      this.resolveImplied(n, 'skipped', 'fail-fast', why);
    }
  }

  /** Stop the services no job needs any more (`all`: the persistent ones too). */
  private stopServices(all = false): void {
    for (const n of this.nodes) {
      if (!n.service || n.terminal || (n.persist && !all)) continue;
      for (const u of this.live(n)) {
        if (u.state === 'starting' || u.state === 'running') this.actions.push({ type: 'kill', key: u.key, reason: 'stop-service' });
        else if (u.state === 'pending' || u.state === 'ready') {
          u.retryAt = null;
          u.state = 'skipped';
          u.reason = 'not-needed';
          this.unitTerminal(u);
        }
      }
      this.resolveImplied(n, 'skipped', 'not-needed', null);
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
  const what = u.node.service ? 'service' : 'job';
  return u.task === null ? `${what} ${u.job}` : `${what} ${u.job} task ${u.task}`;
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
    case 'not-ready':
      return 'never ready';
    default:
      return ev.reason;
  }
}
