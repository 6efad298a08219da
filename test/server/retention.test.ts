// The server side of retention with a real store and real files: what `warren prune` takes
// (one of an age and ids), which workflows an id may name, and which directories it removes
// (only HOME/runs/<id> of what it pruned, whatever the record says).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import { pruneRequest } from '../../src/server/index.js';
import { SqliteStore, type WorkflowRecord } from '../../src/store/index.js';
import { tempDir } from '../helpers.js';

function record(id: string, status: WorkflowRecord['status'], endedAt: number | null, runDir: string): WorkflowRecord {
  return { id, name: id, file: null, status, spec: { name: id, dialect: 'v1', volumes: {}, jobs: {}, policy: {} } as never, options: {}, runDir, createdAt: 1_000, startedAt: 1_000, endedAt, cancelRequested: false, lease: null, owner: null };
}

const code = (c: string, re?: RegExp) => (e: unknown) => e instanceof WarrenError && e.code === c && (!re || re.test(e.message)) && !!e.hint;

test('pruneRequest: an age or ids, not both, not neither; a finished workflow its runner still holds is refused by id; only HOME/runs/<id> is removed', async () => {
  const t = tempDir('warren-prune-srv-');
  const home = join(t.dir, 'home');
  const store = new SqliteStore(join(t.dir, 'w.db'), { reserveBytes: 0 });
  try {
    const outside = join(t.dir, 'elsewhere');
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'keep'), 'not a run directory of this home');
    // "done" records a run directory outside HOME/runs: it must not be removed.
    await store.createWorkflow(record('done', 'succeeded', 2_000, outside), []);
    await store.createWorkflow(record('fresh', 'failed', 3_000, join(home, 'runs', 'fresh')), []);
    mkdirSync(join(home, 'runs', 'done', 'logs'), { recursive: true });
    writeFileSync(join(home, 'runs', 'done', 'logs', 'a.out'), 'x'.repeat(1000));
    mkdirSync(join(home, 'runs', 'fresh'), { recursive: true });
    assert.equal((await store.acquireRunLease('fresh', 'otherhost:1:live', 600_000, Date.now())).ok, true);

    await assert.rejects(pruneRequest(store, home, {}), code('API_BAD_REQUEST', /needs workflow ids or an age/));
    await assert.rejects(pruneRequest(store, home, { olderThanSec: 1, ids: ['done'] }), code('API_BAD_REQUEST', /not both/));
    await assert.rejects(pruneRequest(store, home, { olderThanSec: -5 }), code('API_BAD_REQUEST', />= 0/));
    await assert.rejects(pruneRequest(store, home, { ids: ['fresh'] }), code('RUN_PRUNE_RUNNING', /failed, but its runner still holds it: running work is never pruned/));
    await assert.rejects(pruneRequest(store, home, { ids: ['nope'] }), code('RUN_NOT_FOUND'));

    const r = await pruneRequest(store, home, { olderThanSec: 0 });
    assert.deepEqual([r.workflows, r.removed, r.keptLeased, r.runDirs, r.bytesFreed, r.interrupted], [1, ['done'], 1, 1, 1000, false]);
    assert.ok(!existsSync(join(home, 'runs', 'done')));
    assert.ok(existsSync(join(outside, 'keep')), 'a recorded run directory outside HOME/runs is never removed');
    assert.ok(existsSync(join(home, 'runs', 'fresh')), 'the leased one stays, with its directory');
    assert.ok(await store.getWorkflow('fresh'));
  } finally {
    await store.close();
    t.cleanup();
  }
});
