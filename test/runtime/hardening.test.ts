// Hardening of the process runtime (issue 7): the exec is held until beforeExec resolved,
// every job in its own cgroup (setsid escapes of timeout, cancel and the memory limit),
// the process-group fallback, stopping what a dead Warren left, launcher framing and
// lifetime, and no empty log files.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProcessRuntime, jobIsolation, stopRecordedAttempt, closeSpawner, type LaunchRequest, type Runtime } from '../../src/runtime/index.js';
import { Spawner } from '../../src/runtime/spawner.js';
import { tempDir } from '../helpers.js';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const iso = jobIsolation();
const cgroups = iso.mode !== 'process-group';
const noCgroups = cgroups ? false : `this node isolates jobs by process group only (${iso.reason})`;

function req(dir: string, argv: string[], extra: Partial<LaunchRequest> = {}): LaunchRequest {
  return {
    id: `h/${Math.random().toString(36).slice(2)}/1/1`,
    argv,
    env: { PATH, ...extra.env },
    cwd: dir,
    stdoutPath: join(dir, 'out.log'),
    stderrPath: join(dir, 'err.log'),
    mounts: [],
    ...extra,
  };
}

/** Does the job cgroup exist in any hierarchy? */
function cgroupExists(path: string): boolean {
  return ['', 'memory', 'freezer', 'pids'].some((c) => existsSync(join('/sys/fs/cgroup', c, path)));
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

async function readPid(file: string): Promise<number> {
  assert.ok(await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').endsWith('\n')), `${file} written`);
  return Number(readFileSync(file, 'utf8'));
}

const killed: number[] = [];
after(async () => {
  for (const p of killed) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await closeSpawner();
});

const launchers: ['spawner' | 'node', Runtime][] = [
  ['spawner', createProcessRuntime({ launcher: 'spawner' })],
  ['node', createProcessRuntime({ launcher: 'node' })],
];

for (const [name, rt] of launchers) {
  describe(`beforeExec (${name} launcher)`, () => {
    test('the command runs only after beforeExec resolved, with the pid and cgroup of the held process', { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        const marker = join(d.dir, 'ran');
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let seen: { pid: number; cgroup: string | null } | undefined;
        const t = rt.launch(
          req(d.dir, ['/bin/sh', '-c', `echo ran > ${marker}`], {
            beforeExec: async (info) => {
              seen = info;
              await gate;
            },
          }),
        );
        assert.ok(await waitFor(() => seen !== undefined), 'beforeExec called');
        // Held: the process exists, is in its cgroup, and has not run the command.
        assert.ok(alive(seen!.pid), 'the held process exists');
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(existsSync(marker), false, 'the command did not run while beforeExec was pending');
        if (cgroups) {
          assert.match(seen!.cgroup ?? '', /^\/warren\/jobs\//);
          assert.ok(readFileSync(`/proc/${seen!.pid}/cgroup`, 'utf8').includes(seen!.cgroup!), 'in its cgroup before exec');
          assert.equal(t.cgroup, seen!.cgroup);
        } else assert.equal(seen!.cgroup, null);
        release();
        assert.equal(await t.started, seen!.pid);
        const info = await t.exited;
        assert.equal(info.reason, 'exit');
        assert.equal(info.exitCode, 0);
        assert.equal(readFileSync(marker, 'utf8'), 'ran\n');
      } finally {
        d.cleanup();
      }
    });

    test('a rejected beforeExec kills the held process: spawn-error with its message, the command never ran', { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        const marker = join(d.dir, 'ran');
        let pid = 0;
        const t = rt.launch(
          req(d.dir, ['/bin/sh', '-c', `echo ran > ${marker}`], {
            beforeExec: async (info) => {
              pid = info.pid;
              throw new Error('store unavailable: attempt not recorded');
            },
          }),
        );
        const info = await t.exited;
        assert.equal(info.reason, 'spawn-error');
        assert.match(info.message ?? '', /store unavailable: attempt not recorded/);
        assert.equal(await t.started, null);
        assert.equal(existsSync(marker), false, 'the command never ran');
        assert.ok(await waitFor(() => !alive(pid)), 'the held process is gone');
      } finally {
        d.cleanup();
      }
    });

    test('a missing command under beforeExec is still a spawn error naming it', { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        const info = await rt.launch(req(d.dir, ['/no/such/warren-held'], { beforeExec: async () => {} })).exited;
        if (name === 'spawner') {
          assert.equal(info.reason, 'spawn-error');
          assert.match(info.message ?? '', /command not found: \/no\/such\/warren-held/);
        } else assert.ok(info.reason === 'spawn-error' || info.exitCode === 127, JSON.stringify(info));
      } finally {
        d.cleanup();
      }
    });
  });

  describe(`a cgroup per job (${name} launcher)`, { skip: noCgroups }, () => {
    const escapee = (dir: string): string => `setsid sh -c 'echo $$ > ${dir}/esc.pid; exec sleep 60' & sleep 60`;

    test('a setsid child does not survive the timeout', { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        const t = rt.launch(req(d.dir, ['/bin/sh', '-c', escapee(d.dir)], { timeoutSec: 1 }));
        const esc = await readPid(join(d.dir, 'esc.pid'));
        killed.push(esc);
        const info = await t.exited;
        assert.equal(info.reason, 'timeout');
        assert.equal(alive(esc), false, `setsid child ${esc} was killed with the job`);
      } finally {
        d.cleanup();
      }
    });

    test('a setsid child does not survive cancel', { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        const t = rt.launch(req(d.dir, ['/bin/sh', '-c', escapee(d.dir)]));
        const esc = await readPid(join(d.dir, 'esc.pid'));
        killed.push(esc);
        t.kill('canceled', 300);
        const info = await t.exited;
        assert.equal(info.reason, 'canceled');
        assert.equal(alive(esc), false, `setsid child ${esc} was killed with the job`);
      } finally {
        d.cleanup();
      }
    });

    test('a setsid child left running when the job ends is killed, and the cgroup removed', { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        const t = rt.launch(req(d.dir, ['/bin/sh', '-c', `setsid sh -c 'echo $$ > ${d.dir}/esc.pid; exec sleep 60' & sleep 0.3; exit 3`]));
        const esc = await readPid(join(d.dir, 'esc.pid'));
        killed.push(esc);
        const info = await t.exited;
        assert.equal(info.exitCode, 3);
        assert.equal(alive(esc), false);
        assert.equal(cgroupExists(t.cgroup!), false, 'cgroup removed');
      } finally {
        d.cleanup();
      }
    });

    test('a `setsid -w` child cannot escape the memory limit: 400 MiB against 64 MiB is killed as oom', { timeout: 60_000 }, async () => {
      const d = tempDir();
      try {
        const info = await rt.launch(
          req(d.dir, ['/bin/sh', '-c', `setsid -w sh -c 'x=$(head -c 400000000 /dev/zero | tr "\\0" a); echo survived ${'$'}{#x}'; echo after`], { memoryBytes: 64 * 2 ** 20 }),
        ).exited;
        assert.equal(info.reason, 'oom', JSON.stringify(info));
        assert.match(info.message ?? '', /out of memory/);
        assert.doesNotMatch(readFileSync(join(d.dir, 'out.log'), 'utf8'), /survived/);
        assert.ok((info.memoryPeakBytes ?? 0) <= 64 * 2 ** 20, `peak ${info.memoryPeakBytes} within the limit`);
      } finally {
        d.cleanup();
      }
    });

    test('peak memory and cpu time of the whole job are accounted', { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        // With a memory limit (v1 puts only limited jobs in a memory cgroup).
        const info = await rt.launch(req(d.dir, ['/bin/sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'], { memoryBytes: 2 ** 30 })).exited;
        assert.equal(info.reason, 'exit');
        assert.ok((info.memoryPeakBytes ?? 0) > 0, `memoryPeakBytes ${info.memoryPeakBytes}`);
        if (name === 'spawner' || iso.mode === 'cgroup-v2') assert.equal(typeof info.cpuMs, 'number');
      } finally {
        d.cleanup();
      }
    });
  });
}

describe('process-group fallback', () => {
  const rt = createProcessRuntime({ isolation: 'process-group' });
  test('forced: the job is in no Warren cgroup, and kills still reach its process group', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      let seen: { pid: number; cgroup: string | null } | undefined;
      const t = rt.launch(req(d.dir, ['/bin/sh', '-c', `cat /proc/self/cgroup; sleep 30 & echo $! > ${d.dir}/bg.pid; wait`], { beforeExec: async (i) => void (seen = i), timeoutSec: 0.5 }));
      const bg = await readPid(join(d.dir, 'bg.pid'));
      killed.push(bg);
      const info = await t.exited;
      assert.equal(info.reason, 'timeout');
      assert.equal(seen?.cgroup, null);
      assert.equal(t.cgroup, null);
      assert.doesNotMatch(readFileSync(join(d.dir, 'out.log'), 'utf8'), /warren\/jobs/);
      assert.ok(await waitFor(() => !alive(bg)), 'the background child in its group was killed');
    } finally {
      d.cleanup();
    }
  });

  test('jobIsolation() says which mode, and why when it falls back', () => {
    assert.ok(['cgroup-v2', 'cgroup-v1', 'process-group'].includes(iso.mode));
    if (iso.mode === 'process-group') assert.ok(iso.reason);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { jobIsolation } from ${JSON.stringify(new URL('../../src/runtime/index.js', import.meta.url).href)}; console.log(JSON.stringify(jobIsolation()))`], {
      env: { ...process.env, WARREN_JOB_ISOLATION: 'process-group' },
      encoding: 'utf8',
    });
    // Under tsx the import of a .js URL to a .ts file fails; the compiled tests run this.
    if (r.status === 0) assert.deepEqual(JSON.parse(r.stdout), { mode: 'process-group', reason: 'forced by WARREN_JOB_ISOLATION=process-group' });
  });
});

describe('stopRecordedAttempt', () => {
  const self = fileURLToPath(import.meta.url);
  const ownerChild = self.replace(/hardening\.test\.(ts|js)$/, 'owner-child.$1');
  const nodeArgs = self.endsWith('.ts') ? ['--import', 'tsx', ownerChild] : [ownerChild];

  /** Start a Warren process owning one job; returns what it printed once the job ran. */
  async function owner(dir: string, launcher: 'spawner' | 'node', action: string, isolation = 'auto'): Promise<{ pid: number; cgroup: string | null; launcher: number | null; grandchild: number; ended: Promise<unknown> }> {
    const proc = spawn(process.execPath, [...nodeArgs, launcher, dir, action, isolation], { stdio: ['ignore', 'pipe', 'inherit'] });
    const ended = new Promise((r) => proc.on('exit', r));
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    assert.ok(await waitFor(() => out.includes('\n'), 20_000), 'owner reported its job');
    const info = JSON.parse(out.split('\n')[0]!);
    killed.push(info.pid, info.grandchild);
    return { ...info, ended };
  }

  test('a live attempt in a cgroup, whose owner died, is stopped with its setsid grandchildren, and its cgroup removed', { timeout: 60_000, skip: noCgroups }, async () => {
    const d = tempDir();
    try {
      // The child_process launcher leaves its jobs running when Warren is killed: the case resume meets.
      const o = await owner(d.dir, 'node', 'kill9');
      await o.ended;
      assert.ok(alive(o.pid) && alive(o.grandchild), 'the orphaned job runs on');
      assert.match(o.cgroup ?? '', /^\/warren\/jobs\//);
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-owner', pid: o.pid, cgroup: o.cgroup }), 'stopped');
      assert.equal(alive(o.pid), false);
      assert.equal(alive(o.grandchild), false, 'the setsid grandchild was stopped too');
      assert.equal(cgroupExists(o.cgroup!), false, 'cgroup removed');
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-owner', pid: o.pid, cgroup: o.cgroup }), 'gone', 'a second stop finds nothing');
    } finally {
      d.cleanup();
    }
  });

  test('without a cgroup: the process group is stopped after checking WARREN_ATTEMPT_ID', { timeout: 60_000 }, async () => {
    const d = tempDir();
    try {
      const o = await owner(d.dir, 'node', 'kill9', 'process-group');
      await o.ended;
      assert.equal(o.cgroup, null);
      assert.ok(alive(o.pid));
      assert.equal(await stopRecordedAttempt({ attemptId: 'another-attempt', pid: o.pid, cgroup: null }), 'gone', 'not that attempt: left alone');
      assert.ok(alive(o.pid), 'a process of another attempt is never killed');
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-owner', pid: o.pid, cgroup: null }), 'stopped');
      assert.ok(await waitFor(() => !alive(o.pid)));
      assert.ok(await waitFor(() => !alive(o.grandchild)), 'the setsid grandchild, which carries the attempt id, was stopped too');
    } finally {
      d.cleanup();
    }
  });

  test('a recorded pid reused by an unrelated process is never killed', { timeout: 30_000 }, async () => {
    const stranger = spawn('/bin/sleep', ['30'], { stdio: 'ignore', env: { PATH, WARREN_ATTEMPT_ID: 'someone-else' } });
    const plain = spawn('/bin/sleep', ['30'], { stdio: 'ignore', env: { PATH } });
    try {
      killed.push(stranger.pid!, plain.pid!);
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-1', pid: stranger.pid!, cgroup: null }), 'gone');
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-1', pid: plain.pid!, cgroup: null }), 'gone');
      // A recorded cgroup that is not one of Warren's job cgroups is not used.
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-1', pid: plain.pid!, cgroup: '/warren/jobs/../..' }), 'gone');
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-1', pid: plain.pid!, cgroup: '/' }), 'gone');
      assert.ok(alive(stranger.pid!) && alive(plain.pid!), 'both still run');
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-1', pid: 999_999_999, cgroup: null }), 'gone');
      assert.equal(await stopRecordedAttempt({ attemptId: 'att-1', pid: null, cgroup: '/warren/jobs/never-made.1.1.abc' }), 'gone');
    } finally {
      stranger.kill('SIGKILL');
      plain.kill('SIGKILL');
    }
  });

  test('the owner killed with SIGKILL: its launcher stops every job it ran, setsid grandchildren too', { timeout: 60_000 }, async () => {
    const d = tempDir();
    try {
      const o = await owner(d.dir, 'spawner', 'kill9');
      assert.ok(o.launcher);
      killed.push(o.launcher!);
      await o.ended;
      assert.ok(await waitFor(() => !alive(o.pid) && !alive(o.grandchild) && !alive(o.launcher!)), 'job, grandchild and launcher are gone');
      if (o.cgroup) assert.ok(await waitFor(() => !cgroupExists(o.cgroup!)), 'its cgroup removed');
    } finally {
      d.cleanup();
    }
  });

  test('the owner exits without closing the launcher: the launcher ends, and its job with it', { timeout: 60_000 }, async () => {
    const d = tempDir();
    try {
      const o = await owner(d.dir, 'spawner', 'exit');
      killed.push(o.launcher!);
      await o.ended;
      assert.ok(await waitFor(() => !alive(o.launcher!) && !alive(o.pid) && !alive(o.grandchild)), 'launcher and job are gone');
      if (o.cgroup) assert.ok(await waitFor(() => !cgroupExists(o.cgroup!)), 'its cgroup removed');
    } finally {
      d.cleanup();
    }
  });
});

describe('launcher framing and lifetime', () => {
  const rt = createProcessRuntime({ launcher: 'spawner' });

  test('NUL, newline and "=" in arguments and env values reach the job intact or are refused, never mis-framed', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const tricky = 'a\nS 1 2 3\n=b\u00e9';
      const info = await rt.launch(
        req(d.dir, ['/bin/sh', '-c', 'printf "%s|%s|%s" "$1" "$T" "$WARREN_JOB"', 'sh', tricky], { env: { T: tricky, WARREN_JOB: 'j' } }),
      ).exited;
      assert.equal(info.reason, 'exit');
      assert.equal(readFileSync(join(d.dir, 'out.log'), 'utf8'), `${tricky}|${tricky}|j`);
      for (const bad of [
        req(d.dir, ['/bin/echo', 'x\0y']),
        req(d.dir, ['/bin/echo'], { env: { A: 'x\0PATH=/evil' } }),
        req(d.dir, ['/bin/echo'], { env: { 'A=B': 'x' } }),
      ]) {
        await assert.rejects(rt.check!(bad), (e: Error & { code: string; exitCode: number }) => e.code === 'RUNTIME_BAD_REQUEST' && e.exitCode === 2);
        const r = await rt.launch(bad).exited;
        assert.equal(r.reason, 'spawn-error');
        assert.match(r.message ?? '', /RUNTIME_BAD_REQUEST/);
        assert.throws(() => Spawner.get()!.spawn(bad, { started() {}, failed() {}, exited() {} }), /NUL|'='/);
      }
    } finally {
      d.cleanup();
    }
  });

  test('close() ends the launcher and waits for it: no warren-spawn of this process remains', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      await rt.launch(req(d.dir, ['/bin/true'])).exited;
      const running = rt.launch(req(d.dir, ['/bin/sleep', '30']));
      assert.ok(await running.started);
      const lp = Spawner.get()!.pid!;
      assert.ok(alive(lp));
      await closeSpawner();
      assert.equal(alive(lp), false, 'the launcher exited');
      const info = await running.exited;
      assert.notEqual(info.reason, 'exit', 'a job still running at close is stopped');
      const mine = readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            const st = readFileSync(`/proc/${p}/stat`, 'latin1');
            const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
            return st.includes('(warren-spawn)') && Number(f[1]) === process.pid && f[0] !== 'Z';
          } catch {
            return false;
          }
        });
      assert.deepEqual(mine, []);
      // A later launch starts a new launcher.
      assert.equal((await rt.launch(req(d.dir, ['/bin/true'])).exited).reason, 'exit');
      await closeSpawner();
    } finally {
      d.cleanup();
    }
  });
});

describe('log files', () => {
  for (const [name, rt] of launchers) {
    test(`a job that prints nothing leaves no log files (${name} launcher); one written to, or there before, stays`, { timeout: 30_000 }, async () => {
      const d = tempDir();
      try {
        await rt.launch(req(d.dir, ['/bin/true'])).exited;
        assert.deepEqual(readdirSync(d.dir), []);
        await rt.launch(req(d.dir, ['/bin/echo', 'hi'])).exited;
        assert.deepEqual(readdirSync(d.dir), ['out.log']);
        writeFileSync(join(d.dir, 'err.log'), '');
        await rt.launch(req(d.dir, ['/bin/true'], { stdoutPath: join(d.dir, 'same.log'), stderrPath: join(d.dir, 'same.log') })).exited;
        await rt.launch(req(d.dir, ['/bin/true'])).exited;
        assert.deepEqual(readdirSync(d.dir).sort(), ['err.log', 'out.log'], 'an existing (empty) file is not removed');
      } finally {
        d.cleanup();
      }
    });
  }
});
