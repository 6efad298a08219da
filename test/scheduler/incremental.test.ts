// The incremental re-plan (IncrementalPlanner.capacityChanged) on random DAGs and platforms:
// after a capacity change at a random moment (an instance type's max lowered or raised, one of
// its instances lost, a cluster's nodes fewer), the plan is valid (dependencies, data arrival,
// capacity, costs: plan-check.ts), the jobs that started keep their place, nothing new starts
// before now or on a lost instance, no more instances run from now on than the new max, and
// its makespan is within a bound of the full re-plan's (replanWorkflow on the changed platform).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IncrementalPlanner, replanWorkflow, type CapacityChange, type Plan, type Progress } from '../../src/scheduler/index.js';
import { WarrenError } from '../../src/common/index.js';
import { EPS, checkPlan, platformArb, workflowArb } from './plan-check.js';
import { workflow } from './fixtures.js';
import { parsePlatform } from '../../src/scheduler/index.js';

/** The incremental plan's makespan is at most this times the full re-plan's. */
const BOUND = 1.5;

const changeArb = fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), site: fc.nat(), max: fc.nat({ max: 3 }), lose: fc.boolean(), pick: fc.nat() });

describe('incremental re-plan', () => {
  test('valid, keeps what started, respects the new capacity, within 1.5x of the full re-plan', { timeout: 120_000 }, () => {
    let compared = 0;
    let worst = 1;
    fc.assert(
      fc.property(workflowArb, platformArb, changeArb, (wf, p, ch) => {
        const inc = new IncrementalPlanner(wf, p);
        const first = inc.plan;
        const now = first.makespan * ch.at;
        const progress: Progress = { now, jobs: {} };
        for (const j of first.jobs) if (j.start < now) progress.jobs[j.id] = { site: j.site, instanceType: j.instanceType, instance: j.instance, start: j.start, end: j.end };
        const names = Object.keys(p.sites).sort();
        const site = p.sites[names[ch.site % names.length]!]!;
        const change: CapacityChange = {};
        if (site.kind === 'cloud') {
          const t = Object.keys(site.instanceTypes)[0]!;
          change.max = { [`${site.name}/${t}`]: ch.max };
          // Lose one of its instances that has started jobs (a spot reclaim).
          const started = [...new Set(first.jobs.filter((j) => j.site === site.name && progress.jobs[j.id] && j.end > now).map((j) => j.instance!))].sort();
          if (ch.lose && started.length) {
            const victim = started[ch.pick % started.length]!;
            progress.lost = [{ site: site.name, instanceType: t, instance: victim }];
            // Its running jobs are lost: they start again (cluster mode re-runs them).
            for (const j of first.jobs) if (j.site === site.name && j.instance === victim && j.end > now) delete progress.jobs[j.id];
            // ... and so is whatever of theirs had started after them.
            let again = true;
            while (again) {
              again = false;
              for (const j of Object.values(wf.jobs)) if (progress.jobs[j.name] && j.requires.some((d) => !progress.jobs[d.job])) {
                delete progress.jobs[j.name];
                again = true;
              }
            }
          }
        } else if (site.kind === 'cluster') change.nodes = { [site.name]: Math.max(1, Math.min(site.nodes, ch.max)) };
        let full: Plan;
        try {
          full = replanWorkflow(wf, patched(p, change), progress);
        } catch (e) {
          // Nothing can run some job any more: the incremental re-plan says so too.
          assert.ok(e instanceof WarrenError, String(e));
          assert.throws(() => inc.capacityChanged(change, progress), (e2) => e2 instanceof WarrenError);
          return;
        }
        const plan = inc.capacityChanged(change, progress);
        const pNow = inc.platformNow;
        // Dependencies, data, costs, and capacity against the platform as it was (what started ran on it) ...
        checkPlan(wf, p, plan, { instanceMax: false });
        // ... and from now on, wherever a job that had not started runs, against the new capacity.
        for (const s of Object.values(pNow.sites)) {
          if (s.kind !== 'cluster') continue;
          const mine = plan.jobs.filter((j) => j.site === s.name && j.end > j.start);
          const times = [...new Set(mine.flatMap((j) => [j.start, j.end]))].filter((t) => t >= now - EPS).sort((a, b) => a - b);
          for (let k = 0; k + 1 < times.length; k++) {
            const mid = (times[k]! + times[k + 1]!) / 2;
            const active = mine.filter((j) => j.start <= mid && j.end > mid);
            if (!active.some((j) => !progress.jobs[j.id])) continue;
            const cores = active.reduce((a, j) => a + wf.jobs[j.id]!.resources.cores, 0);
            const gpus = active.reduce((a, j) => a + (wf.jobs[j.id]!.resources.devices['nvidia.com/gpu'] ?? 0), 0);
            assert.ok(cores <= s.nodes * s.cores, `${s.name} at ${mid}: ${cores} cores in use, it has ${s.nodes * s.cores} now`);
            assert.ok(gpus <= s.nodes * s.gpus, `${s.name} at ${mid}: ${gpus} GPUs in use, it has ${s.nodes * s.gpus} now`);
          }
        }
        const by = new Map(plan.jobs.map((j) => [j.id, j]));
        for (const [id, pj] of Object.entries(progress.jobs)) {
          const j = by.get(id)!;
          assert.equal(j.site, pj.site, id);
          assert.equal(j.start, pj.start, id);
          assert.equal(j.end, pj.end, id);
        }
        for (const j of plan.jobs) {
          if (progress.jobs[j.id]) continue;
          assert.ok(j.start >= now - EPS, `${j.id} starts at ${j.start}, before now ${now}`);
          for (const l of progress.lost ?? []) assert.ok(!(j.site === l.site && j.instance === l.instance), `${j.id} placed on lost instance #${l.instance}`);
        }
        // From now on, at most max instances of each type have work (lost ones have none).
        for (const s of Object.values(pNow.sites)) {
          if (s.kind !== 'cloud') continue;
          for (const t of Object.values(s.instanceTypes)) {
            const live = new Set(plan.jobs.filter((j) => j.site === s.name && j.instanceType === t.name && j.end > now + EPS && !progress.jobs[j.id]).map((j) => j.instance));
            const running = new Set(plan.jobs.filter((j) => j.site === s.name && j.instanceType === t.name && progress.jobs[j.id] && j.end > now + EPS).map((j) => j.instance));
            const all = new Set([...live, ...running]);
            assert.ok(all.size <= Math.max(t.max, running.size), `${s.name}/${t.name}: ${all.size} instances with work after now, max ${t.max}`);
          }
        }
        if (full.makespan > EPS) {
          const r = plan.makespan / full.makespan;
          worst = Math.max(worst, r);
          assert.ok(plan.makespan <= full.makespan * BOUND + EPS, `incremental makespan ${plan.makespan} > ${BOUND} x full ${full.makespan}`);
          compared++;
        }
      }),
      { numRuns: 300, seed: 14 },
    );
    assert.ok(compared > 100, `only ${compared} cases compared`);
    console.log(`# incremental vs full re-plan: worst makespan ratio ${worst.toFixed(3)} over ${compared} cases`);
  });

  test('bad changes are refused with what to do; a budget objective falls back to a full re-plan', () => {
    const wf = workflow({ a: { est: 60, cores: 1 }, b: { est: 60, cores: 1, after: ['a'] } });
    const p = parsePlatform('sites:\n  hpc: { nodes: 2, cores: 4 }\n  aws:\n    instance-types:\n      c: { cores: 4, price: 1, max: 2, boot: 30s }\ndata: { default: hpc }\n', 'p.yaml');
    const inc = new IncrementalPlanner(wf, p);
    const progress: Progress = { now: 0, jobs: {} };
    assert.throws(() => inc.capacityChanged({ nodes: { aws: 1 } }, progress), (e) => e instanceof WarrenError && e.code === 'PLAN_BAD_VALUE' && /"aws" is not a cluster site/.test(e.message));
    assert.throws(() => inc.capacityChanged({ max: { 'aws/nope': 1 } }, progress), (e) => e instanceof WarrenError && e.code === 'PLAN_BAD_VALUE');
    assert.throws(() => inc.capacityChanged({ max: { 'aws/c': -1 } }, progress), (e) => e instanceof WarrenError && e.code === 'PLAN_BAD_VALUE' && /max -1/.test(e.message));
    assert.throws(() => inc.capacityChanged({}, { now: -1, jobs: {} }), (e) => e instanceof WarrenError && e.code === 'PLAN_BAD_PROGRESS');
    const plan = inc.capacityChanged({ nodes: { hpc: 1 } }, progress);
    assert.equal(inc.counts.incremental, 1);
    assert.match(plan.notes.join(' '), /re-planned incrementally/);
    const b = new IncrementalPlanner({ ...wf, policy: { ...wf.policy, budget: 10 } }, p);
    b.capacityChanged({ max: { 'aws/c': 1 } }, progress);
    assert.deepEqual(b.counts, { incremental: 0, full: 1 });
  });
});

function patched(p: import('../../src/scheduler/index.js').Platform, c: CapacityChange) {
  const sites = { ...p.sites };
  for (const [n, v] of Object.entries(c.nodes ?? {})) sites[n] = { ...(sites[n] as never as object), nodes: v } as never;
  for (const [k, v] of Object.entries(c.max ?? {})) {
    const [s, t] = k.split('/') as [string, string];
    const site = sites[s]!;
    if (site.kind === 'cloud') sites[s] = { ...site, instanceTypes: { ...site.instanceTypes, [t]: { ...site.instanceTypes[t]!, max: v } } };
  }
  return { ...p, sites };
}
