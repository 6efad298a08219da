// A cluster server for the agent benchmarks, alone in its process (so that its CPU and memory
// are its own): a CA in a temporary directory, the node registry over memory stores, the agent
// routes on https://127.0.0.1:PORT. Prints one JSON line `{url, caPem, token}` (the token lets
// --agents nodes join), then every --report-ms a line `{t, cpuCores, rssMB, heapMB, ready, nodes,
// reports, sockets}`. With --tasks-per-sec it assigns no-op tasks round-robin to ready nodes.
//   node dist/bench/cluster/server.js --agents 200 [--heartbeat-ms 5000] [--report-ms 5000] [--tasks-per-sec 0]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { CertificateAuthority, MemoryTokenStore, createJoinToken, TrustBundle } from '../../src/mesh/index.js';
import { MeshTls, NodeRegistry, MemoryNodeStore, RemoteAgent, agentRoutes } from '../../src/server/cluster.js';
import type { TaskAssignment } from '../../src/agent/index.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

const agents = arg('agents', 200);
const heartbeatMs = arg('heartbeat-ms', 5_000);
const reportMs = arg('report-ms', 5_000);
const tasksPerSec = arg('tasks-per-sec', 0);

const dir = mkdtempSync(join(tmpdir(), 'warren-bench-server-'));
const ca = await CertificateAuthority.create(join(dir, 'ca'), { trustDomain: 'bench.example' });
const me = await ca.issueServerIdentity('head', ['127.0.0.1', 'localhost']);
const bundle = new TrustBundle([ca.certPem]);
const tokens = new MemoryTokenStore();
const reg = new NodeRegistry({ store: new MemoryNodeStore(), ca, tokens, trustDomain: ca.trustDomain, trustBundle: bundle, timers: { heartbeatMs, graceMs: 2 * heartbeatMs, lostAfterMs: 6 * heartbeatMs, stopAfterMs: 12 * heartbeatMs } });
await reg.start();
const tls = new MeshTls({ credentials: { keyPem: me.keyPem, certPem: me.cert.certPem, trustBundle: bundle }, trustDomain: ca.trustDomain });
const app = Fastify({ https: tls.httpsOptions(), logger: false, forceCloseConnections: true });
await app.register(agentRoutes(reg, tls, { log: () => {} }));
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as { port: number }).port;
const { token } = await createJoinToken(tokens, { ttlSeconds: 3600, uses: agents, createdBy: 'bench' });
let reports = 0;
reg.on('report', () => reports++);
process.stdout.write(JSON.stringify({ url: `https://127.0.0.1:${port}`, caPem: ca.certPem, token }) + '\n');

// Optional load: no-op tasks round-robin onto the ready nodes.
const proxies = new Map<string, RemoteAgent>();
let seq = 0;
let assignTimer: NodeJS.Timeout | undefined;
if (tasksPerSec > 0) {
  const every = 100;
  assignTimer = setInterval(() => {
    const ready = reg.list().filter((n) => n.state === 'ready');
    if (!ready.length) return;
    for (let i = 0; i < (tasksPerSec * every) / 1000; i++) {
      const n = ready[seq % ready.length]!;
      let ra = proxies.get(n.name);
      if (!ra) {
        ra = new RemoteAgent(reg, n.name);
        ra.setListener({ started: () => {}, exited: () => {} });
        proxies.set(n.name, ra);
      }
      const id = `bench/job:t[${seq}]/1`;
      const t: TaskAssignment = { attemptId: id, workflowId: 'bench', key: `job:t[${seq}]`, attempt: 1, kind: 'job', name: 't', task: seq, volumes: [], term: 1 };
      seq++;
      ra.submit(t);
    }
  }, every);
}

let last = process.cpuUsage();
let lastT = performance.now();
const reporter = setInterval(() => {
  const now = performance.now();
  const u = process.cpuUsage(last);
  last = process.cpuUsage();
  const m = process.memoryUsage();
  const list = reg.list();
  const line = {
    t: Math.round(now),
    cpuCores: +((u.user + u.system) / 1000 / (now - lastT)).toFixed(3),
    rssMB: Math.round(m.rss / 2 ** 20),
    heapMB: Math.round(m.heapUsed / 2 ** 20),
    ready: list.filter((n) => n.state === 'ready').length,
    nodes: list.length,
    reports,
    sockets: tls.connections().length,
    assigned: seq,
  };
  lastT = now;
  process.stdout.write(JSON.stringify(line) + '\n');
}, reportMs);

async function shutdown(): Promise<void> {
  clearInterval(reporter);
  if (assignTimer) clearInterval(assignTimer);
  await app.close();
  tls.close();
  await reg.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
