// Elastic capacity (issue 14): what to start and stop on sites that Warren starts capacity on
// (cloud regions, a Slurm site in pilot mode), from what the plan wants now. Pure: the
// controller (src/sites/elastic.ts) gives the time, the sites, their instances as the drivers
// and the cluster see them, and the plan's demand; it carries out the actions returned.
//
// Rules, per site, in this order:
//   1. An instance that ended without being asked to (a reclaimed spot instance, a pilot
//      canceled by Slurm, an agent that died) is `lost`: its node is revoked by the controller,
//      so cluster mode re-runs its work elsewhere, and the plan is re-made without it.
//   2. An instance that has not joined within `bootTimeoutSec` of its request is stopped
//      (`boot-timeout`): released, and no longer counted; the plan moves on without it.
//   3. Wanted = min(demand, max). Fewer live instances than wanted: start the difference, while
//      the budget allows the first billing unit (max(minimum, granularity)) of each on top of
//      what is spent and what the live instances have committed (the billing units begun).
//   4. More live instances than wanted: stop those still booting (`unneeded`), then the ones idle (joined, no work) for `idleSec`,
//      the most recently requested first (scale to zero when the demand is 0). With billing
//      granularity above a minute an idle instance is kept to the end of its paid unit.
import { WarrenError } from '../common/index.js';
import type { Plan } from './types.js';

export type ElasticState = 'pending' | 'booting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface ElasticSite {
  name: string;
  /** Most instances at once (>= 0). */
  max: number;
  instanceType: string;
  spot: boolean;
  /** Per instance-hour. */
  pricePerHour: number;
  /** Billing: a started instance pays at least minimumSec, then in steps of granularitySec. */
  granularitySec: number;
  minimumSec: number;
  /** Request to joined: longer than this and it is given up. */
  bootTimeoutSec: number;
  /** Idle this long (and not wanted): stopped. */
  idleSec: number;
}

export interface ElasticInstance {
  id: string;
  site: string;
  node: string;
  state: ElasticState;
  /** Seconds (the controller's clock, any origin). */
  requestedAt: number;
  /** When it ended (stopped/failed), if it did. */
  endedAt: number | null;
  /** The cluster has its node ready. */
  joined: boolean;
  /** Tasks running or assigned on its node. */
  busy: boolean;
  /** Since when it has been joined and without work (null: busy, or not joined). */
  idleSince: number | null;
  /** The controller asked it to stop (its end is then no loss). */
  stopRequested: boolean;
  /** The controller has handled its end already (reported lost, or it was asked to stop). */
  settled: boolean;
  reason: string | null;
}

export interface ElasticInput {
  now: number;
  sites: readonly ElasticSite[];
  instances: readonly ElasticInstance[];
  /** Instances each site should have now (the plan's). */
  demand: Readonly<Record<string, number>>;
  /** The workflow's budget and what it has spent (the same currency as the prices). */
  budget?: { limit: number; spent: number };
}

export type ElasticAction =
  | { kind: 'start'; site: string; instanceType: string; spot: boolean }
  | { kind: 'stop'; site: string; id: string; node: string; why: 'idle' | 'boot-timeout' | 'unneeded' }
  | { kind: 'lost'; site: string; id: string; node: string; why: string }
  | { kind: 'held'; site: string; why: 'budget' | 'max'; wanted: number; live: number };

/** Seconds billed for an instance that has lived `sec`. */
export function billedSec(site: Pick<ElasticSite, 'granularitySec' | 'minimumSec'>, sec: number): number {
  const g = Math.max(1, site.granularitySec);
  return Math.max(site.minimumSec, Math.ceil(Math.max(0, sec) / g) * g);
}

/** What an instance costs (or has committed to) when it has lived `sec`. */
export function instanceCost(site: ElasticSite, sec: number): number {
  return (billedSec(site, sec) * site.pricePerHour) / 3600;
}

function ended(s: ElasticState): boolean {
  return s === 'stopped' || s === 'failed';
}

/** The decisions for one tick (see the top of this file). Deterministic: sites and instances in name/id order. */
export function decideElastic(inp: ElasticInput): ElasticAction[] {
  const out: ElasticAction[] = [];
  const sites = [...inp.sites].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const insts = [...inp.instances].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const siteOf = new Map(sites.map((s) => [s.name, s]));
  // Committed: the billing units begun by every instance (live: to now; ended: to its end).
  let committed = inp.budget?.spent ?? 0;
  for (const i of insts) {
    const s = siteOf.get(i.site);
    if (s) committed += instanceCost(s, (i.endedAt ?? inp.now) - i.requestedAt);
  }
  for (const s of sites) {
    const mine = insts.filter((i) => i.site === s.name);
    let live = 0;
    const idle: ElasticInstance[] = [];
    const booting: ElasticInstance[] = [];
    for (const i of mine) {
      if (ended(i.state)) {
        if (!i.stopRequested && !i.settled) out.push({ kind: 'lost', site: s.name, id: i.id, node: i.node, why: i.reason ?? `instance ${i.id} ended` });
        continue;
      }
      if (i.stopRequested || i.state === 'stopping') continue;
      if (!i.joined && inp.now - i.requestedAt > s.bootTimeoutSec) {
        out.push({ kind: 'stop', site: s.name, id: i.id, node: i.node, why: 'boot-timeout' });
        continue;
      }
      live++;
      if (i.joined && !i.busy && i.idleSince !== null) idle.push(i);
      if (!i.joined) booting.push(i);
    }
    const wanted = Math.max(0, Math.min(Math.floor(inp.demand[s.name] ?? 0), s.max));
    if ((inp.demand[s.name] ?? 0) > s.max && live >= s.max) out.push({ kind: 'held', site: s.name, why: 'max', wanted: inp.demand[s.name]!, live });
    if (live < wanted) {
      const unit = instanceCost(s, 0);
      for (let k = live; k < wanted; k++) {
        if (inp.budget && committed + unit > inp.budget.limit + 1e-9) {
          out.push({ kind: 'held', site: s.name, why: 'budget', wanted, live: k });
          break;
        }
        committed += unit;
        out.push({ kind: 'start', site: s.name, instanceType: s.instanceType, spot: s.spot });
      }
    } else if (live > wanted) {
      // Most recently requested first: the older ones have paid for more of their current unit.
      let extra = live - wanted;
      // Instances still booting first: no work is lost, and no more is paid for them.
      booting.sort((a, b) => b.requestedAt - a.requestedAt || (a.id < b.id ? 1 : -1));
      for (const i of booting) {
        if (extra === 0) break;
        out.push({ kind: 'stop', site: s.name, id: i.id, node: i.node, why: 'unneeded' });
        extra--;
      }
      idle.sort((a, b) => b.requestedAt - a.requestedAt || (a.id < b.id ? 1 : -1));
      for (const i of idle) {
        if (extra === 0) break;
        if (inp.now - i.idleSince! < s.idleSec) continue;
        // Keep it to the end of the unit it has paid for when units are long (hourly billing).
        const age = inp.now - i.requestedAt;
        if (s.granularitySec > 60 && billedSec(s, age) - age > Math.max(s.idleSec, 60)) continue;
        out.push({ kind: 'stop', site: s.name, id: i.id, node: i.node, why: 'idle' });
        extra--;
      }
    }
  }
  return out;
}

/** How many instances of each site the plan has live at `nowSec` (seconds since the workflow's start): requested and not yet released. */
export function demandFromPlan(plan: Pick<Plan, 'instances'>, nowSec: number): Record<string, number> {
  const d: Record<string, number> = {};
  for (const i of plan.instances) if (i.bootStart <= nowSec && i.end > nowSec) d[i.site] = (d[i.site] ?? 0) + 1;
  return d;
}

/** Bad input, before anything is started: max < 0, a negative price or timer, a budget already spent. */
export function checkElastic(sites: readonly ElasticSite[], budget?: { limit: number; spent: number }): void {
  for (const s of sites) {
    const bad = (what: string, v: number, hint: string): never => {
      throw new WarrenError('SITE_BAD_SETTING', `site "${s.name}": ${what} is ${v}; it must be ${hint}`, { hint: `fix ${what} of site "${s.name}" in the platform` });
    };
    if (!Number.isInteger(s.max) || s.max < 0) bad('max', s.max, 'a whole number >= 0 (0: the site is never scaled up)');
    if (!Number.isFinite(s.pricePerHour) || s.pricePerHour < 0) bad('the price per hour', s.pricePerHour, 'a number >= 0');
    if (!(s.granularitySec >= 1)) bad('the billing granularity', s.granularitySec, 'at least 1 second');
    if (!(s.minimumSec >= 0)) bad('the billing minimum', s.minimumSec, 'at least 0 seconds');
    if (!(s.bootTimeoutSec > 0)) bad('the boot timeout', s.bootTimeoutSec, 'more than 0 seconds');
    if (!(s.idleSec >= 0)) bad('the idle time', s.idleSec, 'at least 0 seconds');
  }
  if (budget) {
    if (!Number.isFinite(budget.limit) || budget.limit < 0) throw new WarrenError('SITE_BAD_SETTING', `the workflow's budget ${budget.limit} is not a number >= 0`, { hint: 'give policy.budget as a number >= 0' });
    const paid = sites.filter((s) => s.max > 0 && s.pricePerHour > 0);
    if (budget.spent >= budget.limit && paid.length > 0) {
      throw new WarrenError('SITE_BUDGET_SPENT', `the workflow's budget ${budget.limit} is spent (${round(budget.spent)} so far): site${paid.length > 1 ? 's' : ''} ${paid.map((s) => `"${s.name}"`).join(', ')} cannot start an instance`, { hint: 'raise the budget, or run on sites that cost nothing more (a local cluster)' });
    }
    const cheapest = paid.map((s) => ({ s, unit: instanceCost(s, 0) })).sort((a, b) => a.unit - b.unit)[0];
    if (cheapest && paid.length === sites.filter((s) => s.max > 0).length && budget.spent + cheapest.unit > budget.limit) {
      throw new WarrenError('SITE_BUDGET_SPENT', `the workflow's budget ${budget.limit} (${round(budget.spent)} spent) does not cover one billing unit of site "${cheapest.s.name}" (${round(cheapest.unit)})`, { hint: 'raise the budget, or add a site that costs nothing more' });
    }
  }
}

function round(x: number): string {
  return (Math.round(x * 10_000) / 10_000).toString();
}
