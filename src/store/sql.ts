import type { TokenRecord } from '../mesh/index.js';
import type { ApiTokenRecord, AuditQuery, CaRotationRecord, ClusterCaState, AuditRecord, NodePatch, NodeRecord, NodeState, RunLease, StoreStats, UserRecord, WorkflowFilter } from './types.js';
import { NODE_PATCH_COLUMNS } from './types.js';

// SQL text shared by both stores; `p(i)` writes the i-th (1-based) parameter placeholder.

export const ATTEMPT_COLUMNS = [
  'workflow_id', 'key', 'attempt', 'attempt_id', 'term', 'cgroup', 'node',
  'started_at', 'ended_at', 'exit_code', 'signal', 'reason', 'message', 'pid',
] as const;

/** Insert or update one attempt. An attempt whose end is recorded is never changed again; a
 *  record with another attempt id replaces the row only when its term is newer (a new owner
 *  re-launching that attempt number), and then does not keep the old one's pid/cgroup/node. */
export function attemptUpsertSql(p: (i: number) => string): string {
  const same = 'attempts.attempt_id = excluded.attempt_id';
  const keep = (c: string) => `${c} = CASE WHEN ${same} THEN coalesce(excluded.${c}, attempts.${c}) ELSE excluded.${c} END`;
  return `INSERT INTO attempts (${ATTEMPT_COLUMNS.join(',')}) VALUES (${ATTEMPT_COLUMNS.map((_, i) => p(i + 1)).join(',')})
    ON CONFLICT (workflow_id, key, attempt) DO UPDATE SET
      ${keep('started_at')}, ${keep('pid')}, ${keep('cgroup')}, ${keep('node')}, ${keep('term')},
      ended_at = excluded.ended_at, exit_code = excluded.exit_code, signal = excluded.signal,
      reason = excluded.reason, message = excluded.message, attempt_id = excluded.attempt_id
    WHERE attempts.ended_at IS NULL
      AND (${same} OR coalesce(excluded.term, -1) > coalesce(attempts.term, -1))`;
}

/** The parameters of attemptUpsertSql, in order. */
export function attemptParams(a: {
  workflowId: string; key: string; attempt: number; attemptId?: string; term?: number | null; cgroup?: string | null; node?: string | null;
  startedAt: number | null; endedAt: number | null; exitCode: number | null; signal: string | null; reason: string | null; message: string | null; pid?: number | null;
}): unknown[] {
  return [
    a.workflowId, a.key, a.attempt, a.attemptId || `${a.workflowId}/${a.key}/${a.attempt}`, a.term ?? null, a.cgroup ?? null, a.node ?? null,
    a.startedAt, a.endedAt, a.exitCode, a.signal, a.reason, a.message, a.pid ?? null,
  ];
}

/** Take the lease: one conditional UPDATE (nobody holds it, it expired, or `owner` holds it). */
export function acquireLeaseSql(p: (i: number) => string): string {
  // p1 owner, p2 now, p3 expiresAt, p4 id
  return `UPDATE workflows SET
      lease_term = CASE WHEN lease_owner = ${p(1)} THEN lease_term ELSE lease_term + 1 END,
      lease_owner = ${p(1)}, lease_expires_at = ${p(3)}
    WHERE id = ${p(4)} AND (lease_owner IS NULL OR lease_expires_at <= ${p(2)} OR lease_owner = ${p(1)})
    RETURNING lease_owner, lease_term, lease_expires_at`;
}

export interface LeaseRow {
  lease_owner: string | null;
  lease_term: number | string;
  lease_expires_at: number | string | null;
}

/** The lease of a row (null when nobody holds it). */
export function leaseOf(r: LeaseRow): RunLease | null {
  if (r.lease_owner === null || r.lease_owner === undefined) return null;
  return { owner: r.lease_owner, term: Number(r.lease_term), expiresAt: Number(r.lease_expires_at ?? 0) };
}


// Cluster mode tables (schema v3). The row mappers read both stores' rows: SQLite gives
// booleans as 0/1 and JSON as text, PostgreSQL gives BIGINT as strings and JSONB parsed.

type Row = Record<string, unknown>;
const n = (v: unknown): number => Number(v);
const nn = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const bool = (v: unknown): boolean => v === true || v === 1 || v === '1';
const json = (v: unknown): Record<string, unknown> => (typeof v === 'string' ? JSON.parse(v) : (v as Record<string, unknown>));

export function userOf(r: Row): UserRecord {
  return { name: r.name as string, unixUser: r.unix_user as string, admin: bool(r.admin), createdAt: n(r.created_at) };
}

export function apiTokenOf(r: Row): ApiTokenRecord {
  return {
    id: r.id as string,
    hash: r.hash as string,
    user: r.user_name as string,
    createdAt: n(r.created_at),
    expiresAt: nn(r.expires_at),
    revoked: bool(r.revoked),
    lastUsedAt: nn(r.last_used_at),
  };
}

export function joinTokenOf(r: Row): TokenRecord {
  return { hash: r.hash as string, id: r.id as string, createdBy: r.created_by as string, createdAt: n(r.created_at), expiresAt: n(r.expires_at), usesLeft: n(r.uses_left), ...(r.node !== null && r.node !== undefined ? { node: r.node as string } : {}) };
}

export function nodeOf(r: Row): NodeRecord {
  return {
    name: r.name as string,
    info: json(r.info),
    state: r.state as NodeState,
    drained: bool(r.drained),
    drainReason: (r.drain_reason as string | null) ?? null,
    drainedBy: (r.drained_by as NodeRecord['drainedBy']) ?? null,
    certSerial: (r.cert_serial as string | null) ?? null,
    certCa: (r.cert_ca as string | null) ?? null,
    joinedAt: n(r.joined_at),
    lastSeenAt: nn(r.last_seen_at),
    stateChangedAt: n(r.state_changed_at),
  };
}

export const API_TOKEN_INSERT = (p: (i: number) => string): string =>
  `INSERT INTO api_tokens (hash, id, user_name, created_at, expires_at, revoked, last_used_at)
   VALUES (${[1, 2, 3, 4, 5, 6, 7].map(p).join(',')}) ON CONFLICT DO NOTHING`;

/** The parameters of API_TOKEN_INSERT; `b` writes a boolean for the dialect. */
export function apiTokenParams(t: ApiTokenRecord, b: (v: boolean) => unknown): unknown[] {
  return [t.hash, t.id, t.user, t.createdAt, t.expiresAt, b(t.revoked), t.lastUsedAt];
}

/** One use of a join token: one conditional UPDATE, the row after it (none: refused). */
export const JOIN_CONSUME = (p: (i: number) => string): string =>
  `UPDATE join_tokens SET uses_left = uses_left - 1 WHERE hash = ${p(1)} AND uses_left > 0 AND expires_at > ${p(2)} AND (node IS NULL OR node = ${p(3)}) RETURNING *`;

export const JOIN_INSERT = (p: (i: number) => string): string =>
  `INSERT INTO join_tokens (hash, id, created_by, created_at, expires_at, uses_left, node) VALUES (${[1, 2, 3, 4, 5, 6, 7].map(p).join(',')}) ON CONFLICT DO NOTHING`;

export function joinTokenParams(r: TokenRecord): unknown[] {
  return [r.hash, r.id, r.createdBy, r.createdAt, r.expiresAt, r.usesLeft, r.node ?? null];
}

const NODE_COLUMNS = ['name', 'info', 'state', 'drained', 'drain_reason', 'drained_by', 'cert_serial', 'cert_ca', 'joined_at', 'last_seen_at', 'state_changed_at'] as const;

/** Insert a node or replace every field of the one with that name. */
export const NODE_UPSERT = (p: (i: number) => string): string =>
  `INSERT INTO nodes (${NODE_COLUMNS.join(',')}) VALUES (${NODE_COLUMNS.map((_, i) => p(i + 1)).join(',')})
   ON CONFLICT (name) DO UPDATE SET ${NODE_COLUMNS.slice(1).map((c) => `${c} = excluded.${c}`).join(', ')}`;

/** The parameters of NODE_UPSERT; `b` writes a boolean for the dialect. */
export function nodeParams(x: NodeRecord, b: (v: boolean) => unknown): unknown[] {
  return [x.name, JSON.stringify(x.info), x.state, b(x.drained), x.drainReason ?? null, x.drainedBy ?? null, x.certSerial, x.certCa ?? null, x.joinedAt, x.lastSeenAt, x.stateChangedAt];
}

/** `UPDATE nodes SET ...` for a patch (null when it changes nothing) and its parameters, the name last. */
export function nodePatchSql(name: string, patch: NodePatch, p: (i: number) => string, b: (v: boolean) => unknown): { text: string; values: unknown[] } | null {
  const cols: string[] = [];
  const values: unknown[] = [];
  for (const [k, v] of Object.entries(patch)) {
    const col = NODE_PATCH_COLUMNS[k as keyof NodePatch];
    if (!col || v === undefined) continue;
    values.push(k === 'info' ? JSON.stringify(v) : typeof v === 'boolean' ? b(v) : v);
    cols.push(`${col} = ${p(values.length)}`);
  }
  if (cols.length === 0) return null;
  values.push(name);
  return { text: `UPDATE nodes SET ${cols.join(', ')} WHERE name = ${p(values.length)}`, values };
}

/** `SELECT * FROM workflows` for listWorkflows: its conditions, newest first, the limit last. */
export function listWorkflowsSql(opts: WorkflowFilter, p: (i: number) => string): { text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  if (opts.status) {
    values.push(opts.status);
    where.push(`status = ${p(values.length)}`);
  }
  if (opts.owner !== undefined) {
    values.push(opts.owner);
    where.push(`owner = ${p(values.length)}`);
  }
  values.push(opts.limit ?? 50);
  return {
    text: `SELECT * FROM workflows${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC LIMIT ${p(values.length)}`,
    values,
  };
}

export function auditOf(r: Row): AuditRecord {
  return {
    id: n(r.id),
    at: n(r.at),
    actor: r.actor as string,
    action: r.action as string,
    target: (r.target as string | null) ?? null,
    source: (r.source as string | null) ?? null,
    result: r.result as string,
    details: json(r.details) as Record<string, unknown>,
  };
}

export const AUDIT_INSERT = (p: (i: number) => string): string =>
  `INSERT INTO audit (at, actor, action, target, source, result, details) VALUES (${[1, 2, 3, 4, 5, 6, 7].map(p).join(',')}) RETURNING *`;

/** `SELECT * FROM audit` for listAudit: its conditions, oldest first, the limit last. */
export function listAuditSql(q: AuditQuery, p: (i: number) => string): { text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (cond: (ph: string) => string, v: unknown): void => {
    values.push(v);
    where.push(cond(p(values.length)));
  };
  if (q.since !== undefined) add((x) => `at >= ${x}`, q.since);
  if (q.until !== undefined) add((x) => `at < ${x}`, q.until);
  if (q.actor !== undefined) add((x) => `actor = ${x}`, q.actor);
  if (q.action !== undefined) {
    if (q.action.endsWith('.')) add((x) => `substr(action, 1, ${q.action!.length}) = ${x}`, q.action);
    else add((x) => `action = ${x}`, q.action);
  }
  if (q.afterId !== undefined) add((x) => `id > ${x}`, q.afterId);
  values.push(q.limit ?? 1000);
  return { text: `SELECT * FROM audit${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ${p(values.length)}`, values };
}

/** Store.stats() in one statement (both dialects): t = u(nits) | w(orkflows) | n(odes). */
export const STATS_SQL = `SELECT 'u' AS t, u.state AS k, 0 AS d, count(*) AS n FROM units u JOIN workflows w ON w.id = u.workflow_id WHERE w.status IN ('pending', 'running') GROUP BY u.state
UNION ALL SELECT 'w' AS t, status AS k, 0 AS d, count(*) AS n FROM workflows GROUP BY status
UNION ALL SELECT 'n' AS t, state AS k, CASE WHEN drained THEN 1 ELSE 0 END AS d, count(*) AS n FROM nodes GROUP BY state, drained`;

/** The rows of STATS_SQL -> StoreStats. */
export function statsOf(rows: Array<{ t: string; k: string; d: unknown; n: unknown }>): StoreStats {
  const out: StoreStats = { units: {}, workflows: {}, nodes: [] };
  for (const r of rows) {
    const n = Number(r.n);
    if (r.t === 'u') out.units[r.k] = n;
    else if (r.t === 'w') out.workflows[r.k] = n;
    else out.nodes.push({ state: r.k, drained: Number(r.d) === 1, count: n });
  }
  return out;
}

// ---- CA rotation (schema v6): every step is one conditional UPDATE of the cluster CA row ----

/** The cluster CA row as a ClusterCaState. */
export function caStateOf(r: Row): ClusterCaState {
  const ca = { trustDomain: r.trust_domain as string, certPem: r.cert_pem as string, keyPem: r.key_pem as string, createdAt: n(r.created_at) };
  const rotation: CaRotationRecord | null =
    typeof r.next_cert_pem === 'string'
      ? {
          phase: r.rotation_phase === 'issue' ? 'issue' : 'trust',
          certPem: r.next_cert_pem,
          keyPem: r.next_key_pem as string,
          startedAt: n(r.rotation_started_at),
          phaseChangedAt: n(r.rotation_phase_at),
          issueAfter: n(r.rotation_issue_after),
        }
      : null;
  const retired = typeof r.previous_cert_pem === 'string' ? { certPem: r.previous_cert_pem, retiredAt: n(r.retired_at) } : null;
  return { ca, rotation, retired };
}

/** startCaRotation: params next cert, next key, at, at, issueAfter. */
export const CA_ROTATION_START = (p: (i: number) => string): string =>
  `UPDATE cluster_ca SET next_cert_pem = ${p(1)}, next_key_pem = ${p(2)}, rotation_phase = 'trust', rotation_started_at = ${p(3)}, rotation_phase_at = ${p(4)}, rotation_issue_after = ${p(5)}
   WHERE id = 1 AND next_cert_pem IS NULL`;

/** setCaRotationPhase: params to, at, next cert, from. */
export const CA_ROTATION_PHASE = (p: (i: number) => string): string =>
  `UPDATE cluster_ca SET rotation_phase = ${p(1)}, rotation_phase_at = ${p(2)} WHERE id = 1 AND next_cert_pem = ${p(3)} AND rotation_phase = ${p(4)}`;

/** finishCaRotation: params at, next cert. The SET expressions read the row as it was (SQL semantics in both dialects). */
export const CA_ROTATION_FINISH = (p: (i: number) => string): string =>
  `UPDATE cluster_ca SET previous_cert_pem = cert_pem, retired_at = ${p(1)}, cert_pem = next_cert_pem, key_pem = next_key_pem, created_at = rotation_started_at,
     next_cert_pem = NULL, next_key_pem = NULL, rotation_phase = NULL, rotation_started_at = NULL, rotation_phase_at = NULL, rotation_issue_after = NULL
   WHERE id = 1 AND next_cert_pem = ${p(2)}`;

// Retention (schema v7): the condition of a prunable workflow, written into every DELETE.

/** Finished (succeeded, failed, canceled), ended before p(a), and not leased at p(b). */
export function prunableSql(p: (i: number) => string, endedBefore: number, now: number, alias = ''): string {
  const c = (x: string) => (alias ? `${alias}.${x}` : x);
  return `${c('status')} IN ('succeeded', 'failed', 'canceled') AND ${c('ended_at')} IS NOT NULL AND ${c('ended_at')} < ${p(endedBefore)}
    AND (${c('lease_owner')} IS NULL OR ${c('lease_expires_at')} IS NULL OR ${c('lease_expires_at')} <= ${p(now)})`;
}

/** The tables of a workflow's rows that purgePruned empties, with the key of a row in each. */
export const PRUNED_CHILDREN = [
  { table: 'units', key: ['workflow_id', 'key'] },
  { table: 'attempts', key: ['workflow_id', 'key', 'attempt'] },
  { table: 'events', key: ['id'] },
] as const;

/** A queue entry whose rows are all gone (the condition of finishPruned). */
export const NO_CHILDREN_SQL = PRUNED_CHILDREN.map((c) => `NOT EXISTS (SELECT 1 FROM ${c.table} x WHERE x.workflow_id = prune_queue.id)`).join(' AND ');

export function prunedOf(r: Row): import('./types.js').PrunedWorkflow {
  return { id: r.id as string, name: r.name as string, status: r.status as import('./types.js').PrunedWorkflow['status'], owner: (r.owner as string | null) ?? null, runDir: r.run_dir as string, endedAt: n(r.ended_at) };
}
