// The scheduler: hybrid placement of workflows across clusters and cloud regions.
// planner/ holds the site-level planner (pure); cluster/ the node scheduler inside a cluster
// (pure).
export { parsePlatform, computeRoutes, dataSite, platformToObject } from './platform.js';
export type { ParsePlatformOptions, Platform, Site, ClusterSite, CloudSite, SlurmSite, InstanceType, Link, Route, DataLocation } from './platform.js';
export { planWorkflow, replanWorkflow, heft, lowerBound, IncrementalPlanner } from './planner/plan.js';
export type { Progress, JobProgress, CapacityChange } from './planner/plan.js';
export type { Plan, PlannedJob, PlannedTransfer, PlannedInstance, PlanOptions, Objective } from './types.js';
// Cluster mode: the node scheduler (filters, scores, select; fair share; EASY backfill).
export { scheduleCluster } from './cluster/schedule.js';
export { parseConstraint, constraintHolds } from './cluster/constraints.js';
export type { Constraint } from './cluster/constraints.js';
export { fairShareFactors } from './cluster/fairshare.js';
export { buildStack } from './cluster/stages.js';
export type { NodeFilter, CapacityFilter, Scorer, Selector, Refusal, Stack } from './cluster/stages.js';
export type {
  ClusterNode,
  PendingJob,
  RunningJob,
  ScheduleInput,
  ScheduleOptions,
  ScheduleResult,
  Placement,
  Status,
  Reservation,
  PendingResult,
  FairShareRow,
  Strategy,
} from './cluster/types.js';
export { decideElastic, demandFromPlan, checkElastic, billedSec as elasticBilledSec, instanceCost as elasticInstanceCost } from './elastic.js';
export type { ElasticSite, ElasticInstance, ElasticInput, ElasticAction, ElasticState } from './elastic.js';
