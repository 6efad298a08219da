// An in-memory ApiBackend for the transport tests of the HTTPS API: users and tokens,
// workflows with a feed of stream items the test pushes, logs the test appends to, nodes.
// It enforces what the real backend must: a user sees only their own workflows (another's
// is RUN_NOT_FOUND), admins see all, admin calls are AUTH_FORBIDDEN for others.
import { EventEmitter, once } from 'node:events';
import { WarrenError } from '../../src/common/index.js';
import type {
  AdminClient,
  CaStatusView,
  AuditEntry,
  AuditRequest,
  ListRequest,
  LogsRequest,
  NodeImageBuildRequest,
  NodeView,
  PruneRequest,
  PruneView,
  StreamItem,
  SubmitRequest,
  TokenView,
  UserView,
  WarrenClient,
  WorkflowDetail,
  WorkflowSummary,
} from '../../src/api/index.js';
import { NodeImageBuilds, type ApiBackend, type HealthView, type Principal } from '../../src/server/index.js';
import { listNodeImages, removeNodeImages } from '../../src/provision/index.js';

interface Flow {
  detail: WorkflowDetail;
  items: StreamItem[];
  /** Set: the stream fails with it after its items. */
  failWith?: Error;
  logs: Map<string, { chunks: Buffer[]; ended: boolean; failWith?: Error }>;
}

type ItemWithoutSeq = StreamItem extends infer I ? (I extends StreamItem ? Omit<I, 'seq'> : never) : never;

export interface StreamCall {
  id: string;
  afterSeq: number | undefined;
  signal: AbortSignal | undefined;
}

export class MemoryBackend implements ApiBackend {
  readonly users = new Map<string, UserView>();
  /** secret -> token */
  readonly secrets = new Map<string, { view: TokenView }>();
  readonly flows = new Map<string, Flow>();
  readonly nodesByName = new Map<string, NodeView>();
  readonly streamCalls: StreamCall[] = [];
  readonly logCalls: Array<{ id: string; req: LogsRequest; signal: AbortSignal | undefined }> = [];
  readonly events = new EventEmitter();
  healthy = true;
  /** Node images: the real builds (src/server/nodeimages.ts) into this data dir, when a test sets it. */
  nodeImageDir: string | undefined;
  nodeImageBuilds: NodeImageBuilds | undefined;
  useNodeImages(dataDir: string, answerMs?: number): void {
    this.nodeImageDir = dataDir;
    this.nodeImageBuilds = new NodeImageBuilds(dataDir, answerMs);
  }
  /** What the HTTP layer and the admin calls wrote to the audit log. */
  readonly auditLog: AuditEntry[] = [];
  async audit(e: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    this.auditLog.push({ id: this.auditLog.length + 1, at: this.clock++, ...e });
  }
  /** The CA status the ca routes show (rotate and retire change its phase, as the server's would). */
  ca: CaStatusView = {
    trustDomain: 'test.local',
    phase: 'none',
    startedAt: null,
    phaseChangedAt: null,
    issueAfter: null,
    cas: [{ fingerprint: 'AA:01', subject: 'CN=Warren CA test.local, O=Warren', notBefore: 1, notAfter: 2, role: 'active', signing: true }],
    nodes: [],
    waitingFor: [],
    next: 'no rotation in progress',
    lastRetiredAt: null,
    bundlePem: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
  };
  /** Every workflow call throws this (a bug in the backend). */
  explode: Error | undefined;
  private n = 0;
  clock = 1_700_000_000_000;

  constructor() {
    this.events.setMaxListeners(100);
  }

  addUser(name: string, admin = false): string {
    this.users.set(name, { name, unixUser: name, admin, createdAt: this.clock++ });
    return this.newToken(name);
  }

  newToken(user: string | null, kind: 'api' | 'join' = 'api', ttlSeconds: number | null = null, uses: number | null = null): string {
    const id = `t${++this.n}`;
    const secret = `wt_${id}_${'x'.repeat(16)}`;
    const now = this.clock++;
    this.secrets.set(secret, { view: { id, kind, user, createdAt: now, expiresAt: ttlSeconds === null ? null : now + ttlSeconds * 1000, usesLeft: uses } });
    return secret;
  }

  /** Add a stream item to a workflow (its seq is the next one). */
  push(id: string, item: ItemWithoutSeq): StreamItem {
    const f = this.flows.get(id)!;
    const full = { ...item, seq: f.items.length + 1 } as StreamItem;
    f.items.push(full);
    this.events.emit(`feed:${id}`);
    return full;
  }

  appendLog(id: string, job: string, stream: 'stdout' | 'stderr', text: string | null, failWith?: Error): void {
    const f = this.flows.get(id)!;
    const key = `${job}/${stream}`;
    const l = f.logs.get(key) ?? { chunks: [], ended: false };
    f.logs.set(key, l);
    if (text === null) l.ended = true;
    else l.chunks.push(Buffer.from(text));
    if (failWith) l.failWith = failWith;
    this.events.emit(`log:${id}:${key}`);
  }

  async authenticate(token: string): Promise<Principal | null> {
    const t = this.secrets.get(token);
    if (!t || t.view.kind !== 'api' || t.view.user === null) return null;
    const u = this.users.get(t.view.user);
    if (!u) return null;
    return { user: u.name, unixUser: u.unixUser, admin: u.admin, tokenId: t.view.id };
  }

  async health(): Promise<HealthView> {
    if (this.healthy) return { ok: true, version: '0.1.0', store: { ok: true, kind: 'memory' }, leader: true, nodes: { ready: this.nodesByName.size, total: this.nodesByName.size }, messages: [] };
    return { ok: false, version: '0.1.0', store: { ok: false, kind: 'memory', error: 'the store is down' }, messages: ['the store is down'] };
  }

  client(p: Principal): WarrenClient & AdminClient {
    const b = this;
    const visible = (id: string): Flow => {
      if (b.explode) throw b.explode;
      const f = b.flows.get(id);
      if (!f || (!p.admin && f.detail.owner !== p.user)) {
        throw new WarrenError('RUN_NOT_FOUND', `no workflow ${id}`, { hint: 'see `warren list`', details: { id } });
      }
      return f;
    };
    const admin = (): void => {
      if (!p.admin) throw new WarrenError('AUTH_FORBIDDEN', 'admins only', { hint: 'ask an admin' });
    };
    const summary = (f: Flow): WorkflowSummary => {
      const { units: _u, attempts: _a, events: _e, waiting: _w, spec: _sp, runDir: _rd, options: _op, services: _sv, ...s } = f.detail;
      return s;
    };
    const node = (name: string): NodeView => {
      admin();
      const n = b.nodesByName.get(name);
      if (!n) throw new WarrenError('MESH_IDENTITY_NOT_FOUND', `no node ${name}`, { hint: 'see `warren node list`' });
      return n;
    };
    const nodeImagesOf = (): { dir: string; builds: NodeImageBuilds } => {
      if (!b.nodeImageDir || !b.nodeImageBuilds) throw new WarrenError('PROVISION_IMAGE_UNKNOWN', 'this memory backend keeps no node images', { hint: 'call useNodeImages(dataDir) in the test' });
      return { dir: b.nodeImageDir, builds: b.nodeImageBuilds };
    };
    return {
      where: 'memory',
      async connect(): Promise<never> {
        throw new WarrenError('SERVICE_UNKNOWN', 'the memory backend has no services', { hint: 'a test backend' });
      },
      async submit(req: SubmitRequest): Promise<WorkflowSummary> {
        if (b.explode) throw b.explode;
        if (req.source.includes('syntax error')) {
          throw new WarrenError('SPEC_INVALID', `${req.filename}:1:1: not a workflow`, { hint: 'fix the file' });
        }
        const id = `wf${++b.n}`;
        const detail: WorkflowDetail = {
          id,
          name: req.filename.replace(/\.[a-z]+$/, ''),
          status: 'pending',
          owner: p.user,
          file: req.filename,
          createdAt: b.clock++,
          startedAt: null,
          endedAt: null,
          cancelRequested: false,
          counts: { pending: 1 },
          driver: null,
          units: [{ key: 'a', kind: 'job', job: 'a', task: null, state: 'pending', attempt: 0, exitCode: null, reason: null, message: null, startedAt: null, endedAt: null }],
          attempts: [],
          events: [{ at: b.clock, key: null, level: 'info', message: `submitted by ${p.user}` }],
          waiting: { a: 'waiting for a node' },
          spec: { name: 'flow', dialect: 'v1', volumes: {}, jobs: { a: { name: 'a' } }, policy: {} } as never,
          runDir: '/runs/x',
          options: {},
          services: [],
        };
        b.flows.set(id, { detail, items: [], logs: new Map() });
        return summary(b.flows.get(id)!);
      },
      async get(id: string): Promise<WorkflowDetail> {
        return visible(id).detail;
      },
      async list(req: ListRequest = {}): Promise<WorkflowSummary[]> {
        if (b.explode) throw b.explode;
        if (req.all) admin();
        let out = [...b.flows.values()].filter((f) => (req.all ? true : f.detail.owner === p.user));
        if (req.status) out = out.filter((f) => f.detail.status === req.status);
        return out
          .reverse()
          .slice(0, req.limit ?? 100)
          .map(summary);
      },
      async *stream(id: string, opts: { afterSeq?: number; signal?: AbortSignal } = {}): AsyncIterable<StreamItem> {
        const f = visible(id);
        b.streamCalls.push({ id, afterSeq: opts.afterSeq, signal: opts.signal });
        b.events.emit('stream', b.streamCalls.length);
        let next = (opts.afterSeq ?? 0) + 1;
        for (;;) {
          while (f.items.length >= next) {
            const item = f.items[next - 1]!;
            next++;
            yield item;
            if (item.type === 'done') return;
          }
          if (f.failWith) throw f.failWith;
          if (opts.signal?.aborted) return;
          try {
            await once(b.events, `feed:${id}`, opts.signal ? { signal: opts.signal } : {});
          } catch {
            return; // aborted
          }
        }
      },
      async *logs(id: string, req: LogsRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
        const f = visible(id);
        b.logCalls.push({ id, req, signal });
        if (!(req.job in f.detail.spec.jobs)) {
          throw new WarrenError('RUN_UNKNOWN_JOB', `workflow ${id} has no job ${req.job}`, { hint: 'see `warren status ID`' });
        }
        const key = `${req.job}/${req.stream ?? 'stdout'}`;
        let i = 0;
        for (;;) {
          const l = f.logs.get(key);
          while (l && i < l.chunks.length) yield l.chunks[i++]!;
          if (l?.failWith) throw l.failWith;
          if (!req.follow || l?.ended) return;
          try {
            await once(b.events, `log:${id}:${key}`, signal ? { signal } : {});
          } catch {
            return;
          }
        }
      },
      async cancel(id: string): Promise<WorkflowSummary> {
        const f = visible(id);
        if (f.detail.status !== 'pending' && f.detail.status !== 'running') {
          throw new WarrenError('RUN_NOT_RUNNING', `workflow ${id} already ended (${f.detail.status})`, { hint: 'nothing to cancel' });
        }
        f.detail.cancelRequested = true;
        f.detail.status = 'canceled';
        f.detail.endedAt = b.clock++;
        return summary(f);
      },
      async resume(id: string): Promise<WorkflowSummary> {
        const f = visible(id);
        f.detail.status = 'running';
        f.detail.cancelRequested = false;
        f.detail.endedAt = null;
        f.detail.driver = { owner: 'server:s1', expiresAt: b.clock + 15_000 };
        return summary(f);
      },
      async close(): Promise<void> {},

      async nodes(): Promise<NodeView[]> {
        admin();
        return [...b.nodesByName.values()];
      },
      async drain(name: string, on: boolean, reason?: string): Promise<NodeView> {
        const n = node(name);
        n.state = on ? 'draining' : 'ready';
        n.drainReason = on ? (reason ?? null) : null;
        n.drainedBy = on ? 'admin' : null;
        await b.audit({ actor: p.user, action: on ? 'node.drain' : 'node.undrain', target: name, source: p.source ?? null, result: 'ok', details: reason ? { reason } : {} });
        return n;
      },
      async revokeNode(name: string): Promise<void> {
        node(name).state = 'revoked';
      },
      async deleteNode(name: string): Promise<void> {
        node(name);
        b.nodesByName.delete(name);
      },
      async createJoinToken(opts: { ttlSeconds: number; uses?: number }): Promise<{ token: string; view: TokenView }> {
        admin();
        const token = b.newToken(null, 'join', opts.ttlSeconds, opts.uses ?? 1);
        return { token, view: b.secrets.get(token)!.view };
      },
      async tokens(): Promise<TokenView[]> {
        admin();
        return [...b.secrets.values()].map((t) => t.view);
      },
      async revokeToken(id: string): Promise<void> {
        admin();
        const found = [...b.secrets].find(([, t]) => t.view.id === id);
        if (!found) throw new WarrenError('MESH_TOKEN_UNKNOWN', `no token ${id}`, { hint: 'see `warren token list`' });
        b.secrets.delete(found[0]);
      },
      async addUser(opts: { name: string; unixUser?: string; admin?: boolean }): Promise<{ user: UserView; token: string }> {
        admin();
        const token = b.addUser(opts.name, opts.admin ?? false);
        const user = b.users.get(opts.name)!;
        if (opts.unixUser) user.unixUser = opts.unixUser;
        return { user, token };
      },
      async users(): Promise<UserView[]> {
        admin();
        return [...b.users.values()];
      },
      async removeUser(name: string): Promise<void> {
        admin();
        if (!b.users.delete(name)) throw new WarrenError('MESH_IDENTITY_NOT_FOUND', `no user ${name}`, { hint: 'see `warren user list`' });
        for (const [s, t] of b.secrets) if (t.view.user === name) b.secrets.delete(s);
      },
      async caStatus(): Promise<CaStatusView> {
        admin();
        return b.ca;
      },
      async rotateCa(o: { trustForSeconds?: number } = {}): Promise<CaStatusView> {
        admin();
        if (b.ca.phase !== 'none') throw new WarrenError('MESH_CA_ROTATION_IN_PROGRESS', 'a CA rotation is already in progress', { hint: 'let it finish' });
        const old = { ...b.ca.cas[0]!, role: 'old' as const };
        b.ca = { ...b.ca, phase: 'trust', startedAt: b.clock, issueAfter: b.clock + (o.trustForSeconds ?? 0) * 1000, cas: [old, { ...old, fingerprint: 'BB:02', role: 'new', signing: false }] };
        return b.ca;
      },
      async retireCa(o: { force?: boolean } = {}): Promise<CaStatusView> {
        admin();
        if (b.ca.phase === 'none') throw new WarrenError('MESH_CA_NO_ROTATION', 'no CA rotation is in progress', { hint: 'start one' });
        if (!o.force) throw new WarrenError('MESH_CA_RETIRE_REFUSED', 'node n001 holds a certificate from the old CA', { hint: 'wait, or --force', details: { nodes: ['n001'] } });
        b.ca = { ...b.ca, phase: 'none', cas: [{ ...b.ca.cas[1]!, role: 'active', signing: true }], lastRetiredAt: b.clock };
        return b.ca;
      },
      async nodeImageBuild(req: NodeImageBuildRequest) {
        admin();
        return nodeImagesOf().builds.build(req);
      },
      async nodeImages() {
        admin();
        return listNodeImages(nodeImagesOf().dir);
      },
      async removeNodeImages(what: string) {
        admin();
        return removeNodeImages(nodeImagesOf().dir, what);
      },
      async prune(req: PruneRequest): Promise<PruneView> {
        admin();
        // Prunes the flows asked for by id that ended (running ones: RUN_PRUNE_RUNNING).
        const ids = req.ids ?? [];
        for (const id of ids) {
          const f = b.flows.get(id);
          if (!f) throw new WarrenError('RUN_NOT_FOUND', `no workflow "${id}"`, { hint: 'see `warren list`' });
          if (f.detail.status === 'running' || f.detail.status === 'pending') throw new WarrenError('RUN_PRUNE_RUNNING', `workflow ${id} is ${f.detail.status}: running work is never pruned`, { hint: `cancel it first (\`warren cancel ${id}\`)` });
        }
        if (!req.dryRun) for (const id of ids) b.flows.delete(id);
        return { dryRun: req.dryRun === true, endedBefore: Date.now(), workflows: ids.length, units: 0, attempts: 0, events: 0, history: 0, runDirs: 0, bytesFreed: 0, keptRunning: 0, keptLeased: 0, removed: ids, durationMs: 0, interrupted: false };
      },
      async audit(q: AuditRequest = {}): Promise<AuditEntry[]> {
        admin();
        return b.auditLog.filter((e) => (q.user === undefined || e.actor === q.user) && (q.since === undefined || e.at >= q.since) && (q.until === undefined || e.at < q.until));
      },
    };
  }
}
