// Mutual TLS over real sockets on 127.0.0.1: who gets in, who is refused and where (in the
// handshake by OpenSSL, or after it by the SVID check), revocation, rotation without a
// restart, and a peer whose certificate expires while connected.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import tls from 'node:tls';
import { RevocationList, clientTlsOptions, CertificateAuthority, TrustBundle, x509, type MeshCredentials } from '../../src/mesh/index.js';
import { TD, makeCluster, issueCredentials, serverCredentials, forge, joinAgent, greeter, attempt, echo, nextRefusal, type Cluster } from './helpers.js';

const T = { timeout: 30_000 };
let c: Cluster;
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.reverse()) await f();
  c?.cleanup();
});

async function setup(revocations?: RevocationList) {
  c ??= await makeCluster();
  const g = await greeter(c, await serverCredentials(c), revocations);
  cleanups.push(g.close);
  return g;
}

test('a node with a certificate from the cluster CA gets in; both ends read each other\'s SPIFFE ID', T, async () => {
  const g = await setup();
  const creds = await joinAgent(c, 'n001', join((c ??= await makeCluster()).dir, 'agent-n001'));
  const a = await attempt(g.port, creds);
  assert.equal(a.error, undefined);
  assert.equal(a.greeting, `hello spiffe://${TD}/node/n001`);
  assert.equal(a.server?.uri, `spiffe://${TD}/server/s1`);
  assert.equal(a.socket?.getProtocol(), 'TLSv1.3');
  const [conn] = g.ms.connections();
  assert.equal(conn?.id.kind, 'node');
  assert.equal(conn?.id.name, 'n001');
  a.socket?.destroy();
  assert.equal(g.refused.length, 0);
});

test('refused in the handshake: expired, foreign CA, forged signature, no client certificate', T, async () => {
  const g = await setup();
  const past = new Date(Date.now() - 2 * 3600_000);
  const expired = await issueCredentials(c, { kind: 'node', name: 'old', notBefore: past, notAfter: new Date(past.getTime() + 3600_000) });
  const other = await makeCluster(); // same trust domain, another CA: another cluster
  cleanups.push(other.cleanup);
  const foreign = { ...(await issueCredentials(other, { kind: 'node', name: 'n001' })), trustBundle: c.bundle };
  const forged = await forge(c, { uris: [`spiffe://${TD}/node/n001`], wrongSigner: true });
  const cases: Array<[string, MeshCredentials, string]> = [
    ['expired', expired, 'MESH_CERT_EXPIRED'],
    ['foreign CA', foreign, 'MESH_FOREIGN_CA'],
    ['forged', forged, 'MESH_BAD_CHAIN'],
  ];
  let n = 0;
  for (const [what, creds, code] of cases) {
    const a = await attempt(g.port, creds);
    assert.equal(a.greeting, undefined, `${what}: let in`);
    assert.ok(a.error, `${what}: no error on the client`);
    const e = await nextRefusal(g, ++n);
    assert.equal(e.code, code, `${what}: ${e.message}`);
  }
  // No certificate at all.
  const sock = tls.connect({ host: '127.0.0.1', port: g.port, ca: c.bundle.pem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
  sock.on('error', () => {});
  await new Promise((r) => sock.on('close', r));
  const e = await nextRefusal(g, ++n);
  assert.equal(e.code, 'MESH_NO_CLIENT_CERT', e.message);
  assert.equal(g.ms.connections().length, 0);
});

test('refused after the handshake by the SVID check: wrong SPIFFE IDs, two URI SANs, a CN that looks right but no URI SAN', T, async () => {
  const g = await setup();
  const cases: Array<[string, Parameters<typeof forge>[1] | 'server', string]> = [
    ['other trust domain', { uris: ['spiffe://other.example/node/n001'] }, 'MESH_WRONG_TRUST_DOMAIN'],
    ['not a Warren path', { uris: [`spiffe://${TD}/admin/root`] }, 'MESH_WRONG_PATH'],
    ['trust domain ID, no path', { uris: [`spiffe://${TD}`] }, 'MESH_WRONG_PATH'],
    ['not spiffe://', { uris: [`https://${TD}/node/n001`] }, 'MESH_SPIFFE_ID_INVALID'],
    ['two URI SANs', { uris: [`spiffe://${TD}/node/n001`, `spiffe://${TD}/node/n002`] }, 'MESH_MULTIPLE_URI_SANS'],
    ['CN but no URI SAN', { uris: [], subject: `CN=spiffe://${TD}/node/n001`, dns: ['n001'] }, 'MESH_NO_SPIFFE_ID'],
    ['no extKeyUsage', { uris: [`spiffe://${TD}/node/n001`], eku: null }, 'MESH_MISSING_EKU'],
    ['a server identity where nodes connect', 'server', 'MESH_WRONG_PATH'],
  ];
  let n = 0;
  for (const [what, f, code] of cases) {
    const creds = f === 'server' ? await serverCredentials(c, 's2') : await forge(c, f);
    const a = await attempt(g.port, creds);
    assert.equal(a.greeting, undefined, `${what}: let in`);
    const e = await nextRefusal(g, ++n);
    assert.equal(e.code, code, `${what}: ${e.message}`);
  }
  assert.equal(g.ms.connections().length, 0);
});

test('the client refuses a server that is not a server identity of the trust domain', T, async () => {
  c ??= await makeCluster();
  const nodeAsServer = await issueCredentials(c, { kind: 'node', name: 'impostor' });
  const g = await greeter(c, nodeAsServer);
  cleanups.push(g.close);
  const a = await attempt(g.port, await issueCredentials(c, { kind: 'node', name: 'n001' }));
  assert.equal(a.greeting, undefined);
  assert.equal((a.error as { code?: string }).code, 'MESH_WRONG_PATH', a.error?.message);
  // And clientTlsOptions pins a server name when asked.
  const s2 = await serverCredentials(c, 's2');
  const g2 = await greeter(c, s2);
  cleanups.push(g2.close);
  const creds = await issueCredentials(c, { kind: 'node', name: 'n001' });
  const sock = tls.connect({ host: '127.0.0.1', port: g2.port, ...clientTlsOptions(creds, { trustDomain: TD, serverName: 's1' }) });
  const [err] = (await once(sock, 'error')) as [Error & { code?: string }];
  sock.destroy();
  assert.equal(err.code, 'MESH_WRONG_PATH', err.message);
});

test('revoke: the open connections of the identity are closed and its next connection refused', T, async () => {
  const revocations = new RevocationList();
  const g = await setup(revocations);
  const n1 = await issueCredentials(c, { kind: 'node', name: 'n001' });
  const n2 = await issueCredentials(c, { kind: 'node', name: 'n002' });
  const a1 = await attempt(g.port, n1);
  const a1b = await attempt(g.port, n1);
  const a2 = await attempt(g.port, n2);
  assert.ok(a1.greeting && a1b.greeting && a2.greeting);
  const closedEvents: string[] = [];
  g.ms.on('closed', (id, why) => closedEvents.push(`${id.name}:${why}`));
  const closing = Promise.all([once(a1.socket!, 'close'), once(a1b.socket!, 'close')]);
  assert.equal(g.ms.revoke({ spiffeId: `spiffe://${TD}/node/n001` }), 2);
  await closing;
  assert.deepEqual(closedEvents, ['n001:revoked', 'n001:revoked']);
  assert.equal(await echo(a2.socket!, 'still here'), 'still here', 'another node is not affected');
  const again = await attempt(g.port, n1);
  assert.equal(again.greeting, undefined);
  assert.equal((await nextRefusal(g, 1)).code, 'MESH_REVOKED');

  // By serial, through the shared list (as `warren node revoke` will do): n002's connection closes.
  const closing2 = once(a2.socket!, 'close');
  revocations.revokeSerial(n2.serial);
  await closing2;
  assert.equal((await attempt(g.port, n2)).greeting, undefined);
  assert.equal((await nextRefusal(g, 2)).code, 'MESH_REVOKED');
  // A new certificate for n002 (new serial) gets in again; n001 stays out by name.
  assert.equal((await attempt(g.port, await issueCredentials(c, { kind: 'node', name: 'n002' }))).greeting, `hello spiffe://${TD}/node/n002`);
  assert.equal((await attempt(g.port, await issueCredentials(c, { kind: 'node', name: 'n001' }))).greeting, undefined);
  for (const { socket } of g.ms.connections()) socket.destroy();
});

test('rotation with setSecureContext: open connections stay, new ones get the new certificate; a renewed agent gets in', T, async () => {
  const g = await setup();
  const dataDir = join(c.dir, 'agent-rot');
  const creds = await joinAgent(c, 'n010', dataDir);
  const first = await attempt(g.port, creds);
  const oldServerSerial = first.server!.serial;
  const next = await serverCredentials(c, 's1');
  g.ms.rotate(next);
  assert.equal(await echo(first.socket!, 'after rotation'), 'after rotation', 'the old connection is kept');
  const second = await attempt(g.port, creds);
  assert.equal(second.error, undefined, second.error?.message);
  assert.equal(second.server?.serial, next.serial);
  assert.notEqual(second.server?.serial, oldServerSerial);

  // The agent renews (new key, new certificate) and connects with it.
  const { AgentIdentity } = await import('../../src/mesh/index.js');
  const id = AgentIdentity.load(dataDir);
  const pending = await id.renew();
  const renewed = pending.complete((await c.ca.issue(pending.csrPem, { kind: 'node', name: 'n010' })).certPem, c.ca.certPem);
  assert.notEqual(renewed.svid.serial, id.svid.serial);
  assert.notEqual(renewed.keyPem, id.keyPem);
  const third = await attempt(g.port, renewed.credentials);
  assert.equal(third.greeting, `hello spiffe://${TD}/node/n010`);
  const serials = g.ms.connections().map((x) => x.id.serial).sort();
  assert.deepEqual(serials, [id.svid.serial, id.svid.serial, renewed.svid.serial].sort());
  for (const a of [first, second, third]) a.socket?.destroy();
});

test('CA rotation: a trust bundle with the old and the new CA lets both generations in', T, async () => {
  c ??= await makeCluster();
  const newCa = await CertificateAuthority.create(join(c.dir, 'ca2'), { trustDomain: TD });
  const both = new TrustBundle([c.ca.certPem, newCa.certPem]);
  const s = await newCa.issueServerIdentity('s1', ['127.0.0.1']);
  const g = await greeter(c, { keyPem: s.keyPem, certPem: s.cert.certPem, trustBundle: both });
  cleanups.push(g.close);
  const oldNode = { ...(await issueCredentials(c, { kind: 'node', name: 'old-gen' })), trustBundle: both };
  const newGen = await newCa.issueServerIdentity('unused', ['127.0.0.1']); // keeps the API honest: a leaf of the new CA
  assert.ok(new x509.X509Certificate(newGen.cert.certPem).issuer.includes(TD));
  const keys = await import('../../src/mesh/index.js');
  const k = await keys.generateKeyPair();
  const issued = await newCa.issue(await keys.createCertificateRequest(k, 'new-gen'), { kind: 'node', name: 'new-gen' });
  const newNode = { keyPem: await keys.privateKeyToPem(k.privateKey), certPem: issued.certPem, trustBundle: both };
  assert.equal((await attempt(g.port, oldNode)).greeting, `hello spiffe://${TD}/node/old-gen`);
  assert.equal((await attempt(g.port, newNode)).greeting, `hello spiffe://${TD}/node/new-gen`);
  for (const { socket } of g.ms.connections()) socket.destroy();
});

test('the server closes a connection when the peer\'s certificate expires', T, async () => {
  const g = await setup();
  // Six seconds: long enough for the handshake on a loaded machine, short enough to wait for.
  const now = Date.now();
  const shortLived = await issueCredentials(c, { kind: 'node', name: 'brief', notBefore: new Date(now - 60_000), notAfter: new Date(now + 6_000) });
  const longLived = await issueCredentials(c, { kind: 'node', name: 'steady' });
  const a = await attempt(g.port, shortLived);
  const b = await attempt(g.port, longLived);
  assert.equal(a.greeting, `hello spiffe://${TD}/node/brief`);
  const [id, why] = (await once(g.ms, 'closed')) as [{ name: string }, string];
  assert.equal(id.name, 'brief');
  assert.equal(why, 'expired');
  if (!a.socket!.closed) await once(a.socket!, 'close');
  assert.equal(await echo(b.socket!, 'ok'), 'ok', 'a peer with a valid certificate stays');
  assert.equal((await attempt(g.port, shortLived)).greeting, undefined, 'and it cannot come back');
  b.socket?.destroy();
});
