import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { SqliteStore, openStore } from '../../src/store/index.js';
import { record, storeContract } from './contract.js';
import { tempDir } from '../helpers.js';

const uniq = () => randomUUID().replace(/-/g, '').slice(0, 12);

describe('SqliteStore', () => {
  const t = tempDir();
  after(t.cleanup);
  storeContract('sqlite', async () => new SqliteStore(join(t.dir, 'warren.db')), uniq);
});

// A real PostgreSQL on loopback (scripts/test.sh makes sure it runs). A fresh database per run.
describe('PgStore', () => {
  const admin = process.env.WARREN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const db = `warren_test_${uniq()}`;
  const u = new URL(admin);
  u.pathname = `/${db}`;
  const url = u.toString();
  before(async () => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`CREATE DATABASE ${db}`);
    await c.end();
  });
  after(async () => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await c.end();
  });
  storeContract('postgres', () => openStore(url), uniq);
});

// Separate processes (separate SQLite connections and locks) racing for one run's lease.
describe('SqliteStore across processes', () => {
  const t = tempDir();
  after(t.cleanup);
  test('6 processes acquire the same lease at once: exactly one wins', async () => {
    const path = join(t.dir, 'race.db');
    const s = new SqliteStore(path, { reserveBytes: 0 });
    await s.createWorkflow(record('race00000001'), []);
    await s.close();
    const mod = new URL('../../src/store/index.js', import.meta.url).href;
    const start = Date.now() + 1500;
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(mod)});
      const s = new SqliteStore(${JSON.stringify(path)}, { reserveBytes: 0 });
      while (Date.now() < ${start}) await new Promise((r) => setTimeout(r, 1));
      const r = await s.acquireRunLease('race00000001', 'host:' + process.pid + ':x', 60000, ${start});
      await s.close();
      process.stdout.write(JSON.stringify(r));`;
    const run = () =>
      new Promise<{ ok: boolean }>((resolve, reject) => {
        const c = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
        c.on('close', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve(JSON.parse(out));
          else reject(new Error(`child exited ${code}`));
        });
      });
    const results = await Promise.all(Array.from({ length: 6 }, run));
    assert.equal(results.filter((r) => r.ok).length, 1);
    const s2 = new SqliteStore(path, { reserveBytes: 0 });
    try {
      assert.equal((await s2.getWorkflow('race00000001'))!.lease!.term, 1);
    } finally {
      await s2.close();
    }
  });
});
