// Elastic capacity: the pure decisions (src/scheduler/elastic.ts) and the controller
// (src/sites/elastic.ts) on a real site: the local driver's agents in network namespaces joining
// a real `warren server`, driven through the admin API (HttpClient). Scale up on demand, to zero
// when idle, an instance that never boots given up after its boot timeout, a reclaimed spot
// instance lost (revoked) and replaced, the budget.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decideElastic, demandFromPlan, checkElastic, elasticBilledSec, type ElasticInstance, type ElasticSite } from '../../src/scheduler/index.js';
import { ElasticController, LocalDriver, localUnavailable, type ElasticEvent, type ElasticSiteConfig } from '../../src/sites/index.js';
import { HttpClient } from '../../src/api/index.js';
import { WarrenError } from '../../src/common/index.js';
import { TestCluster } from '../cluster/harness.js';
import { tempDir } from '../helpers.js';

const site = (o: Partial<ElasticSite> = {}): ElasticSite => ({ name: 'burst', max: 4, instanceType: 'small', spot: false, pricePerHour: 3.6, granularitySec: 1, minimumSec: 60, bootTimeoutSec: 30, idleSec: 10, ...o });
const inst = (o: Partial<ElasticInstance> & { id: string }): ElasticInstance => ({ site: 'burst', node: `n-${o.id}`, state: 'running', requestedAt: 0, endedAt: null, joined: true, busy: false, idleSince: null, stopRequested: false, settled: false, reason: null, ...o });
const kinds = (a: { kind: string }[]) => a.map((x) => x.kind);

describe('elastic decisions (pure)', () => {
  it('scales up to the demand, never beyond max, and says it held at max', () => {
    assert.deepEqual(kinds(decideElastic({ now: 0, sites: [site()], instances: [], demand: { burst: 3 } })), ['start', 'start', 'start']);
    const a = decideElastic({ now: 0, sites: [site({ max: 2 })], instances: [], demand: { burst: 5 } });
    assert.deepEqual(kinds(a), ['start', 'start']);
    const b = decideElastic({ now: 0, sites: [site({ max: 2 })], instances: [inst({ id: 'a' }), inst({ id: 'b' })], demand: { burst: 5 } });
    assert.deepEqual(b, [{ kind: 'held', site: 'burst', why: 'max', wanted: 5, live: 2 }]);
    assert.deepEqual(decideElastic({ now: 0, sites: [site({ max: 0 })], instances: [], demand: { burst: 1 } }).filter((x) => x.kind === 'start'), []);
  });

  it('counts instances still booting as capacity (no double start); stops them first when no longer wanted', () => {
    const a = decideElastic({ now: 5, sites: [site()], instances: [inst({ id: 'a', state: 'booting', joined: false })], demand: { burst: 1 } });
    assert.deepEqual(a, []);
    const b = decideElastic({ now: 5, sites: [site()], instances: [inst({ id: 'a', idleSince: 0 }), inst({ id: 'b', state: 'booting', joined: false })], demand: { burst: 1 } });
    assert.deepEqual(b, [{ kind: 'stop', site: 'burst', id: 'b', node: 'n-b', why: 'unneeded' }]);
  });

  it('scales to zero: stops instances idle for idleSec, the newest first, only those not wanted', () => {
    const is = [inst({ id: 'a', requestedAt: 0, idleSince: 100 }), inst({ id: 'b', requestedAt: 50, idleSince: 100 }), inst({ id: 'c', requestedAt: 60, busy: true })];
    assert.deepEqual(decideElastic({ now: 105, sites: [site()], instances: is, demand: {} }), [], 'idle 5 s < 10 s');
    const a = decideElastic({ now: 111, sites: [site()], instances: is, demand: { burst: 2 } });
    assert.deepEqual(a, [{ kind: 'stop', site: 'burst', id: 'b', node: 'n-b', why: 'idle' }]);
    const z = decideElastic({ now: 111, sites: [site()], instances: is, demand: { burst: 0 } });
    assert.deepEqual(z.map((x) => (x as { id: string }).id), ['b', 'a'], 'the busy one stays');
  });

  it('hourly billing keeps an idle instance to the end of the hour it paid for', () => {
    const s = site({ granularitySec: 3600, minimumSec: 3600, idleSec: 30 });
    assert.deepEqual(decideElastic({ now: 600, sites: [s], instances: [inst({ id: 'a', idleSince: 100 })], demand: {} }), []);
    assert.deepEqual(kinds(decideElastic({ now: 3560, sites: [s], instances: [inst({ id: 'a', idleSince: 100 })], demand: {} })), ['stop']);
  });

  it('an instance not joined within its boot timeout is stopped and not counted: a replacement starts', () => {
    const a = decideElastic({ now: 31, sites: [site()], instances: [inst({ id: 'a', state: 'booting', joined: false })], demand: { burst: 1 } });
    assert.deepEqual(a, [{ kind: 'stop', site: 'burst', id: 'a', node: 'n-a', why: 'boot-timeout' }, { kind: 'start', site: 'burst', instanceType: 'small', spot: false }]);
    assert.deepEqual(decideElastic({ now: 30, sites: [site()], instances: [inst({ id: 'a', state: 'booting', joined: false })], demand: { burst: 1 } }), [], 'at the limit: still waiting');
  });

  it('an instance that ended unasked is lost, once; one that was stopped is not', () => {
    const lost = inst({ id: 'a', state: 'stopped', endedAt: 40, reason: 'reclaimed (spot interruption)' });
    const a = decideElastic({ now: 50, sites: [site()], instances: [lost], demand: { burst: 1 } });
    assert.deepEqual(a, [{ kind: 'lost', site: 'burst', id: 'a', node: 'n-a', why: 'reclaimed (spot interruption)' }, { kind: 'start', site: 'burst', instanceType: 'small', spot: false }]);
    assert.deepEqual(kinds(decideElastic({ now: 50, sites: [site()], instances: [{ ...lost, settled: true }], demand: { burst: 0 } })), []);
    assert.deepEqual(kinds(decideElastic({ now: 50, sites: [site()], instances: [{ ...lost, stopRequested: true }], demand: { burst: 0 } })), []);
    assert.deepEqual(kinds(decideElastic({ now: 50, sites: [site()], instances: [inst({ id: 'f', state: 'failed', endedAt: 45 })], demand: {} })), ['lost']);
  });

  it('the budget: starts only while the first billing unit of each fits on top of what is spent and committed', () => {
    // 3.6/h, minimum 60 s: 0.06 a unit.
    const a = decideElastic({ now: 0, sites: [site()], instances: [], demand: { burst: 4 }, budget: { limit: 0.13, spent: 0 } });
    assert.deepEqual(kinds(a), ['start', 'start', 'held']);
    // One instance has run 100 s (0.1 committed): no room for another unit of 0.06 under 0.15.
    const b = decideElastic({ now: 100, sites: [site()], instances: [inst({ id: 'a', busy: true })], demand: { burst: 2 }, budget: { limit: 0.15, spent: 0 } });
    assert.deepEqual(b, [{ kind: 'held', site: 'burst', why: 'budget', wanted: 2, live: 1 }]);
    // An ended instance's bill counts up to its end only.
    const c = decideElastic({ now: 1000, sites: [site()], instances: [inst({ id: 'x', state: 'stopped', endedAt: 60, stopRequested: true, settled: true })], demand: { burst: 1 }, budget: { limit: 0.13, spent: 0 } });
    assert.deepEqual(kinds(c), ['start']);
  });

  it('billing: the minimum, then whole units', () => {
    assert.equal(elasticBilledSec({ granularitySec: 60, minimumSec: 60 }, 0), 60);
    assert.equal(elasticBilledSec({ granularitySec: 60, minimumSec: 60 }, 61), 120);
    assert.equal(elasticBilledSec({ granularitySec: 1, minimumSec: 60 }, 61), 61);
  });

  it('demand from a plan: the instances requested and not yet released at that moment', () => {
    const plan = { instances: [
      { site: 'burst', instanceType: 'small', index: 0, bootStart: 0, readyAt: 30, end: 100, cost: 0 },
      { site: 'burst', instanceType: 'small', index: 1, bootStart: 50, readyAt: 80, end: 300, cost: 0 },
      { site: 'gpu', instanceType: 'g', index: 0, bootStart: 200, readyAt: 260, end: 400, cost: 0 },
    ] };
    assert.deepEqual(demandFromPlan(plan, 10), { burst: 1 });
    assert.deepEqual(demandFromPlan(plan, 60), { burst: 2 });
    assert.deepEqual(demandFromPlan(plan, 250), { burst: 1, gpu: 1 });
    assert.deepEqual(demandFromPlan(plan, 400), {});
  });

  it('bad input names the site: max < 0, a budget already spent, one that cannot pay a unit', () => {
    const code = (fn: () => void, c: string, re: RegExp) => assert.throws(fn, (e) => e instanceof WarrenError && e.code === c && e.exitCode === 2 && re.test(e.message) && !!e.hint);
    code(() => checkElastic([site({ max: -1 })]), 'SITE_BAD_SETTING', /site "burst": max is -1/);
    code(() => checkElastic([site({ max: 1.5 })]), 'SITE_BAD_SETTING', /max is 1.5/);
    code(() => checkElastic([site({ bootTimeoutSec: 0 })]), 'SITE_BAD_SETTING', /boot timeout/);
    code(() => checkElastic([site()], { limit: 5, spent: 5 }), 'SITE_BUDGET_SPENT', /budget 5 is spent.*"burst"/);
    code(() => checkElastic([site()], { limit: 0.05, spent: 0 }), 'SITE_BUDGET_SPENT', /one billing unit of site "burst" \(0.06\)/);
    code(() => checkElastic([site()], { limit: -1, spent: 0 }), 'SITE_BAD_SETTING', /budget -1/);
    checkElastic([site({ pricePerHour: 0 })], { limit: 1, spent: 1 }); // free capacity: nothing to refuse
    checkElastic([site()], { limit: 1, spent: 0.5 });
  });
});

const why = localUnavailable();
const skip = why === null ? false : `the local driver cannot run here: ${why}`;

describe('elastic controller on the local driver and a real server', { skip, timeout: 240_000 }, () => {
  let t: { dir: string; cleanup: () => void };
  let burst: LocalDriver;
  let slow: LocalDriver;
  let cluster: TestCluster;
  let admin: HttpClient;
  const demand: Record<string, number> = {};
  const events: ElasticEvent[] = [];
  let ctl: ElasticController;

  before(async () => {
    t = tempDir('warren-elastic-', '/var/tmp');
    burst = await LocalDriver.create({ site: 'burst', dataDir: join(t.dir, 'burst'), instanceTypes: { small: { cores: 1 } }, bootDelayMs: 200, pricePerHour: 3.6 });
    // The same bridge: one server address for both sites. Its instances take a minute to boot.
    slow = await LocalDriver.create({ site: 'slow', dataDir: join(t.dir, 'slow'), instanceTypes: { small: { cores: 1 } }, bootDelayMs: 60_000, bridge: { name: burst.bridge, address: burst.serverAddress } });
    cluster = await TestCluster.start({ agents: 0, listenHost: burst.serverAddress });
    const caPem = readFileSync(cluster.caFile, 'utf8');
    admin = new HttpClient({ url: cluster.url, token: cluster.adminToken, caPem });
    const cfg = (d: LocalDriver, o: Partial<ElasticSiteConfig>): ElasticSiteConfig => ({ name: d.site, driver: d, serverUrl: cluster.url, max: 2, instanceType: 'small', spot: true, pricePerHour: 3.6, granularitySec: 1, minimumSec: 60, bootTimeoutSec: 30, idleSec: 1, ...o });
    ctl = await ElasticController.create({ sites: [cfg(burst, {}), cfg(slow, { bootTimeoutSec: 3, max: 1 })], cluster: admin, caPem, demand: () => ({ ...demand }), budget: { limit: 10 }, onChange: (e) => events.push(e) });
  });
  after(async () => {
    await ctl?.close();
    await slow?.close();
    await burst?.close();
    await cluster?.close();
    t?.cleanup();
  });

  const until = async (what: string, ok: () => Promise<boolean>, ms = 40_000) => {
    const t0 = Date.now();
    for (;;) {
      await ctl.tick();
      if (await ok()) return;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}; instances: ${JSON.stringify(ctl.instances())}; events: ${JSON.stringify(events)}\n${cluster.serverLog.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const ready = async (site: string) => (await admin.nodes()).filter((n) => n.state === 'ready' && n.labels.site === site).map((n) => n.name).sort();

  it('scales up when the plan asks, to max, and the nodes join labelled with their site', async () => {
    demand.burst = 3; // max 2
    await until('2 burst nodes ready', async () => (await ready('burst')).length === 2 && ctl.instances().filter((i) => i.joined).length === 2);
    assert.deepEqual(await ready('burst'), ['burst-1', 'burst-2']);
    assert.equal(ctl.instances().filter((i) => i.site === 'burst').length, 2);
    assert.ok(events.some((e) => e.kind === 'held' && e.why === 'max'));
    assert.equal(events.filter((e) => e.kind === 'joined').length, 2);
  });

  it('a reclaimed spot instance is a lost node: revoked at the server, and replaced', async () => {
    demand.burst = 2;
    const victim = ctl.instances().find((i) => i.node === 'burst-1')!;
    await burst.reclaim(victim.id);
    await until('a replacement ready', async () => (await ready('burst')).length === 2 && !(await ready('burst')).includes('burst-1') && ctl.instances().filter((i) => i.joined).length === 2);
    const n1 = (await admin.nodes()).find((n) => n.name === 'burst-1');
    assert.equal(n1?.state, 'revoked');
    assert.deepEqual(events.filter((e) => e.kind === 'lost').map((e) => (e as { node: string }).node), ['burst-1']);
    assert.match((events.find((e) => e.kind === 'lost') as { why: string }).why, /reclaimed/);
  });

  it('an instance that never boots is given up after its boot timeout and released; the plan moves on (a replacement, stopped when no longer wanted)', async () => {
    demand.slow = 1;
    await until('the slow instance given up', async () => events.some((e) => e.kind === 'stopped' && e.site === 'slow' && e.why === 'boot-timeout'), 20_000);
    const gaveUp = ctl.instances().filter((i) => i.site === 'slow');
    assert.equal(gaveUp[0]!.state, 'stopped');
    assert.equal((await slow.list()).find((v) => v.id === gaveUp[0]!.id)!.state, 'stopped');
    // Its node never joined; it is not in the cluster.
    assert.equal((await admin.nodes()).some((n) => n.name === gaveUp[0]!.node && n.state === 'ready'), false);
    // Demand still 1: a replacement was asked for in the same round (max 1 counts only live ones).
    assert.equal(gaveUp.length, 2);
    assert.ok(['pending', 'booting'].includes(gaveUp[1]!.state), gaveUp[1]!.state);
    demand.slow = 0;
    await ctl.tick();
    assert.ok(events.some((e) => e.kind === 'stopped' && e.site === 'slow' && e.why === 'unneeded'));
    assert.deepEqual(ctl.instances().filter((i) => i.site === 'slow').map((i) => i.state), ['stopped', 'stopped']);
  });

  it('scales to zero when idle: drained, stopped, revoked; the cost is the billing units begun', async () => {
    demand.burst = 0;
    await until('no burst node ready', async () => (await ready('burst')).length === 0);
    const live = ctl.instances().filter((i) => i.state !== 'stopped' && i.state !== 'failed');
    assert.deepEqual(live, []);
    assert.ok(events.filter((e) => e.kind === 'stopped' && e.why === 'idle').length >= 2);
    // Each instance pays at least its 60 s minimum at 3.6/h = 0.06.
    const cost = ctl.cost();
    const n = ctl.instances().length;
    assert.ok(cost >= 0.06 * n - 1e-9, `cost ${cost} for ${n} instances`);
    // Nothing more starts without demand.
    const before1 = ctl.instances().length;
    await ctl.tick();
    assert.equal(ctl.instances().length, before1);
  });

  it('a start the driver refuses is reported (failed); the round goes on and nothing is recorded for it', async () => {
    await slow.close();
    demand.slow = 1;
    demand.burst = 1;
    const n0 = ctl.instances().length;
    await ctl.tick();
    const failed = events.filter((e) => e.kind === 'failed');
    assert.equal(failed.length, 1, JSON.stringify(failed));
    assert.match((failed[0] as { why: string }).why, /site "slow": its driver was closed/);
    assert.equal(ctl.instances().length, n0 + 1, 'only the burst instance');
    assert.equal(ctl.instances().at(-1)!.site, 'burst');
    demand.slow = 0;
    demand.burst = 0;
  });
});

describe('elastic controller with work on its nodes (a real workflow through the server)', { skip, timeout: 240_000 }, () => {
  let t: { dir: string; cleanup: () => void };
  let burst: LocalDriver;
  let cluster: TestCluster;
  let admin: HttpClient;
  let ctl: ElasticController;
  const demand: Record<string, number> = { burst: 1 };
  const events: ElasticEvent[] = [];
  const errors: unknown[] = [];

  before(async () => {
    t = tempDir('warren-elastic-work-', '/var/tmp');
    burst = await LocalDriver.create({ site: 'burst', dataDir: join(t.dir, 'burst'), instanceTypes: { small: { cores: 1 } }, pricePerHour: 1 });
    cluster = await TestCluster.start({ agents: 0, listenHost: burst.serverAddress });
    const caPem = readFileSync(cluster.caFile, 'utf8');
    admin = new HttpClient({ url: cluster.url, token: cluster.adminToken, caPem });
    ctl = await ElasticController.create({
      sites: [{ name: 'burst', driver: burst, serverUrl: cluster.url, max: 2, instanceType: 'small', spot: true, pricePerHour: 1, granularitySec: 1, minimumSec: 60, bootTimeoutSec: 30, idleSec: 1 }],
      cluster: admin, caPem, demand: () => ({ ...demand }), onChange: (e) => events.push(e),
    });
    ctl.run(250, (e) => errors.push(e));
  });
  after(async () => {
    await ctl?.close();
    await burst?.close();
    await cluster?.close();
    t?.cleanup();
  });

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const ledger = () => cluster.ledgerLines();
  const count = (prefix: string) => ledger().filter((l) => l.startsWith(prefix)).length;

  it('a busy node is kept when the demand drops; a reclaim mid-job is a lost node: the job runs again on a replacement, once', async () => {
    await cluster.until('an elastic node joined', async () => ctl.instances().filter((i) => i.joined).length, (n) => n === 1, 40_000);
    const flow = join(cluster.dir, 'flow.yaml');
    const L = cluster.ledger;
    writeFileSync(flow, `version: v1\njobs:\n  long:\n    command: [/bin/sh, -c, 'echo "start long $WARREN_ATTEMPT $WARREN_NODE" >> ${L}; if [ "$WARREN_ATTEMPT" = 1 ]; then sleep 60; else sleep 2; fi; echo "end long $WARREN_ATTEMPT $WARREN_NODE" >> ${L}']\n    policy:\n      retry: {attempts: 2, backoff: 1s}\n`);
    const sub = await cluster.cli(['run', '--detach', flow]);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    await cluster.until('attempt 1 running', async () => ledger(), (l) => l.some((x) => x.startsWith('start long 1 burst-1')), 30_000);
    // No demand, but the node has work: it stays.
    demand.burst = 0;
    await sleep(2500);
    const first = ctl.instances().find((i) => i.node === 'burst-1')!;
    assert.equal(first.state, 'running');
    assert.equal(events.some((e) => e.kind === 'stopped' && e.node === 'burst-1'), false);
    // The plan wants it again; the cloud takes it back mid-job.
    demand.burst = 1;
    await burst.reclaim(first.id);
    const st = await cluster.until('the workflow to end', () => cluster.json<{ status: string; jobs: { attempts: number }[] }>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 90_000);
    assert.equal(st.status, 'succeeded', `${ledger().join('\n')}\n${JSON.stringify(events)}\n${cluster.serverLog.slice(-3000)}`);
    assert.equal(st.jobs[0]!.attempts, 2);
    assert.equal(count('end long 1 '), 0, 'attempt 1 died with its instance');
    assert.equal(count('start long 2 burst-2'), 1, ledger().join('\n'));
    assert.equal(count('end long 2 '), 1);
    assert.deepEqual(events.filter((e) => e.kind === 'lost').map((e) => (e as { node: string }).node), ['burst-1']);
    assert.equal((await admin.nodes()).find((n) => n.name === 'burst-1')?.state, 'revoked');
    // Done: back to zero.
    demand.burst = 0;
    await cluster.until('scaled to zero', async () => ctl.instances().filter((i) => i.state !== 'stopped' && i.state !== 'failed').length, (n) => n === 0, 30_000);
    assert.deepEqual(errors, []);
  });
});
