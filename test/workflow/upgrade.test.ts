// `warren upgrade`: v1 Fuzzfiles rewritten as v4 by editing their text (src/workflow/upgrade.ts).
// The upgraded file validates, its normalized model equals the original's except the
// dialect, comments and layout stay, and a small upgraded workflow runs end to end the same.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import { parseWorkflowText, upgradeFuzzfile, type Workflow } from '../../src/workflow/index.js';
import { repoRoot, sharedDir, tempDir, warrenBin } from '../helpers.js';

function model(text: string, file = 'flow.yaml'): Workflow {
  const { workflow, diagnostics } = parseWorkflowText(text, file);
  assert.ok(workflow, diagnostics.map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`).join('\n'));
  return workflow;
}

/** The model without the dialect and positions. */
const same = (w: Workflow): unknown => JSON.parse(JSON.stringify(w, (k, v: unknown) => (k === 'dialect' || k === 'pos' ? undefined : v)));

function upgradeAndCheck(text: string): string {
  const r = upgradeFuzzfile(text, 'flow.yaml');
  assert.equal(r.changed, true);
  const before = model(text);
  const after = model(r.text);
  assert.equal(before.dialect, 'v1');
  assert.equal(after.dialect, 'v4');
  assert.deepEqual(same(after), same(before));
  return r.text;
}

describe('upgrading v1 to v4', () => {
  test('requires, mounts and version are rewritten in place; comments, quoting and the rest stay byte for byte', () => {
    const v1 = [
      'version: v1 # the old dialect',
      '',
      '# shared scratch space',
      'volumes:',
      '  scratch: {reference: volume://user/ephemeral}',
      '  refs:',
      '    reference: volume://user/persistent/refs',
      'jobs:',
      '  fetch:',
      '    command: [echo, fetch]   # first',
      '    mounts:',
      '      scratch:               # where it writes',
      '        location: /scratch',
      '  align:',
      '    requires: ["fetch"]',
      '    command: [echo, align]',
      '    mounts:',
      '      scratch: {location: "/scratch"}',
      '      refs: {location: /refs, read-only: true}',
      '  report:',
      '    requires:',
      '      - fetch   # needs the data',
      "      - 'align'",
      '    script: |',
      '      #!/bin/sh',
      '      echo requires: mounts: location: # not touched',
      '',
    ].join('\n');
    const out = upgradeAndCheck(v1);
    assert.equal(
      out,
      [
        'version: v4 # the old dialect',
        '',
        '# shared scratch space',
        'volumes:',
        '  scratch: {reference: volume://user/ephemeral}',
        '  refs:',
        '    reference: volume://user/persistent/refs',
        'jobs:',
        '  fetch:',
        '    command: [echo, fetch]   # first',
        '    mounts:',
        '      /scratch:               # where it writes',
        '        volume: scratch',
        '  align:',
        '    depends-on: [{name: "fetch", status: SUCCEEDED}]',
        '    command: [echo, align]',
        '    mounts:',
        '      "/scratch": {volume: scratch}',
        '      /refs: {volume: refs, read-only: true}',
        '  report:',
        '    depends-on:',
        '      - {name: fetch, status: SUCCEEDED}   # needs the data',
        "      - {name: 'align', status: SUCCEEDED}",
        '    script: |',
        '      #!/bin/sh',
        '      echo requires: mounts: location: # not touched',
        '',
      ].join('\n'),
    );
  });

  test('defaults.job, merge keys (<<: *anchor), and JSON files', () => {
    const v1 = [
      'version: "v1"',
      'x-common: &common',
      '  mounts: {scratch: {location: /tmp/s}}',
      'defaults:',
      '  job:',
      '    requires: []',
      '    mounts:',
      '      logs: {location: /logs}',
      'volumes:',
      '  scratch: {reference: volume://user/ephemeral}',
      '  logs: {reference: volume://user/ephemeral}',
      'jobs:',
      '  a:',
      '    <<: *common',
      '    command: [echo, a]',
      '  b: {command: [echo, b], requires: [a]}',
      '',
    ].join('\n');
    const out = upgradeAndCheck(v1);
    assert.match(out, /^version: "v4"\n/);
    assert.match(out, /  mounts: \{\/tmp\/s: \{volume: scratch\}\}\n/);
    assert.match(out, /    depends-on: \[\]\n/);
    assert.match(out, /      \/logs: \{volume: logs\}\n/);
    assert.match(out, /  b: \{command: \[echo, b\], depends-on: \[\{name: a, status: SUCCEEDED\}\]\}\n/);

    const json = JSON.stringify({ version: 'v1', volumes: { d: { reference: 'volume://user/ephemeral' } }, jobs: { a: { command: ['true'], mounts: { d: { location: '/data', 'read-only': true } } }, b: { command: ['true'], requires: ['a'] } } });
    const j = upgradeAndCheck(json);
    assert.deepEqual(JSON.parse(j), { version: 'v4', volumes: { d: { reference: 'volume://user/ephemeral' } }, jobs: { a: { command: ['true'], mounts: { '/data': { volume: 'd', 'read-only': true } } }, b: { command: ['true'], 'depends-on': [{ name: 'a', status: 'SUCCEEDED' }] } } });
  });

  test('names that would change meaning unquoted are quoted', () => {
    const v1 = 'version: v1\nvolumes:\n  "123": {reference: volume://user/ephemeral}\njobs:\n  a:\n    command: [x]\n    mounts:\n      "123": {location: "/a b: c"}\n';
    const out = upgradeAndCheck(v1);
    assert.match(out, /      "\/a b: c": \{volume: "123"\}\n/);
  });

  test('the examples and Fuzzball\'s public v1 files upgrade to the same workflows', () => {
    const files = [
      ...readdirSync(join(repoRoot, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => join(repoRoot, 'examples', f)),
      ...readdirSync(join(sharedDir, 'fuzzball-examples'), { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile() && /\.(ya?ml|fz)$/.test(d.name))
        .map((d) => join(d.parentPath, d.name)),
    ];
    let upgraded = 0;
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      const { workflow } = parseWorkflowText(text, f);
      if (!workflow || workflow.dialect !== 'v1') continue; // invalid today (new keys) or not v1
      upgradeAndCheck(text);
      upgraded++;
    }
    assert.ok(upgraded >= 3, `${upgraded} files upgraded`);
  });

  test('v1 with both requires and depends-on (block and flow lists), and the deprecated type: EPHEMERAL volume', () => {
    const block = [
      'version: v1',
      'volumes:',
      '  old:',
      '    type: EPHEMERAL',
      'services:',
      '  db: {command: [x]}',
      'jobs:',
      '  a: {command: [x]}',
      '  b:',
      '    requires: [a]   # the v1 way',
      '    depends-on:',
      '      - db',
      '    command: [x]',
      '  c: {command: [x], requires: [a, b], depends-on: [db]}',
      '',
    ].join('\n');
    assert.equal(
      upgradeAndCheck(block),
      [
        'version: v4',
        'volumes:',
        '  old:',
        '    reference: volume://user/ephemeral',
        'services:',
        '  db: {command: [x]}',
        'jobs:',
        '  a: {command: [x]}',
        '  b:',
        '    # the v1 way',
        '    depends-on:',
        '      - {name: a, status: SUCCEEDED}',
        '      - db',
        '    command: [x]',
        '  c: {command: [x], depends-on: [{name: a, status: SUCCEEDED}, {name: b, status: SUCCEEDED}, db]}',
        '',
      ].join('\n'),
    );
  });

  test('a v4 file is returned as it is', () => {
    const v4 = readFileSync(join(repoRoot, 'examples', 'services-v4.yaml'), 'utf8');
    const r = upgradeFuzzfile(v4, 'services-v4.yaml');
    assert.deepEqual(r, { text: v4, from: 'v4', changed: false, changes: [] });
  });

  test('an invalid file: its diagnostics (SPEC_INVALID); WfFormat: UPGRADE_NOT_FUZZFILE', () => {
    assert.throws(
      () => upgradeFuzzfile('version: v1\njobs:\n  a: {command: [x], requires: [b]}\n', 'bad.yaml'),
      (e: unknown) => e instanceof WarrenError && e.code === 'SPEC_INVALID' && e.message === 'bad.yaml: 1 error\nbad.yaml:3:32: jobs.a.requires[0]: unknown job "b"\n  hint: jobs in this file: a',
    );
    const wf = readFileSync(join(sharedDir, 'wfcommons', 'blast-chameleon-small-001.json'), 'utf8');
    assert.throws(
      () => upgradeFuzzfile(wf, 'blast.json'),
      (e: unknown) => e instanceof WarrenError && e.code === 'UPGRADE_NOT_FUZZFILE' && e.exitCode === 2,
    );
  });
});

describe('warren upgrade (the command)', () => {
  const warren = (args: string[], home: string) => spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home }, encoding: 'utf8', timeout: 60_000 });
  const v1 = [
    'version: v1',
    '# write, then read, on a scratch volume',
    'volumes:',
    '  scratch:',
    '    reference: volume://user/ephemeral',
    'jobs:',
    '  write:',
    '    command: [/bin/sh, -c, "echo hello from v1 > msg"]',
    '    cwd: /data',
    '    mounts:',
    '      scratch:',
    '        location: /data',
    '  read:',
    '    command: [/bin/cat, msg]',
    '    cwd: /data',
    '    requires: [write]',
    '    mounts:',
    '      scratch: {location: /data, read-only: true}',
    '',
  ].join('\n');

  test('stdout, -o, --in-place (keeping the mode); the upgraded workflow validates and runs the same', () => {
    const t = tempDir();
    try {
      const home = join(t.dir, 'home');
      const f = join(t.dir, 'flow.yaml');
      writeFileSync(f, v1);
      let r = warren(['upgrade', f], home);
      assert.equal(r.status, 0, r.stderr);
      const expected = upgradeFuzzfile(v1, f).text;
      assert.equal(r.stdout, expected);
      assert.equal(r.stderr, `${f}: upgraded to v4 (standard output); 4 changes:\n  version: v1 -> v4\n  jobs.write.mounts.scratch: keyed by volume -> keyed by path /data\n  jobs.read: requires -> depends-on\n  jobs.read.mounts.scratch: keyed by volume -> keyed by path /data\n`);
      const out = join(t.dir, 'flow4.yaml');
      r = warren(['upgrade', f, '-o', out], home);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(readFileSync(out, 'utf8'), expected);
      r = warren(['validate', out], home);
      assert.equal(r.status, 0, r.stderr);
      // It runs the same: both succeed, and the second job reads what the first wrote.
      for (const file of [f, out]) {
        r = warren(['run', file, '--json'], home);
        assert.equal(r.status, 0, r.stderr);
        const run = JSON.parse(r.stdout) as { id: string; status: string; jobs: { name: string; status: string }[] };
        assert.equal(run.status, 'succeeded');
        assert.deepEqual(run.jobs.map((j) => [j.name, j.status]), [['write', 'succeeded'], ['read', 'succeeded']]);
        assert.equal(warren(['logs', run.id, 'read'], home).stdout, 'hello from v1\n');
      }
      // An already-v4 file: said so, exit 0, the text unchanged.
      r = warren(['upgrade', out], home);
      assert.equal(r.status, 0);
      assert.equal(r.stdout, expected);
      assert.equal(r.stderr, `${out} is already version v4: nothing to upgrade\n`);
      // --in-place keeps the file's mode.
      chmodSync(f, 0o640);
      r = warren(['upgrade', f, '--in-place'], home);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(f, 'utf8'), expected);
      assert.equal(statSync(f).mode & 0o777, 0o640);
      assert.deepEqual(readdirSync(t.dir).sort(), ['flow.yaml', 'flow4.yaml', 'home']);
    } finally {
      t.cleanup();
    }
  });

  test('bad uses: an invalid file (its diagnostics), both -o and --in-place, an unwritable output; exit 2', () => {
    const t = tempDir();
    try {
      const home = join(t.dir, 'home');
      const bad = join(t.dir, 'bad.yaml');
      writeFileSync(bad, 'version: v1\njobs:\n  a: {command: [x], requires: [b]}\n');
      let r = warren(['upgrade', bad], home);
      assert.equal(r.status, 2);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `error[SPEC_INVALID]: ${bad}: 1 error\n${bad}:3:32: jobs.a.requires[0]: unknown job "b"\n  hint: jobs in this file: a\n  hint: fix the problems listed above (\`warren validate FILE\` checks a file without running it)\n`);
      writeFileSync(bad, v1);
      r = warren(['upgrade', bad, '-o', join(t.dir, 'x.yaml'), '--in-place'], home);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^error\[CLI_BAD_OPTION\]: --in-place and -o\/--output exclude each other\n/);
      r = warren(['upgrade', bad, '-o', join(t.dir, 'no', 'such', 'dir.yaml')], home);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^error\[CLI_OUTPUT_UNWRITABLE\]: cannot write .*dir\.yaml: ENOENT.*\n  hint: the directory does not exist/);
      r = warren(['upgrade', join(t.dir, 'missing.yaml')], home);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^error\[SPEC_FILE_NOT_FOUND\]/);
    } finally {
      t.cleanup();
    }
  });
});
