// SPIFFE IDs: formatting and parsing (pure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSpiffeId, parseSpiffeId, trustDomainId, isTrustDomain, isSpiffeName } from '../../src/mesh/index.js';
import { isWarrenError } from '../../src/common/index.js';

const code = (c: string) => (e: unknown) => isWarrenError(e) && e.code === c;

test('format and parse round-trip for every kind', () => {
  for (const kind of ['node', 'server', 'user'] as const) {
    const id = formatSpiffeId('hpc.example', kind, 'n-01_a.b');
    assert.equal(id.uri, `spiffe://hpc.example/${kind}/n-01_a.b`);
    assert.deepEqual(parseSpiffeId(id.uri), id);
  }
  assert.equal(trustDomainId('hpc.example'), 'spiffe://hpc.example');
});

test('invalid names and trust domains are usage errors', () => {
  assert.throws(() => formatSpiffeId('HPC', 'node', 'a'), (e: unknown) => code('MESH_TRUST_DOMAIN_INVALID')(e) && (e as { exitCode: number }).exitCode === 2);
  for (const name of ['', '.', '..', 'a/b', 'a b', 'é', 'x'.repeat(256)]) {
    assert.throws(() => formatSpiffeId('hpc.example', 'node', name), code('MESH_NAME_INVALID'), name);
    assert.equal(isSpiffeName(name), false);
  }
  assert.throws(() => formatSpiffeId('hpc.example', 'admin' as never, 'a'), code('MESH_SPIFFE_ID_INVALID'));
  for (const td of ['hpc.example', 'a', 'x-y_z.0']) assert.equal(isTrustDomain(td), true, td);
  for (const td of ['', 'Hpc', 'a:80', 'user@a', 'a/b']) assert.equal(isTrustDomain(td), false, td);
});

test('parse refuses what is not a Warren SPIFFE ID', () => {
  const invalid = ['http://hpc.example/node/a', 'spiffe://', 'spiffe://HPC/node/a', 'spiffe://a:1/node/a', 'spiffe://u@a/node/a', 'spiffe://a/node/a?x', 'spiffe://a/node/a#f', 'spiffe://a/node//a', 'spiffe://a/node/%41', `spiffe://a/node/${'x'.repeat(2100)}`];
  for (const u of invalid) assert.throws(() => parseSpiffeId(u), code('MESH_SPIFFE_ID_INVALID'), u);
  for (const u of ['spiffe://a', 'spiffe://a/', 'spiffe://a/job/x', 'spiffe://a/node', 'spiffe://a/node/x/y']) {
    assert.throws(() => parseSpiffeId(u), (e: unknown) => code('MESH_WRONG_PATH')(e) || code('MESH_SPIFFE_ID_INVALID')(e), u);
  }
  assert.throws(() => parseSpiffeId('spiffe://a/job/x'), code('MESH_WRONG_PATH'));
});
