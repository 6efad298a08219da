// A Slurm site's checks before anything is submitted (issue 14, bad input), against the real
// test Slurm: a missing sbatch, a partition that does not exist, a refused account, a pilot too
// big for the nodes, a controller that does not answer; each a SITE_SLURM_* error naming the
// site, exit 2 (1 for the controller), and nothing in Slurm's queue afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, WarrenError } from '../../src/common/index.js';
import { checkSlurmSite, slurmSettings, slurmTime, type SlurmSiteSettings } from '../../src/sites/index.js';
import { SlurmCluster, slurmAvailable } from './slurm-cluster.js';

const skip = slurmAvailable() === true ? false : String(slurmAvailable());

async function refused(s: SlurmSiteSettings, code: string, message: RegExp): Promise<WarrenError> {
  let err: unknown;
  try {
    await checkSlurmSite(s);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof WarrenError, `expected ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, new RegExp(`Slurm site "${s.name}"`));
  assert.match(err.message, message);
  assert.ok(err.hint && err.hint.length > 10, 'a hint says what to do');
  return err;
}

describe('Slurm site settings (pure)', () => {
  test('defaults, Slurm time, and each bad setting named', () => {
    const s = slurmSettings({ name: 'hpc', partition: 'batch' });
    assert.equal(s.mode, 'pilot');
    assert.equal(s.pilot.walltimeSec, 3600);
    assert.equal(slurmTime(59), '00:01:00');
    assert.equal(slurmTime(3600), '01:00:00');
    assert.equal(slurmTime(90_061), '1-01:02:00');
    const bad: [Parameters<typeof slurmSettings>[0], RegExp][] = [
      [{ name: 'bad name', partition: 'batch' }, /the name must be/],
      [{ name: 'hpc', partition: 'batch', sbatch: 'bin/sbatch' }, /sbatch must be an absolute path/],
      [{ name: 'hpc', partition: 'b;rm' }, /partition "b;rm" is not a Slurm name/],
      [{ name: 'hpc', partition: 'batch', mode: 'both' as never }, /mode must be pilot or direct/],
      [{ name: 'hpc', partition: 'batch', pilot: { walltimeSec: 30 } }, /at least 1m/],
      [{ name: 'hpc', partition: 'batch', pilot: { walltimeSec: 600, marginSec: 600 } }, /margin \(600s\) must be below the walltime/],
      [{ name: 'hpc', partition: 'batch', pilot: { cores: 0 } }, /pilot cores must be/],
      [{ name: 'hpc', partition: 'batch', maxPilots: 0 }, /max pilots/],
      [{ name: 'hpc', partition: 'batch', env: { 'A-B': 'x' } }, /env "A-B" is not a variable name/],
    ];
    for (const [o, re] of bad) {
      assert.throws(() => slurmSettings(o), (e: unknown) => e instanceof WarrenError && e.code === 'SITE_SLURM_SETTINGS_INVALID' && re.test(e.message) && /Slurm site/.test(e.message), String(re));
    }
    assert.equal(ERROR_CODES.SITE_SLURM_SETTINGS_INVALID.exit, 2);
  });
});

describe('Slurm site checks against a real Slurm', { skip }, () => {
  let slurm: SlurmCluster;
  let env: Record<string, string>;
  before(async () => {
    slurm = await SlurmCluster.start({ id: 2 });
    env = { SLURM_CONF: slurm.conf };
  });
  after(async () => {
    await slurm?.stop();
  });

  test('good settings pass (sbatch on PATH, or at its path) and submit nothing', { timeout: 30_000 }, async () => {
    await checkSlurmSite(slurmSettings({ name: 'hpc', partition: 'batch', account: 'warren', env, pilot: { cores: 4, memoryBytes: 512 << 20, walltimeSec: 600 } }));
    await checkSlurmSite(slurmSettings({ name: 'hpc', partition: 'batch', sbatch: '/usr/bin/sbatch', env }));
    assert.deepEqual(slurm.queue(), []);
    assert.equal(slurm.run('squeue', ['-h', '-t', 'all']).stdout.trim(), '', 'no job was ever submitted');
  });

  test('a missing sbatch: at its path, and not on PATH (exit 2)', { timeout: 30_000 }, async () => {
    const e = await refused(slurmSettings({ name: 'hpc', partition: 'batch', sbatch: '/opt/slurm/bin/sbatch', env }), 'SITE_SLURM_SBATCH_MISSING', /sbatch \/opt\/slurm\/bin\/sbatch does not exist/);
    assert.equal(ERROR_CODES[e.code].exit, 2);
    await refused(slurmSettings({ name: 'hpc2', partition: 'batch', env: { ...env, PATH: '/nonexistent' } }), 'SITE_SLURM_SBATCH_MISSING', /sbatch is not on PATH/);
  });

  test('a partition that does not exist: the partitions are listed (exit 2)', { timeout: 30_000 }, async () => {
    const e = await refused(slurmSettings({ name: 'hpc', partition: 'gpu', env }), 'SITE_SLURM_PARTITION_UNKNOWN', /partition "gpu" does not exist \(the partitions are batch\)/);
    assert.equal(ERROR_CODES[e.code].exit, 2);
    assert.match(e.hint!, /batch/);
  });

  test('an account Slurm refuses (exit 2), with Slurm\'s reason', { timeout: 30_000 }, async () => {
    const e = await refused(slurmSettings({ name: 'hpc', partition: 'batch', account: 'physics', env }), 'SITE_SLURM_ACCOUNT_REFUSED', /refuses account "physics" in partition batch: .*Invalid account physics/);
    assert.equal(ERROR_CODES[e.code].exit, 2);
  });

  test('a pilot bigger than any node (exit 2)', { timeout: 30_000 }, async () => {
    const e = await refused(slurmSettings({ name: 'hpc', partition: 'batch', env, pilot: { cores: 64 } }), 'SITE_SLURM_REFUSED', /refuses a pilot of 64 cores .* in partition batch: /);
    assert.equal(ERROR_CODES[e.code].exit, 2);
  });

  test('a controller that does not answer (exit 1)', { timeout: 60_000 }, async () => {
    const conf = join(slurm.dir, 'elsewhere.conf');
    writeFileSync(conf, readFileSync(slurm.conf, 'utf8').replace(/^SlurmctldPort=\d+$/m, 'SlurmctldPort=19679'));
    const e = await refused(slurmSettings({ name: 'hpc', partition: 'batch', env: { SLURM_CONF: conf } }), 'SITE_SLURM_UNREACHABLE', /sinfo failed here/);
    assert.equal(ERROR_CODES[e.code].exit, 1);
    assert.deepEqual(slurm.queue(), []);
  });
});
