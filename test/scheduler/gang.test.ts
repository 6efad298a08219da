// Multinode gangs in the cluster scheduler: all of a gang's nodes at once or none, each
// distinct and each with the job's per-node resources; a gang that cannot be placed waits
// with how many nodes could take it now, and holds nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scheduleCluster } from '../../src/scheduler/index.js';
import { GiB, job, node, nodes } from './cluster-fixtures.js';

test('a gang takes `nodes` distinct nodes, each with its cores and memory', () => {
  const r = scheduleCluster({ now: 0, nodes: nodes(4, { cores: 4 }), jobs: [job('mpi', { cores: 4, memoryBytes: 2 * GiB, nodes: 3 })] });
  assert.equal(r.placements.length, 1);
  const p = r.placements[0]!;
  assert.equal(p.nodes?.length, 3);
  assert.equal(new Set(p.nodes).size, 3, 'distinct nodes');
  assert.equal(p.node, p.nodes![0]);
  assert.equal(p.cores, 4);
});

test('all or none: a gang that does not fit now waits, says why, and holds nothing', () => {
  const ns = [node('a', { cores: 4 }), node('b', { cores: 4, allocated: { cores: 4, memoryBytes: 0, gpus: 0 } }), node('c', { cores: 2 })];
  const r = scheduleCluster({ now: 0, nodes: ns, jobs: [job('mpi', { cores: 4, nodes: 2 }), job('small', { cores: 4 })] });
  assert.deepEqual(r.placements.map((p) => p.job), ['small'], 'the gang holds no node while it waits: the later job gets a');
  assert.equal(r.placements[0]!.node, 'a');
  const w = r.pending.find((x) => x.job === 'mpi')!;
  assert.equal(w.status.code, 'unschedulable');
  assert.match(w.status.message, /^needs 2 nodes at once: 0 of 3 nodes can take it now/);
});

test('a gang waits with the count of nodes that could take it now', () => {
  const r = scheduleCluster({ now: 0, nodes: nodes(3, { cores: 2 }), jobs: [job('mpi', { cores: 2, nodes: 5 })] });
  assert.equal(r.placements.length, 0);
  assert.match(r.pending[0]!.status.message, /^needs 5 nodes at once: 3 of 3 nodes can take it now/);
});

test('a gang with a bad node count is an invalid job, not a crash', () => {
  for (const bad of [0, 1.5, -2, Number.NaN]) {
    const r = scheduleCluster({ now: 0, nodes: nodes(2), jobs: [job('mpi', { nodes: bad })] });
    assert.equal(r.placements.length, 0);
    assert.equal(r.pending[0]!.status.code, 'error', String(bad));
    assert.equal(r.pending[0]!.status.errorCode, 'PLAN_BAD_JOB');
  }
});
