// Databases written by the first release (schema v1: test/store/fixtures) are migrated on
// open, in SQLite and in PostgreSQL; a database of a newer schema is refused.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import { SCHEMA_VERSION, SqliteStore, openStore, type Store } from '../../src/store/index.js';
import { repoRoot, tempDir } from '../helpers.js';
import { att } from './contract.js';

const fixture = (name: string) => readFileSync(join(repoRoot, 'test', 'store', 'fixtures', name), 'utf8');
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
const W1 = 'a1b2c3d4e5f60001';
const W2 = 'a1b2c3d4e5f60002';
const W3 = 'b9c8d7e6f5a40003';

/** Every record of the fixture, read back through today's store. */
async function checkV1Records(s: Store): Promise<void> {
  const w1 = (await s.getWorkflow(W1))!;
  assert.deepEqual(w1, {
    id: W1, name: 'wf-a1b2', file: `/home/alice/${W1}.yaml`, status: 'failed',
    spec: { name: 'wf-a1b2', dialect: 'v1', volumes: {}, jobs: {}, policy: {} },
    options: { failFast: true, cores: 4 }, runDir: `/home/alice/.local/share/warren/runs/${W1}`,
    createdAt: 1_700_000_000_000, startedAt: 1_700_000_000_500, endedAt: 1_700_000_007_000, cancelRequested: false, lease: null,
  });
  const w2 = (await s.getWorkflow(W2))!;
  assert.equal(w2.status, 'running');
  assert.equal(w2.cancelRequested, true);
  assert.equal(w2.lease, null, 'the old runner pid/host become no lease: nobody holds it');
  const w3 = (await s.getWorkflow('b9c8'))!;
  assert.deepEqual([w3.id, w3.file, w3.status, w3.options, w3.startedAt], [W3, null, 'pending', {}, null]);
  assert.deepEqual((await s.listWorkflows()).map((w) => w.id), [W3, W2, W1]);

  assert.deepEqual((await s.units(W1)).map((u) => [u.key, u.state, u.attempt, u.exitCode, u.message]), [
    ['a', 'succeeded', 1, 0, null],
    ['b', 'failed', 2, 3, 'exit status 3'],
  ]);
  assert.deepEqual((await s.units(W2)).map((u) => [u.key, u.task, u.state]), [
    ['prep', null, 'succeeded'], ['sim[0]', 0, 'running'], ['sim[1]', 1, 'pending'], ['sim[2]', 2, 'pending'],
  ]);
  assert.deepEqual(await s.attempts(W1), [
    att(W1, 'a', 1, { startedAt: 1_700_000_001_000, endedAt: 1_700_000_004_000, exitCode: 0, reason: 'exit', pid: 4242 }),
    att(W1, 'b', 1, { startedAt: 1_700_000_004_500, endedAt: 1_700_000_004_900, signal: 'SIGKILL', reason: 'signal', message: 'killed', pid: 4243 }),
    att(W1, 'b', 2, { startedAt: 1_700_000_005_000, endedAt: 1_700_000_007_000, exitCode: 3, reason: 'exit', message: 'exit status 3', pid: 4250 }),
  ]);
  assert.deepEqual(await s.attempts(W2, 'sim[0]'), [att(W2, 'sim[0]', 1, { startedAt: 1_700_000_102_000, pid: 5001 })]);
  assert.deepEqual((await s.events(W1)).map((e) => [e.key, e.level, e.message]), [
    ['a', 'info', 'a started'], ['b', 'warn', 'b retrying (1/2)'], [null, 'error', "it's failed: b"],
  ]);
  assert.deepEqual(await s.jobHistory('a'), [3]);
  assert.deepEqual(await s.jobHistory('prep'), [1]);

  // The migrated runs work with today's features: a lease (term 1), fenced writes, new events after the old ones.
  const l = await s.acquireRunLease(W2, 'login02:777:ab', 10_000, Date.now());
  assert.ok(l.ok && l.lease.term === 1);
  await s.write({
    fence: { workflowId: W2, term: 1 },
    units: [{ workflowId: W2, unit: { ...(await s.units(W2))[1]!, state: 'succeeded', exitCode: 0, endedAt: 1_700_000_200_000 } }],
    attempts: [att(W2, 'sim[0]', 1, { endedAt: 1_700_000_200_000, exitCode: 0, reason: 'exit', term: 1 })],
    events: [{ workflowId: W2, at: 1_700_000_200_000, key: 'sim[0]', level: 'info', message: 'after migration' }],
  });
  assert.deepEqual((await s.events(W2)).map((e) => e.message), ['sim[0] started', 'after migration']);
  assert.equal((await s.attempts(W2, 'sim[0]'))[0]!.exitCode, 0);
}

describe('SQLite schema migration', () => {
  const t = tempDir();
  after(t.cleanup);

  test('a v1 warren.db (user_version 0) is migrated on open: every record survives, new columns have defaults', async () => {
    const path = join(t.dir, 'v1', 'warren.db');
    const s0 = new SqliteStore(join(t.dir, 'v1', 'x.db'), { reserveBytes: 0 }); // makes the directory
    await s0.close();
    const raw = new Database(path);
    raw.exec(fixture('v1.sqlite.sql'));
    assert.equal(raw.pragma('user_version', { simple: true }), 0);
    raw.close();
    const s = new SqliteStore(path, { reserveBytes: 0 });
    try {
      await checkV1Records(s);
    } finally {
      await s.close();
    }
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    const cols = (db.prepare(`SELECT name FROM pragma_table_info('workflows')`).all() as { name: string }[]).map((c) => c.name);
    assert.ok(cols.includes('lease_term') && !cols.includes('runner_pid') && !cols.includes('runner_host'), cols.join(','));
    db.close();
    // opening again changes nothing
    const again = new SqliteStore(path, { reserveBytes: 0 });
    assert.equal((await again.getWorkflow(W1))!.status, 'failed');
    await again.close();
  });

  test('a fresh database gets the current schema version', async () => {
    const path = join(t.dir, 'fresh.db');
    const s = new SqliteStore(path, { reserveBytes: 0 });
    await s.close();
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    db.close();
  });

  test('a database of a newer schema is refused (STORE_SCHEMA_NEWER) and left as it is', async () => {
    const path = join(t.dir, 'newer.db');
    const raw = new Database(path);
    raw.exec(`CREATE TABLE future (x INTEGER); PRAGMA user_version = ${SCHEMA_VERSION + 7};`);
    raw.close();
    const before = createHash('sha256').update(readFileSync(path)).digest('hex');
    assert.throws(
      () => new SqliteStore(path, { reserveBytes: 0 }),
      (e: Error & { code?: string; hint?: string }) =>
        e.code === 'STORE_SCHEMA_NEWER' && e.message.includes(path) && e.message.includes(String(SCHEMA_VERSION + 7)) && /upgrade Warren/.test(e.hint ?? ''),
    );
    assert.equal(createHash('sha256').update(readFileSync(path)).digest('hex'), before);
  });
});

describe('PostgreSQL schema migration', () => {
  const admin = process.env.WARREN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const db = `warren_test_mig_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const u = new URL(admin);
  u.pathname = `/${db}`;
  const url = u.toString();
  const sql = async (target: string, text: string) => {
    const c = new pg.Client({ connectionString: target });
    await c.connect();
    try {
      return await c.query(text);
    } finally {
      await c.end();
    }
  };
  before(async () => {
    await sql(admin, `CREATE DATABASE ${db}`);
  });
  after(async () => {
    await sql(admin, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  });

  test('a v1 database (no warren_schema table) is migrated on open: every record survives', async () => {
    await sql(url, fixture('v1.pg.sql'));
    const s = await openStore(url);
    try {
      await checkV1Records(s);
    } finally {
      await s.close();
    }
    assert.deepEqual((await sql(url, 'SELECT version FROM warren_schema')).rows, [{ version: SCHEMA_VERSION }]);
    const cols = (await sql(url, `SELECT column_name FROM information_schema.columns WHERE table_name='workflows'`)).rows.map((r) => r.column_name);
    assert.ok(cols.includes('lease_owner') && !cols.includes('runner_pid'), cols.join(','));
    // concurrent opens of a migrated database: all fine, nothing applied twice
    const many = await Promise.all([openStore(url), openStore(url), openStore(url)]);
    await Promise.all(many.map((m) => m.close()));
    assert.deepEqual((await sql(url, 'SELECT version FROM warren_schema')).rows, [{ version: SCHEMA_VERSION }]);
  });

  test('a database of a newer schema is refused (STORE_SCHEMA_NEWER)', async () => {
    await sql(url, `UPDATE warren_schema SET version = ${SCHEMA_VERSION + 1}`);
    await assert.rejects(openStore(url), (e: Error & { code?: string }) => code('STORE_SCHEMA_NEWER')(e) && e.message.includes(db));
    await sql(url, `UPDATE warren_schema SET version = ${SCHEMA_VERSION}`);
  });
});
