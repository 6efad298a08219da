// Node agents: admission and execution through runtimes; the agent contract (what the server
// asks of a node) and its remote form (the `warren agent` daemon and the wire of /agent/v1).
export { LocalAgent } from './local.js';
export type { AgentTask, AgentListener, LocalAgentOptions } from './local.js';
export { AGENT_PROTOCOL } from './contract.js';
export type {
  Agent,
  AgentListener as AttemptListener,
  AdmissionRequest,
  AttemptExited,
  AttemptStarted,
  AttemptState,
  GpuInfo,
  LogRequest,
  NodeInfo,
  SubmitHooks,
  TaskAssignment,
  TaskUser,
} from './contract.js';
export { AGENT_ROUTE_PREFIX, checkProtocol, validateNodeInfo } from './protocol.js';
export type {
  AgentLoad,
  AgentTimers,
  ErrorBody,
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
} from './protocol.js';
export { AgentDaemon, JOURNAL_FILE } from './remote.js';
export type { AgentDaemonOptions, AgentDaemonTimers, DaemonStatus } from './remote.js';
