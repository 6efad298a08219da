// Services across the server–agent protocol (1.5): the `ready` report of a remote agent, a
// service whose probe never passes (its `not-ready` end), port forwarding through the node's
// agent (a tunnel over mutual TLS), and the cluster pool with an agent older than 1.5.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { type AgentListener, type AttemptExited, type AttemptReady, type AttemptStarted, type NodeInfo, type TaskAssignment } from '../../src/agent/index.js';
import { ClusterPool } from '../../src/server/index.js';
import { RemoteAgent } from '../../src/server/cluster.js';
import type { ReadinessProbe } from '../../src/workflow/types.js';
import { freePort } from '../helpers.js';
import { job } from '../engine/builders.js';
import { taskOf } from './contract.js';
import { remoteNode, until } from './cluster-harness.js';

const BUSYBOX = '/bin/busybox';



function record(): { l: AgentListener; started: AttemptStarted[]; ready: AttemptReady[]; exited: Map<string, AttemptExited> } {
  const started: AttemptStarted[] = [];
  const ready: AttemptReady[] = [];
  const exited = new Map<string, AttemptExited>();
  return { started, ready, exited, l: { started: (e) => started.push(e), exited: (e) => exited.set(e.attemptId, e), ready: (e) => ready.push(e) } };
}

const probe = (port: number, o: Partial<ReadinessProbe> = {}): ReadinessProbe => ({ action: { kind: 'http', path: '/', port, scheme: 'HTTP', headers: [] }, initialDelaySec: 0, periodSec: 0.2, timeoutSec: 1, successThreshold: 1, failureThreshold: 100, ...o });

async function httpGet(s: Duplex, path: string): Promise<string> {
  s.write(`GET ${path} HTTP/1.0\r\n\r\n`);
  return new Promise<string>((resolve, reject) => {
    let b = '';
    s.on('data', (c: Buffer) => (b += c.toString()));
    s.on('end', () => resolve(b));
    s.on('error', reject);
  });
}

describe('services over the agent protocol', { skip: existsSync(BUSYBOX) ? false : 'needs /bin/busybox' }, () => {
  test('a remote service reports ready when its probe passes; a port forward reaches it through its agent; an undeclared port is refused by the node', { timeout: 60_000 }, async () => {
    const n = await remoteNode('n001', { serviceHost: '127.0.0.1' });
    const ra = new RemoteAgent(n.s.reg, 'n001');
    try {
      const rec = record();
      ra.setListener(rec.l);
      const port = await freePort();
      const www = join(n.d.dir, 'www');
      mkdirSync(www);
      writeFileSync(join(www, 'index.html'), 'served over the tunnel\n');
      const t = taskOf(job('web', { service: true, command: ['/bin/sh', '-c', `sleep 0.3; exec ${BUSYBOX} httpd -f -p 127.0.0.1:${port} -h ${www}`], serviceSpec: { ports: [{ name: 'http', port, protocol: 'tcp' }], endpoints: [], persist: false, probe: probe(port) } }));
      ra.submit(t);
      await until(() => rec.ready.length === 1, 'the ready report', 30_000);
      assert.equal(rec.ready[0]!.attemptId, t.attemptId);
      assert.equal(rec.ready[0]!.host, '127.0.0.1');
      assert.equal(rec.ready[0]!.message, `readiness probe http-get http://127.0.0.1:${port}/ passed: HTTP 200`);
      assert.equal(rec.started.length, 1, 'started came first');

      const s = await n.s.reg.tunnel('n001', t.attemptId, port);
      const reply = await httpGet(s, '/index.html');
      assert.match(reply, /^HTTP\/1\.[01] 200/);
      assert.match(reply, /served over the tunnel/);
      // Two at once, each its own connection.
      const [a, b] = await Promise.all([n.s.reg.tunnel('n001', t.attemptId, port), n.s.reg.tunnel('n001', t.attemptId, port)]);
      const [ra1, rb1] = await Promise.all([httpGet(a, '/index.html'), httpGet(b, '/nope')]);
      assert.match(ra1, / 200 /);
      assert.match(rb1, / 404 /);

      await assert.rejects(n.s.reg.tunnel('n001', t.attemptId, 22), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'SERVICE_PORT_UNDECLARED');
        assert.equal(e.message, `service web does not declare port 22 (its ports: ${port})`);
        return true;
      });
      ra.kill(t.attemptId, 'stop-service');
      await until(() => rec.exited.has(t.attemptId), 'the end');
    } finally {
      await ra.close();
      await n.cleanup();
    }
  });

  test('a remote service whose probe never passes ends not-ready, with the probe\'s last result', { timeout: 60_000 }, async () => {
    const n = await remoteNode('n001', { serviceHost: '127.0.0.1' });
    const ra = new RemoteAgent(n.s.reg, 'n001');
    try {
      const rec = record();
      ra.setListener(rec.l);
      const port = await freePort();
      const t = taskOf(job('web', { service: true, command: ['/bin/sleep', '60'], serviceSpec: { ports: [], endpoints: [], persist: false, probe: probe(port, { failureThreshold: 2 }) } }));
      ra.submit(t);
      await until(() => rec.exited.has(t.attemptId), 'the end', 30_000);
      const ex = rec.exited.get(t.attemptId)!;
      assert.equal(ex.reason, 'not-ready');
      assert.equal(ex.message, `readiness probe http-get http://127.0.0.1:${port}/ failed 2 times: connection refused`);
      assert.equal(rec.ready.length, 0);
    } finally {
      await ra.close();
      await n.cleanup();
    }
  });
});

test('the cluster pool: a service on an agent older than protocol 1.5 is counted ready when it started, with its node\'s address and why', async () => {
  const info = (minor: number): NodeInfo => ({ name: 'old', cores: 4, memoryBytes: 1 << 30, gpus: [], labels: {}, platform: 'linux/amd64', containers: false, addresses: ['10.0.0.9'], agentVersion: 'x', protocol: { major: 1, minor } });
  const assigned: TaskAssignment[] = [];
  let minor = 4;
  const dir = {
    nodes: () => [{ name: 'old', info: info(minor), state: 'ready' as const, drained: false }],
    assign: (_n: string, t: TaskAssignment) => void assigned.push(t),
    kill: () => {},
    launch: () => true,
    requestLogs: () => (async function* () {})(),
  };
  const pool = new ClusterPool({ directory: dir, lostAfterMs: 60_000 });
  try {
    const rec = record();
    pool.listen('wfold', rec.l);
    const t = taskOf(job('web', { service: true, serviceSpec: { ports: [], endpoints: [], persist: false, probe: probe(80) } }), { workflowId: 'wfold' });
    pool.submit(t);
    await until(() => assigned.length === 1, 'the dispatch');
    pool.onReport('old', { attemptId: t.attemptId, pid: 5, cgroup: null, at: 1 });
    assert.equal(rec.started.length, 1);
    assert.equal(rec.ready.length, 1);
    assert.equal(rec.ready[0]!.host, '10.0.0.9');
    assert.equal(rec.ready[0]!.message, "its readiness probe was not run: node old's agent speaks protocol 1.4, older than 1.5; counted ready when it started");
    assert.equal(pool.addressOf('old'), '10.0.0.9');
    // A 1.5 agent's own ready report goes through, with the node's address when it gives none.
    minor = 5;
    const t2 = taskOf(job('web2', { service: true, serviceSpec: { ports: [], endpoints: [], persist: false, probe: probe(81) } }), { workflowId: 'wfold' });
    pool.submit(t2);
    await until(() => assigned.length === 2, 'the dispatch');
    pool.onReport('old', { attemptId: t2.attemptId, pid: 6, cgroup: null, at: 1 });
    assert.equal(rec.ready.length, 1, 'no ready made up for a 1.5 agent');
    pool.onReady('old', { attemptId: t2.attemptId, message: 'passed', at: 2 });
    assert.deepEqual(rec.ready[1], { attemptId: t2.attemptId, message: 'passed', at: 2, host: '10.0.0.9' });
    // Not from the node it runs on: ignored.
    pool.onReady('elsewhere', { attemptId: t2.attemptId, at: 3 });
    assert.equal(rec.ready.length, 2);
    await assert.rejects(pool.connect(t.attemptId, 80), /cannot open port forwards to its nodes/);
  } finally {
    await pool.close();
  }
});

