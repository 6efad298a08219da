// The client API: what the CLI (and the web UI) ask of Warren, embedded in the CLI's own
// process (`warren run` on one machine) or over HTTPS to a server. Both clients implement
// `WarrenClient`; the HTTP routes under /api/v1 map one to one onto these calls, and the
// wire shapes here are the ones the routes' JSON schemas describe (docs/api/openapi.json).

import type { UnitSnapshot, WorkflowStatus } from '../engine/index.js';
import type { WireError } from '../common/index.js';
import type { InventoryNode, InventoryNodeView, NodeChangeRequest, NodeImage, ProfileChangeRequest, ProfileRecord } from '../provision/index.js';

export const API_VERSION = 'v1';

/** A workflow as a client submits it: the file's text (the server parses and validates it
 *  again: it never trusts a client's parse) and where it came from, for messages. */
export interface SubmitRequest {
  /** The workflow file's text (Fuzzfile YAML or WfFormat JSON). */
  source: string;
  /** The file's name as the user typed it (for file:line:col in errors). */
  filename: string;
  options?: {
    failFast?: boolean;
    /** WfFormat replay: sleep estimate × factor instead of each command. */
    simulate?: number;
  };
  /** Content-addressed uploads of the workflow's local inputs: original path -> sha256. */
  uploads?: Record<string, string>;
  /** Embedded client only (never sent): the workflow as the CLI already parsed it, and a
   *  platform file to replay it across sites (`--platform` with `--simulate`). */
  local?: { parsed?: import('../workflow/index.js').Workflow; platformFile?: string };
}

export interface WorkflowSummary {
  id: string;
  name: string;
  status: WorkflowStatus;
  owner: string | null;
  file: string | null;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  cancelRequested: boolean;
  /** Units per state. */
  counts: Record<string, number>;
  /** Who drives it now (a process or server), when someone does. */
  driver: { owner: string; expiresAt: number } | null;
}

export interface AttemptView {
  key: string;
  attempt: number;
  attemptId: string;
  node: string | null;
  startedAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  message: string | null;
}

export interface EventView {
  at: number;
  key: string | null;
  level: 'info' | 'warn' | 'error';
  message: string;
}

export interface WorkflowDetail extends WorkflowSummary {
  units: UnitSnapshot[];
  attempts: AttemptView[];
  events: EventView[];
  /** Per job: why it is waiting (requirements, resources, "needs 4 GPUs: 0 of 12 nodes have them"). */
  waiting: Record<string, string>;
  /** The workflow as accepted (normalized; task arrays as ranges). */
  spec: import('../workflow/index.js').Workflow;
  /** Where its run directory is (embedded: this machine; cluster: on each node). */
  runDir: string;
  options: Record<string, unknown>;
  /** Its services: their state, where they run, their ports and endpoints. */
  services: ServiceView[];
}

/** A service of a workflow as `warren status` shows it. */
export interface ServiceView {
  name: string;
  /** pending: not started; starting: started, its readiness probe has not passed yet; ready;
   *  else how it ended. */
  state: 'pending' | 'starting' | 'ready' | 'succeeded' | 'failed' | 'canceled' | 'skipped';
  /** The node it runs on (while it runs). */
  node: string | null;
  /** The address its ports are reached at (while it runs): 127.0.0.1 on this machine, its node's address on a cluster. */
  host: string | null;
  persist: boolean;
  /** Its readiness probe in words (`http-get http://127.0.0.1:8080/`), null without one. */
  probe: string | null;
  ports: { name: string; port: number; protocol: string }[];
  /** Its endpoints; `url` while it runs (`http://HOST:PORT/`, docs/workflow-format.md). */
  endpoints: { name: string; port: number | null; protocol: string; type: string; url: string | null }[];
}

/** One item of a workflow's live stream (server-sent events: `event: <type>`, `data: <json>`). */
export type StreamItem =
  | { type: 'unit'; seq: number; unit: UnitSnapshot }
  | { type: 'event'; seq: number; event: EventView }
  | { type: 'progress'; seq: number; key: string; progress: Record<string, unknown> }
  | { type: 'done'; seq: number; status: WorkflowStatus; error?: WireError; counts?: JobCounts };

/** Units of jobs per end state, tasks that never started included (the run's final line). */
export type JobCounts = Record<'succeeded' | 'failed' | 'skipped' | 'canceled', number>;

export interface ListRequest {
  limit?: number;
  status?: WorkflowStatus;
  /** Admins only: every user's workflows (default: one's own). */
  all?: boolean;
}

export interface LogsRequest {
  job: string;
  task?: number | null;
  stream?: 'stdout' | 'stderr';
  follow?: boolean;
}

export interface WarrenClient {
  /** Where it talks to, for messages: "embedded (WARREN_HOME)" or the server's URL. */
  readonly where: string;
  submit(req: SubmitRequest): Promise<WorkflowSummary>;
  get(id: string): Promise<WorkflowDetail>;
  list(req?: ListRequest): Promise<WorkflowSummary[]>;
  /** The workflow's changes from now (after `afterSeq`) until it ends or `signal` aborts. */
  stream(id: string, opts?: { afterSeq?: number; signal?: AbortSignal }): AsyncIterable<StreamItem>;
  logs(id: string, req: LogsRequest, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  cancel(id: string): Promise<WorkflowSummary>;
  resume(id: string): Promise<WorkflowSummary>;
  /** A TCP stream to `port` of a running service of the workflow (`warren port-forward`):
   *  SERVICE_UNKNOWN, SERVICE_NOT_RUNNING, SERVICE_PORT_UNDECLARED when it cannot be. */
  connect(id: string, service: string, port: number): Promise<import('node:stream').Duplex>;
  close(): Promise<void>;
}

// --- Administration (servers only) ---

export interface UserView {
  name: string;
  unixUser: string;
  admin: boolean;
  createdAt: number;
}

export interface TokenView {
  id: string;
  kind: 'api' | 'join';
  user: string | null;
  createdAt: number;
  expiresAt: number | null;
  usesLeft: number | null;
}

export interface NodeView {
  name: string;
  state: 'ready' | 'down' | 'lost' | 'draining' | 'drained' | 'revoked';
  cores: number;
  memoryBytes: number;
  gpus: number;
  labels: Record<string, string>;
  platform: string;
  lastSeenAt: number | null;
  running: number;
  usedCores: number;
  /** Why it is drained: the admin's reason, or its failing health check's output (null: not drained, or no reason given). */
  drainReason: string | null;
  /** Who drained it: an admin, or its health check (which undrains it when it passes again). */
  drainedBy: 'admin' | 'health' | 'agent' | null;
  /** Its health check's last result this server heard of (null: no check, or none heard yet). */
  health: { ok: boolean; at: number; output: string } | null;
}

/** One entry of the audit log (`warren audit list`): who did what, when, from where, and the result. */
export interface AuditEntry {
  id: number;
  /** ms since the epoch */
  at: number;
  /** The Warren user, or `node:NAME` for what a node's health check did. */
  actor: string;
  /** `noun.verb`: user.add, user.remove, token.create, token.revoke, node.drain, node.undrain, node.revoke, node.delete, workflow.cancel, workflow.resume, ... */
  action: string;
  target: string | null;
  /** The client's address (with the follower that forwarded it), or `health-check`. */
  source: string | null;
  /** `ok`, or the error code. */
  result: string;
  details: Record<string, unknown>;
}

export interface AuditRequest {
  /** ms since the epoch */
  since?: number;
  until?: number;
  /** Only this actor's entries. */
  user?: string;
  /** One action (`node.drain`) or a family (`node.`). */
  action?: string;
  limit?: number;
  /** Paging: entries after this id. */
  afterId?: number;
}

/** A CA of the cluster's trust bundle. */
export interface CaView {
  /** SHA-256 fingerprint, as openssl and Node print it (`AB:CD:...`). */
  fingerprint: string;
  subject: string;
  notBefore: number;
  notAfter: number;
  /** active: the one CA (no rotation); during a rotation, old (being retired) and new. */
  role: 'active' | 'old' | 'new';
  /** It issues the certificates now. */
  signing: boolean;
}

/** A node as a CA rotation sees it. */
export interface CaNodeView {
  name: string;
  state: 'ready' | 'down' | 'lost' | 'revoked';
  /** The role of the CA its certificate is from (untrusted: one no longer in the bundle; unknown: not seen since this server leads). */
  ca: CaView['role'] | 'untrusted' | 'unknown';
  /** It trusts the new CA (during a rotation; null: not known yet, or no rotation). */
  trustsNew: boolean | null;
}

/** `warren ca status`: the CAs, the rotation's phase and who it waits for. */
export interface CaStatusView {
  trustDomain: string;
  /** none: no rotation; trust: the new CA is trusted beside the old; issue: the new CA issues, the old is still trusted. */
  phase: 'none' | 'trust' | 'issue';
  startedAt: number | null;
  phaseChangedAt: number | null;
  /** The trust phase lasts at least until then (`--trust-for`). */
  issueAfter: number | null;
  cas: CaView[];
  nodes: CaNodeView[];
  /** The nodes the rotation waits for now. */
  waitingFor: string[];
  /** What happens next, in words. */
  next: string;
  /** When a rotation last retired a CA. */
  lastRetiredAt: number | null;
  /** The trust bundle (PEM): what a client's CA file (`warren context add --ca`) must hold now. */
  bundlePem: string;
}

/** `warren prune`: what to prune. Exactly one of `olderThanSec` and `ids`. */
export interface PruneRequest {
  /** Finished workflows that ended more than this many seconds ago (0: every finished one). */
  olderThanSec?: number;
  /** These workflows (ids or unique prefixes), whatever their age; each must be finished. */
  ids?: string[];
  /** Count what would go; remove nothing. */
  dryRun?: boolean;
}

/** What a prune removed (or, in a dry run, would remove). */
export interface PruneView {
  dryRun: boolean;
  /** The cutoff: workflows that ended before this (ms since the epoch). */
  endedBefore: number;
  workflows: number;
  /** Units: jobs, tasks that ran, data transfers. */
  units: number;
  attempts: number;
  events: number;
  /** Job history rows (runtime estimates) older than the cutoff. */
  history: number;
  /** Run directories removed on the server (or this machine), and their bytes; nodes remove their own copies. */
  runDirs: number;
  bytesFreed: number;
  /** Running or pending workflows created before the cutoff: kept (running work is never pruned). */
  keptRunning: number;
  /** Finished workflows whose runner still holds them: kept, pruned next time. */
  keptLeased: number;
  /** The ids removed (at most 1000). */
  removed: string[];
  durationMs: number;
  /** It stopped before it was done (a server answers within a bound): ask again to go on. */
  interrupted: boolean;
}

// --- node images (provisioning, issue 13): `warren image node-build|node-list|node-rm` ---

/** A node image: the kernel and the packed root file system a node boots (src/provision/nodeimage.ts). */
export type NodeImageView = NodeImage;

export interface NodeImageBuildRequest {
  /** Any reference `image.uri` accepts. */
  source: string;
  /** A kernel version of the image's /boot, or the path of a kernel file (on the machine that builds). */
  kernel?: string;
  /** Build again even when the image is unchanged. */
  force?: boolean;
}

export interface NodeImageBuildView extends NodeImageView {
  /** The image was unchanged: answered from what was built before. */
  reused: boolean;
  durationMs: number;
  /** What the build said (the kernel taken, warnings such as missing modules). */
  log: string[];
}

/** A server's answer while a build goes on past its answer time: ask again to wait on (join) it. */
export interface NodeImageBuildPending {
  building: true;
  source: string;
  startedAt: number;
  log: string[];
}

/** Node images, on this machine (embedded: $WARREN_HOME) or in a server's data directory (admins). */
export interface NodeImageClient {
  /** Build (or find unchanged) the node image of a source. A server answers "building" past its
   *  answer time: ask again (`untilBuilt` does) to wait on the same build. */
  nodeImageBuild(req: NodeImageBuildRequest): Promise<NodeImageBuildView | NodeImageBuildPending>;
  /** Every node image, newest first. */
  nodeImages(): Promise<NodeImageView[]>;
  /** Remove the node image of a digest (or a unique prefix), or every one of a source. */
  removeNodeImages(what: string): Promise<NodeImageView[]>;
}

export interface AdminClient extends NodeImageClient {
  nodes(): Promise<NodeView[]>;
  /** Drain (with an optional reason) or undrain. */
  drain(name: string, on: boolean, reason?: string): Promise<NodeView>;
  revokeNode(name: string): Promise<void>;
  deleteNode(name: string): Promise<void>;
  createJoinToken(opts: { ttlSeconds: number; uses?: number }): Promise<{ token: string; view: TokenView }>;
  tokens(): Promise<TokenView[]>;
  revokeToken(id: string): Promise<void>;
  addUser(opts: { name: string; unixUser?: string; admin?: boolean; tokenTtlSeconds?: number }): Promise<{ user: UserView; token: string }>;
  users(): Promise<UserView[]>;
  removeUser(name: string): Promise<void>;
  /** The audit log, oldest first. */
  audit(q?: AuditRequest): Promise<AuditEntry[]>;
  /** The cluster CA and its rotation. */
  caStatus(): Promise<CaStatusView>;
  /** Begin a CA rotation: a new CA, trusted beside the old one (at least `trustForSeconds` before it issues). */
  rotateCa(opts?: { trustForSeconds?: number }): Promise<CaStatusView>;
  /** Retire the old CA now (refused while a node holds a certificate from it, unless `force`). */
  retireCa(opts?: { force?: boolean }): Promise<CaStatusView>;
  /** Remove finished workflows with their units, attempts, events and files (never running work). */
  prune(req: PruneRequest): Promise<PruneView>;
}

export type { NodeChangeRequest, ProfileChangeRequest, FieldChanges, InventoryNodeView } from '../provision/index.js';
export type { InventoryNode, ProfileRecord, ResolvedNode, BootStatus, NetDevice, Origin } from '../provision/index.js';

/**
 * The provisioning inventory (issue 13): nodes and profiles, embedded (this machine's store) or
 * on a server (admins). Node verbs take ranges (`n[001-128]`); writes are all or nothing.
 */
export interface InventoryClient {
  /** The inventory's nodes (or those `names` names: each must exist unless `missingOk`), resolved, with boot status. */
  inventoryNodes(req?: { names?: string; missingOk?: boolean }): Promise<InventoryNodeView[]>;
  /** Add nodes (every name new; MAC and IP counted up from the first). */
  addInventoryNodes(req: NodeChangeRequest): Promise<InventoryNode[]>;
  /** Change nodes (every name must exist). */
  setInventoryNodes(req: NodeChangeRequest): Promise<InventoryNode[]>;
  /** Delete nodes (with their boot status); `missingOk`: names not in the inventory are skipped, not refused. */
  deleteInventoryNodes(req: { names: string; missingOk?: boolean }): Promise<{ deleted: string[] }>;
  profiles(): Promise<ProfileRecord[]>;
  addProfile(req: ProfileChangeRequest): Promise<ProfileRecord>;
  setProfile(req: ProfileChangeRequest): Promise<ProfileRecord>;
  /** Refused (PROVISION_PROFILE_IN_USE) while a node uses it. */
  deleteProfile(name: string): Promise<void>;
}
