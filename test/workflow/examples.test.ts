// The example workflows: they validate (broken.yaml fails with the documented messages),
// the JSON Schema agrees, and the runnable ones run for real as host processes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { load } from 'js-yaml';
import { formatDiagnostic, loadWorkflowFile, parseWorkflowText, workflowJsonSchema } from '../../src/workflow/index.js';
import { openStore } from '../../src/store/index.js';
import { LocalAgent } from '../../src/agent/index.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { Orchestrator } from '../../src/server/index.js';
import { logPaths } from '../../src/agent/index.js';
import type { UnitSnapshot } from '../../src/engine/index.js';
import { repoRoot, tempDir } from '../helpers.js';

const examples = join(repoRoot, 'examples');
const EXPECTED: Record<string, { dialect: string; jobs: number } | 'invalid'> = {
  'hello.yaml': { dialect: 'v1', jobs: 1 },
  'fan-out-fan-in.yaml': { dialect: 'v1', jobs: 3 },
  'data-pipeline.yaml': { dialect: 'v1', jobs: 2 },
  'retry.yaml': { dialect: 'v1', jobs: 4 },
  'services-v4.yaml': { dialect: 'v4', jobs: 3 },
  'broken.yaml': 'invalid',
};

describe('examples', () => {
  test('every example workflow is listed here and validates as expected', () => {
    // (examples/ also holds other kinds of files, e.g. platform descriptions: only workflows have `jobs:`)
    const files = readdirSync(examples).filter((f) => f.endsWith('.yaml') && /^jobs:/m.test(readFileSync(join(examples, f), 'utf8')));
    assert.deepEqual(files.sort(), Object.keys(EXPECTED).sort());
    for (const [f, exp] of Object.entries(EXPECTED)) {
      const path = join(examples, f);
      const { workflow, diagnostics } = parseWorkflowText(readFileSync(path, 'utf8'), path);
      if (exp === 'invalid') {
        assert.equal(workflow, undefined, f);
        continue;
      }
      assert.deepEqual(diagnostics, [], f);
      assert.equal(workflow!.dialect, exp.dialect, f);
      assert.equal(Object.keys(workflow!.jobs).length, exp.jobs, f);
      for (const j of Object.values(workflow!.jobs)) assert.equal(j.image, undefined, `${f}: ${j.name} runs on the host`);
    }
  });

  test('broken.yaml shows every kind of mistake it was written for', () => {
    const { diagnostics } = parseWorkflowText(readFileSync(join(examples, 'broken.yaml'), 'utf8'), 'examples/broken.yaml');
    assert.deepEqual(diagnostics.map(formatDiagnostic), [
      'examples/broken.yaml:7:16: volumes.data.reference: invalid volume reference "volume://user/temporary"\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
      'examples/broken.yaml:10:5: jobs.align.comand: unknown key "comand" (did you mean "command"?)\n  hint: allowed keys in a job: name, description, annotations, image, command, script, args, env, cwd, files, mounts, requires, depends-on, resource, network, task-array, multinode, policy, estimate',
      'examples/broken.yaml:12:20: jobs.align.resource.cpu.cores: cores must be at least 1, got 0\n  hint: ask for a whole number of cores >= 1 (the default is 1)',
      'examples/broken.yaml:13:22: jobs.align.resource.memory.size: invalid size "4 gigs"\n  hint: write a number of bytes or a size like 512MB, 4GiB or 1.5G (units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB)',
      'examples/broken.yaml:15:5: jobs.sort.requires: dependency cycle: sort -> merge -> sort\n  hint: a workflow must be acyclic: remove one of these requirements',
      'examples/broken.yaml:15:16: jobs.sort.requires[0]: unknown job "algn" (did you mean "align"?)\n  hint: jobs in this file: align, sort, merge',
      'examples/broken.yaml:18:37: jobs.sort.policy.retry.backoff: invalid duration "5 mins"\n  hint: write a number of seconds or a duration like 90s, 15m, 2h30m, 1.5h or 1d (units: ms, s, m, h, d, w)',
      'examples/broken.yaml:21:13: jobs.merge.script: script must start with a "#!" line naming its interpreter\n  hint: begin the script with e.g. #!/bin/sh (write it as a block: script: |, then the lines indented below)',
      'examples/broken.yaml:24:7: jobs.merge.mounts.dta: unknown volume "dta" (did you mean "data"?)\n  hint: volumes defined in this file: data',
      'examples/broken.yaml:25:33: jobs.merge.task-array.end: task-array is empty: end (1) is less than start (8)\n  hint: end is inclusive: start: 0, end: 7 runs 8 tasks',
    ]);
  });
});

describe('docs/workflow-format.md', () => {
  test('its complete workflows are valid', () => {
    const md = readFileSync(join(repoRoot, 'docs', 'workflow-format.md'), 'utf8');
    const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^version:/m.test(b));
    assert.ok(blocks.length >= 3);
    for (const b of blocks) assert.deepEqual(parseWorkflowText(b, 'doc.yaml').diagnostics.map(formatDiagnostic), [], b);
  });
});

describe('JSON Schema', () => {
  const ajv = new Ajv({ allErrors: true });
  const validate = ajv.compile(workflowJsonSchema());

  test('compiles (draft-07) and accepts every valid example, rejects broken.yaml', () => {
    for (const [f, exp] of Object.entries(EXPECTED)) {
      const doc = load(readFileSync(join(examples, f), 'utf8'));
      const ok = validate(doc);
      assert.equal(ok, exp !== 'invalid', `${f}: ${JSON.stringify(validate.errors)}`);
    }
  });

  test('agrees with the validator on type-level mistakes', () => {
    const cases: [unknown, boolean][] = [
      [{ version: 'v1', jobs: { a: { command: ['x'] } } }, true],
      [{ version: 'v1', defaults: { job: { command: ['x'] } }, jobs: { a: { env: ['A=1'] } } }, true],
      [{ version: 'v1', 'x-anchors': { any: 1 }, jobs: { a: { command: ['x', 1, true] } } }, true],
      [{ version: 'v4', services: { s: { command: ['x'] } }, jobs: { a: { command: ['x'], 'depends-on': ['s', { name: 'b', status: 'Finished' }] }, b: { script: '#!/bin/sh\n' } } }, true],
      [{ version: 'v2', jobs: { a: { command: ['x'] } } }, false],
      [{ version: 'v1', jobs: { a: { command: ['x'], script: '#!/bin/sh' } } }, false],
      [{ version: 'v1', jobs: { a: { command: ['x'], 'depends-on': [{ name: 'b', status: 'FINISHED' }] }, b: { command: ['x'] } } }, true],
      [{ version: 'v4', jobs: { a: { command: ['x'], requires: ['b'] } } }, false],
      [{ version: 'v1', services: {}, jobs: { a: { command: ['x'] } } }, true],
      [{ version: 'v1', services: { s: { command: ['x'], policy: { timeout: { execute: '1h' } } } } }, true],
      [{ version: 'v1', services: { s: { command: ['x'], 'task-array': { start: 0, end: 1 } } } }, false],
      [{ version: 'v1', jobs: { 'bad name': { command: ['x'] } } }, false],
      [{ version: 'v1', jobs: { a: { command: ['x'], resource: { cpu: { affinity: 'SOCKET' }, memory: { size: '4GiB' } } } } }, true],
      [{ version: 'v1', jobs: { a: { command: ['x'], resource: { memory: { size: '4 gigs' } } } } }, false],
      [{ version: 'v1', jobs: { a: { command: ['x'], policy: { retry: { backoff: '2h30m' } } } } }, true],
      [{ version: 'v1', jobs: { a: { command: ['x'], policy: { retry: { backoff: 'soon' } } } } }, false],
      [{ version: 'v1', volumes: { v: { reference: 'volume://user/ephemeral', ingress: [{ source: { uri: 'ftp://x/y' }, destination: { uri: 'file://y' } }] } }, jobs: { a: { command: ['x'] } } }, false],
      [{ version: 'v1', jobs: {} }, false],
    ];
    for (const [doc, expected] of cases) {
      assert.equal(validate(doc), expected, JSON.stringify(doc));
      const text = JSON.stringify(doc);
      if (expected) assert.deepEqual(parseWorkflowText(text, 'x.json').diagnostics, [], text);
      else assert.ok(parseWorkflowText(text, 'x.json').diagnostics.length > 0, text);
    }
  });
});

describe('the runnable examples run as host processes', () => {
  interface Run {
    status: string;
    /** The last snapshot of each job's units, by job name (task arrays: the last task seen). */
    jobs: Map<string, UnitSnapshot>;
    runDir: string;
  }
  /** Run an example with a fresh SQLite store and $WARREN_HOME in a temporary directory. */
  async function runExample(file: string, check: (r: Run) => void): Promise<void> {
    const { dir, cleanup } = tempDir('warren-example-');
    const store = await openStore(join(dir, 'warren.db'));
    try {
      const agent = new LocalAgent({ home: dir, cores: 2, process: createProcessRuntime() });
      const orch = new Orchestrator({ store, agent, home: dir });
      const rec = await orch.accept(loadWorkflowFile(join(examples, file)));
      const jobs = new Map<string, UnitSnapshot>();
      const status = await orch.drive(rec.id, { onUnit: (u) => jobs.set(u.job, u) });
      check({ status, jobs, runDir: rec.runDir });
    } finally {
      await store.close();
      cleanup();
    }
  }
  const out = (runDir: string, job: string, task: number | null = null): string => readFileSync(logPaths(runDir, job, task).out, 'utf8');

  test('hello', { timeout: 30_000 }, () =>
    runExample('hello.yaml', (r) => {
      assert.equal(r.status, 'succeeded');
      assert.equal(out(r.runDir, 'hello'), 'Hello from Warren\n');
    }));

  test('fan-out-fan-in: 8 tasks, then the merge checks the total', { timeout: 30_000 }, () =>
    runExample('fan-out-fan-in.yaml', (r) => {
      assert.equal(r.status, 'succeeded');
      for (let i = 0; i < 8; i++) assert.match(out(r.runDir, 'process', i), new RegExp(`^task ${i}: \\d+\\n$`));
      assert.equal(out(r.runDir, 'merge'), 'total: 320400\n');
    }));

  test('retry: flaky succeeds on its third attempt; broken fails and never-runs is skipped', { timeout: 60_000 }, () =>
    runExample('retry.yaml', (r) => {
      assert.equal(r.status, 'failed');
      assert.equal(r.jobs.get('flaky')!.state, 'succeeded');
      assert.equal(r.jobs.get('flaky')!.attempt, 3);
      assert.equal(r.jobs.get('after-flaky')!.state, 'succeeded');
      assert.equal(r.jobs.get('broken')!.state, 'failed');
      assert.equal(r.jobs.get('broken')!.exitCode, 3);
      assert.equal(r.jobs.get('never-runs')!.state, 'skipped');
      assert.equal(out(r.runDir, 'flaky'), 'attempt 3: success\n');
    }));

  test('services-v4: the job fetches a page from the service, which is stopped at the end', { timeout: 60_000 }, () =>
    runExample('services-v4.yaml', (r) => {
      assert.equal(r.status, 'succeeded');
      assert.match(out(r.runDir, 'fetch'), /^fetched 36 bytes from port \d+\n$/);
      assert.equal(out(r.runDir, 'report'), '<h1>served by a Warren service</h1>\n');
    }));
});
