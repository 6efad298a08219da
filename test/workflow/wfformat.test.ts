import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromWfFormat, loadWorkflowFile, parseWorkflowText, formatDiagnostic } from '../../src/workflow/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { sharedDir, tempDir } from '../helpers.js';

const wfDir = join(sharedDir, 'wfcommons');

/** Task counts from the table in ../shared/wfcommons/README.md. */
function readmeCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of readFileSync(join(wfDir, 'README.md'), 'utf8').split('\n')) {
    const m = /^\|\s*([\w.-]+\.json)\s*\|.*\|\s*(\d+)\s*\|\s*$/.exec(line);
    if (m) counts.set(m[1]!, Number(m[2]));
  }
  return counts;
}

describe('WfFormat import', () => {
  const counts = readmeCounts();

  test('the README table lists every instance', () => {
    const files = readdirSync(wfDir).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 11);
    assert.deepEqual([...counts.keys()].sort(), files.sort());
  });

  for (const [file, count] of counts) {
    test(`${file}: ${count} jobs, requires = parents, estimates, files`, () => {
      const path = join(wfDir, file);
      const wf = loadWorkflowFile(path);
      const json = JSON.parse(readFileSync(path, 'utf8'));
      const spec = json.workflow.specification;
      const exec = new Map<string, any>(json.workflow.execution.tasks.map((t: any) => [t.id, t]));
      assert.equal(wf.dialect, 'wfformat');
      assert.equal(wf.file, path);
      assert.equal(wf.name, json.name);
      assert.equal(Object.keys(wf.jobs).length, count);
      assert.deepEqual(Object.keys(wf.jobs), spec.tasks.map((t: any) => t.id), 'jobs in file order');
      for (const t of spec.tasks) {
        const j = wf.jobs[t.id]!;
        const e = exec.get(t.id);
        assert.equal(j.name, t.id);
        assert.deepEqual(j.requires, t.parents.map((p: string) => ({ job: p, condition: 'succeeded' })));
        assert.equal(j.estimateSec, e.runtimeInSeconds);
        assert.equal(j.resources.cores, e.coreCount ?? 1);
        assert.deepEqual(j.inputs, t.inputFiles);
        assert.deepEqual(j.outputs, t.outputFiles);
        assert.deepEqual(j.command, [e.command.program, ...e.command.arguments]);
        assert.equal(j.service, false);
        assert.equal(j.policy.attempts, 1);
        assert.ok(j.pos && j.pos.line > 1, 'job has a source position');
      }
      assert.equal(Object.keys(wf.files!).length, new Set(spec.files.map((f: any) => f.id)).size);
      for (const f of spec.files) assert.equal(wf.files![f.id]!.sizeBytes, f.sizeInBytes);
    });
  }

  test('job positions point at the task id in the JSON text', () => {
    const path = join(wfDir, 'srasearch-chameleon-10a-001.json');
    const text = readFileSync(path, 'utf8');
    const wf = loadWorkflowFile(path);
    for (const j of Object.values(wf.jobs)) {
      const line = text.split('\n')[j.pos!.line - 1]!;
      assert.equal(line.slice(j.pos!.col - 1), `"id": ${JSON.stringify(j.name)},`);
    }
  });

  test('the 1738-task montage instance converts (speed: bench/workflow, not here)', () => {
    const text = readFileSync(join(wfDir, 'montage-chameleon-2mass-05d-001.json'), 'utf8');
    const wf = fromWfFormat(JSON.parse(text), 'm.json');
    assert.equal(Object.keys(wf.jobs).length, 1738);
  });

  test('a task without a command sleeps for its runtime; coreCount and name default', () => {
    const wf = fromWfFormat(
      {
        schemaVersion: '1.5',
        workflow: {
          specification: { tasks: [{ id: 'a', parents: [] }, { id: 'b', parents: ['a'] }], files: [] },
          execution: { tasks: [{ id: 'a', runtimeInSeconds: 12.5 }, { id: 'b', runtimeInSeconds: 3, coreCount: 4 }] },
        },
      },
      '/x/my-flow.json',
    );
    assert.equal(wf.name, 'my-flow');
    assert.deepEqual(wf.jobs.a!.command, ['sleep', '12.5']);
    assert.equal(wf.jobs.a!.resources.cores, 1);
    assert.equal(wf.jobs.b!.resources.cores, 4);
    assert.deepEqual(wf.jobs.b!.requires, [{ job: 'a', condition: 'succeeded' }]);
    assert.deepEqual(wf.jobs.a!.pos, { line: 1, col: 1 });
  });

  test('older flat layout (schemaVersion 1.4): workflow.tasks with files and runtime', () => {
    const wf = fromWfFormat(
      {
        name: 'old',
        schemaVersion: '1.4',
        workflow: {
          tasks: [
            { name: 'a', parents: [], runtime: 2, cores: 2, files: [{ name: 'x.txt', size: 10, link: 'output' }] },
            { name: 'b', parents: ['a'], runtimeInSeconds: 1, files: [{ name: 'x.txt', size: 10, link: 'input' }] },
          ],
        },
      },
      'old.json',
    );
    assert.deepEqual(Object.keys(wf.jobs), ['a', 'b']);
    assert.equal(wf.jobs.a!.resources.cores, 2);
    assert.deepEqual(wf.jobs.a!.outputs, ['x.txt']);
    assert.deepEqual(wf.jobs.b!.inputs, ['x.txt']);
    assert.deepEqual(wf.files, { 'x.txt': { sizeBytes: 10 } });
  });

  test('bad instances: every problem reported with its position, path and hint', () => {
    const text = JSON.stringify(
      {
        schemaVersion: '1.5',
        workflow: {
          specification: {
            tasks: [
              { id: 'align', parents: ['algn'] },
              { id: 'sort', parents: ['sort', 'merge'] },
              { id: 'merge', parents: ['sort'] },
              { id: 'bad name', parents: [] },
            ],
          },
          execution: { tasks: [{ id: 'align', runtimeInSeconds: -1, coreCount: 0 }] },
        },
      },
      null,
      2,
    );
    const { workflow, diagnostics } = parseWorkflowText(text, 'w.json');
    assert.equal(workflow, undefined);
    assert.deepEqual(diagnostics.map(formatDiagnostic), [
      'w.json:7:11: workflow.execution.tasks[id=align].runtimeInSeconds: runtimeInSeconds must be a number >= 0, got -1',
      'w.json:7:11: workflow.specification.tasks[0].parents[0]: unknown task "algn" (did you mean "align"?)\n  hint: parents must be ids of tasks in workflow.specification.tasks',
      'w.json:7:11: workflow.specification.tasks[0].coreCount: coreCount must be an integer >= 1, got 0',
      'w.json:13:11: workflow.specification.tasks[1].parents[0]: task "sort" lists itself as a parent\n  hint: remove it from its own parents',
      'w.json:13:11: workflow.specification.tasks[1].parents: dependency cycle: sort -> merge -> sort\n  hint: a workflow must be acyclic: remove one of these parent links',
      'w.json:26:11: workflow.specification.tasks[3].id: task id "bad name" is not a valid job name: it has characters other than letters, digits, "_", "." and "-"\n  hint: job names start with a letter or digit, contain only letters, digits, "_", "." and "-", and are at most 128 bytes long',
    ]);
  });

  test('fromWfFormat and loadWorkflowFile throw SPEC_INVALID with the diagnostics', () => {
    assert.throws(
      () => fromWfFormat({ workflow: {} }, 'e.json'),
      (e: unknown) => {
        assert.ok(isWarrenError(e));
        assert.equal(e.code, 'SPEC_INVALID');
        assert.equal(e.exitCode, 2);
        assert.match(e.message, /no tasks: expected workflow\.specification\.tasks/);
        assert.equal((e.details!.diagnostics as unknown[]).length, 1);
        return true;
      },
    );
    const { dir, cleanup } = tempDir();
    try {
      const p = join(dir, 'broken.json');
      writeFileSync(p, '{\n  "workflow": {\n    "tasks": [\n  }\n}\n');
      assert.throws(
        () => loadWorkflowFile(p),
        (e: unknown) => {
          assert.ok(isWarrenError(e));
          assert.equal(e.code, 'SPEC_INVALID');
          assert.match(e.message, new RegExp(`${p}:4:3: malformed JSON: `));
          assert.match(e.message, /hint: check for a missing comma/);
          return true;
        },
      );
    } finally {
      cleanup();
    }
  });
});
