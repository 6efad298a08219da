// What real Fuzzfiles use (issue 11): services with network, probes and persist; v1's
// depends-on, services and every volume reference; v4 volumes with use/name/size and storage
// classes; shorthand mounts; inline files; annotations and the small keys. Each construct has
// a positive case (the normalized model) and its errors at exact positions.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { load } from 'js-yaml';
import {
  formatDiagnostic,
  parseStorageClasses,
  parseWorkflowText,
  readStorageClasses,
  workflowAnnotations,
  workflowJsonSchema,
  type ReadOptions,
  type Workflow,
} from '../../src/workflow/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { repoRoot, sharedDir, tempDir } from '../helpers.js';

const fixtures = join(repoRoot, 'test', 'workflow', 'fixtures');

/** Parse `lines` as flow.yaml and compare the formatted diagnostics (in file order) with `expected`. */
function expectDiagnostics(lines: string[], expected: string[], opts: ReadOptions = {}): void {
  const { workflow, diagnostics } = parseWorkflowText(lines.join('\n') + '\n', 'flow.yaml', opts);
  assert.deepEqual(diagnostics.map(formatDiagnostic), expected);
  if (diagnostics.some((d) => d.severity === 'error')) assert.equal(workflow, undefined, 'no workflow when there are errors');
}

function parseOk(text: string, opts: ReadOptions = {}, file = '/wf/flow.yaml'): Workflow {
  const { workflow, diagnostics } = parseWorkflowText(text, file, opts);
  assert.deepEqual(diagnostics.map(formatDiagnostic), []);
  assert.ok(workflow);
  return workflow;
}

function fixture(name: string): Workflow {
  const f = join(fixtures, name);
  return parseOk(readFileSync(f, 'utf8'), {}, f);
}

describe('services', () => {
  test('network (ports, endpoints), an HTTP probe with a named port and a header, persist, files, policy, resource annotations', () => {
    const wf = fixture('notebook-service.yaml');
    const nb = wf.jobs.notebook!;
    assert.equal(nb.service, true);
    assert.deepEqual(nb.serviceSpec, {
      ports: [{ name: 'web', port: 8888, protocol: 'tcp' }],
      endpoints: [
        { name: 'lab', portName: 'web', protocol: 'http', type: 'path', scope: 'user' },
        { name: 'api', portName: 'web', protocol: 'https', type: 'subdomain', scope: 'group' },
      ],
      persist: true,
      probe: {
        action: { kind: 'http', path: '/api/status', port: 8888, scheme: 'HTTP', headers: [{ name: 'Authorization', value: 'Bearer token' }] },
        initialDelaySec: 5,
        periodSec: 2,
        timeoutSec: 1,
        successThreshold: 1,
        failureThreshold: 30,
      },
    });
    assert.deepEqual(nb.files, { '/etc/notebook/settings.json': '{"theme": "dark"}\n' });
    assert.equal(nb.description, 'an HTTP server standing in for a notebook');
    assert.equal(nb.policy.timeoutSec, 8 * 3600);
    assert.deepEqual(nb.resources.annotations, { 'nvidia.com/gpu.model': 'A100' });
    assert.deepEqual(nb.image, { uri: 'docker://registry.example/notebook:1.0', secrets: { username: 'secret://user/registry-user' } });
    assert.deepEqual(nb.mounts, [{ volume: 'work', location: '/work', readOnly: false }]);
    assert.deepEqual(wf.jobs['warm-up']!.requires, [{ job: 'notebook', condition: 'running', description: 'the notebook answers' }]);
    assert.deepEqual(wf.annotations, { 'fuzzball.io/connect/notebook': 'echo connect' });
  });

  test('a workflow of services only; tcp, exec and grpc probes with Kubernetes defaults; host network; udp ports', () => {
    const wf = fixture('services-only.yaml');
    assert.deepEqual(Object.keys(wf.jobs), ['cache', 'metrics']);
    assert.deepEqual(wf.jobs.cache!.serviceSpec, {
      ports: [{ name: 'cache', port: 6379, protocol: 'tcp' }],
      endpoints: [],
      persist: false,
      probe: { action: { kind: 'exec', command: ['cache-cli', 'ping'] }, initialDelaySec: 0, periodSec: 5, timeoutSec: 1, successThreshold: 1, failureThreshold: 3 },
      host: true,
    });
    assert.deepEqual(wf.jobs.metrics!.serviceSpec!.probe!.action, { kind: 'grpc', port: 9100, service: 'health' });
    assert.deepEqual(wf.jobs.metrics!.serviceSpec!.ports[1], { name: 'statsd', port: 8125, protocol: 'udp' });
    const db = fixture('legacy-v1.yaml').jobs.db!;
    assert.deepEqual(db.serviceSpec!.probe, { action: { kind: 'tcp', port: 5432 }, initialDelaySec: 0, periodSec: 10, timeoutSec: 1, successThreshold: 1, failureThreshold: 3 });
    // A service without network or probe still has its (empty) spec.
    assert.deepEqual(parseOk('version: v4\nservices:\n  s: {command: [x]}\n').jobs.s!.serviceSpec, { ports: [], endpoints: [], persist: false });
  });

  test('ports: the same port and protocol twice (in one service or two), bad names, protocols and numbers', () => {
    expectDiagnostics(
      [
        'version: v4',
        'services:',
        '  web:',
        '    command: [httpd]',
        '    network:',
        '      ports:',
        '        - {name: http, port: 8080}',
        '        - {name: alt, port: 8080}',
        '        - {name: dns, port: 53, protocol: udp}',
        '        - {name: dns2, port: 53}',
        '  api:',
        '    command: [api]',
        '    network:',
        '      ports:',
        '        - {name: http, port: 8080}',
        '        - {name: http, port: 9090, protocol: sctp}',
        '        - {port: 70000}',
      ],
      [
        'flow.yaml:8:29: services.web.network.ports[1].port: port 8080/tcp is declared twice in this service (also at services.web.network.ports[0])\n  hint: two services cannot listen on one port: give each its own port number',
        'flow.yaml:15:30: services.api.network.ports[0].port: port 8080/tcp is already used by service "web" (services.web.network.ports[0])\n  hint: two services cannot listen on one port: give each its own port number',
        'flow.yaml:16:18: services.api.network.ports[1].name: port name "http" is used twice in this service\n  hint: give each port its own name',
        'flow.yaml:16:46: services.api.network.ports[1].protocol: expected one of tcp, udp, got "sctp"',
        'flow.yaml:17:11: services.api.network.ports[2]: missing required key "name"\n  hint: e.g. {name: web, port: 8080, protocol: tcp}',
        'flow.yaml:17:18: services.api.network.ports[2].port: port 70000 is out of range\n  hint: a port is a whole number from 1 to 65535',
      ],
    );
  });

  test('endpoints: an unknown port-name (did-you-mean), a udp port, bad protocol, type and scope', () => {
    expectDiagnostics(
      [
        'version: v4',
        'services:',
        '  web:',
        '    command: [httpd]',
        '    network:',
        '      ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: udp}]',
        '      endpoints:',
        '        - {name: ui, port-name: htp, protocol: http}',
        '        - {name: dns, port-name: dns, protocol: tcp}',
        '        - {name: ui2, port-name: http, protocol: ftp, type: sub, scope: world}',
        '        - {port-name: http}',
        '  bare:',
        '    command: [x]',
        '    network:',
        '      endpoints: [{name: e, port-name: web}]',
      ],
      [
        'flow.yaml:8:33: services.web.network.endpoints[0].port-name: unknown port "htp" (did you mean "http"?)\n  hint: ports of this service: http, dns',
        'flow.yaml:9:34: services.web.network.endpoints[1].port-name: endpoint "dns" (tcp) names port "dns", which is udp\n  hint: endpoints run over TCP: point it at a tcp port',
        'flow.yaml:10:50: services.web.network.endpoints[2].protocol: expected one of http, https, grpc, grpcs, tcp, tls, got "ftp"',
        'flow.yaml:10:61: services.web.network.endpoints[2].type: expected one of subdomain, path, got "sub"',
        'flow.yaml:10:73: services.web.network.endpoints[2].scope: expected one of user, group, organization, public, got "world"',
        'flow.yaml:11:11: services.web.network.endpoints[3]: missing required key "name"\n  hint: e.g. {name: web, port-name: web, protocol: http, type: subdomain, scope: user}',
        'flow.yaml:15:40: services.bare.network.endpoints[0].port-name: unknown port "web"\n  hint: declare it under network.ports, e.g. ports: [{name: web, port: 8080, protocol: tcp}]',
      ],
    );
  });

  test('probes: no action, two actions, an unknown port name, bad path, timing, empty exec, grpc without a port', () => {
    expectDiagnostics(
      [
        'version: v4',
        'services:',
        '  none:',
        '    command: [x]',
        '    readiness-probe:',
        '      initial-delay-seconds: 3',
        '  two:',
        '    command: [x]',
        '    readiness-probe:',
        '      http-get: {port: 8080}',
        '      tcp-socket: {port: 8080}',
        '  named:',
        '    command: [x]',
        '    network: {ports: [{name: web, port: 7000}]}',
        '    readiness-probe:',
        '      http-get: {port: webb, path: /}',
        '      period-seconds: 0',
        '  path:',
        '    command: [x]',
        '    readiness-probe:',
        '      http-get: {port: 80, path: health}',
        '  ex:',
        '    command: [x]',
        '    readiness-probe:',
        '      exec: {command: []}',
        '  rpc:',
        '    command: [x]',
        '    readiness-probe:',
        '      grpc: {}',
        '      failure-threshold: -1',
        '  scheme:',
        '    command: [x]',
        '    readiness-probe: {http-get: {port: 80, scheme: ftp}}',
      ],
      [
        'flow.yaml:5:5: services.none.readiness-probe: the readiness probe has no action\n  hint: give it one of http-get: {path, port}, tcp-socket: {port}, exec: {command: [...]} or grpc: {port}',
        'flow.yaml:11:7: services.two.readiness-probe.tcp-socket: the readiness probe has 2 actions (http-get, tcp-socket)\n  hint: a probe checks one thing: keep exactly one of http-get, tcp-socket, exec and grpc',
        "flow.yaml:16:24: services.named.readiness-probe.http-get.port: unknown port \"webb\" (did you mean \"web\"?)\n  hint: write a port number, or one of this service's ports: web",
        'flow.yaml:17:23: services.named.readiness-probe.period-seconds: 0 is out of range: expected an integer from 1 to 2,147,483,647\n  hint: write a whole number from 1 to 2,147,483,647 in decimal digits (limits: docs/workflow-format.md#limits)',
        'flow.yaml:21:34: services.path.readiness-probe.http-get.path: the path must start with "/", got "health"\n  hint: write /health',
        'flow.yaml:25:23: services.ex.readiness-probe.exec.command: command must not be empty\n  hint: give the program and its arguments, e.g. [cat, /tmp/ready]',
        'flow.yaml:29:7: services.rpc.readiness-probe.grpc: missing required key "port"\n  hint: e.g. grpc: {port: 8080}',
        'flow.yaml:30:26: services.rpc.readiness-probe.failure-threshold: -1 is out of range: expected an integer from 1 to 2,147,483,647\n  hint: write a whole number from 1 to 2,147,483,647 in decimal digits (limits: docs/workflow-format.md#limits)',
        'flow.yaml:33:52: services.scheme.readiness-probe.http-get.scheme: expected one of http, https, got "ftp"',
      ],
    );
  });

  test('v1 services take requires, multinode, files, policy and resource annotations like jobs', () => {
    const wf = parseOk(
      'version: v1\nfiles:\n  conf: "x=1"\nservices:\n  s:\n    name: s\n    command: [x]\n    requires: [prep]\n    multinode: {nodes: 2, implementation: mpich}\n    files: {/etc/s.conf: file://conf}\n    policy: {timeout: {execute: 1h}}\n    resource: {annotations: {tier: gold}}\njobs:\n  prep: {command: [x]}\n',
    );
    const s = wf.jobs.s!;
    assert.deepEqual([s.service, s.requires, s.multinode, s.files, s.policy.timeoutSec, s.resources.annotations], [true, [{ job: 'prep', condition: 'succeeded' }], { nodes: 2, implementation: 'mpich' }, { '/etc/s.conf': 'x=1' }, 3600, { tier: 'gold' }]);
    expectDiagnostics(
      ['version: v4', 'services:', '  s:', '    command: [x]', '    requires: [j]', '    task-array: {start: 0, end: 1}', 'jobs:', '  j: {command: [x]}'],
      [
        'flow.yaml:5:5: services.s.requires: unknown key "requires"\n  hint: "requires" is the v1 spelling: in a v4 file use "depends-on: [{name: JOB, status: SUCCEEDED}]", or set "version: v1"',
        'flow.yaml:6:5: services.s.task-array: unknown key "task-array"\n  hint: allowed keys in a service: name, description, annotations, image, command, script, args, env, cwd, files, mounts, depends-on, resource, network, multinode, policy, persist, readiness-probe',
      ],
    );
  });

  test('a probe on a port number that network.ports does not declare is accepted', () => {
    const wf = parseOk('version: v4\nservices:\n  s:\n    command: [x]\n    readiness-probe: {tcp-socket: {port: 9999}}\n');
    assert.deepEqual(wf.jobs.s!.serviceSpec!.probe!.action, { kind: 'tcp', port: 9999 });
  });

  test("service keys on a job, and the two kinds of network, say where they belong", () => {
    expectDiagnostics(
      ['version: v4', 'jobs:', '  j:', '    command: [x]', '    persist: true', '    network: {ports: [], isolated: yes}', 'services:', '  s:', '    command: [x]', '    network: {isolated: true}'],
      [
        'flow.yaml:5:5: jobs.j.persist: unknown key "persist"\n  hint: "persist" is a key of services: move this job under "services:"',
        'flow.yaml:6:15: jobs.j.network.ports: unknown key "ports"\n  hint: a job\'s network has isolated, expose-tcp and expose-udp; ports, endpoints and host belong to services (move this job under "services:")',
        'flow.yaml:6:36: jobs.j.network.isolated: expected true or false, got a string ("yes")',
        'flow.yaml:10:15: services.s.network.isolated: unknown key "isolated"\n  hint: a service\'s network has ports, endpoints and host; "isolated" is a key of a job\'s network',
      ],
    );
  });

  test('jobs depend on services in both dialects: RUNNING by default, v1 requires and depends-on together', () => {
    const v1 = fixture('legacy-v1.yaml');
    assert.deepEqual(v1.jobs.load!.requires, [{ job: 'setup', condition: 'succeeded' }, { job: 'db', condition: 'running' }]);
    assert.deepEqual(v1.jobs.report!.requires, [{ job: 'load', condition: 'succeeded', description: 'the data is loaded' }]);
    // v1 `requires: [service]` waits for it to be ready, not for it to end.
    assert.deepEqual(parseOk('version: v1\nservices:\n  s: {command: [x]}\njobs:\n  j: {command: [x], requires: [s]}\n').jobs.j!.requires, [{ job: 's', condition: 'running' }]);
    expectDiagnostics(
      ['version: v1', 'jobs:', '  a: {command: [x]}', '  b:', '    command: [x]', '    requires: [a]', '    depends-on: [{name: a, status: FINISHED}]'],
      ['flow.yaml:7:25: jobs.b.depends-on[0].name: "a" is listed twice\n  hint: list each requirement once'],
    );
    expectDiagnostics(
      ['version: v1', 'jobs:', '  a: {command: [x]}', '  b: {command: [x], depends-on: [{name: a, status: RUNNING}], requires: [c]}'],
      [
        'flow.yaml:4:52: jobs.b.depends-on[0].status: status RUNNING is only valid when depending on a service, and "a" is a job\n  hint: use SUCCEEDED (or FINISHED), ENDED or FAILED for a job',
        'flow.yaml:4:74: jobs.b.requires[0]: unknown job "c"\n  hint: jobs in this file: a, b',
      ],
    );
  });

  test('no jobs and no services', () => {
    expectDiagnostics(['version: v4', 'jobs: {}', 'services: {}'], ['flow.yaml:2:1: jobs: the workflow has no jobs\n  hint: add at least one job under "jobs:" (or a service under "services:")']);
    expectDiagnostics(['version: v4', 'services:'], ['flow.yaml:2:1: services: the workflow has no jobs\n  hint: add at least one job under "jobs:" (or a service under "services:")']);
  });
});

describe('volumes', () => {
  test('v1 references: bare persistent (NAME "default"), ephemeral/NAME, account and group scopes, type: EPHEMERAL', () => {
    const v = fixture('legacy-v1.yaml').volumes;
    assert.deepEqual(v.home, { name: 'home', reference: 'volume://user/persistent', kind: 'persistent', persistentName: 'default', ingress: [], egress: [] });
    assert.deepEqual(v.scratch, { name: 'scratch', reference: 'volume://user/ephemeral/run-scratch', kind: 'ephemeral', ingress: [], egress: [] });
    assert.deepEqual(v.shared, { name: 'shared', reference: 'volume://account/persistent/lab-data', kind: 'persistent', scope: 'account', persistentName: 'lab-data', ingress: [], egress: [] });
    assert.deepEqual(v['group-data'], { name: 'group-data', reference: 'volume://group/persistent/data', kind: 'persistent', scope: 'account', persistentName: 'data', ingress: [], egress: [] });
    assert.deepEqual(v['old-style'], { name: 'old-style', reference: 'volume://user/ephemeral', kind: 'ephemeral', ingress: [], egress: [] });
    assert.equal(parseOk('version: v1\nvolumes:\n  a: {reference: volume://account/ephemeral}\njobs:\n  j: {command: [x]}\n').volumes.a!.kind, 'ephemeral');
  });

  test('v4: use, name, size, annotations; shorthand mounts; a transfer policy', () => {
    const wf = fixture('pipeline-v4.yaml');
    const s = wf.volumes.scratch!;
    assert.equal(s.reference, 'volume://user/ephemeral');
    assert.equal(s.kind, 'ephemeral');
    assert.equal(s.sizeBytes, 50e9);
    assert.deepEqual(s.ingress[1], { source: { uri: 'https://data.example/reads.fq' }, destination: { uri: 'file://inputs/reads.fq' }, policy: { timeoutSec: 600, attempts: 3 } });
    assert.deepEqual(wf.volumes.results, { name: 'results', reference: 'volume://user/persistent/project-results', kind: 'persistent', persistentName: 'project-results', annotations: { tier: 'fast' }, ingress: [], egress: [] });
    assert.deepEqual(wf.jobs.align!.mounts, [
      { volume: 'scratch', location: '/scratch', readOnly: false },
      { volume: 'results', location: '/results', readOnly: false },
    ]);
    const persistent = parseOk('version: v4\nvolumes:\n  p: {use: persistent, name: keep}\n  q: {size: 1GiB}\njobs:\n  j: {command: [x]}\n').volumes;
    assert.deepEqual([persistent.p!.kind, persistent.p!.persistentName, persistent.q!.kind, persistent.q!.sizeBytes], ['persistent', 'keep', 'ephemeral', 2 ** 30]);
  });

  test('v4 volume errors: unknown class (did-you-mean), ephemeral with a name, persistent without, reference and use, nothing', () => {
    expectDiagnostics(
      [
        'version: v4',
        'volumes:',
        '  a: {use: ephemeal}',
        '  b: {use: ephemeral, name: keep}',
        '  c: {use: persistent}',
        '  d: {reference: volume://user/ephemeral, use: ephemeral}',
        '  e: {name: "no good"}',
        '  f: {reference: volume://user/persistent-4/username}',
        '  g: {}',
        '  h: {size: lots}',
        '  i: {reference: volume://user/ephemeral, type: EPHEMERAL}',
        'jobs:',
        '  j:',
        '    command: [x]',
        '    mounts:',
        '      /m: nope',
        '      /n: ""',
        '      /o:',
        '      p: a',
      ],
      [
        'flow.yaml:3:12: volumes.a.use: unknown storage class "ephemeal" (did you mean "ephemeral"?)\n  hint: storage classes known here: ephemeral, persistent (a machine adds its own in $WARREN_HOME/storage-classes.yaml)',
        'flow.yaml:4:23: volumes.b.name: an ephemeral volume has no name (got "keep")\n  hint: remove "name" for scratch space of this run, or write use: persistent to mount the existing volume of that name',
        'flow.yaml:5:7: volumes.c.use: a persistent volume needs a "name"\n  hint: add name: NAME (the volume is kept between runs under that name)',
        'flow.yaml:6:43: volumes.d.use: set either "reference" or "use", not both\n  hint: reference: volume://user/CLASS[/NAME] names the class itself; use: CLASS (with name: NAME for a persistent volume) is the other way to write it',
        'flow.yaml:7:13: volumes.e.name: invalid volume name "no good": it has characters other than letters, digits, "_", "." and "-"\n  hint: names start with a letter or digit, contain only letters, digits, "_", "." and "-", and are at most 128 bytes long',
        'flow.yaml:8:18: volumes.f.reference: invalid volume reference "volume://user/persistent-4/username"\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
        'flow.yaml:9:3: volumes.g: missing "use", "name" or "reference"\n  hint: write use: ephemeral (scratch space for this run), name: NAME (a persistent volume kept between runs), or reference: volume://user/CLASS[/NAME]',
        'flow.yaml:10:13: volumes.h.size: invalid size "lots"\n  hint: write a number of bytes or a size like 512MB, 4GiB or 1.5G (units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB)',
        'flow.yaml:11:43: volumes.i.type: unknown key "type"\n  hint: "type" is Fuzzball\'s deprecated v1 volume form: write use: ephemeral, or reference: volume://user/CLASS[/NAME]',
        'flow.yaml:16:11: jobs.j.mounts["/m"]: unknown volume "nope"\n  hint: volumes defined in this file: a, b, c, d, e, f, g, h, i',
        'flow.yaml:17:11: jobs.j.mounts["/n"]: expected a volume name, got an empty string\n  hint: write "/n": VOLUME_NAME',
        'flow.yaml:18:7: jobs.j.mounts["/o"]: expected a volume name or {volume: NAME, read-only: BOOL}, got nothing\n  hint: write "/o": VOLUME_NAME',
        'flow.yaml:19:7: jobs.j.mounts.p: mount location must be an absolute path, got "p"\n  hint: v4 mounts are keyed by path: write "/p": {volume: p} (or set "version: v1" for mounts keyed by volume name)',
      ],
    );
  });

  test('v1 volume errors: temporary (the hint of broken.yaml), other scopes, host volumes, a bad type', () => {
    expectDiagnostics(
      [
        'version: v1',
        'volumes:',
        '  a: {reference: volume://user/temporary}',
        '  b: {reference: volume://org/persistent/x}',
        '  c: {type: HOST, path: /data}',
        '  d: {type: scratch}',
        '  e: {use: ephemeral}',
        'jobs:',
        '  j: {command: [x]}',
      ],
      [
        'flow.yaml:3:18: volumes.a.reference: invalid volume reference "volume://user/temporary"\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
        'flow.yaml:4:18: volumes.b.reference: invalid volume reference "volume://org/persistent/x"\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
        'flow.yaml:5:13: volumes.c.type: host volumes (type: HOST) are not supported by Warren\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME instead (Fuzzball deprecated "type" for "reference")',
        'flow.yaml:5:19: volumes.c.path: host volumes ("path") are not supported by Warren\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME instead (Fuzzball deprecated host volumes)',
        'flow.yaml:6:13: volumes.d.type: unknown volume type "scratch"\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME instead (Fuzzball deprecated "type" for "reference")',
        'flow.yaml:7:3: volumes.e: missing required key "reference"\n  hint: use reference: volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
        'flow.yaml:7:7: volumes.e.use: unknown key "use"\n  hint: a volume\'s "use" needs "version: v4" (in v1, write reference: volume://user/CLASS[/NAME])',
      ],
    );
  });

  test("a volume's name next to its reference repeats the key (a warning when it differs, never an error)", () => {
    const { workflow, diagnostics } = parseWorkflowText('version: v1\nvolumes:\n  v: {reference: volume://user/ephemeral, name: w}\njobs:\n  j: {command: [x]}\n', 'flow.yaml');
    assert.ok(workflow);
    assert.deepEqual(diagnostics.map(formatDiagnostic), ['flow.yaml:3:49: warning: volumes.v.name: "name" is ignored: this volume is "v" (its key), and the reference says which volume it is\n  hint: remove name: w']);
  });

  test("storage classes: a machine's own, in references and in use; a file with mistakes", () => {
    const { classes, diagnostics } = parseStorageClasses('scratch: {persistent: false, description: node-local}\nprojects:\n  persistent: true\nlocal:\n', 'sc.yaml');
    assert.deepEqual(diagnostics, []);
    assert.deepEqual(classes, {
      scratch: { name: 'scratch', persistent: false, description: 'node-local', builtin: false },
      projects: { name: 'projects', persistent: true, builtin: false },
      local: { name: 'local', persistent: false, builtin: false },
    });
    const wf = parseOk(
      'version: v4\nvolumes:\n  a: {use: scratch}\n  b: {use: projects, name: p1}\n  c: {reference: volume://group/projects/p2}\n  d: {reference: volume://user/scratch/ignored}\njobs:\n  j: {command: [x]}\n',
      { storageClasses: classes! },
    );
    assert.deepEqual(wf.volumes.a, { name: 'a', reference: 'volume://user/scratch', kind: 'ephemeral', storageClass: 'scratch', ingress: [], egress: [] });
    assert.deepEqual(wf.volumes.b, { name: 'b', reference: 'volume://user/projects/p1', kind: 'persistent', persistentName: 'p1', storageClass: 'projects', ingress: [], egress: [] });
    assert.deepEqual(wf.volumes.c, { name: 'c', reference: 'volume://group/projects/p2', kind: 'persistent', scope: 'account', persistentName: 'p2', storageClass: 'projects', ingress: [], egress: [] });
    assert.equal(wf.volumes.d!.kind, 'ephemeral');
    expectDiagnostics(
      ['version: v4', 'volumes:', '  e: {use: scratchy}', '  f: {reference: volume://user/temporary}', 'jobs:', '  j: {command: [x]}'],
      [
        'flow.yaml:3:12: volumes.e.use: unknown storage class "scratchy" (did you mean "scratch"?)\n  hint: storage classes known here: ephemeral, persistent, scratch, projects, local (a machine adds its own in $WARREN_HOME/storage-classes.yaml)',
        "flow.yaml:4:18: volumes.f.reference: invalid volume reference \"volume://user/temporary\"\n  hint: use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME; this machine's storage classes: volume://user/scratch, volume://user/projects/NAME, volume://user/local",
      ],
      { storageClasses: classes! },
    );
    const bad = parseStorageClasses('ephemeral: {}\n"bad name": {}\nx: {persistant: true}\ny: {persistent: "yes"}\n', 'storage-classes.yaml');
    assert.equal(bad.classes, undefined);
    assert.deepEqual(bad.diagnostics.map(formatDiagnostic), [
      'storage-classes.yaml:1:1: ephemeral: "ephemeral" is a built-in storage class\n  hint: give your class another name (ephemeral and persistent are always there)',
      'storage-classes.yaml:2:1: ["bad name"]: invalid storage class name "bad name": it has characters other than letters, digits, "_", "." and "-"\n  hint: names start with a letter or digit, contain only letters, digits, "_", "." and "-", and are at most 128 bytes long',
      'storage-classes.yaml:3:5: x.persistant: unknown key "persistant" (did you mean "persistent"?)\n  hint: allowed keys in a storage class: persistent, description',
      'storage-classes.yaml:4:17: y.persistent: expected true or false, got a string ("yes")',
    ]);
  });

  test('readStorageClasses: none without the file, the classes of HOME/storage-classes.yaml, SPEC_INVALID (exit 2) for a bad one', () => {
    const { dir, cleanup } = tempDir('warren-sc-');
    try {
      assert.deepEqual(readStorageClasses(dir), {});
      writeFileSync(join(dir, 'storage-classes.yaml'), 'fast: {persistent: true}\n');
      assert.deepEqual(readStorageClasses(dir), { fast: { name: 'fast', persistent: true, builtin: false } });
      writeFileSync(join(dir, 'storage-classes.yaml'), 'fast: [1]\n');
      let err: unknown;
      try {
        readStorageClasses(dir);
      } catch (e) {
        err = e;
      }
      assert.ok(isWarrenError(err));
      assert.equal(err.code, 'SPEC_INVALID');
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /storage-classes\.yaml:1:7: fast: expected a mapping, got a list/);
    } finally {
      cleanup();
    }
  });
});

describe('inline files', () => {
  test('top-level files, job files by path (content or file://NAME), ingress from a top-level file, defaults.job merged', () => {
    const wf = fixture('pipeline-v4.yaml');
    assert.deepEqual(wf.inlineFiles, { 'render.py': 'print("rendering")\n', 'params.txt': 'frames=10\n' });
    assert.deepEqual(wf.jobs.render!.files, { '/opt/render.py': 'print("rendering")\n', '/opt/README': 'render the aligned reads' });
    // An ingress source naming a top-level file carries its content; it is not a path next to the workflow.
    assert.deepEqual(wf.volumes.scratch!.ingress[0], { source: { uri: 'file://params.txt' }, destination: { uri: 'file://inputs/params.txt' }, inlineFile: { name: 'params.txt', content: 'frames=10\n' } });
    assert.deepEqual(fixture('legacy-v1.yaml').jobs.setup!.files, { '/tmp/setup.sh': '#!/bin/sh\necho setup\n' });
    const merged = parseOk('version: v1\ndefaults:\n  job:\n    files: {/a: one, /b: two}\njobs:\n  j:\n    command: [x]\n    files: {/b: mine}\n');
    assert.deepEqual(merged.jobs.j!.files, { '/a': 'one', '/b': 'mine' });
  });

  test('errors: unknown file://NAME (did-you-mean), relative and directory paths, non-string content, bad top-level names', () => {
    expectDiagnostics(
      [
        'version: v4',
        'files:',
        '  conf.ini: "a=1"',
        '  /abs: x',
        '  bad: [1]',
        'jobs:',
        '  j:',
        '    command: [x]',
        '    files:',
        '      relative/path: x',
        '      /etc/a.ini: file://conf.in',
        '      /etc/b: 3',
        '      /etc/dir/: x',
        '  k:',
        '    command: [x]',
        '    files: {/x: "file://"}',
      ],
      [
        'flow.yaml:4:3: files["/abs"]: invalid file name "/abs"\n  hint: a file of "files:" has a name (no leading "/", no ".."), which jobs and ingress refer to as file://NAME',
        'flow.yaml:5:8: files.bad: expected the file\'s content (a string; write a block with "|" for several lines), got a list',
        'flow.yaml:10:7: jobs.j.files["relative/path"]: a file\'s path must be absolute, got "relative/path"\n  hint: files are written at their path in the job: write /relative/path',
        'flow.yaml:11:19: jobs.j.files["/etc/a.ini"]: unknown file "conf.in" (did you mean "conf.ini"?)\n  hint: files defined at the top level: conf.ini',
        'flow.yaml:12:15: jobs.j.files["/etc/b"]: expected the file content (a string) or file://NAME, got a number (3)',
        'flow.yaml:13:7: jobs.j.files["/etc/dir/"]: a file\'s path must not end with "/", got "/etc/dir/"\n  hint: name the file itself, e.g. /etc/app/config.yaml',
        'flow.yaml:16:17: jobs.k.files["/x"]: unknown file ""\n  hint: files defined at the top level: conf.ini',
      ],
    );
  });
});

describe('small keys', () => {
  test('image secrets and decryptionSecret, cpu sockets, procs-per-node (ompi is openmpi), job network, memory by-core, an empty env', () => {
    const a = fixture('pipeline-v4.yaml').jobs.align!;
    assert.deepEqual(a.image, { uri: 'oras://registry.example/align.sif:2', decryptionSecret: 'secret://user/sif-key' });
    assert.equal(a.resources.sockets, 1);
    assert.equal(a.resources.memoryBytes, 4 * 2 ** 30);
    assert.deepEqual(a.multinode, { nodes: 2, implementation: 'openmpi', procsPerNode: 4 });
    assert.deepEqual(a.network, { isolated: true, exposeTcp: [5000], exposeUdp: [] });
    assert.deepEqual(a.env, {});
    assert.deepEqual(a.resources.annotations, { zone: 'a' }, 'defaults.job.resource.annotations');
    // The schema's camelCase spellings are read too.
    const camel = parseOk('version: v1\njobs:\n  j:\n    command: [x]\n    image: {uri: docker://x, decryptionSecret: secret://user/k}\n    multinode: {nodes: 1, procsPerNode: 2}\n    network: {exposeTcp: [80], exposeUdp: [53]}\n    resource: {memory: {size: 1GiB, byCore: true}}\n').jobs.j!;
    assert.deepEqual([camel.multinode!.procsPerNode, camel.network!.exposeTcp, camel.network!.exposeUdp, camel.resources.memoryByCore], [2, [80], [53], true]);
  });

  test('a job policy with retry as Fuzzball writes it; description and annotations at the top, on jobs and on depends-on', () => {
    const wf = fixture('pipeline-v4.yaml');
    assert.equal(wf.description, 'align, then render');
    assert.deepEqual(wf.jobs.render!.policy, { attempts: 2, backoffSec: 1 });
    assert.deepEqual(wf.jobs.render!.annotations, { owner: 'team-a' });
    const wf2 = parseOk('version: v1\nannotations: {zone: 2, fast: true}\njobs:\n  j:\n    command: [x]\n    annotations:\n    description: one job\n');
    assert.deepEqual(wf2.annotations, { zone: '2', fast: 'true' });
    assert.equal(wf2.jobs.j!.description, 'one job');
    assert.equal(wf2.jobs.j!.annotations, undefined);
  });

  test("job and service name: ignored in favour of the key, a warning when it differs", () => {
    assert.deepEqual(fixture('notebook-service.yaml').jobs.notebook!.name, 'notebook');
    const { workflow, diagnostics } = parseWorkflowText('version: v4\njobs:\n  j: {name: other, command: [x]}\n', 'flow.yaml');
    assert.equal(workflow?.jobs.j?.name, 'j');
    assert.deepEqual(diagnostics.map(formatDiagnostic), ['flow.yaml:3:13: warning: jobs.j.name: "name" is ignored: this job is "j" (its key)\n  hint: remove name: other, or rename the key']);
  });

  test('errors: both spellings, secrets not a mapping, generic and gasnet, zero sockets and procs, annotations not strings', () => {
    expectDiagnostics(
      [
        'version: v4',
        'jobs:',
        '  j:',
        '    command: [x]',
        '    image:',
        '      uri: docker://x',
        '      decryptionSecret: key',
        '      secrets: [a]',
        '    multinode: {nodes: 2, implementation: generic, procsPerNode: 0}',
        '    resource:',
        '      cpu: {sockets: 0}',
        '      memory: {size: 1GiB, byCore: true, by-core: true}',
        '      annotations: {a: {b: c}}',
        '    network: {expose-tcp: [0], exposeUdp: [53], expose-udp: [54]}',
        '    depends-on:',
        '      - {name: k, description: 3}',
        '  k:',
        '    command: [x]',
        '    multinode: {nodes: 2, implementation: gasnet, procs-per-node: 1, procsPerNode: 1}',
      ],
      [
        'flow.yaml:7:25: jobs.j.image.decryptionSecret: invalid secret reference "key"\n  hint: secrets are references like secret://user/NAME',
        'flow.yaml:8:16: jobs.j.image.secrets: expected a mapping of secret kind to secret, got a list',
        'flow.yaml:9:43: jobs.j.multinode.implementation: implementation "generic" is not supported by Warren yet\n  hint: use implementation: openmpi or implementation: mpich, whose launchers Warren runs',
        'flow.yaml:9:66: jobs.j.multinode.procsPerNode: 0 is out of range: expected an integer from 1 to 2,147,483,647\n  hint: write a whole number from 1 to 2,147,483,647 in decimal digits (limits: docs/workflow-format.md#limits)',
        'flow.yaml:11:22: jobs.j.resource.cpu.sockets: 0 is out of range: expected an integer from 1 to 2,147,483,647\n  hint: write a whole number from 1 to 2,147,483,647 in decimal digits (limits: docs/workflow-format.md#limits)',
        'flow.yaml:12:28: jobs.j.resource.memory.byCore: "by-core" and "byCore" are the same setting\n  hint: keep one of them (Warren reads both spellings: "by-core" is the YAML one)',
        'flow.yaml:13:24: jobs.j.resource.annotations.a: expected a string, got a mapping',
        'flow.yaml:14:28: jobs.j.network.expose-tcp[0]: port 0 is out of range\n  hint: a port is a whole number from 1 to 65535',
        'flow.yaml:14:32: jobs.j.network.exposeUdp: "expose-udp" and "exposeUdp" are the same setting\n  hint: keep one of them (Warren reads both spellings: "expose-udp" is the YAML one)',
        'flow.yaml:16:32: jobs.j.depends-on[0].description: expected a string, got a number (3)',
        'flow.yaml:19:43: jobs.k.multinode.implementation: implementation "gasnet" is not supported by Warren yet\n  hint: use implementation: openmpi or implementation: mpich (GASNet programs built on an MPI conduit run with those)',
        'flow.yaml:19:70: jobs.k.multinode.procsPerNode: "procs-per-node" and "procsPerNode" are the same setting\n  hint: keep one of them (Warren reads both spellings: "procs-per-node" is the YAML one)',
      ],
    );
  });

  test('keys with nothing after them are empty lists and mappings', () => {
    const wf = parseOk('version: v4\nvolumes:\nfiles:\nannotations:\ndefaults:\njobs:\n  j:\n    command: [x]\n    env:\n    args:\n    mounts:\n    files:\n    depends-on:\n    resource: {devices:}\n');
    const j = wf.jobs.j!;
    assert.deepEqual([j.env, j.args, j.mounts, j.files, j.requires, j.resources.devices, wf.volumes], [{}, [], [], undefined, [], {}, {}]);
  });
});

describe('annotations for display', () => {
  test('workflowAnnotations lists every annotation with where it was written; Warren acts on none', () => {
    assert.deepEqual(workflowAnnotations(fixture('notebook-service.yaml')), [
      { where: 'annotations', key: 'fuzzball.io/connect/notebook', value: 'echo connect', actedOn: false },
      { where: 'services.notebook.resource.annotations', owner: 'notebook', key: 'nvidia.com/gpu.model', value: 'A100', actedOn: false },
    ]);
    assert.deepEqual(
      workflowAnnotations(fixture('pipeline-v4.yaml')).map((a) => `${a.where} ${a.key}=${a.value}`),
      ['jobs.align.resource.annotations zone=a', 'jobs.render.annotations owner=team-a', 'jobs.render.resource.annotations zone=a', 'volumes.results.annotations tier=fast'],
    );
  });
});

/** Every Fuzzfile under `dir` (.yaml, .yml, .fz). */
function fuzzfiles(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir).sort()) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...fuzzfiles(p));
    else if (/\.(ya?ml|fz)$/.test(n)) out.push(p);
  }
  return out;
}

describe("Fuzzball's public examples (../shared/fuzzball-examples)", () => {
  const dir = join(sharedDir, 'fuzzball-examples');
  const skip = existsSync(dir) ? false : `${dir} is not there (third-party test data beside the repository)`;

  test('every file validates with no diagnostics, and the JSON Schema accepts it', { skip }, () => {
    const files = fuzzfiles(dir);
    assert.equal(files.length, 10);
    const validate = new Ajv({ allErrors: true }).compile(workflowJsonSchema());
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      const { workflow, diagnostics } = parseWorkflowText(text, f);
      assert.deepEqual(diagnostics.map(formatDiagnostic), [], f);
      assert.ok(workflow, f);
      assert.ok(validate(load(text)), `${f}: ${JSON.stringify(validate.errors)}`);
    }
  });
});

describe('JSON Schema agrees with the reader on the new keys', () => {
  const validate = new Ajv({ allErrors: true }).compile(workflowJsonSchema());

  test('accepts every fixture', () => {
    for (const f of readdirSync(fixtures).filter((n) => n.endsWith('.yaml'))) {
      assert.ok(validate(load(readFileSync(join(fixtures, f), 'utf8'))), `${f}: ${JSON.stringify(validate.errors)}`);
    }
  });

  test('valid and invalid documents', () => {
    const svc = (extra: object): object => ({ version: 'v4', services: { s: { command: ['x'], ...extra } } });
    const cases: [unknown, boolean][] = [
      [svc({}), true],
      [svc({ network: { ports: [{ name: 'web', port: 80 }], endpoints: [{ name: 'e', 'port-name': 'web', protocol: 'HTTP', type: 'path', scope: 'public' }] }, persist: true }), true],
      [svc({ 'readiness-probe': { 'http-get': { port: 80, path: '/', scheme: 'https', 'http-headers': [{ name: 'A', value: 'b' }] }, 'period-seconds': 3 } }), true],
      [svc({ 'readiness-probe': { 'tcp-socket': { port: 80 }, exec: { command: ['x'] } } }), false],
      [svc({ 'readiness-probe': { 'period-seconds': 3 } }), false],
      [svc({ network: { ports: [{ name: 'web', port: 70000 }] } }), false],
      [svc({ network: { isolated: true } }), false],
      [svc({ 'task-array': { start: 0, end: 1 } }), false],
      [{ version: 'v1', services: { s: { command: ['x'] } }, jobs: { a: { command: ['x'], 'depends-on': ['s'], requires: [] } } }, true],
      [{ version: 'v4', jobs: { a: { command: ['x'], persist: true } } }, false],
      [{ version: 'v4', volumes: { a: { use: 'ephemeral', size: '1GiB' }, b: { name: 'keep', annotations: { t: 'x' } } }, jobs: { a: { command: ['x'], mounts: { '/a': 'a', '/b': { volume: 'b' } } } } }, true],
      [{ version: 'v4', volumes: { a: { use: 'ephemeral', reference: 'volume://user/ephemeral' } }, jobs: { a: { command: ['x'] } } }, false],
      [{ version: 'v1', volumes: { a: { use: 'ephemeral' } }, jobs: { a: { command: ['x'] } } }, false],
      [{ version: 'v1', volumes: { a: { reference: 'volume://group/persistent/x' }, b: { type: 'EPHEMERAL' } }, jobs: { a: { command: ['x'] } } }, true],
      [{ version: 'v1', files: { 'a.txt': 'x' }, jobs: { a: { command: ['x'], files: { '/a.txt': 'file://a.txt' }, annotations: { k: 'v' }, description: 'd', name: 'a' } } }, true],
      [{ version: 'v1', jobs: { a: { command: ['x'], files: { 'a.txt': 'x' } } } }, false],
      [{ version: 'v1', jobs: { a: { command: ['x'], env: null, image: { uri: 'docker://x', secrets: { u: 'v' }, decryptionSecret: 'secret://user/k' } } } }, true],
      [{ version: 'v1', jobs: { a: { command: ['x'], multinode: { nodes: 2, 'procs-per-node': 2, procsPerNode: 2 } } } }, false],
      [{ version: 'v1', jobs: { a: { command: ['x'], resource: { cpu: { sockets: 1 }, annotations: { a: 'b' } }, network: { isolated: true, 'expose-tcp': [80] } } } }, true],
      [{ version: 'v1', jobs: { a: { command: ['x'], policy: { retry: { attempts: 2 }, timeout: { execute: '1h' } } } } }, true],
    ];
    for (const [doc, expected] of cases) {
      assert.equal(validate(doc), expected, `${JSON.stringify(doc)}: ${JSON.stringify(validate.errors)}`);
      const text = JSON.stringify(doc);
      const errors = parseWorkflowText(text, 'x.json').diagnostics.filter((d) => d.severity === 'error');
      assert.equal(errors.length === 0, expected, `${text}: ${errors.map(formatDiagnostic).join('\n')}`);
    }
  });
});

test('status FINISHED is success, as in Fuzzball; ENDED is either way', () => {
  const text = ['version: v4', 'jobs:', '  a: {command: [x]}', '  b: {command: [x], depends-on: [{name: a, status: FINISHED}]}', '  c: {command: [x], depends-on: [{name: a, status: ended}]}', ''].join('\n');
  const { workflow, diagnostics } = parseWorkflowText(text, 'flow.yaml');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(workflow!.jobs.b!.requires, [{ job: 'a', condition: 'succeeded' }]);
  assert.deepEqual(workflow!.jobs.c!.requires, [{ job: 'a', condition: 'finished' }]);
});
