// The orchestrator (in-process for `warren run`; the cluster server builds on it).
export { Orchestrator, newWorkflowId, logPaths, describeOwner, holderIsGone } from './orchestrator.js';
export type { RunOptions, DriveHooks, OrchestratorOptions } from './orchestrator.js';
export { PlanPlacement } from './placement.js';
export type { Placement } from './placement.js';
// Cluster mode: the server's side of the agents (mutual TLS, the node registry, /agent/v1, the remote Agent).
export { MeshTls } from './mesh-tls.js';
export type { MeshTlsOptions, MeshTlsEvents, MeshLog } from './mesh-tls.js';
export { NodeRegistry, MemoryNodeStore } from './nodes.js';
export type { NodeRecord, NodeStore, NodeState, NodeRegistryOptions, NodeRegistryTimers, NodeRegistryEvents, NodeWatcher } from './nodes.js';
export { agentRoutes } from './agent-routes.js';
export type { AgentRoutesOptions } from './agent-routes.js';
export { RemoteAgent } from './remote-agent.js';
export type { RemoteAgentOptions } from './remote-agent.js';
