// A real Slurm for tests and benchmarks (issue 14): Debian's slurmctld, two slurmd and a
// private munged, started and stopped here. Each slurmd runs in its own network namespace
// (`wsl-<id>-snN`, one end of a veth on the bridge `wsl<id>br` that holds 10.79.<id>.1 in the
// root namespace) and its own UTS namespace (hostname snN), so both nodes are real NodeNames
// with their own addresses; the controller runs in the root namespace (its own UTS namespace,
// hostname wslctl) and listens on the bridge address; each slurmd also has its own mount
// namespace, only for its TmpFS (a per-node directory bound over DIR/nodetmp: PMIx keeps its
// per-step directories there). Everything lives in one temporary directory (slurm.conf, the
// munge key and socket, state and spool directories, logs).
//
//   const slurm = await SlurmCluster.start({ id: 1 });
//   try {
//     const r = await slurm.run('sbatch', ['--parsable', '--wrap', 'true']);   // SLURM_CONF set
//   } finally {
//     await slurm.stop();   // jobs canceled, every daemon and job process killed, netns and dir gone
//   }
//
// `id` (0 to 9) picks the subnet (10.79.id.0/24), the names and the ports (SlurmctldPort
// 19680 + 2·id, SlurmdPort one above: the slurmd of the two namespaces share it), so that test
// files running at once use different ones. A `JobSubmitPlugins=lua` filter refuses every
// account outside `accounts` at submission (also for `sbatch --test-only`), as a site whose
// accounting enforces associations does, without slurmdbd. Finished jobs are kept in the
// controller (MinJobAge) for `scontrol show job` and written to jobcomp/filetxt.
//
// Whatever stop() does not get to (a test process killed) is swept by the next start() with the
// same id: the pids it recorded in /run/wsl-slurm/<id>.json are killed, the namespaces removed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atProcessExit, pidAlive } from '../helpers/cleanup.js';

export interface SlurmClusterOptions {
  /** 0 to 9: subnet 10.79.id.0/24, names wsl-id-*, ports 19680 + 2·id and one above (default 0). */
  id?: number;
  /** How many slurmd nodes (default 2: sn1, sn2). */
  nodes?: number;
  /** CPUs each node declares (default 8; `SlurmdParameters=config_overrides`). */
  cpus?: number;
  /** Memory each node declares, MiB (default 8000). */
  memoryMb?: number;
  /** The accounts the job_submit filter accepts (default warren, bench). */
  accounts?: string[];
  /** More slurm.conf lines. */
  extraConf?: string[];
  /** Tuned for throughput as bench/cluster/slurm.conf.in (SchedMD's high-throughput guide):
   *  sched/builtin with no scheduling delays, MinJobAge=2, no job completion file, quiet logs. */
  htc?: boolean;
}

export interface SlurmNode {
  name: string;
  /** The network namespace (`nsenter --net=/run/netns/NAME`). */
  netns: string;
  address: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const LOCK_DIR = '/run/wsl-slurm';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, args: string[], env?: NodeJS.ProcessEnv): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000, ...(env ? { env } : {}) });
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error.message) : '') };
}

function must(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** Why this machine cannot run the test Slurm, or true. */
export function slurmAvailable(): true | string {
  if (process.getuid?.() !== 0) return 'the test Slurm needs root (network namespaces, slurmd)';
  for (const c of ['slurmctld', 'slurmd', 'munged', 'sbatch', 'unshare', 'nsenter', 'ip']) {
    if (sh('sh', ['-c', `command -v ${c}`]).code !== 0) return `${c} is not installed (scripts/apt/sites.txt: slurm-wlm, munge)`;
  }
  return true;
}

interface Record_ {
  pids: number[];
  dir: string;
  netns: string[];
  links: string[];
}

function sweep(path: string): void {
  if (!existsSync(path)) return;
  let rec: Record_ & { owner: number };
  try {
    rec = JSON.parse(readFileSync(path, 'utf8')) as Record_ & { owner: number };
  } catch {
    rmSync(path, { force: true });
    return;
  }
  if (rec.owner !== process.pid && pidAlive(rec.owner)) throw new Error(`test Slurm ${path} is in use by process ${rec.owner}; give this one another id`);
  destroy(rec);
  rmSync(path, { force: true });
}

function destroy(rec: Record_): void {
  for (const ns of rec.netns) {
    const pids = sh('ip', ['netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const p of pids) killPid(p);
  }
  for (const p of rec.pids) killPid(p);
  for (const l of rec.links) sh('ip', ['link', 'del', l]);
  for (const ns of rec.netns) sh('ip', ['netns', 'del', ns]);
  if (rec.dir) rmSync(rec.dir, { recursive: true, force: true });
}

function killPid(p: number): void {
  try {
    process.kill(p, 'SIGKILL');
  } catch {
    /* gone */
  }
}

export class SlurmCluster {
  readonly id: number;
  readonly dir: string;
  readonly conf: string;
  readonly bridge: string;
  readonly controllerAddress: string;
  readonly nodes: SlurmNode[];
  readonly ctldPort: number;
  readonly slurmdPort: number;
  readonly jobcomp: string;
  private readonly rec: Record_;
  private readonly lock: string;
  private readonly procs = new Map<string, ChildProcess>();
  private unregister: () => void = () => {};
  private stopped = false;

  private constructor(readonly o: SlurmClusterOptions) {
    this.id = o.id ?? 0;
    if (!Number.isInteger(this.id) || this.id < 0 || this.id > 9) throw new Error(`SlurmCluster id ${this.id}: 0 to 9`);
    this.lock = join(LOCK_DIR, `${this.id}.json`);
    mkdirSync(LOCK_DIR, { recursive: true });
    sweep(this.lock);
    this.dir = mkdtempSync(join(tmpdir(), 'wsl-slurm-'));
    chmodSync(this.dir, 0o755);
    this.conf = join(this.dir, 'slurm.conf');
    this.jobcomp = join(this.dir, 'jobcomp.txt');
    this.bridge = `wsl${this.id}br`;
    this.controllerAddress = `10.79.${this.id}.1`;
    this.ctldPort = 19680 + 2 * this.id;
    this.slurmdPort = this.ctldPort + 1;
    this.nodes = Array.from({ length: o.nodes ?? 2 }, (_, i) => ({ name: `sn${i + 1}`, netns: `wsl-${this.id}-sn${i + 1}`, address: `10.79.${this.id}.${11 + i}` }));
    this.rec = { pids: [], dir: this.dir, netns: this.nodes.map((n) => n.netns), links: [this.bridge, ...this.nodes.map((_, i) => `wsl${this.id}v${i + 1}`)] };
    this.save();
    this.unregister = atProcessExit(() => this.destroySync());
  }

  /** The environment for Slurm commands: this process's, with SLURM_CONF. */
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, SLURM_CONF: this.conf };
  }

  static async start(o: SlurmClusterOptions = {}): Promise<SlurmCluster> {
    const why = slurmAvailable();
    if (why !== true) throw new Error(why);
    const c = new SlurmCluster(o);
    try {
      c.network();
      c.writeConfig();
      await c.startMunge();
      await c.startController();
      for (const n of c.nodes) c.startSlurmd(n);
      await c.waitIdle(c.nodes.length, 20_000);
      return c;
    } catch (e) {
      const logs = c.logs();
      await c.stop();
      throw new Error(`${(e as Error).message}\n${logs}`);
    }
  }

  private save(): void {
    writeFileSync(this.lock, JSON.stringify({ owner: process.pid, ...this.rec }));
  }

  private network(): void {
    must('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    must('ip', ['addr', 'add', `${this.controllerAddress}/24`, 'dev', this.bridge]);
    must('ip', ['link', 'set', this.bridge, 'up']);
    this.nodes.forEach((n, i) => {
      const v = `wsl${this.id}v${i + 1}`;
      must('ip', ['netns', 'add', n.netns]);
      must('ip', ['link', 'add', v, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns]);
      must('ip', ['link', 'set', v, 'master', this.bridge, 'up']);
      must('ip', ['-n', n.netns, 'addr', 'add', `${n.address}/24`, 'dev', 'eth0']);
      must('ip', ['-n', n.netns, 'link', 'set', 'eth0', 'up']);
      must('ip', ['-n', n.netns, 'link', 'set', 'lo', 'up']);
      must('ip', ['-n', n.netns, 'route', 'add', 'default', 'via', this.controllerAddress]);
    });
  }

  private writeConfig(): void {
    const d = this.dir;
    for (const sub of ['state', 'spool', 'munge', 'nodetmp', ...this.nodes.flatMap((n) => [join('spool', n.name), `nodetmp-${n.name}`])]) mkdirSync(join(d, sub), { recursive: true });
    chmodSync(join(d, 'munge'), 0o700);
    writeFileSync(join(d, 'munge', 'munge.key'), randomBytes(1024), { mode: 0o400 });
    const cpus = this.o.cpus ?? 8;
    const mem = this.o.memoryMb ?? 8000;
    const lines = [
      'ClusterName=warrentest',
      `SlurmctldHost=wslctl(${this.controllerAddress})`,
      `SlurmctldPort=${this.ctldPort}`,
      `SlurmdPort=${this.slurmdPort}`,
      'SlurmUser=root',
      'AuthType=auth/munge',
      'CredType=cred/munge',
      `AuthInfo=socket=${this.mungeSocket}`,
      `StateSaveLocation=${join(d, 'state')}`,
      `SlurmdSpoolDir=${join(d, 'spool', '%n')}`,
      // Each node's own (a bind mount in its slurmd's mount namespace): the nodes share /tmp,
      // and PMIx puts its per-step directories here (two nodes of one step would collide).
      `TmpFS=${join(d, 'nodetmp')}`,
      `SlurmctldPidFile=${join(d, 'slurmctld.pid')}`,
      `SlurmdPidFile=${join(d, 'slurmd-%n.pid')}`,
      `SlurmctldLogFile=${join(d, 'slurmctld.log')}`,
      `SlurmdLogFile=${join(d, 'slurmd-%n.log')}`,
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_Core_Memory',
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'MpiDefault=none',
      'JobAcctGatherType=jobacct_gather/none',
      'AccountingStorageType=accounting_storage/none',
      ...(this.o.htc ? ['JobCompType=jobcomp/none', 'SlurmctldDebug=error', 'SlurmdDebug=error'] : ['JobCompType=jobcomp/filetxt', `JobCompLoc=${this.jobcomp}`]),
      'JobSubmitPlugins=lua',
      'SlurmdParameters=config_overrides',
      'ReturnToService=2',
      ...(this.o.htc ? ['SchedulerType=sched/builtin', 'PriorityType=priority/basic', 'SchedulerParameters=batch_sched_delay=0,sched_min_interval=0', 'MinJobAge=2'] : ['SchedulerType=sched/backfill', 'MinJobAge=600']),
      'MaxJobCount=50000',
      'MaxArraySize=10001',
      'DefMemPerCPU=100',
      'SlurmctldTimeout=10',
      'SlurmdTimeout=30',
      'InactiveLimit=0',
      'KillWait=2',
      'MailProg=/bin/true',
      ...(this.o.extraConf ?? []),
      ...this.nodes.map((n) => `NodeName=${n.name} NodeAddr=${n.address} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN`),
      `PartitionName=batch Nodes=${this.nodes.map((n) => n.name).join(',')} Default=YES MaxTime=INFINITE State=UP`,
    ];
    writeFileSync(this.conf, lines.join('\n') + '\n');
    // Slurm reads job_submit.lua beside slurm.conf.
    const accounts = this.o.accounts ?? ['warren', 'bench'];
    writeFileSync(
      join(d, 'job_submit.lua'),
      [
        `local allowed = { ${accounts.map((a) => `["${a}"] = true`).join(', ')} }`,
        'function slurm_job_submit(job_desc, part_list, submit_uid)',
        '  local a = job_desc.account',
        '  if a ~= nil and not allowed[a] then',
        '    slurm.log_user("Invalid account %s: not an account of this cluster", a)',
        '    return slurm.ESLURM_INVALID_ACCOUNT',
        '  end',
        '  return slurm.SUCCESS',
        'end',
        'function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)',
        '  return slurm.SUCCESS',
        'end',
        '',
      ].join('\n'),
    );
  }

  get mungeSocket(): string {
    return join(this.dir, 'munge', 'munge.sock');
  }

  private daemon(key: string, cmd: string, args: string[]): ChildProcess {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.env, detached: true });
    let out = '';
    const add = (b: Buffer) => {
      out += b.toString();
      if (out.length > 20_000) out = out.slice(-10_000);
    };
    p.stdout!.on('data', add);
    p.stderr!.on('data', add);
    (p as ChildProcess & { output: () => string }).output = () => out;
    if (p.pid) {
      this.rec.pids.push(p.pid);
      this.save();
    }
    this.procs.set(key, p);
    return p;
  }

  private async startMunge(): Promise<void> {
    const m = join(this.dir, 'munge');
    this.daemon('munged', 'munged', ['-F', '-f', `--key-file=${join(m, 'munge.key')}`, `--socket=${this.mungeSocket}`, `--log-file=${join(m, 'munged.log')}`, `--pid-file=${join(m, 'munged.pid')}`, `--seed-file=${join(m, 'munged.seed')}`, '--num-threads=4']);
    const t0 = Date.now();
    while (!existsSync(this.mungeSocket)) {
      if (Date.now() - t0 > 10_000) throw new Error('munged did not make its socket in 10 s');
      await sleep(20);
    }
  }

  /** Start slurmctld (again, after stopController: it reads its saved state). */
  async startController(): Promise<void> {
    this.daemon('slurmctld', 'unshare', ['--uts', 'sh', '-c', `hostname wslctl && exec slurmctld -D -i -f ${this.conf}`]);
    const t0 = Date.now();
    for (;;) {
      if (this.run('scontrol', ['ping'], 5_000).stdout.includes('is UP')) return;
      if (Date.now() - t0 > 15_000) throw new Error('slurmctld did not answer in 15 s');
      await sleep(100);
    }
  }

  /** Stop slurmctld (jobs and slurmd keep running): SIGTERM, as a service restart (it saves its state), or SIGKILL. */
  async stopController(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const p = this.procs.get('slurmctld');
    this.procs.delete('slurmctld');
    if (!p?.pid) return;
    try {
      process.kill(-p.pid, signal);
    } catch {
      /* gone */
    }
    if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r));
  }

  private startSlurmd(n: SlurmNode): void {
    const tmp = join(this.dir, 'nodetmp');
    this.daemon(`slurmd-${n.name}`, 'nsenter', [`--net=/run/netns/${n.netns}`, 'unshare', '--uts', '--mount', '--propagation', 'private', 'sh', '-c', `hostname ${n.name} && mount --bind ${tmp}-${n.name} ${tmp} && exec slurmd -D -N ${n.name} -f ${this.conf}`]);
  }

  /** Wait until `count` nodes are idle (sinfo). */
  async waitIdle(count: number, timeoutMs = 20_000): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const idle = this.run('sinfo', ['-h', '-N', '-o', '%N %t'], 5_000).stdout.split('\n').filter((l) => / idle$/.test(l.trim())).length;
      if (idle >= count) return;
      if (Date.now() - t0 > timeoutMs) throw new Error(`only ${idle} of ${count} Slurm nodes idle after ${timeoutMs} ms: ${this.run('sinfo', ['-N'], 5_000).stdout}`);
      await sleep(100);
    }
  }

  /** Run a Slurm command (SLURM_CONF set) to its end. */
  run(cmd: string, args: string[], timeoutMs = 20_000): RunResult {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, env: this.env });
    return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error.message) : '') };
  }

  /** Job ids in the queue (pending or running). */
  queue(): string[] {
    return this.run('squeue', ['-h', '-o', '%i']).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  /** Wait until the queue is empty. */
  async waitEmpty(timeoutMs = 60_000): Promise<void> {
    const t0 = Date.now();
    while (this.queue().length) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`the Slurm queue is not empty after ${timeoutMs} ms: ${this.queue().join(' ')}`);
      await sleep(100);
    }
  }

  /** The daemons' logs (the ends), for a failure message. */
  logs(): string {
    const parts: string[] = [];
    for (const [k, p] of this.procs) parts.push(`--- ${k} ---\n${((p as ChildProcess & { output?: () => string }).output?.() ?? '').slice(-2000)}`);
    return parts.join('\n');
  }

  /** Cancel every job, kill the daemons and everything left in the namespaces, remove it all. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.procs.has('slurmctld')) {
      this.run('scancel', ['--full', '-u', 'root'], 10_000);
      const t0 = Date.now();
      while (Date.now() - t0 < 5_000 && this.queue().length) await sleep(100);
    }
    for (const p of this.procs.values()) if (p.pid) killPid(-p.pid);
    this.destroySync();
  }

  private destroySync(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.procs.values()) if (p.pid) killPid(-p.pid);
    destroy(this.rec);
    rmSync(this.lock, { force: true });
    this.unregister();
  }
}
