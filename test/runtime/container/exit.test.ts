// Exit classification (pure) and the cgroup counters it is fed from, on fake cgroup trees
// for both hierarchies (this machine has only one of them to run real jobs on).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { classifyExit, detectCgroups } from '../../../src/runtime/container/index.js';
import { TaskCgroup } from '../../../src/runtime/container/cgroups.js';
import { tempDir } from '../../helpers.js';

const MiB = 2 ** 20;
const base = { killReason: null, containerId: 'w-1-x' } as const;

describe('classifyExit', () => {
  test('plain exits and signals (runc reports 128+N)', () => {
    assert.deepEqual(classifyExit({ ...base, status: 0 }), { exitCode: 0, signal: null, reason: 'exit' });
    assert.deepEqual(classifyExit({ ...base, status: 3 }), { exitCode: 3, signal: null, reason: 'exit' });
    assert.deepEqual(classifyExit({ ...base, status: 128 + 11 }), { exitCode: null, signal: 'SIGSEGV', reason: 'signal' });
    assert.deepEqual(classifyExit({ ...base, status: 255 }), { exitCode: 255, signal: null, reason: 'exit' });
  });

  test('Warren\'s own kills win, with the timeout named', () => {
    const t = classifyExit({ ...base, status: 137, killReason: 'timeout', timeoutSec: 90, memory: { limitBytes: MiB, mode: 'v2', oomKills: 1, limitHits: 1 } });
    assert.equal(t.reason, 'timeout');
    assert.equal(t.signal, 'SIGKILL');
    assert.match(t.message!, /90s timeout/);
    assert.equal(classifyExit({ ...base, status: 143, killReason: 'canceled' }).reason, 'canceled');
  });

  test('cgroup v2: the kernel\'s oom_kill count decides, whatever the status', () => {
    const o = classifyExit({ ...base, status: 1, memory: { limitBytes: 32 * MiB, mode: 'v2', oomKills: 1, limitHits: 5 } });
    assert.equal(o.reason, 'oom');
    assert.match(o.message!, /out of memory.*32\.0MiB/);
    assert.equal(classifyExit({ ...base, status: 137, memory: { limitBytes: MiB, mode: 'v2', oomKills: 0, limitHits: 0 } }).reason, 'signal');
    // A child was OOM-killed but the job still succeeded: not a failure.
    assert.equal(classifyExit({ ...base, status: 0, memory: { limitBytes: MiB, mode: 'v2', oomKills: 1, limitHits: 1 } }).reason, 'exit');
  });

  test('cgroup v1: SIGKILL while at the limit is out of memory; other ends at the limit say so', () => {
    assert.equal(classifyExit({ ...base, status: 137, memory: { limitBytes: MiB, mode: 'v1', oomKills: 0, limitHits: 1 } }).reason, 'oom');
    assert.equal(classifyExit({ ...base, status: 137, memory: { limitBytes: MiB, mode: 'v1', oomKills: 0, limitHits: 0 } }).reason, 'signal');
    const e = classifyExit({ ...base, status: 2, memory: { limitBytes: MiB, mode: 'v1', oomKills: 0, limitHits: 3 } });
    assert.equal(e.reason, 'exit');
    assert.equal(e.exitCode, 2);
    assert.match(e.message!, /reached its 1\.0MiB memory limit/);
  });

  test('runc\'s own start failure is a spawn error; its log is read only for failures', () => {
    let reads = 0;
    const runcError = () => {
      reads++;
      return 'exec: "/x": stat /x: no such file or directory';
    };
    assert.equal(classifyExit({ ...base, status: 0, runcError }).reason, 'exit');
    assert.equal(reads, 0);
    const f = classifyExit({ ...base, status: 1, runcError });
    assert.deepEqual([f.reason, f.exitCode], ['spawn-error', null]);
    assert.match(f.message!, /w-1-x did not start: exec: "\/x"/);
    assert.equal(classifyExit({ ...base, status: 1, runcError: () => undefined }).reason, 'exit');
  });
});

describe('cgroup counters (fake trees)', () => {
  test('v2: memory.events of the task parent', () => {
    const d = tempDir();
    try {
      const cg = new TaskCgroup({ mode: 'v2', swapAccounting: true }, 'w-1-job', d.dir);
      assert.equal(cg.containerPath, '/warren/w-1-job/ctr');
      mkdirSync(join(d.dir, 'warren', 'w-1-job', 'ctr'), { recursive: true });
      writeFileSync(join(d.dir, 'warren', 'w-1-job', 'memory.events'), 'low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\n');
      assert.deepEqual(cg.oomCheck(MiB), { oomKills: 1, limitHits: 12 });
      assert.equal(cg.remove(), false, 'not empty (a plain directory here): reported, not thrown');
      rmSync(join(d.dir, 'warren', 'w-1-job', 'memory.events')); // cgroupfs directories go with their files
      assert.equal(cg.remove(), true);
      assert.ok(!existsSync(join(d.dir, 'warren', 'w-1-job')));
    } finally {
      d.cleanup();
    }
  });

  test('v1: failcnt, or the peak within a MiB of the limit, counts as reaching it', () => {
    const d = tempDir();
    try {
      mkdirSync(join(d.dir, 'memory'));
      writeFileSync(join(d.dir, 'memory', 'memory.limit_in_bytes'), '9223372036854771712\n');
      writeFileSync(join(d.dir, 'memory', 'memory.memsw.limit_in_bytes'), '9223372036854771712\n');
      assert.deepEqual(detectCgroups(d.dir), { mode: 'v1', swapAccounting: true });
      const info = detectCgroups(d.dir);
      const cg = new TaskCgroup(info, 'w-2-job', d.dir);
      cg.setupV1Memory(64 * MiB);
      const dir = join(d.dir, 'memory', 'warren', 'w-2-job');
      assert.equal(Number(readFileSync(join(dir, 'memory.limit_in_bytes'), 'utf8')), 64 * MiB);
      assert.equal(Number(readFileSync(join(dir, 'memory.memsw.limit_in_bytes'), 'utf8')), 64 * MiB);
      const set = (failcnt: number, peak: number) => {
        writeFileSync(join(dir, 'memory.failcnt'), `${failcnt}\n`);
        writeFileSync(join(dir, 'memory.memsw.failcnt'), '0\n');
        writeFileSync(join(dir, 'memory.max_usage_in_bytes'), `${peak}\n`);
        writeFileSync(join(dir, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n');
      };
      set(0, 10 * MiB);
      assert.deepEqual(cg.oomCheck(64 * MiB), { oomKills: 0, limitHits: 0 });
      set(0, 64 * MiB - 4096);
      assert.equal(cg.oomCheck(64 * MiB).limitHits, 1);
      set(3, 10 * MiB);
      assert.equal(cg.oomCheck(64 * MiB).limitHits, 3);
    } finally {
      d.cleanup();
    }
  });
});
