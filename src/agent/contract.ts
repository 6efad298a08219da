// The agent contract: everything the server asks of a node, and everything a node tells the
// server. The local agent (in-process, `warren run`) and the remote agent (a proxy to a
// `warren agent` daemon over mutual TLS) both implement `Agent`, and both pass the one
// contract suite in test/agent/contract.ts.
//
// A task is *node-independent*: it names the workflow, the job's spec, the task index and
// the attempt; the node resolves everything local (job script, working directory, volume
// directories, log files, secrets, data transfers, the user's Unix account).

import type { WireError } from '../common/index.js';
import type { ExitReason } from '../runtime/index.js';
import type { JobSpec, ServiceSpec, VolumeSpec } from '../workflow/index.js';

/** Version of the server–agent protocol; both ends refuse a peer with another major. */
export const AGENT_PROTOCOL = { major: 1, minor: 6 } as const;

/** The protocol minor from which an agent may say that it is leaving (1.6: `leaving` in its
 *  heartbeats, `warren agent --idle-exit/--until`): the server drains it. */
export const LEAVING_PROTOCOL_MINOR = 6;

/** The protocol minor from which an agent runs services' readiness probes and reports `ready`,
 *  and serves port-forward tunnels to them (1.5). A service on an older agent is counted ready
 *  when it started (its probe is not run), and cannot be port-forwarded through the server. */
export const SERVICES_PROTOCOL_MINOR = 5;

/** The protocol minor from which a server answers /agent/v1/runs and sends `forget` orders (1.4: retention). */
export const RETENTION_PROTOCOL_MINOR = 4;

/** The protocol minor from which an agent runs multinode (MPI) gangs (1.1). */
export const GANG_PROTOCOL_MINOR = 1;

/** The protocol minor from which an agent reports its health check's results (1.2). Older
 *  servers ignore the field (heartbeat bodies may carry more than they know). */
export const HEALTH_PROTOCOL_MINOR = 2;

/** The device names a job's `resource.devices` may ask GPUs with. */
export const GPU_DEVICE_KEYS = ['nvidia.com/gpu', 'gpu', 'amd.com/gpu'] as const;

/** How many GPUs a job asks for (per node). */
export function gpusOfJob(j: JobSpec | undefined): number {
  const d = j?.resources.devices ?? {};
  let n = 0;
  for (const k of GPU_DEVICE_KEYS) n += d[k] ?? 0;
  return n;
}

export interface GpuInfo {
  index: number;
  model: string;
  memoryBytes: number;
}

/** What a node has, as reported by its agent. */
export interface NodeInfo {
  name: string;
  cores: number;
  memoryBytes: number;
  gpus: GpuInfo[];
  labels: Record<string, string>;
  /** `os/arch` as OCI names it, e.g. linux/amd64. */
  platform: string;
  /** A container runtime (runc) is usable on this node. */
  containers: boolean;
  /** Images already in this node's cache (URIs), for the scheduler's score. */
  cachedImages?: string[];
  /** Addresses other nodes reach this one at (MPI daemons and ranks), first preferred. */
  addresses?: string[];
  agentVersion: string;
  protocol: { major: number; minor: number };
}

/** Who the task runs as: the Warren user and the Unix account it maps to. */
export interface TaskUser {
  name: string;
  unixUser: string;
}

/** One unit of work for a node, without any node-local path. */
export interface TaskAssignment {
  /** `workflowId/key/attempt`: unique across the cluster and forever. */
  attemptId: string;
  workflowId: string;
  /** Engine unit key (`job:align`, `job:align[7]`, `ingress:ref`, `egress:@egress`). */
  key: string;
  attempt: number;
  kind: 'job' | 'ingress' | 'egress';
  /** The job (for kind job) or the volume (ingress) it concerns; '@egress' for egress. */
  name: string;
  task: number | null;
  /** The job's validated spec (kind job). */
  job?: JobSpec;
  /** Volumes the unit touches (mounted by the job, filled by ingress, drained by egress). */
  volumes: VolumeSpec[];
  /** Replace the command by `sleep estimate × factor` (WfFormat replay, `--simulate`). */
  simulate?: number;
  /** With simulate: sleep exactly this long instead (a site's speed already applied). */
  sleepSec?: number;
  /** Absent on the embedded default: run as the agent's own user. */
  user?: TaskUser;
  /** The lease term of the run driver that dispatched it (fencing). */
  term: number;
  /** In a cluster: the node it must run on (the workflow's volumes live there: compute goes
   *  to the data). Absent: any node. */
  pin?: string;
  /** The workflow's image trust policy (with the node's own, the one rule of src/image). */
  trust?: { requireSigned?: boolean; trustedKeys?: string[] };
  /** A multinode job's place on this node (cluster mode; docs/mpi.md). Absent for a multinode
   *  job on one machine: its nodes' ranks then all run here. */
  gang?: GangInfo;
  /** The workflow's services that are ready when this unit is dispatched, and where they are:
   *  the job's variables (WARREN_SERVICE_<NAME>_HOST, FB_ENDPOINT_URL_<ENDPOINT>, ...) and, in
   *  a container, `NAME.svc` host names (docs/workflow-format.md, "Services at run time"). */
  services?: ServiceLocation[];
}

/** Where a ready service of the workflow is reached from the job's node. */
export interface ServiceLocation {
  name: string;
  /** The address its ports are on (the host's network of its node); '127.0.0.1' on the same node. */
  host: string;
  /** The node it runs on (cluster mode). */
  node?: string;
  spec: ServiceSpec;
}

/** The nodes of a multinode job, as each of them is told. */
export interface GangInfo {
  /** 0: the launcher (runs mpirun / mpiexec); others: host the daemons the launcher starts. */
  index: number;
  /** Every node of the gang in rank order, with the address its peers reach it at. */
  nodes: { name: string; address?: string }[];
  /** The unit's attempt (the launcher's); members' attempt ids are `<launcher>#<index>`. */
  launcher: string;
}

/** Node -> server, about a multinode job's daemons (forwarded by the server to the gang). */
export type LaunchEvent =
  /** The launcher's hook asks for `command` on the gang's node `host`. */
  | { type: 'request'; attemptId: string; launchId: string; host: string; command: string }
  /** The hook went away before the daemon ended (the launcher tears down): kill it. */
  | { type: 'cancel'; attemptId: string; launchId: string }
  /** A daemon started for `launchId` on a member ended. */
  | { type: 'exited'; attemptId: string; launchId: string; exitCode: number | null; signal: string | null; message?: string }
  /** A rank failed (told by its wrapper): the job's failure names it. */
  | { type: 'rank-exit'; attemptId: string; rank: number | null; exitCode: number | null; signal: number | null };

/** Server -> node. */
export type LaunchOrder =
  /** On a member: start this daemon command inside the job's copy here. */
  | { type: 'start'; attemptId: string; launchId: string; command: string }
  | { type: 'kill'; attemptId: string; launchId: string }
  /** On the launcher: the daemon of `launchId` ended (its hook exits with the status). */
  | { type: 'exited'; attemptId: string; launchId: string; exitCode: number | null; signal: string | null; message?: string };

/** What is needed to decide whether a node could ever run a job. */
export interface AdmissionRequest {
  name: string;
  /** Per node (a multinode job asks for this on each of its nodes). */
  cores: number;
  /** A multinode job's node count (absent: 1). */
  nodes?: number;
  memoryBytes: number;
  gpus: number;
  container: boolean;
  user?: TaskUser;
}

export interface AttemptStarted {
  attemptId: string;
  /** The node it runs on (set by pools of nodes; a single node's agent may leave it out). */
  node?: string;
  pid: number | null;
  cgroup: string | null;
  at: number;
}

/** A service became ready: its readiness probe passed (at once, for a service without one). */
export interface AttemptReady {
  attemptId: string;
  /** The address the service's ports are reached at from other nodes (its node's; on the
   *  embedded default '127.0.0.1'). */
  host?: string;
  /** What passed, e.g. `readiness probe http-get http://127.0.0.1:8080/ passed`. */
  message?: string;
  at: number;
}

export interface AttemptExited {
  attemptId: string;
  exitCode: number | null;
  signal: string | null;
  /** `not-ready`: a service whose readiness probe never passed (the message has its last result). */
  reason: ExitReason | 'node-lost' | 'agent-restarted' | 'not-ready';
  message?: string;
  durationMs: number;
  /** A structured failure when the node could not run it (spawn error, bad image, no account). */
  failure?: WireError;
  at: number;
}

export interface AgentListener {
  started(ev: AttemptStarted): void;
  exited(ev: AttemptExited): void;
  /** Progress of a data unit (bytes moved, waiting on another process's download lock). */
  progress?(attemptId: string, p: import('../data/index.js').TransferProgress): void;
  /** About a multinode job's daemons (cluster mode: the daemon forwards it to the server). */
  launch?(ev: LaunchEvent): void;
  /** A service is ready (protocol 1.5; the cluster pool makes one up for older agents). */
  ready?(ev: AttemptReady): void;
}

/** An attempt the agent knows about after a restart or on reconnect. */
export interface AttemptState {
  attemptId: string;
  state: 'running' | 'exited';
  pid: number | null;
  cgroup: string | null;
  startedAt: number | null;
  exit?: AttemptExited;
}

export interface LogRequest {
  workflowId: string;
  job: string;
  task: number | null;
  stream: 'stdout' | 'stderr';
  /** Byte offset to start at (0: the beginning). */
  offset?: number;
  /** Keep streaming what the job appends until it ends or `signal` aborts. */
  follow?: boolean;
}

export interface SubmitHooks {
  /** Called once the task's process exists, before its command runs; the command runs only
   *  after it resolved (the attempt is durable). A remote agent's proxy resolves it before
   *  it sends the assignment (the attempt row is written first). */
  durable?: (info: { pid: number | null; cgroup: string | null; node?: string }) => Promise<void>;
}

export interface Agent {
  /** The node's name and resources. */
  info(): NodeInfo;
  /** Could this node ever run it? A WarrenError saying why not, or null. */
  admit(req: AdmissionRequest): import('../common/index.js').WarrenError | null;
  /** Queue a task; it starts when it fits (started/exited reported to the listener). */
  submit(task: TaskAssignment, hooks?: SubmitHooks): void;
  /** Stop a queued or running attempt (exited is reported with that reason). */
  kill(attemptId: string, reason: 'canceled' | 'timeout' | 'stop-service'): void;
  /** Take over an attempt a previous driver dispatched and that may still run (cluster mode,
   *  after a server restart): its reports come to the listener. Agents whose attempts die
   *  with their driver (the in-process agent) do not have it; their drivers stop what a dead
   *  one left instead. */
  adopt?(attemptId: string, node: string | null, task?: TaskAssignment, opts?: { pid?: number | null }): void;
  /** Attempts this node still knows of (after a restart: recovered from its data directory). */
  recover(): Promise<AttemptState[]>;
  /** A job's log, from `offset`; with `follow`, until the attempt ends or `signal` aborts. */
  logs(req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  setListener(l: AgentListener): void;
  /** An agent that serves several runs at once (the cluster pool): this workflow's reports go
   *  to `l` (attempt ids are `workflowId/key/attempt`); returns the unsubscribe. Without it, a
   *  run takes the agent's one listener (setListener). */
  listen?(workflowId: string, l: AgentListener): () => void;
  /** An order about a multinode job's daemons (agents that run gangs). */
  launch?(order: LaunchOrder): void;
  /** Queue and running counts (the driver's launch window). */
  readonly load: { usedCores: number; queued: number; running: number };
  /** What its running and queued tasks use on this node: their workflows (run directories)
   *  and image URIs. Retention never removes these (./retention.ts). */
  inUse?(): { workflows: Set<string>; images: Set<string> };
  /** The address other nodes reach `node` at (a pool of nodes; undefined: not known). */
  addressOf?(node: string): string | undefined;
  /** A TCP stream to `port` of a running service attempt, on the node that runs it (port
   *  forwarding). Refused (a WarrenError) when the attempt is not running here, or its node
   *  cannot serve one. */
  connect?(attemptId: string, port: number): Promise<import('node:stream').Duplex>;
  close(): Promise<void>;
}
