// A task array of 1,000,000 `/bin/true` with no concurrency limit, through the real CLI
// (`warren run`), side by side with a bare spawn loop on the same cores.
//   bash bench/run.sh million [--tasks N]        (default N = 1,000,000; ~15 min here)
// Prints: first task start latency (from `warren run` start to the first task's start, read
// from the store), peak RSS of the CLI (GNU time), tasks/s vs the bare loop (target >= 0.8x),
// and the number of log files left (target 0: tasks that print nothing leave none).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { repoRoot } from '../../test/helpers.js';
import { bareSpawn } from '../spawnloop.js';

const WARREN = join(repoRoot, 'bin', 'warren.js');
const args = process.argv.slice(2);
const ti = args.indexOf('--tasks');
const N = ti >= 0 ? Number(args[ti + 1]) : 1_000_000;
if (!Number.isInteger(N) || N < 1) {
  process.stderr.write('usage: bash bench/run.sh million [--tasks N]\n');
  process.exit(2);
}
const cores = availableParallelism();
const tmp = mkdtempSync(join(tmpdir(), 'warren-bench-million-'));

async function main(): Promise<void> {
  process.stdout.write(`warren million-task benchmark: ${N.toLocaleString('en')} tasks of /bin/true, ${cores} cores (node ${process.version}, ${tmp})\n`);
  const file = join(tmp, 'million.yaml');
  writeFileSync(file, `version: v1\njobs:\n  t:\n    command: [/bin/true]\n    task-array: {start: 1, end: ${N}}\n`);
  const home = join(tmp, 'home');
  // The baseline on a sample (the same rate holds; a full million would double the run time).
  const sample = Math.min(N, 50_000);
  const bareMs = await bareSpawn(sample, cores);
  const bareRate = sample / (bareMs / 1000);

  const t0 = Date.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', WARREN, 'run', file, '--cores', String(cores)], {
    env: { ...process.env, WARREN_HOME: home },
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  const wallMs = Date.now() - t0;
  if (r.status !== 0) process.stderr.write(`warren run failed (${r.status}):\n${r.stderr.slice(-2000)}\n`);
  const kb = Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  const db = new Database(join(home, 'warren.db'), { readonly: true });
  const first = db.prepare('SELECT min(started_at) AS t FROM attempts').get() as { t: number | null };
  const created = db.prepare('SELECT created_at AS c FROM workflows').get() as { c: number };
  const done = db.prepare(`SELECT count(*) AS n FROM units WHERE state = 'succeeded'`).get() as { n: number };
  db.close();
  const logsDir = (() => {
    const runs = join(home, 'runs');
    if (!existsSync(runs)) return null;
    const id = readdirSync(runs)[0];
    return id ? join(runs, id, 'logs') : null;
  })();
  const logFiles = logsDir && existsSync(logsDir) ? readdirSync(logsDir).length : 0;
  const rate = done.n / (wallMs / 1000); // tasks that ran, per second of `warren run`
  const line = (s: string) => process.stdout.write(s + '\n');
  line(`first task start: ${first.t === null ? 'none' : `${first.t - created.c} ms after the workflow was accepted (${first.t - t0} ms after \`warren run\` started)`} (target <= 1 s)`);
  line(`peak RSS of warren run: ${(kb / 1024).toFixed(0)} MB (target <= 300 MB)`);
  line(`throughput: ${rate.toFixed(0)} tasks/s over ${(wallMs / 1000).toFixed(1)} s vs bare spawn loop ${bareRate.toFixed(0)} tasks/s (${sample.toLocaleString('en')}-task sample) = ${(rate / bareRate).toFixed(2)}x (target >= 0.8x)`);
  line(`tasks succeeded: ${done.n.toLocaleString('en')} of ${N.toLocaleString('en')}; log files left: ${logFiles} (target 0)`);
}

main()
  .catch((e) => {
    process.stderr.write(String(e?.stack ?? e) + '\n');
    process.exitCode = 1;
  })
  .finally(() => rmSync(tmp, { recursive: true, force: true }));
