// Hand-made cases for the cluster scheduler: each filter and its reason, constraints, exclusive
// and drained nodes, GPU counts, bin-pack against spread, cached image and data preference,
// fair share between users, EASY backfill, determinism, invalid input.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fairShareFactors, parseConstraint, scheduleCluster } from '../../src/scheduler/index.js';
import type { ClusterNode, PendingJob, ScheduleInput, ScheduleResult } from '../../src/scheduler/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { GiB, job, node, nodes } from './cluster-fixtures.js';

const run = (nodes: ClusterNode[], jobs: PendingJob[], more: Partial<ScheduleInput> = {}): ScheduleResult => scheduleCluster({ now: 0, nodes, jobs, ...more });
const where = (r: ScheduleResult): Record<string, string> => Object.fromEntries(r.placements.map((p) => [p.job, p.node]));
const pendingOf = (r: ScheduleResult, id: string) => {
  const p = r.pending.find((x) => x.job === id);
  assert.ok(p, `${id} is pending`);
  return p;
};

describe('filters: every refused node is counted under its reason', () => {
  test('GPUs: "needs 4 GPUs: 0 of 12 nodes have them"', () => {
    const r = run(nodes(12), [job('train', { gpus: 4 })]);
    assert.equal(r.placements.length, 0);
    const p = pendingOf(r, 'train');
    assert.equal(p.status.code, 'unschedulable');
    assert.deepEqual(p.status.reasons, { 'needs 4 GPUs': 12 });
    assert.equal(p.status.nodesConsidered, 12);
    assert.equal(p.status.message, 'needs 4 GPUs: 0 of 12 nodes have them');
  });

  test('cores, memory, GPU model, platform, drained, unix user', () => {
    const cases: [string, ClusterNode[], PendingJob, string, string][] = [
      ['cores', nodes(3), job('j', { cores: 16 }), 'needs 16 cores', 'needs 16 cores: 0 of 3 nodes have them'],
      ['memory', nodes(3), job('j', { memoryBytes: 64 * GiB }), 'needs 64.0GiB memory', 'needs 64.0GiB memory: 0 of 3 nodes have it'],
      ['GPU model', nodes(3, { gpus: { count: 4, models: ['A100'] } }), job('j', { gpus: 1, gpuModel: 'H100' }), 'needs GPU model H100', 'needs GPU model H100: 0 of 3 nodes have it'],
      ['platform', nodes(3), job('j', { image: { platform: 'linux/arm64', digest: 'sha256:aa' } }), 'needs platform linux/arm64', 'needs platform linux/arm64: 0 of 3 nodes are linux/arm64'],
      ['drained', nodes(3, { drained: true }), job('j'), 'node drained', 'node drained: 0 of 3 nodes are in service'],
      ['unix user', nodes(3, { unixUsers: ['bob'] }), job('j', { user: 'alice' }), 'no account for user alice', 'no account for user alice: 0 of 3 nodes have that account'],
    ];
    for (const [what, ns, j, reason, message] of cases) {
      const r = run(ns, [j]);
      assert.equal(r.placements.length, 0, what);
      const p = pendingOf(r, 'j');
      assert.deepEqual(p.status.reasons, { [reason]: 3 }, what);
      assert.equal(p.status.message, message, what);
    }
  });

  test('capacity in use is a different reason from capacity the node does not have', () => {
    const ns = [node('a', { allocated: { cores: 6, memoryBytes: 0, gpus: 0 } }), node('b', { allocated: { cores: 0, memoryBytes: 30 * GiB, gpus: 0 } }), node('c', { cores: 2 })];
    const r = run(ns, [job('j', { cores: 4, memoryBytes: 4 * GiB })]);
    const p = pendingOf(r, 'j');
    assert.deepEqual(p.status.reasons, { 'needs 4 free cores': 1, 'needs 4.0GiB free memory': 1, 'needs 4 cores': 1 });
    assert.equal(p.status.message, '0 of 3 nodes can run it now: needs 4 cores (1), needs 4 free cores (1), needs 4.0GiB free memory (1)');
  });

  test('a node is counted once, under the first filter that refuses it', () => {
    // Drained and too small: counted as drained (the drain filter runs first).
    const ns = [node('a', { drained: true, cores: 2 }), node('b', { cores: 2 }), node('c', { cores: 2 }), node('d')];
    const r = run(ns, [job('big', { cores: 16 })]);
    const p = pendingOf(r, 'big');
    assert.deepEqual(p.status.reasons, { 'needs 16 cores': 3, 'node drained': 1 });
    assert.equal(Object.values(p.status.reasons).reduce((a, b) => a + b, 0), p.status.nodesConsidered);
  });

  test('a drained node receives nothing, the others do', () => {
    const ns = [node('a', { drained: true }), node('b')];
    const r = run(ns, [job('x'), job('y')]);
    assert.deepEqual(where(r), { x: 'b', y: 'b' });
  });

  test('unix users: a job goes only where its user has an account', () => {
    const ns = [node('a', { unixUsers: ['bob'] }), node('b', { unixUsers: ['alice', 'bob'] }), node('c', { unixUsers: ['carol'] })];
    const r = run(ns, [job('x', { user: 'alice' }), job('y', { user: 'carol' })]);
    assert.deepEqual(where(r), { x: 'b', y: 'c' });
  });

  test('image platform: arm64 images go to arm64 nodes; a variant must agree when both name one', () => {
    const ns = [node('amd', { platform: 'linux/amd64' }), node('arm', { platform: 'linux/arm64/v8' }), node('arm7', { platform: 'linux/arm/v7' })];
    const r = run(ns, [
      job('a', { image: { platform: 'linux/arm64', digest: 'sha256:1' } }),
      job('b', { image: { platform: 'linux/amd64', digest: 'sha256:2' } }),
      job('c', { image: { platform: 'linux/arm/v6', digest: 'sha256:3' } }),
    ]);
    assert.deepEqual(where(r), { a: 'arm', b: 'amd' });
    assert.deepEqual(pendingOf(r, 'c').status.reasons, { 'needs platform linux/arm/v6': 3 });
  });
});

describe('constraints', () => {
  const ns = [
    node('a', { labels: { rack: 'r1', zone: 'z1', ib: 'hdr' } }),
    node('b', { labels: { rack: 'r2', zone: 'z1' } }),
    node('c', { labels: { rack: 'r3', zone: 'z2' } }),
  ];
  const placedOn = (constraints: string[]): string[] => {
    // One 8-core job per node at most, so every node that matches gets one of three jobs.
    const r = run(ns, [0, 1, 2].map((k) => job(`j${k}`, { cores: 8, constraints })));
    return r.placements.map((p) => p.node).sort();
  };

  test('k=v, k!=v, k in (...), k notin (...), k, !k', () => {
    assert.deepEqual(placedOn(['zone=z1']), ['a', 'b']);
    assert.deepEqual(placedOn(['zone==z2']), ['c']);
    assert.deepEqual(placedOn(['rack!=r1']), ['b', 'c']);
    assert.deepEqual(placedOn(['rack in (r1, r3)']), ['a', 'c']);
    assert.deepEqual(placedOn(['rack notin (r1,r3)']), ['b']);
    assert.deepEqual(placedOn(['ib']), ['a']);
    assert.deepEqual(placedOn(['!ib']), ['b', 'c']);
    assert.deepEqual(placedOn(['zone=z1', '!ib']), ['b']);
    // != and notin match a node without the label (as Kubernetes' selectors do).
    assert.deepEqual(placedOn(['ib!=edr']), ['a', 'b', 'c']);
  });

  test('the reason names the constraint that failed', () => {
    const r = run(ns, [job('j', { constraints: ['zone=z9'] })]);
    assert.deepEqual(pendingOf(r, 'j').status.reasons, { 'constraint zone=z9 not met': 3 });
    assert.equal(pendingOf(r, 'j').status.message, 'constraint zone=z9 not met: 0 of 3 nodes match');
  });

  test('a constraint that cannot be read leaves the job pending with an error, the rest run', () => {
    const r = run(ns, [job('bad', { constraints: ['rack in ()'] }), job('good')]);
    assert.deepEqual(Object.keys(where(r)), ['good']);
    const p = pendingOf(r, 'bad');
    assert.equal(p.status.code, 'error');
    assert.equal(p.status.errorCode, 'PLAN_BAD_CONSTRAINT');
    assert.deepEqual(p.status.reasons, {});
    assert.equal(p.status.nodesConsidered, 0);
    assert.match(p.status.message, /rack in \(\)/);
  });

  test('parseConstraint', () => {
    assert.deepEqual(parseConstraint(' zone = z1 '), { text: 'zone = z1', key: 'zone', op: 'eq', value: 'z1' });
    assert.deepEqual(parseConstraint('rack in (r2, r1, r2)'), { text: 'rack in (r2, r1, r2)', key: 'rack', op: 'in', values: ['r1', 'r2'] });
    assert.equal(parseConstraint('!gpu').op, 'absent');
    assert.equal(parseConstraint('kubernetes.io/arch').op, 'exists');
    for (const bad of ['', '=v', 'a b', 'k in (a,,b)', 'k=v w']) {
      assert.throws(
        () => parseConstraint(bad),
        (e: unknown) => isWarrenError(e) && e.code === 'PLAN_BAD_CONSTRAINT' && e.exitCode === 2 && typeof e.hint === 'string',
        bad,
      );
    }
  });
});

describe('exclusive and GPUs', () => {
  test('an exclusive job goes only to an empty node and takes all of it', () => {
    const ns = [node('a', { allocated: { cores: 1, memoryBytes: 0, gpus: 0 } }), node('b')];
    const r = run(ns, [job('ex', { exclusive: true }), job('small')]);
    const ex = r.placements.find((p) => p.job === 'ex')!;
    assert.equal(ex.node, 'b');
    assert.deepEqual([ex.cores, ex.memoryBytes, ex.gpus], [8, 32 * GiB, 0]);
    assert.equal(where(r).small, 'a');
  });

  test('nothing else lands on a node an exclusive job took; no exclusive job on a used node', () => {
    const r = run([node('a')], [job('ex', { exclusive: true }), job('small'), job('ex2', { exclusive: true })]);
    assert.deepEqual(where(r), { ex: 'a' });
    assert.deepEqual(pendingOf(r, 'small').status.reasons, { 'needs 1 free core': 1 });
    assert.deepEqual(pendingOf(r, 'ex2').status.reasons, { 'needs an empty node (exclusive)': 1 });
    assert.equal(pendingOf(r, 'ex2').status.message, 'needs an empty node (exclusive): 0 of 1 node are empty');
  });

  test('GPU counts: GPUs are handed out until none is free', () => {
    const ns = nodes(2, { gpus: { count: 4, models: ['A100'] } });
    const jobs = [1, 2, 3, 4, 5].map((k) => job(`g${k}`, { gpus: 2, gpuModel: 'A100' }));
    const r = run(ns, jobs);
    assert.equal(r.placements.length, 4);
    for (const name of ['n01', 'n02']) assert.equal(r.placements.filter((p) => p.node === name).reduce((a, p) => a + p.gpus, 0), 4);
    assert.deepEqual(pendingOf(r, 'g5').status.reasons, { 'needs 2 free GPUs': 2 });
  });

  test('bin-pack keeps GPU nodes for GPU jobs', () => {
    const ns = [node('cpu'), node('gpu', { gpus: { count: 4, models: ['A100'] } })];
    const r = run(ns, [job('c1'), job('g1', { gpus: 1 })], { options: { limit: Infinity } });
    assert.deepEqual(where(r), { c1: 'cpu', g1: 'gpu' });
  });
});

describe('scores', () => {
  const ns = [node('a', { allocated: { cores: 6, memoryBytes: 24 * GiB, gpus: 0 } }), node('b'), node('c', { allocated: { cores: 4, memoryBytes: 16 * GiB, gpus: 0 } })];

  test('bin-pack fills the fullest node that fits; spread picks the emptiest', () => {
    const jobs = [job('x', { cores: 2, memoryBytes: 8 * GiB })];
    assert.deepEqual(where(run(ns, jobs, { options: { strategy: 'binpack', limit: Infinity } })), { x: 'a' });
    assert.deepEqual(where(run(ns, jobs, { options: { strategy: 'spread', limit: Infinity } })), { x: 'b' });
  });

  test('spread puts equal jobs on different nodes; bin-pack on as few as possible', () => {
    const jobs = [1, 2, 3].map((k) => job(`j${k}`, { cores: 2, memoryBytes: 2 * GiB }));
    const spread = run(nodes(3), jobs, { options: { strategy: 'spread' } });
    assert.equal(new Set(spread.placements.map((p) => p.node)).size, 3);
    const pack = run(nodes(3), jobs, { options: { strategy: 'binpack' } });
    assert.equal(new Set(pack.placements.map((p) => p.node)).size, 1);
  });

  test('a node with the image already cached wins over an equal one without it', () => {
    const img = 'sha256:' + 'ab'.repeat(32);
    const ns2 = [node('a'), node('b'), node('c'), node('d', { cachedImages: [img] })];
    // d is last in name order and beyond the default limit (2 of 4 nodes): the image index
    // still brings it in as a candidate.
    const r = run(ns2, [job('x', { image: { platform: 'linux/amd64', digest: img } })]);
    assert.deepEqual(where(r), { x: 'd' });
    // fit: (1/8 of the cores + 1/32 of the memory) / 2; image: 1; the mean of the two.
    assert.equal(r.placements[0]!.score, ((1 / 8 + 1 / 32) / 2 + 1) / 2);
  });

  test('a node that has the data wins; more of the data wins more', () => {
    const ns2 = [node('a', { dataVolumes: ['ref'] }), node('b', { dataVolumes: ['ref', 'reads'] }), node('c')];
    const r = run(ns2, [job('x', { dataVolumes: ['ref', 'reads'] }), job('y', { dataVolumes: ['ref'] }), job('z')], { options: { strategy: 'spread', limit: Infinity } });
    assert.equal(where(r).x, 'b');
    assert.equal(where(r).y, 'a'); // spread: a (empty, has ref) over b (has ref, now used)
    assert.equal(where(r).z, 'c');
  });

  test('weights: with the image weight at 0 the fit decides', () => {
    const img = 'sha256:' + 'cd'.repeat(32);
    const ns2 = [node('a', { allocated: { cores: 4, memoryBytes: 0, gpus: 0 } }), node('b', { cachedImages: [img] })];
    const j = [job('x', { image: { platform: 'linux/amd64', digest: img } })];
    assert.deepEqual(where(run(ns2, j)), { x: 'b' });
    assert.deepEqual(where(run(ns2, j, { options: { weights: { image: 0 } } })), { x: 'a' });
  });
});

describe('fair share', () => {
  const four = [node('a', { cores: 4 })];
  const jobsOf = (user: string, k: number): PendingJob[] => Array.from({ length: k }, (_, i) => job(`${user}${i + 1}`, { user, timeLimit: 600 }));

  test('the user with less usage goes first, until the charges even out', () => {
    const r = run(four, [...jobsOf('bob', 3), ...jobsOf('alice', 3)], { usage: { alice: 0, bob: 1e6 } });
    assert.deepEqual(
      r.placements.map((p) => p.job),
      ['alice1', 'alice2', 'alice3', 'bob1'],
    );
    assert.deepEqual(
      r.pending.map((p) => p.job),
      ['bob2', 'bob3'],
    );
  });

  test('equal usage: users take turns (each placement charges cores x time limit)', () => {
    const r = run(four, [...jobsOf('bob', 3), ...jobsOf('alice', 3)]);
    assert.deepEqual(
      r.placements.map((p) => p.job),
      ['alice1', 'bob1', 'alice2', 'bob2'],
    );
  });

  test('shares: a user with twice the shares gets twice the turns', () => {
    const r = run([node('a', { cores: 6 })], [...jobsOf('bob', 6), ...jobsOf('alice', 6)], { shares: { alice: 2, bob: 1 } });
    const alice = r.placements.filter((p) => p.job.startsWith('alice')).length;
    assert.deepEqual([alice, r.placements.length - alice], [4, 2]);
  });

  test('fair-share factors (Slurm classic 2^(-usage share / shares share))', () => {
    const rows = fairShareFactors(['bob', 'alice', 'carol'], { alice: 0, bob: 300, carol: 100 }, { carol: 2 });
    assert.deepEqual(
      rows.map((x) => [x.user, x.factor]),
      [
        ['alice', 1],
        ['bob', Math.pow(2, -0.75 / 0.25)],
        ['carol', Math.pow(2, -0.25 / 0.5)],
      ],
    );
    const r = run(four, jobsOf('bob', 1), { usage: { bob: 10, alice: 10 } });
    assert.deepEqual(
      r.fairShare.map((x) => x.user),
      ['alice', 'bob'],
    );
  });

  test('priority comes before fair share, submit order after it', () => {
    const r = run([node('a', { cores: 2 })], [job('low', { user: 'alice' }), job('high', { user: 'bob', priority: 10 }), job('low2', { user: 'alice' })], { usage: { bob: 1e9 } });
    assert.deepEqual(
      r.placements.map((p) => p.job),
      ['high', 'low'],
    );
  });
});

describe('backfill (EASY)', () => {
  // One 8-core node; 4 cores run until t=100. A job for all 8 cores waits; it gets a
  // reservation at t=100. Two small jobs come after it in the queue, for the 4 free cores.
  const ns = [node('a', { allocated: { cores: 4, memoryBytes: 4 * GiB, gpus: 0 } })];
  const running = [{ id: 'r', node: 'a', cores: 4, memoryBytes: 4 * GiB, gpus: 0, expectedEnd: 100 }];
  const big = job('big', { cores: 8, memoryBytes: 8 * GiB, timeLimit: 1000 });
  const short = job('short', { cores: 2, memoryBytes: GiB, timeLimit: 50 });
  const long = job('long', { cores: 2, memoryBytes: GiB, timeLimit: 500 });

  test('a small job that ends before the reservation starts now; one that would delay it waits', () => {
    const r = run(ns, [big, short, long], { running });
    assert.deepEqual(r.reservations, [{ job: 'big', node: 'a', start: 100 }]);
    assert.deepEqual(
      r.placements.map((p) => [p.job, p.backfilled]),
      [['short', true]],
    );
    const b = pendingOf(r, 'big');
    assert.deepEqual(b.reservation, { job: 'big', node: 'a', start: 100 });
    assert.equal(b.status.message, 'needs 8 free cores: 0 of 1 node have them now; reserved on a from t=100');
    assert.deepEqual(pendingOf(r, 'long').status.reasons, { 'reserved for big from t=100': 1 });
  });

  test('without reservations, the long job takes the room too (and would delay the large one)', () => {
    const r = run(ns, [big, short, long], { running, options: { reservations: 0 } });
    assert.deepEqual(r.reservations, []);
    assert.deepEqual(
      r.placements.map((p) => [p.job, p.backfilled]),
      [
        ['short', false],
        ['long', false],
      ],
    );
    assert.deepEqual(pendingOf(r, 'big').status.reasons, { 'needs 8 free cores': 1 });
  });

  test('backfill never delays the reservation: the next pass finds the same start or sooner', () => {
    const r1 = run(ns, [big, short, long], { running });
    const start1 = r1.reservations[0]!.start;
    // The placed jobs run; next pass at t=10 with the same queue minus what was placed.
    const running2 = [...running, ...r1.placements.map((p) => ({ id: p.job, node: p.node, cores: p.cores, memoryBytes: p.memoryBytes, gpus: p.gpus, expectedEnd: p.expectedEnd }))];
    const alloc = running2.reduce((a, x) => ({ cores: a.cores + x.cores, memoryBytes: a.memoryBytes + x.memoryBytes, gpus: a.gpus + x.gpus }), { cores: 0, memoryBytes: 0, gpus: 0 });
    const r2 = scheduleCluster({ now: 10, nodes: [node('a', { allocated: alloc })], running: running2, jobs: [big, long] });
    assert.ok(r2.reservations[0]!.start <= start1, `${r2.reservations[0]!.start} <= ${start1}`);
    // At t=100 the running job and short have ended: big starts.
    const r3 = scheduleCluster({ now: 100, nodes: [node('a')], jobs: [big, long] });
    assert.equal(r3.placements[0]!.job, 'big');
  });

  test('a job that fits beside the reservation may run past it', () => {
    // 16-core node: 6 cores run until t=100; big12 needs 12: at t=100, 16 - 12 = 4 are left over.
    const n16 = [node('a', { cores: 16, allocated: { cores: 6, memoryBytes: 6 * GiB, gpus: 0 } })];
    const run6 = [{ id: 'r', node: 'a', cores: 6, memoryBytes: 6 * GiB, gpus: 0, expectedEnd: 100 }];
    const big12 = job('big12', { cores: 12, memoryBytes: 8 * GiB });
    const r = run(n16, [big12, long, job('long2', { cores: 4, memoryBytes: GiB, timeLimit: 500 })], { running: run6 });
    // At t=100: 16 free - 12 for big12 = 4 left beyond it: long (2) fits, then long2 (4) not.
    assert.deepEqual(r.reservations, [{ job: 'big12', node: 'a', start: 100 }]);
    assert.deepEqual(
      r.placements.map((p) => [p.job, p.backfilled]),
      [['long', false]],
    );
    assert.deepEqual(pendingOf(r, 'long2').status.reasons, { 'reserved for big12 from t=100': 1 });
  });

  test('the reservation goes to the node where the job fits soonest', () => {
    const ns2 = [node('a', { allocated: { cores: 8, memoryBytes: 0, gpus: 0 } }), node('b', { allocated: { cores: 8, memoryBytes: 0, gpus: 0 } })];
    const run2 = [
      { id: 'ra', node: 'a', cores: 8, memoryBytes: 0, gpus: 0, expectedEnd: 300 },
      { id: 'rb', node: 'b', cores: 8, memoryBytes: 0, gpus: 0, expectedEnd: 200 },
    ];
    const r = run(ns2, [job('w', { cores: 4 })], { running: run2 });
    assert.deepEqual(r.reservations, [{ job: 'w', node: 'b', start: 200 }]);
  });

  test('no reservation when no running job says when it ends', () => {
    const r = run(ns, [big], { running: [{ ...running[0]!, expectedEnd: Infinity }] });
    assert.deepEqual(r.reservations, []);
    assert.equal(pendingOf(r, 'big').reservation, undefined);
  });
});

describe('determinism and input checks', () => {
  test('the same placements whatever the order of nodes and jobs in the input', () => {
    const ns = [...nodes(6), ...nodes(3, { gpus: { count: 2, models: ['A100'] } }, 'g')];
    const jobs = Array.from({ length: 40 }, (_, k) => job(`j${k}`, { cores: 1 + (k % 3), gpus: k % 7 === 0 ? 1 : 0, user: k % 2 ? 'alice' : 'bob', timeLimit: 100 * (k % 5) + 60 }));
    const a = run(ns, jobs);
    const b = run([...ns].reverse(), [...jobs].reverse());
    assert.deepEqual(a.placements, b.placements);
    assert.deepEqual(a.pending, b.pending);
    assert.deepEqual(a, run(ns, jobs));
  });

  test('invalid cluster input throws PLAN_BAD_CLUSTER with a hint', () => {
    const bad: [string, () => unknown][] = [
      ['duplicate node', () => run([node('a'), node('a')], [])],
      ['negative cores', () => run([node('a', { cores: -1 })], [])],
      ['running on an unknown node', () => run([node('a')], [], { running: [{ id: 'r', node: 'zz', cores: 1, memoryBytes: 0, gpus: 0, expectedEnd: 1 }] })],
      ['negative usage', () => run([node('a')], [], { usage: { alice: -5 } })],
      ['limit 0', () => run([node('a')], [], { options: { limit: 0 } })],
    ];
    for (const [what, f] of bad) {
      assert.throws(f, (e: unknown) => isWarrenError(e) && e.code === 'PLAN_BAD_CLUSTER' && e.exitCode === 2 && !!e.hint, what);
    }
  });

  test('an invalid job is pending with an error; a duplicate id is refused, the first one runs', () => {
    const odd = job('odd', { constraints: 7 as unknown as string[] });
    const r = run([node('a')], [job('x'), job('x'), job('neg', { cores: 0 }), job('frac', { gpus: 0.5 }), odd]);
    assert.deepEqual(where(r), { x: 'a' });
    assert.deepEqual(
      r.pending.map((p) => [p.job, p.status.code, p.status.errorCode]),
      [
        ['x', 'error', 'PLAN_BAD_JOB'],
        ['neg', 'error', 'PLAN_BAD_JOB'],
        ['frac', 'error', 'PLAN_BAD_JOB'],
        ['odd', 'error', 'PLAN_BAD_JOB'],
      ],
    );
    assert.match(r.pending[1]!.status.message, /cores is 0/);
  });

  test('an empty cluster: every job pending, "no nodes in the cluster"', () => {
    const r = run([], [job('x')]);
    assert.equal(pendingOf(r, 'x').status.message, 'no nodes in the cluster');
    assert.equal(pendingOf(r, 'x').status.nodesConsidered, 0);
  });
});
