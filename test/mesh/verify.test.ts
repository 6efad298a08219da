// verifySvid on its own: every way a certificate is refused, with its MESH_* code, and what a
// good one gives (read from the URI SAN, never the CN).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { verifySvid, RevocationList, TrustBundle, x509, type VerifySvidOptions } from '../../src/mesh/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { TD, makeCluster, issueCredentials, forge, type Cluster, type ForgeOptions } from './helpers.js';

let c: Cluster;
let other: Cluster;
before(async () => {
  c = await makeCluster();
  other = await makeCluster();
});
after(() => {
  c.cleanup();
  other.cleanup();
});

function opts(extra: Partial<VerifySvidOptions> = {}): VerifySvidOptions {
  return { trustBundle: c.bundle, trustDomain: TD, kind: 'node', ...extra };
}

function refused(pem: string, code: string, o: VerifySvidOptions = opts()): void {
  assert.throws(
    () => verifySvid(pem, o),
    (e: unknown) => {
      assert.ok(isWarrenError(e), String(e));
      assert.equal(e.code, code, e.message);
      assert.ok(e.hint, `${code} has a hint`);
      return true;
    },
  );
}

test('a good SVID: its SPIFFE ID, serial and validity', async () => {
  const n = await issueCredentials(c, { kind: 'node', name: 'n001' });
  const id = verifySvid(n.certPem, opts());
  assert.equal(id.uri, `spiffe://${TD}/node/n001`);
  assert.equal(id.trustDomain, TD);
  assert.equal(id.kind, 'node');
  assert.equal(id.name, 'n001');
  assert.equal(id.serial, n.serial);
  assert.ok(id.notAfter.getTime() - id.notBefore.getTime() <= 3600_000 + 31_000);
  // Node's X509Certificate and DER are accepted too.
  assert.equal(verifySvid(new X509Certificate(n.certPem), opts()).uri, id.uri);
  assert.equal(verifySvid(new X509Certificate(n.certPem).raw, opts({ kind: ['server', 'node'] })).uri, id.uri);
  assert.equal(verifySvid(n.certPem, opts({ name: 'n001' })).name, 'n001');
});

test('the identity is the URI SAN, never the CN', async () => {
  const f = await forge(c, { uris: [`spiffe://${TD}/node/real`], subject: `CN=spiffe://${TD}/node/admin` });
  assert.equal(verifySvid(f.certPem, opts()).name, 'real');
  refused((await forge(c, { uris: [], subject: `CN=spiffe://${TD}/node/n001` })).certPem, 'MESH_NO_SPIFFE_ID');
});

test('refused: chain, dates and leaf shape', async () => {
  const cases: Array<[string, ForgeOptions | 'foreign', string]> = [
    ['another CA', 'foreign', 'MESH_FOREIGN_CA'],
    ['forged signature', { wrongSigner: true }, 'MESH_BAD_CHAIN'],
    ['expired', { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }, 'MESH_CERT_EXPIRED'],
    ['not yet valid', { notBefore: new Date(Date.now() + 3600_000), notAfter: new Date(Date.now() + 7200_000) }, 'MESH_CERT_NOT_YET_VALID'],
    ['CA:TRUE', { ca: true, keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign }, 'MESH_CA_LEAF'],
    ['keyCertSign on a leaf', { keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign }, 'MESH_CA_LEAF'],
    ['no digitalSignature', { keyUsage: x509.KeyUsageFlags.keyEncipherment }, 'MESH_BAD_KEY_USAGE'],
    ['no extKeyUsage', { eku: null }, 'MESH_MISSING_EKU'],
    ['clientAuth only', { eku: [x509.ExtendedKeyUsage.clientAuth] }, 'MESH_MISSING_EKU'],
    ['serverAuth only', { eku: [x509.ExtendedKeyUsage.serverAuth] }, 'MESH_MISSING_EKU'],
  ];
  for (const [what, f, code] of cases) {
    const pem = f === 'foreign' ? (await issueCredentials(other, { kind: 'node', name: 'n001' })).certPem : (await forge(c, f)).certPem;
    await test(what, () => refused(pem, code));
  }
  // The CA certificate itself is not a peer identity.
  refused(c.ca.certPem, 'MESH_CA_LEAF');
  // Garbage.
  assert.throws(() => verifySvid('not a certificate', opts()), (e: unknown) => isWarrenError(e) && e.code === 'MESH_CERT_INVALID');
});

test('refused: the SPIFFE ID', async () => {
  const cases: Array<[string, string[], string]> = [
    ['two URI SANs', [`spiffe://${TD}/node/a`, `spiffe://${TD}/node/b`], 'MESH_MULTIPLE_URI_SANS'],
    ['no URI SAN', [], 'MESH_NO_SPIFFE_ID'],
    ['other trust domain', ['spiffe://other.example/node/a'], 'MESH_WRONG_TRUST_DOMAIN'],
    ['upper-case trust domain', [`spiffe://HPC.example/node/a`], 'MESH_WRONG_TRUST_DOMAIN'],
    ['http scheme', [`http://${TD}/node/a`], 'MESH_SPIFFE_ID_INVALID'],
    ['port in the trust domain', [`spiffe://${TD}:8443/node/a`], 'MESH_WRONG_TRUST_DOMAIN'],
    ['dot segment', [`spiffe://${TD}/node/..`], 'MESH_SPIFFE_ID_INVALID'],
    ['empty segment', [`spiffe://${TD}/node//a`], 'MESH_SPIFFE_ID_INVALID'],
    ['trust domain only', [`spiffe://${TD}`], 'MESH_WRONG_PATH'],
    ['unknown kind', [`spiffe://${TD}/admin/a`], 'MESH_WRONG_PATH'],
    ['too deep', [`spiffe://${TD}/node/a/b`], 'MESH_WRONG_PATH'],
    ['a server where nodes are expected', [`spiffe://${TD}/server/s1`], 'MESH_WRONG_PATH'],
  ];
  for (const [what, uris, code] of cases) {
    const pem = (await forge(c, { uris, dns: uris.length ? [] : ['n001.hpc.example'] })).certPem;
    await test(what, () => refused(pem, code));
  }
  const n = await issueCredentials(c, { kind: 'node', name: 'n001' });
  refused(n.certPem, 'MESH_WRONG_PATH', opts({ name: 'n002' }));
  refused(n.certPem, 'MESH_WRONG_TRUST_DOMAIN', opts({ trustDomain: 'other.example' }));
});

test('refused: revoked by SPIFFE ID or by serial; a trust bundle of several CAs accepts any', async () => {
  const n = await issueCredentials(c, { kind: 'node', name: 'n001' });
  const r = new RevocationList();
  assert.equal(verifySvid(n.certPem, opts({ revocations: r })).name, 'n001');
  r.revokeSerial(n.serial.toUpperCase());
  refused(n.certPem, 'MESH_REVOKED', opts({ revocations: r }));
  const r2 = new RevocationList();
  r2.revokeId(`spiffe://${TD}/node/n001`);
  refused(n.certPem, 'MESH_REVOKED', opts({ revocations: r2 }));
  assert.ok(r2.unrevokeId(`spiffe://${TD}/node/n001`));
  assert.equal(verifySvid(n.certPem, opts({ revocations: r2 })).name, 'n001');

  const fromOther = await issueCredentials(other, { kind: 'node', name: 'n002' });
  const both = new TrustBundle([c.ca.certPem, other.ca.certPem]);
  assert.equal(verifySvid(fromOther.certPem, opts({ trustBundle: both })).name, 'n002');
  assert.equal(verifySvid(n.certPem, opts({ trustBundle: both })).name, 'n001');
  both.remove(other.ca.certificate.fingerprint256);
  refused(fromOther.certPem, 'MESH_FOREIGN_CA', opts({ trustBundle: both }));
  assert.throws(() => new TrustBundle([n.certPem]), (e: unknown) => isWarrenError(e) && e.code === 'MESH_BUNDLE_INVALID');
  assert.throws(() => TrustBundle.fromPem('nothing here'), (e: unknown) => isWarrenError(e) && e.code === 'MESH_BUNDLE_INVALID');
});
