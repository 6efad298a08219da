// Fuzzball's volume forms at run time, through the real CLI: a machine's storage classes
// ($WARREN_HOME/storage-classes.yaml), v4 `use`/`name` volumes, user and account scopes kept
// apart on disk, and ingress from the workflow's inline `files:`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, warrenBin } from '../helpers.js';

function warren(home: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [warrenBin, ...args], { encoding: 'utf8', env: { ...process.env, WARREN_HOME: home }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const WF = `version: v4
files:
  params.txt: "frames=10\\n"
volumes:
  scratch:
    use: ephemeral
    ingress:
      - source: {uri: file://params.txt}
        destination: {uri: file://inputs/params.txt}
  fast:
    use: fast-nvme
    name: results
    size: 1GiB
  mine:
    reference: volume://user/persistent/shared
  group:
    reference: volume://account/persistent/shared
jobs:
  write:
    mounts:
      /scratch: scratch
      /fast: fast
      /mine: mine
      /group: group
    cwd: /scratch
    script: |
      #!/bin/sh
      set -eu
      cat inputs/params.txt
      cp inputs/params.txt "$WARREN_VOLUME_FAST/params.copy"
      echo user > "$WARREN_VOLUME_MINE/who"
      echo account > "$WARREN_VOLUME_GROUP/who"
`;

test('storage classes, scopes and inline-file ingress at run time', { timeout: 120_000 }, () => {
  const { dir, cleanup } = tempDir();
  try {
    const home = join(dir, 'home');
    const file = join(dir, 'wf.yaml');
    writeFileSync(file, WF);

    // Without the class on this machine: refused with the position, nothing started.
    const bad = warren(home, ['run', file]);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /wf\.yaml:11:10: volumes\.fast\.use: unknown storage class "fast-nvme"/);
    assert.match(bad.stderr, /storage-classes\.yaml/);
    const badValidate = warren(home, ['validate', file]);
    assert.equal(badValidate.status, 2);

    // A bad classes file is its own error, with its position.
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'storage-classes.yaml'), 'fast-nvme:\n  persistant: true\n');
    const badFile = warren(home, ['validate', file]);
    assert.equal(badFile.status, 2, badFile.stdout + badFile.stderr);
    assert.match(badFile.stdout + badFile.stderr, /storage-classes\.yaml:2:3/);

    writeFileSync(join(home, 'storage-classes.yaml'), 'fast-nvme:\n  persistent: true\n  description: local NVMe\n');
    const ok = warren(home, ['validate', file]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);

    const run = warren(home, ['run', '--json', file]);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const id = (JSON.parse(run.stdout) as { id: string }).id;
    // The inline file was ingressed into the ephemeral volume, the job read it.
    const logs = warren(home, ['logs', id, 'write']);
    assert.match(logs.stdout, /frames=10/, logs.stdout + logs.stderr);
    // Each volume in its own place: the class's, the user's and the account's "shared".
    assert.equal(readFileSync(join(home, 'volumes', '@class', 'fast-nvme', 'results', 'params.copy'), 'utf8'), 'frames=10\n');
    assert.equal(readFileSync(join(home, 'volumes', 'shared', 'who'), 'utf8'), 'user\n');
    assert.equal(readFileSync(join(home, 'volumes', '@account', 'persistent', 'shared', 'who'), 'utf8'), 'account\n');
    assert.equal(existsSync(join(home, 'volumes', 'results')), false);
  } finally {
    cleanup();
  }
});

