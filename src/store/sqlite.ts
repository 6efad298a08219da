// The embedded store: one SQLite file (WAL) under $WARREN_HOME. better-sqlite3 is
// synchronous; the Store interface is async so PostgreSQL can implement it too.
//
// Hardening: the schema is migrated on open (src/store/migrations.ts, PRAGMA user_version); a
// damaged file is refused with STORE_CORRUPT before anything writes to it; a write that finds
// the disk full releases the reserve file beside the database (warren.db.reserve), retries
// once, and rejects with STORE_DISK_FULL (SQLite's transaction makes it all or nothing).

import Database from 'better-sqlite3';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { WarrenError, isWarrenError } from '../common/index.js';
import type { UnitSnapshot, WorkflowStatus } from '../engine/index.js';
import type { TokenRecord, TokenStore } from '../mesh/index.js';
import { SCHEMA_VERSION, migrationSql, pendingMigrations } from './migrations.js';
import { DEFAULT_RESERVE_BYTES, ensureReserve, releaseReserve } from './reserve.js';
import type { BootStatus, InventoryNode, ProfileRecord } from '../provision/index.js';
import {
  bootPatchSql, bootStatusOf, checkNodeWrite, existsError, fieldsJson, inventoryNodeOf, nodeWriteKeys, notFoundError, profileInUseError, profileOf, raceError,
} from './inventory.js';
import {
  API_TOKEN_INSERT, AUDIT_INSERT, CA_ROTATION_FINISH, CA_ROTATION_PHASE, CA_ROTATION_START, caStateOf, JOIN_CONSUME, JOIN_INSERT, NODE_UPSERT, type LeaseRow, acquireLeaseSql, apiTokenOf, apiTokenParams, attemptParams,
  attemptUpsertSql, auditOf, joinTokenOf, joinTokenParams, leaseOf, listAuditSql, listWorkflowsSql, nodeOf, nodeParams, nodePatchSql, userOf, STATS_SQL, statsOf,
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

interface WfRow {
  id: string;
  name: string;
  file: string | null;
  status: string;
  spec: string;
  options: string;
  run_dir: string;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  cancel_requested: number;
  lease_owner: string | null;
  lease_term: number;
  lease_expires_at: number | null;
  owner: string | null;
}

interface UnitRow {
  key: string;
  kind: string;
  job: string;
  task: number | null;
  state: string;
  attempt: number;
  exit_code: number | null;
  reason: string | null;
  message: string | null;
  started_at: number | null;
  ended_at: number | null;
}

export interface SqliteStoreOptions {
  /** Size of the reserve file beside the database (default 4 MiB; 0: none). */
  reserveBytes?: number;
}

const named = (...v: unknown[]): Record<string, unknown> => Object.fromEntries(v.map((x, i) => [`p${i + 1}`, x]));
const ph = (i: number): string => `@p${i}`;
const b01 = (v: boolean): number => (v ? 1 : 0);
type Row = Record<string, unknown>;

function sqliteCode(e: unknown): string {
  return typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : '';
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  /** The reserve file beside the database. */
  readonly reservePath: string;
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(readonly path: string, opts: SqliteStoreOptions = {}) {
    this.reservePath = `${path}.reserve`;
    const file = path !== ':memory:' && path !== '';
    if (file) {
      try {
        mkdirSync(dirname(path), { recursive: true });
        checkHeader(path);
      } catch (e) {
        throw this.openError(e);
      }
    }
    try {
      this.db = new Database(path);
    } catch (e) {
      throw this.openError(e);
    }
    try {
      this.db.pragma('busy_timeout = 5000');
      // Before anything writes (WAL mode changes the header): refuse a newer schema untouched.
      const v = this.db.pragma('user_version', { simple: true }) as number;
      if (v > SCHEMA_VERSION) throw schemaNewerError(this.path, v, SCHEMA_VERSION);
      this.db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives a crash of the process (kill -9); only a power loss can drop the last commits.
      this.db.pragma('synchronous = NORMAL');
      if (file) checkSize(this.db, path);
      this.migrate();
    } catch (e) {
      this.db.close();
      throw this.openError(e);
    }
    if (file) ensureReserve(this.reservePath, opts.reserveBytes ?? DEFAULT_RESERVE_BYTES);
    const db = this.db;
    this.stmts = {
      insertWf: db.prepare(
        `INSERT INTO workflows (id,name,file,status,spec,options,run_dir,created_at,started_at,ended_at,cancel_requested,owner)
         VALUES (@id,@name,@file,@status,@spec,@options,@run_dir,@created_at,@started_at,@ended_at,@cancel_requested,@owner)`,
      ),
      insertUnit: db.prepare(
        `INSERT INTO units (workflow_id,seq,key,kind,job,task,state,attempt,exit_code,reason,message,started_at,ended_at)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      ),
      // Units are upserted: a task of a task array gets its row when it first starts.
      updateUnit: db.prepare(
        `INSERT INTO units (workflow_id,seq,key,kind,job,task,state,attempt,exit_code,reason,message,started_at,ended_at)
         VALUES (@wf,-1,@key,@kind,@job,@task,@state,@attempt,@exit_code,@reason,@message,@started_at,@ended_at)
         ON CONFLICT(workflow_id,key) DO UPDATE SET state=excluded.state, attempt=excluded.attempt, exit_code=excluded.exit_code, reason=excluded.reason,
           message=excluded.message, started_at=excluded.started_at, ended_at=excluded.ended_at WHERE units.state != 'succeeded'`,
      ),
      upsertAttempt: db.prepare(attemptUpsertSql(ph)),
      insertEvent: db.prepare(`INSERT INTO events (workflow_id,at,key,level,message) VALUES (?,?,?,?,?)`),
      insertHistory: db.prepare(`INSERT INTO job_history (job,ended_at,seconds) VALUES (?,?,?)`),
      getWf: db.prepare(`SELECT * FROM workflows WHERE id = ?`),
      prefixWf: db.prepare(`SELECT * FROM workflows WHERE id >= ? AND id < ? LIMIT 2`),
      getWfOwned: db.prepare(`SELECT * FROM workflows WHERE id = ? AND owner = ?`),
      prefixWfOwned: db.prepare(`SELECT * FROM workflows WHERE id >= ? AND id < ? AND owner = ? LIMIT 2`),
      units: db.prepare(`SELECT key,kind,job,task,state,attempt,exit_code,reason,message,started_at,ended_at FROM units WHERE workflow_id=? ORDER BY seq`),
      attempts: db.prepare(`SELECT * FROM attempts WHERE workflow_id=? ORDER BY key, attempt`),
      attemptsKey: db.prepare(`SELECT * FROM attempts WHERE workflow_id=? AND key=? ORDER BY attempt`),
      events: db.prepare(`SELECT * FROM events WHERE workflow_id=? AND at > ? ORDER BY id`),
      history: db.prepare(`SELECT seconds FROM job_history WHERE job=? ORDER BY ended_at DESC LIMIT ?`),
      term: db.prepare(`SELECT lease_term FROM workflows WHERE id=?`),
      lease: db.prepare(`SELECT lease_owner, lease_term, lease_expires_at FROM workflows WHERE id=?`),
      acquire: db.prepare(acquireLeaseSql(ph)),
      renew: db.prepare(`UPDATE workflows SET lease_expires_at=@p1 WHERE id=@p2 AND lease_owner=@p3 AND lease_term=@p4`),
      release: db.prepare(`UPDATE workflows SET lease_owner=NULL, lease_expires_at=NULL WHERE id=@p1 AND lease_owner=@p2 AND lease_term=@p3`),
      insertUser: db.prepare(`INSERT INTO users (name, unix_user, admin, created_at) VALUES (?,?,?,?) ON CONFLICT (name) DO NOTHING`),
      getUser: db.prepare(`SELECT * FROM users WHERE name = ?`),
      users: db.prepare(`SELECT * FROM users ORDER BY name`),
      deleteUser: db.prepare(`DELETE FROM users WHERE name = ?`),
      deleteUserTokens: db.prepare(`DELETE FROM api_tokens WHERE user_name = ?`),
      insertApiToken: db.prepare(API_TOKEN_INSERT(ph)),
      findApiToken: db.prepare(`SELECT * FROM api_tokens WHERE hash = ?`),
      apiTokens: db.prepare(`SELECT * FROM api_tokens ORDER BY created_at, id`),
      apiTokensOf: db.prepare(`SELECT * FROM api_tokens WHERE user_name = ? ORDER BY created_at, id`),
      revokeApiToken: db.prepare(`UPDATE api_tokens SET revoked = 1 WHERE id = ?`),
      touchApiToken: db.prepare(`UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`),
      insertJoin: db.prepare(JOIN_INSERT(ph)),
      consumeJoin: db.prepare(JOIN_CONSUME(ph)),
      getJoin: db.prepare(`SELECT * FROM join_tokens WHERE hash = ?`),
      joinTokens: db.prepare(`SELECT * FROM join_tokens ORDER BY created_at, id`),
      deleteJoin: db.prepare(`DELETE FROM join_tokens WHERE hash = ? OR id = ?`),
      upsertNode: db.prepare(NODE_UPSERT(ph)),
      getNode: db.prepare(`SELECT * FROM nodes WHERE name = ?`),
      nodes: db.prepare(`SELECT * FROM nodes ORDER BY name`),
      deleteNode: db.prepare(`DELETE FROM nodes WHERE name = ?`),
    };
  }

  /** Apply the forward migrations this database lacks, each in one IMMEDIATE transaction
   *  (several processes opening an old file at once: one migrates, the others see it done). */
  private migrate(): void {
    const version = (): number => this.db.pragma('user_version', { simple: true }) as number;
    const v = version();
    if (v > SCHEMA_VERSION) throw schemaNewerError(this.path, v, SCHEMA_VERSION);
    for (const m of pendingMigrations(v)) {
      this.db
        .transaction(() => {
          if (version() >= m.version) return;
          this.db.exec(migrationSql(m, 'sqlite'));
          this.db.pragma(`user_version = ${m.version}`);
        })
        .immediate();
    }
  }

  private openError(e: unknown): WarrenError {
    if (isWarrenError(e)) return e;
    const code = sqliteCode(e);
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return corruptError(this.path, e);
    if (isDiskFull(e, this.path)) return diskFullError(dirname(this.path), e, { recorded: false });
    return new WarrenError('STORE_OPEN_FAILED', `cannot open the store at ${this.path}: ${(e as Error).message}`, {
      hint: 'check that WARREN_HOME points to a writable directory on a local file system (SQLite needs working file locks)',
      cause: e,
    });
  }

  /** Map SQLite's errors to the store's (corrupt file, disk full). */
  private mapError(e: unknown): unknown {
    if (isWarrenError(e)) return e;
    const code = sqliteCode(e);
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return corruptError(this.path, e);
    if (isDiskFull(e, this.path)) return diskFullError(dirname(this.path), e, { recorded: false });
    return e;
  }

  /** Run a read or write, mapping its errors. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw this.mapError(e);
    }
  }

  /** A write that, when the disk is full, releases the reserve and tries once more: the
   *  promise rejects with STORE_DISK_FULL either way (details.recorded says whether that retry
   *  committed it), so the caller stops the run; nothing is ever half written. */
  private writing<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (!isDiskFull(e, this.path)) throw this.mapError(e);
      const released = releaseReserve(this.reservePath);
      let recorded = false;
      if (released) {
        try {
          fn();
          recorded = true;
        } catch (e2) {
          if (!isDiskFull(e2, this.path)) throw this.mapError(e2);
        }
      }
      throw diskFullError(dirname(this.path), e, { recorded, reserveReleased: released, reserve: this.reservePath });
    }
  }

  async createWorkflow(rec: WorkflowRecord, units: UnitSnapshot[]): Promise<void> {
    const tx = this.db.transaction(() => {
      this.stmts.insertWf.run(toRow(rec));
      let seq = 0;
      for (const u of units) {
        this.stmts.insertUnit.run(rec.id, seq++, u.key, u.kind, u.job, u.task, u.state, u.attempt, u.exitCode, u.reason, u.message, u.startedAt, u.endedAt);
      }
    });
    this.writing(() => tx.immediate());
  }

  async getWorkflow(idOrPrefix: string, opts: { owner?: string } = {}): Promise<WorkflowRecord | undefined> {
    const owned = opts.owner !== undefined;
    return this.guard(() => {
      const exact = (owned ? this.stmts.getWfOwned.get(idOrPrefix, opts.owner) : this.stmts.getWf.get(idOrPrefix)) as WfRow | undefined;
      if (exact) return fromRow(exact);
      if (idOrPrefix.length === 0) return undefined;
      const upper = idOrPrefix.slice(0, -1) + String.fromCharCode(idOrPrefix.charCodeAt(idOrPrefix.length - 1) + 1);
      const rows = (owned ? this.stmts.prefixWfOwned.all(idOrPrefix, upper, opts.owner) : this.stmts.prefixWf.all(idOrPrefix, upper)) as WfRow[];
      if (rows.length > 1) throw ambiguousIdError(idOrPrefix);
      return rows[0] ? fromRow(rows[0]) : undefined;
    });
  }

  async listWorkflows(opts: WorkflowFilter = {}): Promise<WorkflowRecord[]> {
    const q = listWorkflowsSql(opts, ph);
    return this.guard(() => this.db.prepare(q.text).all(named(...q.values)) as WfRow[]).map(fromRow);
  }

  async units(workflowId: string): Promise<UnitSnapshot[]> {
    return this.guard(() => this.stmts.units.all(workflowId) as UnitRow[]).map((r) => ({
      key: r.key,
      kind: r.kind as UnitSnapshot['kind'],
      job: r.job,
      task: r.task,
      state: r.state as UnitSnapshot['state'],
      attempt: r.attempt,
      exitCode: r.exit_code,
      reason: r.reason,
      message: r.message,
      startedAt: r.started_at,
      endedAt: r.ended_at,
    }));
  }

  async attempts(workflowId: string, key?: string): Promise<AttemptRecord[]> {
    const rows = this.guard(
      () => (key === undefined ? this.stmts.attempts.all(workflowId) : this.stmts.attemptsKey.all(workflowId, key)) as Record<string, unknown>[],
    );
    return rows.map((r) => ({
      workflowId: r.workflow_id as string,
      key: r.key as string,
      attempt: r.attempt as number,
      attemptId: r.attempt_id as string,
      term: r.term as number | null,
      cgroup: r.cgroup as string | null,
      node: r.node as string | null,
      startedAt: r.started_at as number | null,
      endedAt: r.ended_at as number | null,
      exitCode: r.exit_code as number | null,
      signal: r.signal as string | null,
      reason: r.reason as string | null,
      message: r.message as string | null,
      pid: r.pid as number | null,
    }));
  }

  async events(workflowId: string, opts: { afterAt?: number } = {}): Promise<EventRecord[]> {
    return this.guard(() => this.stmts.events.all(workflowId, opts.afterAt ?? -1) as Record<string, unknown>[]).map((r) => ({
      workflowId: r.workflow_id as string,
      at: r.at as number,
      key: r.key as string | null,
      level: r.level as EventRecord['level'],
      message: r.message as string,
    }));
  }

  async write(batch: WriteBatch): Promise<void> {
    this.writeSync(batch);
  }

  /** Synchronous write, for flushing on the way out of a signal handler. */
  writeSync(batch: WriteBatch): void {
    const tx = this.db.transaction(() => {
      if (batch.fence) {
        const row = this.stmts.term.get(batch.fence.workflowId) as { lease_term: number } | undefined;
        if (!row || row.lease_term !== batch.fence.term) throw fencedError(batch.fence.workflowId, batch.fence.term, row ? row.lease_term : null);
      }
      for (const { workflowId, unit: u } of batch.units ?? []) {
        const r = this.stmts.updateUnit.run({ wf: workflowId, key: u.key, kind: u.kind, job: u.job, task: u.task, state: u.state, attempt: u.attempt, exit_code: u.exitCode, reason: u.reason, message: u.message, started_at: u.startedAt, ended_at: u.endedAt });
        if (r.changes > 0 && u.state === 'succeeded' && u.kind === 'job' && u.startedAt !== null && u.endedAt !== null) {
          this.stmts.insertHistory.run(u.job, u.endedAt, (u.endedAt - u.startedAt) / 1000);
        }
      }
      for (const a of batch.attempts ?? []) this.stmts.upsertAttempt.run(named(...attemptParams(a)));
      for (const e of batch.events ?? []) this.stmts.insertEvent.run(e.workflowId, e.at, e.key, e.level, e.message);
      for (const { id, patch } of batch.workflows ?? []) {
        const cols: string[] = [];
        const vals: unknown[] = [];
        for (const [k, v] of Object.entries(patch)) {
          const col = PATCH_COLUMNS[k as keyof WorkflowPatch];
          if (!col) continue;
          cols.push(`${col} = ?`);
          vals.push(k === 'options' ? JSON.stringify(v) : typeof v === 'boolean' ? Number(v) : v);
        }
        if (cols.length) this.db.prepare(`UPDATE workflows SET ${cols.join(', ')} WHERE id = ?`).run(...vals, id);
      }
    });
    this.writing(() => tx.immediate());
  }

  async acquireRunLease(workflowId: string, owner: string, ttlMs: number, now: number): Promise<LeaseResult> {
    const tx = this.db.transaction((): LeaseResult => {
      const row = this.stmts.acquire.get(named(owner, now, now + ttlMs, workflowId)) as LeaseRow | undefined;
      if (row) return { ok: true, lease: leaseOf(row)! };
      const cur = this.stmts.lease.get(workflowId) as LeaseRow | undefined;
      if (!cur) throw noWorkflowError(workflowId);
      return { ok: false, current: leaseOf(cur)! };
    });
    return this.guard(() => tx.immediate());
  }

  async renewRunLease(workflowId: string, owner: string, term: number, ttlMs: number, now: number): Promise<boolean> {
    return this.guard(() => this.stmts.renew.run(named(now + ttlMs, workflowId, owner, term)).changes === 1);
  }

  async releaseRunLease(workflowId: string, owner: string, term: number): Promise<void> {
    this.guard(() => this.stmts.release.run(named(workflowId, owner, term)));
  }

  // The leader lease (one server on SQLite, but the same contract): this machine's clock.

  async acquireLeader(holder: string, url: string, ttlMs: number): Promise<LeaderResult> {
    const tx = this.db.transaction((): LeaderResult => {
      const now = Date.now();
      const won = this.db
        .prepare(
          `UPDATE leader_lease SET term = CASE WHEN holder IS ? THEN term ELSE term + 1 END, holder = ?, url = ?, expires_at = ?
           WHERE id = 1 AND (holder = ? OR expires_at <= ?) RETURNING holder, url, term, expires_at`,
        )
        .get(holder, holder, url, now + Math.round(ttlMs), holder, now) as Row | undefined;
      if (won) return { ok: true, lease: leaderOf(won, now) };
      return { ok: false, current: leaderOf(this.db.prepare('SELECT holder, url, term, expires_at FROM leader_lease WHERE id = 1').get() as Row, now) };
    });
    return this.guard(() => tx.immediate());
  }

  async renewLeader(holder: string, term: number, ttlMs: number): Promise<boolean> {
    return this.writing(() => this.db.prepare('UPDATE leader_lease SET expires_at = ? WHERE id = 1 AND holder = ? AND term = ?').run(Date.now() + Math.round(ttlMs), holder, term).changes === 1);
  }

  async releaseLeader(holder: string, term: number): Promise<void> {
    this.writing(() => this.db.prepare('UPDATE leader_lease SET expires_at = 0 WHERE id = 1 AND holder = ? AND term = ?').run(holder, term));
  }

  async readLeader(): Promise<LeaderLease> {
    return leaderOf(this.guard(() => this.db.prepare('SELECT holder, url, term, expires_at FROM leader_lease WHERE id = 1').get() as Row), Date.now());
  }

  async getClusterCa(): Promise<ClusterCaRecord | undefined> {
    const r = this.guard(() => this.db.prepare('SELECT * FROM cluster_ca WHERE id = 1').get() as Row | undefined);
    return r && { trustDomain: r.trust_domain as string, certPem: r.cert_pem as string, keyPem: r.key_pem as string, createdAt: Number(r.created_at) };
  }

  async putClusterCaIfAbsent(ca: ClusterCaRecord): Promise<ClusterCaRecord> {
    this.writing(() => this.db.prepare('INSERT INTO cluster_ca (id, trust_domain, cert_pem, key_pem, created_at) VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING').run(ca.trustDomain, ca.certPem, ca.keyPem, ca.createdAt));
    return (await this.getClusterCa())!;
  }
  async getClusterCaState(): Promise<ClusterCaState | undefined> {
    const r = this.guard(() => this.db.prepare('SELECT * FROM cluster_ca WHERE id = 1').get() as Row | undefined);
    return r && caStateOf(r);
  }

  async startCaRotation(next: { certPem: string; keyPem: string }, at: number, issueAfter: number): Promise<boolean> {
    return this.writing(() => this.db.prepare(CA_ROTATION_START(ph)).run(named(next.certPem, next.keyPem, at, at, issueAfter)).changes === 1);
  }

  async setCaRotationPhase(certPem: string, from: 'trust' | 'issue', to: 'trust' | 'issue', at: number): Promise<boolean> {
    return this.writing(() => this.db.prepare(CA_ROTATION_PHASE(ph)).run(named(to, at, certPem, from)).changes === 1);
  }

  async finishCaRotation(certPem: string, at: number): Promise<boolean> {
    return this.writing(() => this.db.prepare(CA_ROTATION_FINISH(ph)).run(named(at, certPem)).changes === 1);
  }


  async jobHistory(jobName: string, limit = 20): Promise<number[]> {
    return this.guard(() => this.stmts.history.all(jobName, limit) as { seconds: number }[]).map((r) => r.seconds);
  }

  async addUser(u: UserRecord): Promise<void> {
    const r = this.writing(() => this.stmts.insertUser.run(u.name, u.unixUser, b01(u.admin), u.createdAt));
    if (r.changes === 0) throw userExistsError(u.name);
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    const r = this.guard(() => this.stmts.getUser.get(name) as Row | undefined);
    return r && userOf(r);
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.guard(() => this.stmts.users.all() as Row[]).map(userOf);
  }

  async removeUser(name: string): Promise<boolean> {
    const tx = this.db.transaction(() => {
      this.stmts.deleteUserTokens.run(name);
      return this.stmts.deleteUser.run(name).changes === 1;
    });
    return this.writing(() => tx.immediate());
  }

  async insertApiToken(t: ApiTokenRecord): Promise<void> {
    // SQLite does not enforce api_tokens' foreign key here: the user is checked in the same
    // (IMMEDIATE, so serialized) transaction.
    const tx = this.db.transaction(() => {
      if (!this.stmts.getUser.get(t.user)) throw userNotFoundError(t.user);
      if (this.stmts.insertApiToken.run(named(...apiTokenParams(t, b01))).changes === 0) throw duplicateTokenError('API token', t.id);
    });
    this.writing(() => tx.immediate());
  }

  async findApiToken(hash: string): Promise<ApiTokenRecord | undefined> {
    const r = this.guard(() => this.stmts.findApiToken.get(hash) as Row | undefined);
    return r && apiTokenOf(r);
  }

  async listApiTokens(user?: string): Promise<ApiTokenRecord[]> {
    return this.guard(() => (user === undefined ? this.stmts.apiTokens.all() : this.stmts.apiTokensOf.all(user)) as Row[]).map(apiTokenOf);
  }

  async revokeApiToken(id: string): Promise<boolean> {
    return this.writing(() => this.stmts.revokeApiToken.run(id).changes === 1);
  }

  async touchApiToken(id: string, at: number): Promise<void> {
    this.writing(() => this.stmts.touchApiToken.run(at, id, at));
  }

  joinTokens(): TokenStore {
    const st = this.stmts;
    return {
      insert: async (r: TokenRecord) => {
        if (this.writing(() => st.insertJoin.run(named(...joinTokenParams(r))).changes) === 0) throw duplicateTokenError('join token', r.id);
      },
      consume: async (hash: string, now: number, node?: string) => {
        const r = this.writing(() => st.consumeJoin.get(named(hash, now, node ?? null)) as Row | undefined);
        return r && joinTokenOf(r);
      },
      get: async (hash: string) => {
        const r = this.guard(() => st.getJoin.get(hash) as Row | undefined);
        return r && joinTokenOf(r);
      },
      list: async () => this.guard(() => st.joinTokens.all() as Row[]).map(joinTokenOf),
      delete: async (hashOrId: string) => this.writing(() => st.deleteJoin.run(hashOrId, hashOrId).changes) > 0,
    };
  }

  async upsertNode(n: NodeRecord): Promise<void> {
    this.writing(() => this.stmts.upsertNode.run(named(...nodeParams(n, b01))));
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const r = this.guard(() => this.stmts.getNode.get(name) as Row | undefined);
    return r && nodeOf(r);
  }

  async stats(): Promise<StoreStats> {
    return statsOf(this.guard(() => this.db.prepare(STATS_SQL).all() as Array<{ t: string; k: string; d: unknown; n: unknown }>));
  }

  async listNodes(): Promise<NodeRecord[]> {
    return this.guard(() => this.stmts.nodes.all() as Row[]).map(nodeOf);
  }

  async patchNode(name: string, patch: NodePatch): Promise<boolean> {
    const q = nodePatchSql(name, patch, ph, b01);
    if (!q) return (await this.getNode(name)) !== undefined;
    return this.writing(() => this.db.prepare(q.text).run(named(...q.values)).changes === 1);
  }

  async deleteNode(name: string): Promise<boolean> {
    return this.writing(() => this.stmts.deleteNode.run(name).changes === 1);
  }

  async appendAudit(e: Omit<AuditRecord, 'id'>): Promise<AuditRecord> {
    return auditOf(this.writing(() => this.db.prepare(AUDIT_INSERT(ph)).get(named(e.at, e.actor, e.action, e.target, e.source, e.result, JSON.stringify(e.details ?? {}))) as Row));
  }

  async listAudit(q: AuditQuery = {}): Promise<AuditRecord[]> {
    const s = listAuditSql(q, ph);
    return this.guard(() => this.db.prepare(s.text).all(named(...s.values)) as Row[]).map(auditOf);
  }

  // ---- retention (schema v7): each call one short IMMEDIATE transaction ----

  async pruneWorkflows(q: PruneSelect): Promise<PrunedWorkflow[]> {
    const only = q.ids ? ' AND id IN (SELECT value FROM json_each(@p4))' : '';
    const cond = prunableSql(ph, 1, 2);
    const del = this.db.prepare(
      `DELETE FROM workflows WHERE ${cond}${only} AND rowid IN (SELECT rowid FROM workflows WHERE ${cond}${only} LIMIT @p3)
       RETURNING id, name, status, owner, run_dir, ended_at`,
    );
    const queue = this.db.prepare('INSERT INTO prune_queue (id, run_dir, pruned_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING');
    const tx = this.db.transaction((): PrunedWorkflow[] => {
      const rows = (del.all(named(q.endedBefore, q.now, q.limit ?? 100, ...(q.ids ? [JSON.stringify(q.ids)] : []))) as Row[]).map(prunedOf);
      for (const r of rows) queue.run(r.id, r.runDir, Date.now());
      return rows;
    });
    if (q.ids && q.ids.length === 0) return [];
    return this.writing(() => tx.immediate());
  }

  async purgePruned(ids: string[], maxRows: number): Promise<PurgeStep> {
    const out: Record<string, number> = {};
    if (ids.length === 0) return { units: 0, attempts: 0, events: 0 };
    const mine = `c.workflow_id IN (SELECT value FROM json_each(?)) AND EXISTS (SELECT 1 FROM prune_queue q WHERE q.id = c.workflow_id)
      AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = c.workflow_id)`;
    const tx = this.db.transaction(() => {
      for (const { table, key } of PRUNED_CHILDREN) {
        // Units and attempts are WITHOUT ROWID tables: rows are named by their primary key.
        const k = key.length === 1 ? key[0] : `(${key.join(', ')})`;
        const ck = key.map((x) => `c.${x}`).join(', ');
        out[table] = this.db.prepare(`DELETE FROM ${table} WHERE ${k} IN (SELECT ${ck} FROM ${table} c WHERE ${mine} LIMIT ?)`).run(JSON.stringify(ids), maxRows).changes;
      }
    });
    this.writing(() => tx.immediate());
    return { units: out.units ?? 0, attempts: out.attempts ?? 0, events: out.events ?? 0 };
  }

  async pruneQueue(limit = 1000): Promise<PruneQueueEntry[]> {
    return this.guard(() => this.db.prepare('SELECT id, run_dir, pruned_at FROM prune_queue ORDER BY pruned_at, id LIMIT ?').all(limit) as Row[]).map((r) => ({
      id: r.id as string,
      runDir: r.run_dir as string,
      prunedAt: Number(r.pruned_at),
    }));
  }

  async finishPruned(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = this.writing(
      () => this.db.prepare(`DELETE FROM prune_queue WHERE id IN (SELECT value FROM json_each(?)) AND ${NO_CHILDREN_SQL} RETURNING id`).all(JSON.stringify(ids)) as Row[],
    );
    return rows.map((r) => r.id as string);
  }

  async pruneHistory(endedBefore: number, maxRows: number): Promise<number> {
    return this.writing(
      () => this.db.prepare('DELETE FROM job_history WHERE rowid IN (SELECT rowid FROM job_history WHERE ended_at < ? ORDER BY ended_at LIMIT ?)').run(endedBefore, maxRows).changes,
    );
  }

  async previewPrune(q: PruneSelect, opts: { rows?: boolean } = {}): Promise<PrunePreview> {
    const only = q.ids ? ' AND id IN (SELECT value FROM json_each(@p3))' : '';
    const w = `SELECT id FROM workflows WHERE ${prunableSql(ph, 1, 2)}${only}`;
    const count = (t: string) => (opts.rows === false ? '0' : `(SELECT count(*) FROM ${t} WHERE workflow_id IN (${w}))`);
    const r = this.guard(
      () =>
        this.db
          .prepare(
            `SELECT (SELECT count(*) FROM (${w})) AS workflows,
               ${count('units')} AS units, ${count('attempts')} AS attempts, ${count('events')} AS events,
               (SELECT count(*) FROM workflows WHERE status IN ('running', 'pending') AND created_at < @p1${only}) AS kept_running,
               (SELECT count(*) FROM workflows WHERE status IN ('succeeded', 'failed', 'canceled') AND ended_at < @p1 AND lease_owner IS NOT NULL AND lease_expires_at > @p2${only}) AS kept_leased`,
          )
          .get(named(q.endedBefore, q.now, ...(q.ids ? [JSON.stringify(q.ids)] : []))) as Row,
    );
    return { workflows: Number(r.workflows), units: Number(r.units), attempts: Number(r.attempts), events: Number(r.events), keptRunning: Number(r.kept_running), keptLeased: Number(r.kept_leased) };
  }

  async workflowEnds(ids: string[]): Promise<Map<string, { status: WorkflowStatus; endedAt: number | null }>> {
    const rows = this.guard(() => this.db.prepare('SELECT id, status, ended_at FROM workflows WHERE id IN (SELECT value FROM json_each(?))').all(JSON.stringify(ids)) as Row[]);
    return new Map(rows.map((r) => [r.id as string, { status: r.status as WorkflowStatus, endedAt: r.ended_at === null ? null : Number(r.ended_at) }]));
  }

  // ---- the provisioning inventory (schema v8): each write one IMMEDIATE transaction ----

  async listProfiles(): Promise<ProfileRecord[]> {
    return this.guard(() => this.db.prepare('SELECT * FROM provision_profiles ORDER BY name').all() as Row[]).map(profileOf);
  }

  async getProfile(name: string): Promise<ProfileRecord | undefined> {
    const r = this.guard(() => this.db.prepare('SELECT * FROM provision_profiles WHERE name = ?').get(name) as Row | undefined);
    return r && profileOf(r);
  }

  async putProfile(p: ProfileRecord, mode: 'create' | 'replace'): Promise<void> {
    const tx = this.db.transaction(() => {
      if (mode === 'create') {
        const r = this.db.prepare('INSERT INTO provision_profiles (name, fields, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING').run(p.name, fieldsJson(p), p.createdAt, p.updatedAt);
        if (r.changes === 0) throw existsError('profile', [p.name]);
      } else {
        const r = this.db.prepare('UPDATE provision_profiles SET fields = ?, updated_at = ? WHERE name = ?').run(fieldsJson(p), p.updatedAt, p.name);
        if (r.changes === 0) throw notFoundError('profile', [p.name]);
      }
    });
    this.writing(() => tx.immediate());
  }

  async deleteProfile(name: string): Promise<boolean> {
    const tx = this.db.transaction((): boolean => {
      const users = (this.db.prepare('SELECT DISTINCT node FROM provision_node_profiles WHERE profile = ? ORDER BY node').all(name) as Row[]).map((r) => r.node as string);
      if (users.length) throw profileInUseError(name, users);
      return this.db.prepare('DELETE FROM provision_profiles WHERE name = ?').run(name).changes === 1;
    });
    return this.writing(() => tx.immediate());
  }

  async listInventoryNodes(): Promise<InventoryNode[]> {
    return this.guard(() => this.db.prepare('SELECT * FROM provision_nodes ORDER BY name').all() as Row[]).map(inventoryNodeOf);
  }

  async getInventoryNode(name: string): Promise<InventoryNode | undefined> {
    const r = this.guard(() => this.db.prepare('SELECT * FROM provision_nodes WHERE name = ?').get(name) as Row | undefined);
    return r && inventoryNodeOf(r);
  }

  async inventoryNodeByMac(mac: string): Promise<InventoryNode | undefined> {
    const r = this.guard(
      () => this.db.prepare(`SELECT n.* FROM provision_addresses a JOIN provision_nodes n ON n.name = a.node WHERE a.kind = 'mac' AND a.value = ?`).get(mac.trim().toLowerCase()) as Row | undefined,
    );
    return r && inventoryNodeOf(r);
  }

  async putInventoryNodes(nodes: readonly InventoryNode[], mode: 'create' | 'replace'): Promise<void> {
    if (nodes.length === 0) return;
    const keys = nodeWriteKeys(nodes);
    const db = this.db;
    const tx = db.transaction(() => {
      const names = JSON.stringify(keys.names);
      const existing = new Set((db.prepare('SELECT name FROM provision_nodes WHERE name IN (SELECT value FROM json_each(?))').all(names) as Row[]).map((r) => r.name as string));
      const holders = new Map(
        (db.prepare(`SELECT kind, value, node FROM provision_addresses WHERE kind || ':' || value IN (SELECT value FROM json_each(?))`).all(JSON.stringify(keys.addresses.map((a) => `${a.kind}:${a.value}`))) as Row[]).map((r) => [
          `${r.kind as string}:${r.value as string}`,
          r.node as string,
        ]),
      );
      const profiles = new Set((db.prepare('SELECT name FROM provision_profiles WHERE name IN (SELECT value FROM json_each(?))').all(JSON.stringify(keys.profiles)) as Row[]).map((r) => r.name as string));
      checkNodeWrite(nodes, mode, keys, { existing, holders, profiles });
      db.prepare('DELETE FROM provision_addresses WHERE node IN (SELECT value FROM json_each(?))').run(names);
      db.prepare('DELETE FROM provision_node_profiles WHERE node IN (SELECT value FROM json_each(?))').run(names);
      const put =
        mode === 'create'
          ? db.prepare('INSERT INTO provision_nodes (name, profiles, fields, created_at, updated_at) VALUES (@p1, @p2, @p3, @p4, @p5)')
          : db.prepare('UPDATE provision_nodes SET profiles = @p2, fields = @p3, updated_at = @p5 WHERE name = @p1');
      const link = db.prepare('INSERT INTO provision_node_profiles (node, pos, profile) VALUES (?, ?, ?)');
      const addr = db.prepare('INSERT INTO provision_addresses (kind, value, node, device) VALUES (?, ?, ?, ?)');
      for (const n of nodes) {
        put.run(named(n.name, JSON.stringify(n.profiles), fieldsJson(n), n.createdAt, n.updatedAt));
        n.profiles.forEach((p, i) => link.run(n.name, i, p));
      }
      for (const a of keys.addresses) addr.run(a.kind, a.value, a.node, a.device);
    });
    try {
      this.writing(() => tx.immediate());
    } catch (e) {
      if (sqliteCode(e).startsWith('SQLITE_CONSTRAINT')) throw raceError('unique', (e as Error).message);
      throw e;
    }
  }

  async deleteInventoryNodes(names: readonly string[]): Promise<number> {
    if (names.length === 0) return 0;
    const list = JSON.stringify(names);
    const tx = this.db.transaction((): number => {
      for (const t of ['provision_addresses', 'provision_node_profiles']) this.db.prepare(`DELETE FROM ${t} WHERE node IN (SELECT value FROM json_each(?))`).run(list);
      this.db.prepare('DELETE FROM provision_boot WHERE node IN (SELECT value FROM json_each(?))').run(list);
      return this.db.prepare('DELETE FROM provision_nodes WHERE name IN (SELECT value FROM json_each(?))').run(list).changes;
    });
    return this.writing(() => tx.immediate());
  }

  async getBootStatus(name: string): Promise<BootStatus | undefined> {
    const r = this.guard(() => this.db.prepare('SELECT * FROM provision_boot WHERE node = ?').get(name) as Row | undefined);
    return r && bootStatusOf(r);
  }

  async listBootStatus(): Promise<Map<string, BootStatus>> {
    const rows = this.guard(() => this.db.prepare('SELECT * FROM provision_boot ORDER BY node').all() as Row[]);
    return new Map(rows.map((r) => [r.node as string, bootStatusOf(r)]));
  }

  async patchBootStatus(name: string, patch: Partial<BootStatus>): Promise<void> {
    const q = bootPatchSql(name, patch, ph);
    if (q) this.writing(() => this.db.prepare(q.text).run(named(...q.values)));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/** Disk full: SQLite says so, or an I/O error while the file system has no room left. */
function isDiskFull(e: unknown, path: string): boolean {
  const code = sqliteCode(e);
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') return true;
  if (!code.startsWith('SQLITE_IOERR')) return false;
  try {
    const fs = statfsSync(dirname(path));
    return fs.bavail * fs.bsize < 64 * 1024;
  } catch {
    return false;
  }
}

const MAGIC = Buffer.from('SQLite format 3\u0000', 'latin1');

/** Refuse a file that is not an SQLite database before SQLite (or WAL mode) touches it. */
function checkHeader(path: string): void {
  if (!existsSync(path)) return;
  const size = statSync(path).size;
  if (size === 0) return; // a new, empty database
  const head = Buffer.alloc(100);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (n < 100 || !head.subarray(0, 16).equals(MAGIC)) {
    throw corruptError(path, new Error(n < 100 ? `file too short (${size} bytes) for a database header` : 'file is not an SQLite database'));
  }
}

/** A truncated file: the header says more pages than the file holds (checked only without a
 *  WAL, whose frames may legitimately hold pages beyond the end of the main file). */
function checkSize(db: Database.Database, path: string): void {
  const wal = `${path}-wal`;
  if (existsSync(wal) && statSync(wal).size > 0) return;
  const pages = db.pragma('page_count', { simple: true }) as number;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const size = statSync(path).size;
  if (pages * pageSize > size) {
    throw corruptError(path, new Error(`file truncated: ${size} bytes, the database needs ${pages * pageSize}`));
  }
}

function toRow(r: WorkflowRecord): Omit<WfRow, 'lease_owner' | 'lease_term' | 'lease_expires_at'> {
  return {
    id: r.id,
    name: r.name,
    file: r.file,
    status: r.status,
    spec: JSON.stringify(r.spec),
    options: JSON.stringify(r.options),
    run_dir: r.runDir,
    created_at: r.createdAt,
    started_at: r.startedAt,
    ended_at: r.endedAt,
    cancel_requested: r.cancelRequested ? 1 : 0,
    owner: r.owner ?? null,
  };
}

function fromRow(r: WfRow): WorkflowRecord {
  return {
    id: r.id,
    name: r.name,
    file: r.file,
    status: r.status as WorkflowStatus,
    spec: JSON.parse(r.spec),
    options: JSON.parse(r.options),
    runDir: r.run_dir,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    cancelRequested: r.cancel_requested === 1,
    lease: leaseOf(r),
    owner: r.owner ?? null,
  };
}

function leaderOf(r: Row | undefined, now: number): LeaderLease {
  return { holder: (r?.holder as string | null) ?? null, url: (r?.url as string | null) ?? null, term: Number(r?.term ?? 0), expiresAt: Number(r?.expires_at ?? 0), now };
}
