import { describe, before, after } from 'node:test';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { SqliteStore, openStore } from '../../src/store/index.js';
import { storeContract } from './contract.js';
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
