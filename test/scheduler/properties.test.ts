// Property tests on random DAGs and platforms: every plan respects dependencies (a job starts
// after its inputs have arrived), capacity (never more cores or GPUs in use at a site or on an
// instance than it has), the deadline when one is feasible, and adds up its costs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { heft, lowerBound, planWorkflow, replanWorkflow } from '../../src/scheduler/index.js';
import type { JobProgress } from '../../src/scheduler/index.js';
import type { Plan, Platform } from '../../src/scheduler/index.js';
import type { Workflow } from '../../src/workflow/index.js';
import { workflow, type J } from './fixtures.js';
import { EPS, checkPlan, platformArb, workflowArb } from './plan-check.js';

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
