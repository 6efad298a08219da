// Everything of cluster mode's server side, in one module that cluster-lazy.ts loads on first use.
export { MeshTls } from './mesh-tls.js';
export { NodeRegistry, MemoryNodeStore, connectPool } from './nodes.js';
export { agentRoutes } from './agent-routes.js';
export { RemoteAgent } from './remote-agent.js';
