// scripts/registry/start-registry.sh: the registry runs as its child, a signal stops it,
// and the script's EXIT trap removes the temporary storage (it used to `exec` the registry,
// so the trap never ran and the directory was left behind).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../helpers.js';
import { freePort, registryAvailable } from './registry.js';

const skip = registryAvailable() ? false : 'docker-registry is not installed (scripts/apt/image.txt; run scripts/setup.sh)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scripts/registry/start-registry.sh', { skip, timeout: 60_000 }, () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal}: the registry stops and its storage directory is removed`, async () => {
      const port = await freePort();
      const p = spawn('bash', [join(repoRoot, 'scripts', 'registry', 'start-registry.sh'), String(port)], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
      let dir: string | undefined;
      try {
        // Up when it answers /v2/ on its port.
        let up = false;
        for (let i = 0; i < 200 && !up; i++) {
          up = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200, () => false);
          if (!up) await sleep(50);
        }
        assert.ok(up, `registry answered on ${port}: ${err}`);
        dir = /\(storage (\S+)\/storage\)/.exec(err)?.[1];
        assert.ok(dir && existsSync(dir), `storage directory named in: ${err}`);
        p.kill(signal);
        const code = await exited;
        assert.notEqual(code, null, 'the script exited itself');
        assert.equal(existsSync(dir), false, `${dir} removed by the EXIT trap`);
        const still = await fetch(`http://127.0.0.1:${port}/v2/`).then(() => true, () => false);
        assert.equal(still, false, 'the registry is gone too');
      } finally {
        // On a failure, nothing of this test stays behind: the script's whole process group goes.
        try {
          process.kill(-p.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    });
  }
});
