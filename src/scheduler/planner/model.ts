// The planner's view of a workflow on a platform: jobs (task arrays expanded) with estimates,
// resources and files; offerings (a cluster site, or one instance type of a cloud region);
// and the filter stage that decides which offerings can run which job, with a reason for
// every rejection. Pure.
import { EXIT, WarrenError, formatBytes } from '../../common/index.js';
import type { Workflow } from '../../workflow/index.js';
import { computeRoutes, dataSite } from '../platform.js';
import type { Platform, Route } from '../platform.js';
import type { PlanOptions } from '../types.js';

export interface PJob {
  id: string;
  /** Reference runtime (seconds on a core of speed 1). */
  est: number;
  cores: number;
  gpus: number;
  memBytes: number;
  /** Nodes of a multinode job (cores is then cores per node). */
  nodes: number;
  inputs: number[];
  outputs: number[];
  preds: number[];
  succs: number[];
  /** Bytes of this job's outputs that succs[i] reads (aligned with succs). */
  succBytes: number[];
  /** Offerings that pass the filters, in name order. */
  feasible: number[];
  /** Sites ruled out, with why. */
  rejected: { site: string; why: string }[];
}

export interface PFile {
  id: string;
  bytes: number;
  /** Job that writes it, or -1 for data that exists before the workflow starts. */
  producer: number;
  /** For initial data: the site index where it lives. */
  home: number;
}

export interface Offering {
  /** `site` or `site/instance-type`. */
  key: string;
  site: number;
  siteName: string;
  cloud: boolean;
  instanceType: string | null;
  /** Per node (cluster) or per instance (cloud). */
  cores: number;
  gpus: number;
  memBytes: number;
  /** Cluster: number of nodes; cloud: most instances. */
  count: number;
  speed: number;
  /** Cluster: per core-hour; cloud: per instance-hour. */
  price: number;
  bootSec: number;
  granularitySec: number;
  minimumSec: number;
}

export interface Model {
  jobs: PJob[];
  files: PFile[];
  offerings: Offering[];
  siteNames: string[];
  /** routes[a][b]: how data moves from site a to site b (null: it cannot). a === b: null too. */
  routes: (Route | null)[][];
  /** Job indices in a topological order. */
  topo: number[];
  /** nameOrder[j]: position of job j when the jobs are sorted by id (ties are broken by it). */
  nameOrder: Int32Array;
  currency: string;
}

const GPU = 'nvidia.com/gpu';

function usage(msg: string, hint: string): WarrenError {
  return new WarrenError('PLAN_NO_FEASIBLE_SITE', msg, { hint });
}

/**
 * Build the planner's model; throws PLAN_* errors for workflows the platform cannot run.
 * `started`: ids of jobs that already ran (re-planning): they need no feasible site now.
 */
export function buildModel(wf: Workflow, platform: Platform, opts: PlanOptions = {}, started?: ReadonlySet<string>): Model {
  const siteNames = Object.keys(platform.sites).sort();
  const siteIdx = new Map(siteNames.map((s, i) => [s, i]));
  const r = computeRoutes(platform);
  const routes = siteNames.map((a) => siteNames.map((b) => (a === b ? null : (r.get(a)?.get(b) ?? null))));

  // Offerings, in name order (ties are broken by this order).
  const offerings: Offering[] = [];
  for (const name of siteNames) {
    const s = platform.sites[name]!;
    if (s.kind === 'cluster') {
      offerings.push({
        key: name, site: siteIdx.get(name)!, siteName: name, cloud: false, instanceType: null,
        cores: s.cores, gpus: s.gpus, memBytes: s.memoryBytes ?? Infinity, count: s.nodes, speed: s.speed,
        price: s.price, bootSec: 0, granularitySec: 1, minimumSec: 0,
      });
    } else if (s.kind === 'slurm') {
      // Pilot mode: pilots are started (after their queue wait) and billed while they live;
      // direct mode: Slurm's cores are there, each job waits its turn in the queue.
      const pilot = s.mode === 'pilot';
      offerings.push({
        key: pilot ? `${name}/pilot` : name, site: siteIdx.get(name)!, siteName: name, cloud: pilot, instanceType: pilot ? 'pilot' : null,
        cores: s.pilot.cores, gpus: 0, memBytes: s.pilot.memoryBytes ?? Infinity, count: s.maxPilots, speed: s.speed,
        price: pilot ? s.price * s.pilot.cores : s.price, bootSec: pilot ? s.queueEstimateSec : 0, granularitySec: pilot ? 60 : 1, minimumSec: 0,
      });
    } else {
      for (const tn of Object.keys(s.instanceTypes).sort()) {
        const it = s.instanceTypes[tn]!;
        offerings.push({
          key: `${name}/${tn}`, site: siteIdx.get(name)!, siteName: name, cloud: true, instanceType: tn,
          cores: it.cores, gpus: it.gpus, memBytes: it.memoryBytes ?? Infinity, count: it.max, speed: it.speed,
          price: opts.spot && it.spotPrice !== undefined ? it.spotPrice : it.price,
          bootSec: it.bootSec, granularitySec: s.billing.granularitySec, minimumSec: s.billing.minimumSec,
        });
      }
    }
  }

  // Files and jobs (task arrays expanded into `name[i]`).
  const files: PFile[] = [];
  const fileIdx = new Map<string, number>();
  const fileOf = (id: string): number => {
    let i = fileIdx.get(id);
    if (i === undefined) {
      i = files.length;
      files.push({ id, bytes: wf.files?.[id]?.sizeBytes ?? 0, producer: -1, home: -1 });
      fileIdx.set(id, i);
    }
    return i;
  };
  const jobs: PJob[] = [];
  const byName = new Map<string, number[]>();
  const defaultEst = opts.defaultEstimateSec ?? 60;
  for (const spec of Object.values(wf.jobs)) {
    const est = opts.estimates?.[spec.name] ?? spec.estimateSec ?? defaultEst;
    const nodes = spec.multinode?.nodes ?? 1;
    const inputs = new Set<number>();
    for (const f of spec.inputs ?? []) inputs.add(fileOf(f));
    for (const m of spec.mounts) {
      const vol = wf.volumes[m.volume];
      for (const t of vol?.ingress ?? []) inputs.add(fileOf(t.source.uri));
    }
    const outputs = [...new Set((spec.outputs ?? []).map(fileOf))].filter((f) => !inputs.has(f));
    const ids: string[] = [];
    if (spec.taskArray) for (let t = spec.taskArray.start; t <= spec.taskArray.end; t++) ids.push(`${spec.name}[${t}]`);
    else ids.push(spec.name);
    const idxs: number[] = [];
    for (const id of ids) {
      idxs.push(jobs.length);
      jobs.push({
        id, est, cores: spec.resources.cores, gpus: spec.resources.devices[GPU] ?? 0,
        memBytes: spec.resources.memoryBytes ?? 0, nodes,
        inputs: [...inputs], outputs, preds: [], succs: [], succBytes: [], feasible: [], rejected: [],
      });
    }
    byName.set(spec.name, idxs);
  }
  if (!Number.isFinite(defaultEst) || defaultEst < 0) {
    throw new WarrenError('PLAN_BAD_ESTIMATE', `default estimate ${defaultEst} is not a number of seconds >= 0`, { hint: 'pass a non-negative number of seconds' });
  }
  for (const j of jobs) {
    if (!Number.isFinite(j.est) || j.est < 0) {
      throw new WarrenError('PLAN_BAD_ESTIMATE', `job "${j.id}": runtime estimate ${j.est} is not a number of seconds >= 0`, { hint: 'fix the estimate (or the history it came from)' });
    }
  }
  for (let j = 0; j < jobs.length; j++) for (const f of jobs[j]!.outputs) if (files[f]!.producer < 0) files[f]!.producer = j;
  for (const f of files) if (f.producer < 0) f.home = siteIdx.get(dataSite(platform, f.id))!;

  // Edges: declared requirements plus producer -> consumer of every file. Edges into one job
  // are added together, so `seen[a] === b` (a stamp, no set of pairs) finds duplicates.
  const nj = jobs.length;
  const seen = new Int32Array(nj).fill(-1);
  const predPos: number[][] = jobs.map(() => []);
  const addEdge = (a: number, b: number): void => {
    if (a === b || seen[a] === b) return;
    seen[a] = b;
    predPos[b]!.push(jobs[a]!.succs.length);
    jobs[a]!.succs.push(b);
    jobs[b]!.preds.push(a);
  };
  for (const spec of Object.values(wf.jobs)) {
    const targets = byName.get(spec.name)!;
    for (const d of spec.requires) {
      if (!byName.has(d.job)) {
        throw new WarrenError('PLAN_UNKNOWN_JOB', `job "${spec.name}" requires unknown job "${d.job}"`, { hint: 'validate the workflow with `warren validate FILE`' });
      }
    }
    for (const b of targets) for (const d of spec.requires) for (const a of byName.get(d.job)!) addEdge(a, b);
  }
  // Bytes on each edge: what the consumer reads of the producer's outputs.
  const acc = new Float64Array(nj);
  const predBytes: number[][] = new Array(nj);
  for (let j = 0; j < nj; j++) {
    const job = jobs[j]!;
    for (const p of job.preds) seen[p] = j;
    for (const f of job.inputs) {
      const p = files[f]!.producer;
      if (p < 0 || p === j) continue;
      addEdge(p, j);
      acc[p]! += files[f]!.bytes;
    }
    predBytes[j] = job.preds.map((p) => {
      const v = acc[p]!;
      acc[p] = 0;
      return v;
    });
  }
  for (const job of jobs) job.succBytes = new Array<number>(job.succs.length).fill(0);
  for (let b = 0; b < nj; b++) {
    const preds = jobs[b]!.preds;
    for (let i = 0; i < preds.length; i++) jobs[preds[i]!]!.succBytes[predPos[b]![i]!] = predBytes[b]![i]!;
  }

  // Topological order (Kahn, smallest index first for determinism).
  const indeg = jobs.map((j) => j.preds.length);
  const topo: number[] = [];
  const queue: number[] = [];
  for (let j = 0; j < jobs.length; j++) if (indeg[j] === 0) queue.push(j);
  for (let q = 0; q < queue.length; q++) {
    const j = queue[q]!;
    topo.push(j);
    for (const s of jobs[j]!.succs) if (--indeg[s]! === 0) queue.push(s);
  }
  if (topo.length !== jobs.length) {
    const stuck = jobs.filter((_, i) => indeg[i]! > 0).map((j) => j.id).slice(0, 5);
    throw new WarrenError('PLAN_CYCLE', `the jobs ${stuck.join(', ')} depend on each other in a cycle (through requires or files)`, { hint: 'a workflow must be acyclic: check which job writes each file and who requires whom' });
  }

  const nameOrder = new Int32Array(jobs.length);
  jobs
    .map((j, i) => [j.id, i] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .forEach(([, i], k) => (nameOrder[i] = k));
  const model: Model = { jobs, files, offerings, siteNames, routes, topo, nameOrder, currency: platform.currency };
  filterStage(model, wf, started);
  return model;
}

/**
 * Filter stage: which offerings can run each job (cores, GPUs, memory per node/instance,
 * nodes for multinode jobs, and data reachability). Records why each site was ruled out.
 */
function filterStage(m: Model, wf: Workflow, started?: ReadonlySet<string>): void {
  for (const j of m.jobs) {
    const whyBySite = new Map<number, string>();
    for (let o = 0; o < m.offerings.length; o++) {
      const off = m.offerings[o]!;
      const why = fits(j, off);
      if (why === null) {
        const unreachable = j.inputs.find((f) => {
          const file = m.files[f]!;
          return file.producer < 0 && file.home !== off.site && m.routes[file.home]![off.site] === null;
        });
        if (unreachable === undefined) {
          j.feasible.push(o);
          continue;
        }
        const file = m.files[unreachable]!;
        whyBySite.set(off.site, `input ${file.id} at ${m.siteNames[file.home]} cannot reach it (no link)`);
      } else if (!whyBySite.has(off.site)) whyBySite.set(off.site, why);
    }
    const okSites = new Set(j.feasible.map((o) => m.offerings[o]!.site));
    for (const [s, why] of whyBySite) if (!okSites.has(s)) j.rejected.push({ site: m.siteNames[s]!, why });
    if (j.feasible.length === 0 && !started?.has(j.id)) throw noSite(m, j, wf);
  }
}

function fits(j: PJob, off: Offering): string | null {
  const what = off.cloud ? `${off.instanceType} has` : 'a node has';
  if (j.nodes > 1 && off.cloud) return `multinode job (${j.nodes} nodes) needs a cluster`;
  if (j.nodes > off.count && !off.cloud) return `needs ${j.nodes} nodes, the site has ${off.count}`;
  if (j.cores > off.cores) return `needs ${j.cores} cores, ${what} ${off.cores}`;
  if (j.gpus > off.gpus) return `needs ${j.gpus} GPU${j.gpus === 1 ? '' : 's'}, ${what} ${off.gpus}`;
  if (j.memBytes > off.memBytes) return `needs ${formatBytes(j.memBytes)} memory, ${what} ${formatBytes(off.memBytes)}`;
  return null;
}

function noSite(m: Model, j: PJob, wf: Workflow): WarrenError {
  const where = wf.file ? `${wf.file}: ` : '';
  const unreachable = j.rejected.find((r) => r.why.includes('cannot reach'));
  // Data reachability only counts when some site could run the job otherwise.
  const anyFits = m.offerings.some((o) => fits(j, o) === null);
  if (anyFits && unreachable) {
    const fileId = /input (\S+) at (\S+)/.exec(unreachable.why);
    return new WarrenError(
      'PLAN_DATA_UNREACHABLE',
      `${where}job "${j.id}" needs ${fileId ? `${fileId[1]}, which lives at site "${fileId[2]}"` : 'data'} that no link connects to any site able to run it (${j.rejected.map((r) => `${r.site}: ${r.why}`).join('; ')})`,
      { hint: 'add a link from the data\'s site to a site that can run the job, or change `data:` in the platform file' },
    );
  }
  const maxCores = Math.max(...m.offerings.map((o) => o.cores));
  const maxGpus = Math.max(...m.offerings.map((o) => o.gpus));
  const need: string[] = [];
  if (j.cores > maxCores) need.push(`${j.cores} cores (the largest node or instance has ${maxCores})`);
  if (j.gpus > maxGpus) need.push(`${j.gpus} GPUs (the most on one node or instance is ${maxGpus})`);
  return usage(
    `${where}job "${j.id}" needs ${need.length ? need.join(' and ') : 'more than any site offers'}; no site can run it (${j.rejected.map((r) => `${r.site}: ${r.why}`).join('; ')})`,
    'lower the job\'s resources (cores, devices, memory) or add a site that has them to the platform',
  );
}
