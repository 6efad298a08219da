// The Fuzzfile format: every kind of error with its exact position, message and hint, and
// the normalized model for both dialects.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatDiagnostic, parseWorkflowText, type Workflow } from '../../src/workflow/index.js';

/** Parse `lines` as flow.yaml and compare the formatted diagnostics (in file order) with `expected`. */
function expectDiagnostics(lines: string[], expected: string[]): void {
  const { workflow, diagnostics } = parseWorkflowText(lines.join('\n') + '\n', 'flow.yaml');
  assert.deepEqual(diagnostics.map(formatDiagnostic), expected);
  assert.equal(workflow, undefined, 'no workflow when there are errors');
  for (const d of diagnostics) {
    assert.equal(d.file, 'flow.yaml');
    assert.equal(d.severity, 'error');
  }
}

function parseOk(text: string, file = '/wf/flow.yaml'): Workflow {
  const { workflow, diagnostics } = parseWorkflowText(text, file);
  assert.deepEqual(diagnostics.map(formatDiagnostic), []);
  assert.ok(workflow);
  return workflow;
}

describe('Fuzzfile errors: position, path, message, hint', () => {
  test("empty and inverted task arrays, non-positive cores, multinode", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '  inverted:',
        '    command: [true]',
        '    task-array: {start: 8, end: 1}',
        '  missing:',
        '    command: [true]',
        '    task-array: {start: 1}',
        '  empty:',
        '    command: [true]',
        '    task-array: {}',
        '  cores:',
        '    command: [true]',
        '    resource: {cpu: {cores: 0}}',
        '    multinode: {nodes: 0, implementation: mpi}',
      ],
      [
        "flow.yaml:5:33: jobs.inverted.task-array.end: task-array is empty: end (1) is less than start (8)\n  hint: end is inclusive: start: 0, end: 7 runs 8 tasks",
        "flow.yaml:8:5: jobs.missing.task-array: task-array needs \"start\" and \"end\" (missing \"end\")\n  hint: e.g. task-array: {start: 0, end: 7} runs 8 tasks with indices 0..7",
        "flow.yaml:11:5: jobs.empty.task-array: task-array needs \"start\" and \"end\" (missing \"start\" and \"end\")\n  hint: e.g. task-array: {start: 0, end: 7} runs 8 tasks with indices 0..7",
        "flow.yaml:14:29: jobs.cores.resource.cpu.cores: cores must be at least 1, got 0\n  hint: ask for a whole number of cores >= 1 (the default is 1)",
        "flow.yaml:15:24: jobs.cores.multinode.nodes: 0 is out of range: expected an integer from 1 to 2,147,483,647\n  hint: write a whole number from 1 to 2,147,483,647 in decimal digits (limits: docs/workflow-format.md#limits)",
        "flow.yaml:15:43: jobs.cores.multinode.implementation: expected one of openmpi, mpich, gasnet, generic, got \"mpi\"",
      ],
    );
  });

  test("dependency cycles, named", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '  a:',
        '    command: [true]',
        '    requires: [c]',
        '  b:',
        '    command: [true]',
        '    requires: [a]',
        '  c:',
        '    command: [true]',
        '    requires: [b]',
        '  d:',
        '    command: [true]',
        '    requires: [a]',
      ],
      [
        "flow.yaml:5:5: jobs.a.requires: dependency cycle: a -> c -> b -> a\n  hint: a workflow must be acyclic: remove one of these requirements",
      ],
    );
  });

  test("unknown, self and repeated requirements", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '  align:',
        '    command: [bwa]',
        '  sort:',
        '    requires: [algn, sort]',
        '    command: [sort]',
        '  merge:',
        '    requires: [sort, sort]',
        '    command: [cat]',
      ],
      [
        "flow.yaml:6:16: jobs.sort.requires[0]: unknown job \"algn\" (did you mean \"align\"?)\n  hint: jobs in this file: align, sort, merge",
        "flow.yaml:6:22: jobs.sort.requires[1]: job \"sort\" depends on itself\n  hint: remove it from its own requirements",
        "flow.yaml:9:22: jobs.merge.requires[1]: \"sort\" is listed twice\n  hint: list each requirement once",
      ],
    );
  });

  test("duplicate keys (and the checks go on)", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '  a:',
        '    command: [echo, one]',
        '    command: [echo, two]',
        '    resource: {cpu: {cores: 0}}',
      ],
      [
        "flow.yaml:5:5: jobs.a.command: duplicate key \"command\"\n  hint: each key may appear only once in a mapping: remove or rename one of them",
        "flow.yaml:6:29: jobs.a.resource.cpu.cores: cores must be at least 1, got 0\n  hint: ask for a whole number of cores >= 1 (the default is 1)",
      ],
    );
  });

  test("bad job and volume names", () => {
    expectDiagnostics(
      [
        'version: v1',
        'volumes:',
        '  "my vol": {reference: volume://user/ephemeral}',
        'jobs:',
        '  "bad name":',
        '    command: [true]',
        '  -dash:',
        '    command: [true]',
        '  ok.name_1-x:',
        '    command: [true]',
      ],
      [
        "flow.yaml:3:3: volumes[\"my vol\"]: invalid volume name \"my vol\": it has characters other than letters, digits, \"_\", \".\" and \"-\"\n  hint: names start with a letter or digit, contain only letters, digits, \"_\", \".\" and \"-\", and are at most 128 bytes long",
        "flow.yaml:5:3: jobs[\"bad name\"]: invalid job name \"bad name\": it has characters other than letters, digits, \"_\", \".\" and \"-\"\n  hint: names start with a letter or digit, contain only letters, digits, \"_\", \".\" and \"-\", and are at most 128 bytes long",
        "flow.yaml:7:3: jobs[\"-dash\"]: invalid job name \"-dash\": it does not start with a letter or digit\n  hint: names start with a letter or digit, contain only letters, digits, \"_\", \".\" and \"-\", and are at most 128 bytes long",
      ],
    );
  });

  test("missing version", () => {
    expectDiagnostics(
      [
        'jobs:',
        '  a: {command: [true]}',
      ],
      [
        "flow.yaml:1:1: missing required key \"version\"\n  hint: add \"version: v1\" (or \"version: v4\") at the top of the file",
      ],
    );
  });

  test("a document that is not a mapping", () => {
    expectDiagnostics(
      [
        '- a',
        '- b',
      ],
      [
        "flow.yaml:1:1: a workflow must be a mapping with \"version\" and \"jobs\", got a list\n  hint: start with \"version: v1\" and a \"jobs:\" mapping (see examples/hello.yaml)",
      ],
    );
  });

  test("command and script: both, none, no shebang, empty", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '  both:',
        '    command: [echo]',
        '    script: |',
        '      #!/bin/sh',
        '      echo',
        '  none:',
        '    env: {A: "1"}',
        '  shebang:',
        '    script: |',
        '      echo "no shebang"',
        '  empty:',
        '    command: []',
      ],
      [
        "flow.yaml:5:5: jobs.both.script: set either \"command\" or \"script\", not both\n  hint: use \"command\" for one program with arguments, \"script\" for a shell script",
        "flow.yaml:8:3: jobs.none: job \"none\" has no command or script\n  hint: add command: [PROGRAM, ARG, ...] or a script: | block starting with #!/bin/sh",
        "flow.yaml:11:13: jobs.shebang.script: script must start with a \"#!\" line naming its interpreter\n  hint: begin the script with e.g. #!/bin/sh (write it as a block: script: |, then the lines indented below)",
        "flow.yaml:14:14: jobs.empty.command: command must not be empty\n  hint: give the program and its arguments, e.g. [echo, hello]",
      ],
    );
  });

  test("malformed YAML, with the parser's position", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '  a:',
        '    command: [echo',
        '  b: 1',
      ],
      [
        "flow.yaml:5:3: malformed YAML: flow sequence in block collection must be sufficiently indented and end with a ]\n  hint: check the indentation (spaces, not tabs), the colons after keys, and unclosed quotes or brackets near this position",
      ],
    );
  });

  test("tab indentation", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '\ta: {command: [true]}',
      ],
      [
        "flow.yaml:3:1: malformed YAML: tabs are not allowed as indentation\n  hint: check the indentation (spaces, not tabs), the colons after keys, and unclosed quotes or brackets near this position",
      ],
    );
  });

  test("wrong types", () => {
    expectDiagnostics(
      [
        'version: v1',
        'name: [not, a, string]',
        'jobs:',
        '  a:',
        '    command: echo hi',
        '    args: {x: 1}',
        '    env: [FOO, 1BAD=2]',
        '    cwd: relative/dir',
        '    resource:',
        '      cpu: {cores: 1.5, affinity: sockets, threads: "yes"}',
        '      exclusive: 1',
      ],
      [
        "flow.yaml:2:7: name: expected a string, got a list",
        "flow.yaml:5:14: jobs.a.command: expected a list of strings, got a string (\"echo hi\")\n  hint: write command as a list, e.g. [echo, hi], or use \"script\" for a shell script",
        "flow.yaml:6:11: jobs.a.args: expected a list of strings, got a mapping",
        "flow.yaml:7:11: jobs.a.env[0]: expected NAME=value, got \"FOO\"\n  hint: write \"FOO=VALUE\" (or use a mapping: env: {FOO: VALUE})",
        "flow.yaml:7:16: jobs.a.env[1]: invalid environment variable name \"1BAD\": it is not a valid name\n  hint: environment variable names start with a letter or \"_\", contain only letters, digits and \"_\", are at most 255 bytes long, and are not \"__proto__\"",
        "flow.yaml:8:10: jobs.a.cwd: cwd must be an absolute path, got \"relative/dir\"\n  hint: write it from the root, e.g. /relative/dir",
        "flow.yaml:10:20: jobs.a.resource.cpu.cores: expected an integer from 1 to 2,147,483,647, got a number (1.5)\n  hint: write a whole number from 1 to 2,147,483,647 in decimal digits (limits: docs/workflow-format.md#limits)",
        "flow.yaml:10:35: jobs.a.resource.cpu.affinity: expected one of core, socket, numa, got \"sockets\" (did you mean \"socket\"?)",
        "flow.yaml:10:53: jobs.a.resource.cpu.threads: expected true or false, got a string (\"yes\")",
        "flow.yaml:11:18: jobs.a.resource.exclusive: expected true or false, got a number (1)",
      ],
    );
  });

  test("bad sizes and durations", () => {
    expectDiagnostics(
      [
        'version: v1',
        'policy: {deadline: tomorrow, budget: -5, timeout: 1h}',
        'jobs:',
        '  a:',
        '    command: [true]',
        '    resource:',
        '      memory: {size: 4 gigs}',
        '    policy:',
        '      timeout: {execute: 0s}',
        '      retry: {attempts: 0, backoff: 5 mins}',
        '    estimate: soon',
      ],
      [
        "flow.yaml:2:20: policy.deadline: invalid duration \"tomorrow\"\n  hint: write a number of seconds or a duration like 90s, 15m, 2h30m, 1.5h or 1d (units: ms, s, m, h, d, w)",
        "flow.yaml:2:38: policy.budget: expected a number >= 0, got a number (-5)",
        "flow.yaml:7:22: jobs.a.resource.memory.size: invalid size \"4 gigs\"\n  hint: write a number of bytes or a size like 512MB, 4GiB or 1.5G (units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB)",
        "flow.yaml:9:26: jobs.a.policy.timeout.execute: duration must be greater than 0, got \"0s\"\n  hint: write a number of seconds or a duration like 90s, 15m, 2h30m, 1.5h or 1d (units: ms, s, m, h, d, w)",
        "flow.yaml:10:25: jobs.a.policy.retry.attempts: 0 is out of range: expected an integer from 1 to 2,147,483,647\n  hint: write a whole number from 1 to 2,147,483,647 in decimal digits (limits: docs/workflow-format.md#limits)",
        "flow.yaml:10:37: jobs.a.policy.retry.backoff: invalid duration \"5 mins\"\n  hint: write a number of seconds or a duration like 90s, 15m, 2h30m, 1.5h or 1d (units: ms, s, m, h, d, w)",
        "flow.yaml:11:15: jobs.a.estimate: invalid duration \"soon\"\n  hint: write a number of seconds or a duration like 90s, 15m, 2h30m, 1.5h or 1d (units: ms, s, m, h, d, w)",
      ],
    );
  });

  test("unknown keys, with did-you-mean and the allowed keys", () => {
    expectDiagnostics(
      [
        'version: v1',
        'nme: demo',
        'jobs:',
        '  align:',
        '    comand: [bwa, mem]',
        '    resources: {cpu: {cores: 2}}',
      ],
      [
        "flow.yaml:2:1: nme: unknown key \"nme\" (did you mean \"name\"?)\n  hint: allowed keys in the top level: version, name, description, annotations, files, defaults, volumes, jobs, services, policy",
        "flow.yaml:5:5: jobs.align.comand: unknown key \"comand\" (did you mean \"command\"?)\n  hint: allowed keys in a job: name, description, annotations, image, command, script, args, env, cwd, files, mounts, requires, depends-on, resource, network, task-array, multinode, policy, estimate",
        "flow.yaml:6:5: jobs.align.resources: unknown key \"resources\" (did you mean \"resource\"?)\n  hint: allowed keys in a job: name, description, annotations, image, command, script, args, env, cwd, files, mounts, requires, depends-on, resource, network, task-array, multinode, policy, estimate",
      ],
    );
  });

  test("image URIs and secrets", () => {
    expectDiagnostics(
      [
        'version: v1',
        'jobs:',
        '  a:',
        '    image: {uri: library://foo/bar}',
        '    command: [true]',
        '  b:',
        '    image: {uri: "alpine:3.19"}',
        '    command: [true]',
        '  c:',
        '    image: {uri: docker://alpine, secret: mysecret}',
        '    command: [true]',
        '  d:',
        '    image: docker://alpine',
        '    command: [true]',
      ],
      [
        "flow.yaml:4:18: jobs.a.image.uri: unsupported image URI scheme \"library://\" in \"library://foo/bar\"\n  hint: use docker://REPO:TAG, oras://REPO:TAG, file:///path/to/image.sif (or a root file system directory), or an absolute path",
        "flow.yaml:7:18: jobs.b.image.uri: invalid image URI \"alpine:3.19\"\n  hint: use docker://REPO:TAG, oras://REPO:TAG, file:///path/to/image.sif (or a root file system directory), or an absolute path",
        "flow.yaml:10:43: jobs.c.image.secret: invalid secret reference \"mysecret\"\n  hint: secrets are references like secret://user/NAME",
        "flow.yaml:13:12: jobs.d.image: expected a mapping with \"uri\", got a string (\"docker://alpine\")\n  hint: write image: {uri: docker://alpine}",
      ],
    );
  });

  test("v1 has services and depends-on; a volume's use, size and annotations need v4", () => {
    const wf = parseOk(['version: v1', 'services:', '  db: {command: [x]}', 'jobs:', '  a:', '    depends-on: [db]', '    requires: [b]', '    command: [x]', '  b: {command: [x]}', ''].join('\n'));
    assert.deepEqual(wf.jobs.a!.requires, [{ job: 'b', condition: 'succeeded' }, { job: 'db', condition: 'running' }]);
    expectDiagnostics(
      ['version: v1', 'volumes:', '  data: {use: ephemeral, size: 1GiB}', 'jobs:', '  a: {command: [x]}'],
      [
        'flow.yaml:3:3: volumes.data: missing required key "reference"\n  hint: use reference: volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
        'flow.yaml:3:10: volumes.data.use: unknown key "use"\n  hint: a volume\'s "use" needs "version: v4" (in v1, write reference: volume://user/CLASS[/NAME])',
        'flow.yaml:3:26: volumes.data.size: unknown key "size"\n  hint: a volume\'s "size" needs "version: v4" (in v1, write reference: volume://user/CLASS[/NAME])',
      ],
    );
  });

  test("v4: services, shared namespace, depends-on statuses, mounts by path", () => {
    expectDiagnostics(
      [
        'version: v4',
        'services:',
        '  db:',
        '    command: [sleep, "100"]',
        '    persist: yes',
        'jobs:',
        '  db:',
        '    command: [x]',
        '  load:',
        '    requires: [db]',
        '    command: [x]',
        '  a:',
        '    depends-on:',
        '      - {name: load, status: RUNNING}',
        '      - {name: lod}',
        '      - {name: load, status: succeded}',
        '      - 3',
        '    command: [x]',
        '    mounts:',
        '      data: {volume: data}',
      ],
      [
        "flow.yaml:5:14: services.db.persist: expected true or false, got a string (\"yes\")",
        "flow.yaml:7:3: jobs.db: the name \"db\" is used by both a job and a service\n  hint: jobs and services share one namespace: rename one of them",
        "flow.yaml:10:5: jobs.load.requires: unknown key \"requires\"\n  hint: \"requires\" is the v1 spelling: in a v4 file use \"depends-on: [{name: JOB, status: SUCCEEDED}]\", or set \"version: v1\"",
        "flow.yaml:14:30: jobs.a.depends-on[0].status: status RUNNING is only valid when depending on a service, and \"load\" is a job\n  hint: use SUCCEEDED (or FINISHED), ENDED or FAILED for a job",
        "flow.yaml:15:16: jobs.a.depends-on[1].name: unknown job or service \"lod\" (did you mean \"load\"?)\n  hint: jobs and services in this file: db, load, a",
        "flow.yaml:16:30: jobs.a.depends-on[2].status: expected one of SUCCEEDED, FINISHED, ENDED, FAILED, RUNNING, got \"succeded\" (did you mean \"SUCCEEDED\"?)\n  hint: SUCCEEDED or FINISHED (Fuzzball's word for it): after it succeeded; ENDED: after it ended either way; FAILED: only if it failed; RUNNING: once a service is ready",
        "flow.yaml:17:9: jobs.a.depends-on[3]: expected a job or service name, or {name: NAME, status: STATUS}, got a number (3)",
        "flow.yaml:20:7: jobs.a.mounts.data: mount location must be an absolute path, got \"data\"\n  hint: v4 mounts are keyed by path: write \"/data\": {volume: data} (or set \"version: v1\" for mounts keyed by volume name)",
      ],
    );
  });

  test("unsupported version", () => {
    expectDiagnostics(
      [
        'version: v2',
        'jobs:',
        '  a: {command: [true]}',
      ],
      [
        "flow.yaml:1:10: version: unsupported version \"v2\"\n  hint: the supported versions are v1 and v4 (write version: v1 or version: v4)",
      ],
    );
  });

  test("volume references, URI schemes, sha256, unknown volumes", () => {
    expectDiagnostics(
      [
        'version: v1',
        'volumes:',
        '  data:',
        '    reference: volume://user/persistent/my data',
        '  scratch:',
        '    reference: volume://user/ephemeral',
        '    ingress:',
        '      - source: {uri: ftp://example.org/x}',
        '        destination: {uri: https://example.org/y}',
        '      - source: {uri: "https://example.org/z"}',
        '        destination: {uri: "file://../etc/passwd"}',
        '        sha256: abc',
        '    egress:',
        '      - source: {uri: s3://bucket/key}',
        '        destination: {uri: file://out.txt}',
        'jobs:',
        '  a:',
        '    command: [true]',
        '    mounts:',
        '      scrath: {location: /scratch}',
        '      data: {location: data}',
      ],
      [
        "flow.yaml:4:16: volumes.data.reference: invalid volume reference \"volume://user/persistent/my data\"\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME",
        "flow.yaml:8:23: volumes.scratch.ingress[0].source.uri: unsupported URI scheme \"ftp://\" in \"ftp://example.org/x\"\n  hint: use one of file://, http://, https://, s3://",
        "flow.yaml:9:28: volumes.scratch.ingress[0].destination.uri: ingress destination must be a file:// path inside the volume, got \"https://example.org/y\"\n  hint: e.g. file://input/data.csv (relative to the volume root)",
        "flow.yaml:11:28: volumes.scratch.ingress[1].destination.uri: ingress destination \"file://../etc/passwd\" leaves the volume (\"..\")\n  hint: paths inside a volume are relative to its root and may not contain \"..\"",
        "flow.yaml:12:17: volumes.scratch.ingress[1].sha256: invalid sha256 \"abc\": expected 64 hexadecimal digits\n  hint: compute it with `sha256sum FILE`",
        "flow.yaml:14:23: volumes.scratch.egress[0].source.uri: egress source must be a file:// path inside the volume, got \"s3://bucket/key\"\n  hint: e.g. file://input/data.csv (relative to the volume root)",
        "flow.yaml:20:7: jobs.a.mounts.scrath: unknown volume \"scrath\" (did you mean \"scratch\"?)\n  hint: volumes defined in this file: data, scratch",
        "flow.yaml:21:24: jobs.a.mounts.data.location: mount location must be an absolute path, got \"data\"\n  hint: write it from the root, e.g. /data",
      ],
    );
  });

  test('an empty file', () => {
    const { workflow, diagnostics } = parseWorkflowText('', 'empty.yaml');
    assert.equal(workflow, undefined);
    assert.deepEqual(diagnostics.map(formatDiagnostic), [
      'empty.yaml:1:1: the workflow file is empty\n  hint: start with "version: v1" and a "jobs:" mapping (see examples/hello.yaml)',
    ]);
  });

  test('several YAML documents in one file', () => {
    expectDiagnostics(
      ['---', 'version: v1', 'jobs:', '  a: {command: [x]}', '---', 'version: v1'],
      ['flow.yaml:5:1: the file holds more than one YAML document\n  hint: a workflow is one document: remove the second "---" and what follows, or put it in its own file'],
    );
  });

  test('Windows line endings: same positions', () => {
    const { diagnostics } = parseWorkflowText('version: v1\r\njobs:\r\n  a:\r\n    command: [x]\r\n  b:\r\n    comand: [x]\r\n', 'flow.yaml');
    assert.deepEqual(
      diagnostics.map((d) => [d.line, d.col, d.path]),
      [[6, 5, 'jobs.b.comand']],
    );
  });

  test('an empty job', () => {
    expectDiagnostics(
      ['version: v1', 'jobs:', '  a:', '  b: {command: [x]}'],
      ['flow.yaml:3:3: jobs.a: job "a" is empty\n  hint: add command: [PROGRAM, ARG, ...] or a script: | block starting with #!/bin/sh'],
    );
  });

  test('one syntax error is reported once, not with the errors that follow from it', () => {
    expectDiagnostics(
      ['version: v1', 'jobs:', '  sort:', '    command: [sort', '    requires: [a, b]', '  a: {command: [x]}'],
      ['flow.yaml:5:5: malformed YAML: flow sequence in block collection must be sufficiently indented and end with a ]\n  hint: check the indentation (spaces, not tabs), the colons after keys, and unclosed quotes or brackets near this position'],
    );
  });

  test('no jobs, and no jobs key', () => {
    expectDiagnostics(['version: v1', 'jobs: {}'], ['flow.yaml:2:1: jobs: the workflow has no jobs\n  hint: add at least one job under "jobs:" (or a service under "services:")']);
    expectDiagnostics(['version: v1'], ['flow.yaml:1:1: missing required key "jobs"\n  hint: add a "jobs:" mapping of job name to job (see examples/hello.yaml), or "services:"']);
  });

  test('an error inside a YAML anchor is reported where it is written', () => {
    expectDiagnostics(
      ['version: v1', 'x-common: &common', '  resource: {cpu: {cores: 0}}', 'jobs:', '  a:', '    <<: *common', '    command: [true]'],
      ['flow.yaml:3:27: jobs.a.resource.cpu.cores: cores must be at least 1, got 0\n  hint: ask for a whole number of cores >= 1 (the default is 1)'],
    );
  });

  test('requirements and mounts that come from defaults.job are checked once, at defaults', () => {
    expectDiagnostics(
      ['version: v1', 'defaults:', '  job:', '    requires: [setup, nope]', '    mounts:', '      scratch: {location: /s}', 'jobs:', '  setup: {command: [true]}', '  a: {command: [true]}', '  b: {command: [true]}'],
      [
        'flow.yaml:4:23: defaults.job.requires[1]: unknown job "nope"\n  hint: jobs in this file: setup, a, b',
        'flow.yaml:6:7: defaults.job.mounts.scratch: unknown volume "scratch"\n  hint: define it under the top-level "volumes:" key, e.g. volumes: {data: {reference: volume://user/ephemeral}}',
      ],
    );
  });
});

describe('Fuzzfile v1: the normalized model', () => {
  test('a full job, with every default filled in', () => {
    const wf = parseOk('version: v1\njobs:\n  hello:\n    command: [echo, hi, 3, true]\n');
    assert.equal(wf.name, 'flow');
    assert.equal(wf.dialect, 'v1');
    assert.equal(wf.file, '/wf/flow.yaml');
    assert.deepEqual(wf.volumes, {});
    assert.deepEqual(wf.policy, {});
    assert.deepEqual(wf.jobs.hello, {
      name: 'hello',
      service: false,
      command: ['echo', 'hi', '3', 'true'],
      args: [],
      env: {},
      mounts: [],
      requires: [],
      resources: { cores: 1, affinity: 'core', threads: false, memoryByCore: false, devices: {}, exclusive: false },
      policy: { attempts: 1, backoffSec: 1 },
      pos: { line: 3, col: 3 },
    });
  });

  test('every key', () => {
    const wf = parseOk(
      [
        'version: v1',
        'name: everything',
        'policy: {deadline: 2h, budget: 12.5, timeout: 1d}',
        'volumes:',
        '  data:',
        '    reference: volume://user/persistent/genomes',
        '    ingress:',
        '      - source: {uri: "s3://bucket/ref.fa", secret: "secret://user/aws"}',
        '        destination: {uri: file://ref/ref.fa}',
        '        sha256: ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789',
        '  scratch:',
        '    reference: volume://user/ephemeral',
        '    egress:',
        '      - source: {uri: file://out/result.bam}',
        '        destination: {uri: https://example.org/upload/result.bam}',
        'jobs:',
        '  align:',
        '    image: {uri: "docker://biocontainers/bwa:0.7.17", secret: "secret://user/hub"}',
        '    command: [bwa, mem]',
        '    args: [ref.fa, reads.fq]',
        '    env: [THREADS=8, "EMPTY=", "EQ=a=b"]',
        '    cwd: /scratch',
        '    mounts:',
        '      data: {location: /data, read-only: true}',
        '      scratch: {location: /scratch}',
        '    resource:',
        '      cpu: {cores: 8, affinity: NUMA, threads: true}',
        '      memory: {size: 2GiB, by-core: true}',
        '      devices: {nvidia.com/gpu: 2}',
        '      exclusive: true',
        '    task-array: {start: 1, end: 10, concurrency: 3}',
        '    multinode: {nodes: 4, implementation: MPICH}',
        '    policy:',
        '      timeout: {execute: 1h30m}',
        '      retry: {attempts: 3, backoff: 500ms}',
        '    estimate: 20m',
      ].join('\n'),
    );
    assert.equal(wf.name, 'everything');
    assert.deepEqual(wf.policy, { deadlineSec: 7200, budget: 12.5, timeoutSec: 86400 });
    assert.deepEqual(wf.volumes, {
      data: {
        name: 'data',
        reference: 'volume://user/persistent/genomes',
        kind: 'persistent',
        persistentName: 'genomes',
        ingress: [
          {
            source: { uri: 's3://bucket/ref.fa', secret: 'secret://user/aws' },
            destination: { uri: 'file://ref/ref.fa' },
            sha256: 'abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789',
          },
        ],
        egress: [],
      },
      scratch: {
        name: 'scratch',
        reference: 'volume://user/ephemeral',
        kind: 'ephemeral',
        ingress: [],
        egress: [{ source: { uri: 'file://out/result.bam' }, destination: { uri: 'https://example.org/upload/result.bam' } }],
      },
    });
    assert.deepEqual(wf.jobs.align, {
      name: 'align',
      service: false,
      image: { uri: 'docker://biocontainers/bwa:0.7.17', secret: 'secret://user/hub' },
      command: ['bwa', 'mem'],
      args: ['ref.fa', 'reads.fq'],
      env: { THREADS: '8', EMPTY: '', EQ: 'a=b' },
      cwd: '/scratch',
      mounts: [
        { volume: 'data', location: '/data', readOnly: true },
        { volume: 'scratch', location: '/scratch', readOnly: false },
      ],
      requires: [],
      resources: { cores: 8, affinity: 'numa', threads: true, memoryBytes: 16 * 1024 ** 3, memoryByCore: true, devices: { 'nvidia.com/gpu': 2 }, exclusive: true },
      taskArray: { start: 1, end: 10, concurrency: 3 },
      multinode: { nodes: 4, implementation: 'mpich' },
      policy: { timeoutSec: 5400, attempts: 3, backoffSec: 0.5 },
      estimateSec: 1200,
      pos: { line: 17, col: 3 },
    });
  });

  test('memory without by-core is the total; by-core multiplies by the cores', () => {
    const wf = parseOk(
      'version: v1\njobs:\n  a:\n    command: [x]\n    resource: {cpu: {cores: 4}, memory: {size: 512MB}}\n  b:\n    command: [x]\n    resource: {cpu: {cores: 4}, memory: {size: 512MB, by-core: true}}\n  c:\n    command: [x]\n    resource: {memory: {size: 1.5G, by-core: true}}\n',
    );
    assert.equal(wf.jobs.a!.resources.memoryBytes, 512e6);
    assert.equal(wf.jobs.a!.resources.memoryByCore, false);
    assert.equal(wf.jobs.b!.resources.memoryBytes, 4 * 512e6);
    assert.equal(wf.jobs.b!.resources.memoryByCore, true);
    assert.equal(wf.jobs.c!.resources.memoryBytes, 1.5e9, 'one core by default');
  });

  test('defaults.job is merged under every job: env key-wise, resource deep, mounts by volume, the rest replaced', () => {
    const wf = parseOk(
      [
        'version: v1',
        'volumes:',
        '  a: {reference: volume://user/ephemeral}',
        '  b: {reference: volume://user/ephemeral}',
        'defaults:',
        '  job:',
        '    command: [default-cmd]',
        '    env: {A: "1", B: "2"}',
        '    mounts:',
        '      a: {location: /a}',
        '      b: {location: /b}',
        '    resource:',
        '      cpu: {cores: 2, affinity: socket}',
        '      memory: {size: 1GiB, by-core: true}',
        '      devices: {x/y: 1}',
        '    policy: {retry: {attempts: 2}}',
        '    requires: [first]',
        'jobs:',
        '  first:',
        '    script: "#!/bin/sh\\necho first\\n"',
        '  second:',
        '    env: [B=20, C=30]',
        '    mounts:',
        '      b: {location: /bb, read-only: true}',
        '    resource:',
        '      cpu: {cores: 4}',
        '      devices: {z/w: 2}',
        '    policy: {retry: {backoff: 3s}, timeout: {execute: 10s}}',
      ].join('\n'),
    );
    const first = wf.jobs.first!;
    assert.equal(first.command, undefined, "the job's own script wins over the default command");
    assert.equal(first.script, '#!/bin/sh\necho first\n');
    assert.deepEqual(first.requires, [], 'a default requirement is not applied to the job itself');
    assert.deepEqual(first.env, { A: '1', B: '2' });
    assert.equal(first.resources.memoryBytes, 2 * 1024 ** 3);
    const second = wf.jobs.second!;
    assert.deepEqual(second.command, ['default-cmd']);
    assert.deepEqual(second.env, { A: '1', B: '20', C: '30' });
    assert.deepEqual(second.mounts, [
      { volume: 'a', location: '/a', readOnly: false },
      { volume: 'b', location: '/bb', readOnly: true },
    ]);
    assert.deepEqual(second.resources, {
      cores: 4,
      affinity: 'socket',
      threads: false,
      memoryBytes: 4 * 1024 ** 3,
      memoryByCore: true,
      devices: { 'x/y': 1, 'z/w': 2 },
      exclusive: false,
    });
    assert.deepEqual(second.policy, { timeoutSec: 10, attempts: 2, backoffSec: 3 });
    assert.deepEqual(second.requires, [{ job: 'first', condition: 'succeeded' }]);
  });

  test('relative file:// URIs outside the volume are resolved against the workflow file directory', () => {
    const wf = parseOk(
      [
        'version: v1',
        'volumes:',
        '  v:',
        '    reference: volume://user/ephemeral',
        '    ingress:',
        '      - {source: {uri: file://data/in put.csv}, destination: {uri: file://input/in.csv}}',
        '      - {source: {uri: file:///abs/x}, destination: {uri: file://x}}',
        '    egress:',
        '      - {source: {uri: file://results/out.csv}, destination: {uri: file://../output/out.csv}}',
        'jobs:',
        '  a: {command: [true]}',
      ].join('\n'),
      '/home/me/flows/flow.yaml',
    );
    const v = wf.volumes.v!;
    assert.equal(v.ingress[0]!.source.uri, 'file:///home/me/flows/data/in put.csv', 'a literal path, as src/data reads file:// URIs');
    assert.equal(v.ingress[0]!.destination.uri, 'file://input/in.csv', 'the volume side is kept as written');
    assert.equal(v.ingress[1]!.source.uri, 'file:///abs/x');
    assert.equal(v.egress[0]!.source.uri, 'file://results/out.csv');
    assert.equal(v.egress[0]!.destination.uri, 'file:///home/me/output/out.csv');
  });

  test('env as a mapping; numbers and booleans become strings', () => {
    const wf = parseOk('version: v1\njobs:\n  a:\n    command: [x]\n    env: {N: 3, B: false, S: text}\n');
    assert.deepEqual(wf.jobs.a!.env, { N: '3', B: 'false', S: 'text' });
  });

  test('jobs keep file order; YAML anchors, merge keys and x- keys work', () => {
    const wf = parseOk(
      'version: v1\nx-base: &base\n  command: [true]\n  resource: {cpu: {cores: 3}}\njobs:\n  zeta:\n    <<: *base\n  alpha:\n    <<: *base\n    resource: {cpu: {cores: 1}}\n  "quoted.name":\n    command: [x]\n',
    );
    assert.deepEqual(Object.keys(wf.jobs), ['zeta', 'alpha', 'quoted.name']);
    assert.equal(wf.jobs.zeta!.resources.cores, 3);
    assert.equal(wf.jobs.alpha!.resources.cores, 1);
    assert.deepEqual(wf.jobs['quoted.name']!.pos, { line: 11, col: 3 });
  });

  test('job positions in flow style and with CRLF line endings', () => {
    const flow = parseOk('version: v1\njobs: {a: {command: [x]}, b: {command: [y], requires: [a]}}\n');
    assert.deepEqual(flow.jobs.a!.pos, { line: 2, col: 8 });
    assert.deepEqual(flow.jobs.b!.pos, { line: 2, col: 27 });
    const crlf = parseOk('version: v1\r\n# comment\r\njobs:\r\n\r\n  # a comment\r\n  a:\r\n    command: [x]\r\n  b:\r\n    script: |\r\n      #!/bin/sh\r\n      echo\r\n');
    assert.deepEqual(crlf.jobs.a!.pos, { line: 6, col: 3 });
    assert.deepEqual(crlf.jobs.b!.pos, { line: 8, col: 3 });
    assert.equal(crlf.jobs.b!.script, '#!/bin/sh\necho\n');
  });

  test('keys named like Object properties are plain keys', () => {
    const wf = parseOk('version: v1\njobs:\n  constructor:\n    command: [x]\n    env: {constructor: x, toString: y}\n');
    const job = Object.entries(wf.jobs).find(([n]) => n === 'constructor')![1];
    assert.deepEqual(Object.keys(job.env), ['constructor', 'toString']);
    assert.equal(Object.getPrototypeOf(job.env), Object.prototype);
    expectDiagnostics(
      ['version: v1', 'jobs:', '  a:', '    command: [x]', '    mounts:', '      constructor: {location: /x}'],
      ['flow.yaml:6:7: jobs.a.mounts.constructor: unknown volume "constructor"\n  hint: define it under the top-level "volumes:" key, e.g. volumes: {data: {reference: volume://user/ephemeral}}'],
    );
  });

  test('a Fuzzfile written as JSON is read like YAML', () => {
    const wf = parseOk(JSON.stringify({ version: 'v1', jobs: { a: { command: ['echo', 'hi'] }, b: { command: ['true'], requires: ['a'] } } }));
    assert.deepEqual(wf.jobs.b!.requires, [{ job: 'a', condition: 'succeeded' }]);
  });
});

describe('Fuzzfile v4: the normalized model', () => {
  test('services, depends-on statuses and defaults, mounts keyed by path', () => {
    const wf = parseOk(
      [
        'version: v4',
        'volumes:',
        '  data: {reference: volume://user/ephemeral}',
        'services:',
        '  db:',
        '    image: {uri: docker://postgres:16}',
        '    command: [postgres]',
        '    env: [PGDATA=/data/pg]',
        '    mounts:',
        '      /data: {volume: data}',
        '    resource: {cpu: {cores: 2}}',
        'jobs:',
        '  load:',
        '    depends-on: [db]',
        '    command: [load]',
        '    mounts:',
        '      /in: {volume: data, read-only: true}',
        '  check:',
        '    depends-on:',
        '      - load',
        '      - {name: db, status: running}',
        '    command: [check]',
        '  cleanup:',
        '    depends-on:',
        '      - {name: load, status: Ended}',
        '      - {name: check, status: FAILED}',
        '    command: [cleanup]',
        '  after-db:',
        '    depends-on: [{name: db, status: SUCCEEDED}]',
        '    command: [x]',
      ].join('\n'),
    );
    assert.equal(wf.dialect, 'v4');
    assert.deepEqual(Object.keys(wf.jobs), ['db', 'load', 'check', 'cleanup', 'after-db']);
    const db = wf.jobs.db!;
    assert.equal(db.service, true);
    assert.deepEqual(db.image, { uri: 'docker://postgres:16' });
    assert.deepEqual(db.mounts, [{ volume: 'data', location: '/data', readOnly: false }]);
    assert.deepEqual(db.env, { PGDATA: '/data/pg' });
    assert.equal(db.resources.cores, 2);
    assert.deepEqual(db.pos, { line: 5, col: 3 });
    assert.equal(wf.jobs.load!.service, false);
    assert.deepEqual(wf.jobs.load!.requires, [{ job: 'db', condition: 'running' }], 'RUNNING is the default on a service');
    assert.deepEqual(wf.jobs.load!.mounts, [{ volume: 'data', location: '/in', readOnly: true }]);
    assert.deepEqual(wf.jobs.check!.requires, [
      { job: 'load', condition: 'succeeded' },
      { job: 'db', condition: 'running' },
    ]);
    assert.deepEqual(wf.jobs.cleanup!.requires, [
      { job: 'load', condition: 'finished' },
      { job: 'check', condition: 'failed' },
    ]);
    assert.deepEqual(wf.jobs['after-db']!.requires, [{ job: 'db', condition: 'succeeded' }]);
  });

  test('a cycle through a service is found', () => {
    expectDiagnostics(
      ['version: v4', 'services:', '  s:', '    command: [x]', '    depends-on: [j]', 'jobs:', '  j:', '    command: [y]', '    depends-on: [s]'],
      ['flow.yaml:5:5: services.s.depends-on: dependency cycle: s -> j -> s\n  hint: a workflow must be acyclic: remove one of these requirements'],
    );
  });
});

describe('parseWorkflowText never throws', () => {
  test('on arbitrary text and on arbitrary YAML values', async () => {
    const fc = (await import('fast-check')).default;
    const { dump } = await import('js-yaml');
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        const r = parseWorkflowText(s, 'x.yaml');
        return Array.isArray(r.diagnostics) && (r.workflow !== undefined || r.diagnostics.length > 0);
      }),
      { numRuns: 300, seed: 42 },
    );
    const keys = fc.constantFrom('version', 'jobs', 'a', 'command', 'script', 'requires', 'depends-on', 'resource', 'cpu', 'cores', 'memory', 'size', 'env', 'mounts', 'volumes', 'reference', 'ingress', 'task-array', 'start', 'end', 'services', 'policy', 'retry', 'defaults', 'job', 'image', 'uri', '<<');
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc.constantFrom('v1', 'v4', 'a', '#!/bin/sh\n', '4GiB', '1h', 'volume://user/ephemeral', 'file://x', '/data', 'RUNNING'),
        fc.integer({ min: -2, max: 10 }),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(keys, tie('node'), { maxKeys: 4 }),
      ),
    })).node;
    fc.assert(
      fc.property(fc.dictionary(keys, value, { maxKeys: 5 }), (doc) => {
        const r = parseWorkflowText(dump(doc), 'x.yaml');
        for (const d of r.diagnostics) assert.ok(d.line >= 1 && d.col >= 1 && d.message.length > 0);
        return r.workflow !== undefined || r.diagnostics.length > 0;
      }),
      { numRuns: 500, seed: 7 },
    );
  });
});
