import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainWaiting, type UnitSnapshot } from '../../src/engine/index.js';
import { job, wf } from './builders.js';

const u = (key: string, state: UnitSnapshot['state'], extra: Partial<UnitSnapshot> = {}): UnitSnapshot => ({
  key, kind: 'job', job: key.replace(/\[\d+\]$/, ''), task: /\[(\d+)\]$/.test(key) ? Number(/\[(\d+)\]$/.exec(key)![1]) : null,
  state, attempt: state === 'pending' || state === 'ready' ? 0 : 1, exitCode: null, reason: null, message: null, startedAt: null, endedAt: null, ...extra,
});

test('why is my job pending: requirements, retries, task-array concurrency, node capacity', () => {
  const w = wf([
    job('big', { resources: { cores: 2, affinity: 'core', threads: false, memoryByCore: false, devices: {}, exclusive: false } }),
    job('after', { requires: [{ job: 'big', condition: 'succeeded' }] }),
    job('flaky', { policy: { attempts: 3, backoffSec: 5 } }),
    job('arr', { taskArray: { start: 1, end: 3, concurrency: 1 } }),
    job('small'),
    job('done'),
  ]);
  const why = explainWaiting(
    w,
    [
      u('big', 'running'),
      u('after', 'pending'),
      u('flaky', 'pending', { attempt: 1 }),
      u('arr[1]', 'starting'),
      u('arr[2]', 'ready'),
      u('arr[3]', 'ready'),
      u('small', 'starting'),
      u('done', 'succeeded'),
    ],
    { cores: 2 },
  );
  assert.equal(why.get('after'), 'requirement "big" is running');
  assert.equal(why.get('flaky'), 'waiting to retry (attempt 2 of 3)');
  assert.equal(why.get('arr'), '2 task(s) held by task-array concurrency 1 (1 started); 1 task(s) queued on the node for 1 core(s); 2 of 2 cores in use');
  assert.equal(why.get('small'), 'queued on the node for 1 core(s); 2 of 2 cores in use');
  assert.equal(why.has('big'), false);
  assert.equal(why.has('done'), false);
});

test('why pending: a volume whose ingress has not finished', () => {
  const w = wf([job('a', { mounts: [{ volume: 'v', location: '/v', readOnly: false }] })], {
    volumes: { v: { name: 'v', reference: 'volume://user/ephemeral', kind: 'ephemeral', ingress: [{ source: { uri: 'http://x/y' }, destination: { uri: 'file://y' } }], egress: [] } },
  });
  const why = explainWaiting(w, [{ ...u('@ingress/v', 'running'), kind: 'ingress', job: 'v' }, u('a', 'pending')]);
  assert.equal(why.get('a'), 'ingress of volume "v" is running');
});
