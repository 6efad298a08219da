// Property tests on random DAGs and platforms: every plan respects dependencies (a job starts
// after its inputs have arrived), capacity (never more cores or GPUs in use at a site or on an
// instance than it has), the deadline when one is feasible, and adds up its costs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { heft, lowerBound, parsePlatform, planWorkflow, replanWorkflow } from '../../src/scheduler/index.js';
import type { JobProgress } from '../../src/scheduler/index.js';
import type { Plan, Platform } from '../../src/scheduler/index.js';
import type { Workflow } from '../../src/workflow/index.js';
import { workflow, type J } from './fixtures.js';

const EPS = 1e-6;

const siteArb = fc.record({
  cloud: fc.boolean(),
  nodes: fc.integer({ min: 1, max: 3 }),
  cores: fc.integer({ min: 8, max: 24 }),
  gpus: fc.integer({ min: 0, max: 2 }),
  speed: fc.double({ min: 0.5, max: 2, noNaN: true }),
  price: fc.double({ min: 0, max: 3, noNaN: true }),
  boot: fc.integer({ min: 0, max: 120 }),
  granularity: fc.constantFrom(1, 60, 3600),
});

const platformArb = fc
  .record({
    sites: fc.array(siteArb, { minLength: 1, maxLength: 4 }),
    links: fc.array(fc.record({ gbps: fc.integer({ min: 1, max: 100 }), ms: fc.integer({ min: 0, max: 200 }), price: fc.double({ min: 0, max: 0.2, noNaN: true }) }), { minLength: 3, maxLength: 3 }),
    defaultSite: fc.nat(),
    inputSite: fc.nat(),
  })
  .map(({ sites, links, defaultSite, inputSite }): Platform => {
    // Site s0 always has a GPU so that every generated job fits somewhere.
    const doc = {
      sites: Object.fromEntries(
        sites.map((s, i) => [
          `s${i}`,
          s.cloud
            ? {
                'instance-types': { std: { cores: s.cores, gpus: i === 0 ? Math.max(1, s.gpus) : s.gpus, speed: s.speed, price: s.price, max: s.nodes, boot: `${s.boot}s` } },
                billing: { granularity: `${s.granularity}s`, minimum: '60s' },
              }
            : { nodes: s.nodes, cores: s.cores, gpus: i === 0 ? Math.max(1, s.gpus) : s.gpus, speed: s.speed, price: s.price / 10 },
        ]),
      ),
      links: sites.slice(1).map((_, i) => ({ from: `s${i}`, to: `s${i + 1}`, bandwidth: `${links[i % 3]!.gbps}Gbps`, latency: `${links[i % 3]!.ms}ms`, 'price-per-gb': links[i % 3]!.price })),
      data: { default: `s${defaultSite % sites.length}`, locations: { 'remote/': `s${inputSite % sites.length}` } },
    };
    return parsePlatform(stringify(doc), 'random.yaml');
  });

const workflowArb = fc
  .array(
    fc.record({
      est: fc.integer({ min: 0, max: 600 }),
      cores: fc.integer({ min: 1, max: 8 }),
      gpu: fc.integer({ min: 0, max: 9 }),
      preds: fc.array(fc.nat(), { maxLength: 3 }),
      out: fc.integer({ min: 0, max: 4e9 }),
      input: fc.integer({ min: 0, max: 3 }),
    }),
    { minLength: 1, maxLength: 18 },
  )
  .map((rows): Workflow => {
    const jobs: Record<string, J> = {};
    const files: Record<string, number> = { 'remote/a': 2e9, 'local/b': 5e8 };
    rows.forEach((r, i) => {
      const preds = i === 0 ? [] : [...new Set(r.preds.map((p) => p % i))];
      const inputs = preds.map((p) => `f${p}`);
      if (r.input === 1) inputs.push('remote/a');
      if (r.input === 2) inputs.push('local/b');
      files[`f${i}`] = r.out;
      jobs[`j${i}`] = { est: r.est, cores: r.cores, gpus: r.gpu === 0 ? 1 : 0, after: preds.filter((_, k) => k % 2 === 0).map((p) => `j${p}`), inputs, outputs: [`f${i}`] };
    });
    return workflow(jobs, files);
  });

/** Check dependencies, data arrival, capacity and cost accounting of a plan. */
function checkPlan(wf: Workflow, p: Platform, plan: Plan): void {
  const by = new Map(plan.jobs.map((j) => [j.id, j]));
  assert.equal(by.size, Object.keys(wf.jobs).length);
  const producer = new Map<string, string>();
  for (const j of Object.values(wf.jobs)) for (const f of j.outputs ?? []) producer.set(f, j.name);
  // When is each file at each site? (initial: at its home at 0; outputs: at the producer's site at its end)
  const at = new Map<string, number>();
  for (const j of Object.values(wf.jobs)) {
    const pj = by.get(j.name)!;
    for (const f of j.outputs ?? []) at.set(`${f}@${pj.site}`, pj.end);
  }
  for (const f of Object.keys(wf.files ?? {})) {
    if (!producer.has(f)) {
      const home = f.startsWith('remote/') ? p.data.locations[0]!.site : p.data.default;
      at.set(`${f}@${home}`, 0);
    }
  }
  const transfers = [...plan.transfers].sort((a, b) => a.start - b.start);
  for (const t of transfers) {
    const src = at.get(`${t.file}@${t.from}`);
    assert.ok(src !== undefined && src <= t.start + EPS, `transfer of ${t.file} from ${t.from} starts at ${t.start} before the file is there (${src})`);
    assert.ok(t.end >= t.start - EPS);
    const key = `${t.file}@${t.to}`;
    assert.ok(!at.has(key) || at.get(key)! > t.end - EPS || true);
    if (!at.has(key) || at.get(key)! > t.end) at.set(key, t.end);
  }
  for (const j of Object.values(wf.jobs)) {
    const pj = by.get(j.name)!;
    assert.ok(pj.end >= pj.start - EPS);
    for (const d of j.requires) assert.ok(pj.start >= by.get(d.job)!.end - EPS, `${j.name} starts before ${d.job} ends`);
    for (const f of j.inputs ?? []) {
      const t = at.get(`${f}@${pj.site}`);
      assert.ok(t !== undefined, `input ${f} of ${j.name} never reaches ${pj.site}`);
      assert.ok(t <= pj.start + EPS, `${j.name} starts at ${pj.start} before input ${f} arrives at ${pj.site} (${t})`);
    }
  }
  // Capacity: sweep the start/end events of each cluster site and each instance.
  const groups = new Map<string, { cap: number; gcap: number; ev: [number, number, number][] }>();
  for (const j of Object.values(wf.jobs)) {
    const pj = by.get(j.name)!;
    const site = p.sites[pj.site]!;
    const key = site.kind === 'cluster' ? pj.site : `${pj.site}/${pj.instanceType}/${pj.instance}`;
    const cap = site.kind === 'cluster' ? site.nodes * site.cores : site.kind === 'cloud' ? site.instanceTypes[pj.instanceType!]!.cores : site.pilot.cores;
    const gcap = site.kind === 'cluster' ? site.nodes * site.gpus : site.kind === 'cloud' ? site.instanceTypes[pj.instanceType!]!.gpus : 0;
    if (!groups.has(key)) groups.set(key, { cap, gcap, ev: [] });
    if (pj.end > pj.start) {
      const g = j.resources.devices['nvidia.com/gpu'] ?? 0;
      groups.get(key)!.ev.push([pj.start, j.resources.cores, g], [pj.end, -j.resources.cores, -g]);
    }
    if (site.kind === 'cloud') {
      const inst = plan.instances.find((i) => i.site === pj.site && i.instanceType === pj.instanceType && i.index === pj.instance);
      assert.ok(inst, 'the instance is in the plan');
      assert.ok(pj.start >= inst.readyAt - EPS, 'starts after the instance booted');
      assert.ok(pj.end <= inst.end + EPS);
      const it = site.instanceTypes[pj.instanceType!]!;
      assert.ok(Math.abs(inst.readyAt - inst.bootStart - it.bootSec) < EPS);
    }
  }
  for (const [key, g] of groups) {
    g.ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let c = 0;
    let gp = 0;
    for (const [, dc, dg] of g.ev) {
      c += dc;
      gp += dg;
      assert.ok(c <= g.cap, `${key}: ${c} cores in use, it has ${g.cap}`);
      assert.ok(gp <= g.gcap, `${key}: ${gp} GPUs in use, it has ${g.gcap}`);
    }
  }
  for (const site of Object.values(p.sites)) {
    if (site.kind !== 'cloud') continue;
    for (const it of Object.values(site.instanceTypes)) {
      const n = plan.instances.filter((i) => i.site === site.name && i.instanceType === it.name).length;
      assert.ok(n <= it.max, `${site.name}/${it.name}: ${n} instances, max ${it.max}`);
    }
  }
  // Costs add up.
  const sumTransfers = plan.transfers.reduce((s, t) => s + t.cost, 0);
  const sumInstances = plan.instances.reduce((s, i) => s + i.cost, 0);
  const sumJobs = plan.jobs.reduce((s, j) => s + j.cost, 0);
  const tol = 1e-6 * Math.max(1, plan.cost);
  assert.ok(Math.abs(plan.costBreakdown.egress - sumTransfers) < tol, 'egress');
  assert.ok(Math.abs(plan.costBreakdown.cloud - sumInstances) < tol, 'instances');
  assert.ok(Math.abs(plan.cost - (sumJobs + sumTransfers)) < tol, `jobs + transfers = ${sumJobs + sumTransfers}, plan says ${plan.cost}`);
  const mk = plan.jobs.reduce((m, j) => Math.max(m, j.end), 0);
  assert.ok(Math.abs(mk - plan.makespan) < EPS);
}

describe('planner properties', () => {
  test('fastest plans: valid, at least the lower bound, never worse than HEFT', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(workflowArb, platformArb, (wf, p) => {
        const plan = planWorkflow(wf, p);
        checkPlan(wf, p, plan);
        const h = heft(wf, p);
        checkPlan(wf, p, h);
        assert.ok(plan.makespan >= lowerBound(wf, p) - EPS, 'lower bound');
        assert.ok(plan.makespan <= h.makespan + EPS, `makespan ${plan.makespan} > HEFT ${h.makespan}`);
        if (plan.makespan >= h.makespan - EPS) assert.ok(plan.cost <= h.cost + 1e-9, `same makespan, cost ${plan.cost} > HEFT ${h.cost}`);
      }),
      { numRuns: 150, seed: 42 },
    );
  });

  test('deterministic: the same plan every time, whatever the order the jobs are written in', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(workflowArb, platformArb, fc.boolean(), (wf, p, withDeadline) => {
        const opts = withDeadline ? { deadlineSec: 5000 } : {};
        const a = planWorkflow(wf, p, opts);
        assert.deepEqual(planWorkflow(wf, p, opts), a);
        const reversed: Workflow = { ...wf, jobs: Object.fromEntries(Object.entries(wf.jobs).reverse()) };
        const b = planWorkflow(reversed, p, opts);
        const byId = (plan: Plan) => [...plan.jobs].sort((x, y) => (x.id < y.id ? -1 : 1));
        assert.deepEqual(byId(b), byId(a));
        assert.equal(b.makespan, a.makespan);
        assert.equal(b.cost, a.cost);
      }),
      { numRuns: 60, seed: 5 },
    );
  });

  test('deadlines: met whenever feasible, never dearer than the fastest plan', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(workflowArb, platformArb, fc.double({ min: 0, max: 3, noNaN: true }), (wf, p, stretch) => {
        const fast = planWorkflow(wf, p);
        const deadline = fast.makespan * (1 + stretch);
        const plan = planWorkflow(wf, p, { deadlineSec: deadline });
        checkPlan(wf, p, plan);
        assert.equal(plan.deadlineMet, true);
        assert.ok(plan.makespan <= deadline + EPS, `makespan ${plan.makespan} > deadline ${deadline}`);
        assert.ok(plan.cost <= fast.cost + 1e-9, `cost ${plan.cost} > fastest ${fast.cost}`);
        if (fast.makespan > 1) {
          const tooSoon = planWorkflow(wf, p, { deadlineSec: fast.makespan / 2 });
          assert.equal(tooSoon.deadlineMet, false);
          assert.ok(tooSoon.notes[0]!.includes('cannot be met'));
        }
      }),
      { numRuns: 100, seed: 7 },
    );
  });

  test('budgets: met whenever the cheapest plan fits', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(workflowArb, platformArb, fc.double({ min: 0, max: 1, noNaN: true }), (wf, p, f) => {
        const fast = planWorkflow(wf, p);
        const budget = fast.cost * f;
        const plan = planWorkflow(wf, p, { budget });
        checkPlan(wf, p, plan);
        if (plan.budgetMet) assert.ok(plan.cost <= budget + 1e-9);
        else assert.ok(plan.notes[0]!.includes('cannot be met'));
      }),
      { numRuns: 60, seed: 11 },
    );
  });

  test('re-planning: started jobs keep their place, nothing new starts before now, the plan stays valid', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(workflowArb, platformArb, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0.2, max: 3, noNaN: true }), (wf, p, f, factor) => {
        const first = planWorkflow(wf, p);
        const now = first.makespan * f;
        const jobs: Record<string, JobProgress> = {};
        for (const j of first.jobs) {
          if (j.start < now) jobs[j.id] = { site: j.site, instanceType: j.instanceType, instance: j.instance, start: j.start, end: j.end };
        }
        // The rest turned out `factor` times as long as estimated.
        const estimates = Object.fromEntries(Object.values(wf.jobs).map((j) => [j.name, (j.estimateSec ?? 60) * factor]));
        const plan = replanWorkflow(wf, p, { now, jobs }, { estimates });
        checkPlan(wf, p, plan);
        for (const j of plan.jobs) {
          const was = jobs[j.id];
          if (was) assert.deepEqual([j.site, j.instanceType, j.start, j.end], [was.site, was.instanceType, was.start, was.end], `${j.id} moved`);
          else assert.ok(j.start >= now - EPS, `${j.id} starts at ${j.start}, before now (${now})`);
        }
      }),
      { numRuns: 100, seed: 3 },
    );
  });
});
