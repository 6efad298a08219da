// GET /metrics of a busy cluster's server: `bash bench/run.sh metrics [--scrapes N]`.
//
// A private PostgreSQL (test/helpers/pg.ts) is filled with bulk SQL: 2,000 node rows (1,800
// ready, 150 down, 40 lost, 10 revoked; every 20th drained) and 100 running or pending
// workflows of 1,000 units each (100,000 jobs in every state), their run leases held by a
// runner on another host (so the server counts them but does not drive them). A real
// `warren server` (its own process) starts on that store: its leader side loads the 2,000
// nodes into its registry as it does for real agents (they do not heartbeat: the grace is an
// hour, so they stay as they are). Then GET /metrics is scraped back to back, over one
// keep-alive connection as Prometheus does, on the plain-HTTP listener (--metrics-listen) and
// on the HTTPS port (with the metrics token), and each answer is checked (100,000 jobs,
// 1,800 ready agents).
//
// Baseline: what a scrape would cost if it counted on the spot, i.e. the same grouped query
// the server runs in the background (units of the active workflows by state, workflows by
// status, nodes by state), and a plain `SELECT state, count(*) FROM units GROUP BY state`, each
// run back to back on one connection to the same database (no HTTP, no TLS, no formatting).
// Target: /metrics answers in under 50 ms (median and p99).

import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Agent, request } from 'undici';
import { openStore } from '../../src/store/index.js';
import { STATS_SQL } from '../../src/store/sql.js';
import { startPostgres } from '../../test/helpers/pg.js';
import { warrenBin } from '../../test/helpers.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SCRAPES = flag('scrapes', 500);
const NODES = 2000;
const WORKFLOWS = 100;
const UNITS_PER = 1000;
const TARGET_MS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const med = (xs: number[]) => pct(xs, 50);

async function fill(url: string): Promise<void> {
  // The schema first (the store's own migrations), then rows in bulk.
  await (await openStore(url)).close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const now = Date.now();
    await c.query('BEGIN');
    await c.query(
      `INSERT INTO workflows (id, name, file, status, spec, options, run_dir, created_at, started_at, ended_at, cancel_requested, owner, lease_owner, lease_term, lease_expires_at)
       SELECT 'bench' || lpad(w::text, 4, '0'), 'bench', NULL, CASE WHEN w % 10 = 0 THEN 'pending' ELSE 'running' END,
              '{"name":"bench","dialect":"v1","volumes":{},"jobs":{},"policy":{}}'::jsonb, '{}'::jsonb, '/nonexistent', $1, $1, NULL, false, NULL,
              'bench-elsewhere:1:feed', 1, 4102444800000
       FROM generate_series(1, $2::int) w`,
      [now, WORKFLOWS],
    );
    // Per 100 units: 50 succeeded, 20 pending, 10 ready, 5 starting, 10 running, 3 failed, 2 skipped.
    await c.query(
      `INSERT INTO units (workflow_id, seq, key, kind, job, task, state, attempt)
       SELECT 'bench' || lpad(w::text, 4, '0'), t, 'job[' || t || ']', 'job', 'job', t,
              CASE WHEN t % 100 < 50 THEN 'succeeded' WHEN t % 100 < 70 THEN 'pending' WHEN t % 100 < 80 THEN 'ready'
                   WHEN t % 100 < 85 THEN 'starting' WHEN t % 100 < 95 THEN 'running' WHEN t % 100 < 98 THEN 'failed' ELSE 'skipped' END,
              CASE WHEN t % 100 < 70 AND t % 100 >= 50 THEN 0 ELSE 1 END
       FROM generate_series(1, $1::int) w, generate_series(0, $2::int - 1) t`,
      [WORKFLOWS, UNITS_PER],
    );
    await c.query(
      `INSERT INTO nodes (name, info, state, drained, cert_serial, joined_at, last_seen_at, state_changed_at)
       SELECT 'node' || lpad(n::text, 4, '0'),
              jsonb_build_object('name', 'node' || lpad(n::text, 4, '0'), 'cores', 64, 'memoryBytes', 274877906944, 'gpus', '[]'::jsonb, 'labels', '{}'::jsonb,
                                 'platform', 'linux/amd64', 'containers', false, 'agentVersion', '0.1.0', 'protocol', jsonb_build_object('major', 1, 'minor', 1)),
              CASE WHEN n <= 1800 THEN 'ready' WHEN n <= 1950 THEN 'down' WHEN n <= 1990 THEN 'lost' ELSE 'revoked' END,
              n % 20 = 0, NULL, $1, $1, $1
       FROM generate_series(1, $2::int) n`,
      [now, NODES],
    );
    await c.query('COMMIT');
    await c.query('ANALYZE');
  } finally {
    await c.end();
  }
}

interface Sample {
  name: string;
  labels: string;
  value: number;
}
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    out.push({ name: m[1]!, labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}
const sum = (s: Sample[], name: string, label = '') => s.filter((x) => x.name === name && x.labels.includes(label)).reduce((n, x) => n + x.value, 0);

/** Scrapes back to back, alternating between the targets (each on its own keep-alive connection,
 *  as Prometheus holds one): the milliseconds of each (to the last byte), per target. */
async function scrapeTimes(targets: { url: string; ca?: string }[], n: number, token: string, check: (text: string) => void): Promise<number[][]> {
  const ds = targets.map((t) => new Agent({ connections: 1, pipelining: 1, keepAliveTimeout: 60_000, connect: t.ca ? { ca: t.ca } : {} }));
  const headers = { authorization: `Bearer ${token}` };
  const WARM = 50;
  try {
    const times: number[][] = targets.map(() => []);
    for (let i = 0; i < n + WARM; i++) {
      for (let k = 0; k < targets.length; k++) {
        const t0 = performance.now();
        const r = await request(targets[k]!.url, { dispatcher: ds[k]!, headers });
        const text = await r.body.text();
        const ms = performance.now() - t0;
        if (r.statusCode !== 200) throw new Error(`GET ${targets[k]!.url}: ${r.statusCode} ${text.slice(0, 300)}`);
        if (i === 0 || i === n + WARM - 1) check(text);
        if (i >= WARM) times[k]!.push(ms);
      }
    }
    return times;
  } finally {
    await Promise.all(ds.map((d) => d.close()));
  }
}

async function queryTimes(url: string, sql: string, n: number): Promise<number[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const times: number[] = [];
    for (let i = 0; i < n + 20; i++) {
      const t0 = performance.now();
      await c.query(sql);
      if (i >= 20) times.push(performance.now() - t0);
    }
    return times;
  } finally {
    await c.end();
  }
}

const db = await startPostgres();
const dir = mkdtempSync(join(tmpdir(), 'warren-bench-metrics-'));
let server: ReturnType<typeof spawn> | null = null;
try {
  const t0 = performance.now();
  await fill(db.url);
  process.stderr.write(`filled ${NODES} nodes and ${WORKFLOWS * UNITS_PER} units in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const token = 'bench-metrics-' + Math.random().toString(36).slice(2) + Date.now().toString(36);
  writeFileSync(join(dir, 'metrics.token'), token, { mode: 0o600 });
  server = spawn(process.execPath, [warrenBin, 'server', '--data', join(dir, 'srv'), '--listen', '127.0.0.1:0', '--store', db.url, '--metrics-listen', '127.0.0.1:0', '--metrics-token-file', join(dir, 'metrics.token'), '--log-format', 'json', '--grace', '1h', '--lost-after', '1h'], {
    env: { ...process.env, WARREN_HOME: join(dir, 'home') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  server.stdout!.on('data', (d) => (log += d));
  server.stderr!.on('data', (d) => (log += d));
  let urls: { url: string; metricsUrl: string } | null = null;
  for (const started = Date.now(); !urls; await sleep(50)) {
    if (server.exitCode !== null) throw new Error(`warren server exited ${server.exitCode}:\n${log}`);
    if (Date.now() - started > 60_000) throw new Error(`warren server did not start in 60 s:\n${log}`);
    for (const line of log.split('\n')) if (line.includes('"ready: ')) urls = JSON.parse(line) as { url: string; metricsUrl: string };
  }
  const ca = readFileSync(join(dir, 'srv', 'ca.pem'), 'utf8');
  const check = (text: string): void => {
    const s = parse(text);
    const jobs = sum(s, 'warren_jobs');
    const ready = sum(s, 'warren_agents', 'state="ready"');
    if (jobs !== WORKFLOWS * UNITS_PER || ready !== 1800 || sum(s, 'warren_leader') !== 1) throw new Error(`the scrape does not count what is there: ${jobs} jobs, ${ready} ready agents, leader ${sum(s, 'warren_leader')}`);
  };
  // The first background count comes at the start: wait until it is in.
  for (const started = Date.now(); ; await sleep(200)) {
    const r = await request(`${urls.metricsUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    const text = await r.body.text();
    if (r.statusCode === 200 && sum(parse(text), 'warren_jobs') === WORKFLOWS * UNITS_PER) break;
    if (Date.now() - started > 60_000) throw new Error(`no count of the jobs within 60 s:\n${text.slice(0, 2000)}`);
  }
  // The first count ran while the server and the database started (cold): wait for two more,
  // and report those (the store's steady cost of the background count).
  const statsOf = async (): Promise<{ n: number; s: number }> => {
    const x = parse(await (await request(`${urls!.metricsUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).body.text());
    return { n: sum(x, 'warren_store_call_duration_seconds_count', 'operation="stats"'), s: sum(x, 'warren_store_call_duration_seconds_sum', 'operation="stats"') };
  };
  const first = await statsOf();
  for (const started = Date.now(); (await statsOf()).n < first.n + 2 && Date.now() - started < 60_000; ) await sleep(500);
  const [plain, https] = (await scrapeTimes([{ url: `${urls.metricsUrl}/metrics` }, { url: `${urls.url}/metrics`, ca }], SCRAPES, token, check)) as [number[], number[]];
  const end = await statsOf();
  const statsN = end.n - first.n;
  const statsMs = statsN ? (1000 * (end.s - first.s)) / statsN : NaN;
  const bytes = (await (await request(`${urls.metricsUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).body.text()).length;
  const grouped = await queryTimes(db.url, STATS_SQL, SCRAPES);
  const units = await queryTimes(db.url, 'SELECT state, count(*) FROM units GROUP BY state', SCRAPES);

  const rows: [string, string, string, string][] = [];
  const row = (a: string, b: string, c: string, d: string) => {
    rows.push([a, b, c, d]);
    process.stdout.write(`${a.padEnd(44)} ${b.padEnd(32)} ${c.padEnd(52)} ${d}\n`);
  };
  process.stdout.write(`metrics benchmark, ${new Date().toISOString().slice(0, 10)}, ${availableParallelism()} cores (load ${loadavg()[0]!.toFixed(1)}); ${NODES} nodes and ${WORKFLOWS * UNITS_PER} jobs in PostgreSQL; ${SCRAPES} scrapes each\n`);
  process.stdout.write(`${'benchmark'.padEnd(44)} ${'warren'.padEnd(32)} ${'baseline (a count per scrape)'.padEnd(52)} target\n`);
  const verdict = (xs: number[]) => `median ${med(xs) <= TARGET_MS ? 'ok' : 'MISSED'}, p99 ${pct(xs, 99) <= TARGET_MS ? 'ok' : 'MISSED'} (< ${TARGET_MS} ms)`;
  const fmt = (xs: number[]) => `median ${med(xs).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms`;
  row('GET /metrics, plain HTTP (--metrics-listen)', fmt(plain), `grouped count (the server's query): ${fmt(grouped)}`, verdict(plain));
  row('', `= ${(med(plain) / med(grouped)).toFixed(2)}x the grouped count`, `GROUP BY state on units: ${fmt(units)}`, `${(med(plain) / med(units)).toFixed(2)}x the plain GROUP BY`);
  row('GET /metrics, HTTPS + metrics token', fmt(https), '', verdict(https));
  row('', `= ${(med(https) / med(grouped)).toFixed(2)}x the grouped count`, '', `${(med(https) / med(units)).toFixed(2)}x the plain GROUP BY`);
  row('  the background count (every 5 s or more)', `${statsMs.toFixed(1)} ms (mean of ${statsN}; the first, cold: ${(1000 * first.s / Math.max(1, first.n)).toFixed(0)} ms)`, '', `answer ${(bytes / 1024).toFixed(1)} KiB`);
} finally {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    for (let i = 0; i < 100 && server.exitCode === null; i++) await sleep(50);
    if (server.exitCode === null) server.kill('SIGKILL');
  }
  await db.destroy();
  rmSync(dir, { recursive: true, force: true });
}
