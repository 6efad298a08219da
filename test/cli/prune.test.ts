// `warren prune` on this machine, through the real CLI: real runs in the embedded SQLite store,
// a running workflow in another `warren run` process. Finished workflows go with their rows and
// run directories; running work is never pruned (kept and counted by --older-than, refused by
// id); bad input is refused with a catalogued error and a hint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, warrenBin } from '../helpers.js';

interface Res {
  code: number | null;
  stdout: string;
  stderr: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('warren prune on this machine: finished workflows go with their run directories; running work is kept, and refused by id', { timeout: 120_000 }, async () => {
  const t = tempDir('warren-prune-cli-');
  const home = join(t.dir, 'home');
  const warren = (args: string[]): Res => {
    const r = spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home, WARREN_CONTEXT: '', HOME: t.dir }, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const flow = (name: string, body: string): string => {
    const f = join(t.dir, `${name}.yaml`);
    writeFileSync(f, `version: v1\njobs:\n${body}`);
    return f;
  };
  let long: ReturnType<typeof spawn> | null = null;
  try {
    const ok = warren(['run', '--json', flow('ok', '  hello:\n    command: [/bin/sh, -c, "echo hello; echo err >&2"]\n  arr:\n    command: [/bin/sh, -c, "echo task $WARREN_TASK_ID"]\n    task-array: {start: 0, end: 4}\n')]);
    assert.equal(ok.code, 0, ok.stderr);
    const okId = JSON.parse(ok.stdout).id as string;
    const bad = warren(['run', '--json', flow('bad', '  boom:\n    command: [/bin/sh, -c, "echo no; exit 3"]\n')]);
    assert.equal(bad.code, 1, bad.stderr);
    const badId = JSON.parse(bad.stdout).id as string;
    assert.ok(existsSync(join(home, 'runs', okId, 'logs', 'hello.out')));
    // A workflow running in another process (it holds its lease).
    long = spawn('node', [warrenBin, 'run', flow('long', '  nap:\n    command: [/bin/sh, -c, "echo napping; exec sleep 60"]\n')], { env: { ...process.env, WARREN_HOME: home, WARREN_CONTEXT: '', HOME: t.dir }, stdio: 'ignore' });
    let longId = '';
    for (let i = 0; i < 200 && !longId; i++) {
      await sleep(100);
      const l = warren(['list', '--json']);
      const running = l.code === 0 ? (JSON.parse(l.stdout) as { id: string; status: string; name: string }[]).find((w) => w.status === 'running') : undefined;
      if (running && existsSync(join(home, 'runs', running.id, 'logs', 'nap.out'))) longId = running.id;
    }
    assert.ok(longId, 'the long workflow runs');
    const before = JSON.parse(warren(['status', longId, '--json']).stdout);

    // Bad input: a catalogued error with a hint, nothing removed.
    const notDuration = warren(['prune', '--older-than', '5 parsecs']);
    assert.equal(notDuration.code, 2);
    assert.match(notDuration.stderr, /error\[CLI_BAD_OPTION\]: --older-than takes a duration, not "5 parsecs"/);
    assert.match(notDuration.stderr, /hint: e\.g\. --older-than 30d, 12h or 90m/);
    const negative = warren(['prune', '--older-than', '-1d']);
    assert.equal(negative.code, 2);
    const both = warren(['prune', okId, '--older-than', '1d']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /error\[CLI_BAD_OPTION\]: give workflow ids or --older-than, not both/);
    const neither = warren(['prune']);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /error\[CLI_BAD_OPTION\]: say what to prune/);
    const unknown = warren(['prune', 'nosuchworkflow']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /error\[RUN_NOT_FOUND\]/);
    // Running work is never pruned: by id it is refused, with what to do.
    const refused = warren(['prune', longId]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`error\\[RUN_PRUNE_RUNNING\\]: workflow ${longId} is running: running work is never pruned`));
    assert.match(refused.stderr, new RegExp(`hint: cancel it first \\(\`warren cancel ${longId}\`\\)`));
    // A cutoff in the past of every workflow: nothing to prune.
    const none = warren(['prune', '--older-than', '1h']);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /nothing to prune: no finished workflow that ended before .* \(1h ago\)/);

    // A dry run counts and removes nothing.
    const dry = warren(['prune', '--older-than', '0', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const d = JSON.parse(dry.stdout);
    assert.equal(d.dryRun, true);
    assert.equal(d.workflows, 2);
    assert.equal(d.units, 1 + 5 + 1, 'hello, the 5 tasks of the array (each got a row when it started), boom');
    assert.equal(d.keptRunning, 1);
    assert.ok(existsSync(join(home, 'runs', okId)));
    assert.equal(warren(['status', okId]).code, 0);

    // --older-than 0: every finished workflow goes; the running one stays whole.
    const p = warren(['prune', '--older-than', '0']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /pruned 2 workflows that ended \(--older-than 0: every finished one\): \d+ units \(jobs, tasks, transfers\), \d+ attempts, \d+ events, \d+ job history rows; 2 run directories \(.*\) on this machine/);
    assert.match(p.stdout, /kept 1 running or pending workflow started before the cutoff: running work is never pruned/);
    for (const id of [okId, badId]) {
      assert.ok(!existsSync(join(home, 'runs', id)), `${id}'s run directory is gone`);
      const st = warren(['status', id]);
      assert.equal(st.code, 2);
      assert.match(st.stderr, /error\[RUN_NOT_FOUND\]/);
    }
    const after = JSON.parse(warren(['status', longId, '--json']).stdout);
    assert.equal(after.status, 'running');
    assert.equal(before.jobs.length, 1);
    assert.equal(before.jobs[0].status, 'running');
    assert.deepEqual(after.jobs, before.jobs, 'the running workflow keeps its job, its state and attempts');
    assert.ok(existsSync(join(home, 'runs', longId, 'logs', 'nap.out')), 'and its run directory');

    // Once it ended it can be pruned by id.
    const c = warren(['cancel', longId]);
    assert.equal(c.code, 0, c.stderr);
    // Wait until it ended and its runner let go of it (the process exits after releasing its lease;
    // `status --json` has no lease field to poll).
    for (let i = 0; i < 200 && long.exitCode === null && long.signalCode === null; i++) await sleep(100);
    assert.notEqual(long.exitCode ?? long.signalCode, null, 'the canceled run ends');
    assert.notEqual(JSON.parse(warren(['status', longId, '--json']).stdout).status, 'running');
    const byId = warren(['prune', longId.slice(0, 8), '--json']);
    assert.equal(byId.code, 0, byId.stderr);
    const r = JSON.parse(byId.stdout);
    assert.deepEqual([r.workflows, r.removed, r.runDirs], [1, [longId], 1]);
    assert.ok(!existsSync(join(home, 'runs', longId)));
    assert.match(warren(['list']).stdout + warren(['list']).stderr, /no workflows|^\s*$/i);
  } finally {
    if (long?.pid && long.exitCode === null) long.kill('SIGKILL');
    t.cleanup();
  }
});
