// The shared store contract: every Store implementation must pass this suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store, WorkflowRecord } from '../../src/store/index.js';
import type { UnitSnapshot } from '../../src/engine/index.js';

const unit = (key: string, extra: Partial<UnitSnapshot> = {}): UnitSnapshot => ({
  key, kind: 'job', job: key.split('[')[0]!, task: null, state: 'pending', attempt: 0,
  exitCode: null, reason: null, message: null, startedAt: null, endedAt: null, ...extra,
});

export function record(id: string, createdAt = Date.now()): WorkflowRecord {
  return {
    id, name: 'demo', file: '/tmp/demo.yaml', status: 'pending',
    spec: { name: 'demo', dialect: 'v1', volumes: {}, jobs: {}, policy: {} },
    options: { failFast: false }, runDir: `/tmp/runs/${id}`, createdAt, startedAt: null, endedAt: null,
    runnerPid: null, runnerHost: null, cancelRequested: false,
  };
}

export function storeContract(name: string, open: () => Promise<Store>, uniq: () => string): void {
  test(`${name}: create, read back, update in batches`, async () => {
    const s = await open();
    try {
      const id = uniq();
      const units = [unit('a'), ...Array.from({ length: 100 }, (_, i) => unit(`arr[${i}]`, { task: i }))];
      await s.createWorkflow(record(id), units);
      const got = await s.getWorkflow(id);
      assert.equal(got?.name, 'demo');
      assert.deepEqual(got?.spec.dialect, 'v1');
      assert.deepEqual((await s.units(id)).map((u) => u.key), units.map((u) => u.key));
      await s.write({
        units: [{ workflowId: id, unit: unit('a', { state: 'succeeded', attempt: 1, exitCode: 0, reason: 'exit', startedAt: 1000, endedAt: 3000 }) }],
        attempts: [{ workflowId: id, key: 'a', attempt: 1, startedAt: 1000, endedAt: 3000, exitCode: 0, signal: null, reason: 'exit', message: null }],
        events: [{ workflowId: id, at: 5, key: 'a', level: 'warn', message: 'hello' }],
        workflows: [{ id, patch: { status: 'running', startedAt: 999, runnerPid: 42, cancelRequested: true } }],
      });
      const a = (await s.units(id))[0]!;
      assert.equal(a.state, 'succeeded');
      assert.equal(a.exitCode, 0);
      assert.equal(a.endedAt, 3000);
      const w = (await s.getWorkflow(id))!;
      assert.equal(w.status, 'running');
      assert.equal(w.startedAt, 999);
      assert.equal(w.runnerPid, 42);
      assert.equal(w.cancelRequested, true);
      assert.deepEqual((await s.attempts(id, 'a')).map((x) => x.exitCode), [0]);
      assert.deepEqual((await s.events(id)).map((e) => e.message), ['hello']);
      assert.deepEqual(await s.events(id, { afterAt: 5 }), []);
      assert.deepEqual((await s.jobHistory('a')).slice(0, 1), [2]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: attempts upsert keeps the start time`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('x')]);
      await s.write({ attempts: [{ workflowId: id, key: 'x', attempt: 1, startedAt: 10, endedAt: null, exitCode: null, signal: null, reason: null, message: null }] });
      await s.write({ attempts: [{ workflowId: id, key: 'x', attempt: 1, startedAt: null, endedAt: 20, exitCode: 1, signal: null, reason: 'exit', message: 'boom' }] });
      const [a] = await s.attempts(id);
      assert.deepEqual([a!.startedAt, a!.endedAt, a!.exitCode, a!.message], [10, 20, 1, 'boom']);
    } finally {
      await s.close();
    }
  });

  test(`${name}: id prefixes resolve, ambiguous ones are an error, unknown is undefined`, async () => {
    const s = await open();
    try {
      const base = uniq();
      await s.createWorkflow(record(`${base}x1`), []);
      await s.createWorkflow(record(`${base}x2`), []);
      assert.equal((await s.getWorkflow(`${base}x1`))?.id, `${base}x1`);
      await assert.rejects(s.getWorkflow(`${base}x`), (e: Error & { code?: string }) => e.code === 'STORE_AMBIGUOUS_ID');
      assert.equal(await s.getWorkflow(`${base}zz`), undefined);
      const list = await s.listWorkflows({ limit: 1000 });
      assert.ok(list.some((w) => w.id === `${base}x2`));
    } finally {
      await s.close();
    }
  });

  test(`${name}: data survives reopening`, async () => {
    const id = uniq();
    const s1 = await open();
    await s1.createWorkflow(record(id), [unit('k')]);
    await s1.write({ units: [{ workflowId: id, unit: unit('k', { state: 'failed', attempt: 2 }) }] });
    await s1.close();
    const s2 = await open();
    try {
      assert.equal((await s2.units(id))[0]!.state, 'failed');
    } finally {
      await s2.close();
    }
  });
}
