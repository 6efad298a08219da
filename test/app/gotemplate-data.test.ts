// Go templates over any data (src/app executeGoTemplate, used by provisioning overlays): Go's
// missingkey option, Warewulf's file function, plain data as Go values, positions of errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GoTemplateError, executeGoTemplate, executeGoTemplateFiles, toGoValue } from '../../src/app/index.js';

function err(f: () => unknown): GoTemplateError {
  try {
    f();
  } catch (e) {
    if (e instanceof GoTemplateError) return e;
    throw e;
  }
  assert.fail('no error');
}

const data = toGoValue({ Node: { Name: 'n1', MTU: 9000, Ratio: 0.5, DNS: ['a', 'b'], Tags: { rack: 'a1' }, Primary: null, Up: true } });

describe('executeGoTemplate', () => {
  test('plain data becomes Go values: ints, floats, []string, maps, nil', () => {
    assert.equal(executeGoTemplate('{{ .Node.Name }} {{ add .Node.MTU 1 }} {{ .Node.Ratio }} {{ join "," .Node.DNS }} {{ .Node.Tags.rack }} {{ printf "%T" .Node.DNS }} {{ if .Node.Up }}up{{ end }}', data), 'n1 9001 0.5 a,b a1 []string up');
    assert.equal(executeGoTemplate('{{ with .Node.Primary }}x{{ else }}none{{ end }}', data), 'none');
  });

  test('missingkey: zero gives no value; error stops at the field with the keys there', () => {
    assert.equal(executeGoTemplate('[{{ .Node.Nope }}]', data), '[<no value>]');
    const e = err(() => executeGoTemplate('a\n  {{ .Node.Nmae }}', data, { missingKey: 'error' }));
    assert.equal(e.kind, 'missingKey');
    assert.equal(e.message, 'executing at <.Node.Nmae>: map has no entry for key "Nmae"');
    assert.deepEqual([e.line, e.col, e.key], [2, 6, 'Nmae']);
    assert.deepEqual(e.keys, ['Name', 'MTU', 'Ratio', 'DNS', 'Tags', 'Primary', 'Up']);
    // index is not affected (as in Go), nor are keys that exist
    assert.equal(executeGoTemplate('{{ index .Node.Tags "row" }}|{{ .Node.Tags.rack }}', data, { missingKey: 'error' }), '<no value>|a1');
    // a nil is not a missing key
    assert.match(err(() => executeGoTemplate('{{ .Node.Primary.IP }}', data, { missingKey: 'error' })).message, /nil pointer evaluating interface \{\}\.IP/);
  });

  test('syntax errors and fail carry their position and kind', () => {
    const s = err(() => executeGoTemplate('x\n{{ if }}', data));
    assert.deepEqual([s.kind, s.line], ['syntax', 2]);
    const f = err(() => executeGoTemplate('{{ fail "no" }}', data));
    assert.deepEqual([f.kind, f.message], ['fail', 'no']);
  });

  test('file NAME splits the output; only where it is asked for', () => {
    const parts = executeGoTemplateFiles('head\n{{ range .Node.DNS }}{{ file (printf "%s.conf" .) }}dns {{ . }}\n{{ end }}{{ file "a.conf" }}more\n', data);
    assert.deepEqual(parts, [{ name: null, text: 'head\n' }, { name: 'a.conf', text: 'dns a\nmore\n' }, { name: 'b.conf', text: 'dns b\n' }]);
    assert.match(err(() => executeGoTemplateFiles('{{ file "../x" }}', data)).message, /error calling file: "\.\.\/x" is not a plain file name/);
    assert.match(err(() => executeGoTemplate('{{ file "x" }}', data)).message, /function "file" not defined/);
  });
});
