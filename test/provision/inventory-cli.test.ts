// `warren node add|set|list|status|delete` and `warren profile ...` as users run them: the real
// CLI on the embedded store (WARREN_HOME in a temp dir), and against a real `warren server`
// (admins only; failures cross the API as {code, message, hint}), where an agent that joins under
// an inventory node's name gets its tags as labels.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir, warrenBin } from '../helpers.js';
import { TestCluster } from '../cluster/harness.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A refusal: exit 2, the code, the message matching, and a hint. */
function refused(r: Run, code: string, re?: RegExp): void {
  assert.equal(r.code, 2, `exit 2 expected: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`error\\[${code}\\]`), r.stderr);
  if (re) assert.match(r.stderr, re);
  assert.match(r.stderr, /\n  hint: \S/, 'with a hint');
}

interface ListRow {
  name: string;
  state?: string;
  labels?: Record<string, string>;
  provision: null | { node: { name: string; profiles: string[] }; resolved: { image: string | null; network: Record<string, { mac?: string; ip?: string; gateway?: string; device?: string }>; tags: Record<string, string>; origin: Record<string, string>; kernelArgs: string[]; systemOverlays: string[] }; boot: unknown };
}

/** The cases both modes run: `cli` runs the CLI (embedded or through the admin's context). */
function inventoryCases(mode: string, cli: (args: string[]) => Run | Promise<Run>): void {
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await cli([...args, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  test(`${mode}: a profile and a range of nodes, MAC and IP counted up; --show gives each value's origin`, async () => {
    const p = await cli(['profile', 'add', 'compute', '--image', 'docker://debian:12', '--kernel-args', 'console=ttyS0 quiet', '--tag', 'rack=a1', '--gateway', '10.7.0.1', '--netdev', 'eth0']);
    assert.equal(p.code, 0, p.stderr);
    const a = await cli(['node', 'add', 'c[01-04]', '--mac', '52:54:00:07:00:fe', '--ip', '10.7.0.11/24', '--profile', 'compute', '--tag', 'gpu=h100']);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stderr, /added 4 nodes: c01 \.\. c04/);
    const rows = (await json<ListRow[]>(['node', 'list', 'c[01-04]'])).map((r) => r.provision!);
    assert.deepEqual(rows.map((r) => r.node.name), ['c01', 'c02', 'c03', 'c04']);
    assert.deepEqual(rows.map((r) => r.resolved.network.default!.mac), ['52:54:00:07:00:fe', '52:54:00:07:00:ff', '52:54:00:07:01:00', '52:54:00:07:01:01']);
    assert.deepEqual(rows.map((r) => r.resolved.network.default!.ip), ['10.7.0.11/24', '10.7.0.12/24', '10.7.0.13/24', '10.7.0.14/24']);
    const c3 = rows[2]!.resolved;
    assert.equal(c3.network.default!.gateway, '10.7.0.1');
    assert.equal(c3.network.default!.device, 'eth0');
    assert.deepEqual(c3.tags, { rack: 'a1', gpu: 'h100' });
    assert.deepEqual(c3.kernelArgs, ['console=ttyS0', 'quiet']);
    assert.deepEqual(c3.systemOverlays, ['warren-system'], 'the default system overlay');
    const show = await cli(['node', 'list', '--show', 'c03']);
    assert.equal(show.code, 0, show.stderr);
    for (const re of [/image +docker:\/\/debian:12 +profile:compute/, /kernel-args +console=ttyS0 quiet +profile:compute/, /network\.default\.mac +52:54:00:07:01:00 +node/, /network\.default\.gateway +10\.7\.0\.1 +profile:compute/, /tags\.gpu +h100 +node/, /tags\.rack +a1 +profile:compute/, /system-overlays +warren-system +default/]) {
      assert.match(show.stdout, re);
    }
    const text = await cli(['node', 'list']);
    assert.match(text.stdout, /^NAME +STATE .* PROFILES +IMAGE +MAC +IP +BOOT/m);
    assert.match(text.stdout, /^c02 +- .* compute +docker:\/\/debian:12 +52:54:00:07:00:ff +10\.7\.0\.12\/24 +never/m, 'an inventory-only node shows dashes for its agent');
    const st = await json<{ name: string; boot: unknown }[]>(['node', 'status', 'c[01-02]']);
    assert.deepEqual(st.map((s) => [s.name, s.boot]), [['c01', null], ['c02', null]], 'never booted');
    const profiles = await cli(['profile', 'list']);
    assert.match(profiles.stdout, /^compute +4 +docker:\/\/debian:12/m, 'four nodes use it');
  });

  test(`${mode}: set changes every node of a range (addresses counted up again), --unset removes fields; a profile change shows at once`, async () => {
    assert.equal((await cli(['node', 'add', 's[1-3]', '--ip', '10.8.0.1/16', '--tag', 'x=1', '--comment', 'old'])).code, 0);
    const s = await cli(['node', 'set', 's[1-3]', '--ip', '10.8.1.1/16', '--unset', 'tags.x', '--unset', 'comment']);
    assert.equal(s.code, 0, s.stderr);
    const ib = await cli(['node', 'set', 's[1-3]', '--netname', 'ib', '--netdev', 'ib0', '--mtu', '2044']);
    assert.equal(ib.code, 0, ib.stderr);
    const rows = (await json<ListRow[]>(['node', 'list', 's[1-3]'])).map((r) => r.provision!.resolved);
    assert.deepEqual(rows.map((r) => r.network.default!.ip), ['10.8.1.1/16', '10.8.1.2/16', '10.8.1.3/16']);
    assert.deepEqual(rows[0]!.network.ib, { device: 'ib0', mtu: 2044 });
    assert.deepEqual(rows[0]!.tags, {});
    assert.equal(rows[0]!.origin.comment, 'default');
    // The old addresses are free again.
    assert.equal((await cli(['node', 'add', 's9', '--ip', '10.8.0.2'])).code, 0);
    assert.equal((await cli(['profile', 'add', 'small', '--kernel-args', 'quiet'])).code, 0);
    assert.equal((await cli(['node', 'set', 's1', '--profile', 'small'])).code, 0);
    assert.equal((await cli(['profile', 'set', 'small', '--kernel-args', 'console=ttyS1', '--image', 'docker://rockylinux:9'])).code, 0);
    const [v] = (await json<ListRow[]>(['node', 'list', 's1'])).map((r) => r.provision!.resolved);
    assert.equal(v!.image, 'docker://rockylinux:9');
    assert.equal(v!.origin.image, 'profile:small');
    assert.deepEqual(v!.kernelArgs, ['console=ttyS1']);
    refused(await cli(['node', 'set', 's1', '--unset', 'colour']), 'PROVISION_BAD_FIELD', /--unset colour: there is no such field/);
    refused(await cli(['node', 'set', 's[1-4]', '--comment', 'x']), 'PROVISION_NOT_FOUND', /no node s4/);
    refused(await cli(['node', 'set', 's1']), 'CLI_BAD_OPTION', /say what to change/);
  });

  test(`${mode}: bad input: duplicate IP or MAC, an overlapping range, an unknown profile, a bad MAC, a profile in use; nothing half written`, async () => {
    assert.equal((await cli(['node', 'add', 'd[1-2]', '--mac', '52:54:00:09:00:01', '--ip', '10.9.0.1'])).code, 0);
    refused(await cli(['node', 'add', 'd9', '--ip', '10.9.0.2/16']), 'PROVISION_DUPLICATE', /nodes d2 and d9 would both have IP 10\.9\.0\.2/);
    refused(await cli(['node', 'add', 'd9', '--mac', '52-54-00-09-00-01']), 'PROVISION_DUPLICATE', /nodes d1 and d9 would both have MAC 52:54:00:09:00:01/);
    // A range whose counted-up MACs run into another node's: none of it is written.
    refused(await cli(['node', 'add', 'e[1-3]', '--mac', '52:54:00:08:ff:ff', '--ip', '10.9.1.1']), 'PROVISION_DUPLICATE');
    refused(await cli(['node', 'add', 'e[1-3]', '--mac', '52:54:00:09:00:00']), 'PROVISION_DUPLICATE', /d1 and e2 would both have MAC 52:54:00:09:00:01/);
    refused(await cli(['node', 'add', 'd[1-4]', '--mac', '52:54:00:0a:00:01']), 'PROVISION_EXISTS', /nodes d1, d2 are already in the inventory; nothing was added/);
    const after1 = await json<ListRow[]>(['node', 'list']);
    assert.ok(!after1.some((r) => ['d3', 'd4', 'e1', 'e2', 'e3', 'd9'].includes(r.name)), 'no node of a refused add was written');
    refused(await cli(['node', 'add', 'd5', '--profile', 'nosuch']), 'PROVISION_PROFILE_UNKNOWN', /node d5 uses profile nosuch/);
    refused(await cli(['node', 'add', 'd5', '--mac', '52:54:00:zz:00:01']), 'PROVISION_BAD_ADDRESS', /not a MAC address/);
    refused(await cli(['node', 'add', 'd5', '--mac', '01:00:5e:00:00:01']), 'PROVISION_BAD_ADDRESS', /multicast/);
    refused(await cli(['node', 'add', 'd5', '--ip', '10.9.0.300']), 'PROVISION_BAD_ADDRESS');
    refused(await cli(['node', 'add', 'f[1-300]', '--ip', '10.9.5.1/24']), 'PROVISION_BAD_ADDRESS', /outside 10\.9\.5\.0\/24/);
    refused(await cli(['node', 'add', 'n[5-1]']), 'PROVISION_BAD_RANGE', /counts down/);
    refused(await cli(['node', 'add', 'Bad_Name']), 'PROVISION_BAD_NAME');
    refused(await cli(['node', 'add', 'd5', '--tag', 'novalue']), 'PROVISION_BAD_FIELD', /--tag takes KEY=VALUE/);
    refused(await cli(['node', 'add', 'd5', '--mtu', '20']), 'PROVISION_BAD_FIELD', /--mtu 20 is not an MTU/);
    const pmac = await cli(['profile', 'add', 'pmac', '--mac', '52:54:00:00:00:01']);
    assert.equal(pmac.code, 2, 'a profile has no MAC');
    assert.match(pmac.stderr, /unknown option '--mac'/);
    assert.equal((await cli(['profile', 'add', 'used'])).code, 0);
    refused(await cli(['profile', 'add', 'used']), 'PROVISION_EXISTS', /profile used/);
    assert.equal((await cli(['node', 'set', 'd[1-2]', '--profile', 'used'])).code, 0);
    refused(await cli(['profile', 'delete', 'used']), 'PROVISION_PROFILE_IN_USE', /used by nodes d1, d2/);
    refused(await cli(['profile', 'delete', 'nosuch']), 'PROVISION_NOT_FOUND');
    refused(await cli(['profile', 'set', 'nosuch', '--image', 'x']), 'PROVISION_NOT_FOUND');
    refused(await cli(['node', 'list', '--show', 'nosuch']), 'PROVISION_NOT_FOUND');
    refused(await cli(['node', 'list', 'zz[1-2]']), 'PROVISION_NOT_FOUND', /zz1, zz2/);
    // Several nodes need --yes (no terminal here); a name in neither inventory nor cluster refuses all.
    refused(await cli(['node', 'delete', 'd[1-2]']), 'CLI_BAD_OPTION', /needs --yes/);
    refused(await cli(['node', 'delete', 'd[1-3]', '--yes']), 'PROVISION_NOT_FOUND', /d3/);
    assert.equal((await json<ListRow[]>(['node', 'list', 'd[1-2]'])).length, 2, 'nothing deleted');
    const del = await cli(['node', 'delete', 'd[1-2]', '--yes']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await cli(['profile', 'delete', 'used'])).code, 0, 'no node uses it now');
    assert.equal((await cli(['node', 'add', 'd1', '--mac', '52:54:00:09:00:01', '--ip', '10.9.0.1'])).code, 0, "a deleted node's addresses are free");
  });
}

describe('inventory CLI, embedded', () => {
  const t = tempDir('warren-inv-');
  after(t.cleanup);
  const env = { ...process.env, WARREN_HOME: join(t.dir, 'home'), XDG_CONFIG_HOME: join(t.dir, 'cfg'), WARREN_CONTEXT: '' };
  const cli = (args: string[]): Run => {
    const r = spawnSync(process.execPath, [warrenBin, ...args], { env, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  inventoryCases('embedded', cli);

  test('embedded: node status shows what the boot service recorded; drain needs a server', async () => {
    const { SqliteStore } = await import('../../src/store/index.js');
    assert.equal(cli(['node', 'add', 'b1', '--mac', '52:54:00:0b:00:01']).code, 0);
    const s = new SqliteStore(join(t.dir, 'home', 'warren.db'));
    const now = Date.now();
    await s.patchBootStatus('b1', { lastRequestAt: now - 5000, lastRequest: '/provision/overlays/runtime.cpio.gz', from: '10.0.0.5', bootedAt: now - 60_000, imageDigest: 'sha256:0123456789abcdef', systemOverlayAt: now - 59_000, runtimeOverlayAt: now - 5000 });
    await s.close();
    const st = cli(['node', 'status', 'b1']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^b1 +up \S+ ago +\/provision\/overlays\/runtime\.cpio\.gz +\S+ ago +10\.0\.0\.5 +0123456789ab +1m\S* ago +\S+ ago$/m);
    const j = JSON.parse(cli(['node', 'status', 'b1', '--json']).stdout) as { boot: { imageDigest: string } }[];
    assert.equal(j[0]!.boot.imageDigest, 'sha256:0123456789abcdef');
    refused(cli(['node', 'drain', 'b1']), 'CLI_NEEDS_SERVER');
  });
});

describe('inventory CLI, against a warren server', () => {
  let c: TestCluster;
  before(async () => {
    c = await TestCluster.start({ agents: 0 });
  });
  after(async () => {
    await c?.close();
  });
  inventoryCases('server', (args) => c.cli(args));

  test('server: admins only; an agent joining as an inventory node gets its tags under its own labels', { timeout: 60_000 }, async () => {
    const u = await c.cli(['user', 'add', 'bob', '--unix-user', 'root']);
    assert.equal(u.code, 0, u.stderr);
    assert.equal((await c.cli(['context', 'add', 'bob', '--server', c.url, '--token', u.stdout.trim(), '--ca', c.caFile])).code, 0);
    refused(await c.cli(['node', 'add', 'x1'], { context: 'bob' }), 'AUTH_FORBIDDEN');
    refused(await c.cli(['profile', 'list'], { context: 'bob' }), 'AUTH_FORBIDDEN');
    assert.equal((await c.cli(['profile', 'add', 'gpu', '--tag', 'rack=r9', '--tag', 'gpu=h100'])).code, 0);
    assert.equal((await c.cli(['node', 'add', 'n1', '--profile', 'gpu', '--tag', 'zone=z1', '--mac', '52:54:00:0c:00:01'])).code, 0);
    const tok = await c.cli(['token', 'create', '--ttl', '5m']);
    assert.equal(tok.code, 0, tok.stderr);
    c.agents.push(null);
    c.agentLogs.push('');
    const o = c.o as { agentArgs?: (i: number) => string[] };
    o.agentArgs = () => ['--labels', 'gpu=a100,own=yes'];
    await c.startAgent(0, tok.stdout.trim());
    await c.waitReady(1);
    const rows = JSON.parse((await c.cli(['node', 'list', '--json'])).stdout) as ListRow[];
    const n1 = rows.find((r) => r.name === 'n1')!;
    assert.equal(n1.state, 'ready');
    assert.deepEqual(n1.labels, { rack: 'r9', gpu: 'a100', zone: 'z1', own: 'yes' }, "the inventory's tags, the agent's own labels over them");
    assert.equal(n1.provision?.node.name, 'n1', 'one row: the agent and its inventory node');
    const text = await c.cli(['node', 'list', 'n1']);
    assert.match(text.stdout, /^n1 +ready +0\/2 .* gpu +- +52:54:00:0c:00:01 +- +never +.*own=yes/m);
    // delete takes the node out of both.
    const del = await c.cli(['node', 'delete', 'n1']);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stderr, /deleted node n1 \(inventory: 1, cluster: 1\)/);
    const after = JSON.parse((await c.cli(['node', 'list', '--json'])).stdout) as ListRow[];
    assert.ok(!after.some((r) => r.name === 'n1' && (r.provision || r.state === 'ready')));
  });
});
