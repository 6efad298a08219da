// A cluster server for the protocol tests: a CA in a temporary directory, the server's
// X.509-SVID, MeshTls, a NodeRegistry over memory stores, and a fastify app on 127.0.0.1
// (a free port) with the agent routes and one user route. `stopHttp()` / `startHttp()` take
// the port away and give it back (same registry): a server that is down for a while.
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { once } from 'node:events';
import { MemoryTokenStore, createJoinToken, TrustBundle } from '../../src/mesh/index.js';
import { MeshTls, NodeRegistry, MemoryNodeStore, agentRoutes } from '../../src/server/cluster.js';
import type { NodeRegistryTimers } from '../../src/server/index.js';
import { makeCluster, serverCredentials, type Cluster } from '../mesh/helpers.js';
import { LocalAgent } from '../../src/agent/index.js';
import { AgentDaemon } from '../../src/agent/remote.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { tempDir } from '../helpers.js';

export interface LogLine {
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

export interface TestServer {
  cluster: Cluster;
  caPem: string;
  url: string;
  port: number;
  reg: NodeRegistry;
  tls: MeshTls;
  store: MemoryNodeStore;
  tokens: MemoryTokenStore;
  logs: LogLine[];
  app: FastifyInstance | null;
  /** With `api`: the API server's in-memory backend. */
  backend?: import('../server/memory-backend.js').MemoryBackend;
  token(opts?: { uses?: number; ttlSeconds?: number; now?: number }): Promise<string>;
  stopHttp(): Promise<void>;
  startHttp(): Promise<void>;
  close(): Promise<void>;
}

/** `api`: the agent routes inside the real API server (buildApiServer, an in-memory backend) instead of a bare fastify app. */
export async function startServer(opts: { timers?: Partial<NodeRegistryTimers>; certTtlSeconds?: number; api?: boolean } = {}): Promise<TestServer> {
  const cluster = await makeCluster();
  const creds = await serverCredentials(cluster, 'head');
  const logs: LogLine[] = [];
  const log = (level: string, message: string, fields?: Record<string, unknown>): void => {
    logs.push({ level, message, ...(fields ? { fields } : {}) });
    if (process.env.WARREN_TEST_VERBOSE) console.error(`[${level}] ${message}`);
  };
  const store = new MemoryNodeStore();
  const tokens = new MemoryTokenStore();
  const reg = new NodeRegistry({
    store,
    ca: cluster.ca,
    tokens,
    trustDomain: cluster.ca.trustDomain,
    trustBundle: new TrustBundle([cluster.ca.certPem]),
    // Short timers for tests; a server outage of a few seconds does not fence the agents.
    timers: { heartbeatMs: 200, graceMs: 5_000, lostAfterMs: 5_000, stopAfterMs: 20_000, pollWaitMs: 2_000, ...opts.timers },
    ...(opts.certTtlSeconds !== undefined ? { certTtlSeconds: opts.certTtlSeconds } : {}),
    log,
  });
  await reg.start();
  const tls = new MeshTls({ credentials: creds, trustDomain: cluster.ca.trustDomain, log });
  const s: TestServer = {
    cluster,
    caPem: cluster.ca.certPem,
    url: '',
    port: 0,
    reg,
    tls,
    store,
    tokens,
    logs,
    app: null,
    async token(o = {}) {
      const { token } = await createJoinToken(tokens, { ttlSeconds: o.ttlSeconds ?? 600, uses: o.uses ?? 1, createdBy: 'test', ...(o.now !== undefined ? { now: o.now } : {}) });
      return token;
    },
    async startHttp() {
      let app: FastifyInstance;
      if (opts.api) {
        const { buildApiServer } = await import('../../src/server/index.js');
        const { MemoryBackend } = await import('../server/memory-backend.js');
        const backend = new MemoryBackend();
        s.backend = backend;
        const api = await buildApiServer({ backend, https: tls.httpsOptions(), plugins: [agentRoutes(reg, tls, { log })] });
        app = api.app as unknown as FastifyInstance;
        await api.listen('127.0.0.1', s.port);
      } else {
        app = Fastify({ https: tls.httpsOptions(), logger: false, forceCloseConnections: true });
        app.get('/api/v1/ping', async () => ({ pong: true }));
        await app.register(agentRoutes(reg, tls, { log }));
        await app.listen({ port: s.port, host: '127.0.0.1' });
      }
      s.port = (app.server.address() as { port: number }).port;
      s.url = `https://127.0.0.1:${s.port}`;
      s.app = app;
    },
    async stopHttp() {
      const app = s.app;
      s.app = null;
      if (!app) return;
      // Open sockets (keep-alive, long polls) are cut, as when the server process dies.
      app.server.closeAllConnections?.();
      const closing = app.close();
      app.server.closeAllConnections?.();
      await closing;
    },
    async close() {
      await s.stopHttp();
      tls.close();
      await reg.close();
      cluster.cleanup();
    },
  };
  await s.startHttp();
  return s;
}

/** Wait for an event of an emitter that satisfies `pred`, at most `ms`. */
export async function waitFor<T extends unknown[]>(emitter: NodeJS.EventEmitter, event: string, pred: (...args: T) => boolean = () => true, ms = 15_000): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    for (;;) {
      const args = (await once(emitter, event, { signal: ac.signal })) as T;
      if (pred(...args)) return args;
    }
  } catch (e) {
    if (ac.signal.aborted) throw new Error(`timed out after ${ms} ms waiting for '${event}'`);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** Poll a condition every 10 ms, at most `ms`. */
export async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A test server and one node: a LocalAgent (host processes) behind an AgentDaemon that joined it. */
export async function remoteNode(name: string, o: { cores?: number; api?: boolean; serviceHost?: string } = {}) {
  const s = await startServer({ api: o.api ?? false });
  const d = tempDir('warren-remote-');
  const local = new LocalAgent({ name, home: join(d.dir, 'home'), cores: o.cores ?? 2, process: createProcessRuntime(), ...(o.serviceHost !== undefined ? { serviceHost: o.serviceHost } : {}) });
  const daemon = new AgentDaemon({ serverUrl: s.url, name, dataDir: join(d.dir, 'agent'), agent: local, token: await s.token(), caPem: s.caPem, timers: { heartbeatMs: 200, retryMs: 50 } });
  await daemon.start();
  await until(() => daemon.status().connected, 'the daemon connected');
  const cleanup = async (): Promise<void> => {
    await daemon.stop();
    await local.close();
    await s.close();
    d.cleanup();
  };
  return { s, d, local, daemon, cleanup };
}

export { join };
