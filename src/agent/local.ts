// The node agent (the `Agent` contract, ./contract.ts) that runs work on this machine: it
// admits tasks against the node's cores and memory, resolves everything node-local for a
// node-independent task (job script, working directory, volume directories, log files,
// secrets, data transfers), starts it on the right runtime (process or container), and
// reports when it starts and ends. `warren run` uses it in-process; `warren agent` runs it
// behind the server–agent protocol on each cluster node.

import { createReadStream, existsSync, mkdirSync, writeFileSync, appendFileSync, statSync, watch, chownSync, readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { availableParallelism, constants as osConstants, hostname, totalmem } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { WarrenError, isWarrenError } from '../common/index.js';
import { sanitizeHostname, type ExitInfo, type LaunchRequest, type RunningTask, type Runtime } from '../runtime/index.js';
import type { JobSpec, VolumeSpec } from '../workflow/index.js';
import { lookupAccount, ownAccount, type Account } from './accounts.js';
import { GangDir, IN_CONTAINER, implementationOf, launcherPlan, mpiHelperPath, nodeAddresses, type GangHost, type LaunchReply } from './mpi.js';
import { ProbeRunner, type ProbeExec } from './probe.js';
import { hostsLines, serviceEnv } from './services.js';
import type { DataOptions, EgressFn, IngressFn, SecretResolver } from '../data/index.js';
import {
  AGENT_PROTOCOL,
  gpusOfJob,
  type AdmissionRequest,
  type Agent,
  type AgentListener,
  type AttemptExited,
  type AttemptState,
  type GpuInfo,
  type LaunchOrder,
  type LogRequest,
  type NodeInfo,
  type SubmitHooks,
  type TaskAssignment,
} from './contract.js';

export interface LocalAgentOptions {
  /** The node's name (default: the host name). */
  name?: string;
  /** The agent's data directory ($WARREN_HOME): runs/<workflow>/{logs,work,scripts,volumes}, volumes/ (persistent), cache/. */
  home: string;
  /** Cores this agent may use (default: all the machine has). */
  cores?: number;
  /** Memory this agent may hand out, bytes (default: the machine's total). */
  memoryBytes?: number;
  labels?: Record<string, string>;
  /** The node's GPUs (from nvidia-smi; see ./gpus.ts). */
  gpus?: GpuInfo[];
  process: Runtime;
  container?: Runtime;
  /** The container runtime under a workflow's own trust policy (cluster nodes; else `container`). */
  containerFor?: (trust: TaskAssignment['trust']) => Runtime | undefined;
  /** Data movement (src/data), injected so the agent stays testable. */
  transfers?: { ingress: IngressFn; egress: EgressFn };
  data?: Partial<DataOptions>;
  /** Registry credentials and data secrets, resolved on the node. */
  secrets?: SecretResolver;
  /** Give host jobs this process's environment (the embedded default: the user's own shell). */
  inheritEnv?: boolean;
  agentVersion?: string;
  /** Where other nodes reach this one (multinode jobs' daemons and ranks); default: its addresses. */
  addresses?: string[];
  /** The address its services' ports are reached at (their endpoints' URLs; default 127.0.0.1:
   *  the embedded default, where everything is on this machine). */
  serviceHost?: string;
}

type Entry = { task: TaskAssignment; cores: number; memoryBytes: number; gpus: number; exclusive: boolean; hooks: SubmitHooks };
type Running = { entry: Entry; handle: RunningTask | null; killed: 'canceled' | 'timeout' | null; stopping: boolean; abort?: AbortController; gang?: GangRun; probe?: ProbeRunner };

/** A multinode job's part on this node (./mpi.ts). */
interface GangRun {
  dir: GangDir;
  /** The launch request of the job here: each daemon runs as a copy of it. */
  base: LaunchRequest;
  runtime: Runtime;
  /** The gang's hosts (hostfile names -> nodes); on one machine, places here. */
  hosts: GangHost[];
  /** All of the gang's nodes run here (no cluster). */
  local: boolean;
  /** Launcher (index 0) or member. */
  launcher: boolean;
  daemons: Map<string, { handle: RunningTask | null; reply?: LaunchReply; killed: boolean }>;
  /** Hooks waiting for a remote daemon's end (cluster mode, on the launcher). */
  replies: Map<string, LaunchReply>;
  launched: number;
  rankFailure: { rank: number | null; exitCode: number | null; signal: number | null; node: string } | null;
  launcherMissing: { launcher: string; path: string } | null;
  release: (info: ExitInfo, failure?: WarrenError) => void;
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_');

/** Where a job's (or task's) stdout and stderr go, under its run directory. */
export function logPaths(runDir: string, job: string, task: number | null): { out: string; err: string } {
  const base = join(runDir, 'logs', task === null ? safe(job) : `${safe(job)}.${task}`);
  return { out: `${base}.out`, err: `${base}.err` };
}

export class LocalAgent implements Agent {
  readonly cores: number;
  readonly memoryBytes: number;
  readonly name: string;
  private readonly addresses: string[];
  private usedCores = 0;
  private usedMemory = 0;
  /** Indexes of the GPUs no running job holds, lowest first: a GPU is one job's at a time. */
  private readonly freeGpus: number[];
  private exclusiveRunning = false;
  private readonly queue: Entry[] = [];
  private readonly running = new Map<string, Running>();
  private listener: AgentListener | null = null;
  /** Launch orders for gang members not set up yet (queued for a core, or preparing their image). */
  private readonly early = new Map<string, LaunchOrder[]>();
  /** Per workflow: scripts written, work dirs made, volume dirs (once per job, not per task). */
  private readonly prepared = new Map<string, Set<string>>();
  /** Services whose readiness probe never passed (stopped for it): attempt id -> the probe's last result. */
  private readonly notReady = new Map<string, string>();
  readonly serviceHost: string;

  constructor(private readonly opts: LocalAgentOptions) {
    this.cores = Math.max(1, Math.floor(opts.cores ?? availableParallelism()));
    this.memoryBytes = opts.memoryBytes ?? totalmem();
    this.name = opts.name ?? hostname();
    this.addresses = opts.addresses ?? nodeAddresses();
    this.freeGpus = (opts.gpus ?? []).map((g) => g.index).sort((a, b) => a - b);
    this.serviceHost = opts.serviceHost ?? '127.0.0.1';
  }

  info(): NodeInfo {
    return {
      name: this.name,
      cores: this.cores,
      memoryBytes: this.memoryBytes,
      gpus: [...(this.opts.gpus ?? [])],
      labels: { ...(this.opts.labels ?? {}) },
      platform: `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`,
      containers: this.opts.container !== undefined,
      addresses: this.addresses,
      agentVersion: this.opts.agentVersion ?? '0.1.0',
      protocol: { ...AGENT_PROTOCOL },
    };
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  /** The run directory of a workflow on this node. */
  runDir(workflowId: string): string {
    return join(this.opts.home, 'runs', workflowId);
  }

  admit(req: AdmissionRequest): WarrenError | null {
    const nodes = req.nodes ?? 1;
    if (nodes > 1 && req.cores * nodes > this.cores) {
      return new WarrenError('AGENT_NOT_ENOUGH_CORES', `${req.name} needs ${nodes} nodes × ${req.cores} cores: without a cluster all ${req.cores * nodes} ranks run on this machine, which has ${this.cores} cores`, {
        hint: `run it on a cluster (\`warren --context NAME run\`), or lower multinode.nodes or resource.cpu.cores so that nodes × cores <= ${this.cores}`,
      });
    }
    if (req.cores > this.cores) {
      return new WarrenError('AGENT_NOT_ENOUGH_CORES', `${req.name} needs ${req.cores} cores but this node has ${this.cores}`, {
        hint: `lower resource.cpu.cores to at most ${this.cores}, raise --cores, or run it on a larger node or cluster`,
      });
    }
    if (req.memoryBytes > this.memoryBytes) {
      return new WarrenError(
        'AGENT_NOT_ENOUGH_MEMORY',
        `${req.name} needs ${(req.memoryBytes / 2 ** 30).toFixed(1)} GiB of memory but this node has ${(this.memoryBytes / 2 ** 30).toFixed(1)} GiB`,
        { hint: 'lower resource.memory.size (mind `by-core`), or run it on a larger node' },
      );
    }
    const gpus = this.opts.gpus?.length ?? 0;
    if (req.gpus * (nodes > 1 ? nodes : 1) > gpus) {
      const want = req.gpus * (nodes > 1 ? nodes : 1);
      return new WarrenError('AGENT_NOT_ENOUGH_GPUS', `${req.name} needs ${want} GPU${want === 1 ? '' : 's'}${nodes > 1 ? ` (${nodes} nodes × ${req.gpus}, all on this machine without a cluster)` : ''}; this node has ${gpus}${gpus === 0 ? ' (nvidia-smi lists none)' : ''}`, {
        hint: gpus === 0 ? 'run it where GPUs are (`warren --context NAME run` on a cluster with GPU nodes), or remove resource.devices from the job' : `lower the job's GPU request to at most ${gpus}, or run it on a cluster`,
      });
    }
    if (req.container && !this.opts.container) {
      return new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${req.name} names an image but this node has no container runtime`, {
        hint: 'install runc (apt-get install runc), or remove `image:` to run the job as a host process',
      });
    }
    return null;
  }

  submit(task: TaskAssignment, hooks: SubmitHooks = {}): void {
    const spec = task.job;
    const entry: Entry = {
      task,
      hooks,
      // A multinode job on one machine (no gang): all its nodes' cores are here.
      cores: task.kind === 'job' && spec ? spec.resources.cores * (spec.multinode && !task.gang ? spec.multinode.nodes : 1) : 0,
      memoryBytes: task.kind === 'job' && spec ? (spec.resources.memoryBytes ?? 0) : 0,
      gpus: task.kind === 'job' && spec && !(task.simulate !== undefined || task.sleepSec !== undefined) ? gpusOfJob(spec) * (spec.multinode && !task.gang ? spec.multinode.nodes : 1) : 0,
      exclusive: task.kind === 'job' && spec ? spec.resources.exclusive : false,
    };
    // Data units take no core slot: they wait on the network, not the CPU.
    if (task.kind !== 'job') {
      this.start(entry);
      return;
    }
    this.queue.push(entry);
    this.pump();
  }

  /** A service started: run its readiness probe (ready at once without one). */
  private serviceStarted(r: Running, req: LaunchRequest, h: RunningTask): void {
    const t = r.entry.task;
    const spec = t.job;
    if (!spec?.service || r.killed || !this.running.has(t.attemptId)) return;
    const ready = (message?: string): void => {
      if (!this.running.has(t.attemptId) || r.killed) return;
      this.listener?.ready?.({ attemptId: t.attemptId, host: this.serviceHost, ...(message ? { message } : {}), at: Date.now() });
    };
    const probe = spec.serviceSpec?.probe;
    if (!probe) {
      ready();
      return;
    }
    const exec: ProbeExec = h.exec ? (argv, ms) => h.exec!(argv, ms) : (argv, ms) => hostExec(req, argv, ms);
    r.probe = new ProbeRunner(probe, {
      host: '127.0.0.1',
      exec,
      onReady: (m) => ready(m),
      onFail: (m) => {
        if (!this.running.has(t.attemptId) || r.killed) return;
        this.notReady.set(t.attemptId, m);
        appendFileSync(req.stderrPath, `warren: ${m}: stopping the service\n`);
        r.killed = 'canceled';
        h.kill('canceled');
      },
    });
    r.probe.start();
  }

  /**
   * A TCP connection to `port` of a running service attempt here (port forwarding). Only the
   * ports the service declares (`network.ports`, or its probe's) are reachable this way.
   */
  async connect(attemptId: string, port: number): Promise<Duplex> {
    const r = this.running.get(attemptId);
    const spec = r?.entry.task.job;
    if (!r || !spec?.service || !r.handle) {
      throw new WarrenError('SERVICE_NOT_RUNNING', `attempt ${attemptId} is not a service running on node ${this.name}`, { hint: 'see `warren status ID`: port forwarding reaches a service while it runs' });
    }
    if (!declaredPorts(spec).includes(port)) {
      throw new WarrenError('SERVICE_PORT_UNDECLARED', `service ${spec.name} does not declare port ${port}${declaredPorts(spec).length ? ` (its ports: ${declaredPorts(spec).join(', ')})` : ' (it declares no ports)'}`, {
        hint: 'forward one of its ports, or declare the port under network.ports of the service',
      });
    }
    return new Promise<Duplex>((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        reject(new WarrenError('SERVICE_FORWARD_FAILED', `cannot connect to port ${port} of service ${spec.name} on node ${this.name}: ${e.code === 'ECONNREFUSED' ? 'connection refused (is it listening on that port?)' : e.message}`, { hint: `see its log: \`warren logs ${r.entry.task.workflowId} ${spec.name} --err\`` }));
      });
    });
  }

  /** Stop a queued or running task. */
  kill(id: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    const qi = this.queue.findIndex((t) => t.task.attemptId === id);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      this.emitExit(id, { exitCode: null, signal: null, reason: reason === 'stop-service' ? 'stopped' : 'canceled', durationMs: 0 });
      return;
    }
    const r = this.running.get(id);
    if (!r) return;
    if (reason === 'stop-service') r.stopping = true;
    r.probe?.stop();
    r.killed = reason === 'timeout' ? 'timeout' : 'canceled';
    if (r.abort) r.abort.abort();
    r.handle?.kill(r.killed);
    if (r.gang) this.gangKill(r);
  }

  get load(): { usedCores: number; queued: number; running: number } {
    return { usedCores: this.usedCores, queued: this.queue.length, running: this.running.size };
  }

  /** The workflows and images of the tasks running or queued here (retention keeps them). */
  inUse(): { workflows: Set<string>; images: Set<string> } {
    const workflows = new Set<string>();
    const images = new Set<string>();
    const add = (t: TaskAssignment): void => {
      workflows.add(t.workflowId);
      if (t.job?.image) images.add(t.job.image.uri);
    };
    for (const r of this.running.values()) add(r.entry.task);
    for (const q of this.queue) add(q.task);
    return { workflows, images };
  }

  /** In-process, the attempts died with the process that ran them: nothing to recover. */
  async recover(): Promise<AttemptState[]> {
    // Queued ones too: the node has them (they start when they fit).
    return [
      ...[...this.running.values()].map((r) => ({ attemptId: r.entry.task.attemptId, state: 'running' as const, pid: r.handle?.pid ?? null, cgroup: null, startedAt: null })),
      ...this.queue.map((q) => ({ attemptId: q.task.attemptId, state: 'running' as const, pid: null, cgroup: null, startedAt: null })),
    ];
  }

  async *logs(req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const paths = logPaths(this.runDir(req.workflowId), req.job, req.task);
    const path = req.stream === 'stderr' ? paths.err : paths.out;
    let pos = req.offset ?? 0;
    const readFrom = async function* (start: number): AsyncGenerator<Buffer> {
      if (!existsSync(path)) return;
      for await (const c of createReadStream(path, { start })) yield c as Buffer;
    };
    const key = req.task === null ? req.job : `${req.job}[${req.task}]`;
    const isRunning = (): boolean => {
      for (const r of this.running.values()) if (r.entry.task.workflowId === req.workflowId && r.entry.task.key === `job:${key}`) return true;
      for (const q of this.queue) if (q.task.workflowId === req.workflowId && q.task.key === `job:${key}`) return true;
      return false;
    };
    for (;;) {
      for await (const c of readFrom(pos)) {
        pos += c.length;
        yield c;
      }
      if (!req.follow || signal?.aborted || !isRunning()) break;
      await waitForChange(path, 250, signal);
    }
    if (req.follow) for await (const c of readFrom(pos)) yield c;
  }

  async close(): Promise<void> {
    for (const id of [...this.running.keys()]) this.kill(id, 'canceled');
  }

  /** Start queued tasks that fit, first come first served, letting smaller ones through
   *  when the head does not fit (backfill). */
  private pump(): void {
    for (let i = 0; i < this.queue.length; ) {
      if (this.exclusiveRunning) return;
      // Every task needs a core: with none free nothing fits, so stop looking (keeps each
      // admission O(1) while the queue is full of tasks waiting for cores).
      if (this.usedCores >= this.cores) return;
      const t = this.queue[i]!;
      const fits = t.exclusive
        ? this.usedCores === 0
        : this.usedCores + t.cores <= this.cores && this.usedMemory + t.memoryBytes <= this.memoryBytes && t.gpus <= this.freeGpus.length;
      if (!fits) {
        if (t.exclusive) return; // do not starve an exclusive job by backfilling around it
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.start(t);
    }
  }

  private emitExit(id: string, info: ExitInfo, failure?: WarrenError): void {
    this.early.delete(id);
    const ev: AttemptExited = { attemptId: id, exitCode: info.exitCode, signal: info.signal, reason: info.reason, durationMs: info.durationMs, at: Date.now() };
    if (info.message !== undefined) ev.message = info.message;
    const unready = this.notReady.get(id);
    if (unready !== undefined) {
      // Stopped because its readiness probe never passed: that is why it ended.
      this.notReady.delete(id);
      ev.reason = 'not-ready';
      ev.message = unready;
    }
    if (failure) ev.failure = failure.toWire();
    this.listener?.exited(ev);
  }

  private start(e: Entry): void {
    const t = e.task;
    const cores = e.exclusive ? this.cores : e.cores;
    this.usedCores += cores;
    this.usedMemory += e.memoryBytes;
    const gpus = this.freeGpus.splice(0, e.gpus);
    if (e.exclusive) this.exclusiveRunning = true;
    const r: Running = { entry: e, handle: null, killed: null, stopping: false };
    this.running.set(t.attemptId, r);
    const release = (info: ExitInfo, failure?: WarrenError): void => {
      r.probe?.stop();
      if (!this.running.delete(t.attemptId)) return;
      this.usedCores -= cores;
      this.usedMemory -= e.memoryBytes;
      if (gpus.length) {
        this.freeGpus.push(...gpus);
        this.freeGpus.sort((a, b) => a - b);
      }
      if (e.exclusive) this.exclusiveRunning = false;
      this.emitExit(t.attemptId, info, failure);
      this.pump();
    };
    if (t.kind !== 'job') {
      this.runData(r, release);
      return;
    }
    let req: LaunchRequest;
    let runtime: Runtime;
    try {
      req = this.launchRequest(t, gpus);
      runtime = req.container ? (t.trust && this.opts.containerFor ? this.opts.containerFor(t.trust)! : this.opts.container!) : this.opts.process;
      if (!runtime) throw new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${t.name} names an image but this node has no container runtime`, { hint: 'install runc (apt-get install runc)' });
    } catch (err) {
      const w = isWarrenError(err) ? err : new WarrenError('RUNTIME_BAD_REQUEST', (err as Error).message);
      queueMicrotask(() => release({ exitCode: null, signal: null, reason: 'spawn-error', message: w.hint ? `${w.message} (${w.hint})` : w.message, durationMs: 0 }, w));
      return;
    }
    const durable = e.hooks.durable;
    if (durable) req.beforeExec = (info) => durable(info);
    const go = (): void => {
      if (!this.running.has(t.attemptId)) return;
      const h = runtime.launch(req);
      r.handle = h;
      if (r.killed) h.kill(r.killed);
      const started = (pid: number | null): void => {
        this.listener?.started({ attemptId: t.attemptId, pid, cgroup: null, at: Date.now() });
        this.serviceStarted(r, req, h);
      };
      if (h.started) {
        void h.started.then((pid) => {
          if (pid !== null) started(pid);
        });
      } else started(h.pid ?? null);
      void h.exited.then((info) => {
        if (r.gang) {
          const [i, f] = this.gangEnded(r, info);
          release(i, f);
        } else release(info);
      });
    };
    const fail = (err: unknown): void => {
      const w = isWarrenError(err) ? err : new WarrenError('RUNTIME_BAD_REQUEST', String((err as Error)?.message ?? err));
      r.gang?.dir.close();
      release({ exitCode: null, signal: null, reason: 'spawn-error', message: w.hint ? `${w.message} (${w.hint})` : w.message, durationMs: 0 }, w);
    };
    if (t.job?.multinode) {
      // A multinode job: its gang's directory and socket first; a member starts no process.
      const gang = (): void => {
        this.gangStart(r, req, runtime, release).then((launch) => {
          if (launch) go();
        }, fail);
      };
      if (runtime.check) runtime.check(req).then(gang, fail);
      else gang();
      return;
    }
    if (runtime.check) {
      runtime.check(req).then(go, (err: unknown) => {
        const w = isWarrenError(err) ? err : new WarrenError('RUNTIME_BAD_REQUEST', String((err as Error)?.message ?? err));
        release({ exitCode: null, signal: null, reason: 'spawn-error', message: w.hint ? `${w.message} (${w.hint})` : w.message, durationMs: 0 }, w);
      });
    } else go();
  }

  // ---- multinode (MPI) jobs: ./mpi.ts, docs/mpi.md ----

  /**
   * Set up a multinode job's part here: the gang's directory and socket, the hostfile, and
   * for the launcher its command (mpirun / mpiexec through the hook). Resolves true when a
   * process is to be started now (the launcher), false for a member (it waits for daemons).
   */
  private async gangStart(r: Running, req: LaunchRequest, runtime: Runtime, release: (info: ExitInfo, failure?: WarrenError) => void): Promise<boolean> {
    const t = r.entry.task;
    const spec = t.job as JobSpec;
    const impl = implementationOf(spec);
    const inContainer = req.container !== undefined;
    const helper = mpiHelperPath();
    if (!existsSync(helper)) {
      throw new WarrenError('AGENT_MPI_HELPER_MISSING', `the MPI launch helper ${helper} is not built on node ${this.name}`, { hint: 'run scripts/setup.sh on the node (it compiles dist/bin/warren-mpi with cc -static)' });
    }
    const dir = new GangDir(this.opts.home, t.attemptId);
    const seen = inContainer ? sanitizeHostname(this.name) : hostname();
    const gang = t.gang;
    const local = gang === undefined;
    const count = gang ? gang.nodes.length : (spec.multinode?.nodes ?? 1);
    const hosts: GangHost[] = [];
    for (let i = 0; i < count; i++) {
      // By address, not name: the launcher and its daemons need no DNS for the gang's nodes.
      if (gang) hosts.push({ host: gang.nodes[i]!.address ?? (i === gang.index ? seen : gang.nodes[i]!.name), node: gang.nodes[i]!.name });
      else hosts.push({ host: i === 0 ? seen : `${seen}-${i}`, node: i === 0 ? this.name : `${this.name} (place ${i})` });
    }
    // The launcher's own entry first: mpirun starts that node's ranks itself.
    if (gang && gang.index !== 0) hosts.unshift(...hosts.splice(gang.index, 1));
    const isLauncher = !gang || gang.index === 0;
    const paths = inContainer
      ? { helper: `${IN_CONTAINER.bin}/warren-mpi`, rsh: `${IN_CONTAINER.dir}/rsh`, hostfile: `${IN_CONTAINER.dir}/hostfile`, socket: `${IN_CONTAINER.dir}/s` }
      : { helper, rsh: join(dir.dir, 'rsh'), hostfile: join(dir.dir, 'hostfile'), socket: dir.socket };
    const who = req.user;
    const asRoot = who ? who.uid === 0 : process.getuid?.() === 0;
    const address = gang ? (gang.nodes[gang.index]!.address ?? nodeAddresses()[0] ?? '127.0.0.1') : '127.0.0.1';
    const plan = isLauncher ? launcherPlan({ impl, hosts, coresPerNode: spec.resources.cores, command: req.argv, address, paths, asRoot }) : null;
    const g: GangRun = { dir, base: req, runtime, hosts, local, launcher: isLauncher, daemons: new Map(), replies: new Map(), launched: 0, rankFailure: null, launcherMissing: null, release };
    r.gang = g;
    await dir.open({ helperAsSeen: paths.helper, ...(who ? { owner: { uid: who.uid, gid: who.gid } } : {}), ...(plan ? { hostfile: plan.hostfile } : {}) }, {
      launch: (c) => this.gangLaunch(r, c.launchId, c.host, c.command, c.reply),
      rankExit: (x) => {
        g.rankFailure ??= { ...x, node: this.name };
        if (!g.launcher || !g.local) this.listener?.launch?.({ type: 'rank-exit', attemptId: t.attemptId, rank: x.rank, exitCode: x.exitCode, signal: x.signal });
      },
      launcherMissing: (l) => {
        g.launcherMissing = l;
      },
    });
    if (!this.running.has(t.attemptId) || r.killed) {
      // Killed while the directory was made.
      dir.close();
      release({ exitCode: null, signal: null, reason: 'canceled', durationMs: 0 });
      return false;
    }
    if (inContainer) req.mounts = [...req.mounts, ...dir.mounts(dirname(helper))];
    const env: Record<string, string> = {
      WARREN_MPI_SOCKET: paths.socket,
      WARREN_MPI_IMPLEMENTATION: impl,
      WARREN_MPI_NODES: String(count),
      WARREN_MPI_HOSTS: hosts.map((h) => h.host).join(','),
      WARREN_MPI_RANKS: String(count * spec.resources.cores),
      WARREN_NODE_INDEX: String(gang ? gang.index : 0),
    };
    Object.assign(req.env, env);
    // OpenMPI looks its launch agent up through PATH and refuses without one (a node agent
    // gives host jobs no environment of its own); a container has its image's.
    if (!inContainer && req.env.PATH === undefined) req.env.PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
    if (plan) {
      Object.assign(req.env, plan.env);
      req.argv = plan.argv;
      if (local && count > 1) {
        appendFileSync(req.stderrPath, `warren: no cluster here: the ${count} nodes of multinode job ${spec.name} run their ranks on this machine (${count} × ${spec.resources.cores} cores), their daemons started through the same launch hook as on a cluster\n`);
      }
      return true;
    }
    // A member: nothing runs until the launcher asks; it counts as started once durable.
    const durable = r.entry.hooks.durable;
    if (durable) await durable({ pid: null, cgroup: null });
    this.listener?.started({ attemptId: t.attemptId, pid: null, cgroup: null, at: Date.now() });
    // Orders that came while it waited for a core or its image.
    const early = this.early.get(t.attemptId) ?? [];
    this.early.delete(t.attemptId);
    for (const o of early) this.launch(o);
    return false;
  }

  /** The launcher's hook asked for a daemon on `host`: here (one machine), or via the server. */
  private gangLaunch(r: Running, launchId: string, host: string, command: string, reply: LaunchReply): void {
    const g = r.gang!;
    const t = r.entry.task;
    const h = g.hosts.find((x) => x.host === host);
    if (!h) {
      reply.message(`warren: ${host} is not a node of this job (its nodes: ${g.hosts.map((x) => x.host).join(', ')})`);
      reply.exit(255);
      return;
    }
    if (g.local) {
      this.daemonStart(r, launchId, command, reply);
      return;
    }
    g.replies.set(launchId, reply);
    reply.onClose(() => {
      if (g.replies.delete(launchId)) this.listener?.launch?.({ type: 'cancel', attemptId: t.attemptId, launchId });
    });
    this.listener?.launch?.({ type: 'request', attemptId: t.attemptId, launchId, host: h.node, command });
  }

  /** Start one daemon as a copy of the job here (its image, mounts, cgroup, user, logs). */
  private daemonStart(r: Running, launchId: string, command: string, reply?: LaunchReply): void {
    const g = r.gang!;
    const t = r.entry.task;
    const n = ++g.launched;
    const d: { handle: RunningTask | null; reply?: LaunchReply; killed: boolean } = { handle: null, killed: false, ...(reply ? { reply } : {}) };
    g.daemons.set(launchId, d);
    const req: LaunchRequest = { ...g.base, id: `${t.attemptId}.d${n}`, argv: ['/bin/sh', '-c', command], env: { ...g.base.env } };
    delete req.beforeExec;
    reply?.onClose(() => {
      // The hook went away first (the launcher tears the job down): the daemon goes too.
      if (g.daemons.has(launchId)) {
        d.killed = true;
        d.handle?.kill('canceled');
      }
    });
    try {
      const h = g.runtime.launch(req);
      d.handle = h;
      if (d.killed || r.killed) h.kill('canceled');
      void h.exited.then((info) => this.daemonEnded(r, launchId, info));
    } catch (e) {
      this.daemonEnded(r, launchId, { exitCode: null, signal: null, reason: 'spawn-error', message: (e as Error).message, durationMs: 0 });
    }
  }

  private daemonEnded(r: Running, launchId: string, info: ExitInfo): void {
    const g = r.gang!;
    const t = r.entry.task;
    const d = g.daemons.get(launchId);
    if (!d) return;
    g.daemons.delete(launchId);
    const what = info.exitCode === 0 ? null : info.exitCode !== null ? `exited with code ${info.exitCode}` : info.signal ? `was killed by ${info.signal}` : (info.message ?? info.reason);
    const message = what ? `the MPI daemon on ${this.name} ${what}${info.message ? ` (${info.message})` : ''}` : undefined;
    if (d.reply) {
      if (message) d.reply.message(`warren: ${message}`);
      d.reply.exit(hookStatus(info.exitCode, info.signal));
    } else {
      this.listener?.launch?.({ type: 'exited', attemptId: t.attemptId, launchId, exitCode: info.exitCode, signal: info.signal, ...(message ? { message } : {}) });
    }
    // A member ends with its last daemon (the launcher ended the job, or it failed).
    if (!g.launcher && g.daemons.size === 0) {
      g.dir.close();
      g.release(r.killed ? { ...info, reason: 'canceled' } : info);
    }
  }

  /** Kill a gang's daemons here; a member with none ends now. */
  private gangKill(r: Running): void {
    const g = r.gang!;
    for (const d of g.daemons.values()) {
      d.killed = true;
      d.handle?.kill('canceled');
    }
    if (!g.launcher && g.daemons.size === 0) {
      g.dir.close();
      g.release({ exitCode: null, signal: null, reason: r.killed === 'timeout' ? 'timeout' : 'canceled', durationMs: 0 });
    }
  }

  /** The launcher ended: stop what is left here, and say which rank failed or what is missing. */
  private gangEnded(r: Running, info: ExitInfo): [ExitInfo, WarrenError | undefined] {
    const g = r.gang!;
    const spec = r.entry.task.job as JobSpec;
    this.gangKill(r);
    for (const reply of g.replies.values()) reply.exit(255);
    g.replies.clear();
    g.dir.close();
    if (g.launcherMissing && info.exitCode === 127) {
      const impl = spec.multinode?.implementation ?? 'openmpi';
      const where = spec.image ? `image ${spec.image.uri}` : `node ${this.name}`;
      const launcher = g.launcherMissing.launcher.split(':').join(' or ');
      const err = new WarrenError('AGENT_MPI_LAUNCHER_MISSING', `${where} has no ${launcher} on its PATH (${g.launcherMissing.path || 'empty'}): multinode implementation ${impl} launches the job with it`, {
        hint: impl === 'mpich' ? 'install MPICH in the image (Debian: apt-get install mpich), or set PATH in the job\'s env to where mpiexec is' : 'install OpenMPI in the image (Debian: apt-get install openmpi-bin), or set PATH in the job\'s env to where mpirun is',
        details: { launcher: g.launcherMissing.launcher, path: g.launcherMissing.path, ...(spec.image ? { image: spec.image.uri } : { node: this.name }) },
      });
      return [{ ...info, reason: 'spawn-error', message: `${err.message} (${err.hint})` }, err];
    }
    if (info.exitCode !== 0 && g.rankFailure && info.reason === 'exit') {
      const f = g.rankFailure;
      const what = f.exitCode !== null ? `exited with code ${f.exitCode}` : `was killed by signal ${f.signal}`;
      return [{ ...info, ...(f.exitCode !== null ? { exitCode: f.exitCode } : {}), message: `rank ${f.rank ?? '?'} on node ${f.node} ${what}` }, undefined];
    }
    return [info, undefined];
  }

  /** An order of the server about a gang's daemons. */
  launch(o: LaunchOrder): void {
    const r = this.running.get(o.attemptId);
    const g = r?.gang;
    const member = (r?.entry ?? this.queue.find((q) => q.task.attemptId === o.attemptId))?.task.gang;
    if (!g && member && member.index > 0 && o.type !== 'exited') {
      // A member still queued for a core or preparing its image: the order waits for it.
      const list = this.early.get(o.attemptId) ?? [];
      list.push(o);
      this.early.set(o.attemptId, list);
      return;
    }
    if (o.type === 'start') {
      if (!r || !g || g.launcher) {
        this.listener?.launch?.({ type: 'exited', attemptId: o.attemptId, launchId: o.launchId, exitCode: null, signal: null, message: `node ${this.name} has no member of this job running (it ended)` });
        return;
      }
      this.daemonStart(r, o.launchId, o.command);
    } else if (o.type === 'kill') {
      const d = g?.daemons.get(o.launchId);
      if (d) {
        d.killed = true;
        d.handle?.kill('canceled');
      }
    } else {
      const reply = g?.replies.get(o.launchId);
      if (!reply || !g) return;
      g.replies.delete(o.launchId);
      if (o.message) reply.message(`warren: ${o.message}`);
      reply.exit(hookStatus(o.exitCode, o.signal));
    }
  }

  /** Directories of the volumes a unit touches (made on first use). */
  private volumeDirs(t: TaskAssignment): Map<string, string> {
    const dirs = new Map<string, string>();
    const done = this.preparedOf(t.workflowId);
    for (const v of t.volumes) {
      const dir = volumeDir(this.opts.home, this.runDir(t.workflowId), v);
      if (!done.has(`vol:${dir}`)) {
        mkdirSync(dir, { recursive: true });
        done.add(`vol:${dir}`);
      }
      dirs.set(v.name, dir);
    }
    return dirs;
  }

  private preparedOf(workflowId: string): Set<string> {
    let s = this.prepared.get(workflowId);
    if (!s) {
      // Keep the memo bounded: a long-lived agent sees many workflows.
      if (this.prepared.size > 256) this.prepared.delete(this.prepared.keys().next().value!);
      s = new Set();
      this.prepared.set(workflowId, s);
    }
    return s;
  }

  /** The identity a task runs as: the user's account on this node (null: the agent's own). */
  private identity(t: TaskAssignment): Account | null {
    if (!t.user) return null;
    const name = t.user.unixUser;
    if (name === ownAccount()) return null;
    const acc = lookupAccount(name);
    if (!acc) {
      throw new WarrenError('AGENT_NO_ACCOUNT', `user ${t.user.name} maps to the Unix account ${name}, which node ${this.name} does not have`, {
        hint: `create the account on the node (or in its directory service), or map the user to another: \`warren user add ${t.user.name} --unix-user NAME\``,
        details: { node: this.name, user: t.user.name, unixUser: name },
      });
    }
    if (process.getuid?.() !== 0 && acc.uid !== process.getuid?.()) {
      throw new WarrenError('AGENT_NO_ACCOUNT', `the agent on ${this.name} runs as ${ownAccount()} and cannot start jobs as ${name}`, {
        hint: 'run `warren agent` as root on a shared node (jobs then run as their users), or map the user to the agent\'s account',
        details: { node: this.name, user: t.user.name, unixUser: name },
      });
    }
    return acc;
  }

  /** The runtime's request for a job; `gpus`: the GPU indexes it holds on this node. */
  private launchRequest(t: TaskAssignment, gpus: number[] = []): LaunchRequest {
    const spec = t.job as JobSpec;
    const runDir = this.runDir(t.workflowId);
    const who = this.identity(t);
    const own = (p: string): void => {
      if (who) chownSync(p, who.uid, who.gid);
    };
    const done = this.preparedOf(t.workflowId);
    if (!done.has('dirs')) {
      mkdirSync(join(runDir, 'logs'), { recursive: true });
      mkdirSync(join(runDir, 'work'), { recursive: true });
      done.add('dirs');
    }
    const volumeDirs = this.volumeDirs(t);
    if (who) for (const d of volumeDirs.values()) own(d);
    const mounts = spec.mounts.map((m) => ({ host: volumeDirs.get(m.volume)!, target: m.location, readOnly: m.readOnly }));
    const simulate = t.simulate !== undefined || t.sleepSec !== undefined;
    const container = spec.image !== undefined && !simulate;
    let argv: string[];
    if (simulate) {
      argv = ['sleep', String(Math.max(0, t.sleepSec ?? (spec.estimateSec ?? 0) * (t.simulate ?? 1)))];
    } else if (spec.script !== undefined) {
      const path = join(runDir, 'scripts', safe(spec.name));
      if (!done.has(`script:${spec.name}`)) {
        mkdirSync(join(runDir, 'scripts'), { recursive: true });
        writeFileSync(path, spec.script, { mode: 0o755 });
        done.add(`script:${spec.name}`);
      }
      argv = [path, ...spec.args];
    } else {
      argv = [...(spec.command ?? []), ...spec.args];
    }
    // Host process jobs see each volume at its host directory (exported as
    // WARREN_VOLUME_<NAME>); containers see it at its `location`.
    const env: Record<string, string> = {};
    if (!container && this.opts.inheritEnv !== false && !who) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    if (who) Object.assign(env, { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: who.home, USER: who.name, LOGNAME: who.name });
    for (const m of spec.mounts) env[`WARREN_VOLUME_${m.volume.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`] = container ? m.location : volumeDirs.get(m.volume)!;
    Object.assign(env, spec.env);
    env.WARREN_WORKFLOW_ID = env.FB_WORKFLOW_ID = t.workflowId;
    env.WARREN_JOB = env.WARREN_JOB_NAME = env.FB_JOB_NAME = spec.name;
    env.WARREN_ACCOUNT_ID = env.FB_ACCOUNT_ID = t.user?.name ?? ownAccount();
    // The workflow's services that are ready (and the service itself): where they are.
    const here = (l: { host: string; node?: string }): string => (l.node !== undefined && l.node === this.name ? '127.0.0.1' : l.host);
    const others = (t.services ?? []).map((l) => ({ ...l, host: here(l) }));
    const self = spec.service ? { name: spec.name, spec: spec.serviceSpec ?? { ports: [], endpoints: [], persist: false }, host: this.serviceHost } : null;
    Object.assign(env, serviceEnv(self, others));
    env.WARREN_ATTEMPT = String(t.attempt);
    env.WARREN_ATTEMPT_ID = t.attemptId;
    env.WARREN_NODE = this.name;
    if (t.task !== null) {
      env.WARREN_TASK_ID = String(t.task);
      env.FB_TASK_ID = String(t.task);
    }
    if (gpus.length) {
      // A host process sees the node's numbering; a container sees only its GPUs (the
      // container runtime sets these to what it passes through).
      env.WARREN_GPUS = gpus.join(',');
      if (!container) env.CUDA_VISIBLE_DEVICES = env.NVIDIA_VISIBLE_DEVICES = gpus.join(',');
    }
    let cwd: string;
    const toHost = (p: string): string => {
      for (const m of mounts) if (p === m.target || p.startsWith(m.target.endsWith('/') ? m.target : m.target + '/')) return m.host + p.slice(m.target.length);
      return p;
    };
    if (spec.cwd !== undefined) cwd = container ? spec.cwd : toHost(spec.cwd);
    else if (mounts.length > 0) cwd = container ? mounts[0]!.target : mounts[0]!.host;
    else {
      cwd = join(runDir, 'work', safe(spec.name));
      if (!done.has(`cwd:${spec.name}`)) {
        if (!existsSync(cwd)) mkdirSync(cwd, { recursive: true });
        own(cwd);
        done.add(`cwd:${spec.name}`);
      }
    }
    // Inline files, written before it starts; and in a container, NAME.svc for the services.
    if (spec.files && Object.keys(spec.files).length > 0) {
      const root = join(runDir, 'files', t.task === null ? safe(spec.name) : `${safe(spec.name)}.${t.task}`);
      const binds = writeJobFiles(spec, root, cwd, mounts, container, who);
      mounts.push(...binds);
      if (!container) env.WARREN_FILES = root;
    }
    if (container && (others.length > 0 || self)) {
      const dir = join(runDir, 'hosts');
      mkdirSync(dir, { recursive: true });
      const path = join(dir, safe(t.attemptId));
      let base = '';
      try {
        base = readFileSync('/etc/hosts', 'utf8');
      } catch {
        base = '127.0.0.1\tlocalhost\n';
      }
      if (base && !base.endsWith('\n')) base += '\n';
      writeFileSync(path, base + hostsLines([...(self ? [{ name: self.name, host: '127.0.0.1' }] : []), ...others]), { mode: 0o644 });
      mounts.push({ host: path, target: '/etc/hosts', readOnly: true });
    }
    const logs = logPaths(runDir, spec.name, t.task);
    if (t.attempt > 1) appendFileSync(logs.err, `--- warren: attempt ${t.attempt} ---\n`);
    return {
      id: t.attemptId,
      argv,
      env,
      cwd,
      stdoutPath: logs.out,
      stderrPath: logs.err,
      timeoutSec: spec.policy.timeoutSec,
      memoryBytes: spec.resources.memoryBytes,
      cores: spec.resources.cores,
      mounts,
      ...(who ? { user: { uid: who.uid, gid: who.gid, groups: who.groups, name: who.name } } : {}),
      // A simulated run replays estimates as host sleeps: no image is needed.
      container:
        spec.image && container
          ? {
              image: spec.image.uri,
              hostname: spec.multinode ? this.name : spec.name,
              ...(gpus.length ? { gpus } : {}),
              ...this.registryAuth(spec.image.secret),
              ...this.imageDecryption(spec.image.decryptionSecret),
              ...(spec.image.binds?.length ? { binds: spec.image.binds } : {}),
              ...(spec.image.overlays?.length ? { overlays: spec.image.overlays } : {}),
            }
          : undefined,
    };
  }

  /** Registry credentials for `image.secret` (username/password or token), resolved on the node. */
  private registryAuth(secret: string | undefined): { auth?: { username: string; password: string } | { token: string } } {
    if (!secret) return {};
    const s = (this.opts.secrets ?? this.opts.data?.secrets)?.(secret);
    if (s?.token) return { auth: { token: s.token } };
    if (s?.username !== undefined && s.password !== undefined) return { auth: { username: s.username, password: s.password } };
    throw new WarrenError('RUN_SECRET_NOT_FOUND', `image secret ${secret} has no username/password or token`, {
      hint: 'put {"username": ..., "password": ...} or {"token": ...} in $WARREN_HOME/secrets/NAME.json (see docs/data.md), or use `warren registry login`',
    });
  }

  /**
   * The key of an encrypted SIF for `image.decryptionSecret`, resolved on the node: the secret's
   * `passphrase` is a passphrase; its `key` is an RSA private key when it holds a PEM
   * `PRIVATE KEY` block, else a passphrase (docs/encryption.md). Never logged.
   */
  private imageDecryption(secret: string | undefined): { decryption?: { key?: string; passphrase?: string } } {
    if (!secret) return {};
    const s = (this.opts.secrets ?? this.opts.data?.secrets)?.(secret);
    if (s?.passphrase !== undefined && s.passphrase !== '') return { decryption: { passphrase: s.passphrase } };
    const k = s?.key ?? s?.privateKey;
    if (k !== undefined && k !== '') return { decryption: /-----BEGIN (?:RSA |ENCRYPTED )?PRIVATE KEY-----/.test(k) ? { key: k } : { passphrase: k } };
    throw new WarrenError('RUN_SECRET_NOT_FOUND', `image decryption secret ${secret} ${s ? 'has no "key" or "passphrase"' : 'is not defined'}`, {
      hint: 'put {"key": "-----BEGIN PRIVATE KEY-----..."} (the RSA private key) or {"passphrase": "..."} in $WARREN_HOME/secrets/NAME.json, or set WARREN_SECRET_NAME_KEY / WARREN_SECRET_NAME_PASSPHRASE (docs/encryption.md)',
    });
  }

  /** Ingress of one volume, or the workflow's egress, run as a unit. */
  private runData(r: Running, release: (info: ExitInfo, failure?: WarrenError) => void): void {
    const t = r.entry.task;
    const ac = new AbortController();
    r.abort = ac;
    const t0 = Date.now();
    const dataOpts: DataOptions = {
      cacheDir: join(this.opts.home, 'cache', 'data'),
      ...(this.opts.secrets ? { secrets: this.opts.secrets } : {}),
      ...this.opts.data,
      signal: ac.signal,
      onProgress: (p) => this.listener?.progress?.(t.attemptId, p),
    };
    queueMicrotask(() => this.listener?.started({ attemptId: t.attemptId, pid: null, cgroup: null, at: Date.now() }));
    const tx = this.opts.transfers;
    const work = async (): Promise<void> => {
      if (r.entry.hooks.durable) await r.entry.hooks.durable({ pid: null, cgroup: null });
      if (!tx) throw new WarrenError('DATA_UNAVAILABLE', 'this agent has no data mover', { hint: 'this is a bug: the agent is always composed with one' });
      const dirs = this.volumeDirs(t);
      if (t.kind === 'ingress') {
        const v = t.volumes.find((x) => x.name === t.name)!;
        for (const x of v.ingress) await tx.ingress(x, dirs.get(v.name)!, dataOpts);
      } else {
        for (const v of t.volumes) for (const x of v.egress) await tx.egress(x, dirs.get(v.name)!, dataOpts);
      }
    };
    work().then(
      () => release({ exitCode: 0, signal: null, reason: 'exit', durationMs: Date.now() - t0 }),
      (e: unknown) => {
        const err = e as WarrenError;
        const message = err.hint ? `${err.message} (hint: ${err.hint})` : String(err.message ?? e);
        release({ exitCode: null, signal: null, reason: ac.signal.aborted ? 'canceled' : 'error', message, durationMs: Date.now() - t0 }, isWarrenError(e) ? e : undefined);
      },
    );
  }
}

/** Where a volume lives on a node: persistent ones under volumes/, ephemeral ones in the run. */
export function volumeDir(home: string, runDir: string, v: VolumeSpec): string {
  if (v.kind !== 'persistent') return join(runDir, 'volumes', safe(v.name));
  // volume://user/persistent/x, volume://account/persistent/x and a machine class's x are
  // three volumes: the scope and the class are part of the path (user + built-in class:
  // volumes/NAME, where they have always been).
  const name = safe(v.persistentName ?? v.name);
  const cls = v.storageClass ? safe(v.storageClass) : undefined;
  if (v.scope === 'account') return join(home, 'volumes', '@account', cls ?? 'persistent', name);
  return cls ? join(home, 'volumes', '@class', cls, name) : join(home, 'volumes', name);
}

function waitForChange(path: string, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    let w: ReturnType<typeof watch> | null = null;
    const done = (): void => {
      clearTimeout(t);
      w?.close();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    try {
      if (existsSync(path) && statSync(path).isFile()) w = watch(path, done);
    } catch {
      /* polling is enough */
    }
  });
}

/** The status a launch hook exits with for a daemon's end, as a shell reports one: the exit
 *  code, 128 + the signal's number, or 255 when it never ran. */
function hookStatus(exitCode: number | null, signal: string | null): number {
  if (exitCode !== null) return exitCode;
  return signal ? 128 + ((osConstants.signals as Record<string, number>)[signal] ?? 15) : 255;
}

/** The ports a service may be reached at: those it declares, and its readiness probe's. */
export function declaredPorts(spec: JobSpec): number[] {
  const ports = new Set<number>((spec.serviceSpec?.ports ?? []).map((p) => p.port));
  const a = spec.serviceSpec?.probe?.action;
  if (a && a.kind !== 'exec') ports.add(a.port);
  return [...ports].sort((x, y) => x - y);
}

/**
 * Write a job's inline files (`files:` path -> content) before it starts. A path under one of
 * the job's mount locations is written into that volume; any other path: in a container,
 * bind-mounted at the path from `root` (the returned mounts); for a host process, under
 * `root` (exported as WARREN_FILES: `/etc/app.conf` is `$WARREN_FILES/etc/app.conf`). A
 * relative path is relative to the job's working directory. Files whose content starts with
 * `#!` are executable.
 */
export function writeJobFiles(
  spec: JobSpec,
  root: string,
  cwd: string,
  mounts: { host: string; target: string; readOnly: boolean }[],
  container: boolean,
  who: Account | null,
): { host: string; target: string; readOnly: boolean }[] {
  const binds: { host: string; target: string; readOnly: boolean }[] = [];
  for (const [name, content] of Object.entries(spec.files ?? {})) {
    const relative = !name.startsWith('/');
    // A relative path stays under the working directory ('..' cannot climb out of it).
    const p = relative && !container ? posix.normalize(`/${name}`) : posix.normalize(relative ? posix.join(cwd, posix.normalize(`/${name}`)) : name);
    if (p === '/' || name.endsWith('/') || name.length === 0) {
      throw new WarrenError('RUN_JOB_FILE', `job ${spec.name}: file "${name}" names a directory, not a file`, { hint: 'give each file a path with a file name, e.g. /etc/app/config.yaml' });
    }
    let host: string;
    // Into a volume the job mounts (read-only ones are left alone: the file is bound over them).
    const m = relative && !container ? undefined : mounts.find((x) => !(container && x.readOnly) && (p === x.target || p.startsWith(x.target.endsWith('/') ? x.target : `${x.target}/`)));
    if (relative && !container) host = join(cwd, p);
    else if (m) host = join(m.host, p.slice(m.target.length));
    else {
      host = join(root, p);
      if (container) binds.push({ host, target: p, readOnly: false });
    }
    try {
      mkdirSync(dirname(host), { recursive: true });
      writeFileSync(host, content, { mode: content.startsWith('#!') ? 0o755 : 0o644 });
      if (who) chownSync(host, who.uid, who.gid);
    } catch (e) {
      throw new WarrenError('RUN_JOB_FILE', `job ${spec.name}: cannot write file ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
        hint: 'check the path: it must not be a directory of the image or a volume, nor under a read-only mount',
      });
    }
  }
  return binds;
}

/** Run a command as a host job would (its user, environment and working directory), bounded: exec probes of host services. */
function hostExec(req: LaunchRequest, argv: string[], timeoutMs: number): Promise<{ exitCode: number | null; output: string; timedOut?: boolean }> {
  return new Promise((resolve) => {
    if (argv.length === 0) return resolve({ exitCode: null, output: 'the probe has no command' });
    const env = { ...req.env };
    env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
    execFile(argv[0]!, argv.slice(1), { env, cwd: req.cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20, ...(req.user ? { uid: req.user.uid, gid: req.user.gid } : {}) }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; killed?: boolean }) | null;
      const output = `${String(stdout)}${String(stderr)}`.slice(-4096);
      if (!e) return resolve({ exitCode: 0, output });
      if (e.killed) return resolve({ exitCode: null, output, timedOut: true });
      resolve({ exitCode: typeof e.code === 'number' ? e.code : null, output: output || e.message });
    });
  });
}
