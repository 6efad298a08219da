// WARREN_MEMORY through the real CLI: a job asking for more memory than the machine has is
// refused when the workflow is accepted (exit 2, nothing runs); WARREN_MEMORY lets the local
// agent hand out more (as WARREN_CORES for cores); a bad value is a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { tempDir, warrenBin } from '../helpers.js';

function warren(home: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('WARREN_MEMORY: more than the machine has is refused without it, runs with it; a bad value names itself', { timeout: 120_000 }, () => {
  const t = tempDir();
  try {
    const marker = join(t.dir, 'ran');
    const want = Math.ceil(totalmem() / 2 ** 30) + 8;
    const flow = join(t.dir, 'big.yaml');
    writeFileSync(flow, `version: v1\njobs:\n  big:\n    command: [/bin/sh, -c, 'touch ${marker}']\n    resource:\n      memory: {size: ${want}GiB}\n`);
    const home = join(t.dir, 'home');
    const refused = warren(home, ['run', flow], { WARREN_MEMORY: '' });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`error\\[AGENT_NOT_ENOUGH_MEMORY\\]: (job )?big needs ${want}\\.0 GiB of memory but this node has`));
    assert.equal(existsSync(marker), false, 'nothing ran');
    const ran = warren(home, ['run', flow], { WARREN_MEMORY: `${want + 1}GiB` });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(existsSync(marker), true);
    const bad = warren(home, ['run', flow], { WARREN_MEMORY: 'lots' });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /error\[CLI_BAD_OPTION\]: WARREN_MEMORY must be a size like 64GiB or 512MB, not "lots"/);
  } finally {
    t.cleanup();
  }
});
