// The orchestrator (in-process for `warren run`; the cluster server builds on it).
export { Orchestrator, newWorkflowId, logPaths, describeOwner, holderIsGone } from './orchestrator.js';
export type { RunOptions, DriveHooks, OrchestratorOptions } from './orchestrator.js';
export { PlanPlacement } from './placement.js';
export type { Placement } from './placement.js';
