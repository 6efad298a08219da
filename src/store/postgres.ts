// The PostgreSQL store, for a server with many users. Same contract as SqliteStore
// (test/store/contract.ts runs against both).

import pg from 'pg';
import { WarrenError, isWarrenError } from '../common/index.js';
import type { UnitSnapshot, WorkflowStatus } from '../engine/index.js';
import type { TokenRecord, TokenStore } from '../mesh/index.js';
import { SCHEMA_VERSION, migrationSql, pendingMigrations } from './migrations.js';
import type { BootStatus, InventoryNode, ProfileRecord } from '../provision/index.js';
import {
  bootPatchSql, bootStatusOf, checkNodeWrite, existsError, fieldsJson, inventoryNodeOf, nodeWriteKeys, notFoundError, profileInUseError, profileOf, raceError,
} from './inventory.js';
import {
  API_TOKEN_INSERT, AUDIT_INSERT, CA_ROTATION_FINISH, CA_ROTATION_PHASE, CA_ROTATION_START, caStateOf, JOIN_CONSUME, JOIN_INSERT, NODE_UPSERT, acquireLeaseSql, apiTokenOf, apiTokenParams, attemptParams, attemptUpsertSql,
  auditOf, joinTokenOf, joinTokenParams, leaseOf, listAuditSql, listWorkflowsSql, nodeOf, nodeParams, nodePatchSql, userOf, STATS_SQL, statsOf,
  NO_CHILDREN_SQL, PRUNED_CHILDREN, prunableSql, prunedOf,
} from './sql.js';
import type {
  ApiTokenRecord, AttemptRecord, AuditQuery, AuditRecord, ClusterCaRecord, ClusterCaState, EventRecord, LeaderLease, LeaderResult, LeaseResult, NodePatch, NodeRecord, Store, StoreStats, UserRecord, WorkflowFilter, WorkflowPatch, WorkflowRecord, WriteBatch,
  PrunedWorkflow, PruneQueueEntry, PrunePreview, PruneSelect, PurgeStep,
} from './types.js';
import {
  PATCH_COLUMNS, ambiguousIdError, corruptError, diskFullError, duplicateTokenError, fencedError, noWorkflowError, schemaNewerError, userExistsError,
  userNotFoundError,
} from './types.js';

const pp = (i: number): string => `$${i}`;
const asIs = (v: boolean): boolean => v;

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export class PgStore implements Store {
  readonly kind = 'postgres' as const;
  private constructor(
    private readonly pool: pg.Pool,
    private readonly where: string,
  ) {}

  static async connect(url: string): Promise<PgStore> {
    // A bounded connect time: an unreachable server fails a call in seconds (retried by the
    // callers that can wait) instead of hanging it.
    const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000, keepAlive: true, keepAliveInitialDelayMillis: 5000 });
    // An idle connection that the server closes (a restart, an outage) must not crash us: the
    // pool drops it, and the next call connects again.
    pool.on('error', () => {});
    const where = `PostgreSQL ${redact(url)}`;
    try {
      const c = await pool.connect();
      try {
        // Serialize concurrent migrations by several processes.
        await c.query('SELECT pg_advisory_lock(727001)');
        try {
          await migrate(c, where);
        } finally {
          await c.query('SELECT pg_advisory_unlock(727001)');
        }
      } finally {
        c.release();
      }
    } catch (e) {
      await pool.end().catch(() => {});
      const mapped = mapPgError(e, where);
      if (mapped !== e || isWarrenError(e)) throw mapped;
      throw new WarrenError('STORE_OPEN_FAILED', `cannot connect to PostgreSQL at ${redact(url)}: ${(e as Error).message}`, {
        hint: 'check that the server is running and the URL (user, host, port, database) is right',
        cause: e,
      });
    }
    return new PgStore(pool, where);
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect().catch((e) => {
      throw mapPgError(e, this.where);
    });
    let broken = false;
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      broken = isConnectionError(e);
      if (!broken) await c.query('ROLLBACK').catch(() => {});
      throw mapPgError(e, this.where);
    } finally {
      // A connection that failed is destroyed, not put back in the pool.
      c.release(broken ? true : undefined);
    }
  }

  private async q(text: string, values: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(text, values);
    } catch (e) {
      throw mapPgError(e, this.where);
    }
  }

  async acquireRunLease(workflowId: string, owner: string, ttlMs: number, now: number): Promise<LeaseResult> {
    // The UPDATE decides alone (row lock, re-checked after a concurrent one commits); when it
    // refuses, read who holds it. Should that holder have let go in between, try again.
    for (let i = 0; ; i++) {
      const won = await this.q(acquireLeaseSql((n) => `$${n}`), [owner, now, now + ttlMs, workflowId]);
      if (won.rows[0]) return { ok: true, lease: leaseOf(won.rows[0])! };
      const cur = await this.q('SELECT lease_owner, lease_term, lease_expires_at FROM workflows WHERE id=$1', [workflowId]);
      if (!cur.rows[0]) throw noWorkflowError(workflowId);
      const lease = leaseOf(cur.rows[0]);
      if (lease && (lease.expiresAt > now || i >= 3)) return { ok: false, current: lease };
    }
  }

  async renewRunLease(workflowId: string, owner: string, term: number, ttlMs: number, now: number): Promise<boolean> {
    const r = await this.q('UPDATE workflows SET lease_expires_at=$1 WHERE id=$2 AND lease_owner=$3 AND lease_term=$4', [now + ttlMs, workflowId, owner, term]);
    return r.rowCount === 1;
  }

  async releaseRunLease(workflowId: string, owner: string, term: number): Promise<void> {
    await this.q('UPDATE workflows SET lease_owner=NULL, lease_expires_at=NULL WHERE id=$1 AND lease_owner=$2 AND lease_term=$3', [workflowId, owner, term]);
  }

  // The leader lease: the database's clock decides expiry (two servers' clocks do not matter).
  // Every statement has a client-side timeout below the lease's life: a renewal that cannot
  // finish in time fails, and the caller's own deadline steps down meanwhile.

  async acquireLeader(holder: string, url: string, ttlMs: number): Promise<LeaderResult> {
    const won = await this.leaseQuery(
      `UPDATE leader_lease SET term = CASE WHEN holder IS DISTINCT FROM $1 THEN term + 1 ELSE term END, holder = $1, url = $2, expires_at = ${PG_NOW_MS} + $3
       WHERE id = 1 AND (holder = $1 OR expires_at <= ${PG_NOW_MS})
       RETURNING holder, url, term, expires_at, ${PG_NOW_MS} AS now_ms`,
      [holder, url, Math.round(ttlMs)],
      ttlMs,
    );
    if (won.rows[0]) return { ok: true, lease: leaderOf(won.rows[0]) };
    return { ok: false, current: await this.readLeaderWithin(ttlMs) };
  }

  async renewLeader(holder: string, term: number, ttlMs: number): Promise<boolean> {
    const r = await this.leaseQuery(`UPDATE leader_lease SET expires_at = ${PG_NOW_MS} + $1 WHERE id = 1 AND holder = $2 AND term = $3`, [Math.round(ttlMs), holder, term], ttlMs);
    return r.rowCount === 1;
  }

  async releaseLeader(holder: string, term: number): Promise<void> {
    await this.leaseQuery(`UPDATE leader_lease SET expires_at = 0 WHERE id = 1 AND holder = $1 AND term = $2`, [holder, term], 5000);
  }

  async readLeader(): Promise<LeaderLease> {
    return this.readLeaderWithin(5000);
  }

  private async readLeaderWithin(timeoutMs: number): Promise<LeaderLease> {
    const r = await this.leaseQuery(`SELECT holder, url, term, expires_at, ${PG_NOW_MS} AS now_ms FROM leader_lease WHERE id = 1`, [], timeoutMs);
    return leaderOf(r.rows[0] ?? { holder: null, url: null, term: 0, expires_at: 0, now_ms: Date.now() });
  }

  private async leaseQuery(text: string, values: unknown[], timeoutMs: number): Promise<pg.QueryResult> {
    try {
      return await this.pool.query({ text, values, query_timeout: Math.max(500, Math.round(timeoutMs)) } as pg.QueryConfig);
    } catch (e) {
      throw mapPgError(e, this.where);
    }
  }

  async getClusterCa(): Promise<ClusterCaRecord | undefined> {
    const r = (await this.q('SELECT * FROM cluster_ca WHERE id = 1', [])).rows[0];
    return r && caOf(r);
  }

  async putClusterCaIfAbsent(ca: ClusterCaRecord): Promise<ClusterCaRecord> {
    await this.q('INSERT INTO cluster_ca (id, trust_domain, cert_pem, key_pem, created_at) VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING', [ca.trustDomain, ca.certPem, ca.keyPem, ca.createdAt]);
    return (await this.getClusterCa())!;
  }
  async getClusterCaState(): Promise<ClusterCaState | undefined> {
    const r = (await this.q('SELECT * FROM cluster_ca WHERE id = 1', [])).rows[0];
    return r && caStateOf(r);
  }

  async startCaRotation(next: { certPem: string; keyPem: string }, at: number, issueAfter: number): Promise<boolean> {
    return (await this.q(CA_ROTATION_START(pp), [next.certPem, next.keyPem, at, at, issueAfter])).rowCount === 1;
  }

  async setCaRotationPhase(certPem: string, from: 'trust' | 'issue', to: 'trust' | 'issue', at: number): Promise<boolean> {
    return (await this.q(CA_ROTATION_PHASE(pp), [to, at, certPem, from])).rowCount === 1;
  }

  async finishCaRotation(certPem: string, at: number): Promise<boolean> {
    return (await this.q(CA_ROTATION_FINISH(pp), [at, certPem])).rowCount === 1;
  }


  async createWorkflow(r: WorkflowRecord, units: UnitSnapshot[]): Promise<void> {
    await this.tx(async (c) => {
      await c.query(
        `INSERT INTO workflows (id,name,file,status,spec,options,run_dir,created_at,started_at,ended_at,cancel_requested,owner)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
        [r.id, r.name, r.file, r.status, JSON.stringify(r.spec), JSON.stringify(r.options), r.runDir, r.createdAt, r.startedAt, r.endedAt, r.cancelRequested, r.owner ?? null],
      );
      // Insert units in chunks with unnest: one round trip per 5,000 units.
      for (let i = 0; i < units.length; i += 5000) {
        const chunk = units.slice(i, i + 5000);
        await c.query(
          `INSERT INTO units (workflow_id,seq,key,kind,job,task,state,attempt)
           SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::int[])`,
          [r.id, chunk.map((_, j) => i + j), chunk.map((u) => u.key), chunk.map((u) => u.kind), chunk.map((u) => u.job), chunk.map((u) => u.task), chunk.map((u) => u.state), chunk.map((u) => u.attempt)],
        );
      }
    });
  }

  async getWorkflow(idOrPrefix: string, opts: { owner?: string } = {}): Promise<WorkflowRecord | undefined> {
    const owned = opts.owner !== undefined;
    const and = owned ? ' AND owner = $2' : '';
    const extra = owned ? [opts.owner] : [];
    const exact = await this.q(`SELECT * FROM workflows WHERE id = $1${and}`, [idOrPrefix, ...extra]);
    if (exact.rows[0]) return fromRow(exact.rows[0]);
    if (!idOrPrefix) return undefined;
    const like = idOrPrefix.replace(/[\\%_]/g, (m) => `\\${m}`) + '%';
    const rows = (await this.q(`SELECT * FROM workflows WHERE id LIKE $1${and} LIMIT 2`, [like, ...extra])).rows;
    if (rows.length > 1) throw ambiguousIdError(idOrPrefix);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async listWorkflows(opts: WorkflowFilter = {}): Promise<WorkflowRecord[]> {
    const q = listWorkflowsSql(opts, pp);
    return (await this.q(q.text, q.values)).rows.map(fromRow);
  }

  async units(workflowId: string): Promise<UnitSnapshot[]> {
    const res = await this.q('SELECT * FROM units WHERE workflow_id=$1 ORDER BY seq', [workflowId]);
    return res.rows.map((r) => ({
      key: r.key,
      kind: r.kind,
      job: r.job,
      task: r.task,
      state: r.state,
      attempt: r.attempt,
      exitCode: r.exit_code,
      reason: r.reason,
      message: r.message,
      startedAt: num(r.started_at),
      endedAt: num(r.ended_at),
    }));
  }

  async attempts(workflowId: string, key?: string): Promise<AttemptRecord[]> {
    const res =
      key === undefined
        ? await this.q('SELECT * FROM attempts WHERE workflow_id=$1 ORDER BY key, attempt', [workflowId])
        : await this.q('SELECT * FROM attempts WHERE workflow_id=$1 AND key=$2 ORDER BY attempt', [workflowId, key]);
    return res.rows.map((r) => ({
      workflowId: r.workflow_id,
      key: r.key,
      attempt: r.attempt,
      startedAt: num(r.started_at),
      endedAt: num(r.ended_at),
      exitCode: r.exit_code,
      attemptId: r.attempt_id,
      term: r.term,
      cgroup: r.cgroup,
      node: r.node,
      signal: r.signal,
      reason: r.reason,
      message: r.message,
      pid: r.pid,
    }));
  }

  async events(workflowId: string, opts: { afterAt?: number } = {}): Promise<EventRecord[]> {
    const res = await this.q('SELECT * FROM events WHERE workflow_id=$1 AND at > $2 ORDER BY id', [workflowId, opts.afterAt ?? -1]);
    return res.rows.map((r) => ({ workflowId: r.workflow_id, at: Number(r.at), key: r.key, level: r.level, message: r.message }));
  }

  async write(batch: WriteBatch): Promise<void> {
    await this.tx(async (c) => {
      if (batch.fence) {
        // FOR UPDATE: a takeover (acquireRunLease) waits until this batch commits or rolls back.
        const r = await c.query('SELECT lease_term FROM workflows WHERE id=$1 FOR UPDATE', [batch.fence.workflowId]);
        const cur = r.rows[0] ? Number(r.rows[0].lease_term) : null;
        if (cur !== batch.fence.term) throw fencedError(batch.fence.workflowId, batch.fence.term, cur);
      }
      const units = batch.units ?? [];
      if (units.length) {
        const u = units.map((x) => x.unit);
        const changed = await c.query(
          // Upserted: a task of a task array gets its row when it first starts.
          `INSERT INTO units AS t (workflow_id, key, state, attempt, exit_code, reason, message, started_at, ended_at, kind, job, task, seq)
           SELECT v.*, -1 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::int[])
             AS v(workflow_id, key, state, attempt, exit_code, reason, message, started_at, ended_at, kind, job, task)
           ON CONFLICT (workflow_id, key) DO UPDATE SET state=excluded.state, attempt=excluded.attempt, exit_code=excluded.exit_code, reason=excluded.reason,
             message=excluded.message, started_at=excluded.started_at, ended_at=excluded.ended_at WHERE t.state <> 'succeeded'
           RETURNING t.workflow_id, t.key`,
          [units.map((x) => x.workflowId), u.map((x) => x.key), u.map((x) => x.state), u.map((x) => x.attempt), u.map((x) => x.exitCode), u.map((x) => x.reason), u.map((x) => x.message), u.map((x) => x.startedAt), u.map((x) => x.endedAt), u.map((x) => x.kind), u.map((x) => x.job), u.map((x) => x.task)],
        );
        const hit = new Set(changed.rows.map((r) => `${r.workflow_id}\u0000${r.key}`));
        const done = units
          .filter((x) => hit.has(`${x.workflowId}\u0000${x.unit.key}`))
          .map((x) => x.unit)
          .filter((x) => x.state === 'succeeded' && x.kind === 'job' && x.startedAt !== null && x.endedAt !== null);
        if (done.length) {
          await c.query(`INSERT INTO job_history (job, ended_at, seconds) SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[])`, [
            done.map((x) => x.job),
            done.map((x) => x.endedAt),
            done.map((x) => (x.endedAt! - x.startedAt!) / 1000),
          ]);
        }
      }
      const upsert = attemptUpsertSql((n) => `$${n}`);
      for (const a of batch.attempts ?? []) await c.query(upsert, attemptParams(a));
      for (const e of batch.events ?? []) {
        await c.query('INSERT INTO events (workflow_id,at,key,level,message) VALUES ($1,$2,$3,$4,$5)', [e.workflowId, e.at, e.key, e.level, e.message]);
      }
      for (const { id, patch } of batch.workflows ?? []) {
        const cols: string[] = [];
        const vals: unknown[] = [];
        for (const [k, v] of Object.entries(patch)) {
          const col = PATCH_COLUMNS[k as keyof WorkflowPatch];
          if (!col) continue;
          vals.push(k === 'options' ? JSON.stringify(v) : v);
          cols.push(`${col} = $${vals.length}`);
        }
        if (cols.length) await c.query(`UPDATE workflows SET ${cols.join(', ')} WHERE id = $${vals.length + 1}`, [...vals, id]);
      }
    });
  }

  async jobHistory(jobName: string, limit = 20): Promise<number[]> {
    const res = await this.q('SELECT seconds FROM job_history WHERE job=$1 ORDER BY ended_at DESC LIMIT $2', [jobName, limit]);
    return res.rows.map((r) => Number(r.seconds));
  }

  async addUser(u: UserRecord): Promise<void> {
    const r = await this.q('INSERT INTO users (name, unix_user, admin, created_at) VALUES ($1,$2,$3,$4) ON CONFLICT (name) DO NOTHING', [u.name, u.unixUser, u.admin, u.createdAt]);
    if (r.rowCount === 0) throw userExistsError(u.name);
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    const r = (await this.q('SELECT * FROM users WHERE name = $1', [name])).rows[0];
    return r && userOf(r);
  }

  async listUsers(): Promise<UserRecord[]> {
    return (await this.q('SELECT * FROM users ORDER BY name', [])).rows.map(userOf);
  }

  async removeUser(name: string): Promise<boolean> {
    // api_tokens.user_name references users ON DELETE CASCADE: its tokens go in the same statement.
    return (await this.q('DELETE FROM users WHERE name = $1', [name])).rowCount === 1;
  }

  async insertApiToken(t: ApiTokenRecord): Promise<void> {
    let r: pg.QueryResult;
    try {
      r = await this.q(API_TOKEN_INSERT(pp), apiTokenParams(t, asIs));
    } catch (e) {
      if ((e as { code?: string }).code === '23503') throw userNotFoundError(t.user); // foreign_key_violation
      throw e;
    }
    if (r.rowCount === 0) throw duplicateTokenError('API token', t.id);
  }

  async findApiToken(hash: string): Promise<ApiTokenRecord | undefined> {
    const r = (await this.q('SELECT * FROM api_tokens WHERE hash = $1', [hash])).rows[0];
    return r && apiTokenOf(r);
  }

  async listApiTokens(user?: string): Promise<ApiTokenRecord[]> {
    const res =
      user === undefined
        ? await this.q('SELECT * FROM api_tokens ORDER BY created_at, id', [])
        : await this.q('SELECT * FROM api_tokens WHERE user_name = $1 ORDER BY created_at, id', [user]);
    return res.rows.map(apiTokenOf);
  }

  async revokeApiToken(id: string): Promise<boolean> {
    return (await this.q('UPDATE api_tokens SET revoked = true WHERE id = $1', [id])).rowCount === 1;
  }

  async touchApiToken(id: string, at: number): Promise<void> {
    await this.q('UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)', [at, id]);
  }

  joinTokens(): TokenStore {
    return {
      insert: async (r: TokenRecord) => {
        if ((await this.q(JOIN_INSERT(pp), joinTokenParams(r))).rowCount === 0) throw duplicateTokenError('join token', r.id);
      },
      // One statement: the row lock makes a concurrent consume wait and re-check uses_left.
      consume: async (hash: string, now: number, node?: string) => {
        const r = (await this.q(JOIN_CONSUME(pp), [hash, now, node ?? null])).rows[0];
        return r && joinTokenOf(r);
      },
      get: async (hash: string) => {
        const r = (await this.q('SELECT * FROM join_tokens WHERE hash = $1', [hash])).rows[0];
        return r && joinTokenOf(r);
      },
      list: async () => (await this.q('SELECT * FROM join_tokens ORDER BY created_at, id', [])).rows.map(joinTokenOf),
      delete: async (hashOrId: string) => ((await this.q('DELETE FROM join_tokens WHERE hash = $1 OR id = $1', [hashOrId])).rowCount ?? 0) > 0,
    };
  }

  async upsertNode(n: NodeRecord): Promise<void> {
    await this.q(NODE_UPSERT(pp), nodeParams(n, asIs));
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const r = (await this.q('SELECT * FROM nodes WHERE name = $1', [name])).rows[0];
    return r && nodeOf(r);
  }

  async stats(): Promise<StoreStats> {
    return statsOf((await this.q(STATS_SQL, [])).rows as Array<{ t: string; k: string; d: unknown; n: unknown }>);
  }

  async listNodes(): Promise<NodeRecord[]> {
    return (await this.q('SELECT * FROM nodes ORDER BY name', [])).rows.map(nodeOf);
  }

  async patchNode(name: string, patch: NodePatch): Promise<boolean> {
    const q = nodePatchSql(name, patch, pp, asIs);
    if (!q) return (await this.getNode(name)) !== undefined;
    return (await this.q(q.text, q.values)).rowCount === 1;
  }

  async deleteNode(name: string): Promise<boolean> {
    return (await this.q('DELETE FROM nodes WHERE name = $1', [name])).rowCount === 1;
  }

  async appendAudit(e: Omit<AuditRecord, 'id'>): Promise<AuditRecord> {
    return auditOf((await this.q(AUDIT_INSERT(pp), [e.at, e.actor, e.action, e.target, e.source, e.result, JSON.stringify(e.details ?? {})])).rows[0]);
  }

  async listAudit(q: AuditQuery = {}): Promise<AuditRecord[]> {
    const s = listAuditSql(q, pp);
    return (await this.q(s.text, s.values)).rows.map(auditOf);
  }

  // ---- retention (schema v7): each call one short statement or transaction ----

  async pruneWorkflows(q: PruneSelect): Promise<PrunedWorkflow[]> {
    if (q.ids && q.ids.length === 0) return [];
    const only = q.ids ? ' AND id = ANY($5::text[])' : '';
    const cond = prunableSql(pp, 1, 2);
    // The condition is in the DELETE itself: a workflow that a resume took meanwhile (its row
    // updated and locked) is re-checked by PostgreSQL after that commits, and kept. SKIP LOCKED:
    // rows a runner holds locked now are not waited for (they are not prunable anyway).
    const r = await this.q(
      `WITH c AS MATERIALIZED (SELECT id FROM workflows WHERE ${cond}${only} LIMIT $3 FOR UPDATE SKIP LOCKED),
       d AS (
         DELETE FROM workflows WHERE ${cond}${only} AND id IN (SELECT id FROM c)
         RETURNING id, name, status, owner, run_dir, ended_at),
       queued AS (INSERT INTO prune_queue (id, run_dir, pruned_at) SELECT id, run_dir, $4 FROM d ON CONFLICT (id) DO NOTHING)
       SELECT * FROM d`,
      [q.endedBefore, q.now, q.limit ?? 100, Date.now(), ...(q.ids ? [q.ids] : [])],
    );
    return r.rows.map(prunedOf);
  }

  async purgePruned(ids: string[], maxRows: number): Promise<PurgeStep> {
    const out: Record<string, number> = {};
    if (ids.length === 0) return { units: 0, attempts: 0, events: 0 };
    // One statement per table (each its own short transaction), rows named by ctid, found
    // through each table's index on workflow_id.
    for (const { table } of PRUNED_CHILDREN) {
      const r = await this.asyncCommit(
        `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(
           SELECT c.ctid FROM ${table} c WHERE c.workflow_id = ANY($1::text[])
             AND EXISTS (SELECT 1 FROM prune_queue q WHERE q.id = c.workflow_id)
             AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = c.workflow_id)
           LIMIT $2))`,
        [ids, maxRows],
      );
      out[table] = r.rowCount ?? 0;
    }
    return { units: out.units ?? 0, attempts: out.attempts ?? 0, events: out.events ?? 0 };
  }

  /**
   * One statement in its own transaction that does not wait for its commit to reach the disk
   * (synchronous_commit off): the bulk deletes of a prune. A crash can only undo the last of
   * them (rows that come back are deleted by the next prune), and the writes that must be
   * durable (the runners', finishPruned) flush them with their own commit, since the log is
   * written in order. Saves a WAL flush per step that the runners' commits would queue behind.
   */
  private asyncCommit(text: string, values: unknown[]): Promise<pg.QueryResult> {
    return this.tx(async (c) => {
      await c.query('SET LOCAL synchronous_commit TO OFF');
      return c.query(text, values);
    });
  }

  async pruneQueue(limit = 1000): Promise<PruneQueueEntry[]> {
    const r = await this.q('SELECT id, run_dir, pruned_at FROM prune_queue ORDER BY pruned_at, id LIMIT $1', [limit]);
    return r.rows.map((x) => ({ id: x.id, runDir: x.run_dir, prunedAt: Number(x.pruned_at) }));
  }

  async finishPruned(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const r = await this.q(`DELETE FROM prune_queue WHERE id = ANY($1::text[]) AND ${NO_CHILDREN_SQL} RETURNING id`, [ids]);
    return r.rows.map((x) => x.id as string);
  }

  async pruneHistory(endedBefore: number, maxRows: number): Promise<number> {
    // In end-time order: through job_history_ended (a plain scan would walk the rows deleted by
    // the steps before, until a vacuum).
    const r = await this.asyncCommit('DELETE FROM job_history WHERE ctid = ANY(ARRAY(SELECT ctid FROM job_history WHERE ended_at < $1 ORDER BY ended_at LIMIT $2))', [endedBefore, maxRows]);
    return r.rowCount ?? 0;
  }

  async previewPrune(q: PruneSelect, opts: { rows?: boolean } = {}): Promise<PrunePreview> {
    const only = q.ids ? ' AND id = ANY($3::text[])' : '';
    const w = `SELECT id FROM workflows WHERE ${prunableSql(pp, 1, 2)}${only}`;
    const count = (t: string) => (opts.rows === false ? '0' : `(SELECT count(*) FROM ${t} WHERE workflow_id IN (${w}))`);
    const r = await this.q(
      `SELECT (SELECT count(*) FROM (${w}) x) AS workflows,
         ${count('units')} AS units, ${count('attempts')} AS attempts, ${count('events')} AS events,
         (SELECT count(*) FROM workflows WHERE status IN ('running', 'pending') AND created_at < $1${only}) AS kept_running,
         (SELECT count(*) FROM workflows WHERE status IN ('succeeded', 'failed', 'canceled') AND ended_at < $1 AND lease_owner IS NOT NULL AND lease_expires_at > $2${only}) AS kept_leased`,
      [q.endedBefore, q.now, ...(q.ids ? [q.ids] : [])],
    );
    const x = r.rows[0]!;
    return { workflows: Number(x.workflows), units: Number(x.units), attempts: Number(x.attempts), events: Number(x.events), keptRunning: Number(x.kept_running), keptLeased: Number(x.kept_leased) };
  }

  async workflowEnds(ids: string[]): Promise<Map<string, { status: WorkflowStatus; endedAt: number | null }>> {
    if (ids.length === 0) return new Map();
    const r = await this.q('SELECT id, status, ended_at FROM workflows WHERE id = ANY($1::text[])', [ids]);
    return new Map(r.rows.map((x) => [x.id as string, { status: x.status as WorkflowStatus, endedAt: x.ended_at === null ? null : Number(x.ended_at) }]));
  }

  // ---- the provisioning inventory (schema v8) ----

  async listProfiles(): Promise<ProfileRecord[]> {
    return (await this.q('SELECT * FROM provision_profiles ORDER BY name', [])).rows.map(profileOf);
  }

  async getProfile(name: string): Promise<ProfileRecord | undefined> {
    const r = (await this.q('SELECT * FROM provision_profiles WHERE name = $1', [name])).rows[0];
    return r && profileOf(r);
  }

  async putProfile(p: ProfileRecord, mode: 'create' | 'replace'): Promise<void> {
    if (mode === 'create') {
      const r = await this.q('INSERT INTO provision_profiles (name, fields, created_at, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING', [p.name, fieldsJson(p), p.createdAt, p.updatedAt]);
      if (r.rowCount === 0) throw existsError('profile', [p.name]);
    } else {
      const r = await this.q('UPDATE provision_profiles SET fields = $1, updated_at = $2 WHERE name = $3', [fieldsJson(p), p.updatedAt, p.name]);
      if (r.rowCount === 0) throw notFoundError('profile', [p.name]);
    }
  }

  async deleteProfile(name: string): Promise<boolean> {
    try {
      return await this.tx(async (c) => {
        const users = (await c.query('SELECT DISTINCT node FROM provision_node_profiles WHERE profile = $1 ORDER BY node', [name])).rows.map((r) => r.node as string);
        if (users.length) throw profileInUseError(name, users);
        return (await c.query('DELETE FROM provision_profiles WHERE name = $1', [name])).rowCount === 1;
      });
    } catch (e) {
      // A node that took the profile on meanwhile (its link row holds the profile's key).
      if ((e as { code?: string })?.code === '23503') throw profileInUseError(name, ['(a node added just now)']);
      throw e;
    }
  }

  async listInventoryNodes(): Promise<InventoryNode[]> {
    return (await this.q('SELECT * FROM provision_nodes ORDER BY name', [])).rows.map(inventoryNodeOf);
  }

  async getInventoryNode(name: string): Promise<InventoryNode | undefined> {
    const r = (await this.q('SELECT * FROM provision_nodes WHERE name = $1', [name])).rows[0];
    return r && inventoryNodeOf(r);
  }

  async inventoryNodeByMac(mac: string): Promise<InventoryNode | undefined> {
    const r = (await this.q(`SELECT n.* FROM provision_addresses a JOIN provision_nodes n ON n.name = a.node WHERE a.kind = 'mac' AND a.value = $1`, [mac.trim().toLowerCase()])).rows[0];
    return r && inventoryNodeOf(r);
  }

  async putInventoryNodes(nodes: readonly InventoryNode[], mode: 'create' | 'replace'): Promise<void> {
    if (nodes.length === 0) return;
    const keys = nodeWriteKeys(nodes);
    try {
      await this.tx(async (c) => {
        const existing = new Set((await c.query('SELECT name FROM provision_nodes WHERE name = ANY($1::text[])' + (mode === 'replace' ? ' FOR UPDATE' : ''), [keys.names])).rows.map((r) => r.name as string));
        const holders = new Map(
          (await c.query(`SELECT kind, value, node FROM provision_addresses WHERE kind || ':' || value = ANY($1::text[])`, [keys.addresses.map((a) => `${a.kind}:${a.value}`)])).rows.map((r) => [
            `${r.kind as string}:${r.value as string}`,
            r.node as string,
          ]),
        );
        const profiles = new Set((await c.query('SELECT name FROM provision_profiles WHERE name = ANY($1::text[]) FOR KEY SHARE', [keys.profiles])).rows.map((r) => r.name as string));
        checkNodeWrite(nodes, mode, keys, { existing, holders, profiles });
        await c.query('DELETE FROM provision_addresses WHERE node = ANY($1::text[])', [keys.names]);
        await c.query('DELETE FROM provision_node_profiles WHERE node = ANY($1::text[])', [keys.names]);
        // One statement per table for the whole batch (unnest of arrays): a range of a
        // thousand nodes is three statements, not three thousand.
        const rows = nodes.map((n) => [n.name, JSON.stringify(n.profiles), fieldsJson(n), n.createdAt, n.updatedAt] as const);
        const col = <T>(i: number) => rows.map((r) => r[i] as T);
        if (mode === 'create') {
          await c.query(
            `INSERT INTO provision_nodes (name, profiles, fields, created_at, updated_at)
             SELECT * FROM unnest($1::text[], $2::jsonb[], $3::jsonb[], $4::bigint[], $5::bigint[])`,
            [col(0), col(1), col(2), col(3), col(4)],
          );
        } else {
          await c.query(
            `UPDATE provision_nodes n SET profiles = u.profiles, fields = u.fields, updated_at = u.updated_at
             FROM unnest($1::text[], $2::jsonb[], $3::jsonb[], $4::bigint[]) AS u(name, profiles, fields, updated_at) WHERE n.name = u.name`,
            [col(0), col(1), col(2), col(4)],
          );
        }
        const links = nodes.flatMap((n) => n.profiles.map((p, i) => [n.name, i, p] as const));
        if (links.length) {
          await c.query('INSERT INTO provision_node_profiles (node, pos, profile) SELECT * FROM unnest($1::text[], $2::int[], $3::text[])', [links.map((l) => l[0]), links.map((l) => l[1]), links.map((l) => l[2])]);
        }
        if (keys.addresses.length) {
          const a = keys.addresses;
          await c.query('INSERT INTO provision_addresses (kind, value, node, device) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])', [a.map((x) => x.kind), a.map((x) => x.value), a.map((x) => x.node), a.map((x) => x.device)]);
        }
      });
    } catch (e) {
      const pe = e as { code?: string; constraint?: string; detail?: string };
      if (pe?.code === '23505') throw raceError(pe.constraint ?? 'unique', pe.detail ?? '');
      if (pe?.code === '23503') throw raceError(pe.constraint ?? 'foreign key', pe.detail ?? 'a profile was deleted meanwhile');
      throw e;
    }
  }

  async deleteInventoryNodes(names: readonly string[]): Promise<number> {
    if (names.length === 0) return 0;
    // Addresses, profile links and boot status go with their node (ON DELETE CASCADE).
    return (await this.q('DELETE FROM provision_nodes WHERE name = ANY($1::text[])', [[...names]])).rowCount ?? 0;
  }

  async getBootStatus(name: string): Promise<BootStatus | undefined> {
    const r = (await this.q('SELECT * FROM provision_boot WHERE node = $1', [name])).rows[0];
    return r && bootStatusOf(r);
  }

  async listBootStatus(): Promise<Map<string, BootStatus>> {
    const rows = (await this.q('SELECT * FROM provision_boot ORDER BY node', [])).rows;
    return new Map(rows.map((r) => [r.node as string, bootStatusOf(r)]));
  }

  async patchBootStatus(name: string, patch: Partial<BootStatus>): Promise<void> {
    const q = bootPatchSql(name, patch, pp);
    if (q) await this.q(q.text, q.values);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** ms since the epoch on the database's clock. */
const PG_NOW_MS = '(extract(epoch from now()) * 1000)::bigint';

function leaderOf(r: Record<string, unknown>): LeaderLease {
  return { holder: (r.holder as string | null) ?? null, url: (r.url as string | null) ?? null, term: Number(r.term), expiresAt: Number(r.expires_at), now: Number(r.now_ms) };
}

function caOf(r: Record<string, unknown>): ClusterCaRecord {
  return { trustDomain: r.trust_domain as string, certPem: r.cert_pem as string, keyPem: r.key_pem as string, createdAt: Number(r.created_at) };
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

function fromRow(r: Record<string, unknown>): WorkflowRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    file: r.file as string | null,
    status: r.status as WorkflowStatus,
    spec: r.spec as WorkflowRecord['spec'],
    options: r.options as Record<string, unknown>,
    runDir: r.run_dir as string,
    createdAt: Number(r.created_at),
    startedAt: num(r.started_at),
    endedAt: num(r.ended_at),
    cancelRequested: r.cancel_requested as boolean,
    lease: leaseOf(r as never),
    owner: (r.owner as string | null) ?? null,
  };
}

/** Bring the database to SCHEMA_VERSION: each missing step in one transaction with its number. */
async function migrate(c: pg.PoolClient, where: string): Promise<void> {
  await c.query('CREATE TABLE IF NOT EXISTS warren_schema (version INTEGER NOT NULL)');
  const r = await c.query('SELECT version FROM warren_schema');
  if (r.rows.length === 0) await c.query('INSERT INTO warren_schema (version) VALUES (0)');
  const v = r.rows.length ? Math.max(...r.rows.map((x) => Number(x.version))) : 0;
  if (v > SCHEMA_VERSION) throw schemaNewerError(where, v, SCHEMA_VERSION);
  for (const m of pendingMigrations(v)) {
    await c.query('BEGIN');
    try {
      await c.query(migrationSql(m, 'postgres'));
      await c.query('UPDATE warren_schema SET version = $1', [m.version]);
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    }
  }
}

/** PostgreSQL's disk_full and data_corrupted/index_corrupted as the store's errors. */
/** The connection, not the statement, failed: the server is down, restarting or unreachable. */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: string })?.code ?? '';
  const msg = String((e as Error)?.message ?? '');
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03'].includes(code) ||
    code.startsWith('08') ||
    /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|connection is not open|not queryable/i.test(msg)
  );
}

function mapPgError(e: unknown, where: string): unknown {
  if (isConnectionError(e)) {
    return new WarrenError('STORE_UNAVAILABLE', `${where} is not reachable: ${(e as Error).message}`, {
      hint: 'Warren retries and loses nothing accepted; check that PostgreSQL runs and is reachable (`pg_isready`)',
      cause: e,
    });
  }
  const code = (e as { code?: string })?.code;
  if (code === '53100') return diskFullError(where, e, { recorded: false });
  if (code === 'XX001' || code === 'XX002') return corruptError(where, e);
  return e;
}
