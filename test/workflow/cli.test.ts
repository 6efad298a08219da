// `warren validate` and `warren schema`, driven in-process through commander.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { Ajv } from 'ajv';
import { register } from '../../src/cli/commands/workflow.js';
import { repoRoot, sharedDir, tempDir } from '../helpers.js';

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command('warren').exitOverride();
  register(program);
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  const saved = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'warren', ...args]);
    return { code: typeof process.exitCode === 'number' ? process.exitCode : 0, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    process.exitCode = saved;
  }
}

const ex = (f: string): string => join(repoRoot, 'examples', f);

describe('warren validate', () => {
  test('valid files: one ok line each, exit 0', async () => {
    const wfformat = join(sharedDir, 'wfcommons', 'blast-chameleon-small-001.json');
    const r = await cli('validate', ex('hello.yaml'), ex('services-v4.yaml'), wfformat);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, `${ex('hello.yaml')}: ok (1 job)\n${ex('services-v4.yaml')}: ok (2 jobs, 1 service)\n${wfformat}: ok (43 jobs)\n`);
  });

  test('an invalid file: every diagnostic and a count on stderr, exit 2; the other files are still checked', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const bad = join(dir, 'flow.yaml');
      writeFileSync(bad, 'version: v1\njobs:\n  a:\n    command: [x]\n    requires: [b]\n  c: {script: "echo"}\n');
      const r = await cli('validate', bad, ex('hello.yaml'), join(dir, 'missing.yaml'));
      assert.equal(r.code, 2);
      assert.equal(r.stdout, `${ex('hello.yaml')}: ok (1 job)\n`);
      assert.equal(
        r.stderr,
        [
          `${bad}:5:16: jobs.a.requires[0]: unknown job "b"`,
          '  hint: jobs in this file: a, c',
          `${bad}:6:15: jobs.c.script: script must start with a "#!" line naming its interpreter`,
          '  hint: begin the script with e.g. #!/bin/sh (write it as a block: script: |, then the lines indented below)',
          `${bad}: 2 errors`,
          `error[SPEC_FILE_NOT_FOUND]: workflow file ${join(dir, 'missing.yaml')} does not exist`,
          '  hint: check the path (it is relative to the current directory)',
          '',
        ].join('\n'),
      );
    } finally {
      cleanup();
    }
  });

  test('--json: results and diagnostics as JSON', async () => {
    const r = await cli('validate', '--json', ex('hello.yaml'), ex('broken.yaml'));
    assert.equal(r.code, 2);
    assert.equal(r.stderr, '');
    const results = JSON.parse(r.stdout);
    assert.equal(results.length, 2);
    assert.deepEqual(results[0], { file: ex('hello.yaml'), valid: true, dialect: 'v1', jobs: 1, services: 0, diagnostics: [] });
    assert.equal(results[1].valid, false);
    assert.equal(results[1].diagnostics.length, 10);
    assert.deepEqual(results[1].diagnostics[0], {
      file: ex('broken.yaml'),
      line: 7,
      col: 16,
      path: 'volumes.data.reference',
      message: 'invalid volume reference "volume://user/temporary"',
      hint: 'use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
      severity: 'error',
    });
  });
});

describe('warren schema', () => {
  test('prints a JSON Schema that ajv compiles', async () => {
    const r = await cli('schema');
    assert.equal(r.code, 0);
    const schema = JSON.parse(r.stdout);
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
    const validate = new Ajv().compile(schema);
    assert.equal(validate({ version: 'v1', jobs: { a: { command: ['true'] } } }), true);
    assert.equal(validate({ version: 'v1', jobs: { a: { comand: ['true'] } } }), false);
  });
});
