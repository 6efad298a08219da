// A quick look at the server's cost of N agents: starts bench/cluster/server.js in its own
// process, N simulated agents here (bench/cluster/simagents.ts), waits for them to join and
// settle, then prints what the server reported (CPU in cores, RSS) over a window.
//   node dist/bench/cluster/smoke.js [--agents 200] [--heartbeat-ms 5000] [--window-s 30] [--tasks-per-sec 0]
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { startSimulatedAgents } from './simagents.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const agents = arg('agents', 200);
const heartbeatMs = arg('heartbeat-ms', 5_000);
const windowS = arg('window-s', 30);
const tasksPerSec = arg('tasks-per-sec', 0);

const here = dirname(fileURLToPath(import.meta.url));
const server = spawn(process.execPath, [join(here, 'server.js'), '--agents', String(agents), '--heartbeat-ms', String(heartbeatMs), '--report-ms', '5000', '--tasks-per-sec', String(tasksPerSec)], { stdio: ['ignore', 'pipe', 'inherit'] });
const lines = createInterface({ input: server.stdout! });
const samples: Array<Record<string, number>> = [];
let hello: { url: string; caPem: string; token: string } | undefined;
const ready = new Promise<void>((resolve) => {
  lines.on('line', (l) => {
    const o = JSON.parse(l) as Record<string, unknown>;
    if ('url' in o) {
      hello = o as never;
      resolve();
    } else samples.push(o as Record<string, number>);
  });
});
await ready;
const t0 = performance.now();
const sim = await startSimulatedAgents({ serverUrl: hello!.url, caPem: hello!.caPem, token: hello!.token, count: agents, heartbeatMs });
console.log(`${agents} agents joined in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const settle = samples.length;
await new Promise((r) => setTimeout(r, 10_000 + windowS * 1000));
const window = samples.slice(settle + 2); // skip the joins
const avg = (k: string): number => window.reduce((s, x) => s + (x[k] ?? 0), 0) / Math.max(1, window.length);
const max = (k: string): number => Math.max(...window.map((x) => x[k] ?? 0));
console.log(JSON.stringify({ agents, heartbeatMs, tasksPerSec, windowSamples: window.length, serverCpuCoresAvg: +avg('cpuCores').toFixed(3), serverCpuCoresMax: max('cpuCores'), serverRssMBMax: max('rssMB'), serverHeapMBMax: max('heapMB'), ready: window.at(-1)?.ready, sockets: window.at(-1)?.sockets, reports: window.at(-1)?.reports, agentSide: sim.counts() }));
await sim.stop();
server.kill('SIGTERM');
await new Promise((r) => server.once('exit', r));
