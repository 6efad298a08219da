// Services at run time, end to end on the embedded default: a service with an HTTP readiness
// probe (busybox httpd) that a job waits for (RUNNING) and fetches from with the variables it
// is given; `warren status` showing it ready with its endpoint; `warren port-forward` reaching
// it from the host (and its errors); a probe that never passes; a workflow of services only,
// canceled; `persist`; the same in containers (NAME.svc) where runc works.
//
// The Fuzzfile keys of services' network, readiness-probe and persist are parsed by the
// workflow subsystem; these tests build the workflow model themselves (test/cli/fixtures/
// run-model.ts runs it as `warren run` would) and drive everything else through the real CLI.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tempDir, warrenBin, repoRoot, freePort, httpGet } from '../helpers.js';
import { job, wf } from '../engine/builders.js';
import type { JobSpec, ReadinessProbe, ServiceSpec, Workflow } from '../../src/workflow/types.js';
import { makeBusyboxRootfs } from '../runtime/container/fixtures.js';

const BUSYBOX = '/bin/busybox';
const runModel = join(repoRoot, 'dist', 'test', 'cli', 'fixtures', 'run-model.js');

interface Res { code: number | null; stdout: string; stderr: string }



const probe = (port: number, o: Partial<ReadinessProbe> = {}): ReadinessProbe => ({ action: { kind: 'http', path: '/', port, scheme: 'HTTP', headers: [] }, initialDelaySec: 0, periodSec: 0.2, timeoutSec: 1, successThreshold: 1, failureThreshold: 150, ...o });
const svc = (port: number, o: Partial<ServiceSpec> = {}): ServiceSpec => ({
  ports: [{ name: 'http', port, protocol: 'tcp' }],
  endpoints: [{ name: 'web', portName: 'http', protocol: 'http', type: 'subdomain', scope: 'user' }],
  persist: false,
  probe: probe(port),
  ...o,
});
const service = (name: string, extra: Partial<JobSpec>): JobSpec => job(name, { service: true, ...extra });

describe('services at run time (embedded)', { skip: existsSync(BUSYBOX) ? false : 'needs /bin/busybox (scripts/setup.sh installs busybox-static)' }, () => {
  const t = tempDir('warren-svc-cli-');
  const home = join(t.dir, 'home');
  const env = { ...process.env, WARREN_HOME: home };
  const children = new Set<ChildProcess>();
  const warren = (args: string[]): Res => {
    const r = spawnSync('node', [warrenBin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  /** Start a model run in the background: its id, and its end (exit code, output). */
  const start = async (model: Workflow): Promise<{ id: string; child: ChildProcess; end: Promise<Res> }> => {
    const file = join(t.dir, `model-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(model));
    const child = spawn('node', [runModel, file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    const end = new Promise<Res>((resolve) => child.on('exit', (code) => (children.delete(child), resolve({ code, stdout, stderr }))));
    const t0 = Date.now();
    while (!/"id":"([^"]+)"/.test(stdout)) {
      if (child.exitCode !== null || Date.now() - t0 > 30_000) throw new Error(`the run did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { id: /"id":"([^"]+)"/.exec(stdout)![1]!, child, end };
  };
  const untilStatus = async (id: string, ok: (out: string) => boolean, what: string, ms = 30_000): Promise<string> => {
    const t0 = Date.now();
    for (;;) {
      const r = warren(['status', id]);
      if (ok(r.stdout)) return r.stdout;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}:\n${r.stdout}${r.stderr}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  };

  let www = '';
  before(() => {
    www = join(t.dir, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, 'index.html'), 'hello from the web service\n');
  });
  after(() => {
    for (const c of children) c.kill('SIGKILL');
    t.cleanup();
  });

  test('a service with an HTTP probe; a job waits for RUNNING and fetches from it with its variables; status shows it ready; port-forward reaches it', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const mark = join(t.dir, 'done-forwarding');
    const model = wf(
      [
        // It listens only after a while: the probe is refused first.
        service('web', { command: ['/bin/sh', '-c', `sleep 0.5; exec ${BUSYBOX} httpd -f -p 127.0.0.1:${port} -h ${www}`], serviceSpec: svc(port) }),
        job('fetch', {
          requires: [{ job: 'web', condition: 'running' }],
          script: `#!/bin/sh\nset -e\n${BUSYBOX} wget -q -O - "\${FB_ENDPOINT_URL_WEB}index.html"\necho "host=$WARREN_SERVICE_WEB_HOST port=$WARREN_SERVICE_WEB_PORT url=$WARREN_SERVICE_WEB_URL wf=$FB_WORKFLOW_ID job=$FB_JOB_NAME"\ni=0; while [ ! -e ${mark} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n`,
        }),
      ],
      { dialect: 'v4', name: 'svc' },
    );
    const run = await start(model);
    const status = await untilStatus(run.id, (o) => /fetch\s+running/.test(o), 'the job to run');
    assert.match(status, new RegExp(`services:\\n    web\\s+ready\\s+at 127\\.0\\.0\\.1 \\(node [^)]+\\); probe http-get http://127\\.0\\.0\\.1:${port}/\\n      endpoint web\\s+http://127\\.0\\.0\\.1:${port}/\\n      port     http\\s+${port}/tcp  \\(\`warren port-forward ${run.id} web ${port}\`\\)`));
    const json = JSON.parse(warren(['status', run.id, '--json']).stdout);
    assert.deepEqual(json.services, [
      {
        name: 'web',
        state: 'ready',
        node: json.services[0].node,
        host: '127.0.0.1',
        persist: false,
        probe: `http-get http://127.0.0.1:${port}/`,
        ports: [{ name: 'http', port, protocol: 'tcp' }],
        endpoints: [{ name: 'web', port, protocol: 'http', type: 'subdomain', url: `http://127.0.0.1:${port}/` }],
      },
    ]);

    // warren port-forward ID web 0:PORT: a free local port, printed; the service's page through it.
    const pf = spawn('node', [warrenBin, 'port-forward', run.id, 'web', `0:${port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(pf);
    let pfOut = '';
    let pfErr = '';
    pf.stdout!.on('data', (c) => (pfOut += c));
    pf.stderr!.on('data', (c) => (pfErr += c));
    const t0 = Date.now();
    while (!/Forwarding from 127\.0\.0\.1:(\d+) -> web:/.test(pfOut)) {
      if (pf.exitCode !== null || Date.now() - t0 > 30_000) throw new Error(`port-forward did not start: ${pfOut}${pfErr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(pfOut, `Forwarding from 127.0.0.1:${/127\.0\.0\.1:(\d+)/.exec(pfOut)![1]} -> web:${port}\n`);
    const local = Number(/127\.0\.0\.1:(\d+)/.exec(pfOut)![1]);
    assert.notEqual(local, port);
    for (let i = 0; i < 3; i++) assert.deepEqual(await httpGet(`http://127.0.0.1:${local}/index.html`), { status: 200, body: 'hello from the web service\n' });
    const pfEnd = new Promise<number | null>((r) => pf.on('exit', (c) => (children.delete(pf), r(c))));
    pf.kill('SIGINT');
    assert.equal(await pfEnd, 0, pfErr);

    // Its errors, each with its code and exit 2.
    const unknown = warren(['port-forward', run.id, 'webs', String(port)]);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, `error[SERVICE_UNKNOWN]: workflow ${run.id} has no service "webs"\n  hint: did you mean "web"?\n`);
    const isJob = warren(['port-forward', run.id, 'fetch', String(port)]);
    assert.equal(isJob.stderr.split('\n')[0], `error[SERVICE_UNKNOWN]: workflow ${run.id} has no service "fetch" (it is a job)`);
    const undeclared = warren(['port-forward', run.id, 'web', '22']);
    assert.equal(undeclared.code, 2);
    assert.equal(undeclared.stderr, `error[SERVICE_PORT_UNDECLARED]: service web does not declare port 22 (its ports: ${port})\n  hint: forward one of its ports, e.g. \`warren port-forward ${run.id} web ${port}\`\n`);
    const badSpec = warren(['port-forward', run.id, 'web', '80:http']);
    assert.equal(badSpec.code, 2);
    assert.match(badSpec.stderr, /^error\[CLI_BAD_OPTION\]: "80:http" is not \[LOCAL:\]PORT/);
    const noWf = warren(['port-forward', 'nosuchworkflow', 'web', String(port)]);
    assert.equal(noWf.code, 2);
    assert.match(noWf.stderr, /^error\[RUN_NOT_FOUND\]: no workflow "nosuchworkflow"/);
    // The local port in use: a clear refusal.
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const busyPort = (busy.address() as AddressInfo).port;
    const inUse = warren(['port-forward', run.id, 'web', `${busyPort}:${port}`]);
    busy.close();
    assert.equal(inUse.code, 2);
    assert.equal(inUse.stderr.split('\n')[0], `error[SERVICE_LOCAL_PORT_UNAVAILABLE]: cannot listen on 127.0.0.1:${busyPort}: the port is in use`);

    writeFileSync(mark, '');
    const end = await run.end;
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, new RegExp(`info: service web is ready: endpoint web http://127\\.0\\.0\\.1:${port}/ \\(readiness probe http-get http://127\\.0\\.0\\.1:${port}/ passed: HTTP 200\\)`));
    const log = warren(['logs', run.id, 'fetch']).stdout;
    assert.equal(log, `hello from the web service\nhost=127.0.0.1 port=${port} url=http://127.0.0.1:${port}/ wf=${run.id} job=fetch\n`);
    // The service was stopped when the job was done: forwarding to it now is refused.
    const after = warren(['port-forward', run.id, 'web', String(port)]);
    assert.equal(after.code, 2);
    assert.match(after.stderr, new RegExp(`^error\\[SERVICE_NOT_RUNNING\\]: service web of workflow ${run.id} is not running \\(it is succeeded; the workflow succeeded\\)`));
  });

  test('a probe that never passes: the service fails with the probe\'s last result, the job that needed it does not run, the workflow fails (exit 1)', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const ran = join(t.dir, 'client-ran');
    const model = wf(
      [
        service('web', { command: ['/bin/sleep', '60'], serviceSpec: svc(port, { probe: probe(port, { initialDelaySec: 0.3, periodSec: 0.2, failureThreshold: 3 }) }) }),
        job('client', { requires: [{ job: 'web', condition: 'running' }], command: ['/bin/touch', ran] }),
      ],
      { dialect: 'v4', name: 'never' },
    );
    const run = await start(model);
    const end = await run.end;
    assert.equal(end.code, 1, end.stderr);
    const last = `readiness probe http-get http://127.0.0.1:${port}/ failed 3 times: connection refused`;
    assert.match(end.stderr, new RegExp(`error: service web failed \\(never ready\\): ${last.replace(/[.()/]/g, '\\$&')}`));
    assert.ok(!existsSync(ran), 'the job that needed it never ran');
    const st = warren(['status', run.id]);
    assert.match(st.stdout, /web\s+failed\s+attempts 1  not-ready: readiness probe http-get .* failed 3 times: connection refused/);
    assert.match(st.stdout, /client\s+skipped\s+attempts 0  dependency: requirement "web" failed \(needed: running\)/);
    assert.match(st.stdout, /services:\n    web\s+failed/);
  });

  test('a workflow of services only runs until `warren cancel` (exit 130); one that persists outlives its jobs', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const only = wf([service('web', { command: [BUSYBOX, 'httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', www], serviceSpec: svc(port) })], { dialect: 'v4', name: 'only' });
    const run = await start(only);
    await untilStatus(run.id, (o) => /web\s+ready/.test(o), 'the service to be ready');
    assert.match(warren(['status', run.id]).stdout, /web\s+ready\s+at 127\.0\.0\.1 \(node [^)]+\), persists/);
    assert.deepEqual(await httpGet(`http://127.0.0.1:${port}/index.html`), { status: 200, body: 'hello from the web service\n' });
    const c = warren(['cancel', run.id]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stderr, `workflow ${run.id} canceled\n`);
    const end = await run.end;
    assert.equal(end.code, 130, end.stderr);

    // persist: true with a job that needed it: the job ends, the service keeps serving until canceled.
    const port2 = await freePort();
    const kept = wf(
      [
        service('web', { command: [BUSYBOX, 'httpd', '-f', '-p', `127.0.0.1:${port2}`, '-h', www], serviceSpec: svc(port2, { persist: true }) }),
        job('quick', { requires: [{ job: 'web', condition: 'running' }], command: ['/bin/true'] }),
      ],
      { dialect: 'v4', name: 'kept' },
    );
    const r2 = await start(kept);
    await untilStatus(r2.id, (o) => /quick\s+succeeded/.test(o), 'the job to end');
    await new Promise((r) => setTimeout(r, 500));
    const st = warren(['status', r2.id]).stdout;
    assert.match(st, new RegExp(`workflow ${r2.id} \\(kept\\) running`));
    assert.match(st, /web\s+running/);
    assert.deepEqual(await httpGet(`http://127.0.0.1:${port2}/index.html`), { status: 200, body: 'hello from the web service\n' });
    r2.child.kill('SIGINT');
    assert.equal((await r2.end).code, 130);
  });

  test('the timeout of a workflow of services only is its planned end: it succeeds (exit 0)', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const model = wf([service('web', { command: [BUSYBOX, 'httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', www], serviceSpec: svc(port) })], { dialect: 'v4', name: 'timed', policy: { timeoutSec: 2 } });
    const run = await start(model);
    const end = await run.end;
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, /info: workflow timeout reached \(policy\.timeout 2s\): stopping its services \(their planned end\)/);
    assert.match(warren(['status', run.id]).stdout, /web\s+succeeded/);
  });

  test('`warren run` of a Fuzzfile with a service (no probe): it prints the service ready, and a job reaches it with WARREN_SERVICE_<NAME>_HOST', { timeout: 60_000 }, () => {
    const f = join(t.dir, 'plain.yaml');
    writeFileSync(
      f,
      `version: v4
services:
  db:
    command: [/bin/sleep, "60"]
jobs:
  use:
    command: [/bin/sh, -c, 'echo "db at $WARREN_SERVICE_DB_HOST for $FB_WORKFLOW_ID/$WARREN_JOB_NAME"']
    depends-on:
      - name: db
        status: RUNNING
`,
    );
    const r = warren(['run', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\nservice db is ready\n/);
    const id = /workflow (\S+) succeeded/.exec(r.stderr)![1]!;
    assert.equal(warren(['logs', id, 'use']).stdout, `db at 127.0.0.1 for ${id}/use\n`);
  });
});

const runcWorks = (): boolean => process.getuid?.() === 0 && spawnSync('runc', ['--version']).status === 0;

describe('services in containers', { skip: existsSync(BUSYBOX) && runcWorks() ? false : 'needs busybox, runc and root' }, () => {
  const t = tempDir('warren-svc-ctr-');
  const home = join(t.dir, 'home');
  const env = { ...process.env, WARREN_HOME: home };
  after(t.cleanup);

  test('a service in a container is probed and ready; a job in a container reaches it as NAME.svc; its inline files are there', { timeout: 120_000 }, async () => {
    const rootfs = makeBusyboxRootfs(join(t.dir, 'rootfs'));
    mkdirSync(join(rootfs, 'www'));
    writeFileSync(join(rootfs, 'www', 'index.html'), 'hello from a container\n');
    const port = await freePort();
    const model = wf(
      [
        service('web', { image: { uri: rootfs }, command: ['/bin/httpd', '-f', '-p', `0.0.0.0:${port}`, '-h', '/www'], serviceSpec: svc(port) }),
        job('fetch', {
          image: { uri: rootfs },
          requires: [{ job: 'web', condition: 'running' }],
          files: { '/etc/fetch/target': `web.svc:${port}` },
          command: ['/bin/sh', '-c', 'wget -q -O - "http://$(cat /etc/fetch/target)/index.html"; grep -c "web.svc" /etc/hosts; echo "$FB_ENDPOINT_URL_WEB"'],
        }),
      ],
      { dialect: 'v4', name: 'ctr' },
    );
    const file = join(t.dir, 'model.json');
    writeFileSync(file, JSON.stringify(model));
    const r = spawnSync('node', [runModel, file], { env, encoding: 'utf8', timeout: 100_000 });
    assert.equal(r.status, 0, r.stderr);
    const id = /"id":"([^"]+)"/.exec(r.stdout)![1]!;
    const log = spawnSync('node', [warrenBin, 'logs', id, 'fetch'], { env, encoding: 'utf8' });
    assert.equal(log.stdout, `hello from a container\n1\nhttp://127.0.0.1:${port}/\n`);
  });
});
