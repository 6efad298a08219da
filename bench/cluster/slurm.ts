// The Slurm baseline of the cluster throughput benchmark: a job array of no-op tasks
// (/bin/true) through Slurm 22.05 from Debian (slurmctld, slurmd and munged started here, as
// children, in a temporary directory; nothing in /etc is read or changed), timed from the
// submission until every task ended.
//
//   node dist/bench/cluster/slurm.js [--tasks 10000] [--timeout-s 600] [--tasks-per-core 1] [--bare]
//   node --import tsx bench/cluster/slurm.ts ...      # the same from the sources
//
// The configuration is bench/cluster/slurm.conf.in (SchedMD's high-throughput guide, adapted
// to one node; see bench/README.md, "Slurm baseline"). Needs root and the packages in
// bench/apt.txt (slurmctld, slurmd, slurm-client, munge).
//
// What is counted: slurmctld's own counters (sdiag, reset just before the submission): a task
// has ended when slurmstepd reported its batch script's exit to slurmctld ("Jobs completed",
// which also counts non-zero exits, plus "canceled" and "failed"). Tasks that did not succeed
// are found by polling squeue once a second for the array's tasks in a failure state
// (FAILED, CANCELLED, NODE_FAIL, ...): finished records stay at least MinJobAge = 2 s, so
// none is missed. No accounting database and no job completion log are configured (the
// guide's advice), so this is the record of what ran.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { availableParallelism, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../../test/helpers.js';
import { bareSpawn } from '../spawnloop.js';

export interface SlurmBaselineOptions {
  /** Tasks in the array (1 to 100,000: MaxArraySize in slurm.conf.in). */
  tasks: number;
  /** How long the tasks may take, from the submission; past it the rate is that of the tasks that ended by then (`partial`). */
  timeoutMs: number;
  /** Progress lines. */
  log?: (s: string) => void;
  /** Tasks at once per core (the partition's OverSubscribe=FORCE:K); default 1: one task per core, as `CPUs=nproc` gives. */
  tasksPerCore?: number;
}

export interface SlurmBaselineResult {
  /** Tasks that ended (all of them unless `partial`). */
  tasks: number;
  /** From just before `sbatch` until the last of them ended (or the timeout). */
  seconds: number;
  perSecond: number;
  /** The slurm.conf used (its temporary directory is gone). */
  config: string;
  /** True when the timeout came before every task ended. */
  partial: boolean;
  /** Tasks asked for. */
  requested: number;
  /** Of `tasks`, those that did not succeed (non-zero exit, cancelled, node failure). */
  failed: number;
  /** Tasks Slurm could run at once: cores x tasksPerCore. */
  slots: number;
  /** `slurmctld -V`, e.g. "slurm-wlm 22.05.8". */
  version: string;
}

const TEMPLATE = join(repoRoot, 'bench', 'cluster', 'slurm.conf.in');
const START_LIMIT_MS = 60_000;
const POLL_MS = 200;
const FAILURE_STATES = 'BF,CA,DL,F,NF,OOM,PR,TO';

interface Daemon {
  name: string;
  child: ChildProcess;
  log: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Alive and not a zombie (a child that exited but was not reaped yet still answers kill 0). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Processes whose environment holds `marker` (the daemons, slurmstepd and the tasks all inherit it). */
function markedPids(marker: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/environ`, 'latin1').split('\0').includes(marker)) out.push(Number(e));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

function freePort(host = '0.0.0.0', port = 0): Promise<number | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(null));
    s.listen({ host, port, exclusive: true }, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : null));
    });
  });
}

/** Two consecutive free ports for slurmctld (the guide: more than one) and one for slurmd. */
async function pickPorts(): Promise<{ ctld: [number, number]; slurmd: number }> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p === null || p >= 65534) continue;
    if ((await freePort('0.0.0.0', p + 1)) === null) continue;
    const d = await freePort();
    if (d === null || d === p || d === p + 1) continue;
    return { ctld: [p, p + 1], slurmd: d };
  }
  throw new Error('no free TCP ports for slurmctld and slurmd');
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, cwd, maxBuffer: 64 * 2 ** 20, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

function tail(file: string, n = 1500): string {
  try {
    const s = readFileSync(file, 'utf8');
    return s.length > n ? '…' + s.slice(-n) : s;
  } catch {
    return '(no log)';
  }
}

/** sdiag's job counters since the last reset. */
function parseSdiag(s: string): { completed: number; canceled: number; failed: number } {
  const num = (label: string) => Number(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  const r = { completed: num('Jobs completed'), canceled: num('Jobs canceled'), failed: num('Jobs failed') };
  if (!Object.values(r).every(Number.isFinite)) throw new Error(`unexpected sdiag output:\n${s.slice(0, 500)}`);
  return r;
}

/** Run `tasks` no-op tasks as one Slurm job array; see the file's header. Needs root. Cleans up on every path (also SIGINT/SIGTERM). */
export async function slurmArrayBaseline(opts: SlurmBaselineOptions): Promise<SlurmBaselineResult> {
  const log = opts.log ?? (() => {});
  const N = opts.tasks;
  const perCore = opts.tasksPerCore ?? 1;
  if (!Number.isInteger(N) || N < 1 || N > 100_000) throw new Error(`tasks must be an integer from 1 to 100,000 (MaxArraySize), not ${N}`);
  if (!Number.isInteger(perCore) || perCore < 1 || perCore > 1024) throw new Error(`tasksPerCore must be an integer from 1 to 1024, not ${perCore}`);
  if (process.getuid?.() !== 0) throw new Error('the Slurm baseline runs as root (SlurmUser=root, slurmd launches the tasks)');
  const v = spawnSync('slurmctld', ['-V'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) throw new Error('slurmctld is not installed: apt-get install slurmctld slurmd slurm-client munge (bench/apt.txt)');
  const version = v.stdout.trim();
  if (!/ 22\.05\./.test(version)) log(`slurm: warning: ${version}, the baseline was set up for 22.05`);

  const dir = mkdtempSync(join(tmpdir(), 'warren-bench-slurm-'));
  const marker = `WARREN_BENCH_SLURM=${dir}`;
  const daemons: Daemon[] = [];
  let stopped = false;

  // Stop everything this run started: SIGTERM to each daemon's process group (slurmd first,
  // munged last), SIGKILL after 5 s, then any process left holding the run's marker in its
  // environment (slurmstepd, a task), then the directory. Synchronous, so that the signal
  // handlers can use it too.
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    for (const d of [...daemons].reverse()) {
      const pid = d.child.pid;
      if (pid === undefined || !alive(pid)) continue;
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const until = Date.now() + 5000;
      while (alive(pid) && Date.now() < until) sleepSync(20);
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (let round = 0; round < 3; round++) {
      const left = markedPids(marker);
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      sleepSync(50);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    stop();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.kill(process.pid, sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // munged checks that every directory on the way to its socket is searchable by all and
    // writable only by its owner.
    chmodSync(dir, 0o755);
    for (const sub of ['munge', 'state', 'spool', 'log']) mkdirSync(join(dir, sub), { mode: 0o755 });
    const key = join(dir, 'munge', 'munge.key');
    writeFileSync(key, randomBytes(1024), { mode: 0o400 });
    const socket = join(dir, 'munge', 'munge.socket');

    const host = hostname().split('.')[0]!;
    const cores = availableParallelism();
    const ports = await pickPorts();
    const fields: Record<string, string> = {
      DIR: dir,
      HOST: host,
      CTLD_PORTS: `${ports.ctld[0]}-${ports.ctld[1]}`,
      SLURMD_PORT: String(ports.slurmd),
      CPUS: String(cores),
      // Below what slurmd finds (a node configured with more memory than it has is drained).
      REAL_MEMORY: String(Math.floor((totalmem() / 2 ** 20) * 0.9)),
      OVERSUBSCRIBE: perCore === 1 ? 'NO' : `FORCE:${perCore}`,
    };
    const config = readFileSync(TEMPLATE, 'utf8').replace(/@([A-Z_]+)@/g, (m, k: string) => {
      if (!(k in fields)) throw new Error(`slurm.conf.in: unknown field ${m}`);
      return fields[k]!;
    });
    const conf = join(dir, 'slurm.conf');
    writeFileSync(conf, config);

    // The daemons, commands and tasks see only this configuration (SLURM_CONF) and carry the
    // marker; any SLURM_* of a surrounding Slurm job is dropped.
    const env: NodeJS.ProcessEnv = { SLURM_CONF: conf, WARREN_BENCH_SLURM: dir };
    for (const [k, val] of Object.entries(process.env)) if (!k.startsWith('SLURM_') && k !== 'WARREN_BENCH_SLURM') env[k] = val;

    const start = (name: string, cmd: string, args: string[]): Daemon => {
      const logFile = join(dir, 'log', `${name}.out`);
      const fd = openSync(logFile, 'a');
      // Its own process group, so that stop() reaches whatever it forks.
      const child = spawn(cmd, args, { env, cwd: dir, stdio: ['ignore', fd, fd], detached: true });
      closeSync(fd);
      child.on('error', () => {});
      const d = { name, child, log: logFile };
      daemons.push(d);
      return d;
    };
    const deadline = Date.now() + START_LIMIT_MS;
    const check = (): void => {
      for (const d of daemons) {
        if (d.child.exitCode !== null || d.child.signalCode !== null || d.child.pid === undefined) {
          const more = d.name === 'munged' ? '' : `\n${d.name}.log: ${tail(join(dir, 'log', `${d.name}.log`))}`;
          throw new Error(`${d.name} exited (${d.child.exitCode ?? d.child.signalCode}): ${tail(d.log)}${more}`);
        }
      }
      if (Date.now() > deadline) throw new Error(`Slurm did not start within ${START_LIMIT_MS / 1000} s; slurmctld.log: ${tail(join(dir, 'log', 'slurmctld.log'))}`);
    };

    // Guide: munged with ten threads.
    start('munged', 'munged', [
      '--foreground',
      `--socket=${socket}`,
      `--key-file=${key}`,
      `--pid-file=${join(dir, 'munge', 'munged.pid')}`,
      `--log-file=${join(dir, 'log', 'munged.log')}`,
      `--seed-file=${join(dir, 'munge', 'munged.seed')}`,
      '--num-threads=10',
    ]);
    while (!existsSync(socket)) {
      check();
      await sleep(50);
    }
    start('slurmctld', 'slurmctld', ['-D', '-i']);
    start('slurmd', 'slurmd', ['-D', '-N', host]);
    const cmd = (c: string, args: string[]) => run(c, args, env, dir);
    for (;;) {
      check();
      const state = await cmd('sinfo', ['-h', '-n', host, '-o', '%T']).catch(() => '');
      if (state.trim() === 'idle') break;
      await sleep(250);
    }
    log(`slurm: ${version}, node ${host} idle (${cores} cores x ${perCore} = ${cores * perCore} slots), slurmctld on ${fields.CTLD_PORTS}, slurmd on ${ports.slurmd}, in ${dir}`);

    await cmd('sdiag', ['--reset']);
    const failedIds = new Set<string>();
    const pollFailures = async (job: string): Promise<void> => {
      const out = await cmd('squeue', ['-h', '-r', '-j', job, '-t', FAILURE_STATES, '-o', '%i']).catch(() => '');
      for (const id of out.split('\n')) if (id.trim()) failedIds.add(id.trim());
    };

    const t0 = performance.now();
    const job = (await cmd('sbatch', ['--parsable', `--array=0-${N - 1}`, '--output=/dev/null', '--error=/dev/null', '--no-requeue', '--wrap=/bin/true']))
      .trim()
      .split(';')[0]!;
    log(`slurm: submitted job array ${job} of ${N.toLocaleString('en')} tasks`);
    // sdiag's counters reset at midnight UTC: a drop is added back.
    let offset = 0;
    let last = 0;
    let ended = 0;
    let t1 = t0;
    let partial = false;
    let polls = 0;
    let nextLog = t0 + 10_000;
    for (;;) {
      const c = parseSdiag(await cmd('sdiag', []));
      const sum = c.completed + c.canceled + c.failed;
      if (sum < last) offset += last;
      last = sum;
      ended = offset + sum;
      const now = performance.now();
      t1 = now;
      if (ended >= N) break;
      if (now - t0 > opts.timeoutMs) {
        partial = true;
        break;
      }
      for (const d of daemons) if (d.child.exitCode !== null || d.child.signalCode !== null) throw new Error(`${d.name} exited during the run: ${tail(d.log)}`);
      if (++polls % 5 === 0) await pollFailures(job);
      if (now > nextLog) {
        log(`slurm: ${ended.toLocaleString('en')} of ${N.toLocaleString('en')} tasks ended after ${((now - t0) / 1000).toFixed(0)} s`);
        nextLog += 10_000;
      }
      await sleep(POLL_MS);
    }
    await pollFailures(job);
    if (partial) {
      log(`slurm: timeout after ${((t1 - t0) / 1000).toFixed(1)} s with ${ended.toLocaleString('en')} of ${N.toLocaleString('en')} tasks ended; cancelling the rest`);
      await cmd('scancel', [job]).catch(() => '');
      // Let slurmd end what it started before it is stopped.
      const until = Date.now() + 10_000;
      while (Date.now() < until && (await cmd('squeue', ['-h', '-j', job, '-t', 'PD,R,CG,CF', '-o', '%i']).catch(() => '')).trim()) await sleep(250);
    }
    const seconds = (t1 - t0) / 1000;
    return { tasks: ended, seconds, perSecond: ended / seconds, config, partial, requested: N, failed: Math.min(ended, failedIds.size), slots: cores * perCore, version };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    stop();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] ? args[i + 1]! : def;
  };
  const tasks = Number(opt('--tasks', '10000'));
  const timeoutS = Number(opt('--timeout-s', '600'));
  const tasksPerCore = Number(opt('--tasks-per-core', '1'));
  if (!Number.isInteger(tasks) || tasks < 1 || !(timeoutS > 0) || !Number.isInteger(tasksPerCore) || tasksPerCore < 1) {
    process.stderr.write('usage: node dist/bench/cluster/slurm.js [--tasks N] [--timeout-s S] [--tasks-per-core K] [--bare]\n');
    process.exit(2);
  }
  const line = (s: string) => process.stdout.write(s + '\n');
  const r = await slurmArrayBaseline({ tasks, timeoutMs: timeoutS * 1000, tasksPerCore, log: (s) => process.stderr.write(s + '\n') });
  const f = (x: number, d = 1) => x.toLocaleString('en', { maximumFractionDigits: d, minimumFractionDigits: d });
  line(`${r.version}: job array of ${r.requested.toLocaleString('en')} x /bin/true, ${r.slots} slots (${availableParallelism()} cores)`);
  line(
    `slurm: ${r.tasks.toLocaleString('en')} tasks ended in ${f(r.seconds, 2)} s = ${f(r.perSecond)} tasks/s` +
      (r.partial ? ` (partial: timeout after ${timeoutS} s, ${(r.requested - r.tasks).toLocaleString('en')} not run)` : '') +
      (r.failed ? `; ${r.failed} did not succeed` : ''),
  );
  if (args.includes('--bare')) {
    // The bare spawn loop on the same cores (bench/spawnloop.ts), on the same number of tasks.
    const cores = availableParallelism();
    const ms = await bareSpawn(r.requested, cores);
    const rate = r.requested / (ms / 1000);
    line(`bare spawn loop (${cores} at once): ${r.requested.toLocaleString('en')} in ${f(ms / 1000, 2)} s = ${f(rate)} tasks/s; slurm = ${f(r.perSecond / rate, 4)}x of it`);
  }
  if (r.failed) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
