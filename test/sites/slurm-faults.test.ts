// Slurm pilot mode's faults (issue 14), against the real test Slurm: a pilot canceled by Slurm
// (`scancel`) in the middle of a job (the job is retried on the other pilot, as its retry
// policy says, and nothing is recorded twice), and slurmctld restarted during a workflow (the
// pilots keep running, the workflow completes, no job runs twice). What ran is read off a
// ledger the jobs append to, not off Warren's own records.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SlurmPilotDriver, slurmSettings, pilotTokenTtlSec, type InstanceView } from '../../src/sites/index.js';
import { TestCluster } from '../cluster/harness.js';
import { count, ledgerJob, submitSixJobs, type ClusterStatus } from '../cluster/ledger.js';
import type { Network } from '../helpers/netns.js';
import { warrenBin } from '../helpers.js';
import { SlurmCluster, slurmAvailable } from './slurm-cluster.js';

const skip = slurmAvailable() === true ? false : String(slurmAvailable());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Slurm pilot faults', { skip }, () => {
  let slurm: SlurmCluster;
  before(async () => {
    slurm = await SlurmCluster.start({ id: 5 });
  });
  after(async () => {
    await slurm?.stop();
  });

  async function withPilots(fn: (c: TestCluster, driver: SlurmPilotDriver, pilots: InstanceView[]) => Promise<void>): Promise<void> {
    const c = await TestCluster.start({ agents: 0, net: { serverAddress: slurm.controllerAddress, hosts: [] } as unknown as Network });
    const settings = slurmSettings({ name: 'hpc', partition: 'batch', env: { SLURM_CONF: slurm.conf }, maxPilots: 2, warren: `${process.execPath} ${warrenBin}`, pilot: { cores: 2, walltimeSec: 900, idleExitSec: 120 } });
    const driver = new SlurmPilotDriver(settings, { logDir: slurm.dir });
    try {
      const pilots: InstanceView[] = [];
      for (const node of ['p1', 'p2']) {
        const tok = await c.cli(['token', 'create', '--ttl', `${pilotTokenTtlSec(settings)}s`]);
        assert.equal(tok.code, 0, tok.stderr);
        pilots.push(await driver.start({ node, instanceType: '2c', joinToken: tok.stdout.trim(), serverUrl: c.url, caPem: readFileSync(c.caFile, 'utf8'), labels: {} }));
      }
      await c.waitReady(2, 60_000);
      await fn(c, driver, pilots);
    } finally {
      await driver.close().catch(() => {});
      await slurm.waitEmpty(30_000).catch(() => {});
      await c.close();
    }
  }

  test('scancel of a pilot mid-job: the job is retried on the other pilot as its policy says; nothing is recorded twice', { timeout: 180_000 }, async () => {
    await withPilots(async (c, driver, pilots) => {
      const flow = join(c.dir, 'flow.yaml');
      writeFileSync(flow, `version: v1\njobs:\n${ledgerJob(c, 'long', 'if [ "$WARREN_ATTEMPT" = 1 ]; then sleep 60 || exit 1; fi', '    policy:\n      retry: {attempts: 2, backoff: 1s}\n')}`);
      const sub = await c.cli(['run', '--detach', flow]);
      assert.equal(sub.code, 0, sub.stderr);
      const id = sub.stdout.trim();
      const lines0 = await c.until('the job to start', async () => c.ledgerLines(), (l) => count(l, 'start long 1 ') === 1, 60_000);
      const node = lines0.find((l) => l.startsWith('start long 1 '))!.split(' ')[3]!;
      const victim = pilots.find((p) => p.node === node)!;
      await driver.stop(victim.id);
      const st = await c.until('the workflow to end', () => c.json<ClusterStatus>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 120_000);
      assert.equal(st.status, 'succeeded', c.serverLog.slice(-3000));
      const lines = c.ledgerLines();
      // (`|| exit 1`: the agent's stop may kill `sleep` a moment before the shell, which would
      // otherwise write its end line first.)
      assert.equal(count(lines, 'end long 1 '), 0, 'the first attempt died with its pilot');
      const second = lines.filter((l) => l.startsWith('start long 2 '));
      assert.equal(second.length, 1, lines.join('\n'));
      assert.notEqual(second[0]!.split(' ')[3], node, 'retried on the other pilot');
      assert.equal(count(lines, 'end long 2 '), 1);
      assert.equal(st.jobs[0]!.attempts, 2, 'two attempts recorded, not more');
      const views = await driver.list();
      const v = views.find((p) => p.id === victim.id)!;
      assert.equal(v.state, 'stopped');
      assert.equal(v.reason, 'canceled (scancel)');
      assert.equal(views.find((p) => p.id !== victim.id && pilots.some((x) => x.id === p.id))!.state, 'running', 'the other pilot runs on');
    });
  });

  test('slurmctld restarted during a workflow: the pilots run on, the workflow completes, no job runs twice', { timeout: 180_000 }, async () => {
    await withPilots(async (c, driver, pilots) => {
      const id = await submitSixJobs(c);
      await c.until('two jobs to start', async () => c.ledgerLines(), (l) => count(l, 'start ') >= 2, 60_000);
      await slurm.stopController();
      await sleep(1000);
      await slurm.startController();
      const st = await c.until('the workflow to end', () => c.json<ClusterStatus>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 120_000);
      assert.equal(st.status, 'succeeded', c.serverLog.slice(-3000));
      const lines = c.ledgerLines();
      for (const j of ['a', 'b', 'c', 'd', 'e', 'f']) {
        assert.equal(count(lines, `start ${j} `), 1, `${j} started once:\n${lines.join('\n')}`);
        assert.equal(count(lines, `end ${j} `), 1, `${j} ended once`);
      }
      assert.equal(count(lines, 'start after'), 1);
      for (const j of st.jobs) assert.equal(j.attempts, 1, `${j.name} took one attempt`);
      // (list() also shows the earlier test's pilots of this site, ended: Slurm still lists them.)
      const views = (await driver.list()).filter((v) => pilots.some((p) => p.id === v.id));
      assert.deepEqual(views.map((p) => p.state), ['running', 'running'], `the restarted controller still knows both pilots: ${JSON.stringify(views)}`);
    });
  });
});
