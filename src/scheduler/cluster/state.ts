// The live state of one scheduling pass: nodes in name order (index = position), their totals,
// what is free, the expected releases of running jobs, and reservations. Flat typed arrays so
// the hot loop touches numbers, not objects. Pure: `now` is given.
import { WarrenError, EXIT } from '../../common/index.js';
import type { Constraint } from './constraints.js';
import type { ClusterNode, PendingJob, RunningJob } from './types.js';

/** A pending job with what the filters need, parsed once. */
export interface JobView {
  job: PendingJob;
  constraints: readonly Constraint[];
  exclusive: boolean;
  /** now + timeLimit, or Infinity. */
  end: number;
  /** Which nodes hold the job's image, and each of its data volumes (ClusterState.holding). */
  imageOn: Uint8Array | null;
  dataOn: readonly (Uint8Array | null)[];
}

/** What comes back when a job ends: a RunningJob, or a Placement of this pass. */
interface Release {
  expectedEnd: number;
  cores: number;
  memoryBytes: number;
  gpus: number;
}

function badCluster(message: string, hint: string): WarrenError {
  return new WarrenError('PLAN_BAD_CLUSTER', message, { hint });
}

const count = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x >= 0;

export class ClusterState {
  readonly nodes: readonly ClusterNode[];
  readonly byName = new Map<string, number>();
  readonly totalCores: Float64Array;
  readonly totalMemory: Float64Array;
  readonly totalGpus: Float64Array;
  readonly freeCores: Float64Array;
  readonly freeMemory: Float64Array;
  readonly freeGpus: Float64Array;
  /** 1 while nothing at all is allocated on the node. */
  readonly empty: Uint8Array;
  /** Start of the reservation held on the node; NaN: none. */
  readonly resStart: Float64Array;
  readonly resJob: (string | undefined)[];
  /** Room beyond the reservation at its start (what a job running past it may still use). */
  readonly shadowCores: Float64Array;
  readonly shadowMemory: Float64Array;
  readonly shadowGpus: Float64Array;
  /** Image digest / data volume -> the nodes that hold it (indices, ascending). */
  readonly imageHolders = new Map<string, number[]>();
  readonly volumeHolders = new Map<string, number[]>();
  private readonly imageBitmaps = new Map<string, Uint8Array | null>();
  private readonly volumeBitmaps = new Map<string, Uint8Array | null>();
  private readonly releases: Release[][];

  constructor(
    readonly now: number,
    input: readonly ClusterNode[],
    running: readonly RunningJob[],
  ) {
    if (!Number.isFinite(now)) throw badCluster(`now is ${now}, not a time`, 'pass the current time as a finite number of seconds');
    const nodes = [...input].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.nodes = nodes;
    const n = nodes.length;
    this.totalCores = new Float64Array(n);
    this.totalMemory = new Float64Array(n);
    this.totalGpus = new Float64Array(n);
    this.freeCores = new Float64Array(n);
    this.freeMemory = new Float64Array(n);
    this.freeGpus = new Float64Array(n);
    this.empty = new Uint8Array(n);
    this.resStart = new Float64Array(n).fill(NaN);
    this.resJob = new Array<string | undefined>(n);
    this.shadowCores = new Float64Array(n);
    this.shadowMemory = new Float64Array(n);
    this.shadowGpus = new Float64Array(n);
    this.releases = [];
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      if (typeof node.name !== 'string' || node.name === '') throw badCluster(`node ${i} has no name`, 'give every node a unique name');
      if (this.byName.has(node.name)) throw badCluster(`two nodes are named "${node.name}"`, 'node names must be unique in the cluster');
      this.byName.set(node.name, i);
      const a = node.allocated;
      if (!(count(node.cores) && count(node.memoryBytes) && count(node.gpus?.count) && count(a?.cores) && count(a?.memoryBytes) && count(a?.gpus))) {
        const [what, v] = (
          [
            ['cores', node.cores],
            ['memoryBytes', node.memoryBytes],
            ['gpus.count', node.gpus?.count],
            ['allocated.cores', a?.cores],
            ['allocated.memoryBytes', a?.memoryBytes],
            ['allocated.gpus', a?.gpus],
          ] as const
        ).find(([, x]) => !count(x))!;
        throw badCluster(`node "${node.name}": ${what} is ${String(v)}, not a count >= 0`, 'report capacity and allocations as finite numbers >= 0');
      }
      this.totalCores[i] = node.cores;
      this.totalMemory[i] = node.memoryBytes;
      this.totalGpus[i] = node.gpus.count;
      // Over-allocation (an admin's oversubscription) leaves negative room: nothing more fits.
      this.freeCores[i] = node.cores - a.cores;
      this.freeMemory[i] = node.memoryBytes - a.memoryBytes;
      this.freeGpus[i] = node.gpus.count - a.gpus;
      this.empty[i] = a.cores === 0 && a.memoryBytes === 0 && a.gpus === 0 ? 1 : 0;
      for (const d of new Set(node.cachedImages)) (this.imageHolders.get(d) ?? this.imageHolders.set(d, []).get(d)!).push(i);
      for (const d of new Set(node.dataVolumes)) (this.volumeHolders.get(d) ?? this.volumeHolders.set(d, []).get(d)!).push(i);
      this.releases.push([]);
    }
    for (const r of running) {
      const i = this.byName.get(r.node);
      if (i === undefined) throw badCluster(`running job "${r.id}" is on node "${r.node}", which is not in the cluster`, 'pass the running jobs of the nodes given, or add the node');
      if (typeof r.expectedEnd !== 'number' || Number.isNaN(r.expectedEnd)) throw badCluster(`running job "${r.id}": expectedEnd is ${String(r.expectedEnd)}`, 'give the expected end as a time, or Infinity when it is unknown');
      this.releases[i]!.push(r);
    }
  }

  get size(): number {
    return this.nodes.length;
  }

  /** A byte per node, 1 where the node holds the image (kind 'i') or data volume ('d');
   *  null when no node does. Built once per key, for the keys jobs name. */
  holding(kind: 'i' | 'd', key: string): Uint8Array | null {
    const cache = kind === 'i' ? this.imageBitmaps : this.volumeBitmaps;
    let b = cache.get(key);
    if (b !== undefined) return b;
    const h = (kind === 'i' ? this.imageHolders : this.volumeHolders).get(key);
    b = null;
    if (h) {
      b = new Uint8Array(this.nodes.length);
      for (const i of h) b[i] = 1;
    }
    cache.set(key, b);
    return b;
  }

  /** Put a job on node i (the whole node when it is exclusive); `release` (its placement) says
   *  what comes back when, for later reservations. */
  allocate(i: number, v: JobView, release: Release): void {
    const c = v.exclusive ? this.totalCores[i]! : v.job.cores;
    const m = v.exclusive ? this.totalMemory[i]! : v.job.memoryBytes;
    const g = v.exclusive ? this.totalGpus[i]! : v.job.gpus;
    this.freeCores[i]! -= c;
    this.freeMemory[i]! -= m;
    this.freeGpus[i]! -= g;
    this.empty[i] = 0;
    // A job that runs past the reservation's start uses room beyond what the reservation needs.
    if (!Number.isNaN(this.resStart[i]!) && v.end > this.resStart[i]!) {
      this.shadowCores[i]! -= c;
      this.shadowMemory[i]! -= m;
      this.shadowGpus[i]! -= g;
    }
    this.releases[i]!.push(release);
  }

  /** The earliest time at which job v fits on node i, given the expected ends of what runs
   *  there (Infinity when it never does: unknown ends, or allocations no running job explains).
   *  Also returns the room left at that time once v's share is taken. */
  earliestFit(i: number, v: JobView): { start: number; cores: number; memoryBytes: number; gpus: number } {
    const rel = [...this.releases[i]!].sort((a, b) => a.expectedEnd - b.expectedEnd);
    let c = this.freeCores[i]!;
    let m = this.freeMemory[i]!;
    let g = this.freeGpus[i]!;
    const tc = this.totalCores[i]!;
    const tm = this.totalMemory[i]!;
    const tg = this.totalGpus[i]!;
    const need = v.exclusive ? { c: tc, m: tm, g: tg } : { c: v.job.cores, m: v.job.memoryBytes, g: v.job.gpus };
    const fits = (): boolean => c >= need.c && m >= need.m && g >= need.g;
    let start = this.now;
    let k = 0;
    while (!fits()) {
      if (k >= rel.length || rel[k]!.expectedEnd === Infinity) return { start: Infinity, cores: 0, memoryBytes: 0, gpus: 0 };
      start = Math.max(this.now, rel[k]!.expectedEnd);
      // Everything that ends at the same time comes back together.
      while (k < rel.length && Math.max(this.now, rel[k]!.expectedEnd) === start) {
        c += rel[k]!.cores;
        m += rel[k]!.memoryBytes;
        g += rel[k]!.gpus;
        k++;
      }
    }
    return { start, cores: c - need.c, memoryBytes: m - need.m, gpus: g - need.g };
  }

  reserve(i: number, job: string, at: { start: number; cores: number; memoryBytes: number; gpus: number }): void {
    this.resStart[i] = at.start;
    this.resJob[i] = job;
    this.shadowCores[i] = at.cores;
    this.shadowMemory[i] = at.memoryBytes;
    this.shadowGpus[i] = at.gpus;
  }
}
