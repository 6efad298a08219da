// Disk full on a real small tmpfs: the store keeps a reserve beside the database, a write that
// finds no space is all-or-nothing and rejects with STORE_DISK_FULL naming the directory,
// what was recorded before is intact, and after space is freed writes work and the reserve
// is made again. Needs root (mount); skipped with the reason otherwise.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BatchWriter, SqliteStore } from '../../src/store/index.js';
import type { UnitSnapshot } from '../../src/engine/index.js';
import { tempDir } from '../helpers.js';
import { att, record } from './contract.js';

const unit = (key: string, extra: Partial<UnitSnapshot> = {}): UnitSnapshot => ({
  key, kind: 'job', job: key, task: null, state: 'pending', attempt: 0,
  exitCode: null, reason: null, message: null, startedAt: null, endedAt: null, ...extra,
});

/** Write zeros into `path` until the file system is full. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, buf);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

/** A batch of `kb` KiB of events (to need more space than a full disk has). */
const events = (id: string, tag: string, kb: number) =>
  Array.from({ length: kb }, (_, i) => ({ workflowId: id, at: i, key: null, level: 'info' as const, message: `${tag} ${i} ${'e'.repeat(1000)}` }));

const root = process.getuid?.() === 0;

describe('SQLite store: disk full (tmpfs)', { skip: root ? false : 'needs root to mount a tmpfs' }, () => {
  const t = tempDir();
  const mnt = join(t.dir, 'fs');
  let mounted = false;
  before(() => {
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', mnt]);
    mounted = true;
  });
  after(() => {
    if (mounted) execFileSync('umount', [mnt]);
    t.cleanup();
  });

  test('reserve, STORE_DISK_FULL that says where, nothing lost, nothing half written, works again after freeing space', async () => {
    const path = join(mnt, 'warren.db');
    const reserve = `${path}.reserve`;
    let s = new SqliteStore(path, { reserveBytes: 1024 * 1024 });
    try {
      assert.equal(statSync(reserve).size, 1024 * 1024, 'the reserve is made on open');
      const id = 'diskfull00001';
      await s.createWorkflow(record(id), [unit('a'), unit('b')]);
      const aDone = unit('a', { state: 'succeeded', attempt: 1, exitCode: 0, reason: 'exit', startedAt: 1, endedAt: 2 });
      await s.write({ units: [{ workflowId: id, unit: aDone }], attempts: [att(id, 'a', 1, { startedAt: 1, endedAt: 2, exitCode: 0, reason: 'exit' })] });

      // A job fills the file system shared with the store.
      const filler = join(mnt, 'volume-output.bin');
      fill(filler);

      // This write does not fit: the store releases its reserve and the retry records it.
      const bRunning = unit('b', { state: 'running', attempt: 1, startedAt: 3 });
      await assert.rejects(
        s.write({ units: [{ workflowId: id, unit: bRunning }], events: events(id, 'first', 300) }),
        (e: Error & { code?: string; hint?: string; details?: Record<string, unknown> }) =>
          e.code === 'STORE_DISK_FULL' && e.details?.path === mnt && e.message.includes(mnt) && e.hint!.includes('warren resume') &&
          e.details?.recorded === true && e.details?.reserveReleased === true,
      );
      assert.equal(existsSync(reserve), false);
      assert.deepEqual((await s.units(id)).map((u) => u.state), ['succeeded', 'running'], 'the retry with the reserve committed it');
      assert.equal((await s.events(id)).length, 300);

      // The next one finds no reserve left: rejected, and none of it is written.
      await assert.rejects(
        s.write({ units: [{ workflowId: id, unit: unit('b', { state: 'succeeded', attempt: 1, exitCode: 0, startedAt: 3, endedAt: 4 }) }], events: events(id, 'second', 2000) }),
        (e: Error & { code?: string; details?: Record<string, unknown> }) => e.code === 'STORE_DISK_FULL' && e.details?.recorded === false,
      );
      assert.deepEqual(await s.units(id), [aDone, bRunning], 'what was recorded before is intact, no false state');
      assert.equal((await s.events(id)).filter((e) => e.message.startsWith('second')).length, 0);
      assert.deepEqual((await s.attempts(id)).map((a) => [a.key, a.endedAt]), [['a', 2]]);

      // A BatchWriter keeps what failed and writes it once space is back.
      const errors: unknown[] = [];
      const w = new BatchWriter(s, 10, { onError: (e) => errors.push(e) });
      w.unit(id, unit('b', { state: 'failed', attempt: 1, exitCode: 1, reason: 'exit', startedAt: 3, endedAt: 5 }));
      for (const e of events(id, 'third', 500)) w.event(e);
      await assert.rejects(w.flush(), (e: Error & { code?: string }) => e.code === 'STORE_DISK_FULL');
      assert.equal((await s.units(id))[1]!.state, 'running');

      rmSync(filler);
      await w.flush();
      assert.equal((await s.units(id))[1]!.state, 'failed');
      assert.equal((await s.events(id)).filter((e) => e.message.startsWith('third')).length, 500);
      await s.close();

      // Reopened with space: the reserve is back, everything is there.
      s = new SqliteStore(path, { reserveBytes: 1024 * 1024 });
      assert.equal(statSync(reserve).size, 1024 * 1024);
      assert.deepEqual((await s.units(id)).map((u) => u.state), ['succeeded', 'failed']);
    } finally {
      await s.close();
    }
  });

  test('no reserve is made where the file system has no room for it', async () => {
    const dir = join(mnt, 'tight');
    mkdirSync(dir);
    const s = new SqliteStore(join(dir, 'warren.db'), { reserveBytes: 64 * 1024 * 1024 });
    try {
      assert.equal(existsSync(join(dir, 'warren.db.reserve')), false);
      await s.createWorkflow(record('tight0001'), []);
      assert.equal((await s.getWorkflow('tight0001'))!.id, 'tight0001');
    } finally {
      await s.close();
    }
  });
});
