// The orchestrator (accepts runs, owns them through leases) and the driver of one run.
export { Orchestrator, newWorkflowId, describeOwner, holderIsGone } from './orchestrator.js';
export type { OrchestratorOptions } from './orchestrator.js';
export { RunDriver, systemClock } from './driver.js';
export type { Clock, DriveHooks, RunOptions, RunDriverOptions } from './driver.js';
export { PlanPlacement } from './placement.js';
export type { Placement } from './placement.js';
export { RunHub } from './hub.js';
export { pruneRequest, pruneRuns, checkPrunable, RetentionPruner } from './retention.js';
export { NodeImageBuilds, NODE_IMAGE_ANSWER_MS } from './nodeimages.js';
export type { PruneRunsOptions, PruneRunsReport, PrunerOptions } from './retention.js';
export { summaryOf, detailOf, jobCounts, withStandIns, checkLogTarget, followStore, serviceTarget, checkServiceForward } from './views.js';
export { ClusterPool, gpusOf } from './pool.js';
export type { NodeDirectory, PoolOptions } from './pool.js';
// The HTTPS JSON API (/api/v1) and its OpenAPI document (loaded on first use: ./http/lazy.ts).
export { buildApiServer, openApiDocument, openApiText } from './http/lazy.js';
export { SUBMIT_BODY_LIMIT, BODY_LIMIT, OPENAPI_COMMAND } from './http/constants.js';
export type { ApiBackend, ApiServer, ApiServerOptions, Principal, HealthView } from './http/app.js';
// Cluster mode: the server's side of the agents (MeshTls, the node registry, the /agent/v1
// routes, RemoteAgent, connectPool), loaded on first use (mesh, undici and ajv cost ~0.2 s
// that `warren run` must not pay): `const { NodeRegistry, MeshTls, agentRoutes } = await loadCluster()`.
export { loadCluster } from './cluster-lazy.js';
export type { ClusterModule } from './cluster-lazy.js';
export type { MeshTls, MeshTlsOptions, MeshTlsEvents, MeshLog } from './mesh-tls.js';
export type { NodeRegistry, MemoryNodeStore, RegisteredNode, NodeStore, NodeRegistryOptions, NodeRegistryTimers, NodeRegistryEvents, NodeWatcher, PoolEvents, LogSink } from './nodes.js';
export type { AgentRoutesOptions } from './agent-routes.js';
export type { RemoteAgent, RemoteAgentOptions } from './remote-agent.js';
