// The node registry without the network: joins and their refusals, reports applied once per
// sequence number, the long poll and its acknowledgements, down and lost on a fake clock
// (the grace scaled with the number of nodes), cheap heartbeats (few store writes),
// revocation and deletion, log streams, a restart from the store; and RemoteAgent on top.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryTokenStore, createJoinToken, generateKeyPair, createCertificateRequest, hashToken } from '../../src/mesh/index.js';
import { NodeRegistry, MemoryNodeStore, RemoteAgent } from '../../src/server/cluster.js';
import type { NodeRegistryTimers } from '../../src/server/index.js';
import { AGENT_PROTOCOL, type AttemptExited, type AttemptStarted, type HeartbeatRequest, type NodeInfo, type TaskAssignment } from '../../src/agent/index.js';
import { makeCluster, type Cluster } from '../mesh/helpers.js';

const T = { timeout: 30_000 };
let cluster: Cluster | undefined;
const regs: NodeRegistry[] = [];
after(async () => {
  for (const r of regs) await r.close();
  cluster?.cleanup();
});

interface Fixture {
  reg: NodeRegistry;
  store: MemoryNodeStore;
  tokens: MemoryTokenStore;
  clock: { now: number };
  logs: Array<{ level: string; message: string; code: unknown }>;
  token(uses?: number): Promise<string>;
  join(name: string, info?: Partial<NodeInfo>, token?: string): Promise<void>;
}

async function fixture(timers: Partial<NodeRegistryTimers> = {}, store = new MemoryNodeStore()): Promise<Fixture> {
  cluster ??= await makeCluster();
  const c = cluster;
  const tokens = new MemoryTokenStore();
  const clock = { now: 1_000_000_000_000 };
  const logs: Fixture['logs'] = [];
  const reg = new NodeRegistry({
    store,
    ca: c.ca,
    tokens,
    trustDomain: c.ca.trustDomain,
    clock: () => clock.now,
    // A sweep timer that never fires on its own: the tests call sweep() with the fake clock.
    timers: { heartbeatMs: 5_000, graceMs: 10_000, lostAfterMs: 30_000, stopAfterMs: 60_000, sweepMs: 3_600_000, pollWaitMs: 10_000, ...timers },
    log: (level, message, fields) => logs.push({ level, message, code: fields?.code }),
  });
  regs.push(reg);
  await reg.start();
  const f: Fixture = {
    reg,
    store,
    tokens,
    clock,
    logs,
    async token(uses = 1) {
      return (await createJoinToken(tokens, { ttlSeconds: 600, uses, createdBy: 't', now: clock.now })).token;
    },
    async join(name, info = {}, token) {
      await reg.join({ protocol: { ...AGENT_PROTOCOL }, token: token ?? (await f.token()), csr: await csr(name), info: nodeInfo(name, info) });
    },
  };
  return f;
}

async function csr(name: string): Promise<string> {
  return createCertificateRequest(await generateKeyPair(), name);
}

function nodeInfo(name: string, o: Partial<NodeInfo> = {}): NodeInfo {
  return { name, cores: 8, memoryBytes: 16 * 2 ** 30, gpus: [], labels: {}, platform: 'linux/amd64', containers: true, agentVersion: '0.1.0', protocol: { ...AGENT_PROTOCOL }, ...o };
}

function hb(o: Partial<HeartbeatRequest> = {}): HeartbeatRequest {
  return { protocol: { ...AGENT_PROTOCOL }, epoch: 'e1', ...o };
}

function started(id: string): AttemptStarted {
  return { attemptId: id, pid: 42, cgroup: null, at: 1 };
}
function exited(id: string, reason: AttemptExited['reason'] = 'exit'): AttemptExited {
  return { attemptId: id, exitCode: 0, signal: null, reason, durationMs: 5, at: 2 };
}
function task(id: string, cores = 1): TaskAssignment {
  return { attemptId: id, workflowId: 'wf', key: `job:${id}`, attempt: 1, kind: 'job', name: id, task: null, job: { resources: { cores } } as never, volumes: [], term: 1 };
}

test('join: impossible resources and bad names are refused with AGENT_BAD_REPORT and logged, without spending the token', T, async () => {
  const f = await fixture();
  const token = await f.token();
  const bad: Array<[string, Partial<NodeInfo> & { name?: string }, string]> = [
    ['no cores', { cores: 0 }, 'cores'],
    ['negative cores', { cores: -4 }, 'cores'],
    ['too many cores', { cores: 100_001 }, 'cores'],
    ['fractional cores', { cores: 2.5 }, 'cores'],
    ['NaN cores', { cores: NaN }, 'cores'],
    ['no memory', { memoryBytes: 0 }, 'memoryBytes'],
    ['fractional memory', { memoryBytes: 1.5 }, 'memoryBytes'],
    ['NaN memory', { memoryBytes: NaN }, 'memoryBytes'],
    ['negative GPU index', { gpus: [{ index: -1, model: 'A100', memoryBytes: 1 }] }, 'gpus[0].index'],
    ['repeated GPU index', { gpus: [{ index: 0, model: 'A100', memoryBytes: 1 }, { index: 0, model: 'A100', memoryBytes: 1 }] }, 'gpus[1].index'],
    ['negative GPU memory', { gpus: [{ index: 0, model: 'A100', memoryBytes: -1 }] }, 'gpus[0].memoryBytes'],
    ['bad platform', { platform: 'amd64' }, 'platform'],
  ];
  for (const [what, o, field] of bad) {
    await assert.rejects(
      f.reg.join({ protocol: { ...AGENT_PROTOCOL }, token, csr: await csr('n1'), info: nodeInfo('n1', o) }),
      (e: { code?: string; details?: { field?: string } }) => e.code === 'AGENT_BAD_REPORT' && e.details?.field === field,
      what,
    );
  }
  for (const name of ['a/b', '', '..', 'x'.repeat(256), 'spiffe://x', 'n 1']) {
    await assert.rejects(f.reg.join({ protocol: { ...AGENT_PROTOCOL }, token, csr: await csr('n1'), info: nodeInfo(name) }), (e: { code?: string }) => e.code === 'AGENT_BAD_REPORT', JSON.stringify(name));
  }
  assert.equal(f.logs.filter((l) => l.code === 'AGENT_BAD_REPORT').length, bad.length + 6);
  // A request that is not a CSR is refused before the token is used, too.
  await assert.rejects(f.reg.join({ protocol: { ...AGENT_PROTOCOL }, token, csr: 'garbage', info: nodeInfo('n1') }), (e: { code?: string }) => e.code === 'MESH_CSR_INVALID');
  assert.equal((await f.tokens.get(hashToken(token)))?.usesLeft, 1);
  await f.join('n1', {}, token);
  assert.equal(f.reg.get('n1')?.state, 'ready');
  await assert.rejects(f.join('n2', {}, token), (e: { code?: string }) => e.code === 'MESH_TOKEN_USED_UP');
  await assert.rejects(f.reg.join({ protocol: { major: 9, minor: 0 }, token: await f.token(), csr: await csr('n3'), info: nodeInfo('n3') }), (e: { code?: string }) => e.code === 'AGENT_PROTOCOL_MISMATCH');
});

test('reports: applied once per sequence number (a retried batch is not applied again); a new journal epoch starts over', T, async () => {
  const f = await fixture();
  await f.join('n1');
  const seen: string[] = [];
  f.reg.on('report', (node, ev, kind) => seen.push(`${node}:${kind}:${ev.attemptId}`));
  const batch = hb({ reports: [{ seq: 1, type: 'started', event: started('a') }, { seq: 2, type: 'exited', event: exited('a') }] });
  assert.equal((await f.reg.heartbeat('n1', batch)).ack, 2);
  assert.equal((await f.reg.heartbeat('n1', batch)).ack, 2); // the answer was lost: sent again
  const more = hb({ reports: [{ seq: 2, type: 'exited', event: exited('a') }, { seq: 3, type: 'started', event: started('b') }] });
  assert.equal((await f.reg.heartbeat('n1', more)).ack, 3);
  assert.deepEqual(seen, ['n1:started:a', 'n1:exited:a', 'n1:started:b']);
  // Another epoch (a new journal): its numbers are its own.
  const fresh = hb({ epoch: 'e2', reports: [{ seq: 1, type: 'exited', event: exited('b') }] });
  assert.equal((await f.reg.heartbeat('n1', fresh)).ack, 1);
  assert.equal(seen.length, 4);
  // The attempt list goes to the driver before the reports of the same heartbeat.
  const order: string[] = [];
  f.reg.on('attempts', () => order.push('attempts'));
  f.reg.on('report', () => order.push('report'));
  const r = await f.reg.heartbeat('n1', hb({ epoch: 'e2', attempts: [{ attemptId: 'c', state: 'running', pid: 1, cgroup: null, startedAt: 1 }], reports: [{ seq: 2, type: 'started', event: started('c') }] }));
  assert.deepEqual(order, ['attempts', 'report']);
  assert.equal(r.resync, false);
});

test('the first heartbeat after the registry started (or after the node was down) asks for the attempt list', T, async () => {
  const f = await fixture();
  await f.join('n1');
  assert.equal((await f.reg.heartbeat('n1', hb())).resync, true);
  assert.equal((await f.reg.heartbeat('n1', hb({ attempts: [] }))).resync, false);
  assert.equal((await f.reg.heartbeat('n1', hb())).resync, false);
  f.clock.now += 16_000;
  f.reg.sweep();
  assert.equal(f.reg.get('n1')?.state, 'down');
  assert.equal((await f.reg.heartbeat('n1', hb())).resync, true);
});

test('long poll: answers at once with what is queued, wakes when work comes, else empty after waitMs; unacknowledged items come again', T, async () => {
  const f = await fixture();
  await f.join('n1');
  f.reg.assign('n1', task('a'));
  f.reg.assign('n1', task('a')); // the same attempt twice: queued once
  const p1 = await f.reg.poll('n1', 5_000);
  assert.deepEqual(p1.assignments.map((a) => a.attemptId), ['a']);
  // Not acknowledged (the answer was lost): given again.
  const p2 = await f.reg.poll('n1', 5_000);
  assert.deepEqual(p2.assignments.map((a) => a.attemptId), ['a']);
  // Acknowledged: a long poll that waits, woken by the next assignments (one answer for a burst).
  const waiting = f.reg.poll('n1', 5_000, undefined, { epoch: p2.epoch, cursor: p2.cursor });
  f.reg.assign('n1', task('b'));
  f.reg.assign('n1', task('c'));
  f.reg.kill('n1', 'a', 'canceled');
  const p3 = await waiting;
  assert.deepEqual(p3.assignments.map((a) => a.attemptId), ['b', 'c']);
  assert.deepEqual(p3.kills, [{ attemptId: 'a', reason: 'canceled' }]);
  // Nothing queued: empty after waitMs.
  const t0 = Date.now();
  const p4 = await f.reg.poll('n1', 50, undefined, { epoch: p3.epoch, cursor: p3.cursor });
  assert.ok(Date.now() - t0 >= 40);
  assert.deepEqual([p4.assignments, p4.kills, p4.logRequests, p4.stopLogs], [[], [], [], []]);
  // A second poll of the same node answers the first with nothing; an aborted poll answers at once.
  const first = f.reg.poll('n1', 5_000);
  const second = f.reg.poll('n1', 5_000);
  assert.deepEqual((await first).assignments, []);
  const ac = new AbortController();
  const third = f.reg.poll('n1', 5_000, ac.signal);
  assert.deepEqual((await second).assignments, []);
  ac.abort();
  assert.deepEqual((await third).assignments, []);
  // An ack of another registry's epoch is ignored (a restarted server).
  f.reg.assign('n1', task('d'));
  const p5 = await f.reg.poll('n1', 0, undefined, { epoch: 'other', cursor: 1e9 });
  assert.deepEqual(p5.assignments.map((a) => a.attemptId), ['d']);
  assert.throws(() => f.reg.assign('nope', task('x')), (e: { code?: string }) => e.code === 'AGENT_NODE_UNKNOWN');
});

test('down after heartbeat + grace, lost after more (never before the node fenced itself); up again with a heartbeat', T, async () => {
  const f = await fixture();
  await f.join('n1');
  const events: string[] = [];
  for (const e of ['up', 'down', 'lost'] as const) f.reg.on(e, (n) => events.push(`${e}:${n}`));
  f.reg.assign('n1', task('queued'));
  f.clock.now += 14_000;
  f.reg.sweep();
  assert.equal(f.reg.get('n1')?.state, 'ready');
  f.clock.now += 2_000; // 16 s > 5 s + 10 s
  f.reg.sweep();
  assert.equal(f.reg.get('n1')?.state, 'down');
  // lost at max(heartbeat + grace + lostAfter = 45 s, stopAfter + heartbeat + 1 s = 66 s) after last seen.
  assert.equal(f.reg.lostAfterSeenMs, 66_000);
  f.clock.now += 49_000; // 65 s
  f.reg.sweep();
  assert.equal(f.reg.get('n1')?.state, 'down');
  f.clock.now += 2_000;
  f.reg.sweep();
  assert.equal(f.reg.get('n1')?.state, 'lost');
  assert.throws(() => f.reg.assign('n1', task('x')), (e: { code?: string }) => e.code === 'AGENT_NODE_UNAVAILABLE');
  await f.reg.heartbeat('n1', hb());
  assert.equal(f.reg.get('n1')?.state, 'ready');
  assert.deepEqual(events, ['down:n1', 'lost:n1', 'up:n1']);
  // What was queued before it was lost is not sent (the driver gave it up).
  assert.deepEqual((await f.reg.poll('n1', 0)).assignments, []);
  await f.reg.flush();
  const rec = (await f.store.getNode('n1'))!;
  assert.equal(rec.state, 'ready');
});

test('the grace grows with the number of nodes (a server must hear from all of them)', T, async () => {
  const f = await fixture({ maxHeartbeatsPerSecond: 2 });
  assert.equal(f.reg.graceMs, 10_000);
  for (let i = 0; i < 30; i++) await f.join(`n${i}`);
  assert.equal(f.reg.graceMs, 15_000);
});

test('heartbeats are cheap: last-seen stays in memory, the store is written on state changes and at most every 30 s per node', T, async () => {
  const store = new MemoryNodeStore();
  const f = await fixture({}, store);
  for (let i = 0; i < 100; i++) await f.join(`n${i}`);
  const before = store.writes;
  // Ten minutes of heartbeats every 5 s from 100 nodes, the sweep every second.
  for (let t = 0; t < 600; t++) {
    f.clock.now += 1_000;
    if (t % 5 === 0) for (let i = 0; i < 100; i++) await f.reg.heartbeat(`n${i}`, hb({ attempts: [] }));
    f.reg.sweep();
  }
  await f.reg.flush();
  const writes = store.writes - before;
  // 12 000 heartbeats; at most one write per node per 30 s (20 each).
  assert.ok(writes <= 100 * 21, `${writes} store writes`);
  assert.ok(writes >= 100 * 15, `${writes} store writes (last-seen is written behind)`);
  assert.ok(f.reg.list().every((r) => r.state === 'ready' && r.lastSeenAt >= f.clock.now - 5_000));
});

test('revoke: refused from then on (heartbeat, poll, join under the name), lost; delete lets the name join again', T, async () => {
  const f = await fixture();
  await f.join('n1');
  const lost: string[] = [];
  f.reg.on('lost', (n) => lost.push(n));
  const serial = f.reg.get('n1')!.certSerial!;
  await f.reg.revoke('n1');
  assert.equal(f.reg.get('n1')?.state, 'revoked');
  assert.equal((await f.store.getNode('n1'))?.state, 'revoked');
  assert.ok(f.reg.revocations.isRevoked(`spiffe://${cluster!.ca.trustDomain}/node/n1`, 'ff'));
  assert.deepEqual(lost, ['n1']);
  await assert.rejects(f.reg.heartbeat('n1', hb()), (e: { code?: string }) => e.code === 'MESH_REVOKED');
  await assert.rejects(f.reg.poll('n1', 0), (e: { code?: string }) => e.code === 'MESH_REVOKED');
  await assert.rejects(f.join('n1'), (e: { code?: string }) => e.code === 'MESH_REVOKED');
  await f.reg.delete('n1');
  assert.equal(f.reg.get('n1'), undefined);
  assert.equal(await f.store.getNode('n1'), undefined);
  // The old certificate stays refused; the name may join again.
  assert.ok(f.reg.revocations.isRevoked('spiffe://x/node/other', serial));
  await f.join('n1');
  assert.equal(f.reg.get('n1')?.state, 'ready');
  // A join under a name that exists (a wiped data directory): the previous certificate is refused.
  const old = f.reg.get('n1')!.certSerial!;
  await f.join('n1');
  assert.ok(f.reg.revocations.isRevoked('spiffe://x/node/other', old));
  await f.reg.drain('n1');
  assert.equal(f.reg.get('n1')?.drained, true);
  assert.equal((await f.reg.heartbeat('n1', hb())).drained, true);
  await f.reg.undrain('n1');
  assert.equal((await f.store.getNode('n1'))?.drained, false);
});

test('a restarted registry loads its nodes from the store and gives them a full heartbeat period', T, async () => {
  const store = new MemoryNodeStore();
  const f = await fixture({}, store);
  await f.join('n1');
  await f.join('n2');
  await f.reg.revoke('n2');
  f.clock.now += 3_600_000; // the server was down an hour
  const g = new NodeRegistry({ store, ca: cluster!.ca, tokens: f.tokens, trustDomain: cluster!.ca.trustDomain, clock: () => f.clock.now, timers: { sweepMs: 3_600_000 } });
  regs.push(g);
  await g.start();
  g.sweep();
  assert.equal(g.get('n1')?.state, 'ready');
  assert.equal(g.get('n2')?.state, 'revoked');
  assert.ok(g.revocations.isRevoked(`spiffe://${cluster!.ca.trustDomain}/node/n2`, '01'));
  f.clock.now += 16_000;
  g.sweep();
  assert.equal(g.get('n1')?.state, 'down');
});

test('log streams: requested when read, fed by the upload, the node told to stop when the reader goes; a failure reaches the reader', T, async () => {
  const f = await fixture({ logStartMs: 200 });
  await f.join('n1');
  const req = { workflowId: 'wf', job: 'j', task: null, stream: 'stdout' as const };
  const it = f.reg.requestLogs('n1', req)[Symbol.asyncIterator]();
  const firstChunk = it.next();
  const p = await f.reg.poll('n1', 1_000);
  assert.equal(p.logRequests.length, 1);
  const { requestId } = p.logRequests[0]!;
  assert.throws(() => f.reg.logUpload('n2', requestId), (e: { code?: string }) => e.code === 'AGENT_NODE_UNKNOWN');
  const sink = f.reg.logUpload('n1', requestId);
  assert.equal(await sink.write(Buffer.from('hello ')), true);
  assert.equal(Buffer.from((await firstChunk).value!).toString(), 'hello ');
  await sink.write(Buffer.from('world'));
  sink.end();
  assert.equal(Buffer.from((await it.next()).value!).toString(), 'world');
  assert.equal((await it.next()).done, true);
  assert.throws(() => f.reg.logUpload('n1', requestId), (e: { code?: string }) => e.code === 'AGENT_LOG_UNKNOWN');

  // The reader stops early: the node is told to stop, further writes say stop.
  const it2 = f.reg.requestLogs('n1', { ...req, follow: true })[Symbol.asyncIterator]();
  const c1 = it2.next();
  const p2 = await f.reg.poll('n1', 1_000, undefined, { epoch: p.epoch, cursor: p.cursor });
  const sink2 = f.reg.logUpload('n1', p2.logRequests[0]!.requestId);
  await sink2.write(Buffer.from('x'));
  await c1;
  await it2.return!();
  assert.equal(await sink2.write(Buffer.from('y')), false);
  const p3 = await f.reg.poll('n1', 1_000, undefined, { epoch: p2.epoch, cursor: p2.cursor });
  assert.deepEqual(p3.stopLogs, [p2.logRequests[0]!.requestId]);

  // The node says it cannot; the node never answers.
  const it3 = f.reg.requestLogs('n1', req)[Symbol.asyncIterator]();
  const c3 = it3.next();
  const p4 = await f.reg.poll('n1', 1_000, undefined, { epoch: p3.epoch, cursor: p3.cursor });
  f.reg.logUpload('n1', p4.logRequests[0]!.requestId).fail({ code: 'RUN_UNKNOWN_JOB', message: 'no job j' });
  await assert.rejects(c3, (e: { code?: string }) => e.code === 'RUN_UNKNOWN_JOB');
  const it4 = f.reg.requestLogs('n1', req)[Symbol.asyncIterator]();
  await assert.rejects(it4.next(), (e: { code?: string }) => e.code === 'AGENT_NODE_UNAVAILABLE');
});

test('RemoteAgent: durable before the assignment; a failed durable write or a lost node ends the attempt; reports given once; admission', T, async () => {
  const f = await fixture();
  await f.join('n1', { cores: 4, memoryBytes: 2 ** 30, gpus: [{ index: 0, model: 'A100', memoryBytes: 40 * 2 ** 30 }], containers: false });
  const ra = new RemoteAgent(f.reg, 'n1');
  const got: string[] = [];
  ra.setListener({ started: (e) => got.push(`started:${e.attemptId}`), exited: (e) => got.push(`exited:${e.attemptId}:${e.reason}`) });
  const order: string[] = [];
  const assign = f.reg.assign.bind(f.reg);
  f.reg.assign = (n, a) => {
    order.push('assign');
    assign(n, a);
  };
  ra.submit(task('a', 2), {
    durable: async () => {
      order.push('durable');
      await new Promise((r) => setTimeout(r, 10));
      order.push('durable done');
    },
  });
  const p = await f.reg.poll('n1', 1_000);
  assert.deepEqual(order, ['durable', 'durable done', 'assign']);
  assert.deepEqual(p.assignments.map((a) => a.attemptId), ['a']);
  assert.deepEqual(ra.load, { usedCores: 0, queued: 1, running: 0 });
  await f.reg.heartbeat('n1', hb({ reports: [{ seq: 1, type: 'started', event: started('a') }] }));
  assert.deepEqual(ra.load, { usedCores: 2, queued: 0, running: 1 });
  await f.reg.heartbeat('n1', hb({ epoch: 'e9', reports: [{ seq: 1, type: 'started', event: started('a') }, { seq: 2, type: 'exited', event: exited('a') }, { seq: 3, type: 'exited', event: exited('a') }] }));
  assert.deepEqual(got, ['started:a', 'exited:a:exit']);

  ra.submit(task('b'), { durable: async () => Promise.reject(new Error('store down')) });
  await new Promise((r) => setImmediate(r));
  assert.equal(got.at(-1), 'exited:b:error');

  ra.submit(task('c'));
  await new Promise((r) => setImmediate(r));
  f.clock.now += 100_000;
  f.reg.sweep();
  f.reg.sweep();
  assert.equal(got.at(-1), 'exited:c:node-lost');
  ra.submit(task('d'));
  await new Promise((r) => setImmediate(r));
  assert.equal(got.at(-1), 'exited:d:node-lost');

  assert.equal(ra.admit({ name: 'j', cores: 4, memoryBytes: 2 ** 30, gpus: 1, container: false }), null);
  assert.equal(ra.admit({ name: 'j', cores: 5, memoryBytes: 1, gpus: 0, container: false })?.code, 'AGENT_NOT_ENOUGH_CORES');
  assert.equal(ra.admit({ name: 'j', cores: 1, memoryBytes: 2 ** 31, gpus: 0, container: false })?.code, 'AGENT_NOT_ENOUGH_MEMORY');
  assert.equal(ra.admit({ name: 'j', cores: 1, memoryBytes: 1, gpus: 2, container: false })?.code, 'AGENT_NOT_ENOUGH_GPUS');
  assert.equal(ra.admit({ name: 'j', cores: 1, memoryBytes: 1, gpus: 0, container: true })?.code, 'AGENT_NO_CONTAINER_RUNTIME');
  assert.equal(ra.info().gpus.length, 1);
  await ra.close();
});

test('RemoteAgent.recover: the attempt list the node sends when it connects', T, async () => {
  const f = await fixture();
  await f.join('n1');
  const ra = new RemoteAgent(f.reg, 'n1', { recoverWaitMs: 2_000 });
  const waiting = ra.recover();
  await f.reg.heartbeat('n1', hb({ attempts: [{ attemptId: 'x', state: 'running', pid: 7, cgroup: null, startedAt: 1 }] }));
  assert.deepEqual((await waiting).map((a) => a.attemptId), ['x']);
  const silent = new RemoteAgent(f.reg, 'n1', { recoverWaitMs: 10 });
  f.clock.now += 16_000;
  f.reg.sweep();
  await assert.rejects(silent.recover(), (e: { code?: string }) => e.code === 'AGENT_NODE_UNAVAILABLE');
  await ra.close();
  await silent.close();
});

test('beforeAck: reports are acknowledged only once the driver has them; a failure (the store down) answers without the ack, so the agent sends them again; batches of a node go one at a time', T, async () => {
  cluster ??= await makeCluster();
  let fail = true;
  const durable: string[] = [];
  const tokens = new MemoryTokenStore();
  const reg = new NodeRegistry({
    store: new MemoryNodeStore(),
    ca: cluster.ca,
    tokens,
    trustDomain: cluster.ca.trustDomain,
    timers: { sweepMs: 3_600_000 },
    beforeAck: async (_node, evs) => {
      await new Promise((r) => setTimeout(r, 20));
      if (fail) throw new Error('store down');
      durable.push(...evs.map((e) => e.attemptId));
    },
  });
  regs.push(reg);
  await reg.start();
  const { token } = await createJoinToken(tokens, { ttlSeconds: 60, createdBy: 't' });
  await reg.join({ protocol: { ...AGENT_PROTOCOL }, token, csr: await csr('n1'), info: nodeInfo('n1') });
  const batch = hb({ reports: [{ seq: 1, type: 'exited', event: exited('a') }] });
  const r0 = await reg.heartbeat('n1', batch);
  assert.equal(r0.ack, 0, 'not acknowledged while not durable; the node is still alive');
  assert.equal(reg.get('n1')?.state, 'ready');
  fail = false;
  const [r1, r2] = await Promise.all([reg.heartbeat('n1', batch), reg.heartbeat('n1', batch)]);
  assert.equal(r1.ack, 1);
  assert.equal(r2.ack, 1);
  assert.deepEqual(durable, ['a']);
});

test('the registry over the SQLite store: joins, state changes and a restart read back', T, async () => {
  const { SqliteStore } = await import('../../src/store/index.js');
  const { tempDir } = await import('../helpers.js');
  const d = tempDir('warren-nodes-');
  const store = new SqliteStore(`${d.dir}/warren.db`);
  try {
    const f = await fixture({}, store as unknown as MemoryNodeStore);
    await f.join('n1', { cores: 16, labels: { rack: 'a' } });
    await f.reg.drain('n1');
    f.clock.now += 16_000;
    f.reg.sweep();
    await f.reg.flush();
    const rec = await store.getNode('n1');
    assert.equal(rec?.state, 'down');
    assert.equal(rec?.drained, true);
    assert.equal((rec?.info as { cores?: number }).cores, 16);
    const g = new NodeRegistry({ store, ca: cluster!.ca, tokens: f.tokens, trustDomain: cluster!.ca.trustDomain, clock: () => f.clock.now, timers: { sweepMs: 3_600_000 } });
    regs.push(g);
    await g.start();
    assert.equal(g.get('n1')?.info.labels.rack, 'a');
    assert.equal(g.get('n1')?.certSerial, f.reg.get('n1')?.certSerial);
    await g.delete('n1');
    assert.equal(await store.getNode('n1'), undefined);
  } finally {
    await store.close();
    d.cleanup();
  }
});

test('the cluster side loads on first use through the subsystems\' index files', T, async () => {
  const { loadCluster } = await import('../../src/server/index.js');
  const m = await loadCluster();
  assert.equal(m.NodeRegistry, NodeRegistry);
  assert.equal(typeof m.agentRoutes, 'function');
  assert.equal(typeof m.MeshTls, 'function');
  assert.equal(typeof m.connectPool, 'function');
  const { loadAgentDaemon, JOURNAL_FILE } = await import('../../src/agent/index.js');
  const D = await loadAgentDaemon();
  assert.equal(D.name, 'AgentDaemon');
  assert.equal(JOURNAL_FILE, 'reports.journal');
});

test('a CA rotation as the registry sees it: what each node trusts and presents, the bundle it is told, renew now, an older agent\'s trust from the bundle sent with its certificate', T, async () => {
  const f = await fixture();
  const { CertificateAuthority, TrustBundle, verifySvid } = await import('../../src/mesh/index.js');
  const c = cluster!;
  const old = c.ca;
  const res = await f.reg.join({ protocol: { ...AGENT_PROTOCOL }, token: await f.token(), csr: await csr('r1'), info: nodeInfo('r1') });
  const peer = verifySvid(res.certPem, { trustBundle: c.bundle, trustDomain: old.trustDomain, kind: 'node' });
  assert.equal(peer.issuer, old.fingerprint);
  assert.equal((await f.store.getNode('r1'))!.certCa, old.fingerprint, 'the CA it was issued by, in the store');
  const me = () => f.reg.rotationNodes().find((n) => n.name === 'r1')!;
  assert.equal(me().trusts, null, 'not known before its first heartbeat');
  // An older agent (no `trust`): what it trusts is the bundle sent with the certificate it presents.
  let a = await f.reg.heartbeat('r1', hb(), peer);
  assert.deepEqual(me().trusts, [old.fingerprint]);
  assert.equal(a.bundlePem, undefined);
  assert.equal(a.renew, undefined);
  // The rotation begins: both CAs in the bundle, the old one still signs.
  const { ca: next } = await CertificateAuthority.generate({ trustDomain: old.trustDomain, name: `CN=Warren CA ${old.trustDomain} next, O=Warren` });
  const both = new TrustBundle([old.certPem, next.certPem]);
  f.reg.useAuthority(old, both);
  a = await f.reg.heartbeat('r1', hb({ trust: [old.fingerprint] }), peer);
  assert.equal(a.bundlePem, both.pem.join('\n') + '\n', 'told the bundle');
  assert.equal(a.renew, undefined, 'its certificate is from the CA that signs');
  a = await f.reg.heartbeat('r1', hb({ trust: both.fingerprints }), peer);
  assert.equal(a.bundlePem, undefined, 'it trusts the bundle already');
  assert.deepEqual(me().trusts, both.fingerprints);
  // The new CA signs: a node presenting an old-CA certificate is told to renew; its renewal is from the new CA.
  f.reg.useAuthority(next, both);
  a = await f.reg.heartbeat('r1', hb({ trust: both.fingerprints }), peer);
  assert.equal(a.renew, true);
  const renewed = await f.reg.renew('r1', await csr('r1'));
  const peer2 = verifySvid(renewed.certPem, { trustBundle: both, trustDomain: old.trustDomain, kind: 'node' });
  assert.equal(peer2.issuer, next.fingerprint);
  assert.equal(me().certCa, old.fingerprint, 'what it presents counts, not what was issued');
  a = await f.reg.heartbeat('r1', hb({ trust: both.fingerprints }), peer2);
  assert.equal(a.renew, undefined);
  assert.equal(me().certCa, next.fingerprint);
  await f.reg.flush();
  assert.equal((await f.store.getNode('r1'))!.certCa, next.fingerprint);
});
