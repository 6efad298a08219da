// Observing a real cluster (the CLI as users run it): GET /metrics scraped and parsed while a
// workflow runs, agents join and die; /health and /ready, also with the store stopped (a
// private PostgreSQL) and on a follower; `warren server status`, its output and exit code;
// the server's and the agent's JSON log lines carrying workflowId, job and attemptId.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { TestCluster } from './harness.js';
import { startPostgres, postgresAvailable, type PgInstance } from '../helpers/pg.js';
import { tempDir } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One sample of the Prometheus text format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format -> samples (comments skipped; every sample line must parse). */
export function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const v = m[3]!;
    out.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

/** The value of the one sample with this name and these labels (0 when there is none). */
function val(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.reduce((n, s) => n + s.value, 0);
}

async function get(url: string, o: { ca?: string; token?: string } = {}): Promise<{ status: number; text: string; type: string }> {
  const d = new Agent({ connect: o.ca ? { ca: o.ca } : {} });
  try {
    const r = await request(url, { dispatcher: d, headers: o.token ? { authorization: `Bearer ${o.token}` } : {}, headersTimeout: 10_000, bodyTimeout: 10_000 });
    return { status: r.statusCode, text: await r.body.text(), type: String(r.headers['content-type'] ?? '') };
  } finally {
    await d.close().catch(() => {});
  }
}

/** The metrics listener's URL of server k, from its JSON `ready:` line. */
function metricsUrlOf(c: TestCluster, k: number): string {
  for (const line of c.serverLogs[k]!.split('\n')) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as { msg: string; metricsUrl?: string };
    if (o.msg.startsWith('ready: ') && o.metricsUrl) return o.metricsUrl;
  }
  throw new Error(`server ${k} said no metrics URL:\n${c.serverLogs[k]}`);
}

/** Every line a process wrote (stdout and stderr) but `except`, parsed as JSON. */
function jsonLines(log: string, except: string[] = []): Array<Record<string, unknown>> {
  return log
    .split('\n')
    .filter((l) => l.trim() !== '' && !except.includes(l.trim()))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        assert.fail(`not a JSON log line: ${l}`);
      }
    });
}

describe('observing a server: /metrics, /health, /ready, warren server status, JSON logs (one server, agents on loopback)', () => {
  let c: TestCluster;
  let t: { dir: string; cleanup: () => void };
  let metricsToken = '';
  let ca = '';
  before(async () => {
    t = tempDir('warren-observe-');
    metricsToken = 'mt-' + 'x'.repeat(20) + Date.now();
    writeFileSync(join(t.dir, 'metrics.token'), metricsToken + '\n', { mode: 0o600 });
    c = await TestCluster.start({
      agents: 1,
      serverArgs: ['--log-format', 'json', '--log-level', 'debug', '--metrics-listen', '127.0.0.1:0', '--metrics-token-file', join(t.dir, 'metrics.token'), '--metrics-refresh', '200ms'],
      agentArgs: () => ['--log-format', 'json', '--log-level', 'debug'],
    });
    const { readFileSync } = await import('node:fs');
    ca = readFileSync(c.caFile, 'utf8');
  });
  after(async () => {
    await c?.close();
    t?.cleanup();
  });

  const scrape = async (): Promise<Sample[]> => {
    const r = await get(`${metricsUrlOf(c, 0)}/metrics`, { token: metricsToken });
    assert.equal(r.status, 200, r.text);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    return parseProm(r.text);
  };
  const until = async (what: string, pred: (s: Sample[]) => boolean, ms = 30_000): Promise<Sample[]> => {
    const t0 = Date.now();
    for (;;) {
      const s = await scrape();
      if (pred(s)) return s;
      if (Date.now() - t0 > ms) {
        const shown = s.filter((x) => /^warren_(jobs|workflows|agents|runs|leader)/.test(x.name)).map((x) => `${x.name}${JSON.stringify(x.labels)} ${x.value}`);
        assert.fail(`timed out waiting for ${what}; last scrape:\n${shown.join('\n')}\n--- server log ---\n${c.serverLog.slice(-3000)}`);
      }
      await sleep(100);
    }
  };

  test('/metrics follows a workflow: jobs by state, workflows, queue wait, run time, dispatch, API requests by route, store calls', { timeout: 120_000 }, async () => {
    const s0 = await scrape();
    assert.equal(val(s0, 'warren_leader'), 1);
    assert.ok(val(s0, 'warren_leader_term') >= 1);
    assert.equal(val(s0, 'warren_server_info', { version: '0.1.0', store: 'sqlite' }), 1);
    assert.equal(val(s0, 'warren_agents', { state: 'ready' }), 1);
    assert.ok(val(s0, 'process_cpu_seconds_total') > 0, 'the default process metrics are there');
    assert.ok(s0.some((s) => s.name === 'nodejs_heap_size_used_bytes'));
    const failedBefore = val(s0, 'warren_workflows', { status: 'failed' });
    const submitsBefore = val(s0, 'warren_http_requests_total', { method: 'POST', route: '/api/v1/workflows', status: '201' });

    const gate = join(c.dir, 'gate');
    const flow = join(c.dir, 'observed.yaml');
    writeFileSync(
      flow,
      `version: v1
jobs:
  slow:
    command: [/bin/sh, -c, 'while [ ! -e ${gate} ]; do sleep 0.05; done']
  after:
    command: [/bin/sh, -c, 'exit 3']
    requires: [slow]
`,
    );
    const r = await c.cli(['run', '--detach', flow]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();

    // While `slow` runs: one unit running, one pending; one workflow running.
    const s1 = await until('slow running', (s) => val(s, 'warren_jobs', { state: 'running' }) === 1 && val(s, 'warren_jobs', { state: 'pending' }) === 1);
    assert.equal(val(s1, 'warren_workflows', { status: 'running' }), 1);
    assert.equal(val(s1, 'warren_runs_driven'), 1);
    assert.equal(val(s1, 'warren_http_requests_total', { method: 'POST', route: '/api/v1/workflows', status: '201' }), submitsBefore + 1, 'the submit counted under its route pattern');
    assert.ok(val(s1, 'warren_job_queue_wait_seconds_count', { kind: 'job' }) >= 1);
    assert.ok(val(s1, 'warren_dispatch_send_seconds_count') >= 1);
    assert.ok(val(s1, 'warren_dispatch_latency_seconds_count') >= 1);
    assert.ok(val(s1, 'warren_store_call_duration_seconds_count', { operation: 'createWorkflow' }) >= 1);
    assert.ok(val(s1, 'warren_store_call_duration_seconds_count', { operation: 'write' }) >= 1);
    assert.ok(val(s1, 'warren_agent_heartbeats_total') >= 1);
    // The workflow's own id is not a label anywhere (route patterns, not URLs).
    assert.ok(!s1.some((s) => Object.values(s.labels).some((v) => v.includes(id))), 'no raw URL in a label');

    // `warren server status` while it runs.
    const st = await c.cli(['server', 'status']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^server https:\/\/127\.0\.0\.1:\d+ \(/);
    assert.match(st.stdout, /\n {2}ready {6}yes\n/);
    assert.match(st.stdout, /\n {2}role {7}leader, term \d+\n/);
    assert.match(st.stdout, /\n {2}database {3}sqlite, reachable \([\d.]+ ms\)\n/);
    assert.match(st.stdout, /\n {2}agents {5}1 ready, 0 down, 0 lost, 0 revoked; 0 drained \(1 in all\)\n/);
    assert.match(st.stdout, /\n {2}queue {6}1 pending, 0 ready, 0 starting, 1 running; none waiting\n/);
    assert.match(st.stdout, /\n {2}version {4}0\.1\.0\n/);
    const js = await c.json<{ ready: boolean; role: string; agents: { ready: number; source: string }; queue: { running: number; pending: number }; workflows: { running: number }; store: { kind: string; reachable: boolean } }>(['server', 'status']);
    assert.deepEqual([js.ready, js.role, js.agents.ready, js.agents.source, js.queue.running, js.queue.pending, js.workflows.running, js.store.kind, js.store.reachable], [true, 'leader', 1, 'live', 1, 1, 1, 'sqlite', true]);

    writeFileSync(gate, '');
    const s2 = await until('the workflow failed', (s) => val(s, 'warren_workflows', { status: 'failed' }) === failedBefore + 1 && val(s, 'warren_runs_driven') === 0);
    assert.equal(val(s2, 'warren_jobs', { state: 'running' }), 0, 'units of ended workflows are not counted');
    assert.ok(val(s2, 'warren_job_run_seconds_count', { kind: 'job', result: 'succeeded' }) >= 1);
    assert.ok(val(s2, 'warren_job_run_seconds_count', { kind: 'job', result: 'failed' }) >= 1);
    assert.ok(val(s2, 'warren_job_run_seconds_sum', { kind: 'job', result: 'succeeded' }) > 0);
    assert.ok(val(s2, 'warren_job_queue_wait_seconds_count', { kind: 'job' }) >= 2);
    // Histograms are cumulative: the +Inf bucket is the count.
    assert.equal(val(s2, 'warren_job_queue_wait_seconds_bucket', { kind: 'job', le: '+Inf' }), val(s2, 'warren_job_queue_wait_seconds_count', { kind: 'job' }));

    // The server's JSON log: every line parses; the lines about this run carry its ids.
    const lines = jsonLines(c.serverLog, [c.adminToken]);
    for (const l of lines) {
      assert.equal(typeof l.time, 'string');
      assert.ok(['debug', 'info', 'warn', 'error'].includes(l.level as string), JSON.stringify(l));
      assert.equal(typeof l.msg, 'string');
    }
    const mine = lines.filter((l) => l.workflowId === id);
    assert.ok(mine.some((l) => /accepted workflow/.test(l.msg as string)), 'accepted');
    const failed = mine.find((l) => l.job === 'after' && /failed/.test(l.msg as string));
    assert.ok(failed, `a line says the attempt of "after" failed: ${JSON.stringify(mine)}`);
    assert.equal(failed.attemptId, `${id}/after/1`);
    assert.equal(failed.exitCode, 3);
    assert.equal(failed.node, 'n1');
    assert.ok(mine.some((l) => l.job === 'slow' && l.attemptId === `${id}/slow/1` && l.level === 'debug' && /started/.test(l.msg as string)), 'debug: started');
    assert.ok(mine.some((l) => l.level === 'warn' && l.msg === `workflow ${id} failed`), 'the run\'s end');
    // The agent's: the same ids, and its node.
    const agent = jsonLines(c.agentLogs[0]!);
    const a = agent.find((l) => l.attemptId === `${id}/after/1` && /ended: exit \(exit code 3\)/.test(l.msg as string));
    assert.ok(a, `the agent says the attempt ended: ${JSON.stringify(agent.filter((l) => l.workflowId === id))}`);
    assert.deepEqual([a.workflowId, a.job, a.node], [id, 'after', 'n1']);
    assert.ok(agent.some((l) => l.attemptId === `${id}/slow/1` && /assigned/.test(l.msg as string)));
  });

  test('/metrics follows the agents: one joins, is drained, dies (down; the heartbeats it missed)', { timeout: 90_000 }, async () => {
    const s0 = await scrape();
    const missed0 = val(s0, 'warren_agent_heartbeats_missed_total');
    const tok = await c.cli(['token', 'create', '--ttl', '10m']);
    assert.equal(tok.code, 0, tok.stderr);
    c.agents.push(null);
    c.agentLogs.push('');
    await c.startAgent(1, tok.stdout.trim());
    await until('two agents ready', (s) => val(s, 'warren_agents', { state: 'ready' }) === 2);
    const d = await c.cli(['node', 'drain', 'n2']);
    assert.equal(d.code, 0, d.stderr);
    await until('one drained', (s) => val(s, 'warren_agents_drained') === 1);
    c.killAgent(1);
    // Lost comes only after the agent's own stop-after (10 min by default): down is what a dead agent is first.
    const s1 = await until('n2 down', (s) => val(s, 'warren_agents', { state: 'ready' }) === 1 && val(s, 'warren_agents', { state: 'down' }) === 1);
    assert.equal(val(s1, 'warren_agent_heartbeats_missed_total'), missed0 + 1);
    assert.equal(val(s1, 'warren_agents_drained'), 1, 'a drained node that is down is still drained');
    const st = await c.json<{ agents: { ready: number; down: number; drained: number; total: number } }>(['server', 'status']);
    assert.deepEqual([st.agents.ready, st.agents.down, st.agents.drained, st.agents.total], [1, 1, 1, 2]);
    const text = await c.cli(['server', 'status']);
    assert.match(text.stdout, /\n {2}agents {5}1 ready, 1 down, 0 lost, 0 revoked; 1 drained \(2 in all\)\n/);
  });

  test('/health and /ready answer without a token on both ports; /metrics needs the metrics token or an admin token', { timeout: 60_000 }, async () => {
    for (const base of [c.url, metricsUrlOf(c, 0)]) {
      const h = await get(`${base}/health`, { ca });
      assert.equal(h.status, 200, h.text);
      const hv = JSON.parse(h.text) as { status: string; role: string; version: string; uptimeSeconds: number };
      assert.deepEqual([hv.status, hv.role, hv.version], ['ok', 'leader', '0.1.0']);
      assert.ok(hv.uptimeSeconds > 0);
      const r = await get(`${base}/ready`, { ca });
      assert.equal(r.status, 200, r.text);
      const rv = JSON.parse(r.text) as { ready: boolean; role: string; leaderUrl: string; store: { kind: string; reachable: boolean; latencyMs: number } };
      assert.deepEqual([rv.ready, rv.role, rv.leaderUrl, rv.store.kind, rv.store.reachable], [true, 'leader', c.url, 'sqlite', true]);
    }
    // The old health stays.
    assert.equal((await c.health(0)).status, 200);

    const https = `${c.url}/metrics`;
    const none = await get(https, { ca });
    assert.equal(none.status, 401);
    assert.equal((JSON.parse(none.text) as { error: { code: string; hint: string } }).error.code, 'AUTH_REQUIRED');
    const bad = await get(https, { ca, token: 'wrn_nonsense' });
    assert.equal(bad.status, 401);
    assert.equal((JSON.parse(bad.text) as { error: { code: string } }).error.code, 'AUTH_TOKEN_INVALID');
    const u = await c.cli(['user', 'add', 'carol', '--unix-user', 'root']);
    assert.equal(u.code, 0, u.stderr);
    const user = await get(https, { ca, token: u.stdout.trim() });
    assert.equal(user.status, 403, 'a user who is not an admin');
    assert.equal((JSON.parse(user.text) as { error: { code: string } }).error.code, 'AUTH_FORBIDDEN');
    for (const token of [c.adminToken, metricsToken]) {
      const ok = await get(https, { ca, token });
      assert.equal(ok.status, 200, ok.text);
      assert.ok(parseProm(ok.text).some((s) => s.name === 'warren_leader' && s.value === 1));
    }
    // The plain listener takes the metrics token only (it is configured): not an API token.
    assert.equal((await get(`${metricsUrlOf(c, 0)}/metrics`)).status, 401);
    assert.equal((await get(`${metricsUrlOf(c, 0)}/metrics`, { token: c.adminToken })).status, 401);
    // Every refusal was counted under /metrics with its status.
    const s = await scrape();
    assert.ok(val(s, 'warren_http_requests_total', { route: '/metrics', status: '401' }) >= 4);
    assert.ok(val(s, 'warren_http_requests_total', { route: '/metrics', status: '403' }) >= 1);
    // An unknown path is "unmatched", never its URL.
    assert.equal((await get(`${c.url}/no/such/thing`, { ca })).status, 404);
    const s2 = await scrape();
    assert.ok(val(s2, 'warren_http_requests_total', { route: 'unmatched', status: '404' }) >= 1);
    assert.ok(!s2.some((x) => x.labels.route === '/no/such/thing'));
  });

  test('`warren server status` needs an admin; bad options of `warren server` are refused', { timeout: 60_000 }, async () => {
    const add = await c.cli(['user', 'add', 'dave', '--unix-user', 'root']);
    assert.equal(add.code, 0, add.stderr);
    const ctx = await c.cli(['context', 'add', 'dave', '--server', c.url, '--token', add.stdout.trim(), '--ca', c.caFile]);
    assert.equal(ctx.code, 0, ctx.stderr);
    const r = await c.cli(['server', 'status'], { context: 'dave' });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /error\[AUTH_FORBIDDEN\]/);
    const local = await c.cli(['server', 'status', '--local']);
    assert.equal(local.code, 2);
    assert.match(local.stderr, /error\[CLI_NEEDS_SERVER\]/);
    for (const [args, re] of [
      [['server', '--data', join(c.dir, 'x'), '--log-format', 'yaml'], /--log-format takes json or text/],
      [['server', '--data', join(c.dir, 'x'), '--log-level', 'loud'], /--log-level takes debug, info, warn, error/],
      [['server', '--data', join(c.dir, 'x'), '--metrics-listen', 'nowhere'], /--metrics-listen takes ADDRESS:PORT/],
      [['server', '--data', join(c.dir, 'x'), '--metrics-token-file', join(c.dir, 'missing')], /cannot read --metrics-token-file/],
      [['server'], /warren server needs --data DIR/],
      [['agent', '--server', c.url, '--data', join(c.dir, 'y'), '--log-format', 'xml'], /--log-format takes json or text/],
    ] as const) {
      const x = await c.cli([...args]);
      assert.equal(x.code, 2, `${args.join(' ')}: ${x.stderr}`);
      assert.match(x.stderr, /error\[CLI_BAD_OPTION\]/);
      assert.match(x.stderr, re);
    }
  });
});

const pgOk = postgresAvailable();

describe('observing two servers on one PostgreSQL: the follower, and the store stopped', { skip: pgOk === true ? false : String(pgOk) }, () => {
  let pg: PgInstance;
  let c: TestCluster;
  before(async () => {
    pg = await startPostgres();
    c = await TestCluster.start({ agents: 1, servers: 2, store: pg.url, serverArgs: ['--log-format', 'json', '--metrics-listen', '127.0.0.1:0', '--metrics-refresh', '200ms'] });
  });
  after(async () => {
    await c?.close();
    await pg?.destroy();
  });

  const scrape = async (k: number): Promise<Sample[]> => {
    const r = await get(`${metricsUrlOf(c, k)}/metrics`);
    assert.equal(r.status, 200, r.text);
    return parseProm(r.text);
  };
  const ready = async (k: number): Promise<{ status: number; body: { ready: boolean; role: string; leaderUrl: string | null; store: { reachable: boolean }; messages: string[] } }> => {
    const r = await get(`${metricsUrlOf(c, k)}/ready`);
    return { status: r.status, body: JSON.parse(r.text) as never };
  };

  test('the follower reports its own role and what it can: the leader term, agents and jobs from the store; it is ready while it can forward', { timeout: 90_000 }, async () => {
    const leader = await c.until('the leader metrics', () => scrape(0), (s) => val(s, 'warren_agents', { state: 'ready' }) === 1);
    assert.equal(val(leader, 'warren_leader'), 1);
    assert.equal(val(leader, 'warren_server_info', { store: 'postgres' }), 1);
    const term = val(leader, 'warren_leader_term');
    const f = await c.until('the follower sees the agent in the store', () => scrape(1), (s) => val(s, 'warren_agents', { state: 'ready' }) === 1);
    assert.equal(val(f, 'warren_leader'), 0);
    assert.equal(val(f, 'warren_leader_term'), term);
    assert.equal(val(f, 'warren_runs_driven'), 0);
    assert.equal(val(f, 'warren_store_up'), 1);
    assert.ok(f.some((s) => s.name === 'warren_jobs' && s.labels.state === 'running'));
    const r = await ready(1);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.ready, r.body.role, r.body.leaderUrl], [true, 'follower', c.urlOf(0)]);
    const st = await c.cli(['server', 'status'], { context: c.contextOf(1) });
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`\\n {2}role {7}follower, term ${term}, leader ${c.urlOf(0).replace(/[.]/g, '\\.')}\\n`));
    assert.match(st.stdout, /\n {2}database {3}postgres, reachable/);
    assert.match(st.stdout, /\n {2}agents {5}1 ready, 0 down, 0 lost, 0 revoked; 0 drained \(1 in all, as the store has them\)\n/);
    // The follower counts the requests it answers (it forwards the rest; the leader counts those too).
    const before = val(await scrape(0), 'warren_http_requests_total', { method: 'GET', route: '/api/v1/nodes', status: '200' });
    const n = await c.cli(['node', 'list', '--json'], { context: c.contextOf(1) });
    assert.equal(n.code, 0, n.stderr);
    assert.equal(val(await scrape(1), 'warren_http_requests_total', { method: 'GET', route: '/api/v1/nodes', status: '200' }), 1, 'the follower counted the request it forwarded');
    assert.equal(val(await scrape(0), 'warren_http_requests_total', { method: 'GET', route: '/api/v1/nodes', status: '200' }), before + 1, 'the leader answered it');
  });

  test('with the store stopped: /health stays 200, /ready is 503 on both, /metrics still answers (store down), `warren server status` exits 1; all back once it returns', { timeout: 120_000 }, async () => {
    await pg.stop('immediate');
    try {
      for (const k of [0, 1]) {
        const r = await c.until(`server ${k} not ready`, () => ready(k), (x) => x.status === 503);
        assert.equal(r.body.ready, false);
        assert.equal(r.body.store.reachable, false);
        assert.match(r.body.messages.join('\n'), /the store is not reachable/);
        const h = await get(`${metricsUrlOf(c, k)}/health`);
        assert.equal(h.status, 200, h.text);
        const t0 = Date.now();
        const s = await c.until(`server ${k} says its store is down`, () => scrape(k), (x) => val(x, 'warren_store_up') === 0);
        assert.ok(Date.now() - t0 < 30_000);
        assert.ok(val(s, 'warren_store_call_errors_total') >= 1, 'the failed store calls are counted');
      }
      const st = await c.cli(['server', 'status']);
      assert.equal(st.code, 1, st.stdout + st.stderr);
      assert.match(st.stdout, /\n {2}ready {6}no\n/);
      assert.match(st.stdout, /\n {2}database {3}postgres, NOT reachable: /);
      assert.match(st.stderr, /error\[SERVER_NOT_READY\]: the server at https:\/\/127\.0\.0\.1:\d+ is not ready: the store is not reachable/);
      const js = await c.cli(['server', 'status', '--json']);
      assert.equal(js.code, 1);
      const v = JSON.parse(js.stdout) as { ready: boolean; store: { reachable: boolean } };
      assert.deepEqual([v.ready, v.store.reachable], [false, false]);
    } finally {
      await pg.start();
    }
    for (const k of [0, 1]) await c.until(`server ${k} ready again`, () => ready(k), (x) => x.status === 200, 60_000);
    const st = await c.cli(['server', 'status']);
    assert.equal(st.code, 0, st.stdout + st.stderr);
    await sleep(0);
  });
});
