// Retention on the server side: `warren prune` (through the API, or on this machine) and the
// leader's periodic pruner (`warren server --retain 30d`). The store's part is
// src/store/prune.ts (small steps, the prunable condition in each DELETE); here: which
// workflows an admin may name, the run directories under HOME/runs of what was pruned, and
// telling the nodes to delete their copies. docs/operations.md "Retention".

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../common/index.js';
import { isInside, removeTree } from '../agent/index.js';
import { pruneStore, type PruneQueueEntry, type PruneStoreOptions, type PruneStoreReport, type Store } from '../store/index.js';
import { holderIsGone } from './orchestrator.js';

export interface PruneRunsOptions extends Omit<PruneStoreOptions, 'onPurged'> {
  /** HOME (the server's DATA, or $WARREN_HOME): run directories under HOME/runs are removed. */
  home: string;
  /** Told the ids of each batch of pruned workflows (a cluster's nodes delete their copies). */
  onForget?: (ids: string[]) => void;
}

export interface PruneRunsReport extends PruneStoreReport {
  /** Run directories removed on this machine, and the bytes they held. */
  runDirs: number;
  bytesFreed: number;
}

/** Prune the store (src/store/prune.ts) and the run directories of what it pruned. */
export async function pruneRuns(store: Store, o: PruneRunsOptions): Promise<PruneRunsReport> {
  const runs = join(o.home, 'runs');
  let runDirs = 0;
  let bytesFreed = 0;
  const onPurged = async (entries: PruneQueueEntry[]): Promise<void> => {
    for (const e of entries) {
      // Only a run's own directory under HOME/runs: a record never makes this remove anything else.
      const dir = join(runs, e.id);
      if (!isInside(runs, dir) || !existsSync(dir)) continue;
      bytesFreed += await removeTree(dir).catch(() => 0);
      runDirs++;
    }
    o.onForget?.(entries.map((e) => e.id));
  };
  const rep = await pruneStore(store, { ...o, onPurged });
  return { ...rep, runDirs, bytesFreed };
}

/** `warren prune ID...`: each must exist and be finished, with no runner on it. */
export async function checkPrunable(store: Store, ids: string[], owner?: string): Promise<string[]> {
  const out: string[] = [];
  for (const idOrPrefix of ids) {
    const rec = await store.getWorkflow(idOrPrefix, owner !== undefined ? { owner } : {});
    if (!rec) throw new WarrenError('RUN_NOT_FOUND', `no workflow "${idOrPrefix}"`, { hint: 'see `warren list` for the ids of recent workflows' });
    const live = rec.lease !== null && rec.lease.expiresAt > Date.now() && !holderIsGone(rec.lease);
    if (rec.status === 'running' || rec.status === 'pending' || live) {
      throw new WarrenError('RUN_PRUNE_RUNNING', `workflow ${rec.id} is ${rec.status === 'running' || rec.status === 'pending' ? rec.status : `${rec.status}, but its runner still holds it`}: running work is never pruned`, {
        hint: rec.status === 'running' || rec.status === 'pending' ? `cancel it first (\`warren cancel ${rec.id}\`), then \`warren prune ${rec.id}\`` : `wait a few seconds for its runner to let go, then \`warren prune ${rec.id}\` again`,
        details: { workflowId: rec.id, status: rec.status },
      });
    }
    out.push(rec.id);
  }
  return out;
}

export interface PrunerOptions {
  store: Store;
  home: string;
  /** Keep finished workflows this long (ms). */
  retainMs: number;
  /** How often to prune (default: a tenth of retainMs, between 1 s and 1 h). */
  everyMs?: number;
  onForget?: (ids: string[]) => void;
  /** After a pass that removed something (the server writes it to its log and the audit log). */
  onPass?: (r: PruneRunsReport) => void;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

/** The leader's periodic pruner: one pass at a time; stop() ends a pass between two steps. */
export class RetentionPruner {
  private timer: NodeJS.Timeout | null = null;
  private ac = new AbortController();
  private pass: Promise<void> | null = null;
  private stopped = false;
  readonly everyMs: number;

  constructor(private readonly o: PrunerOptions) {
    this.everyMs = o.everyMs ?? Math.min(3_600_000, Math.max(1000, Math.round(o.retainMs / 10)));
  }

  start(): void {
    if (this.timer || this.stopped) return;
    // The first pass soon after this server leads (then every everyMs).
    const next = (first = false): void => {
      this.timer = setTimeout(() => {
        this.pass = this.runOnce()
          .then(() => undefined)
          .catch((e: unknown) => {
            if (!this.stopped) this.o.log?.('warn', `retention: the prune pass failed: ${(e as Error).message} (trying again in ${Math.round(this.everyMs / 1000)} s)`);
          })
          .finally(() => {
            this.pass = null;
            if (!this.stopped) next();
          });
      }, first ? Math.min(this.everyMs, 10_000) : this.everyMs);
      this.timer.unref();
    };
    next(true);
  }

  /** One pass now. */
  async runOnce(): Promise<PruneRunsReport> {
    const r = await pruneRuns(this.o.store, {
      home: this.o.home,
      endedBefore: Date.now() - this.o.retainMs,
      signal: this.ac.signal,
      ...(this.o.onForget ? { onForget: this.o.onForget } : {}),
    });
    if (r.workflows > 0 || r.history > 0) {
      this.o.log?.('info', `retention: pruned ${r.workflows} workflow(s) that ended more than ${Math.round(this.o.retainMs / 1000)} s ago (${r.units} units, ${r.attempts} attempts, ${r.events} events, ${r.history} job history rows; ${r.bytesFreed} bytes of run directories) in ${r.durationMs} ms${r.keptRunning ? `; kept ${r.keptRunning} running or pending workflow(s) older than that: running work is never pruned` : ''}`);
      this.o.onPass?.(r);
    }
    return r;
  }

  /** Stop: no new pass; a pass in progress stops between two steps (the next leader finishes it). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ac.abort();
    await this.pass?.catch(() => undefined);
  }
}

/** An API or CLI prune request, carried out: the one path of `warren prune` (server and this machine). */
export async function pruneRequest(
  store: Store,
  home: string,
  req: import('../api/index.js').PruneRequest,
  o: { onForget?: (ids: string[]) => void; signal?: AbortSignal } = {},
): Promise<import('../api/index.js').PruneView> {
  const byAge = req.olderThanSec !== undefined;
  const byId = req.ids !== undefined && req.ids.length > 0;
  if (byAge === byId) {
    throw new WarrenError('API_BAD_REQUEST', byAge ? 'a prune takes workflow ids or an age (olderThanSec), not both' : 'a prune needs workflow ids or an age (olderThanSec)', {
      hint: 'e.g. `warren prune --older-than 30d`, or `warren prune ID...`',
    });
  }
  if (byAge && !(Number.isFinite(req.olderThanSec) && req.olderThanSec! >= 0)) {
    throw new WarrenError('API_BAD_REQUEST', `olderThanSec must be a number of seconds >= 0, not ${req.olderThanSec}`, { hint: 'e.g. `warren prune --older-than 30d`' });
  }
  const ids = byId ? await checkPrunable(store, req.ids!) : undefined;
  const r = await pruneRuns(store, {
    home,
    endedBefore: byAge ? Date.now() - Math.round(req.olderThanSec! * 1000) : Number.MAX_SAFE_INTEGER,
    ...(ids ? { ids } : {}),
    ...(req.dryRun ? { dryRun: true } : {}),
    ...(o.onForget ? { onForget: o.onForget } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  return {
    dryRun: r.dryRun,
    endedBefore: r.endedBefore === Number.MAX_SAFE_INTEGER ? Date.now() : r.endedBefore,
    workflows: r.workflows,
    units: r.units,
    attempts: r.attempts,
    events: r.events,
    history: r.history,
    runDirs: r.runDirs,
    bytesFreed: r.bytesFreed,
    keptRunning: r.keptRunning,
    keptLeased: r.keptLeased,
    removed: r.removed.map((w) => w.id),
    durationMs: r.durationMs,
    interrupted: r.interrupted,
  };
}
