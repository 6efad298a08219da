// A provisioned node and its agent are one node record: the registry gives an agent that joins
// under an inventory node's name that node's tags as labels, under the agent's own, at the join
// and in every heartbeat that sends the node's info again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryTokenStore, createJoinToken, generateKeyPair, createCertificateRequest } from '../../src/mesh/index.js';
import { NodeRegistry, MemoryNodeStore } from '../../src/server/cluster.js';
import { AGENT_PROTOCOL, type NodeInfo } from '../../src/agent/index.js';
import { makeCluster, type Cluster } from '../mesh/helpers.js';

let cluster: Cluster | undefined;
const regs: NodeRegistry[] = [];
after(async () => {
  for (const r of regs) await r.close();
  cluster?.cleanup();
});

const info = (name: string, labels: Record<string, string>): NodeInfo => ({ name, cores: 4, memoryBytes: 2 ** 30, gpus: [], labels, platform: 'linux/amd64', containers: true, agentVersion: '0.1.0', protocol: { ...AGENT_PROTOCOL } });

test("an inventory node's tags are its agent's labels, the agent's own --labels over them; other nodes keep theirs", { timeout: 30_000 }, async () => {
  cluster ??= await makeCluster();
  const tokens = new MemoryTokenStore();
  const store = new MemoryNodeStore();
  const asked: string[] = [];
  const inventory: Record<string, Record<string, string>> = { p1: { rack: 'r1', gpu: 'h100' } };
  const reg = new NodeRegistry({
    store,
    ca: cluster.ca,
    tokens,
    trustDomain: cluster.ca.trustDomain,
    timers: { heartbeatMs: 5_000, graceMs: 10_000, lostAfterMs: 30_000, stopAfterMs: 60_000, sweepMs: 3_600_000 },
    inventoryTags: async (name) => {
      asked.push(name);
      return inventory[name];
    },
  });
  regs.push(reg);
  await reg.start();
  const join = async (name: string, labels: Record<string, string>) => {
    const { token } = await createJoinToken(tokens, { ttlSeconds: 600, uses: 1, createdBy: 't' });
    await reg.join({ protocol: { ...AGENT_PROTOCOL }, token, csr: await createCertificateRequest(await generateKeyPair(), name), info: info(name, labels) });
  };
  const labels = (name: string) => reg.list().find((n) => n.name === name)?.info.labels;
  await join('p1', { gpu: 'a100', own: 'yes' });
  await join('q1', { own: 'yes' });
  assert.deepEqual(asked, ['p1', 'q1'], 'asked once per join');
  assert.deepEqual(labels('p1'), { rack: 'r1', gpu: 'a100', own: 'yes' });
  assert.deepEqual(labels('q1'), { own: 'yes' }, 'not in the inventory: its own labels only');
  assert.deepEqual(((await store.getNode('p1'))?.info as { labels?: unknown }).labels, { rack: 'r1', gpu: 'a100', own: 'yes' }, 'as stored');
  // A heartbeat with the node's info again (its labels changed) keeps the inventory's under them.
  await reg.heartbeat('p1', { protocol: { ...AGENT_PROTOCOL }, epoch: 'e1', info: info('p1', { own: 'no' }) });
  assert.deepEqual(labels('p1'), { rack: 'r1', gpu: 'h100', own: 'no' });
  const writes = store.writes;
  await reg.heartbeat('p1', { protocol: { ...AGENT_PROTOCOL }, epoch: 'e1', info: info('p1', { own: 'no' }) });
  assert.equal(store.writes, writes, 'the same info again is no change (nothing written)');
  // Taken out of the inventory: the next join has the agent's labels only.
  delete inventory.p1;
  await join('p1', { own: 'yes' });
  assert.deepEqual(labels('p1'), { own: 'yes' });
});
