// Pilot mode against a real Slurm (issue 14): a `warren server` on the Slurm bridge, two pilots
// submitted by SlurmPilotDriver (sbatch, each a `warren agent` with its own join token) join it
// from the Slurm nodes' namespaces, a workflow of 20 no-op jobs runs through them, then the
// pilots drain themselves when idle, leave, and their Slurm jobs complete.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SlurmPilotDriver, slurmSettings, pilotTokenTtlSec, type SlurmSiteSettings } from '../../src/sites/index.js';
import { TestCluster } from '../cluster/harness.js';
import type { Network } from '../helpers/netns.js';
import { warrenBin } from '../helpers.js';
import { SlurmCluster, slurmAvailable } from './slurm-cluster.js';

const skip = slurmAvailable() === true ? false : String(slurmAvailable());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Slurm pilot mode', { skip }, () => {
  let slurm: SlurmCluster;
  let c: TestCluster;
  let settings: SlurmSiteSettings;
  let driver: SlurmPilotDriver;
  before(async () => {
    slurm = await SlurmCluster.start({ id: 3 });
    // The server listens on the bridge address, where the Slurm nodes' namespaces reach it.
    c = await TestCluster.start({ agents: 0, net: { serverAddress: slurm.controllerAddress, hosts: [] } as unknown as Network });
    const u = await c.cli(['user', 'add', 'alice', '--unix-user', 'root']);
    assert.equal(u.code, 0, u.stderr);
    const r = await c.cli(['context', 'add', 'alice', '--server', c.url, '--token', u.stdout.trim(), '--ca', c.caFile]);
    assert.equal(r.code, 0, r.stderr);
    settings = slurmSettings({ name: 'hpc', partition: 'batch', account: 'warren', env: { SLURM_CONF: slurm.conf }, maxPilots: 2, warren: `${process.execPath} ${warrenBin}`, pilot: { cores: 2, walltimeSec: 900, marginSec: 60, idleExitSec: 4, queueWaitSec: 300 } });
    driver = new SlurmPilotDriver(settings, { logDir: slurm.dir });
  });
  after(async () => {
    await driver?.close().catch(() => {});
    await c?.close();
    await slurm?.stop();
  });

  async function pilot(node: string) {
    const tok = await c.cli(['token', 'create', '--ttl', `${pilotTokenTtlSec(settings)}s`]);
    assert.equal(tok.code, 0, tok.stderr);
    return driver.start({ node, instanceType: '2c', joinToken: tok.stdout.trim(), serverUrl: c.url, caPem: readFileSync(c.caFile, 'utf8'), labels: { pool: 'pilots' } });
  }

  test('2 pilots join, 20 no-op jobs run through them, the pilots leave when idle', { timeout: 180_000 }, async () => {
    await driver.check();
    // The workflow first: its jobs wait for capacity, then the pilots come.
    const flow = join(c.dir, 'pilots.yaml');
    writeFileSync(flow, `version: v1\njobs:\n  noop:\n    command: [/bin/sh, -c, 'echo "$WARREN_TASK_ID $WARREN_NODE $(hostname)" >> ${c.ledger}']\n    task-array: {start: 1, end: 20}\n`);
    const run = await c.cli(['run', '--detach', flow], { context: 'alice' });
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.trim();
    const p1 = await pilot('p1');
    const p2 = await pilot('p2');
    assert.match(p1.id, /^\d+$/);
    assert.equal(p1.state, 'pending');
    // The script Slurm got: the site's options, the agent's lifetime.
    const script = slurm.run('scontrol', ['write', 'batch_script', p1.id, '-']).stdout;
    for (const x of ['#SBATCH --job-name=warren-pilot-p1', '#SBATCH --partition=batch', '#SBATCH --account=warren', '#SBATCH --time=00:15:00', '#SBATCH --cpus-per-task=2', '--idle-exit 4s', '--walltime 900s', '--walltime-margin 60s', '--labels site=hpc,pool=pilots']) assert.ok(script.includes(x), `${x} in\n${script}`);
    // A third is over the site's max pilots: refused before sbatch.
    await assert.rejects(pilot('p3'), (e: Error & { code?: string }) => e.code === 'SITE_SLURM_MAX_PILOTS' && /max pilots 2/.test(e.message));
    const outputs = (): string => [p1, p2].map((p) => `--- pilot ${p.node} ---\n${(() => { try { return readFileSync(join(slurm.dir, `warren-pilot-${p.node}-${p.id}.out`), 'utf8').slice(-3000); } catch { return '(no output)'; } })()}`).join('\n');
    const st = await c
      .until('the workflow ended', () => c.json<{ status: string }>(['status', id], { context: 'alice' }), (v) => v.status !== 'running' && v.status !== 'pending', 90_000)
      .catch((e: Error) => {
        throw new Error(`${e.message}\n${c.ledgerLines().length} tasks ran\n${outputs()}`);
      });
    assert.equal(st.status, 'succeeded', outputs());
    // Both joined (a pilot that joined after the other had run every task may still be starting
    // its agent when the workflow ends; a pilot that left stays listed, drained by itself).
    const nodes = await c.until('both pilots joined', () => c.nodes(), (ns) => ns.length === 2, 60_000);
    assert.deepEqual(nodes.map((n) => n.name).sort(), ['p1', 'p2']);
    const running = await driver.list();
    assert.deepEqual(running.map((p) => p.node).sort(), ['p1', 'p2']);
    assert.ok(running.every((p) => p.runningAt !== null && p.runningAt >= p.requestedAt - 1000), JSON.stringify(running));
    const lines = c.ledgerLines();
    assert.equal(lines.length, 20, lines.join('\n'));
    assert.equal(new Set(lines.map((l) => l.split(' ')[0])).size, 20, 'each task ran once');
    // On the pilots, i.e. on the Slurm nodes (their host names).
    for (const l of lines) assert.match(l, /^\d+ (p1|p2) sn[12]$/);

    // Idle for 4 s: each pilot drains itself, leaves, and its Slurm job completes.
    const t0 = Date.now();
    while (slurm.queue().length && Date.now() - t0 < 60_000) await sleep(200);
    assert.deepEqual(slurm.queue(), [], 'the pilots left Slurm');
    const ended = await driver.list();
    assert.deepEqual(ended.map((p) => [p.node, p.state, p.reason]).sort(), [
      ['p1', 'stopped', 'the pilot left (idle or near its walltime)'],
      ['p2', 'stopped', 'the pilot left (idle or near its walltime)'],
    ]);
    assert.match(slurm.run('scontrol', ['show', 'job', p1.id]).stdout, /JobState=COMPLETED .*|ExitCode=0:0/);
    const after = await c.json<{ name: string; drainedBy: string | null; drainReason: string | null }[]>(['node', 'list']);
    for (const n of after) {
      assert.equal(n.drainedBy, 'agent', JSON.stringify(n));
      assert.match(n.drainReason ?? '', /^leaving: idle for \d/);
    }
    const out = readFileSync(join(slurm.dir, `warren-pilot-p1-${p1.id}.out`), 'utf8');
    assert.match(out, /agent p1: left the cluster \(idle for/);
  });
});
