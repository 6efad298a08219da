// The run lease and fencing, with the real orchestrator, SQLite store and processes: a
// runner whose lease is taken over stops its jobs and fails, and nothing it writes after
// the takeover is applied; a job's attempt is in the store before its command runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalAgent } from '../../src/agent/index.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { Orchestrator } from '../../src/server/index.js';
import { SqliteStore } from '../../src/store/index.js';
import type { WarrenError } from '../../src/common/index.js';
import { job, wf } from '../engine/builders.js';
import { tempDir } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number): boolean => {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
};

test('a runner whose lease is taken over stops its jobs, fails with RUN_LEASE_LOST, and its later writes are fenced off', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const store = new SqliteStore(join(t.dir, 'warren.db'));
  try {
    const pidFile = join(t.dir, 'pid');
    const agent = new LocalAgent({ home: t.dir, cores: 2, process: createProcessRuntime() });
    const orch = new Orchestrator({ store, agent, home: t.dir, leaseTtlMs: 600, cancelPollMs: 100 });
    const w = wf([job('long', { command: ['/bin/sh', '-c', `echo $$ > ${pidFile}; exec sleep 30`] })]);
    const rec = await orch.accept(w);
    const driving = orch.drive(rec.id).then(
      () => null,
      (e: WarrenError) => e,
    );
    for (let i = 0; i < 400 && !existsSync(pidFile); i++) await sleep(25);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    // The attempt was durable before the command ran: id, pid, term, node.
    const [a] = await store.attempts(rec.id);
    assert.equal(a!.attemptId, `${rec.id}/long/1`);
    assert.equal(a!.pid, pid);
    assert.equal(a!.term, 1);
    assert.equal(a!.endedAt, null);
    // Another runner takes the run over (as if ours had stalled past its lease).
    const other = await store.acquireRunLease(rec.id, 'elsewhere:1:x', 60_000, Date.now() + 3_600_000);
    assert.ok(other.ok);
    assert.equal(other.lease.term, 2);
    const err = await driving;
    assert.ok(err, 'drive must fail');
    assert.equal(err.code, 'RUN_LEASE_LOST');
    for (let i = 0; i < 200 && alive(pid); i++) await sleep(25);
    assert.ok(!alive(pid), 'its job was stopped');
    // Nothing the old runner wrote after the takeover was applied: the attempt and unit are as
    // the new holder will find them (open, running), not "canceled" by the old one.
    const [after] = await store.attempts(rec.id);
    assert.equal(after!.endedAt, null);
    const [u] = await store.units(rec.id);
    assert.ok(u!.state === 'starting' || u!.state === 'running', `unit is ${u!.state}: the old runner's end was applied`);
    await assert.rejects(store.write({ units: [{ workflowId: rec.id, unit: { ...u!, state: 'failed' } }], fence: { workflowId: rec.id, term: 1 } }), (e: unknown) => (e as { code?: string }).code === 'STORE_FENCED');
  } finally {
    await store.close();
    t.cleanup();
  }
});
