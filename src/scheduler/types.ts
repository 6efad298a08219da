// What the planner produces. Times are seconds from the start of the workflow, costs in the
// platform's currency.

export interface PlannedJob {
  /** Job name; `name[i]` for task i of a task array. */
  id: string;
  site: string;
  /** Cloud instance type, null on a cluster. */
  instanceType: string | null;
  /** Which instance of that type (0-based, in the order the plan starts them); null on a cluster. */
  instance: number | null;
  start: number;
  end: number;
  /** Compute cost of this job: cluster core-hours; in a cloud, its share of its instance's bill
   *  in proportion to core-seconds. Job costs plus transfer costs add up to the plan's cost. */
  cost: number;
  /** Why this site: data gravity, price, availability, and the sites that were ruled out. */
  reason: string;
}

export interface PlannedTransfer {
  /** File id (WfFormat) or URI (volume ingress). */
  file: string;
  from: string;
  to: string;
  start: number;
  end: number;
  bytes: number;
  /** Egress charges. */
  cost: number;
}

/** A cloud instance the plan starts. */
export interface PlannedInstance {
  site: string;
  instanceType: string;
  index: number;
  /** When it is requested (billing starts). */
  bootStart: number;
  /** When it can run work. */
  readyAt: number;
  /** When its last job ends (it is released then). */
  end: number;
  cost: number;
}

export type Objective = 'fastest' | 'deadline' | 'budget';

export interface Plan {
  workflow: string;
  objective: Objective;
  makespan: number;
  cost: number;
  currency: string;
  deadlineSec?: number;
  budget?: number;
  /** Set when there is a deadline: false when no plan meets it (this plan is then the fastest found). */
  deadlineMet?: boolean;
  /** Set when there is a budget: false when no plan fits it (this plan is then the cheapest found). */
  budgetMet?: boolean;
  /** Which algorithm produced it (the planner tries several and keeps the best). */
  algorithm: string;
  jobs: PlannedJob[];
  transfers: PlannedTransfer[];
  instances: PlannedInstance[];
  /** Cost split: compute on clusters, cloud instances, data egress. */
  costBreakdown: { cluster: number; cloud: number; egress: number };
  /** Remarks for the user (e.g. why a deadline cannot be met). */
  notes: string[];
}

export interface PlanOptions {
  /** Runtime estimates in seconds by job name (e.g. from the history of earlier runs); win over `estimate`. */
  estimates?: Record<string, number>;
  /** Runtime of jobs without any estimate (default 60 s). */
  defaultEstimateSec?: number;
  /** Override the workflow's policy. */
  deadlineSec?: number;
  budget?: number;
  /** Use spot prices where an instance type has one (default: on-demand prices). */
  spot?: boolean;
}
