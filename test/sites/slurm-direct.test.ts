// Direct mode against the real test Slurm (issue 14): SlurmDirectAgent passes the agent contract
// suite (each task a Slurm job: exit codes, variables, working directory, logs, kill, the core
// budget), the tasks of a task array submitted together go as one Slurm job array, and MPI
// jobs run on both Slurm nodes through srun.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SlurmDirectAgent, slurmSettings } from '../../src/sites/index.js';
import { agentContract, Recorder, taskOf } from '../agent/contract.js';
import { job } from '../engine/builders.js';
import { repoRoot, tempDir } from '../helpers.js';
import { SlurmCluster, slurmAvailable } from './slurm-cluster.js';

const skip = slurmAvailable() === true ? false : String(slurmAvailable());
const has = (c: string): boolean => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
const mpiSkip = !has('mpicc.openmpi') || !has('mpicc.mpich') ? 'OpenMPI and MPICH are not installed (scripts/apt/mpi.txt)' : false;

describe('Slurm direct mode', { skip }, () => {
  let slurm: SlurmCluster;
  before(async () => {
    slurm = await SlurmCluster.start({ id: 6 });
  });
  after(async () => {
    await slurm?.stop();
  });
  const make = async (cores = 4) => {
    const d = tempDir('warren-slurm-direct-');
    const agent = new SlurmDirectAgent(slurmSettings({ name: 'hpc', partition: 'batch', account: 'warren', mode: 'direct', env: { SLURM_CONF: slurm.conf } }), { home: d.dir, cores, memoryBytes: 4 * 2 ** 30, pollMs: 200 });
    return {
      agent,
      cleanup: async () => {
        await agent.close();
        await slurm.waitEmpty(20_000);
        d.cleanup();
      },
    };
  };

  agentContract('SlurmDirectAgent', () => make());

  test('a task array: its tasks go as one Slurm job array, each on a Slurm node with its index and attempt id; a failing task\'s exit code comes back', { timeout: 60_000 }, async () => {
    const u = await make(8);
    try {
      const rec = new Recorder(u.agent);
      const spec = job('arr', { command: ['/bin/sh', '-c', 'echo "$WARREN_TASK_ID $SLURM_ARRAY_JOB_ID $(hostname) $WARREN_ATTEMPT_ID"; [ "$WARREN_TASK_ID" != 5 ] || exit 7'], taskArray: { start: 1, end: 6, concurrency: 0 } as never });
      const wf = `wfarr${Date.now().toString(36)}`;
      const tasks = [1, 2, 3, 4, 5, 6].map((i) => taskOf(spec, { workflowId: wf, task: i }));
      for (const t of tasks) u.agent.submit(t);
      await rec.ended(6);
      const ids = new Set<string>();
      for (const t of tasks) {
        const ex = rec.exited.get(t.attemptId)!;
        assert.equal(ex.reason, 'exit');
        assert.equal(ex.exitCode, t.task === 5 ? 7 : 0);
        const chunks: Buffer[] = [];
        for await (const c of u.agent.logs({ workflowId: wf, job: 'arr', task: t.task, stream: 'stdout' })) chunks.push(Buffer.from(c));
        const [idx, slurmId, host, attemptId] = Buffer.concat(chunks).toString().trim().split(' ');
        assert.equal(idx, String(t.task));
        assert.match(host!, /^sn[12]$/);
        assert.equal(attemptId, t.attemptId, 'each task has its own attempt id');
        ids.add(`${slurmId}_${t.task}`);
      }
      // Submitted together: one Slurm job array, its tasks the Warren tasks (SLURM_ARRAY_TASK_ID = the index).
      assert.equal(new Set([...ids].map((i) => i.split('_')[0])).size, 1, `one Slurm job array: ${[...ids].join(' ')}`);
      const show = slurm.run('scontrol', ['show', 'job', [...ids][0]!]).stdout;
      assert.match(show, /Account=warren/);
      assert.match(show, /ArrayTaskId=/);
    } finally {
      await u.cleanup();
    }
  });

  for (const [impl, prog, env, plugin] of [
    ['openmpi', 'ompi', { OMPI_MCA_btl: 'tcp,self', OMPI_MCA_btl_tcp_if_include: 'eth0', OMPI_MCA_oob_tcp_if_include: 'eth0' }, 'pmix'],
    ['mpich', 'mpich', { UCX_TLS: 'tcp,self', UCX_NET_DEVICES: 'eth0' }, 'pmi2'],
  ] as const) {
    test(`an MPI job (${impl}) on both Slurm nodes through srun --mpi=${plugin}: every rank sums right`, { skip: mpiSkip, timeout: 90_000 }, async () => {
      const u = await make();
      try {
        const bin = join(u.agent.runDir('mpi'), `ar-${prog}`);
        execFileSync('mkdir', ['-p', u.agent.runDir('mpi')]);
        execFileSync(`mpicc.${impl}`, ['-O2', '-o', bin, join(repoRoot, 'test', 'cluster', 'fixtures', 'allreduce.c')]);
        const rec = new Recorder(u.agent);
        const spec = job('ar', { command: [bin, '1000', '2'], env: { ...env }, multinode: { nodes: 2, implementation: impl } });
        const t = taskOf(spec, { workflowId: `wfmpi${impl}${Date.now().toString(36)}` });
        assert.match(u.agent.script(t), new RegExp(`exec srun --mpi=${plugin} `));
        u.agent.submit(t);
        await rec.ended(1);
        const chunks: Buffer[] = [];
        for await (const c of u.agent.logs({ workflowId: t.workflowId, job: 'ar', task: null, stream: 'stdout' })) chunks.push(Buffer.from(c));
        const err: Buffer[] = [];
        for await (const c of u.agent.logs({ workflowId: t.workflowId, job: 'ar', task: null, stream: 'stderr' })) err.push(Buffer.from(c));
        const out = Buffer.concat(chunks).toString();
        assert.equal(rec.exited.get(t.attemptId)!.exitCode, 0, `${JSON.stringify(rec.exited.get(t.attemptId))}\n${out}\n${Buffer.concat(err).toString()}`);
        const ranks = out.split('\n').filter((l) => /^rank \d of 2 on sn[12] sum 3$/.test(l));
        assert.equal(ranks.length, 2, out);
        assert.deepEqual(ranks.map((l) => l.split(' ')[5]).sort(), ['sn1', 'sn2'], 'one rank on each Slurm node');
      } finally {
        await u.cleanup();
      }
    });
  }
});
