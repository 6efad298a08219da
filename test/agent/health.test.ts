// The node health check (`warren agent --health-check`): a real /bin/sh command, its exit code
// and output; a hung check is killed (with what it started) after its timeout; a check that
// cannot run is a failed check; the checker runs at its interval and stop() kills a running one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthChecker, runHealthCheck, type HealthReport } from '../../src/agent/index.js';

/** Running (a zombie nobody reaped yet is not: its parent was killed and init has not reaped it). */
const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

test('a passing check is ok, with its output; a failing one gives its exit code and the end of its output', async () => {
  const ok = await runHealthCheck({ command: 'echo all good; echo on stderr >&2' });
  assert.equal(ok.ok, true);
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.timedOut, false);
  assert.match(ok.output, /all good/);
  assert.match(ok.output, /on stderr/);
  const bad = await runHealthCheck({ command: 'echo "/scratch: 100% full" >&2; exit 3' });
  assert.equal(bad.ok, false);
  assert.equal(bad.exitCode, 3);
  assert.match(bad.output, /\/scratch: 100% full/);
  assert.equal(bad.command, 'echo "/scratch: 100% full" >&2; exit 3');
  // Output is kept to its last 2 KiB.
  const loud = await runHealthCheck({ command: 'head -c 100000 /dev/zero | tr "\\0" x; echo; echo THE-END; exit 1' });
  assert.equal(loud.ok, false);
  assert.ok(loud.output.length <= 2048, `kept ${loud.output.length} bytes`);
  assert.match(loud.output, /THE-END/);
});

test('a check that hangs is killed after its timeout, with everything it started, and fails', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-health-'));
  try {
    const pidFile = join(dir, 'child.pid');
    const started = Date.now();
    const r = await runHealthCheck({ command: `sleep 600 & echo $! > ${pidFile}; echo checking the GPUs; wait`, timeoutMs: 500 });
    const took = Date.now() - started;
    assert.equal(r.ok, false);
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.match(r.output, /checking the GPUs/);
    assert.match(r.output, /did not end within 500 ms: it was killed/);
    assert.ok(took < 5000, `the result came ${took} ms after the start`);
    const child = Number(readFileSync(pidFile, 'utf8'));
    for (let i = 0; i < 50 && alive(child); i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(alive(child), false, 'what the check started is killed with it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a check that cannot run fails with why; a signal is a failure', async () => {
  const missing = await runHealthCheck({ command: '/nonexistent/node-ok' });
  assert.equal(missing.ok, false);
  assert.equal(missing.exitCode, 127);
  assert.match(missing.output, /not found|No such file/);
  const killed = await runHealthCheck({ command: 'kill -TERM $$' });
  assert.equal(killed.ok, false);
  assert.match(killed.output, /killed by SIGTERM/);
});

test('the checker runs at its interval, sees a change, and stop() kills a running check', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-health-'));
  try {
    const flag = join(dir, 'sick');
    const results: HealthReport[] = [];
    const c = new HealthChecker({ command: `test ! -e ${flag} || { cat ${flag}; exit 1; }`, intervalMs: 50, env: { EXTRA: 'x' } }, (r) => results.push(r));
    c.start();
    const until = async (f: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !f(); i++) await new Promise((res) => setTimeout(res, 20));
      assert.ok(f());
    };
    await until(() => results.length >= 2);
    assert.ok(results.every((r) => r.ok));
    writeFileSync(flag, 'ECC errors on DIMM 3\n');
    await until(() => results.at(-1)!.ok === false);
    assert.match(results.at(-1)!.output, /ECC errors on DIMM 3/);
    await c.stop();
    const n = results.length;
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(results.length, n, 'no check after stop()');

    // stop() during a long check: it is killed at once, not waited for.
    const pidFile = join(dir, 'long.pid');
    const slow = new HealthChecker({ command: `echo $$ > ${pidFile}; exec sleep 600`, timeoutMs: 600_000 }, () => assert.fail('a stopped check reports nothing'));
    slow.start();
    await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
    const t0 = Date.now();
    await slow.stop();
    assert.ok(Date.now() - t0 < 2000, 'stop() did not wait for the check');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(alive(pid), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
