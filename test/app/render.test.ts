// Fuzzball values files, --set, and rendering templates into workflows (src/app): the
// fixture under test/app/fixtures renders and validates, positions map back to the
// template, and every kind of bad input is a WarrenError with file:line:col and a hint.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applySets, parseValuesText, renderTemplate, templatePosition, type TemplateValue } from '../../src/app/index.js';
import { WarrenError } from '../../src/common/index.js';
import { parseWorkflowText } from '../../src/workflow/index.js';
import { repoRoot } from '../helpers.js';

const fixture = (name: string, file: string): string => readFileSync(join(repoRoot, 'test', 'app', 'fixtures', name, file), 'utf8');
const opts = { templateFile: 'template.yaml', valuesFile: 'values.yaml', random: () => 0.5, now: () => 0 };

function thrown(f: () => unknown): WarrenError {
  try {
    f();
  } catch (e) {
    if (e instanceof WarrenError) return e;
    throw e;
  }
  assert.fail('no error');
}

const values = (text: string): TemplateValue[] => parseValuesText(text, 'values.yaml');

describe('values files', () => {
  test('every kind of value, in snake_case and in the API\'s camelCase', () => {
    const v = values(
      [
        'values:',
        '  - name: S',
        '    display_name: a string',
        '    display_category: Cat',
        '    string_value: "x"',
        '  - {name: U, uint_value: 18446744073709551615}',
        '  - {name: B, bool_value: true}',
        '  - {name: Sec, secret_value: {reference: "secret://user/k", type: S3}}',
        '  - {name: Vol, volumeValue: {reference: volume://user/persistent/x}}',
        '  - {name: N, string_value: 5m0s, options_input: {options: [5m0s, 1h]}}',
        '  - {name: Num, stringValue: 1.50}',
        '  - {name: E, string_value: }',
      ].join('\n'),
    );
    assert.deepEqual(
      v.map((x) => [x.name, x.kind, x.value]),
      [
        ['S', 'string', 'x'],
        ['U', 'uint', 18446744073709551615n],
        ['B', 'bool', true],
        ['Sec', 'secret', 'secret://user/k'],
        ['Vol', 'volume', 'volume://user/persistent/x'],
        ['N', 'string', '5m0s'],
        ['Num', 'string', '1.50'],
        ['E', 'string', ''],
      ],
    );
    assert.equal(v[0]!.displayName, 'a string');
    assert.equal(v[0]!.displayCategory, 'Cat');
    assert.deepEqual(v[5]!.options, ['5m0s', '1h']);
    assert.equal(v[3]!.secretType, 'S3');
    assert.deepEqual([v[1]!.line, v[1]!.col], [6, 5]);
  });

  test('problems, each with its position and a hint; all of them at once', () => {
    const e = thrown(() =>
      values(
        [
          'values:',
          '  - name: A',
          '    string_valu: x',
          '  - name: B',
          '    int_value: 3',
          '  - name: C',
          '    string_value: a',
          '    uint_value: 1',
          '  - name: D',
          '  - name: E',
          '    uint_value: -1',
          '  - name: F',
          '    bool_value: "yes"',
          '  - {name: A, string_value: again}',
          '  - {name: G, string_value: c, options_input: {options: [a, b]}}',
          '  - string_value: nameless',
        ].join('\n'),
      ),
    );
    assert.equal(e.code, 'APP_VALUES_INVALID');
    assert.equal(e.exitCode, 2);
    const problems = (e.details!.problems as { line: number; col: number; message: string }[]).map((p) => `${p.line}:${p.col}: ${p.message}`);
    assert.deepEqual(problems, [
      '3:5: unknown key "string_valu" (did you mean "string_value"?)',
      '5:5: unknown key "int_value" (did you mean "uint_value"?)',
      '8:5: an entry has one value, but this one has both string_value and uint_value',
      '9:5: the value "D" has no value: add one of string_value, uint_value, bool_value, secret_value, volume_value',
      '11:17: uint_value must be a whole number from 0 to 18446744073709551615, got "-1"',
      '13:17: bool_value must be true or false, got "yes"',
      '14:5: the value "A" is defined twice (also at line 2)',
      '15:29: the value "G" is "c", which is not one of its options: a, b',
      '16:5: missing required key "name"',
    ]);
    assert.match(e.message, /^values\.yaml has 9 problems:\nvalues\.yaml:3:5: unknown key "string_valu"/);
  });

  test('the shape of the file', () => {
    assert.equal(thrown(() => values('- a\n- b\n')).message, 'values.yaml:1:1: a values file is a mapping with a "values:" list');
    assert.equal(thrown(() => values('value: []\n')).message, 'values.yaml has 2 problems:\nvalues.yaml:1:1: unknown key "value" (did you mean "values"?)\n  hint: a values file has one key, "values:", a list of entries\nvalues.yaml:1:1: missing required key "values"\n  hint: list the entries under "values:", e.g. values: [{name: Cores, uint_value: 4}]');
    assert.match(thrown(() => values('values: [\n')).message, /^values\.yaml:2:1: malformed YAML/);
    assert.deepEqual(values('values:\n'), []);
  });
});

describe('--set', () => {
  const base = values('values:\n  - {name: Cores, uint_value: 4}\n  - {name: Gpu, bool_value: false}\n  - {name: Uri, string_value: docker://a}\n  - {name: Scope, string_value: user, options_input: {options: [user, group]}}\n  - {name: Key, secret_value: {reference: ""}}\n');

  test('typed by the entry: whole numbers, Go\'s booleans, strings; the last one wins', () => {
    const v = applySets(base, ['Cores=16', 'Gpu=T', 'Uri=docker://b=c', 'Scope=group', 'Key=secret://user/k', 'Cores=8'], 'values.yaml');
    assert.deepEqual(v.map((x) => x.value), [8n, true, 'docker://b=c', 'group', 'secret://user/k']);
    assert.equal(base[0]!.value, 4n, 'the parsed values are not changed');
  });

  test('bad overrides', () => {
    for (const [s, msg] of [
      ['Cores=-1', '--set Cores=-1: Cores is a uint_value: expected a whole number from 0 to 18446744073709551615'],
      ['Cores=1.5', '--set Cores=1.5: Cores is a uint_value: expected a whole number from 0 to 18446744073709551615'],
      ['Gpu=yes', '--set Gpu=yes: Gpu is a bool_value: expected true or false'],
      ['Scope=world', '--set Scope=world: Scope must be one of user, group'],
      ['cores=3', '--set cores=...: values.yaml has no value named "cores" (did you mean "Cores"?)'],
      ['Cores', '--set "Cores": expected NAME=VALUE'],
      ['=3', '--set "=3": expected NAME=VALUE'],
    ] as const) {
      const e = thrown(() => applySets(base, [s], 'values.yaml'));
      assert.equal(e.code, 'APP_VALUES_INVALID', s);
      assert.equal(e.message, msg, s);
      assert.ok(e.hint, s);
    }
  });
});

describe('rendering', () => {
  const tpl = fixture('pipeline', 'template.yaml');
  const vals = parseValuesText(fixture('pipeline', 'values.yaml'), 'values.yaml');

  test('the fixture renders, deterministically given the random numbers, into a valid v4 workflow', () => {
    const r = renderTemplate(tpl, vals, opts);
    assert.equal(renderTemplate(tpl, vals, opts).text, r.text);
    const { workflow, diagnostics } = parseWorkflowText(r.text, 'rendered.yaml');
    assert.deepEqual(diagnostics, []);
    assert.ok(workflow);
    assert.deepEqual(Object.keys(workflow.jobs), ['prepare', 'align', 'sort']);
    assert.deepEqual(workflow.jobs.prepare!.command, ['/bin/sh', '-c', 'mkdir -p /data/out && echo reads_1.fq reads_2.fq 2']);
    assert.deepEqual(workflow.jobs.align!.env, { TOOL: 'bwa', RUN_ID: 'ntq5', CORES: '3', THREADS: '2' });
    assert.equal(workflow.jobs.align!.script, "#!/bin/sh\nset -x\necho 'all done'\necho Align with $TOOL on 3 cores\n");
    assert.deepEqual(workflow.jobs.sort!.taskArray, { start: 0, end: 2, concurrency: 0 });
    assert.equal(workflow.jobs.sort!.resources.cores, 3);
    assert.equal(workflow.jobs.sort!.resources.affinity, 'numa');
    assert.equal(workflow.jobs.sort!.resources.memoryBytes, 6 * 1024 ** 3);
    assert.deepEqual(workflow.jobs.sort!.mounts, [{ volume: 'data', location: '/data', readOnly: true }]);
    assert.deepEqual(workflow.volumes.data!.ingress.map((t) => t.source.uri), ['https://example.org/data/reads_1.fq', 'https://example.org/data/reads_2.fq']);
  });

  test('--set changes what renders', () => {
    const r = renderTemplate(tpl, applySets(vals, ['Cores=1', 'Verbose=false', 'Tag=3.19'], 'values.yaml'), opts);
    const { workflow } = parseWorkflowText(r.text, 'rendered.yaml');
    assert.equal(workflow!.jobs.align!.script, "#!/bin/sh\ntrue\necho 'all done'\necho Align with $TOOL on 1 cores\n");
    assert.equal(workflow!.jobs.align!.taskArray, undefined);
    assert.equal(workflow!.jobs.align!.image!.uri, 'docker://alpine:3.19');
    assert.equal(workflow!.jobs.align!.env.THREADS, '1');
  });

  test('positions of the rendered text map back to the template line that produced them', () => {
    const r = renderTemplate(tpl, vals, opts);
    const lines = r.text.split('\n');
    const tplLines = tpl.split('\n');
    const at = (needle: string): { line: number; col: number } => {
      const i = lines.findIndex((l) => l.includes(needle));
      return templatePosition(r, i + 1, lines[i]!.indexOf(needle) + 1);
    };
    let p = at('TOOL=samtools');
    assert.equal(tplLines[p.line - 1]!.trim(), '- TOOL={{ $tool }}');
    p = at('samtools');
    assert.equal(tplLines[p.line - 1]!.slice(p.col - 1, p.col + 5), '$tool ', 'an action\'s output maps to its expression');
    p = at('version: v4');
    assert.deepEqual(p, { line: tplLines.indexOf('version: v4') + 1, col: 1 });
  });

  test('a syntax error: the template\'s file:line:col', () => {
    const e = thrown(() => renderTemplate('version: v4\njobs:\n  a: {{ .X \n', vals, opts));
    assert.equal(e.code, 'APP_TEMPLATE_ERROR');
    assert.equal(e.message, 'template.yaml:3:6: unclosed action');
    assert.deepEqual(e.details, { file: 'template.yaml', line: 3, col: 6, kind: 'syntax' });
  });

  test('an unknown function: its position and a "did you mean"', () => {
    const e = thrown(() => renderTemplate('a\n{{ .Tag | trimprefix "v" }}', vals, opts));
    assert.equal(e.code, 'APP_TEMPLATE_ERROR');
    assert.equal(e.message, 'template.yaml:2:11: function "trimprefix" not defined (did you mean "trimPrefix"?)');
    assert.match(e.hint!, /docs\/templates\.md/);
  });

  test('a value the values file lacks: named, with a "did you mean", at the place that uses it', () => {
    const e = thrown(() => renderTemplate('x: {{ if .Optional }}{{ .Optional }}{{ end }}\ny: {{ .Core }}\n', vals, opts));
    assert.equal(e.code, 'APP_VALUE_MISSING');
    assert.equal(e.exitCode, 2);
    assert.equal(e.message, 'template.yaml:2:7: the template uses the value "Core", which values.yaml does not define (did you mean "Cores"?)');
    assert.match(e.hint!, /- name: Core /);
    const e2 = thrown(() => renderTemplate('{{ trim .Nope }}', vals, opts));
    assert.equal(e2.code, 'APP_VALUE_MISSING');
    assert.equal(e2.message, 'template.yaml:1:9: the template uses the value "Nope", which values.yaml does not define');
  });

  test('the template\'s fail and required: the message, the values involved, and what to change', () => {
    let e = thrown(() => renderTemplate(tpl, applySets(vals, ['Inputs=#none'], 'values.yaml'), opts));
    assert.equal(e.code, 'APP_TEMPLATE_FAILED');
    assert.equal(e.exitCode, 2);
    assert.equal(e.message, 'template.yaml:20:7: the template refused its values (fail): Inputs must name at least one file [values: Inputs]');
    assert.equal(e.hint, 'change this value in values.yaml, or with --set Inputs=VALUE');
    e = thrown(() => renderTemplate(tpl, applySets(vals, ['Volume=/tmp'], 'values.yaml'), opts));
    assert.equal(e.message, 'template.yaml:23:7: the template refused its values (fail): Volume must start with \'volume://\', got "/tmp" [values: Volume]');
    e = thrown(() => renderTemplate('{{ required "Cores is required" .Cores }}', [{ name: 'Cores', kind: 'string', value: '', line: 1, col: 1 }], opts));
    assert.equal(e.message, 'template.yaml:1:4: the template refused its values (required): Cores is required [values: Cores]');
  });

  test('a type error: Go\'s message and a hint about conversions', () => {
    const e = thrown(() => renderTemplate('{{ trimPrefix "x" .Cores }}', vals, opts));
    assert.equal(e.code, 'APP_TEMPLATE_ERROR');
    assert.equal(e.message, 'template.yaml:1:19: executing at <.Cores>: wrong type for value; expected string; got uint64');
    assert.match(e.hint!, /toString/);
  });
});
