// CA rotation, the parts below the server: the pure phase logic (rotationStep), a new CA made
// in memory beside the old one, verification that says which CA issued a certificate, and an
// agent identity that takes a new trust bundle (kept in bundle.pem) only if its own
// certificate still chains to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentIdentity, BUNDLE_FILE, CertificateAuthority, PendingIdentity, TrustBundle, rotationStep, nodesNotOn, verifySvid, type RotationNode, type RotationState } from '../../src/mesh/index.js';
import { makeCluster, TD } from './helpers.js';
import { tempDir } from '../helpers.js';

const OLD = 'AA:OLD';
const NEW = 'BB:NEW';
const trust: RotationState = { phase: 'trust', oldCa: OLD, newCa: NEW, issueAfter: 0 };
const issue: RotationState = { ...trust, phase: 'issue' };
const node = (name: string, state: RotationNode['state'], trusts: string[] | null, certCa: string | null): RotationNode => ({ name, state, trusts, certCa });

test('trust phase: waits for every ready or down node to trust the new CA; lost and revoked ones do not hold it up', () => {
  const nodes = [node('n2', 'ready', [OLD], OLD), node('n1', 'down', null, OLD), node('n3', 'ready', [OLD, NEW], OLD), node('n4', 'lost', [OLD], OLD), node('n5', 'revoked', null, OLD)];
  const s = rotationStep(trust, nodes, 1000);
  assert.equal(s.action, 'wait');
  assert.deepEqual(s.waitingFor, ['n1', 'n2'], 'sorted, the down one too');
  assert.match(s.why, /n1, n2 to trust the new CA/);
  const caughtUp = nodes.map((n) => (n.state === 'ready' || n.state === 'down' ? { ...n, trusts: [OLD, NEW] } : n));
  assert.deepEqual(rotationStep(trust, caughtUp, 1000), { action: 'issue', waitingFor: [], why: 'every node trusts the new CA' });
  // No node at all: nothing to wait for.
  assert.equal(rotationStep(trust, [], 0).action, 'issue');
});

test('trust phase: --trust-for holds it until issueAfter even when every node trusts the new CA', () => {
  const nodes = [node('n1', 'ready', [OLD, NEW], OLD)];
  const held = rotationStep({ ...trust, issueAfter: 5000 }, nodes, 4999);
  assert.equal(held.action, 'wait');
  assert.deepEqual(held.waitingFor, []);
  assert.match(held.why, /from 1970-01-01T00:00:05.000Z \(--trust-for\)/);
  assert.equal(rotationStep({ ...trust, issueAfter: 5000 }, nodes, 5000).action, 'issue');
});

test('issue phase: retires once every ready or down node presents a certificate from the new CA (unknown counts as old)', () => {
  const nodes = [node('n1', 'ready', [OLD, NEW], NEW), node('n2', 'down', [OLD, NEW], OLD), node('n3', 'ready', [OLD, NEW], null), node('n4', 'lost', [OLD], OLD)];
  const s = rotationStep(issue, nodes, 0);
  assert.equal(s.action, 'wait');
  assert.deepEqual(s.waitingFor, ['n2', 'n3']);
  assert.deepEqual(nodesNotOn(NEW, nodes), ['n2', 'n3']);
  assert.match(s.why, /to present a certificate from the new CA/);
  const done = nodes.map((n) => (n.state === 'lost' ? n : { ...n, certCa: NEW }));
  assert.equal(rotationStep(issue, done, 0).action, 'retire');
  // Many nodes: the reason names ten and counts the rest.
  const many = Array.from({ length: 13 }, (_, i) => node(`m${String(i).padStart(2, '0')}`, 'ready', [OLD], OLD));
  assert.match(rotationStep(trust, many, 0).why, /m00, .*, m09 and 3 more to trust/);
});

test('a new CA made in memory has its own subject and key; verification says which CA of the bundle issued a leaf', async () => {
  const c = await makeCluster();
  try {
    const { ca: next, keyPem } = await CertificateAuthority.generate({ trustDomain: TD, name: `CN=Warren CA ${TD} 2, O=Warren` });
    assert.equal(next.dir, '');
    assert.notEqual(next.fingerprint, c.ca.fingerprint);
    assert.match(next.certificate.subject, /CN=Warren CA hpc.example 2/);
    // fromPem takes it back (as the other server takes it from the store).
    const again = await CertificateAuthority.fromPem({ trustDomain: TD, certPem: next.certPem, keyPem });
    assert.equal(again.fingerprint, next.fingerprint);
    await assert.rejects(CertificateAuthority.fromPem({ trustDomain: TD, certPem: next.certPem, keyPem: readFileSync(join(c.ca.dir, 'ca.key'), 'utf8') }), /does not belong/);
    const both = new TrustBundle([c.ca.certPem, next.certPem]);
    assert.equal(both.fingerprints.length, 2);
    assert.ok(both.sameAs([next.fingerprint, c.ca.fingerprint]));
    assert.ok(!both.sameAs([c.ca.fingerprint, c.ca.fingerprint]));
    const leaf = await again.issueServerIdentity('s1', ['127.0.0.1']);
    const old = await c.ca.issueServerIdentity('s1', ['127.0.0.1']);
    assert.equal(verifySvid(leaf.cert.certPem, { trustBundle: both, trustDomain: TD, kind: 'server' }).issuer, next.fingerprint);
    assert.equal(verifySvid(old.cert.certPem, { trustBundle: both, trustDomain: TD, kind: 'server' }).issuer, c.ca.fingerprint);
    // The old CA alone does not trust the new one's leaves.
    assert.throws(() => verifySvid(leaf.cert.certPem, { trustBundle: c.bundle, trustDomain: TD, kind: 'server' }), (e: Error & { code?: string }) => e.code === 'MESH_FOREIGN_CA');
  } finally {
    c.cleanup();
  }
});

test("an agent identity takes a new bundle only if its certificate still chains to it; bundle.pem is rewritten, so a restarted agent trusts it", async () => {
  const c = await makeCluster();
  const t = tempDir('warren-agent-');
  try {
    const { ca: next } = await CertificateAuthority.generate({ trustDomain: TD, name: `CN=Warren CA ${TD} 2, O=Warren` });
    const p = await PendingIdentity.create(t.dir, 'n1');
    const id = p.complete((await c.ca.issue(p.csrPem, { kind: 'node', name: 'n1' })).certPem, c.ca.certPem);
    const bothPem = c.ca.certPem + next.certPem;
    const wider = id.withBundle(bothPem);
    assert.deepEqual(wider.trustBundle.fingerprints, [c.ca.fingerprint, next.fingerprint].sort());
    assert.equal(wider.certPem, id.certPem);
    assert.equal(AgentIdentity.load(t.dir).trustBundle.size, 2, 'kept on disk');
    // Only the new CA: this node's certificate (from the old one) would not verify: refused, nothing written.
    assert.throws(() => wider.withBundle(next.certPem), (e: Error & { code?: string }) => e.code === 'MESH_FOREIGN_CA');
    assert.equal(TrustBundle.fromPem(readFileSync(join(t.dir, BUNDLE_FILE), 'utf8')).size, 2);
  } finally {
    t.cleanup();
    c.cleanup();
  }
});
