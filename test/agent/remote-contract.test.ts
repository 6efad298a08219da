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
import { createProcessRuntime } from '../../src/runtime/index.js';
import { tempDir } from '../helpers.js';
import { job } from '../engine/builders.js';
import { agentContract, Recorder, taskOf } from './contract.js';
import { startServer, until } from './cluster-harness.js';

async function remoteNode(name: string, cores = 2) {
  const s = await startServer();
  const d = tempDir('warren-remote-');
  const local = new LocalAgent({ name, home: join(d.dir, 'home'), cores, process: createProcessRuntime() });
  const daemon = new AgentDaemon({ serverUrl: s.url, name, dataDir: join(d.dir, 'agent'), agent: local, token: await s.token(), caPem: s.caPem, timers: { heartbeatMs: 200, retryMs: 50 } });
  await daemon.start();
  await until(() => daemon.status().connected, 'the daemon connected');
  const cleanup = async (): Promise<void> => {
    await daemon.stop();
    await local.close();
    await s.close();
    d.cleanup();
  };
  return { s, local, daemon, cleanup };
}

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
