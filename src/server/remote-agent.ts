// The Agent the server's driver uses for a remote node: a proxy to one node of the registry.
// submit makes the attempt durable first (hooks.durable, before anything is sent), then
// queues the assignment for the node's long poll; the node's reports come back through the
// registry's events. A report is given to the listener once (a node that reconnects may send
// one again), and when the node is lost every attempt this proxy sent and has not seen end
// ends as `node-lost`.
import { WarrenError, toWarrenError } from '../common/index.js';
import type {
  Agent,
  AdmissionRequest,
  AttemptExited,
  AgentListener,
  AttemptReady,
  AttemptStarted,
  AttemptState,
  LogRequest,
  NodeInfo,
  SubmitHooks,
  TaskAssignment,
} from '../agent/index.js';
import type { NodeRegistry } from './nodes.js';

interface Inflight {
  cores: number;
  started: boolean;
  /** Killed before it was sent (its attempt row was still being written). */
  killed: 'canceled' | 'timeout' | 'stop-service' | null;
  sent: boolean;
}

export interface RemoteAgentOptions {
  /** How many ended attempt ids are remembered to drop repeated reports (default 100000). */
  rememberEnded?: number;
  /** How long recover() waits for the node's attempt list (default: a heartbeat and the grace). */
  recoverWaitMs?: number;
}

export class RemoteAgent implements Agent {
  private listener: AgentListener | null = null;
  private readonly inflight = new Map<string, Inflight>();
  /** Ended attempt ids, oldest first (a bounded memory of what was reported already). */
  private readonly ended = new Set<string>();
  private readonly rememberEnded: number;
  private closed = false;

  private readonly unwatch: () => void;
  private readonly onReport = (ev: AttemptStarted | AttemptExited, kind: 'started' | 'exited'): void => {
    if (this.closed) return;
    if (kind === 'started') this.started(ev as AttemptStarted);
    else this.exited(ev as AttemptExited);
  };
  private readonly onReady = (ev: AttemptReady): void => {
    if (this.closed || this.ended.has(ev.attemptId)) return;
    this.listener?.ready?.(ev);
  };
  private readonly onLost = (): void => {
    if (this.closed) return;
    const at = Date.now();
    for (const [id, f] of [...this.inflight]) {
      if (!f.sent) continue; // still being made durable: it fails when it is sent
      this.exited({ attemptId: id, exitCode: null, signal: null, reason: 'node-lost', message: `node ${this.node} was lost (no heartbeat within the grace, revoked or deleted)`, durationMs: 0, at });
    }
  };

  constructor(
    private readonly reg: NodeRegistry,
    readonly node: string,
    private readonly opts: RemoteAgentOptions = {},
  ) {
    this.rememberEnded = opts.rememberEnded ?? 100_000;
    this.unwatch = reg.watchNode(node, { report: this.onReport, lost: this.onLost, ready: this.onReady });
  }

  info(): NodeInfo {
    const r = this.reg.get(this.node);
    if (!r) throw new WarrenError('AGENT_NODE_UNKNOWN', `there is no node ${this.node}`, { hint: 'see `warren node ls` for the nodes', details: { node: this.node } });
    return r.info;
  }

  admit(req: AdmissionRequest): WarrenError | null {
    const r = this.reg.get(this.node);
    if (!r) return new WarrenError('AGENT_NODE_UNKNOWN', `there is no node ${this.node}`, { hint: 'see `warren node ls` for the nodes', details: { node: this.node } });
    const info = r.info;
    if (req.cores > info.cores) {
      return new WarrenError('AGENT_NOT_ENOUGH_CORES', `${req.name} needs ${req.cores} cores but node ${this.node} has ${info.cores}`, { hint: `lower resource.cpu.cores to at most ${info.cores}, or run it on a larger node` });
    }
    if (req.memoryBytes > info.memoryBytes) {
      return new WarrenError('AGENT_NOT_ENOUGH_MEMORY', `${req.name} needs ${(req.memoryBytes / 2 ** 30).toFixed(1)} GiB of memory but node ${this.node} has ${(info.memoryBytes / 2 ** 30).toFixed(1)} GiB`, {
        hint: 'lower resource.memory.size (mind `by-core`), or run it on a larger node',
      });
    }
    if (req.gpus > info.gpus.length) {
      return new WarrenError('AGENT_NOT_ENOUGH_GPUS', `${req.name} needs ${req.gpus} GPUs but node ${this.node} has ${info.gpus.length}`, { hint: 'lower the job\'s GPU request, or run it on a node with more GPUs' });
    }
    if (req.container && !info.containers) {
      return new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${req.name} names an image but node ${this.node} has no container runtime`, { hint: 'install runc on the node (apt-get install runc), or remove `image:` to run the job as a host process' });
    }
    return null;
  }

  submit(task: TaskAssignment, hooks?: SubmitHooks): void {
    const id = task.attemptId;
    if (this.inflight.has(id) || this.ended.has(id)) return;
    const f: Inflight = { cores: task.job?.resources.cores ?? 0, started: false, killed: null, sent: false };
    this.inflight.set(id, f);
    const fail = (reason: AttemptExited['reason'], e: unknown, message: string): void => {
      const err = toWarrenError(e);
      this.exited({ attemptId: id, exitCode: null, signal: null, reason, message: `${message}: ${err.message}`, failure: err.toWire(), durationMs: 0, at: Date.now() });
    };
    void (async () => {
      try {
        // The attempt row is written before anything leaves the server.
        await hooks?.durable?.({ pid: null, cgroup: null, node: this.node });
      } catch (e) {
        fail('error', e, `${id} was not sent to node ${this.node}: its attempt could not be recorded`);
        return;
      }
      if (this.closed) return;
      if (f.killed) {
        this.exited({ attemptId: id, exitCode: null, signal: null, reason: 'canceled', message: `${id} was stopped before it was sent to node ${this.node}`, durationMs: 0, at: Date.now() });
        return;
      }
      try {
        this.reg.assign(this.node, task);
        f.sent = true;
      } catch (e) {
        fail('node-lost', e, `${id} could not be sent to node ${this.node}`);
      }
    })();
  }

  kill(attemptId: string, reason: 'canceled' | 'timeout' | 'stop-service'): void {
    const f = this.inflight.get(attemptId);
    if (f && !f.sent) {
      f.killed = reason;
      return;
    }
    this.reg.kill(this.node, attemptId, reason);
  }

  /** The attempt list the node sent when it (re)connected (waits for it a heartbeat and the grace). */
  async recover(): Promise<AttemptState[]> {
    const list = await this.reg.attempts(this.node, this.opts.recoverWaitMs);
    if (!list) {
      throw new WarrenError('AGENT_NODE_UNAVAILABLE', `node ${this.node} did not send its attempts (it is not connected)`, { hint: 'its attempts are reconciled when it connects again; see `warren node ls`', details: { node: this.node } });
    }
    return list;
  }

  logs(req: LogRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    return this.reg.requestLogs(this.node, req, signal);
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  get load(): { usedCores: number; queued: number; running: number } {
    let usedCores = 0;
    let running = 0;
    for (const f of this.inflight.values()) {
      if (f.started) {
        running++;
        usedCores += f.cores;
      }
    }
    return { usedCores, queued: this.inflight.size - running, running };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unwatch();
  }

  private started(ev: AttemptStarted): void {
    if (this.ended.has(ev.attemptId)) return; // a late or repeated start of an ended attempt
    const f = this.inflight.get(ev.attemptId);
    if (f) {
      if (f.started) return;
      f.started = true;
    }
    this.listener?.started({ ...ev, node: this.node });
  }

  private exited(ev: AttemptExited): void {
    if (this.ended.has(ev.attemptId)) return;
    this.inflight.delete(ev.attemptId);
    this.ended.add(ev.attemptId);
    if (this.ended.size > this.rememberEnded) this.ended.delete(this.ended.values().next().value!);
    this.listener?.exited(ev);
  }
}
