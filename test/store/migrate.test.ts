// Databases written by earlier releases (schema v1 and v2: test/store/fixtures) are migrated
// on open, in SQLite and in PostgreSQL; a database of a newer schema is refused.
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
import { apiToken, att, node } from './contract.js';
import { createJoinToken, consumeJoinToken } from '../../src/mesh/index.js';

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
    createdAt: 1_700_000_000_000, startedAt: 1_700_000_000_500, endedAt: 1_700_000_007_000, cancelRequested: false, lease: null, owner: null,
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

const V1 = 'c0ffee0000000001';
const V2 = 'c0ffee0000000002';

/** Every record of the v2 fixture, read back through today's store, and v3's tables usable. */
async function checkV2Records(s: Store): Promise<void> {
  assert.deepEqual(await s.getWorkflow(V1), {
    id: V1, name: 'wf-v2a', file: '/home/bob/wf-v2a.yaml', status: 'succeeded',
    spec: { name: 'wf-v2a', dialect: 'v1', volumes: {}, jobs: {}, policy: {} },
    options: { failFast: false }, runDir: `/home/bob/.local/share/warren/runs/${V1}`,
    createdAt: 1_710_000_000_000, startedAt: 1_710_000_000_200, endedAt: 1_710_000_004_100, cancelRequested: false, lease: null, owner: null,
  });
  const w2 = (await s.getWorkflow('c0ffee0000000002'))!;
  assert.deepEqual([w2.status, w2.lease, w2.owner], ['running', { owner: 'node8:4300:cc33', term: 2, expiresAt: 1_710_000_215_000 }, null]);
  assert.deepEqual((await s.listWorkflows()).map((w) => w.id), [V2, V1]);
  assert.deepEqual((await s.units(V2)).map((u) => [u.key, u.state, u.attempt]), [['x', 'running', 1], ['y', 'pending', 0]]);
  assert.deepEqual(await s.attempts(V1), [
    att(V1, 'a', 1, { attemptId: 'att-v1-a-1', term: 1, cgroup: '/sys/fs/cgroup/warren/jobs/a', node: 'node7', startedAt: 1_710_000_001_000, endedAt: 1_710_000_003_000, exitCode: 0, reason: 'exit', pid: 6100 }),
    att(V1, 'b', 1, { attemptId: 'att-v1-b-1', term: 1, cgroup: '/sys/fs/cgroup/warren/jobs/b', node: 'node7', startedAt: 1_710_000_003_500, endedAt: 1_710_000_004_000, exitCode: 0, reason: 'exit', pid: 6101 }),
  ]);
  assert.deepEqual(await s.attempts(V2), [att(V2, 'x', 1, { attemptId: 'att-v2-x-1b', term: 2, cgroup: '/sys/fs/cgroup/warren/jobs/x', node: 'node8', startedAt: 1_710_000_201_000, pid: 7300 })]);
  assert.deepEqual((await s.events(V2)).map((e) => [e.level, e.message]), [['warn', 'taken over from node7:4200:bb22']]);
  assert.deepEqual(await s.jobHistory('b'), [0.5]);

  // The migrated runs have no owner: nobody's in cluster mode, everyone's without an owner filter.
  assert.equal(await s.getWorkflow(V1, { owner: 'bob' }), undefined);
  assert.deepEqual(await s.listWorkflows({ owner: 'bob' }), []);
  // The held lease (term 2) is taken over at its expiry with term 3; a fenced write of the old term is refused.
  const l = await s.acquireRunLease(V2, 'srv1:1:new', 10_000, 1_710_000_215_000);
  assert.ok(l.ok && l.lease.term === 3);
  await assert.rejects(s.write({ fence: { workflowId: V2, term: 2 }, events: [] }), code('STORE_FENCED'));
  // v3's tables are there and empty, and work.
  assert.deepEqual([await s.listUsers(), await s.listApiTokens(), await s.listNodes(), await s.joinTokens().list()], [[], [], [], []]);
  await s.addUser({ name: 'bob', unixUser: 'bob', admin: false, createdAt: 1 });
  await s.insertApiToken(apiToken('bob-secret', 'bob'));
  assert.equal((await s.listApiTokens('bob')).length, 1);
  await s.createWorkflow({ ...(await s.getWorkflow(V1))!, id: 'c0ffee0000000003', createdAt: 1_720_000_000_000, owner: 'bob' }, []);
  assert.deepEqual((await s.listWorkflows({ owner: 'bob' })).map((w) => w.id), ['c0ffee0000000003']);
  await s.upsertNode(node('node8'));
  assert.equal(await s.patchNode('node8', { state: 'down' }), true);
  const jt = await createJoinToken(s.joinTokens(), { ttlSeconds: 60, createdBy: 'admin' });
  assert.equal((await consumeJoinToken(s.joinTokens(), jt.token)).usesLeft, 0);
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
    assert.ok(cols.includes('lease_term') && cols.includes('owner') && !cols.includes('runner_pid') && !cols.includes('runner_host'), cols.join(','));
    db.close();
    // opening again changes nothing
    const again = new SqliteStore(path, { reserveBytes: 0 });
    assert.equal((await again.getWorkflow(W1))!.status, 'failed');
    await again.close();
  });

  test('a v2 warren.db (user_version 2) is migrated on open: every record and lease survives, the v3 tables work', async () => {
    const path = join(t.dir, 'v2', 'warren.db');
    const s0 = new SqliteStore(join(t.dir, 'v2', 'x.db'), { reserveBytes: 0 }); // makes the directory
    await s0.close();
    const raw = new Database(path);
    raw.exec(fixture('v2.sqlite.sql'));
    assert.equal(raw.pragma('user_version', { simple: true }), 2);
    raw.close();
    const s = new SqliteStore(path, { reserveBytes: 0 });
    try {
      await checkV2Records(s);
    } finally {
      await s.close();
    }
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type='table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    for (const want of ['users', 'api_tokens', 'join_tokens', 'nodes']) assert.ok(tables.includes(want), tables.join(','));
    db.close();
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
    assert.ok(cols.includes('lease_owner') && cols.includes('owner') && !cols.includes('runner_pid'), cols.join(','));
    // concurrent opens of a migrated database: all fine, nothing applied twice
    const many = await Promise.all([openStore(url), openStore(url), openStore(url)]);
    await Promise.all(many.map((m) => m.close()));
    assert.deepEqual((await sql(url, 'SELECT version FROM warren_schema')).rows, [{ version: SCHEMA_VERSION }]);
  });

  test('a v2 database (warren_schema 2) is migrated on open: every record and lease survives, the v3 tables work', async () => {
    const u2 = new URL(admin);
    u2.pathname = `/${db}_v2`;
    await sql(admin, `CREATE DATABASE ${db}_v2`);
    try {
      await sql(u2.toString(), fixture('v2.pg.sql'));
      assert.deepEqual((await sql(u2.toString(), 'SELECT version FROM warren_schema')).rows, [{ version: 2 }]);
      const s = await openStore(u2.toString());
      try {
        await checkV2Records(s);
      } finally {
        await s.close();
      }
      assert.deepEqual((await sql(u2.toString(), 'SELECT version FROM warren_schema')).rows, [{ version: SCHEMA_VERSION }]);
    } finally {
      await sql(admin, `DROP DATABASE IF EXISTS ${db}_v2 WITH (FORCE)`);
    }
  });

  test('a database of a newer schema is refused (STORE_SCHEMA_NEWER)', async () => {
    await sql(url, `UPDATE warren_schema SET version = ${SCHEMA_VERSION + 1}`);
    await assert.rejects(openStore(url), (e: Error & { code?: string }) => code('STORE_SCHEMA_NEWER')(e) && e.message.includes(db));
    await sql(url, `UPDATE warren_schema SET version = ${SCHEMA_VERSION}`);
  });
});
