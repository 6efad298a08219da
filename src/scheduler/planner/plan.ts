// The objectives. Everything is wired here, in one place:
//
//   buildModel      filter stage: offerings per job (cores, GPUs, memory, data reachable),
//                   with a reason for each site ruled out            (model.ts)
//   upwardRanks     priority: HEFT's upward rank                      (schedule.ts)
//   schedule        score stage: per option, inputs' arrival (transfers), insertion into the
//                   capacity timeline or a new booting instance, finish time, cost incl.
//                   egress and instance time; then a selector picks   (schedule.ts)
//   selectors       fastest: earliest finish, ties by cost;
//                   deadline: cheapest option within the job's latest finish;
//                   budget: the fastest plan whose cost fits, searching over deadlines
//   toPlan          the plan with a reason for every job              (this file)
//
// Pure: no I/O and no clock reads; deterministic (ties broken by name order).
import { EXIT, WarrenError, formatBytes, formatDuration } from '../../common/index.js';
import type { Workflow } from '../../workflow/index.js';
import type { Platform } from '../platform.js';
import type { Objective, Plan, PlanOptions, PlannedJob } from '../types.js';
import { buildModel } from './model.js';
import type { Model } from './model.js';
import {
  DataUnreachable, cheapestSelect, eftCostSelect, heftSelect, instanceCost, latestFinish, octRanks, octTable, peftSelect, schedule, upwardRanks,
  withinSelect,
} from './schedule.js';
import type { Fixed, Pinned, Schedule, Selector } from './schedule.js';

/** 2 decimals; small amounts with 2 significant digits (0.0000056), so they do not read as 0. */
const money = (v: number, cur: string): string => `${v !== 0 && Math.abs(v) < 0.01 ? Number(v.toPrecision(2)).toString() : v.toFixed(2)} ${cur}`;

type Runner = (rank: Float64Array, select: Selector, name: string, note?: (j: number) => string) => Schedule;

/** One list-scheduling pass on the model (with pinned jobs when re-planning), turning a stuck job into PLAN_DATA_UNREACHABLE. */
function runner(m: Model, fixed?: Fixed): Runner {
  return (rank, select, name, note) => {
    try {
      return schedule(m, rank, select, name, note, fixed);
    } catch (e) {
      if (e instanceof DataUnreachable) {
        const job = m.jobs[e.job]!;
        const inputs = job.inputs.map((f) => m.files[f]!.id);
        throw new WarrenError(
          'PLAN_DATA_UNREACHABLE',
          `job "${job.id}" cannot get its inputs (${inputs.slice(0, 3).join(', ')}${inputs.length > 3 ? ', ...' : ''}) to any site able to run it: no link from where they are`,
          { hint: 'add links between the sites of the platform so data can move between them' },
        );
      }
      throw e;
    }
  };
}

const better = (a: Schedule, b: Schedule): boolean =>
  a.makespan < b.makespan - 1e-6 || (Math.abs(a.makespan - b.makespan) <= 1e-6 && a.cost < b.cost - 1e-9);

/** The fastest schedule this planner finds: cost-aware EFT, its slack-recovered variant, HEFT and PEFT. */
function fastest(m: Model, S: Runner, rank: Float64Array): Schedule {
  const eft = S(rank, eftCostSelect, 'eft-cost');
  let best = eft;
  // Same makespan, less money: redo with each job allowed to finish as late as the
  // as-late-as-possible pass of the fast plan says it can.
  const lft = latestFinish(m, eft, eft.makespan);
  const slack = S(rank, withinSelect(lft), 'eft-cost+slack', (j) => `latest finish ${formatDuration(lft[j]!)}`);
  if (better(slack, best)) best = slack;
  const h = S(rank, heftSelect, 'heft');
  if (better(h, best)) best = h;
  // PEFT: looks ahead through the optimistic cost table.
  const oct = octTable(m);
  const pe = S(octRanks(m, oct), peftSelect(m, oct), 'peft');
  if (better(pe, best)) best = pe;
  return best;
}

/** The cheapest plan found that ends by `deadline` (or null). */
function cheapestWithin(m: Model, S: Runner, rank: Float64Array, ref: Schedule, deadline: number, fractions = [1, 0.75, 0.5, 0.25], withCheapest = true): Schedule | null {
  let best: Schedule | null = ref.makespan <= deadline + 1e-6 ? ref : null;
  const consider = (s: Schedule): void => {
    if (s.makespan <= deadline + 1e-6 && (!best || s.cost < best.cost - 1e-9 || (Math.abs(s.cost - best.cost) <= 1e-9 && s.makespan < best.makespan))) best = s;
  };
  // Distribute the slack between the fast plan and the deadline: all of it (as late as
  // possible), or only a part, so that jobs late in the workflow keep some room.
  for (const f of fractions) {
    const exit = ref.makespan + (deadline - ref.makespan) * f;
    const lft = latestFinish(m, ref, exit);
    consider(S(rank, withinSelect(lft), `deadline-alap(${f})`, (j) => `latest finish ${formatDuration(lft[j]!)}`));
    // Proportional: every job's finish stretched by the same factor.
    const scale = exit / Math.max(ref.makespan, 1e-9);
    const prop = new Float64Array(m.jobs.length);
    for (let j = 0; j < prop.length; j++) prop[j] = ref.choice[j]!.end * scale;
    consider(S(rank, withinSelect(prop), `deadline-prop(${f})`, (j) => `latest finish ${formatDuration(prop[j]!)}`));
  }
  if (withCheapest) consider(S(rank, cheapestSelect, 'cheapest'));
  return best;
}

/** Plan a workflow on a platform for the workflow's policy (deadline, budget) or fastest. */
export function planWorkflow(wf: Workflow, platform: Platform, opts: PlanOptions = {}): Plan {
  return planModel(wf, platform, opts);
}

function planModel(wf: Workflow, platform: Platform, opts: PlanOptions, progress?: Progress): Plan {
  const deadline = opts.deadlineSec ?? wf.policy.deadlineSec;
  const budget = opts.budget ?? wf.policy.budget;
  if (deadline !== undefined && (!Number.isFinite(deadline) || deadline < 0)) {
    throw new WarrenError('PLAN_BAD_POLICY', `deadline ${deadline} is not a number of seconds >= 0`, { hint: 'write the deadline as a duration, e.g. 2h' });
  }
  if (budget !== undefined && (!Number.isFinite(budget) || budget < 0)) {
    throw new WarrenError('PLAN_BAD_POLICY', `budget ${budget} is negative or not a number`, { hint: 'write the budget as a number >= 0 in the platform currency' });
  }
  const m = buildModel(wf, platform, opts, progress ? new Set(Object.keys(progress.jobs)) : undefined);
  const S = runner(m, progress ? pinnedJobs(m, progress) : undefined);
  const rank = upwardRanks(m);
  const fast = fastest(m, S, rank);
  const notes: string[] = [];
  let chosen = fast;
  let objective: Objective = 'fastest';
  let deadlineMet: boolean | undefined;
  let budgetMet: boolean | undefined;
  const cur = platform.currency;

  if (deadline !== undefined) {
    objective = 'deadline';
    if (fast.makespan > deadline + 1e-6) {
      deadlineMet = false;
      notes.push(`the deadline (${formatDuration(deadline)}) cannot be met: the earliest feasible finish is ${formatDuration(fast.makespan)} (${fast.makespan.toFixed(1)} s) at a cost of ${money(fast.cost, cur)}`);
    } else {
      deadlineMet = true;
      chosen = cheapestWithin(m, S, rank, fast, deadline) ?? fast;
    }
    if (budget !== undefined) {
      budgetMet = chosen.cost <= budget + 1e-9;
      if (!budgetMet) notes.push(`the budget (${budget} ${cur}) is not enough for this plan: it costs ${money(chosen.cost, cur)}`);
    }
  } else if (budget !== undefined) {
    objective = 'budget';
    if (fast.cost <= budget + 1e-9) {
      budgetMet = true;
    } else {
      const cheap = S(rank, cheapestSelect, 'cheapest');
      if (cheap.cost > budget + 1e-9) {
        budgetMet = false;
        chosen = cheap;
        notes.push(`the budget (${budget} ${cur}) cannot be met: the cheapest plan found costs ${money(cheap.cost, cur)} and finishes in ${formatDuration(cheap.makespan)}`);
      } else {
        budgetMet = true;
        // Fastest within the budget: the smallest deadline whose cheapest plan fits the budget
        // (bisection between the fastest and the cheapest plan's makespans).
        chosen = cheap;
        let lo = fast.makespan;
        let hi = Math.max(cheap.makespan, lo);
        for (let i = 0; i < 12 && hi - lo > 1e-3 * Math.max(1, hi); i++) {
          const mid = (lo + hi) / 2;
          // (two passes per step: the slack handed out as late as possible, or proportionally)
          const s = cheapestWithin(m, S, rank, fast, mid, [1], false);
          if (s && s.cost <= budget + 1e-9) {
            if (s.makespan < chosen.makespan || (s.makespan === chosen.makespan && s.cost < chosen.cost)) chosen = s;
            hi = Math.min(mid, s.makespan);
          } else lo = mid;
        }
      }
    }
  }
  return toPlan(m, wf, chosen, { objective, deadline, budget, deadlineMet, budgetMet, notes, currency: cur });
}

/** Where a job of a running workflow is: it keeps that place when the workflow is re-planned. */
export interface JobProgress {
  site: string;
  /** For jobs in a cloud region. */
  instanceType?: string | null;
  /** The instance label from the earlier plan (default 0). */
  instance?: number | null;
  start: number;
  /** When it ended, or (running) when it is now expected to end. */
  end: number;
}

/** The state of a running workflow: seconds since it started, and the jobs that started. */
export interface Progress {
  now: number;
  jobs: Record<string, JobProgress>;
  /** Cloud instances of the earlier plan that are gone (a reclaimed spot instance): nothing more is placed on them. */
  lost?: { site: string; instanceType: string; instance: number }[];
}

/**
 * Plan the rest of a running workflow, e.g. when a site's availability or the runtime
 * estimates changed (pass the platform and estimates as they are now): jobs that started keep
 * their place, data they produced is where they ran, and nothing new starts before `now`.
 */
export function replanWorkflow(wf: Workflow, platform: Platform, progress: Progress, opts: PlanOptions = {}): Plan {
  if (!Number.isFinite(progress.now) || progress.now < 0) {
    throw new WarrenError('PLAN_BAD_PROGRESS', `progress.now ${progress.now} is not a time >= 0`, { hint: 'pass the seconds since the workflow started' });
  }
  return planModel(wf, platform, opts, progress);
}

function pinnedJobs(m: Model, progress: Progress): Fixed {
  const idx = new Map(m.jobs.map((j, i) => [j.id, i]));
  const pinned: (Pinned | undefined)[] = new Array(m.jobs.length);
  const bad = (msg: string, hint: string): WarrenError => new WarrenError('PLAN_BAD_PROGRESS', msg, { hint });
  for (const [id, p] of Object.entries(progress.jobs)) {
    const j = idx.get(id);
    if (j === undefined) throw bad(`progress names unknown job "${id}"`, 'pass the ids of the plan\'s jobs (`name[i]` for tasks of a task array)');
    const o = m.offerings.findIndex((off) => off.siteName === p.site && (off.instanceType ?? null) === (p.instanceType ?? null));
    if (o < 0) {
      throw new WarrenError('PLAN_UNKNOWN_SITE', `job "${id}" ran at ${p.site}${p.instanceType ? `/${p.instanceType}` : ''}, which the platform does not have`, {
        hint: 'keep sites that ran jobs in the platform (they may have less capacity now)',
      });
    }
    if (!(p.end >= p.start) || p.start < 0) throw bad(`job "${id}": start ${p.start} and end ${p.end} are not a time interval`, 'pass seconds since the workflow started, start <= end');
    pinned[j] = { offering: o, instance: m.offerings[o]!.cloud ? (p.instance ?? 0) : -2, start: p.start, end: p.end };
  }
  for (let j = 0; j < m.jobs.length; j++) {
    if (!pinned[j]) continue;
    for (const p of m.jobs[j]!.preds) {
      if (!pinned[p]) throw bad(`job "${m.jobs[j]!.id}" started but its requirement "${m.jobs[p]!.id}" did not`, 'pass every job that started, with its place and times');
    }
  }
  const closed = new Set<number>();
  for (const l of progress.lost ?? []) {
    const o = m.offerings.findIndex((off) => off.siteName === l.site && off.instanceType === l.instanceType);
    if (o < 0 || !m.offerings[o]!.cloud) throw bad(`progress: lost instance ${l.site}/${l.instanceType}#${l.instance} is not of a cloud instance type of the platform`, 'name the site, instance type and instance label of the earlier plan');
    closed.add(o * 1e6 + l.instance);
  }
  return { now: progress.now, pinned, closed };
}

/** HEFT (Topcuoglu et al. 2002) on the same model: upward rank, insertion-based earliest finish. */
export function heft(wf: Workflow, platform: Platform, opts: PlanOptions = {}): Plan {
  const m = buildModel(wf, platform, opts);
  const s = runner(m)(upwardRanks(m), heftSelect, 'heft');
  return toPlan(m, wf, s, { objective: 'fastest', notes: [], currency: platform.currency });
}

/**
 * A lower bound on the makespan: the critical path with every job on the fastest offering
 * that can run it, counting only delays no plan can avoid (a cloud instance's boot time, the
 * arrival of initial data at a site other than its home) and no queueing; and, when larger,
 * the time all sites and instances together (each from its boot time on) need for the total
 * work.
 */
export function lowerBound(wf: Workflow, platform: Platform, opts: PlanOptions = {}): number {
  const m = buildModel(wf, platform, opts);
  const fin = new Float64Array(m.jobs.length);
  let cp = 0;
  let work = 0;
  for (const j of m.topo) {
    const job = m.jobs[j]!;
    let start = 0;
    for (const p of job.preds) start = Math.max(start, fin[p]!);
    let best = Infinity;
    for (const o of job.feasible) {
      const off = m.offerings[o]!;
      let s = Math.max(start, off.bootSec);
      for (const f of job.inputs) {
        const file = m.files[f]!;
        if (file.producer >= 0 || file.home === off.site) continue;
        const rt = m.routes[file.home]![off.site]!;
        s = Math.max(s, rt.latencySec + file.bytes / rt.bandwidth);
      }
      best = Math.min(best, s + job.est / off.speed);
    }
    fin[j] = best;
    cp = Math.max(cp, best);
    work += job.est * job.cores * job.nodes;
  }
  return Math.max(cp, areaBound(m, work));
}

/**
 * The earliest time T by which all offerings together could have done `work` reference
 * core-seconds: each contributes cores x count x speed per second from its boot time on.
 */
function areaBound(m: Model, work: number): number {
  if (work <= 0) return 0;
  const res = m.offerings.map((o) => ({ rate: o.cores * o.count * o.speed, from: o.bootSec })).sort((a, b) => a.from - b.from);
  let rate = 0;
  let done = 0; // work done by time res[i].from
  for (let i = 0; i < res.length; i++) {
    rate += res[i]!.rate;
    const next = i + 1 < res.length ? res[i + 1]!.from : Infinity;
    // Work done by `next` with the resources started so far.
    const upTo = done + rate * (next - res[i]!.from);
    if (upTo >= work) return res[i]!.from + (work - done) / rate;
    done = upTo;
  }
  return Infinity;
}

interface Extra {
  objective: Objective;
  deadline?: number | undefined;
  budget?: number | undefined;
  deadlineMet?: boolean | undefined;
  budgetMet?: boolean | undefined;
  notes: string[];
  currency: string;
}


function reasonOf(m: Model, s: Schedule, j: number, cur: string, share: number): string {
  const c = s.choice[j]!;
  const w = s.why[j]!;
  const off = m.offerings[c.offering]!;
  if (w.note === 'already started') return `already started on ${off.key}: kept where it is`;
  const parts: string[] = [];
  if (w.inputBytes > 0) {
    const pct = Math.round((100 * w.localBytes) / w.inputBytes);
    parts.push(`data gravity: ${pct}% of ${formatBytes(w.inputBytes)} input already at ${off.siteName}`);
  }
  const egress = c.egress > 0 ? ` + egress ${money(c.egress, cur)}` : '';
  if (off.cloud) {
    parts.push(`price: ${money(share, cur)} as its share of ${off.instanceType} instance #${c.instance} (${c.cost - c.egress > 1e-12 ? `adds ${money(c.cost - c.egress, cur)} to its bill` : 'in time the instance is paid for anyway'})${egress}`);
  } else {
    parts.push(`price: ${money(share, cur)} for ${m.jobs[j]!.cores * m.jobs[j]!.nodes} core(s) x ${formatDuration(c.end - c.start)}${egress}`);
  }
  if (w.booting > 1e-6) parts.push(`availability: waits ${formatDuration(w.booting)} for the instance to boot`);
  if (w.waited - w.booting > 1e-6) parts.push(`availability: waits ${formatDuration(w.waited - w.booting)} for free capacity`);
  if (w.alt) {
    const a = w.alt;
    const ao = m.offerings[a.offering]!;
    const dt = a.end - c.end;
    const dc = a.cost - c.cost;
    let why: string;
    if (dt > 1e-6) {
      const causes: string[] = [];
      if (a.ready - c.ready > 1e-6) causes.push(`its inputs arrive ${formatDuration(a.ready - c.ready)} later`);
      if (a.start - a.ready > 1e-6) causes.push(`busy or booting for ${formatDuration(a.start - a.ready)}`);
      if (ao.speed < off.speed) causes.push('slower cores');
      why = `would finish ${formatDuration(dt)} later${causes.length ? ` (${causes.join(', ')})` : ''}`;
      if (dc < -1e-9) why += ` though ${money(-dc, cur)} cheaper`;
    } else if (dt < -1e-6) {
      why = dc > 1e-9
        ? `would finish ${formatDuration(-dt)} earlier but cost ${money(dc, cur)} more, and this one keeps the plan on time (${w.note || 'objective'})`
        : `would finish ${formatDuration(-dt)} earlier`;
    } else {
      why = dc > 1e-9 ? `would finish at the same time but cost ${money(dc, cur)} more` : 'same finish and price (tie broken by name)';
    }
    parts.push(`${ao.key}: ${why}`);
  }
  // The cheapest place elsewhere, when it is not the one above and is cheaper than this one.
  const ch = w.altCheap;
  if (ch && ch !== w.alt && ch.cost < c.cost - 1e-12) {
    const late = ch.end - c.end;
    parts.push(`${m.offerings[ch.offering]!.key}: would cost ${money(c.cost - ch.cost, cur)} less${late > 1e-6 ? ` but finish ${formatDuration(late)} later` : ''}`);
  }
  for (const r of m.jobs[j]!.rejected) parts.push(`${r.site} ruled out: ${r.why}`);
  return parts.join('; ');
}

function toPlan(m: Model, wf: Workflow, s: Schedule, x: Extra, reasons?: readonly (string | undefined)[]): Plan {
  // A cloud instance's bill is shared by its jobs in proportion to their core-seconds.
  const work = new Map<number, { coreSec: number; jobs: number }>();
  const key = (o: number, i: number): number => o * 1e6 + i;
  // (summed in job-id order, so the figures do not depend on the order jobs are written in)
  const byName = new Int32Array(m.jobs.length);
  m.nameOrder.forEach((k, j) => (byName[k] = j));
  byName.forEach((j) => {
    const job = m.jobs[j]!;
    const c = s.choice[j]!;
    if (!m.offerings[c.offering]!.cloud) return;
    const w = work.get(key(c.offering, c.instance)) ?? { coreSec: 0, jobs: 0 };
    w.coreSec += job.cores * job.nodes * (c.end - c.start);
    w.jobs++;
    work.set(key(c.offering, c.instance), w);
  });
  const bill = new Map(s.instances.map((it) => [key(it.offering, it.index), instanceCost(m.offerings[it.offering]!, it.timeline.lastEnd - it.bootStart)]));
  const jobs: PlannedJob[] = m.jobs.map((job, j) => {
    const c = s.choice[j]!;
    const off = m.offerings[c.offering]!;
    let cost = c.cost - c.egress;
    if (off.cloud) {
      const w = work.get(key(c.offering, c.instance))!;
      const total = bill.get(key(c.offering, c.instance))!;
      cost = w.coreSec > 0 ? (total * job.cores * job.nodes * (c.end - c.start)) / w.coreSec : total / w.jobs;
    }
    return {
      id: job.id,
      site: off.siteName,
      instanceType: off.instanceType,
      instance: off.cloud ? c.instance : null,
      start: c.start,
      end: c.end,
      cost,
      reason: reasons?.[j] ?? reasonOf(m, s, j, x.currency, cost),
    };
  });
  const plan: Plan = {
    workflow: wf.name,
    objective: x.objective,
    makespan: s.makespan,
    cost: s.cost,
    currency: x.currency,
    algorithm: s.name,
    jobs,
    transfers: s.transfers.map((t) => ({
      file: m.files[t.file]!.id,
      from: m.siteNames[t.from]!,
      to: m.siteNames[t.to]!,
      start: t.start,
      end: t.end,
      bytes: m.files[t.file]!.bytes,
      cost: t.cost,
    })),
    instances: s.instances.map((it) => {
      const off = m.offerings[it.offering]!;
      return {
        site: off.siteName,
        instanceType: off.instanceType!,
        index: it.index,
        bootStart: it.bootStart,
        readyAt: it.readyAt,
        end: it.timeline.lastEnd,
        cost: instanceCost(off, it.timeline.lastEnd - it.bootStart),
      };
    }),
    costBreakdown: { cluster: s.costCluster, cloud: s.costCloud, egress: s.costEgress },
    notes: x.notes,
  };
  if (x.deadline !== undefined) plan.deadlineSec = x.deadline;
  if (x.budget !== undefined) plan.budget = x.budget;
  if (x.deadlineMet !== undefined) plan.deadlineMet = x.deadlineMet;
  if (x.budgetMet !== undefined) plan.budgetMet = x.budgetMet;
  return plan;
}

// ---- Incremental re-plan ---------------------------------------------------------------

/** A change of capacity: cluster sites' node counts, cloud instance types' `max`. */
export interface CapacityChange {
  /** site -> nodes (cluster sites). */
  nodes?: Record<string, number>;
  /** `site/instance-type` -> most instances at once (cloud sites). */
  max?: Record<string, number>;
}

/**
 * Re-plans a running workflow when capacity changes (an instance reclaimed, a site scaled, a
 * node lost), incrementally: the model (jobs, edges, files, feasibility) and the priorities
 * (upward ranks, PEFT's table) of the first plan are kept, the offerings' counts patched, and
 * the not-yet-started rest is re-placed by one list-scheduling pass of the strategy that won
 * the last full plan (for a deadline: the fastest pass and the as-late-as-possible one),
 * around the jobs that started, which keep their place. A full plan tries every strategy; this
 * is the one that served. Falls back to a full re-plan when the change touches what the kept
 * model depends on (a multinode job and a cluster's node count) or for a budget objective.
 */
export class IncrementalPlanner {
  private m: Model;
  private rank: Float64Array;
  private oct: Float64Array | null = null;
  private current: Plan;
  /** How many re-plans were incremental, and how many fell back to full. */
  readonly counts = { incremental: 0, full: 0 };
  /** How many jobs the last incremental re-plan placed again. */
  lastAffected = 0;
  /** The offerings' counts the current plan was made with. */
  private counted: number[];

  constructor(private readonly wf: Workflow, private platform: Platform, private readonly opts: PlanOptions = {}) {
    this.m = buildModel(wf, platform, opts);
    this.rank = upwardRanks(this.m);
    this.current = planModel(wf, platform, opts);
    this.counted = this.m.offerings.map((o) => o.count);
  }

  get plan(): Plan {
    return this.current;
  }

  /** The platform as it is now (counts changed). */
  get platformNow(): Platform {
    return this.platform;
  }

  /** Apply a capacity change and re-plan what has not started (see the class). */
  capacityChanged(change: CapacityChange, progress: Progress): Plan {
    if (!Number.isFinite(progress.now) || progress.now < 0) {
      throw new WarrenError('PLAN_BAD_PROGRESS', `progress.now ${progress.now} is not a time >= 0`, { hint: 'pass the seconds since the workflow started' });
    }
    this.platform = patchPlatform(this.platform, change);
    const budget = this.opts.budget ?? this.wf.policy.budget;
    const deadline = this.opts.deadlineSec ?? this.wf.policy.deadlineSec;
    let multinodeTouched = false;
    const prevCount = this.counted;
    for (const o of this.m.offerings) {
      const n = o.cloud ? change.max?.[o.key] : change.nodes?.[o.siteName];
      if (n === undefined) continue;
      if (!o.cloud && n !== o.count && this.m.jobs.some((j) => j.nodes > 1)) multinodeTouched = true;
      o.count = n;
    }
    if (multinodeTouched || (budget !== undefined && deadline === undefined)) {
      this.counts.full++;
      this.m = buildModel(this.wf, this.platform, this.opts, new Set(Object.keys(progress.jobs)));
      this.rank = upwardRanks(this.m);
      this.oct = null;
      this.counted = this.m.offerings.map((o) => o.count);
      this.current = planModel(this.wf, this.platform, this.opts, progress);
      return this.current;
    }
    this.counts.incremental++;
    const m = this.m;
    const prev = this.current;
    const fixed = pinnedJobs(m, progress);
    const n = m.jobs.length;
    // Which jobs the change touches: those not started whose place is gone (a lost instance,
    // an instance over the new max, a cluster with fewer nodes) or that were due before now,
    // and everything after them. The others keep their planned place (their capacity and
    // inputs are unchanged). When capacity only grew, nothing is touched: the not-started
    // rest is re-placed, so that it can use what was added.
    const affected = new Uint8Array(n);
    const closed = new Set(fixed.closed ?? []);
    const shrunk = new Set<number>();
    let grew = false;
    for (let o = 0; o < m.offerings.length; o++) {
      const off = m.offerings[o]!;
      if (!off.cloud) {
        const was = prevCount[o]!;
        if (off.count < was) shrunk.add(o);
        else if (off.count > was) grew = true;
        continue;
      }
      if (off.count > prevCount[o]!) grew = true;
      // Instances of the earlier plan, live ones with started jobs first, then by label: the first `count` stay.
      const labels = new Map<number, boolean>();
      for (let j = 0; j < n; j++) {
        const pj = prev.jobs[j]!;
        if (pj.instance === null || pj.site !== off.siteName || pj.instanceType !== off.instanceType) continue;
        if (closed.has(o * 1e6 + pj.instance)) continue;
        labels.set(pj.instance, (labels.get(pj.instance) ?? false) || fixed.pinned[j] !== undefined);
      }
      const order = [...labels].sort((a, b) => Number(b[1]) - Number(a[1]) || a[0] - b[0]);
      for (let k = off.count; k < order.length; k++) if (!order[k]![1]) closed.add(o * 1e6 + order[k]![0]);
    }
    const offIdx = new Map(m.offerings.map((off, o) => [`${off.siteName}/${off.instanceType ?? ''}`, o]));
    const offeringOf = (j: number): number => offIdx.get(`${prev.jobs[j]!.site}/${prev.jobs[j]!.instanceType ?? ''}`) ?? -1;
    const seeds: number[] = [];
    for (let j = 0; j < n; j++) {
      if (fixed.pinned[j]) continue;
      const pj = prev.jobs[j]!;
      const o = offeringOf(j);
      if (pj.start < progress.now - 1e-9 || o < 0 || shrunk.has(o) || (pj.instance !== null && closed.has(o * 1e6 + pj.instance))) seeds.push(j);
    }
    if (seeds.length === 0 && grew) for (let j = 0; j < n; j++) if (!fixed.pinned[j]) seeds.push(j);
    for (let q = 0; q < seeds.length; q++) {
      const j = seeds[q]!;
      if (affected[j]) continue;
      affected[j] = 1;
      for (const s2 of m.jobs[j]!.succs) if (!affected[s2] && !fixed.pinned[s2]) seeds.push(s2);
    }
    const reasons: (string | undefined)[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const job = m.jobs[j]!;
      if (fixed.pinned[j] || affected[j]) {
        if (affected[j] && !job.feasible.some((o) => m.offerings[o]!.count > 0)) {
          throw new WarrenError('PLAN_NO_FEASIBLE_SITE', `job "${job.id}" has no site left that can run it after the capacity change`, { hint: 'add capacity back (or a site) that can run it' });
        }
        continue;
      }
      const pj = prev.jobs[j]!;
      const o = offeringOf(j);
      fixed.pinned[j] = { offering: o, instance: pj.instance ?? -2, start: pj.start, end: pj.end };
      reasons[j] = pj.reason;
    }
    fixed.closed = closed;
    for (let o = 0; o < m.offerings.length; o++) prevCount[o] = m.offerings[o]!.count;
    const S = runner(m, fixed);
    const algo = this.current.algorithm;
    const cur = this.platform.currency;
    let s: Schedule;
    if (deadline !== undefined) {
      const fast = S(this.rank, eftCostSelect, 'eft-cost');
      if (fast.makespan > deadline + 1e-6) s = fast;
      else {
        const lft = latestFinish(m, fast, deadline);
        const alap = S(this.rank, withinSelect(lft), 'deadline-alap(1)', (j) => `latest finish ${formatDuration(lft[j]!)}`);
        s = alap.makespan <= deadline + 1e-6 && alap.cost < fast.cost ? alap : fast;
      }
    } else if (algo === 'heft') s = S(this.rank, heftSelect, 'heft');
    else if (algo === 'peft') {
      this.oct ??= octTable(m);
      s = S(octRanks(m, this.oct), peftSelect(m, this.oct), 'peft');
    } else s = S(this.rank, eftCostSelect, 'eft-cost');
    const notes = [`re-planned incrementally after a capacity change (${s.name})`];
    const x: Extra = { objective: deadline !== undefined ? 'deadline' : 'fastest', deadline, budget, notes, currency: cur };
    if (deadline !== undefined) {
      x.deadlineMet = s.makespan <= deadline + 1e-6;
      if (!x.deadlineMet) notes.push(`the deadline (${formatDuration(deadline)}) cannot be met after the capacity change: the earliest finish found is ${formatDuration(s.makespan)}`);
    }
    if (budget !== undefined) x.budgetMet = s.cost <= budget + 1e-9;
    this.current = toPlan(m, this.wf, s, x, reasons);
    this.lastAffected = affected.reduce((a, b) => a + b, 0);
    return this.current;
  }
}

function patchPlatform(p: Platform, change: CapacityChange): Platform {
  const sites: Platform['sites'] = { ...p.sites };
  const bad = (msg: string): WarrenError => new WarrenError('PLAN_BAD_VALUE', msg, { hint: 'give counts >= 0 of sites and instance types the platform has' });
  for (const [name, n] of Object.entries(change.nodes ?? {})) {
    const s = sites[name];
    if (!s || s.kind !== 'cluster') throw bad(`capacity change: "${name}" is not a cluster site of the platform`);
    if (!Number.isInteger(n) || n < 0) throw bad(`capacity change: site "${name}" nodes ${n} is not a whole number >= 0`);
    sites[name] = { ...s, nodes: n };
  }
  for (const [key, n] of Object.entries(change.max ?? {})) {
    const [name, type] = key.split('/') as [string, string | undefined];
    const s = sites[name];
    if (!s || s.kind !== 'cloud' || !type || !s.instanceTypes[type]) throw bad(`capacity change: "${key}" is not SITE/INSTANCE-TYPE of a cloud site of the platform`);
    if (!Number.isInteger(n) || n < 0) throw bad(`capacity change: "${key}" max ${n} is not a whole number >= 0`);
    sites[name] = { ...s, instanceTypes: { ...s.instanceTypes, [type]: { ...s.instanceTypes[type]!, max: n } } };
  }
  return { ...p, sites };
}
