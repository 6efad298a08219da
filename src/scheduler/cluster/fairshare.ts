// Queue order: priority first (a strict tier, like a QoS), then fair share between users, then
// submission order. Fair share is Slurm's classic idea: a user's factor is
// 2^(-usage share / shares share), where usage is the decayed usage the caller passes in
// (core-seconds) and the shares are the user's entitlement. The user with the highest factor
// (lowest usage per share) goes next; every job placed in the pass charges its user
// cores x time limit, so users interleave in proportion to their shares instead of one user's
// whole queue going first. Pure and deterministic: ties go by user name, then submit order, id.
import { WarrenError, EXIT } from '../../common/index.js';
import type { FairShareRow, PendingJob } from './types.js';

export function fairShareFactors(
  users: readonly string[],
  usage: Readonly<Record<string, number>>,
  shares: Readonly<Record<string, number>>,
): FairShareRow[] {
  const list = [...new Set(users)].sort();
  const u = (x: string): number => usage[x] ?? 0;
  const sh = (x: string): number => shares[x] ?? 1;
  const totalUsage = list.reduce((a, x) => a + u(x), 0);
  const totalShares = list.reduce((a, x) => a + sh(x), 0);
  return list.map((user) => {
    const us = totalUsage > 0 ? u(user) / totalUsage : 0;
    const ss = totalShares > 0 ? sh(user) / totalShares : 0;
    const factor = us === 0 ? 1 : ss === 0 ? 0 : Math.pow(2, -us / ss);
    return { user, usage: u(user), shares: sh(user), factor };
  });
}

export function checkFairShareInput(usage: Readonly<Record<string, number>>, shares: Readonly<Record<string, number>>): void {
  for (const [what, rec] of [
    ['usage', usage],
    ['shares', shares],
  ] as const) {
    for (const [user, v] of Object.entries(rec)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new WarrenError('PLAN_BAD_CLUSTER', `${what} of user "${user}" is ${String(v)}, not a number >= 0`, {
          hint: 'pass decayed usage in core-seconds and shares as numbers >= 0',
        });
      }
    }
  }
}

interface UserQueue<T> {
  user: string;
  jobs: T[];
  next: number;
  /** Usage per share now: the heap key (lower goes first). */
  key: number;
}

/** Pops jobs (items that carry one) in queue order; call charge() after each placed job. */
export class FairQueue<T> {
  private readonly tiers: UserQueue<T>[][];
  private tier = 0;
  private heap: UserQueue<T>[] = [];
  private current: UserQueue<T> | undefined;
  private readonly used = new Map<string, number>();

  constructor(
    items: readonly T[],
    jobOf: (item: T) => PendingJob,
    usage: Readonly<Record<string, number>>,
    private readonly shares: Readonly<Record<string, number>>,
  ) {
    const byPriority = new Map<number, Map<string, T[]>>();
    for (const it of items) {
      const j = jobOf(it);
      const p = j.priority ?? 0;
      let users = byPriority.get(p);
      if (!users) byPriority.set(p, (users = new Map()));
      let list = users.get(j.user);
      if (!list) users.set(j.user, (list = []));
      list.push(it);
      if (!this.used.has(j.user)) this.used.set(j.user, usage[j.user] ?? 0);
    }
    const order = (x: T, y: T): number => {
      const a = jobOf(x);
      const b = jobOf(y);
      return a.submitOrder - b.submitOrder || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    };
    this.tiers = [...byPriority.keys()]
      .sort((a, b) => b - a)
      .map((p) => [...byPriority.get(p)!.entries()].map(([user, list]) => ({ user, jobs: list.sort(order), next: 0, key: 0 })));
    this.loadTier();
  }

  private key(u: UserQueue<T>): number {
    const s = this.shares[u.user] ?? 1;
    const used = this.used.get(u.user)!;
    return s > 0 ? used / s : used > 0 ? Infinity : 0;
  }

  private less(a: UserQueue<T>, b: UserQueue<T>): boolean {
    return a.key < b.key || (a.key === b.key && a.user < b.user);
  }

  private loadTier(): void {
    this.heap = [];
    while (this.tier < this.tiers.length && this.heap.length === 0) {
      for (const u of this.tiers[this.tier]!) this.push(u);
      if (this.heap.length === 0) this.tier++;
    }
  }

  private push(u: UserQueue<T>): void {
    u.key = this.key(u);
    const h = this.heap;
    h.push(u);
    let k = h.length - 1;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!this.less(h[k]!, h[p]!)) break;
      const t = h[k]!;
      h[k] = h[p]!;
      h[p] = t;
      k = p;
    }
  }

  private pop(): UserQueue<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        const r = l + 1;
        let m = k;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === k) break;
        const t = h[k]!;
        h[k] = h[m]!;
        h[m] = t;
        k = m;
      }
    }
    return top;
  }

  /** The next job in queue order, or undefined at the end. */
  next(): T | undefined {
    this.settle();
    for (;;) {
      const u = this.pop();
      if (u) {
        this.current = u;
        return u.jobs[u.next++]!;
      }
      this.tier++;
      if (this.tier >= this.tiers.length) return undefined;
      this.loadTier();
      if (this.heap.length === 0) return undefined;
    }
  }

  /** Charge the current job's user (the job was placed). */
  charge(amount: number): void {
    if (this.current) this.used.set(this.current.user, this.used.get(this.current.user)! + amount);
  }

  private settle(): void {
    const u = this.current;
    this.current = undefined;
    if (u && u.next < u.jobs.length) this.push(u);
  }
}
