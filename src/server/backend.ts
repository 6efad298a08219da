// The server's side of the client API: what `/api/v1` does for an authenticated user. A
// user sees and controls only their own workflows (another user's is "not found", never
// "forbidden": its existence is not disclosed); an admin sees all and administers nodes,
// tokens and users. The server drives every run it owns (their ownership leases), through
// the cluster pool.

import { createHash, randomBytes } from 'node:crypto';
import { WarrenError, toWarrenError, type LogFn } from '../common/index.js';
import type { Agent, TaskUser } from '../agent/index.js';
import { loadWorkflowText, readStorageClasses, type Workflow } from '../workflow/index.js';
import type { AuditRecord, Store, WorkflowRecord, UserRecord } from '../store/index.js';
import { createJoinToken } from '../mesh/index.js';
import { addNodes, addProfile, deleteNodes, deleteProfile, listNodeViews, setNodes, setProfile, type InventoryNode, type InventoryNodeView, type NodeChangeRequest, type ProfileChangeRequest, type ProfileRecord } from '../provision/index.js';
import type {
  AdminClient,
  InventoryClient,
  CaStatusView,
  AuditEntry,
  AuditRequest,
  ListRequest,
  LogsRequest,
  NodeImageBuildPending,
  NodeImageBuildRequest,
  NodeImageBuildView,
  NodeImageView,
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
} from '../api/index.js';
import { Orchestrator, heldByServer, holderIsGone, serverLeaseOwner } from './orchestrator.js';
import { RunHub } from './hub.js';
import { pruneRequest } from './retention.js';
import { NodeImageBuilds } from './nodeimages.js';
import { listNodeImages, removeNodeImages } from '../provision/index.js';
import { checkLogTarget, detailOf, followStore, jobCounts, listAudit, serviceTarget, summaryOf, visibleWorkflow, visibleWorkflows } from './views.js';
import type { DriveHooks, RunDriver } from './driver.js';
import type { ClusterPool } from './pool.js';
import type { RunMetrics } from './metrics.js';

import type { Principal } from './http/app.js';
export type { Principal };

/** What the backend needs of the node registry (admin verbs, logs). */
export interface NodeAdmin {
  list(): NodeView[];
  drain(name: string, on: boolean, reason?: string): Promise<NodeView>;
  revoke(name: string): Promise<void>;
  delete(name: string): Promise<void>;
  requestLogs(node: string, req: { workflowId: string; job: string; task: number | null; stream: 'stdout' | 'stderr'; follow?: boolean }, signal?: AbortSignal): AsyncIterable<Uint8Array>;
}

/** What the backend needs of the cluster's CA (`warren ca ...`): serve.ts joins the authority and the registry's nodes. */
export interface CaAdmin {
  status(): CaStatusView;
  rotate(o: { trustForSeconds?: number }): Promise<CaStatusView>;
  /** Retire the old CA; `lockedOut`: the nodes that still held a certificate from it (with force). */
  retire(o: { force?: boolean }): Promise<{ view: CaStatusView; lockedOut: string[] }>;
}

export interface BackendOptions {
  store: Store;
  pool: ClusterPool;
  nodes: NodeAdmin;
  ca: CaAdmin;
  /** The server's data directory (run records point under it; jobs' files are on the nodes). */
  dataDir: string;
  leaseTtlMs?: number;
  /** How often to look for runs nobody drives (a dead server's, once their leases expire). */
  scanMs?: number;
  log?: LogFn;
  /** Told of each unit's wait for a node and each attempt's run time. */
  metrics?: RunMetrics;
  /** Told the ids of pruned workflows (the nodes delete their run directories). */
  onForget?: (ids: string[]) => void;
}

interface Drive {
  hub: RunHub;
  driver: RunDriver;
  done: Promise<unknown>;
}

export const API_TOKEN_PREFIX = 'wrn_';

/** How long one prune request may work before it answers (the client waits 60 s for an answer). */
export const PRUNE_ANSWER_MS = 30_000;

export function newApiToken(): { token: string; hash: string; id: string } {
  const token = API_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const hash = createHash('sha256').update(token, 'utf8').digest('hex');
  return { token, hash, id: hash.slice(0, 12) };
}

/** Add a user and its first API token (shown once: only its hash is kept). */
export async function addUserWithToken(store: Store, user: UserRecord, tokenTtlSeconds?: number): Promise<string> {
  await store.addUser(user);
  const t = newApiToken();
  const now = Date.now();
  await store.insertApiToken({ id: t.id, hash: t.hash, user: user.name, createdAt: now, expiresAt: tokenTtlSeconds ? now + tokenTtlSeconds * 1000 : null, revoked: false, lastUsedAt: null });
  return t.token;
}

/** A bearer token -> its principal, or null (unknown, expired, revoked, its user gone). */
export async function authenticateApiToken(store: Store, token: string, userOf: (name: string) => Promise<UserRecord | undefined> = (n) => store.getUser(n)): Promise<Principal | null> {
  if (!token.startsWith(API_TOKEN_PREFIX)) return null;
  const hash = createHash('sha256').update(token, 'utf8').digest('hex');
  const t = await store.findApiToken(hash);
  if (!t || t.revoked || (t.expiresAt !== null && t.expiresAt <= Date.now())) return null;
  const u = await userOf(t.user);
  if (!u) return null;
  if (t.lastUsedAt === null || Date.now() - t.lastUsedAt > 60_000) void store.touchApiToken(t.id, Date.now()).catch(() => {});
  return { user: u.name, unixUser: u.unixUser, admin: u.admin, tokenId: t.id };
}

export class ServerBackend {
  private readonly store: Store;
  private readonly drives = new Map<string, Drive>();
  /** Runs this server drove to their end (bounded): any attempt of theirs a node reports is stale. */
  private readonly ended = new Set<string>();
  private readonly orch: Orchestrator;
  private scan: NodeJS.Timeout | null = null;
  private closed = false;
  private storeError: string | null = null;
  private readonly users = new Map<string, { at: number; user: UserRecord | undefined }>();
  /** The run-lease owner id of this backend (a new one each time its server leads). */
  private readonly me = serverLeaseOwner();
  /** Node image builds in flight (`warren image node-build` with a server context). */
  private readonly nodeImageBuilds: NodeImageBuilds;

  constructor(private readonly o: BackendOptions) {
    this.store = o.store;
    this.nodeImageBuilds = new NodeImageBuilds(o.dataDir);
    this.orch = new Orchestrator({
      store: o.store,
      agent: o.pool as Agent,
      home: o.dataDir,
      ...(o.leaseTtlMs !== undefined ? { leaseTtlMs: o.leaseTtlMs } : {}),
      userOf: (owner) => this.taskUser(owner),
      // This backend exists while its server is the cluster's leader: a run another server
      // holds is that of a former leader (which stopped driving before its leadership
      // expired), taken at once; the newer term fences whatever it still had in flight.
      owner: this.me,
      takeOver: (lease) => heldByServer(lease) && lease.owner !== this.me,
      ...(o.log ? { log: o.log } : {}),
      ...(o.metrics ? { metrics: o.metrics } : {}),
    });
  }

  /** Start taking the runs nobody drives (now, then every scanMs); resolves after the first scan. */
  start(): Promise<void> {
    this.o.pool.setOwnership((wf) => this.drives.get(wf)?.driver.running === true || this.ended.has(wf));
    const tick = (): Promise<void> =>
      this.takeOrphans().catch((e: unknown) => {
        this.storeError = (e as Error).message;
        this.o.log?.('warn', `cannot scan for runs to drive: ${(e as Error).message} (retrying)`);
      });
    const first = tick();
    this.scan = setInterval(() => void tick(), this.o.scanMs ?? 2000);
    this.scan.unref();
    return first;
  }

  /** Make every driver's pending writes durable (an agent's reports are acknowledged after this). */
  async flush(): Promise<void> {
    await Promise.all([...this.drives.values()].map((d) => d.driver.flush()));
  }

  get storeProblem(): string | null {
    return this.storeError;
  }

  /** Runs that are running or pending and that no live runner holds: take them over. */
  private async takeOrphans(): Promise<void> {
    if (this.closed) return;
    const now = Date.now();
    const rows = [...(await this.store.listWorkflows({ status: 'running', limit: 10_000 })), ...(await this.store.listWorkflows({ status: 'pending', limit: 10_000 }))];
    this.storeError = null;
    for (const r of rows) {
      if (this.drives.has(r.id)) continue;
      if (r.lease && r.lease.expiresAt > now && !holderIsGone(r.lease) && !(heldByServer(r.lease) && r.lease.owner !== this.me)) continue;
      try {
        await this.begin(r.id);
        this.o.log?.('info', `took over workflow ${r.id} (${r.name})${r.lease ? ` from ${r.lease.owner}` : ''}`, { workflowId: r.id });
      } catch (e) {
        if ((e as WarrenError).code !== 'RUN_LEASE_HELD') this.o.log?.('warn', `cannot take workflow ${r.id}: ${(e as Error).message}`, { workflowId: r.id, code: (e as WarrenError).code });
      }
    }
  }

  private async taskUser(owner: string | null): Promise<TaskUser | undefined> {
    if (!owner) return undefined;
    const u = await this.userRecord(owner);
    return { name: owner, unixUser: u?.unixUser ?? owner };
  }

  private async userRecord(name: string): Promise<UserRecord | undefined> {
    const hit = this.users.get(name);
    if (hit && Date.now() - hit.at < 5000) return hit.user;
    const user = await this.store.getUser(name);
    this.users.set(name, { at: Date.now(), user });
    return user;
  }

  /** Drive a run here: take its lease (adopting what a previous server dispatched). */
  private async begin(id: string): Promise<void> {
    const hub = new RunHub();
    const hooks: DriveHooks = {
      onUnit: (u) => hub.push({ type: 'unit', unit: u }),
      onEvent: (level, key, message) => hub.push({ type: 'event', event: { at: Date.now(), key, level, message } }),
      onProgress: (key, p) => hub.push({ type: 'progress', key, progress: { ...p } }),
    };
    const running = await this.orch.begin(id, hooks);
    const done = running.done.then(
      (status) => {
        hub.push({ type: 'done', status, counts: jobCounts(running.driver.counts()) });
        hub.end();
      },
      (e: unknown) => {
        const err = e instanceof WarrenError ? e : new WarrenError('WARREN_INTERNAL', String((e as Error)?.message ?? e));
        if (err.code !== 'RUN_LEASE_LOST') this.o.log?.('error', `workflow ${id}: ${err.message}`, { workflowId: id, code: err.code });
        hub.push({ type: 'done', status: 'failed', error: err.toWire() });
        hub.end();
      },
    );
    const d: Drive = { hub, driver: running.driver, done };
    this.drives.set(running.id, d);
    void done.finally(() => {
      if (this.drives.get(running.id) === d) this.drives.delete(running.id);
      this.ended.add(running.id);
      if (this.ended.size > 10_000) this.ended.delete(this.ended.values().next().value!);
    });
  }

  // --- authentication ---

  async authenticate(token: string): Promise<Principal | null> {
    return authenticateApiToken(this.store, token, (name) => this.userRecord(name));
  }

  /** The client API as this principal may use it. */
  client(p: Principal): WarrenClient & AdminClient {
    return new PrincipalClient(this, p);
  }

  inventory(p: Principal): InventoryClient {
    return new PrincipalClient(this, p);
  }

  // --- the operations, for a principal ---

  mustGet(p: Principal, id: string): Promise<WorkflowRecord> {
    return visibleWorkflow(this.store, p, id);
  }

  async submit(p: Principal, req: SubmitRequest): Promise<WorkflowSummary> {
    // Storage classes are the server's (its data directory's storage-classes.yaml, read at
    // each submission so that an edit needs no restart).
    const wf = loadWorkflowText(req.source, req.filename, { storageClasses: readStorageClasses(this.o.dataDir) });
    refuseLocalInputs(wf, req.filename);
    const rec = await this.orch.accept(wf, { failFast: req.options?.failFast === true, ...(req.options?.simulate !== undefined ? { simulate: req.options.simulate } : {}) }, { owner: p.user });
    this.o.log?.('info', `accepted workflow ${rec.id} (${rec.name}, ${Object.keys(wf.jobs).length} jobs) from ${p.user}`, { workflowId: rec.id, user: p.user });
    await this.begin(rec.id);
    return summaryOf(rec);
  }

  async get(p: Principal, id: string): Promise<WorkflowDetail> {
    const rec = await this.mustGet(p, id);
    const why = this.drives.has(rec.id) ? this.o.pool.waitingReasons() : new Map<string, string>();
    const mine = new Map([...why].filter(([job]) => rec.spec.jobs[job] !== undefined));
    return detailOf(this.store, rec, { cores: Math.max(1, this.o.pool.info().cores), explain: this.drives.has(rec.id), extraWaiting: mine, cluster: true });
  }

  list(p: Principal, req: ListRequest): Promise<WorkflowSummary[]> {
    return visibleWorkflows(this.store, p, req);
  }

  /** A stream to a port of a running service: through the node that runs it (its agent opens a tunnel). */
  async connect(p: Principal, id: string, service: string, port: number): Promise<import('node:stream').Duplex> {
    const rec = await this.mustGet(p, id);
    const t = await serviceTarget(this.store, rec, service, port);
    const s = await this.o.pool.connect(t.attemptId, port);
    this.o.log?.('info', `port forward to service ${service} port ${port} of workflow ${rec.id} for ${p.user}`, { workflowId: rec.id, user: p.user, job: service });
    return s;
  }

  async *stream(p: Principal, id: string, opts: { afterSeq?: number; signal?: AbortSignal }): AsyncIterable<StreamItem> {
    const rec = await this.mustGet(p, id);
    const d = this.drives.get(rec.id);
    if (d) yield* d.hub.subscribe(opts.afterSeq ?? 0, opts.signal);
    else yield* followStore(this.store, rec.id, opts.signal);
  }

  async *logs(p: Principal, id: string, req: LogsRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const rec = await this.mustGet(p, id);
    checkLogTarget(rec, req);
    const task = req.task ?? null;
    const key = task === null ? req.job : `${req.job}[${task}]`;
    const attempts = (await this.store.attempts(rec.id, key)).filter((a) => a.node);
    const last = attempts.sort((a, b) => b.attempt - a.attempt)[0];
    if (!last?.node) return;
    // A multinode job's row names all its nodes: its log is the launcher's, on the first.
    yield* this.o.nodes.requestLogs(last.node.split(',')[0]!, { workflowId: rec.id, job: req.job, task, stream: req.stream ?? 'stdout', follow: req.follow === true }, signal);
  }

  async cancel(p: Principal, id: string): Promise<WorkflowSummary> {
    const rec = await this.mustGet(p, id);
    return this.onBehalf(p, rec, 'workflow.cancel', async () => {
      if (rec.status !== 'running' && rec.status !== 'pending') {
        throw new WarrenError('RUN_NOT_RUNNING', `workflow ${rec.id} is not running (it ${rec.status === 'canceled' ? 'was canceled' : rec.status})`, {
          hint: rec.status === 'failed' || rec.status === 'canceled' ? `\`warren resume ${rec.id}\` would run it again` : undefined,
        });
      }
      const d = this.drives.get(rec.id);
      if (d) d.driver.cancel();
      else await this.store.write({ workflows: [{ id: rec.id, patch: { cancelRequested: true } }] });
      return summaryOf((await this.store.getWorkflow(rec.id))!);
    });
  }

  async resume(p: Principal, id: string): Promise<WorkflowSummary> {
    const rec = await this.mustGet(p, id);
    return this.onBehalf(p, rec, 'workflow.resume', async () => {
      if (rec.status === 'succeeded' || this.drives.has(rec.id)) return summaryOf(rec);
      await this.begin(rec.id);
      return summaryOf((await this.store.getWorkflow(rec.id))!);
    });
  }

  // --- the audit log ---

  /**
   * Do an admin action and write it to the audit log with its result: who (the principal),
   * what, on what, from where (the client's address), and `ok` or the error's code. A
   * refusal is written too. The entry is written after the action; if the store cannot take
   * it, the action stands and the failure is logged.
   */
  async audited<T>(p: Principal, action: string, target: string | null, fn: () => Promise<T>, details: (r: T) => Record<string, unknown> = () => ({})): Promise<T> {
    let r: T;
    try {
      r = await fn();
    } catch (e) {
      const err = toWarrenError(e);
      await this.audit({ actor: p.user, action, target, source: p.source ?? null, result: err.code, details: { message: err.message.slice(0, 500) } });
      throw e;
    }
    await this.audit({ actor: p.user, action, target, source: p.source ?? null, result: 'ok', details: details(r) });
    return r;
  }

  /** A user's own workflow: no entry; another user's (an admin acting for them): audited. */
  private onBehalf<T>(p: Principal, rec: { id: string; owner: string | null }, action: string, fn: () => Promise<T>): Promise<T> {
    if (rec.owner === p.user) return fn();
    return this.audited(p, action, rec.id, fn, () => ({ owner: rec.owner }));
  }

  /** Append an entry; never fails the caller (the store may be down: the log says so). */
  async audit(e: Omit<AuditRecord, 'id' | 'at'> & { at?: number }): Promise<void> {
    try {
      await this.store.appendAudit({ at: Date.now(), ...e });
    } catch (err) {
      this.o.log?.('error', `cannot write to the audit log (${e.actor} ${e.action} ${e.target ?? ''} ${e.result}): ${(err as Error).message}`);
    }
  }

  auditList(p: Principal, q: AuditRequest): Promise<AuditEntry[]> {
    return listAudit(this.store, p, q);
  }

  // --- retention ---

  /** `warren prune` through the API (admins): never running work (RUN_PRUNE_RUNNING for an id). */
  async prune(p: Principal, req: PruneRequest): Promise<PruneView> {
    return this.audited(
      p,
      req.dryRun ? 'workflow.prune-preview' : 'workflow.prune',
      req.ids?.length ? req.ids.join(',').slice(0, 200) : null,
      async () => {
        this.requireAdmin(p, 'pruning workflows');
        // An answer within the client's wait: a large prune stops between two steps after
        // PRUNE_ANSWER_MS and says so (interrupted); the CLI asks again and it goes on.
        return pruneRequest(this.store, this.o.dataDir, req, { signal: AbortSignal.timeout(PRUNE_ANSWER_MS), ...(this.o.onForget ? { onForget: this.o.onForget } : {}) });
      },
      (r) => ({ ...(req.olderThanSec !== undefined ? { olderThanSec: req.olderThanSec } : {}), workflows: r.workflows, units: r.units, events: r.events, keptRunning: r.keptRunning, bytesFreed: r.bytesFreed }),
    );
  }

  // --- node images (provisioning): built into and kept in DATA/provision/images ---

  nodeImageBuild(p: Principal, req: NodeImageBuildRequest): Promise<NodeImageBuildView | NodeImageBuildPending> {
    this.requireAdmin(p, 'building node images');
    return this.nodeImageBuilds.build(req).then(async (r) => {
      // Audited once, at the end (not each answer that said "still building").
      if ('building' in r) return r;
      await this.audit({ actor: p.user, action: 'node-image.build', target: r.source.slice(0, 200), source: p.source ?? null, result: 'ok', details: { digest: r.digest, reused: r.reused, kernel: r.kernelVersion, rootfsSize: r.rootfsSize } });
      return r;
    }, async (e: unknown) => {
      const err = toWarrenError(e);
      await this.audit({ actor: p.user, action: 'node-image.build', target: req.source.slice(0, 200), source: p.source ?? null, result: err.code, details: { message: err.message.slice(0, 500) } });
      throw e;
    });
  }

  async nodeImageList(p: Principal): Promise<NodeImageView[]> {
    this.requireAdmin(p, 'listing node images');
    return listNodeImages(this.o.dataDir);
  }

  async nodeImageRemove(p: Principal, what: string): Promise<NodeImageView[]> {
    return this.audited(
      p,
      'node-image.remove',
      what.slice(0, 200),
      async () => {
        this.requireAdmin(p, 'removing node images');
        return removeNodeImages(this.o.dataDir, what);
      },
      (r) => ({ digests: r.map((i) => i.digest) }),
    );
  }

  // --- administration ---

  requireAdmin(p: Principal, what: string): void {
    if (!p.admin) throw new WarrenError('AUTH_FORBIDDEN', `${what} needs an admin`, { hint: 'ask a cluster admin (`warren user add NAME --admin` makes one)' });
  }

  async createJoinToken(p: Principal, o: { ttlSeconds: number; uses?: number }): Promise<{ token: string; view: TokenView }> {
    return this.audited(p, 'token.create', null, async () => {
      this.requireAdmin(p, 'creating a join token');
      const { token, record } = await createJoinToken(this.store.joinTokens(), { ttlSeconds: o.ttlSeconds, ...(o.uses !== undefined ? { uses: o.uses } : {}), createdBy: p.user });
      return { token, view: { id: record.id, kind: 'join', user: record.createdBy, createdAt: record.createdAt, expiresAt: record.expiresAt, usesLeft: record.usesLeft } };
    }, (r) => ({ id: r.view.id, kind: 'join', usesLeft: r.view.usesLeft, expiresAt: r.view.expiresAt }));
  }

  async tokens(p: Principal): Promise<TokenView[]> {
    this.requireAdmin(p, 'listing tokens');
    const join = (await this.store.joinTokens().list()).map((r): TokenView => ({ id: r.id, kind: 'join', user: r.createdBy, createdAt: r.createdAt, expiresAt: r.expiresAt, usesLeft: r.usesLeft }));
    const api = (await this.store.listApiTokens()).filter((t) => !t.revoked).map((t): TokenView => ({ id: t.id, kind: 'api', user: t.user, createdAt: t.createdAt, expiresAt: t.expiresAt, usesLeft: null }));
    return [...join, ...api];
  }

  async revokeToken(p: Principal, id: string): Promise<void> {
    return this.audited(p, 'token.revoke', id, async () => {
      this.requireAdmin(p, 'revoking a token');
      if (await this.store.revokeApiToken(id)) return;
      if (await this.store.joinTokens().delete(id)) return;
      throw new WarrenError('AUTH_TOKEN_NOT_FOUND', `no token ${id}`, { hint: 'see `warren token list` for the ids' });
    });
  }

  async addUser(p: Principal, o: { name: string; unixUser?: string; admin?: boolean; tokenTtlSeconds?: number }): Promise<{ user: UserView; token: string }> {
    return this.audited(p, 'user.add', o.name, async () => {
      this.requireAdmin(p, 'adding a user');
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(o.name)) {
        throw new WarrenError('AUTH_BAD_USER', `"${o.name}" is not a valid user name`, { hint: 'use letters, digits, _ . - (at most 64), starting with a letter, digit or _' });
      }
      const unixUser = o.unixUser ?? o.name;
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?$/.test(unixUser)) {
        throw new WarrenError('AUTH_BAD_USER', `"${unixUser}" is not a valid Unix account name`, { hint: 'name the account as `getent passwd NAME` knows it' });
      }
      const user: UserRecord = { name: o.name, unixUser, admin: o.admin === true, createdAt: Date.now() };
      const token = await addUserWithToken(this.store, user, o.tokenTtlSeconds);
      this.users.delete(o.name);
      return { user: userView(user), token };
    }, (r) => ({ unixUser: r.user.unixUser, admin: r.user.admin, ...(o.tokenTtlSeconds ? { tokenTtlSeconds: o.tokenTtlSeconds } : {}) }));
  }

  async usersList(p: Principal): Promise<UserView[]> {
    this.requireAdmin(p, 'listing users');
    return (await this.store.listUsers()).map(userView);
  }

  async removeUser(p: Principal, name: string): Promise<void> {
    return this.audited(p, 'user.remove', name, async () => {
      this.requireAdmin(p, 'removing a user');
      if (name === p.user) throw new WarrenError('AUTH_BAD_USER', 'you cannot remove yourself', { hint: 'ask another admin' });
      if (!(await this.store.removeUser(name))) throw new WarrenError('AUTH_USER_NOT_FOUND', `no user ${name}`, { hint: 'see `warren user list`' });
      this.users.delete(name);
    });
  }

  nodesList(p: Principal): NodeView[] {
    this.requireAdmin(p, 'listing nodes');
    return this.o.nodes.list();
  }

  async drain(p: Principal, name: string, on: boolean, reason?: string): Promise<NodeView> {
    return this.audited(
      p,
      on ? 'node.drain' : 'node.undrain',
      name,
      async () => {
        this.requireAdmin(p, on ? 'draining a node' : 'undraining a node');
        const v = await this.o.nodes.drain(name, on, reason);
        this.o.pool.schedule();
        return v;
      },
      () => (reason ? { reason } : {}),
    );
  }

  async revokeNode(p: Principal, name: string): Promise<void> {
    return this.audited(p, 'node.revoke', name, async () => {
      this.requireAdmin(p, 'revoking a node');
      await this.o.nodes.revoke(name);
    });
  }

  async deleteNode(p: Principal, name: string): Promise<void> {
    return this.audited(p, 'node.delete', name, async () => {
      this.requireAdmin(p, 'deleting a node');
      await this.o.nodes.delete(name);
    });
  }

  // --- the provisioning inventory (src/provision/manage.ts on the server's store) ---

  async inventoryNodes(p: Principal, req: { names?: string; missingOk?: boolean }): Promise<InventoryNodeView[]> {
    this.requireAdmin(p, 'listing the inventory');
    return listNodeViews(this.store, req.names, { missingOk: req.missingOk === true });
  }

  async addInventoryNodes(p: Principal, req: NodeChangeRequest): Promise<InventoryNode[]> {
    return this.audited(p, 'inventory.add', req.names.slice(0, 200), async () => {
      this.requireAdmin(p, 'adding nodes to the inventory');
      return addNodes(this.store, req);
    }, (r) => ({ nodes: r.length }));
  }

  async setInventoryNodes(p: Principal, req: NodeChangeRequest): Promise<InventoryNode[]> {
    return this.audited(p, 'inventory.set', req.names.slice(0, 200), async () => {
      this.requireAdmin(p, 'changing nodes of the inventory');
      return setNodes(this.store, req);
    }, (r) => ({ nodes: r.length }));
  }

  async deleteInventoryNodes(p: Principal, req: { names: string; missingOk?: boolean }): Promise<{ deleted: string[] }> {
    return this.audited(p, 'inventory.delete', req.names.slice(0, 200), async () => {
      this.requireAdmin(p, 'deleting nodes of the inventory');
      return deleteNodes(this.store, req.names, { missingOk: req.missingOk === true });
    }, (r) => ({ nodes: r.deleted.length }));
  }

  async profilesList(p: Principal): Promise<ProfileRecord[]> {
    this.requireAdmin(p, 'listing profiles');
    return this.store.listProfiles();
  }

  async addProfile(p: Principal, req: ProfileChangeRequest): Promise<ProfileRecord> {
    return this.audited(p, 'profile.add', req.name, async () => {
      this.requireAdmin(p, 'adding a profile');
      return addProfile(this.store, req);
    });
  }

  async setProfile(p: Principal, req: ProfileChangeRequest): Promise<ProfileRecord> {
    return this.audited(p, 'profile.set', req.name, async () => {
      this.requireAdmin(p, 'changing a profile');
      return setProfile(this.store, req);
    });
  }

  async deleteProfile(p: Principal, name: string): Promise<void> {
    return this.audited(p, 'profile.delete', name, async () => {
      this.requireAdmin(p, 'deleting a profile');
      await deleteProfile(this.store, name);
    });
  }

  caStatus(p: Principal): CaStatusView {
    this.requireAdmin(p, 'the CA status');
    return this.o.ca.status();
  }

  async rotateCa(p: Principal, o: { trustForSeconds?: number }): Promise<CaStatusView> {
    return this.audited(
      p,
      'ca.rotate',
      null,
      async () => {
        this.requireAdmin(p, 'rotating the CA');
        return this.o.ca.rotate(o);
      },
      (v) => ({ newCa: v.cas.find((c) => c.role === 'new')?.fingerprint ?? null, trustForSeconds: o.trustForSeconds ?? 0 }),
    );
  }

  async retireCa(p: Principal, o: { force?: boolean }): Promise<CaStatusView> {
    const r = await this.audited(
      p,
      'ca.retire',
      null,
      async () => {
        this.requireAdmin(p, 'retiring the old CA');
        return this.o.ca.retire(o);
      },
      (r) => ({ force: o.force === true, lockedOut: r.lockedOut, ca: r.view.cas[0]?.fingerprint ?? null }),
    );
    return r.view;
  }

  /** Stop driving (runs stay; their leases expire and another server, or this one restarted, takes them). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.scan) clearInterval(this.scan);
  }

  /** This server is no longer the leader: stop scanning and stop every driver at once, without
   *  touching the jobs or writing (the next leader takes the runs and adopts their attempts). */
  stepDown(why: string): void {
    this.closed = true;
    if (this.scan) clearInterval(this.scan);
    for (const d of this.drives.values()) d.driver.abandon(why);
  }

  /** How many runs this backend drives now. */
  get driving(): number {
    return this.drives.size;
  }

  /** Since when (ms) the unit that has waited longest for a node waits, over every run driven here; null: none waits. */
  oldestWaiting(): number | null {
    let min: number | null = null;
    for (const d of this.drives.values()) {
      const t = d.driver.oldestWaiting();
      if (t !== null && (min === null || t < min)) min = t;
    }
    return min;
  }
}

function userView(u: UserRecord): UserView {
  return { name: u.name, unixUser: u.unixUser, admin: u.admin, createdAt: u.createdAt };
}

/**
 * A submitted workflow runs on the cluster's nodes, which do not see the submitter's files:
 * local inputs (file:// ingress sources, local images) are refused with the path and what
 * to do, never silently missing on the node.
 */
export function refuseLocalInputs(wf: Workflow, file: string): void {
  const problems: string[] = [];
  for (const v of Object.values(wf.volumes)) {
    for (const t of v.ingress) if (t.source.uri.startsWith('file:') && !t.inlineFile) problems.push(`volume ${v.name}: ingress source ${t.source.uri} is a file on the submitting machine`);
    for (const t of v.egress) if (t.destination.uri.startsWith('file:')) problems.push(`volume ${v.name}: egress destination ${t.destination.uri} is a file on the submitting machine`);
  }
  for (const j of Object.values(wf.jobs)) {
    const u = j.image?.uri;
    if (u && (u.startsWith('file:') || u.startsWith('/') || u.startsWith('.'))) problems.push(`job ${j.name}: image ${u} is a local file`);
  }
  if (problems.length) {
    throw new WarrenError('RUN_LOCAL_INPUT', `${file}: ${problems.length === 1 ? problems[0] : `${problems.length} inputs are local files:\n  ${problems.join('\n  ')}`}`, {
      hint: 'put local inputs where every node can read them (an http(s):// or s3:// URL, a registry for images: `warren image push`), or run it on this machine with `--local`',
      details: { problems },
    });
  }
}

class PrincipalClient implements WarrenClient, AdminClient, InventoryClient {
  readonly where = 'server';
  constructor(
    private readonly b: ServerBackend,
    private readonly p: Principal,
  ) {}
  submit(req: SubmitRequest) {
    return this.b.submit(this.p, req);
  }
  get(id: string) {
    return this.b.get(this.p, id);
  }
  list(req: ListRequest = {}) {
    return this.b.list(this.p, req);
  }
  stream(id: string, opts: { afterSeq?: number; signal?: AbortSignal } = {}) {
    return this.b.stream(this.p, id, opts);
  }
  logs(id: string, req: LogsRequest, signal?: AbortSignal) {
    return this.b.logs(this.p, id, req, signal);
  }
  cancel(id: string) {
    return this.b.cancel(this.p, id);
  }
  resume(id: string) {
    return this.b.resume(this.p, id);
  }
  connect(id: string, service: string, port: number) {
    return this.b.connect(this.p, id, service, port);
  }
  async close(): Promise<void> {}
  async nodes() {
    return this.b.nodesList(this.p);
  }
  drain(name: string, on: boolean, reason?: string) {
    return this.b.drain(this.p, name, on, reason);
  }
  revokeNode(name: string) {
    return this.b.revokeNode(this.p, name);
  }
  deleteNode(name: string) {
    return this.b.deleteNode(this.p, name);
  }
  createJoinToken(o: { ttlSeconds: number; uses?: number }) {
    return this.b.createJoinToken(this.p, o);
  }
  tokens() {
    return this.b.tokens(this.p);
  }
  revokeToken(id: string) {
    return this.b.revokeToken(this.p, id);
  }
  addUser(o: { name: string; unixUser?: string; admin?: boolean; tokenTtlSeconds?: number }) {
    return this.b.addUser(this.p, o);
  }
  prune(req: PruneRequest) {
    return this.b.prune(this.p, req);
  }
  users() {
    return this.b.usersList(this.p);
  }
  removeUser(name: string) {
    return this.b.removeUser(this.p, name);
  }
  audit(q: AuditRequest = {}) {
    return this.b.auditList(this.p, q);
  }
  async caStatus() {
    return this.b.caStatus(this.p);
  }
  rotateCa(o: { trustForSeconds?: number } = {}) {
    return this.b.rotateCa(this.p, o);
  }
  retireCa(o: { force?: boolean } = {}) {
    return this.b.retireCa(this.p, o);
  }
  inventoryNodes(req: { names?: string; missingOk?: boolean } = {}) {
    return this.b.inventoryNodes(this.p, req);
  }
  addInventoryNodes(req: NodeChangeRequest) {
    return this.b.addInventoryNodes(this.p, req);
  }
  setInventoryNodes(req: NodeChangeRequest) {
    return this.b.setInventoryNodes(this.p, req);
  }
  deleteInventoryNodes(req: { names: string; missingOk?: boolean }) {
    return this.b.deleteInventoryNodes(this.p, req);
  }
  profiles() {
    return this.b.profilesList(this.p);
  }
  addProfile(req: ProfileChangeRequest) {
    return this.b.addProfile(this.p, req);
  }
  setProfile(req: ProfileChangeRequest) {
    return this.b.setProfile(this.p, req);
  }
  deleteProfile(name: string) {
    return this.b.deleteProfile(this.p, name);
  }

  nodeImageBuild(req: NodeImageBuildRequest) {
    return this.b.nodeImageBuild(this.p, req);
  }
  nodeImages() {
    return this.b.nodeImageList(this.p);
  }
  removeNodeImages(what: string) {
    return this.b.nodeImageRemove(this.p, what);
  }
}

