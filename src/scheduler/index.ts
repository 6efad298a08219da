// The scheduler: hybrid placement of workflows across clusters and cloud regions.
// planner/ holds the site-level planner (pure); node placement inside a cluster will sit
// beside it later.
export { parsePlatform, computeRoutes, dataSite, platformToObject } from './platform.js';
export type { ParsePlatformOptions, Platform, Site, ClusterSite, CloudSite, InstanceType, Link, Route, DataLocation } from './platform.js';
export { planWorkflow, replanWorkflow, heft, lowerBound } from './planner/plan.js';
export type { Progress, JobProgress } from './planner/plan.js';
export type { Plan, PlannedJob, PlannedTransfer, PlannedInstance, PlanOptions, Objective } from './types.js';
