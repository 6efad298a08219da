// The Go text/template engine (src/app/gotemplate): what Go's text/template prints for each
// construct, and its errors with their positions. The expected outputs are Go's (go1.22
// text/template with slim-sprig), written down by hand.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { executeTemplate, TemplateExecError } from '../../src/app/gotemplate/exec.js';
import { ACCEPTS_MISSING, functionNames, templateFunctions } from '../../src/app/gotemplate/funcs.js';
import { lex } from '../../src/app/gotemplate/lex.js';
import { parseTemplate, TemplateSyntaxError } from '../../src/app/gotemplate/parse.js';
import { GoInt, type GoMap, type GoValue } from '../../src/app/gotemplate/values.js';
import { sprintf } from '../../src/app/gotemplate/fmt.js';

const funcs = templateFunctions({ random: () => 0.25, now: () => Date.UTC(2024, 0, 2, 3, 4, 5, 6) });

function data(o: Record<string, unknown> = {}): GoMap {
  const conv = (v: unknown): GoValue => {
    if (typeof v === 'bigint') return new GoInt('uint64', v);
    if (Array.isArray(v)) return v.map(conv);
    if (v !== null && typeof v === 'object' && !(v instanceof GoInt)) return new Map(Object.entries(v).map(([k, x]) => [k, conv(x)]));
    return v as GoValue;
  };
  return conv(o) as GoMap;
}

function render(t: string, d: Record<string, unknown> = {}, missingRoot: 'novalue' | 'error-on-use' = 'novalue'): string {
  const tpl = parseTemplate(t, (n) => funcs.has(n));
  return executeTemplate(tpl, data(d), { funcs, missingRoot, acceptsMissing: ACCEPTS_MISSING }).output;
}

function execError(t: string, d: Record<string, unknown> = {}, missingRoot: 'novalue' | 'error-on-use' = 'novalue'): TemplateExecError {
  try {
    render(t, d, missingRoot);
  } catch (e) {
    if (e instanceof TemplateExecError) return e;
    throw e;
  }
  assert.fail(`no error for ${t}`);
}

function syntaxError(t: string): TemplateSyntaxError {
  try {
    parseTemplate(t, (n) => funcs.has(n));
  } catch (e) {
    if (e instanceof TemplateSyntaxError) return e;
    throw e;
  }
  assert.fail(`no syntax error for ${t}`);
}

describe('lexer', () => {
  test('trim markers, comments, raw strings with delimiters inside, newlines inside actions', () => {
    assert.equal(render('a  {{- "b" -}}  c'), 'abc');
    assert.equal(render('a \n\t{{- /* a comment */ -}}\n b'), 'ab');
    assert.equal(render('{{/* spans\nlines */}}x'), 'x');
    assert.equal(render('{{ `{{"x"}}` }}'), '{{"x"}}');
    assert.equal(render('{{ printf "%s-%s"\n  "a"\n  "b" }}'), 'a-b');
    assert.equal(render('{{-3}}'), '-3', 'a minus without a space is a number, not a trim marker');
    assert.equal(render('x {{- 3 }}'), 'x3');
  });

  test('the items of an action', () => {
    const types = lex('{{ $x := .A.B | f 1.5 "s" `r` \'c\' (g) }}').map((i) => i.type);
    assert.deepEqual(types, ['leftDelim', 'space', 'variable', 'space', 'declare', 'space', 'field', 'field', 'space', 'pipe', 'space', 'identifier', 'space', 'number', 'space', 'string', 'space', 'rawString', 'space', 'charConstant', 'space', 'leftParen', 'identifier', 'rightParen', 'space', 'rightDelim', 'eof']);
  });

  test('lexer errors, at their offset', () => {
    for (const [t, msg, pos] of [
      ['ab{{ "x }}', 'unterminated quoted string', 5],
      ['{{ `x }}', 'unterminated raw quoted string', 3],
      ['ab{{ .A', 'unclosed action', 2],
      ['{{ (.A }}', 'unclosed left paren', 7],
      ['{{ .A) }}', 'unexpected right paren', 5],
      ['{{ 3x }}', 'bad number syntax: "3x"', 3],
      ['{{ .a:b }}', 'expected :=', 5],
      ['{{/* x }}', 'unclosed comment', 2],
      ['{{/* x */ y}}', 'comment ends before closing delimiter', 2],
      ['{{ .A# }}', "bad character U+0023 '#'", 3],
    ] as const) {
      const e = syntaxError(t);
      assert.equal(e.message, msg, t);
      assert.equal(e.pos, pos, t);
    }
  });
});

describe('parser', () => {
  test('parse errors: Go\'s messages, at the offending item', () => {
    for (const [t, msg, pos] of [
      ['{{ end }}', 'unexpected {{end}}', 3],
      ['{{ if .A }}x', 'unexpected EOF', 12],
      ['{{ if }}{{ end }}', 'missing value for if', 6],
      ['{{ .A | "x" }}', 'non executable command in pipeline stage 2', 8],
      ['{{ $x }}', 'undefined variable "$x"', 3],
      ['{{ nosuch 1 }}', 'function "nosuch" not defined', 3],
      ['{{ break }}', '{{break}} outside {{range}}', 3],
      ['{{ range .A }}{{ else }}{{ else }}{{ end }}', 'expected end; found {{else}}', 27],
      ['{{ "x".A }}', 'unexpected . after term "\\"x\\""', 6],
      ['{{ range $a, $b, $c := .X }}{{ end }}', 'too many declarations in range', 15],
      ['{{ with $x, $y := 1 }}{{ end }}', 'too many declarations in with', 10],
      ['{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}', 'template: multiple definition of template "a"', 36],
      ['{{ template x }}', 'unexpected "x" in template clause', 12],
      ['{{ 1 2 ) }}', 'unexpected right paren', 7],
    ] as const) {
      const e = syntaxError(t);
      assert.equal(e.message, msg, t);
      assert.equal(e.pos, pos, t);
    }
  });

  test('an unknown function gets a "did you mean"', () => {
    const tpl = '{{ trimprefix "/" .A }}';
    assert.throws(
      () => parseTemplate(tpl, (n) => funcs.has(n), (n) => (n === 'trimprefix' ? ' (did you mean "trimPrefix"?)' : '')),
      (e: unknown) => e instanceof TemplateSyntaxError && e.message === 'function "trimprefix" not defined (did you mean "trimPrefix"?)' && e.pos === 3,
    );
  });
});

describe('executing', () => {
  test('fields, $, dot, nested maps, and "no value"', () => {
    assert.equal(render('{{ .A }} {{ .M.K }} {{ $.A }} {{ .Nope }}', { A: 'a', M: { K: 'k' } }), 'a k a <no value>');
    assert.equal(render('{{ with .M }}{{ .K }}{{ $.A }}{{ end }}', { A: 'a', M: { K: 'k' } }), 'ka');
    assert.equal(render('{{ . }}', { A: 1n }), 'map[A:1]');
    assert.equal(render('{{ .Nope.Deeper }}'), '<no value>');
  });

  test('if / else if / else, with / else with, truthiness', () => {
    const t = '{{ if eq .N 1 }}one{{ else if eq .N 2 }}two{{ else }}many{{ end }}';
    assert.equal(render(t, { N: 1n }), 'one');
    assert.equal(render(t, { N: 2n }), 'two');
    assert.equal(render(t, { N: 7n }), 'many');
    for (const [v, truth] of [['', false], ['x', true], [0n, false], [3n, true], [false, false], [true, true], [[], false], [['a'], true], [{}, false], [{ a: 1 }, true], [0, false], [0.5, true]] as const) {
      assert.equal(render('{{ if .V }}T{{ else }}F{{ end }}', { V: v }), truth ? 'T' : 'F', JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x)));
    }
    assert.equal(render('{{ with .A }}[{{ . }}]{{ else with .B }}<{{ . }}>{{ else }}none{{ end }}', { A: '', B: 'b' }), '<b>');
    assert.equal(render('{{ with .A }}{{ . }}{{ else }}none{{ end }}', { A: '' }), 'none');
  });

  test('variables: := declares until the end of the control, = assigns the outer one', () => {
    assert.equal(render('{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ $y := "c" }}{{ end }}{{ $x }}'), 'b');
    assert.equal(render('{{ $x := "a" }}{{ if true }}{{ $x := "inner" }}{{ $x }}{{ end }}{{ $x }}'), 'innera');
    assert.equal(render('{{ $l := list }}{{ range $v := list 1 2 3 }}{{ $l = append $l $v }}{{ end }}{{ $l }}'), '[1 2 3]');
    const e = syntaxError('{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}');
    assert.equal(e.message, 'undefined variable "$y"');
  });

  test('range over lists, maps (in key order), integers; $i, $v; else; break and continue', () => {
    assert.equal(render('{{ range .L }}<{{ . }}>{{ end }}', { L: ['a', 'b'] }), '<a><b>');
    assert.equal(render('{{ range $i, $v := .L }}{{ $i }}={{ $v }} {{ end }}', { L: ['a', 'b'] }), '0=a 1=b ');
    assert.equal(render('{{ range $k, $v := .M }}{{ $k }}:{{ $v }};{{ end }}', { M: { b: '2', a: '1', c: '3' } }), 'a:1;b:2;c:3;');
    assert.equal(render('{{ range 3 }}{{ . }}{{ end }}'), '012');
    assert.equal(render('{{ range .L }}x{{ else }}empty{{ end }}', { L: [] }), 'empty');
    assert.equal(render('{{ range .Nope }}x{{ else }}none{{ end }}'), 'none');
    assert.equal(render('{{ range $i, $v := .L }}{{ if eq $v "b" }}{{ continue }}{{ end }}{{ if eq $v "d" }}{{ break }}{{ end }}{{ $v }}{{ end }}', { L: ['a', 'b', 'c', 'd', 'e'] }), 'ac');
    assert.equal(render('{{ range $x := .L }}{{ $y := $x }}{{ end }}{{ "ok" }}', { L: ['a'] }), 'ok');
    assert.equal(execError('{{ range .S }}{{ end }}', { S: 'abc' }).message, "range can't iterate over abc");
    assert.equal(execError('{{ range $i, $v := 3 }}{{ end }}').message, "can't use 3 to iterate over more than one variable");
  });

  test('define, template and block; templates see only their dot', () => {
    assert.equal(render('{{ define "greet" }}hi {{ . }}{{ end }}{{ template "greet" .Name }}!', { Name: 'bob' }), 'hi bob!');
    assert.equal(render('{{ block "b" .A }}[{{ . }}]{{ end }}', { A: 'x' }), '[x]');
    // As in Go, one parse cannot both define and block the same name.
    assert.equal(syntaxError('{{ define "b" }}override{{ end }}{{ block "b" .A }}[{{ . }}]{{ end }}').message, 'template: multiple definition of template "b"');
    assert.equal(execError('{{ template "nope" }}').message, 'template "nope" not defined');
    assert.equal(execError('{{ define "loop" }}{{ template "loop" }}{{ end }}{{ template "loop" }}').message, 'exceeded maximum template depth (1000)');
  });

  test('pipelines: the piped value is the last argument; parenthesized pipelines; chains', () => {
    assert.equal(render('{{ .A | printf "%s-%s" "x" }}', { A: 'a' }), 'x-a');
    assert.equal(render('{{ "/a/b/" | trimPrefix "/" | trimSuffix "/" | upper }}'), 'A/B');
    assert.equal(render('{{ (dict "k" "v").k }}'), 'v');
    assert.equal(render('{{ len (splitList "," "a,b,c") }}'), '3');
  });

  test('and / or short-circuit and return an argument; not; comparisons across int and uint', () => {
    assert.equal(render('{{ or "" "b" "c" }} {{ and "a" "" "c" }} {{ and "a" "b" }} {{ or 0 "" }}'), 'b  b ');
    assert.equal(render('{{ or .A (fail "not evaluated") }}', { A: 'set' }), 'set');
    assert.equal(render('{{ not .A }} {{ not "" }}', { A: 'x' }), 'false true');
    assert.equal(render('{{ eq .U 4 }} {{ gt .U 3 }} {{ lt 1 2 }} {{ le 2 2 }} {{ ge "b" "a" }} {{ ne "a" "b" }}', { U: 4n }), 'true true true true true true');
    assert.equal(render('{{ eq "a" "b" "c" "a" }}'), 'true');
    assert.equal(render('{{ eq .Nope "x" }}'), 'false');
    assert.equal(execError('{{ eq "a" 1 }}').message, 'error calling eq: incompatible types for comparison');
    assert.equal(execError('{{ lt .Nope 1 }}').message, 'error calling lt: invalid type for comparison');
    assert.equal(execError('{{ gt 1.5 1 }}').message, 'error calling gt: incompatible types for comparison');
  });

  test('index and len, on lists, maps and strings', () => {
    assert.equal(render('{{ index .L 1 }} {{ index .M "k" }} {{ index .M "nope" }} {{ index "abc" 0 }} {{ len "héllo" }}', { L: ['a', 'b'], M: { k: 'v' } }), 'b v <no value> 97 6');
    assert.equal(execError('{{ index .L 5 }}', { L: ['a'] }).message, 'error calling index: index out of range: 5');
    assert.equal(execError('{{ len 3 }}').message, 'error calling len: len of type int');
  });

  test('Go typing: an int parameter refuses an int64; a string parameter refuses a number; a missing value is "invalid value"', () => {
    let e = execError('{{ substr 0 (sub 5 1) "abcdef" }}');
    assert.equal(e.message, 'wrong type for value; expected int; got int64');
    assert.equal(render('{{ substr 0 (int (sub 5 1)) "abcdef" }}'), 'abcd');
    e = execError('{{ trim .U }}', { U: 4n });
    assert.equal(e.message, 'wrong type for value; expected string; got uint64');
    assert.equal(e.pos, 8);
    e = execError('{{ trim .Nope }}');
    assert.equal(e.message, 'invalid value; expected string');
    e = execError('{{ trim 3 }}');
    assert.equal(e.message, 'expected string; found 3');
    e = execError('{{ substr "a" 1 "abc" }}');
    assert.equal(e.message, 'expected integer; found "a"');
    e = execError('{{ "x" 1 }}');
    assert.equal(e.message, 'can\'t give argument to non-function "x"');
    e = execError('{{ .A.B }}', { A: 'str' });
    assert.equal(e.message, "can't evaluate field B in type string");
    e = execError('{{ printf }}');
    assert.equal(e.message, 'wrong number of args for printf: want at least 1 got 0');
    e = execError('{{ trim "a" "b" }}');
    assert.equal(e.message, 'wrong number of args for trim: want 1 got 2');
    e = execError('{{ trim nil }}');
    assert.equal(e.message, 'cannot assign nil to string');
  });

  test('error-on-use: a missing top-level value is fine in a condition, an error where it is printed or needed', () => {
    assert.equal(render('{{ if .Nope }}x{{ else }}y{{ end }}{{ .Nope | default "d" }}{{ empty .Nope }}', {}, 'error-on-use'), 'yd' + 'true');
    let e = execError('a\n  {{ .Nope }}', {}, 'error-on-use');
    assert.equal(e.kind, 'missing');
    assert.deepEqual(e.values, ['Nope']);
    assert.equal(e.pos, 7);
    e = execError('{{ $x := .Nope }}{{ trim $x }}', {}, 'error-on-use');
    assert.equal(e.kind, 'missing');
    assert.deepEqual(e.values, ['Nope']);
    e = execError('{{ .Nope | trim }}', {}, 'error-on-use');
    assert.equal(e.kind, 'missing');
    e = execError('{{ .Nope | quote }}', {}, 'error-on-use');
    assert.equal(e.kind, 'missing', 'an untyped argument of a function that does not test for missing values');
    e = execError('{{ printf "%s" .Nope }}', {}, 'error-on-use');
    assert.equal(e.kind, 'missing');
    assert.equal(render('{{ printf "%s" .Nope }}'), '%!s(<nil>)', 'Go\'s own behaviour without error-on-use');
  });

  test('fail and required: the message and the values involved (the call\'s arguments and the enclosing conditions)', () => {
    let e = execError('{{ $s := trim .Secret }}{{ if and (not $s) .Out }}\n  {{ fail "a Secret is needed to save to Out" }}{{ end }}', { Secret: ' ', Out: 's3://b' });
    assert.equal(e.kind, 'fail');
    assert.equal(e.message, 'a Secret is needed to save to Out');
    assert.deepEqual(e.values.sort(), ['Out', 'Secret']);
    assert.equal(e.pos, 56);
    e = execError('{{ required "Cores is required" .Cores }}', { Cores: '' });
    assert.equal(e.kind, 'fail');
    assert.deepEqual(e.values, ['Cores']);
    assert.equal(render('{{ required "x" .Cores }}', { Cores: 4n }), '4');
  });

  test('limits: endless ranges and huge outputs stop with an error', () => {
    const tpl = parseTemplate('{{ range 100000000 }}{{ end }}', (n) => funcs.has(n));
    assert.throws(() => executeTemplate(tpl, new Map(), { funcs, maxSteps: 10000 }), /ran for more than 10000 steps/);
    const big = parseTemplate('{{ range 1000 }}xxxxxxxxxx{{ end }}', (n) => funcs.has(n));
    assert.throws(() => executeTemplate(big, new Map(), { funcs, maxOutput: 500 }), /output is larger than 500 characters/);
  });

  test('segments map output back to the template', () => {
    const tpl = parseTemplate('ab{{ .A }}cd', (n) => funcs.has(n));
    const r = executeTemplate(tpl, data({ A: 'XYZ' }), { funcs });
    assert.equal(r.output, 'abXYZcd');
    assert.deepEqual(r.segments, [
      { out: 0, tpl: 0, text: true },
      { out: 2, tpl: 5, text: false },
      { out: 5, tpl: 10, text: true },
    ]);
  });
});

describe('fmt', () => {
  test('Sprintf: verbs, flags, width, precision, and Go\'s text for mistakes', () => {
    const i = (n: number): GoInt => new GoInt('int', BigInt(n));
    const cases: [string, GoValue[], string][] = [
      ['%s|%v|%q', ['a"b', 'x', 'tab\there'], 'a"b|x|"tab\\there"'],
      ['%d|%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%#x|%c|%U', [i(42), i(42), i(42), i(-42), i(42), i(255), i(255), i(8), i(5), i(255), i(65), i(0x1f600)], '42|   42|42   |-0042|+42|ff|FF|10|101|0xff|A|U+1F600'],
      ['%8d', [i(1234)], '    1234'],
      ['%v %v %v %v', [1.5, 1e6, 123456789.0, 0.00001], '1.5 1e+06 1.23456789e+08 1e-05'],
      ['%f %.2f %e %g %.3g %8.3f', [3.14159, 3.14159, 1234.5678, 0.000012345, 1234.5678, 3.14159], '3.141590 3.14 1.234568e+03 1.2345e-05 1.23e+03    3.142'],
      ['%t %v', [true, false], 'true false'],
      ['%d', ['x'], '%!d(string=x)'],
      ['%s', [i(5)], '%!s(int=5)'],
      ['%s %s', ['a'], 'a %!s(MISSING)'],
      ['%s', ['a', 'b', i(1)], 'a%!(EXTRA string=b, int=1)'],
      ['%v %v', [['a', i(1), null], new Map<string, GoValue>([['b', i(2)], ['a', 'x']])], '[a 1 <nil>] map[a:x b:2]'],
      ['%T %T %T %T', ['s', i(1), 1.5, ['x']], 'string int float64 []interface {}'],
      ['%q %x', [['a', 'b'], 'hi'], '["a" "b"] 6869'],
      ['%.2s|%5s|%-5s|', ['abcdef', 'ab', 'ab'], 'ab|   ab|ab   |'],
      ['100%%', [], '100%'],
      ['%v', [null], '<nil>'],
      ['%d', [null], '%!d(<nil>)'],
      ['%q', ['é\u0001\u2028'], '"é\\x01\\u2028"'],
    ];
    for (const [f, args, want] of cases) assert.equal(sprintf(f, args), want, f);
  });
});

describe('functions', () => {
  // One case (at least) for every function: [template, expected output].
  const cases: Record<string, string[][]> = {
    and: [['{{ and 1 2 }}', '2']],
    or: [['{{ or 0 2 }}', '2']],
    not: [['{{ not 0 }}', 'true']],
    len: [['{{ len (list 1 2) }}', '2']],
    index: [['{{ index (list "a" (list "b" "c")) 1 0 }}', 'b']],
    print: [['{{ print "a" 1 2 "b" }}', 'a1 2b']],
    printf: [['{{ printf "%s=%d" "n" 3 }}', 'n=3']],
    println: [['{{ println "a" 1 }}', 'a 1\n']],
    html: [['{{ html "<a href=\'x\'>&</a>" }}', '&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;']],
    js: [['{{ js "it\'s <b>" }}', "it\\'s \\u003Cb\\u003E"]],
    urlquery: [['{{ urlquery "a b&c" }}', 'a+b%26c']],
    eq: [['{{ eq 1 2 1 }}', 'true']],
    ne: [['{{ ne "a" "a" }}', 'false']],
    lt: [['{{ lt 1 2 }}', 'true']],
    le: [['{{ le 3 2 }}', 'false']],
    gt: [['{{ gt "b" "a" }}', 'true']],
    ge: [['{{ ge 2 2 }}', 'true']],
    call: [],
    trunc: [['{{ trunc 3 "abcdef" }} {{ trunc -2 "abcdef" }}', 'abc ef']],
    trim: [['[{{ trim "  a b \\n" }}]', '[a b]']],
    upper: [['{{ upper "abc" }}', 'ABC']],
    lower: [['{{ lower "ABC" }}', 'abc']],
    title: [['{{ title "hello big world" }}', 'Hello Big World']],
    substr: [['{{ substr 1 3 "abcdef" }} {{ substr 2 -1 "abcdef" }} {{ substr -1 2 "abcdef" }}', 'bc cdef ab']],
    repeat: [['{{ repeat 3 "ab" }}', 'ababab']],
    trimall: [['{{ trimall "$" "$$5$" }}', '5']],
    trimAll: [['{{ trimAll "/" "//a/b//" }}', 'a/b']],
    trimSuffix: [['{{ trimSuffix ".tar" "x.tar" }}', 'x']],
    trimPrefix: [['{{ trimPrefix "volume://" "volume://user/x" }}', 'user/x']],
    contains: [['{{ contains "ll" "hello" }}', 'true']],
    hasPrefix: [['{{ hasPrefix "s3://" "s3://bucket" }}', 'true']],
    hasSuffix: [['{{ hasSuffix ".gz" "a.tar" }}', 'false']],
    quote: [['{{ quote "a\\"b" 1 }}', '"a\\"b" "1"']],
    squote: [['{{ squote "a" }}', "'a'"]],
    cat: [['{{ cat "a" 1 nil "b" }}', 'a 1 b']],
    indent: [['{{ indent 2 "a\\nb" }}', '  a\n  b']],
    nindent: [['x:{{ nindent 2 "a\\nb" }}', 'x:\n  a\n  b']],
    replace: [['{{ replace " " "-" "a b c" }}', 'a-b-c']],
    plural: [['{{ plural "one" "many" 1 }} {{ plural "one" "many" 2 }}', 'one many']],
    sha1sum: [['{{ sha1sum "abc" }}', 'a9993e364706816aba3e25717850c26c9cd0d89d']],
    sha256sum: [['{{ sha256sum "abc" }}', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad']],
    adler32sum: [['{{ adler32sum "Wikipedia" }}', '300286872']],
    toString: [['{{ toString 5 }} {{ toString (list 1 "a") }} {{ toString nil }}', '5 [1 a] <nil>']],
    toStrings: [['{{ toStrings (list 1 nil "a") | printf "%q" }}', '["1" "a"]']],
    atoi: [['{{ atoi "42" }} {{ atoi "x" }}', '42 0']],
    int64: [['{{ int64 "7" | typeOf }}', 'int64']],
    int: [['{{ int 3.9 }} {{ int "12" | typeOf }}', '3 int']],
    float64: [['{{ float64 "1.5" }}', '1.5']],
    toDecimal: [['{{ toDecimal "0777" }}', '511']],
    seq: [['{{ seq 3 }}|{{ seq 2 4 }}|{{ seq 0 2 6 }}', '1 2 3|2 3 4|0 2 4 6']],
    until: [['{{ until 3 }}', '[0 1 2]']],
    untilStep: [['{{ untilStep 0 10 4 }}', '[0 4 8]']],
    add1: [['{{ add1 4 }}', '5']],
    add: [['{{ add 1 2 "3" }} {{ add .U 30 | typeOf }}', '6 int64']],
    sub: [['{{ sub 5 7 }}', '-2']],
    div: [['{{ div 7 2 }}', '3']],
    mod: [['{{ mod 7 3 }}', '1']],
    mul: [['{{ mul 2 3 4 }}', '24']],
    randInt: [['{{ randInt 10 20 }}', '12']],
    max: [['{{ max 3 9 2 }} {{ add 5 30 | max 120 }}', '9 120']],
    biggest: [['{{ biggest 1 5 }}', '5']],
    min: [['{{ min 3 9 2 }}', '2']],
    maxf: [['{{ maxf 1.5 2.5 }}', '2.5']],
    minf: [['{{ minf 1.5 2.5 }}', '1.5']],
    ceil: [['{{ ceil 1.2 }}', '2']],
    floor: [['{{ floor 1.8 }}', '1']],
    round: [['{{ round 3.14159 2 }}', '3.14']],
    join: [['{{ join "," (list "a" 1) }}', 'a,1']],
    sortAlpha: [['{{ sortAlpha (list "b" "a" "C") }}', '[C a b]']],
    splitList: [['{{ splitList "," "a,b" | join "|" }}', 'a|b']],
    split: [['{{ (split "$" "a$b")._1 }}', 'b']],
    splitn: [['{{ (splitn "$" 2 "a$b$c")._1 }}', 'b$c']],
    list: [['{{ list 1 "a" }}', '[1 a]']],
    tuple: [['{{ tuple 1 2 }}', '[1 2]']],
    append: [['{{ append (list 1) 2 }}', '[1 2]']],
    push: [['{{ push (list 1) 2 }}', '[1 2]']],
    mustAppend: [['{{ mustAppend (list) 1 }}', '[1]']],
    mustPush: [['{{ mustPush (list) 1 }}', '[1]']],
    prepend: [['{{ prepend (list 2) 1 }}', '[1 2]']],
    mustPrepend: [['{{ mustPrepend (list 2) 1 }}', '[1 2]']],
    first: [['{{ first (list 1 2) }}', '1']],
    mustFirst: [['{{ mustFirst (list 1 2) }}', '1']],
    last: [['{{ last (list 1 2) }}', '2']],
    mustLast: [['{{ mustLast (list 1 2) }}', '2']],
    rest: [['{{ rest (list 1 2 3) }}', '[2 3]']],
    mustRest: [['{{ mustRest (list 1 2 3) }}', '[2 3]']],
    initial: [['{{ initial (list 1 2 3) }}', '[1 2]']],
    mustInitial: [['{{ mustInitial (list 1 2 3) }}', '[1 2]']],
    reverse: [['{{ reverse (list 1 2 3) }}', '[3 2 1]']],
    mustReverse: [['{{ mustReverse (list 1 2) }}', '[2 1]']],
    uniq: [['{{ uniq (list 1 1 "1" 2) }}', '[1 1 2]']],
    mustUniq: [['{{ mustUniq (list 1 1) }}', '[1]']],
    without: [['{{ without (list 1 2 3 2) 2 }}', '[1 3]']],
    mustWithout: [['{{ mustWithout (list 1 2) 1 }}', '[2]']],
    has: [['{{ has 2 (list 1 2) }} {{ has "2" (list 1 2) }}', 'true false']],
    mustHas: [['{{ mustHas 1 (list 1) }}', 'true']],
    compact: [['{{ compact (list 1 "" 0 "a" nil) }}', '[1 a]']],
    mustCompact: [['{{ mustCompact (list "" "a") }}', '[a]']],
    slice: [['{{ slice (list 1 2 3 4) 1 3 }} {{ slice (list 1 2 3) 1 }}', '[2 3] [2 3]']],
    mustSlice: [['{{ mustSlice (list 1 2 3) 0 1 }}', '[1]']],
    concat: [['{{ concat (list 1) (list 2 3) }}', '[1 2 3]']],
    chunk: [['{{ chunk 2 (list 1 2 3) }}', '[[1 2] [3]]']],
    mustChunk: [['{{ mustChunk 1 (list 1 2) }}', '[[1] [2]]']],
    dict: [['{{ dict "b" 2 "a" 1 "c" }}', 'map[a:1 b:2 c:]']],
    get: [['{{ get (dict "a" 1) "a" }}[{{ get (dict) "x" }}]', '1[]']],
    set: [['{{ $d := dict }}{{ $_ := set $d "k" "v" }}{{ $d.k }}', 'v']],
    unset: [['{{ unset (dict "a" 1 "b" 2) "a" }}', 'map[b:2]']],
    hasKey: [['{{ hasKey (dict "a" 1) "a" }}', 'true']],
    pluck: [['{{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }}', '[1 3]']],
    keys: [['{{ keys (dict "b" 1 "a" 2) }}', '[a b]']],
    values: [['{{ values (dict "b" 1 "a" 2) }}', '[2 1]']],
    pick: [['{{ pick (dict "a" 1 "b" 2) "a" }}', 'map[a:1]']],
    omit: [['{{ omit (dict "a" 1 "b" 2) "a" }}', 'map[b:2]']],
    dig: [['{{ dig "a" "b" "none" (dict "a" (dict "b" "found")) }} {{ dig "x" "none" (dict) }}', 'found none']],
    default: [['{{ "" | default "d" }} {{ "v" | default "d" }} {{ default "d" }} {{ 0 | default 5 }}', 'd v d 5']],
    empty: [['{{ empty "" }} {{ empty (list) }} {{ empty 0 }} {{ empty "x" }}', 'true true true false']],
    coalesce: [['{{ coalesce "" 0 "x" "y" }}', 'x']],
    all: [['{{ all 1 "a" }} {{ all 1 "" }}', 'true false']],
    any: [['{{ any 0 "" "a" }}', 'true']],
    ternary: [['{{ ternary "yes" "no" true }} {{ true | ternary "y" "n" }}', 'yes y']],
    fail: [],
    required: [['{{ required "need A" "a" }}', 'a']],
    toJson: [['{{ toJson (dict "a" (list 1 "x<" 1.5) "b" nil) }}', '{"a":[1,"x\\u003c",1.5],"b":null}']],
    mustToJson: [['{{ mustToJson "a" }}', '"a"']],
    toPrettyJson: [['{{ toPrettyJson (dict "a" (list 1)) }}', '{\n  "a": [\n    1\n  ]\n}']],
    mustToPrettyJson: [['{{ mustToPrettyJson (list) }}', '[]']],
    toRawJson: [['{{ toRawJson "<&>" }}', '"<&>"']],
    mustToRawJson: [['{{ mustToRawJson 1 }}', '1']],
    fromJson: [['{{ (fromJson "{\\"a\\": [1, 2]}").a }} {{ fromJson "bad" }}', '[1 2] <no value>']],
    mustFromJson: [['{{ (mustFromJson "{\\"a\\": true}").a }}', 'true']],
    toYaml: [['{{ toYaml (dict "b" (list 1 "two") "a" "x") }}', 'a: x\nb:\n- 1\n- two']],
    b64enc: [['{{ b64enc "hello" }}', 'aGVsbG8=']],
    b64dec: [['{{ b64dec "aGVsbG8=" }}', 'hello']],
    b32enc: [['{{ b32enc "hi" }}', 'NBUQ====']],
    b32dec: [['{{ b32dec "NBUQ====" }}', 'hi']],
    typeOf: [['{{ typeOf 1 }} {{ typeOf "a" }} {{ typeOf (list) }} {{ typeOf (dict) }}', 'int string []interface {} map[string]interface {}']],
    typeIs: [['{{ typeIs "int" 1 }}', 'true']],
    typeIsLike: [['{{ typeIsLike "string" "a" }}', 'true']],
    kindOf: [['{{ kindOf (list) }} {{ kindOf "a" }}', 'slice string']],
    kindIs: [['{{ kindIs "map" (dict) }}', 'true']],
    deepEqual: [['{{ deepEqual (list 1 (dict "a" 1)) (list 1 (dict "a" 1)) }}', 'true']],
    base: [['{{ base "/a/b/c.txt" }} {{ base "/a/b/" }} {{ base "" }}', 'c.txt b .']],
    osBase: [['{{ osBase "/a/b" }}', 'b']],
    dir: [['{{ dir "/a/b/c" }} {{ dir "c" }}', '/a/b .']],
    osDir: [['{{ osDir "/a/b" }}', '/a']],
    clean: [['{{ clean "/a/../b//c/" }}', '/b/c']],
    osClean: [['{{ osClean "a/./b" }}', 'a/b']],
    ext: [['{{ ext "a/b.tar.gz" }}', '.gz']],
    osExt: [['{{ osExt "x.txt" }}', '.txt']],
    isAbs: [['{{ isAbs "/a" }} {{ isAbs "a" }}', 'true false']],
    osIsAbs: [['{{ osIsAbs "/a" }}', 'true']],
    regexMatch: [['{{ regexMatch "^[a-z]+[0-9]$" "abc1" }} {{ regexMatch "(" "x" }}', 'true false']],
    mustRegexMatch: [['{{ mustRegexMatch "(?i)^ABC" "abc" }}', 'true']],
    regexFindAll: [['{{ regexFindAll "[0-9]+" "a1b22c333" -1 }} {{ regexFindAll "[0-9]+" "a1b22c333" 2 }}', '[1 22 333] [1 22]']],
    mustRegexFindAll: [['{{ mustRegexFindAll "a" "aa" 1 }}', '[a]']],
    regexFind: [['{{ regexFind "[0-9]+" "ab12cd34" }}', '12']],
    mustRegexFind: [['{{ mustRegexFind "b+" "abbc" }}', 'bb']],
    regexReplaceAll: [['{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }} {{ regexReplaceAll "(?P<n>[0-9])" "a1" "<$n>" }}', '-W-xxW- a<1>']],
    mustRegexReplaceAll: [['{{ mustRegexReplaceAll "o" "foo" "0" }}', 'f00']],
    regexReplaceAllLiteral: [['{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}', '-${1}-${1}-']],
    mustRegexReplaceAllLiteral: [['{{ mustRegexReplaceAllLiteral "a" "aa" "$" }}', '$$']],
    regexSplit: [['{{ regexSplit "z+" "pizza" -1 }} {{ regexSplit "z+" "pizza" 1 }}', '[pi a] [pizza]']],
    mustRegexSplit: [['{{ mustRegexSplit "," "a,b" -1 }}', '[a b]']],
    regexQuoteMeta: [['{{ regexQuoteMeta "1.5+2" }}', '1\\.5\\+2']],
    now: [['{{ now | date "2006-01-02T15:04:05Z07:00" }}', '2024-01-02T03:04:05Z']],
    unixEpoch: [['{{ now | unixEpoch }}', '1704164645']],
    date: [['{{ date "Jan _2 2006 15:04:05.000 MST" now }}', 'Jan  2 2024 03:04:05.006 UTC']],
    dateInZone: [['{{ dateInZone "2006-01-02" now "UTC" }}', '2024-01-02']],
    date_in_zone: [['{{ date_in_zone "06/1/2" now "UTC" }}', '24/1/2']],
    htmlDate: [['{{ htmlDate now }}', '2024-01-02']],
    htmlDateInZone: [['{{ htmlDateInZone now "UTC" }}', '2024-01-02']],
    duration: [['{{ duration "95" }} {{ duration (int64 3600) }} {{ duration 5 }}', '1m35s 1h0m0s 0s']],
  };

  test('every function has a case', () => {
    const missing = functionNames().filter((n) => !(n in cases));
    assert.deepEqual(missing, []);
  });

  for (const [name, list] of Object.entries(cases)) {
    if (list.length === 0) continue;
    test(name, () => {
      for (const [t, want] of list) assert.equal(render(t, { U: 4n }), want, t);
    });
  }

  test('functions that fail: fail, call, division by zero, randInt with an empty range, slicing past the end', () => {
    assert.equal(execError('{{ fail "no" }}').kind, 'fail');
    assert.equal(execError('{{ call 1 }}').message, 'error calling call: non-function of type int');
    assert.equal(execError('{{ div 1 0 }}').message, 'error calling div: runtime error: integer divide by zero');
    assert.equal(execError('{{ randInt 5 5 }}').message, 'error calling randInt: invalid argument to Intn');
    assert.equal(render('{{ substr 1 9 "abc" }}'), 'bc', 'an end past the end means to the end');
    assert.equal(execError('{{ substr 2 1 "abc" }}').message, 'error calling substr: runtime error: slice bounds out of range [2:1]');
    assert.equal(execError('{{ substr -1 9 "abc" }}').message, 'error calling substr: runtime error: slice bounds out of range [:9] with length 3');
  });
});

describe('robustness', () => {
  test('any sequence of template pieces either parses and runs, or fails with a template error (never a crash)', async () => {
    const fc = (await import('fast-check')).default;
    const pieces = ['{{', '}}', '{{- ', ' -}}', ' ', '\n', '.A', '.B.C', '$', '$x', ':=', '=', '|', '(', ')', '"s"', '`r`', "'c'", '1', '-2', '1.5', 'if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue', 'nil', 'true', ',', 'len', 'index', 'printf', 'trim', 'list', 'dict', 'default', 'eq', 'and', 'add', 'substr', 'text', '/*', '*/', '"a"'];
    const d = data({ A: 'a', B: { C: [1n, 2n] } });
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 30 }), (parts) => {
        const t = parts.join('');
        let tpl;
        try {
          tpl = parseTemplate(t, (n) => funcs.has(n));
        } catch (e) {
          return e instanceof TemplateSyntaxError;
        }
        try {
          executeTemplate(tpl, d, { funcs, maxSteps: 10000 });
        } catch (e) {
          return e instanceof TemplateExecError;
        }
        return true;
      }),
      { numRuns: 3000, seed: 11 },
    );
  });
});
