// Property tests of the cluster scheduler on random clusters, running jobs and queues: it never
// over-allocates a node, places jobs only where every filter allows, accounts for every job
// once, gives every pending job reasons that add up to the nodes considered, keeps every
// reservation's room free at its start (EASY backfill never delays it), and is deterministic
// whatever the order of its input.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { constraintHolds, parseConstraint, scheduleCluster } from '../../src/scheduler/index.js';
import type { ClusterNode, PendingJob, RunningJob, ScheduleInput } from '../../src/scheduler/index.js';
import { GiB } from './cluster-fixtures.js';

const USERS = ['alice', 'bob', 'carol'];
const CONSTRAINTS = ['zone=z1', 'zone!=z2', 'zone in (z1, z2)', '!zone', 'ib'];

const nodeArb = fc.record({
  cores: fc.integer({ min: 1, max: 16 }),
  mem: fc.integer({ min: 1, max: 64 }),
  gpus: fc.integer({ min: 0, max: 4 }),
  model: fc.constantFrom('A100', 'H100'),
  zone: fc.constantFrom('z1', 'z2', null),
  ib: fc.boolean(),
  drained: fc.constantFrom(false, false, false, true),
  arm: fc.boolean(),
  users: fc.option(fc.subarray(USERS), { nil: undefined }),
  images: fc.subarray(['i1', 'i2', 'i3']),
  data: fc.subarray(['d1', 'd2']),
  running: fc.array(fc.record({ share: fc.double({ min: 0, max: 0.5, noNaN: true }), end: fc.option(fc.integer({ min: 0, max: 500 }), { nil: null }) }), { maxLength: 3 }),
});

const jobArb = fc.record({
  user: fc.constantFrom(...USERS),
  cores: fc.integer({ min: 1, max: 8 }),
  mem: fc.integer({ min: 0, max: 16 }),
  gpus: fc.constantFrom(0, 0, 0, 1, 2),
  model: fc.option(fc.constantFrom('A100', 'H100'), { nil: undefined }),
  constraints: fc.subarray(CONSTRAINTS, { maxLength: 2 }),
  exclusive: fc.constantFrom(false, false, false, true),
  image: fc.option(fc.record({ arm: fc.boolean(), digest: fc.constantFrom('i1', 'i2', 'i3', 'i9') }), { nil: undefined }),
  data: fc.subarray(['d1', 'd2', 'd3']),
  timeLimit: fc.option(fc.integer({ min: 1, max: 400 }), { nil: undefined }),
  priority: fc.constantFrom(0, 0, 1),
});

const inputArb = fc
  .record({
    now: fc.integer({ min: 0, max: 100 }),
    nodes: fc.array(nodeArb, { maxLength: 8 }),
    jobs: fc.array(jobArb, { maxLength: 25 }),
    strategy: fc.constantFrom('binpack' as const, 'spread' as const),
    limit: fc.constantFrom<'log2' | number>('log2', 1, 3, Infinity),
    reservations: fc.integer({ min: 0, max: 3 }),
    usage: fc.record({ alice: fc.nat(10000), bob: fc.nat(10000) }),
  })
  .map((g): ScheduleInput => {
    const running: RunningJob[] = [];
    const nodes: ClusterNode[] = g.nodes.map((x, i) => {
      const name = `n${i}`;
      const alloc = { cores: 0, memoryBytes: 0, gpus: 0 };
      x.running.forEach((r, k) => {
        // A running job holds at least one core.
        const job = { id: `${name}r${k}`, node: name, cores: Math.max(1, Math.floor(x.cores * r.share)), memoryBytes: Math.floor(x.mem * r.share) * GiB, gpus: Math.floor(x.gpus * r.share), expectedEnd: r.end === null ? Infinity : g.now + r.end - 50 };
        if (alloc.cores + job.cores > x.cores) return;
        alloc.cores += job.cores;
        alloc.memoryBytes += job.memoryBytes;
        alloc.gpus += job.gpus;
        running.push(job);
      });
      return {
        name,
        cores: x.cores,
        memoryBytes: x.mem * GiB,
        gpus: { count: x.gpus, models: x.gpus > 0 ? [x.model] : [] },
        labels: { ...(x.zone ? { zone: x.zone } : {}), ...(x.ib ? { ib: 'hdr' } : {}) },
        drained: x.drained,
        platform: x.arm ? 'linux/arm64' : 'linux/amd64',
        allocated: alloc,
        cachedImages: x.images,
        dataVolumes: x.data,
        ...(x.users ? { unixUsers: x.users } : {}),
      };
    });
    const jobs: PendingJob[] = g.jobs.map((j, k) => ({
      id: `j${k}`,
      user: j.user,
      cores: j.cores,
      memoryBytes: j.mem * GiB,
      gpus: j.gpus,
      ...(j.model && j.gpus > 0 ? { gpuModel: j.model } : {}),
      constraints: j.constraints,
      exclusive: j.exclusive,
      ...(j.image ? { image: { platform: j.image.arm ? 'linux/arm64' : 'linux/amd64', digest: j.image.digest } } : {}),
      dataVolumes: j.data,
      submitOrder: k % 7,
      priority: j.priority,
      ...(j.timeLimit !== undefined ? { timeLimit: j.timeLimit } : {}),
    }));
    return { now: g.now, nodes, jobs, running, usage: g.usage, options: { strategy: g.strategy, limit: g.limit, reservations: g.reservations } };
  });

function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const a = [...xs];
  let s = seed >>> 0 || 1;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const k = s % (i + 1);
    [a[i], a[k]] = [a[k]!, a[i]!];
  }
  return a;
}

describe('cluster scheduler properties', () => {
  test('never over-allocates, respects every filter, accounts for every job, reasons add up, reservations hold, deterministic', () => {
    fc.assert(
      fc.property(inputArb, fc.nat(), (input, seed) => {
        const r = scheduleCluster(input);
        const byName = new Map(input.nodes.map((n) => [n.name, n]));
        const jobs = new Map(input.jobs.map((j) => [j.id, j]));

        // Every job exactly once: placed or pending.
        const seen = [...r.placements.map((p) => p.job), ...r.pending.map((p) => p.job)].sort();
        assert.deepEqual(seen, [...jobs.keys()].sort());

        // Never more than a node has; exclusive jobs alone on a node that was empty.
        for (const n of input.nodes) {
          const on = r.placements.filter((p) => p.node === n.name);
          const sum = (f: (p: (typeof on)[number]) => number): number => on.reduce((a, p) => a + f(p), 0);
          assert.ok(n.allocated.cores + sum((p) => p.cores) <= n.cores, `cores of ${n.name}`);
          assert.ok(n.allocated.memoryBytes + sum((p) => p.memoryBytes) <= n.memoryBytes, `memory of ${n.name}`);
          assert.ok(n.allocated.gpus + sum((p) => p.gpus) <= n.gpus.count, `GPUs of ${n.name}`);
          if (on.some((p) => jobs.get(p.job)!.exclusive)) {
            assert.equal(on.length, 1, `exclusive job alone on ${n.name}`);
            assert.deepEqual(n.allocated, { cores: 0, memoryBytes: 0, gpus: 0 });
          }
        }

        // Placed only where every node filter allows.
        for (const p of r.placements) {
          const n = byName.get(p.node)!;
          const j = jobs.get(p.job)!;
          assert.equal(n.drained, false);
          assert.ok(n.cores >= j.cores && n.memoryBytes >= j.memoryBytes && n.gpus.count >= j.gpus);
          for (const c of j.constraints ?? []) assert.ok(constraintHolds(parseConstraint(c), n.labels), `${c} on ${n.name}`);
          if (j.gpuModel) assert.ok(n.gpus.models.includes(j.gpuModel));
          if (j.image) assert.equal(n.platform, j.image.platform);
          if (n.unixUsers) assert.ok(n.unixUsers.includes(j.user));
        }

        // Reasons add up to the nodes considered (all of them) for every unschedulable job.
        for (const p of r.pending) {
          const total = Object.values(p.status.reasons).reduce((a, b) => a + b, 0);
          assert.equal(total, p.status.nodesConsidered);
          assert.equal(p.status.nodesConsidered, p.status.code === 'error' ? 0 : input.nodes.length);
          assert.ok(p.status.message.length > 0);
        }

        // Every reservation's room is free at its start: what still runs then (running jobs
        // and this pass's placements that end after it) plus the reserved job fits the node.
        for (const res of r.reservations) {
          const n = byName.get(res.node)!;
          const j = jobs.get(res.job)!;
          const live = [...(input.running ?? []).filter((x) => x.node === n.name), ...r.placements.filter((p) => p.node === n.name)].filter((x) => x.expectedEnd > res.start);
          const use = (f: (x: (typeof live)[number]) => number): number => live.reduce((a, x) => a + f(x), 0);
          if (j.exclusive) {
            assert.equal(live.length, 0, `node ${n.name} empty at t=${res.start} for exclusive ${j.id}`);
          } else {
            assert.ok(use((x) => x.cores) + j.cores <= n.cores, `cores of ${n.name} at t=${res.start}`);
            assert.ok(use((x) => x.memoryBytes) + j.memoryBytes <= n.memoryBytes, `memory of ${n.name} at t=${res.start}`);
            assert.ok(use((x) => x.gpus) + j.gpus <= n.gpus.count, `GPUs of ${n.name} at t=${res.start}`);
          }
          assert.ok((input.options?.reservations ?? 1) >= r.reservations.length);
        }

        // Deterministic, whatever the order of nodes, jobs and running jobs.
        const again = scheduleCluster({ ...input, nodes: shuffle(input.nodes, seed), jobs: shuffle(input.jobs, seed + 1), running: shuffle(input.running ?? [], seed + 2) });
        assert.deepEqual(again, r);
      }),
      { numRuns: 300, seed: 20261201 },
    );
  });
});
