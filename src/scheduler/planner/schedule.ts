// One pass of list scheduling over the model: jobs are taken in order of upward rank (HEFT's
// priority) as soon as their predecessors are placed; for each job the score stage computes,
// for every feasible offering, when its inputs can be there (transfers), when capacity is
// free (insertion into the site's or an instance's timeline, or a new cloud instance that
// boots), when it finishes and what it costs; then a `Selector` picks one option, and the
// commit step reserves capacity and records the transfers. The selectors (HEFT's earliest
// finish, cost-aware earliest finish, cheapest within a latest finish, ...) are what the
// objectives in plan.ts vary. Pure and deterministic.
import { Timeline } from './timeline.js';
import type { Model, Offering } from './model.js';

/** One way to run a job: an offering, maybe a specific (or a new) cloud instance. */
export interface Option {
  offering: number;
  /** Index of an existing instance of that offering; -1: a new instance; -2: a cluster. */
  instance: number;
  /** When all inputs are at the site. */
  ready: number;
  start: number;
  end: number;
  /** Compute cost (cluster core-hours or the instance time added) plus egress for the inputs. */
  cost: number;
  egress: number;
}

/** Chooses among the options of job `j` (never empty, in name order). */
export type Selector = (j: number, options: readonly Option[]) => Option;

export interface Instance {
  offering: number;
  index: number;
  bootStart: number;
  readyAt: number;
  timeline: Timeline;
}

export interface TransferRec {
  file: number;
  from: number;
  to: number;
  start: number;
  end: number;
  cost: number;
}

/** Facts kept to explain each choice (the reason text is built only for the final plan). */
export interface Why {
  /** Input bytes already at the chosen site when the job was placed / all input bytes. */
  localBytes: number;
  inputBytes: number;
  /** The best option at another site (by finish time), if any. */
  alt: Option | null;
  /** Cheapest option at another site, if any. */
  altCheap: Option | null;
  /** Seconds the job waits for capacity after its inputs are there. */
  waited: number;
  /** Of these, seconds spent waiting for its cloud instance to boot. */
  booting: number;
  /** Selector's note (e.g. "latest finish 120s"). */
  note: string;
}

export interface Schedule {
  name: string;
  choice: Option[];
  instances: Instance[];
  transfers: TransferRec[];
  why: Why[];
  makespan: number;
  cost: number;
  costCluster: number;
  costCloud: number;
  costEgress: number;
}

/** Billed seconds of an instance that lived `sec` seconds. */
export function billedSec(off: Offering, sec: number): number {
  if (sec <= 0) return 0;
  const g = off.granularitySec;
  return Math.max(off.minimumSec, Math.ceil(sec / g - 1e-9) * g);
}

export function instanceCost(off: Offering, sec: number): number {
  return (billedSec(off, sec) * off.price) / 3600;
}

/** What running an instance until `end` adds to its bill. */
function addedCost(off: Offering, it: Instance, end: number): number {
  const last = it.timeline.lastEnd;
  return end > last ? instanceCost(off, end - it.bootStart) - instanceCost(off, last - it.bootStart) : 0;
}

/** Upward ranks (HEFT): mean runtime over feasible offerings plus the longest way to the exit. */
export function upwardRanks(m: Model): Float64Array {
  const n = m.jobs.length;
  const rank = new Float64Array(n);
  // Mean cost of moving bytes between two different sites, weighted by the chance of that.
  let pairs = 0;
  let lat = 0;
  let inv = 0;
  for (const row of m.routes)
    for (const rt of row)
      if (rt) {
        pairs++;
        lat += rt.latencySec;
        inv += 1 / rt.bandwidth;
      }
  const ns = m.siteNames.length;
  const differ = ns > 1 ? 1 - 1 / ns : 0;
  const meanLat = pairs ? lat / pairs : 0;
  const meanInv = pairs ? inv / pairs : 0;
  for (let t = n - 1; t >= 0; t--) {
    const j = m.topo[t]!;
    const job = m.jobs[j]!;
    let w = 0;
    for (const o of job.feasible) w += job.est / m.offerings[o]!.speed;
    w = job.feasible.length ? w / job.feasible.length : job.est; // (a started job no site can run now)
    let best = 0;
    if (job.succs.length) {
      for (let i = 0; i < job.succs.length; i++) {
        const s = job.succs[i]!;
        const c = differ * (meanLat + job.succBytes[i]! * meanInv);
        const v = c + rank[s]!;
        if (v > best) best = v;
      }
    }
    rank[j] = w + best;
  }
  return rank;
}

/** A binary heap of job indices by (rank descending, job id ascending). */
class ReadyQueue {
  private h: number[] = [];
  constructor(
    private readonly rank: Float64Array,
    /** Position of each job in the order of job ids. */
    private readonly byName: Int32Array,
  ) {}
  private less(a: number, b: number): boolean {
    const ra = this.rank[a]!;
    const rb = this.rank[b]!;
    return ra > rb || (ra === rb && this.byName[a]! < this.byName[b]!);
  }
  get size(): number {
    return this.h.length;
  }
  push(x: number): void {
    const h = this.h;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): number {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let s = i;
        if (l < h.length && this.less(h[l]!, h[s]!)) s = l;
        if (r < h.length && this.less(h[r]!, h[s]!)) s = r;
        if (s === i) break;
        [h[i], h[s]] = [h[s]!, h[i]!];
        i = s;
      }
    }
    return top;
  }
}

export class DataUnreachable extends Error {
  constructor(readonly job: number) {
    super('data unreachable');
  }
}

/** A job that has already started (or ended): it stays where it is. */
export interface Pinned {
  offering: number;
  /** Instance label for cloud offerings (as in an earlier plan), else -2. */
  instance: number;
  start: number;
  /** Actual end, or the expected end of a running job. */
  end: number;
}

/** What is fixed when re-planning a workflow that runs: pinned jobs, and nothing new starts before `now`. */
export interface Fixed {
  now: number;
  pinned: (Pinned | undefined)[];
  /** Cloud instances that are gone (reclaimed, lost): offering * 1e6 + label. No job is placed on them any more. */
  closed?: ReadonlySet<number>;
}

const PINNED_WHY: Why = Object.freeze({ localBytes: 0, inputBytes: 0, alt: null, altCheap: null, waited: 0, booting: 0, note: 'already started' });

/** Run one list-scheduling pass with the given priority and selector. */
export function schedule(m: Model, rank: Float64Array, select: Selector, name: string, note?: (j: number) => string, fixed?: Fixed): Schedule {
  const now = fixed?.now ?? 0;
  const closed = fixed?.closed && fixed.closed.size > 0 ? fixed.closed : null;
  const n = m.jobs.length;
  const ns = m.siteNames.length;
  const clusterTl: (Timeline | null)[] = m.offerings.map((o) => (o.cloud ? null : new Timeline(o.cores * o.count, o.gpus * o.count)));
  const inst: Instance[][] = m.offerings.map(() => []);
  const byLabel = new Map<number, Instance>(); // offering * 1e6 + label
  const nextLabel = m.offerings.map(() => 0);
  const allInst: Instance[] = [];
  // Where each file is (site -> time it is there), filled as jobs and transfers are placed.
  // at[f * ns + s]: when file f is at site s (Infinity: not there).
  const at = new Float64Array(m.files.length * ns).fill(Infinity);
  m.files.forEach((f, i) => {
    if (f.producer < 0) at[i * ns + f.home] = 0;
  });
  const choice: Option[] = new Array(n);
  const why: Why[] = new Array(n);
  const endOf = new Float64Array(n);
  const transfers: TransferRec[] = [];
  const pending = m.jobs.map((j) => j.preds.length);
  const q = new ReadyQueue(rank, m.nameOrder);

  // Per-site data readiness of the current job (filled lazily).
  const siteReady = new Float64Array(ns);
  const siteEgress = new Float64Array(ns);
  const siteLocal = new Float64Array(ns);
  const siteDone = new Uint8Array(ns);
  const options: Option[] = [];
  let costCluster = 0;
  let costEgress = 0;

  /** Commit: capacity, the instance, the transfers and where the outputs will be. */
  function commit(j: number, c: Option, notBefore: number): void {
    const job = m.jobs[j]!;
    const totalCores = job.cores * job.nodes;
    const totalGpus = job.gpus * job.nodes;
    const site = m.offerings[c.offering]!.site;
    const off = m.offerings[c.offering]!;
    if (c.instance === -2) {
      clusterTl[c.offering]!.reserve(c.start, c.end, totalCores, totalGpus);
      costCluster += c.cost - c.egress;
    } else {
      let it = c.instance === -1 ? undefined : byLabel.get(c.offering * 1e6 + c.instance);
      if (!it) {
        const index = c.instance === -1 ? nextLabel[c.offering]! : c.instance;
        nextLabel[c.offering] = Math.max(nextLabel[c.offering]!, index + 1);
        // A new instance is ready when its first job starts (options start it no earlier than
        // now + boot); a pinned one was ready by then.
        const readyAt = c.start;
        it = { offering: c.offering, index, bootStart: Math.max(0, readyAt - off.bootSec), readyAt, timeline: new Timeline(off.cores, off.gpus, readyAt) };
        inst[c.offering]!.push(it);
        byLabel.set(c.offering * 1e6 + index, it);
        allInst.push(it);
        c.instance = index;
      }
      it.timeline.reserve(c.start, c.end, totalCores, totalGpus);
    }
    for (const f of job.inputs) {
      const file = m.files[f]!;
      const base = f * ns;
      if (at[base + site] !== Infinity) continue;
      let bestFrom = -1;
      let bestT = Infinity;
      let bestC = Infinity;
      let bestStart = 0;
      for (let from = 0; from < ns; from++) {
        const t0 = at[base + from]!;
        if (t0 === Infinity) continue;
        const rt = m.routes[from]![site];
        if (!rt) continue;
        const ts = t0 > notBefore ? t0 : notBefore;
        const t = ts + rt.latencySec + file.bytes / rt.bandwidth;
        const cst = (file.bytes / 1e9) * rt.pricePerGB;
        if (t < bestT || (t === bestT && cst < bestC)) {
          bestT = t;
          bestC = cst;
          bestFrom = from;
          bestStart = ts;
        }
      }
      if (bestFrom < 0) throw new DataUnreachable(j);
      at[base + site] = bestT;
      transfers.push({ file: f, from: bestFrom, to: site, start: bestStart, end: bestT, cost: bestC });
      costEgress += bestC;
    }
    for (const f of job.outputs) if (at[f * ns + site] === Infinity || at[f * ns + site]! > c.end) at[f * ns + site] = c.end;
    choice[j] = c;
    endOf[j] = c.end;
    for (const s of job.succs) if (--pending[s]! === 0 && !fixed?.pinned[s]) q.push(s);
  }

  // Jobs that already started keep their place (in order of start), then the rest is planned.
  if (fixed) {
    const pinnedJobs: number[] = [];
    fixed.pinned.forEach((p, j) => p && pinnedJobs.push(j));
    pinnedJobs.sort((a, b) => fixed.pinned[a]!.start - fixed.pinned[b]!.start || a - b);
    for (const j of pinnedJobs) {
      const p = fixed.pinned[j]!;
      const off = m.offerings[p.offering]!;
      const job = m.jobs[j]!;
      const dur = p.end - p.start;
      let cost: number;
      if (!off.cloud) cost = (off.price * job.cores * job.nodes * dur) / 3600;
      else {
        const it = byLabel.get(p.offering * 1e6 + p.instance);
        cost = it ? addedCost(off, it, p.end) : instanceCost(off, p.end - Math.max(0, p.start - off.bootSec));
      }
      const before = costEgress;
      const c: Option = { offering: p.offering, instance: off.cloud ? p.instance : -2, ready: p.start, start: p.start, end: p.end, cost, egress: 0 };
      commit(j, c, 0);
      c.egress = costEgress - before;
      c.cost += c.egress;
      why[j] = PINNED_WHY;
    }
  }
  // Jobs with no requirements (the others enter the queue when their last requirement is placed).
  for (let j = 0; j < n; j++) if (m.jobs[j]!.preds.length === 0 && !fixed?.pinned[j]) q.push(j);

  while (q.size) {
    const j = q.pop();
    const job = m.jobs[j]!;
    let predEnd = 0;
    for (const p of job.preds) if (endOf[p]! > predEnd) predEnd = endOf[p]!;
    siteDone.fill(0);
    options.length = 0;
    let inputBytes = 0;
    for (const f of job.inputs) inputBytes += m.files[f]!.bytes;
    const totalCores = job.cores * job.nodes;
    const totalGpus = job.gpus * job.nodes;

    for (const o of job.feasible) {
      const off = m.offerings[o]!;
      const s = off.site;
      if (!siteDone[s]) {
        // Score: when are all inputs at site s, and what does moving them cost?
        let ready = predEnd > now ? predEnd : now;
        let egress = 0;
        let local = 0;
        for (const f of job.inputs) {
          const file = m.files[f]!;
          const base = f * ns;
          const here = at[base + s]!;
          if (here !== Infinity) {
            if (here > ready) ready = here;
            local += file.bytes;
            continue;
          }
          let bestT = Infinity;
          let bestC = Infinity;
          for (let from = 0; from < ns; from++) {
            const t0 = at[base + from]!;
            if (t0 === Infinity) continue;
            const rt = m.routes[from]![s];
            if (!rt) continue;
            const t = (t0 > now ? t0 : now) + rt.latencySec + file.bytes / rt.bandwidth;
            const c = (file.bytes / 1e9) * rt.pricePerGB;
            if (t < bestT || (t === bestT && c < bestC)) {
              bestT = t;
              bestC = c;
            }
          }
          if (bestT > ready) ready = bestT;
          egress += bestC;
        }
        siteReady[s] = ready;
        siteEgress[s] = egress;
        siteLocal[s] = local;
        siteDone[s] = 1;
      }
      const ready = siteReady[s]!;
      if (!Number.isFinite(ready)) continue;
      const egress = siteEgress[s]!;
      const dur = job.est / off.speed;
      if (!off.cloud) {
        if (off.count <= 0) continue; // no nodes left (a capacity change)
        const start = clusterTl[o]!.earliestStart(ready, dur, totalCores, totalGpus);
        const compute = (off.price * totalCores * dur) / 3600;
        options.push({ offering: o, instance: -2, ready, start, end: start + dur, cost: compute + egress, egress });
        continue;
      }
      // Existing instances of this type: earliest finish, then least added instance time.
      let best: Option | null = null;
      let closedHere = 0;
      for (const it of inst[o]!) {
        if (closed && closed.has(o * 1e6 + it.index)) {
          closedHere++;
          continue;
        }
        const start = it.timeline.earliestStart(ready, dur, totalCores, totalGpus);
        const end = start + dur;
        const added = addedCost(off, it, end);
        if (!best || end < best.end - 1e-9 || (Math.abs(end - best.end) <= 1e-9 && added + egress < best.cost)) {
          best = { offering: o, instance: it.index, ready, start, end, cost: added + egress, egress };
        }
      }
      if (best) options.push(best);
      if (inst[o]!.length - closedHere < off.count) {
        const start = Math.max(ready, now + off.bootSec);
        options.push({ offering: o, instance: -1, ready, start, end: start + dur, cost: instanceCost(off, dur + off.bootSec) + egress, egress });
      }
    }
    if (options.length === 0) throw new DataUnreachable(j);
    const c = select(j, options);

    // Remember what the alternatives were, to explain the choice.
    const site = m.offerings[c.offering]!.site;
    let alt: Option | null = null;
    let altCheap: Option | null = null;
    for (const op of options) {
      if (m.offerings[op.offering]!.site === site) continue;
      if (!alt || op.end < alt.end) alt = op;
      if (!altCheap || op.cost < altCheap.cost) altCheap = op;
    }
    // A new instance is ready at its first job's start; an existing one at its readyAt.
    const readyAt = c.instance === -1 ? c.start : c.instance >= 0 ? byLabel.get(c.offering * 1e6 + c.instance)!.readyAt : 0;
    const booting = Math.max(0, Math.min(c.start, readyAt) - c.ready);
    why[j] = { localBytes: siteLocal[site]!, inputBytes, alt, altCheap, waited: c.start - c.ready, booting, note: note ? note(j) : '' };

    commit(j, c, now);
  }

  let makespan = 0;
  for (let j = 0; j < n; j++) if (endOf[j]! > makespan) makespan = endOf[j]!;
  let costCloud = 0;
  for (const it of allInst) costCloud += instanceCost(m.offerings[it.offering]!, it.timeline.lastEnd - it.bootStart);
  return { name, choice, instances: allInst, transfers, why, makespan, cost: costCluster + costCloud + costEgress, costCluster, costCloud, costEgress };
}

// ---- Selectors -------------------------------------------------------------------------

const EPS = 1e-9;

/** HEFT: earliest finish time; ties by name order (the order of the options). */
export const heftSelect: Selector = (_j, ops) => {
  let b = ops[0]!;
  for (const o of ops) if (o.end < b.end - EPS) b = o;
  return b;
};

/** Earliest finish; among (near-)equal finishes the cheaper one. */
export const eftCostSelect: Selector = (_j, ops) => {
  let b = ops[0]!;
  for (const o of ops) if (o.end < b.end - EPS || (Math.abs(o.end - b.end) <= EPS && o.cost < b.cost - EPS)) b = o;
  return b;
};

/** The cheapest option that finishes by the job's latest finish time; else the earliest finish. */
export function withinSelect(lft: Float64Array): Selector {
  return (j, ops) => {
    const limit = lft[j]! + EPS;
    let b: Option | null = null;
    for (const o of ops) {
      if (o.end > limit) continue;
      if (!b || o.cost < b.cost - EPS || (Math.abs(o.cost - b.cost) <= EPS && o.end < b.end - EPS)) b = o;
    }
    return b ?? eftCostSelect(j, ops);
  };
}

/** The cheapest option; ties by earliest finish. */
export const cheapestSelect: Selector = (_j, ops) => {
  let b = ops[0]!;
  for (const o of ops) if (o.cost < b.cost - EPS || (Math.abs(o.cost - b.cost) <= EPS && o.end < b.end - EPS)) b = o;
  return b;
};

/**
 * Latest finish time of every job so that the workflow still ends by `exit`, given the
 * runtimes and transfer times a schedule chose (an as-late-as-possible pass over the DAG).
 */
export function latestFinish(m: Model, s: Schedule, exit: number): Float64Array {
  const n = m.jobs.length;
  const lft = new Float64Array(n).fill(exit);
  const dur = (j: number): number => s.choice[j]!.end - s.choice[j]!.start;
  for (let t = n - 1; t >= 0; t--) {
    const j = m.topo[t]!;
    const job = m.jobs[j]!;
    let l = exit;
    const sj = m.offerings[s.choice[j]!.offering]!.site;
    for (let i = 0; i < job.succs.length; i++) {
      const k = job.succs[i]!;
      const sk = m.offerings[s.choice[k]!.offering]!.site;
      let comm = 0;
      if (sj !== sk) {
        const rt = m.routes[sj]![sk];
        if (rt) comm = rt.latencySec + job.succBytes[i]! / rt.bandwidth;
      }
      const v = lft[k]! - dur(k) - comm;
      if (v < l) l = v;
    }
    lft[j] = l;
  }
  return lft;
}

/**
 * PEFT's optimistic cost table (Arabnejad & Barbosa 2014) on offerings: OCT[j][o] is the
 * shortest time from the end of job j on offering o to the end of the workflow, if every
 * later job ran on its best offering with no waiting (moving data between sites by their
 * routes). Indexed j * offerings + o; Infinity where o cannot run j.
 */
export function octTable(m: Model): Float64Array {
  const no = m.offerings.length;
  const oct = new Float64Array(m.jobs.length * no).fill(Infinity);
  for (let t = m.topo.length - 1; t >= 0; t--) {
    const j = m.topo[t]!;
    const job = m.jobs[j]!;
    for (const o of job.feasible) oct[j * no + o] = 0;
    for (let i = 0; i < job.succs.length; i++) {
      const s = job.succs[i]!;
      const succ = m.jobs[s]!;
      const bytes = job.succBytes[i]!;
      for (const o of job.feasible) {
        const so = m.offerings[o]!.site;
        let best = Infinity;
        for (const o2 of succ.feasible) {
          const off2 = m.offerings[o2]!;
          let c = 0;
          if (off2.site !== so) {
            const rt = m.routes[so]![off2.site];
            if (!rt) continue;
            c = rt.latencySec + bytes / rt.bandwidth;
          }
          const v = oct[s * no + o2]! + succ.est / off2.speed + c;
          if (v < best) best = v;
        }
        if (best > oct[j * no + o]!) oct[j * no + o] = best;
      }
    }
  }
  return oct;
}

/** PEFT's priority: the mean optimistic cost over the offerings that can run the job. */
export function octRanks(m: Model, oct: Float64Array): Float64Array {
  const no = m.offerings.length;
  const rank = new Float64Array(m.jobs.length);
  for (let j = 0; j < m.jobs.length; j++) {
    const f = m.jobs[j]!.feasible;
    let s = 0;
    for (const o of f) s += oct[j * no + o]!;
    rank[j] = f.length ? s / f.length : 0;
  }
  return rank;
}

/** PEFT's choice: the least finish time plus optimistic cost to the end; ties by cost. */
export function peftSelect(m: Model, oct: Float64Array): Selector {
  const no = m.offerings.length;
  return (j, ops) => {
    let b = ops[0]!;
    let bv = b.end + oct[j * no + b.offering]!;
    for (const o of ops) {
      const v = o.end + oct[j * no + o.offering]!;
      if (v < bv - EPS || (Math.abs(v - bv) <= EPS && (o.end < b.end - EPS || (Math.abs(o.end - b.end) <= EPS && o.cost < b.cost - EPS)))) {
        b = o;
        bv = v;
      }
    }
    return b;
  };
}
