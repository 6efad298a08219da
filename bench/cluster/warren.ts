// The Warren side of the cluster benchmarks: a real `warren server` (SQLite, or PostgreSQL
// with --store) and 4 `warren agent`s, each in its own network namespace when the machine
// allows it (else on loopback), driven through the HTTPS client API as a user would.
//
//   throughput: a 10,000-task array of /bin/true, submit to the last task's end
//   latency:    1,000 tasks one at a time (task-array concurrency 1): from the moment the
//               server makes a task's attempt durable and hands it to a node (the task is
//               ready and has its slot) to its process starting on the agent (the task's
//               own first `date +%s%N`), per task; median and p99

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpClient } from '../../src/api/index.js';
import { TestCluster } from '../../test/cluster/harness.js';
import { createNetwork, netnsAvailable, type Network } from '../../test/helpers/netns.js';

export interface WarrenCluster {
  c: TestCluster;
  client: HttpClient;
  net: Network | null;
  close(): Promise<void>;
}

export async function startWarrenCluster(o: { agents: number; cores: number; store?: string; serverNodeArgs?: string[]; agentNodeArgs?: string[] }): Promise<WarrenCluster> {
  const net = netnsAvailable() === true ? await createNetwork({ hosts: o.agents, prefix: 'wb' }) : null;
  const c = await TestCluster.start({ agents: o.agents, ...(net ? { net } : {}), ...(o.store ? { store: o.store } : {}), cores: o.cores, ...(o.serverNodeArgs ? { serverNodeArgs: o.serverNodeArgs } : {}), ...(o.agentNodeArgs ? { agentNodeArgs: o.agentNodeArgs } : {}), serverArgs: ['--lost-after', '5m', '--grace', '15s', '--heartbeat', '5s', '--lease-ttl', '15s'] });
  const client = new HttpClient({ url: c.url, token: c.adminToken, caPem: readFileSync(c.caFile, 'utf8') });
  return {
    c,
    client,
    net,
    close: async () => {
      await client.close();
      await c.close();
      await net?.destroy();
    },
  };
}

/** Peak RSS (VmHWM) of a process, MB. */
export function peakRssMb(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) used so far by a process. */
export function cpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

async function runToEnd(w: WarrenCluster, file: string, text: string): Promise<{ id: string; ms: number; status: string }> {
  const path = join(w.c.dir, file);
  writeFileSync(path, text);
  const t0 = performance.now();
  const sum = await w.client.submit({ source: text, filename: file });
  let status = 'running';
  for await (const it of w.client.stream(sum.id)) if (it.type === 'done') status = it.status;
  return { id: sum.id, ms: performance.now() - t0, status };
}

export async function warrenThroughput(w: WarrenCluster, tasks: number): Promise<{ tasks: number; seconds: number; perSecond: number; status: string; serverRssMb: number | null; serverCpuS: number | null }> {
  const cpu0 = cpuSeconds(w.c.server?.pid) ?? 0;
  const r = await runToEnd(w, `array${tasks}.yaml`, `version: v1\njobs:\n  noop:\n    command: [/bin/true]\n    task-array: {start: 1, end: ${tasks}}\n`);
  const cpu1 = cpuSeconds(w.c.server?.pid);
  return { tasks, seconds: r.ms / 1000, perSecond: tasks / (r.ms / 1000), status: r.status, serverRssMb: peakRssMb(w.c.server?.pid), serverCpuS: cpu1 === null ? null : cpu1 - cpu0 };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export async function warrenLatency(w: WarrenCluster, jobs: number): Promise<{ jobs: number; medianMs: number; p99Ms: number; meanMs: number; status: string }> {
  const stamp = join(w.c.dir, 'stamps');
  const r = await runToEnd(w, `latency${jobs}.yaml`, `version: v1\njobs:\n  one:\n    command: [/bin/sh, -c, 'echo "$WARREN_TASK_ID $(date +%s%N)" >> ${stamp}']\n    task-array: {start: 1, end: ${jobs}, concurrency: 1}\n`);
  const started = new Map<number, number>();
  for (const l of readFileSync(stamp, 'utf8').split('\n')) {
    const [t, ns] = l.split(' ');
    if (t && ns) started.set(Number(t), Number(ns) / 1e6);
  }
  const d = await w.client.get(r.id);
  const lat: number[] = [];
  for (const a of d.attempts) {
    const m = /\[(\d+)\]$/.exec(a.key);
    if (!m || a.startedAt === null) continue;
    const s = started.get(Number(m[1]));
    if (s !== undefined) lat.push(s - a.startedAt);
  }
  lat.sort((a, b) => a - b);
  return { jobs: lat.length, medianMs: pct(lat, 50), p99Ms: pct(lat, 99), meanMs: lat.reduce((x, y) => x + y, 0) / Math.max(1, lat.length), status: r.status };
}
