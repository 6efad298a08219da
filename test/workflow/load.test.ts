// Reading workflow files: dialect detection, file errors, SPEC_INVALID, and speed.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadWorkflowFile, parseWorkflowText, type Diagnostic } from '../../src/workflow/index.js';
import { isWarrenError, type WarrenError } from '../../src/common/index.js';
import { tempDir } from '../helpers.js';

function catchError(fn: () => unknown): WarrenError {
  try {
    fn();
  } catch (e) {
    assert.ok(isWarrenError(e), `expected a WarrenError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

describe('loadWorkflowFile', () => {
  test('reads a YAML file; the name defaults to the file name', () => {
    const { dir, cleanup } = tempDir();
    try {
      const p = join(dir, 'my-flow.yml');
      writeFileSync(p, '\ufeffversion: v1\njobs:\n  a: {command: [true]}\n');
      const wf = loadWorkflowFile(p);
      assert.equal(wf.name, 'my-flow');
      assert.equal(wf.file, p);
      assert.deepEqual(Object.keys(wf.jobs), ['a']);
    } finally {
      cleanup();
    }
  });

  test('a missing file, a directory, a binary file: clear errors with hints, exit code 2', () => {
    const { dir, cleanup } = tempDir();
    try {
      let e = catchError(() => loadWorkflowFile(join(dir, 'nope.yaml')));
      assert.equal(e.code, 'SPEC_FILE_NOT_FOUND');
      assert.equal(e.message, `workflow file ${join(dir, 'nope.yaml')} does not exist`);
      assert.equal(e.hint, 'check the path (it is relative to the current directory)');
      assert.equal(e.exitCode, 2);

      e = catchError(() => loadWorkflowFile(dir));
      assert.equal(e.code, 'SPEC_FILE_IS_DIR');
      assert.equal(e.message, `${dir} is a directory, not a workflow file`);
      assert.equal(e.exitCode, 2);

      const bin = join(dir, 'image.sif');
      writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]));
      e = catchError(() => loadWorkflowFile(bin));
      assert.equal(e.code, 'SPEC_FILE_NOT_TEXT');
      assert.equal(e.exitCode, 2);
      assert.match(e.hint!, /YAML Fuzzfile or a WfFormat JSON/);

      if (process.getuid?.() !== 0) {
        const locked = join(dir, 'locked.yaml');
        writeFileSync(locked, 'version: v1\n');
        chmodSync(locked, 0);
        e = catchError(() => loadWorkflowFile(locked));
        assert.equal(e.code, 'SPEC_FILE_UNREADABLE');
        assert.equal(e.hint, 'check the file permissions');
      }
    } finally {
      cleanup();
    }
  });

  test('an invalid file: SPEC_INVALID listing every diagnostic, with the diagnostics in details', () => {
    const { dir, cleanup } = tempDir();
    try {
      const p = join(dir, 'flow.yaml');
      writeFileSync(p, 'version: v1\njobs:\n  a:\n    command: [x]\n    requires: [b]\n  c:\n    comand: [y]\n');
      const e = catchError(() => loadWorkflowFile(p));
      assert.equal(e.code, 'SPEC_INVALID');
      assert.equal(e.exitCode, 2);
      assert.equal(
        e.message,
        [
          `${p}: 2 errors`,
          `${p}:5:16: jobs.a.requires[0]: unknown job "b"`,
          '  hint: jobs in this file: a, c',
          `${p}:7:5: jobs.c.comand: unknown key "comand" (did you mean "command"?)`,
          '  hint: allowed keys in a job: name, description, annotations, image, command, script, args, env, cwd, files, mounts, requires, depends-on, resource, network, task-array, multinode, policy, estimate',
        ].join('\n'),
      );
      assert.equal(e.hint, 'fix the problems listed above (`warren validate FILE` checks a file without running it)');
      const diags = e.details!.diagnostics as Diagnostic[];
      assert.equal(diags.length, 2);
      assert.deepEqual(diags[0], { file: p, line: 5, col: 16, path: 'jobs.a.requires[0]', message: 'unknown job "b"', hint: 'jobs in this file: a, c', severity: 'error' });
    } finally {
      cleanup();
    }
  });

  test('content decides the dialect, not the extension', () => {
    const { dir, cleanup } = tempDir();
    try {
      mkdirSync(join(dir, 'x'));
      const yamlInJson = join(dir, 'x', 'flow.json');
      writeFileSync(yamlInJson, 'version: v4\njobs:\n  a: {command: [true]}\n');
      assert.equal(loadWorkflowFile(yamlInJson).dialect, 'v4');
      const wfInYaml = join(dir, 'x', 'trace.yaml');
      writeFileSync(wfInYaml, JSON.stringify({ schemaVersion: '1.5', workflow: { specification: { tasks: [{ id: 't1', parents: [] }] }, execution: { tasks: [{ id: 't1', runtimeInSeconds: 2 }] } } }));
      const wf = loadWorkflowFile(wfInYaml);
      assert.equal(wf.dialect, 'wfformat');
      assert.deepEqual(wf.jobs.t1!.command, ['sleep', '2']);
    } finally {
      cleanup();
    }
  });
});

describe('scale', () => {
  test('a 10,000-job workflow parses and validates (its speed is measured by bench/workflow, not here)', { timeout: 60_000 }, () => {
    const parts = ['version: v1\nvolumes:\n  data: {reference: volume://user/ephemeral}\ndefaults:\n  job:\n    env: {STAGE: big}\n    mounts:\n      data: {location: /data}\njobs:\n'];
    for (let i = 0; i < 10_000; i++) {
      const req = i === 0 ? '' : `\n    requires: [job${i - 1}${i >= 10 ? `, job${i - 10}` : ''}]`;
      parts.push(`  job${i}:\n    command: [echo, "${i}"]${req}\n    resource:\n      cpu: {cores: 2}\n      memory: {size: 1GiB}\n    policy:\n      retry: {attempts: 2}\n`);
    }
    const text = parts.join('');
    const { workflow, diagnostics } = parseWorkflowText(text, 'big.yaml');
    assert.deepEqual(diagnostics, []);
    assert.equal(Object.keys(workflow!.jobs).length, 10_000);
    assert.deepEqual(workflow!.jobs.job9999!.pos, { line: text.split('\n').length - 8, col: 3 });
  });

  test('an error in a 10,000-job workflow is still found, with its position', { timeout: 60_000 }, () => {
    const parts = ['version: v1\njobs:\n'];
    for (let i = 0; i < 10_000; i++) parts.push(`  job${i}:\n    command: [echo, "${i}"]\n${i > 0 ? `    requires: [job${i - 1}]\n` : ''}`);
    parts.push('  last:\n    command: [x]\n    requires: [job10000]\n');
    const { workflow, diagnostics } = parseWorkflowText(parts.join(''), 'big.yaml');
    assert.equal(workflow, undefined);
    assert.equal(diagnostics.length, 1);
    assert.equal(diagnostics[0]!.line, 2 + 10_000 * 3 - 1 + 3);
    assert.equal(diagnostics[0]!.message, 'unknown job "job10000" (did you mean "job1000"?)');
  });

  test('in a big file, errors get the same positions as in a small one', { timeout: 60_000 }, () => {
    const head = [
      'version: v1',
      'nme: big',
      'volumes:',
      '  data:',
      '    reference: volume://user/ephemeral',
      '    ingress:',
      '      - source: {uri: ftp://example.org/x}',
      '        destination: {uri: file://x}',
      'defaults:',
      '  job:',
      '    resource: {cpu: {cores: 0}}',
      'jobs:',
      '  a:',
      '    command: [x]',
      '    requires: [b]',
      '    mounts:',
      '      dat: {location: /data}',
      '  b:',
      '    command: [y]',
      '    requires: [a]',
      '    policy:',
      '      retry: {attempts: 2, backoff: 5 mins}',
      '  "odd.name":',
      '    script: |',
      '      echo',
      '',
    ].join('\n');
    const pad = Array.from({ length: 6000 }, (_, i) => `  pad${i}:\n    command: [echo, "${i}"]\n    resource: {cpu: {cores: 1}}\n`).join('');
    const shape = (text: string) => parseWorkflowText(text, 'f.yaml').diagnostics.map((d) => [d.line, d.col, d.path, d.message]);
    const small = shape(head);
    assert.equal(small.length, 7);
    assert.ok((head + pad).length > 256 * 1024);
    assert.deepEqual(shape(head + pad), small);
  });

  test('in a big file, syntax errors and duplicate keys are still placed', { timeout: 60_000 }, () => {
    const pad = Array.from({ length: 6000 }, (_, i) => `  pad${i}:\n    command: [echo, "${i}"]\n    resource: {cpu: {cores: 1}}\n`).join('');
    const syntax = parseWorkflowText(`version: v1\njobs:\n  a:\n    command: [x\n    requires: [b]\n${pad}`, 'f.yaml').diagnostics;
    assert.deepEqual(
      syntax.map((d) => [d.line, d.col, d.message]),
      [[5, 5, 'malformed YAML: missed comma between flow collection entries']],
    );
    const dup = parseWorkflowText(`version: v1\njobs:\n  a:\n    command: [x]\n    command: [y]\n    requires: [zz]\n${pad}`, 'f.yaml').diagnostics;
    assert.deepEqual(
      dup.map((d) => [d.line, d.col, d.path, d.message]),
      [
        [5, 5, '', 'duplicate key'],
        [6, 16, 'jobs.a.requires[0]', 'unknown job "zz"'],
      ],
    );
  });
});
