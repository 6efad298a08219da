// The store contract. SQLite (embedded default) and PostgreSQL implement it; both pass
// the shared contract suite in test/store/contract.ts.

import type { UnitSnapshot, WorkflowStatus } from '../engine/index.js';
import type { Workflow } from '../workflow/index.js';
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
  /** Process id and host of the `warren run` that drives it (embedded mode), for cancel. */
  runnerPid: number | null;
  runnerHost: string | null;
  cancelRequested: boolean;
}

export type WorkflowPatch = Partial<Pick<WorkflowRecord, 'status' | 'startedAt' | 'endedAt' | 'runnerPid' | 'runnerHost' | 'cancelRequested' | 'options'>>;

/** The column of each patchable field, in both stores' `workflows` table. */
export const PATCH_COLUMNS: Record<keyof WorkflowPatch, string> = {
  status: 'status',
  startedAt: 'started_at',
  endedAt: 'ended_at',
  runnerPid: 'runner_pid',
  runnerHost: 'runner_host',
  cancelRequested: 'cancel_requested',
  options: 'options',
};

export interface AttemptRecord {
  workflowId: string;
  key: string;
  attempt: number;
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

/** One batched write: applied atomically (one transaction). */
export interface WriteBatch {
  units?: { workflowId: string; unit: UnitSnapshot }[];
  attempts?: AttemptRecord[];
  events?: EventRecord[];
  workflows?: { id: string; patch: WorkflowPatch }[];
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Accept a workflow: the record and all its units, atomically. */
  createWorkflow(rec: WorkflowRecord, units: UnitSnapshot[]): Promise<void>;
  /** By full id or unique prefix; undefined when none. Throws STORE_AMBIGUOUS_ID when the prefix matches several. */
  getWorkflow(idOrPrefix: string): Promise<WorkflowRecord | undefined>;
  listWorkflows(opts?: { limit?: number; status?: WorkflowStatus }): Promise<WorkflowRecord[]>;
  units(workflowId: string): Promise<UnitSnapshot[]>;
  attempts(workflowId: string, key?: string): Promise<AttemptRecord[]>;
  events(workflowId: string, opts?: { afterAt?: number }): Promise<EventRecord[]>;
  write(batch: WriteBatch): Promise<void>;
  /** Past completed runs of a job with this name (for runtime estimates): durations in seconds, newest first. */
  jobHistory(jobName: string, limit?: number): Promise<number[]>;
  close(): Promise<void>;
}

/** The error both stores give when an id prefix matches several workflows. */
export function ambiguousIdError(idOrPrefix: string): WarrenError {
  return new WarrenError('STORE_AMBIGUOUS_ID', `"${idOrPrefix}" matches several workflows`, {
    hint: 'type more characters of the id (see `warren list`)',
    exitCode: 2,
  });
}
