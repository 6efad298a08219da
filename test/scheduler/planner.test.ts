// Hand-computed planning cases: data gravity, moving data to a GPU site, the cheapest plan
// that meets a deadline, the fastest within a budget, cloud boot and billing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { heft, lowerBound, parsePlatform, planWorkflow, replanWorkflow } from '../../src/scheduler/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { parseWorkflowText } from '../../src/workflow/index.js';
import { workflow } from './fixtures.js';

const close = (a: number, b: number, what: string, eps = 1e-6): void => assert.ok(Math.abs(a - b) <= eps, `${what}: ${a} != ${b}`);

describe('data gravity', () => {
  // 1 TB at A. B has cores twice as fast, but moving 1 TB over 10 Gbps (1.25 GB/s) takes 800 s.
  const platform = parsePlatform(
    `
sites:
  A: { nodes: 2, cores: 8, speed: 1, price: 0 }
  B: { nodes: 2, cores: 8, speed: 2, price: 0 }
links:
  - { from: A, to: B, bandwidth: 10Gbps, latency: 0s }
data:
  default: A
  locations: { "s3://big/": A }
`,
    'gravity.yaml',
  );
  const wf = workflow({ analyze: { est: 60, inputs: ['s3://big/genome'] } }, { 's3://big/genome': 1e12 });

  test('a one-minute job on a 1 TB dataset runs where the data is', () => {
    const plan = planWorkflow(wf, platform);
    assert.equal(plan.jobs.length, 1);
    const j = plan.jobs[0]!;
    assert.equal(j.site, 'A');
    assert.equal(j.instanceType, null);
    close(j.start, 0, 'start');
    close(j.end, 60, 'end');
    assert.deepEqual(plan.transfers, []);
    close(plan.makespan, 60, 'makespan');
    assert.match(j.reason, /data gravity: 100% of 931\.3GiB input already at A/);
    // B: 800 s to move the data + 30 s of work = 830 s; 770 s later than at A.
    assert.match(j.reason, /B: would finish 12m50s later \(its inputs arrive 13m20s later\)/);
  });

  test('the same job with a small input goes to the faster site', () => {
    const small = workflow({ analyze: { est: 60, inputs: ['s3://big/genome'] } }, { 's3://big/genome': 1.25e9 });
    const plan = planWorkflow(small, platform);
    const j = plan.jobs[0]!;
    assert.equal(j.site, 'B');
    close(j.start, 1, 'start (1 s transfer)');
    close(j.end, 31, 'end');
    assert.deepEqual(plan.transfers, [{ file: 's3://big/genome', from: 'A', to: 'B', start: 0, end: 1, bytes: 1.25e9, cost: 0 }]);
  });
});

describe('GPU jobs', () => {
  // 1 GB at A (no GPUs); G has GPUs. Link: 8 Gbps = 1e9 B/s, 0.5 s latency, 0.05 per GB.
  const platform = parsePlatform(
    `
sites:
  A: { nodes: 4, cores: 16, price: 0 }
  G: { nodes: 1, cores: 8, gpus: 2, speed: 1, price: 1 }
links:
  - { from: A, to: G, bandwidth: 8Gbps, latency: 500ms, price-per-gb: 0.05 }
data: { default: A }
`,
    'gpu.yaml',
  );

  test('a small dataset needed by a GPU job moves to the GPU site', () => {
    const wf = workflow({ train: { est: 100, cores: 4, gpus: 1, inputs: ['images.tar'] } }, { 'images.tar': 1e9 });
    const plan = planWorkflow(wf, platform);
    const j = plan.jobs[0]!;
    assert.equal(j.site, 'G');
    close(j.start, 1.5, 'start');
    close(j.end, 101.5, 'end');
    assert.equal(plan.transfers.length, 1);
    const t = plan.transfers[0]!;
    assert.deepEqual([t.file, t.from, t.to, t.bytes], ['images.tar', 'A', 'G', 1e9]);
    close(t.start, 0, 'transfer start');
    close(t.end, 1.5, 'transfer end');
    close(t.cost, 0.05, 'egress');
    // 4 cores x 100 s at 1 per core-hour, plus 0.05 of egress.
    close(j.cost, 400 / 3600, 'compute cost');
    close(plan.cost, 400 / 3600 + 0.05, 'total cost');
    assert.match(j.reason, /A ruled out: needs 1 GPU, a node has 0/);
  });

  test('two GPU jobs share the two GPUs; a third waits for one', () => {
    const wf = workflow({
      g1: { est: 100, cores: 2, gpus: 1 },
      g2: { est: 100, cores: 2, gpus: 1 },
      g3: { est: 50, cores: 2, gpus: 1 },
    });
    const plan = planWorkflow(wf, platform);
    const by = Object.fromEntries(plan.jobs.map((j) => [j.id, j]));
    assert.equal(by.g1!.site, 'G');
    close(by.g1!.start, 0, 'g1');
    close(by.g2!.start, 0, 'g2');
    close(by.g3!.start, 100, 'g3 waits');
    close(plan.makespan, 150, 'makespan');
    assert.match(by.g3!.reason, /availability: waits 1m40s for free capacity/);
  });
});

describe('cost against time', () => {
  // S: slow and cheap (100 s per job, 0.1 per core-hour); F: fast and dear (50 s, 1 per core-hour).
  const platform = parsePlatform(
    `
currency: EUR
sites:
  S: { nodes: 1, cores: 4, speed: 1, price: 0.1 }
  F: { nodes: 1, cores: 4, speed: 2, price: 1.0 }
links:
  - { from: S, to: F, bandwidth: 1Gbps, latency: 0s }
data: { default: S }
`,
    'cost.yaml',
  );
  const chain = (policy = {}) => workflow({ one: { est: 100 }, two: { est: 100, after: ['one'] } }, {}, policy);
  const costS = 100 / 3600 * 0.1;
  const costF = 50 / 3600 * 1.0;

  test('by default: the fastest plan (both on F, 100 s)', () => {
    const plan = planWorkflow(chain(), platform);
    assert.deepEqual(plan.jobs.map((j) => j.site), ['F', 'F']);
    close(plan.makespan, 100, 'makespan');
    close(plan.cost, 2 * costF, 'cost');
    assert.equal(plan.currency, 'EUR');
    assert.equal(plan.objective, 'fastest');
  });

  test('deadline 160 s: the cheapest plan that meets it (one job on each site, 150 s)', () => {
    const plan = planWorkflow(chain({ deadlineSec: 160 }), platform);
    assert.equal(plan.deadlineMet, true);
    close(plan.makespan, 150, 'makespan');
    close(plan.cost, costS + costF, 'cost');
    assert.deepEqual(plan.jobs.map((j) => j.site).sort(), ['F', 'S']);
    const onS = plan.jobs.find((j) => j.site === 'S')!;
    assert.match(onS.reason, /F: would finish 50s earlier but cost 0\.01 EUR more, and this one keeps the plan on time \(latest finish 1m50s\)/);
    const onF = plan.jobs.find((j) => j.site === 'F')!;
    assert.match(onF.reason, /S: would finish 50s later \(slower cores\) though 0\.01 EUR cheaper/);
  });

  test('deadline 250 s: everything on the cheap site (200 s)', () => {
    const plan = planWorkflow(chain({ deadlineSec: 250 }), platform);
    assert.equal(plan.deadlineMet, true);
    assert.deepEqual(plan.jobs.map((j) => j.site), ['S', 'S']);
    close(plan.makespan, 200, 'makespan');
    close(plan.cost, 2 * costS, 'cost');
  });

  test('deadline 90 s cannot be met: says so with the earliest finish and its cost', () => {
    const plan = planWorkflow(chain({ deadlineSec: 90 }), platform);
    assert.equal(plan.deadlineMet, false);
    close(plan.makespan, 100, 'earliest finish');
    close(plan.cost, 2 * costF, 'its cost');
    assert.match(plan.notes.join('\n'), /deadline \(1m30s\) cannot be met: the earliest feasible finish is 1m40s \(100\.0 s\) at a cost of 0\.03 EUR/);
  });

  test('budget: the fastest plan within it', () => {
    // Between both-on-S (0.0056) and both-on-F (0.0278): one on each (0.0167, 150 s).
    const plan = planWorkflow(chain({ budget: 0.02 }), platform);
    assert.equal(plan.objective, 'budget');
    assert.equal(plan.budgetMet, true);
    close(plan.makespan, 150, 'makespan');
    close(plan.cost, costS + costF, 'cost');
    const tight = planWorkflow(chain({ budget: 0.006 }), platform);
    assert.equal(tight.budgetMet, true);
    close(tight.makespan, 200, 'makespan');
    const none = planWorkflow(chain({ budget: 0.001 }), platform);
    assert.equal(none.budgetMet, false);
    close(none.cost, 2 * costS, 'cheapest');
    assert.match(none.notes[0]!, /budget \(0\.001 EUR\) cannot be met: the cheapest plan found costs 0\.0056 EUR/);
  });

  test('options override the policy', () => {
    const plan = planWorkflow(chain({ deadlineSec: 90 }), platform, { deadlineSec: 250 });
    assert.equal(plan.deadlineMet, true);
    close(plan.makespan, 200, 'makespan');
  });
});

describe('cloud instances', () => {
  // One region, one instance type: 4 cores, boots in 60 s, 3.6 per hour billed per second with
  // a 60 s minimum. No cluster: the plan has to start instances.
  const platform = parsePlatform(
    `
sites:
  home: { nodes: 1, cores: 1, speed: 0.1, price: 0 }
  cloud:
    instance-types:
      m4: { cores: 4, speed: 1, price: 3.6, max: 2, boot: 60s }
    billing: { granularity: 1s, minimum: 60s }
links:
  - { from: home, to: cloud, bandwidth: 1GB/s, latency: 0s }
data: { default: home }
`,
    'cloud.yaml',
  );

  test('boot time, instance reuse and per-second billing', () => {
    // Four 4-core jobs of 100 s: at home (speed 0.1, 1 core) impossible (4 cores); in the cloud
    // two instances start at once (ready at 60 s), each runs two jobs back to back.
    const wf = workflow({ a: { est: 100, cores: 4 }, b: { est: 100, cores: 4 }, c: { est: 100, cores: 4 }, d: { est: 100, cores: 4 } });
    const plan = planWorkflow(wf, platform);
    assert.equal(plan.instances.length, 2);
    for (const it of plan.instances) {
      close(it.bootStart, 0, 'boot start');
      close(it.readyAt, 60, 'ready');
      close(it.end, 260, 'end');
      close(it.cost, 260 * 3.6 / 3600, 'instance cost');
    }
    close(plan.makespan, 260, 'makespan');
    close(plan.cost, 2 * 0.26, 'cost');
    for (const j of plan.jobs) {
      assert.equal(j.site, 'cloud');
      assert.equal(j.instanceType, 'm4');
      assert.match(j.reason, /home ruled out: needs 4 cores, a node has 1/);
    }
  });

  test('the minimum billing applies to a short job', () => {
    const plan = planWorkflow(workflow({ a: { est: 1, cores: 4 } }), platform);
    close(plan.makespan, 61, 'makespan');
    close(plan.cost, 61 * 3.6 / 3600, 'cost');
    const short = planWorkflow(workflow({ a: { est: 0, cores: 2 } }), platform);
    close(short.cost, 60 * 3.6 / 3600, 'a 60 s boot is billed');
  });

  test('hourly billing and spot prices', () => {
    const hourly = parsePlatform(
      `
sites:
  cloud:
    instance-types:
      m4: { cores: 4, speed: 1, price: 2, spot-price: 0.5, max: 1, boot: 30s }
    billing: { granularity: 1h, minimum: 0s }
data: { default: cloud }
`,
      'hourly.yaml',
    );
    const wf = workflow({ a: { est: 100 } });
    const onDemand = planWorkflow(wf, hourly);
    close(onDemand.makespan, 130, 'boot + run');
    close(onDemand.cost, 2, 'a whole hour');
    const spot = planWorkflow(wf, hourly, { spot: true });
    close(spot.cost, 0.5, 'a whole hour at the spot price');
    const long = planWorkflow(workflow({ a: { est: 3600 } }), hourly);
    close(long.cost, 4, '3630 s is two started hours');
  });

  test('HEFT and the lower bound on the same model', () => {
    const wf = workflow({ a: { est: 100, cores: 4 }, b: { est: 50, cores: 1, after: ['a'] } });
    const h = heft(wf, platform);
    const p = planWorkflow(wf, platform);
    assert.ok(p.makespan <= h.makespan + 1e-9);
    // a: only in the cloud, after the 60 s boot: 160; b: there too (50 s at speed 1): 210.
    close(lowerBound(wf, platform), 210, 'lower bound: critical path on the fastest offerings, with boot');
    close(p.makespan, 210, 'the plan reaches it: both on one instance');
    assert.equal(p.instances.length, 1);
    // Ten 100 s jobs: home does 0.1 core-s/s from 0, the two instances 8 from 60 s on.
    const ten = workflow(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`t${i}`, { est: 100 }])));
    close(lowerBound(ten, platform), 60 + (1000 - 6) / 8.1, 'area bound with boot times');
    assert.ok(planWorkflow(ten, platform).makespan >= lowerBound(ten, platform));
  });
});

describe('estimates', () => {
  const platform = parsePlatform('sites:\n  A: { nodes: 1, cores: 2 }\ndata: { default: A }\n', 'p.yaml');
  test('lower bound: the total work over all cores when that is more than the critical path', () => {
    // 10 independent 100 s jobs on 2 cores: at least 500 s.
    const jobs = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`j${i}`, { est: 100 }]));
    close(lowerBound(workflow(jobs), platform), 500, 'area bound');
    close(planWorkflow(workflow(jobs), platform).makespan, 500, 'plan');
  });

  test('history estimates win over `estimate`, the default covers jobs without one', () => {
    const wf = workflow({ a: { est: 10 }, b: {} });
    const p1 = planWorkflow(wf, platform);
    close(p1.makespan, 60, 'default 60 s');
    const p2 = planWorkflow(wf, platform, { estimates: { a: 30 }, defaultEstimateSec: 5 });
    const by = Object.fromEntries(p2.jobs.map((j) => [j.id, j]));
    close(by.a!.end - by.a!.start, 30, 'history');
    close(by.b!.end - by.b!.start, 5, 'default');
  });

  test('task arrays become one planned job per task', () => {
    const wf = workflow({ a: { est: 10 } });
    wf.jobs.a!.taskArray = { start: 1, end: 3, concurrency: 0 };
    const plan = planWorkflow(wf, platform);
    assert.deepEqual(plan.jobs.map((j) => j.id), ['a[1]', 'a[2]', 'a[3]']);
    close(plan.makespan, 20, 'two cores: 2 + 1 tasks');
  });

  test('an empty workflow has an empty plan', () => {
    const plan = planWorkflow(workflow({}), platform);
    assert.deepEqual([plan.makespan, plan.cost, plan.jobs.length], [0, 0, 0]);
  });
});

describe('re-planning a running workflow', () => {
  const text = (fNodes: number) => `
sites:
  S: { nodes: 1, cores: 4, speed: 1, price: 0 }
  F: { nodes: ${fNodes}, cores: 4, speed: 2, price: 0 }
links:
  - { from: S, to: F, bandwidth: 1GB/s, latency: 0s }
data: { default: S }
`;
  // a -> b -> c, each writing 1 GB (1 s to move); F is twice as fast.
  const wf = workflow(
    { a: { est: 100, outputs: ['x'] }, b: { est: 100, inputs: ['x'], outputs: ['y'], after: ['a'] }, c: { est: 100, inputs: ['y'], after: ['b'] } },
    { x: 1e9, y: 1e9 },
  );

  test('first plan: everything on the fast site', () => {
    const plan = planWorkflow(wf, parsePlatform(text(1), 'p.yaml'));
    assert.deepEqual(plan.jobs.map((j) => [j.id, j.site, j.start, j.end]), [['a', 'F', 0, 50], ['b', 'F', 50, 100], ['c', 'F', 100, 150]]);
  });

  test('b runs longer than estimated: c moves later, a and b keep their place', () => {
    const plan = replanWorkflow(wf, parsePlatform(text(1), 'p.yaml'), {
      now: 120,
      jobs: { a: { site: 'F', start: 0, end: 50 }, b: { site: 'F', start: 50, end: 180 } },
    });
    const by = Object.fromEntries(plan.jobs.map((j) => [j.id, j]));
    assert.deepEqual([by.a!.start, by.a!.end, by.b!.start, by.b!.end], [0, 50, 50, 180]);
    assert.equal(by.c!.site, 'F');
    close(by.c!.start, 180, 'c after b');
    close(plan.makespan, 230, 'makespan');
    assert.match(by.b!.reason, /already started/);
  });

  test('the fast site slowed down: the rest moves to the other site, with its data', () => {
    // F keeps the data a wrote but is now much slower (most of it is busy with other work).
    const platform = parsePlatform(text(1).replace('speed: 2', 'speed: 0.1'), 'p.yaml');
    const plan = replanWorkflow(wf, platform, { now: 60, jobs: { a: { site: 'F', start: 0, end: 50 } } });
    const by = Object.fromEntries(plan.jobs.map((j) => [j.id, j]));
    assert.equal(by.b!.site, 'S');
    close(by.b!.start, 61, 'x moves from F at now (60) + 1 s');
    close(by.b!.end, 161, 'b ends');
    assert.equal(by.c!.site, 'S');
    close(by.c!.start, 161, 'c right after b, no transfer');
    assert.deepEqual(plan.transfers.map((t) => [t.file, t.from, t.to, t.start, t.end]), [['x', 'F', 'S', 60, 61]]);
  });

  test('a site that ran a job may lose what that job needed', () => {
    // The GPU job ran on G; G now has no GPUs left for us. The rest still plans.
    const gpuWf = workflow({ train: { est: 50, gpus: 1, outputs: ['m'] }, report: { est: 10, inputs: ['m'], after: ['train'] } }, { m: 1e6 });
    const before = parsePlatform('sites:\n  A: {nodes: 1, cores: 4}\n  G: {nodes: 1, cores: 4, gpus: 1}\nlinks:\n  - {from: A, to: G, bandwidth: 1GB/s}\ndata: {default: A}\n', 'p.yaml');
    const after = parsePlatform('sites:\n  A: {nodes: 1, cores: 4}\n  G: {nodes: 1, cores: 4, gpus: 0}\nlinks:\n  - {from: A, to: G, bandwidth: 1GB/s}\ndata: {default: A}\n', 'p.yaml');
    const first = planWorkflow(gpuWf, before);
    assert.equal(first.jobs[0]!.site, 'G');
    assert.throws(() => planWorkflow(gpuWf, after), /no site can run it/);
    const plan = replanWorkflow(gpuWf, after, { now: 50, jobs: { train: { site: 'G', start: 0, end: 50 } } });
    const report = plan.jobs.find((j) => j.id === 'report')!;
    assert.ok(report.start >= 50);
    close(plan.makespan, report.end, 'makespan');
  });

  test('bad progress', () => {
    const platform = parsePlatform(text(1), 'p.yaml');
    const bad = (progress: Parameters<typeof replanWorkflow>[2], code: string, re: RegExp) =>
      assert.throws(() => replanWorkflow(wf, platform, progress), (e: unknown) => isWarrenError(e) && e.code === code && re.test(e.message) && e.exitCode === 2);
    bad({ now: 10, jobs: { zz: { site: 'F', start: 0, end: 1 } } }, 'PLAN_BAD_PROGRESS', /unknown job "zz"/);
    bad({ now: 10, jobs: { a: { site: 'G', start: 0, end: 1 } } }, 'PLAN_UNKNOWN_SITE', /job "a" ran at G/);
    bad({ now: 10, jobs: { b: { site: 'F', start: 0, end: 1 } } }, 'PLAN_BAD_PROGRESS', /job "b" started but its requirement "a" did not/);
    bad({ now: 10, jobs: { a: { site: 'F', start: 5, end: 1 } } }, 'PLAN_BAD_PROGRESS', /not a time interval/);
    bad({ now: -1, jobs: {} }, 'PLAN_BAD_PROGRESS', /progress\.now -1/);
  });
});

describe('Fuzzfile workflows', () => {
  // The reference genome is in a cloud bucket; its size is known from `files` only for
  // WfFormat, so here only the link latency counts: the job goes where it is fastest.
  const platform = parsePlatform(
    `
sites:
  lab: { nodes: 1, cores: 8, speed: 1, price: 0 }
  cloud:
    instance-types:
      big: { cores: 32, speed: 2, price: 3.6, max: 1, boot: 0s }
links:
  - { from: lab, to: cloud, bandwidth: 1Gbps, latency: 50ms }
data:
  default: lab
  locations: { "s3://genomes/": cloud }
`,
    'fz.yaml',
  );
  const text = (policy: string) => `version: v1
name: align
${policy}
volumes:
  ref:
    reference: volume://user/ephemeral
    ingress:
      - source: {uri: s3://genomes/hg38.fa}
        destination: {uri: file://hg38.fa}
jobs:
  index:
    command: [bwa, index, /ref/hg38.fa]
    estimate: 10m
    resource: {cpu: {cores: 8}}
    mounts:
      ref: {location: /ref}
  align:
    requires: [index]
    command: [bwa, mem, /ref/hg38.fa]
    estimate: 20m
    resource: {cpu: {cores: 8}}
`;

  test('volume ingress URIs are data locations; the policy deadline is the objective', () => {
    const { workflow: wf, diagnostics } = parseWorkflowText(text(''), 'align.yaml');
    assert.ok(wf, JSON.stringify(diagnostics));
    const fast = planWorkflow(wf, platform);
    const by = Object.fromEntries(fast.jobs.map((j) => [j.id, j]));
    assert.equal(by.index!.site, 'cloud');
    close(by.index!.start, 0, 'the genome is already in the cloud');
    close(by.index!.end, 300, 'index: 600 s at speed 2');
    assert.equal(by.align!.site, 'cloud');
    close(fast.makespan, 900, 'makespan');
    assert.match(by.index!.reason, /lab: would finish 5m00s later/);

    // With a deadline of one hour: the free lab cluster, the genome moved there (latency only).
    const slow = parseWorkflowText(text('policy: {deadline: 1h}'), 'align.yaml').workflow!;
    const plan = planWorkflow(slow, platform);
    assert.equal(plan.deadlineMet, true);
    assert.deepEqual(plan.jobs.map((j) => j.site), ['lab', 'lab']);
    close(plan.cost, 0, 'free');
    assert.deepEqual(plan.transfers.map((t) => [t.file, t.from, t.to]), [['s3://genomes/hg38.fa', 'cloud', 'lab']]);
    close(plan.makespan, 0.05 + 1800, 'makespan');
  });
});
