// CA rotation on a real cluster: `warren server` and two `warren agent`s on loopback, the CLI
// as an admin types it. Jobs keep running on both agents while the new CA is trusted, issues
// certificates and the old one is retired by itself; then an old-CA certificate is refused
// and a new agent joins with the new ca.pem. A server restart in the middle continues the
// rotation; the bad paths are refused with the codes of docs/errors/mesh.md.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { CertificateAuthority, PendingIdentity, TrustBundle } from '../../src/mesh/index.js';
import type { CaStatusView } from '../../src/api/index.js';
import { TestCluster } from './harness.js';
import { count, freshDatabase, ledgerJob, type ClusterStatus } from './ledger.js';
import { postgresAvailable, startPostgres, type PgInstance } from '../helpers/pg.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SERVER_ARGS = ['--leader-ttl', '2s'];

const caStatus = (c: TestCluster): Promise<CaStatusView> => c.json<CaStatusView>(['ca', 'status']);

/** Which of these CAs issued the certificate (its fingerprint), or null. */
function issuerOf(certPem: string, cas: X509Certificate[]): string | null {
  const leaf = new X509Certificate(certPem);
  return cas.find((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))?.fingerprint256 ?? null;
}

/** The certificate an agent presents, from its data directory. */
function agentCert(c: TestCluster, i: number): string {
  return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(readFileSync(join(c.dir, `agent${i}`, 'svid.pem'), 'utf8'))![0];
}

/** The certificate the server presents now. */
function serverCert(c: TestCluster): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: c.host, port: c.port, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, () => {
      const pem = s.getPeerX509Certificate()!.toString();
      s.destroy();
      resolve(pem);
    });
    s.once('error', reject);
  });
}

function pemCerts(file: string): X509Certificate[] {
  return TrustBundle.fromPem(readFileSync(file, 'utf8')).certificates;
}

describe('CA rotation (a server and agents on loopback, the real CLI)', () => {
  test('`warren ca rotate` while two agents run jobs: the new CA is trusted, issues, and the old one is retired by itself; no job fails or runs twice; an old-CA certificate is refused after; a new agent joins with the new ca.pem', { timeout: 240_000 }, async () => {
    const c = await TestCluster.start({ agents: 2, serverArgs: SERVER_ARGS });
    try {
      const oldCa = new X509Certificate(readFileSync(c.caFile, 'utf8'));
      // The old CA's key, kept to forge a certificate from it once it is retired.
      cpSync(join(c.dir, 'srv', 'ca'), join(c.dir, 'old-ca'), { recursive: true });
      const before = await caStatus(c);
      assert.equal(before.phase, 'none');
      assert.deepEqual(before.cas.map((x) => [x.fingerprint, x.role, x.signing]), [[oldCa.fingerprint256, 'active', true]]);

      // Jobs all the way through: a workflow of four short jobs submitted every ~300 ms; and the nodes watched.
      let stop = false;
      const ids: string[] = [];
      const notReady: string[] = [];
      const submitter = (async () => {
        for (let k = 0; !stop; k++) {
          const flow = join(c.dir, `w${k}.yaml`);
          writeFileSync(flow, `version: v1\njobs:\n${[0, 1, 2, 3].map((j) => ledgerJob(c, `w${k}j${j}`, 'sleep 0.5')).join('')}`);
          const r = await c.cli(['run', '--detach', flow]);
          assert.equal(r.code, 0, r.stderr);
          ids.push(r.stdout.trim());
          await sleep(300);
        }
      })();
      let newFp = '';
      let newCa: X509Certificate[] = [];
      const watcher = (async () => {
        while (!stop) {
          const ns = await c.nodes().catch(() => null);
          for (const n of ns ?? []) if (n.state !== 'ready') notReady.push(`${n.name} ${n.state}`);
          await sleep(250);
        }
      })();
      try {
        const running = (l: string[]) => count(l, 'start ') > count(l, 'end ');
        await c.until('jobs to run on both nodes', async () => c.ledgerLines(), (l) => running(l) && l.some((x) => x.startsWith('start ') && x.endsWith(' n1')) && l.some((x) => x.startsWith('start ') && x.endsWith(' n2')), 60_000);
        const rot = await c.cli(['ca', 'rotate']);
        assert.equal(rot.code, 0, rot.stderr);
        assert.match(rot.stderr, /CA rotation started: the new CA \(SHA-256 [0-9A-F:]+\) is trusted beside the old one/);
        const done = await c.until('the old CA to be retired by itself', () => caStatus(c), (s) => s.phase === 'none' && s.lastRetiredAt !== null, 60_000);
        const atRetire = c.ledgerLines().length;
        // Jobs go on on both nodes after the retirement too.
        await c.until('jobs on both nodes after the retirement', async () => c.ledgerLines().slice(atRetire), (l) => ['n1', 'n2'].every((n) => l.some((x) => x.startsWith('start ') && x.endsWith(` ${n}`))), 60_000);
        stop = true;
        await submitter;
        await watcher;

        newFp = done.cas[0]!.fingerprint;
        assert.notEqual(newFp, oldCa.fingerprint256);
        assert.deepEqual(done.cas.map((x) => [x.role, x.signing]), [['active', true]]);
        assert.deepEqual(done.nodes.map((n) => [n.name, n.state, n.ca]), [['n1', 'ready', 'active'], ['n2', 'ready', 'active']]);
        newCa = pemCerts(c.caFile);
        assert.deepEqual(newCa.map((x) => x.fingerprint256), [newFp], 'DATA/ca.pem holds the new CA only');
        assert.equal(issuerOf(await serverCert(c), newCa), newFp, "the server's certificate is from the new CA");
        for (const i of [0, 1]) {
          assert.equal(issuerOf(agentCert(c, i), newCa), newFp, `agent ${i}'s certificate is from the new CA`);
          // Its bundle.pem (what a restarted agent trusts) dropped the old CA.
          await c.until(`agent ${i}'s bundle to drop the old CA`, async () => pemCerts(join(c.dir, `agent${i}`, 'bundle.pem')).map((x) => x.fingerprint256), (f) => f.length === 1 && f[0] === newFp, 10_000);
        }
        assert.deepEqual(notReady, [], 'both agents stayed ready');
        for (const l of c.agentLogs) assert.doesNotMatch(l, /fenc|could not renew|refused node|lost the server|did not take/);
      } finally {
        stop = true;
        await Promise.allSettled([submitter, watcher]);
      }

      // Every workflow succeeded; each job ran once, in one attempt.
      for (const id of ids) {
        const st = await c.until(`workflow ${id} to end`, () => c.json<ClusterStatus>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 60_000);
        assert.equal(st.status, 'succeeded', JSON.stringify(st));
        for (const j of st.jobs) assert.equal(j.attempts, 1, `${id} ${j.name} took one attempt`);
      }
      const lines = c.ledgerLines();
      for (const l of lines.filter((x) => x.startsWith('start '))) {
        const job = l.split(' ')[1]!;
        assert.equal(count(lines, `start ${job} `), 1, `${job} started once`);
        assert.equal(count(lines, `end ${job} `), 1, `${job} ended once`);
      }
      assert.ok(ids.length >= 2, `${ids.length} workflows ran through the rotation`);

      // A certificate from the retired CA is refused at the agent routes.
      const oldAuthority = await CertificateAuthority.load(join(c.dir, 'old-ca'));
      const p = await PendingIdentity.create(join(c.dir, 'forged'), 'n1');
      const forged = await oldAuthority.issue(p.csrPem, { kind: 'node', name: 'n1' });
      const d = new Agent({ connect: { key: p.keyPem, cert: forged.certPem, ca: readFileSync(c.caFile, 'utf8') } });
      try {
        const res = await request(`${c.url}/agent/v1/heartbeat`, { method: 'POST', dispatcher: d, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ protocol: { major: 1, minor: 3 }, epoch: 'x' }) });
        const body = (await res.body.json()) as { error: { code: string } };
        assert.equal(res.statusCode, 401);
        assert.equal(body.error.code, 'MESH_FOREIGN_CA');
      } finally {
        await d.close();
      }

      // A new agent joins with the new ca.pem (the harness gives it DATA/ca.pem).
      const tok = await c.cli(['token', 'create', '--ttl', '5m']);
      assert.equal(tok.code, 0, tok.stderr);
      c.agentLogs.push('');
      await c.startAgent(2, tok.stdout.trim());
      await c.waitReady(3);
      assert.equal(issuerOf(agentCert(c, 2), newCa), newFp);

      // The audit log has the admin's rotation.
      const audit = await c.json<{ action: string; result: string }[]>(['audit', 'list', '--action', 'ca.']);
      assert.deepEqual(audit.map((e) => [e.action, e.result]), [['ca.rotate', 'ok']]);
    } finally {
      await c.close();
    }
  });

  test('a server restart in the middle of a rotation continues it; rotate twice, retire without a rotation and retire with old-CA nodes are refused; --force locks such a node out', { timeout: 240_000 }, async () => {
    const c = await TestCluster.start({ agents: 2, serverArgs: SERVER_ARGS });
    try {
      const none = await c.cli(['ca', 'retire']);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /MESH_CA_NO_ROTATION/);

      // n2 stops (keeping its identity): a down node holds the rotation up.
      c.killAgent(1);
      await c.until('n2 to be down', () => c.nodes(), (ns) => ns.find((n) => n.name === 'n2')?.state === 'down', 20_000);
      const rot = await c.cli(['ca', 'rotate']);
      assert.equal(rot.code, 0, rot.stderr);
      const twice = await c.cli(['ca', 'rotate']);
      assert.equal(twice.code, 2);
      assert.match(twice.stderr, /MESH_CA_ROTATION_IN_PROGRESS.*already in progress/);
      const trusting = await c.until('n1 to trust the new CA', () => caStatus(c), (s) => s.phase === 'trust' && s.nodes.find((n) => n.name === 'n1')?.trustsNew === true, 20_000);
      assert.deepEqual(trusting.waitingFor, ['n2']);
      assert.match(trusting.next, /waiting for n2 to trust the new CA/);
      assert.equal(pemCerts(c.caFile).length, 2, 'DATA/ca.pem holds both CAs during the rotation');
      const text = await c.cli(['ca', 'status']);
      assert.match(text.stdout, /CA rotation in phase trust/);
      assert.match(text.stdout, /^old\s+yes/m);
      assert.match(text.stdout, /^new\s+no/m);
      assert.match(text.stdout, /old CA: n1 \(ready\), n2 \(down\)/);
      const bundle = await c.cli(['ca', 'status', '--bundle']);
      assert.equal(bundle.stdout, readFileSync(c.caFile, 'utf8'));
      const refused = await c.cli(['ca', 'retire']);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /MESH_CA_RETIRE_REFUSED/);
      assert.match(refused.stderr, /nodes n1, n2 hold a certificate from it/);

      // The server dies in the middle and starts again: the rotation is in the store.
      const newFp = trusting.cas.find((x) => x.role === 'new')!.fingerprint;
      c.killServer(0);
      await c.startServer(0);
      const again = await c.until('the restarted server to lead', () => caStatus(c), (s) => s.phase === 'trust', 30_000);
      assert.deepEqual(again.cas.map((x) => [x.role, x.fingerprint === newFp]), [['old', false], ['new', true]]);
      // n2 comes back with the old bundle on disk: it learns the new one, renews, and the old CA is retired.
      await c.startAgent(1);
      const done = await c.until('the rotation to end', () => caStatus(c), (s) => s.phase === 'none', 60_000);
      assert.deepEqual(done.cas.map((x) => x.fingerprint), [newFp]);
      assert.deepEqual(done.nodes.map((n) => [n.name, n.ca]), [['n1', 'active'], ['n2', 'active']]);
      await c.waitReady(2);

      // A second rotation, held in its trust phase (--trust-for) until n2 has learnt the new CA;
      // then n2 goes away before it renews: the issue phase waits for it.
      assert.equal((await c.cli(['ca', 'rotate', '--trust-for', 'x'])).code, 2, 'a bad --trust-for is refused');
      const second = await c.cli(['ca', 'rotate', '--trust-for', '6s', '--json']);
      assert.equal(second.code, 0, second.stderr);
      const fp2 = (JSON.parse(second.stdout) as CaStatusView).cas.find((x) => x.role === 'new')!.fingerprint;
      await c.until('n2 to trust the second new CA', () => caStatus(c), (s) => s.phase === 'trust' && s.nodes.every((n) => n.trustsNew === true), 20_000);
      c.killAgent(1);
      const issuing = await c.until('n1 to renew onto the second new CA', () => caStatus(c), (s) => s.phase === 'issue' && s.nodes.find((n) => n.name === 'n1')?.ca === 'new', 30_000);
      assert.deepEqual(issuing.waitingFor, ['n2']);
      const held = await c.cli(['ca', 'retire']);
      assert.equal(held.code, 2);
      assert.match(held.stderr, /MESH_CA_RETIRE_REFUSED.*node n2 holds a certificate from it/);
      const forced = await c.cli(['ca', 'retire', '--force']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stderr, /the old CA is retired: only SHA-256 \S+ is trusted now; n2 must join again with a token/);
      const after = await caStatus(c);
      assert.equal(after.phase, 'none');
      assert.deepEqual(after.cas.map((x) => x.fingerprint), [fp2]);
      assert.deepEqual(after.nodes.map((n) => [n.name, n.ca]), [['n1', 'active'], ['n2', 'untrusted']]);
      // n2 comes back with a certificate from the retired CA: refused, and it says so.
      await c.startAgent(1);
      await c.until("n2's refusal", async () => c.agentLogs[1]!, (l) => /MESH_FOREIGN_CA/.test(l), 20_000);
      assert.match(c.serverLog, /refused POST \/agent\/v1\/heartbeat from \S+: the certificate "CN=n2, OU=node, O=Warren" was issued by .*which is not a CA of this cluster's trust bundle/);
      c.killAgent(1);
      // n1 goes on: a job runs there.
      const flow = join(c.dir, 'after.yaml');
      writeFileSync(flow, `version: v1\njobs:\n${ledgerJob(c, 'after', 'true')}`);
      const r = await c.cli(['run', flow]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(c.ledgerLines().includes('end after 1 n1'), c.ledgerLines().join('\n'));
      const audit = await c.json<{ action: string; result: string }[]>(['audit', 'list', '--action', 'ca.']);
      assert.deepEqual(audit.map((e) => [e.action, e.result]), [
        ['ca.retire', 'MESH_CA_NO_ROTATION'],
        ['ca.rotate', 'ok'],
        ['ca.rotate', 'MESH_CA_ROTATION_IN_PROGRESS'],
        ['ca.retire', 'MESH_CA_RETIRE_REFUSED'],
        ['ca.rotate', 'ok'],
        ['ca.retire', 'MESH_CA_RETIRE_REFUSED'],
        ['ca.retire', 'ok'],
      ]);
    } finally {
      await c.close();
    }
  });
});

const pgOk = postgresAvailable();

describe('CA rotation with two servers on one PostgreSQL', { skip: pgOk === true ? false : String(pgOk) }, () => {
  let pg: PgInstance;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.destroy();
  });

  test('the leader dies mid-rotation: the other server finishes it; the dead one, restarted, takes the new CA in place of the retired one it kept', { timeout: 240_000 }, async () => {
    const db = await freshDatabase(pg);
    const c = await TestCluster.start({ agents: 2, servers: 2, store: db.url, serverArgs: SERVER_ARGS });
    try {
      const oldFp = pemCerts(c.caFile)[0]!.fingerprint256;
      assert.equal((await c.health(0)).body.role, 'leader');
      // Held in its trust phase for a few seconds, so that the leader dies in the middle of it.
      const rot = await c.cli(['ca', 'rotate', '--trust-for', '5s', '--json']);
      assert.equal(rot.code, 0, rot.stderr);
      const newFp = (JSON.parse(rot.stdout) as CaStatusView).cas.find((x) => x.role === 'new')!.fingerprint;
      // The follower learns the rotation from the store: its ca.pem holds both CAs.
      await c.until("the follower's ca.pem to hold both CAs", async () => pemCerts(join(c.dir, 'srv1', 'ca.pem')).map((x) => x.fingerprint256).sort(), (f) => f.join() === [oldFp, newFp].sort().join(), 10_000);
      await c.until('both nodes to trust the new CA', () => c.json<CaStatusView>(['ca', 'status'], { context: c.contextOf(1) }), (s) => s.phase === 'trust' && s.nodes.every((n) => n.trustsNew === true), 20_000);
      c.killServer(0);
      const done = await c.until('server 1 to finish the rotation', () => c.json<CaStatusView>(['ca', 'status'], { context: c.contextOf(1) }), (s) => s.phase === 'none', 90_000);
      assert.deepEqual(done.cas.map((x) => x.fingerprint), [newFp]);
      assert.deepEqual(done.nodes.map((n) => [n.name, n.ca]), [['n1', 'active'], ['n2', 'active']]);
      assert.deepEqual(pemCerts(join(c.dir, 'srv1', 'ca.pem')).map((x) => x.fingerprint256), [newFp]);
      assert.equal(new X509Certificate(readFileSync(join(c.dir, 'srv1', 'ca', 'ca.crt'), 'utf8')).fingerprint256, newFp, "server 1's DATA/ca is the new CA");
      for (const i of [0, 1]) assert.equal(issuerOf(agentCert(c, i), pemCerts(join(c.dir, 'srv1', 'ca.pem'))), newFp);
      // Server 0 comes back with the retired CA in its DATA/ca: it takes the new one from the store.
      await c.startServer(0);
      assert.match(c.serverLogs[0]!, /was retired by a CA rotation: took the store's/);
      assert.equal(new X509Certificate(readFileSync(join(c.dir, 'srv', 'ca', 'ca.crt'), 'utf8')).fingerprint256, newFp);
      assert.deepEqual(pemCerts(c.caFile).map((x) => x.fingerprint256), [newFp]);
      const h0 = await c.until('server 0 to follow', () => c.health(0), (h) => h.body.role === 'follower', 20_000);
      assert.equal(h0.status, 200);
      // The cluster works: a workflow through the follower (forwarded to the leader, over the new CA).
      const flow = join(c.dir, 'after.yaml');
      writeFileSync(flow, `version: v1\njobs:\n${ledgerJob(c, 'a', 'true')}${ledgerJob(c, 'b', 'true')}`);
      const r = await c.cli(['run', flow]);
      assert.equal(r.code, 0, `${r.stderr}\n${c.serverLog.slice(-3000)}`);
      assert.equal(count(c.ledgerLines(), 'end '), 2);
    } finally {
      await c.close();
    }
  });
});
