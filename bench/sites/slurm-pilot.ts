// Slurm pilot mode vs Slurm alone (issue 14, speed): N no-op jobs (default 1,000) through two
// Warren pilots (SlurmPilotDriver: each a Slurm job running `warren agent`, 8 cores, on one of
// the two Slurm nodes) against the same N as one `sbatch --array=1-N` of /bin/true, on the
// same Slurm (test/sites/slurm-cluster.ts: slurmctld + two slurmd in their own namespaces, 8
// CPUs each, tuned as bench/cluster/slurm.conf.in: sched/builtin, no scheduling delays,
// MinJobAge=2). Both are timed from the submission until all is done: for Warren, from the
// start of `warren run` of a task array (the pilots submitted right after it; their queue wait
// and join are in the time) until it returns; for Slurm, from sbatch until squeue is empty.
// Target: >= 20x faster end to end.
//   bash bench/run.sh sites [--tasks N]
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { SlurmPilotDriver, slurmSettings, pilotTokenTtlSec } from '../../src/sites/index.js';
import { TestCluster } from '../../test/cluster/harness.js';
import type { Network } from '../../test/helpers/netns.js';
import { warrenBin } from '../../test/helpers.js';
import { SlurmCluster } from '../../test/sites/slurm-cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Slurm alone: one job array of /bin/true, from sbatch until the queue is empty (s). */
export async function slurmArray(slurm: SlurmCluster, tasks: number): Promise<number> {
  const t0 = performance.now();
  const r = slurm.run('sbatch', ['--parsable', `--array=1-${tasks}`, '--output=/dev/null', '--cpus-per-task=1', '--wrap', '/bin/true']);
  if (r.code !== 0) throw new Error(`sbatch --array: ${r.stderr}`);
  while (slurm.queue().length) await sleep(100);
  return (performance.now() - t0) / 1000;
}

/** Through two pilots: from the start of `warren run` until it returned, the workflow done (s). */
export async function pilots(slurm: SlurmCluster, tasks: number, cores: number): Promise<{ seconds: number; joinedAfter: number }> {
  const c = await TestCluster.start({ agents: 0, net: { serverAddress: slurm.controllerAddress, hosts: [] } as unknown as Network });
  const settings = slurmSettings({ name: 'bench', partition: 'batch', env: { SLURM_CONF: slurm.conf }, maxPilots: 2, warren: `${process.execPath} ${warrenBin}`, pilot: { cores, walltimeSec: 1800, idleExitSec: 5 } });
  const driver = new SlurmPilotDriver(settings, { logDir: slurm.dir });
  try {
    const u = await c.cli(['user', 'add', 'bench', '--unix-user', 'root']);
    if (u.code !== 0) throw new Error(u.stderr);
    const ctx = await c.cli(['context', 'add', 'bench', '--server', c.url, '--token', u.stdout.trim(), '--ca', c.caFile]);
    if (ctx.code !== 0) throw new Error(ctx.stderr);
    await driver.check();
    const flow = join(c.dir, 'noop.yaml');
    writeFileSync(flow, `version: v1\njobs:\n  noop:\n    command: [/bin/true]\n    task-array: {start: 1, end: ${tasks}}\n`);
    const caPem = readFileSync(c.caFile, 'utf8');
    const tokens: string[] = [];
    for (let i = 0; i < 2; i++) {
      const t = await c.cli(['token', 'create', '--ttl', `${pilotTokenTtlSec(settings)}s`]);
      if (t.code !== 0) throw new Error(t.stderr);
      tokens.push(t.stdout.trim());
    }
    // `warren run` (attached: it ends when the workflow does) and the pilots at once; nothing
    // polls on the side (a CLI process per poll would take the cores the jobs need).
    const wall0 = Date.now();
    const t0 = performance.now();
    const running = c.cli(['run', flow], { context: 'bench', timeoutMs: 600_000 });
    for (let i = 0; i < 2; i++) await driver.start({ node: `pilot${i + 1}`, instanceType: `${cores}c`, joinToken: tokens[i]!, serverUrl: c.url, caPem, labels: {} });
    const run = await running;
    const seconds = (performance.now() - t0) / 1000;
    if (run.code !== 0) throw new Error(`warren run exited ${run.code}: ${run.stderr.slice(-2000)}`);
    // When the second pilot joined, from the server's log.
    const joins = [...c.serverLog.matchAll(/^(\S+Z) info node pilot\d joined/gm)].map((m) => Date.parse(m[1]!));
    const joinedAfter = joins.length >= 2 ? (Math.max(...joins) - wall0) / 1000 : NaN;
    return { seconds, joinedAfter };
  } finally {
    await driver.close().catch(() => {});
    await c.close();
  }
}

export async function main(args: string[]): Promise<void> {
  const i = args.indexOf('--tasks');
  const tasks = i >= 0 ? Number(args[i + 1]) : 1000;
  const cores = 8;
  process.stdout.write(`Slurm pilot mode vs a Slurm job array, ${new Date().toISOString().slice(0, 10)}, ${availableParallelism()} cores, ${tasks} no-op jobs, 2 Slurm nodes x ${cores} CPUs\n`);
  const slurm = await SlurmCluster.start({ id: 4, cpus: cores, htc: true });
  try {
    const p = await pilots(slurm, tasks, cores);
    await slurm.waitEmpty(60_000);
    const a = await slurmArray(slurm, tasks);
    const ratio = a / p.seconds;
    const w = (s: string) => s.padEnd(44);
    process.stdout.write(`${w('')}${w('Warren, 2 pilots')}${w('sbatch --array')}ratio\n`);
    process.stdout.write(`${w(`${tasks} no-op jobs, submit to all done`)}${w(`${p.seconds.toFixed(2)} s (pilots joined after ${p.joinedAfter.toFixed(2)} s)`)}${w(`${a.toFixed(2)} s`)}${ratio.toFixed(1)}x faster (target >= 20x: ${ratio >= 20 ? 'met' : 'NOT met'})\n`);
    process.stdout.write(`${w('jobs/s')}${w((tasks / p.seconds).toFixed(1))}${w((tasks / a).toFixed(1))}\n`);
  } finally {
    await slurm.stop();
  }
}
