// Types of the workflow state machine. The engine is pure: events in, actions out.

export type UnitState =
  | 'pending' // waiting for requirements (or for a retry's backoff)
  | 'ready' // requirements met; waiting for a task-array slot or to be handed out
  | 'starting' // handed to an agent, not yet running
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'canceled'
  | 'skipped';

export const TERMINAL: ReadonlySet<UnitState> = new Set(['succeeded', 'failed', 'canceled', 'skipped']);

/** A job, one task of a task array, a volume's ingress, or the workflow's egress. */
export type UnitKind = 'job' | 'ingress' | 'egress';

export type WorkflowStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'canceled';

export interface UnitSnapshot {
  key: string;
  kind: UnitKind;
  /** Job name (for ingress: the volume name; for egress: `@egress`). */
  job: string;
  /** Task index inside a task array, else null. */
  task: number | null;
  state: UnitState;
  /** Attempts started so far, over all runs of this workflow (resume continues counting). */
  attempt: number;
  exitCode: number | null;
  /** Why it ended: exit, signal, timeout, oom, canceled, spawn-error, not-ready, dependency, ...
   *  While a service runs: `ready` once it is ready (its readiness probe passed, or it started
   *  when it has none), else null (starting). */
  reason: string | null;
  message: string | null;
  startedAt: number | null; // ms since epoch (from events, never a clock read)
  endedAt: number | null;
}

export type EngineEvent =
  | { type: 'start'; now: number }
  | { type: 'launched'; key: string; attempt: number; now: number }
  | {
      type: 'exited';
      key: string;
      attempt: number;
      now: number;
      exitCode: number | null;
      signal?: string | null;
      reason: string; // exit | signal | timeout | oom | canceled | spawn-error | error | stopped | not-ready
      message?: string;
    }
  /** A service's readiness probe passed (`message`: what passed). Services without a probe
   *  are ready when they are launched; for them this event changes nothing. */
  | { type: 'ready'; key: string; attempt: number; now: number; message?: string }
  | { type: 'tick'; now: number }
  | { type: 'cancel'; now: number; reason?: string };

export type EngineAction =
  /** Run this unit now (attempt is 1-based over the workflow's whole history). */
  | { type: 'launch'; key: string; kind: UnitKind; job: string; task: number | null; attempt: number }
  /** Stop a running unit (cancel, service shutdown, workflow timeout). */
  | { type: 'kill'; key: string; reason: 'canceled' | 'stop-service' | 'timeout' }
  /** Send a `tick` event at (or after) this time. */
  | { type: 'timer'; at: number }
  /** A unit changed; persist it and show it. */
  | { type: 'changed'; unit: UnitSnapshot }
  /** Something worth recording in the workflow's event log. */
  | { type: 'event'; key: string | null; level: 'info' | 'warn' | 'error'; message: string }
  /** The workflow reached its end state. */
  | { type: 'done'; status: Exclude<WorkflowStatus, 'pending' | 'running'> };

export interface EngineOptions {
  /** Stop starting new units after the first failure (default: keep going with independent ones). */
  failFast?: boolean;
  /** Units already finished in an earlier run (resume): key -> snapshot. Succeeded ones are kept, the rest re-run. */
  previous?: ReadonlyMap<string, UnitSnapshot>;
  /** Keep succeeded tasks of task arrays in memory (tests compare every unit); by default they
   *  are only counted, so memory stays flat over a million tasks. */
  retainFinished?: boolean;
}
