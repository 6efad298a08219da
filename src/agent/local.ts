// A node agent: admits tasks against the node's cores and memory, starts them on the
// right runtime (process or container), and reports when they start and end. The same
// agent runs in-process for `warren run` and, later, as a daemon on each cluster node.

import { availableParallelism, totalmem } from 'node:os';
import { WarrenError } from '../common/index.js';
import type { ExitInfo, LaunchRequest, RunningTask, Runtime } from '../runtime/index.js';

export interface AgentTask {
  /** Unique id of this attempt. */
  id: string;
  request: LaunchRequest;
  cores: number;
  memoryBytes: number;
  /** Takes the whole node. */
  exclusive: boolean;
}

export interface AgentListener {
  started(id: string, pid: number | undefined): void;
  exited(id: string, info: ExitInfo): void;
}

export interface LocalAgentOptions {
  /** Cores this agent may use (default: all the machine has). */
  cores?: number;
  /** Memory this agent may hand out, bytes (default: the machine's total). */
  memoryBytes?: number;
  process: Runtime;
  container?: Runtime;
}

export class LocalAgent {
  readonly cores: number;
  readonly memoryBytes: number;
  private usedCores = 0;
  private usedMemory = 0;
  private exclusiveRunning = false;
  private readonly queue: AgentTask[] = [];
  private readonly running = new Map<string, { task: AgentTask; handle: RunningTask | null; killed: 'canceled' | 'timeout' | null }>();
  private listener: AgentListener | null = null;

  constructor(private readonly opts: LocalAgentOptions) {
    this.cores = Math.max(1, Math.floor(opts.cores ?? availableParallelism()));
    this.memoryBytes = opts.memoryBytes ?? totalmem();
  }

  setListener(l: AgentListener): void {
    this.listener = l;
  }

  /** Would this task ever fit on this node? Throws a WarrenError saying why not. */
  checkFits(name: string, cores: number, memoryBytes: number, needsContainer: boolean): void {
    if (cores > this.cores) {
      throw new WarrenError('AGENT_NOT_ENOUGH_CORES', `${name} needs ${cores} cores but this node has ${this.cores}`, {
        hint: `lower resource.cpu.cores to at most ${this.cores}, raise --cores, or run it on a larger node or cluster`,
      });
    }
    if (memoryBytes > this.memoryBytes) {
      throw new WarrenError(
        'AGENT_NOT_ENOUGH_MEMORY',
        `${name} needs ${(memoryBytes / 2 ** 30).toFixed(1)} GiB of memory but this node has ${(this.memoryBytes / 2 ** 30).toFixed(1)} GiB`,
        { hint: 'lower resource.memory.size (mind `by-core`), or run it on a larger node' },
      );
    }
    if (needsContainer && !this.opts.container) {
      throw new WarrenError('AGENT_NO_CONTAINER_RUNTIME', `${name} names an image but this node has no container runtime`, {
        hint: 'install runc (apt-get install runc), or remove `image:` to run the job as a host process',
      });
    }
  }

  submit(task: AgentTask): void {
    this.queue.push(task);
    this.pump();
  }

  /** Stop a queued or running task. */
  kill(id: string, reason: 'canceled' | 'timeout'): void {
    const qi = this.queue.findIndex((t) => t.id === id);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      this.listener?.exited(id, { exitCode: null, signal: null, reason: 'canceled', durationMs: 0 });
      return;
    }
    const r = this.running.get(id);
    if (!r) return;
    r.killed = reason;
    r.handle?.kill(reason);
  }

  get load(): { usedCores: number; queued: number; running: number } {
    return { usedCores: this.usedCores, queued: this.queue.length, running: this.running.size };
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
        ? this.running.size === 0
        : this.usedCores + t.cores <= this.cores && this.usedMemory + t.memoryBytes <= this.memoryBytes;
      if (!fits) {
        if (t.exclusive) return; // do not starve an exclusive job by backfilling around it
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.start(t);
    }
  }

  private start(t: AgentTask): void {
    const cores = t.exclusive ? this.cores : t.cores;
    this.usedCores += cores;
    this.usedMemory += t.memoryBytes;
    if (t.exclusive) this.exclusiveRunning = true;
    const runtime = t.request.container ? this.opts.container! : this.opts.process;
    const entry: { task: AgentTask; handle: RunningTask | null; killed: 'canceled' | 'timeout' | null } = { task: t, handle: null, killed: null };
    this.running.set(t.id, entry);
    const release = (info: ExitInfo): void => {
      this.running.delete(t.id);
      this.usedCores -= cores;
      this.usedMemory -= t.memoryBytes;
      if (t.exclusive) this.exclusiveRunning = false;
      this.listener?.exited(t.id, info);
      this.pump();
    };
    const go = (): void => {
      const h = runtime.launch(t.request);
      entry.handle = h;
      if (entry.killed) h.kill(entry.killed);
      if (h.started) {
        void h.started.then((pid) => {
          if (pid !== null) this.listener?.started(t.id, pid);
        });
      } else this.listener?.started(t.id, h.pid);
      void h.exited.then(release);
    };
    if (runtime.check) {
      runtime.check(t.request).then(go, (e: unknown) => {
        const err = e as WarrenError;
        release({ exitCode: null, signal: null, reason: 'spawn-error', message: err.hint ? `${err.message} (${err.hint})` : err.message, durationMs: 0 });
      });
    } else go();
  }
}
