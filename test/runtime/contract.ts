// The shared runtime contract: every Runtime (process, container) passes this suite.
// `prepare` turns a plain request into one for the runtime under test (e.g. adds
// `container` options and maps paths); `sh` is the shell to run inside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LaunchRequest, Runtime } from '../../src/runtime/index.js';
import { tempDir } from '../helpers.js';

export interface ContractTarget {
  name: string;
  runtime: () => Runtime;
  prepare: (req: LaunchRequest) => LaunchRequest;
  sh: string;
}

export function runtimeContract(t: ContractTarget): void {
  const mk = (dir: string, argv: string[], extra: Partial<LaunchRequest> = {}): LaunchRequest =>
    t.prepare({
      id: `c-${Math.random().toString(36).slice(2)}`,
      argv,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', ...extra.env },
      cwd: dir,
      stdoutPath: join(dir, 'out.log'),
      stderrPath: join(dir, 'err.log'),
      mounts: [{ host: dir, target: dir, readOnly: false }],
      ...extra,
    });

  test(`${t.name}: exit code, stdout, stderr, env and cwd`, { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const r = t.runtime().launch(mk(d.dir, [t.sh, '-c', 'echo out-$GREETING; echo err >&2; pwd; exit 7'], { env: { GREETING: 'hi' } }));
      const info = await r.exited;
      assert.equal(info.reason, 'exit');
      assert.equal(info.exitCode, 7);
      assert.equal(readFileSync(join(d.dir, 'out.log'), 'utf8'), `out-hi\n${d.dir}\n`);
      assert.equal(readFileSync(join(d.dir, 'err.log'), 'utf8'), 'err\n');
    } finally {
      d.cleanup();
    }
  });

  test(`${t.name}: a command that does not exist is a spawn error naming it`, { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const info = await t.runtime().launch(mk(d.dir, ['/no/such/warren-cmd'])).exited;
      assert.ok(info.reason === 'spawn-error' || (info.reason === 'exit' && info.exitCode === 127), `got ${JSON.stringify(info)}`);
      if (info.reason === 'spawn-error') assert.match(info.message ?? '', /\/no\/such\/warren-cmd/);
    } finally {
      d.cleanup();
    }
  });

  test(`${t.name}: timeout kills the whole process group`, { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const t0 = Date.now();
      const info = await t.runtime().launch(mk(d.dir, [t.sh, '-c', 'sleep 30 & sleep 30 & echo started; wait'], { timeoutSec: 0.5 })).exited;
      assert.equal(info.reason, 'timeout');
      assert.ok(Date.now() - t0 < 5000, 'killed promptly');
    } finally {
      d.cleanup();
    }
  });

  test(`${t.name}: kill (cancel) stops it within 2 s`, { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const r = t.runtime().launch(mk(d.dir, [t.sh, '-c', 'trap "" TERM; sleep 30']));
      await new Promise((res) => setTimeout(res, 300));
      const t0 = Date.now();
      r.kill('canceled', 500);
      const info = await r.exited;
      assert.equal(info.reason, 'canceled');
      assert.ok(Date.now() - t0 < 2000, `stopped in ${Date.now() - t0} ms`);
    } finally {
      d.cleanup();
    }
  });

  test(`${t.name}: memory limit -> out of memory`, { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      mkdirSync(join(d.dir, 'x'), { recursive: true });
      // Hold ~200 MiB in the shell's memory, far over a 32 MiB limit.
      const info = await t.runtime().launch(
        mk(d.dir, [t.sh, '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); sleep 5'], { memoryBytes: 32 * 2 ** 20 }),
      ).exited;
      assert.equal(info.reason, 'oom');
      assert.match(info.message ?? '', /out of memory/);
    } finally {
      d.cleanup();
    }
  });
}
