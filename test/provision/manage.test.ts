// The inventory's verbs (src/provision/manage.ts) on a real store (SQLite in memory): how flags
// become fields (ranges counted up, interfaces by name, lists replaced, tags merged, --unset),
// the defaults, and each bad field refused with PROVISION_BAD_FIELD and a hint, writing nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteStore } from '../../src/store/index.js';
import { addNodes, addProfile, deleteNodes, deleteProfile, listNodeViews, setNodes, setProfile } from '../../src/provision/index.js';

const code = (c: string, re?: RegExp) => (e: unknown) => {
  const w = e as { code?: string; message?: string; hint?: string };
  assert.equal(w.code, c, `expected ${c}, got ${w.code}: ${w.message}`);
  if (re) assert.match(w.message ?? '', re);
  assert.ok(w.hint, 'with a hint');
  return true;
};

const open = () => new SqliteStore(':memory:', { reserveBytes: 0 });

test('add and set: addresses counted up on both, interfaces by --netname, lists replaced, tags merged, --unset first', async () => {
  const s = open();
  try {
    const added = await addNodes(s, { names: 'n[1-3]', mac: '52:54:00:00:00:10', ip: '10.1.0.10/23', netdev: 'eth0', gateway: '10.1.0.1', tags: { a: '1', b: '2' }, kernelArgs: ['quiet'] }, 5);
    assert.deepEqual(added.map((n) => n.network), [
      { default: { device: 'eth0', mac: '52:54:00:00:00:10', ip: '10.1.0.10/23', gateway: '10.1.0.1' } },
      { default: { device: 'eth0', mac: '52:54:00:00:00:11', ip: '10.1.0.11/23', gateway: '10.1.0.1' } },
      { default: { device: 'eth0', mac: '52:54:00:00:00:12', ip: '10.1.0.12/23', gateway: '10.1.0.1' } },
    ]);
    assert.deepEqual([added[0]!.createdAt, added[0]!.updatedAt], [5, 5]);
    // n3 would get 10.1.1.255, the broadcast address of 10.1.0.0/23: refused, nothing changed.
    const change = { netname: 'ib', netdev: 'ib0', tags: { b: '3', c: '4' }, kernelArgs: ['console=ttyS1'], unset: ['tags.a', 'network.default.gateway'] };
    await assert.rejects(setNodes(s, { names: 'n[2-3]', ip: '10.1.1.254/23', ...change }), code('PROVISION_BAD_ADDRESS', /node 2 would get 10\.1\.1\.255/));
    const [n2] = await listNodeViews(s, 'n2');
    assert.equal(n2!.node.network!.ib, undefined, 'the refused set changed nothing');
    const ok = await setNodes(s, { names: 'n[2-3]', ip: '10.1.1.100/23', ...change }, 9);
    assert.deepEqual(ok[0]!.network, { default: { device: 'eth0', mac: '52:54:00:00:00:11', ip: '10.1.0.11/23' }, ib: { device: 'ib0', ip: '10.1.1.100/23' } });
    assert.equal(ok[1]!.network!.ib!.ip, '10.1.1.101/23');
    assert.deepEqual(ok[0]!.tags, { b: '3', c: '4' }, 'tags.a unset, b changed, c added');
    assert.deepEqual(ok[0]!.kernelArgs, ['console=ttyS1'], 'a list is replaced');
    assert.deepEqual([ok[0]!.createdAt, ok[0]!.updatedAt], [5, 9]);
    const [n1] = await listNodeViews(s, 'n1');
    assert.deepEqual(n1!.node.tags, { a: '1', b: '2' }, 'n1 was not in the range');
    await assert.rejects(setNodes(s, { names: 'n[3-4]', comment: 'x' }), code('PROVISION_NOT_FOUND', /no node n4/));
  } finally {
    await s.close();
  }
});

test('--unset: every field path, profiles on nodes; an unknown one is PROVISION_BAD_FIELD', async () => {
  const s = open();
  try {
    await addProfile(s, { name: 'p', kernelArgs: ['quiet'] });
    await addNodes(s, { names: 'u1', profiles: ['p'], image: 'docker://x', kernel: '6.1', comment: 'c', sshKeys: ['ssh-ed25519 AAAAC3Nza me@h'], systemOverlays: ['a'], runtimeOverlays: ['b'], mac: '52:54:00:00:01:01', mtu: 9000, tags: { k: 'v' } });
    const [u] = await setNodes(s, { names: 'u1', unset: ['image', 'kernel', 'comment', 'ssh-keys', 'system-overlays', 'runtime-overlays', 'network.default.mtu', 'tags', 'profiles'] });
    assert.deepEqual(u, { name: 'u1', profiles: [], createdAt: u!.createdAt, updatedAt: u!.updatedAt, network: { default: { mac: '52:54:00:00:01:01' } } });
    const [u2] = await setNodes(s, { names: 'u1', unset: ['network.default'] });
    assert.equal(u2!.network, undefined, 'an empty network is no network');
    await deleteProfile(s, 'p');
    for (const bad of ['colour', 'tags.a.b', 'network.default.speed', 'network.a.b.c', 'image.x']) {
      await assert.rejects(setNodes(s, { names: 'u1', unset: [bad] }), code('PROVISION_BAD_FIELD', new RegExp(`--unset ${bad.replace(/\./g, '\\.')}`)));
    }
    await assert.rejects(setProfile(s, { name: 'nosuch', image: 'x' }), code('PROVISION_NOT_FOUND'));
    await addProfile(s, { name: 'q', image: 'y' });
    await assert.rejects(setProfile(s, { name: 'q', unset: ['profiles'] }), code('PROVISION_BAD_FIELD'), 'a profile has no profiles');
    assert.equal((await setProfile(s, { name: 'q', unset: ['image'] })).image, undefined);
  } finally {
    await s.close();
  }
});

test('bad field values are PROVISION_BAD_FIELD with a hint, and nothing is written', async () => {
  const s = open();
  try {
    const bad: [Parameters<typeof addNodes>[1], RegExp][] = [
      [{ names: 'b1', tags: { 'a b': 'x' } }, /tag a b=x is not a label/],
      [{ names: 'b1', tags: { a: 'x,y' } }, /tag a=x,y/],
      [{ names: 'b1', kernelArgs: ['a b'] }, /holds a space/],
      [{ names: 'b1', systemOverlays: ['../etc'] }, /not an overlay name/],
      [{ names: 'b1', sshKeys: ['hello'] }, /not an SSH public key/],
      [{ names: 'b1', netdev: 'a-very-long-interface-name' }, /not an interface name/],
      [{ names: 'b1', netname: 'ib' }, /--netname ib without a network field/],
      [{ names: 'b1', gateway: '10.0.0.1/24' }, /has a prefix length/],
      [{ names: 'b1', dns: ['10.0.0.53/32'] }, /has a prefix length/],
      [{ names: 'b1', mtu: 67 }, /not an MTU/],
      [{ names: 'b1', image: ' ' }, /--image takes one line/],
      [{ names: 'b1', comment: 'a\nb' }, /--comment/],
    ];
    for (const [req, re] of bad) await assert.rejects(addNodes(s, req), code('PROVISION_BAD_FIELD', re), JSON.stringify(req));
    await assert.rejects(addNodes(s, { names: 'b1', dns: ['nameserver'] }), code('PROVISION_BAD_ADDRESS'));
    await assert.rejects(addProfile(s, { name: 'pr', mac: '52:54:00:00:00:01' }), code('PROVISION_BAD_FIELD', /a profile has no MAC/));
    await assert.rejects(addProfile(s, { name: 'pr', ip: '10.0.0.1' }), code('PROVISION_BAD_FIELD', /no IP/));
    await assert.rejects(addProfile(s, { name: 'Pr' }), code('PROVISION_BAD_NAME', /profile name/));
    assert.deepEqual(await s.listInventoryNodes(), []);
    assert.deepEqual(await s.listProfiles(), []);
  } finally {
    await s.close();
  }
});

test('views: defaults where nothing is set; names must exist unless missingOk; delete all or none', async () => {
  const s = open();
  try {
    await addNodes(s, { names: 'v[1-2]' });
    const [v] = await listNodeViews(s, 'v1');
    assert.deepEqual([v!.resolved.systemOverlays, v!.resolved.runtimeOverlays, v!.resolved.kernelArgs], [['warren-system'], ['warren-runtime'], ['console=ttyS0']]);
    assert.equal(v!.resolved.origin.systemOverlays, 'default');
    assert.equal(v!.boot, null);
    await s.patchBootStatus('v1', { bootedAt: 7 });
    assert.equal((await listNodeViews(s, 'v1'))[0]!.boot?.bootedAt, 7);
    await assert.rejects(listNodeViews(s, 'v[1-3]'), code('PROVISION_NOT_FOUND', /no node v3/));
    assert.deepEqual((await listNodeViews(s, 'v[1-3]', { missingOk: true })).map((x) => x.node.name), ['v1', 'v2']);
    assert.equal((await listNodeViews(s)).length, 2);
    await assert.rejects(deleteNodes(s, 'v[1-3]'), code('PROVISION_NOT_FOUND', /v3/));
    assert.equal((await s.listInventoryNodes()).length, 2, 'nothing deleted');
    assert.deepEqual(await deleteNodes(s, 'v[1-3]', { missingOk: true }), { deleted: ['v1', 'v2'] });
    assert.equal(await s.getBootStatus('v1'), undefined);
    await assert.rejects(deleteProfile(s, 'nosuch'), code('PROVISION_NOT_FOUND'));
  } finally {
    await s.close();
  }
});
