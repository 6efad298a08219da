// Retention in a cluster, end to end with the real CLI: `warren server --retain` prunes
// finished workflows (their rows, and the nodes' run directories through a prune order) while
// a workflow running longer than the retention stays whole; `warren agent --retain` removes
// finished runs' directories on its node before the server forgets them (it asks the server
// which runs ended); `warren prune` by id is refused for running work; bad input is refused.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from './harness.js';
import { warrenBin, tempDir } from '../helpers.js';

interface StatusJson {
  id: string;
  status: string;
  jobs: { name: string; status: string; attempts: number; startedAt: string | null }[];
}

describe('retention in a cluster', () => {
  let c: TestCluster;
  const SERVER_RETAIN_S = 20;
  const AGENT_RETAIN_S = 8;
  before(async () => {
    c = await TestCluster.start({ agents: 1, serverArgs: ['--retain', `${SERVER_RETAIN_S}s`], agentArgs: () => ['--retain', `${AGENT_RETAIN_S}s`, '--disk-budget', '10GiB'] });
    const a = await c.cli(['user', 'add', 'alice', '--unix-user', 'root']);
    assert.equal(a.code, 0, a.stderr);
    const r = await c.cli(['context', 'add', 'alice', '--server', c.url, '--token', a.stdout.trim(), '--ca', c.caFile]);
    assert.equal(r.code, 0, r.stderr);
    await c.waitReady(1);
  });
  after(async () => {
    await c?.close();
  });

  const runDir = (id: string) => join(c.dir, 'agent0', 'runs', id);
  const flow = (name: string, yaml: string): string => {
    const f = join(c.dir, `${name}.yaml`);
    writeFileSync(f, yaml);
    return f;
  };
  const status = async (id: string): Promise<{ code: number | null; st?: StatusJson; stderr: string }> => {
    const r = await c.cli(['status', id, '--json']);
    return { code: r.code, stderr: r.stderr, ...(r.code === 0 ? { st: JSON.parse(r.stdout) as StatusJson } : {}) };
  };

  test('the server prunes finished workflows after --retain (rows and the node\'s copies), the node its own runs after its --retain; running work stays whole', { timeout: 150_000 }, async () => {
    const quick = flow('quick', 'version: v1\njobs:\n  hello:\n    command: [/bin/sh, -c, "echo hello from $WARREN_NODE"]\n');
    const runQuick = async (): Promise<string> => {
      const r = await c.cli(['run', '--json', quick]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { id: string }).id;
    };
    const t0 = Date.now();
    const long = await c.cli(['run', '--detach', flow('long', 'version: v1\njobs:\n  nap:\n    command: [/bin/sh, -c, "echo napping; exec sleep 300"]\n')]);
    assert.equal(long.code, 0, long.stderr);
    const longId = long.stdout.trim();
    const a = await runQuick();
    const b = await runQuick();
    assert.ok(existsSync(join(runDir(a), 'logs', 'hello.out')) && existsSync(join(runDir(b), 'logs', 'hello.out')), 'the node keeps the runs\' logs');
    const before = await c.until('the long workflow to run', () => status(longId), (s) => s.st?.jobs[0]?.status === 'running');

    // By hand, at once: the node is told to delete its copy (well before its own retention).
    const pa = await c.cli(['prune', a, '--json']);
    assert.equal(pa.code, 0, pa.stderr);
    assert.deepEqual(JSON.parse(pa.stdout).removed, [a]);
    await c.until('the node to delete the pruned run\'s directory', async () => existsSync(runDir(a)), (x) => !x, (AGENT_RETAIN_S - 2) * 1000);
    assert.equal((await status(a)).code, 2);

    // The node's own retention: b's directory goes after AGENT_RETAIN_S, while the server still has b.
    await c.until('the node\'s retention to remove b\'s run directory', async () => existsSync(runDir(b)), (x) => !x, 30_000);
    const still = await status(b);
    assert.equal(still.code, 0, `the server still has b: ${still.stderr}`);
    assert.equal(still.st?.status, 'succeeded');
    // The server's retention: b goes after SERVER_RETAIN_S.
    await c.until('the server to prune b', () => status(b), (s) => s.code === 2 && /RUN_NOT_FOUND/.test(s.stderr), 40_000);

    // The long workflow is older than both retentions now, and untouched.
    assert.ok(Date.now() - t0 > SERVER_RETAIN_S * 1000);
    const now = await status(longId);
    assert.equal(now.st?.status, 'running');
    assert.deepEqual(now.st?.jobs, before.st?.jobs, 'its jobs, states and attempts are all there');
    assert.ok(existsSync(join(runDir(longId), 'logs', 'nap.out')), 'and its run directory on the node');
    assert.match(c.serverLog, /retention: pruned 1 workflow\(s\) .*; kept 1 running or pending workflow\(s\) older than that: running work is never pruned/);

    // By hand: --older-than 0 keeps it and says so; by id it is refused.
    const all = await c.cli(['prune', '--older-than', '0', '--json']);
    assert.equal(all.code, 0, all.stderr);
    const rep = JSON.parse(all.stdout);
    assert.equal(rep.keptRunning, 1);
    assert.ok(!rep.removed.includes(longId));
    const refused = await c.cli(['prune', longId]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /error\[RUN_PRUNE_RUNNING\]: workflow \S+ is running: running work is never pruned/);
    assert.match(refused.stderr, /hint: cancel it first/);
    // Pruning is for admins.
    const alice = await c.cli(['prune', '--older-than', '0'], { context: 'alice' });
    assert.equal(alice.code, 2);
    assert.match(alice.stderr, /AUTH_FORBIDDEN/);
    // The audit log: the admin's prune and the server's own.
    const audit = await c.json<{ actor: string; action: string; source: string | null; result: string; details: Record<string, unknown> }[]>(['audit', 'list', '--action', 'workflow.prune']);
    assert.ok(audit.some((e) => e.actor === 'server' && e.source === 'retention' && e.result === 'ok' && Number(e.details.workflows) === 1 && Number(e.details.keptRunning) === 1), JSON.stringify(audit));
    assert.ok(audit.some((e) => e.actor !== 'server' && e.result === 'ok'), JSON.stringify(audit));
    assert.ok(audit.some((e) => e.result === 'RUN_PRUNE_RUNNING'), 'the refusal is audited too');

    // Once it ended, it is pruned with everything it had.
    const cancel = await c.cli(['cancel', longId]);
    assert.equal(cancel.code, 0, cancel.stderr);
    await c.until('the long workflow to end and its runner to let go', () => c.cli(['prune', longId, '--json']), (r) => r.code === 0, 30_000);
    assert.equal((await status(longId)).code, 2);
    await c.until('the node to delete its run directory', async () => existsSync(runDir(longId)), (x) => !x, 15_000);
  });

  test('bad input: a --retain that is not a duration, a --disk-budget that is not a size', { timeout: 30_000 }, async () => {
    const t = tempDir('warren-retain-bad-');
    try {
      const env = { ...process.env, WARREN_HOME: join(t.dir, 'home'), XDG_CONFIG_HOME: join(t.dir, 'cfg') };
      const srv = spawnSync(process.execPath, [warrenBin, 'server', '--data', join(t.dir, 'srv'), '--listen', '127.0.0.1:0', '--retain', 'a month'], { env, encoding: 'utf8', timeout: 20_000 });
      assert.equal(srv.status, 2, srv.stderr);
      assert.match(srv.stderr, /error\[CLI_BAD_OPTION\]: --retain takes a duration of at least 1\.0s, not "a month"/);
      assert.match(srv.stderr, /hint: e\.g\. --retain 30d/);
      assert.ok(!existsSync(join(t.dir, 'srv', 'warren.db')), 'refused before it made anything');
      const zero = spawnSync(process.execPath, [warrenBin, 'server', '--data', join(t.dir, 'srv'), '--listen', '127.0.0.1:0', '--retain', '0'], { env, encoding: 'utf8', timeout: 20_000 });
      assert.equal(zero.status, 2, zero.stderr);
      const agent = spawnSync(process.execPath, [warrenBin, 'agent', '--server', c.url, '--data', join(t.dir, 'agent'), '--name', 'nx', '--disk-budget', 'lots'], { env, encoding: 'utf8', timeout: 20_000 });
      assert.equal(agent.status, 2, agent.stderr);
      assert.match(agent.stderr, /error\[CLI_BAD_OPTION\]: --disk-budget takes a size of at least 1MiB, such as 50GiB or 500GB, not "lots"/);
      const ar = spawnSync(process.execPath, [warrenBin, 'agent', '--server', c.url, '--data', join(t.dir, 'agent'), '--name', 'nx', '--retain', '7 days'], { env, encoding: 'utf8', timeout: 20_000 });
      assert.equal(ar.status, 2, ar.stderr);
      assert.match(ar.stderr, /error\[CLI_BAD_OPTION\]: --retain takes a duration/);
    } finally {
      t.cleanup();
    }
  });
});
