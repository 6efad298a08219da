// A damaged warren.db is a clear STORE_CORRUPT (where the file is, what to do), never
// WARREN_INTERNAL, and Warren leaves the file exactly as it was.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/index.js';
import type { UnitSnapshot } from '../../src/engine/index.js';
import { tempDir } from '../helpers.js';
import { record } from './contract.js';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const isCorrupt = (path: string) => (e: unknown) => {
  const w = e as { code?: string; message?: string; hint?: string; details?: { path?: string } };
  return w.code === 'STORE_CORRUPT' && w.details?.path === path && w.message!.includes(path) && w.hint!.includes(path) && /backup/.test(w.hint!) && /never deletes/.test(w.hint!);
};

/** A real store with enough rows to span many pages, closed (WAL checkpointed into the file). */
async function makeDb(path: string): Promise<void> {
  const s = new SqliteStore(path, { reserveBytes: 0 });
  const units: UnitSnapshot[] = Array.from({ length: 3000 }, (_, i) => ({
    key: `job[${i}]`, kind: 'job', job: 'job', task: i, state: 'pending', attempt: 0,
    exitCode: null, reason: null, message: `a message long enough to fill pages ${'x'.repeat(40)}`, startedAt: null, endedAt: null,
  }));
  await s.createWorkflow(record('corruptme0001'), units);
  await s.close();
}

describe('SQLite store: damaged files', () => {
  const t = tempDir();
  after(t.cleanup);

  test('garbage bytes: STORE_CORRUPT, file untouched', () => {
    const p = join(t.dir, 'garbage.db');
    writeFileSync(p, randomBytes(64 * 1024));
    const before = sha(p);
    assert.throws(() => new SqliteStore(p), isCorrupt(p));
    assert.equal(sha(p), before);
  });

  test('not a database (a text file): STORE_CORRUPT', () => {
    const p = join(t.dir, 'notes.db');
    writeFileSync(p, 'these are my notes, not a database\n');
    assert.throws(() => new SqliteStore(p), isCorrupt(p));
    assert.equal(readFileSync(p, 'utf8'), 'these are my notes, not a database\n');
  });

  test('a truncated database: STORE_CORRUPT, file untouched', async () => {
    const p = join(t.dir, 'trunc.db');
    await makeDb(p);
    truncateSync(p, Math.floor(statSync(p).size / 2 / 4096) * 4096);
    const before = sha(p);
    assert.throws(() => new SqliteStore(p), isCorrupt(p));
    assert.equal(sha(p), before);
  });

  test('a header cut short: STORE_CORRUPT', async () => {
    const p = join(t.dir, 'short.db');
    await makeDb(p);
    truncateSync(p, 50);
    assert.throws(() => new SqliteStore(p), isCorrupt(p));
  });

  test('damaged pages inside an intact file: reads are STORE_CORRUPT, not an internal error', async () => {
    const p = join(t.dir, 'pages.db');
    await makeDb(p);
    const size = statSync(p).size;
    const fd = openSync(p, 'r+');
    for (let off = 2 * 4096; off < size; off += 4096) writeSync(fd, randomBytes(4096), 0, 4096, off);
    closeSync(fd);
    let s: SqliteStore | undefined;
    try {
      s = new SqliteStore(p, { reserveBytes: 0 });
    } catch (e) {
      assert.ok(isCorrupt(p)(e), String(e)); // found at open: fine too
      return;
    }
    try {
      await assert.rejects(s.units('corruptme0001'), isCorrupt(p));
    } finally {
      await s.close();
    }
  });
});
