// Node agents: the agent contract, the agent that runs work on this machine, and the
// remote form of the contract (the `warren agent` daemon and the wire of /agent/v1).
export * from './contract.js';
export { LocalAgent, logPaths, volumeDir, declaredPorts, writeJobFiles } from './local.js';
export { describeProbe, probeOnce, ProbeRunner } from './probe.js';
export type { ProbeResult, ProbeExec, ProbeRunnerOptions } from './probe.js';
export { serviceEnv, endpointUrl, endpointPath, envName, hostsLines } from './services.js';
export type { LocalAgentOptions } from './local.js';
export { AGENT_ROUTE_PREFIX, checkProtocol, validateNodeInfo } from './protocol.js';
export type {
  AgentLoad,
  AgentTimers,
  ErrorBody,
  HealthReport,
  HeartbeatRequest,
  HeartbeatResponse,
  JoinRequest,
  JoinResponse,
  KillOrder,
  LogOrder,
  NodeState,
  PollRequest,
  PollResponse,
  ProtocolVersion,
  RenewRequest,
  RenewResponse,
  ReportItem,
  RunsRequest,
  RunsResponse,
  TunnelOrder,
} from './protocol.js';
// The `warren agent` daemon, loaded on first use (undici and the mesh: ~0.2 s that `warren run` must not pay).
export { loadAgentDaemon, JOURNAL_FILE } from './remote-lazy.js';
export type { AgentDaemon, AgentDaemonOptions, AgentDaemonTimers, AgentDaemonEvents, AgentRetentionOptions, AgentLifetime, DaemonStatus, DaemonLog } from './remote.js';
export { nodePolicy } from './policy.js';
export type { NodePolicy } from './policy.js';
export { HealthChecker, runHealthCheck, DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_TIMEOUT_MS } from './health.js';
export type { HealthCheckOptions } from './health.js';
export { composeNodeAgent } from './node.js';
export { parseServerUrl } from './servers.js';
export type { NodeAgentOptions } from './node.js';
export { parseNvidiaSmi, discoverNodeGpus } from './gpus.js';
export { planRetention } from './retention-policy.js';
export type { RetentionPolicy, RetentionPlan, RunDirFacts, ImageFacts, RunReason, ImageReason } from './retention-policy.js';
export { NodeRetention, removeTree, treeBytes, isInside } from './retention.js';
export type { NodeRetentionOptions, SweepReport, InUse, WorkflowEnds } from './retention.js';
// Ad-hoc containers and instances (also loaded alone by the CLI: ./adhoc/index.ts).
export * from './adhoc/index.js';
