// The server–agent protocol end to end on 127.0.0.1: a real fastify HTTPS server with the
// agent routes, real AgentDaemons (undici, mutual TLS) and a small /bin/sh executor. Join,
// restart without the token, the long poll, batched reports delivered once across a restart,
// kill, logs (and follow), renewal, revocation, refused certificates, impossible resources,
// protocol versions, heartbeat loss and self-fencing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';
import tls from 'node:tls';
import { Agent as HttpAgent, request } from 'undici';
import { JOURNAL_FILE, AGENT_PROTOCOL, type AttemptExited, type AttemptStarted } from '../../src/agent/index.js';
import { AgentDaemon } from '../../src/agent/remote.js';
import { RemoteAgent } from '../../src/server/cluster.js';
import { SVID_FILE, BUNDLE_FILE, type MeshCredentials } from '../../src/mesh/index.js';
import { tempDir } from '../helpers.js';
import { TD, forge, issueCredentials, makeCluster, serverCredentials } from '../mesh/helpers.js';
import { ShAgent, shTask } from './sh-agent.js';
import { startServer, until, type TestServer } from './cluster-harness.js';

const T = { timeout: 60_000 };
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.reverse()) {
    try {
      await f();
    } catch {
      // keep cleaning
    }
  }
});

async function server(opts: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const s = await startServer(opts);
  cleanups.push(() => s.close());
  return s;
}

function scratch(): string {
  const t = tempDir('warren-agent-');
  cleanups.push(t.cleanup);
  return t.dir;
}

interface Node {
  daemon: AgentDaemon;
  agent: ShAgent;
  dataDir: string;
}

// Short parts: followed logs cross several upload requests.
const FAST = { heartbeatMs: 200, retryMs: 50, pollWaitMs: 2_000, uploadPartMs: 150 };

async function node(s: TestServer, name: string, opts: { token?: string | null; dataDir?: string; agent?: ShAgent; start?: boolean; timers?: Record<string, number> } = {}): Promise<Node> {
  const dataDir = opts.dataDir ?? join(scratch(), 'agent');
  const agent = opts.agent ?? new ShAgent(join(dataDir, '..', 'jobs'));
  const token = opts.token === null ? undefined : (opts.token ?? (await s.token()));
  const daemon = new AgentDaemon({ serverUrl: s.url, name, dataDir, agent, caPem: s.caPem, timers: { ...FAST, ...opts.timers }, ...(token ? { token } : {}) });
  cleanups.push(() => agent.close());
  cleanups.push(() => daemon.stop());
  if (opts.start !== false) await daemon.start();
  return { daemon, agent, dataDir };
}

function recorder(ra: RemoteAgent): { started: AttemptStarted[]; exited: AttemptExited[] } {
  const r = { started: [] as AttemptStarted[], exited: [] as AttemptExited[] };
  ra.setListener({ started: (e) => r.started.push(e), exited: (e) => r.exited.push(e) });
  return r;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<string> {
  let s = '';
  for await (const c of it) s += Buffer.from(c).toString();
  return s;
}

/** An undici client with the given client credentials (or none) that trusts the cluster CA and skips the server name check. */
function client(caPem: string, creds?: MeshCredentials): HttpAgent {
  const a = new HttpAgent({ connect: { ca: caPem, checkServerIdentity: () => undefined, ...(creds ? { key: creds.keyPem, cert: creds.certPem } : {}) } as never });
  cleanups.push(() => a.destroy());
  return a;
}

async function post(s: TestServer, d: HttpAgent, route: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await request(`${s.url}/agent/v1/${route}`, { method: 'POST', dispatcher: d, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.statusCode, body: await res.body.json() };
}

test('a node joins with a token; its key, certificate and bundle are kept 0600; a one-use token is refused the second time; an expired one is refused', T, async () => {
  const s = await server();
  const token = await s.token();
  const n = await node(s, 'n001', { token });
  await until(() => n.daemon.status().connected, 'the first heartbeat');
  const rec = s.reg.get('n001');
  assert.equal(rec?.state, 'ready');
  assert.equal(rec?.info.cores, 4);
  assert.equal(rec?.info.labels.test, 'yes');
  assert.equal(rec?.certSerial, n.daemon.certSerial);
  for (const f of [SVID_FILE, BUNDLE_FILE, JOURNAL_FILE]) assert.equal(statSync(join(n.dataDir, f)).mode & 0o777, 0o600, f);
  assert.equal(statSync(n.dataDir).mode & 0o066, 0, 'nobody else lists or writes the data directory');
  assert.match(readFileSync(join(n.dataDir, SVID_FILE), 'utf8'), /BEGIN PRIVATE KEY[\s\S]+BEGIN CERTIFICATE/);

  // The same one-use token for another node: refused, and nothing is written for it.
  const second = await node(s, 'n002', { token, start: false });
  await assert.rejects(second.daemon.start(), (e: { code?: string }) => e.code === 'MESH_TOKEN_USED_UP');
  assert.equal(s.reg.get('n002'), undefined);

  const expired = await s.token({ ttlSeconds: 1, now: Date.now() - 60_000 });
  const third = await node(s, 'n003', { token: expired, start: false });
  await assert.rejects(third.daemon.start(), (e: { code?: string; message: string }) => e.code === 'MESH_TOKEN_EXPIRED');
  const unknown = await node(s, 'n004', { token: 'x'.repeat(43), start: false });
  await assert.rejects(unknown.daemon.start(), (e: { code?: string }) => e.code === 'MESH_TOKEN_UNKNOWN');
  // The refusals were logged by the server.
  assert.ok(s.logs.some((l) => l.fields?.code === 'MESH_TOKEN_USED_UP'), JSON.stringify(s.logs));
});

test('the agent restarts without the token; without an identity and a token, or without a CA to trust, it refuses to start', T, async () => {
  const s = await server();
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected, 'connected');
  await n.daemon.stop();
  const again = new AgentDaemon({ serverUrl: s.url, name: 'n001', dataDir: n.dataDir, agent: n.agent, timers: FAST });
  cleanups.push(() => again.stop());
  await again.start();
  await until(() => again.status().connected, 'connected again without a token');
  assert.equal(again.certSerial, n.daemon.certSerial);

  const fresh = new AgentDaemon({ serverUrl: s.url, name: 'n009', dataDir: join(scratch(), 'a'), agent: new ShAgent(join(scratch(), 'j')), timers: FAST });
  await assert.rejects(fresh.start(), (e: { code?: string }) => e.code === 'AGENT_NOT_JOINED');
  const tofu = new AgentDaemon({ serverUrl: s.url, name: 'n009', dataDir: join(scratch(), 'b'), agent: new ShAgent(join(scratch(), 'j')), token: await s.token(), timers: FAST });
  await assert.rejects(tofu.start(), (e: { code?: string }) => e.code === 'AGENT_NO_TRUST');
  // A CA that is not the server's: the server's certificate is refused, nothing is sent.
  const other = await makeCluster();
  cleanups.push(other.cleanup);
  const wrongCa = new AgentDaemon({ serverUrl: s.url, name: 'n009', dataDir: join(scratch(), 'c'), agent: new ShAgent(join(scratch(), 'j')), token: await s.token(), caPem: other.ca.certPem, timers: FAST });
  await assert.rejects(wrongCa.start(), (e: { code?: string }) => e.code === 'AGENT_SERVER_UNREACHABLE');
});

test('an assignment goes through the long poll: durable first, then dispatched; started and exited come back', T, async () => {
  const s = await server();
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected, 'connected');
  // Let the agent's long poll be waiting, so the assignment wakes it.
  await new Promise((r) => setTimeout(r, 100));
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  const order: string[] = [];
  const task = shTask('echo hello');
  let queuedAt = 0;
  s.reg.once('report', () => order.push('report'));
  const t0 = performance.now();
  ra.submit(task, {
    durable: async (info) => {
      assert.deepEqual(info, { pid: null, cgroup: null, node: 'n001' });
      order.push('durable');
      await new Promise((r) => setTimeout(r, 20));
      queuedAt = performance.now();
    },
  });
  await until(() => rec.exited.length === 1, 'the exit');
  const latency = performance.now() - queuedAt;
  assert.deepEqual(order, ['durable', 'report']);
  assert.equal(rec.started.length, 1);
  assert.equal(rec.started[0]!.attemptId, task.attemptId);
  assert.equal(rec.exited[0]!.exitCode, 0);
  assert.equal(rec.exited[0]!.reason, 'exit');
  assert.equal(ra.info().cores, 4);
  console.log(`# dispatch-to-exit round trip ${latency.toFixed(1)} ms (total with durable ${(performance.now() - t0).toFixed(1)} ms)`);
});

test('reports are batched and delivered once, also across a server outage and a daemon restart (the journal)', T, async () => {
  const s = await server();
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected, 'connected');
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  const counts = new Map<string, number>();
  s.reg.on('report', (_n, ev, kind) => {
    if (kind === 'exited') counts.set(ev.attemptId, (counts.get(ev.attemptId) ?? 0) + 1);
  });
  const batches: number[] = [];
  const hb = s.reg.heartbeat.bind(s.reg);
  s.reg.heartbeat = async (node, body) => {
    if (body.reports?.length) batches.push(body.reports.length);
    return hb(node, body);
  };
  // A burst: 40 quick tasks, their reports go in a few batches.
  const burst = Array.from({ length: 40 }, (_, i) => shTask('true', { name: `b${i}` }));
  for (const t of burst) ra.submit(t);
  await until(() => rec.exited.length === 40, '40 exits');
  assert.ok(batches.length < 80, `80 reports in ${batches.length} batches`);

  // Tasks that end while the server is away, and one that ends while no daemon runs.
  const during = shTask('sleep 0.3', { name: 'during' });
  const later = shTask('sleep 1.2', { name: 'later' });
  ra.submit(during);
  ra.submit(later);
  await until(() => rec.started.length === 42, 'both started');
  await s.stopHttp();
  await until(() => n.agent.runs.get(during.attemptId)?.exit !== null, 'the first ends while the server is away');
  await n.daemon.stop();
  assert.ok(n.daemon.status().pendingReports >= 1);
  await until(() => n.agent.runs.get(later.attemptId)?.exit !== null, 'the second ends while no daemon runs');
  await s.startHttp();
  const again = new AgentDaemon({ serverUrl: s.url, name: 'n001', dataDir: n.dataDir, agent: n.agent, timers: FAST });
  cleanups.push(() => again.stop());
  await again.start();
  await until(() => rec.exited.length === 42, 'both exits delivered');
  await until(() => again.status().pendingReports === 0, 'the journal is empty');
  // A few more heartbeats: nothing is delivered twice.
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(rec.exited.length, 42);
  for (const [id, c] of counts) assert.equal(c, 1, `${id} reported ${c} times`);
  assert.equal(counts.size, 42);
});

test('kill stops a running attempt; an attempt killed before it was sent never reaches the node', T, async () => {
  const s = await server();
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected, 'connected');
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  const t = shTask('sleep 30');
  ra.submit(t);
  await until(() => rec.started.length === 1, 'started');
  ra.kill(t.attemptId, 'canceled');
  await until(() => rec.exited.length === 1, 'killed');
  assert.equal(rec.exited[0]!.reason, 'canceled');
  assert.equal(ra.load.running, 0);

  let release!: () => void;
  const slow = shTask('echo never');
  ra.submit(slow, { durable: () => new Promise<void>((r) => (release = r)) });
  ra.kill(slow.attemptId, 'canceled');
  release();
  await until(() => rec.exited.length === 2, 'the second ends');
  assert.equal(rec.exited[1]!.reason, 'canceled');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(n.agent.runs.has(slow.attemptId), false);
});

test('logs: a finished job\'s output; follow until the job ends; follow stopped by the reader; a job the node does not know', T, async () => {
  const s = await server();
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected, 'connected');
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  const done = shTask('echo line1; echo line2; echo oops >&2', { name: 'done' });
  ra.submit(done);
  await until(() => rec.exited.length === 1, 'done');
  assert.equal(await collect(ra.logs({ workflowId: 'wf1', job: 'done', task: null, stream: 'stdout' })), 'line1\nline2\n');
  assert.equal(await collect(ra.logs({ workflowId: 'wf1', job: 'done', task: null, stream: 'stderr' })), 'oops\n');
  assert.equal(await collect(ra.logs({ workflowId: 'wf1', job: 'done', task: null, stream: 'stdout', offset: 6 })), 'line2\n');

  // A log larger than one read-ahead (1 MiB), in parts.
  const big = shTask('head -c 3000000 /dev/zero | tr "\\0" "a"', { name: 'big' });
  ra.submit(big);
  await until(() => rec.exited.length === 2, 'big done');
  const bigLog = await collect(ra.logs({ workflowId: 'wf1', job: 'big', task: null, stream: 'stdout' }));
  assert.equal(bigLog.length, 3_000_000);
  assert.ok(/^a+$/.test(bigLog));

  const counting = shTask('for i in 1 2 3 4; do echo $i; sleep 0.15; done', { name: 'counting' });
  ra.submit(counting);
  await until(() => rec.started.length === 3, 'counting started');
  let parts = 0;
  const upload = s.reg.logUpload.bind(s.reg);
  s.reg.logUpload = (node, id) => {
    parts++;
    return upload(node, id);
  };
  assert.equal(await collect(ra.logs({ workflowId: 'wf1', job: 'counting', task: null, stream: 'stdout', follow: true })), '1\n2\n3\n4\n');
  assert.ok(parts >= 3, `a followed log of 0.6 s in parts of 0.15 s came in ${parts} requests`);

  const forever = shTask('while true; do echo x; sleep 0.05; done', { name: 'forever' });
  ra.submit(forever);
  await until(() => rec.started.length === 4, 'forever started');
  const ac = new AbortController();
  let got = '';
  for await (const c of ra.logs({ workflowId: 'wf1', job: 'forever', task: null, stream: 'stdout', follow: true }, ac.signal)) {
    got += Buffer.from(c).toString();
    if (got.length >= 4) ac.abort();
  }
  assert.match(got, /^x\n/);
  await until(() => n.agent.abortedLogs === 1, 'the node was told to stop its upload');
  ra.kill(forever.attemptId, 'canceled');

  await assert.rejects(collect(ra.logs({ workflowId: 'wf1', job: 'nope', task: null, stream: 'stdout' })), (e: { code?: string }) => e.code === 'RUN_UNKNOWN_JOB');
});

test('renewal rotates the client certificate without a restart; the server rotates its own without a restart', T, async () => {
  const s = await server();
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected, 'connected');
  const before = n.daemon.certSerial!;
  await n.daemon.renew();
  const after = n.daemon.certSerial!;
  assert.notEqual(after, before);
  assert.equal(s.reg.get('n001')?.certSerial, after);
  // New requests come on connections with the new certificate.
  await until(() => s.tls.connections().some((c) => c.serial === after), 'a connection with the new certificate');
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  ra.submit(shTask('true'));
  await until(() => rec.exited.length === 1, 'works after the renewal');
  // The file on disk holds the new pair.
  assert.match(readFileSync(join(n.dataDir, SVID_FILE), 'utf8'), /BEGIN CERTIFICATE/);

  // The server's certificate: a new one for new connections, no restart.
  const fresh = await serverCredentials(s.cluster, 'head');
  s.tls.rotate(fresh);
  const sock = tls.connect({ host: '127.0.0.1', port: s.port, ca: s.caPem, checkServerIdentity: () => undefined });
  await new Promise((r) => sock.once('secureConnect', r));
  assert.equal(sock.getPeerX509Certificate()?.serialNumber.toLowerCase().replace(/^0+/, ''), fresh.serial.replace(/^0+/, ''));
  sock.destroy();
  ra.submit(shTask('true'));
  await until(() => rec.exited.length === 2, 'works after the server rotated');
});

test('revocation closes the node\'s open connections and refuses its next call; its work is lost', T, async () => {
  const s = await server();
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected && s.tls.connections().length > 0, 'connected');
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  ra.submit(shTask('sleep 30'));
  await until(() => rec.started.length === 1, 'started');
  const closed: string[] = [];
  s.tls.on('closed', (id, why) => closed.push(`${id.name}:${why}`));
  const refused: string[] = [];
  n.daemon.on('refused', (e) => refused.push(e.code));
  await s.reg.revoke('n001');
  assert.ok(closed.includes('n001:revoked'), closed.join());
  assert.equal(s.tls.connections().length, 0);
  assert.equal(s.reg.get('n001')?.state, 'revoked');
  await until(() => refused.includes('MESH_REVOKED'), 'the next call refused');
  assert.equal(rec.exited.length, 1);
  assert.equal(rec.exited[0]!.reason, 'node-lost');
  assert.throws(() => s.reg.assign('n001', shTask('true')), (e: { code?: string }) => e.code === 'MESH_REVOKED');
  // A revoked name cannot join again until it is deleted.
  const again = await node(s, 'n001', { start: false });
  await assert.rejects(again.daemon.start(), (e: { code?: string }) => e.code === 'MESH_REVOKED');
  await s.reg.delete('n001');
  const back = await node(s, 'n001');
  await until(() => back.daemon.status().connected, 'joined again after delete');
});

test('certificates refused (and logged) at the agent routes: none, foreign CA, expired, a server or user SVID, two URI SANs; a user without a certificate still gets the user API', T, async () => {
  const s = await server();
  const c = s.cluster;
  const hb = { protocol: AGENT_PROTOCOL, epoch: 'e1' };
  // No certificate: the user API works (undici and node:https), the agent routes refuse.
  const plain = client(s.caPem);
  const ping = await request(`${s.url}/api/v1/ping`, { dispatcher: plain });
  assert.equal(ping.statusCode, 200);
  assert.deepEqual(await ping.body.json(), { pong: true });
  const viaHttps = await new Promise<number>((resolve, reject) => {
    https.get(`${s.url}/api/v1/ping`, { ca: s.caPem, checkServerIdentity: () => undefined }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  assert.equal(viaHttps, 200);
  const none = await post(s, plain, 'heartbeat', hb);
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'MESH_NO_CLIENT_CERT');

  const other = await makeCluster();
  cleanups.push(other.cleanup);
  const past = new Date(Date.now() - 2 * 3600_000);
  const cases: Array<[string, MeshCredentials, number, string]> = [
    ['foreign CA', await issueCredentials(other, { kind: 'node', name: 'n001' }), 401, 'MESH_FOREIGN_CA'],
    ['expired', await issueCredentials(c, { kind: 'node', name: 'n001', notBefore: past, notAfter: new Date(past.getTime() + 3600_000) }), 401, 'MESH_CERT_EXPIRED'],
    ['server SVID as a node', await serverCredentials(c, 'other'), 403, 'MESH_WRONG_PATH'],
    ['user SVID as a node', await issueCredentials(c, { kind: 'user', name: 'alice' }), 403, 'MESH_WRONG_PATH'],
    ['two URI SANs', await forge(c, { uris: [`spiffe://${TD}/node/n001`, `spiffe://${TD}/node/n002`] }), 403, 'MESH_MULTIPLE_URI_SANS'],
  ];
  for (const [what, creds, status, code] of cases) {
    const r = await post(s, client(s.caPem, creds), 'heartbeat', hb);
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code, what);
    assert.ok(r.body.error.hint, `${what}: a hint`);
    assert.ok(s.logs.some((l) => l.level === 'warn' && l.fields?.code === code), `${what}: logged`);
    // The user API is still open to the same connection's peer (it is not an agent route).
    const u = await request(`${s.url}/api/v1/ping`, { dispatcher: client(s.caPem, creds) });
    assert.equal(u.statusCode, 200, what);
    await u.body.dump();
  }
  // A valid node certificate of a node that never joined: known identity, unknown node.
  const stranger = await issueCredentials(c, { kind: 'node', name: 'ghost' });
  const r = await post(s, client(s.caPem, stranger), 'heartbeat', hb);
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'AGENT_NODE_UNKNOWN');
});

test('impossible resources are refused with AGENT_BAD_REPORT (the token is not spent); a major protocol mismatch is refused with AGENT_PROTOCOL_MISMATCH', T, async () => {
  const s = await server();
  const token = await s.token();
  const n = await node(s, 'n001', { token, start: false });
  for (const bad of [{ cores: 0 }, { cores: 100_001 }, { cores: 1.5 }, { memoryBytes: 0 }, { gpus: [{ index: -1, model: 'x', memoryBytes: 1 }] }]) {
    n.agent.infoOverride = bad;
    await assert.rejects(n.daemon.start(), (e: { code?: string; message: string }) => e.code === 'AGENT_BAD_REPORT' && /impossible/.test(e.message), JSON.stringify(bad));
  }
  assert.ok(s.logs.filter((l) => l.fields?.code === 'AGENT_BAD_REPORT').length >= 5);
  // The one-use token is still good.
  n.agent.infoOverride = {};
  await n.daemon.start();
  await until(() => n.daemon.status().connected, 'joined');
  // Impossible resources in a heartbeat: refused, logged, the record unchanged.
  const refused: string[] = [];
  n.daemon.on('refused', (e) => refused.push(e.code));
  n.agent.infoOverride = { memoryBytes: -5 };
  await until(() => refused.includes('AGENT_BAD_REPORT'), 'the heartbeat refused');
  assert.equal(s.reg.get('n001')?.info.memoryBytes, 8 * 2 ** 30);
  n.agent.infoOverride = { cores: 8 };
  await until(() => s.reg.get('n001')?.info.cores === 8, 'a good change taken');

  // Protocol: another major at the join and at a heartbeat.
  const plain = client(s.caPem);
  const info = { ...n.agent.info(), name: 'n002' };
  const j = await post(s, plain, 'join', { protocol: { major: 2, minor: 1 }, token: await s.token(), csr: 'x', info });
  assert.equal(j.status, 426);
  assert.equal(j.body.error.code, 'AGENT_PROTOCOL_MISMATCH');
  assert.match(j.body.error.message, new RegExp(`2\\.1.*${AGENT_PROTOCOL.major}\\.${AGENT_PROTOCOL.minor}`));
  assert.match(j.body.error.hint, /upgrade/);
  const id = await issueCredentials(s.cluster, { kind: 'node', name: 'n001' });
  const h = await post(s, client(s.caPem, id), 'heartbeat', { protocol: { major: 0, minor: 9 }, epoch: 'e' });
  assert.equal(h.status, 426);
  assert.equal(h.body.error.code, 'AGENT_PROTOCOL_MISMATCH');
  // A body that does not match the schema.
  const bad = await post(s, client(s.caPem, id), 'poll', { waitMs: 'soon' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'AGENT_BAD_REPORT');
});

test('heartbeat loss: a silent node goes down, then lost (its attempts end node-lost), and comes back up', T, async () => {
  const s = await server({ timers: { heartbeatMs: 100, graceMs: 200, lostAfterMs: 200, stopAfterMs: 400, sweepMs: 20 } });
  const n = await node(s, 'n001', { timers: { stopAfterMs: 60_000 } });
  await until(() => n.daemon.status().connected, 'connected');
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  ra.submit(shTask('sleep 0.1'));
  await until(() => rec.exited.length === 1, 'a first attempt');
  const events: string[] = [];
  for (const e of ['down', 'lost', 'up'] as const) s.reg.on(e, (name) => events.push(`${e}:${name}`));
  const attempts: number[] = [];
  s.reg.on('attempts', (_n, list) => attempts.push(list.length));
  ra.submit(shTask('sleep 30'));
  await until(() => rec.started.length === 2, 'second started');
  await n.daemon.stop();
  await until(() => events.includes('lost:n001'), 'lost');
  assert.deepEqual(events.slice(0, 2), ['down:n001', 'lost:n001']);
  assert.equal(s.reg.get('n001')?.state, 'lost');
  assert.equal(rec.exited.length, 2);
  assert.equal(rec.exited[1]!.reason, 'node-lost');
  // Back: up, and the full attempt list for the driver to reconcile.
  const again = new AgentDaemon({ serverUrl: s.url, name: 'n001', dataDir: n.dataDir, agent: n.agent, timers: FAST });
  cleanups.push(() => again.stop());
  await again.start();
  await until(() => events.includes('up:n001') && attempts.length > 0, 'up with its attempts');
  assert.equal(attempts[0], 2);
  assert.equal(s.reg.get('n001')?.state, 'ready');
});

test('self-fencing: cut off from the server longer than stopAfterMs, the agent kills its attempts and delivers their exits when it is back', T, async () => {
  const s = await server({ timers: { heartbeatMs: 100, graceMs: 5_000, lostAfterMs: 5_000, stopAfterMs: 600 } });
  const n = await node(s, 'n001');
  await until(() => n.daemon.status().connected, 'connected');
  const ra = new RemoteAgent(s.reg, 'n001');
  cleanups.push(() => ra.close());
  const rec = recorder(ra);
  const t = shTask('sleep 30');
  ra.submit(t);
  await until(() => rec.started.length === 1, 'started');
  const fenced: string[][] = [];
  n.daemon.on('fenced', (ids) => fenced.push(ids));
  await s.stopHttp();
  await until(() => fenced.length === 1, 'fenced');
  assert.deepEqual(fenced[0], [t.attemptId]);
  await until(() => n.agent.runs.get(t.attemptId)?.exit != null, 'the process is killed');
  assert.equal(n.daemon.status().fenced, true);
  assert.ok(n.daemon.status().pendingReports >= 1);
  await s.startHttp();
  await until(() => rec.exited.length === 1, 'the exit delivered when back');
  assert.equal(rec.exited[0]!.reason, 'canceled');
  assert.match(rec.exited[0]!.message ?? '', /cut off from the server .*\(self-fencing\)/);
  await until(() => !n.daemon.status().fenced, 'unfenced');
});
