// The elastic controller (issue 14): carries out the pure decisions of src/scheduler/elastic.ts
// on real sites. Each tick it reads every site's instances (its SiteDriver) and the cluster's
// nodes, asks `decideElastic`, and acts: a start mints a one-use join token for the new node
// and asks the driver; an idle instance is drained first and stopped only if still idle at
// once after; an instance that never joins is stopped and its node name revoked; an instance
// that ended unasked (a reclaimed spot instance, a pilot Slurm canceled) is a lost node: it is
// revoked, so cluster mode re-runs its work elsewhere. `onChange` tells the caller (the run's
// placement) that capacity changed, so that it re-plans.
//
// The cluster is reached through the admin side of the client API (src/api AdminClient: an
// EmbeddedClient in the server, or an HttpClient), of which it needs four calls.
import { WarrenError } from '../common/index.js';
import { checkElastic, decideElastic, elasticInstanceCost, type ElasticAction, type ElasticInstance, type ElasticSite } from '../scheduler/index.js';
import type { InstanceView, SiteDriver } from './driver.js';

/** What the controller needs of the cluster (a subset of src/api's AdminClient). */
export interface ElasticCluster {
  nodes(): Promise<{ name: string; state: string; running: number }[]>;
  drain(name: string, on: boolean, reason?: string): Promise<unknown>;
  revokeNode(name: string): Promise<void>;
  createJoinToken(o: { ttlSeconds: number; uses?: number }): Promise<{ token: string }>;
}

export interface ElasticSiteConfig extends ElasticSite {
  driver: SiteDriver;
  /** Where this site's agents reach the server (the local driver: its bridge address). */
  serverUrl: string;
  /** Labels of its nodes (site=NAME is always added). */
  labels?: Record<string, string>;
  /** Pilots' walltime (Slurm). */
  walltimeSec?: number;
}

export type ElasticEvent =
  | { kind: 'started'; site: string; id: string; node: string }
  | { kind: 'joined'; site: string; id: string; node: string }
  | { kind: 'stopped'; site: string; id: string; node: string; why: 'idle' | 'boot-timeout' | 'unneeded' }
  | { kind: 'lost'; site: string; id: string; node: string; why: string }
  | { kind: 'held'; site: string; why: 'budget' | 'max'; wanted: number; live: number }
  /** An action could not be carried out (the driver or the cluster refused); tried again next round. */
  | { kind: 'failed'; site: string; action: ElasticAction['kind']; why: string };

export interface ElasticOptions {
  sites: ElasticSiteConfig[];
  cluster: ElasticCluster;
  /** The cluster CA (PEM) the agents trust. */
  caPem: string;
  /** Instances each site should have now (from the plan: demandFromPlan), `nowSec` on this controller's clock. */
  demand(nowSec: number): Record<string, number> | Promise<Record<string, number>>;
  /** The workflow's budget, and what it spent outside these sites' instances. */
  budget?: { limit: number; spentElsewhere?: () => number };
  /** ms clock (default Date.now). */
  clock?: () => number;
  onChange?: (e: ElasticEvent) => void;
}

interface Rec {
  id: string;
  site: string;
  node: string;
  requestedAt: number;
  endedAt: number | null;
  state: InstanceView['state'];
  reason: string | null;
  joined: boolean;
  everJoined: boolean;
  busy: boolean;
  idleSince: number | null;
  stopRequested: boolean;
  settled: boolean;
}

export interface ElasticInstanceView {
  id: string;
  site: string;
  node: string;
  state: InstanceView['state'];
  joined: boolean;
  requestedAt: number;
  endedAt: number | null;
  reason: string | null;
  /** What it cost (or has committed: the billing units begun). */
  cost: number;
}

export class ElasticController {
  private readonly recs = new Map<string, Rec>();
  private readonly sites: Map<string, ElasticSiteConfig>;
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<ElasticAction[]> | null = null;
  private closed = false;
  private readonly clock: () => number;

  private constructor(private readonly o: ElasticOptions) {
    this.sites = new Map(o.sites.map((s) => [s.name, s]));
    this.clock = o.clock ?? Date.now;
  }

  /** Checks every site (settings, the driver's check: credentials, sbatch...) and the budget before anything starts. */
  static async create(o: ElasticOptions): Promise<ElasticController> {
    const names = new Set<string>();
    for (const s of o.sites) {
      if (names.has(s.name)) throw new WarrenError('SITE_BAD_SETTING', `site "${s.name}" is given twice`, { hint: 'give each site once' });
      names.add(s.name);
    }
    checkElastic(o.sites, o.budget ? { limit: o.budget.limit, spent: o.budget.spentElsewhere?.() ?? 0 } : undefined);
    for (const s of o.sites) if (s.max > 0) await s.driver.check();
    return new ElasticController(o);
  }

  private nowSec(): number {
    return this.clock() / 1000;
  }

  /** One round: observe, decide, act. Returns the actions taken. Ticks never overlap. */
  async tick(): Promise<ElasticAction[]> {
    if (this.ticking) return this.ticking;
    this.ticking = this.round().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async round(): Promise<ElasticAction[]> {
    if (this.closed) return [];
    await this.observe();
    const now = this.nowSec();
    const demand = await this.o.demand(now);
    const spentElsewhere = this.o.budget?.spentElsewhere?.() ?? 0;
    const actions = decideElastic({
      now,
      sites: [...this.sites.values()],
      instances: [...this.recs.values()].map((r): ElasticInstance => ({ id: r.id, site: r.site, node: r.node, state: r.state, requestedAt: r.requestedAt, endedAt: r.endedAt, joined: r.joined, busy: r.busy, idleSince: r.idleSince, stopRequested: r.stopRequested, settled: r.settled, reason: r.reason })),
      demand,
      ...(this.o.budget ? { budget: { limit: this.o.budget.limit, spent: spentElsewhere } } : {}),
    });
    const done: ElasticAction[] = [];
    for (const a of actions) {
      if (this.closed) break;
      try {
        if (await this.act(a)) done.push(a);
      } catch (e) {
        // One site's failure (a refused request, a network error) does not hold up the others; the next round tries again.
        this.o.onChange?.({ kind: 'failed', site: a.site, action: a.kind, why: e instanceof Error ? e.message : String(e) });
      }
    }
    return done;
  }

  private async observe(): Promise<void> {
    const nodes = new Map((await this.o.cluster.nodes()).map((n) => [n.name, n]));
    const now = this.nowSec();
    for (const s of this.sites.values()) {
      if (![...this.recs.values()].some((r) => r.site === s.name)) continue;
      for (const v of await s.driver.list()) {
        const r = this.recs.get(`${s.name}/${v.id}`);
        if (!r) continue;
        const n = nodes.get(r.node);
        r.state = v.state;
        r.reason = v.reason;
        if (v.endedAt !== null && r.endedAt === null) r.endedAt = v.endedAt / 1000;
        const joined = v.state === 'running' && n?.state === 'ready';
        if (joined && !r.everJoined) {
          r.everJoined = true;
          this.o.onChange?.({ kind: 'joined', site: r.site, id: v.id, node: r.node });
        }
        r.joined = joined;
        r.busy = (n?.running ?? 0) > 0;
        r.idleSince = joined && !r.busy ? (r.idleSince ?? now) : null;
      }
    }
  }

  private async act(a: ElasticAction): Promise<boolean> {
    const ev = this.o.onChange;
    if (a.kind === 'held') {
      ev?.({ kind: 'held', site: a.site, why: a.why, wanted: a.wanted, live: a.live });
      return true;
    }
    const s = this.sites.get(a.site)!;
    if (a.kind === 'start') {
      const node = `${a.site}-${++this.seq}`;
      const { token } = await this.o.cluster.createJoinToken({ ttlSeconds: Math.ceil(s.bootTimeoutSec + 60), uses: 1 });
      const v = await s.driver.start({
        node, instanceType: a.instanceType, spot: a.spot, joinToken: token, serverUrl: s.serverUrl, caPem: this.o.caPem,
        labels: { ...(s.labels ?? {}), site: a.site }, ...(s.walltimeSec !== undefined ? { walltimeSec: s.walltimeSec } : {}),
      });
      this.recs.set(`${a.site}/${v.id}`, { id: v.id, site: a.site, node, requestedAt: v.requestedAt / 1000, endedAt: null, state: v.state, reason: null, joined: false, everJoined: false, busy: false, idleSince: null, stopRequested: false, settled: false });
      ev?.({ kind: 'started', site: a.site, id: v.id, node });
      return true;
    }
    const r = this.recs.get(`${a.site}/${a.id}`)!;
    if (a.kind === 'lost') {
      r.settled = true;
      r.joined = false;
      await this.revoke(r.node);
      ev?.({ kind: 'lost', site: a.site, id: a.id, node: a.node, why: a.why });
      return true;
    }
    if (a.why === 'idle') {
      // Drain, then look again: a task assigned meanwhile keeps it (undrained).
      await this.o.cluster.drain(r.node, true, 'elastic: idle, scaling down');
      const n = (await this.o.cluster.nodes()).find((x) => x.name === r.node);
      if (n && n.running > 0) {
        await this.o.cluster.drain(r.node, false);
        return false;
      }
    }
    r.stopRequested = true;
    r.settled = true;
    await s.driver.stop(a.id);
    const v = (await s.driver.list()).find((x) => x.id === a.id);
    if (v) {
      r.state = v.state;
      r.reason = v.reason;
      r.endedAt = v.endedAt !== null ? v.endedAt / 1000 : r.endedAt;
    }
    r.joined = false;
    // Its name is never used again: revoke it (a late join of a timed-out instance is refused).
    await this.revoke(r.node);
    ev?.({ kind: 'stopped', site: a.site, id: a.id, node: a.node, why: a.why });
    return true;
  }

  private async revoke(node: string): Promise<void> {
    try {
      await this.o.cluster.revokeNode(node);
    } catch (e) {
      // A node that never joined is unknown to the cluster: nothing to revoke.
      if (!(e instanceof WarrenError && /NOT_FOUND|UNKNOWN/.test(e.code))) throw e;
    }
  }

  /** Ticks every `intervalMs` until close(); errors go to `onError` (the next tick tries again). */
  run(intervalMs: number, onError: (e: unknown) => void): void {
    if (this.timer || this.closed) return;
    const loop = (): void => {
      this.timer = setTimeout(() => {
        this.tick().catch(onError).finally(() => {
          if (!this.closed) loop();
        });
      }, intervalMs);
    };
    loop();
  }

  instances(): ElasticInstanceView[] {
    const now = this.nowSec();
    return [...this.recs.values()].map((r) => ({ id: r.id, site: r.site, node: r.node, state: r.state, joined: r.joined, requestedAt: r.requestedAt, endedAt: r.endedAt, reason: r.reason, cost: elasticInstanceCost(this.sites.get(r.site)!, (r.endedAt ?? now) - r.requestedAt) }));
  }

  /** What the instances cost so far (billing units begun). */
  cost(): number {
    return this.instances().reduce((a, i) => a + i.cost, 0);
  }

  /** Stops the loop and every instance this controller started (the drivers stay open). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking?.catch(() => {});
    for (const r of this.recs.values()) {
      if (r.state === 'stopped' || r.state === 'failed') continue;
      r.stopRequested = true;
      await this.sites.get(r.site)!.driver.stop(r.id).catch(() => {});
    }
  }
}
