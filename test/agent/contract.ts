// The agent contract suite: every implementation of `Agent` (src/agent/contract.ts) runs
// it — the local agent in-process, and the remote agent (a `warren agent` daemon behind
// the server–agent protocol over mutual TLS).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Agent, AttemptExited, AttemptStarted, TaskAssignment } from '../../src/agent/index.js';
import type { JobSpec } from '../../src/workflow/index.js';
import { job } from '../engine/builders.js';

export interface AgentUnderTest {
  agent: Agent;
  /** Stop everything it started (processes, servers, directories). */
  cleanup(): Promise<void>;
}

let seq = 0;

/** A node-independent task for one job (a fresh workflow id unless given). */
export function taskOf(spec: JobSpec, o: { workflowId?: string; attempt?: number; task?: number | null } = {}): TaskAssignment {
  const workflowId = o.workflowId ?? `wf${Date.now().toString(36)}${(seq++).toString(36)}`;
  const task = o.task ?? null;
  const key = task === null ? `job:${spec.name}` : `job:${spec.name}[${task}]`;
  const attempt = o.attempt ?? 1;
  return { attemptId: `${workflowId}/${key}/${attempt}`, workflowId, key, attempt, kind: 'job', name: spec.name, task, job: spec, volumes: [], term: 1 };
}

/** Collects what an agent reports. */
export class Recorder {
  readonly started: AttemptStarted[] = [];
  readonly exited = new Map<string, AttemptExited>();
  private waits: { n: number; r: () => void }[] = [];
  constructor(agent: Agent) {
    agent.setListener({
      started: (ev) => this.started.push(ev),
      exited: (ev) => {
        assert.ok(!this.exited.has(ev.attemptId), `${ev.attemptId} reported ended twice`);
        this.exited.set(ev.attemptId, ev);
        this.waits = this.waits.filter((w) => (this.exited.size >= w.n ? (w.r(), false) : true));
      },
    });
  }
  /** Resolves once `n` attempts have ended. */
  ended(n: number): Promise<void> {
    if (this.exited.size >= n) return Promise.resolve();
    return new Promise((r) => this.waits.push({ n, r }));
  }
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString('utf8');
}

export function agentContract(name: string, make: () => Promise<AgentUnderTest>): void {
  const withAgent = (title: string, fn: (a: Agent) => Promise<void>, timeout = 30_000) =>
    test(`${name}: ${title}`, { timeout }, async () => {
      const u = await make();
      try {
        await fn(u.agent);
      } finally {
        await u.cleanup();
      }
    });

  withAgent('reports its node: cores, memory, platform, protocol', async (a) => {
    const info = a.info();
    assert.ok(info.cores >= 1 && Number.isInteger(info.cores));
    assert.ok(info.memoryBytes > 0);
    assert.match(info.platform, /^linux\//);
    assert.equal(info.protocol.major, 1);
    assert.ok(info.name.length > 0);
  });

  withAgent('admission: a job larger than the node is refused with the reason and a hint', async (a) => {
    const info = a.info();
    const e = a.admit({ name: 'job big', cores: info.cores + 1, memoryBytes: 0, gpus: 0, container: false });
    assert.equal(e?.code, 'AGENT_NOT_ENOUGH_CORES');
    assert.match(e!.hint ?? '', /at most/);
    assert.equal(a.admit({ name: 'job fat', cores: 1, memoryBytes: info.memoryBytes * 2, gpus: 0, container: false })?.code, 'AGENT_NOT_ENOUGH_MEMORY');
    assert.equal(a.admit({ name: 'job ok', cores: 1, memoryBytes: 0, gpus: 0, container: false }), null);
  });

  withAgent('runs a task: started then exited with its exit code; the log is the job\'s stdout', async (a) => {
    const rec = new Recorder(a);
    const ok = taskOf(job('hello', { command: ['/bin/sh', '-c', 'echo hello from $WARREN_JOB; exit 3'] }));
    const durable: string[] = [];
    a.submit(ok, { durable: async () => void durable.push(ok.attemptId) });
    await rec.ended(1);
    const ex = rec.exited.get(ok.attemptId)!;
    assert.equal(ex.reason, 'exit');
    assert.equal(ex.exitCode, 3);
    assert.deepEqual(durable, [ok.attemptId], 'the attempt was made durable before its command ran');
    assert.ok(rec.started.some((s) => s.attemptId === ok.attemptId));
    const out = await collect(a.logs({ workflowId: ok.workflowId, job: 'hello', task: null, stream: 'stdout' }));
    assert.equal(out, 'hello from hello\n');
  });

  withAgent('the node resolves the task: working directory, task index and attempt variables', async (a) => {
    const rec = new Recorder(a);
    const t = taskOf(job('arr', { command: ['/bin/sh', '-c', 'echo "$WARREN_TASK_ID $WARREN_ATTEMPT $WARREN_ATTEMPT_ID"; pwd'], taskArray: { start: 0, end: 9, concurrency: 10 } as never }), { task: 7, attempt: 2 });
    a.submit(t);
    await rec.ended(1);
    assert.equal(rec.exited.get(t.attemptId)!.exitCode, 0);
    const [vars, cwd] = (await collect(a.logs({ workflowId: t.workflowId, job: 'arr', task: 7, stream: 'stdout' }))).trim().split('\n');
    assert.equal(vars, `7 2 ${t.attemptId}`);
    assert.ok(cwd!.includes(t.workflowId), `cwd ${cwd} is in the run's directory`);
  });

  withAgent('a command that cannot start ends with spawn-error and a structured failure', async (a) => {
    const rec = new Recorder(a);
    const t = taskOf(job('missing', { command: ['/no/such/program-here'] }));
    a.submit(t);
    await rec.ended(1);
    const ex = rec.exited.get(t.attemptId)!;
    assert.ok(ex.reason === 'spawn-error' || (ex.reason === 'exit' && ex.exitCode === 127), JSON.stringify(ex));
  });

  withAgent('kill stops a running task (reason canceled) and a queued one', async (a) => {
    const rec = new Recorder(a);
    const cores = a.info().cores;
    const long = taskOf(job('long', { command: ['/bin/sleep', '30'], resources: { cores, affinity: 'core', threads: false, memoryByCore: false, devices: {}, exclusive: false } }));
    const queued = taskOf(job('queued', { command: ['/bin/sleep', '30'] }));
    a.submit(long);
    a.submit(queued);
    for (let i = 0; i < 200 && !rec.started.some((s) => s.attemptId === long.attemptId); i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(a.load.queued, 1, 'the second task waits for a core');
    a.kill(queued.attemptId, 'canceled');
    a.kill(long.attemptId, 'canceled');
    await rec.ended(2);
    assert.equal(rec.exited.get(long.attemptId)!.reason, 'canceled');
    assert.equal(rec.exited.get(queued.attemptId)!.reason, 'canceled');
    assert.ok(!rec.started.some((s) => s.attemptId === queued.attemptId), 'the queued one never started');
  });

  withAgent('never runs more cores at once than it has; reports each end exactly once', async (a) => {
    const rec = new Recorder(a);
    const cores = a.info().cores;
    const n = cores * 3;
    let running = 0;
    let peak = 0;
    const seen = new Set<string>();
    a.setListener({
      started: (ev) => {
        running++;
        peak = Math.max(peak, running);
        rec.started.push(ev);
      },
      exited: (ev) => {
        assert.ok(!seen.has(ev.attemptId), 'ended once');
        seen.add(ev.attemptId);
        running--;
        rec.exited.set(ev.attemptId, ev);
      },
    });
    const wfid = `wfcap${Date.now().toString(36)}`;
    for (let i = 0; i < n; i++) a.submit(taskOf(job('cap', { command: ['/bin/sleep', '0.1'] }), { workflowId: wfid, task: i }));
    for (let i = 0; i < 400 && seen.size < n; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(seen.size, n);
    assert.ok(peak <= cores, `peak ${peak} > ${cores} cores`);
  });

  withAgent('logs follow: streams what the job writes until it ends', async (a) => {
    const rec = new Recorder(a);
    const t = taskOf(job('talk', { command: ['/bin/sh', '-c', 'echo one; sleep 0.4; echo two'] }));
    a.submit(t);
    for (let i = 0; i < 200 && !rec.started.some((s) => s.attemptId === t.attemptId); i++) await new Promise((r) => setTimeout(r, 10));
    const out = await collect(a.logs({ workflowId: t.workflowId, job: 'talk', task: null, stream: 'stdout', follow: true }));
    assert.equal(out, 'one\ntwo\n');
    await rec.ended(1);
  });
}
