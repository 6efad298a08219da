// `warren server`: the composition of a cluster server. One HTTPS port serves users (API
// tokens, /api/v1) and agents (mutual TLS with node SVIDs, /agent/v1). State in the store
// (PostgreSQL for a cluster; SQLite for a single test server); the cluster CA in the store
// and under DATA/ca; the first admin's token in DATA/admin.token (0600), printed once.
//
// Two servers on one store: one leader (src/server/leader.ts, a lease row in the store). The
// HTTP server is up the whole time; the leader side (node registry, cluster pool, the
// backend that drives the runs) is built when this server gains the leadership and torn
// down, at once, when it loses it. A follower serves reads from the store, forwards the rest
// of the user API to the leader (src/server/follower.ts), and answers agents 503
// SERVER_NOT_LEADER with the leader's URL.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { WarrenError, createLogger, toLogger, type LogFn, type Logger } from '../common/index.js';
import { RevocationList, type MeshCredentials } from '../mesh/index.js';
import { openStore, type Store, type UserRecord } from '../store/index.js';
import type { LiveView, NodeView, ReadyView, ServerStatusView } from '../api/index.js';
import { ClusterPool } from './pool.js';
import { ServerBackend, addUserWithToken, authenticateApiToken, type CaAdmin, type NodeAdmin } from './backend.js';
import { buildApiServer } from './http/lazy.js';
import type { ApiBackend } from './http/app.js';
import { MeshTls } from './mesh-tls.js';
import { NodeRegistry, connectPool, type RegisteredNode } from './nodes.js';
import { agentRoutes } from './agent-routes.js';
import { ClusterAuthority } from './cluster-ca.js';
import { FollowerClient, LeaderForwarder } from './follower.js';
import { resolveNode } from '../provision/index.js';
import { gateStore, notLeaderError, type StoreGate } from './gate.js';
import { LeaderElection, bounded, type LeaderTimers } from './leader.js';
import { ServerMetrics, StoreCounts, agentCountsOf, instrumentStore } from './metrics.js';
import { countRequests, observeRoutes } from './http/observe.js';
import { RetentionPruner } from './retention.js';
import type { ProvisionOptions } from './boot/index.js';

export interface ServerTimers {
  heartbeatMs: number;
  graceMs: number;
  lostAfterMs: number;
  stopAfterMs: number;
  leaseTtlMs: number;
}

export const DEFAULT_SERVER_TIMERS: ServerTimers = { heartbeatMs: 5000, graceMs: 15_000, lostAfterMs: 5 * 60_000, stopAfterMs: 10 * 60_000, leaseTtlMs: 15_000 };

export interface ServeOptions {
  host: string;
  port: number;
  dataDir: string;
  /** postgres://... or a SQLite path (default DATA/warren.db). */
  store?: string;
  trustDomain?: string;
  /** The server's name in its SVID (default: the host name). */
  name?: string;
  /** Extra host names / addresses for the server certificate. */
  hosts?: string[];
  /** The URL agents and the other server reach this one at (default https://LISTEN-ADDRESS:PORT, or the host name for 0.0.0.0). */
  advertise?: string;
  timers?: Partial<ServerTimers>;
  /** `--retain`: prune finished workflows that ended this long ago (ms; default: keep them forever). Only the leader prunes. */
  retainMs?: number;
  /** How often the pruner runs (default: a tenth of retainMs, between 1 s and 1 h). */
  pruneEveryMs?: number;
  /** The leader lease's timers (default: 8 s life, renewed every 2 s, tried every 1 s by a follower). */
  leaderTimers?: Partial<LeaderTimers>;
  /** The server's log (default: readable lines on stderr, info and above); a Logger or a plain callback. */
  log?: LogFn | Logger;
  /** Also serve /metrics, /health and /ready over plain HTTP here (for a scraper on loopback
   *  or behind a network policy): no token there unless `metricsToken` is set. */
  metricsListen?: { host: string; port: number };
  /** A dedicated bearer token for GET /metrics (a scraper's; never stored, compared in constant time).
   *  Without it, /metrics on the HTTPS port takes an admin's API token. */
  metricsToken?: string;
  /** How often the store's counts for /metrics and `warren server status` are refreshed (default 5 s). */
  metricsRefreshMs?: number;
  /** `--provision`: the boot service for network-booted nodes (plain HTTP; src/server/boot). */
  provision?: ProvisionOptions;
}

export interface RunningServer {
  url: string;
  port: number;
  caPem: string;
  /** Set on the first start only: the first admin's API token (also in DATA/admin.token). */
  adminToken: string | undefined;
  store: Store;
  /** This server's id in the leader lease. */
  id: string;
  /** leader: its leader side runs (scheduling, runs, heartbeats); follower: it serves reads and forwards the rest. */
  role(): 'leader' | 'follower';
  /** http://HOST:PORT of the plain metrics listener (--metrics-listen), when there is one. */
  metricsUrl: string | undefined;
  metrics: ServerMetrics;
  /** http://HOST:PORT of the boot service (--provision), when there is one. */
  bootUrl: string | undefined;
  close(): Promise<void>;
}

export const ADMIN_TOKEN_FILE = 'admin.token';
/** The agent daemon's default request timeout (src/agent/remote.ts): how long an agent may wait on a dead leader before it tries another server. */
const AGENT_REQUEST_TIMEOUT_MS = 15_000;
export const CA_PEM_FILE = 'ca.pem';
/** Every server reads the cluster CA row this often (a CA rotation moved on by the leader, or by another server). */
const CA_REFRESH_MS = 2000;

/** What only the leader runs: built when this server gains the leadership, torn down when it loses it. */
interface LeaderSide {
  term: number;
  gate: StoreGate;
  registry: NodeRegistry;
  pool: ClusterPool;
  backend: ServerBackend;
  unhook: () => void;
  /** `--retain`: prunes finished workflows periodically while this server leads. */
  pruner: RetentionPruner | null;
}

export const SERVER_VERSION = '0.1.0';

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const log: Logger = o.log ? toLogger(o.log) : createLogger();
  const timers = { ...DEFAULT_SERVER_TIMERS, ...(o.timers ?? {}) };
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(o.dataDir, 0o700);
  // Every store call of the server is timed here, once (warren_store_call_duration_seconds).
  let metrics: ServerMetrics | null = null;
  const store = instrumentStore(await openStore(o.store ?? join(o.dataDir, 'warren.db')), (op, seconds, failed) => metrics?.storeCall(op, seconds, failed));
  const closers: (() => Promise<void> | void)[] = [() => store.close()];
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
  };
  try {
    // The cluster CA (and a CA rotation in progress) from the store; DATA/ca.pem is the trust bundle.
    const authority = await ClusterAuthority.open(store, join(o.dataDir, 'ca'), join(o.dataDir, CA_PEM_FILE), o.trustDomain ?? 'warren.local', log);
    const trustDomain = authority.trustDomain;
    const name = o.name ?? hostname().replace(/[^A-Za-z0-9.-]/g, '-');
    const hosts = [...new Set([o.host, hostname(), 'localhost', '127.0.0.1', ...(o.hosts ?? [])].filter((h) => h && h !== '0.0.0.0' && h !== '::'))];
    /** The server's own certificate, from the CA that signs now. */
    const issue = async () => authority.signer.issueServerIdentity(name, hosts);
    let me = await issue();
    const credentials = (): MeshCredentials => ({ keyPem: me.keyPem, certPem: me.cert.certPem, trustBundle: authority.bundle });
    const adminToken = await firstAdmin(store, o.dataDir);
    const serverId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    // One revocation list for every leader side this server builds (and its TLS).
    const revocations = new RevocationList();
    const rlog = (level: string, msg: string, fields?: Record<string, unknown>): void => log(level === 'error' ? 'error' : level === 'warn' ? 'warn' : 'info', msg, fields);

    let election: LeaderElection | null = null;
    /** The leader side, published once fully built (null: this server does not schedule). */
    let side: LeaderSide | null = null;
    /** The gate of a leader side being built (closed at once if the leadership goes meanwhile). */
    let building: StoreGate | null = null;
    let closing = false;
    let transitions: Promise<void> = Promise.resolve();

    // What /metrics and `warren server status` show of the store: counted in the background.
    const counts = new StoreCounts(store, o.metricsRefreshMs ?? 5000);
    const m = new ServerMetrics({
      version: SERVER_VERSION,
      storeKind: store.kind,
      counts,
      view: {
        leader: () => (side ? { leader: true, term: side.term } : { leader: false, term: election?.view().term ?? 0 }),
        agents: () => side?.registry.counts() ?? null,
        driving: () => side?.backend.driving ?? 0,
      },
    });
    metrics = m;
    counts.start();
    closers.push(() => counts.close());

    const buildLeaderSide = async (term: number): Promise<LeaderSide> => {
      const gate = gateStore(store);
      building = gate;
      let backend: ServerBackend | null = null;
      const registry = new NodeRegistry({
        store: gate.store,
        ca: authority.signer,
        tokens: gate.store.joinTokens(),
        trustDomain,
        trustBundle: authority.bundle,
        revocations,
        timers: { heartbeatMs: timers.heartbeatMs, graceMs: timers.graceMs, lostAfterMs: timers.lostAfterMs, stopAfterMs: timers.stopAfterMs },
        // A new leader: the agents first have to find it (a request to the old one may hang
        // for the agent's request timeout, 15 s, before it tries the next server).
        startGraceMs: timers.graceMs + timers.heartbeatMs + AGENT_REQUEST_TIMEOUT_MS,
        log: rlog,
        metrics: m,
        beforeAck: () => backend?.flush() ?? Promise.resolve(),
        workflowEnds: (ids: string[]) => gate.store.workflowEnds(ids),
        inventoryTags: async (name: string) => {
          const n = await gate.store.getInventoryNode(name);
          return n && resolveNode(n, await gate.store.listProfiles()).tags;
        },
      } as ConstructorParameters<typeof NodeRegistry>[0]);
      // A gang goes only to nodes heard from within two heartbeats: a retry right after an
      // agent died does not land on it before it is known to be down.
      const pool = new ClusterPool({ directory: registry, lostAfterMs: timers.lostAfterMs, gangFreshMs: 2 * timers.heartbeatMs, log, metrics: m });
      const unhookPool = connectPool(registry, pool);
      // A node's health check drained or undrained it: placement changes, and the audit log says so.
      const onHealth = (node: string, change: 'drained' | 'undrained', reason: string, h: { command: string; exitCode: number | null; timedOut: boolean; output: string }): void => {
        pool.schedule();
        void backend?.audit({ actor: `node:${node}`, action: change === 'drained' ? 'node.drain' : 'node.undrain', target: node, source: 'health-check', result: 'ok', details: { reason, command: h.command, exitCode: h.exitCode, timedOut: h.timedOut, output: h.output.slice(-1000) } });
      };
      registry.on('health', onHealth);
      // A CA rotation in progress moves on when the nodes have caught up (src/mesh rotationStep).
      let advancing = false;
      const rotation = setInterval(() => {
        if (!authority.rotation || advancing) return;
        advancing = true;
        authority
          .advance(gate.store, registry.rotationNodes())
          .catch((e: unknown) => log('warn', `CA rotation: ${(e as Error).message}`))
          .finally(() => (advancing = false));
      }, Math.min(1000, timers.heartbeatMs));
      rotation.unref();
      const unhook = (): void => {
        unhookPool();
        registry.off('health', onHealth);
        clearInterval(rotation);
      };
      // Pruned workflows: every node deletes its copies of their run directories.
      const onForget = (ids: string[]): void => registry.forget(ids);
      const caAdmin: CaAdmin = {
        status: () => authority.status(registry.rotationNodes()),
        rotate: async (r) => {
          await authority.rotate(gate.store, (r.trustForSeconds ?? 0) * 1000);
          return authority.status(registry.rotationNodes());
        },
        retire: async (r) => {
          const lockedOut = await authority.retire(gate.store, registry.rotationNodes(), r.force === true);
          return { view: authority.status(registry.rotationNodes()), lockedOut };
        },
      };
      backend = new ServerBackend({ store: gate.store, pool, nodes: nodeAdmin(registry), ca: caAdmin, dataDir: o.dataDir, leaseTtlMs: timers.leaseTtlMs, log, metrics: m, onForget });
      const b = backend;
      // Only the leader prunes (through its gated store: cut off at once when it steps down).
      const pruner = o.retainMs
        ? new RetentionPruner({
            store: gate.store,
            home: o.dataDir,
            retainMs: o.retainMs,
            ...(o.pruneEveryMs ? { everyMs: o.pruneEveryMs } : {}),
            onForget,
            log,
            onPass: (r) => void b.audit({ actor: 'server', action: 'workflow.prune', target: null, source: 'retention', result: r.interrupted ? 'interrupted' : 'ok', details: { retainSec: Math.round(o.retainMs! / 1000), workflows: r.workflows, units: r.units, events: r.events, history: r.history, keptRunning: r.keptRunning, bytesFreed: r.bytesFreed } }),
          })
        : null;
      const s: LeaderSide = { term, gate, registry, pool, backend, unhook, pruner };
      try {
        // Every node gets a full grace from now before it can be down or lost (registry.start).
        await registry.start();
        // The runs a previous leader drove are taken (their attempts adopted) before any agent
        // can report here: a node's report of one of them is never taken for a stale copy.
        await backend.start();
        if (gate.closed) throw new Error('the leadership went while this server took it up');
        pruner?.start();
      } catch (e) {
        await teardown(s, (e as Error).message);
        throw e;
      } finally {
        if (building === gate) building = null;
      }
      return s;
    };

    /** Stop scheduling at once (nothing waits on the store), then let go of the rest, every wait bounded. */
    const stopNow = (s: LeaderSide, why: string): void => {
      void s.pruner?.stop();
      s.backend.stepDown(why);
      s.gate.close(why);
      s.unhook();
    };
    const teardown = async (s: LeaderSide, why: string): Promise<void> => {
      stopNow(s, why);
      await bounded(s.pool.close(), 1000);
      // Its waiting polls are answered: the agents ask again and are told where the leader is.
      await bounded(s.registry.close(), 2000);
      await bounded(s.backend.close(), 1000);
    };

    const tls = new MeshTls({ credentials: credentials(), trustDomain });
    tls.useRevocations(revocations);
    closers.push(() => tls.close());

    const leaderUrl = (): string | null => (election && !election.isLeader ? election.view().leaderUrl : null);
    const forwarder = new LeaderForwarder(authority.bundle, trustDomain, { isLeader: () => side !== null, leaderUrl });
    closers.push(() => forwarder.close());
    // A new certificate of the server (from the CA that signs now) and the bundle for the TLS port, one at a time.
    let certs: Promise<void> = Promise.resolve();
    const reissue = (): Promise<void> =>
      (certs = certs.then(() =>
        issue().then(
          (n) => {
            me = n;
            tls.rotate(credentials());
          },
          (e: unknown) => log('error', `cannot renew the server certificate: ${(e as Error).message}`),
        ),
      ));
    // A CA rotation moved on (here or on another server): the leader side's registry signs with the
    // new signer and tells agents the new bundle; the forwarder and the TLS port trust it.
    authority.onChange(() => {
      side?.registry.useAuthority(authority.signer, authority.bundle);
      forwarder.useTrust(authority.bundle);
      void reissue();
    });
    let caReadError = '';
    const caWatch = setInterval(() => {
      authority.refresh().then(
        () => (caReadError = ''),
        (e: unknown) => {
          const m = (e as Error).message;
          if (m !== caReadError) log('warn', `cannot read the cluster CA from the store: ${m} (tried again every ${CA_REFRESH_MS / 1000} s)`);
          caReadError = m;
        },
      );
    }, CA_REFRESH_MS);
    caWatch.unref();
    closers.push(() => clearInterval(caWatch));
    // The agent routes talk to the current leader side's registry; on a follower they answer
    // 503 SERVER_NOT_LEADER with the leader's URL (the agent goes there).
    const currentRegistry = new Proxy({} as NodeRegistry, {
      get(_t, key) {
        if (key === 'revocations') return revocations;
        const reg = side?.registry;
        if (!reg) throw notLeaderError(election?.isLeader ? 'it is taking up the leadership' : 'it is a follower', leaderUrl());
        const v = Reflect.get(reg, key, reg) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(reg) : v;
      },
    });
    const users = new Map<string, { at: number; user: UserRecord | undefined }>();
    const userOf = async (n: string): Promise<UserRecord | undefined> => {
      const hit = users.get(n);
      if (hit && Date.now() - hit.at < 5000) return hit.user;
      const user = await store.getUser(n);
      users.set(n, { at: Date.now(), user });
      return user;
    };
    // /ready and `warren server status`: the store probed (one small query, 2 s at most; one
    // probe a second however many ask), the leadership as this server knows it.
    let probe: { at: number; p: Promise<ReadyView['store']> } | null = null;
    const probeStore = (): Promise<ReadyView['store']> => {
      if (probe && Date.now() - probe.at < 1000) return probe.p;
      const t0 = performance.now();
      const ms = (): number => Math.round((performance.now() - t0) * 100) / 100;
      const p = bounded(store.readLeader(), 2000).then(
        (r): ReadyView['store'] => (r === undefined ? { kind: store.kind, reachable: false, latencyMs: ms(), error: 'no answer within 2 s' } : { kind: store.kind, reachable: true, latencyMs: ms() }),
        (e: unknown): ReadyView['store'] => ({ kind: store.kind, reachable: false, latencyMs: ms(), error: (e as Error).message }),
      );
      probe = { at: Date.now(), p };
      return p;
    };
    const startedAt = Date.now();
    const live = (): LiveView => ({ status: 'ok', version: SERVER_VERSION, role: side ? 'leader' : 'follower', uptimeSeconds: Math.round((Date.now() - startedAt) / 100) / 10 });
    const readiness = async (): Promise<ReadyView> => {
      const st = await probeStore();
      const s = side;
      const v = election?.view();
      const leaderUrl = s ? advertised : (v?.leaderUrl ?? null);
      const messages: string[] = [];
      let ready = st.reachable;
      if (!st.reachable) messages.push(`the store is not reachable (${st.error})`);
      if (closing) {
        ready = false;
        messages.push('this server is shutting down');
      } else if (!s) {
        if (election?.isLeader) {
          ready = false;
          messages.push('this server is taking up the leadership');
        } else if (!leaderUrl) {
          ready = false;
          messages.push('this server is a follower and no server holds the leadership now: it has nowhere to forward writes (a server takes the leadership within seconds)');
        } else messages.push(`this server is a follower: reads are served here, the rest is forwarded to the leader at ${leaderUrl}`);
      }
      return { ready, version: SERVER_VERSION, role: s ? 'leader' : 'follower', term: s ? s.term : (v?.term ?? 0), leaderUrl, store: st, messages };
    };
    const serverStatus = async (): Promise<ServerStatusView> => {
      const r = await readiness();
      // A person asks: count now (joins a count in flight), within 2 s; else the last count.
      if (r.store.reachable) await bounded(counts.refresh(), 2000);
      const s = side;
      const last = counts.last;
      const a = s ? s.registry.counts() : last ? agentCountsOf(last.stats.nodes) : null;
      const oldest = s ? s.backend.oldestWaiting() : null;
      const u = last?.stats.units ?? {};
      const w = last?.stats.workflows ?? {};
      return {
        ...r,
        id: serverId,
        url: advertised,
        agents: a ? { ...a, source: s ? 'live' : 'store' } : null,
        queue: last ? { pending: u.pending ?? 0, ready: u.ready ?? 0, starting: u.starting ?? 0, running: u.running ?? 0, oldestWaitingSeconds: oldest === null ? null : Math.max(0, (Date.now() - oldest) / 1000), countedAt: last.at } : null,
        workflows: last ? { pending: w.pending ?? 0, running: w.running ?? 0 } : null,
      };
    };
    // GET /metrics on the HTTPS port: the dedicated metrics token (no store needed), or an admin's API token.
    const metricsHash = o.metricsToken ? createHash('sha256').update(o.metricsToken, 'utf8').digest() : null;
    const isMetricsToken = (t: string): boolean => metricsHash !== null && timingSafeEqual(createHash('sha256').update(t, 'utf8').digest(), metricsHash);
    const bearer = (header: string | undefined): string => {
      const t = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header ?? '')?.[1];
      if (!t) {
        throw new WarrenError('AUTH_REQUIRED', 'GET /metrics needs a bearer token', {
          hint: metricsHash ? "send Authorization: Bearer <the --metrics-token-file token> (Prometheus: `authorization: {credentials_file: ...}`)" : "send an admin's API token as Authorization: Bearer TOKEN, or start the server with --metrics-token-file FILE (docs/metrics.md)",
        });
      }
      return t;
    };
    const authorizeMetrics = async (header: string | undefined): Promise<void> => {
      const t = bearer(header);
      if (isMetricsToken(t)) return;
      const p = await authenticateApiToken(store, t, userOf);
      if (!p) throw new WarrenError('AUTH_TOKEN_INVALID', 'the token of this scrape is not the metrics token, nor a valid API token', { hint: 'use the token of --metrics-token-file, or an admin\'s API token (docs/metrics.md)' });
      if (!p.admin) throw new WarrenError('AUTH_FORBIDDEN', `GET /metrics is for admins and the metrics token; user "${p.user}" is not an admin`, { hint: 'use the token of --metrics-token-file, or an admin\'s API token' });
    };
    const scrape = async (): Promise<{ contentType: string; text: string }> => ({ contentType: m.contentType, text: await m.text() });
    const api: ApiBackend = {
      serverStatus,
      authenticate: (t) => authenticateApiToken(store, t, userOf),
      audit: async (e) => {
        try {
          await store.appendAudit({ at: Date.now(), ...e });
        } catch (err) {
          log('error', `cannot write to the audit log (${e.actor} ${e.action} ${e.result}): ${(err as Error).message}`);
        }
      },
      client: (p) => (side ? side.backend.client(p) : new FollowerClient(store, p)),
      // Inventory calls are forwarded to the leader (src/server/follower.ts); a server between
      // leaders answers SERVER_NOT_LEADER, and the client retries.
      inventory: (p) => {
        if (!side) throw new WarrenError('SERVER_NOT_LEADER', 'this server is not the cluster\'s leader now', { hint: 'retry in a few seconds; `GET /api/v1/health` on each server says which one leads' });
        return side.backend.inventory(p);
      },
      health: async () => {
        const s = side;
        let storeOk = true;
        let error: string | undefined;
        try {
          const r = await bounded(store.listWorkflows({ limit: 1 }), 3000);
          if (r === undefined) throw new Error('no answer within 3 s');
        } catch (e) {
          storeOk = false;
          error = (e as Error).message;
        }
        const v = election?.view();
        const role: 'leader' | 'follower' = s ? 'leader' : 'follower';
        const nodes = s ? s.registry.list() : [];
        const ready = nodes.filter((n) => n.state === 'ready').length;
        const messages: string[] = [];
        if (!storeOk) messages.push(`the store is not reachable (${error}): ${role === 'leader' ? 'scheduling waits and retries; nothing accepted is lost' : 'this server does not schedule (it may not be the leader any more) until the store answers again'}`);
        if (s && s.backend.storeProblem && storeOk) messages.push(`recovering from a store error: ${s.backend.storeProblem}`);
        if (role === 'follower') {
          const url = v?.leaderUrl ?? null;
          messages.push(election?.isLeader ? 'this server is taking up the leadership' : url ? `this server is a follower: the leader is ${url} (reads are served here, the rest is forwarded there)` : 'this server is a follower and no server holds the leadership now (a follower takes it within seconds)');
        } else if (nodes.length === 0) messages.push('no node has joined yet: `warren token create`, then `warren agent` on a node');
        return {
          ok: storeOk,
          version: SERVER_VERSION,
          store: { ok: storeOk, kind: store.kind, ...(error ? { error } : {}) },
          leader: role === 'leader',
          role,
          leaderUrl: role === 'leader' ? advertised : (v?.leaderUrl ?? null),
          term: role === 'leader' ? s!.term : (v?.term ?? 0),
          ...(s ? { nodes: { ready, total: nodes.length } } : {}),
          messages,
        };
      },
    };
    let advertised = '';
    const server = await buildApiServer({
      backend: api,
      https: tls.httpsOptions(),
      plugins: [agentRoutes(currentRegistry, tls, { log: rlog } as never), observeRoutes({ live, ready: readiness, metrics: scrape, authorizeMetrics })],
      log: (level, msg, fields) => log(level, msg, fields),
      intercept: (req, reply) => forwarder.intercept(req, reply),
      requests: (method, route, status, seconds) => m.request(method, route, status, seconds),
    });
    closers.push(() => server.close());
    let addr: { host: string; port: number };
    try {
      addr = await server.listen(o.host, o.port);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new WarrenError('SERVER_LISTEN_FAILED', `cannot listen on ${o.host}:${o.port}: ${code === 'EADDRINUSE' ? 'the address is in use (another server?)' : code === 'EACCES' ? 'permission denied (ports below 1024 need root)' : code === 'EADDRNOTAVAIL' ? 'this machine has no such address' : (e as Error).message}`, {
        hint: code === 'EADDRINUSE' ? `stop what listens there (\`ss -ltnp | grep :${o.port}\`), or choose another port with --listen` : 'choose an address of this machine and a free port with --listen ADDRESS:PORT',
        cause: e,
      });
    }
    // The server's own certificate is renewed at half its life, without a restart.
    const renew = setInterval(() => void reissue(), 30 * 60_000);
    renew.unref();
    closers.push(() => clearInterval(renew));
    // The plain-HTTP listener for scrapers and load balancers (loopback or a protected network).
    let metricsUrl: string | undefined;
    if (o.metricsListen) {
      const plain = Fastify({ logger: false, forceCloseConnections: true, return503OnClosing: true });
      countRequests(plain, (method, route, status, seconds) => m.request(method, route, status, seconds));
      // Before the routes: a plugin takes the error handler of when it is registered.
      plain.setErrorHandler((err, _req, reply) => {
        const e = err instanceof WarrenError ? err : new WarrenError('WARREN_INTERNAL', (err as Error).message);
        void reply.code(e.httpStatus).send({ error: e.toWire() });
      });
      await plain.register(observeRoutes({ live, ready: readiness, metrics: scrape, ...(metricsHash ? { authorizeMetrics: async (h: string | undefined) => {
        if (!isMetricsToken(bearer(h))) throw new WarrenError('AUTH_TOKEN_INVALID', 'the token of this scrape is not the metrics token', { hint: 'send Authorization: Bearer <the --metrics-token-file token>' });
      } } : {}) }));
      closers.push(() => plain.close());
      const { host: mh, port: mp } = o.metricsListen;
      try {
        await plain.listen({ host: mh, port: mp });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new WarrenError('SERVER_LISTEN_FAILED', `cannot listen on ${mh}:${mp} for metrics: ${code === 'EADDRINUSE' ? 'the address is in use' : code === 'EACCES' ? 'permission denied (ports below 1024 need root)' : code === 'EADDRNOTAVAIL' ? 'this machine has no such address' : (e as Error).message}`, {
          hint: 'choose a free address and port with --metrics-listen ADDRESS:PORT (e.g. 127.0.0.1:9464)',
          cause: e,
        });
      }
      const a = plain.server.address() as { address: string; port: number; family: string };
      metricsUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      log('info', `metrics, health and readiness on ${metricsUrl} (/metrics, /health, /ready; ${metricsHash ? 'the metrics token needed' : 'no token'})`);
    }
    const shown = o.host === '0.0.0.0' || o.host === '::' ? hostname() : o.host;
    const url = o.advertise ?? `https://${shown.includes(':') ? `[${shown}]` : shown}:${addr.port}`;
    advertised = url;

    // The boot service (--provision): every server answers it, leader or not (its state is in the store).
    let bootUrl: string | undefined;
    if (o.provision) {
      const { startBootService } = await import('./boot/index.js');
      const boot = await startBootService(o.provision, { dataDir: o.dataDir, tokens: store.joinTokens(), store, server: () => ({ url: advertised, caPem: authority.bundlePem }), trustDomain, log });
      closers.push(() => boot.close());
      bootUrl = boot.url;
    }

    // The leadership: this server leads while it holds the lease; only then is its leader side up.
    const el = new LeaderElection({ store, id: serverId, url, ...(o.leaderTimers ? { timers: o.leaderTimers } : {}), log });
    election = el;
    el.on('elected', (term) => {
      transitions = transitions.then(async () => {
        if (closing || !el.isLeader || el.currentTerm !== term || side) return;
        try {
          const s = await buildLeaderSide(term);
          if (closing || !el.isLeader || el.currentTerm !== term) {
            await teardown(s, 'the leadership went while this server took it up');
            return;
          }
          side = s;
          // A CA rotation may have moved on while the side was being built.
          s.registry.useAuthority(authority.signer, authority.bundle);
          m.elected();
          log('info', `leading the cluster (term ${term}): scheduling, driving the runs, watching the nodes`, { term });
        } catch (e) {
          log('error', `cannot take up the leadership (term ${term}): ${(e as Error).message}; giving it up`);
          await el.resign();
        }
      });
    });
    el.on('deposed', (why) => {
      // At once: no dispatch, no write from here on (the store may be gone: nothing waits on it).
      building?.close(why);
      const s = side;
      side = null;
      if (!s) return;
      stopNow(s, why);
      transitions = transitions.then(() => teardown(s, why));
    });
    closers.push(async () => {
      closing = true;
      await el.close();
      await bounded(transitions, 5000);
    });
    el.start();
    // A server that can lead at once (the lease is free) is up with its leader side before it says it is ready.
    await bounded(el.firstRound.then(() => transitions), 15_000);
    log('info', `warren server on ${url} (${side ? 'leader' : 'follower'}; store: ${store.kind}, trust domain ${trustDomain}, CA ${join(o.dataDir, CA_PEM_FILE)})`);
    return { url, port: addr.port, caPem: authority.bundlePem, adminToken, store, id: serverId, role: () => (side ? 'leader' : 'follower'), metricsUrl, metrics: m, bootUrl, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** On the first start (no user yet): the first admin, mapped to the account running the server. */
async function firstAdmin(store: Store, dir: string): Promise<string | undefined> {
  if ((await store.listUsers()).length > 0) return undefined;
  const account = userInfo().username;
  let token: string;
  try {
    token = await addUserWithToken(store, { name: account, unixUser: account, admin: true, createdAt: Date.now() });
  } catch (e) {
    if ((e as WarrenError).code === 'AUTH_USER_EXISTS') return undefined; // another server made it
    throw e;
  }
  const path = join(dir, ADMIN_TOKEN_FILE);
  if (existsSync(path)) chmodSync(path, 0o600);
  writeFileSync(path, token + '\n', { mode: 0o600 });
  return token;
}

function nodeView(reg: NodeRegistry, n: RegisteredNode): NodeView {
  const load = reg.load(n.name);
  const state: NodeView['state'] = n.state === 'revoked' ? 'revoked' : n.state === 'lost' ? 'lost' : n.state === 'down' ? 'down' : n.drained ? (load && load.running > 0 ? 'draining' : 'drained') : 'ready';
  return {
    name: n.name,
    state,
    cores: n.info.cores,
    memoryBytes: n.info.memoryBytes,
    gpus: n.info.gpus.length,
    labels: n.info.labels,
    platform: n.info.platform,
    lastSeenAt: n.lastSeenAt ?? null,
    running: load?.running ?? 0,
    usedCores: load?.usedCores ?? 0,
    drainReason: n.drained ? n.drainReason : null,
    drainedBy: n.drained ? n.drainedBy : null,
    health: n.health ? { ok: n.health.ok, at: n.health.at, output: n.health.output } : null,
  };
}

function nodeAdmin(reg: NodeRegistry): NodeAdmin {
  const get = (name: string): RegisteredNode => {
    const n = reg.get(name);
    if (!n) throw new WarrenError('AGENT_NODE_UNKNOWN', `there is no node ${name}`, { hint: 'see `warren node list` for the nodes' });
    return n;
  };
  return {
    list: () => reg.list().map((n) => nodeView(reg, n)),
    drain: async (name, on, reason) => {
      get(name);
      if (on) await reg.drain(name, reason);
      else await reg.undrain(name);
      return nodeView(reg, get(name));
    },
    revoke: async (name) => {
      get(name);
      await reg.revoke(name);
    },
    delete: async (name) => {
      get(name);
      await reg.delete(name);
    },
    requestLogs: (node, req, signal) => reg.requestLogs(node, req, signal),
  };
}
