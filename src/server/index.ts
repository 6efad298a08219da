// The orchestrator (in-process for `warren run`; the cluster server builds on it).
export { Orchestrator, newWorkflowId, logPaths, describeOwner, holderIsGone } from './orchestrator.js';
export type { RunOptions, DriveHooks, OrchestratorOptions } from './orchestrator.js';
export { PlanPlacement } from './placement.js';
export type { Placement } from './placement.js';
// The HTTPS JSON API (/api/v1) and its OpenAPI document (loaded on first use: ./http/lazy.ts).
export { buildApiServer, openApiDocument, openApiText } from './http/lazy.js';
export { SUBMIT_BODY_LIMIT, BODY_LIMIT, OPENAPI_COMMAND } from './http/constants.js';
export type { ApiBackend, ApiServer, ApiServerOptions, Principal, HealthView } from './http/app.js';
