// Write-behind batching: the orchestrator records every unit change here; changes are
// coalesced per unit (last state wins) and written in one transaction every `intervalMs`,
// so the store is never the bottleneck. `flush()` forces a write (at the end of a run,
// before reporting a result, on a signal).

import type { UnitSnapshot } from '../engine/index.js';
import type { AttemptRecord, EventRecord, Store, WorkflowPatch, WriteBatch } from './types.js';

export class BatchWriter {
  private units = new Map<string, { workflowId: string; unit: UnitSnapshot }>();
  private attempts = new Map<string, AttemptRecord>();
  private events: EventRecord[] = [];
  private workflows = new Map<string, WorkflowPatch>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private failed: unknown = null;

  constructor(
    private readonly store: Store,
    private readonly intervalMs = 50,
  ) {}

  unit(workflowId: string, unit: UnitSnapshot): void {
    this.units.set(`${workflowId}\u0000${unit.key}`, { workflowId, unit });
    this.schedule();
  }

  attempt(a: AttemptRecord): void {
    const k = `${a.workflowId}\u0000${a.key}\u0000${a.attempt}`;
    const prev = this.attempts.get(k);
    this.attempts.set(k, prev ? { ...prev, ...stripNulls(a) } : a);
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

  /** Write everything pending now; resolves when it is on disk. Rejects if a write failed. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.take();
    if (batch) this.writing = this.writing.then(() => this.store.write(batch)).catch((e) => {
      this.failed = e;
    });
    await this.writing;
    if (this.failed) throw this.failed;
  }

  /** The pending batch, emptied (for a synchronous last-gasp write). */
  take(): WriteBatch | null {
    if (this.units.size === 0 && this.attempts.size === 0 && this.events.length === 0 && this.workflows.size === 0) return null;
    const batch: WriteBatch = {
      units: [...this.units.values()],
      attempts: [...this.attempts.values()],
      events: this.events,
      workflows: [...this.workflows].map(([id, patch]) => ({ id, patch })),
    };
    this.units = new Map();
    this.attempts = new Map();
    this.events = [];
    this.workflows = new Map();
    return batch;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush().catch(() => {});
    }, this.intervalMs);
  }
}

function stripNulls(a: AttemptRecord): Partial<AttemptRecord> {
  const out: Partial<AttemptRecord> = {};
  for (const [k, v] of Object.entries(a)) if (v !== null && v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
