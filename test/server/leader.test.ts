// Two servers, one leader, at unit level: the leader election on a real store (takeover
// after a release, stepping down at the local deadline when the store stops answering), and
// the user API of a follower on a real PostgreSQL (a read served from the store, a submit
// forwarded to the leader, agents told where the leader is, SERVER_NO_LEADER, the CA check).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Agent, request } from 'undici';
import { SqliteStore } from '../../src/store/index.js';
import { CertificateAuthority } from '../../src/mesh/index.js';
import { LeaderElection, type LeaderStore } from '../../src/server/leader.js';
import { startServer, type RunningServer } from '../../src/server/serve.js';
import { tempDir } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = () => {};

async function until(what: string, pred: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('the leader election', () => {
  const t = tempDir();
  after(t.cleanup);
  const timers = { ttlMs: 600, renewMs: 150, retryMs: 100, marginMs: 150 };

  test('one of two servers leads; the other knows its URL and takes over at once when it lets go', { timeout: 20_000 }, async () => {
    const path = join(t.dir, 'a.db');
    const sa = new SqliteStore(path, { reserveBytes: 0 });
    const sb = new SqliteStore(path, { reserveBytes: 0 });
    const a = new LeaderElection({ store: sa, id: 'A', url: 'https://a:1', timers });
    const b = new LeaderElection({ store: sb, id: 'B', url: 'https://b:2', timers });
    try {
      a.start();
      await a.firstRound;
      assert.equal(a.isLeader, true);
      b.start();
      await b.firstRound;
      assert.equal(b.isLeader, false);
      assert.deepEqual({ role: b.view().role, leaderUrl: b.view().leaderUrl, term: b.view().term }, { role: 'follower', leaderUrl: 'https://a:1', term: a.currentTerm });
      // held across several renewals
      await sleep(700);
      assert.equal(a.isLeader, true);
      assert.equal(b.isLeader, false);
      const term = a.currentTerm;
      let elected = 0;
      b.on('elected', () => (elected = Date.now()));
      const t0 = Date.now();
      await a.close();
      await until('B to lead', () => b.isLeader, 2000);
      assert.ok(elected - t0 < 500, `taken within a retry of the release (${elected - t0} ms)`);
      assert.equal(b.currentTerm, term + 1, 'a new term');
    } finally {
      await a.close();
      await b.close();
      await sa.close();
      await sb.close();
    }
  });

  test('a leader whose store stops answering steps down at its deadline, before the lease can expire in the store', { timeout: 20_000 }, async () => {
    const s = new SqliteStore(join(t.dir, 'b.db'), { reserveBytes: 0 });
    let hang = false;
    let lastRenewStart = 0;
    // The store, except that while `hang` its calls never answer (a cut link).
    const never = new Promise<never>(() => {});
    const store: LeaderStore = {
      acquireLeader: (...a) => (hang ? never : s.acquireLeader(...a)),
      renewLeader: (...a) => {
        if (hang) return never;
        lastRenewStart = Date.now();
        return s.renewLeader(...a);
      },
      releaseLeader: (...a) => (hang ? never : s.releaseLeader(...a)),
      readLeader: () => (hang ? never : s.readLeader()),
    };
    const a = new LeaderElection({ store, id: 'A', url: 'https://a:1', timers });
    try {
      let why = '';
      let deposedAt = 0;
      a.on('deposed', (w) => {
        why = w;
        deposedAt = Date.now();
      });
      a.start();
      await a.firstRound;
      assert.equal(a.isLeader, true);
      await sleep(400);
      hang = true;
      await until('A to step down', () => !a.isLeader, 2000);
      assert.match(why, /did not confirm the leadership in time/);
      assert.ok(deposedAt <= lastRenewStart + timers.ttlMs - timers.marginMs + 50, `stepped down ${deposedAt - lastRenewStart} ms after the last renewal began (ttl ${timers.ttlMs}, margin ${timers.marginMs})`);
      assert.equal(a.view().role, 'follower');
    } finally {
      hang = false;
      await a.close();
      await s.close();
    }
  });
});

// Two in-process servers on a fresh database of the shared PostgreSQL.
describe('the user API of a follower', () => {
  const admin = process.env.WARREN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const db = `warren_ld_${randomUUID().replace(/-/g, '').slice(0, 10)}`;
  const u = new URL(admin);
  u.pathname = `/${db}`;
  const url = u.toString();
  const t = tempDir();
  let a: RunningServer | undefined;
  let b: RunningServer | undefined;
  let dispatcher: Agent;
  before(async () => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`CREATE DATABASE ${db}`);
    await c.end();
  });
  after(async () => {
    await b?.close();
    await a?.close();
    await dispatcher?.close();
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await c.end();
    t.cleanup();
  });

  const call = async (s: RunningServer, method: 'GET' | 'POST', path: string, body?: unknown, token?: string) => {
    const r = await request(`${s.url}${path}`, {
      method,
      dispatcher,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> & { error?: { code: string; details?: Record<string, unknown> } } };
  };

  test('a read is served from the store, a submit is forwarded to the leader, agents are told where it is; with no leader: SERVER_NO_LEADER', { timeout: 60_000 }, async () => {
    a = await startServer({ host: '127.0.0.1', port: 0, dataDir: join(t.dir, 'a'), store: url, log: quiet });
    assert.equal(a.role(), 'leader');
    const token = a.adminToken!;
    dispatcher = new Agent({ connect: { ca: a.caPem } });
    // B never tries for the lease again after its first look (so that it still names A once A is gone).
    b = await startServer({ host: '127.0.0.1', port: 0, dataDir: join(t.dir, 'b'), store: url, log: quiet, leaderTimers: { retryMs: 600_000 } });
    assert.equal(b.role(), 'follower');
    assert.equal(b.caPem, a.caPem, 'one CA, from the store');

    const hb = await call(b, 'GET', '/api/v1/health');
    assert.equal(hb.status, 200);
    assert.equal(hb.body.role, 'follower');
    assert.equal(hb.body.leaderUrl, a.url);
    const ha = await call(a, 'GET', '/api/v1/health');
    assert.deepEqual([ha.body.role, ha.body.leaderUrl, ha.body.term], ['leader', a.url, hb.body.term]);

    // a submit on the follower runs on the leader
    const source = 'version: v1\njobs:\n  hello:\n    command: [echo, hi]\n';
    const sub = await call(b, 'POST', '/api/v1/workflows', { source, filename: 'flow.yaml' }, token);
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    const id = sub.body.id as string;
    const onA = await call(a, 'GET', `/api/v1/workflows/${id}`, undefined, token);
    assert.equal(onA.status, 200);
    assert.ok(((onA.body.driver as { owner: string } | null)?.owner ?? '').includes(':srv-'), 'driven by the leader');
    // admin verbs too (the nodes are the leader's)
    const nodes = await call(b, 'GET', '/api/v1/nodes', undefined, token);
    assert.equal(nodes.status, 200);
    // a bad token is refused by the leader, through the follower
    assert.equal((await call(b, 'POST', '/api/v1/workflows', { source, filename: 'f.yaml' }, 'wrn_nope')).status, 401);

    // reads on the follower: from the store
    const list = await call(b, 'GET', '/api/v1/workflows', undefined, token);
    assert.equal(list.status, 200);
    const got = await call(b, 'GET', `/api/v1/workflows/${id}`, undefined, token);
    assert.equal(got.status, 200);
    assert.equal(got.body.id, id);

    // an agent's join on the follower: 503 SERVER_NOT_LEADER naming the leader
    const join_ = await call(b, 'POST', '/agent/v1/join', { protocol: { major: 1, minor: 0 }, token: 'x', csr: 'x', info: { name: 'n', cores: 1, memoryBytes: 1, gpus: [], labels: {}, platform: 'linux/amd64', containers: false, agentVersion: '0', protocol: { major: 1, minor: 0 } } });
    assert.equal(join_.status, 503);
    assert.equal(join_.body.error?.code, 'SERVER_NOT_LEADER');
    assert.equal(join_.body.error?.details?.leader, a.url);

    // the leader is gone and nobody took over yet: forwarded requests are 503 SERVER_NO_LEADER; reads still work
    await a.close();
    a = undefined;
    const noLeader = await call(b, 'POST', `/api/v1/workflows/${id}/cancel`, undefined, token);
    assert.equal(noLeader.status, 503);
    assert.equal(noLeader.body.error?.code, 'SERVER_NO_LEADER');
    assert.equal((await call(b, 'GET', `/api/v1/workflows/${id}`, undefined, token)).status, 200);
  });

  test('a server whose DATA/ca is not the store\'s CA refuses to start (SERVER_CA_MISMATCH)', { timeout: 30_000 }, async () => {
    const dir = join(t.dir, 'c');
    await CertificateAuthority.create(join(dir, 'ca'), { trustDomain: 'warren.local' });
    await assert.rejects(
      startServer({ host: '127.0.0.1', port: 0, dataDir: dir, store: url, log: quiet }),
      (e: Error & { code?: string; hint?: string }) => e.code === 'SERVER_CA_MISMATCH' && /move .* aside/.test(e.hint ?? ''),
    );
  });
});

