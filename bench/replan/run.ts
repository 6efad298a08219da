// Re-plan after a capacity change: the full re-plan (replanWorkflow: every strategy, a new
// model) against the incremental one (IncrementalPlanner.capacityChanged: the kept model and
// priorities, one pass of the strategy that won), on the planner benchmark's 10,428-job
// workflow (6 x montage-chameleon-2mass-05d-001) and reference platform. Target: < 100 ms.
//
//   bash bench/run.sh replan [--runs N] [--at F]
//
// The workflow has run for F (default 0.3) of its planned makespan: every job that started by
// then keeps its place. Then capacity changes, alternately: AWS c6i.16xlarge instances 4 -> 2
// with instance #0 of c6i.16xlarge reclaimed (lost), and back to 4. Prints the median of N (5)
// of each, the ratio, and the makespan and cost of both plans.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadWorkflowFile } from '../../src/workflow/index.js';
import { IncrementalPlanner, parsePlatform, replanWorkflow, type CapacityChange, type Plan, type Platform, type Progress } from '../../src/scheduler/index.js';
import { replicate } from '../planner/replicate.js';
import { repoRoot } from '../../test/helpers.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const runs = Number(opt('--runs', '5'));
const at = Number(opt('--at', '0.3'));
const platformFile = join(repoRoot, 'bench', 'planner', 'platform.yaml');
const platform = parsePlatform(readFileSync(platformFile, 'utf8'), platformFile);
const wf = replicate(loadWorkflowFile(resolve(repoRoot, '..', 'shared', 'wfcommons', 'montage-chameleon-2mass-05d-001.json')), 6);

const inc = new IncrementalPlanner(wf, platform);
const first = inc.plan;
const now = first.makespan * at;
const progress: Progress = { now, jobs: {} };
for (const j of first.jobs) if (j.start < now) progress.jobs[j.id] = { site: j.site, instanceType: j.instanceType, instance: j.instance, start: j.start, end: j.end };
const type = 'aws-us-east-1/c6i.16xlarge';
const used = first.instances.filter((i) => `${i.site}/${i.instanceType}` === type).length;
console.log(`workflow: ${Object.keys(wf.jobs).length} jobs; first plan: ${first.makespan.toFixed(1)} s, ${first.cost.toFixed(4)} ${first.currency} (${first.algorithm}); ${type}: ${used} instance(s) in it`);
console.log(`re-plan at ${(at * 100).toFixed(0)}% of the makespan (t = ${now.toFixed(1)} s): ${Object.keys(progress.jobs).length} jobs started and kept\n`);

function applyTo(p: Platform, c: CapacityChange): Platform {
  const sites = { ...p.sites };
  for (const [k, n] of Object.entries(c.max ?? {})) {
    const [s, t] = k.split('/') as [string, string];
    const site = sites[s]!;
    if (site.kind === 'cloud') sites[s] = { ...site, instanceTypes: { ...site.instanceTypes, [t]: { ...site.instanceTypes[t]!, max: n } } };
  }
  return { ...p, sites };
}

const changes: { c: CapacityChange; lost: Progress['lost'] }[] = [
  { c: { max: { [type]: 2 } }, lost: used > 0 ? [{ site: 'aws-us-east-1', instanceType: 'c6i.16xlarge', instance: 0 }] : [] },
  { c: { max: { [type]: 4 } }, lost: [] },
];
const fullMs: number[] = [];
const incMs: number[] = [];
const fullCpu: number[] = [];
const incCpu: number[] = [];
const growMs: number[] = [];
let affected = 0;
const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
let fullPlan!: Plan;
let incPlan!: Plan;
let fullNow = platform;
for (let r = 0; r < runs * 2; r++) {
  const ch = changes[r % 2]!;
  const pr: Progress = { ...progress, ...(ch.lost?.length ? { lost: ch.lost } : {}) };
  fullNow = applyTo(fullNow, ch.c);
  let c0 = process.cpuUsage();
  let t0 = performance.now();
  const f = replanWorkflow(wf, fullNow, pr);
  const fm = performance.now() - t0;
  const fc = cpuMs(process.cpuUsage(c0));
  c0 = process.cpuUsage();
  t0 = performance.now();
  const i = inc.capacityChanged(ch.c, pr);
  const im = performance.now() - t0;
  const ic = cpuMs(process.cpuUsage(c0));
  if (r % 2 === 0) {
    fullMs.push(fm);
    incMs.push(im);
    fullCpu.push(fc);
    incCpu.push(ic);
    fullPlan = f;
    incPlan = i;
    affected = inc.lastAffected;
  } else growMs.push(im);
}
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const fm = med(fullMs);
const im = med(incMs);
console.log(`capacity change: ${type} max 4 -> 2, instance #0 reclaimed (median of ${runs}; CPU ms = user + system of this process)`);
console.log(`${'re-plan'.padEnd(14)} ${'wall ms'.padStart(8)} ${'CPU ms'.padStart(8)} ${'makespan s'.padStart(11)} ${'cost'.padStart(9)}  algorithm`);
console.log(`${'full'.padEnd(14)} ${fm.toFixed(1).padStart(8)} ${med(fullCpu).toFixed(1).padStart(8)} ${fullPlan.makespan.toFixed(1).padStart(11)} ${fullPlan.cost.toFixed(4).padStart(9)}  ${fullPlan.algorithm}`);
console.log(`${'incremental'.padEnd(14)} ${im.toFixed(1).padStart(8)} ${med(incCpu).toFixed(1).padStart(8)} ${incPlan.makespan.toFixed(1).padStart(11)} ${incPlan.cost.toFixed(4).padStart(9)}  ${incPlan.algorithm}, ${affected} jobs placed again`);
console.log(`\nincremental / full: time ${(im / fm).toFixed(3)}x (CPU ${(med(incCpu) / med(fullCpu)).toFixed(3)}x), makespan ${(incPlan.makespan / fullPlan.makespan).toFixed(4)}x, cost ${(incPlan.cost / fullPlan.cost).toFixed(4)}x`);
console.log(`capacity back up (max 2 -> 4: the not-started rest re-placed to use it): ${med(growMs).toFixed(1)} ms wall`);
const met = im < 100;
console.log(`target: re-plan within 100 ms of a capacity change: ${met ? 'met' : 'NOT met'} (${im.toFixed(1)} ms)`);
if (!met) process.exitCode = 1;
