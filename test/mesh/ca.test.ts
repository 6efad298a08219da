// The cluster CA and the agent's identity files: what is created on disk (modes), what a
// leaf looks like to Node's X509Certificate and to OpenSSL, what requests are refused, and
// renewal at half-life.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, chmodSync, readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate, webcrypto } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  CertificateAuthority,
  AgentIdentity,
  PendingIdentity,
  createCertificateRequest,
  generateKeyPair,
  renewalTime,
  x509,
  CA_KEY_FILE,
  CA_CERT_FILE,
  SVID_FILE,
  BUNDLE_FILE,
} from '../../src/mesh/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { tempDir } from '../helpers.js';
import { TD } from './helpers.js';

const mode = (p: string): number => statSync(p).mode & 0o777;
const code = (c: string) => (e: unknown) => isWarrenError(e) && e.code === c;

let t: { dir: string; cleanup: () => void };
before(() => {
  t = tempDir('warren-mesh-ca-');
});
after(() => t.cleanup());

test('create: the CA directory is 0700, the key 0600; load reads it back; open never overwrites', async () => {
  const dir = join(t.dir, 'ca1');
  const ca = await CertificateAuthority.create(dir, { trustDomain: TD });
  assert.equal(mode(dir), 0o700);
  assert.equal(mode(join(dir, CA_KEY_FILE)), 0o600);
  const cert = new X509Certificate(readFileSync(join(dir, CA_CERT_FILE)));
  assert.ok(cert.ca);
  assert.equal(cert.subjectAltName, `URI:spiffe://${TD}`);
  assert.ok(cert.checkIssued(cert) && cert.verify(cert.publicKey), 'self-signed');
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const pcert = new x509.X509Certificate(ca.certPem);
  assert.equal(pcert.getExtension(x509.KeyUsagesExtension)?.critical, true);
  assert.ok(pcert.getExtension(x509.KeyUsagesExtension)!.usages & x509.KeyUsageFlags.keyCertSign);
  assert.equal(pcert.getExtension(x509.BasicConstraintsExtension)?.critical, true);

  const loaded = await CertificateAuthority.load(dir);
  assert.equal(loaded.certPem, ca.certPem);
  assert.equal(loaded.trustDomain, TD);
  const opened = await CertificateAuthority.open(dir, { trustDomain: TD });
  assert.equal(opened.created, false);
  assert.equal(opened.ca.certPem, ca.certPem);
  await assert.rejects(CertificateAuthority.create(dir, { trustDomain: TD }), code('MESH_CA_EXISTS'));
  await assert.rejects(CertificateAuthority.open(dir, { trustDomain: 'other.example' }), code('MESH_CA_TRUST_DOMAIN'));
  // A key others can read is refused, like ssh refuses it.
  chmodSync(join(dir, CA_KEY_FILE), 0o644);
  await assert.rejects(CertificateAuthority.load(dir), code('MESH_KEY_PERMISSIONS'));
  chmodSync(join(dir, CA_KEY_FILE), 0o600);
  await assert.rejects(CertificateAuthority.load(join(t.dir, 'nothing')), code('MESH_CA_NOT_FOUND'));
  await assert.rejects(CertificateAuthority.create(join(t.dir, 'bad'), { trustDomain: 'Not A Domain' }), code('MESH_TRUST_DOMAIN_INVALID'));
});

test('import: a CA given by the operator is checked and kept', async () => {
  const src = await CertificateAuthority.create(join(t.dir, 'given'), { trustDomain: TD });
  const keyPem = readFileSync(join(src.dir, CA_KEY_FILE), 'utf8');
  const ca = await CertificateAuthority.import(join(t.dir, 'imported'), { trustDomain: TD, certPem: src.certPem, keyPem });
  assert.equal(ca.certPem, src.certPem);
  assert.equal(mode(join(t.dir, 'imported', CA_KEY_FILE)), 0o600);
  const other = await CertificateAuthority.create(join(t.dir, 'other'), { trustDomain: TD });
  const otherKey = readFileSync(join(other.dir, CA_KEY_FILE), 'utf8');
  await assert.rejects(CertificateAuthority.import(join(t.dir, 'mismatch'), { trustDomain: TD, certPem: src.certPem, keyPem: otherKey }), code('MESH_CA_INVALID'));
  const leaf = await src.issueServerIdentity('s1', ['127.0.0.1']);
  await assert.rejects(CertificateAuthority.import(join(t.dir, 'leaf'), { trustDomain: TD, certPem: leaf.cert.certPem, keyPem: leaf.keyPem }), code('MESH_CA_INVALID'));
  await assert.rejects(CertificateAuthority.import(join(t.dir, 'junk'), { trustDomain: TD, certPem: 'junk', keyPem }), code('MESH_CA_INVALID'));
});

test('issue: a leaf X.509-SVID exactly as the standard says, accepted by OpenSSL for both purposes', async () => {
  const ca = await CertificateAuthority.create(join(t.dir, 'ca2'), { trustDomain: TD });
  const keys = await generateKeyPair();
  const csr = await createCertificateRequest(keys, 'n001');
  const issued = await ca.issue(csr, { kind: 'node', name: 'n001' });
  const leaf = new X509Certificate(issued.certPem);
  assert.equal(leaf.ca, false);
  assert.equal(leaf.subjectAltName, `URI:spiffe://${TD}/node/n001`);
  assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.ok(leaf.checkIssued(ca.certificate) && leaf.verify(ca.certificate.publicKey));
  assert.equal(issued.spiffeId.uri, `spiffe://${TD}/node/n001`);
  assert.equal(leaf.serialNumber.toLowerCase(), issued.serial);
  assert.equal(issued.serial.length, 32, '128-bit random serial');
  const life = issued.notAfter.getTime() - issued.notBefore.getTime();
  assert.ok(life >= 3600_000 && life <= 3600_000 + 31_000, `default life ~1 h (+30 s backdate), got ${life} ms`);
  const p = new x509.X509Certificate(issued.certPem);
  const ku = p.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
  assert.equal(p.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  assert.equal(p.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.filter((n) => n.type === 'url').length, 1);
  const again = await ca.issue(csr, { kind: 'node', name: 'n001' });
  assert.notEqual(again.serial, issued.serial);

  // OpenSSL agrees: both TLS purposes, and a server certificate carries its addresses.
  const srv = await ca.issueServerIdentity('head', ['127.0.0.1', '::1', 'head.hpc.example'], 600);
  const s = new X509Certificate(srv.cert.certPem);
  assert.equal(s.subjectAltName, `URI:spiffe://${TD}/server/head, DNS:head.hpc.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`);
  assert.ok(s.checkIP('127.0.0.1') && s.checkHost('head.hpc.example'));
  const files = { ca: join(t.dir, 'o-ca.pem'), leaf: join(t.dir, 'o-leaf.pem') };
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.leaf, issued.certPem);
  for (const purpose of ['sslclient', 'sslserver']) {
    const r = spawnSync('openssl', ['verify', '-CAfile', files.ca, '-purpose', purpose, files.leaf], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${purpose}: ${r.stdout}${r.stderr}`);
  }
  // The CA never outlives itself in a leaf, and lifetimes are bounded.
  await assert.rejects(ca.issue(csr, { kind: 'node', name: 'n001', ttlSeconds: 90 * 24 * 3600 }), code('MESH_TTL_INVALID'));
  await assert.rejects(ca.issue(csr, { kind: 'node', name: 'bad name' }), code('MESH_NAME_INVALID'));
  await assert.rejects(ca.issueServerIdentity('s', ['999.1.1.1']).then(() => ca.issueFor(keys.publicKey, { kind: 'server', name: 's', ipAddresses: ['not-an-ip'] })), code('MESH_ADDRESS_INVALID'));
});

test('issue refuses requests that prove nothing or use other keys', async () => {
  const ca = await CertificateAuthority.create(join(t.dir, 'ca3'), { trustDomain: TD });
  await assert.rejects(ca.issue('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', { kind: 'node', name: 'x' }), code('MESH_CSR_INVALID'));
  // A request whose signature is not by its key: made for one key, signed... with another.
  const k1 = await generateKeyPair();
  const good = new x509.Pkcs10CertificateRequest(await createCertificateRequest(k1, 'x'));
  const raw = new Uint8Array(good.rawData);
  raw[raw.length - 5] ^= 0xff; // damage the signature
  await assert.rejects(ca.issue(Buffer.from(raw), { kind: 'node', name: 'x' }), (e: unknown) => isWarrenError(e) && e.code === 'MESH_CSR_INVALID');
  // RSA keys are refused: Warren issues for EC keys only.
  const rsa = (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys: rsa as never, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
  await assert.rejects(ca.issue(rsaCsr.toString('pem'), { kind: 'node', name: 'x' }), code('MESH_CSR_INVALID'));
});

test('agent: own key and request, key+certificate in one 0600 file, renewal at half-life', async () => {
  const ca = await CertificateAuthority.create(join(t.dir, 'ca4'), { trustDomain: TD });
  const data = join(t.dir, 'agent');
  const p = await PendingIdentity.create(data, 'n007');
  assert.ok(!existsSync(join(data, SVID_FILE)), 'nothing is written before the certificate comes');
  const issued = await ca.issue(p.csrPem, { kind: 'node', name: 'n007', ttlSeconds: 3600 });
  // A certificate for another key is refused.
  const stranger = await ca.issue(await createCertificateRequest(await generateKeyPair()), { kind: 'node', name: 'n007' });
  assert.throws(() => p.complete(stranger.certPem, ca.certPem), code('MESH_CERT_KEY_MISMATCH'));
  const id = p.complete(issued.certPem, ca.certPem);
  assert.equal(mode(data), 0o700);
  assert.equal(mode(join(data, SVID_FILE)), 0o600);
  assert.equal(mode(join(data, BUNDLE_FILE)), 0o600);
  assert.equal(id.svid.uri, `spiffe://${TD}/node/n007`);
  const loaded = AgentIdentity.load(data);
  assert.equal(loaded.certPem, id.certPem);
  assert.equal(loaded.keyPem, id.keyPem);
  assert.equal(loaded.trustBundle.size, 1);
  const half = renewalTime(issued.notBefore, issued.notAfter);
  assert.equal(half.getTime(), issued.notBefore.getTime() + (issued.notAfter.getTime() - issued.notBefore.getTime()) / 2);
  assert.equal(loaded.renewAt.getTime(), half.getTime());
  assert.equal(loaded.needsRenewal(new Date(half.getTime() - 1000)), false);
  assert.equal(loaded.needsRenewal(half), true);
  assert.equal(loaded.expired(new Date(issued.notAfter.getTime() + 1000)), true);
  // An identity already expired still loads (the agent then knows it must join again).
  const old = await PendingIdentity.create(join(t.dir, 'agent-old'), 'n008');
  const past = Date.now() - 3 * 3600_000;
  const expiredPem = (await ca.issue(old.csrPem, { kind: 'node', name: 'n008', notBefore: new Date(past), notAfter: new Date(past + 3600_000) })).certPem;
  assert.throws(() => old.complete(expiredPem, ca.certPem), code('MESH_CERT_EXPIRED'), 'an expired certificate is not installed');
  const oldDir = join(t.dir, 'agent-old');
  mkdirSync(oldDir, { mode: 0o700 });
  writeFileSync(join(oldDir, SVID_FILE), old.keyPem + expiredPem, { mode: 0o600 });
  writeFileSync(join(oldDir, BUNDLE_FILE), ca.certPem, { mode: 0o600 });
  assert.equal(AgentIdentity.load(oldDir).expired(), true);
  chmodSync(join(data, SVID_FILE), 0o640);
  assert.throws(() => AgentIdentity.load(data), code('MESH_KEY_PERMISSIONS'));
  assert.throws(() => AgentIdentity.load(join(t.dir, 'no-agent')), code('MESH_IDENTITY_NOT_FOUND'));
  // `warren agent`'s data directory is 0711 (jobs running as their users pass through it to
  // their run directories): a join or renewal keeps that, and takes listing and writing away.
  for (const [before, after] of [[0o711, 0o711], [0o755, 0o711], [0o777, 0o711], [0o750, 0o710]] as const) {
    const dir = join(t.dir, `agent-${before.toString(8)}`);
    mkdirSync(dir);
    chmodSync(dir, before);
    const pi = await PendingIdentity.create(dir, 'n009');
    pi.complete((await ca.issue(pi.csrPem, { kind: 'node', name: 'n009' })).certPem, ca.certPem);
    assert.equal(mode(dir), after, `${before.toString(8)} becomes ${after.toString(8)}`);
    assert.equal(mode(join(dir, SVID_FILE)), 0o600);
  }
});
