// The embedded store: one SQLite file (WAL) under $WARREN_HOME. better-sqlite3 is
// synchronous; the Store interface is async so PostgreSQL can implement it too.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { WarrenError } from '../common/index.js';
import type { UnitSnapshot, WorkflowStatus } from '../engine/index.js';
import type { AttemptRecord, EventRecord, Store, WorkflowPatch, WorkflowRecord, WriteBatch } from './types.js';
import { PATCH_COLUMNS, ambiguousIdError } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS workflows (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  file TEXT,
  status TEXT NOT NULL,
  spec TEXT NOT NULL,
  options TEXT NOT NULL,
  run_dir TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  runner_pid INTEGER,
  runner_host TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS workflows_created ON workflows(created_at);
CREATE TABLE IF NOT EXISTS units (
  workflow_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  key TEXT NOT NULL,
  kind TEXT NOT NULL,
  job TEXT NOT NULL,
  task INTEGER,
  state TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  exit_code INTEGER,
  reason TEXT,
  message TEXT,
  started_at INTEGER,
  ended_at INTEGER,
  PRIMARY KEY (workflow_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
  workflow_id TEXT NOT NULL,
  key TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  exit_code INTEGER,
  signal TEXT,
  reason TEXT,
  message TEXT,
  pid INTEGER,
  PRIMARY KEY (workflow_id, key, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  key TEXT,
  level TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_wf ON events(workflow_id, id);
CREATE TABLE IF NOT EXISTS job_history (
  job TEXT NOT NULL,
  ended_at INTEGER NOT NULL,
  seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS job_history_job ON job_history(job, ended_at);
`;

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
  runner_pid: number | null;
  runner_host: string | null;
  cancel_requested: number;
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


export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(readonly path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives a crash of the process (kill -9); only a power loss can drop the last commits.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      this.db.exec(SCHEMA);
    } catch (e) {
      throw new WarrenError('STORE_OPEN_FAILED', `cannot open the store at ${path}: ${(e as Error).message}`, {
        hint: 'check that WARREN_HOME points to a writable directory on a local file system (SQLite needs working file locks)',
        cause: e,
      });
    }
    const db = this.db;
    this.stmts = {
      insertWf: db.prepare(
        `INSERT INTO workflows (id,name,file,status,spec,options,run_dir,created_at,started_at,ended_at,runner_pid,runner_host,cancel_requested)
         VALUES (@id,@name,@file,@status,@spec,@options,@run_dir,@created_at,@started_at,@ended_at,@runner_pid,@runner_host,@cancel_requested)`,
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
      upsertAttempt: db.prepare(
        `INSERT INTO attempts (workflow_id,key,attempt,started_at,ended_at,exit_code,signal,reason,message,pid) VALUES (?,?,?,?,?,?,?,?,?,?)
         ON CONFLICT(workflow_id,key,attempt) DO UPDATE SET started_at=coalesce(excluded.started_at,started_at), ended_at=excluded.ended_at,
           exit_code=excluded.exit_code, signal=excluded.signal, reason=excluded.reason, message=excluded.message, pid=coalesce(excluded.pid,pid)`,
      ),
      insertEvent: db.prepare(`INSERT INTO events (workflow_id,at,key,level,message) VALUES (?,?,?,?,?)`),
      insertHistory: db.prepare(`INSERT INTO job_history (job,ended_at,seconds) VALUES (?,?,?)`),
      getWf: db.prepare(`SELECT * FROM workflows WHERE id = ?`),
      prefixWf: db.prepare(`SELECT * FROM workflows WHERE id >= ? AND id < ? LIMIT 2`),
      units: db.prepare(`SELECT key,kind,job,task,state,attempt,exit_code,reason,message,started_at,ended_at FROM units WHERE workflow_id=? ORDER BY seq`),
      attempts: db.prepare(`SELECT * FROM attempts WHERE workflow_id=? ORDER BY key, attempt`),
      attemptsKey: db.prepare(`SELECT * FROM attempts WHERE workflow_id=? AND key=? ORDER BY attempt`),
      events: db.prepare(`SELECT * FROM events WHERE workflow_id=? AND at > ? ORDER BY id`),
      history: db.prepare(`SELECT seconds FROM job_history WHERE job=? ORDER BY ended_at DESC LIMIT ?`),
    };
  }

  async createWorkflow(rec: WorkflowRecord, units: UnitSnapshot[]): Promise<void> {
    const tx = this.db.transaction(() => {
      this.stmts.insertWf.run(toRow(rec));
      let seq = 0;
      for (const u of units) {
        this.stmts.insertUnit.run(rec.id, seq++, u.key, u.kind, u.job, u.task, u.state, u.attempt, u.exitCode, u.reason, u.message, u.startedAt, u.endedAt);
      }
    });
    tx();
  }

  async getWorkflow(idOrPrefix: string): Promise<WorkflowRecord | undefined> {
    const exact = this.stmts.getWf.get(idOrPrefix) as WfRow | undefined;
    if (exact) return fromRow(exact);
    if (idOrPrefix.length === 0) return undefined;
    const upper = idOrPrefix.slice(0, -1) + String.fromCharCode(idOrPrefix.charCodeAt(idOrPrefix.length - 1) + 1);
    const rows = this.stmts.prefixWf.all(idOrPrefix, upper) as WfRow[];
    if (rows.length > 1) throw ambiguousIdError(idOrPrefix);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async listWorkflows(opts: { limit?: number; status?: WorkflowStatus } = {}): Promise<WorkflowRecord[]> {
    const limit = opts.limit ?? 50;
    const rows = (
      opts.status
        ? this.db.prepare(`SELECT * FROM workflows WHERE status=? ORDER BY created_at DESC LIMIT ?`).all(opts.status, limit)
        : this.db.prepare(`SELECT * FROM workflows ORDER BY created_at DESC LIMIT ?`).all(limit)
    ) as WfRow[];
    return rows.map(fromRow);
  }

  async units(workflowId: string): Promise<UnitSnapshot[]> {
    return (this.stmts.units.all(workflowId) as UnitRow[]).map((r) => ({
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
    const rows = (key === undefined ? this.stmts.attempts.all(workflowId) : this.stmts.attemptsKey.all(workflowId, key)) as Record<string, unknown>[];
    return rows.map((r) => ({
      workflowId: r.workflow_id as string,
      key: r.key as string,
      attempt: r.attempt as number,
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
    return (this.stmts.events.all(workflowId, opts.afterAt ?? -1) as Record<string, unknown>[]).map((r) => ({
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
      for (const { workflowId, unit: u } of batch.units ?? []) {
        this.stmts.updateUnit.run({ wf: workflowId, key: u.key, kind: u.kind, job: u.job, task: u.task, state: u.state, attempt: u.attempt, exit_code: u.exitCode, reason: u.reason, message: u.message, started_at: u.startedAt, ended_at: u.endedAt });
        if (u.state === 'succeeded' && u.kind === 'job' && u.startedAt !== null && u.endedAt !== null) {
          this.stmts.insertHistory.run(u.job, u.endedAt, (u.endedAt - u.startedAt) / 1000);
        }
      }
      for (const a of batch.attempts ?? []) {
        this.stmts.upsertAttempt.run(a.workflowId, a.key, a.attempt, a.startedAt, a.endedAt, a.exitCode, a.signal, a.reason, a.message, a.pid ?? null);
      }
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
    tx();
  }

  async jobHistory(jobName: string, limit = 20): Promise<number[]> {
    return (this.stmts.history.all(jobName, limit) as { seconds: number }[]).map((r) => r.seconds);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function toRow(r: WorkflowRecord): WfRow {
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
    runner_pid: r.runnerPid,
    runner_host: r.runnerHost,
    cancel_requested: r.cancelRequested ? 1 : 0,
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
    runnerPid: r.runner_pid,
    runnerHost: r.runner_host,
    cancelRequested: r.cancel_requested === 1,
  };
}
