// Cluster scheduler benchmark: 100,000 pending jobs onto 5,000 simulated nodes, one pass of the
// pure scheduler (scheduleCluster), timed by the caller. Prints placements per second next to
// the target (50,000/s) and Nomad's C1M figure (3,750 containers/s), as ratios.
//
//   node --import tsx bench/scheduler/run.ts [--jobs N] [--nodes N] [--runs N] [--strategy binpack|spread]
//
// The cluster and the queue are generated from a fixed seed (same input every run): 4,000 CPU
// nodes (64 cores, 256 GiB; 500 of them arm64; 40 drained) and 1,000 GPU nodes (64 cores,
// 512 GiB, 4 A100 or H100), labels rack/zone/ib, 3 of 40 images and 2 of 100 data volumes
// cached per node, a fifth of the nodes half full with running jobs; 20 users with different
// decayed usage; jobs of 1-4 cores, some with GPUs, constraints, arm64 images, exclusive, a
// higher priority. Exits with status 1 if the target is missed.
import { scheduleCluster } from '../../src/scheduler/index.js';
import type { ClusterNode, PendingJob, RunningJob, ScheduleResult, Strategy } from '../../src/scheduler/index.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const nJobs = Number(opt('--jobs', '100000'));
const nNodes = Number(opt('--nodes', '5000'));
const runs = Number(opt('--runs', '5'));
const strategy = opt('--strategy', 'binpack') as Strategy;
const TARGET = 50_000;
const C1M = 3_750;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const GiB = 1024 ** 3;
const r = rng(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const images = Array.from({ length: 40 }, (_, k) => `sha256:${k.toString(16).padStart(64, '0')}`);
const volumes = Array.from({ length: 100 }, (_, k) => `vol${k}`);

const nodes: ClusterNode[] = [];
const running: RunningJob[] = [];
const now = 1_000_000;
for (let i = 0; i < nNodes; i++) {
  const gpu = i >= nNodes * 0.8;
  const arm = !gpu && i % 8 === 7;
  const name = `n${String(i).padStart(5, '0')}`;
  const node: ClusterNode = {
    name,
    cores: 64,
    memoryBytes: (gpu ? 512 : 256) * GiB,
    gpus: gpu ? { count: 4, models: [i % 2 ? 'A100' : 'H100'] } : { count: 0, models: [] },
    labels: { rack: `r${i % 100}`, zone: `z${i % 4}`, ...(i % 2 ? { ib: 'hdr' } : {}) },
    drained: !gpu && i % 100 === 3,
    platform: arm ? 'linux/arm64' : 'linux/amd64',
    allocated: { cores: 0, memoryBytes: 0, gpus: 0 },
    cachedImages: [pick(images), pick(images), pick(images)],
    dataVolumes: [pick(volumes), pick(volumes)],
  };
  if (i % 5 === 0) {
    // Half full: 8 running jobs of 4 cores, ending over the next two hours.
    for (let k = 0; k < 8; k++) {
      running.push({ id: `${name}-run${k}`, node: name, cores: 4, memoryBytes: 8 * GiB, gpus: 0, expectedEnd: now + 600 + Math.floor(r() * 7200) });
    }
    node.allocated = { cores: 32, memoryBytes: 64 * GiB, gpus: 0 };
  }
  nodes.push(node);
}
const users = Array.from({ length: 20 }, (_, k) => `user${k}`);
const usage = Object.fromEntries(users.map((u, k) => [u, k * 1e6]));
const jobs: PendingJob[] = [];
for (let j = 0; j < nJobs; j++) {
  const x = r();
  const cores = pick([1, 1, 1, 2, 2, 4]);
  const job: PendingJob = {
    id: `j${j}`,
    user: pick(users),
    cores,
    memoryBytes: cores * 2 * GiB,
    gpus: 0,
    submitOrder: j,
    timeLimit: 600 + Math.floor(r() * 7200),
    image: { platform: 'linux/amd64', digest: pick(images) },
    dataVolumes: r() < 0.3 ? [pick(volumes)] : [],
  };
  if (x < 0.05) job.gpus = pick([1, 1, 2]);
  else if (x < 0.08) job.constraints = ['zone=z1'];
  else if (x < 0.1) job.constraints = ['ib', 'rack in (r1, r2, r3, r4, r5, r6, r7, r8, r9, r11)'];
  else if (x < 0.13) job.image = { platform: 'linux/arm64', digest: pick(images) };
  else if (x < 0.131) job.exclusive = true;
  if (r() < 0.05) job.priority = 10;
  jobs.push(job);
}

const times: number[] = [];
const cpus: number[] = [];
let result!: ScheduleResult;
for (let k = 0; k < runs; k++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  result = scheduleCluster({ now, nodes, jobs, running, usage, options: { strategy } });
  times.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpus.push((c.user + c.system) / 1000);
}
times.sort((a, b) => a - b);
cpus.sort((a, b) => a - b);
const ms = times[Math.floor(times.length / 2)]!;
const cpuMs = cpus[Math.floor(cpus.length / 2)]!;
const placed = result.placements.length;
const rate = placed / (ms / 1000);
const n0 = (x: number): string => Math.round(x).toLocaleString('en-US');
console.log(`cluster: ${n0(nodes.length)} nodes (${result.metrics.nodeClasses} node classes), ${n0(running.length)} running jobs; queue: ${n0(jobs.length)} pending jobs (${result.metrics.jobClasses} job classes), strategy ${strategy}`);
console.log(`placed ${n0(placed)}, left pending ${n0(result.pending.length)} (reservations: ${result.reservations.length}), node checks ${n0(result.metrics.nodesEvaluated)} (${(result.metrics.nodesEvaluated / Math.max(1, jobs.length)).toFixed(1)} per job)`);
console.log(`time: median of ${runs} passes ${ms.toFixed(0)} ms wall (min ${times[0]!.toFixed(0)}, max ${times[times.length - 1]!.toFixed(0)}), ${cpuMs.toFixed(0)} ms CPU (process, all threads)\n`);
console.log(`${'measure'.padEnd(30)} ${'placements/s'.padStart(14)} ${'ratio'.padStart(8)}`);
console.log(`${'warren scheduleCluster'.padEnd(30)} ${n0(rate).padStart(14)} ${'1.00'.padStart(8)}`);
console.log(`${'  same, per CPU second'.padEnd(30)} ${n0(placed / (cpuMs / 1000)).padStart(14)} ${(ms / cpuMs).toFixed(2).padStart(8)}`);
console.log(`${'target'.padEnd(30)} ${n0(TARGET).padStart(14)} ${(rate / TARGET).toFixed(2).padStart(7)}x`);
console.log(`${'Nomad C1M (containers/s)'.padEnd(30)} ${n0(C1M).padStart(14)} ${(rate / C1M).toFixed(2).padStart(7)}x`);
const met = rate >= TARGET;
console.log(`\ntarget ${met ? 'met' : 'MISSED'}: ${n0(rate)} >= ${n0(TARGET)} placements/s`);
process.exitCode = met ? 0 : 1;
