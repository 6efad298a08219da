// The PostgreSQL store, for a server with many users. Same contract as SqliteStore
// (test/store/contract.ts runs against both).

import pg from 'pg';
import { WarrenError } from '../common/index.js';
import type { UnitSnapshot, WorkflowStatus } from '../engine/index.js';
import type { AttemptRecord, EventRecord, Store, WorkflowPatch, WorkflowRecord, WriteBatch } from './types.js';
import { PATCH_COLUMNS, ambiguousIdError } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS workflows (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, file TEXT, status TEXT NOT NULL, spec JSONB NOT NULL,
  options JSONB NOT NULL, run_dir TEXT NOT NULL, created_at BIGINT NOT NULL, started_at BIGINT, ended_at BIGINT,
  runner_pid INTEGER, runner_host TEXT, cancel_requested BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX IF NOT EXISTS workflows_created ON workflows(created_at);
CREATE TABLE IF NOT EXISTS units (
  workflow_id TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, job TEXT NOT NULL,
  task INTEGER, state TEXT NOT NULL, attempt INTEGER NOT NULL, exit_code INTEGER, reason TEXT, message TEXT,
  started_at BIGINT, ended_at BIGINT, PRIMARY KEY (workflow_id, key));
CREATE TABLE IF NOT EXISTS attempts (
  workflow_id TEXT NOT NULL, key TEXT NOT NULL, attempt INTEGER NOT NULL, started_at BIGINT, ended_at BIGINT,
  exit_code INTEGER, signal TEXT, reason TEXT, message TEXT, pid INTEGER, PRIMARY KEY (workflow_id, key, attempt));
CREATE TABLE IF NOT EXISTS events (
  id BIGSERIAL PRIMARY KEY, workflow_id TEXT NOT NULL, at BIGINT NOT NULL, key TEXT, level TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_wf ON events(workflow_id, id);
CREATE TABLE IF NOT EXISTS job_history (job TEXT NOT NULL, ended_at BIGINT NOT NULL, seconds DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS job_history_job ON job_history(job, ended_at);
`;


const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export class PgStore implements Store {
  readonly kind = 'postgres' as const;
  private constructor(private readonly pool: pg.Pool) {}

  static async connect(url: string): Promise<PgStore> {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    try {
      const c = await pool.connect();
      try {
        // Serialize concurrent schema creation by several processes.
        await c.query('SELECT pg_advisory_lock(727001)');
        await c.query(SCHEMA);
        await c.query('SELECT pg_advisory_unlock(727001)');
      } finally {
        c.release();
      }
    } catch (e) {
      await pool.end().catch(() => {});
      throw new WarrenError('STORE_OPEN_FAILED', `cannot connect to PostgreSQL at ${redact(url)}: ${(e as Error).message}`, {
        hint: 'check that the server is running and the URL (user, host, port, database) is right',
        cause: e,
      });
    }
    return new PgStore(pool);
  }

  private async tx(fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await fn(c);
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  async createWorkflow(r: WorkflowRecord, units: UnitSnapshot[]): Promise<void> {
    await this.tx(async (c) => {
      await c.query(
        `INSERT INTO workflows (id,name,file,status,spec,options,run_dir,created_at,started_at,ended_at,runner_pid,runner_host,cancel_requested)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
        [r.id, r.name, r.file, r.status, JSON.stringify(r.spec), JSON.stringify(r.options), r.runDir, r.createdAt, r.startedAt, r.endedAt, r.runnerPid, r.runnerHost, r.cancelRequested],
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

  async getWorkflow(idOrPrefix: string): Promise<WorkflowRecord | undefined> {
    const exact = await this.pool.query('SELECT * FROM workflows WHERE id = $1', [idOrPrefix]);
    if (exact.rows[0]) return fromRow(exact.rows[0]);
    if (!idOrPrefix) return undefined;
    const like = idOrPrefix.replace(/[\\%_]/g, (m) => `\\${m}`) + '%';
    const rows = (await this.pool.query('SELECT * FROM workflows WHERE id LIKE $1 LIMIT 2', [like])).rows;
    if (rows.length > 1) throw ambiguousIdError(idOrPrefix);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async listWorkflows(opts: { limit?: number; status?: WorkflowStatus } = {}): Promise<WorkflowRecord[]> {
    const limit = opts.limit ?? 50;
    const res = opts.status
      ? await this.pool.query('SELECT * FROM workflows WHERE status=$1 ORDER BY created_at DESC LIMIT $2', [opts.status, limit])
      : await this.pool.query('SELECT * FROM workflows ORDER BY created_at DESC LIMIT $1', [limit]);
    return res.rows.map(fromRow);
  }

  async units(workflowId: string): Promise<UnitSnapshot[]> {
    const res = await this.pool.query('SELECT * FROM units WHERE workflow_id=$1 ORDER BY seq', [workflowId]);
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
        ? await this.pool.query('SELECT * FROM attempts WHERE workflow_id=$1 ORDER BY key, attempt', [workflowId])
        : await this.pool.query('SELECT * FROM attempts WHERE workflow_id=$1 AND key=$2 ORDER BY attempt', [workflowId, key]);
    return res.rows.map((r) => ({
      workflowId: r.workflow_id,
      key: r.key,
      attempt: r.attempt,
      startedAt: num(r.started_at),
      endedAt: num(r.ended_at),
      exitCode: r.exit_code,
      signal: r.signal,
      reason: r.reason,
      message: r.message,
      pid: r.pid,
    }));
  }

  async events(workflowId: string, opts: { afterAt?: number } = {}): Promise<EventRecord[]> {
    const res = await this.pool.query('SELECT * FROM events WHERE workflow_id=$1 AND at > $2 ORDER BY id', [workflowId, opts.afterAt ?? -1]);
    return res.rows.map((r) => ({ workflowId: r.workflow_id, at: Number(r.at), key: r.key, level: r.level, message: r.message }));
  }

  async write(batch: WriteBatch): Promise<void> {
    await this.tx(async (c) => {
      const units = batch.units ?? [];
      if (units.length) {
        const u = units.map((x) => x.unit);
        await c.query(
          // Upserted: a task of a task array gets its row when it first starts.
          `INSERT INTO units AS t (workflow_id, key, state, attempt, exit_code, reason, message, started_at, ended_at, kind, job, task, seq)
           SELECT v.*, -1 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::int[])
             AS v(workflow_id, key, state, attempt, exit_code, reason, message, started_at, ended_at, kind, job, task)
           ON CONFLICT (workflow_id, key) DO UPDATE SET state=excluded.state, attempt=excluded.attempt, exit_code=excluded.exit_code, reason=excluded.reason,
             message=excluded.message, started_at=excluded.started_at, ended_at=excluded.ended_at WHERE t.state <> 'succeeded'`,
          [units.map((x) => x.workflowId), u.map((x) => x.key), u.map((x) => x.state), u.map((x) => x.attempt), u.map((x) => x.exitCode), u.map((x) => x.reason), u.map((x) => x.message), u.map((x) => x.startedAt), u.map((x) => x.endedAt), u.map((x) => x.kind), u.map((x) => x.job), u.map((x) => x.task)],
        );
        const done = u.filter((x) => x.state === 'succeeded' && x.kind === 'job' && x.startedAt !== null && x.endedAt !== null);
        if (done.length) {
          await c.query(`INSERT INTO job_history (job, ended_at, seconds) SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[])`, [
            done.map((x) => x.job),
            done.map((x) => x.endedAt),
            done.map((x) => (x.endedAt! - x.startedAt!) / 1000),
          ]);
        }
      }
      for (const a of batch.attempts ?? []) {
        await c.query(
          `INSERT INTO attempts (workflow_id,key,attempt,started_at,ended_at,exit_code,signal,reason,message,pid) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
           ON CONFLICT (workflow_id,key,attempt) DO UPDATE SET started_at=coalesce(excluded.started_at, attempts.started_at), ended_at=excluded.ended_at,
             exit_code=excluded.exit_code, signal=excluded.signal, reason=excluded.reason, message=excluded.message, pid=coalesce(excluded.pid, attempts.pid)`,
          [a.workflowId, a.key, a.attempt, a.startedAt, a.endedAt, a.exitCode, a.signal, a.reason, a.message, a.pid ?? null],
        );
      }
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
    const res = await this.pool.query('SELECT seconds FROM job_history WHERE job=$1 ORDER BY ended_at DESC LIMIT $2', [jobName, limit]);
    return res.rows.map((r) => Number(r.seconds));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
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
    runnerPid: r.runner_pid as number | null,
    runnerHost: r.runner_host as string | null,
    cancelRequested: r.cancel_requested as boolean,
  };
}
