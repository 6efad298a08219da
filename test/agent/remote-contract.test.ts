// The agent contract suite (test/agent/contract.ts) against the remote agent: RemoteAgent on
// the server, the node's LocalAgent behind an AgentDaemon, the agent routes over mutual TLS
// between them. And the cluster pool (ClusterPool) fed by the node registry (connectPool).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LocalAgent } from '../../src/agent/index.js';
import { AgentDaemon } from '../../src/agent/remote.js';
import { ClusterPool } from '../../src/server/index.js';
import { RemoteAgent, connectPool } from '../../src/server/cluster.js';
import { job } from '../engine/builders.js';
import { agentContract, Recorder, taskOf } from './contract.js';
import { remoteNode } from './cluster-harness.js';


describe('remote agent', () => {
  agentContract('remote', async () => {
    const n = await remoteNode('n001');
    const agent = new RemoteAgent(n.s.reg, 'n001');
    return {
      agent,
      cleanup: async () => {
        await agent.close();
        await n.cleanup();
      },
    };
  });
});

test('the cluster pool places tasks on a node of the registry; the node runs them and its reports come back', { timeout: 60_000 }, async () => {
  const n = await remoteNode('n001');
  const pool = new ClusterPool({ directory: n.s.reg, lostAfterMs: 30_000 });
  const unwire = connectPool(n.s.reg, pool);
  try {
    const rec = new Recorder(pool);
    const nodes: Array<string | undefined> = [];
    const tasks = Array.from({ length: 4 }, (_, i) => taskOf(job('p', { command: ['/bin/sh', '-c', `echo task ${i}`] }), { workflowId: 'wfpool', task: i }));
    for (const t of tasks) pool.submit(t, { durable: async (info) => void nodes.push(info.node) });
    await rec.ended(4);
    for (const t of tasks) assert.equal(rec.exited.get(t.attemptId)!.exitCode, 0);
    assert.deepEqual(nodes, ['n001', 'n001', 'n001', 'n001']);
    assert.ok(rec.started.every((e) => e.node === 'n001'));
    let out = '';
    for await (const c of pool.logs({ workflowId: 'wfpool', job: 'p', task: 2, stream: 'stdout', node: 'n001' })) out += Buffer.from(c).toString();
    assert.equal(out, 'task 2\n');
  } finally {
    unwire();
    await pool.close();
    await n.cleanup();
  }
});

test('inside the API server (buildApiServer): agents join and work over mutual TLS, users without a certificate use the API with their token', { timeout: 60_000 }, async () => {
  const n = await remoteNode('n001', { api: true });
  const ra = new RemoteAgent(n.s.reg, 'n001');
  try {
    const rec = new Recorder(ra);
    const t = taskOf(job('hi', { command: ['/bin/sh', '-c', 'echo hi'] }));
    ra.submit(t);
    await rec.ended(1);
    assert.equal(rec.exited.get(t.attemptId)!.exitCode, 0);
    const { Agent, request } = await import('undici');
    const plain = new Agent({ connect: { ca: n.s.caPem, checkServerIdentity: () => undefined } as never });
    try {
      const health = await request(`${n.s.url}/api/v1/health`, { dispatcher: plain });
      assert.equal(health.statusCode, 200);
      await health.body.dump();
      const token = n.s.backend!.addUser('alice');
      const list = await request(`${n.s.url}/api/v1/workflows`, { dispatcher: plain, headers: { authorization: `Bearer ${token}` } });
      assert.equal(list.statusCode, 200);
      await list.body.dump();
      // The agent routes still refuse a connection without a node certificate, in their own error form.
      const hb = await request(`${n.s.url}/agent/v1/heartbeat`, { method: 'POST', dispatcher: plain, headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(hb.statusCode, 401);
      assert.equal(((await hb.body.json()) as { error: { code: string } }).error.code, 'MESH_NO_CLIENT_CERT');
    } finally {
      await plain.destroy();
    }
  } finally {
    await ra.close();
    await n.cleanup();
  }
});
