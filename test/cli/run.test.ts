// Integration tests of `warren run` and friends through the real CLI: real processes,
// the real SQLite store, signals, kill -9 and resume.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, warrenBin } from '../helpers.js';

interface Res {
  code: number | null;
  stdout: string;
  stderr: string;
}

function warren(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Res {
  const r = spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function warrenAsync(home: string, args: string[]): { child: ChildProcess; done: Promise<Res>; stderr: () => string } {
  const child = spawn('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Res>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done, stderr: () => stderr };
}

/** Is this process running (a zombie that nobody reaped yet counts as gone)? */
function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function withFlow(yaml: string, fn: (home: string, file: string, dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, 'flow.yaml');
      writeFileSync(file, yaml.replaceAll('$DIR', t.dir));
      await fn(join(t.dir, 'home'), file, t.dir);
    } finally {
      t.cleanup();
    }
  };
}

describe('warren run', () => {
  test(
    'a DAG with a task array succeeds; --json has the documented shape; logs and status work',
    { timeout: 60_000 },
    withFlow(
      `version: v1
jobs:
  first:
    command: [/bin/sh, -c, 'echo hello from first']
  arr:
    command: [/bin/sh, -c, 'echo task $FB_TASK_ID $WARREN_TASK_ID']
    task-array: {start: 1, end: 4, concurrency: 2}
    requires: [first]
  last:
    script: |
      #!/bin/sh
      echo done
    requires: [arr]
`,
      (home, file) => {
        const r = warren(home, ['run', file, '--json']);
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout);
        assert.equal(out.status, 'succeeded');
        assert.deepEqual(Object.keys(out).sort(), ['id', 'jobs', 'status']);
        assert.deepEqual(
          out.jobs.map((j: { name: string; task: number | null }) => [j.name, j.task]),
          [['first', null], ['arr', 1], ['arr', 2], ['arr', 3], ['arr', 4], ['last', null]],
        );
        for (const j of out.jobs) {
          assert.deepEqual(Object.keys(j).sort(), ['attempts', 'endedAt', 'exitCode', 'name', 'startedAt', 'status', 'task']);
          assert.equal(j.exitCode, 0);
          assert.equal(j.attempts, 1);
          assert.ok(Date.parse(j.endedAt) >= Date.parse(j.startedAt));
        }
        // jobs of arr started only after first ended; last after all of arr
        const first = out.jobs[0];
        const arr = out.jobs.slice(1, 5);
        assert.ok(arr.every((j: { startedAt: string }) => Date.parse(j.startedAt) >= Date.parse(first.endedAt)));
        assert.ok(arr.every((j: { endedAt: string }) => Date.parse(out.jobs[5].startedAt) >= Date.parse(j.endedAt)));
        assert.equal(warren(home, ['logs', out.id, 'first']).stdout, 'hello from first\n');
        assert.equal(warren(home, ['logs', out.id, 'arr:3']).stdout, 'task 3 3\n');
        assert.equal(warren(home, ['logs', out.id.slice(0, 8), 'last']).stdout, 'done\n');
        const lg = warren(home, ['logs', out.id, 'arr']);
        assert.equal(lg.code, 2);
        assert.match(lg.stderr, /error\[RUN_TASK_NEEDED\].*\n  hint: name a task: `warren logs .* arr:1`/);
        const st = warren(home, ['status', out.id]);
        assert.equal(st.code, 0);
        assert.match(st.stdout, /arr +4 tasks: 4 succeeded/);
        const ls = warren(home, ['list']);
        assert.match(ls.stdout, new RegExp(`${out.id} +succeeded`));
      },
    ),
  );

  test(
    'a failing job: exit 1, dependents skipped, independent jobs run, stderr tail shown',
    { timeout: 60_000 },
    withFlow(
      `version: v1
jobs:
  bad:
    command: [/bin/sh, -c, 'echo something broke >&2; exit 3']
  after:
    command: [/bin/true]
    requires: [bad]
  other:
    command: [/bin/true]
`,
      (home, file) => {
        const r = warren(home, ['run', file]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /✗ job bad failed \(exit code 3, attempt 1\)/);
        assert.match(r.stderr, /\| something broke/);
        assert.match(r.stderr, /succeeded: |failed: /);
        const j = JSON.parse(warren(home, ['status', JSON.parse(warren(home, ['list', '--json']).stdout)[0].id, '--json']).stdout);
        const by = Object.fromEntries(j.jobs.map((x: { name: string; status: string }) => [x.name, x.status]));
        assert.deepEqual(by, { bad: 'failed', after: 'skipped', other: 'succeeded' });
      },
    ),
  );

  test(
    'retries: a job that fails twice then succeeds',
    { timeout: 60_000 },
    withFlow(
      `version: v1
jobs:
  flaky:
    command: [/bin/sh, -c, 'n=$(cat $DIR/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $DIR/count; [ $n -ge 3 ]']
    policy:
      retry: {attempts: 3, backoff: 0.1s}
`,
      (home, file) => {
        const r = warren(home, ['run', file, '--json']);
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout);
        assert.equal(out.jobs[0].attempts, 3);
      },
    ),
  );

  test(
    'a command that does not exist fails with a clear message',
    { timeout: 60_000 },
    withFlow(`version: v1\njobs:\n  typo:\n    command: [warren-no-such-command, x]\n`, (home, file) => {
      const r = warren(home, ['run', file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /command not found: warren-no-such-command/);
    }),
  );

  test(
    'timeout.execute kills the job',
    { timeout: 60_000 },
    withFlow(`version: v1\njobs:\n  slow:\n    command: [/bin/sleep, '30']\n    policy:\n      timeout: {execute: 1s}\n`, (home, file) => {
      const t0 = Date.now();
      const r = warren(home, ['run', file]);
      assert.equal(r.code, 1);
      assert.ok(Date.now() - t0 < 15_000);
      assert.match(r.stderr, /timeout/);
    }),
  );

  test(
    'memory.size is enforced: out of memory',
    { timeout: 60_000 },
    withFlow(
      `version: v1\njobs:\n  hog:\n    command: [/bin/sh, -c, 'x=$(head -c 300000000 /dev/zero | tr "\\\\0" a); sleep 5']\n    resource:\n      memory: {size: 64MiB}\n`,
      (home, file) => {
        const r = warren(home, ['run', file]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /out of memory/);
      },
    ),
  );

  test('bad input: missing file and invalid workflow exit 2 with a position', { timeout: 60_000 }, () => {
    const t = tempDir();
    try {
      const home = join(t.dir, 'home');
      const missing = warren(home, ['run', join(t.dir, 'nope.yaml')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /nope\.yaml/);
      assert.match(missing.stderr, /hint:/);
      const f = join(t.dir, 'bad.yaml');
      writeFileSync(f, 'version: v1\njobs:\n  a:\n    command: [/bin/true]\n    requires: [b]\n');
      const bad = warren(home, ['run', f]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /bad\.yaml:5:\d+: .*unknown job "b"/);
      // nothing was accepted
      assert.match(warren(home, ['list']).stdout, /no workflows yet/);
      const big = join(t.dir, 'big.yaml');
      writeFileSync(big, 'version: v1\njobs:\n  a:\n    command: [/bin/true]\n    resource:\n      cpu: {cores: 512}\n');
      const b2 = warren(home, ['run', big]);
      assert.equal(b2.code, 2);
      assert.match(b2.stderr, /error\[AGENT_NOT_ENOUGH_CORES\]: job a needs 512 cores/);
      const usage = warren(home, ['run']);
      assert.equal(usage.code, 2);
      const unknown = warren(home, ['status', 'nosuchid']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /error\[RUN_NOT_FOUND\]/);
    } finally {
      t.cleanup();
    }
  });

  test(
    'Ctrl-C cancels within 2 s and exits 130; `warren cancel` from elsewhere does the same',
    { timeout: 60_000 },
    withFlow(
      `version: v1
jobs:
  long:
    command: [/bin/sh, -c, 'trap "" TERM; echo started; sleep 60']
  later:
    command: [/bin/true]
    requires: [long]
`,
      async (home, file) => {
        for (const how of ['sigint', 'cancel'] as const) {
          const run = warrenAsync(home, ['run', file]);
          await waitFor(() => run.stderr().includes('long started'), 20_000, 'job start');
          // wait until the job's process is running
          await sleep(300);
          const t0 = Date.now();
          if (how === 'sigint') run.child.kill('SIGINT');
          else {
            const id = JSON.parse(warren(home, ['list', '--json']).stdout)[0].id;
            const c = warren(home, ['cancel', id]);
            assert.equal(c.code, 0, c.stderr);
            assert.match(c.stderr, /canceled/);
          }
          const r = await run.done;
          assert.ok(Date.now() - t0 < 4000, `${how}: took ${Date.now() - t0} ms`);
          assert.equal(r.code, 130, `${how}: ${r.stderr}`);
          const id = JSON.parse(warren(home, ['list', '--json']).stdout)[0].id;
          const st = JSON.parse(warren(home, ['status', id, '--json']).stdout);
          assert.equal(st.status, 'canceled');
          assert.deepEqual(st.jobs.map((j: { status: string }) => j.status), ['canceled', 'canceled']);
        }
      },
    ),
  );

  test(
    'kill -9 of `warren run` loses nothing: resume re-runs only what had not succeeded',
    { timeout: 90_000 },
    withFlow(
      `version: v1
jobs:
  a:
    command: [/bin/sh, -c, 'echo a >> $DIR/ran']
  b:
    command: [/bin/sh, -c, 'echo b >> $DIR/ran; if [ $WARREN_ATTEMPT = 1 ]; then sleep 30; fi; echo b-end >> $DIR/ran']
    requires: [a]
  c:
    command: [/bin/sh, -c, 'echo c >> $DIR/ran']
    requires: [b]
`,
      async (home, file, dir) => {
        const ran = () => (existsSync(join(dir, 'ran')) ? readFileSync(join(dir, 'ran'), 'utf8').trim().split('\n') : []);
        const run = warrenAsync(home, ['run', file]);
        await waitFor(() => ran().includes('b'), 20_000, 'job b to start');
        await sleep(200); // let the write-behind batch land
        run.child.kill('SIGKILL');
        await run.done;
        const id = JSON.parse(warren(home, ['list', '--json']).stdout)[0].id;
        const before = JSON.parse(warren(home, ['status', id, '--json']).stdout);
        assert.equal(before.status, 'running');
        assert.match(warren(home, ['status', id]).stdout, /its runner \(process \d+ on \S+\) is gone \(crashed or killed\): `warren resume /);
        const r = warren(home, ['resume', id, '--json']);
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout);
        assert.equal(out.status, 'succeeded');
        // a ran once; the orphaned first b was killed (never wrote b-end); b ran again, then c.
        assert.deepEqual(ran(), ['a', 'b', 'b', 'b-end', 'c']);
        assert.deepEqual(out.jobs.map((j: { attempts: number }) => j.attempts), [1, 2, 1]);
        // resuming a finished workflow is a no-op
        const again = warren(home, ['resume', id]);
        assert.equal(again.code, 0);
        assert.match(again.stderr, /already succeeded/);
      },
    ),
  );

  test(
    'logs --follow streams until the job ends',
    { timeout: 60_000 },
    withFlow(`version: v1\njobs:\n  talk:\n    command: [/bin/sh, -c, 'for i in 1 2 3; do echo line $i; sleep 0.3; done']\n`, async (home, file) => {
      const run = warrenAsync(home, ['run', file]);
      let id = '';
      await waitFor(() => {
        const l = JSON.parse(warren(home, ['list', '--json']).stdout);
        id = l[0]?.id ?? '';
        return id !== '';
      }, 20_000, 'the workflow to be accepted');
      const f = warren(home, ['logs', id, 'talk', '--follow']);
      assert.equal(f.code, 0);
      assert.equal(f.stdout, 'line 1\nline 2\nline 3\n');
      assert.equal((await run.done).code, 0);
    }),
  );

  test(
    'kill -9 right after tasks start, then resume: no task ever runs twice at the same time, none completed is lost',
    { timeout: 120_000 },
    withFlow(
      `version: v1
jobs:
  arr:
    command: [/bin/sh, -c, 'echo "start $WARREN_TASK_ID $WARREN_ATTEMPT" >> $DIR/log; sleep 1; echo "end $WARREN_TASK_ID $WARREN_ATTEMPT" >> $DIR/log']
    task-array: {start: 1, end: 6, concurrency: 3}
  after:
    command: [/bin/sh, -c, 'echo "start after $WARREN_ATTEMPT" >> $DIR/log; echo "end after $WARREN_ATTEMPT" >> $DIR/log']
    requires: [arr]
`,
      async (home, file, dir) => {
        const log = () => (existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8').trim().split('\n') : []);
        const run = warrenAsync(home, ['run', file, '--cores', '3']);
        await waitFor(() => log().some((l) => l.startsWith('start')), 20_000, 'the first task to start');
        run.child.kill('SIGKILL'); // no grace: whatever was in flight is unsupervised now
        await run.done;
        const id = JSON.parse(warren(home, ['list', '--json']).stdout)[0].id;
        const r = warren(home, ['resume', id, '--json', '--cores', '3']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout).status, 'succeeded');
        await sleep(1500); // an orphan that was not stopped would write its end now
        // Per task: the attempts' [start, end] intervals in file order never overlap.
        const open = new Map<string, string>();
        const completed = new Set<string>();
        for (const l of log()) {
          const [what, task, attempt] = l.split(' ');
          if (what === 'start') {
            const other = open.get(task!);
            assert.ok(other === undefined || !log().includes(`end ${task} ${other}`) || log().indexOf(`end ${task} ${other}`) < log().indexOf(l), `task ${task}: attempt ${attempt} started while attempt ${other} ran\n${log().join('\n')}`);
            open.set(task!, attempt!);
          } else {
            assert.equal(open.get(task!), attempt, `task ${task}: attempt ${attempt} ended after a later attempt started\n${log().join('\n')}`);
            completed.add(task!);
          }
        }
        assert.deepEqual([...completed].sort(), ['1', '2', '3', '4', '5', '6', 'after']);
        const st = JSON.parse(warren(home, ['status', id, '--json']).stdout);
        assert.ok(st.jobs.every((j: { status: string }) => j.status === 'succeeded'));
      },
    ),
  );

  test(
    'two `warren resume ID` at once: the second is refused (exit 2, who holds it, until when); cancel of a crashed run stops its jobs',
    { timeout: 90_000 },
    withFlow(
      `version: v1
jobs:
  long:
    command: [/bin/sh, -c, 'echo $$ >> $DIR/pids; sleep 60']
`,
      async (home, file, dir) => {
        const pids = () => (existsSync(join(dir, 'pids')) ? readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n').map(Number) : []);
        const run = warrenAsync(home, ['run', file]);
        await waitFor(() => pids().length === 1, 20_000, 'the job to start');
        run.child.kill('SIGKILL');
        await run.done;
        const id = JSON.parse(warren(home, ['list', '--json']).stdout)[0].id;
        const first = warrenAsync(home, ['resume', id]);
        await waitFor(() => pids().length === 2, 20_000, 'the resumed job to start');
        assert.ok(!alive(pids()[0]!), 'the first runner\'s job was stopped before the resume re-ran it');
        const second = warren(home, ['resume', id]);
        assert.equal(second.code, 2, second.stderr);
        assert.match(second.stderr, /error\[RUN_LEASE_HELD\]: workflow \S+ is being run by process \d+ on \S+ \(its lease runs until \d{4}-\d\d-\d\dT/);
        assert.equal(pids().length, 2, 'the refused resume started nothing');
        // Now the resumed runner crashes too; `warren cancel` must stop its job, not just mark the run.
        first.child.kill('SIGKILL');
        await first.done;
        // Its launcher stops the jobs of a runner that died (PR_SET_PDEATHSIG): whether the job is
        // already gone or still running, cancel must leave nothing running and the run canceled.
        const c = warren(home, ['cancel', id]);
        assert.equal(c.code, 0, c.stderr);
        assert.match(c.stderr, /canceled/);
        await waitFor(() => !alive(pids()[1]!), 5_000, 'the orphaned job to be stopped');
        const st = JSON.parse(warren(home, ['status', id, '--json']).stdout);
        assert.equal(st.status, 'canceled');
        assert.deepEqual(st.jobs.map((j: { status: string }) => j.status), ['canceled']);
      },
    ),
  );

  test(
    'a 100,000-task array with the default concurrency starts tasks at once, and SIGTERM stops it with its jobs',
    { timeout: 120_000 },
    withFlow(
      `version: v1
jobs:
  big:
    command: [/bin/sh, -c, 'echo $$ >> $DIR/pids; sleep 30']
    task-array: {start: 1, end: 100000}
`,
      async (home, file, dir) => {
        const pids = () => (existsSync(join(dir, 'pids')) ? readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n').map(Number) : []);
        const run = warrenAsync(home, ['run', file, '--cores', '2']);
        await waitFor(() => pids().length >= 2, 30_000, 'the first tasks to start');
        const id = JSON.parse(warren(home, ['list', '--json']).stdout)[0].id;
        assert.match(warren(home, ['status', id]).stdout, /big +100000 tasks: 2 running, (\d+ starting, )?\d+ pending/);
        const t0 = Date.now();
        run.child.kill('SIGTERM');
        const r = await run.done;
        assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
        assert.equal(r.code, 130, r.stderr);
        for (const pid of pids()) assert.ok(!alive(pid), `task process ${pid} still runs`);
        const st = warren(home, ['status', id]);
        const m = /big +100000 tasks: (\d+) canceled, (\d+) not started/.exec(st.stdout);
        assert.ok(m, st.stdout);
        assert.equal(Number(m[1]) + Number(m[2]), 100000);
      },
    ),
  );
});
