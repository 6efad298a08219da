// The stages of a placement, one small interface per extension point, and the stack that wires
// them (buildStack, at the end of this file: the one place that says what runs in which order).
//
//   NodeFilter      can this node ever run this job? (static facts: totals, labels, platform,
//                   drain, accounts). Results are cached per node class x job class.
//   CapacityFilter  can it run it now? (what is free, the exclusive rule, reservations)
//   Scorer          how good is this node for this job, in [0, 1], with a weight
//   Selector        which of the scored candidates wins
//
// A filter that refuses a node returns a Refusal: its reason is the key under which the node is
// counted in the job's Status.reasons (Nomad's per-filter metrics), and `have` finishes the
// human line "<reason>: 0 of N nodes <have>".
import { formatBytes } from '../../common/index.js';
import { constraintHolds } from './constraints.js';
import type { ClusterState, JobView } from './state.js';
import type { ClusterNode, ScheduleOptions } from './types.js';

export interface Refusal {
  reason: string;
  have: string;
}

/** Static feasibility: may read only the node's and the job's class attributes (see
 *  nodeClassKey / jobClassKey in schedule.ts), because its answers are cached per class. */
export interface NodeFilter {
  name: string;
  check(node: ClusterNode, job: JobView): Refusal | null;
}

/** Feasibility now, on the live state. `monotone`: capacity only shrinks during a pass, so a
 *  node it refuses for a job class stays refused for that class for the rest of the pass (the
 *  node leaves the class's candidate list). A non-monotone filter (reservations: it depends on
 *  the job's time limit) is asked again for every job. */
export interface CapacityFilter {
  name: string;
  monotone: boolean;
  /** The hot path: no allocation, a yes or no. */
  fits(state: ClusterState, node: number, job: JobView): boolean;
  /** Why it does not fit (asked only for jobs left pending). */
  refusal(state: ClusterState, node: number, job: JobView): Refusal;
}

export interface Scorer {
  name: string;
  weight: number;
  /** Whether this scorer says anything about this job (an image scorer for a job without an
   *  image does not); the final score is the weighted mean over the scorers that apply. */
  applies(job: JobView): boolean;
  score(state: ClusterState, node: number, job: JobView): number;
}

export interface Selector {
  /** Index into `scores` (count entries, in candidate order) of the winner. */
  pick(scores: Float64Array, count: number): number;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

// ---- node filters (static) -----------------------------------------------------------------

export const drainedFilter: NodeFilter = {
  name: 'drained',
  check: (node) => (node.drained ? { reason: 'node drained', have: 'are in service' } : null),
};

/** Splits `os/arch[/variant]`. */
function platformParts(p: string): [string, string, string | undefined] {
  const [os = '', arch = '', variant] = p.split('/');
  return [os, arch, variant];
}

export const platformFilter: NodeFilter = {
  name: 'image platform',
  check: (node, v) => {
    const want = v.job.image?.platform;
    if (!want) return null;
    const [os, arch, variant] = platformParts(want);
    const [nos, narch, nvariant] = platformParts(node.platform);
    if (os === nos && arch === narch && (variant === undefined || nvariant === undefined || variant === nvariant)) return null;
    return { reason: `needs platform ${want}`, have: `are ${want}` };
  },
};

export const unixUserFilter: NodeFilter = {
  name: 'unix user',
  check: (node, v) =>
    node.unixUsers === undefined || node.unixUsers.includes(v.job.user) ? null : { reason: `no account for user ${v.job.user}`, have: 'have that account' },
};

export const constraintFilter: NodeFilter = {
  name: 'constraints',
  check: (node, v) => {
    for (const c of v.constraints) if (!constraintHolds(c, node.labels)) return { reason: `constraint ${c.text} not met`, have: 'match' };
    return null;
  },
};

export const gpuModelFilter: NodeFilter = {
  name: 'GPU model',
  check: (node, v) => {
    const m = v.job.gpuModel;
    return m === undefined || node.gpus.models.includes(m) ? null : { reason: `needs GPU model ${m}`, have: 'have it' };
  },
};

export const coresFilter: NodeFilter = {
  name: 'cores',
  check: (node, v) => (node.cores >= v.job.cores ? null : { reason: `needs ${plural(v.job.cores, 'core')}`, have: 'have them' }),
};

export const memoryFilter: NodeFilter = {
  name: 'memory',
  check: (node, v) => (node.memoryBytes >= v.job.memoryBytes ? null : { reason: `needs ${formatBytes(v.job.memoryBytes)} memory`, have: 'have it' }),
};

export const gpusFilter: NodeFilter = {
  name: 'GPUs',
  check: (node, v) => (node.gpus.count >= v.job.gpus ? null : { reason: `needs ${plural(v.job.gpus, 'GPU')}`, have: 'have them' }),
};

// ---- capacity filters (live) ---------------------------------------------------------------

export const exclusiveFilter: CapacityFilter = {
  name: 'exclusive',
  monotone: true,
  fits: (s, i, v) => !v.exclusive || s.empty[i] === 1,
  refusal: () => ({ reason: 'needs an empty node (exclusive)', have: 'are empty' }),
};

export const freeCoresFilter: CapacityFilter = {
  name: 'free cores',
  monotone: true,
  fits: (s, i, v) => v.exclusive || s.freeCores[i]! >= v.job.cores,
  refusal: (_s, _i, v) => ({ reason: `needs ${plural(v.job.cores, 'free core')}`, have: 'have them now' }),
};

export const freeMemoryFilter: CapacityFilter = {
  name: 'free memory',
  monotone: true,
  fits: (s, i, v) => v.exclusive || s.freeMemory[i]! >= v.job.memoryBytes,
  refusal: (_s, _i, v) => ({ reason: `needs ${formatBytes(v.job.memoryBytes)} free memory`, have: 'have it now' }),
};

export const freeGpusFilter: CapacityFilter = {
  name: 'free GPUs',
  monotone: true,
  fits: (s, i, v) => v.exclusive || s.freeGpus[i]! >= v.job.gpus,
  refusal: (_s, _i, v) => ({ reason: `needs ${plural(v.job.gpus, 'free GPU')}`, have: 'have them now' }),
};

/** EASY backfill: room held by a reservation may be used only by a job that ends before the
 *  reservation starts, or that fits in what the reservation leaves over. */
export const reservationFilter: CapacityFilter = {
  name: 'reservation',
  monotone: false,
  fits: (s, i, v) => {
    const at = s.resStart[i]!;
    if (Number.isNaN(at) || v.end <= at) return true;
    if (v.exclusive) return s.shadowCores[i]! >= s.totalCores[i]! && s.shadowMemory[i]! >= s.totalMemory[i]! && s.shadowGpus[i]! >= s.totalGpus[i]!;
    return s.shadowCores[i]! >= v.job.cores && s.shadowMemory[i]! >= v.job.memoryBytes && s.shadowGpus[i]! >= v.job.gpus;
  },
  refusal: (s, i) => ({ reason: `reserved for ${s.resJob[i]} from t=${s.resStart[i]}`, have: 'are free of reservations' }),
};

// ---- scorers -------------------------------------------------------------------------------

/** How full the node would be with the job on it: mean over the dimensions the node has. */
function fullness(s: ClusterState, i: number, v: JobView): number {
  if (v.exclusive) return 1;
  let sum = 0;
  let dims = 0;
  const tc = s.totalCores[i]!;
  if (tc > 0) {
    sum += (tc - s.freeCores[i]! + v.job.cores) / tc;
    dims++;
  }
  const tm = s.totalMemory[i]!;
  if (tm > 0) {
    sum += (tm - s.freeMemory[i]! + v.job.memoryBytes) / tm;
    dims++;
  }
  const tg = s.totalGpus[i]!;
  if (tg > 0) {
    sum += (tg - s.freeGpus[i]! + v.job.gpus) / tg;
    dims++;
  }
  return dims === 0 ? 1 : sum / dims;
}

/** Bin-pack: the fuller the node ends up, the better (whole nodes stay free for large and
 *  exclusive jobs); a GPU node is kept for GPU jobs by counting its idle GPUs as empty space. */
export function binpackScorer(weight = 1): Scorer {
  return { name: 'binpack', weight, applies: () => true, score: (s, i, v) => fullness(s, i, v) };
}

/** Spread: the emptier the node ends up, the better. */
export function spreadScorer(weight = 1): Scorer {
  return { name: 'spread', weight, applies: () => true, score: (s, i, v) => 1 - fullness(s, i, v) };
}

/** The job's image is already in the node's cache: no pull. */
export function imageScorer(weight = 1): Scorer {
  return {
    name: 'image cached',
    weight,
    applies: (v) => v.job.image !== undefined,
    score: (_s, i, v) => (v.imageOn !== null && v.imageOn[i] === 1 ? 1 : 0),
  };
}

/** The share of the job's data volumes already on the node. */
export function dataScorer(weight = 1): Scorer {
  return {
    name: 'data on node',
    weight,
    applies: (v) => (v.job.dataVolumes?.length ?? 0) > 0,
    score: (_s, i, v) => {
      const on = v.dataOn;
      let k = 0;
      for (let d = 0; d < on.length; d++) if (on[d] !== null && on[d]![i] === 1) k++;
      return k / on.length;
    },
  };
}

// ---- select --------------------------------------------------------------------------------

/** The best score; a tie goes to the first candidate (candidates come in node-name order from
 *  the class's cursor, then the nodes that hold the image or data), so placements are
 *  deterministic. */
export const maxScoreSelector: Selector = {
  pick(scores, count) {
    let best = 0;
    for (let k = 1; k < count; k++) if (scores[k]! > scores[best]!) best = k;
    return best;
  },
};

// ---- the stack -----------------------------------------------------------------------------

export interface Stack {
  nodeFilters: readonly NodeFilter[];
  capacityFilters: readonly CapacityFilter[];
  scorers: readonly Scorer[];
  selector: Selector;
}

/** The one place that wires the stages, in the order they run. A node is counted under the
 *  first filter that refuses it, so the order is also the order of the reasons:
 *   1. node filters, cheapest and most decisive first (as Nomad: eligibility, then constraints,
 *      then resources): drained, image platform, unix user, constraints, GPU model, total
 *      cores, total memory, total GPUs;
 *   2. capacity filters: exclusive (empty node), free cores, free memory, free GPUs, then the
 *      reservation rule of EASY backfill;
 *   3. scorers, weighted mean: bin-pack or spread, image already cached, data already there;
 *   4. select: the best score, first candidate on a tie. */
export function buildStack(options: ScheduleOptions = {}): Stack {
  const w = options.weights ?? {};
  return {
    nodeFilters: [drainedFilter, platformFilter, unixUserFilter, constraintFilter, gpuModelFilter, coresFilter, memoryFilter, gpusFilter],
    capacityFilters: [exclusiveFilter, freeCoresFilter, freeMemoryFilter, freeGpusFilter, reservationFilter],
    scorers: [
      options.strategy === 'spread' ? spreadScorer(w.fit ?? 1) : binpackScorer(w.fit ?? 1),
      imageScorer(w.image ?? 1),
      dataScorer(w.data ?? 1),
    ],
    selector: maxScoreSelector,
  };
}
