// Planner benchmark: the hybrid planner against HEFT (same model) and the critical-path lower
// bound, on every WfCommons instance in ../shared/wfcommons and a 10,000+-job replicated
// instance, on the reference platform bench/planner/platform.yaml.
//
//   node --import tsx bench/planner/run.ts [--platform FILE] [--runs N]
//
// Prints, per instance: makespan / lower bound, makespan / HEFT's, cost / HEFT's, planning
// time (median of N runs); then the same with a deadline of 1.5 x the fastest makespan
// (cost / the fastest plan's), and the scale test (fastest, deadline and budget).
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadWorkflowFile } from '../../src/workflow/index.js';
import type { Workflow } from '../../src/workflow/index.js';
import { heft, lowerBound, parsePlatform, planWorkflow } from '../../src/scheduler/index.js';
import type { Plan, Platform } from '../../src/scheduler/index.js';
import { replicate } from './replicate.js';
import { repoRoot } from '../../test/helpers.js';

const root = repoRoot; // works from bench/ (tsx) and dist/bench/ (compiled)
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const platformFile = opt('--platform', join(root, 'bench', 'planner', 'platform.yaml'));
const runs = Number(opt('--runs', '5'));
const wfDir = resolve(root, '..', 'shared', 'wfcommons');

function timed(fn: () => Plan, n: number): { plan: Plan; ms: number } {
  const times: number[] = [];
  let plan!: Plan;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    plan = fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { plan, ms: times[Math.floor(times.length / 2)]! };
}

const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : '-');
const ratio = (a: number, b: number): number => (b === 0 ? (a === 0 ? 1 : Infinity) : a / b);

interface Row {
  name: string;
  jobs: number;
  lb: number;
  p: Plan;
  h: Plan;
  pms: number;
  hms: number;
}

function bench(name: string, wf: Workflow, platform: Platform, n: number): Row {
  const lb = lowerBound(wf, platform);
  const p = timed(() => planWorkflow(wf, platform), n);
  const h = timed(() => heft(wf, platform), n);
  return { name, jobs: Object.keys(wf.jobs).length, lb, p: p.plan, h: h.plan, pms: p.ms, hms: h.ms };
}

const platform = parsePlatform(readFileSync(platformFile, 'utf8'), platformFile);
const files = readdirSync(wfDir).filter((f) => f.endsWith('.json')).sort();
const rows: Row[] = [];
const wfs = new Map<string, Workflow>();
for (const f of files) {
  const wf = loadWorkflowFile(join(wfDir, f));
  wfs.set(f, wf);
  rows.push(bench(f.replace(/\.json$/, ''), wf, platform, runs));
}

const head = `${'instance'.padEnd(44)} ${'jobs'.padStart(6)} ${'LB s'.padStart(9)} ${'plan s'.padStart(9)} ${'HEFT s'.padStart(9)} ${'mk/LB'.padStart(7)} ${'mk/HEFT'.padStart(8)} ${'cost'.padStart(9)} ${'HEFT cost'.padStart(9)} ${'cost/HEFT'.padStart(9)} ${'plan ms'.padStart(8)} ${'HEFT ms'.padStart(8)}  algorithm`;
console.log(`platform: ${platformFile} (currency ${platform.currency}); planning time: median of ${runs} runs\n`);
console.log('objective: fastest (default)');
console.log(head);
let ok = true;
const print = (r: Row): void => {
  const mh = ratio(r.p.makespan, r.h.makespan);
  const ch = ratio(r.p.cost, r.h.cost);
  const good = r.p.makespan <= r.h.makespan + 1e-6 && r.p.cost <= r.h.cost + 1e-9;
  if (!good) ok = false;
  console.log(
    `${r.name.padEnd(44)} ${String(r.jobs).padStart(6)} ${r.lb.toFixed(1).padStart(9)} ${r.p.makespan.toFixed(1).padStart(9)} ${r.h.makespan.toFixed(1).padStart(9)} ${f3(ratio(r.p.makespan, r.lb)).padStart(7)} ${f3(mh).padStart(8)} ${r.p.cost.toFixed(4).padStart(9)} ${r.h.cost.toFixed(4).padStart(9)} ${f3(ch).padStart(9)} ${r.pms.toFixed(1).padStart(8)} ${r.hms.toFixed(1).padStart(8)}  ${r.p.algorithm}${good ? '' : '  <-- worse than HEFT'}`,
  );
};
rows.forEach(print);
const gm = (xs: number[]): number => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
const costRatios = rows.filter((r) => r.h.cost > 0).map((r) => ratio(r.p.cost, r.h.cost));
console.log(`geometric means: makespan/LB ${f3(gm(rows.map((r) => ratio(r.p.makespan, r.lb))))}, makespan/HEFT ${f3(gm(rows.map((r) => ratio(r.p.makespan, r.h.makespan))))}, cost/HEFT ${f3(gm(costRatios))}`);

// Deadlines: 1.5 x the fastest makespan; the cost of the cheapest plan that meets it.
console.log('\nobjective: deadline = 1.5 x the fastest makespan');
console.log(`${'instance'.padEnd(44)} ${'deadline s'.padStart(10)} ${'plan s'.padStart(9)} ${'met'.padStart(4)} ${'cost'.padStart(9)} ${'fastest cost'.padStart(12)} ${'cost/fastest'.padStart(12)} ${'plan ms'.padStart(8)}`);
for (const r of rows) {
  const wf = wfs.get(`${r.name}.json`)!;
  const deadline = r.p.makespan * 1.5;
  const d = timed(() => planWorkflow(wf, platform, { deadlineSec: deadline }), Math.max(1, Math.min(runs, 3)));
  if (!d.plan.deadlineMet || d.plan.makespan > deadline + 1e-6) ok = false;
  console.log(
    `${r.name.padEnd(44)} ${deadline.toFixed(1).padStart(10)} ${d.plan.makespan.toFixed(1).padStart(9)} ${(d.plan.deadlineMet ? 'yes' : 'NO').padStart(4)} ${d.plan.cost.toFixed(4).padStart(9)} ${r.p.cost.toFixed(4).padStart(12)} ${f3(ratio(d.plan.cost, r.p.cost)).padStart(12)} ${d.ms.toFixed(1).padStart(8)}`,
  );
}

// Scale: 6 copies of the largest instance (10,428 jobs).
const base = wfs.get('montage-chameleon-2mass-05d-001.json')!;
const big = replicate(base, 6);
console.log('\nscale: montage-chameleon-2mass-05d-001 x 6');
console.log(head);
const c0 = process.cpuUsage();
const t0 = performance.now();
planWorkflow(big, platform); // the first plan of this size also warms up the JIT
const firstMs = performance.now() - t0;
const cpu = process.cpuUsage(c0);
const bigRow = bench('montage-2mass-05d x6', big, platform, 3);
print(bigRow);
console.log(`first plan of it in this process: ${firstMs.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU (all threads, GC included)`);
{
  const d = timed(() => planWorkflow(big, platform, { deadlineSec: bigRow.p.makespan * 1.5 }), 1);
  const b = timed(() => planWorkflow(big, platform, { budget: bigRow.p.cost * 0.5 }), 1);
  console.log(`with a deadline of 1.5 x its fastest makespan: ${d.plan.makespan.toFixed(1)} s at ${d.plan.cost.toFixed(4)} (${f3(ratio(d.plan.cost, bigRow.p.cost))} x the fastest plan's cost), planned in ${d.ms.toFixed(0)} ms`);
  console.log(`with a budget of 0.5 x the fastest plan's cost: ${b.plan.makespan.toFixed(1)} s at ${b.plan.cost.toFixed(4)} (budget ${b.plan.budgetMet ? 'met' : 'NOT met'}), planned in ${b.ms.toFixed(0)} ms`);
}
const fast = bigRow.pms < 1000;
console.log(`\ntargets: makespan <= HEFT at equal or lower cost on every instance: ${ok ? 'met' : 'NOT met'}; ${bigRow.jobs}-job workflow planned in ${bigRow.pms.toFixed(0)} ms (< 1000 ms): ${fast ? 'met' : 'NOT met'}`);
if (!ok || !fast) process.exitCode = 1;
