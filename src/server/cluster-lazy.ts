// The server side of cluster mode (./cluster.ts), loaded on first use: it brings the mesh
// (@peculiar/x509), undici and ajv, which `warren run` (it imports this subsystem for the
// orchestrator) must not load.
export type ClusterModule = typeof import('./cluster.js');

/** MeshTls, NodeRegistry, MemoryNodeStore, agentRoutes, RemoteAgent, connectPool. */
export async function loadCluster(): Promise<ClusterModule> {
  return import('./cluster.js');
}
