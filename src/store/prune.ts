// Pruning finished workflows (retention): the store's small steps strung together. Each step
// is one short transaction with a bounded number of rows per statement (src/store/types.ts,
// "Retention"), and the loop pauses between steps (at least as long as the step took), so that the runners' writes (BatchWriter
// every 50 ms, attempt commits) never wait behind a long delete. Order, so that a crash
// anywhere leaves nothing half done that a later prune would not finish:
//
//   1. a batch of workflow rows is deleted (the prunable condition in the DELETE itself) and
//      queued in prune_queue, in one transaction: from then on nobody can see or resume them;
//   2. their units, attempts and events are deleted in steps of at most `batchRows` per table
//      (each table's own statement, found through its index on workflow_id);
//   3. `onPurged` removes their files (run directories) and tells whoever keeps copies;
//   4. they are taken off the queue (only once no row of theirs is left).
//
// Leftovers of an earlier, interrupted prune (the queue is not empty) are finished first.

import { setTimeout as sleep } from 'node:timers/promises';
import type { PruneQueueEntry, PrunedWorkflow, Store } from './types.js';

export interface PruneStoreOptions {
  /** Prune workflows that ended before this (ms since the epoch). */
  endedBefore: number;
  /** Only these workflows (full ids); they are pruned only if they are prunable. */
  ids?: string[];
  /** Count what would go, remove nothing. */
  dryRun?: boolean;
  /** Workflows per step (default 50). */
  batchWorkflows?: number;
  /** Rows per statement of the purge steps, at most (default 500)... */
  batchRows?: number;
  /** ...halved while a statement takes longer than this, doubled back while it takes less than a
   *  quarter of it (default 40 ms; 0: always batchRows): on a loaded store each transaction stays short. */
  targetStatementMs?: number;
  /** Pause between steps, at least this many ms (default 2)... */
  pauseMs?: number;
  /** ...and at least the last step's time × this (default 1: the prune takes at most about half
   *  of the store's time, whatever the load; 0: only pauseMs). */
  yieldRatio?: number;
  /** Prune job history (runtime estimates) that ended before endedBefore too (default true; never with `ids`). */
  history?: boolean;
  /** Stop between two steps when aborted (what is queued is finished by the next prune). */
  signal?: AbortSignal;
  /** The clock leases are compared with (default Date.now). */
  now?: () => number;
  /** Called with each batch whose rows are gone, before it leaves the queue: remove its files. */
  onPurged?: (entries: PruneQueueEntry[]) => Promise<void>;
}

export interface PruneStoreReport {
  dryRun: boolean;
  endedBefore: number;
  /** Workflows removed (or, in a dry run, that would be). */
  workflows: number;
  units: number;
  attempts: number;
  events: number;
  history: number;
  /** Running or pending workflows created before the cutoff: never pruned. */
  keptRunning: number;
  /** Finished ones whose runner still holds the lease: pruned by a later prune. */
  keptLeased: number;
  /** The workflows removed (at most the first 1000). */
  removed: PrunedWorkflow[];
  /** Transactions (steps) it took, and the longest one, ms. */
  transactions: number;
  longestStepMs: number;
  /** Per kind of step (workflows, purge, finish, history): how many, the longest and the total, ms. */
  steps: Record<string, { count: number; maxMs: number; totalMs: number }>;
  durationMs: number;
  /** Stopped by the signal before it was done. */
  interrupted: boolean;
}

export async function pruneStore(store: Store, o: PruneStoreOptions): Promise<PruneStoreReport> {
  const t0 = Date.now();
  const now = o.now ?? Date.now;
  const batchWorkflows = o.batchWorkflows ?? 50;
  const batchRows = o.batchRows ?? 500;
  const pauseMs = o.pauseMs ?? 2;
  const yieldRatio = o.yieldRatio ?? 1;
  const target = o.targetStatementMs ?? 40;
  let rows = batchRows;
  /** Adapt the rows per statement to how long the last statements took. */
  const adapt = (ms: number, statements: number): void => {
    if (target <= 0) return;
    const per = ms / statements;
    if (per > target) rows = Math.max(25, Math.floor(rows / 2));
    else if (per < target / 4) rows = Math.min(batchRows, rows * 2);
  };
  const select = { endedBefore: o.endedBefore, now: now(), ...(o.ids ? { ids: o.ids } : {}) };
  const preview = await store.previewPrune(select, { rows: o.dryRun === true });
  const rep: PruneStoreReport = {
    dryRun: o.dryRun === true,
    endedBefore: o.endedBefore,
    workflows: 0,
    units: 0,
    attempts: 0,
    events: 0,
    history: 0,
    keptRunning: preview.keptRunning,
    keptLeased: preview.keptLeased,
    removed: [],
    transactions: 0,
    longestStepMs: 0,
    steps: {},
    durationMs: 0,
    interrupted: false,
  };
  if (o.dryRun) {
    Object.assign(rep, { workflows: preview.workflows, units: preview.units, attempts: preview.attempts, events: preview.events, durationMs: Date.now() - t0 });
    return rep;
  }
  const step = async <T>(kind: string, fn: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    try {
      return await fn();
    } finally {
      const ms = performance.now() - s;
      const k = (rep.steps[kind] ??= { count: 0, maxMs: 0, totalMs: 0 });
      k.count++;
      k.maxMs = Math.max(k.maxMs, ms);
      k.totalMs += ms;
      rep.transactions++;
      rep.longestStepMs = Math.max(rep.longestStepMs, Math.round(ms));
      const wait = Math.max(pauseMs, ms * yieldRatio);
      if (wait > 0) await sleep(wait);
      else await new Promise((r) => setImmediate(r));
    }
  };
  const stopped = (): boolean => {
    if (o.signal?.aborted) rep.interrupted = true;
    return rep.interrupted;
  };

  /** For what is queued, a batch at a time: purge its rows, remove its files, take it off the queue. */
  const drain = async (): Promise<void> => {
    while (!stopped()) {
      const queued = await store.pruneQueue(batchWorkflows);
      if (queued.length === 0) return;
      const ids = queued.map((q) => q.id);
      for (;;) {
        if (stopped()) return;
        const n = rows;
        const s = performance.now();
        const r = await step('purge', () => store.purgePruned(ids, n));
        adapt(performance.now() - s, 3);
        rep.units += r.units;
        rep.attempts += r.attempts;
        rep.events += r.events;
        if (r.units < n && r.attempts < n && r.events < n) break;
      }
      if (o.onPurged) await o.onPurged(queued);
      const done = await step('finish', () => store.finishPruned(ids));
      // None could leave (rows of theirs keep coming): the next prune tries again.
      if (done.length === 0) return;
    }
  };

  await drain();
  while (!stopped()) {
    const batch = await step('workflows', () => store.pruneWorkflows({ ...select, now: now(), limit: batchWorkflows }));
    if (batch.length === 0) break;
    rep.workflows += batch.length;
    for (const w of batch) if (rep.removed.length < 1000) rep.removed.push(w);
    await drain();
  }
  if (o.history !== false && !o.ids) {
    while (!stopped()) {
      const n = rows;
      const s = performance.now();
      const got = await step('history', () => store.pruneHistory(o.endedBefore, n));
      adapt(performance.now() - s, 1);
      rep.history += got;
      if (got < n) break;
    }
  }
  rep.durationMs = Date.now() - t0;
  return rep;
}
