// The wire of the server–agent protocol (routes under /agent/v1 on the server's HTTPS port,
// mutual TLS but for the join): the bodies both ends send, the protocol version check, and the
// check of what a node says it has. The server's side is src/server/agent-routes.ts and
// src/server/nodes.ts; the agent's side is AgentDaemon (./remote.ts). docs/cluster-agent.md.
import { WarrenError, type WireError } from '../common/index.js';
import { AGENT_PROTOCOL, type AttemptExited, type AttemptReady, type AttemptStarted, type AttemptState, type LaunchEvent, type LaunchOrder, type LogRequest, type NodeInfo, type TaskAssignment } from './contract.js';

export type ProtocolVersion = { major: number; minor: number };

/** The prefix of every agent route. */
export const AGENT_ROUTE_PREFIX = '/agent/v1';

/** POST /agent/v1/join — no client certificate: the join token is the credential. */
export interface JoinRequest {
  protocol: ProtocolVersion;
  /** The join token (`warren token create`), used once. */
  token: string;
  /** PKCS#10 request (PEM) for the key the agent made; the server names it from info.name. */
  csr: string;
  info: NodeInfo;
}

/** The timers the server tells its agents. */
export interface AgentTimers {
  /** Heartbeat every this many ms. */
  heartbeatMs: number;
  /** Cut off from the server longer than this, an agent kills its attempts (self-fencing). */
  stopAfterMs: number;
  /** The longest long poll the server holds (the agent asks for at most this). */
  pollWaitMs: number;
}

export interface JoinResponse extends AgentTimers {
  protocol: ProtocolVersion;
  node: string;
  spiffeId: string;
  /** The node's X.509-SVID (PEM). */
  certPem: string;
  /** The cluster's trust bundle (PEM CA certificates). */
  bundlePem: string;
  /** The certificate's notAfter, ms since the epoch. */
  notAfter: number;
}

/** POST /agent/v1/renew — a new key's request, over mutual TLS with the current certificate. */
export interface RenewRequest {
  csr: string;
}

export interface RenewResponse {
  certPem: string;
  bundlePem: string;
  notAfter: number;
}

/** One report of the agent's journal; `seq` grows by one per report, per journal `epoch`.
 *  `ready` (protocol 1.5): a service's readiness probe passed. */
export type ReportItem =
  | { seq: number; type: 'started'; event: AttemptStarted }
  | { seq: number; type: 'exited'; event: AttemptExited }
  | { seq: number; type: 'launch'; event: LaunchEvent }
  | { seq: number; type: 'ready'; event: AttemptReady };

export interface AgentLoad {
  usedCores: number;
  queued: number;
  running: number;
}

/** POST /agent/v1/heartbeat — liveness, changes of the node, batched reports, the full list on (re)connect. */
export interface HeartbeatRequest {
  protocol: ProtocolVersion;
  /** The agent's journal identity: sequence numbers are unique within it. */
  epoch: string;
  /** Reports not yet acknowledged, in sequence order; a retried batch is applied once. */
  reports?: ReportItem[];
  /** Every attempt the agent knows (Agent.recover()), sent when it (re)connects or the server asks. */
  attempts?: AttemptState[];
  /** The node's resources, when they changed (always on the first heartbeat of a connection). */
  info?: NodeInfo;
  load?: AgentLoad;
  /** The node's health check's latest result, sent once after each check that changed it (protocol 1.2). */
  health?: HealthReport;
  /** The SHA-256 fingerprints of the CAs the agent trusts (its bundle.pem), every heartbeat (protocol 1.3): a CA rotation waits for it. */
  trust?: string[];
  /** The node is leaving by itself (protocol 1.6: idle, or near the end of its walltime), why: the
   *  server drains it (no new work) and the agent exits once what it runs ended. */
  leaving?: string;
}

/** What the node's health check (`warren agent --health-check CMD`) found: the server drains a
 *  node whose check fails (its output the reason) and undrains it when it passes again, if the
 *  check drained it. */
export interface HealthReport {
  ok: boolean;
  /** When the check ended, ms since the epoch (the node's clock). */
  at: number;
  /** The command that ran. */
  command: string;
  /** Its exit code; null when it was killed (timed out) or could not start. */
  exitCode: number | null;
  /** It did not end within its timeout and was killed (with everything it started). */
  timedOut: boolean;
  /** The end of its output (stdout and stderr together, at most 2 KiB), or why it could not run. */
  output: string;
  durationMs: number;
}

export type NodeState = 'ready' | 'down' | 'lost' | 'revoked';

export interface HeartbeatResponse extends AgentTimers {
  protocol: ProtocolVersion;
  /** Every report of this epoch with seq <= ack is applied: drop it from the journal. */
  ack: number;
  /** The server has no attempt list of this node (it restarted, or the node was down): send it. */
  resync: boolean;
  state: NodeState;
  drained: boolean;
  /** A CA rotation (protocol 1.3): trust these CAs (PEM) from now on; sent when the agent's `trust` differs. */
  bundlePem?: string;
  /** A CA rotation (protocol 1.3): the certificate this heartbeat came with is not from the CA that signs now: renew it now. */
  renew?: boolean;
}

/** POST /agent/v1/poll — a long poll for work. */
export interface PollRequest {
  /** Hold the request at most this long when nothing is queued (capped by the server's pollWaitMs). */
  waitMs: number;
  /** What the agent has taken from previous answers: `cursor` of the last one, under its `epoch`. */
  ack?: { epoch: string; cursor: number };
}

export interface KillOrder {
  attemptId: string;
  reason: 'canceled' | 'timeout' | 'stop-service';
}

export interface LogOrder {
  requestId: string;
  request: LogRequest;
}

export interface PollResponse {
  /** The server's queue identity (a restarted server has another one). */
  epoch: string;
  /** The cursor of the last item in this answer (ack it with the next poll); 0: nothing yet. */
  cursor: number;
  assignments: TaskAssignment[];
  kills: KillOrder[];
  /** Upload these logs with POST /agent/v1/logs/:requestId. */
  logRequests: LogOrder[];
  /** Stop these uploads (the reader went away). */
  stopLogs: string[];
  /** Orders about multinode jobs' daemons (protocol 1.1; absent from older servers). */
  launches?: LaunchOrder[];
  /** Workflows the server pruned: delete their run directories on this node (protocol 1.4). */
  forget?: string[];
  /** Port forwards to services running here (protocol 1.5): open each tunnel (GET
   *  /agent/v1/tunnels/:id, an upgrade) and join it to the service's port on this node. */
  tunnels?: TunnelOrder[];
}

/** A port forward to a service attempt on the node (protocol 1.5). */
export interface TunnelOrder {
  tunnelId: string;
  attemptId: string;
  port: number;
}

/** POST /agent/v1/runs (protocol 1.4): which of these workflows the server has, and whether they ended. */
export interface RunsRequest {
  /** At most 1000 workflow ids (the node's run directories). */
  workflows: string[];
}

export interface RunsResponse {
  /** The ones the store has; a workflow not listed is gone (pruned, or never there). */
  runs: { id: string; status: string; endedAt: number | null }[];
}

/** The body of an error answer of any agent route. */
export interface ErrorBody {
  error: WireError;
}

/** Refuse a peer whose protocol has another major version. `peer` says which end it is. */
export function checkProtocol(theirs: ProtocolVersion | undefined, peer: 'agent' | 'server'): void {
  const ours = AGENT_PROTOCOL;
  const other = peer === 'agent' ? 'server' : 'agent';
  if (!theirs || typeof theirs.major !== 'number' || typeof theirs.minor !== 'number') {
    throw new WarrenError('AGENT_PROTOCOL_MISMATCH', `the ${peer} did not say which agent protocol it speaks; this ${other} speaks ${ours.major}.${ours.minor}`, {
      hint: `upgrade the ${peer} to a Warren release that speaks agent protocol ${ours.major}.x`,
      details: { ours, theirs: theirs ?? null },
    });
  }
  if (theirs.major !== ours.major) {
    const older = theirs.major < ours.major ? peer : other;
    throw new WarrenError('AGENT_PROTOCOL_MISMATCH', `the ${peer} speaks agent protocol ${theirs.major}.${theirs.minor} and this ${other} speaks ${ours.major}.${ours.minor}: the major versions differ`, {
      hint: `upgrade the ${older} so that both speak the same major version (server and agents of one Warren release always do)`,
      details: { ours, theirs },
    });
  }
}

const MAX_CORES = 100_000;
const MAX_GPUS = 1024;
const MAX_LABELS = 256;

function bad(message: string, field: string, hint = 'the agent reported impossible resources: check its configuration (--cores, --memory) or upgrade it'): never {
  throw new WarrenError('AGENT_BAD_REPORT', message, { hint, details: { field } });
}

function isName(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= 255 && /^[A-Za-z0-9._-]+$/.test(s) && s !== '.' && s !== '..';
}

/**
 * Check what a node says it has: a name that is one SPIFFE path segment, whole positive cores
 * (at most 100000), whole positive memory, GPUs with whole non-negative indexes and memory.
 * Throws AGENT_BAD_REPORT naming the field.
 */
export function validateNodeInfo(info: NodeInfo, expectedName?: string): NodeInfo {
  if (typeof info !== 'object' || info === null) bad('the node info is not an object', 'info');
  const where = `node ${typeof info.name === 'string' ? JSON.stringify(info.name.slice(0, 100)) : '?'}`;
  if (!isName(info.name)) {
    bad(`${where}: the name is not a valid node name (one SPIFFE path segment: letters, digits, '.', '-', '_', at most 255)`, 'name', 'rename the node (warren agent --name), e.g. "n001"');
  }
  if (expectedName !== undefined && info.name !== expectedName) {
    bad(`${where}: the report names node "${info.name}" but the connection is node "${expectedName}"`, 'name', 'a node keeps the name it joined with; to rename it, join again with a token');
  }
  const c = info.cores;
  if (typeof c !== 'number' || !Number.isInteger(c) || c <= 0 || c > MAX_CORES) {
    bad(`${where}: ${String(c)} cores is impossible (a whole number from 1 to ${MAX_CORES})`, 'cores');
  }
  const m = info.memoryBytes;
  if (typeof m !== 'number' || !Number.isSafeInteger(m) || m <= 0) {
    bad(`${where}: ${String(m)} bytes of memory is impossible (a whole number of bytes above 0)`, 'memoryBytes');
  }
  if (!Array.isArray(info.gpus) || info.gpus.length > MAX_GPUS) bad(`${where}: gpus must be a list of at most ${MAX_GPUS} GPUs`, 'gpus');
  const seen = new Set<number>();
  info.gpus.forEach((g, i) => {
    if (typeof g !== 'object' || g === null) bad(`${where}: gpus[${i}] is not a GPU`, `gpus[${i}]`);
    if (typeof g.index !== 'number' || !Number.isInteger(g.index) || g.index < 0 || g.index >= MAX_GPUS || seen.has(g.index)) {
      bad(`${where}: gpus[${i}].index ${String(g.index)} is impossible (a whole number from 0, each once)`, `gpus[${i}].index`);
    }
    seen.add(g.index);
    if (typeof g.memoryBytes !== 'number' || !Number.isSafeInteger(g.memoryBytes) || g.memoryBytes < 0) {
      bad(`${where}: gpus[${i}].memoryBytes ${String(g.memoryBytes)} is impossible (a whole number of bytes, at least 0)`, `gpus[${i}].memoryBytes`);
    }
    if (typeof g.model !== 'string' || g.model.length > 256) bad(`${where}: gpus[${i}].model must be a string of at most 256 characters`, `gpus[${i}].model`);
  });
  if (typeof info.labels !== 'object' || info.labels === null || Array.isArray(info.labels)) bad(`${where}: labels must be an object of strings`, 'labels');
  const labels = Object.entries(info.labels);
  if (labels.length > MAX_LABELS) bad(`${where}: ${labels.length} labels is too many (at most ${MAX_LABELS})`, 'labels');
  for (const [k, v] of labels) {
    if (k.length === 0 || k.length > 256 || typeof v !== 'string' || v.length > 1024) bad(`${where}: label ${JSON.stringify(k.slice(0, 100))} must be a non-empty name (at most 256) with a string value (at most 1024)`, `labels.${k.slice(0, 100)}`);
  }
  if (typeof info.platform !== 'string' || !/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(info.platform)) {
    bad(`${where}: platform ${JSON.stringify(info.platform)} is not os/arch as OCI names it (e.g. linux/amd64)`, 'platform');
  }
  if (typeof info.containers !== 'boolean') bad(`${where}: containers must be true or false`, 'containers');
  if (typeof info.agentVersion !== 'string' || info.agentVersion.length > 100) bad(`${where}: agentVersion must be a string`, 'agentVersion');
  return info;
}
