// Running a cluster day to day, end to end with the real CLI: a node's health check drains it
// (its output the reason) and undrains it when it passes again, never undoing an admin's
// drain; a hung check is killed and reported; the audit log records admin actions and actions
// on another user's behalf, refusals included, and is read with `warren audit list`.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from './harness.js';
import type { AuditEntry, NodeView } from '../../src/api/index.js';

type NodeJson = NodeView;
type AuditJson = AuditEntry;

/** Processes whose command line is exactly `sleep 611` (the hung check's). */
function hungSleeps(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8') !== 'sleep\u0000611\u0000') continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('operating a cluster: health checks and the audit log', () => {
  let c: TestCluster;
  // The checks' flag files (made before the cluster, whose agents' command lines name them).
  const flags = mkdtempSync(join(tmpdir(), 'warren-health-flags-'));
  const sick = join(flags, 'sick');
  const hang = join(flags, 'hang');
  before(async () => {
    c = await TestCluster.start({
      agents: 2,
      agentArgs: (i) =>
        i === 0
          ? ['--health-check', `test ! -e ${sick} || { cat ${sick}; exit 1; }`, '--health-interval', '1s']
          : ['--health-check', `test ! -e ${hang} || { echo probing the interconnect; exec sleep 611; }`, '--health-interval', '1s', '--health-timeout', '700ms'],
    });
    const a = await c.cli(['user', 'add', 'alice', '--unix-user', 'root']);
    assert.equal(a.code, 0, a.stderr);
    const r = await c.cli(['context', 'add', 'alice', '--server', c.url, '--token', a.stdout.trim(), '--ca', c.caFile]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await c?.close();
    rmSync(flags, { recursive: true, force: true });
  });

  const node = async (name: string): Promise<NodeJson> => (await c.json<NodeJson[]>(['node', 'list'])).find((n) => n.name === name)!;
  const audit = (args: string[] = []): Promise<AuditJson[]> => c.json<AuditJson[]>(['audit', 'list', ...args]);

  test('a failing health check drains its node with its output; work goes elsewhere; a pass undrains it', { timeout: 120_000 }, async () => {
    await c.until('both health checks to report', () => Promise.all([node('n1'), node('n2')]), (ns) => ns.every((n) => n.health?.ok === true && n.state === 'ready'));
    writeFileSync(sick, 'ECC errors on DIMM 3\n');
    const drained = await c.until('n1 drained by its health check', () => node('n1'), (n) => n.state === 'drained');
    assert.equal(drained.drainedBy, 'health');
    assert.match(drained.drainReason!, /health check failed: .* exited 1: ECC errors on DIMM 3/);
    assert.equal(drained.health?.ok, false);
    const text = await c.cli(['node', 'list']);
    assert.match(text.stdout, /n1 +drained[^\n]*\n +drained by its health check: health check failed: .*ECC errors on DIMM 3/);

    // Work placed now goes to n2 only.
    const flow = join(c.dir, 'health-flow.yaml');
    writeFileSync(flow, `version: v1\njobs:\n  t:\n    command: [/bin/sh, -c, 'echo "health $WARREN_NODE" >> ${c.ledger}']\n    task-array: {start: 1, end: 6}\n`);
    const run = await c.cli(['run', flow], { context: 'alice' });
    assert.equal(run.code, 0, run.stderr);
    const placed = c.ledgerLines().filter((l) => l.startsWith('health '));
    assert.equal(placed.length, 6);
    assert.deepEqual([...new Set(placed)], ['health n2'], 'a drained node takes no new work');

    rmSync(sick);
    const back = await c.until('n1 undrained once its check passes', () => node('n1'), (n) => n.state === 'ready');
    assert.equal(back.drainedBy, null);
    assert.equal(back.drainReason, null);

    // An admin's drain stays: neither a failing nor a passing check changes it.
    const d = await c.cli(['node', 'drain', 'n1', '--reason', 'DIMM swap, ticket 4711']);
    assert.equal(d.code, 0, d.stderr);
    writeFileSync(sick, 'still bad\n');
    await c.until('the failing check heard', () => node('n1'), (n) => n.health?.ok === false);
    rmSync(sick);
    await c.until('the passing check heard', () => node('n1'), (n) => n.health?.ok === true);
    const kept = await node('n1');
    assert.equal(kept.state, 'drained');
    assert.equal(kept.drainedBy, 'admin');
    assert.equal(kept.drainReason, 'DIMM swap, ticket 4711');
    assert.equal((await c.cli(['node', 'undrain', 'n1'])).code, 0);
    assert.equal((await node('n1')).state, 'ready');

    // The health check's drains are in the audit log, as the node's.
    const mine = await audit(['--user', 'node:n1']);
    assert.deepEqual(mine.map((e) => [e.action, e.target, e.source, e.result]), [
      ['node.drain', 'n1', 'health-check', 'ok'],
      ['node.undrain', 'n1', 'health-check', 'ok'],
    ]);
    assert.match(String(mine[0]!.details.output), /ECC errors on DIMM 3/);
  });

  test('a health check that hangs is killed after its timeout (with what it started) and drains the node', { timeout: 120_000 }, async () => {
    writeFileSync(hang, '');
    const n = await c.until('n2 drained: its check hangs', () => node('n2'), (x) => x.state === 'drained');
    assert.equal(n.drainedBy, 'health');
    assert.match(n.drainReason!, /timed out after \d+ s and was killed: probing the interconnect \| the health check did not end within 700 ms: it was killed/);
    rmSync(hang);
    await c.until('n2 undrained', () => node('n2'), (x) => x.state === 'ready');
    // Every hung check was killed: none of their sleeps is left (a check runs every second).
    await c.until('no hung check left', async () => hungSleeps(), (ps) => ps.length === 0, 10_000);
    // The agent says so in its own log.
    assert.match(c.agentLogs[1]!, /health check failed \(`test ! -e [^`]*`, timed out and killed\): probing the interconnect/);
  });

  test('the audit log: admin actions, actions on another user\'s behalf and refusals, with who, what, from where and the result', { timeout: 120_000 }, async () => {
    const since = new Date(Date.now() - 1000).toISOString().slice(0, 19);
    // Admin actions.
    const tok = await c.cli(['token', 'create', '--ttl', '5m', '--json']);
    assert.equal(tok.code, 0, tok.stderr);
    const tokenId = (JSON.parse(tok.stdout) as { id: string }).id;
    assert.equal((await c.cli(['token', 'revoke', tokenId])).code, 0);
    assert.equal((await c.cli(['user', 'add', 'carol', '--unix-user', 'root'])).code, 0);
    assert.equal((await c.cli(['user', 'add', 'carol'])).code, 2, 'taken: refused');
    assert.equal((await c.cli(['user', 'remove', 'carol'])).code, 0);
    // A user trying an admin's verb: refused, and written down.
    const no = await c.cli(['node', 'drain', 'n2'], { context: 'alice' });
    assert.equal(no.code, 2);
    assert.match(no.stderr, /AUTH_FORBIDDEN/);
    // An admin canceling alice's workflow is an action on her behalf; alice canceling her own is not.
    const flow = join(c.dir, 'long.yaml');
    writeFileSync(flow, 'version: v1\njobs:\n  long:\n    command: [sleep, "30"]\n');
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await c.cli(['run', '--detach', flow], { context: 'alice' });
      assert.equal(r.code, 0, r.stderr);
      ids.push(r.stdout.trim());
    }
    assert.equal((await c.cli(['cancel', ids[0]!])).code, 0);
    assert.equal((await c.cli(['cancel', ids[1]!], { context: 'alice' })).code, 0);

    const all = await audit(['--since', since]);
    const rows = all.filter((e) => !e.actor.startsWith('node:')).map((e) => [e.actor, e.action, e.target, e.result]);
    const admin = userInfo().username; // the first admin: the account running the server
    assert.deepEqual(rows, [
      [admin, 'token.create', null, 'ok'],
      [admin, 'token.revoke', tokenId, 'ok'],
      [admin, 'user.add', 'carol', 'ok'],
      [admin, 'user.add', 'carol', 'AUTH_USER_EXISTS'],
      [admin, 'user.remove', 'carol', 'ok'],
      ['alice', 'api POST /api/v1/nodes/:name/drain', null, 'AUTH_FORBIDDEN'],
      [admin, 'workflow.cancel', ids[0], 'ok'],
    ]);
    for (const e of all) assert.ok(e.source === '127.0.0.1' || e.source === 'health-check', `from where: ${e.source}`);
    assert.equal(all.find((e) => e.action === 'workflow.cancel')!.details.owner, 'alice');
    assert.equal(all.find((e) => e.action === 'user.add')!.details.unixUser, 'root');
    // Filters: by user, by action family, by time.
    assert.deepEqual((await audit(['--since', since, '--user', 'alice'])).map((e) => e.result), ['AUTH_FORBIDDEN']);
    assert.deepEqual((await audit(['--since', since, '--action', 'user.'])).map((e) => e.action), ['user.add', 'user.add', 'user.remove']);
    assert.deepEqual(await audit(['--since', '1m', '--user', 'nobody']), []);
    const table = await c.cli(['audit', 'list', '--since', since]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^TIME \(UTC\) +WHO +ACTION +TARGET +FROM +RESULT +DETAILS\n/);
    assert.match(table.stdout, /alice +api POST \/api\/v1\/nodes\/:name\/drain/);

    // Only admins read it.
    const denied = await c.cli(['audit', 'list'], { context: 'alice' });
    assert.equal(denied.code, 2);
    assert.match(denied.stderr, /AUTH_FORBIDDEN/);
  });

  test('bad audit queries get a clear error and a hint', { timeout: 60_000 }, async () => {
    for (const [args, re] of [
      [['--since', '2026-02-30'], /--since "2026-02-30" is not a date that exists/],
      [['--since', 'yesterday'], /--since "yesterday" is not a time or an age/],
      [['--since', '2026-12-01T25:00'], /not a date that exists/],
      [['--since', '12x'], /is not a time or an age/],
      [['--since', '2999-01-01'], /--since 2999-01-01 is in the future/],
      [['--since', '2h', '--until', '3h'], /--until 3h is not after --since 2h/],
      [['--limit', '0'], /--limit must be a whole number from 1 to 10000/],
      [['--action', 'DROP TABLE'], /--action "DROP TABLE" is not an action/],
    ] as const) {
      const r = await c.cli(['audit', 'list', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /CLI_BAD_OPTION/);
      assert.match(r.stderr, /hint|give|e\.g\./i);
    }
  });
});
