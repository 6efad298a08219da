// Multinode jobs on one machine (`warren run`, no server): every node's ranks run here, their
// daemons started through the same launch hook as on a cluster, and the log says so; a failing
// rank names itself; a gang larger than the machine is refused; the CIQ examples validate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, sharedDir, tempDir, warrenBin } from '../helpers.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = !has('mpicc.openmpi') || !has('mpicc.mpich') ? 'OpenMPI and MPICH are not installed (scripts/apt/mpi.txt)' : false;

let t: { dir: string; cleanup: () => void };
before(() => {
  t = tempDir('warren-mpi-local-');
  if (skip) return;
  const src = join(repoRoot, 'test', 'cluster', 'fixtures', 'allreduce.c');
  execFileSync('mpicc.openmpi', ['-O2', '-o', join(t.dir, 'ar-ompi'), src]);
  execFileSync('mpicc.mpich', ['-O2', '-o', join(t.dir, 'ar-mpich'), src]);
});
after(() => t?.cleanup());

function run(name: string, text: string, args: string[] = []): { code: number | null; stdout: string; stderr: string; logs: string } {
  const flow = join(t.dir, `${name}.yaml`);
  writeFileSync(flow, text);
  const home = join(t.dir, `home-${name}`);
  const r = spawnSync(process.execPath, [warrenBin, 'run', flow, ...args], { encoding: 'utf8', env: { ...process.env, WARREN_HOME: home }, timeout: 60_000 });
  let logs = '';
  const runs = join(home, 'runs');
  if (existsSync(runs)) {
    for (const id of execFileSync('ls', [runs], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      for (const f of execFileSync('ls', [join(runs, id, 'logs')], { encoding: 'utf8' }).split('\n').filter(Boolean)) logs += readFileSync(join(runs, id, 'logs', f), 'utf8');
    }
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, logs };
}

for (const [impl, prog, env] of [
  ['openmpi', 'ar-ompi', '{OMPI_MCA_btl: "tcp,self"}'],
  // Shared memory: MPICH 4.0's MPI_Finalize can deadlock over UCX tcp (pmodels/mpich#6596,
  // docs/mpi.md); all ranks of this case are on one machine, so sm is also what a user would use.
  ['mpich', 'ar-mpich', '{UCX_TLS: "sm,self"}'],
] as const) {
  test(`${impl} on one machine: 2 nodes' ranks run here through the hook, and the log says so`, { skip, timeout: 90_000 }, () => {
    const r = run(impl, `version: v1\njobs:\n  ar:\n    env: ${env}\n    command: [${join(t.dir, prog)}, "1000", "2"]\n    resource: {cpu: {cores: 1}}\n    multinode: {nodes: 2, implementation: ${impl}}\n`, ['--cores', '2']);
    assert.equal(r.code, 0, `${r.stderr}\n${r.logs}`);
    assert.match(r.logs, /no cluster here: the 2 nodes of multinode job ar run their ranks on this machine/);
    assert.equal(r.logs.split('\n').filter((l) => /^rank \d of 2 on .* sum 3$/.test(l)).length, 2, r.logs);
  });
}

test('one machine: a failing rank fails the job with its exit code; a gang larger than the machine is refused', { skip, timeout: 90_000 }, () => {
  const f = run('fail', `version: v1\njobs:\n  ar:\n    env: {OMPI_MCA_btl: "tcp,self"}\n    command: [${join(t.dir, 'ar-ompi')}, "1", "2", "0", "1", "9"]\n    multinode: {nodes: 2, implementation: openmpi}\n`, ['--cores', '2']);
  assert.equal(f.code, 1, f.stderr);
  assert.match(f.stderr, /exit code 9/);
  assert.match(f.stderr, /rank 1 on node .* exited with code 9/);
  const big = run('big', `version: v1\njobs:\n  ar:\n    command: [${join(t.dir, 'ar-ompi')}]\n    resource: {cpu: {cores: 2}}\n    multinode: {nodes: 3, implementation: openmpi}\n`, ['--cores', '2']);
  assert.equal(big.code, 2, big.stderr);
  assert.match(big.stderr, /AGENT_NOT_ENOUGH_CORES/);
  assert.match(big.stderr, /needs 3 nodes × 2 cores: without a cluster all 6 ranks run on this machine, which has 2 cores/);
});

test("CIQ's public MPI examples validate (openmpi and mpich)", { skip: existsSync(join(sharedDir, 'fuzzball-examples')) ? false : '../shared is missing' }, () => {
  for (const f of ['openmpi-hello-world.fz', 'mpich-hello-world.fz']) {
    const r = spawnSync(process.execPath, [warrenBin, 'validate', join(sharedDir, 'fuzzball-examples', 'mpi-hello-world', f)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr + r.stdout);
  }
});
