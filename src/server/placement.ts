// Placement of a workflow's jobs on sites, from the planner's plan, re-planned while it
// runs. The planner (src/scheduler) is pure; this class keeps the run's progress and asks
// it for a new plan when a job's runtime strays from its estimate.

import { replanWorkflow, planWorkflow, type Plan, type Platform, type PlanOptions, type JobProgress } from '../scheduler/index.js';
import type { Workflow } from '../workflow/index.js';

export interface Placement {
  /** Site of a job unit (`job` or `job[task]`). */
  siteOf(key: string): string;
  /** Seconds of data transfer the plan puts before this unit at its site. */
  stageInSec(key: string): number;
  /** Relative speed of a site's cores (1 = the reference core). */
  speedOf(site: string, key?: string): number;
  started(key: string, atMs: number): void;
  /** A unit ended. Returns a message when the rest of the workflow was re-planned. */
  ended(key: string, atMs: number): string | null;
}

/** How far a runtime may stray from its estimate before the rest is re-planned: by this
 *  fraction, and by at least this many seconds of wall time (start-up noise is not news). */
const REPLAN_DEVIATION = 0.25;
const REPLAN_MIN_WALL_SEC = 0.5;

export class PlanPlacement implements Placement {
  private plan: Plan;
  private readonly progress = new Map<string, JobProgress>();
  private readonly speeds = new Map<string, number>();
  replans = 0;

  /**
   * @param timeScale wall seconds per plan second (the `--simulate` factor; 1 for real runs)
   */
  constructor(
    private readonly wf: Workflow,
    private readonly platform: Platform,
    private readonly opts: PlanOptions,
    private readonly t0: number,
    private readonly timeScale = 1,
  ) {
    this.plan = planWorkflow(wf, platform, opts);
    for (const s of Object.values(platform.sites)) {
      if (s.kind === 'cluster') this.speeds.set(s.name, s.speed);
      else if (s.kind === 'slurm') this.speeds.set(s.mode === 'pilot' ? `${s.name}/pilot` : s.name, s.speed);
      else for (const it of Object.values(s.instanceTypes)) this.speeds.set(`${s.name}/${it.name}`, it.speed);
    }
  }

  get current(): Plan {
    return this.plan;
  }

  private job(key: string) {
    return this.plan.jobs.find((j) => j.id === key);
  }

  siteOf(key: string): string {
    return this.job(key)?.site ?? Object.keys(this.platform.sites)[0]!;
  }

  stageInSec(key: string): number {
    const j = this.job(key);
    if (!j) return 0;
    const spec = this.wf.jobs[key.replace(/\[\d+\]$/, '')];
    const inputs = new Set(spec?.inputs ?? []);
    let wait = 0;
    for (const t of this.plan.transfers) if (t.to === j.site && inputs.has(t.file)) wait = Math.max(wait, t.end - t.start);
    return wait;
  }

  speedOf(site: string, key?: string): number {
    const j = key ? this.job(key) : undefined;
    if (j?.instanceType) return this.speeds.get(`${site}/${j.instanceType}`) ?? 1;
    return this.speeds.get(site) ?? 1;
  }

  /** Cores a site offers at most (clusters: all nodes; clouds: every instance type at its max). */
  static siteCores(platform: Platform, site: string): number {
    const s = platform.sites[site];
    if (!s) return 0;
    if (s.kind === 'cluster') return s.nodes * s.cores;
    if (s.kind === 'slurm') return s.maxPilots * s.pilot.cores;
    return Object.values(s.instanceTypes).reduce((n, it) => n + it.cores * it.max, 0);
  }

  private planSec(ms: number): number {
    return (ms - this.t0) / 1000 / this.timeScale;
  }

  started(key: string, atMs: number): void {
    const j = this.job(key);
    if (!j) return;
    const start = this.planSec(atMs);
    this.progress.set(key, { site: j.site, instanceType: j.instanceType, instance: j.instance, start, end: start + (j.end - j.start) });
  }

  ended(key: string, atMs: number): string | null {
    const p = this.progress.get(key);
    const j = this.job(key);
    if (!p || !j) return null;
    const planned = j.end - j.start;
    p.end = this.planSec(atMs);
    const actual = p.end - p.start;
    if (planned <= 0 || Math.abs(actual - planned) / planned <= REPLAN_DEVIATION || Math.abs(actual - planned) * this.timeScale < REPLAN_MIN_WALL_SEC) return null;
    // The estimate was off: learn it for the job's other units, then re-plan what has not started.
    const name = key.replace(/\[\d+\]$/, '');
    const estimates = { ...(this.opts.estimates ?? {}), [name]: actual };
    this.opts.estimates = estimates;
    const before = this.plan.makespan;
    this.plan = replanWorkflow(this.wf, this.platform, { now: Math.max(0, this.planSec(atMs)), jobs: Object.fromEntries(this.progress) }, this.opts);
    this.replans++;
    return `${key} took ${actual.toFixed(1)}s instead of ${planned.toFixed(1)}s: re-planned the rest (makespan ${before.toFixed(0)}s -> ${this.plan.makespan.toFixed(0)}s)`;
  }
}
