// Two servers, one leader: the leadership is a lease row in the store (src/store: one row,
// conditional UPDATEs on the database's clock, a term that grows with each change of holder),
// not a session advisory lock (it would vanish with a pooled connection, and say nothing of
// a server whose link to the database is cut). The leader renews it every renewMs; a
// follower tries to take it every retryMs and gets it once it has expired.
//
// Stepping down is local and at once: the leader keeps a deadline on the monotonic clock,
// the start of its last successful renewal + ttl - margin (the database's expiry is at least
// that start + ttl, so the leader has stopped before anyone else can take the lease). A
// renewal that fails, or does not finish by the deadline, ends the leadership: scheduling
// stops before the store is back, whatever the store does.

import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { LeaderLease, Store } from '../store/index.js';

export interface LeaderTimers {
  /** Life of the leader lease (default 8 s). */
  ttlMs: number;
  /** The leader renews it this often (default 2 s). */
  renewMs: number;
  /** A follower tries to take it this often (default 1 s). */
  retryMs: number;
  /** The leader steps down this long before its lease can expire (default 1.5 s). */
  marginMs: number;
}

export const DEFAULT_LEADER_TIMERS: LeaderTimers = { ttlMs: 8000, renewMs: 2000, retryMs: 1000, marginMs: 1500 };

export type LeaderStore = Pick<Store, 'acquireLeader' | 'renewLeader' | 'releaseLeader' | 'readLeader'>;

export interface LeaderElectionOptions {
  store: LeaderStore;
  /** This server's id (unique per process). */
  id: string;
  /** Its advertised https URL. */
  url: string;
  timers?: Partial<LeaderTimers>;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Monotonic ms (default performance.now). */
  clock?: () => number;
}

export interface LeaderView {
  role: 'leader' | 'follower';
  /** The leader's term (ours when leader; the lease's when following), 0 when none yet. */
  term: number;
  /** The leader's id and URL, when one holds an unexpired lease (as last read). */
  leaderId: string | null;
  leaderUrl: string | null;
  /** Whether the last call to the store for the lease worked. */
  storeOk: boolean;
  storeError: string | null;
}

export interface LeaderEvents {
  /** This server is the leader now, with this term. */
  elected: [term: number];
  /** It is not any more (why, in words). */
  deposed: [why: string];
}

export class LeaderElection extends EventEmitter<LeaderEvents> {
  readonly timers: LeaderTimers;
  private readonly now: () => number;
  private role: 'leader' | 'follower' = 'follower';
  private term = 0;
  private deadline = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private closed = false;
  private lease: LeaderLease | null = null;
  private storeOk = true;
  private storeError: string | null = null;

  constructor(private readonly o: LeaderElectionOptions) {
    super();
    this.timers = { ...DEFAULT_LEADER_TIMERS, ...(o.timers ?? {}) };
    if (this.timers.marginMs >= this.timers.ttlMs) this.timers.marginMs = Math.floor(this.timers.ttlMs / 4);
    this.now = o.clock ?? (() => performance.now());
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  get currentTerm(): number {
    return this.term;
  }

  view(): LeaderView {
    const l = this.lease;
    const live = l && l.holder !== null && l.expiresAt > l.now;
    if (this.role === 'leader') return { role: 'leader', term: this.term, leaderId: this.o.id, leaderUrl: this.o.url, storeOk: this.storeOk, storeError: this.storeError };
    return { role: 'follower', term: l?.term ?? 0, leaderId: live ? l.holder : null, leaderUrl: live && l.holder !== this.o.id ? l.url : null, storeOk: this.storeOk, storeError: this.storeError };
  }

  private firstDone!: () => void;
  /** Resolves once the first try for the lease is done (taken or not, or the store failed). */
  readonly firstRound: Promise<void> = new Promise((r) => (this.firstDone = r));
  private holdOffUntil = 0;

  start(): void {
    this.schedule(0);
  }

  /** Give the leadership up (this server cannot lead now): released, and not tried again for a lease's life. */
  async resign(): Promise<void> {
    if (this.role !== 'leader') return;
    const term = this.term;
    this.stepDown('it could not take up the leadership');
    this.holdOffUntil = this.now() + this.timers.ttlMs;
    await bounded(this.o.store.releaseLeader(this.o.id, term), 2000).catch(() => {});
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    if (this.inFlight) {
      // The previous call still waits on the store (its own timeout ends it): the deadline
      // timer steps down meanwhile if it must.
      this.schedule(Math.min(this.timers.retryMs, 250));
      return;
    }
    this.inFlight = true;
    const t0 = this.now();
    const ttl = this.timers.ttlMs;
    try {
      if (this.role === 'leader') {
        const term = this.term;
        const ok = await this.o.store.renewLeader(this.o.id, term, ttl);
        this.storeUp();
        if (this.role !== 'leader' || this.term !== term) return;
        if (!ok) {
          this.stepDown(`another server took the leadership (the lease of term ${term} is no longer ours)`);
          return;
        }
        this.extend(t0 + ttl - this.timers.marginMs);
      } else if (this.now() < this.holdOffUntil) {
        this.lease = await this.o.store.readLeader();
        this.storeUp();
      } else {
        const r = await this.o.store.acquireLeader(this.o.id, this.o.url, ttl);
        this.storeUp();
        if (this.closed) {
          if (r.ok) await this.o.store.releaseLeader(this.o.id, r.lease.term).catch(() => {});
          return;
        }
        this.lease = r.ok ? r.lease : r.current;
        // Taken, but the answer came too late to lead safely: let it expire.
        if (r.ok && this.now() < t0 + ttl - this.timers.marginMs) {
          this.role = 'leader';
          this.term = r.lease.term;
          this.extend(t0 + ttl - this.timers.marginMs);
          this.o.log?.('info', `this server is the leader now (term ${this.term})`);
          this.emit('elected', this.term);
        }
      }
    } catch (e) {
      this.storeOk = false;
      this.storeError = (e as Error).message;
      if (this.role === 'leader') this.o.log?.('warn', `cannot renew the leadership: ${this.storeError} (stepping down at the deadline, in ${Math.max(0, Math.round(this.deadline - this.now()))} ms, unless a renewal succeeds)`);
    } finally {
      this.firstDone();
      this.inFlight = false;
      if (!this.closed) this.schedule(this.role === 'leader' ? (this.storeOk ? this.timers.renewMs : Math.min(this.timers.renewMs, 500)) : this.timers.retryMs);
    }
  }

  private storeUp(): void {
    if (!this.storeOk) this.o.log?.('info', 'the store answers again');
    this.storeOk = true;
    this.storeError = null;
  }

  private extend(deadline: number): void {
    this.deadline = Math.max(this.deadline, deadline);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const check = (): void => {
      if (this.role !== 'leader') return;
      const left = this.deadline - this.now();
      if (left > 0) {
        this.deadlineTimer = setTimeout(check, left);
        return;
      }
      this.stepDown(`the store did not confirm the leadership in time${this.storeError ? ` (the store is not reachable: ${this.storeError})` : ''}; it may have passed to another server`);
    };
    this.deadlineTimer = setTimeout(check, Math.max(0, this.deadline - this.now()));
  }

  private stepDown(why: string): void {
    if (this.role !== 'leader') return;
    this.role = 'follower';
    this.deadline = 0;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.o.log?.('warn', `this server is no longer the leader (term ${this.term}): ${why}; it stops scheduling now`);
    this.emit('deposed', why);
  }

  /** Stop; a leader lets its lease expire now (bounded wait) so that another server takes over at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const wasLeader = this.role === 'leader';
    const term = this.term;
    if (wasLeader) {
      this.role = 'follower';
      this.emit('deposed', 'the server is shutting down');
      await bounded(this.o.store.releaseLeader(this.o.id, term), 2000).catch(() => {});
    }
  }
}

/** A promise that gives up after ms (resolves undefined). */
export function bounded<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(t));
}
