// The cluster as one agent: a pool of node agents behind the server–agent protocol, with
// the pure cluster scheduler (src/scheduler) deciding where each task goes. The run driver
// sees one `Agent`; the pool queues what it is given, places it when a node has room
// (filters, scores, select; fair share; backfill), dispatches each attempt only after it
// is durable (its row names the node and the lease term), and turns node reports back
// into the contract's events.
//
// Failure handling (docs/cluster.md, beside Nomad's `disconnect` block and Slurm):
//   - a node that misses heartbeats past the grace is *lost*: its attempts become unknown;
//     after `lostAfterMs` they end with reason `node-lost` (the engine retries them as the
//     job's policy says). A node that comes back before that keeps them (its full list of
//     attempts reconciles); anything it runs that is no longer current is stopped.
//   - attempts a previous server dispatched are adopted: their reports come here.
//
// Multinode jobs (docs/mpi.md) are gangs: all their nodes at once or none. The unit's attempt
// runs the launcher on the first node; each other node holds a member `<attempt>#<i>` that
// starts the daemons the launcher's hook asks for (forwarded here: onLaunch). The attempt's
// row names every node ("a,b,c"), so a new server adopts the whole gang. One part failing or
// lost ends the whole job (every part is killed) and the engine retries it as its policy says.

import { WarrenError, attemptFields, type LogFn } from '../common/index.js';
import type { Agent, AgentListener, AdmissionRequest, AttemptExited, AttemptReady, AttemptStarted, AttemptState, GangInfo, LaunchEvent, LaunchOrder, LogRequest, NodeInfo, SubmitHooks, TaskAssignment } from '../agent/index.js';
import { AGENT_PROTOCOL, GANG_PROTOCOL_MINOR, SERVICES_PROTOCOL_MINOR, gpusOfJob } from '../agent/index.js';
import { scheduleCluster, type ClusterNode, type PendingJob, type RunningJob } from '../scheduler/index.js';
import type { Clock } from './driver.js';
import type { JobSpec } from '../workflow/index.js';
import { systemClock } from './driver.js';
import type { DispatchMetrics } from './metrics.js';

/** What the pool needs of the server's node registry. */
export interface NodeDirectory {
  /** Every known node with its last report. */
  nodes(): { name: string; info: NodeInfo; state: 'ready' | 'down' | 'lost' | 'revoked'; drained: boolean; lastSeenAt?: number }[];
  assign(node: string, task: TaskAssignment): void;
  kill(node: string, attemptId: string, reason: 'canceled' | 'timeout' | 'stop-service'): void;
  /** An order about a multinode job's daemons (false: the node is not there to tell). */
  launch(node: string, o: LaunchOrder): boolean;
  requestLogs(node: string, req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  /** A stream to a port of a service attempt on the node (protocol 1.5 agents). */
  tunnel?(node: string, attemptId: string, port: number): Promise<import('node:stream').Duplex>;
}

export interface PoolOptions {
  directory: NodeDirectory;
  clock?: Clock;
  /** How long the attempts of a lost node wait for it before they end as `node-lost`. */
  lostAfterMs: number;
  strategy?: 'binpack' | 'spread';
  /** How long reports of attempts of runs not driven here wait to be adopted (default 60 s: above a run lease's TTL). */
  strayMs?: number;
  /** Gangs go only to nodes heard from within this long (default: any ready node). */
  gangFreshMs?: number;
  /** Tasks a node may hold queued beyond its cores, as a multiple of its cores (default 1; 0: none). */
  prefetch?: number;
  log?: LogFn;
  /** Told of each dispatch: placement to queued for the node, placement to started there. */
  metrics?: DispatchMetrics;
}

interface Waiting {
  task: TaskAssignment;
  hooks: SubmitHooks;
  order: number;
  need: { cores: number; memoryBytes: number; gpus: number; exclusive: boolean; nodes: number };
}

/** A multinode job's gang, by the unit's (launcher's) attempt id. */
interface Gang {
  /** Its nodes, the launcher's first. */
  nodes: string[];
  /** Member attempt ids, by node. */
  members: Map<string, string>;
  /** launchId -> the member that runs that daemon. */
  launches: Map<string, string>;
  /** Why the job ends before its launcher did (a part failed or was lost). */
  failure: { reason: AttemptExited['reason']; message: string } | null;
  /** The driver killed the unit (cancel, timeout): its end is that, not a failure. */
  killed: boolean;
  rankFailure: { rank: number | null; exitCode: number | null; signal: number | null; node: string } | null;
}

interface Placed {
  task: TaskAssignment | null;
  node: string;
  cores: number;
  memoryBytes: number;
  gpus: number;
  started: boolean;
  /** Set while its node is lost: when it ends as node-lost. */
  lostAt: number | null;
  /** A gang member: the launcher's attempt id. */
  parent?: string;
  /** When the pool placed it (clock ms); unset for an adopted attempt and once it started. */
  placedAt?: number;
}

/** Every node carries its own name as this label (for units that must run where their volumes are). */
export const NODE_LABEL = 'warren.node';
/** Nodes whose agents run multinode gangs (protocol 1.1) carry this label; gangs ask for it. */
export const GANG_LABEL = 'warren.gangs';

/** A gang member's attempt id: `<launcher attempt>#<index>`. */
export function memberId(launcher: string, index: number): string {
  return `${launcher}#${index}`;
}

export function gpusOf(t: TaskAssignment): number {
  return gpusOfJob(t.job);
}

export class ClusterPool implements Agent {
  private readonly clock: Clock;
  private readonly dir: NodeDirectory;
  private listener: AgentListener | null = null;
  private readonly runListeners = new Map<string, AgentListener>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly placed = new Map<string, Placed>();
  private order = 0;
  private scheduled = false;
  /** Job name -> why its tasks wait ("needs 4 GPUs: 0 of 12 nodes have them"). */
  private readonly why = new Map<string, string>();
  /** user -> nodes where it has no account (learned from refusals). */
  private readonly noAccount = new Map<string, Set<string>>();
  private sweep: unknown = null;
  /** Reports of attempts of runs not driven here yet (a restarted server before it took them
   *  over): kept until the run's new driver adopts them, else stopped after `strayMs`. */
  private readonly strays = new Map<string, { node: string; ev: AttemptStarted | AttemptExited | null; at: number }>();
  private owns: (workflowId: string) => boolean = () => true;
  /** Workflow -> the node where its volumes live (compute goes to the data). Bounded. */
  private readonly pins = new Map<string, string>();
  private readonly gangs = new Map<string, Gang>();
  /** Gangs submitted and maybe still waiting (pruned each sweep). */
  private readonly gangsWaiting = new Set<string>();

  constructor(private readonly opts: PoolOptions) {
    this.clock = opts.clock ?? systemClock;
    this.dir = opts.directory;
    this.sweep = this.clock.setInterval(() => this.expireLost(), Math.max(50, Math.min(1000, Math.floor(opts.lostAfterMs / 4))));
  }

  info(): NodeInfo {
    const ns = this.dir.nodes().filter((n) => n.state === 'ready');
    return {
      name: 'cluster',
      cores: ns.reduce((s, n) => s + n.info.cores, 0),
      memoryBytes: ns.reduce((s, n) => s + n.info.memoryBytes, 0),
      gpus: ns.flatMap((n) => n.info.gpus),
      labels: {},
      platform: ns[0]?.info.platform ?? 'linux/amd64',
      containers: ns.some((n) => n.info.containers),
      agentVersion: 'pool',
      protocol: { ...AGENT_PROTOCOL },
    };
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  /** Each run driven through the pool gets its own workflow's reports (several run at once). */
  listen(workflowId: string, l: AgentListener): () => void {
    this.runListeners.set(workflowId, l);
    return () => {
      if (this.runListeners.get(workflowId) === l) this.runListeners.delete(workflowId);
    };
  }

  /** The listener of an attempt's workflow (attempt ids are `workflowId/key/attempt`), else the pool's one. */
  private listenerOf(attemptId: string): AgentListener | null {
    const slash = attemptId.indexOf('/');
    return (slash > 0 ? this.runListeners.get(attemptId.slice(0, slash)) : undefined) ?? this.listener;
  }

  /** Which workflows are driven here (the server's runs); reports of others wait for adoption. */
  setOwnership(owns: (workflowId: string) => boolean): void {
    this.owns = owns;
  }

  private stray(node: string, attemptId: string, ev: AttemptStarted | AttemptExited | null): boolean {
    const wf = attemptId.split('/')[0] ?? '';
    if (this.owns(wf)) return false;
    const prev = this.strays.get(attemptId);
    // An exit wins over a start; the first time it was seen counts.
    this.strays.set(attemptId, { node, ev: ev && 'reason' in ev ? ev : (prev?.ev ?? ev), at: prev?.at ?? this.clock.now() });
    return true;
  }

  /** A job no node of the cluster could ever hold is refused at submit; with no nodes yet it waits. */
  admit(req: AdmissionRequest): WarrenError | null {
    const ns = this.dir.nodes().filter((n) => n.state !== 'revoked');
    if (ns.length === 0) return null;
    const gang = req.nodes ?? 1;
    if (gang > 1) {
      const fit = ns.filter((n) => n.info.cores >= req.cores && n.info.memoryBytes >= req.memoryBytes && n.info.gpus.length >= req.gpus && (!req.container || n.info.containers) && runsGangs(n.info));
      if (fit.length < gang) {
        return new WarrenError('AGENT_NOT_ENOUGH_NODES', `${req.name} needs ${gang} nodes at once, each with ${req.cores} core${req.cores === 1 ? '' : 's'}${req.memoryBytes ? ` and ${(req.memoryBytes / 2 ** 30).toFixed(1)} GiB` : ''}${req.gpus ? ` and ${req.gpus} GPUs` : ''}: ${fit.length} of the cluster's ${ns.length} nodes could ever hold it`, {
          hint: `lower multinode.nodes to at most ${fit.length} (or its per-node resources), or add nodes (\`warren token create\`, then \`warren agent\` on each)`,
          details: { nodes: gang, fit: fit.length, total: ns.length },
        });
      }
      return null;
    }
    if (ns.some((n) => n.info.cores >= req.cores && n.info.memoryBytes >= req.memoryBytes && n.info.gpus.length >= req.gpus && (!req.container || n.info.containers))) return null;
    const maxCores = Math.max(...ns.map((n) => n.info.cores));
    const maxMem = Math.max(...ns.map((n) => n.info.memoryBytes));
    const maxGpus = Math.max(...ns.map((n) => n.info.gpus.length));
    if (req.cores > maxCores) return new WarrenError('AGENT_NOT_ENOUGH_CORES', `${req.name} needs ${req.cores} cores: 0 of ${ns.length} nodes have them (the largest has ${maxCores})`, { hint: `lower resource.cpu.cores to at most ${maxCores}, or add a larger node (\`warren token create\`, then \`warren agent\` on it)` });
    if (req.memoryBytes > maxMem) return new WarrenError('AGENT_NOT_ENOUGH_MEMORY', `${req.name} needs ${(req.memoryBytes / 2 ** 30).toFixed(1)} GiB of memory: 0 of ${ns.length} nodes have it (the largest has ${(maxMem / 2 ** 30).toFixed(1)} GiB)`, { hint: 'lower resource.memory.size (mind `by-core`), or add a larger node' });
    if (req.gpus > maxGpus) return new WarrenError('AGENT_CANNOT_RUN', `${req.name} needs ${req.gpus} GPUs: 0 of ${ns.length} nodes have them`, { hint: 'remove the GPU request, or add a node with GPUs (its agent reports them through nvidia-smi)' });
    return new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${req.name} names an image but none of the ${ns.length} nodes that could hold it has a container runtime`, { hint: 'install runc on the nodes (apt-get install runc), or remove `image:`' });
  }

  submit(task: TaskAssignment, hooks: SubmitHooks = {}): void {
    const spec = task.job;
    const need = {
      // A data unit (ingress, egress) holds one core's slot while it moves data: the
      // scheduler places whole cores, and a node moving data is busy.
      cores: task.kind === 'job' && spec ? spec.resources.cores : 1,
      memoryBytes: task.kind === 'job' && spec ? (spec.resources.memoryBytes ?? 0) : 0,
      gpus: gpusOf(task),
      exclusive: task.kind === 'job' && spec ? spec.resources.exclusive : false,
      nodes: task.kind === 'job' && spec?.multinode ? spec.multinode.nodes : 1,
    };
    this.waiting.set(task.attemptId, { task, hooks, order: this.order++, need });
    if (need.nodes > 1) this.gangsWaiting.add(task.attemptId);
    this.schedule();
  }

  /** Take over an attempt a previous driver dispatched (a server restart): its reports come here. */
  adopt(attemptId: string, node: string | null, task?: TaskAssignment, opts?: { pid?: number | null }): void {
    if (this.placed.has(attemptId)) return;
    const spec = task?.job;
    // A gang's row names all its nodes, the launcher's first: every part is adopted with it.
    const nodes = node ? node.split(',') : [''];
    const gang = nodes.length > 1 ? this.newGang(attemptId, nodes) : undefined;
    const view = gang ? this.gangNodes(nodes) : [];
    nodes.forEach((n, k) => {
      const id = k === 0 ? attemptId : memberId(attemptId, k);
      this.placed.set(id, {
        task: task ? (gang ? gangTask(task, view, k) : task) : null,
        node: n,
        cores: spec ? spec.resources.cores : 0,
        memoryBytes: spec ? (spec.resources.memoryBytes ?? 0) : 0,
        gpus: task ? gpusOf(task) : 0,
        // A pid was recorded: the node reported it started (else it may never have reached it).
        started: opts?.pid != null,
        // Until its node reports it (its full list on reconnect), it is unknown: lostAfter runs.
        lostAt: this.isReady(n) ? null : this.clock.now(),
        ...(k > 0 ? { parent: attemptId } : {}),
      });
      if (k > 0) gang!.members.set(n, id);
      // Its node may have told us of it before we drove its run.
      this.takeStray(id);
    });
  }

  private isReady(node: string): boolean {
    return node !== '' && this.dir.nodes().some((n) => n.name === node && n.state === 'ready');
  }

  private takeStray(attemptId: string): void {
    const st = this.strays.get(attemptId);
    const p = this.placed.get(attemptId);
    if (!st || !p) return;
    this.strays.delete(attemptId);
    p.node = st.node;
    p.lostAt = null;
    if (st.ev && 'reason' in st.ev) {
      const ev = st.ev;
      queueMicrotask(() => this.onReport(st.node, ev));
    } else if (st.ev) p.started = true;
  }

  kill(attemptId: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    // A gang: every part is told (the unit ends with its launcher's exit).
    const g = this.gangs.get(attemptId);
    if (g) {
      g.killed = true;
      for (const id of g.members.values()) this.killPart(id, reason);
    }
    if (this.waiting.delete(attemptId)) {
      this.emitExit({ attemptId, exitCode: null, signal: null, reason: reason === 'stop-service' ? 'stopped' : 'canceled', durationMs: 0, at: this.clock.now() });
      return;
    }
    const p = this.placed.get(attemptId);
    if (!p) return;
    if (p.lostAt !== null) {
      // Its node is gone: nothing to tell it now; it is stopped when it comes back.
      this.placed.delete(attemptId);
      this.gangs.delete(attemptId);
      this.emitExit({ attemptId, exitCode: null, signal: null, reason: 'canceled', message: `canceled while its node ${p.node} was lost`, durationMs: 0, at: this.clock.now() });
      return;
    }
    this.dir.kill(p.node, attemptId, reason);
  }

  get load(): { usedCores: number; queued: number; running: number } {
    let used = 0;
    let notStarted = 0;
    for (const p of this.placed.values()) {
      used += p.cores;
      if (!p.started) notStarted++;
    }
    return { usedCores: used, queued: this.waiting.size + notStarted, running: this.placed.size };
  }

  async recover(): Promise<AttemptState[]> {
    return [...this.placed].map(([attemptId, p]) => ({ attemptId, state: 'running' as const, pid: null, cgroup: null, startedAt: null }));
  }

  /** Logs of an attempt are on its node: asked for over that node's own connection. */
  logs(req: LogRequest & { node?: string }, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    if (!req.node) throw new WarrenError('RUN_NOT_FOUND', `no node is known for the logs of ${req.job}`, { hint: 'the job has not started yet' });
    return this.dir.requestLogs(req.node, req, signal);
  }

  /** Why each job's tasks wait (for `warren status`). */
  waitingReasons(): Map<string, string> {
    return new Map(this.why);
  }

  async close(): Promise<void> {
    if (this.sweep !== null) this.clock.clearInterval(this.sweep);
    this.sweep = null;
  }

  // ---- multinode gangs ----

  /** Heard from recently enough to take part of a gang (a silent node may be dying). */
  private fresh(n: { lastSeenAt?: number }): boolean {
    const f = this.opts.gangFreshMs;
    return f === undefined || n.lastSeenAt === undefined || this.clock.now() - n.lastSeenAt <= f;
  }

  /** Place a gang: every part is held now; the row (naming all nodes) is durable before any node hears of it. */
  private placeGang(w: Waiting, nodes: string[], pl: { cores: number; memoryBytes: number; gpus: number }): void {
    const id = w.task.attemptId;
    const g = this.newGang(id, nodes);
    const view = this.gangNodes(nodes);
    const parts: { id: string; node: string; task: TaskAssignment; p: Placed }[] = nodes.map((node, i) => {
      const task = gangTask(w.task, view, i);
      const p: Placed = { task, node, cores: pl.cores, memoryBytes: pl.memoryBytes, gpus: pl.gpus, started: false, lostAt: null, ...(i > 0 ? { parent: id } : { placedAt: this.clock.now() }) };
      this.placed.set(task.attemptId, p);
      if (i > 0) g.members.set(node, task.attemptId);
      return { id: task.attemptId, node, task, p };
    });
    const dispatch = (): void => {
      if (this.placed.get(id) !== parts[0]!.p || this.gangs.get(id) !== g) return; // killed meanwhile
      try {
        // Members first: they are waiting when the launcher's hook asks for its daemons.
        for (const x of [...parts.slice(1), parts[0]!]) this.dir.assign(x.node, x.task);
        const at = parts[0]!.p.placedAt;
        if (at !== undefined) this.opts.metrics?.sent((this.clock.now() - at) / 1000);
      } catch (e) {
        // A node went away between the placement and now: nothing ran; place the whole gang again.
        this.opts.log?.('warn', `${id} not sent to ${nodes.join(',')}: ${(e as Error).message}; placing it again`, { ...attemptFields(id), node: nodes.join(',') });
        for (const x of parts) {
          this.placed.delete(x.id);
          if (x.id !== id) this.dir.kill(x.node, x.id, 'canceled');
        }
        this.gangs.delete(id);
        this.waiting.set(id, w);
        this.schedule();
      }
    };
    if (w.hooks.durable) {
      w.hooks.durable({ pid: null, cgroup: null, node: nodes.join(',') }).then(dispatch, (e: unknown) => {
        for (const x of parts) this.placed.delete(x.id);
        this.gangs.delete(id);
        this.emitExit({ attemptId: id, exitCode: null, signal: null, reason: 'spawn-error', message: `could not record the attempt: ${(e as Error).message}`, durationMs: 0, at: this.clock.now() });
      });
    } else dispatch();
  }

  private newGang(id: string, nodes: string[]): Gang {
    const g: Gang = { nodes, members: new Map(), launches: new Map(), failure: null, rankFailure: null, killed: false };
    this.gangs.set(id, g);
    return g;
  }

  /** The gang's nodes as its parts are told (with the address each agent reports). */
  private gangNodes(nodes: string[]): GangInfo['nodes'] {
    const infos = new Map(this.dir.nodes().map((n) => [n.name, n.info]));
    return nodes.map((n) => {
      const address = infos.get(n)?.addresses?.[0];
      return { name: n, ...(address ? { address } : {}) };
    });
  }

  /** Stop one part of a gang; a part whose node is lost is forgotten (stopped when it returns). */
  private killPart(id: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    const p = this.placed.get(id);
    if (!p) return;
    if (p.lostAt !== null || !p.node) {
      this.placed.delete(id);
      return;
    }
    this.dir.kill(p.node, id, reason);
  }

  /** A member started (no process: it waits for daemons) or ended. */
  private onMemberReport(node: string, p: Placed, ev: AttemptStarted | AttemptExited): void {
    p.lostAt = null;
    if (!('reason' in ev)) {
      p.started = true;
      return;
    }
    this.placed.delete(ev.attemptId);
    const parent = p.parent!;
    const g = this.gangs.get(parent);
    if (g && g.members.get(node) === ev.attemptId) g.members.delete(node);
    const ok = ev.reason === 'exit' && ev.exitCode === 0;
    if (!ok && g && !g.failure && !g.killed && this.placed.has(parent)) {
      // One part failed or is gone: the whole job ends (every part stopped), then its policy decides.
      const what = ev.reason === 'node-lost' ? `was lost (${ev.message ?? 'no heartbeats'})` : ev.reason === 'exit' ? `exited with code ${ev.exitCode}` : ev.reason === 'signal' ? `was killed by ${ev.signal}` : `ended (${ev.reason}${ev.message ? `: ${ev.message}` : ''})`;
      g.failure = { reason: ev.reason === 'node-lost' || ev.reason === 'agent-restarted' ? 'node-lost' : 'error', message: `its part on node ${node} ${what}` };
      this.opts.log?.('warn', `${parent}: ${g.failure.message}: stopping the job on all its nodes`, { ...attemptFields(parent), node });
      for (const m of [...g.members.values()]) this.killPart(m, 'canceled');
      const launcher = this.placed.get(parent)!;
      if (launcher.lostAt !== null) {
        // Its launcher's node is away too: nothing to wait for.
        this.placed.delete(parent);
        this.endGang(parent, { attemptId: parent, exitCode: null, signal: null, reason: 'node-lost', durationMs: 0, at: this.clock.now() });
      } else this.dir.kill(launcher.node, parent, 'canceled');
    }
    this.schedule();
  }

  /** The launcher ended (or the gang was given up): stop every part, then end the unit once. */
  private endGang(id: string, ev: AttemptExited): void {
    const g = this.gangs.get(id);
    if (!g) return this.emitExit(ev);
    for (const m of [...g.members.values()]) this.killPart(m, 'canceled');
    const finish = (): void => {
      if (this.gangs.get(id) !== g) return;
      this.gangs.delete(id);
      this.emitExit(gangExit(g, ev));
    };
    // A failed rank elsewhere is reported by its node; give it a moment to arrive.
    if (ev.reason === 'exit' && ev.exitCode !== 0 && !g.rankFailure && !g.killed && !g.failure && !/^rank /.test(ev.message ?? '')) this.clock.setTimeout(finish, 500);
    else finish();
  }

  /** A node's report about a gang's daemons: forwarded to the part it concerns. */
  onLaunch(node: string, ev: LaunchEvent): void {
    const launcherId = ev.type === 'request' || ev.type === 'cancel' ? ev.attemptId : (this.placed.get(ev.attemptId)?.parent ?? ev.attemptId);
    const g = this.gangs.get(launcherId);
    const launcher = this.placed.get(launcherId);
    if (ev.type === 'request') {
      const member = g?.members.get(ev.host);
      const mp = member ? this.placed.get(member) : undefined;
      if (!g || !launcher || launcher.node !== node || !member || !mp || !this.dir.launch(mp.node, { type: 'start', attemptId: member, launchId: ev.launchId, command: ev.command })) {
        const why = !g || !launcher ? 'the job is not running any more' : !member || !mp ? `node ${ev.host} holds no part of this job now (its nodes: ${g.nodes.join(', ')})` : `node ${ev.host} cannot be reached`;
        this.dir.launch(node, { type: 'exited', attemptId: ev.attemptId, launchId: ev.launchId, exitCode: null, signal: null, message: `cannot start the daemon on ${ev.host}: ${why}` });
        return;
      }
      g.launches.set(ev.launchId, member);
    } else if (ev.type === 'cancel') {
      const member = g?.launches.get(ev.launchId);
      const mp = member ? this.placed.get(member) : undefined;
      if (member && mp) this.dir.launch(mp.node, { type: 'kill', attemptId: member, launchId: ev.launchId });
    } else if (ev.type === 'exited') {
      g?.launches.delete(ev.launchId);
      if (launcher) this.dir.launch(launcher.node, { type: 'exited', attemptId: launcherId, launchId: ev.launchId, exitCode: ev.exitCode, signal: ev.signal, ...(ev.message ? { message: ev.message } : {}) });
    } else if (g) {
      g.rankFailure ??= { rank: ev.rank, exitCode: ev.exitCode, signal: ev.signal, node };
    }
  }

  // --- events from the node registry ---

  /** A node reported a start or an end. Reports of attempts the pool does not know (a stale
   *  copy, one replaced meanwhile) are answered by stopping them. */
  onReport(node: string, ev: AttemptStarted | AttemptExited): void {
    const p = this.placed.get(ev.attemptId);
    if (p?.parent !== undefined && p.node === node) {
      this.onMemberReport(node, p, ev);
      return;
    }
    if (!p) {
      if (this.stray(node, ev.attemptId, ev)) return;
      if (!('reason' in ev)) this.dir.kill(node, ev.attemptId, 'canceled');
      return;
    }
    if (p.node !== node) {
      if (p.node === '') p.node = node;
      else {
        // A copy on another node than the one it was placed on: never two copies.
        if (!('reason' in ev)) this.dir.kill(node, ev.attemptId, 'canceled');
        return;
      }
    }
    p.lostAt = null;
    if ('reason' in ev) {
      this.placed.delete(ev.attemptId);
      if (ev.failure?.code === 'AGENT_NO_ACCOUNT' && p.task?.user) {
        let s = this.noAccount.get(p.task.user.unixUser);
        if (!s) this.noAccount.set(p.task.user.unixUser, (s = new Set()));
        s.add(node);
      }
      if (this.gangs.has(ev.attemptId)) this.endGang(ev.attemptId, ev);
      else this.emitExit(ev);
      this.schedule();
    } else {
      if (!p.started && p.placedAt !== undefined) this.opts.metrics?.started((this.clock.now() - p.placedAt) / 1000);
      p.placedAt = undefined;
      p.started = true;
      // A gang's row keeps naming all its nodes (a new server adopts every part).
      const l = this.listenerOf(ev.attemptId);
      l?.started({ ...ev, node: this.gangs.get(ev.attemptId)?.nodes.join(',') ?? node });
      // A service on an agent older than protocol 1.5 reports no `ready`: it is ready when it started.
      const spec = p.task?.job;
      if (spec?.service && this.minorOf(node) < SERVICES_PROTOCOL_MINOR) {
        const host = this.addressOf(node);
        const old = this.dir.nodes().find((n) => n.name === node)?.info.protocol;
        const message = spec.serviceSpec?.probe ? `its readiness probe was not run: node ${node}'s agent speaks protocol ${old?.major ?? 1}.${old?.minor ?? 0}, older than 1.${SERVICES_PROTOCOL_MINOR}; counted ready when it started` : undefined;
        l?.ready?.({ attemptId: ev.attemptId, ...(host ? { host } : {}), ...(message ? { message } : {}), at: this.clock.now() });
      }
    }
  }

  /** A service's readiness probe passed on its node (protocol 1.5). */
  onReady(node: string, ev: AttemptReady): void {
    const p = this.placed.get(ev.attemptId);
    if (!p || p.node !== node || p.parent !== undefined) return; // not ours (a stray is adopted with its unit's state)
    const host = ev.host ?? this.addressOf(node);
    this.listenerOf(ev.attemptId)?.ready?.({ ...ev, ...(host ? { host } : {}) });
  }

  /** A stream to a port of a running service attempt, through the agent of its node. */
  async connect(attemptId: string, port: number): Promise<import('node:stream').Duplex> {
    const p = this.placed.get(attemptId);
    if (!p || !p.started || p.node === '' || p.lostAt !== null) {
      throw new WarrenError('SERVICE_NOT_RUNNING', `attempt ${attemptId} is not running on a node now${p && p.lostAt !== null ? ` (its node ${p.node} is lost)` : ''}`, { hint: 'see `warren status ID`: port forwarding reaches a service while it runs' });
    }
    if (!this.dir.tunnel) throw new WarrenError('SERVICE_FORWARD_UNSUPPORTED', 'this server cannot open port forwards to its nodes', { hint: 'upgrade the server' });
    return this.dir.tunnel(p.node, attemptId, port);
  }

  /** The address other nodes (and the server) reach a node at: the first its agent reports. */
  addressOf(node: string): string | undefined {
    return this.dir.nodes().find((n) => n.name === node)?.info.addresses?.[0];
  }

  private minorOf(node: string): number {
    const v = this.dir.nodes().find((n) => n.name === node)?.info.protocol;
    return v && v.major === AGENT_PROTOCOL.major ? v.minor : 0;
  }

  /** A node (re)connected with the full list of its attempts: reconcile. */
  onAttempts(node: string, list: AttemptState[]): void {
    const have = new Set(list.map((a) => a.attemptId));
    for (const a of list) {
      const p = this.placed.get(a.attemptId);
      if (!p && this.stray(node, a.attemptId, a.state === 'exited' && a.exit ? a.exit : null)) continue;
      if (!p || (p.node !== '' && p.node !== node)) {
        // Not ours any more (replaced while the node was away, or canceled): stop the stale copy.
        if (a.state === 'running') this.dir.kill(node, a.attemptId, 'canceled');
        continue;
      }
      if (p.node === '') p.node = node;
      p.lostAt = null;
      if (a.state === 'exited' && a.exit) this.onReport(node, a.exit);
    }
    // What we placed on it that it does not know. Never reported started: the assignment
    // never reached it (a server died between dispatch and the node's poll): send it again,
    // it is the same attempt. Reported started: it ran and is gone (its end was lost with a
    // node's disk): it ends as node-lost and the job's retry policy decides.
    for (const [id, p] of this.placed) {
      if (p.node !== node || have.has(id)) continue;
      if (!p.started && p.task) {
        this.dir.assign(node, p.task);
        continue;
      }
      this.placed.delete(id);
      this.emitExit({ attemptId: id, exitCode: null, signal: null, reason: 'node-lost', message: `node ${node} no longer knows this attempt (it restarted)`, durationMs: 0, at: this.clock.now() });
    }
    this.schedule();
  }

  /** A node missed its heartbeats past the grace: its attempts are unknown until it returns or lostAfter passes. */
  onLost(node: string): void {
    const t = this.clock.now();
    for (const p of this.placed.values()) if (p.node === node && p.lostAt === null) p.lostAt = t;
    this.opts.log?.('warn', `node ${node} is lost: its attempts wait ${Math.round(this.opts.lostAfterMs / 1000)} s for it, then run elsewhere`, { node });
  }

  onUp(_node: string): void {
    this.schedule();
  }

  private expireLost(): void {
    const t = this.clock.now();
    // Strays nobody adopted (their run ended, or another server drives it... no: one server
    // drives a run and would have adopted it by now): stop what still runs.
    for (const [id, st] of this.strays) {
      if (t - st.at < (this.opts.strayMs ?? 60_000)) continue;
      this.strays.delete(id);
      if (!st.ev || !('reason' in st.ev)) this.dir.kill(st.node, id, 'canceled');
    }
    let changed = false;
    for (const [id, p] of this.placed) {
      if (p.lostAt === null || t - p.lostAt < this.opts.lostAfterMs) continue;
      this.placed.delete(id);
      changed = true;
      const ev: AttemptExited = { attemptId: id, exitCode: null, signal: null, reason: 'node-lost', message: `its node ${p.node || '(unknown)'} was lost for ${Math.round((t - p.lostAt) / 1000)} s`, durationMs: 0, at: t };
      if (p.parent !== undefined) this.onMemberReport(p.node, p, ev);
      else if (this.gangs.has(id)) this.endGang(id, ev);
      else this.emitExit(ev);
    }
    // A gang waiting on nodes' freshness (or on several at once) is tried again each sweep.
    for (const id of this.gangsWaiting) if (!this.waiting.has(id)) this.gangsWaiting.delete(id);
    if (changed || (this.opts.gangFreshMs !== undefined && this.gangsWaiting.size > 0)) this.schedule();
  }

  private emitExit(ev: AttemptExited): void {
    this.listenerOf(ev.attemptId)?.exited(ev);
  }

  /** Coalesce: one scheduling pass per turn of the event loop, however many changes came. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.place();
    });
  }

  /**
   * What the scheduler is told is allocated on a node. A node may hold up to `prefetch` ×
   * its cores of tasks (default 1: one core's worth queued per core running): the queued ones
   * start on the node the moment a core frees, without a round trip to the server, which is
   * what keeps a node busy with short tasks. The node's agent still never runs more than its
   * cores (it admits; the rest wait in its queue). GPUs are never prefetched.
   */
  private headroom(a: { cores: number; memoryBytes: number; gpus: number }, info: NodeInfo): { cores: number; memoryBytes: number; gpus: number } {
    const f = this.opts.prefetch ?? 1;
    if (f <= 0) return a;
    return { cores: Math.max(0, a.cores - Math.floor(info.cores * f)), memoryBytes: Math.max(0, a.memoryBytes - Math.floor(info.memoryBytes * f)), gpus: a.gpus };
  }

  private place(): void {
    if (this.waiting.size === 0) {
      this.why.clear();
      return;
    }
    const all = this.dir.nodes();
    const alloc = new Map<string, { cores: number; memoryBytes: number; gpus: number }>();
    for (const p of this.placed.values()) {
      const a = alloc.get(p.node) ?? { cores: 0, memoryBytes: 0, gpus: 0 };
      a.cores += p.cores;
      a.memoryBytes += p.memoryBytes;
      a.gpus += p.gpus;
      alloc.set(p.node, a);
    }
    const nodes: ClusterNode[] = all
      .filter((n) => n.state === 'ready')
      .map((n) => ({
        name: n.name,
        cores: n.info.cores,
        memoryBytes: n.info.memoryBytes,
        gpus: { count: n.info.gpus.length, models: [...new Set(n.info.gpus.map((g) => g.model))] },
        labels: { ...n.info.labels, [NODE_LABEL]: n.name, ...(runsGangs(n.info) && this.fresh(n) ? { [GANG_LABEL]: 'yes' } : {}) },
        drained: n.drained,
        platform: n.info.platform,
        allocated: this.headroom(alloc.get(n.name) ?? { cores: 0, memoryBytes: 0, gpus: 0 }, n.info),
        cachedImages: n.info.cachedImages ?? [],
        dataVolumes: [],
      }));
    const jobs: PendingJob[] = [];
    const byId = new Map<string, Waiting>();
    // A unit that touches the workflow's volumes runs where they live; the first one places
    // them (one per workflow per pass, so that two first ones do not pick two nodes).
    const firstThisPass = new Set<string>();
    let again = false;
    for (const [id, w] of this.waiting) {
      const user = w.task.user?.unixUser ?? 'local';
      let constraints: string[] | undefined;
      const gang = w.need.nodes > 1;
      // A gang spans nodes: its volumes are not pinned to one (docs/mpi.md).
      if (gang) constraints = [`${GANG_LABEL}=yes`];
      else if (w.task.volumes.length > 0) {
        const pin = this.pins.get(w.task.workflowId) ?? w.task.pin;
        if (pin) constraints = [`${NODE_LABEL}=${pin}`];
        else if (firstThisPass.has(w.task.workflowId)) {
          again = true;
          continue;
        } else firstThisPass.add(w.task.workflowId);
      }
      jobs.push({ id, user, cores: Math.max(w.need.cores, 1), memoryBytes: w.need.memoryBytes, gpus: w.need.gpus, exclusive: w.need.exclusive, submitOrder: w.order, ...(constraints ? { constraints } : {}), ...(gang ? { nodes: w.need.nodes } : {}), ...(w.task.job?.policy.timeoutSec ? { timeLimit: w.task.job.policy.timeoutSec } : {}) });
      byId.set(id, w);
    }
    const running: RunningJob[] = [];
    for (const [id, p] of this.placed) if (p.node) running.push({ id, node: p.node, cores: p.cores, memoryBytes: p.memoryBytes, gpus: p.gpus, expectedEnd: Infinity });
    // Nodes a user has no account on (learned from their refusals) are filtered for that
    // user's tasks, with that reason.
    if (this.noAccount.size > 0) {
      const users = new Set(jobs.map((j) => j.user));
      for (const n of nodes) {
        const missing = [...this.noAccount].filter(([, ns]) => ns.has(n.name)).map(([u]) => u);
        if (missing.length) n.unixUsers = [...users].filter((u) => !missing.includes(u));
      }
    }
    let result;
    try {
      result = scheduleCluster({ now: this.clock.now() / 1000, nodes: nodes.map((n) => ({ ...n })), jobs, running: running.filter((r) => nodes.some((n) => n.name === r.node)), options: { strategy: this.opts.strategy ?? 'spread', reservations: 1 } });
    } catch (e) {
      this.opts.log?.('error', `scheduling failed: ${(e as Error).message}`);
      return;
    }
    this.why.clear();
    let pinnedNow = false;
    for (const pl of result.placements) {
      const w = byId.get(pl.job)!;
      this.waiting.delete(pl.job);
      if (pl.nodes && pl.nodes.length > 1) {
        this.placeGang(w, pl.nodes, pl);
        continue;
      }
      if (w.task.volumes.length > 0 && !this.pins.has(w.task.workflowId)) {
        pinnedNow = true;
        this.pins.set(w.task.workflowId, pl.node);
        if (this.pins.size > 10_000) this.pins.delete(this.pins.keys().next().value!);
      }
      const p: Placed = { task: w.task, node: pl.node, cores: pl.cores, memoryBytes: pl.memoryBytes, gpus: pl.gpus, started: false, lostAt: null, placedAt: this.clock.now() };
      this.placed.set(pl.job, p);
      const dispatch = (): void => {
        if (this.placed.get(pl.job) !== p) return; // killed meanwhile
        try {
          this.dir.assign(pl.node, w.task);
          if (p.placedAt !== undefined) this.opts.metrics?.sent((this.clock.now() - p.placedAt) / 1000);
        } catch (e) {
          // Its node went away between the placement and now: the task never reached it; place it again.
          this.opts.log?.('warn', `${pl.job} not sent to ${pl.node}: ${(e as Error).message}; placing it again`, { ...attemptFields(pl.job), node: pl.node });
          this.placed.delete(pl.job);
          this.waiting.set(pl.job, w);
          this.schedule();
        }
      };
      // The attempt row (node, term) is durable before the node hears of it.
      if (w.hooks.durable) {
        w.hooks.durable({ pid: null, cgroup: null, node: pl.node }).then(dispatch, (e: unknown) => {
          this.placed.delete(pl.job);
          this.emitExit({ attemptId: pl.job, exitCode: null, signal: null, reason: 'spawn-error', message: `could not record the attempt: ${(e as Error).message}`, durationMs: 0, at: this.clock.now() });
        });
      } else dispatch();
    }
    for (const pr of result.pending) {
      const w = byId.get(pr.job);
      if (!w || this.why.has(w.task.name)) continue;
      const pin = w.task.volumes.length > 0 ? (this.pins.get(w.task.workflowId) ?? w.task.pin) : undefined;
      const pinned = pin ? all.find((n) => n.name === pin) : undefined;
      if (pin && (!pinned || pinned.state !== 'ready')) this.why.set(w.task.name, `its volumes live on node ${pin}, which is ${pinned ? pinned.state : 'gone'}: it waits for it`);
      else this.why.set(w.task.name, all.length === 0 ? 'no node has joined the cluster yet (`warren token create`, then `warren agent` on a node)' : pr.status.message);
    }
    // The units held back behind a first one go in the next pass, now that it placed the volumes.
    if (again && pinnedNow) this.schedule();
  }
}

/** The assignment of a gang's part `index` (0: the launcher, the unit's own attempt id). */
function gangTask(task: TaskAssignment, nodes: GangInfo['nodes'], index: number): TaskAssignment {
  return { ...task, ...(index > 0 ? { attemptId: memberId(task.attemptId, index) } : {}), gang: { index, launcher: task.attemptId, nodes } };
}

/** Does this node's agent run multinode gangs (protocol 1.1 or later)? */
function runsGangs(info: NodeInfo): boolean {
  return info.protocol.major === AGENT_PROTOCOL.major && info.protocol.minor >= GANG_PROTOCOL_MINOR;
}

/** How a gang's unit ends: a failed rank first, then its launcher's success, then the part that failed first. */
function gangExit(g: Gang, ev: AttemptExited): AttemptExited {
  const f = g.rankFailure;
  if (f && !(ev.reason === 'exit' && ev.exitCode === 0) && !g.killed) {
    const what = f.exitCode !== null ? `exited with code ${f.exitCode}` : `was killed by signal ${f.signal}`;
    return { ...ev, reason: 'exit', exitCode: f.exitCode ?? ev.exitCode ?? 1, message: `rank ${f.rank ?? '?'} on node ${f.node} ${what}` };
  }
  if (ev.reason === 'exit' && ev.exitCode === 0) return ev;
  if (g.failure && !g.killed) return { ...ev, reason: g.failure.reason, exitCode: null, signal: null, message: g.failure.message };
  return ev;
}
