// The local driver (src/sites/local.ts): real network namespaces, real `warren agent`s joining a
// real `warren server` that listens on the driver's bridge. Runs the SiteDriver contract, then
// what only this driver does: the boot delay, spot reclaim, an agent that cannot join, bad settings.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalDriver, localUnavailable, type InstanceView } from '../../src/sites/index.js';
import { WarrenError } from '../../src/common/index.js';
import { TestCluster } from '../cluster/harness.js';
import { tempDir } from '../helpers.js';
import { driverContract } from './driver-contract.js';

const why = localUnavailable();
const skip = why === null ? false : `the local driver cannot run here: ${why}`;

function leftoversOf(v: InstanceView): string[] {
  const left: string[] = [];
  const ns = `wcl-${v.id}`;
  if (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').some((l) => l.split(/\s+/)[0] === ns)) left.push(`namespace ${ns}`);
  const [drv, n] = [v.id.slice(0, v.id.lastIndexOf('-')), v.id.slice(v.id.lastIndexOf('-') + 1)];
  if (spawnSync('ip', ['link', 'show', `${drv}v${n}`]).status === 0) left.push(`veth ${drv}v${n}`);
  return left;
}

async function world(o: { bootDelayMs?: number } = {}) {
  const t = tempDir('warren-localdrv-', '/var/tmp');
  const driver = await LocalDriver.create({ site: 'burst', dataDir: join(t.dir, 'instances'), instanceTypes: { small: { cores: 1 } }, bootDelayMs: o.bootDelayMs ?? 0, pricePerHour: 0.1 });
  let c: TestCluster | undefined;
  try {
    c = await TestCluster.start({ agents: 0, listenHost: driver.serverAddress });
  } catch (e) {
    await driver.close();
    t.cleanup();
    throw e;
  }
  const cluster = c;
  const caPem = readFileSync(cluster.caFile, 'utf8');
  return {
    driver, cluster,
    async request(node: string) {
      const tok = await cluster.cli(['token', 'create', '--ttl', '10m']);
      if (tok.code !== 0) throw new Error(`token create: ${tok.stderr}`);
      return { node, instanceType: 'small', joinToken: tok.stdout.trim(), serverUrl: cluster.url, caPem, labels: { site: 'burst' } };
    },
    async nodeState(node: string): Promise<string | undefined> {
      return (await cluster.nodes().catch(() => [])).find((n) => n.name === node)?.state;
    },
    async teardown() {
      await driver.close();
      await cluster.close();
      t.cleanup();
    },
  };
}

driverContract('local', async () => {
  const w = await world({ bootDelayMs: 300 });
  return {
    driver: w.driver,
    instanceType: 'small',
    request: w.request,
    joined: async (node) => (await w.nodeState(node)) === 'ready',
    leftovers: async (v) => leftoversOf(v),
    bootTimeoutMs: 30_000,
    teardown: w.teardown,
  };
}, { skip });

describe('local driver', { skip, timeout: 180_000 }, () => {
  let w: Awaited<ReturnType<typeof world>>;
  before(async () => {
    w = await world({ bootDelayMs: 1500 });
  });
  after(async () => {
    await w?.teardown();
  });

  it('boots no sooner than its boot delay, and its agent is reached in its own namespace', async () => {
    const v0 = await w.driver.start(await w.request('ld-a'));
    assert.equal(v0.state, 'pending');
    await new Promise((r) => setTimeout(r, 700));
    assert.equal((await w.driver.list()).find((x) => x.id === v0.id)!.state, 'pending', 'still booting (1.5 s delay)');
    const t0 = Date.now();
    let v: InstanceView | undefined;
    while (Date.now() - t0 < 30_000) {
      v = (await w.driver.list()).find((x) => x.id === v0.id);
      if (v?.state === 'running') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(v?.state, 'running');
    assert.ok(v!.runningAt! - v!.requestedAt >= 1500, `ran after ${v!.runningAt! - v!.requestedAt} ms`);
    const ns = `wcl-${v0.id}`;
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
    assert.ok(pids.length >= 1, 'the agent runs in the namespace');
    const addr = spawnSync('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout;
    assert.match(addr, new RegExp(`${w.driver.serverAddress.replace(/\.1$/, '').replace(/\./g, '\\.')}\\.\\d+/24`));
    const deadline = Date.now() + 20_000;
    while ((await w.nodeState('ld-a')) !== 'ready' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.equal(await w.nodeState('ld-a'), 'ready');
  });

  it('reclaim: killed at once as a cloud takes back a spot instance; the server loses the node', async () => {
    const v = (await w.driver.list()).find((x) => x.node === 'ld-a')!;
    await w.driver.reclaim(v.id);
    const after1 = (await w.driver.list()).find((x) => x.id === v.id)!;
    assert.equal(after1.state, 'stopped');
    assert.match(after1.reason ?? '', /reclaimed/);
    assert.deepEqual(leftoversOf(after1), []);
    // The server finds out the way it would in a cloud: the heartbeats stop (--grace 2s, --lost-after 3s).
    const deadline = Date.now() + 20_000;
    let st: string | undefined;
    while (Date.now() < deadline) {
      st = await w.nodeState('ld-a');
      if (st === 'lost' || st === 'down') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(st === 'lost' || st === 'down', `node state ${st}`);
    await w.driver.reclaim(v.id); // idempotent
  });

  it('an agent that cannot join (a bad token) fails with its own words as the reason', async () => {
    const req = await w.request('ld-bad');
    const v0 = await w.driver.start({ ...req, joinToken: 'wjt_not-a-token' });
    const t0 = Date.now();
    let v: InstanceView | undefined;
    while (Date.now() - t0 < 30_000) {
      v = (await w.driver.list()).find((x) => x.id === v0.id);
      if (v?.state === 'failed') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(v?.state, 'failed');
    assert.match(v!.reason ?? '', /agent exited/);
    assert.ok((v!.reason ?? '').length > 'agent exited (code 2)'.length, v!.reason ?? '');
    assert.deepEqual(leftoversOf(v!), []);
  });

  it('two drivers on one bridge never give two instances one address', async () => {
    const t2 = tempDir('warren-localdrv2-', '/var/tmp');
    const other = await LocalDriver.create({ site: 'burst2', dataDir: t2.dir, instanceTypes: { small: { cores: 1 } }, bootDelayMs: 60_000, bridge: { name: w.driver.bridge, address: w.driver.serverAddress } });
    try {
      const a = await w.driver.start(await w.request('ld-addr-a'));
      const b = await other.start(await w.request('ld-addr-b'));
      const addr = (id: string) => /inet (\S+)\//.exec(spawnSync('ip', ['-n', `wcl-${id}`, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout)?.[1];
      assert.ok(addr(a.id) && addr(b.id), 'both have an address');
      assert.notEqual(addr(a.id), addr(b.id));
      await w.driver.stop(a.id);
      await other.stop(b.id);
    } finally {
      await other.close();
      t2.cleanup();
    }
    // The bridge is the first driver's: it stays.
    assert.equal(spawnSync('ip', ['link', 'show', w.driver.bridge]).status, 0);
  });

  it('a node name used by a running instance is refused', async () => {
    const req = await w.request('ld-dup');
    await w.driver.start(req);
    await assert.rejects(w.driver.start(req), (e) => e instanceof WarrenError && e.code === 'SITE_BAD_SETTING' && /ld-dup/.test(e.message));
  });
});

describe('local driver: bad settings name the site', { skip }, () => {
  const bad = async (o: Record<string, unknown>, re: RegExp) => {
    await assert.rejects(LocalDriver.create({ site: 'oops', dataDir: '/nonexistent', instanceTypes: { s: { cores: 1 } }, ...o } as never), (e) => e instanceof WarrenError && e.code === 'SITE_BAD_SETTING' && e.exitCode === 2 && /site "oops"/.test(e.message) && re.test(e.message) && !!e.hint);
  };
  it('no instance types', () => bad({ instanceTypes: {} }, /no instance types/));
  it('cores 0', () => bad({ instanceTypes: { s: { cores: 0 } } }, /instance type "s" has cores 0/));
  it('a negative boot delay', () => bad({ bootDelayMs: -1 }, /boot delay -1/));
  it('a negative price', () => bad({ pricePerHour: -2 }, /price per hour -2/));
  it('a bridge that does not exist', () => bad({ bridge: { name: 'wclnope0', address: '10.80.250.1' } }, /bridge wclnope0 does not exist/));
  it('a subnet that is not A.B.C', () => bad({ subnet: '10.80' }, /subnet "10.80"/));
});
