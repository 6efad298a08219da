// The test Slurm itself (./slurm-cluster.ts): two nodes with their own names and addresses,
// a job on each, the account filter, and nothing left behind by stop().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SlurmCluster, slurmAvailable } from './slurm-cluster.js';

const skip = slurmAvailable() === true ? false : String(slurmAvailable());

test('the test Slurm: two nodes, jobs on both, the account filter, all gone after stop()', { skip, timeout: 90_000 }, async () => {
  const t0 = Date.now();
  const slurm = await SlurmCluster.start({ id: 1 });
  const ready = Date.now() - t0;
  let dir = slurm.dir;
  try {
    assert.ok(ready < 20_000, `ready in ${ready} ms`);
    const out = join(slurm.dir, 'out-%j.txt');
    const ids = ['sn1', 'sn2'].map((n) => {
      const r = slurm.run('sbatch', ['--parsable', '-w', n, '-o', out, '--wrap', 'echo $(hostname) $(ip -4 -o addr show eth0 | awk "{print \\$4}")']);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    });
    await slurm.waitEmpty(30_000);
    assert.equal(readFileSync(join(slurm.dir, `out-${ids[0]}.txt`), 'utf8').trim(), 'sn1 10.79.1.11/24');
    assert.equal(readFileSync(join(slurm.dir, `out-${ids[1]}.txt`), 'utf8').trim(), 'sn2 10.79.1.12/24');
    // Finished jobs stay known to the controller and are written to the job completion file.
    assert.match(slurm.run('scontrol', ['show', 'job', ids[0]!]).stdout, /JobState=COMPLETED/);
    assert.match(readFileSync(slurm.jobcomp, 'utf8'), new RegExp(`JobId=${ids[1]} .*JobState=COMPLETED`));
    // The account filter refuses at submission, also for --test-only.
    const bad = slurm.run('sbatch', ['--test-only', '--account=nosuch', '--wrap', 'true']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Invalid account nosuch/);
    const good = slurm.run('sbatch', ['--test-only', '--account=warren', '--wrap', 'true']);
    assert.equal(good.code, 0, good.stderr);
    // A controller restart keeps the jobs it knew.
    const held = slurm.run('sbatch', ['--parsable', '--hold', '--wrap', 'true']).stdout.trim();
    await slurm.stopController();
    assert.notEqual(slurm.run('squeue', ['-h'], 5_000).code, 0);
    await slurm.startController();
    assert.deepEqual(slurm.queue(), [held]);
  } finally {
    dir = slurm.dir;
    await slurm.stop();
  }
  assert.equal(existsSync(dir), false);
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(ns, /wsl-1-/);
  assert.doesNotMatch(spawnSync('ip', ['link'], { encoding: 'utf8' }).stdout, /wsl1br/);
  assert.equal(spawnSync('pgrep', ['-f', dir]).status, 1, 'no process of the test Slurm is left');
});
