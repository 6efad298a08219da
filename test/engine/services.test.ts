// Services in the engine: readiness (a probe), lifetime (needed, persist, a workflow of
// services only), their end at a timeout, and what a probe that never passes does.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, explainWaiting, type EngineAction, type EngineEvent } from '../../src/engine/index.js';
import type { ReadinessProbe, ServiceSpec } from '../../src/workflow/types.js';
import { job, wf } from './builders.js';

function stepAll(e: Engine, ev: EngineEvent): EngineAction[] {
  return [...e.step(ev), ...e.pull(Infinity)];
}
const launches = (as: EngineAction[]): string[] => as.filter((a) => a.type === 'launch').map((a) => (a as { key: string }).key);
const kills = (as: EngineAction[]) => as.filter((a) => a.type === 'kill');
const done = (as: EngineAction[]) => as.find((a) => a.type === 'done');

const probe: ReadinessProbe = { action: { kind: 'http', path: '/', port: 8080, scheme: 'HTTP', headers: [] }, initialDelaySec: 0, periodSec: 1, timeoutSec: 1, successThreshold: 1, failureThreshold: 3 };
const svc = (extra: Partial<ServiceSpec> = {}): ServiceSpec => ({ ports: [{ name: 'http', port: 8080, protocol: 'tcp' }], endpoints: [], persist: false, ...extra });
const running = (j: string) => [{ job: j, condition: 'running' as const }];

describe('engine: services', () => {
  test('with a readiness probe, a service is RUNNING for its dependents only once the probe passed', () => {
    const e = new Engine(wf([job('web', { service: true, serviceSpec: svc({ probe }) }), job('client', { requires: running('web') })]));
    assert.deepEqual(launches(stepAll(e, { type: 'start', now: 0 })), ['web']);
    const a1 = stepAll(e, { type: 'launched', key: 'web', attempt: 1, now: 1 });
    assert.deepEqual(launches(a1), [], 'started is not ready');
    assert.equal(e.unit('web')!.state, 'running');
    assert.equal(e.unit('web')!.reason, null, 'starting: not ready yet');
    const a2 = stepAll(e, { type: 'ready', key: 'web', attempt: 1, now: 2, message: 'readiness probe http-get http://127.0.0.1:8080/ passed' });
    assert.deepEqual(launches(a2), ['client']);
    const changed = a2.find((a) => a.type === 'changed' && a.unit.key === 'web');
    assert.ok(changed && changed.type === 'changed');
    assert.equal(changed.unit.reason, 'ready');
    assert.equal(changed.unit.message, 'readiness probe http-get http://127.0.0.1:8080/ passed');
    // A second ready (a duplicate report) changes nothing.
    assert.deepEqual(stepAll(e, { type: 'ready', key: 'web', attempt: 1, now: 3 }), []);
    stepAll(e, { type: 'launched', key: 'client', attempt: 1, now: 4 });
    const a3 = stepAll(e, { type: 'exited', key: 'client', attempt: 1, now: 5, exitCode: 0, reason: 'exit' });
    assert.deepEqual(kills(a3), [{ type: 'kill', key: 'web', reason: 'stop-service' }]);
    const a4 = stepAll(e, { type: 'exited', key: 'web', attempt: 1, now: 6, exitCode: null, signal: 'SIGTERM', reason: 'stopped' });
    assert.deepEqual(done(a4), { type: 'done', status: 'succeeded' });
  });

  test('without a probe a service is ready when it started (ready reports change nothing)', () => {
    const e = new Engine(wf([job('db', { service: true, serviceSpec: svc() }), job('client', { requires: running('db') })]));
    stepAll(e, { type: 'start', now: 0 });
    const a = stepAll(e, { type: 'launched', key: 'db', attempt: 1, now: 1 });
    assert.deepEqual(launches(a), ['client']);
    assert.equal(e.unit('db')!.reason, 'ready');
    assert.deepEqual(stepAll(e, { type: 'ready', key: 'db', attempt: 1, now: 2 }), []);
  });

  test('a ready report that overtakes the start report: the service runs and is ready', () => {
    const e = new Engine(wf([job('web', { service: true, serviceSpec: svc({ probe }) }), job('client', { requires: running('web') })]));
    stepAll(e, { type: 'start', now: 0 });
    const a = stepAll(e, { type: 'ready', key: 'web', attempt: 1, now: 1 });
    assert.equal(e.unit('web')!.state, 'running');
    assert.deepEqual(launches(a), ['client']);
    // A stale attempt's ready is ignored.
    assert.deepEqual(stepAll(e, { type: 'ready', key: 'web', attempt: 7, now: 2 }), []);
  });

  test('a probe that never passes: the service fails, its dependents are skipped, the workflow fails', () => {
    const e = new Engine(wf([job('web', { service: true, serviceSpec: svc({ probe }) }), job('client', { requires: running('web') }), job('other')]));
    stepAll(e, { type: 'start', now: 0 });
    stepAll(e, { type: 'launched', key: 'web', attempt: 1, now: 1 });
    stepAll(e, { type: 'launched', key: 'other', attempt: 1, now: 1 });
    stepAll(e, { type: 'exited', key: 'other', attempt: 1, now: 2, exitCode: 0, reason: 'exit' });
    const msg = 'readiness probe http-get http://127.0.0.1:8080/ failed 3 times: connection refused';
    const a = stepAll(e, { type: 'exited', key: 'web', attempt: 1, now: 5, exitCode: null, signal: 'SIGTERM', reason: 'not-ready', message: msg });
    assert.equal(e.unit('web')!.state, 'failed');
    assert.equal(e.unit('web')!.message, msg);
    assert.equal(e.unit('client')!.state, 'skipped');
    assert.equal(e.unit('client')!.message, 'requirement "web" failed (needed: running)');
    const errors = a.filter((x) => x.type === 'event' && x.level === 'error').map((x) => (x as { message: string }).message);
    assert.deepEqual(errors, [`service web failed (never ready): ${msg}`]);
    assert.deepEqual(done(a), { type: 'done', status: 'failed' });
    assert.deepEqual(launches(a), []);
  });

  test('persist: the service outlives the jobs that needed it, until the workflow is canceled', () => {
    const e = new Engine(wf([job('web', { service: true, serviceSpec: svc({ persist: true }) }), job('client', { requires: running('web') })]));
    stepAll(e, { type: 'start', now: 0 });
    stepAll(e, { type: 'launched', key: 'web', attempt: 1, now: 1 });
    stepAll(e, { type: 'launched', key: 'client', attempt: 1, now: 2 });
    const a = stepAll(e, { type: 'exited', key: 'client', attempt: 1, now: 3, exitCode: 0, reason: 'exit' });
    assert.deepEqual(kills(a), [], 'a persistent service is not stopped when the jobs are done');
    assert.equal(done(a), undefined);
    assert.equal(e.workflowStatus, 'running');
    const c = stepAll(e, { type: 'cancel', now: 10 });
    assert.deepEqual(kills(c), [{ type: 'kill', key: 'web', reason: 'canceled' }]);
    const end = stepAll(e, { type: 'exited', key: 'web', attempt: 1, now: 11, exitCode: null, signal: 'SIGTERM', reason: 'canceled' });
    assert.deepEqual(done(end), { type: 'done', status: 'canceled' });
  });

  test('a workflow of services only runs until it is canceled', () => {
    const e = new Engine(wf([job('a', { service: true, serviceSpec: svc() }), job('b', { service: true, serviceSpec: svc(), requires: running('a') })]));
    assert.deepEqual(launches(stepAll(e, { type: 'start', now: 0 })), ['a']);
    assert.deepEqual(launches(stepAll(e, { type: 'launched', key: 'a', attempt: 1, now: 1 })), ['b']);
    const a = stepAll(e, { type: 'launched', key: 'b', attempt: 1, now: 2 });
    assert.deepEqual(kills(a), []);
    assert.equal(e.workflowStatus, 'running');
    const c = stepAll(e, { type: 'cancel', now: 100 });
    assert.deepEqual(kills(c).map((k) => (k as { key: string }).key).sort(), ['a', 'b']);
    stepAll(e, { type: 'exited', key: 'a', attempt: 1, now: 101, exitCode: null, signal: 'SIGTERM', reason: 'canceled' });
    const end = stepAll(e, { type: 'exited', key: 'b', attempt: 1, now: 102, exitCode: null, signal: 'SIGTERM', reason: 'canceled' });
    assert.deepEqual(done(end), { type: 'done', status: 'canceled' });
  });

  test('the timeout of a workflow of services only is its planned end: the services stop, it succeeds', () => {
    const e = new Engine(wf([job('a', { service: true, serviceSpec: svc() })], { policy: { timeoutSec: 60 } }));
    const s = stepAll(e, { type: 'start', now: 0 });
    assert.deepEqual(s.filter((x) => x.type === 'timer'), [{ type: 'timer', at: 60_000 }]);
    stepAll(e, { type: 'launched', key: 'a', attempt: 1, now: 1 });
    assert.deepEqual(stepAll(e, { type: 'tick', now: 30_000 }), []);
    const t = stepAll(e, { type: 'tick', now: 60_000 });
    assert.deepEqual(kills(t), [{ type: 'kill', key: 'a', reason: 'stop-service' }]);
    const info = t.filter((x) => x.type === 'event').map((x) => (x as { level: string; message: string }));
    assert.deepEqual(info, [{ type: 'event', key: null, level: 'info', message: 'workflow timeout reached (policy.timeout 60s): stopping its services (their planned end)' }]);
    const end = stepAll(e, { type: 'exited', key: 'a', attempt: 1, now: 60_001, exitCode: null, signal: 'SIGTERM', reason: 'stopped' });
    assert.equal(e.unit('a')!.state, 'succeeded');
    assert.deepEqual(done(end), { type: 'done', status: 'succeeded' });
  });

  test('the timeout while jobs still run is a failure, services or not', () => {
    const e = new Engine(wf([job('a', { service: true, serviceSpec: svc({ persist: true }) }), job('j', { requires: running('a') })], { policy: { timeoutSec: 10 } }));
    stepAll(e, { type: 'start', now: 0 });
    stepAll(e, { type: 'launched', key: 'a', attempt: 1, now: 1 });
    stepAll(e, { type: 'launched', key: 'j', attempt: 1, now: 2 });
    const t = stepAll(e, { type: 'tick', now: 10_000 });
    assert.deepEqual(kills(t).map((k) => (k as { key: string }).key).sort(), ['a', 'j']);
    stepAll(e, { type: 'exited', key: 'j', attempt: 1, now: 10_001, exitCode: null, reason: 'timeout' });
    const end = stepAll(e, { type: 'exited', key: 'a', attempt: 1, now: 10_002, exitCode: null, reason: 'timeout' });
    assert.deepEqual(done(end), { type: 'done', status: 'failed' });
  });

  test('resume runs a service again (the jobs that need it need it running)', () => {
    const w = wf([job('db', { service: true, serviceSpec: svc() }), job('client', { requires: running('db') })]);
    const prev = new Map([
      ['db', { key: 'db', kind: 'job' as const, job: 'db', task: null, state: 'succeeded' as const, attempt: 1, exitCode: null, reason: 'stopped', message: null, startedAt: 1, endedAt: 2 }],
      ['client', { key: 'client', kind: 'job' as const, job: 'client', task: null, state: 'failed' as const, attempt: 1, exitCode: 1, reason: 'exit', message: null, startedAt: 1, endedAt: 2 }],
    ]);
    const e = new Engine(w, { previous: prev });
    assert.deepEqual(launches(stepAll(e, { type: 'start', now: 10 })), ['db']);
    assert.deepEqual(launches(stepAll(e, { type: 'launched', key: 'db', attempt: 2, now: 11 })), ['client']);
  });

  test('why a job waits: a service that runs but whose probe has not passed yet', () => {
    const w = wf([job('web', { service: true, serviceSpec: svc({ probe }) }), job('client', { requires: running('web') })]);
    const e = new Engine(w);
    stepAll(e, { type: 'start', now: 0 });
    stepAll(e, { type: 'launched', key: 'web', attempt: 1, now: 1 });
    assert.equal(explainWaiting(w, e.snapshot()).get('client'), 'service "web" is starting: its readiness probe has not passed yet');
    stepAll(e, { type: 'ready', key: 'web', attempt: 1, now: 2 });
    assert.equal(explainWaiting(w, e.snapshot()).get('client'), 'queued on the node for 1 core(s)');
  });
});
