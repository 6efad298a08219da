// The shared store contract: every Store implementation must pass this suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttemptRecord, Store, WorkflowRecord } from '../../src/store/index.js';
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
    cancelRequested: false, lease: null,
  };
}

/** An attempt record with the fields a test does not care about left empty. */
export function att(workflowId: string, key: string, attempt: number, extra: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    workflowId, key, attempt, attemptId: `${workflowId}/${key}/${attempt}`, term: null, cgroup: null, node: null,
    startedAt: null, endedAt: null, exitCode: null, signal: null, reason: null, message: null, pid: null, ...extra,
  };
}

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

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
        attempts: [att(id, 'a', 1, { startedAt: 1000, endedAt: 3000, exitCode: 0, reason: 'exit', term: 3, cgroup: '/sys/fs/cgroup/warren/a', node: 'n01', pid: 77 })],
        events: [{ workflowId: id, at: 5, key: 'a', level: 'warn', message: 'hello' }],
        workflows: [{ id, patch: { status: 'running', startedAt: 999, cancelRequested: true } }],
      });
      const a = (await s.units(id))[0]!;
      assert.equal(a.state, 'succeeded');
      assert.equal(a.exitCode, 0);
      assert.equal(a.endedAt, 3000);
      const w = (await s.getWorkflow(id))!;
      assert.equal(w.status, 'running');
      assert.equal(w.startedAt, 999);
      assert.equal(w.cancelRequested, true);
      assert.equal(w.lease, null);
      assert.deepEqual(await s.attempts(id, 'a'), [att(id, 'a', 1, { startedAt: 1000, endedAt: 3000, exitCode: 0, reason: 'exit', term: 3, cgroup: '/sys/fs/cgroup/warren/a', node: 'n01', pid: 77 })]);
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
      await s.write({ attempts: [att(id, 'x', 1, { startedAt: 10, pid: 5, cgroup: '/cg/x' })] });
      await s.write({ attempts: [att(id, 'x', 1, { endedAt: 20, exitCode: 1, reason: 'exit', message: 'boom' })] });
      const [a] = await s.attempts(id);
      assert.deepEqual([a!.startedAt, a!.endedAt, a!.exitCode, a!.message, a!.pid, a!.cgroup], [10, 20, 1, 'boom', 5, '/cg/x']);
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

  test(`${name}: the run lease: taken from nobody (term 1), extended by its owner, refused to others until it expires, then taken over (term 2)`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('a')]);
      const a = await s.acquireRunLease(id, 'hostA:100:aa', 1000, 10_000);
      assert.deepEqual(a, { ok: true, lease: { owner: 'hostA:100:aa', term: 1, expiresAt: 11_000 } });
      assert.deepEqual((await s.getWorkflow(id))!.lease, { owner: 'hostA:100:aa', term: 1, expiresAt: 11_000 });
      // its owner again: extends, same term
      assert.deepEqual(await s.acquireRunLease(id, 'hostA:100:aa', 1000, 10_500), { ok: true, lease: { owner: 'hostA:100:aa', term: 1, expiresAt: 11_500 } });
      // another owner before expiry: refused, told who holds it
      assert.deepEqual(await s.acquireRunLease(id, 'hostB:200:bb', 1000, 11_499), { ok: false, current: { owner: 'hostA:100:aa', term: 1, expiresAt: 11_500 } });
      assert.equal(await s.renewRunLease(id, 'hostA:100:aa', 1, 1000, 11_000), true);
      assert.equal((await s.getWorkflow(id))!.lease!.expiresAt, 12_000);
      // at expiry it is free: taken over, term 2; the old owner can no longer renew or release it
      assert.deepEqual(await s.acquireRunLease(id, 'hostB:200:bb', 5000, 12_000), { ok: true, lease: { owner: 'hostB:200:bb', term: 2, expiresAt: 17_000 } });
      assert.equal(await s.renewRunLease(id, 'hostA:100:aa', 1, 1000, 12_001), false);
      await s.releaseRunLease(id, 'hostA:100:aa', 1);
      assert.equal((await s.getWorkflow(id))!.lease!.owner, 'hostB:200:bb');
      assert.equal(await s.renewRunLease(id, 'hostB:200:bb', 1, 1000, 12_001), false, 'the right owner with a stale term');
      // released: nobody holds it; the next owner gets term 3 at once
      await s.releaseRunLease(id, 'hostB:200:bb', 2);
      assert.equal((await s.getWorkflow(id))!.lease, null);
      assert.deepEqual(await s.acquireRunLease(id, 'hostA:101:cc', 1000, 12_002), { ok: true, lease: { owner: 'hostA:101:cc', term: 3, expiresAt: 13_002 } });
      await assert.rejects(s.acquireRunLease(`${id}nope`, 'x:1:y', 1000, 0), code('RUN_NOT_FOUND'));
    } finally {
      await s.close();
    }
  });

  test(`${name}: many owners racing for one lease: exactly one wins`, async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
    try {
      const id = uniq();
      await stores[0]!.createWorkflow(record(id), []);
      const now = Date.now();
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.acquireRunLease(id, `host:${i}:r${i}`, 60_000, now)),
      );
      const winners = results.filter((r) => r.ok);
      assert.equal(winners.length, 1);
      const w = winners[0]! as { ok: true; lease: { owner: string; term: number } };
      assert.equal(w.lease.term, 1);
      for (const r of results) if (!r.ok) assert.deepEqual(r.current, { owner: w.lease.owner, term: 1, expiresAt: now + 60_000 });
      // and again once it expired: one new owner, term 2
      const later = now + 60_000;
      const again = await Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.acquireRunLease(id, `other:${i}:q${i}`, 1000, later)));
      assert.equal(again.filter((r) => r.ok).length, 1);
      assert.equal((await stores[1]!.getWorkflow(id))!.lease!.term, 2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  test(`${name}: a batch fenced with an old term writes nothing; with the current term it writes`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('a'), unit('b')]);
      const old = await s.acquireRunLease(id, 'h:1:old', 100, 1000);
      assert.ok(old.ok);
      await s.write({ fence: { workflowId: id, term: 1 }, units: [{ workflowId: id, unit: unit('a', { state: 'running', attempt: 1 }) }] });
      const neu = await s.acquireRunLease(id, 'h:2:new', 100, 2000);
      assert.ok(neu.ok && neu.lease.term === 2);
      await assert.rejects(
        s.write({
          fence: { workflowId: id, term: 1 },
          units: [{ workflowId: id, unit: unit('a', { state: 'failed', attempt: 1, exitCode: 9 }) }, { workflowId: id, unit: unit('b', { state: 'running', attempt: 1 }) }],
          attempts: [att(id, 'a', 1, { endedAt: 5, exitCode: 9, reason: 'exit' })],
          events: [{ workflowId: id, at: 5, key: 'a', level: 'error', message: 'stale' }],
          workflows: [{ id, patch: { status: 'failed', endedAt: 5 } }],
        }),
        (e: Error & { code?: string; details?: Record<string, unknown> }) => e.code === 'STORE_FENCED' && e.details?.current === 2 && /term 1/.test(e.message),
      );
      assert.deepEqual((await s.units(id)).map((u) => u.state), ['running', 'pending']);
      assert.deepEqual(await s.attempts(id), []);
      assert.deepEqual(await s.events(id), []);
      assert.equal((await s.getWorkflow(id))!.status, 'pending');
      await s.write({ fence: { workflowId: id, term: 2 }, units: [{ workflowId: id, unit: unit('b', { state: 'running', attempt: 1 }) }] });
      assert.deepEqual((await s.units(id)).map((u) => u.state), ['running', 'running']);
      await assert.rejects(s.write({ fence: { workflowId: `${id}zz`, term: 0 }, events: [] }), code('STORE_FENCED'));
    } finally {
      await s.close();
    }
  });

  test(`${name}: an ended attempt is never changed again; another attempt id takes a row over only with a newer term`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('a'), unit('b')]);
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A1', term: 1, startedAt: 10, pid: 50 })] });
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A1', term: 1, endedAt: 20, exitCode: 0, reason: 'exit' })] });
      // a second report of the end (a stale runner, a duplicate message) and a late start record
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A1', term: 1, endedAt: 99, exitCode: 137, signal: 'SIGKILL', reason: 'signal' })] });
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A2', term: 5, startedAt: 200, pid: 60 })] });
      assert.deepEqual(await s.attempts(id, 'a'), [att(id, 'a', 1, { attemptId: 'A1', term: 1, startedAt: 10, pid: 50, endedAt: 20, exitCode: 0, reason: 'exit' })]);
      // not ended: an older or equal term with another id is refused, a newer one replaces it (not keeping the old pid)
      await s.write({ attempts: [att(id, 'b', 1, { attemptId: 'B1', term: 2, startedAt: 10, pid: 70, cgroup: '/cg/b1', node: 'n1' })] });
      await s.write({ attempts: [att(id, 'b', 1, { attemptId: 'Bx', term: 1, endedAt: 30, exitCode: 1, reason: 'exit' })] });
      assert.equal((await s.attempts(id, 'b'))[0]!.endedAt, null);
      await s.write({ attempts: [att(id, 'b', 1, { attemptId: 'B2', term: 3, startedAt: 40 })] });
      assert.deepEqual(await s.attempts(id, 'b'), [att(id, 'b', 1, { attemptId: 'B2', term: 3, startedAt: 40 })]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: a succeeded unit never changes again (and its run counts once in the history)`, async () => {
    const s = await open();
    try {
      const id = uniq();
      const job = `hist${uniq()}`;
      await s.createWorkflow(record(id), [unit(job)]);
      const ok = unit(job, { state: 'succeeded', attempt: 1, exitCode: 0, reason: 'exit', startedAt: 1000, endedAt: 2000 });
      await s.write({ units: [{ workflowId: id, unit: ok }] });
      await s.write({ units: [{ workflowId: id, unit: unit(job, { state: 'pending', attempt: 0 }) }] });
      await s.write({ units: [{ workflowId: id, unit: unit(job, { state: 'failed', attempt: 2, exitCode: 1 }) }] });
      await s.write({ units: [{ workflowId: id, unit: { ...ok, endedAt: 9000 } }] });
      assert.deepEqual(await s.units(id), [ok]);
      assert.deepEqual(await s.jobHistory(job), [1]);
    } finally {
      await s.close();
    }
  });
}
