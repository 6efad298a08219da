// The store contract. SQLite (embedded default) and PostgreSQL implement it; both pass
// the shared contract suite in test/store/contract.ts.

import type { UnitSnapshot, WorkflowStatus } from '../engine/index.js';
import type { TokenStore } from '../mesh/index.js';
import type { Workflow } from '../workflow/index.js';
import type { InventoryStore } from '../provision/index.js';
import { WarrenError } from '../common/index.js';

export interface WorkflowRecord {
  id: string;
  name: string;
  file: string | null;
  status: WorkflowStatus;
  /** The normalized workflow, as validated when it was accepted. */
  spec: Workflow;
  /** Options it was run with (e.g. failFast, cores) so resume behaves the same. */
  options: Record<string, unknown>;
  /** Directory holding this run's logs, volumes and work directories. */
  runDir: string;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  cancelRequested: boolean;
  /** Who drives it now: the ownership lease (null when nobody holds it). Changed only through
   *  acquireRunLease / renewRunLease / releaseRunLease, never through a patch. */
  lease: RunLease | null;
  /** The Warren user who submitted it (cluster mode); null for the embedded default. Set once,
   *  by createWorkflow. */
  owner: string | null;
}

/** Which workflows listWorkflows returns (newest first). */
export interface WorkflowFilter {
  /** At most this many (default 50). */
  limit?: number;
  status?: WorkflowStatus;
  /** Only this user's (a workflow without an owner is nobody's). */
  owner?: string;
}

/** A Warren user of a cluster server, and the Unix account its jobs run as. */
export interface UserRecord {
  name: string;
  unixUser: string;
  admin: boolean;
  /** ms since the epoch */
  createdAt: number;
}

/** An API token (the CLI's and web UI's credential for a user). Only the SHA-256 of the secret
 *  is stored, never the token itself. */
export interface ApiTokenRecord {
  /** Public id: the first 12 hex digits of `hash`, shown by `warren token list`. */
  id: string;
  /** SHA-256 of the secret token, hex. */
  hash: string;
  /** Its owner (UserRecord.name). */
  user: string;
  createdAt: number;
  /** ms since the epoch; null: does not expire. */
  expiresAt: number | null;
  revoked: boolean;
  /** When it was last accepted (touchApiToken); null: never used. */
  lastUsedAt: number | null;
}

/** ready: connected and taking work; down: not heard from for a while (its tasks may still run);
 *  lost: given up on (its tasks are re-run elsewhere); revoked: `warren node revoke`. */
export type NodeState = 'ready' | 'down' | 'lost' | 'revoked';

/** A node of the cluster, as the server keeps it. */
export interface NodeRecord {
  name: string;
  /** The agent's NodeInfo (src/agent/contract.ts), stored as JSON. */
  info: Record<string, unknown>;
  state: NodeState;
  /** `warren node drain`: takes no new work. */
  drained: boolean;
  /** Why it is drained (the admin's reason, or the failing health check's output); null when not drained or none given. */
  drainReason: string | null;
  /** Who drained it: an admin (`warren node drain`) or the node's health check, which undrains
   *  only what it drained itself. */
  drainedBy: 'admin' | 'health' | null;
  /** Serial of its current client certificate. */
  certSerial: string | null;
  /** SHA-256 fingerprint of the CA that issued the certificate it presents (schema v6; null: not known, i.e. the CA before any rotation). */
  certCa: string | null;
  joinedAt: number;
  lastSeenAt: number | null;
  stateChangedAt: number;
}

/** The fields patchNode changes (name and joinedAt never change). */
export type NodePatch = Partial<Omit<NodeRecord, 'name' | 'joinedAt'>>;

/** The column of each patchable node field, in both stores' `nodes` table. */
export const NODE_PATCH_COLUMNS: Record<keyof NodePatch, string> = {
  info: 'info',
  state: 'state',
  drained: 'drained',
  drainReason: 'drain_reason',
  drainedBy: 'drained_by',
  certSerial: 'cert_serial',
  certCa: 'cert_ca',
  lastSeenAt: 'last_seen_at',
  stateChangedAt: 'state_changed_at',
};

/** The ownership of a run: held by one runner (`warren run`/`resume`, or a cluster server) at a
 *  time, until `expiresAt` (ms since the epoch) unless renewed. `term` grows by one each time a
 *  new owner takes it; writes fenced with an older term are refused (STORE_FENCED). */
export interface RunLease {
  /** "host:pid:rand" */
  owner: string;
  term: number;
  expiresAt: number;
}

export type WorkflowPatch = Partial<Pick<WorkflowRecord, 'status' | 'startedAt' | 'endedAt' | 'cancelRequested' | 'options'>>;

/** The column of each patchable field, in both stores' `workflows` table. */
export const PATCH_COLUMNS: Record<keyof WorkflowPatch, string> = {
  status: 'status',
  startedAt: 'started_at',
  endedAt: 'ended_at',
  cancelRequested: 'cancel_requested',
  options: 'options',
};

export interface AttemptRecord {
  workflowId: string;
  key: string;
  attempt: number;
  /** Unique id of this attempt (the runtime puts it in the job's environment as
   *  WARREN_ATTEMPT_ID). A later write with another id changes the row only when its `term`
   *  is newer (a new owner re-launching the same attempt number). */
  attemptId: string;
  /** Lease term of the runner that launched it. */
  term: number | null;
  /** The cgroup the job runs in on its node, when it has one. */
  cgroup: string | null;
  /** The node it runs on (host name), when known. */
  node: string | null;
  startedAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  message: string | null;
  /** Process id (group leader) of the attempt on its node, while known. */
  pid?: number | null;
}

export interface EventRecord {
  workflowId: string;
  at: number;
  key: string | null;
  level: 'info' | 'warn' | 'error';
  message: string;
}

/** One batched write: applied atomically (one transaction). A unit that is 'succeeded' in the
 *  store is never changed again; an attempt whose end is recorded is never changed again. */
export interface WriteBatch {
  units?: { workflowId: string; unit: UnitSnapshot }[];
  attempts?: AttemptRecord[];
  events?: EventRecord[];
  workflows?: { id: string; patch: WorkflowPatch }[];
  /** Apply the whole batch only if that workflow's lease term still equals `term` (checked in
   *  the same transaction); else write() rejects with STORE_FENCED and writes nothing. */
  fence?: { workflowId: string; term: number };
}

export type LeaseResult = { ok: true; lease: RunLease } | { ok: false; current: RunLease };

/** The cluster's leadership (schema v4): one row. Of two servers on one store, the holder
 *  schedules, drives every run and expires heartbeats; `term` grows by one each time the holder
 *  changes. Times are ms since the epoch on the store's clock (PostgreSQL's now()). */
export interface LeaderLease {
  /** The holding server's id (null: nobody ever held it). */
  holder: string | null;
  /** Its advertised https URL (agents and API forwarding go there). */
  url: string | null;
  term: number;
  expiresAt: number;
  /** The store's clock when this was read (compare expiresAt with it, not with Date.now()). */
  now: number;
}

export type LeaderResult = { ok: true; lease: LeaderLease } | { ok: false; current: LeaderLease };

/** The cluster CA as the store keeps it (schema v4): the same on every server. */
export interface ClusterCaRecord {
  trustDomain: string;
  certPem: string;
  keyPem: string;
  createdAt: number;
}

/** A CA rotation in progress (schema v6): the new CA, trusted beside the current one; in phase
 *  `trust` certificates are still issued by the current CA, in `issue` by the new one. */
export interface CaRotationRecord {
  phase: 'trust' | 'issue';
  certPem: string;
  keyPem: string;
  startedAt: number;
  phaseChangedAt: number;
  /** The trust phase lasts at least until then (`warren ca rotate --trust-for`). */
  issueAfter: number;
}

/** The cluster CA with its rotation, if one is in progress, and the CA the last one retired. */
export interface ClusterCaState {
  ca: ClusterCaRecord;
  rotation: CaRotationRecord | null;
  retired: { certPem: string; retiredAt: number } | null;
}

/** One entry of the audit log (schema v5): every admin action and every action on another
 *  user's behalf. Append-only: the store never changes or deletes one (a trigger refuses it). */
export interface AuditRecord {
  /** Grows with each entry (the order they were written in). */
  id: number;
  /** ms since the epoch */
  at: number;
  /** Who: the Warren user, or `node:NAME` for what a node's health check did. */
  actor: string;
  /** What, as `noun.verb`: user.add, token.revoke, node.drain, workflow.cancel, ... */
  action: string;
  /** What it acted on (a user, token id, node, workflow id), when there is one. */
  target: string | null;
  /** From where: the client's address, or `local`. */
  source: string | null;
  /** `ok`, or the error code it failed with (AUTH_FORBIDDEN...). */
  result: string;
  details: Record<string, unknown>;
}

/** Which audit entries listAudit returns, oldest first. */
export interface AuditQuery {
  /** Only entries at or after this time (ms since the epoch). */
  since?: number;
  /** Only entries before this time. */
  until?: number;
  /** Only this actor's. */
  actor?: string;
  /** Only this action (`node.drain`) or family (`node.`: every action on nodes). */
  action?: string;
  /** Only entries with a greater id (paging). */
  afterId?: number;
  /** At most this many (default 1000). */
  limit?: number;
}

/** Counts for monitoring (`GET /metrics`, `warren server status`): one query, grouped. */
export interface StoreStats {
  /** Units of the workflows that are pending or running, by state (a task of a task array
   *  that never started has no row and is not counted). */
  units: Record<string, number>;
  /** Every workflow in the store, by status. */
  workflows: Record<string, number>;
  /** Nodes by state and drained flag. */
  nodes: { state: string; drained: boolean; count: number }[];
}

/** Which workflows pruneWorkflows takes (schema v7): finished (succeeded, failed or canceled),
 *  ended before `endedBefore`, and not leased (no owner, or its lease expired by `now`). */
export interface PruneSelect {
  /** ms since the epoch. */
  endedBefore: number;
  /** The time a lease is compared with (ms since the epoch; runners write leases with their own clock). */
  now: number;
  /** Only these workflows (full ids). */
  ids?: string[];
  /** At most this many workflows (default 100). */
  limit?: number;
}

/** A workflow that pruneWorkflows removed. */
export interface PrunedWorkflow {
  id: string;
  name: string;
  status: WorkflowStatus;
  owner: string | null;
  runDir: string;
  endedAt: number;
}

/** A pruned workflow whose rows (units, attempts, events) or files may not be all gone yet. */
export interface PruneQueueEntry {
  id: string;
  runDir: string;
  prunedAt: number;
}

/** Rows one purgePruned step deleted. */
export interface PurgeStep {
  units: number;
  attempts: number;
  events: number;
}

/** What pruneWorkflows with a selection would remove (a dry run), and what it leaves. */
export interface PrunePreview {
  workflows: number;
  units: number;
  attempts: number;
  events: number;
  /** Running or pending workflows created before the cutoff: never pruned. */
  keptRunning: number;
  /** Finished workflows before the cutoff whose lease is still live (a runner is finishing up). */
  keptLeased: number;
}

/** Every store also keeps the provisioning inventory (schema v8; src/provision/types.ts InventoryStore). */
export interface Store extends InventoryStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Counts by state, for monitoring: one grouped query over units (of the active
   *  workflows), workflows and nodes. Callers keep its result (it scans). */
  stats(): Promise<StoreStats>;
  /** Accept a workflow: the record (with its owner) and all its units, atomically. */
  createWorkflow(rec: WorkflowRecord, units: UnitSnapshot[]): Promise<void>;
  /** By full id or unique prefix; undefined when none. Throws STORE_AMBIGUOUS_ID when the prefix
   *  matches several. With `owner`, only that user's workflows are looked at: another owner's
   *  (or one without an owner) is not found, and does not make a prefix ambiguous. */
  getWorkflow(idOrPrefix: string, opts?: { owner?: string }): Promise<WorkflowRecord | undefined>;
  listWorkflows(opts?: WorkflowFilter): Promise<WorkflowRecord[]>;
  units(workflowId: string): Promise<UnitSnapshot[]>;
  attempts(workflowId: string, key?: string): Promise<AttemptRecord[]>;
  events(workflowId: string, opts?: { afterAt?: number }): Promise<EventRecord[]>;
  write(batch: WriteBatch): Promise<void>;
  /** Take the run's ownership lease in ONE conditional UPDATE: succeeds when nobody holds it, it
   *  expired (expiresAt <= now), or `owner` already holds it (then only extends). Taking it from
   *  nobody/an expired holder increments `term`. RUN_NOT_FOUND when there is no such workflow. */
  acquireRunLease(workflowId: string, owner: string, ttlMs: number, now: number): Promise<LeaseResult>;
  /** Extend; false when the lease is no longer ours (term or owner changed). */
  renewRunLease(workflowId: string, owner: string, term: number, ttlMs: number, now: number): Promise<boolean>;
  /** Give it up (the term stays, so the next owner gets term + 1); nothing when not ours. */
  releaseRunLease(workflowId: string, owner: string, term: number): Promise<void>;
  /** Past completed runs of a job with this name (for runtime estimates): durations in seconds, newest first. */
  jobHistory(jobName: string, limit?: number): Promise<number[]>;

  // Two servers, one leader (schema v4): the leader lease and the cluster CA.

  /** Take the leader lease in ONE conditional UPDATE on the store's clock: succeeds when it
   *  expired (or was never held) or `holder` already holds it (then only extends, same term);
   *  a change of holder increments the term. */
  acquireLeader(holder: string, url: string, ttlMs: number): Promise<LeaderResult>;
  /** Extend; false when it is no longer ours (holder or term changed). */
  renewLeader(holder: string, term: number, ttlMs: number): Promise<boolean>;
  /** Let it expire now (a server shutting down): the next holder gets term + 1 at once. Nothing when not ours. */
  releaseLeader(holder: string, term: number): Promise<void>;
  /** The current lease (with the store's clock). */
  readLeader(): Promise<LeaderLease>;
  /** The cluster CA, when one is stored. */
  getClusterCa(): Promise<ClusterCaRecord | undefined>;
  /** Store the CA unless one is stored already; returns the stored one (ours, or the one that was there). */
  putClusterCaIfAbsent(ca: ClusterCaRecord): Promise<ClusterCaRecord>;

  // CA rotation (schema v6): each step one conditional UPDATE of the cluster CA row.

  /** The cluster CA with its rotation and the last retired CA; undefined when no CA is stored. */
  getClusterCaState(): Promise<ClusterCaState | undefined>;
  /** Begin a rotation to `next` (phase trust); false when one is in progress (or no CA is stored). */
  startCaRotation(next: { certPem: string; keyPem: string }, at: number, issueAfter: number): Promise<boolean>;
  /** Move the rotation to `next` (certPem) from phase `from` to `to`; false when it is not in that phase (or another rotation). */
  setCaRotationPhase(certPem: string, from: 'trust' | 'issue', to: 'trust' | 'issue', at: number): Promise<boolean>;
  /** End the rotation to `next` (certPem): it becomes the cluster CA, the current one the retired one. False when that rotation is not in progress. */
  finishCaRotation(certPem: string, at: number): Promise<boolean>;

  // Cluster mode (schema v3): users, API tokens, join tokens, nodes.

  /** Add a user; AUTH_USER_EXISTS when the name is taken. */
  addUser(u: UserRecord): Promise<void>;
  getUser(name: string): Promise<UserRecord | undefined>;
  /** All users, by name. */
  listUsers(): Promise<UserRecord[]>;
  /** Remove a user and, in the same transaction, delete its API tokens (its workflows stay,
   *  with their owner). False when there is no such user. */
  removeUser(name: string): Promise<boolean>;
  /** Store a new API token; AUTH_USER_NOT_FOUND when its user does not exist, STORE_DUPLICATE
   *  when its hash or id is already stored. */
  insertApiToken(t: ApiTokenRecord): Promise<void>;
  /** The token with this hash, whatever its state (revoked, expired): the caller decides. */
  findApiToken(hash: string): Promise<ApiTokenRecord | undefined>;
  /** All tokens, or one user's; oldest first. */
  listApiTokens(user?: string): Promise<ApiTokenRecord[]>;
  /** Revoke by public id; true when such a token exists (revoked now, or already), false when not. */
  revokeApiToken(id: string): Promise<boolean>;
  /** Record a use (lastUsedAt = at; never moves back). One UPDATE, no transaction. */
  touchApiToken(id: string, at: number): Promise<void>;
  /** Join tokens in this store (src/mesh TokenStore): `consume` is one conditional UPDATE, so
   *  agents racing for a token never get more uses than it has. Insert of a known hash or id:
   *  STORE_DUPLICATE. */
  joinTokens(): TokenStore;
  /** Insert the node, or replace every field of the one with that name. */
  upsertNode(n: NodeRecord): Promise<void>;
  getNode(name: string): Promise<NodeRecord | undefined>;
  /** All nodes, by name. */
  listNodes(): Promise<NodeRecord[]>;
  /** Change some fields; false when there is no such node. */
  patchNode(name: string, patch: NodePatch): Promise<boolean>;
  /** False when there is no such node. */
  deleteNode(name: string): Promise<boolean>;

  // Operations (schema v5): the audit log.

  /** Append one entry (its id is the store's); returns it as stored. */
  appendAudit(e: Omit<AuditRecord, 'id'>): Promise<AuditRecord>;
  /** Entries matching the query, oldest first. */
  listAudit(q?: AuditQuery): Promise<AuditRecord[]>;

  // Retention (schema v7). Each call is one short transaction with a bounded number of rows
  // per statement, so that pruning never holds a lock that stops the runners' writes for long;
  // src/store/prune.ts (pruneStore) strings them together.

  /** Delete up to `limit` finished workflows (the condition of PruneSelect is in the DELETE
   *  itself: a running, pending or leased workflow is never deleted, whoever calls this) and
   *  queue them in prune_queue, in one transaction. Their units, attempts and events stay until
   *  purgePruned removes them; nothing reads them meanwhile (the workflow is gone). */
  pruneWorkflows(q: PruneSelect): Promise<PrunedWorkflow[]>;
  /** One step: delete at most `maxRows` rows of each of units, attempts and events of these
   *  workflows, only of those that are queued and whose workflow row is gone (checked in the
   *  DELETE), one statement per table. */
  purgePruned(ids: string[], maxRows: number): Promise<PurgeStep>;
  /** The queue, oldest first (at most `limit`, default 1000). */
  pruneQueue(limit?: number): Promise<PruneQueueEntry[]>;
  /** Take these off the queue: only those without a row left in units, attempts or events
   *  (checked in the DELETE). Returns the ids taken off. */
  finishPruned(ids: string[]): Promise<string[]>;
  /** One step: delete at most `maxRows` job_history rows that ended before `endedBefore`
   *  (index job_history_ended). Returns how many (fewer than maxRows: none is left). */
  pruneHistory(endedBefore: number, maxRows: number): Promise<number>;
  /** What pruneWorkflows(q) would remove, without removing anything, and what it leaves
   *  (`rows: false`: only the workflows, not their units, attempts and events, which costs a scan). */
  previewPrune(q: PruneSelect, opts?: { rows?: boolean }): Promise<PrunePreview>;
  /** The status and end time of each of these workflows that the store has (agents ask which
   *  of their run directories belong to finished or pruned workflows). */
  workflowEnds(ids: string[]): Promise<Map<string, { status: WorkflowStatus; endedAt: number | null }>>;
  close(): Promise<void>;
}

/** The error both stores give when an id prefix matches several workflows. */
export function ambiguousIdError(idOrPrefix: string): WarrenError {
  return new WarrenError('STORE_AMBIGUOUS_ID', `"${idOrPrefix}" matches several workflows`, {
    hint: 'type more characters of the id (see `warren list`)',
  });
}

/** acquireRunLease of a workflow that does not exist. */
export function noWorkflowError(id: string): WarrenError {
  return new WarrenError('RUN_NOT_FOUND', `no workflow ${id}`, { hint: 'see `warren list` for the ids' });
}

/** A write fenced with a lease term that is no longer the run's. */
export function fencedError(workflowId: string, term: number, current: number | null): WarrenError {
  return new WarrenError(
    'STORE_FENCED',
    current === null
      ? `write for workflow ${workflowId} refused: the workflow does not exist`
      : `write for workflow ${workflowId} refused: this runner's lease (term ${term}) was taken over (term ${current} now)`,
    {
      hint: 'another `warren resume` or server drives this run now; this runner stops without writing (see `warren status ID`)',
      details: { workflowId, term, current },
    },
  );
}

/** A store write that failed for lack of space. `where` is the directory (SQLite) or server (PostgreSQL). */
export function diskFullError(where: string, cause: unknown, details: Record<string, unknown> = {}): WarrenError {
  return new WarrenError('STORE_DISK_FULL', `the store cannot write: no space left on the file system of ${where}`, {
    hint: `free space on the file system holding ${where} (job output and volumes under WARREN_HOME share it), then run \`warren resume ID\` to continue the run from what is recorded`,
    cause,
    details: { path: where, ...details },
  });
}

/** The store's file or tables are damaged. */
export function corruptError(path: string, cause: unknown): WarrenError {
  return new WarrenError('STORE_CORRUPT', `the store at ${path} is damaged or not a Warren database: ${(cause as Error)?.message ?? cause}`, {
    hint: `restore ${path} from a backup, or move it aside (mv ${path} ${path}.broken; also its -wal and -shm files) to start with an empty store; Warren never deletes it`,
    cause,
    details: { path },
  });
}

/** The database was written by a newer Warren (a schema version this code does not know). */
export function schemaNewerError(where: string, found: number, known: number): WarrenError {
  return new WarrenError('STORE_SCHEMA_NEWER', `the store at ${where} has schema version ${found}, newer than this Warren knows (${known})`, {
    hint: 'upgrade Warren to the release that wrote it (or newer); this one does not change the store',
    details: { path: where, found, known },
  });
}

/** addUser with a name that is taken. */
export function userExistsError(name: string): WarrenError {
  return new WarrenError('AUTH_USER_EXISTS', `user "${name}" already exists`, {
    hint: 'choose another name, or see `warren user list`',
    details: { user: name },
  });
}

/** A token for a user that does not exist. */
export function userNotFoundError(name: string): WarrenError {
  return new WarrenError('AUTH_USER_NOT_FOUND', `no user "${name}"`, {
    hint: 'add the user first (`warren user add NAME --unix-user ACCOUNT`), or see `warren user list`',
    details: { user: name },
  });
}

/** A token whose hash or public id is already stored. */
export function duplicateTokenError(kind: 'API token' | 'join token', id: string): WarrenError {
  return new WarrenError('STORE_DUPLICATE', `${kind === 'API token' ? 'an' : 'a'} ${kind} with id ${id} (or its hash) is already stored`, {
    hint: 'make a new token: a fresh random one never collides',
    details: { kind, id },
  });
}
