// `warren app render` through the real CLI: stdout and -o, --set, the default values file,
// diagnostics of an invalid rendering pointing into the rendered text and back to the
// template, and the errors (exit 2, nothing written).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir, warrenBin } from '../helpers.js';

const fixtures = join(repoRoot, 'test', 'app', 'fixtures');
const warren = (args: string[], home: string) => spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home }, encoding: 'utf8', timeout: 60_000 });

describe('warren app render', () => {
  test('to stdout (the ok line on stderr), to -o (the ok line on stdout), with --set; the values file beside the template by default', () => {
    const t = tempDir();
    try {
      const home = join(t.dir, 'home');
      const tpl = join(fixtures, 'pipeline', 'template.yaml');
      let r = warren(['app', 'render', tpl, '--values', join(fixtures, 'pipeline', 'values.yaml'), '--set', 'Cores=1'], home);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^\nversion: v4\n/);
      assert.match(r.stdout, /      - CORES=1\n/);
      assert.equal(r.stderr, `${tpl}: rendered, ok (3 jobs)\n`);
      assert.equal(existsSync(home), false, 'app render does not create WARREN_HOME');
      const out = join(t.dir, 'flow.yaml');
      r = warren(['app', 'render', tpl, '-o', out], home);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${out}: ok (3 jobs), rendered from ${tpl}\n`);
      assert.match(readFileSync(out, 'utf8'), /      - CORES=3\n/);
      assert.equal(warren(['validate', out], home).status, 0);
    } finally {
      t.cleanup();
    }
  });

  test('an invalid rendering: the diagnostics point into the rendered text, each with the template line it came from; exit 2', () => {
    const t = tempDir();
    try {
      const dir = join(t.dir, 'app');
      mkdirSync(dir);
      writeFileSync(join(dir, 'template.yaml'), 'version: v1\njobs:\n{{- range $i := until (int .N) }}\n  job{{ $i }}:\n    command: [echo, {{ $i }}]\n    requires: [job{{ add $i 1 }}]\n{{- end }}\n');
      writeFileSync(join(dir, 'values.yaml'), 'values:\n  - {name: N, uint_value: 2}\n');
      const out = join(t.dir, 'flow.yaml');
      const r = warren(['app', 'render', join(dir, 'template.yaml'), '-o', out], join(t.dir, 'home'));
      assert.equal(r.status, 2);
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        [
          `${out}:8:16: jobs.job1.requires[0]: unknown job "job2" (did you mean "job0"?)`,
          '  hint: jobs in this file: job0, job1',
          `  from ${join(dir, 'template.yaml')}:6:16`,
          `error[APP_RENDERED_INVALID]: the rendered workflow has 1 error: the positions above are in the rendered text (written to ${out}); "from" is the template line that produced it`,
          '  hint: fix the template or its values; check a saved rendering again with `warren validate FILE`',
          '',
        ].join('\n'),
      );
      assert.equal(readFileSync(out, 'utf8'), 'version: v1\njobs:\n  job0:\n    command: [echo, 0]\n    requires: [job1]\n  job1:\n    command: [echo, 1]\n    requires: [job2]\n'.replace('    requires: [job2]\n', '    requires: [job2]\n'));
    } finally {
      t.cleanup();
    }
  });

  test('errors: a missing values file, a template error, a missing value, a refusal; exit 2 and nothing written', () => {
    const t = tempDir();
    try {
      const home = join(t.dir, 'home');
      const tpl = join(t.dir, 'template.yaml');
      writeFileSync(tpl, 'version: v4\njobs:\n  a:\n    command: [echo, {{ .Msg | quote }}]\n');
      let r = warren(['app', 'render', tpl], home);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^error\[CLI_BAD_OPTION\]: no values file: pass --values FILE \(there is no values\.yaml beside /);
      const values = join(t.dir, 'v.yaml');
      writeFileSync(values, 'values:\n  - {name: Mesg, string_value: hi}\n');
      const out = join(t.dir, 'out.yaml');
      r = warren(['app', 'render', tpl, '--values', values, '-o', out], home);
      assert.equal(r.status, 2);
      assert.equal(r.stderr, `error[APP_VALUE_MISSING]: ${tpl}:4:24: the template uses the value "Msg", which ${values} does not define (did you mean "Mesg"?)\n  hint: add an entry to ${values}: - name: Msg with its value (string_value, uint_value, bool_value, secret_value or volume_value)\n`);
      assert.equal(existsSync(out), false);
      r = warren(['app', 'render', tpl, '--values', values, '--set', 'Msg=x'], home);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^error\[APP_VALUES_INVALID\]: --set Msg=\.\.\.: .* has no value named "Msg" \(did you mean "Mesg"\?\)\n/);
      writeFileSync(tpl, '{{ if not .Mesg }}{{ fail "Mesg is required" }}{{ end }}{{ .Mesg | trimprefix "x" }}');
      r = warren(['app', 'render', tpl, '--values', values], home);
      assert.equal(r.status, 2);
      assert.equal(r.stderr, `error[APP_TEMPLATE_ERROR]: ${tpl}:1:68: function "trimprefix" not defined (did you mean "trimPrefix"?)\n  hint: Warren knows Go's builtins and the slim-sprig functions listed in docs/templates.md; "trimprefix" is not one of them\n`);
      writeFileSync(tpl, 'version: v4\n{{ if not .Mesg }}\n  {{- fail "Mesg is required" }}\n{{ end }}');
      r = warren(['app', 'render', tpl, '--values', values, '--set', 'Mesg='], home);
      assert.equal(r.status, 2);
      assert.equal(r.stderr, `error[APP_TEMPLATE_FAILED]: ${tpl}:3:7: the template refused its values (fail): Mesg is required [values: Mesg]\n  hint: change this value in ${values}, or with --set Mesg=VALUE\n`);
      r = warren(['app', 'render', join(t.dir, 'nope.yaml'), '--values', values], home);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^error\[APP_FILE_UNREADABLE\]: template .*nope\.yaml does not exist\n/);
    } finally {
      t.cleanup();
    }
  });
});
