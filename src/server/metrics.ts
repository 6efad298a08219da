// The server's Prometheus metrics (GET /metrics, docs/metrics.md): one prom-client registry
// per server, the same object through every leader side this server builds, so counters
// never go back. Three kinds of sources:
//
//   - observed at the moment of a transition (never by scanning): HTTP requests, store
//     calls (the store is wrapped once, instrumentStore), a unit's wait for a node and its
//     run time (the run driver), dispatch latency (the cluster pool), heartbeats and the
//     ones missed (the node registry);
//   - read live at the scrape, in memory: the leadership (role, term), the agents by state
//     (the leader's registry), the runs driven here;
//   - counted by the store (StoreCounts): units by state, workflows by status (and the nodes
//     on a follower, which has no registry), one grouped query refreshed in the background
//     every few seconds (at most 1/10 of the time: a slow query is asked for less often). A
//     scrape never waits on the store: it answers what the last refresh counted, with its age.

import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TokenStore } from '../mesh/index.js';
import type { Store, StoreStats } from '../store/index.js';

export const UNIT_STATES = ['pending', 'ready', 'starting', 'running', 'succeeded', 'failed', 'canceled', 'skipped'] as const;
export const WORKFLOW_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'canceled'] as const;
export const AGENT_STATES = ['ready', 'down', 'lost', 'revoked'] as const;

/** Nodes by state, and how many (not revoked) are drained. */
export interface AgentCounts {
  ready: number;
  down: number;
  lost: number;
  revoked: number;
  drained: number;
  total: number;
}

/** What the driver tells of a run's units (src/server/driver.ts). */
export interface RunMetrics {
  /** A unit waited this long from ready (or, a task of an array, from being handed out) to running on a node. */
  queueWait(kind: string, seconds: number): void;
  /** An attempt ran this long (running to its end). */
  runTime(kind: string, result: 'succeeded' | 'failed' | 'canceled', seconds: number): void;
}

/** What the cluster pool tells of its dispatches (src/server/pool.ts). */
export interface DispatchMetrics {
  /** From its placement on a node to the assignment being queued for the node (the attempt durable). */
  sent(seconds: number): void;
  /** From its placement to the node's report that its process started. */
  started(seconds: number): void;
}

/** What the node registry tells of heartbeats (src/server/nodes.ts). */
export interface HeartbeatMetrics {
  heartbeat(): void;
  /** A node went past its grace without a heartbeat (marked down). */
  missed(): void;
}

/** What the server shows live at each scrape. */
export interface MetricsView {
  leader(): { leader: boolean; term: number };
  /** The leader's registry; null on a follower (the store's counts are shown). */
  agents(): AgentCounts | null;
  /** Runs this server drives now. */
  driving(): number;
}

export function agentCountsOf(nodes: StoreStats['nodes']): AgentCounts {
  const c: AgentCounts = { ready: 0, down: 0, lost: 0, revoked: 0, drained: 0, total: 0 };
  for (const n of nodes) {
    if (n.state in c) c[n.state as (typeof AGENT_STATES)[number]] += n.count;
    if (n.drained && n.state !== 'revoked') c.drained += n.count;
    c.total += n.count;
  }
  return c;
}

/**
 * The store's counts, refreshed in the background: one grouped query (Store.stats) now, then
 * every `refreshMs`, or 10 × its own duration when that is longer (the store spends at most a
 * tenth of its time on it). Never more than one query in flight.
 */
export class StoreCounts {
  last: { at: number; stats: StoreStats; seconds: number } | null = null;
  ok = false;
  error: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly store: Pick<Store, 'stats'>,
    readonly refreshMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    void this.refresh();
  }

  /** Count now (a refresh in flight is joined). */
  refresh(): Promise<void> {
    if (this.running) return this.running;
    if (this.timer) clearTimeout(this.timer);
    const t0 = performance.now();
    this.running = this.store.stats().then(
      (stats) => {
        const seconds = (performance.now() - t0) / 1000;
        this.last = { at: this.clock(), stats, seconds };
        this.ok = true;
        this.error = null;
      },
      (e: unknown) => {
        this.ok = false;
        this.error = (e as Error).message;
      },
    ).finally(() => {
      this.running = null;
      if (this.closed) return;
      const took = (performance.now() - t0);
      this.timer = setTimeout(() => void this.refresh(), Math.max(this.refreshMs, 10 * took));
      this.timer.unref();
    });
    return this.running;
  }

  /** Seconds since the last successful count (null: none yet). */
  age(): number | null {
    return this.last ? Math.max(0, (this.clock() - this.last.at) / 1000) : null;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];
const RUN_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 7 * 24 * 3600];

export interface ServerMetricsOptions {
  version: string;
  storeKind: string;
  counts: StoreCounts;
  view: MetricsView;
  /** Collect Node's process metrics (process_*, nodejs_*; default true). */
  processMetrics?: boolean;
}

export class ServerMetrics implements RunMetrics, DispatchMetrics, HeartbeatMetrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route'>;
  private readonly storeDuration: Histogram<'operation'>;
  private readonly storeErrors: Counter<'operation'>;
  private readonly wait: Histogram<'kind'>;
  private readonly run: Histogram<'kind' | 'result'>;
  private readonly dispatchSent: Histogram;
  private readonly dispatchStarted: Histogram;
  private readonly heartbeats: Counter;
  private readonly heartbeatsMissed: Counter;
  private readonly leaderAcquired: Counter;

  constructor(o: ServerMetricsOptions) {
    const registers = [this.registry];
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    const counts = o.counts;
    const stats = (): StoreStats | null => counts.last?.stats ?? null;

    new Gauge({ name: 'warren_server_info', help: 'Always 1; the labels say which Warren this is and its store kind.', labelNames: ['version', 'store'], registers }).set({ version: o.version, store: o.storeKind }, 1);
    new Gauge({
      name: 'warren_leader',
      help: '1 when this server holds the leadership (schedules, drives the runs, watches the nodes), 0 on a follower.',
      registers,
      collect() {
        this.set(o.view.leader().leader ? 1 : 0);
      },
    });
    new Gauge({
      name: 'warren_leader_term',
      help: "The leadership's term: this server's own when it leads, the lease's as last read when it follows (0: none yet).",
      registers,
      collect() {
        this.set(o.view.leader().term);
      },
    });
    this.leaderAcquired = new Counter({ name: 'warren_leader_acquired_total', help: 'Times this server took up the leadership.', registers });
    new Gauge({
      name: 'warren_runs_driven',
      help: 'Workflows this server drives now (0 on a follower).',
      registers,
      collect() {
        this.set(o.view.driving());
      },
    });
    new Gauge({
      name: 'warren_jobs',
      help: 'Units (jobs, tasks of task arrays, ingress and egress) of the workflows that are pending or running, by state, as the store counted them at most a few seconds ago (warren_store_counts_age_seconds); a task of an array that has not started yet has no row and is not counted.',
      labelNames: ['state'],
      registers,
      collect() {
        const s = stats();
        if (!s) return;
        for (const k of UNIT_STATES) this.set({ state: k }, s.units[k] ?? 0);
      },
    });
    new Gauge({
      name: 'warren_workflows',
      help: 'Workflows in the store by status, as the store counted them at most a few seconds ago.',
      labelNames: ['status'],
      registers,
      collect() {
        const s = stats();
        if (!s) return;
        for (const k of WORKFLOW_STATUSES) this.set({ status: k }, s.workflows[k] ?? 0);
      },
    });
    const agents = (): AgentCounts | null => {
      const live = o.view.agents();
      if (live) return live;
      const s = stats();
      return s ? agentCountsOf(s.nodes) : null;
    };
    new Gauge({
      name: 'warren_agents',
      help: "Nodes by state: the leader's live view; on a follower, the store's (written by the leader at each change of state).",
      labelNames: ['state'],
      registers,
      collect() {
        const a = agents();
        if (!a) return;
        for (const k of AGENT_STATES) this.set({ state: k }, a[k]);
      },
    });
    new Gauge({
      name: 'warren_agents_drained',
      help: 'Nodes that are drained (take no new work), whatever their state but revoked.',
      registers,
      collect() {
        const a = agents();
        if (a) this.set(a.drained);
      },
    });
    new Gauge({
      name: 'warren_store_counts_age_seconds',
      help: 'How old the store counts (warren_jobs, warren_workflows, and warren_agents on a follower) are.',
      registers,
      collect() {
        const age = counts.age();
        if (age !== null) this.set(age);
      },
    });
    new Gauge({
      name: 'warren_store_up',
      help: "1 when the store answered this server's last count, 0 when that failed.",
      registers,
      collect() {
        this.set(counts.ok ? 1 : 0);
      },
    });

    this.httpRequests = new Counter({ name: 'warren_http_requests_total', help: 'HTTP requests answered, by method, route pattern (not the URL) and status code; "unmatched" for requests no route matched; status "aborted" when the client went away before an answer.', labelNames: ['method', 'route', 'status'], registers });
    this.httpDuration = new Histogram({ name: 'warren_http_request_duration_seconds', help: 'From the request to the end of its answer, by method and route pattern (event streams, followed logs and long polls last as long as they are open).', labelNames: ['method', 'route'], buckets: HTTP_BUCKETS, registers });
    this.storeDuration = new Histogram({ name: 'warren_store_call_duration_seconds', help: 'Store calls (each a query or a transaction), by operation (the Store method).', labelNames: ['operation'], buckets: LATENCY_BUCKETS, registers });
    this.storeErrors = new Counter({ name: 'warren_store_call_errors_total', help: 'Store calls that failed, by operation.', labelNames: ['operation'], registers });
    this.wait = new Histogram({ name: 'warren_job_queue_wait_seconds', help: 'Per unit start: from ready (its requirements met; a task of a task array: from being handed out) to running on a node, by unit kind (job, ingress, egress). Adopted attempts (a new leader) are not counted.', labelNames: ['kind'], buckets: WAIT_BUCKETS, registers });
    this.run = new Histogram({ name: 'warren_job_run_seconds', help: 'Per attempt end: from running to its end, by unit kind and result (succeeded: exit 0; canceled: canceled or stopped; failed: anything else).', labelNames: ['kind', 'result'], buckets: RUN_BUCKETS, registers });
    this.dispatchSent = new Histogram({ name: 'warren_dispatch_send_seconds', help: "From the pool's placement of an attempt on a node to its assignment being queued for that node's long poll (the attempt row committed first).", buckets: LATENCY_BUCKETS, registers });
    this.dispatchStarted = new Histogram({ name: 'warren_dispatch_latency_seconds', help: "From the pool's placement of an attempt on a node to the node's report that its process started, as the server receives it.", buckets: LATENCY_BUCKETS, registers });
    this.heartbeats = new Counter({ name: 'warren_agent_heartbeats_total', help: 'Heartbeats received from agents (by the leader).', registers });
    this.heartbeatsMissed = new Counter({ name: 'warren_agent_heartbeats_missed_total', help: 'Times a node went past its grace without a heartbeat and was marked down.', registers });
  }

  // --- observed where they happen ---

  request(method: string, route: string | undefined, status: string, seconds: number): void {
    const r = route ?? 'unmatched';
    this.httpRequests.inc({ method, route: r, status });
    this.httpDuration.observe({ method, route: r }, seconds);
  }

  storeCall(operation: string, seconds: number, failed: boolean): void {
    this.storeDuration.observe({ operation }, seconds);
    if (failed) this.storeErrors.inc({ operation });
  }

  queueWait(kind: string, seconds: number): void {
    this.wait.observe({ kind }, seconds);
  }

  runTime(kind: string, result: 'succeeded' | 'failed' | 'canceled', seconds: number): void {
    this.run.observe({ kind, result }, seconds);
  }

  sent(seconds: number): void {
    this.dispatchSent.observe(seconds);
  }

  started(seconds: number): void {
    this.dispatchStarted.observe(seconds);
  }

  heartbeat(): void {
    this.heartbeats.inc();
  }

  missed(): void {
    this.heartbeatsMissed.inc();
  }

  elected(): void {
    this.leaderAcquired.inc();
  }

  /** The text exposition format. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * The store, each call timed (by operation: the method's name; join tokens as
 * `joinTokens.<method>`). The one place store latency is measured: every subsystem of the
 * server gets this store (the leader side through its gate).
 */
export function instrumentStore(store: Store, observe: (operation: string, seconds: number, failed: boolean) => void): Store {
  const timed = <A extends unknown[], R>(operation: string, fn: (...a: A) => R) =>
    (...a: A): R => {
      const t0 = performance.now();
      let r: R;
      try {
        r = fn(...a);
      } catch (e) {
        observe(operation, (performance.now() - t0) / 1000, true);
        throw e;
      }
      if (r && typeof (r as { then?: unknown }).then === 'function') {
        (r as unknown as Promise<unknown>).then(
          () => observe(operation, (performance.now() - t0) / 1000, false),
          () => observe(operation, (performance.now() - t0) / 1000, true),
        );
      }
      return r;
    };
  const tokens = (t: TokenStore): TokenStore => ({
    insert: timed('joinTokens.insert', t.insert.bind(t)),
    consume: timed('joinTokens.consume', t.consume.bind(t)),
    get: timed('joinTokens.get', t.get.bind(t)),
    list: timed('joinTokens.list', t.list.bind(t)),
    delete: timed('joinTokens.delete', t.delete.bind(t)),
  });
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, key) {
      const v = Reflect.get(target, key, target) as unknown;
      if (typeof v !== 'function' || key === 'close' || key === 'constructor') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      let w = wrapped.get(key);
      if (!w) {
        w = key === 'joinTokens' ? () => tokens(target.joinTokens()) : timed(String(key), (v as (...a: unknown[]) => unknown).bind(target));
        wrapped.set(key, w);
      }
      return w;
    },
  }) as Store;
}
