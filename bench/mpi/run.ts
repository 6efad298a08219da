// The multinode-MPI start benchmark: a 2-node job of a no-op MPI program (MPI_Init;
// MPI_Finalize) started through Warren, against `mpirun` of the same program over ssh between
// the same two network namespaces. Run: `bash bench/run.sh mpi [--profile]` (env
// WARREN_BENCH_RUNS, default 10; WARREN_BENCH_VERBOSE=1 prints every run's figure).
//
//   ssh      Debian's sshd started here in each namespace (its own host key, a generated
//            client key, root login, port 2222, run isolated like an agent: the node's host
//            name and /tmp); from namespace 1 (isolated the same way) `mpirun --hostfile H
//            -np 2 --mca plm_rsh_agent "ssh -i KEY ..." ./noop`, H the two namespace
//            addresses with slots=1: wall time from spawn to exit.
//   warren   a `warren server` and 2 `warren agent`s in the same two namespaces (isolate,
//            1 core each); a workflow of one job `multinode: {nodes: 2, implementation:
//            openmpi}`, command the no-op program: (a) the job's attempt, startedAt (the
//            server's clock when it makes the attempt durable and hands the gang to its
//            nodes) to endedAt (the launcher's exit heard), through the client API; for
//            context the same job as `warren status ID --json` shows it (from when the server
//            heard the launcher started), and the whole `warren run FLOW` (a fresh CLI
//            process: submit, follow, done).
// Runs are interleaved (ssh, warren, ssh, ...) after one unmeasured warm-up each that also
// checks the two ranks ran on two hosts. Target: (a) <= 1.2x the ssh wall time (medians).
// Then 3 runs each with the program printing its own timestamps (main, after MPI_Init, after
// MPI_Finalize): where the time goes. `--profile` instead: no measured runs; the helper
// (WARREN_MPI_HELPER), ssh and orted (orte_launch_agent) are wrapped in scripts that log
// when they start, for a finer timeline (the wrappers add a few ms each).

import { execFileSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, chmodSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetwork, netnsAvailable, type Host, type Network } from '../../test/helpers/netns.js';
import { TestCluster } from '../../test/cluster/harness.js';
import { HttpClient } from '../../src/api/index.js';

const RUNS = Number(process.env.WARREN_BENCH_RUNS ?? 10);
// --profile: no measured runs; the helper (WARREN_MPI_HELPER), ssh and orted (orte_launch_agent)
// are wrapped in scripts that log when they start, for a timeline of each side.
const PROFILE = process.argv.includes('--profile');
const TARGET = 1.2;
const SSH_PORT = 2222;
const log = (s: string) => process.stderr.write(`mpi bench: ${s}\n`);

const NOOP_C = `#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
int main(int argc, char **argv) {
  double t_main = now_ms();
  MPI_Init(&argc, &argv);
  double t_init = now_ms();
  int v = argc > 1 && strcmp(argv[1], "-v") == 0, r = 0, n = 0;
  char h[256] = "";
  if (v) { MPI_Comm_rank(MPI_COMM_WORLD, &r); MPI_Comm_size(MPI_COMM_WORLD, &n); gethostname(h, sizeof h); }
  MPI_Finalize();
  /* -v: where the time went (ms since the epoch, this machine's clock) */
  if (v) { printf("rank %d of %d on %s main %.3f init %.3f fin %.3f\\n", r, n, h, t_main, t_init, now_ms()); fflush(stdout); }
  return 0;
}
`;

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

function stats(xs: number[]): { median: number; p90: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  const m = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median: m, p90: q(0.9), min: s[0]! };
}

/** Spawn in a namespace; resolves with the exit code, output and the wall time (ms). */
function timed(host: Host, cmd: string, args: string[], hostname: string, timeoutMs = 60_000): Promise<{ code: number | null; out: string; ms: number; t0: number; t1: number }> {
  return new Promise((resolve) => {
    const e0 = Date.now();
    const t0 = performance.now();
    const p = host.spawn(cmd, args, { isolate: { hostname }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      const ms = performance.now() - t0;
      clearTimeout(t);
      resolve({ code, out, ms, t0: e0, t1: e0 + ms });
    });
  });
}

// ---------------------------------------------------------------------------------------

const netOk = netnsAvailable();
if (netOk !== true) {
  log(`cannot run: ${netOk}`);
  process.exit(2);
}
for (const c of ['mpicc.openmpi', 'mpirun.openmpi', 'ssh', 'ssh-keygen']) {
  if (!has(c)) {
    log(`cannot run: ${c} is not installed (scripts/apt/mpi.txt, bench/apt.txt)`);
    process.exit(2);
  }
}
if (!existsSync('/usr/sbin/sshd')) {
  log('cannot run: /usr/sbin/sshd is not installed (openssh-server, bench/apt.txt)');
  process.exit(2);
}

// Under /var/tmp: each namespace host has its own /tmp, this is seen by both.
const dir = mkdtempSync('/var/tmp/warren-mpibench-');
const noop = join(dir, 'noop');
writeFileSync(join(dir, 'noop.c'), NOOP_C);
execFileSync('mpicc.openmpi', ['-O2', '-o', noop, join(dir, 'noop.c')]);
const stampLog = join(dir, 'stamps');
const wrapper = (name: string, real: string): string => {
  const f = join(dir, `wrap-${name}`);
  writeFileSync(f, `#!/bin/bash\necho "$(date +%s%N) $(hostname) ${name} $(basename "$0") \${1:-}" >> ${stampLog}\nexec -a "$0" ${real} "$@"\n`, { mode: 0o755 });
  return f;
};
const here = dirname(fileURLToPath(import.meta.url)); // dist/bench/mpi
const wrapHelper = wrapper('helper', join(here, '..', '..', 'bin', 'warren-mpi'));
const wrapOrted = wrapper('orted', '/usr/bin/orted');
const wrapSsh = wrapper('ssh', '/usr/bin/ssh');
if (PROFILE) process.env.WARREN_MPI_HELPER = wrapHelper;

let net: Network | undefined;
let cluster: TestCluster | undefined;
let closeClient: () => Promise<void> = async () => {};
const sshds: ChildProcess[] = [];
const cleanup = async () => {
  for (const p of sshds) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
  await closeClient();
  await cluster?.close();
  await net?.destroy();
  rmSync(dir, { recursive: true, force: true });
};

try {
  net = await createNetwork({ hosts: 2, prefix: 'mb' });
  const [h1, h2] = net.hosts as [Host, Host];

  // --- ssh baseline: sshd in each namespace --------------------------------------------
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  chmodSync(join(dir, 'authorized_keys'), 0o600);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege-separation directory
  const names = ['n1', 'n2'];
  for (const [i, h] of [h1, h2].entries()) {
    const cfg = join(dir, `sshd_config.${i}`);
    writeFileSync(
      cfg,
      [
        `ListenAddress ${h.address}`,
        `Port ${SSH_PORT}`,
        `HostKey ${join(dir, 'host_key')}`,
        'PermitRootLogin yes',
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'StrictModes no',
        'UsePAM no',
        'PrintMotd no',
        'PrintLastLog no',
        'UseDNS no',
        `PidFile ${join(dir, `sshd.${i}.pid`)}`,
        '',
      ].join('\n'),
    );
    // Isolated like an agent: the daemons it starts see the node's host name and /tmp.
    const p = h.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', cfg], { isolate: { hostname: names[i]! }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.on('exit', (code) => {
      if (code) log(`sshd in ${h.name} exited ${code}: ${err.trim()}`);
    });
    sshds.push(p);
  }
  const hostfile = join(dir, 'hostfile');
  writeFileSync(hostfile, `${h1.address} slots=1\n${h2.address} slots=1\n`);
  const rsh = `${PROFILE ? wrapSsh : 'ssh'} -i ${join(dir, 'client_key')} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -p ${SSH_PORT}`;
  const mpirunArgs = (extra: string[]) => ['--allow-run-as-root', ...(PROFILE ? ['--mca', 'orte_launch_agent', wrapOrted] : []), '--hostfile', hostfile, '-np', '2', '--mca', 'plm_rsh_agent', rsh, '--mca', 'btl', 'tcp,self', '--mca', 'plm_rsh_no_tree_spawn', '1', noop, ...extra];
  // sshd up: ssh answers.
  for (let i = 0; ; i++) {
    const r = await timed(h1, 'ssh', [...rsh.split(' ').slice(1), h2.address, 'hostname'], 'n1', 10_000);
    if (r.code === 0 && r.out.trim() === 'n2') break;
    if (i > 50) throw new Error(`sshd in ${h2.name} does not answer: ${r.out}`);
    await new Promise((res) => setTimeout(res, 100));
  }

  // --- Warren: a server and 2 agents in the same namespaces ----------------------------
  cluster = await TestCluster.start({ agents: 2, net, isolate: true, cores: 1 });
  const c = cluster;
  const client = new HttpClient({ url: c.url, token: c.adminToken, caPem: readFileSync(c.caFile, 'utf8') });
  closeClient = () => client.close();
  const flow = (extra: string) => {
    const f = join(c.dir, `noop${extra ? '-v' : ''}.yaml`);
    writeFileSync(f, `version: v1\njobs:\n  noop:\n    env: {OMPI_MCA_btl: "tcp,self"${PROFILE ? `, OMPI_MCA_orte_launch_agent: ${wrapOrted}` : ''}}\n    command: [${noop}${extra ? `, "${extra}"` : ''}]\n    multinode: {nodes: 2, implementation: openmpi}\n`);
    return f;
  };
  const flowQuiet = flow('');
  const flowVerbose = flow('-v');
  interface St {
    id: string;
    status: string;
    jobs: { name: string; status: string; startedAt: string | null; endedAt: string | null }[];
  }
  const warrenOnce = async (f: string): Promise<{ jobMs: number; unitMs: number; runMs: number; id: string; startedAt: number; endedAt: number }> => {
    const t0 = performance.now();
    const r = await c.cli(['run', f], { timeoutMs: 60_000 });
    const runMs = performance.now() - t0;
    if (r.code !== 0) throw new Error(`warren run exited ${r.code}: ${r.stderr}\n${c.agentLogs.join('\n').slice(-3000)}`);
    const [w] = await c.json<{ id: string }[]>(['list']);
    const st = await c.json<St>(['status', w!.id]);
    const j = st.jobs[0]!;
    if (j.status !== 'succeeded' || !j.startedAt || !j.endedAt) throw new Error(`job: ${JSON.stringify(st)}`);
    const d = await client.get(w!.id);
    if (process.env.WARREN_BENCH_DEBUG) log(JSON.stringify({ unit: j, attempts: d.attempts }));
    const a = d.attempts.find((x) => x.key === 'noop' && x.attempt === 1);
    if (!a || a.startedAt === null || a.endedAt === null) throw new Error(`attempt: ${JSON.stringify(d.attempts)}`);
    // The attempt's startedAt: the server's clock when it made the attempt durable and handed
    // it to the gang's nodes; the unit's (what `warren status --json` shows): when it heard the
    // launcher had started. Both end when it heard the launcher's exit.
    return { jobMs: a.endedAt - a.startedAt, unitMs: Date.parse(j.endedAt) - Date.parse(j.startedAt), runMs, id: w!.id, startedAt: a.startedAt, endedAt: a.endedAt };
  };
  const sshOnce = async (extra: string[] = []) => {
    const r = await timed(h1, 'mpirun.openmpi', mpirunArgs(extra), 'n1');
    if (r.code !== 0) throw new Error(`mpirun over ssh exited ${r.code}: ${r.out}`);
    return r;
  };

  // Warm-up (not measured): each side once, the ranks on both hosts.
  const ranks = (out: string) => [...out.matchAll(/^rank \d of 2 on (\S+) main (\S+) init (\S+) fin (\S+)$/gm)].map((m) => ({ host: m[1]!, main: Number(m[2]), init: Number(m[3]), fin: Number(m[4]) }));
  const s0 = await sshOnce(['-v']);
  if (new Set(ranks(s0.out).map((r) => r.host)).size !== 2) throw new Error(`mpirun over ssh: the ranks are not on 2 hosts: ${s0.out}`);
  const w0 = await warrenOnce(flowVerbose);
  const wout = (await c.cli(['logs', w0.id, 'noop'])).stdout;
  if (new Set(ranks(wout).map((r) => r.host)).size !== 2) throw new Error(`warren: the ranks are not on 2 hosts: ${wout}`);
  log(`warm-up: ssh ${s0.ms.toFixed(0)} ms, warren job ${w0.jobMs} ms (run ${w0.runMs.toFixed(0)} ms); ${RUNS} runs each, interleaved`);

  const f = (x: number) => `${x.toFixed(0)} ms`;
  const W = 62;
  process.stdout.write(`multinode MPI start benchmark, ${new Date().toISOString().slice(0, 10)}, ${availableParallelism()} cores, ${PROFILE ? 'profile' : `${RUNS} runs each`}\n`);
  if (!PROFILE) {
    const ssh: number[] = [];
    const job: number[] = [];
    const unit: number[] = [];
    const run: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ssh.push((await sshOnce()).ms);
      const w = await warrenOnce(flowQuiet);
      job.push(w.jobMs);
      unit.push(w.unitMs);
      run.push(w.runMs);
    }
    if (process.env.WARREN_BENCH_VERBOSE) {
      log(`ssh ms: ${ssh.map((x) => x.toFixed(0)).join(' ')}`);
      log(`warren job ms: ${job.join(' ')}`);
      log(`warren run ms: ${run.map((x) => x.toFixed(0)).join(' ')}`);
    }
    // Context: mpirun with both ranks in namespace 1 (no remote start at all), and what
    // `ip netns exec` + unshare + sh add to every ssh figure (the Warren job has no such step).
    const local: number[] = [];
    const wrap: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 5); i++) {
      const r = await timed(h1, 'mpirun.openmpi', ['--allow-run-as-root', '--host', `${h1.address}:2`, '-np', '2', '--mca', 'btl', 'tcp,self', noop], 'n1');
      if (r.code !== 0) throw new Error(`mpirun on one host exited ${r.code}: ${r.out}`);
      local.push(r.ms);
      wrap.push((await timed(h1, '/bin/true', [], 'n1')).ms);
    }
    const S = stats(ssh);
    const J = stats(job);
    const ratio = J.median / S.median;
    process.stdout.write(`${'2 nodes, no-op MPI program (OpenMPI 4.1, btl tcp,self)'.padEnd(W)} ${'median'.padStart(8)} ${'p90'.padStart(8)} ${'min'.padStart(8)}\n`);
    const line = (what: string, s: { median: number; p90: number; min: number }) => process.stdout.write(`${what.padEnd(W)} ${f(s.median).padStart(8)} ${f(s.p90).padStart(8)} ${f(s.min).padStart(8)}\n`);
    line('mpirun over ssh (sshd in each namespace), start to exit', S);
    line('warren: the job (attempt startedAt to endedAt)', J);
    line('warren: the job as `warren status --json` shows it (context)', stats(unit));
    line('warren: `warren run FLOW` submit to done (context)', stats(run));
    line('context: mpirun, both ranks in namespace 1 (no remote start)', stats(local));
    line('context: ip netns exec + unshare of /bin/true (in ssh figure)', stats(wrap));
    process.stdout.write(`warren job / mpirun over ssh (medians): ${ratio.toFixed(2)}x (<= ${TARGET}x) ${ratio <= TARGET ? 'PASS' : 'MISS'}\n`);
  }

  // Where the time goes: runs of the program with -v (its own timestamps) and, with
  // --profile, the wrappers' stamps; each event in ms after the start (ssh: mpirun spawned;
  // warren: the attempt's startedAt, the server handing the gang to its nodes).
  type Ev = Record<string, number>;
  const timeline = (t0: number, t1: number, out: string): Ev => {
    const ev: Ev = {};
    const at = (k: string, t: number, first = true) => {
      if (ev[k] === undefined || (first ? t - t0 < ev[k]! : t - t0 > ev[k]!)) ev[k] = t - t0;
    };
    if (existsSync(stampLog)) {
      for (const l of readFileSync(stampLog, 'utf8').split('\n')) {
        const [ns, host, name, as, arg] = l.split(' ');
        if (!ns) continue;
        const t = Number(ns) / 1e6;
        if (name === 'helper') at(`${as === 'rsh' ? 'rsh' : arg}@${host}`, t);
        else at(`${name}@${host}`, t);
      }
    }
    for (const r of ranks(out)) {
      at('rank main (first)', r.main);
      at('MPI_Init done (last)', r.init, false);
      at('MPI_Finalize done (last)', r.fin, false);
    }
    ev['exit'] = t1 - t0;
    return ev;
  };
  const tl: { ssh: Ev[]; warren: Ev[] } = { ssh: [], warren: [] };
  const profRuns = PROFILE ? RUNS : 3;
  for (let i = 0; i < profRuns; i++) {
    rmSync(stampLog, { force: true });
    const r = await sshOnce(['-v']);
    tl.ssh.push(timeline(r.t0, r.t1, r.out));
    rmSync(stampLog, { force: true });
    const w = await warrenOnce(flowVerbose);
    const out = (await c.cli(['logs', w.id, 'noop'])).stdout;
    tl.warren.push(timeline(w.startedAt, w.endedAt, out));
  }
  const order = ['launch@n1', 'ssh@n1', 'rsh@n1', 'orted@n2', 'rank@n1', 'rank@n2', 'rank main (first)', 'MPI_Init done (last)', 'MPI_Finalize done (last)', 'exit'];
  const label: Record<string, string> = {
    'launch@n1': 'warren-mpi launch starts (n1)',
    'ssh@n1': 'mpirun calls its rsh agent: ssh (n1)',
    'rsh@n1': 'mpirun calls its rsh agent: the hook (n1)',
    'orted@n2': 'orted starts on n2',
    'rank@n1': 'rank wrapper starts on n1',
    'rank@n2': 'rank wrapper starts on n2',
  };
  const cell = (evs: Ev[], k: string) => {
    const xs = evs.map((e) => e[k]).filter((x): x is number => x !== undefined);
    return (xs.length ? f(stats(xs).median) : '-').padStart(10);
  };
  process.stdout.write(`${`where the time goes: ms after the start, median of ${profRuns} runs with -v`.padEnd(W)} ${'ssh'.padStart(10)} ${'warren'.padStart(10)}\n`);
  for (const k of order) {
    if (!tl.ssh.some((e) => e[k] !== undefined) && !tl.warren.some((e) => e[k] !== undefined)) continue;
    process.stdout.write(`${`  ${label[k] ?? k}`.padEnd(W)} ${cell(tl.ssh, k)} ${cell(tl.warren, k)}\n`);
  }
} catch (e) {
  log(`failed: ${(e as Error).stack ?? e}`);
  await cleanup();
  process.exit(1);
}
await cleanup();
process.exit(0);
