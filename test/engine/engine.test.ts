import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Engine, type EngineAction, type EngineEvent } from '../../src/engine/index.js';
import type { Dependency, Workflow } from '../../src/workflow/types.js';
import { job, wf } from './builders.js';
import { Engine as ReferenceEngine } from './reference-engine.js';

const req = (...names: string[]): Dependency[] => names.map((job) => ({ job, condition: 'succeeded' }));

/** One event, then every launch the engine would hand out (an agent with unlimited room). */
function stepAll(e: Engine, ev: EngineEvent): EngineAction[] {
  return [...e.step(ev), ...e.pull(Infinity)];
}

/** Drive an engine with a scripted "agent": every launch runs and exits with `exit(key, attempt)`. */
function simulate(
  w: Workflow,
  exit: (key: string, attempt: number) => number = () => 0,
  opts: { failFast?: boolean; cancelAfter?: number } = {},
): { actions: EngineAction[]; order: string[]; status: string; engine: Engine } {
  const e = new Engine(w, { failFast: opts.failFast, retainFinished: true });
  const all: EngineAction[] = [];
  let now = 0;
  const queue: EngineEvent[] = [{ type: 'start', now }];
  const order: string[] = [];
  const timers: number[] = [];
  let status = 'running';
  let launches = 0;
  for (let guard = 0; guard < 100_000; guard++) {
    const ev = queue.shift();
    if (!ev) {
      if (timers.length === 0) break;
      timers.sort((a, b) => a - b);
      now = Math.max(now, timers.shift()!);
      queue.push({ type: 'tick', now });
      continue;
    }
    for (const a of stepAll(e, ev)) {
      all.push(a);
      if (a.type === 'launch') {
        order.push(a.key);
        launches++;
        queue.push({ type: 'launched', key: a.key, attempt: a.attempt, now: ++now });
        const code = exit(a.key, a.attempt);
        queue.push({ type: 'exited', key: a.key, attempt: a.attempt, now: ++now, exitCode: code, reason: 'exit' });
        if (opts.cancelAfter !== undefined && launches === opts.cancelAfter) queue.push({ type: 'cancel', now: ++now });
      } else if (a.type === 'timer') timers.push(a.at);
      else if (a.type === 'kill') queue.push({ type: 'exited', key: a.key, attempt: e.unit(a.key)!.attempt, now: ++now, exitCode: null, signal: 'SIGTERM', reason: 'canceled' });
      else if (a.type === 'done') status = a.status;
    }
  }
  return { actions: all, order, status, engine: e };
}

describe('engine', () => {
  test('runs a chain in order and succeeds', () => {
    const r = simulate(wf([job('a'), job('b', { requires: req('a') }), job('c', { requires: req('b') })]));
    assert.deepEqual(r.order, ['a', 'b', 'c']);
    assert.equal(r.status, 'succeeded');
    assert.ok(r.engine.snapshot().every((u) => u.state === 'succeeded'));
  });

  test('dependents of a failed job are skipped; independent jobs still run; workflow fails', () => {
    const r = simulate(wf([job('a'), job('b', { requires: req('a') }), job('c', { requires: req('b') }), job('d')]), (k) => (k === 'a' ? 3 : 0));
    assert.equal(r.status, 'failed');
    const s = Object.fromEntries(r.engine.snapshot().map((u) => [u.key, u]));
    assert.equal(s.a!.state, 'failed');
    assert.equal(s.a!.exitCode, 3);
    assert.equal(s.b!.state, 'skipped');
    assert.equal(s.c!.state, 'skipped');
    assert.match(s.c!.message!, /requirement "b" skipped/);
    assert.equal(s.d!.state, 'succeeded');
  });

  test('fail-fast starts nothing new after a failure', () => {
    const r = simulate(wf([job('a'), job('b', { requires: req('a') }), job('x', { requires: req('a') })]), (k) => (k === 'a' ? 1 : 0), { failFast: true });
    assert.equal(r.status, 'failed');
    assert.deepEqual(r.order, ['a']);
  });

  test('retries with exponential backoff, then succeeds', () => {
    const r = simulate(wf([job('flaky', { policy: { attempts: 3, backoffSec: 2 } }), job('after', { requires: req('flaky') })]), (k, n) =>
      k === 'flaky' && n < 3 ? 1 : 0,
    );
    assert.equal(r.status, 'succeeded');
    assert.deepEqual(r.order, ['flaky', 'flaky', 'flaky', 'after']);
    const timers = r.actions.filter((a) => a.type === 'timer').map((a) => (a as { at: number }).at);
    // exits at t=2 and t=(tick 4000)+2 -> backoffs 2000 then 4000 ms after each exit
    assert.deepEqual(timers, [2 + 2000, 2002 + 2 + 4000]);
    assert.equal(r.engine.unit('flaky')!.attempt, 3);
  });

  test('retries exhausted -> failed', () => {
    const r = simulate(wf([job('bad', { policy: { attempts: 2, backoffSec: 0 } })]), () => 1);
    assert.equal(r.status, 'failed');
    assert.deepEqual(r.order, ['bad', 'bad']);
  });

  test('task array honours concurrency and a dependent waits for all tasks', () => {
    const w = wf([job('arr', { taskArray: { start: 1, end: 6, concurrency: 2 } }), job('merge', { requires: req('arr') })]);
    const e = new Engine(w);
    const launches = (acts: EngineAction[]) => acts.filter((a) => a.type === 'launch').map((a) => (a as { key: string }).key);
    assert.deepEqual(launches(stepAll(e, { type: 'start', now: 0 })), ['arr[1]', 'arr[2]']);
    assert.deepEqual(launches(stepAll(e, { type: 'launched', key: 'arr[1]', attempt: 1, now: 1 })), []);
    assert.deepEqual(launches(stepAll(e, { type: 'exited', key: 'arr[1]', attempt: 1, now: 2, exitCode: 0, reason: 'exit' })), ['arr[3]']);
    for (const k of ['arr[2]', 'arr[3]']) stepAll(e, { type: 'exited', key: k, attempt: 1, now: 3, exitCode: 0, reason: 'exit' });
    for (const k of ['arr[4]', 'arr[5]']) assert.equal(e.unit(k)!.state, 'starting');
    stepAll(e, { type: 'exited', key: 'arr[4]', attempt: 1, now: 4, exitCode: 0, reason: 'exit' });
    stepAll(e, { type: 'exited', key: 'arr[5]', attempt: 1, now: 4, exitCode: 0, reason: 'exit' });
    assert.equal(e.unit('merge')!.state, 'pending');
    assert.deepEqual(launches(stepAll(e, { type: 'exited', key: 'arr[6]', attempt: 1, now: 5, exitCode: 0, reason: 'exit' })), ['merge']);
  });

  test('cancel kills running units and cancels the rest', () => {
    const w = wf([job('a'), job('b'), job('c', { requires: req('a', 'b') })]);
    const e = new Engine(w);
    stepAll(e, { type: 'start', now: 0 });
    stepAll(e, { type: 'launched', key: 'a', attempt: 1, now: 1 });
    const acts = stepAll(e, { type: 'cancel', now: 2 });
    assert.deepEqual(
      acts.filter((a) => a.type === 'kill').map((a) => (a as { key: string }).key),
      ['a', 'b'],
    );
    assert.equal(e.unit('c')!.state, 'canceled');
    stepAll(e, { type: 'exited', key: 'a', attempt: 1, now: 3, exitCode: null, signal: 'SIGTERM', reason: 'canceled' });
    const last = stepAll(e, { type: 'exited', key: 'b', attempt: 1, now: 3, exitCode: null, signal: 'SIGTERM', reason: 'canceled' });
    assert.deepEqual(last.at(-1), { type: 'done', status: 'canceled' });
    assert.ok(e.snapshot().every((u) => u.state === 'canceled'));
  });

  test('timeout exit reason is a failure and is retried', () => {
    const e = new Engine(wf([job('slow', { policy: { attempts: 2, backoffSec: 0, timeoutSec: 1 } })]));
    stepAll(e, { type: 'start', now: 0 });
    const a = stepAll(e, { type: 'exited', key: 'slow', attempt: 1, now: 1000, exitCode: null, signal: 'SIGKILL', reason: 'timeout' });
    assert.ok(a.some((x) => x.type === 'event' && /failed \(timed out\), retrying in 0.0s \(attempt 2 of 2\)/.test(x.message)));
    const t = stepAll(e, { type: 'tick', now: 1000 });
    assert.ok(t.some((x) => x.type === 'launch' && x.attempt === 2));
  });

  test('stale events (old attempt) are ignored', () => {
    const e = new Engine(wf([job('a', { policy: { attempts: 2, backoffSec: 0 } })]));
    stepAll(e, { type: 'start', now: 0 });
    stepAll(e, { type: 'exited', key: 'a', attempt: 1, now: 1, exitCode: 1, reason: 'exit' });
    stepAll(e, { type: 'tick', now: 1 });
    assert.deepEqual(stepAll(e, { type: 'exited', key: 'a', attempt: 1, now: 2, exitCode: 0, reason: 'exit' }), []);
    assert.equal(e.unit('a')!.state, 'starting');
  });

  test('conditions: finished runs after a failure, failed runs only on failure', () => {
    const w = wf([
      job('a'),
      job('cleanup', { requires: [{ job: 'a', condition: 'finished' }] }),
      job('onfail', { requires: [{ job: 'a', condition: 'failed' }] }),
      job('next', { requires: req('a') }),
    ]);
    const r = simulate(w, (k) => (k === 'a' ? 1 : 0));
    const s = Object.fromEntries(r.engine.snapshot().map((u) => [u.key, u.state]));
    assert.deepEqual(s, { a: 'failed', cleanup: 'succeeded', onfail: 'succeeded', next: 'skipped' });
    const ok = simulate(w);
    assert.equal(ok.engine.unit('onfail')!.state, 'skipped');
    assert.equal(ok.status, 'succeeded');
  });

  test('a service starts first, a job waits for it running, and it is stopped at the end', () => {
    const w = wf([job('db', { service: true }), job('client', { requires: [{ job: 'db', condition: 'running' }] })]);
    const e = new Engine(w);
    const a0 = stepAll(e, { type: 'start', now: 0 });
    assert.deepEqual(a0.filter((a) => a.type === 'launch').map((a) => (a as { key: string }).key), ['db']);
    const a1 = stepAll(e, { type: 'launched', key: 'db', attempt: 1, now: 1 });
    assert.deepEqual(a1.filter((a) => a.type === 'launch').map((a) => (a as { key: string }).key), ['client']);
    stepAll(e, { type: 'launched', key: 'client', attempt: 1, now: 2 });
    const a2 = stepAll(e, { type: 'exited', key: 'client', attempt: 1, now: 3, exitCode: 0, reason: 'exit' });
    assert.deepEqual(a2.filter((a) => a.type === 'kill'), [{ type: 'kill', key: 'db', reason: 'stop-service' }]);
    const a3 = stepAll(e, { type: 'exited', key: 'db', attempt: 1, now: 4, exitCode: null, signal: 'SIGTERM', reason: 'stopped' });
    assert.deepEqual(a3.at(-1), { type: 'done', status: 'succeeded' });
  });

  test('ingress runs before jobs that mount the volume; egress after all jobs succeed', () => {
    const w = wf([job('a', { mounts: [{ volume: 'v', location: '/v', readOnly: false }] }), job('b')], {
      volumes: {
        v: {
          name: 'v', reference: 'volume://user/ephemeral', kind: 'ephemeral',
          ingress: [{ source: { uri: 'http://x/y' }, destination: { uri: 'file://y' } }],
          egress: [{ source: { uri: 'file://y' }, destination: { uri: 'file:///tmp/y' } }],
        },
      },
    });
    const r = simulate(w);
    assert.deepEqual(r.order, ['@ingress/v', 'b', 'a', '@egress']);
    assert.equal(r.status, 'succeeded');
  });

  test('resume keeps succeeded units and re-runs the rest', () => {
    const w = wf([job('a'), job('b', { requires: req('a') })]);
    const first = simulate(w, (k) => (k === 'b' ? 1 : 0));
    assert.equal(first.status, 'failed');
    const prev = new Map(first.engine.snapshot().map((u) => [u.key, u]));
    const e = new Engine(w, { previous: prev, retainFinished: true });
    const acts = stepAll(e, { type: 'start', now: 100 });
    const launches = acts.filter((a) => a.type === 'launch');
    assert.deepEqual(launches, [{ type: 'launch', key: 'b', kind: 'job', job: 'b', task: null, attempt: 2 }]);
  });

  test('workflow timeout cancels running work and fails the workflow', () => {
    const e = new Engine(wf([job('a')], { policy: { timeoutSec: 5 } }));
    const a0 = stepAll(e, { type: 'start', now: 0 });
    assert.ok(a0.some((a) => a.type === 'timer' && a.at === 5000));
    const a1 = stepAll(e, { type: 'tick', now: 5000 });
    assert.ok(a1.some((a) => a.type === 'kill' && a.reason === 'timeout'));
    const a2 = stepAll(e, { type: 'exited', key: 'a', attempt: 1, now: 5001, exitCode: null, reason: 'canceled' });
    assert.deepEqual(a2.at(-1), { type: 'done', status: 'failed' });
  });
});

describe('engine properties', () => {
  test('random DAGs: a job starts only after all requirements succeeded, once per attempt', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 25 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 60 }),
        fc.array(fc.nat({ max: 3 }), { minLength: 25, maxLength: 25 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 25, maxLength: 25 }),
        fc.integer({ min: 0, max: 3 }),
        (n, edges, failUntil, attempts, arrayLen) => {
          // Edges only from lower to higher index: a DAG.
          const reqs: Set<number>[] = Array.from({ length: n }, () => new Set());
          for (const [x, y] of edges) {
            const a = x % n;
            const b = y % n;
            if (a < b) reqs[b]!.add(a);
          }
          const jobs = Array.from({ length: n }, (_, i) =>
            job(`j${i}`, {
              requires: [...reqs[i]!].map((r) => ({ job: `j${r}`, condition: 'succeeded' as const })),
              policy: { attempts: attempts[i]!, backoffSec: 0 },
              ...(i % 4 === 0 && arrayLen > 0 ? { taskArray: { start: 0, end: arrayLen, concurrency: 2 } } : {}),
            }),
          );
          const succeededAt = new Map<string, number>();
          const launched = new Map<string, number>();
          let t = 0;
          const r = simulate(wf(jobs), (key, attempt) => {
            t++;
            const i = Number(key.slice(1).split('[')[0]);
            const job = `j${i}`;
            // every requirement's every task must have succeeded before this launch
            for (const r of reqs[i]!) {
              const reqUnits = [...succeededAt.keys()].filter((k) => k === `j${r}` || k.startsWith(`j${r}[`));
              assert.ok(reqUnits.length > 0, `${key} launched before requirement j${r} succeeded`);
            }
            assert.equal(launched.get(key) ?? 0, attempt - 1, `${key} attempt ${attempt} launched out of order`);
            launched.set(key, attempt);
            const code = attempt <= failUntil[i]! ? 1 : 0;
            if (code === 0) succeededAt.set(key, t);
            void job;
            return code;
          });
          // Every unit ended in a terminal state and the status is consistent.
          const snap = r.engine.snapshot();
          assert.ok(snap.every((u) => ['succeeded', 'failed', 'skipped'].includes(u.state)));
          assert.equal(r.status, snap.some((u) => u.state === 'failed') ? 'failed' : 'succeeded');
          for (const u of snap) if (u.state === 'succeeded') assert.ok(succeededAt.has(u.key));
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });
});

// ---------------------------------------------------------------- task arrays held as ranges

interface Steppable {
  step(ev: EngineEvent): EngineAction[];
}

/** The scripted agent of `simulate`, for any engine; `room` = launches pulled per event. */
function drive(e: Steppable, exit: (key: string, attempt: number) => number): string {
  let now = 0;
  const queue: EngineEvent[] = [{ type: 'start', now }];
  const timers: number[] = [];
  let status = 'running';
  for (let guard = 0; guard < 200_000; guard++) {
    const ev = queue.shift();
    if (!ev) {
      if (timers.length === 0) break;
      timers.sort((a, b) => a - b);
      now = Math.max(now, timers.shift()!);
      queue.push({ type: 'tick', now });
      continue;
    }
    for (const a of e.step(ev)) {
      if (a.type === 'launch') {
        queue.push({ type: 'launched', key: a.key, attempt: a.attempt, now: ++now });
        queue.push({ type: 'exited', key: a.key, attempt: a.attempt, now: ++now, exitCode: exit(a.key, a.attempt), reason: 'exit' });
      } else if (a.type === 'timer') timers.push(a.at);
      else if (a.type === 'done') status = a.status;
    }
  }
  return status;
}

/** Per job, per state, from a full list of units (the reference engine's). */
function countsOf(units: { job: string; kind: string; state: string }[]): Map<string, Record<string, number>> {
  const m = new Map<string, Record<string, number>>();
  for (const u of units) {
    const name = u.kind === 'ingress' ? `@ingress/${u.job}` : u.job;
    const c = m.get(name) ?? {};
    c[u.state] = (c[u.state] ?? 0) + 1;
    m.set(name, c);
  }
  return m;
}

const nonZero = (c: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(c).filter(([, n]) => n > 0));

describe('engine: task arrays as ranges', () => {
  test('a 1,000,000-task array: start emits no per-task action; launches come only as pulled', () => {
    const e = new Engine(wf([job('big', { taskArray: { start: 1, end: 1_000_000, concurrency: 0 } }), job('after', { requires: req('big') })]));
    const a0 = e.step({ type: 'start', now: 0 });
    assert.ok(a0.length < 5, `start returned ${a0.length} actions`);
    const l = e.pull(8).filter((a) => a.type === 'launch');
    assert.deepEqual(l.map((a) => (a as { key: string }).key), ['big[1]', 'big[2]', 'big[3]', 'big[4]', 'big[5]', 'big[6]', 'big[7]', 'big[8]']);
    const c = e.counts().find((x) => x.name === 'big')!;
    assert.equal(c.total, 1_000_000);
    assert.equal(c.counts.starting, 8);
    assert.equal(c.counts.pending, 999_992);
    assert.equal(e.snapshot().filter((u) => u.job === 'big').length, 8, 'only started tasks have units');
    const cancel = e.step({ type: 'cancel', now: 1 });
    assert.equal(cancel.filter((a) => a.type === 'kill').length, 8);
    const after = e.counts().find((x) => x.name === 'big')!;
    assert.equal(after.counts.canceled, 999_992);
    assert.equal(e.counts().find((x) => x.name === 'after')!.counts.canceled, 1);
  });

  test('100,000 tasks run to the end with a bounded pull; succeeded tasks are only counted', () => {
    const e = new Engine(wf([job('arr', { taskArray: { start: 0, end: 99_999, concurrency: 0 } }), job('merge', { requires: req('arr') })]));
    let inflight: string[] = [];
    const take = (acts: EngineAction[]) => {
      for (const a of acts) if (a.type === 'launch') inflight.push(a.key);
    };
    e.step({ type: 'start', now: 0 });
    take(e.pull(16));
    let last: EngineAction[] = [];
    let t = 0;
    while (inflight.length > 0) {
      const batch = inflight;
      inflight = [];
      for (const k of batch) {
        last = e.step({ type: 'exited', key: k, attempt: 1, now: ++t, exitCode: 0, reason: 'exit' });
        take(e.pull(1));
      }
      assert.ok(inflight.length <= 16);
    }
    assert.equal(e.workflowStatus, 'succeeded');
    assert.deepEqual(last.at(-1), { type: 'done', status: 'succeeded' });
    assert.equal(e.counts().find((x) => x.name === 'arr')!.counts.succeeded, 100_000);
    assert.equal(e.snapshot().length, 1, 'only the single job keeps a unit');
  });

  test('resume of an array rebuilds from the rows that exist; missing tasks are implied pending', () => {
    const w = wf([job('arr', { taskArray: { start: 1, end: 5, concurrency: 2 } })]);
    const s = (task: number, state: 'succeeded' | 'running' | 'failed', attempt: number) => ({
      key: `arr[${task}]`, kind: 'job' as const, job: 'arr', task, state, attempt, exitCode: state === 'succeeded' ? 0 : null,
      reason: null, message: null, startedAt: 1, endedAt: state === 'running' ? null : 2,
    });
    const prev = new Map([s(1, 'succeeded', 1), s(2, 'running', 1), s(4, 'failed', 2)].map((u) => [u.key, u]));
    const e = new Engine(w, { previous: prev });
    e.step({ type: 'start', now: 10 });
    const keys = (acts: EngineAction[]) => acts.filter((a) => a.type === 'launch').map((a) => `${(a as { key: string }).key}#${(a as { attempt: number }).attempt}`);
    assert.deepEqual(keys(e.pull(Infinity)), ['arr[2]#2', 'arr[4]#3']);
    e.step({ type: 'exited', key: 'arr[2]', attempt: 2, now: 11, exitCode: 0, reason: 'exit' });
    assert.deepEqual(keys(e.pull(Infinity)), ['arr[3]#1']);
    e.step({ type: 'exited', key: 'arr[4]', attempt: 3, now: 12, exitCode: 0, reason: 'exit' });
    assert.deepEqual(keys(e.pull(Infinity)), ['arr[5]#1']);
    e.step({ type: 'exited', key: 'arr[3]', attempt: 1, now: 13, exitCode: 0, reason: 'exit' });
    const end = e.step({ type: 'exited', key: 'arr[5]', attempt: 1, now: 14, exitCode: 0, reason: 'exit' });
    assert.deepEqual(end.at(-1), { type: 'done', status: 'succeeded' });
  });

  test('property: on random DAGs with arrays the ranged engine ends exactly as the reference engine', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('succeeded', 'finished', 'failed')), { maxLength: 30 }),
        fc.array(fc.nat({ max: 3 }), { minLength: 12, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 12, maxLength: 12 }),
        fc.array(fc.tuple(fc.integer({ min: -2, max: 6 }), fc.nat({ max: 3 })), { minLength: 12, maxLength: 12 }),
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        (n, edges, failUntil, attempts, arrays, room, retain) => {
          const reqs: Map<number, Dependency['condition']>[] = Array.from({ length: n }, () => new Map());
          for (const [x, y, c] of edges) {
            const a = x % n;
            const b = y % n;
            if (a < b) reqs[b]!.set(a, c as Dependency['condition']);
          }
          const jobs = Array.from({ length: n }, (_, i) => {
            const [len, conc] = arrays[i]!;
            return job(`j${i}`, {
              requires: [...reqs[i]!].map(([r, condition]) => ({ job: `j${r}`, condition })),
              policy: { attempts: attempts[i]!, backoffSec: i % 2 },
              ...(len >= 0 ? { taskArray: { start: 3, end: 3 + len, concurrency: conc } } : {}),
            });
          });
          const w = wf(jobs);
          // Exit code by key and attempt: some tasks fail their first attempts.
          const exit = (key: string, attempt: number): number => {
            const i = Number(key.slice(1).split('[')[0]);
            const task = key.includes('[') ? Number(key.split('[')[1]!.slice(0, -1)) : 0;
            return attempt <= (failUntil[i]! + task) % 4 ? 1 : 0;
          };
          const ref = new ReferenceEngine(w);
          const refStatus = drive(ref, exit);
          const e = new Engine(w, { retainFinished: retain });
          const status = drive({ step: (ev) => [...e.step(ev), ...e.pull(room)] }, exit);
          assert.equal(status, refStatus);
          const refUnits = ref.snapshot();
          const want = countsOf(refUnits);
          for (const c of e.counts()) assert.deepEqual(nonZero(c.counts), want.get(c.name), `counts of ${c.name}`);
          const byKey = new Map(refUnits.map((u) => [u.key, u]));
          for (const u of e.snapshot()) {
            const r = byKey.get(u.key)!;
            assert.deepEqual([u.state, u.attempt, u.exitCode, u.reason], [r.state, r.attempt, r.exitCode, r.reason], u.key);
          }
          if (retain) {
            const mine = new Set(e.snapshot().map((u) => u.key));
            for (const r of refUnits) if (r.attempt > 0) assert.ok(mine.has(r.key), `${r.key} ran but has no unit`);
          }
        },
      ),
      { numRuns: 400, seed: 7 },
    );
  });
});
