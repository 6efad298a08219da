// `warren --help` comes from a static table (src/cli/registry.ts) so that it loads no
// command module; this keeps the table equal to what the commands register, and checks
// the small repository facts the quick start states.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/index.js';
import { COMMAND_SUMMARIES, PROGRAM_DESCRIPTION } from '../../src/cli/registry.js';
import { repoRoot, tempDir, warrenBin } from '../helpers.js';

describe('warren --help', () => {
  test('the static table names every registered command, with its description, in order', async () => {
    const program = await buildProgram();
    const registered = program.commands.map((c) => [c.name(), c.description()] as const);
    assert.deepEqual(
      COMMAND_SUMMARIES.map(([n, d]) => [n, d]),
      registered.map(([n, d]) => [n, d]),
      'update COMMAND_SUMMARIES in src/cli/registry.ts when a command is added, renamed or described anew',
    );
    assert.equal(program.description(), PROGRAM_DESCRIPTION);
  });

  test('`warren --help`, `-h`, `help` and bare `warren` list every command and exit 0, creating nothing', () => {
    const t = tempDir('warren-help-');
    try {
      const home = join(t.dir, 'home');
      for (const args of [['--help'], ['-h'], ['help'], []]) {
        const r = spawnSync(process.execPath, [warrenBin, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, WARREN_HOME: home } });
        assert.equal(r.status, 0, `${args}: ${r.stderr}`);
        assert.match(r.stdout, /^Usage: warren \[options\] \[command\]/);
        for (const [name, summary] of COMMAND_SUMMARIES) {
          assert.ok(r.stdout.includes(`  ${name} `) && r.stdout.includes(summary), `${args.join(' ') || '(none)'} lists ${name}`);
        }
      }
      assert.throws(() => readFileSync(home), /ENOENT/, 'help does not create WARREN_HOME');
      const v = spawnSync(process.execPath, [warrenBin, '--version'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(v.stdout.trim(), '0.1.0');
      // A command's own help still comes from commander, with its options.
      const run = spawnSync(process.execPath, [warrenBin, 'run', '--help'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /Usage: warren run/);
    } finally {
      t.cleanup();
    }
  });
});

describe('repository facts', () => {
  test('the README quick start names the workflow scripts/example.sh really runs', () => {
    const script = readFileSync(join(repoRoot, 'scripts', 'example.sh'), 'utf8');
    const flow = /flow="\$\{1:-([^}]+)\}"/.exec(script)?.[1];
    assert.ok(flow, 'example.sh has a default workflow');
    const line = readFileSync(join(repoRoot, 'README.md'), 'utf8')
      .split('\n')
      .find((l) => l.includes('scripts/example.sh') && l.includes('#'));
    assert.ok(line, 'README quick start mentions scripts/example.sh');
    assert.ok(line.includes(flow), `README says: ${line.trim()}; example.sh runs ${flow}`);
  });
});
