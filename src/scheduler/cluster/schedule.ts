// One scheduling pass: place pending jobs onto cluster nodes (pure; `now` is passed in).
//
//   queue order        priority tier, then fair share between users, then submit order
//                      (fairshare.ts)
//   per job           its class (every attribute the filters read) -> the nodes that pass the
//                      node filters, computed once per class (and per node class, not per node);
//                      a cursor over them drops, for good, each node a capacity filter refuses
//                      (capacity only shrinks during a pass), so a job checks about `limit`
//                      nodes, not all of them (Nomad's limit iterator and computed classes)
//   candidates        up to `limit` nodes that fit now from the class's cursor, plus up to 2
//                      that hold the job's image and 2 per data volume
//   score, select     stages.ts (buildStack)
//   no room now       the first `reservations` such jobs get a reservation where they fit
//                      soonest; later jobs may use that room only if they end before it
//                      (EASY backfill)
//   left pending      Status.reasons counts every node under the first filter that refuses it,
//                      on the state at the end of the pass
//   gangs             a multinode job takes its `nodes` best candidates at once, or waits
//                      (all or none); it gets no reservation (docs/decisions.md)
import { WarrenError, EXIT, isWarrenError } from '../../common/index.js';
import { parseConstraint } from './constraints.js';
import type { Constraint } from './constraints.js';
import { FairQueue, checkFairShareInput, fairShareFactors } from './fairshare.js';
import { buildStack } from './stages.js';
import type { Refusal, Scorer, Stack } from './stages.js';
import { ClusterState } from './state.js';
import type { JobView } from './state.js';
import type { ClusterNode, PendingJob, PendingResult, Placement, Reservation, ScheduleInput, ScheduleResult, Status } from './types.js';

/** Nodes that fit now and hold the job's image (or one of its data volumes) added to the
 *  candidates, per image and per volume: enough for the image and data scorers to find one. */
const AFFINITY = 2;

/** A circular doubly linked list of node indices: O(1) removal while scanning. */
class NodeRing {
  readonly nodes: Int32Array;
  readonly next: Int32Array;
  readonly prev: Int32Array;
  head: number;
  size: number;

  constructor(nodes: readonly number[]) {
    const n = nodes.length;
    this.nodes = Int32Array.from(nodes);
    this.next = new Int32Array(n);
    this.prev = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      this.next[k] = k + 1 === n ? 0 : k + 1;
      this.prev[k] = k === 0 ? n - 1 : k - 1;
    }
    this.head = n > 0 ? 0 : -1;
    this.size = n;
  }

  remove(pos: number): void {
    if (this.size === 1) {
      this.head = -1;
      this.size = 0;
      return;
    }
    const p = this.prev[pos]!;
    const q = this.next[pos]!;
    this.next[p] = q;
    this.prev[q] = p;
    if (this.head === pos) this.head = q;
    this.size--;
  }
}

interface JobClass {
  /** The first job of the class (the class is every attribute the filters read). */
  rep: JobView;
  /** Refusal of the node filters per node class; null: that node class passes. */
  staticRefusal: (Refusal | null)[];
  /** Nodes that pass the node filters, in name order. */
  feasible: number[];
  ring: NodeRing;
  /** Per image digest, per data volume: the feasible nodes that hold it (null: none). */
  imageRings: Map<string, NodeRing | null>;
  dataRings: Map<string, NodeRing | null>;
  /** Reason counts over the monotone filters at the end of the pass (computed when needed). */
  end?: { counts: Map<string, number>; have: Map<string, string>; open: number[] };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function nodeClassKey(n: ClusterNode): string {
  const labels = Object.keys(n.labels)
    .sort()
    .map((k) => `${k}=${n.labels[k]}`);
  return JSON.stringify([n.cores, n.memoryBytes, n.gpus.count, [...n.gpus.models].sort(), n.drained, n.platform, labels, n.unixUsers ? [...n.unixUsers].sort() : null]);
}

/** Job classes: two jobs are in the same class when everything the node filters and the
 *  capacity filters read of them is the same (not the time limit: the reservation filter is
 *  asked per job). Looked up for every job, so without building a string: a numeric hash, then
 *  a field by field comparison. */
function jobClassHash(v: JobView): number {
  const j = v.job;
  // A small integer (a fast Map key): memory in MiB mixed with the counts.
  return ((j.memoryBytes / 1048576) ^ (j.cores * 131 + j.gpus * 8191 + (v.exclusive ? 1 : 0) + v.constraints.length * 524287)) & 0x3fffffff;
}

function sameClass(a: JobView, b: JobView, withUser: boolean): boolean {
  const x = a.job;
  const y = b.job;
  if (x.cores !== y.cores || x.memoryBytes !== y.memoryBytes || x.gpus !== y.gpus || a.exclusive !== b.exclusive) return false;
  if ((x.gpuModel ?? '') !== (y.gpuModel ?? '') || (x.image?.platform ?? '') !== (y.image?.platform ?? '')) return false;
  if (withUser && x.user !== y.user) return false;
  const ca = a.constraints;
  const cb = b.constraints;
  if (ca.length !== cb.length) return false;
  for (let k = 0; k < ca.length; k++) if (ca[k]!.text !== cb[k]!.text) return false;
  return true;
}

const badJob = (message: string, hint: string): WarrenError => new WarrenError('PLAN_BAD_JOB', message, { hint });

const PLATFORM = /^[^/\s]+\/[^/\s]+(\/[^/\s]+)?$/;

function checkJob(j: PendingJob, constraintCache: Map<string, Constraint>, platforms: Set<string>): Constraint[] {
  const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  if (typeof j.id !== 'string' || j.id === '') throw badJob('a job has no id', 'give every pending job a unique id');
  if (typeof j.user !== 'string' || j.user === '') throw badJob(`job "${j.id}" has no user`, 'every job belongs to a user (fair share is per user)');
  if (!num(j.cores) || j.cores <= 0) throw badJob(`job "${j.id}": cores is ${String(j.cores)}, not a number > 0`, 'ask for 1 core or more');
  if (!num(j.memoryBytes) || j.memoryBytes < 0) throw badJob(`job "${j.id}": memoryBytes is ${String(j.memoryBytes)}, not a number >= 0`, 'give memory in bytes');
  if (!num(j.gpus) || j.gpus < 0 || !Number.isInteger(j.gpus)) throw badJob(`job "${j.id}": gpus is ${String(j.gpus)}, not a whole number >= 0`, 'ask for 0 or more whole GPUs');
  if (!num(j.submitOrder)) throw badJob(`job "${j.id}": submitOrder is ${String(j.submitOrder)}, not a number`, 'number jobs in the order they were submitted');
  if (j.priority !== undefined && !num(j.priority)) throw badJob(`job "${j.id}": priority is ${String(j.priority)}, not a number`, 'give priority as a number (higher runs first)');
  if (j.nodes !== undefined && (!num(j.nodes) || !Number.isInteger(j.nodes) || j.nodes < 1)) throw badJob(`job "${j.id}": nodes is ${String(j.nodes)}, not a whole number >= 1`, 'ask for 1 node or more');
  if (j.timeLimit !== undefined && (!num(j.timeLimit) || j.timeLimit < 0)) throw badJob(`job "${j.id}": timeLimit is ${String(j.timeLimit)}, not seconds >= 0`, 'give the time limit in seconds');
  if (j.image !== undefined && !platforms.has(j.image.platform)) {
    if (typeof j.image.platform !== 'string' || !PLATFORM.test(j.image.platform)) {
      throw badJob(`job "${j.id}": image platform "${String(j.image.platform)}" is not os/arch`, 'write the platform as os/arch or os/arch/variant, e.g. linux/amd64');
    }
    platforms.add(j.image.platform);
  }
  const out: Constraint[] = [];
  for (const t of j.constraints ?? []) {
    let c = constraintCache.get(t);
    if (!c) constraintCache.set(t, (c = parseConstraint(t)));
    out.push(c);
  }
  return out;
}

/** The human line of a Status. */
function statusLine(entries: [string, number][], have: Map<string, string>, n: number): string {
  if (n === 0) return 'no nodes in the cluster';
  const nodes = `node${n === 1 ? '' : 's'}`;
  if (entries.length === 1) return `${entries[0]![0]}: 0 of ${n} ${nodes} ${have.get(entries[0]![0]) ?? 'fit'}`;
  return `0 of ${n} ${nodes} can run it now: ${entries.map(([r, c]) => `${r} (${c})`).join(', ')}`;
}

/** Place pending jobs onto nodes. Throws PLAN_BAD_CLUSTER for an invalid cluster (nodes,
 *  running jobs, usage, options); an invalid job is left pending with Status code 'error'. */
export function scheduleCluster(input: ScheduleInput): ScheduleResult {
  const opts = input.options ?? {};
  const state = new ClusterState(input.now, input.nodes, input.running ?? []);
  const n = state.size;
  const usage = input.usage ?? {};
  const shares = input.shares ?? {};
  checkFairShareInput(usage, shares);
  const limitOpt = opts.limit ?? 'log2';
  const limit = limitOpt === 'log2' ? Math.max(2, Math.ceil(Math.log2(Math.max(1, n)))) : limitOpt;
  if (typeof limit !== 'number' || !(limit >= 1)) {
    throw new WarrenError('PLAN_BAD_CLUSTER', `options.limit is ${String(limitOpt)}`, { hint: "use 'log2', a number >= 1, or Infinity" });
  }
  let reservationsLeft = opts.reservations ?? 1;
  const defaultRuntime = opts.defaultRuntime ?? 3600;
  const stack: Stack = buildStack(opts);
  const capacity = stack.capacityFilters;
  const spread = opts.strategy === 'spread';

  // Node classes: nodes with the same static facts answer the node filters the same way.
  const nodeClassOf = new Int32Array(n);
  const nodeClassRep: ClusterNode[] = [];
  {
    const ids = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const key = nodeClassKey(state.nodes[i]!);
      let id = ids.get(key);
      if (id === undefined) {
        ids.set(key, (id = nodeClassRep.length));
        nodeClassRep.push(state.nodes[i]!);
      }
      nodeClassOf[i] = id;
    }
  }
  const withUser = state.nodes.some((x) => x.unixUsers !== undefined);
  const imageHolders = state.imageHolders;
  const dataHolders = state.volumeHolders;
  const noData: (Uint8Array | null)[] = [];

  // Jobs: check each; an invalid one is pending with an 'error' status, the others queue.
  const invalid: PendingResult[] = [];
  const views: JobView[] = [];
  const constraintCache = new Map<string, Constraint>();
  const platforms = new Set<string>();
  const ids = new Set<string>();
  for (const j of input.jobs) {
    try {
      const constraints = checkJob(j, constraintCache, platforms);
      const known = ids.size;
      ids.add(j.id);
      if (ids.size === known) throw badJob(`two pending jobs have the id "${j.id}"`, 'job ids must be unique; the first one is scheduled');
      views.push({
        job: j,
        constraints,
        exclusive: j.exclusive === true,
        end: j.timeLimit === undefined ? Infinity : input.now + j.timeLimit,
        imageOn: j.image ? state.holding('i', j.image.digest) : null,
        dataOn: j.dataVolumes && j.dataVolumes.length > 0 ? j.dataVolumes.map((d) => state.holding('d', d)) : noData,
      });
    } catch (e) {
      // A job of the wrong shape altogether (constraints not a list, ...) is just as invalid.
      const err = isWarrenError(e) ? e : badJob(`job "${String(j?.id)}" is malformed: ${(e as Error).message}`, 'pass jobs of the PendingJob shape (docs/scheduler.md)');
      invalid.push({
        job: typeof j.id === 'string' ? j.id : '',
        status: { code: 'error', reasons: {}, nodesConsidered: 0, message: err.message, errorCode: err.code },
      });
    }
  }

  const classes = new Map<number, JobClass[]>();
  let classCount = 0;
  const classOf = (v: JobView): JobClass => {
    const h = jobClassHash(v);
    let list = classes.get(h);
    if (list) {
      for (const c of list) if (sameClass(v, c.rep, withUser)) return c;
    } else classes.set(h, (list = []));
    const staticRefusal = nodeClassRep.map((node) => {
      for (const f of stack.nodeFilters) {
        const r = f.check(node, v);
        if (r) return r;
      }
      return null;
    });
    const feasible: number[] = [];
    for (let i = 0; i < n; i++) if (staticRefusal[nodeClassOf[i]!] === null) feasible.push(i);
    const c: JobClass = { rep: v, staticRefusal, feasible, ring: new NodeRing(feasible), imageRings: new Map(), dataRings: new Map() };
    list.push(c);
    classCount++;
    return c;
  };
  const affinityRing = (c: JobClass, rings: Map<string, NodeRing | null>, holders: Map<string, number[]>, key: string): NodeRing | null => {
    let r = rings.get(key);
    if (r !== undefined) return r;
    const h = holders.get(key);
    r = h ? new NodeRing(h.filter((i) => c.staticRefusal[nodeClassOf[i]!] === null)) : null;
    rings.set(key, r);
    return r;
  };

  // Candidate buffers, reused across jobs.
  const stamp = new Int32Array(n).fill(-1);
  const candNode: number[] = [];
  const candPos: number[] = [];
  const candFromClass: boolean[] = [];
  let scoreBuf = new Float64Array(64);
  let nodesEvaluated = 0;
  let seq = 0;

  /** Up to `want` nodes of the ring that fit v now; drops nodes a monotone filter refuses. */
  const scan = (ring: NodeRing, v: JobView, want: number, fromClass: boolean): void => {
    let found = 0;
    let pos = ring.head;
    for (let left = ring.size; left > 0 && found < want; left--) {
      const nextPos = ring.next[pos]!;
      const i = ring.nodes[pos]!;
      if (stamp[i] !== seq) {
        nodesEvaluated++;
        let refusedBy = -1;
        for (let f = 0; f < capacity.length; f++) {
          if (!capacity[f]!.fits(state, i, v)) {
            refusedBy = f;
            break;
          }
        }
        if (refusedBy < 0) {
          stamp[i] = seq;
          candNode.push(i);
          candPos.push(pos);
          candFromClass.push(fromClass);
          found++;
        } else if (capacity[refusedBy]!.monotone) {
          ring.remove(pos);
        }
      }
      pos = nextPos;
    }
  };

  const placements: Placement[] = [];
  const reservations: Reservation[] = [];
  const waiting: { v: JobView; c: JobClass; reservation?: Reservation }[] = [];
  const queue = new FairQueue(views, (v) => v.job, usage, shares);
  const applicable: Scorer[] = [];

  for (let v = queue.next(); v !== undefined; v = queue.next()) {
    seq++;
    const job = v.job;
    const c = classOf(v);
    candNode.length = 0;
    candPos.length = 0;
    candFromClass.length = 0;
    const gang = job.nodes ?? 1;
    if (c.ring.size > 0) {
      scan(c.ring, v, gang > 1 ? Math.max(limit, 2 * gang) : limit, true);
      if (job.image) {
        const r = affinityRing(c, c.imageRings, imageHolders, job.image.digest);
        if (r && r.size > 0) scan(r, v, AFFINITY, false);
      }
      for (const d of job.dataVolumes ?? []) {
        const r = affinityRing(c, c.dataRings, dataHolders, d);
        if (r && r.size > 0) scan(r, v, AFFINITY, false);
      }
    }
    if (candNode.length < gang) {
      const w: { v: JobView; c: JobClass; reservation?: Reservation } = { v, c };
      if (gang === 1 && reservationsLeft > 0 && c.feasible.length > 0) {
        const r = reserve(state, c, v);
        if (r) {
          reservationsLeft--;
          reservations.push(r);
          w.reservation = r;
        }
      }
      waiting.push(w);
      continue;
    }
    // Score: the weighted mean of the scorers that apply to this job.
    applicable.length = 0;
    let wsum = 0;
    for (const s of stack.scorers) {
      if (s.weight > 0 && s.applies(v)) {
        applicable.push(s);
        wsum += s.weight;
      }
    }
    if (scoreBuf.length < candNode.length) scoreBuf = new Float64Array(2 * candNode.length);
    for (let k = 0; k < candNode.length; k++) {
      let sum = 0;
      for (const s of applicable) sum += s.weight * s.score(state, candNode[k]!, v);
      scoreBuf[k] = wsum > 0 ? sum / wsum : 0;
    }
    if (gang > 1) {
      // All or none: the `gang` best candidates (ties in candidate order), each allocated.
      const order = Array.from({ length: candNode.length }, (_, x) => x).sort((a, b) => scoreBuf[b]! - scoreBuf[a]! || a - b);
      const chosen = order.slice(0, gang);
      const names = chosen.map((x) => state.nodes[candNode[x]!]!.name);
      for (const x of chosen) {
        const i = candNode[x]!;
        const cores = v.exclusive ? state.totalCores[i]! : job.cores;
        const pl: Placement = { job: job.id, node: state.nodes[i]!.name, cores, memoryBytes: v.exclusive ? state.totalMemory[i]! : job.memoryBytes, gpus: v.exclusive ? state.totalGpus[i]! : job.gpus, expectedEnd: v.end, score: scoreBuf[x]!, backfilled: false };
        state.allocate(i, v, pl);
        queue.charge(cores * (job.timeLimit ?? defaultRuntime));
      }
      const first = candNode[chosen[0]!]!;
      placements.push({ job: job.id, node: names[0]!, cores: v.exclusive ? state.totalCores[first]! : job.cores, memoryBytes: v.exclusive ? state.totalMemory[first]! : job.memoryBytes, gpus: v.exclusive ? state.totalGpus[first]! : job.gpus, expectedEnd: v.end, score: scoreBuf[chosen[0]!]!, backfilled: false, nodes: names });
      continue;
    }
    const k = stack.selector.pick(scoreBuf, candNode.length);
    const i = candNode[k]!;
    const at = state.resStart[i]!;
    const backfilled = !Number.isNaN(at) && v.end <= at;
    const cores = v.exclusive ? state.totalCores[i]! : job.cores;
    const placement: Placement = {
      job: job.id,
      node: state.nodes[i]!.name,
      cores,
      memoryBytes: v.exclusive ? state.totalMemory[i]! : job.memoryBytes,
      gpus: v.exclusive ? state.totalGpus[i]! : job.gpus,
      expectedEnd: v.end,
      score: scoreBuf[k]!,
      backfilled,
    };
    state.allocate(i, v, placement);
    placements.push(placement);
    queue.charge(cores * (job.timeLimit ?? defaultRuntime));
    // Spread: the class's cursor moves past the chosen node (round robin over equal scores).
    if (spread && candFromClass[k] && c.ring.size > 0) c.ring.head = c.ring.next[candPos[k]!]!;
  }

  // Why each job is still pending, on the final state: every node under the first refusal.
  const pending: PendingResult[] = [];
  for (const w of waiting) {
    const c = w.c;
    if (!c.end) {
      const counts = new Map<string, number>();
      const have = new Map<string, string>();
      const open: number[] = [];
      for (let i = 0; i < n; i++) {
        let r = c.staticRefusal[nodeClassOf[i]!] ?? null;
        if (!r) {
          for (const f of capacity) {
            if (f.monotone && !f.fits(state, i, w.v)) {
              r = f.refusal(state, i, w.v);
              break;
            }
          }
        }
        if (r) {
          counts.set(r.reason, (counts.get(r.reason) ?? 0) + 1);
          have.set(r.reason, r.have);
        } else open.push(i);
      }
      c.end = { counts, have, open };
    }
    const counts = new Map(c.end.counts);
    const have = new Map(c.end.have);
    for (const i of c.end.open) {
      let r: Refusal | null = null;
      for (const f of capacity) {
        if (!f.monotone && !f.fits(state, i, w.v)) {
          r = f.refusal(state, i, w.v);
          break;
        }
      }
      // Every open node refused this job when it was tried (capacity only shrinks); the only
      // filters that can say so now are the non-monotone ones.
      r ??= { reason: 'no room now', have: 'have room' };
      counts.set(r.reason, (counts.get(r.reason) ?? 0) + 1);
      have.set(r.reason, r.have);
    }
    const entries = [...counts.entries()].sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]));
    let message = statusLine(entries, have, n);
    const gang = w.v.job.nodes ?? 1;
    if (gang > 1) {
      // A gang waits for `gang` nodes at once: say how many could take it now.
      let fit = 0;
      for (const i of c.end.open) if (capacity.every((f) => f.fits(state, i, w.v))) fit++;
      const others = entries.filter(([r]) => r !== 'no room now');
      message = `needs ${gang} nodes at once: ${fit} of ${n} node${n === 1 ? '' : 's'} can take it now${others.length ? ` (${others.map(([r, k]) => `${r}: ${k}`).join(', ')})` : ''}`;
    }
    if (w.reservation) message += `; reserved on ${w.reservation.node} from t=${w.reservation.start}`;
    const status: Status = { code: 'unschedulable', reasons: Object.fromEntries(entries), nodesConsidered: n, message };
    pending.push(w.reservation ? { job: w.v.job.id, status, reservation: w.reservation } : { job: w.v.job.id, status });
  }
  pending.push(...invalid);

  const users = views.map((v) => v.job.user).concat(Object.keys(usage));
  return {
    placements,
    pending,
    reservations,
    fairShare: fairShareFactors(users, usage, shares),
    metrics: { nodesEvaluated, jobClasses: classCount, nodeClasses: nodeClassRep.length },
  };
}

/** A reservation for v on the feasible, unreserved node where it fits soonest (first by name
 *  on a tie); undefined when no node's room is ever known to come back. */
function reserve(state: ClusterState, c: JobClass, v: JobView): Reservation | undefined {
  let best = -1;
  let bestAt: ReturnType<ClusterState['earliestFit']> | undefined;
  for (const i of c.feasible) {
    if (!Number.isNaN(state.resStart[i]!)) continue;
    const at = state.earliestFit(i, v);
    if (at.start < (bestAt?.start ?? Infinity)) {
      best = i;
      bestAt = at;
    }
  }
  if (best < 0 || !bestAt) return undefined;
  state.reserve(best, v.job.id, bestAt);
  return { job: v.job.id, node: state.nodes[best]!.name, start: bestAt.start };
}
