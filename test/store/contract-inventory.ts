// The store contract of the provisioning inventory (schema v8): both stores run it, through
// storeContract (test/store/contract.ts). Every test uses names and addresses of its own, so
// the tests share one database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from '../../src/store/index.js';
import type { InventoryNode, ProfileRecord } from '../../src/provision/index.js';

const code = (c: string, re?: RegExp) => (e: unknown) => {
  const w = e as { code?: string; message?: string };
  assert.equal(w.code, c, `expected ${c}, got ${w.code}: ${w.message}`);
  if (re) assert.match(w.message ?? '', re);
  return true;
};

/** Names and addresses no other test uses: n-<u>-1.., MACs 52:54:xx:xx:xx:01.., IPs 10.x.y.1.. */
function ids(uniq: () => string) {
  const u = uniq().slice(0, 6).toLowerCase().replace(/[^0-9a-f]/g, '0');
  const b = (i: number) => parseInt(u.slice(i, i + 2), 16);
  return {
    u,
    name: (i: number) => `n-${u}-${i}`,
    mac: (i: number) => `52:54:${u.slice(0, 2)}:${u.slice(2, 4)}:${u.slice(4, 6)}:${i.toString(16).padStart(2, '0')}`,
    ip: (i: number) => `10.${b(0)}.${b(2)}.${i}`,
  };
}

function inv(name: string, extra: Partial<InventoryNode> = {}): InventoryNode {
  return { name, profiles: [], createdAt: 1_000, updatedAt: 1_000, ...extra };
}

const prof = (name: string, extra: Partial<ProfileRecord> = {}): ProfileRecord => ({ name, createdAt: 1_000, updatedAt: 1_000, ...extra });

export function inventoryContract(name: string, open: () => Promise<Store>, uniq: () => string): void {
  test(`${name}: inventory nodes round-trip with their fields, profiles in order, looked up by MAC`, async () => {
    const s = await open();
    try {
      const x = ids(uniq);
      await s.putProfile(prof(`p-${x.u}-a`, { kernelArgs: ['quiet'], tags: { rack: 'a' } }), 'create');
      await s.putProfile(prof(`p-${x.u}-b`, { image: 'docker://debian:12' }), 'create');
      const n1 = inv(x.name(1), {
        profiles: [`p-${x.u}-b`, `p-${x.u}-a`],
        network: { default: { device: 'eth0', mac: x.mac(1).toUpperCase(), ip: `${x.ip(1)}/24`, gateway: x.ip(254), primary: true }, ib0: { ip: `${x.ip(101)}/16`, mtu: 2044 } },
        tags: { gpu: 'h100' },
        sshKeys: ['ssh-ed25519 AAAA me'],
        comment: 'first',
      });
      await s.putInventoryNodes([n1, inv(x.name(2), { network: { default: { mac: x.mac(2) } } })], 'create');
      assert.deepEqual(await s.getInventoryNode(x.name(1)), n1, 'every field as written, profiles in their order');
      assert.equal(await s.getInventoryNode(`n-${x.u}-none`), undefined);
      assert.equal((await s.inventoryNodeByMac(x.mac(1)))?.name, x.name(1), 'the MAC is found whatever case it was written in');
      assert.equal((await s.inventoryNodeByMac(x.mac(2).toUpperCase()))?.name, x.name(2));
      assert.equal(await s.inventoryNodeByMac(x.mac(99)), undefined);
      const all = (await s.listInventoryNodes()).map((n) => n.name).filter((n) => n.includes(x.u));
      assert.deepEqual(all, [x.name(1), x.name(2)], 'by name');
      // replace: new fields, and the old MAC is free again.
      await s.putInventoryNodes([{ ...n1, network: { default: { mac: x.mac(3) } }, profiles: [`p-${x.u}-a`], updatedAt: 2_000 }], 'replace');
      const got = await s.getInventoryNode(x.name(1));
      assert.deepEqual(got?.profiles, [`p-${x.u}-a`]);
      assert.equal(got?.createdAt, 1_000, 'created stays');
      assert.equal(got?.updatedAt, 2_000);
      assert.equal(await s.inventoryNodeByMac(x.mac(1)), undefined, 'the old MAC went with the replace');
      await s.putInventoryNodes([inv(x.name(4), { network: { default: { mac: x.mac(1), ip: x.ip(1) } } })], 'create');
      assert.equal((await s.inventoryNodeByMac(x.mac(1)))?.name, x.name(4), 'and another node may take it');
    } finally {
      await s.close();
    }
  });

  test(`${name}: create refuses names taken (naming every one), replace refuses names missing; nothing half written`, async () => {
    const s = await open();
    try {
      const x = ids(uniq);
      await s.putInventoryNodes([inv(x.name(2)), inv(x.name(3))], 'create');
      const batch = [1, 2, 3, 4].map((i) => inv(x.name(i), { network: { default: { mac: x.mac(i) } } }));
      await assert.rejects(s.putInventoryNodes(batch, 'create'), code('PROVISION_EXISTS', new RegExp(`${x.name(2)}, ${x.name(3)}`)));
      assert.equal(await s.getInventoryNode(x.name(1)), undefined, 'the first of the batch was not written');
      assert.equal(await s.inventoryNodeByMac(x.mac(1)), undefined);
      await assert.rejects(s.putInventoryNodes([inv(x.name(2), { comment: 'x' }), inv(x.name(9))], 'replace'), code('PROVISION_NOT_FOUND', new RegExp(x.name(9))));
      assert.equal((await s.getInventoryNode(x.name(2)))?.comment, undefined, 'the existing one was not changed');
      await assert.rejects(s.putInventoryNodes([inv(x.name(7)), inv(x.name(7))], 'create'), code('PROVISION_DUPLICATE', /twice/));
      await assert.rejects(s.putInventoryNodes([inv('Not_A_Name')], 'create'), code('PROVISION_BAD_NAME'));
    } finally {
      await s.close();
    }
  });

  test(`${name}: one MAC or one IP on two nodes is PROVISION_DUPLICATE naming both (against the store and within a batch)`, async () => {
    const s = await open();
    try {
      const x = ids(uniq);
      await s.putInventoryNodes([inv(x.name(1), { network: { default: { mac: x.mac(1), ip: `${x.ip(1)}/24` } } })], 'create');
      // The same IP with another prefix is the same address.
      await assert.rejects(
        s.putInventoryNodes([inv(x.name(5), { network: { default: { mac: x.mac(5) } } }), inv(x.name(2), { network: { eth1: { ip: `${x.ip(1)}/16` } } })], 'create'),
        (e: unknown) => code('PROVISION_DUPLICATE', new RegExp(`${x.name(1)} and ${x.name(2)} would both have IP ${x.ip(1).replace(/\./g, '\\.')}`))(e) && (e as { details?: { nodes?: string[] } }).details?.nodes?.length === 2,
      );
      assert.equal(await s.getInventoryNode(x.name(5)), undefined, 'nothing of the batch was written');
      await assert.rejects(s.putInventoryNodes([inv(x.name(2), { network: { default: { mac: x.mac(1).toUpperCase().replace(/:/g, '-') } } })], 'create'), code('PROVISION_DUPLICATE', new RegExp(`MAC ${x.mac(1)}`)));
      await assert.rejects(
        s.putInventoryNodes([inv(x.name(2), { network: { default: { mac: x.mac(2) } } }), inv(x.name(3), { network: { default: { mac: x.mac(2) } } })], 'create'),
        code('PROVISION_DUPLICATE', new RegExp(`${x.name(2)} and ${x.name(3)} would both have MAC`)),
      );
      await assert.rejects(s.putInventoryNodes([inv(x.name(2), { network: { a: { ip: x.ip(7) }, b: { ip: x.ip(7) } } })], 'create'), code('PROVISION_DUPLICATE', /on two interfaces/));
      await assert.rejects(s.putInventoryNodes([inv(x.name(2), { network: { a: { mac: 'zz:00' } } })], 'create'), code('PROVISION_BAD_ADDRESS'));
      // A replace may swap two nodes' MACs in one batch.
      await s.putInventoryNodes([inv(x.name(2), { network: { default: { mac: x.mac(2) } } })], 'create');
      await s.putInventoryNodes(
        [inv(x.name(1), { network: { default: { mac: x.mac(2), ip: x.ip(1) } } }), inv(x.name(2), { network: { default: { mac: x.mac(1) } } })],
        'replace',
      );
      assert.equal((await s.inventoryNodeByMac(x.mac(1)))?.name, x.name(2));
      assert.equal((await s.inventoryNodeByMac(x.mac(2)))?.name, x.name(1));
      // But not take a third node's.
      await s.putInventoryNodes([inv(x.name(3), { network: { default: { mac: x.mac(3) } } })], 'create');
      await assert.rejects(s.putInventoryNodes([inv(x.name(1), { network: { default: { mac: x.mac(3) } } })], 'replace'), code('PROVISION_DUPLICATE', new RegExp(`${x.name(3)} and ${x.name(1)}`)));
      assert.equal((await s.inventoryNodeByMac(x.mac(2)))?.name, x.name(1), 'the refused replace changed nothing');
    } finally {
      await s.close();
    }
  });

  test(`${name}: a batch of 2000 nodes is one write; a duplicate at its end leaves none of it`, async () => {
    const s = await open();
    try {
      const x = ids(uniq);
      const mk = (i: number) => inv(`b-${x.u}-${i}`, { network: { default: { mac: `52:54:${x.u.slice(0, 2)}:${x.u.slice(2, 4)}:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` } } });
      const batch = Array.from({ length: 2000 }, (_, i) => mk(i));
      const bad = [...batch, inv(`b-${x.u}-x`, { network: { default: batch[0]!.network!.default! } })];
      await assert.rejects(s.putInventoryNodes(bad, 'create'), code('PROVISION_DUPLICATE', new RegExp(`b-${x.u}-0 and b-${x.u}-x`)));
      assert.equal((await s.listInventoryNodes()).filter((n) => n.name.startsWith(`b-${x.u}-`)).length, 0);
      await s.putInventoryNodes(batch, 'create');
      assert.equal((await s.listInventoryNodes()).filter((n) => n.name.startsWith(`b-${x.u}-`)).length, 2000);
      assert.equal(await s.deleteInventoryNodes(batch.map((n) => n.name)), 2000);
      assert.equal(await s.inventoryNodeByMac(batch[5]!.network!.default!.mac!), undefined, 'their addresses went with them');
    } finally {
      await s.close();
    }
  });

  test(`${name}: profiles: create, replace, refused in use (naming the nodes), unknown to a node`, async () => {
    const s = await open();
    try {
      const x = ids(uniq);
      const p = `p-${x.u}`;
      await s.putProfile(prof(p, { kernelArgs: ['console=ttyS0'], network: { default: { gateway: '10.0.0.1' } } }), 'create');
      await assert.rejects(s.putProfile(prof(p), 'create'), code('PROVISION_EXISTS', new RegExp(p)));
      await assert.rejects(s.putProfile(prof(`${p}-none`), 'replace'), code('PROVISION_NOT_FOUND', new RegExp(`${p}-none`)));
      await s.putProfile(prof(p, { image: 'docker://rockylinux:9', updatedAt: 3_000 }), 'replace');
      const got = await s.getProfile(p);
      assert.equal(got?.image, 'docker://rockylinux:9');
      assert.equal(got?.kernelArgs, undefined, 'replace sets every field');
      assert.equal(got?.createdAt, 1_000);
      assert.equal(got?.updatedAt, 3_000);
      assert.ok((await s.listProfiles()).some((r) => r.name === p));
      await assert.rejects(s.putInventoryNodes([inv(x.name(1), { profiles: [p, `${p}-gone`] })], 'create'), code('PROVISION_PROFILE_UNKNOWN', new RegExp(`${x.name(1)} uses profile ${p}-gone`)));
      assert.equal(await s.getInventoryNode(x.name(1)), undefined);
      await s.putInventoryNodes([inv(x.name(1), { profiles: [p] }), inv(x.name(2), { profiles: [p] })], 'create');
      await assert.rejects(s.deleteProfile(p), code('PROVISION_PROFILE_IN_USE', new RegExp(`${x.name(1)}, ${x.name(2)}`)));
      assert.ok(await s.getProfile(p), 'still there');
      await s.putInventoryNodes([inv(x.name(1))], 'replace');
      await s.deleteInventoryNodes([x.name(2)]);
      assert.equal(await s.deleteProfile(p), true, 'no node uses it any more');
      assert.equal(await s.deleteProfile(p), false);
      assert.equal(await s.getProfile(p), undefined);
    } finally {
      await s.close();
    }
  });

  test(`${name}: boot status: patched field by field, only for inventory nodes, gone with the node`, async () => {
    const s = await open();
    try {
      const x = ids(uniq);
      await s.putInventoryNodes([inv(x.name(1)), inv(x.name(2))], 'create');
      assert.equal(await s.getBootStatus(x.name(1)), undefined);
      await s.patchBootStatus(x.name(1), { lastRequestAt: 10, lastRequest: '/provision/ipxe', from: '10.0.0.5', bootedAt: 10, imageDigest: 'sha256:ab' });
      await s.patchBootStatus(x.name(1), { lastRequestAt: 20, lastRequest: '/provision/overlays/runtime.cpio.gz', runtimeOverlayAt: 20 });
      assert.deepEqual(await s.getBootStatus(x.name(1)), {
        lastRequestAt: 20, lastRequest: '/provision/overlays/runtime.cpio.gz', from: '10.0.0.5', bootedAt: 10, imageDigest: 'sha256:ab', systemOverlayAt: null, runtimeOverlayAt: 20,
      });
      await s.patchBootStatus(`n-${x.u}-none`, { lastRequestAt: 5 });
      assert.equal(await s.getBootStatus(`n-${x.u}-none`), undefined, 'a node not in the inventory is ignored');
      await s.patchBootStatus(x.name(2), {});
      assert.equal(await s.getBootStatus(x.name(2)), undefined, 'an empty patch makes nothing');
      const all = await s.listBootStatus();
      assert.equal(all.get(x.name(1))?.lastRequestAt, 20);
      assert.equal(all.has(x.name(2)), false);
      assert.equal(await s.deleteInventoryNodes([x.name(1), x.name(2), `n-${x.u}-none`]), 2);
      assert.equal(await s.getBootStatus(x.name(1)), undefined, 'its status went with it');
      await s.putInventoryNodes([inv(x.name(1))], 'create');
      assert.equal(await s.getBootStatus(x.name(1)), undefined, 'a new node of that name starts without one');
      assert.equal(await s.deleteInventoryNodes([]), 0);
    } finally {
      await s.close();
    }
  });
}
