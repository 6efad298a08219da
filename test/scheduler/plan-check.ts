// Shared by the planner's property tests (properties.test.ts, incremental.test.ts): random
// platforms and DAG workflows, and the validity check of a plan.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parsePlatform } from '../../src/scheduler/index.js';
import type { Plan, Platform } from '../../src/scheduler/index.js';
import type { Workflow } from '../../src/workflow/index.js';
import { workflow, type J } from './fixtures.js';

export const EPS = 1e-6;

export const siteArb = fc.record({
  cloud: fc.boolean(),
  nodes: fc.integer({ min: 1, max: 3 }),
  cores: fc.integer({ min: 8, max: 24 }),
  gpus: fc.integer({ min: 0, max: 2 }),
  speed: fc.double({ min: 0.5, max: 2, noNaN: true }),
  price: fc.double({ min: 0, max: 3, noNaN: true }),
  boot: fc.integer({ min: 0, max: 120 }),
  granularity: fc.constantFrom(1, 60, 3600),
});

export const platformArb = fc
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

export const workflowArb = fc
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
export function checkPlan(wf: Workflow, p: Platform, plan: Plan, o: { instanceMax?: boolean } = {}): void {
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
    if (site.kind !== 'cloud' || o.instanceMax === false) continue;
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

