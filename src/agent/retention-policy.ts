// What a node's retention removes, and in which order: a pure function of what is on the
// node's disk, what its running tasks use, and what the server said about each run. The I/O
// around it (scanning runs/ and the image cache, asking the server, deleting) is in
// ./retention.ts. docs/operations.md "Retention" describes the policy for admins.
//
//   1. the run directories of workflows the server no longer has (pruned there);
//   2. the run directories of finished workflows that ended more than `retainMs` ago;
//   3. cached images no running or queued task uses, not used for more than `retainMs`;
//   4. while the node's Warren files are over `budgetBytes`: the least recently used images
//      that no task uses, then the run directories of finished workflows, oldest end first.
//
// Never: a run directory of a workflow that has a task running or queued on this node, or
// that the server says is running or pending, or that the server could not be asked about;
// an image a running or queued task names.

/** What the node knows about one run directory (runs/<workflow id>). */
export interface RunDirFacts {
  id: string;
  /** Bytes under it (0 when not measured: no budget). */
  bytes: number;
  /** A task of it is running or queued on this node. */
  active: boolean;
  /** What the server said: finished (with its end), live (running/pending), gone (pruned, or
   *  never there), or unknown (not asked, or it could not answer). */
  server: { state: 'finished'; endedAt: number } | { state: 'live' } | { state: 'gone' } | { state: 'unknown' };
  /** The newest change under it that the node saw (ms since the epoch). */
  lastActivity: number;
}

/** One cached image. */
export interface ImageFacts {
  digest: string;
  bytes: number;
  /** When a task last used it (ms since the epoch). */
  lastUsed: number;
  /** A running or queued task names it. */
  inUse: boolean;
}

export interface RetentionPolicy {
  /** Keep finished runs and unused images this long (null: forever, but for the budget). */
  retainMs: number | null;
  /** Keep the node's run directories and image cache under this many bytes (null: no budget). */
  budgetBytes: number | null;
  /** A run directory the server does not know is removed only once this long idle (a guard
   *  against a server that answers from another store; default 10 minutes). */
  goneIdleMs?: number;
}

export type RunReason = 'pruned' | 'retention' | 'budget';
export type ImageReason = 'retention' | 'budget';

export interface RetentionPlan {
  runs: { id: string; reason: RunReason; bytes: number }[];
  images: { digest: string; reason: ImageReason; bytes: number }[];
  /** Bytes of runs and images before, and what would be left after the plan. */
  bytesBefore: number;
  bytesAfter: number;
  /** Over the budget even after every allowed eviction (what is left is in use or live). */
  overBudget: boolean;
}

/** Decide what to remove. Deterministic: ties are broken by id/digest. */
export function planRetention(now: number, runs: RunDirFacts[], images: ImageFacts[], policy: RetentionPolicy): RetentionPlan {
  const goneIdle = policy.goneIdleMs ?? 10 * 60_000;
  const plan: RetentionPlan = { runs: [], images: [], bytesBefore: 0, bytesAfter: 0, overBudget: false };
  const chosenRuns = new Set<string>();
  const chosenImages = new Set<string>();
  const total = runs.reduce((n, r) => n + r.bytes, 0) + images.reduce((n, i) => n + i.bytes, 0);
  plan.bytesBefore = total;
  let left = total;
  const takeRun = (r: RunDirFacts, reason: RunReason): void => {
    chosenRuns.add(r.id);
    plan.runs.push({ id: r.id, reason, bytes: r.bytes });
    left -= r.bytes;
  };
  const takeImage = (i: ImageFacts, reason: ImageReason): void => {
    chosenImages.add(i.digest);
    plan.images.push({ digest: i.digest, reason, bytes: i.bytes });
    left -= i.bytes;
  };
  const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const sortedRuns = [...runs].sort(byId);
  for (const r of sortedRuns) {
    if (r.active) continue;
    if (r.server.state === 'gone' && now - r.lastActivity >= goneIdle) takeRun(r, 'pruned');
    else if (r.server.state === 'finished' && policy.retainMs !== null && now - r.server.endedAt > policy.retainMs) takeRun(r, 'retention');
  }
  const sortedImages = [...images].sort((a, b) => a.lastUsed - b.lastUsed || (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  if (policy.retainMs !== null) {
    for (const i of sortedImages) if (!i.inUse && now - i.lastUsed > policy.retainMs) takeImage(i, 'retention');
  }
  if (policy.budgetBytes !== null) {
    for (const i of sortedImages) {
      if (left <= policy.budgetBytes) break;
      if (!i.inUse && !chosenImages.has(i.digest)) takeImage(i, 'budget');
    }
    const finished = sortedRuns
      .filter((r) => !r.active && !chosenRuns.has(r.id) && r.server.state === 'finished')
      .sort((a, b) => (a.server as { endedAt: number }).endedAt - (b.server as { endedAt: number }).endedAt || byId(a, b));
    for (const r of finished) {
      if (left <= policy.budgetBytes) break;
      takeRun(r, 'budget');
    }
    plan.overBudget = left > policy.budgetBytes;
  }
  plan.bytesAfter = left;
  return plan;
}
