// The inventory's pure rules (src/provision/inventory.ts): ranges, addresses counted up, MAC and
// IP parsing, and profiles applied to a node with the origin of every value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_RANGE, checkName, expandRange, normalizeMac, nthAddress, nthMac, parseIp, resolveNode, type InventoryNode, type ProfileRecord } from '../../src/provision/index.js';

const code = (c: string, re?: RegExp) => (e: unknown) => {
  const w = e as { code?: string; message?: string; hint?: string };
  assert.equal(w.code, c, `expected ${c}, got ${w.code}: ${w.message}`);
  if (re) assert.match(w.message ?? '', re);
  assert.ok(w.hint, 'every refusal says what to do next');
  return true;
};

test('ranges: padded bounds, lists, several groups, comma-separated ranges, in order', () => {
  assert.deepEqual(expandRange('n001'), ['n001']);
  assert.deepEqual(expandRange('n[001-003]'), ['n001', 'n002', 'n003']);
  assert.deepEqual(expandRange('n[8-11]'), ['n8', 'n9', 'n10', 'n11'], 'no padding without a leading zero');
  assert.deepEqual(expandRange('n[098-101]'), ['n098', 'n099', 'n100', 'n101'], 'the width of the first bound pads');
  assert.deepEqual(expandRange('n[1-3,7]'), ['n1', 'n2', 'n3', 'n7']);
  assert.deepEqual(expandRange('r[1-2]n[1-2]'), ['r1n1', 'r1n2', 'r2n1', 'r2n2']);
  assert.deepEqual(expandRange('gpu[1-2]-a'), ['gpu1-a', 'gpu2-a']);
  assert.deepEqual(expandRange('login,n[1-2]'), ['login', 'n1', 'n2']);
  assert.equal(expandRange('n[00001-65536]').length, 65536);
});

test('ranges: bad ones are PROVISION_BAD_RANGE with what is wrong; bad names PROVISION_BAD_NAME', () => {
  assert.throws(() => expandRange('n[3-1]'), code('PROVISION_BAD_RANGE', /3-1 counts down/));
  assert.throws(() => expandRange('n[1-3'), code('PROVISION_BAD_RANGE', /not closed/));
  assert.throws(() => expandRange('n1-3]'), code('PROVISION_BAD_RANGE'));
  assert.throws(() => expandRange('n[[1-2]]'), code('PROVISION_BAD_RANGE', /nest/));
  assert.throws(() => expandRange('n[a-b]'), code('PROVISION_BAD_RANGE', /not a number/));
  assert.throws(() => expandRange('n[1-2],n2'), code('PROVISION_BAD_RANGE', /n2 appears twice/));
  assert.throws(() => expandRange('a,,b'), code('PROVISION_BAD_RANGE', /empty/));
  assert.throws(() => expandRange('n[0-65536]'), code('PROVISION_BAD_RANGE', new RegExp(`more than ${MAX_RANGE}`)));
  assert.throws(() => expandRange('[1-300]x[1-300]'), code('PROVISION_BAD_RANGE', /more than/));
  assert.throws(() => expandRange('N[1-2]'), code('PROVISION_BAD_NAME', /"N1"/));
  assert.throws(() => checkName('-n1'), code('PROVISION_BAD_NAME'));
  assert.throws(() => checkName('a'.repeat(64)), code('PROVISION_BAD_NAME'));
  assert.throws(() => checkName('n_1', 'profile'), code('PROVISION_BAD_NAME', /profile name/));
  checkName('a'.repeat(63));
});

test('MACs: normalized; not six pairs or multicast refused', () => {
  assert.equal(normalizeMac('52-54-00-AB-cd-EF'), '52:54:00:ab:cd:ef');
  assert.equal(normalizeMac(' 52:54:00:00:00:01 '), '52:54:00:00:00:01');
  assert.throws(() => normalizeMac('52:54:00:00:00'), code('PROVISION_BAD_ADDRESS', /not a MAC/));
  assert.throws(() => normalizeMac('52:54:00:00:00:0g'), code('PROVISION_BAD_ADDRESS'));
  assert.throws(() => normalizeMac('01:00:5e:00:00:01'), code('PROVISION_BAD_ADDRESS', /multicast/));
});

test('MACs count up across octets, within the first octet', () => {
  assert.equal(nthMac('52:54:00:00:00:fe', 0), '52:54:00:00:00:fe');
  assert.equal(nthMac('52:54:00:00:00:fe', 1), '52:54:00:00:00:ff');
  assert.equal(nthMac('52:54:00:00:00:fe', 2), '52:54:00:00:01:00', 'carries into the next octet');
  assert.equal(nthMac('52:54:00:ff:ff:ff', 1), '52:54:01:00:00:00');
  assert.throws(() => nthMac('52:ff:ff:ff:ff:ff', 1), code('PROVISION_BAD_ADDRESS', /changes the first octet/));
});

test('IPs: ADDRESS[/PREFIX], default /24; counted up inside the subnet, never its broadcast', () => {
  assert.deepEqual(parseIp('10.0.0.11'), { ip: '10.0.0.11', prefix: 24, value: 0x0a00000b });
  assert.equal(parseIp('10.0.0.11/16').prefix, 16);
  for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.1/33', '10.0.0.1/0', 'fe80::1', 'host', '10.0.0.1/']) {
    assert.throws(() => parseIp(bad), code('PROVISION_BAD_ADDRESS'), bad);
  }
  assert.equal(nthAddress('10.0.0.11', 0), '10.0.0.11/24');
  assert.equal(nthAddress('10.0.0.11/24', 243), '10.0.0.254/24', 'the last host address');
  assert.throws(() => nthAddress('10.0.0.11/24', 244), code('PROVISION_BAD_ADDRESS', /node 245 would get 10\.0\.0\.255, outside 10\.0\.0\.0\/24/));
  assert.equal(nthAddress('10.0.0.250/16', 10), '10.0.1.4/16', 'carries within a larger subnet');
  assert.equal(nthAddress('10.0.0.1/32', 0), '10.0.0.1/32');
  assert.throws(() => nthAddress('10.0.0.1/32', 1), code('PROVISION_BAD_ADDRESS'));
});

const prof = (name: string, f: Partial<ProfileRecord> = {}): ProfileRecord => ({ name, createdAt: 0, updatedAt: 0, ...f });
const node = (f: Partial<InventoryNode> = {}): InventoryNode => ({ name: 'n1', profiles: [], createdAt: 0, updatedAt: 0, ...f });

test('resolveNode: later profiles over earlier, the node over all; every value says where it came from', () => {
  const base = prof('base', { image: 'docker://debian:12', kernelArgs: ['console=ttyS0'], tags: { rack: 'a', site: 'x' }, network: { default: { gateway: '10.0.0.1', mtu: 1500, device: 'eth0' } }, comment: 'base' });
  const gpu = prof('gpu', { image: 'docker://debian:12-cuda', tags: { gpu: 'h100', rack: 'b' }, network: { default: { mtu: 9000 } }, sshKeys: ['ssh-ed25519 AAAA a'] });
  const r = resolveNode(node({ profiles: ['base', 'gpu'], tags: { rack: 'c' }, network: { default: { mac: '52:54:00:00:00:01', ip: '10.0.0.11/24' }, ib: { ip: '192.168.0.11/16' } }, kernel: '6.1.0-18-amd64' }), [base, gpu]);
  assert.equal(r.image, 'docker://debian:12-cuda');
  assert.equal(r.origin.image, 'profile:gpu');
  assert.deepEqual(r.kernelArgs, ['console=ttyS0']);
  assert.equal(r.origin.kernelArgs, 'profile:base');
  assert.equal(r.kernel, '6.1.0-18-amd64');
  assert.equal(r.origin.kernel, 'node');
  assert.deepEqual(r.tags, { rack: 'c', site: 'x', gpu: 'h100' }, 'tags merge key by key');
  assert.deepEqual([r.origin['tags.rack'], r.origin['tags.site'], r.origin['tags.gpu']], ['node', 'profile:base', 'profile:gpu']);
  assert.deepEqual(r.network.default, { gateway: '10.0.0.1', mtu: 9000, device: 'eth0', mac: '52:54:00:00:00:01', ip: '10.0.0.11/24' }, 'an interface merges field by field');
  assert.equal(r.origin['network.default.gateway'], 'profile:base');
  assert.equal(r.origin['network.default.mtu'], 'profile:gpu');
  assert.equal(r.origin['network.default.mac'], 'node');
  assert.equal(r.origin['network.ib.ip'], 'node');
  assert.equal(r.primary?.device, 'eth0', 'the first interface with a MAC is the primary, named by its device');
  assert.equal(r.primary?.mac, '52:54:00:00:00:01');
  assert.equal(r.comment, 'base');
  assert.deepEqual(r.sshKeys, ['ssh-ed25519 AAAA a']);
  assert.deepEqual([r.systemOverlays, r.origin.systemOverlays], [[], 'default'], 'what nobody set is default');
  // Order matters: the same profiles the other way round.
  const rev = resolveNode(node({ profiles: ['gpu', 'base'] }), new Map([['base', base], ['gpu', gpu]]));
  assert.equal(rev.image, 'docker://debian:12');
  assert.equal(rev.origin.image, 'profile:base');
  assert.equal(rev.tags.rack, 'a');
  // A list set by a profile is replaced, not appended, by the node's.
  assert.deepEqual(resolveNode(node({ profiles: ['base'], kernelArgs: ['quiet'] }), [base]).kernelArgs, ['quiet']);
  // The resolved node is a copy: changing it does not change the profile.
  const c = resolveNode(node({ profiles: ['base'] }), [base]);
  c.kernelArgs.push('x');
  c.network.default!.mtu = 1;
  assert.deepEqual(base.kernelArgs, ['console=ttyS0']);
  assert.equal(base.network!.default!.mtu, 1500);
});

test('resolveNode: the primary interface is the one marked so, else the first with a MAC; an unknown profile is refused', () => {
  const r = resolveNode(node({ network: { a: { ip: '10.0.0.1/24' }, b: { mac: '52:54:00:00:00:02' }, c: { mac: '52:54:00:00:00:03', primary: true } } }), []);
  assert.equal(r.primary?.device, 'c', 'keyed by its name when it has no device');
  assert.equal(resolveNode(node({ network: { a: { ip: '10.0.0.1/24' }, b: { mac: '52:54:00:00:00:02' } } }), []).primary?.device, 'b');
  assert.equal(resolveNode(node(), []).primary, null);
  assert.throws(() => resolveNode(node({ profiles: ['gone'] }), []), code('PROVISION_PROFILE_UNKNOWN', /n1 uses profile gone/));
});
