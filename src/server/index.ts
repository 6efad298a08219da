// The orchestrator (in-process for `warren run`; the cluster server builds on it).
export { Orchestrator, newWorkflowId, logPaths, describeOwner, holderIsGone } from './orchestrator.js';
export type { RunOptions, DriveHooks, OrchestratorOptions } from './orchestrator.js';
export { PlanPlacement } from './placement.js';
export type { Placement } from './placement.js';
// The HTTPS JSON API (/api/v1) and its OpenAPI document.
export { buildApiServer, SUBMIT_BODY_LIMIT, BODY_LIMIT } from './http/app.js';
export type { ApiBackend, ApiServer, ApiServerOptions, Principal, HealthView } from './http/app.js';
export { openApiDocument, openApiText, OPENAPI_COMMAND } from './http/openapi.js';
