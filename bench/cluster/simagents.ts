// Many lightweight agents in one process, for the cluster benchmarks: each is a real
// AgentDaemon (its own key, join, mutual TLS with its own undici pool, heartbeats, the long
// poll, batched reports) over a simulated executor that "runs" a task by reporting it started
// at once and exited after `taskMs` (no process). The server sees N real agents.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import { AgentDaemon } from '../../src/agent/remote.js';
import {
  AGENT_PROTOCOL,
  type Agent,
  type AdmissionRequest,
  type AttemptExited,
  type AgentListener,
  type AttemptState,
  type LogRequest,
  type NodeInfo,
  type TaskAssignment,
} from '../../src/agent/index.js';

export interface SimAgentsOptions {
  serverUrl: string;
  /** The cluster CA (PEM) the agents trust the server with when they join. */
  caPem: string;
  count: number;
  /** Heartbeat period until the server says otherwise (the server's registry timers win). */
  heartbeatMs?: number;
  /** One join token per agent, or... */
  tokens?: string[];
  /** ...one token with at least `count` uses. */
  token?: string;
  /** Node names are PREFIX0001... (default `sim`). */
  namePrefix?: string;
  /** Where their data directories go (default: a temporary directory, removed by stop()). */
  dataRoot?: string;
  cores?: number;
  memoryBytes?: number;
  /** How long a simulated task runs (default 0: it exits at once). */
  taskMs?: number;
  /** Long poll asked for (default 25 s). */
  pollWaitMs?: number;
  /** Joins in flight at once (default 16). */
  joinConcurrency?: number;
}

export interface SimulatedAgents {
  daemons: AgentDaemon[];
  agents: SimExecutor[];
  /** Tasks started and exited so far, over all agents. */
  counts(): { started: number; exited: number; connected: number; pendingReports: number };
  stop(): Promise<void>;
}

/** An executor without processes: started at once, exited after taskMs. */
export class SimExecutor implements Agent {
  private listener: AgentListener | null = null;
  private readonly running = new Map<string, { startedAt: number; timer: NodeJS.Timeout | null }>();
  /** Recent exits (what recover() returns besides the running ones), bounded. */
  private readonly exits = new Map<string, AttemptExited>();
  started = 0;
  exited = 0;

  constructor(private readonly name: string, private readonly cores: number, private readonly memoryBytes: number, private readonly taskMs: number) {}

  info(): NodeInfo {
    return { name: this.name, cores: this.cores, memoryBytes: this.memoryBytes, gpus: [], labels: { sim: 'true' }, platform: 'linux/amd64', containers: false, agentVersion: 'sim', protocol: { ...AGENT_PROTOCOL } };
  }

  admit(_req: AdmissionRequest): WarrenError | null {
    return null;
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  submit(task: TaskAssignment): void {
    const id = task.attemptId;
    if (this.running.has(id) || this.exits.has(id)) return;
    const startedAt = Date.now();
    const entry = { startedAt, timer: null as NodeJS.Timeout | null };
    this.running.set(id, entry);
    setImmediate(() => {
      this.started++;
      this.listener?.started({ attemptId: id, pid: null, cgroup: null, at: startedAt });
      entry.timer = setTimeout(() => this.finish(id, 'exit', 0), this.taskMs);
    });
  }

  private finish(id: string, reason: AttemptExited['reason'], exitCode: number | null): void {
    const r = this.running.get(id);
    if (!r) return;
    if (r.timer) clearTimeout(r.timer);
    this.running.delete(id);
    const ev: AttemptExited = { attemptId: id, exitCode, signal: null, reason, durationMs: Date.now() - r.startedAt, at: Date.now() };
    this.exits.set(id, ev);
    if (this.exits.size > 1000) this.exits.delete(this.exits.keys().next().value!);
    this.exited++;
    this.listener?.exited(ev);
  }

  kill(attemptId: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    this.finish(attemptId, reason === 'timeout' ? 'timeout' : 'canceled', null);
  }

  async recover(): Promise<AttemptState[]> {
    return [
      ...[...this.running].map(([attemptId, r]) => ({ attemptId, state: 'running' as const, pid: null, cgroup: null, startedAt: r.startedAt })),
      ...[...this.exits.values()].map((exit) => ({ attemptId: exit.attemptId, state: 'exited' as const, pid: null, cgroup: null, startedAt: null, exit })),
    ];
  }

  async *logs(_req: LogRequest): AsyncIterable<Uint8Array> {
    yield Buffer.from(`simulated log of ${this.name}\n`);
  }

  get load(): { usedCores: number; queued: number; running: number } {
    return { usedCores: this.running.size, queued: 0, running: this.running.size };
  }

  async close(): Promise<void> {
    for (const id of [...this.running.keys()]) this.kill(id, 'canceled');
  }
}

/** Start `count` agents (they join with the tokens, then run until stop()). */
export async function startSimulatedAgents(opts: SimAgentsOptions): Promise<SimulatedAgents> {
  if (!opts.token && (!opts.tokens || opts.tokens.length < opts.count)) throw new Error('give one token per agent (tokens) or one token with enough uses (token)');
  const ownRoot = opts.dataRoot === undefined;
  const root = opts.dataRoot ?? mkdtempSync(join(tmpdir(), 'warren-simagents-'));
  const prefix = opts.namePrefix ?? 'sim';
  const width = Math.max(4, String(opts.count).length);
  const daemons: AgentDaemon[] = [];
  const agents: SimExecutor[] = [];
  for (let i = 0; i < opts.count; i++) {
    const name = `${prefix}${String(i + 1).padStart(width, '0')}`;
    const agent = new SimExecutor(name, opts.cores ?? 32, opts.memoryBytes ?? 128 * 2 ** 30, opts.taskMs ?? 0);
    agents.push(agent);
    daemons.push(
      new AgentDaemon({
        serverUrl: opts.serverUrl,
        name,
        dataDir: join(root, name),
        agent,
        caPem: opts.caPem,
        token: opts.tokens?.[i] ?? opts.token!,
        timers: { heartbeatMs: opts.heartbeatMs ?? 5_000, pollWaitMs: opts.pollWaitMs ?? 25_000 },
      }),
    );
  }
  const stop = async (): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(agents.map((a) => a.close()));
    if (ownRoot) rmSync(root, { recursive: true, force: true });
  };
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < daemons.length) await daemons[next++]!.start();
    };
    await Promise.all(Array.from({ length: Math.min(opts.joinConcurrency ?? 16, daemons.length) }, worker));
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    daemons,
    agents,
    counts: () => {
      let started = 0;
      let exited = 0;
      let connected = 0;
      let pendingReports = 0;
      for (const a of agents) {
        started += a.started;
        exited += a.exited;
      }
      for (const d of daemons) {
        const s = d.status();
        if (s.connected) connected++;
        pendingReports += s.pendingReports;
      }
      return { started, exited, connected, pendingReports };
    },
    stop,
  };
}
