// Slurm sites in platform files (`kind: slurm`) and `warren site add --kind slurm` (issue 14):
// parsed with positions, planned (pilot mode: pilots after their queue wait; direct mode: the
// site's cores), and checked against the real Slurm before they are added (exit 2, nothing
// written, for an unknown partition or a refused account).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import { parsePlatform, planWorkflow, platformToObject } from '../../src/scheduler/index.js';
import { slurmSettingsOfSite } from '../../src/sites/index.js';
import { parseWorkflowText } from '../../src/workflow/index.js';
import { tempDir, warrenBin } from '../helpers.js';
import { SlurmCluster, slurmAvailable } from './slurm-cluster.js';

const skip = slurmAvailable() === true ? false : String(slurmAvailable());

const PLATFORM = `sites:
  hpc:
    kind: slurm
    partition: batch
    account: warren
    max-pilots: 4
    pilot: {cores: 8, memory: 16GiB, walltime: 2h, margin: 5m, idle-exit: 30s, queue-wait: 30m}
    env: {SLURM_CONF: /etc/slurm/test.conf}
    queue-estimate: 2m
  lab:
    nodes: 1
    cores: 2
data:
  default: lab
`;

describe('kind: slurm in platform files (pure)', () => {
  test('parsed, written back the same, turned into driver settings, and planned', () => {
    const p = parsePlatform(PLATFORM, 'p.yaml');
    const s = p.sites.hpc!;
    assert.equal(s.kind, 'slurm');
    if (s.kind !== 'slurm') return;
    assert.equal(s.mode, 'pilot');
    assert.deepEqual(s.pilot, { cores: 8, memoryBytes: 16 * 2 ** 30, walltimeSec: 7200, marginSec: 300, idleExitSec: 30, queueWaitSec: 1800 });
    assert.equal(s.queueEstimateSec, 120);
    const again = parsePlatform(JSON.stringify(platformToObject(p)), 'again.yaml');
    assert.deepEqual(again.sites.hpc, s);
    const settings = slurmSettingsOfSite(s);
    assert.equal(settings.account, 'warren');
    assert.equal(settings.env.SLURM_CONF, '/etc/slurm/test.conf');
    assert.equal(settings.maxPilots, 4);
    // 16 one-hour jobs of 4 cores: the lab's 2 cores cannot hold one; the pilots take them all.
    const wf = parseWorkflowText('version: v1\njobs:\n  sim:\n    command: [sim]\n    estimate: 1h\n    resource: {cpu: {cores: 4}}\n    task-array: {start: 1, end: 16}\n', 'w.yaml').workflow!;
    const plan = planWorkflow(wf, p);
    assert.ok(plan.jobs.every((j) => j.site === 'hpc'), JSON.stringify(plan.jobs.slice(0, 2)));
    assert.ok(Math.min(...plan.jobs.map((j) => j.start)) >= 120, 'no job starts before a pilot is out of the queue');
    assert.ok(plan.jobs.every((j) => j.instanceType === 'pilot'));
    // Direct mode: the site's cores, no queue wait in the plan.
    const direct = parsePlatform(PLATFORM.replace('kind: slurm', 'kind: slurm\n    mode: direct'), 'd.yaml');
    const dplan = planWorkflow(wf, direct);
    assert.equal(Math.min(...dplan.jobs.map((j) => j.start)), 0);
  });

  test('bad Slurm settings are named with their line:col', () => {
    const cases: [string, RegExp][] = [
      [PLATFORM.replace('    partition: batch\n', ''), /p\.yaml:3:5: sites\.hpc needs "partition"/],
      [PLATFORM.replace('kind: slurm', 'kind: slurm\n    mode: both'), /sites\.hpc\.mode must be "pilot" or "direct", got "both"/],
      [PLATFORM.replace('walltime: 2h', 'walltime: 30s'), /sites\.hpc\.pilot\.walltime must be at least 1m/],
      [PLATFORM.replace('margin: 5m', 'margin: 3h'), /sites\.hpc\.pilot\.margin \(10800s\) must be below the walltime/],
      [PLATFORM.replace('account: warren', 'account: "a b"'), /sites\.hpc\.account: "a b" is not a Slurm name/],
      [PLATFORM.replace('account: warren', 'sbatch: bin/sbatch'), /sites\.hpc\.sbatch must be an absolute path/],
      [PLATFORM.replace('queue-estimate: 2m', 'queue-estimate: 2m\n    nodes: 3'), /unknown key "nodes" in sites\.hpc/],
      [PLATFORM.replace('kind: slurm', 'kind: pbs'), /must be "cluster", "cloud" or "slurm", got "pbs"/],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parsePlatform(text, 'p.yaml'), (e: unknown) => e instanceof WarrenError && /^PLAN_/.test(e.code) && re.test(e.message), String(re));
    }
  });
});

describe('warren site add --kind slurm against a real Slurm', { skip }, () => {
  let slurm: SlurmCluster;
  let d: { dir: string; cleanup: () => void };
  before(async () => {
    slurm = await SlurmCluster.start({ id: 8 });
    d = tempDir('warren-slurm-site-');
  });
  after(async () => {
    await slurm?.stop();
    d?.cleanup();
  });
  const warren = (args: string[]) => spawnSync(process.execPath, [warrenBin, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, WARREN_HOME: join(d.dir, 'home'), WARREN_CONTEXT: '', XDG_CONFIG_HOME: join(d.dir, 'cfg') } });
  const platformFile = () => join(d.dir, 'home', 'platform.yaml');

  test('an unknown partition or a refused account: exit 2 naming the site, nothing written; a good site is added and listed', { timeout: 60_000 }, () => {
    const base = ['site', 'add', '--kind', 'slurm', '--name', 'hpc', '--slurm-conf', slurm.conf, '--pilot-cores', '4', '--pilot-walltime', '2h'];
    const part = warren([...base, '--partition', 'gpu']);
    assert.equal(part.status, 2, part.stderr);
    assert.match(part.stderr, /error\[SITE_SLURM_PARTITION_UNKNOWN\]: Slurm site "hpc": partition "gpu" does not exist \(the partitions are batch\)/);
    assert.match(part.stderr, /hint: /);
    const acct = warren([...base, '--partition', 'batch', '--account', 'physics']);
    assert.equal(acct.status, 2, acct.stderr);
    assert.match(acct.stderr, /error\[SITE_SLURM_ACCOUNT_REFUSED\]: Slurm site "hpc": Slurm refuses account "physics"/);
    const missing = warren([...base, '--partition', 'batch', '--sbatch', '/opt/none/sbatch']);
    assert.equal(missing.status, 2, missing.stderr);
    assert.match(missing.stderr, /error\[SITE_SLURM_SBATCH_MISSING\]/);
    assert.equal(existsSync(platformFile()), false, 'nothing was written');
    assert.deepEqual(slurm.queue(), [], 'nothing was submitted');
    const ok = warren([...base, '--partition', 'batch', '--account', 'warren']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /added hpc to /);
    assert.match(readFileSync(platformFile(), 'utf8'), /kind: slurm/);
    const list = warren(['site', 'list']);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^hpc\s+slurm\s+batch, pilot: <=10 x 4 cores, 2h/m);
    // From a platform file as well.
    const f = join(d.dir, 'more.yaml');
    writeFileSync(f, `sites:\n  hpc2:\n    kind: slurm\n    partition: nope\n    env: {SLURM_CONF: ${slurm.conf}}\n`);
    const bad = warren(['site', 'add', f]);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /Slurm site "hpc2": partition "nope" does not exist/);
  });
});
