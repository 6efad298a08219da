// Faults of cluster mode, each on a real cluster: `warren server` on its own PostgreSQL
// (initdb + pg_ctl on a free port, never the shared one), agents in network namespaces.
// Every job appends "start|end JOB ATTEMPT NODE" to a ledger file, so "no job ran twice"
// is read off what really ran, not off Warren's own records.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { join } from 'node:path';
import { createNetwork, netnsAvailable, type Network } from '../helpers/netns.js';
import { startPostgres, postgresAvailable, type PgInstance } from '../helpers/pg.js';
import { TestCluster } from './harness.js';
import { count, freshDatabase, ledgerJob, submitSixJobs, type ClusterStatus as Status } from './ledger.js';

const freshDb = async (pg: PgInstance): Promise<string> => (await freshDatabase(pg)).url;

const netOk = netnsAvailable();
const pgOk = postgresAvailable();
const skip = netOk !== true ? String(netOk) : pgOk !== true ? String(pgOk) : false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster faults (agents in network namespaces, a private PostgreSQL)', { skip }, () => {
  let net: Network;
  let pg: PgInstance;
  before(async () => {
    net = await createNetwork({ hosts: 2, prefix: 'wf' });
    pg = await startPostgres();
  });
  after(async () => {
    await net?.destroy();
    await pg?.destroy();
  });

  test('kill -9 of the server mid-workflow, then a restart: jobs keep running on the agents, are adopted, and none runs twice', { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ agents: 2, net, store: await freshDb(pg) });
    try {
      const id = await submitSixJobs(c);
      await c.until('two jobs to start', async () => c.ledgerLines(), (l) => count(l, 'start ') >= 2, 30_000);
      c.killServer();
      await sleep(1000);
      await c.startServer();
      const st = await c.until('the workflow to end', () => c.json<Status>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 90_000);
      assert.equal(st.status, 'succeeded', c.serverLog.slice(-3000));
      const lines = c.ledgerLines();
      for (const j of ['a', 'b', 'c', 'd', 'e', 'f']) {
        assert.equal(count(lines, `start ${j} `), 1, `${j} started once:\n${lines.join('\n')}`);
        assert.equal(count(lines, `end ${j} `), 1, `${j} ended once`);
      }
      assert.equal(count(lines, 'start after'), 1);
      const text = (await c.cli(['status', id])).stdout;
      for (const j of st.jobs) assert.equal(j.attempts, 1, `${j.name} took one attempt:\n${lines.join('\n')}\n${text}`);
    } finally {
      await c.close();
    }
  });

  test('kill -9 of an agent: its job is retried on the other agent, as its retry policy says', { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ agents: 2, net, store: await freshDb(pg) });
    try {
      const flow = join(c.dir, 'flow.yaml');
      writeFileSync(flow, `version: v1\njobs:\n${ledgerJob(c, 'long', 'if [ "$WARREN_ATTEMPT" = 1 ]; then sleep 60; fi', '    policy:\n      retry: {attempts: 2, backoff: 1s}\n')}`);
      const sub = await c.cli(['run', '--detach', flow]);
      assert.equal(sub.code, 0, sub.stderr);
      const id = sub.stdout.trim();
      const lines0 = await c.until('the job to start', async () => c.ledgerLines(), (l) => count(l, 'start long 1 ') === 1, 30_000);
      const node = lines0.find((l) => l.startsWith('start long 1 '))!.split(' ')[3]!;
      c.killAgent(node === 'n1' ? 0 : 1);
      const st = await c.until('the workflow to end', () => c.json<Status>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 90_000);
      assert.equal(st.status, 'succeeded', c.serverLog.slice(-3000));
      const lines = c.ledgerLines();
      assert.equal(count(lines, 'end long 1 '), 0, 'the first attempt died with its agent');
      const second = lines.find((l) => l.startsWith('start long 2 '));
      assert.ok(second, lines.join('\n'));
      assert.notEqual(second!.split(' ')[3], node, 'retried on the other node');
      assert.equal(count(lines, 'end long 2 '), 1);
    } finally {
      await c.close();
    }
  });

  test("an agent's link cut past the grace: the node is lost, its job replaced; when the link returns the stale copy is stopped and nothing ends twice", { timeout: 120_000 }, async () => {
    const c = await TestCluster.start({ agents: 2, net, store: await freshDb(pg), serverArgs: ['--stop-after', '60s'] });
    try {
      const flow = join(c.dir, 'flow.yaml');
      writeFileSync(flow, `version: v1\njobs:\n${ledgerJob(c, 'cut', 'if [ "$WARREN_ATTEMPT" = 1 ]; then sleep 25; fi', '    policy:\n      retry: {attempts: 2, backoff: 1s}\n')}`);
      const sub = await c.cli(['run', '--detach', flow]);
      const id = sub.stdout.trim();
      const lines0 = await c.until('the job to start', async () => c.ledgerLines(), (l) => count(l, 'start cut 1 ') === 1, 30_000);
      const node = lines0.find((l) => l.startsWith('start cut 1 '))!.split(' ')[3]!;
      const i = node === 'n1' ? 0 : 1;
      await net.hosts[i]!.cut();
      await c.until(`${node} to be lost`, () => c.nodes(), (ns) => ns.find((n) => n.name === node)?.state !== 'ready', 30_000);
      await c.until('the replacement to run', async () => c.ledgerLines(), (l) => count(l, 'end cut 2 ') === 1, 60_000);
      await net.hosts[i]!.restore();
      await c.until(`${node} to come back`, () => c.nodes(), (ns) => ns.find((n) => n.name === node)?.state === 'ready', 30_000);
      // Given time to finish, the stale copy (sleep 25) would have written its end: it was stopped.
      await sleep(4000);
      const st = await c.json<Status>(['status', id]);
      assert.equal(st.status, 'succeeded', c.serverLog.slice(-3000));
      assert.equal(st.jobs[0]!.attempts, 2);
      const lines = c.ledgerLines();
      assert.equal(count(lines, 'end cut 1 '), 0, `the stale copy was stopped:\n${lines.join('\n')}`);
      const ps = await net.hosts[i]!.exec('/bin/sh', ['-c', 'ps -eo args | grep -c "[s]leep 25" || true']);
      assert.equal(ps.stdout.trim(), '0', 'no stale process is left on the node');
    } finally {
      await c.close();
    }
  });

  test('PostgreSQL stopped for 20 s mid-workflow: the server retries, says so in its log and in /health, loses nothing, and the workflow completes', { timeout: 150_000 }, async () => {
    const c = await TestCluster.start({ agents: 2, net, store: await freshDb(pg) });
    try {
      const flow = join(c.dir, 'flow.yaml');
      const jobs = Array.from({ length: 8 }, (_, k) => ledgerJob(c, `j${k}`, 'sleep 1', k > 0 ? `    requires: [j${k - 1}]\n` : '')).join('');
      writeFileSync(flow, `version: v1\njobs:\n${jobs}`);
      const sub = await c.cli(['run', '--detach', flow]);
      assert.equal(sub.code, 0, sub.stderr);
      const id = sub.stdout.trim();
      await c.until('two jobs to end', async () => c.ledgerLines(), (l) => count(l, 'end ') >= 2, 40_000);
      await pg.stop('fast');
      const t0 = Date.now();
      // /health says the store is down (no token needed).
      const ca = readFileSync(c.caFile, 'utf8');
      const health = await c.until(
        '/health to report the store down',
        async () => {
          const r = await request(`${c.url}/api/v1/health`, { dispatcher: new Agent({ connect: { ca } }) });
          const body = (await r.body.json()) as { ok: boolean; store: { ok: boolean }; messages: string[] };
          return { status: r.statusCode, body };
        },
        (h) => h.status === 503 && h.body.store.ok === false,
        15_000,
      );
      assert.match(health.body.messages.join(' '), /store is not reachable/);
      while (Date.now() - t0 < 20_000) await sleep(500);
      await pg.start();
      const st = await c.until('the workflow to end', () => c.json<Status>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 90_000);
      assert.equal(st.status, 'succeeded', c.serverLog.slice(-3000));
      const lines = c.ledgerLines();
      for (let k = 0; k < 8; k++) {
        assert.equal(count(lines, `start j${k} `), 1, `j${k} started once:\n${lines.join('\n')}`);
        assert.equal(count(lines, `end j${k} `), 1);
      }
      assert.match(c.serverLog, /not reachable|cannot write to the store/, 'the outage is in the server log');
    } finally {
      await c.close();
    }
  });
});
