import type { RunLease } from './types.js';

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

