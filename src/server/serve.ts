// `warren server`: the composition of a cluster server. One HTTPS port serves users (API
// tokens, /api/v1) and agents (mutual TLS with node SVIDs, /agent/v1). State in the store
// (PostgreSQL for a cluster; SQLite for a single test server); the cluster CA under
// DATA/ca; the first admin's token in DATA/admin.token (0600), printed once.

import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { WarrenError } from '../common/index.js';
import { CertificateAuthority, TrustBundle } from '../mesh/index.js';
import { openStore, type Store } from '../store/index.js';
import type { NodeView } from '../api/index.js';
import { ClusterPool } from './pool.js';
import { ServerBackend, addUserWithToken, type NodeAdmin } from './backend.js';
import { buildApiServer } from './http/lazy.js';
import type { ApiBackend } from './http/app.js';
import { MeshTls } from './mesh-tls.js';
import { NodeRegistry, connectPool, type RegisteredNode } from './nodes.js';
import { agentRoutes } from './agent-routes.js';

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
  timers?: Partial<ServerTimers>;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  caPem: string;
  /** Set on the first start only: the first admin's API token (also in DATA/admin.token). */
  adminToken: string | undefined;
  store: Store;
  close(): Promise<void>;
}

export const ADMIN_TOKEN_FILE = 'admin.token';
export const CA_PEM_FILE = 'ca.pem';

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const log = o.log ?? ((level, msg) => process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`));
  const timers = { ...DEFAULT_SERVER_TIMERS, ...(o.timers ?? {}) };
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(o.dataDir, 0o700);
  const store = await openStore(o.store ?? join(o.dataDir, 'warren.db'));
  const closers: (() => Promise<void> | void)[] = [() => store.close()];
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
  };
  try {
    const { ca } = await CertificateAuthority.open(join(o.dataDir, 'ca'), { trustDomain: o.trustDomain ?? 'warren.local' });
    writeFileSync(join(o.dataDir, CA_PEM_FILE), ca.certPem, { mode: 0o644 });
    const name = o.name ?? hostname().replace(/[^A-Za-z0-9.-]/g, '-');
    const hosts = [...new Set([o.host, hostname(), 'localhost', '127.0.0.1', ...(o.hosts ?? [])].filter((h) => h && h !== '0.0.0.0' && h !== '::'))];
    const issue = async () => ca.issueServerIdentity(name, hosts);
    let me = await issue();
    const bundle = new TrustBundle([ca.certPem]);
    const adminToken = await firstAdmin(store, o.dataDir);

    const registry = new NodeRegistry({
      store,
      ca,
      tokens: store.joinTokens(),
      trustDomain: ca.trustDomain,
      trustBundle: bundle,
      timers: { heartbeatMs: timers.heartbeatMs, graceMs: timers.graceMs, lostAfterMs: timers.lostAfterMs, stopAfterMs: timers.stopAfterMs },
      log: (level: string, msg: string) => log(level === 'error' ? 'error' : level === 'warn' ? 'warn' : 'info', msg),
      beforeAck: () => backend.flush(),
    } as ConstructorParameters<typeof NodeRegistry>[0]);
    await registry.start();
    closers.push(() => registry.close());
    const pool = new ClusterPool({ directory: registry, lostAfterMs: timers.lostAfterMs, log });
    const unhook = connectPool(registry, pool);
    closers.push(() => {
      unhook();
      return pool.close();
    });
    const backend: ServerBackend = new ServerBackend({ store, pool, nodes: nodeAdmin(registry), dataDir: o.dataDir, leaseTtlMs: timers.leaseTtlMs, log });
    closers.push(() => backend.close());

    const tls = new MeshTls({ credentials: { keyPem: me.keyPem, certPem: me.cert.certPem, trustBundle: bundle }, trustDomain: ca.trustDomain });
    closers.push(() => tls.close());
    const api: ApiBackend = {
      authenticate: (t) => backend.authenticate(t),
      client: (p) => backend.client(p),
      health: async () => {
        const nodes = registry.list();
        const ready = nodes.filter((n) => n.state === 'ready').length;
        let storeOk = true;
        let error: string | undefined;
        try {
          await store.listWorkflows({ limit: 1 });
        } catch (e) {
          storeOk = false;
          error = (e as Error).message;
        }
        const messages: string[] = [];
        if (!storeOk) messages.push(`the store is not reachable (${error}): scheduling waits and retries; nothing accepted is lost`);
        if (backend.storeProblem && storeOk) messages.push(`recovering from a store error: ${backend.storeProblem}`);
        if (nodes.length === 0) messages.push('no node has joined yet: `warren token create`, then `warren agent` on a node');
        return { ok: storeOk, version: '0.1.0', store: { ok: storeOk, kind: store.kind, ...(error ? { error } : {}) }, leader: true, nodes: { ready, total: nodes.length }, messages };
      },
    };
    const server = await buildApiServer({ backend: api, https: tls.httpsOptions(), plugins: [agentRoutes(registry, tls, { log: (level: string, msg: string) => log(level === 'error' ? 'error' : level === 'warn' ? 'warn' : 'info', msg) } as never)], log: (level, msg) => log(level, msg) });
    closers.push(() => server.close());
    // The runs a previous server left are taken (their attempts adopted) before any agent can
    // report: a node's report of one of them is never taken for a stale copy.
    await backend.start();
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
    const renew = setInterval(() => {
      issue().then(
        (n) => {
          me = n;
          tls.rotate({ keyPem: n.keyPem, certPem: n.cert.certPem, trustBundle: bundle });
        },
        (e: unknown) => log('error', `cannot renew the server certificate: ${(e as Error).message}`),
      );
    }, 30 * 60_000);
    renew.unref();
    closers.push(() => clearInterval(renew));
    const shown = o.host === '0.0.0.0' || o.host === '::' ? hostname() : o.host;
    const url = `https://${shown.includes(':') ? `[${shown}]` : shown}:${addr.port}`;
    log('info', `warren server on ${url} (store: ${store.kind}, trust domain ${ca.trustDomain}, CA ${join(o.dataDir, CA_PEM_FILE)})`);
    return { url, port: addr.port, caPem: ca.certPem, adminToken, store, close };
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
    drain: async (name, on) => {
      get(name);
      if (on) await reg.drain(name);
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
