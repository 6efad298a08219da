// BatchWriter against a real SQLite store: attemptNow group commit, fencing, put-back.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BatchWriter, SqliteStore, type Store, type WriteBatch } from '../../src/store/index.js';
import { tempDir } from '../helpers.js';
import { att, record } from './contract.js';

/** The real store, counting the transactions it is asked for. */
function counting(s: SqliteStore): { store: Store; writes: WriteBatch[] } {
  const writes: WriteBatch[] = [];
  const store = Object.create(s) as Store;
  store.write = (b: WriteBatch) => {
    writes.push(b);
    return s.write(b);
  };
  return { store, writes };
}

describe('BatchWriter', () => {
  const t = tempDir();
  after(t.cleanup);
  const s = new SqliteStore(join(t.dir, 'warren.db'), { reserveBytes: 0 });
  after(() => s.close());

  test('attemptNow: 50 concurrent calls share 1-few transactions, each resolves only once its record is committed', async () => {
    const id = 'batchgroup01';
    await s.createWorkflow(record(id), []);
    const { store, writes } = counting(s);
    const w = new BatchWriter(store, 10_000);
    w.event({ workflowId: id, at: 1, key: null, level: 'info', message: 'queued before' });
    const seen: boolean[] = [];
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        w.attemptNow(att(id, `k${i}`, 1, { startedAt: i, pid: 1000 + i, cgroup: `/cg/${i}` })).then(async () => {
          const [a] = await s.attempts(id, `k${i}`);
          seen.push(a?.pid === 1000 + i);
        }),
      ),
    );
    assert.equal(seen.length, 50);
    assert.ok(seen.every(Boolean), 'every call resolved after its record was in the store');
    assert.ok(writes.length >= 1 && writes.length <= 3, `${writes.length} transactions`);
    assert.equal(w.commits, writes.length);
    assert.deepEqual((await s.events(id)).map((e) => e.message), ['queued before'], 'what was queued before went with it');
  });

  test('attemptNow while a write is in flight: the later calls wait for their own commit', async () => {
    const id = 'batchgroup02';
    await s.createWorkflow(record(id), []);
    const w = new BatchWriter(s, 10_000);
    const first = w.attemptNow(att(id, 'a', 1, { pid: 1 }));
    await new Promise((r) => setImmediate(r));
    const second = Promise.all([w.attemptNow(att(id, 'b', 1, { pid: 2 })), w.attemptNow(att(id, 'c', 1, { pid: 3 }))]).then(async () =>
      (await s.attempts(id)).map((a) => a.key),
    );
    await first;
    assert.deepEqual(await second, ['a', 'b', 'c']);
  });

  test('a rejected commit rejects every call of the group, and a fenced writer writes nothing afterwards', async () => {
    const id = 'batchfence01';
    await s.createWorkflow(record(id), []);
    const l1 = await s.acquireRunLease(id, 'h:1:a', 10, 100);
    assert.ok(l1.ok);
    const w = new BatchWriter(s, 10_000, { fence: { workflowId: id, term: 1 } });
    await w.attemptNow(att(id, 'a', 1, { pid: 1, term: 1 }));
    const l2 = await s.acquireRunLease(id, 'h:2:b', 10, 200); // taken over: term 2
    assert.ok(l2.ok && l2.lease.term === 2);
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => w.attemptNow(att(id, `x${i}`, 1, { pid: i, term: 1 }))));
    assert.ok(results.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'STORE_FENCED'));
    w.event({ workflowId: id, at: 1, key: null, level: 'info', message: 'stale' });
    await assert.rejects(w.flush(), (e: Error & { code?: string }) => e.code === 'STORE_FENCED');
    await assert.rejects(w.flush(), (e: Error & { code?: string }) => e.code === 'STORE_FENCED', 'stays fenced');
    assert.deepEqual((await s.attempts(id)).map((a) => a.key), ['a']);
    assert.deepEqual(await s.events(id), []);
    // the per-call fence of the new owner goes through
    await w.attemptNow(att(id, 'y', 1, { term: 2 }), { workflowId: id, term: 2 });
    assert.deepEqual((await s.attempts(id)).map((a) => a.key), ['a', 'y']);
  });

  test('a timer write that fails is reported and kept; the next flush writes it', async () => {
    const id = 'batchtimer01';
    await s.createWorkflow(record(id), []);
    await s.acquireRunLease(id, 'h:1:a', 1000, 0);
    const errors: unknown[] = [];
    const w = new BatchWriter(s, 5, { fence: { workflowId: id, term: 7 }, onError: (e) => errors.push(e) });
    w.event({ workflowId: id, at: 1, key: null, level: 'info', message: 'x' });
    for (let i = 0; i < 200 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal((errors[0] as { code?: string }).code, 'STORE_FENCED');
    w.setFence({ workflowId: id, term: 1 });
    w.event({ workflowId: id, at: 2, key: null, level: 'info', message: 'y' });
    await w.flush();
    assert.deepEqual((await s.events(id)).map((e) => e.message), ['y'], 'a fenced batch is dropped, never written later');
  });
});
