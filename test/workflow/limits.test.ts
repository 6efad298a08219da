// Big and hostile inputs (issue 7, "Big inputs"): each attack as written in the issue is
// refused at validation, with file:line:col, the limit in the message, and a hint.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDiagnostic, loadWorkflowFile, parseWorkflowText, readWorkflowText, type Diagnostic, type Workflow } from '../../src/workflow/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { tempDir } from '../helpers.js';

function errors(text: string, file = 'flow.yaml'): Diagnostic[] {
  const { workflow, diagnostics } = parseWorkflowText(text, file);
  assert.equal(workflow, undefined, `refused: ${text.slice(0, 200)}`);
  const errs = diagnostics.filter((d) => d.severity === 'error');
  assert.ok(errs.length > 0);
  for (const d of errs) {
    assert.ok(d.line >= 1 && d.col >= 1, 'a position');
    assert.ok(d.hint && d.hint.length > 10, `a hint for: ${d.message}`);
  }
  return errs;
}

function ok(text: string, file = 'flow.yaml'): Workflow {
  const { workflow, diagnostics } = parseWorkflowText(text, file);
  assert.deepEqual(diagnostics.map(formatDiagnostic), []);
  assert.ok(workflow);
  return workflow;
}

const taskArray = (end: string, start = '0'): string => `version: v1\njobs:\n  a:\n    command: [true]\n    task-array: {start: ${start}, end: ${end}}\n`;

describe('task-array bounds', () => {
  for (const [end, what] of [
    ['1e20', '100000000000000000000 is out of range'],
    ['9007199254740993', '9007199254740993 is out of range'],
    ['4000001', '4000001 is out of range'],
    ['-1', '-1 is out of range'],
    ['0x10', 'in decimal, got "0x10"'],
    ['0o17', 'in decimal, got "0o17"'],
    ['2.5', 'got a number (2.5)'],
    ['.inf', 'got a number (Infinity)'],
  ] as const) {
    test(`end: ${end} is refused at validation with the range`, () => {
      const [d, ...rest] = errors(taskArray(end));
      assert.equal(rest.length, 0);
      assert.equal(d!.path, 'jobs.a.task-array.end');
      assert.deepEqual([d!.line, d!.col], [5, 33]);
      assert.match(d!.message, new RegExp(what.replace(/[.()]/g, '\\$&')));
      assert.match(d!.message, /expected an integer from 0 to 4,000,000/);
    });
  }

  test('the largest array allowed (indices 0..4,000,000) and a 1,000,000-task array validate', () => {
    assert.deepEqual(ok(taskArray('4000000')).jobs.a!.taskArray, { start: 0, end: 4_000_000, concurrency: 0 });
    assert.deepEqual(ok(taskArray('999999')).jobs.a!.taskArray, { start: 0, end: 999_999, concurrency: 0 });
  });

  test('a start out of range and other counts beyond a C int are refused', () => {
    const d = errors(
      'version: v1\njobs:\n  a:\n    command: [true]\n    task-array: {start: 1e9, end: 1e9}\n    resource: {cpu: {cores: 1e12}}\n    policy: {retry: {attempts: 99999999999}}\n',
    );
    assert.deepEqual(d.map(formatDiagnostic).map((s) => s.split('\n')[0]), [
      'flow.yaml:5:25: jobs.a.task-array.start: 1000000000 is out of range: expected an integer from 0 to 4,000,000',
      'flow.yaml:5:35: jobs.a.task-array.end: 1000000000 is out of range: expected an integer from 0 to 4,000,000',
      'flow.yaml:6:29: jobs.a.resource.cpu.cores: 1000000000000 is out of range: expected an integer from 1 to 2,147,483,647',
      'flow.yaml:7:32: jobs.a.policy.retry.attempts: 99999999999 is out of range: expected an integer from 1 to 2,147,483,647',
    ]);
  });

  test('in JSON too', () => {
    const [d] = errors(JSON.stringify({ version: 'v1', jobs: { a: { command: ['true'], 'task-array': { start: 0, end: 1e20 } } } }), 'flow.json');
    assert.match(d!.message, /out of range: expected an integer from 0 to 4,000,000/);
  });

  test('numbers in command words and env values are kept as written, never rounded or converted', () => {
    const wf = ok('version: v1\njobs:\n  a:\n    command: [echo, 12345678901234567890, 0x10, 007, 1_000]\n    env: {BIG: 9007199254740993, HEX: 0xff}\n');
    assert.deepEqual(wf.jobs.a!.command, ['echo', '12345678901234567890', '0x10', '7', '1_000']);
    assert.deepEqual(wf.jobs.a!.env, { BIG: '9007199254740993', HEX: '0xff' });
  });
});

describe('names that cannot become file names', () => {
  const long = 'j'.repeat(300);
  test('a 300-character job name is refused with the limit', () => {
    const [d] = errors(`version: v1\njobs:\n  ${long}:\n    command: [true]\n`);
    assert.deepEqual([d!.line, d!.col], [3, 3]);
    assert.match(d!.message, /invalid job name "j{40}\.\.\.\(300 characters\)": it is 300 bytes long, longer than the limit of 128/);
    assert.match(d!.hint!, /at most 128 bytes/);
  });

  test('a 300-character volume name and persistent volume name are refused with the limit', () => {
    const d = errors(
      `version: v1\nvolumes:\n  ${long}: {reference: volume://user/ephemeral}\n  ok: {reference: "volume://user/persistent/${long}"}\njobs:\n  a:\n    command: [true]\n`,
    );
    assert.equal(d.length, 2);
    assert.match(d[0]!.message, /invalid volume name .*300 bytes long, longer than the limit of 128/);
    assert.deepEqual([d[0]!.line, d[0]!.col], [3, 3]);
    assert.match(d[1]!.message, /invalid persistent volume name .*300 bytes long, longer than the limit of 128/);
    assert.equal(d[1]!.path, 'volumes.ok.reference');
  });

  test('a name of exactly 128 bytes is fine', () => {
    const n = `a${'b'.repeat(127)}`;
    assert.ok(ok(`version: v1\nvolumes:\n  ${n}: {reference: volume://user/ephemeral}\njobs:\n  ${n}:\n    command: [true]\n    mounts: {${n}: {location: /d}}\n`).jobs[n]);
  });

  test('a WfFormat task id longer than 128 bytes is refused', () => {
    const wf = { name: 'x', schemaVersion: '1.5', workflow: { specification: { tasks: [{ id: long, parents: [] }] }, execution: { tasks: [] } } };
    const [d] = errors(JSON.stringify(wf, null, 1), 'w.json');
    assert.match(d!.message, /not a valid job name: it is 300 bytes long, longer than the limit of 128/);
  });

  test('path components longer than 255 bytes and paths longer than 4095 are refused', () => {
    const d = errors(`version: v4\nvolumes:\n  v: {reference: volume://user/ephemeral}\njobs:\n  a:\n    command: [true]\n    cwd: /${'c'.repeat(256)}\n    mounts:\n      "/${'m/'.repeat(2100)}": {volume: v}\n`);
    assert.equal(d.length, 2);
    assert.match(d[0]!.message, /^cwd has a component of 256 bytes .*limit of 255/);
    assert.match(d[1]!.message, /^mount location is 4201 bytes long, longer than the limit of 4095/);
  });
});

describe('NUL characters and bad UTF-8', () => {
  test('a NUL in a command argument or an env value is refused (YAML escapes \\0, \\x00, \\u0000)', () => {
    const d = errors('version: v1\njobs:\n  a:\n    command: [echo, "x\\0WARREN_JOB=evil"]\n    args: ["\\x00"]\n    env: {A: "1\\u0000B=2"}\n    cwd: "/tmp\\0x"\n');
    assert.deepEqual(d.map((x) => `${x.line}:${x.col} ${x.path} ${x.message}`), [
      '4:21 jobs.a.command[1] this string contains a NUL character (\\0) at offset 1',
      '5:12 jobs.a.args[0] this string contains a NUL character (\\0) at offset 0',
      '6:14 jobs.a.env.A this string contains a NUL character (\\0) at offset 1',
      '7:10 jobs.a.cwd this string contains a NUL character (\\0) at offset 4',
    ]);
    assert.match(d[0]!.hint!, /NUL characters .* cannot be passed to a program/);
  });

  test('a NUL in a key (env name, job name) and in a JSON workflow is refused', () => {
    const d = errors('version: v1\njobs:\n  "a\\0b":\n    command: [true]\n    env: {"K\\0": v}\n');
    assert.ok(d.some((x) => x.path === 'jobs["a\\u0000b"]' && /key contains a NUL/.test(x.message)));
    const j = errors(JSON.stringify({ version: 'v1', jobs: { a: { command: ['echo', 'a\0b'] } } }), 'flow.json');
    assert.ok(j.some((x) => x.path === 'jobs.a.command[1]' && /NUL/.test(x.message)));
  });

  test('a NUL in a WfFormat command argument is refused', () => {
    const wf = { schemaVersion: '1.5', workflow: { specification: { tasks: [{ id: 't', parents: [] }] }, execution: { tasks: [{ id: 't', command: { program: 'echo', arguments: ['a\0b'] } }] } } };
    const [d] = errors(JSON.stringify(wf), 'w.json');
    assert.equal(d!.path, 'workflow.execution.tasks[0].command.arguments[0]');
    assert.match(d!.message, /NUL/);
  });

  test('an unpaired surrogate escape (not encodable as UTF-8) is refused', () => {
    const [d] = errors('version: v1\njobs:\n  a:\n    command: [echo, "\\ud800x"]\n');
    assert.match(d!.message, /unpaired surrogate \\ud800 at offset 0/);
    // A proper pair, and a U+FFFD written on purpose, pass through unchanged.
    assert.deepEqual(ok('version: v1\njobs:\n  a:\n    command: [echo, "\\ud83d\\ude00", "\ufffd"]\n').jobs.a!.command, ['echo', '\u{1f600}', '\ufffd']);
  });

  test('a file with bytes that are not UTF-8 is refused with file:line:col (no U+FFFD replacement)', () => {
    const t = tempDir('warren-limits-');
    try {
      const f = join(t.dir, 'latin1.yaml');
      writeFileSync(f, Buffer.concat([Buffer.from('version: v1\njobs:\n  a:\n    command: [echo, "caf'), Buffer.from([0xe9]), Buffer.from('"]\n')]));
      for (const read of [() => readWorkflowText(f), () => loadWorkflowFile(f)]) {
        assert.throws(read, (e: unknown) => {
          assert.ok(isWarrenError(e));
          assert.equal(e.code, 'SPEC_FILE_NOT_UTF8');
          assert.equal(e.exitCode, 2);
          assert.equal(e.message, `${f}:4:25: byte 0xe9 is not valid UTF-8: a workflow is UTF-8 text`);
          assert.match(e.hint ?? '', /iconv/);
          return true;
        });
      }
      // Valid multi-byte UTF-8 passes through as written.
      writeFileSync(f, 'version: v1\njobs:\n  a:\n    command: [echo, "café ✓ 😀"]\n');
      assert.deepEqual(loadWorkflowFile(f).jobs.a!.command, ['echo', 'café ✓ 😀']);
    } finally {
      t.cleanup();
    }
  });
});

describe('keys named like Object properties', () => {
  test('__proto__ as an env name is refused with the rule (not dropped silently)', () => {
    for (const env of ['{__proto__: x}', '["__proto__=x"]', '{"__proto__": {polluted: 1}}']) {
      const d = errors(`version: v1\njobs:\n  a:\n    command: [true]\n    env: ${env}\n`);
      assert.ok(d.some((x) => /invalid environment variable name "__proto__": it is reserved/.test(x.message) && /not "__proto__"/.test(x.hint!)), env);
    }
  });

  test('__proto__ as a job or volume name is refused', () => {
    const d = errors('version: v1\nvolumes:\n  __proto__: {reference: volume://user/ephemeral}\njobs:\n  __proto__:\n    command: [true]\n');
    assert.deepEqual(d.map((x) => x.message), [
      'invalid volume name "__proto__": it does not start with a letter or digit',
      'invalid job name "__proto__": it does not start with a letter or digit',
    ]);
  });

  test('constructor and prototype work as job, volume and env names, as own keys, with nothing polluted', () => {
    const wf = ok(
      [
        'version: v1',
        'volumes:',
        '  constructor: {reference: volume://user/ephemeral}',
        '  prototype: {reference: volume://user/persistent/prototype}',
        'jobs:',
        '  constructor:',
        '    command: [true]',
        '    env: {constructor: c, prototype: p, hasOwnProperty: h}',
        '    mounts: {constructor: {location: /c}, prototype: {location: /p}}',
        '    resource: {devices: {constructor: 1}}',
        '  prototype:',
        '    command: [true]',
        '    requires: [constructor]',
      ].join('\n'),
    );
    assert.deepEqual(Object.keys(wf.jobs), ['constructor', 'prototype']);
    assert.deepEqual(Object.keys(wf.volumes), ['constructor', 'prototype']);
    const c = wf.jobs['constructor' as string]!;
    assert.ok(Object.hasOwn(wf.jobs, 'constructor') && typeof c === 'object');
    assert.deepEqual({ ...c.env }, { constructor: 'c', prototype: 'p', hasOwnProperty: 'h' });
    assert.deepEqual(wf.jobs.prototype!.requires, [{ job: 'constructor', condition: 'succeeded' }]);
    assert.deepEqual(c.mounts.map((m) => m.volume), ['constructor', 'prototype']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(wf.jobs), Object.prototype);
  });

  test('a job that is not defined is not found on the prototype', () => {
    const d = errors('version: v4\njobs:\n  a:\n    command: [true]\n    depends-on: [constructor, {name: toString, status: hasOwnProperty}]\n    mounts: {/x: {volume: constructor}}\n');
    assert.deepEqual(d.map((x) => x.message.replace(/ \(did you mean.*$/, '')), [
      'unknown job or service "constructor"',
      'expected one of SUCCEEDED, FINISHED, ENDED, FAILED, RUNNING, got "hasOwnProperty"',
      'unknown volume "constructor"',
    ]);
  });
});

describe('transfer size', () => {
  test('size: is read into sizeBytes; a bad one is refused', () => {
    const wf = ok('version: v1\nvolumes:\n  v:\n    reference: volume://user/ephemeral\n    ingress:\n      - {source: {uri: "http://h/x"}, destination: {uri: "file://x"}, size: 1KiB}\njobs:\n  a:\n    command: [true]\n');
    assert.equal(wf.volumes.v!.ingress[0]!.sizeBytes, 1024);
    const [d] = errors('version: v1\nvolumes:\n  v:\n    reference: volume://user/ephemeral\n    ingress:\n      - {source: {uri: "http://h/x"}, destination: {uri: "file://x"}, size: lots}\njobs:\n  a:\n    command: [true]\n');
    assert.equal(d!.path, 'volumes.v.ingress[0].size');
    assert.match(d!.message, /invalid size "lots"/);
  });
});
