// Write-behind batching: the orchestrator records every unit change here; changes are
// coalesced per unit (last state wins) and written in one transaction every `intervalMs`,
// so the store is never the bottleneck. `flush()` forces a write (at the end of a run,
// before reporting a result, on a signal); `attemptNow()` is the durable path for what must be
// on disk before the next step (an attempt's pid and cgroup before its command runs), with
// group commit: the calls of one turn of the event loop share one transaction.
//
// A write that fails is not lost: its batch is put back under what was queued since and
// written by the next flush (except a fenced one: this runner lost the lease, so nothing it
// has may be written, and every later write of that fence fails the same way).

import type { UnitSnapshot } from '../engine/index.js';
import type { AttemptRecord, EventRecord, Store, WorkflowPatch, WriteBatch } from './types.js';

export type Fence = { workflowId: string; term: number };

export interface BatchWriterOptions {
  /** Fence every batch with this lease (see WriteBatch.fence); settable later with setFence. */
  fence?: Fence;
  /** Called when a background (timer) write fails: STORE_DISK_FULL, STORE_FENCED, ... The
   *  timer stops until the next flush()/attemptNow(), which retries what failed. */
  onError?: (e: unknown) => void;
}

type Waiter = { resolve: () => void; reject: (e: unknown) => void; fence?: Fence };

export class BatchWriter {
  private units = new Map<string, { workflowId: string; unit: UnitSnapshot }>();
  private attempts = new Map<string, AttemptRecord>();
  private events: EventRecord[] = [];
  private workflows = new Map<string, WorkflowPatch>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private fenced: unknown = null;
  private paused = false;
  private fence: Fence | undefined;
  private waiters: Waiter[] = [];
  private commitQueued = false;
  /** Transactions written so far (for tests and `warren` diagnostics). */
  commits = 0;

  constructor(
    private readonly store: Store,
    private readonly intervalMs = 50,
    private readonly opts: BatchWriterOptions = {},
  ) {
    this.fence = opts.fence;
  }

  /** Fence every later batch with this lease term (null: unfenced). */
  setFence(fence: Fence | null): void {
    this.fence = fence ?? undefined;
    this.fenced = null;
  }

  unit(workflowId: string, unit: UnitSnapshot): void {
    this.units.set(`${workflowId}\u0000${unit.key}`, { workflowId, unit });
    this.schedule();
  }

  attempt(a: AttemptRecord): void {
    const k = `${a.workflowId}\u0000${a.key}\u0000${a.attempt}`;
    const prev = this.attempts.get(k);
    this.attempts.set(k, prev ? mergeAttempt(prev, a) : a);
    this.schedule();
  }

  event(e: EventRecord): void {
    this.events.push(e);
    this.schedule();
  }

  workflow(id: string, patch: WorkflowPatch): void {
    this.workflows.set(id, { ...this.workflows.get(id), ...patch });
    this.schedule();
  }

  /** Durable now: resolves once `rec` (and everything queued before it) is committed; concurrent
   *  calls in the same tick share one transaction (group commit). Rejects with the store's error. */
  attemptNow(rec: AttemptRecord, fence?: Fence): Promise<void> {
    this.attempt(rec);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject, fence });
      if (this.commitQueued) return;
      this.commitQueued = true;
      setImmediate(() => {
        this.commitQueued = false;
        const group = this.waiters;
        this.waiters = [];
        this.flush(group.find((w) => w.fence)?.fence).then(
          () => group.forEach((w) => w.resolve()),
          (e) => group.forEach((w) => w.reject(e)),
        );
      });
    });
  }

  /** Write everything pending now; resolves when it is committed. Rejects with the store's
   *  error (what failed stays queued for the next flush, unless it was fenced). */
  async flush(fence?: Fence): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.paused = false;
    await this.writing; // what is in flight settles first (and is put back if it failed)
    const batch = this.take(fence);
    if (!batch) {
      await this.writing; // a concurrent flush may have taken our records: wait for its commit
      if (this.fenced) throw this.fenced;
      return;
    }
    await this.write(batch);
  }

  /** The pending batch, emptied (for a synchronous last-gasp write). */
  take(fence?: Fence): WriteBatch | null {
    if (this.units.size === 0 && this.attempts.size === 0 && this.events.length === 0 && this.workflows.size === 0) return null;
    const batch: WriteBatch = {
      units: [...this.units.values()],
      attempts: [...this.attempts.values()],
      events: this.events,
      workflows: [...this.workflows].map(([id, patch]) => ({ id, patch })),
    };
    const f = fence ?? this.fence;
    if (f) batch.fence = f;
    this.units = new Map();
    this.attempts = new Map();
    this.events = [];
    this.workflows = new Map();
    return batch;
  }

  private write(batch: WriteBatch): Promise<void> {
    const p = this.writing.then(() => this.store.write(batch));
    this.writing = p.then(
      () => {
        this.commits++;
      },
      (e) => this.failedWrite(batch, e),
    );
    return p;
  }

  private failedWrite(batch: WriteBatch, e: unknown): void {
    const code = (e as { code?: string })?.code;
    const recorded = (e as { details?: { recorded?: boolean } })?.details?.recorded === true;
    if (code === 'STORE_FENCED') {
      this.fenced = e;
      return;
    }
    if (recorded) return; // committed on the retry that used the store's reserve
    this.putBack(batch);
  }

  /** Put a failed batch back under what was queued since (newer states win). */
  private putBack(b: WriteBatch): void {
    const units = new Map<string, { workflowId: string; unit: UnitSnapshot }>();
    for (const u of b.units ?? []) units.set(`${u.workflowId}\u0000${u.unit.key}`, u);
    for (const [k, u] of this.units) units.set(k, u);
    this.units = units;
    const attempts = new Map<string, AttemptRecord>();
    for (const a of b.attempts ?? []) attempts.set(`${a.workflowId}\u0000${a.key}\u0000${a.attempt}`, a);
    for (const [k, a] of this.attempts) {
      const prev = attempts.get(k);
      attempts.set(k, prev ? mergeAttempt(prev, a) : a);
    }
    this.attempts = attempts;
    this.events = [...(b.events ?? []), ...this.events];
    const wfs = new Map<string, WorkflowPatch>();
    for (const { id, patch } of b.workflows ?? []) wfs.set(id, patch);
    for (const [id, patch] of this.workflows) wfs.set(id, { ...wfs.get(id), ...patch });
    this.workflows = wfs;
  }

  private schedule(): void {
    if (this.timer || this.paused) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush().catch((e) => {
        this.paused = true;
        this.opts.onError?.(e);
      });
    }, this.intervalMs);
  }
}

/** A later record of the same attempt over an earlier one: its non-null fields win. */
function mergeAttempt(prev: AttemptRecord, a: AttemptRecord): AttemptRecord {
  const out: AttemptRecord = { ...prev };
  for (const [k, v] of Object.entries(a)) if (v !== null && v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  return out;
}
