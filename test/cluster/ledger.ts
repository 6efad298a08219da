// What the cluster fault tests share: a fresh database per test on the private PostgreSQL,
// jobs that record their start and end in the cluster's ledger file (so "no job ran twice"
// is read off what really ran, not off Warren's own records), and `warren status --json`.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg_ from 'pg';
import type { PgInstance } from '../helpers/pg.js';
import type { TestCluster } from './harness.js';
const { Client } = pg_;

export interface ClusterStatus {
  id: string;
  status: string;
  jobs: { name: string; task: number | null; status: string; attempts: number }[];
}

/** A new database on the private PostgreSQL: each test is a new cluster. */
export async function freshDatabase(pg: PgInstance): Promise<{ name: string; url: string }> {
  const name = `w${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const client = new Client({ connectionString: pg.url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return { name, url: pg.url.replace(/\/[^/]*$/, `/${name}`) };
}

/** A job that appends "start|end JOB ATTEMPT NODE" to the ledger around `body`. */
export function ledgerJob(c: TestCluster, name: string, body: string, extra = ''): string {
  return `  ${name}:
    command: [/bin/sh, -c, 'echo "start ${name} $WARREN_ATTEMPT $WARREN_NODE" >> ${c.ledger}; ${body}; echo "end ${name} $WARREN_ATTEMPT $WARREN_NODE" >> ${c.ledger}']
${extra}`;
}

/** Ledger lines that start with `prefix`. */
export function count(lines: string[], prefix: string): number {
  return lines.filter((l) => l.startsWith(prefix)).length;
}

/** Submit (detached) six 3 s ledger jobs a..f and a job after them; resolves with the workflow id. */
export async function submitSixJobs(c: TestCluster): Promise<string> {
  const flow = join(c.dir, 'flow.yaml');
  const jobs = ['a', 'b', 'c', 'd', 'e', 'f'].map((j) => ledgerJob(c, j, 'sleep 3')).join('');
  writeFileSync(flow, `version: v1\njobs:\n${jobs}  after:\n    command: [/bin/sh, -c, 'echo "start after" >> ${c.ledger}']\n    requires: [a, b, c, d, e, f]\n`);
  const sub = await c.cli(['run', '--detach', flow]);
  assert.equal(sub.code, 0, sub.stderr);
  return sub.stdout.trim();
}
