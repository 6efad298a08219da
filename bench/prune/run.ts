// Retention benchmark: prune a million finished jobs from a real PostgreSQL store while a
// concurrent writer does what scheduling does, and compare the writer's latencies with the
// same writer without the prune (baseline, same run). `bash bench/run.sh prune [--jobs N]
// [--workflows N] [--baseline-s S]`.
//
//   store     a private PostgreSQL 15 (test/helpers/pg.ts: fsync on; shared_buffers 256 MB),
//             the Warren schema (PgStore migrations), filled with bulk SQL (generate_series):
//             N finished workflows (default 1,000) with `--jobs` units in all (default
//             1,000,000), one attempt and one event per unit, and one job_history row per unit.
//   writer    20 running workflows of 1,000 units, each leased by this process (fenced
//             writes, as a server drives them): every 50 ms a BatchWriter-like batch of 200
//             unit changes, 40 attempt records and 20 events per workflow set (the write-behind
//             batch, one fenced transaction per run), and 10 attempt commits (attemptNow, the
//             durable path before a job's exec) per tick, timed from the call to the commit.
//   prune     pruneStore (src/store/prune.ts) with the server's defaults: 50 workflows per
//             step, at most 500 rows per statement, a pause after each step as long as it took.
//
// Prints: fill time, total prune time and rows per second, the writer's max and p99 latency
// during the prune vs the baseline, the longest prune step. Target: no write stalls > 100 ms.

import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { BatchWriter, openStore, pruneStore, type AttemptRecord, type Store } from '../../src/store/index.js';
import type { UnitSnapshot } from '../../src/engine/index.js';
import { startPostgres } from '../../test/helpers/pg.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const JOBS = flag('jobs', 1_000_000);
const WORKFLOWS = flag('workflows', 1_000);
const BASELINE_S = flag('baseline-s', 20);
const RUNNING = 20;
const RUNNING_UNITS = 1_000;
const per = Math.ceil(JOBS / WORKFLOWS);

const log = (s: string): void => void process.stderr.write(`prune-bench: ${s}\n`);
const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const inst = await startPostgres();
let store: Store | null = null;
try {
  const admin = new pg.Client({ connectionString: inst.url });
  await admin.connect();
  await admin.query(`ALTER SYSTEM SET shared_buffers = '256MB'`);
  await admin.query(`ALTER SYSTEM SET max_wal_size = '4GB'`);
  await admin.end();
  await inst.stop();
  await inst.start();
  store = await openStore(inst.url);
  const c = new pg.Client({ connectionString: inst.url });
  await c.connect();

  // ---- fill ----
  const t0 = Date.now();
  const ended = Date.now() - 90 * 86_400_000;
  log(`filling: ${WORKFLOWS} finished workflows, ${per * WORKFLOWS} units, as many attempts, events and job history rows`);
  await c.query(
    `INSERT INTO workflows (id, name, file, status, spec, options, run_dir, created_at, started_at, ended_at, cancel_requested, lease_term)
     SELECT 'old' || lpad(w::text, 7, '0'), 'old', NULL, CASE WHEN w % 10 = 0 THEN 'failed' ELSE 'succeeded' END, '{"name":"old","dialect":"v1","volumes":{},"jobs":{},"policy":{}}'::jsonb,
            '{}'::jsonb, '/nonexistent/runs/old' || w, $1::bigint - 3600000, $1::bigint - 3600000, $1::bigint + w, false, 1
     FROM generate_series(1, $2::int) w`,
    [ended, WORKFLOWS],
  );
  const series = `FROM generate_series(1, ${WORKFLOWS}) w, generate_series(0, ${per - 1}) t`;
  const wid = `'old' || lpad(w::text, 7, '0')`;
  await c.query(`INSERT INTO units (workflow_id, seq, key, kind, job, task, state, attempt, exit_code, reason, message, started_at, ended_at)
     SELECT ${wid}, t, 'job[' || t || ']', 'job', 'job', t, 'succeeded', 1, 0, 'exit', NULL, ${ended} - 1000 + t, ${ended} + t ${series}`);
  log(`units in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await c.query(`INSERT INTO attempts (workflow_id, key, attempt, attempt_id, term, cgroup, node, started_at, ended_at, exit_code, signal, reason, message, pid)
     SELECT ${wid}, 'job[' || t || ']', 1, ${wid} || '/job[' || t || ']/1', 1, '/warren/jobs/x' || t, 'n' || (t % 64), ${ended} - 1000 + t, ${ended} + t, 0, NULL, 'exit', NULL, 10000 + t ${series}`);
  log(`attempts in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await c.query(`INSERT INTO events (workflow_id, at, key, level, message) SELECT ${wid}, ${ended} + t, 'job[' || t || ']', 'info', 'job[' || t || '] succeeded' ${series}`);
  await c.query(`INSERT INTO job_history (job, ended_at, seconds) SELECT 'job' || (t % 100), ${ended} + w * ${per} + t, 1.0 ${series}`);
  await c.query('VACUUM ANALYZE');
  const fillS = (Date.now() - t0) / 1000;
  const counts = (await c.query(`SELECT (SELECT count(*) FROM workflows) w, (SELECT count(*) FROM units) u, (SELECT count(*) FROM attempts) a, (SELECT count(*) FROM events) e, (SELECT count(*) FROM job_history) h`)).rows[0];
  log(`filled in ${fillS.toFixed(1)} s: ${JSON.stringify(counts)}`);

  // ---- the running workflows and their writer ----
  const running: { id: string; term: number; writer: BatchWriter; next: number }[] = [];
  const stalls: number[] = [];
  const timed: Store = new Proxy(store, {
    get(target, key, recv) {
      const v = Reflect.get(target, key, recv) as unknown;
      if (key !== 'write') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      return async (b: Parameters<Store['write']>[0]) => {
        const s = performance.now();
        try {
          return await target.write(b);
        } finally {
          sample?.writes.push(performance.now() - s);
        }
      };
    },
  });
  let sample: { writes: number[]; commits: number[] } | null = null;
  for (let i = 0; i < RUNNING; i++) {
    const id = `live${String(i).padStart(4, '0')}`;
    const units: UnitSnapshot[] = Array.from({ length: RUNNING_UNITS }, (_, t) => ({ key: `job[${t}]`, kind: 'job', job: 'job', task: t, state: 'pending', attempt: 0, exitCode: null, reason: null, message: null, startedAt: null, endedAt: null }));
    await store.createWorkflow({ id, name: 'live', file: null, status: 'running', spec: { name: 'live', dialect: 'v1', volumes: {}, jobs: {}, policy: {} } as never, options: {}, runDir: `/nonexistent/runs/${id}`, createdAt: Date.now(), startedAt: Date.now(), endedAt: null, cancelRequested: false, lease: null, owner: null }, units);
    const lease = await store.acquireRunLease(id, `bench:${process.pid}:${i}`, 3_600_000, Date.now());
    if (!lease.ok) throw new Error('no lease');
    running.push({ id, term: lease.lease.term, writer: new BatchWriter(timed, 50, { fence: { workflowId: id, term: lease.lease.term } }), next: 0 });
  }
  let stop = false;
  let attemptSeq = 0;
  const writerLoop = async (): Promise<void> => {
    while (!stop) {
      const tick = performance.now();
      for (const r of running) {
        for (let k = 0; k < 200 / RUNNING * 1; k++) {
          const t = r.next++ % RUNNING_UNITS;
          r.writer.unit(r.id, { key: `job[${t}]`, kind: 'job', job: 'job', task: t, state: (r.next & 1) === 0 ? 'running' : 'starting', attempt: 1, exitCode: null, reason: null, message: null, startedAt: Date.now(), endedAt: null });
        }
        for (let k = 0; k < 2; k++) r.writer.attempt(attemptOf(r.id, r.next % RUNNING_UNITS, r.term, false));
        r.writer.event({ workflowId: r.id, at: Date.now(), key: null, level: 'info', message: 'tick' });
      }
      // Attempt commits: durable before the job's exec (group commit per tick).
      const commits = Array.from({ length: 10 }, () => {
        const r = running[attemptSeq++ % RUNNING]!;
        const s = performance.now();
        return r.writer.attemptNow(attemptOf(r.id, attemptSeq % RUNNING_UNITS, r.term, true)).then(() => sample?.commits.push(performance.now() - s));
      });
      await Promise.all(commits);
      const spent = performance.now() - tick;
      if (spent > 100) stalls.push(spent);
      await sleep(Math.max(0, 50 - spent));
    }
  };
  const attemptOf = (id: string, t: number, term: number, fresh: boolean): AttemptRecord => ({
    workflowId: id, key: `job[${t}]`, attempt: fresh ? 2 + (attemptSeq % 1_000_000) : 1, attemptId: `${id}/job[${t}]/${attemptSeq}`, term, cgroup: `/warren/jobs/${t}`, node: 'n1',
    startedAt: Date.now(), endedAt: null, exitCode: null, signal: null, reason: null, message: null, pid: 1000 + t,
  });
  const loop = writerLoop();

  // ---- baseline: the writer alone ----
  await sleep(2000); // warm up
  sample = { writes: [], commits: [] };
  await sleep(BASELINE_S * 1000);
  const base = sample;
  sample = null;

  // ---- the prune, with the writer ----
  sample = { writes: [], commits: [] };
  // The duration of each prune transaction, from the store's own pool: its autocommit
  // statements (pool.query), and its BEGIN..COMMIT transactions (pool.connect).
  type Q = (...a: unknown[]) => Promise<unknown>;
  const pool = (store as unknown as { pool: { query: Q; connect: (...a: unknown[]) => Promise<{ query: Q }> } }).pool;
  const textOf = (a: unknown[]): string => (typeof a[0] === 'string' ? a[0] : ((a[0] as { text?: string })?.text ?? ''));
  const isPrune = (t: string): boolean => /^\s*(DELETE|WITH c AS MATERIALIZED)/.test(t);
  const statements: number[] = [];
  let measuring = false;
  const query = pool.query.bind(pool);
  pool.query = async (...a: unknown[]) => {
    const s = performance.now();
    try {
      return await query(...a);
    } finally {
      if (measuring && isPrune(textOf(a))) statements.push(performance.now() - s);
    }
  };
  const connect = pool.connect.bind(pool);
  const wrapped = new WeakSet<object>();
  pool.connect = async (...a: unknown[]) => {
    // pool.query connects with a callback: left as it is (its statements are timed above).
    if (typeof a[0] === 'function') return connect(...a);
    const client = await connect();
    if (wrapped.has(client)) return client; // pooled: wrapped the first time it was handed out
    wrapped.add(client);
    const q = client.query.bind(client);
    let began = 0;
    let prune = false;
    client.query = async (...a: unknown[]) => {
      const t = textOf(a);
      if (t === 'BEGIN') {
        began = performance.now();
        prune = false;
      }
      if (isPrune(t)) prune = true;
      try {
        return await q(...a);
      } finally {
        if ((t === 'COMMIT' || t === 'ROLLBACK') && prune && measuring) statements.push(performance.now() - began);
      }
    };
    return client;
  };
  measuring = true;
  // Who waits on what while the prune runs: heavyweight lock waits (a prune holding a lock a
  // writer needs) and WAL flush waits (the disk), sampled every 20 ms from another connection.
  const mon = new pg.Client({ connectionString: inst.url });
  await mon.connect();
  const waits = { samples: 0, lock: 0, lockMax: 0, wal: 0, lockKinds: new Map<string, number>() };
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      const r = await mon.query(`SELECT wait_event_type AS t, wait_event AS e, left(query, 40) AS q FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND wait_event_type IN ('Lock', 'LWLock', 'IO')`);
      waits.samples++;
      const locks = r.rows.filter((x) => x.t === 'Lock');
      if (locks.length > 0) waits.lock++;
      for (const x of locks) waits.lockKinds.set(`${x.e} (${String(x.q).replace(/\s+/g, ' ').trim()})`, (waits.lockKinds.get(`${x.e} (${String(x.q).replace(/\s+/g, ' ').trim()})`) ?? 0) + 1);
      waits.lockMax = Math.max(waits.lockMax, locks.length);
      if (r.rows.some((x) => /^(WALWrite|WALSync|WalSync|WALWriteLock)$/i.test(String(x.e)))) waits.wal++;
      await sleep(20);
    }
  })();
  const p0 = Date.now();
  const rep = await pruneStore(store, { endedBefore: Date.now() - 30 * 86_400_000 });
  const pruneS = (Date.now() - p0) / 1000;
  monitoring = false;
  await monitor;
  await mon.end();
  const during = sample;
  sample = null;
  stop = true;
  await loop;
  for (const r of running) await r.writer.flush();
  const left = (await c.query(`SELECT (SELECT count(*) FROM workflows WHERE id LIKE 'old%') w, (SELECT count(*) FROM units WHERE workflow_id LIKE 'old%') u, (SELECT count(*) FROM prune_queue) q, (SELECT count(*) FROM units WHERE workflow_id LIKE 'live%') lu, (SELECT count(*) FROM workflows WHERE id LIKE 'live%' AND status = 'running') lw`)).rows[0];
  await c.end();

  const rows = rep.units + rep.attempts + rep.events + rep.history + rep.workflows;
  const out = (s: string) => process.stdout.write(s + '\n');
  out(`prune benchmark, ${new Date().toISOString().slice(0, 10)}, ${availableParallelism()} cores, PostgreSQL 15 (private, fsync on)`);
  out(`fill: ${WORKFLOWS.toLocaleString('en')} workflows, ${(per * WORKFLOWS).toLocaleString('en')} jobs (+ attempts, events, history) in ${fillS.toFixed(1)} s`);
  out(`prune: ${rep.workflows.toLocaleString('en')} workflows, ${rep.units.toLocaleString('en')} units, ${rep.attempts.toLocaleString('en')} attempts, ${rep.events.toLocaleString('en')} events, ${rep.history.toLocaleString('en')} history rows in ${pruneS.toFixed(1)} s (${Math.round(rows / pruneS).toLocaleString('en')} rows/s, ${rep.transactions} steps)`);
  out(`left: ${JSON.stringify(left)} (old workflows and units: 0; the 20 running workflows whole: ${RUNNING * RUNNING_UNITS} units)`);
  out(`${'concurrent writes'.padEnd(34)} ${'during the prune'.padEnd(20)} ${'baseline (no prune)'.padEnd(22)} target`);
  const row = (what: string, a: number, b: number, target: string) => out(`${what.padEnd(34)} ${`${a.toFixed(1)} ms`.padEnd(20)} ${`${b.toFixed(1)} ms`.padEnd(22)} ${target}`);
  row('fenced batch write, p50', pct(during.writes, 50), pct(base.writes, 50), '');
  row('fenced batch write, p99', pct(during.writes, 99), pct(base.writes, 99), '');
  row('fenced batch write, max', Math.max(0, ...during.writes), Math.max(0, ...base.writes), '<= 100 ms');
  row('attempt commit (attemptNow), p99', pct(during.commits, 99), pct(base.commits, 99), '');
  row('attempt commit (attemptNow), max', Math.max(0, ...during.commits), Math.max(0, ...base.commits), '<= 100 ms');
  row('longest prune transaction', Math.max(0, ...statements), 0, '<= 100 ms');
  row('prune transaction, p99', pct(statements, 99), 0, '');
  out(`prune steps: ${Object.entries(rep.steps).map(([k, v]) => `${k} ${v.count} (longest ${v.maxMs.toFixed(1)} ms, mean ${(v.totalMs / v.count).toFixed(1)} ms)`).join('; ')}`);
  out(`lock waits during the prune: ${waits.lock} of ${waits.samples} samples (every 20 ms) saw a backend waiting on a lock (at most ${waits.lockMax} at once${waits.lockKinds.size ? `: ${[...waits.lockKinds].map(([k, n]) => `${k} ×${n}`).join(', ')}` : ''}); ${waits.wal} saw one waiting on a WAL write or flush (the disk)`);
  out(`samples: ${during.writes.length} writes and ${during.commits.length} commits during, ${base.writes.length} and ${base.commits.length} in the baseline; writer ticks over 100 ms: ${stalls.length}`);
  const worst = Math.max(0, ...during.writes, ...during.commits);
  const longestTx = Math.max(0, ...statements);
  out(`verdict: ${longestTx <= 100 ? 'met' : 'NOT met'}: the longest prune transaction ${longestTx.toFixed(1)} ms (${statements.length} transactions); the worst concurrent write during the prune ${worst.toFixed(1)} ms vs ${Math.max(0, ...base.writes, ...base.commits).toFixed(1)} ms without it`);
} finally {
  await store?.close().catch(() => {});
  await inst.destroy();
}
