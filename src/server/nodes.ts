// The server's view of its nodes: who joined (a join token, a node X.509-SVID), who is alive
// (heartbeats; down after the grace, lost after more), what is queued for each (assignments,
// kills, log requests, taken by the agent's long poll and acknowledged by cursor), the
// reports they send (applied once per sequence number) and the revocations. The driver
// listens to the events ('report', 'attempts', 'up', 'down', 'lost') and reconciles; the
// registry only carries.
//
// Heartbeats are cheap: last-seen is kept in memory and written to the store only when the
// state changes or at most every 30 s per node; the sweep that finds silent nodes walks an
// in-memory map. Only this registry's clock and timers decide down and lost.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { WarrenError, toWarrenError, type WireError } from '../common/index.js';
import {
  consumeJoinToken,
  formatSpiffeId,
  hashToken,
  normalizeSerial,
  RevocationList,
  TrustBundle,
  x509,
  type CertificateAuthority,
  type RotationNode,
  type TokenStore,
} from '../mesh/index.js';
import {
  AGENT_PROTOCOL,
  RETENTION_PROTOCOL_MINOR,
  SERVICES_PROTOCOL_MINOR,
  checkProtocol,
  validateNodeInfo,
  type AgentLoad,
  type AgentTimers,
  type AttemptExited,
  type AttemptReady,
  type AttemptStarted,
  type AttemptState,
  type LaunchEvent,
  type LaunchOrder,
  type HealthReport,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JoinRequest,
  type JoinResponse,
  type KillOrder,
  type LogOrder,
  type LogRequest,
  type NodeInfo,
  type NodeState,
  type PollResponse,
  type RenewResponse,
  type RunsResponse,
  type TaskAssignment,
  type TunnelOrder,
} from '../agent/index.js';
import type { Duplex } from 'node:stream';
import type { MeshLog } from './mesh-tls.js';
import type { NodePatch, NodeRecord as StoredNode, Store } from '../store/index.js';
import type { AgentCounts, HeartbeatMetrics } from './metrics.js';


/** A node as the registry shows it: the store's record with the node's info typed and last-seen live. */
export interface RegisteredNode extends Omit<StoredNode, 'info' | 'lastSeenAt'> {
  info: NodeInfo;
  /** Live (in memory); the store's copy is at most 30 s older while the node is ready. */
  lastSeenAt: number;
  /** The node's health check's last result since this server heard from it (null: none, or no check). */
  health?: HealthReport | null;
}

/** Where the server keeps its nodes: these methods of the Store (SqliteStore, PgStore); MemoryNodeStore for tests. */
export type NodeStore = Pick<Store, 'upsertNode' | 'getNode' | 'listNodes' | 'patchNode' | 'deleteNode'>;

export class MemoryNodeStore implements NodeStore {
  private readonly nodes = new Map<string, StoredNode>();
  /** Writes so far (tests count them). */
  writes = 0;

  async upsertNode(r: StoredNode): Promise<void> {
    this.writes++;
    this.nodes.set(r.name, structuredClone(r));
  }
  async getNode(name: string): Promise<StoredNode | undefined> {
    const r = this.nodes.get(name);
    return r && structuredClone(r);
  }
  async listNodes(): Promise<StoredNode[]> {
    return [...this.nodes.values()].map((r) => structuredClone(r));
  }
  async patchNode(name: string, patch: NodePatch): Promise<boolean> {
    const r = this.nodes.get(name);
    if (!r) return false;
    this.writes++;
    Object.assign(r, structuredClone(patch));
    return true;
  }
  async deleteNode(name: string): Promise<boolean> {
    this.writes++;
    return this.nodes.delete(name);
  }
}

export interface NodeRegistryTimers {
  /** Agents heartbeat this often (default 5 s). */
  heartbeatMs: number;
  /** Base grace after a missed heartbeat before a node is down (default 10 s); scaled up with
   *  the number of nodes: max(graceMs, nodes / maxHeartbeatsPerSecond s), as Nomad does. */
  graceMs: number;
  /** Down this much longer -> lost: its work is given up (default 30 s). Never before the
   *  node has fenced itself: lost comes at least stopAfterMs + a heartbeat after last seen. */
  lostAfterMs: number;
  /** Told to agents: cut off this long, an agent kills its attempts (default 60 s). */
  stopAfterMs: number;
  /** Heartbeats per second the server is sized for (default 50, as Nomad): scales the grace. */
  maxHeartbeatsPerSecond?: number;
  /** Longest long poll held (default 25 s). */
  pollWaitMs?: number;
  /** How often the sweep runs (default: a twentieth of heartbeat + grace, 10 ms to 1 s). */
  sweepMs?: number;
  /** How long a log request waits for the node to start its upload (default 30 s). */
  logStartMs?: number;
  /** Write a ready node's lastSeenAt to the store at most this often (default 30 s). */
  persistSeenMs?: number;
}

export interface NodeRegistryOptions {
  store: NodeStore;
  ca: CertificateAuthority;
  tokens: TokenStore;
  trustDomain: string;
  clock?: () => number;
  timers?: Partial<NodeRegistryTimers>;
  /** Life of node certificates (default 1 h; renewed by the agent at half life). */
  certTtlSeconds?: number;
  /** The CAs agents trust (default: the CA's certificate). */
  trustBundle?: TrustBundle;
  /** Shared with MeshTls (agentRoutes makes it so). */
  revocations?: RevocationList;
  log?: MeshLog;
  /** A registry that starts (a new leader) marks no node down before this long from its start:
   *  the agents first have to find it (default 0: the grace alone). */
  startGraceMs?: number;
  /** Awaited before a heartbeat's reports are acknowledged (a driver that wants them durable first). */
  beforeAck?: (node: string, reports: Array<AttemptStarted | AttemptExited>) => Promise<void>;
  /** Told of every heartbeat and of every node marked down for missing them. */
  metrics?: HeartbeatMetrics;
  /** The status and end of workflows (Store.workflowEnds), for the nodes' retention sweeps. */
  workflowEnds?: Store['workflowEnds'];
  /** A provisioned node's tags (its inventory node's, profiles applied), or undefined when the
   *  name is not in the inventory: at join, its labels are these under the agent's own. */
  inventoryTags?: (name: string) => Promise<Record<string, string> | undefined>;
}

export interface NodeRegistryEvents {
  /** A started or exited report, once per report (in the agent's order). */
  report: [node: string, ev: AttemptStarted | AttemptExited, kind: 'started' | 'exited'];
  /** About a multinode job's daemons (the pool forwards it within the gang). */
  launch: [node: string, ev: LaunchEvent];
  /** A service's readiness probe passed (protocol 1.5). */
  ready: [node: string, ev: AttemptReady];
  /** The full attempt list a node sent on (re)connect: the driver reconciles. */
  attempts: [node: string, list: AttemptState[]];
  /** A node joined, or came back (down or lost before). */
  up: [node: string];
  /** A node missed its heartbeats past the grace. */
  down: [node: string];
  /** A node is given up (down too long, revoked or deleted): its attempts are lost. */
  lost: [node: string];
  revoked: [node: string];
  deleted: [node: string];
  /** The node's health check drained it (failing) or undrained it (passing again). */
  health: [node: string, change: 'drained' | 'undrained', reason: string, report: HealthReport];
}

/** A queued item; `given`: it went out in a poll answer at least once (it may be at the node). */
/** Where the route puts one part of a log upload. */
export interface LogSink {
  /** Take a chunk; false: the reader is gone, stop. */
  write(chunk: Uint8Array): Promise<boolean>;
  /** This part is done and more follow. */
  partDone(): void;
  /** The last part is done. */
  end(): void;
  /** The node could not read the log, or the upload broke off. */
  fail(e: WireError | Error): void;
}

/** What one node's proxy wants to hear (watchNode). */
export interface NodeWatcher {
  report?(ev: AttemptStarted | AttemptExited, kind: 'started' | 'exited'): void;
  ready?(ev: AttemptReady): void;
  lost?(): void;
}

type Item =
  | { cursor: number; given?: boolean; kind: 'assign'; a: TaskAssignment }
  | { cursor: number; given?: boolean; kind: 'kill'; k: KillOrder }
  | { cursor: number; given?: boolean; kind: 'log'; l: LogOrder }
  | { cursor: number; given?: boolean; kind: 'stopLog'; requestId: string }
  | { cursor: number; given?: boolean; kind: 'launch'; o: LaunchOrder }
  | { cursor: number; given?: boolean; kind: 'forget'; ids: string[] }
  | { cursor: number; given?: boolean; kind: 'tunnel'; t: TunnelOrder };

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

interface Waiter {
  resolve: (r: PollResponse) => void;
  timer: NodeJS.Timeout;
  onAbort: (() => void) | undefined;
  signal: AbortSignal | undefined;
}

interface Live {
  rec: RegisteredNode;
  lastSeen: number;
  persistedSeen: number;
  reports: { epoch: string; acked: number } | null;
  queue: Item[];
  waiter: Waiter | null;
  wake: boolean;
  /** The last full attempt list, null until the node sent one since it was last down (or the registry started). */
  attempts: AttemptState[] | null;
  attemptWaiters: Array<(a: AttemptState[] | null) => void>;
  load: AgentLoad | null;
  /** Store writes of this node, in order. */
  writes: Promise<void>;
  /** The CAs (fingerprints) the node trusts, as far as this server knows: what its heartbeats
   *  say (protocol 1.3), or, from an older agent, the bundle sent with the certificate it presents. */
  trusts: string[] | null;
  /** The last certificate issued to it and the bundle sent with it. */
  issued: { serial: string; bundle: string[] } | null;
  /** The node's report batches, one at a time (with beforeAck). */
  reporting: Promise<void>;
}

/** A log stream between an agent's upload and the reader of requestLogs. */
class LogChannel {
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | null = null;
  /** The reader went away: stop taking bytes. */
  closed = false;
  started = false;
  /** The upload ended (or failed): nothing to stop. */
  finished = false;
  /** Between two parts of an upload: the next must come within logStartMs. */
  partTimer: NodeJS.Timeout | undefined;
  private wakeReader: (() => void) | null = null;
  private wakeWriter: (() => void) | null = null;

  constructor(readonly requestId: string, readonly node: string) {}

  /** Take a chunk; resolves when there is room again (false: the reader is gone, stop). */
  async write(chunk: Uint8Array): Promise<boolean> {
    if (this.closed || this.ended) return false;
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
    this.wakeReader?.();
    while (this.bytes > 1 << 20 && !this.closed) await new Promise<void>((r) => (this.wakeWriter = r));
    return !this.closed;
  }

  end(): void {
    this.ended = true;
    this.wakeReader?.();
  }

  fail(e: Error): void {
    if (this.ended) return;
    this.failure = e;
    this.ended = true;
    this.wakeReader?.();
  }

  close(): void {
    this.closed = true;
    if (this.partTimer) clearTimeout(this.partTimer);
    this.chunks.length = 0;
    this.bytes = 0;
    this.wakeWriter?.();
  }

  /** The next chunk, null at the end; throws the failure. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const c = this.chunks.shift();
      if (c) {
        this.bytes -= c.byteLength;
        if (this.bytes <= 1 << 20) this.wakeWriter?.();
        return c;
      }
      if (this.failure) throw this.failure;
      if (this.ended || this.closed) return null;
      await new Promise<void>((r) => (this.wakeReader = r));
      this.wakeReader = null;
    }
  }
}

const DEFAULT_TIMERS: NodeRegistryTimers = {
  heartbeatMs: 5_000,
  graceMs: 10_000,
  lostAfterMs: 30_000,
  stopAfterMs: 60_000,
  maxHeartbeatsPerSecond: 50,
  pollWaitMs: 25_000,
  logStartMs: 30_000,
  persistSeenMs: 30_000,
};

/** At most this many items in one poll answer. */
const MAX_POLL_ITEMS = 1000;

export class NodeRegistry extends EventEmitter<NodeRegistryEvents> {
  readonly timers: Required<NodeRegistryTimers>;
  readonly revocations: RevocationList;
  /** This registry's queue identity (poll cursors are valid within it). */
  readonly epoch = randomBytes(8).toString('hex');
  private readonly clock: () => number;
  private readonly byName = new Map<string, Live>();
  /** The inventory tags each provisioned node got at its join (merged under its heartbeats' labels too). */
  private readonly tags = new Map<string, Record<string, string>>();
  private readonly logs = new Map<string, LogChannel>();
  /** Port forwards asked of nodes, waiting for the node's tunnel (GET /agent/v1/tunnels/:id). */
  private readonly tunnels = new Map<string, { node: string; resolve: (s: Duplex) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** The CA that signs node certificates and the bundle agents are told to trust (useAuthority changes them in a CA rotation). */
  private ca: CertificateAuthority;
  private bundle: TrustBundle;
  private readonly log: MeshLog;
  /** Per-node subscribers (RemoteAgent): a report reaches its node's, not every node's. */
  private readonly watchers = new Map<string, Set<NodeWatcher>>();
  private nextCursor = 1;
  private sweeper: NodeJS.Timeout | undefined;
  private started = false;
  private closed = false;

  constructor(private readonly opts: NodeRegistryOptions) {
    super();
    const t = { ...DEFAULT_TIMERS, ...opts.timers };
    const sweepMs = t.sweepMs ?? Math.max(10, Math.min(1000, Math.round((t.heartbeatMs + t.graceMs) / 20)));
    this.timers = { ...t, sweepMs } as Required<NodeRegistryTimers>;
    this.clock = opts.clock ?? Date.now;
    this.revocations = opts.revocations ?? new RevocationList();
    this.ca = opts.ca;
    this.bundle = opts.trustBundle ?? new TrustBundle([opts.ca.certPem]);
    this.log = opts.log ?? (() => {});
  }

  /**
   * A CA rotation moved on: certificates are issued by `ca` from now on, and agents are told
   * to trust `bundle` (in their next heartbeat answer) and to renew when theirs is from another CA.
   */
  useAuthority(ca: CertificateAuthority, bundle: TrustBundle): void {
    this.ca = ca;
    this.bundle = bundle;
  }

  /** What a CA rotation needs to know of each node (src/mesh rotationStep). */
  rotationNodes(): RotationNode[] {
    return [...this.byName.values()].map((l) => ({ name: l.rec.name, state: l.rec.state, trusts: l.trusts, certCa: l.rec.certCa }));
  }

  /** Load the nodes from the store and start the sweep. Nodes that were ready get a full heartbeat period from now. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const now = this.clock();
    for (const rec of await this.opts.store.listNodes()) {
      if (rec.state === 'revoked') this.revocations.revokeId(this.uri(rec.name));
      const node: RegisteredNode = { ...rec, info: rec.info as unknown as NodeInfo, lastSeenAt: rec.lastSeenAt ?? rec.joinedAt };
      this.byName.set(rec.name, this.live(node, Math.max(node.lastSeenAt, now)));
    }
    this.quietUntil = now + (this.opts.startGraceMs ?? 0);
    this.sweeper = setInterval(() => this.sweep(), this.timers.sweepMs);
    this.sweeper.unref();
  }

  /** Before this (the registry's start + startGraceMs) no node is marked down. */
  private quietUntil = 0;

  /** Stop the sweep, answer the waiting polls, end the log streams, and wait for the store writes. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const l of this.byName.values()) this.answerPoll(l, true);
    for (const ch of this.logs.values()) ch.fail(new WarrenError('AGENT_NODE_UNAVAILABLE', `the log stream of node ${ch.node} ended: the server is shutting down`, { hint: 'ask again when the server is back' }));
    this.logs.clear();
    for (const [id, t] of this.tunnels) {
      clearTimeout(t.timer);
      t.reject(new WarrenError('AGENT_NODE_UNAVAILABLE', `the port forward through node ${t.node} was not opened: the server is shutting down`, { hint: 'try again when the server is back' }));
      this.tunnels.delete(id);
    }
    await Promise.all([...this.byName.values()].map((l) => l.writes));
  }

  /** Wait until the store writes made so far (written behind) are done. */
  async flush(): Promise<void> {
    await Promise.all([...this.byName.values()].map((l) => l.writes));
  }

  /** The node's info with its inventory tags under its own labels. */
  private withTags(name: string, info: NodeInfo): NodeInfo {
    const t = this.tags.get(name);
    return t ? { ...info, labels: { ...t, ...info.labels } } : info;
  }

  private live(rec: RegisteredNode, lastSeen: number): Live {
    return { rec, lastSeen, persistedSeen: rec.lastSeenAt, reports: null, queue: [], waiter: null, wake: false, attempts: null, attemptWaiters: [], load: null, writes: Promise.resolve(), reporting: Promise.resolve(), trusts: null, issued: null };
  }

  private uri(name: string): string {
    return formatSpiffeId(this.opts.trustDomain, 'node', name).uri;
  }

  private agentTimers(): AgentTimers {
    return { heartbeatMs: this.timers.heartbeatMs, stopAfterMs: this.timers.stopAfterMs, pollWaitMs: this.timers.pollWaitMs };
  }

  /** The grace, scaled with the number of nodes (a server that takes over must hear from all of them). */
  get graceMs(): number {
    return Math.max(this.timers.graceMs, Math.ceil((1000 * this.byName.size) / this.timers.maxHeartbeatsPerSecond));
  }

  /** How long after it was last seen a node is lost (never before it fenced itself). */
  get lostAfterSeenMs(): number {
    const t = this.timers;
    return Math.max(t.heartbeatMs + this.graceMs + t.lostAfterMs, t.stopAfterMs + t.heartbeatMs + Math.min(1000, t.stopAfterMs / 10));
  }

  private persist(l: Live, patch: NodePatch): void {
    const name = l.rec.name;
    l.writes = l.writes.then(
      () =>
        this.opts.store.patchNode(name, patch).then(
          () => undefined,
          (e: unknown) => this.log('error', `could not write node ${name} to the store: ${(e as Error).message}`, { node: name }),
        ),
    );
  }

  private setState(l: Live, state: NodeState, now: number): void {
    if (l.rec.state === state) return;
    l.rec.state = state;
    l.rec.stateChangedAt = now;
    l.rec.lastSeenAt = l.lastSeen;
    l.persistedSeen = l.lastSeen;
    this.persist(l, { state, stateChangedAt: now, lastSeenAt: l.lastSeen });
  }

  /** The node, if it may talk to the server now; refused (unknown, revoked) otherwise. */
  private check(node: string): Live {
    const l = this.byName.get(node);
    if (!l) {
      throw new WarrenError('AGENT_NODE_UNKNOWN', `node ${node} is not registered with this server (it was deleted, or never joined)`, {
        hint: 'join it again with a new join token (`warren token create`), after removing the agent\'s data directory',
        details: { node },
      });
    }
    if (l.rec.state === 'revoked') {
      throw new WarrenError('MESH_REVOKED', `node ${node} is revoked`, { hint: 'if this node is trusted again, delete it (`warren node rm`) and let it join again with a new token', details: { node } });
    }
    return l;
  }

  /** A request from the node: it is alive. */
  private seen(l: Live): void {
    const now = this.clock();
    l.lastSeen = now;
    if (l.rec.state === 'down' || l.rec.state === 'lost') {
      this.setState(l, 'ready', now);
      this.log('info', `node ${l.rec.name} is back`, { node: l.rec.name });
      this.emit('up', l.rec.name);
    }
  }

  /** Mark silent nodes down, then lost; write last-seen behind. Runs on a timer; tests call it with a fake clock. */
  sweep(): void {
    const now = this.clock();
    const down = this.timers.heartbeatMs + this.graceMs;
    const lost = this.lostAfterSeenMs;
    for (const l of this.byName.values()) {
      const silent = now - l.lastSeen;
      const name = l.rec.name;
      if (l.rec.state === 'ready' && silent > down && now >= this.quietUntil) {
        this.setState(l, 'down', now);
        l.attempts = null;
        this.opts.metrics?.missed();
        this.log('warn', `node ${name} missed its heartbeats for ${Math.round(silent / 1000)} s: down`, { node: name });
        this.emit('down', name);
      }
      if (l.rec.state === 'down' && silent > lost) {
        this.markLost(l, now, `node ${name} was not heard from for ${Math.round(silent / 1000)} s`);
      } else if (l.rec.state === 'ready' && l.lastSeen - l.persistedSeen >= this.timers.persistSeenMs) {
        l.persistedSeen = l.lastSeen;
        l.rec.lastSeenAt = l.lastSeen;
        this.persist(l, { lastSeenAt: l.lastSeen });
      }
    }
  }

  private markLost(l: Live, now: number, why: string): void {
    const name = l.rec.name;
    if (l.rec.state !== 'revoked') this.setState(l, 'lost', now);
    l.attempts = null;
    // What was queued will not run: the driver gives the node's work up on 'lost' and
    // reconciles with the attempt list when the node comes back.
    l.queue = [];
    this.answerPoll(l, true);
    this.failLogs(name, `${why}: its log stream ended`);
    this.log('warn', `${why}: lost`, { node: name });
    this.emit('lost', name);
    for (const w of this.watchers.get(name) ?? []) w.lost?.();
  }

  private failLogs(node: string, message: string): void {
    for (const ch of [...this.logs.values()]) {
      if (ch.node !== node) continue;
      ch.fail(new WarrenError('AGENT_NODE_UNAVAILABLE', message, { hint: 'ask again when the node is back (`warren node ls`)', details: { node } }));
      this.logs.delete(ch.requestId);
    }
  }

  /** Hear one node's reports and its loss (cheaper than the events with thousands of nodes). Returns the unsubscribe. */
  watchNode(name: string, w: NodeWatcher): () => void {
    let set = this.watchers.get(name);
    if (!set) this.watchers.set(name, (set = new Set()));
    set.add(w);
    return () => {
      const s = this.watchers.get(name);
      if (!s) return;
      s.delete(w);
      if (s.size === 0) this.watchers.delete(name);
    };
  }

  // ---- join and certificates ----

  /** A node joins: the token is used once, the node info checked, the request signed (a node X.509-SVID). */
  async join(req: JoinRequest): Promise<JoinResponse> {
    checkProtocol(req.protocol, 'agent');
    try {
      validateNodeInfo(req.info);
    } catch (e) {
      this.refusal('join', req.info?.name, e);
      throw e;
    }
    const name = req.info.name;
    const before = this.byName.get(name);
    if (before?.rec.state === 'revoked') {
      throw new WarrenError('MESH_REVOKED', `node ${name} is revoked and cannot join again under that name`, { hint: `delete it first (\`warren node rm ${name}\`) if it is trusted again, then join with a new token`, details: { node: name } });
    }
    // Read the request before the token is used: a bad request must not cost the token.
    try {
      const csr = new x509.Pkcs10CertificateRequest(req.csr);
      if (!(await csr.verify())) throw new Error('its signature does not verify');
    } catch (e) {
      throw new WarrenError('MESH_CSR_INVALID', `the certificate request of node ${name} cannot be used: ${(e as Error).message}`, { hint: 'send a PEM PKCS#10 request signed with the key in it (the agent makes one)', cause: e });
    }
    // A provisioned node: its inventory tags are its labels, under the agent's own --labels.
    const tags = await this.opts.inventoryTags?.(name);
    if (tags) this.tags.set(name, tags);
    else this.tags.delete(name);
    req = { ...req, info: this.withTags(name, req.info) };
    const now = this.clock();
    // A boot token (minted by the boot service, bound to this name) does not replace an agent
    // that is up: anyone on a running node could fetch its system overlay from its address.
    if (before && before.rec.state === 'ready' && now - before.lastSeen <= this.timers.heartbeatMs + this.graceMs) {
      const t = await this.opts.tokens.get(hashToken(req.token));
      if (t?.node === name) {
        throw new WarrenError('PROVISION_NODE_UP', `node ${name} is up (its agent was heard from ${Math.round((now - before.lastSeen) / 1000)} s ago): a boot token cannot replace a running node's agent`, {
          hint: `if the node really rebooted, its old agent is down within ${Math.round((this.timers.heartbeatMs + this.graceMs) / 1000)} s: boot it again then; to replace it now, \`warren node rm ${name}\` first`,
          details: { node: name },
        });
      }
    }
    await consumeJoinToken(this.opts.tokens, req.token, now, name);
    const signer = this.ca;
    const issued = await signer.issue(req.csr, { kind: 'node', name, ...(this.opts.certTtlSeconds !== undefined ? { ttlSeconds: this.opts.certTtlSeconds } : {}) });
    if (before && before.rec.certSerial) {
      // The name joins again (a new machine, a wiped data directory): the old certificate is out.
      this.revocations.revokeSerial(before.rec.certSerial, new Date(now + (this.opts.certTtlSeconds ?? 3600) * 1000 + 60_000));
    }
    const rec: RegisteredNode = { name, info: req.info, state: 'ready', drained: before?.rec.drained ?? false, drainReason: before?.rec.drainReason ?? null, drainedBy: before?.rec.drainedBy ?? null, certSerial: issued.serial, certCa: signer.fingerprint, joinedAt: now, lastSeenAt: now, stateChangedAt: now };
    await this.opts.store.upsertNode({ ...rec, info: rec.info as unknown as Record<string, unknown> });
    const l = before ?? this.live(rec, now);
    l.rec = rec;
    l.lastSeen = now;
    l.persistedSeen = now;
    l.reports = null;
    l.attempts = null;
    l.trusts = null;
    l.issued = { serial: issued.serial, bundle: this.bundle.fingerprints };
    this.byName.set(name, l);
    this.log('info', `node ${name} joined (${req.info.cores} cores, ${Math.round(req.info.memoryBytes / 2 ** 20)} MiB, ${req.info.gpus.length} GPUs)`, { node: name, serial: issued.serial });
    this.emit('up', name);
    return {
      protocol: { ...AGENT_PROTOCOL },
      node: name,
      spiffeId: issued.spiffeId.uri,
      certPem: issued.certPem,
      bundlePem: this.bundlePem,
      notAfter: issued.notAfter.getTime(),
      ...this.agentTimers(),
    };
  }

  get bundlePem(): string {
    return this.bundle.pem.join('\n') + '\n';
  }

  /** A new certificate for a new key (the agent renews at half life over mutual TLS). */
  async renew(node: string, csr: string): Promise<RenewResponse> {
    const l = this.check(node);
    this.seen(l);
    const issued = await this.ca.issue(csr, { kind: 'node', name: node, ...(this.opts.certTtlSeconds !== undefined ? { ttlSeconds: this.opts.certTtlSeconds } : {}) });
    l.rec.certSerial = issued.serial;
    l.issued = { serial: issued.serial, bundle: this.bundle.fingerprints };
    this.persist(l, { certSerial: issued.serial });
    return { certPem: issued.certPem, bundlePem: this.bundlePem, notAfter: issued.notAfter.getTime() };
  }

  private refusal(what: string, node: unknown, e: unknown): void {
    const err = toWarrenError(e);
    this.log('warn', `refused the ${what} of node ${typeof node === 'string' ? node.slice(0, 100) : '?'}: ${err.message}`, { code: err.code, node: typeof node === 'string' ? node.slice(0, 100) : null });
  }

  // ---- heartbeats and reports ----

  /**
   * A heartbeat. `peer`: the certificate the node presented on this connection (its serial and
   * the CA that issued it), from the agent route: what a CA rotation goes by.
   */
  async heartbeat(node: string, hb: HeartbeatRequest, peer?: { serial: string; issuer: string }): Promise<HeartbeatResponse> {
    try {
      checkProtocol(hb.protocol, 'agent');
    } catch (e) {
      this.refusal('heartbeat', node, e);
      throw e;
    }
    const l = this.check(node);
    this.seen(l);
    this.opts.metrics?.heartbeat();
    if (hb.info) {
      try {
        validateNodeInfo(hb.info, node);
      } catch (e) {
        this.refusal('heartbeat', node, e);
        throw e;
      }
      const info = this.withTags(node, hb.info);
      if (JSON.stringify(info) !== JSON.stringify(l.rec.info)) {
        l.rec.info = info;
        this.persist(l, { info: info as unknown as Record<string, unknown> });
      }
    }
    if (hb.load) l.load = hb.load;
    if (peer && peer.issuer !== l.rec.certCa) {
      l.rec.certCa = peer.issuer;
      this.persist(l, { certCa: peer.issuer });
    }
    if (hb.trust) l.trusts = [...hb.trust];
    else if (peer && l.issued?.serial === normalizeSerial(peer.serial)) l.trusts = l.issued.bundle;
    if (hb.health) this.applyHealth(l, hb.health);
    if (hb.attempts) {
      l.attempts = hb.attempts;
      for (const w of l.attemptWaiters.splice(0)) w(hb.attempts);
      this.emit('attempts', node, hb.attempts);
    }
    const apply = (): Promise<void> | void => {
      if (!l.reports || l.reports.epoch !== hb.epoch) l.reports = { epoch: hb.epoch, acked: 0 };
      const state = l.reports;
      const applied: Array<AttemptStarted | AttemptExited> = [];
      let acked = state.acked;
      for (const r of [...(hb.reports ?? [])].sort((a, b) => a.seq - b.seq)) {
        if (r.seq <= acked) continue; // a retried batch: applied already
        acked = r.seq;
        if (r.type === 'launch') {
          // Not a state change of an attempt: forwarded now, nothing to make durable.
          this.emit('launch', node, r.event);
          continue;
        }
        if (r.type === 'ready') {
          // The driver records it (the unit's state); a new server that adopts the service knows it from there.
          this.emit('ready', node, r.event);
          const ws = this.watchers.get(node);
          if (ws) for (const w of ws) w.ready?.(r.event);
          continue;
        }
        applied.push(r.event);
        this.emit('report', node, r.event, r.type);
        const ws = this.watchers.get(node);
        if (ws) for (const w of ws) w.report?.(r.event, r.type);
      }
      if (!applied.length || !this.opts.beforeAck) {
        state.acked = acked;
        return;
      }
      // Acknowledged only once the driver has them durable (a failure: the agent sends them again).
      return this.opts.beforeAck(node, applied).then(() => {
        state.acked = Math.max(state.acked, acked);
      });
    };
    if (this.opts.beforeAck) {
      // One batch of a node at a time: a retry that overtakes the first is not applied twice.
      const run = l.reporting.then(apply);
      l.reporting = run.catch(() => undefined);
      try {
        // Liveness never waits on the store: past a bound, the answer goes without the ack.
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((r) => (timer = setTimeout(r, Math.max(100, Math.min(1000, Math.floor(this.graceMs / 4))))));
        await Promise.race([run, bound]).finally(() => clearTimeout(timer));
      } catch (e) {
        // Not durable yet (the store is down): the node stays alive, its reports stay
        // unacknowledged and come again with its next heartbeat (applied once: the driver
        // ignores what it already has).
        this.log('warn', `reports of node ${node} not acknowledged yet: ${(e as Error).message}`);
      }
    } else apply();
    return {
      protocol: { ...AGENT_PROTOCOL },
      ack: l.reports!.acked,
      resync: l.attempts === null && !hb.attempts,
      state: l.rec.state,
      drained: l.rec.drained,
      ...this.agentTimers(),
      // A CA rotation (protocol 1.3): the bundle to trust, to an agent that says it trusts another;
      // renew now, to one whose certificate is not from the CA that signs now.
      ...(hb.trust && !this.bundle.sameAs(hb.trust) ? { bundlePem: this.bundlePem } : {}),
      ...(peer && peer.issuer !== this.ca.fingerprint ? { renew: true } : {}),
    };
  }

  /** The attempt list the node sends on (re)connect: the last one, or the next one within `waitMs`. */
  async attempts(node: string, waitMs = this.timers.heartbeatMs + this.graceMs): Promise<AttemptState[] | null> {
    const l = this.byName.get(node);
    if (!l) return null;
    if (l.attempts) return l.attempts;
    return new Promise((resolve) => {
      const done = (a: AttemptState[] | null): void => {
        clearTimeout(timer);
        resolve(a);
      };
      const timer = setTimeout(() => {
        const i = l.attemptWaiters.indexOf(done);
        if (i >= 0) l.attemptWaiters.splice(i, 1);
        resolve(null);
      }, waitMs);
      l.attemptWaiters.push(done);
    });
  }

  // ---- the queue of a node and its long poll ----

  private enqueue(l: Live, item: DistributiveOmit<Item, 'cursor'>): void {
    l.queue.push({ ...item, cursor: this.nextCursor++ } as Item);
    if (l.waiter && !l.wake) {
      // Answer in the next turn: what is queued in one go (a burst of assignments) goes in one answer.
      l.wake = true;
      setImmediate(() => {
        l.wake = false;
        this.answerPoll(l, false);
      });
    }
  }

  private batch(l: Live): PollResponse {
    const r: PollResponse = { epoch: this.epoch, cursor: 0, assignments: [], kills: [], logRequests: [], stopLogs: [] };
    const n = Math.min(l.queue.length, MAX_POLL_ITEMS);
    for (let i = 0; i < n; i++) {
      const it = l.queue[i]!;
      it.given = true;
      r.cursor = it.cursor;
      if (it.kind === 'assign') r.assignments.push(it.a);
      else if (it.kind === 'kill') r.kills.push(it.k);
      else if (it.kind === 'log') r.logRequests.push(it.l);
      else if (it.kind === 'launch') (r.launches ??= []).push(it.o);
      else if (it.kind === 'forget') (r.forget ??= []).push(...it.ids);
      else if (it.kind === 'tunnel') (r.tunnels ??= []).push(it.t);
      else r.stopLogs.push(it.requestId);
    }
    return r;
  }

  private answerPoll(l: Live, empty: boolean): void {
    const w = l.waiter;
    if (!w) return;
    l.waiter = null;
    clearTimeout(w.timer);
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    w.resolve(empty ? { epoch: this.epoch, cursor: 0, assignments: [], kills: [], logRequests: [], stopLogs: [] } : this.batch(l));
  }

  /**
   * The node's long poll: answers at once with what is queued, else as soon as something is,
   * else after waitMs with nothing. `ack` drops what the agent took from earlier answers;
   * until acknowledged, an item is given again (an answer lost with its connection is not lost).
   */
  async poll(node: string, waitMs: number, signal?: AbortSignal, ack?: { epoch: string; cursor: number }): Promise<PollResponse> {
    const l = this.check(node);
    this.seen(l);
    if (ack && ack.epoch === this.epoch && ack.cursor > 0) {
      let i = 0;
      while (i < l.queue.length && l.queue[i]!.cursor <= ack.cursor) i++;
      if (i) l.queue.splice(0, i);
    }
    // One long poll per node: an older one (a connection the agent gave up) answers empty.
    this.answerPoll(l, true);
    if (l.queue.length || this.closed) return this.batch(l);
    const wait = Math.max(0, Math.min(waitMs, this.timers.pollWaitMs));
    if (wait === 0 || signal?.aborted) return this.batch(l);
    return new Promise((resolve) => {
      const w: Waiter = {
        resolve,
        timer: setTimeout(() => this.answerPoll(l, false), wait),
        onAbort: undefined,
        signal,
      };
      if (signal) {
        w.onAbort = () => {
          if (l.waiter === w) this.answerPoll(l, true);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      l.waiter = w;
    });
  }

  /** Queue an attempt for the node (its row is durable already). Refused for a lost or revoked node. */
  assign(node: string, assignment: TaskAssignment): void {
    const l = this.check(node);
    if (l.rec.state === 'lost') {
      throw new WarrenError('AGENT_NODE_UNAVAILABLE', `node ${node} is lost (not heard from since ${new Date(l.lastSeen).toISOString()}): ${assignment.attemptId} was not sent`, {
        hint: 'the scheduler places it on another node; `warren node ls` shows the nodes',
        details: { node, attemptId: assignment.attemptId },
      });
    }
    if (l.queue.some((it) => it.kind === 'assign' && it.a.attemptId === assignment.attemptId)) return;
    this.enqueue(l, { kind: 'assign', a: assignment });
  }

  /** An order about a multinode job's daemons. False if the node is not there to tell. */
  launch(node: string, o: LaunchOrder): boolean {
    const l = this.byName.get(node);
    if (!l || l.rec.state === 'lost' || l.rec.state === 'revoked') return false;
    this.enqueue(l, { kind: 'launch', o });
    return true;
  }

  // ---- port forwards (protocol 1.5) ----

  /**
   * A stream to `port` of a service attempt on `node`: the node is asked (in its long poll) to
   * open a tunnel to the server, which its agent joins to the service's port there.
   */
  tunnel(node: string, attemptId: string, port: number, timeoutMs = 15_000): Promise<Duplex> {
    const l = this.check(node);
    if (l.rec.state !== 'ready') {
      return Promise.reject(new WarrenError('AGENT_NODE_UNAVAILABLE', `node ${node} is ${l.rec.state}: a port forward to it cannot be opened now`, { hint: 'try again when the node is back (`warren node ls`)', details: { node } }));
    }
    const v = l.rec.info.protocol;
    if (!v || v.major !== AGENT_PROTOCOL.major || v.minor < SERVICES_PROTOCOL_MINOR) {
      return Promise.reject(
        new WarrenError('SERVICE_FORWARD_UNSUPPORTED', `node ${node}'s agent speaks protocol ${v?.major ?? '?'}.${v?.minor ?? '?'}, which has no port forwarding (it came with 1.${SERVICES_PROTOCOL_MINOR})`, {
          hint: `upgrade the agent of node ${node} to this server's release`,
          details: { node },
        }),
      );
    }
    const tunnelId = randomBytes(12).toString('base64url');
    return new Promise<Duplex>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.tunnels.delete(tunnelId)) return;
        reject(new WarrenError('SERVICE_FORWARD_FAILED', `node ${node} did not open the port forward within ${Math.round(timeoutMs / 1000)} s`, { hint: 'check that its agent runs (`warren node ls`), then try again', details: { node } }));
      }, timeoutMs);
      this.tunnels.set(tunnelId, { node, resolve, reject, timer });
      this.enqueue(l, { kind: 'tunnel', t: { tunnelId, attemptId, port } });
    });
  }

  /** The node's side of a tunnel arrived (its upgraded connection), or the error it met. False: no such tunnel waits (for this node). */
  acceptTunnel(node: string, tunnelId: string, got: { stream: Duplex } | { error: WireError }): boolean {
    const t = this.tunnels.get(tunnelId);
    if (!t || t.node !== node) return false;
    this.tunnels.delete(tunnelId);
    clearTimeout(t.timer);
    if ('error' in got) t.reject(WarrenError.fromWire(got.error));
    else t.resolve(got.stream);
    return true;
  }

  /** Tell the node to stop an attempt (it reports exited). False if the node is not there to tell. */
  kill(node: string, attemptId: string, reason: KillOrder['reason']): boolean {
    const l = this.byName.get(node);
    if (!l || l.rec.state === 'lost' || l.rec.state === 'revoked') return false;
    this.enqueue(l, { kind: 'kill', k: { attemptId, reason } });
    return true;
  }

  // ---- retention ----

  /** The server pruned these workflows: every node that can be told deletes its copies of their
   *  run directories (a node that is away finds out with its own sweep, through runs()). */
  forget(ids: string[]): void {
    if (ids.length === 0) return;
    for (const l of this.byName.values()) {
      if (l.rec.state === 'lost' || l.rec.state === 'revoked') continue;
      if ((l.rec.info.protocol?.minor ?? 0) < RETENTION_PROTOCOL_MINOR && l.rec.info.protocol?.major === AGENT_PROTOCOL.major) continue;
      this.enqueue(l, { kind: 'forget', ids: [...ids] });
    }
  }

  /** Which of these workflows the store has, and whether they ended (a node's retention sweep). */
  async runs(node: string, ids: string[]): Promise<RunsResponse> {
    this.check(node);
    if (!this.opts.workflowEnds) throw new WarrenError('AGENT_NODE_UNAVAILABLE', 'this server does not answer which runs ended', { hint: 'upgrade the server; until then the node keeps its run directories' });
    const ends = await this.opts.workflowEnds(ids.slice(0, 1000));
    return { runs: [...ends].map(([id, e]) => ({ id, status: e.status, endedAt: e.endedAt })) };
  }

  // ---- logs ----

  /**
   * A job's log from the node: the request is queued when iteration starts, the node uploads
   * the bytes on its own connection (POST /agent/v1/logs/:requestId) and they stream through.
   * With follow, until the attempt ends or `signal` aborts (then the node is told to stop).
   */
  requestLogs(node: string, req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    return this.logStream(node, req, signal);
  }

  private async *logStream(node: string, req: LogRequest, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const l = this.check(node);
    if (l.rec.state === 'lost') {
      throw new WarrenError('AGENT_NODE_UNAVAILABLE', `node ${node} is lost: its logs cannot be read now`, { hint: 'ask again when the node is back (`warren node ls`)', details: { node } });
    }
    const requestId = randomBytes(12).toString('base64url');
    const ch = new LogChannel(requestId, node);
    this.logs.set(requestId, ch);
    this.enqueue(l, { kind: 'log', l: { requestId, request: req } });
    const startTimer = setTimeout(() => {
      if (!ch.started) ch.fail(new WarrenError('AGENT_NODE_UNAVAILABLE', `node ${node} did not send the log within ${Math.round(this.timers.logStartMs / 1000)} s`, { hint: 'check that its agent runs (`warren node ls`), then ask again', details: { node } }));
    }, this.timers.logStartMs);
    const onAbort = (): void => ch.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        if (signal?.aborted) return;
        const c = await ch.next();
        if (c === null) return;
        yield c;
      }
    } finally {
      clearTimeout(startTimer);
      signal?.removeEventListener('abort', onAbort);
      const wasOpen = this.logs.get(requestId) === ch;
      this.logs.delete(requestId);
      ch.close();
      const live = this.byName.get(node);
      if (wasOpen && live && live.rec.state !== 'revoked') {
        // The reader stopped first: drop the request if it is still queued; tell the node to stop
        // if it may have it (it went out in an answer).
        const i = live.queue.findIndex((it) => it.kind === 'log' && it.l.requestId === requestId);
        const given = i < 0 || live.queue[i]!.given === true;
        if (i >= 0) live.queue.splice(i, 1);
        if (given && !ch.finished) this.enqueue(live, { kind: 'stopLog', requestId });
      }
    }
  }

  /**
   * The sink of one part of an upload (the route feeds the request body through it). An
   * upload comes in parts (each request short enough for the server's request timeout):
   * `partDone()` after a part that says more follow, `end()` after the last. Refused for an
   * unknown request or another node's.
   */
  logUpload(node: string, requestId: string): LogSink {
    const l = this.check(node);
    this.seen(l);
    const ch = this.logs.get(requestId);
    if (!ch || ch.node !== node) {
      throw new WarrenError('AGENT_LOG_UNKNOWN', `no log request ${requestId} is waiting for node ${node} (the reader went away, or it was for another node)`, { hint: 'stop this upload', details: { node, requestId } });
    }
    ch.started = true;
    if (ch.partTimer) clearTimeout(ch.partTimer);
    ch.partTimer = undefined;
    return {
      write: (c) => ch.write(c),
      partDone: () => {
        // The next part must come soon, or the reader is told the stream broke off.
        ch.partTimer = setTimeout(() => {
          if (this.logs.get(requestId) !== ch) return;
          ch.finished = true;
          ch.fail(new WarrenError('AGENT_LOG_INTERRUPTED', `node ${node} did not send the next part of the log within ${Math.round(this.timers.logStartMs / 1000)} s`, { hint: 'ask for the log again', details: { node } }));
          this.logs.delete(requestId);
        }, this.timers.logStartMs);
      },
      end: () => {
        ch.finished = true;
        ch.end();
        this.logs.delete(requestId);
      },
      fail: (e) => {
        ch.finished = true;
        ch.fail(e instanceof Error ? e : WarrenError.fromWire(e));
        this.logs.delete(requestId);
      },
    };
  }

  // ---- administration ----

  get(name: string): RegisteredNode | undefined {
    const l = this.byName.get(name);
    return l && { ...l.rec, lastSeenAt: l.lastSeen };
  }

  /** Every node, with its live last-seen time. */
  list(): RegisteredNode[] {
    return [...this.byName.values()].map((l) => ({ ...l.rec, lastSeenAt: l.lastSeen }));
  }

  /** How many nodes are in each state, and drained (no copies: read at every scrape of /metrics). */
  counts(): AgentCounts {
    const c: AgentCounts = { ready: 0, down: 0, lost: 0, revoked: 0, drained: 0, total: 0 };
    for (const l of this.byName.values()) {
      c[l.rec.state]++;
      if (l.rec.drained && l.rec.state !== 'revoked') c.drained++;
      c.total++;
    }
    return c;
  }

  /** The same, as the cluster pool's NodeDirectory asks. */
  nodes(): RegisteredNode[] {
    return this.list();
  }

  /** What the node last said of its load (queued and running attempts). */
  load(name: string): AgentLoad | null {
    return this.byName.get(name)?.load ?? null;
  }

  private need(name: string): Live {
    const l = this.byName.get(name);
    if (!l) throw new WarrenError('AGENT_NODE_UNKNOWN', `there is no node ${name}`, { hint: 'see `warren node ls` for the nodes', details: { node: name } });
    return l;
  }

  /** An admin's drain: no new work for the node (what runs finishes). Its health check never undrains it. */
  async drain(name: string, reason?: string): Promise<void> {
    const l = this.need(name);
    this.setDrain(l, { drained: true, drainReason: reason ?? null, drainedBy: 'admin' });
    await l.writes;
  }

  async undrain(name: string): Promise<void> {
    const l = this.need(name);
    this.setDrain(l, { drained: false, drainReason: null, drainedBy: null });
    await l.writes;
  }

  private setDrain(l: Live, d: Pick<RegisteredNode, 'drained' | 'drainReason' | 'drainedBy'>): void {
    Object.assign(l.rec, d);
    this.persist(l, d);
  }

  /**
   * A health check's result (as Slurm's HealthCheckProgram): a failing check drains the node with
   * its output as the reason; a passing one undrains it, but only when the check drained it (an
   * admin's drain stays). Emits 'health' (node, 'drained' | 'undrained', reason) on a change.
   */
  private applyHealth(l: Live, h: HealthReport): void {
    l.rec.health = h;
    const name = l.rec.name;
    if (!h.ok) {
      const why = h.timedOut ? `timed out after ${Math.round(h.durationMs / 1000)} s and was killed` : h.exitCode === null ? 'could not run' : `exited ${h.exitCode}`;
      const out = h.output.split('\n').map((x) => x.trim()).filter(Boolean).slice(-5).join(' | ').slice(-500);
      const reason = `health check failed: \`${h.command.slice(0, 200)}\` ${why}${out ? `: ${out}` : ''}`;
      if (!l.rec.drained) {
        this.setDrain(l, { drained: true, drainReason: reason, drainedBy: 'health' });
        this.log('warn', `node ${name} drained: ${reason}`, { node: name });
        this.emit('health', name, 'drained', reason, h);
      } else if (l.rec.drainedBy === 'health' && l.rec.drainReason !== reason) {
        this.setDrain(l, { drained: true, drainReason: reason, drainedBy: 'health' });
      }
    } else if (l.rec.drained && l.rec.drainedBy === 'health') {
      this.setDrain(l, { drained: false, drainReason: null, drainedBy: null });
      this.log('info', `node ${name} undrained: its health check passes again`, { node: name });
      this.emit('health', name, 'undrained', 'its health check passes again', h);
    }
  }

  /** Revoke a node: its certificates are refused from now on (open connections closed), its work lost. */
  async revoke(name: string): Promise<void> {
    const l = this.need(name);
    if (l.rec.state === 'revoked') return;
    const wasLost = l.rec.state === 'lost';
    this.setState(l, 'revoked', this.clock());
    this.revocations.revokeId(this.uri(name));
    this.log('warn', `node ${name} is revoked`, { node: name });
    this.emit('revoked', name);
    if (!wasLost) this.markLost(l, this.clock(), `node ${name} was revoked`);
    else {
      l.queue = [];
      this.answerPoll(l, true);
    }
    await l.writes;
  }

  /** Forget a node. Its current certificate stays refused; a revoked name may join again with a new token. */
  async delete(name: string): Promise<void> {
    const l = this.need(name);
    const state = l.rec.state;
    if (l.rec.certSerial) this.revocations.revokeSerial(l.rec.certSerial, new Date(this.clock() + (this.opts.certTtlSeconds ?? 3600) * 1000 + 60_000));
    if (state === 'revoked') this.revocations.unrevokeId(this.uri(name));
    else if (state !== 'lost') this.markLost(l, this.clock(), `node ${name} was deleted`);
    this.answerPoll(l, true);
    this.byName.delete(name);
    await l.writes;
    await this.opts.store.deleteNode(name);
    this.emit('deleted', name);
  }
}

/** What the cluster pool (ClusterPool, src/server/pool.ts) takes from the registry. */
export interface PoolEvents {
  onReport(node: string, ev: AttemptStarted | AttemptExited): void;
  onLaunch(node: string, ev: LaunchEvent): void;
  onReady?(node: string, ev: AttemptReady): void;
  onAttempts(node: string, list: AttemptState[]): void;
  onLost(node: string): void;
  onUp(node: string): void;
}

/**
 * Feed a cluster pool from the registry: reports, attempt lists, and a node's loss — the
 * pool's "lost" (its attempts unknown, ended as node-lost after its own lostAfterMs unless the
 * node is back) is the registry's `down`; the registry's `lost` comes after and is told too
 * (onLost is idempotent there). Returns the unsubscribe.
 */
export function connectPool(reg: NodeRegistry, pool: PoolEvents): () => void {
  const report = (node: string, ev: AttemptStarted | AttemptExited): void => pool.onReport(node, ev);
  const launch = (node: string, ev: LaunchEvent): void => pool.onLaunch(node, ev);
  const ready = (node: string, ev: AttemptReady): void => pool.onReady?.(node, ev);
  const attempts = (node: string, list: AttemptState[]): void => pool.onAttempts(node, list);
  const down = (node: string): void => pool.onLost(node);
  const up = (node: string): void => pool.onUp(node);
  reg.on('report', report);
  reg.on('launch', launch);
  reg.on('ready', ready);
  reg.on('attempts', attempts);
  reg.on('down', down);
  reg.on('lost', down);
  reg.on('up', up);
  return () => {
    reg.off('report', report);
    reg.off('launch', launch);
    reg.off('ready', ready);
    reg.off('attempts', attempts);
    reg.off('down', down);
    reg.off('lost', down);
    reg.off('up', up);
  };
}
