// Services from Fuzzfile text, through `warren run FILE` as a user types it (see also services-fuzzfile.test.ts): a service with
// network ports, an endpoint and an HTTP readiness probe (busybox httpd), a job that waits
// for RUNNING and fetches from it with FB_ENDPOINT_URL_WEB; the bad inputs the issue names
// (two services on one port: exit 2, nothing started; a probe that never passes: the probe's
// last result, dependents skipped, exit 1); a workflow of services only ends at its timeout.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, warrenBin, freePort } from '../helpers.js';

const BUSYBOX = '/bin/busybox';


describe('services from Fuzzfile text (warren run)', { skip: existsSync(BUSYBOX) ? false : 'needs /bin/busybox (scripts/setup.sh installs busybox-static)' }, () => {
  const t = tempDir('warren-svc-fz-');
  const home = join(t.dir, 'home');
  const warren = (args: string[]) => {
    const r = spawnSync(process.execPath, [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home }, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  after(() => t.cleanup());

  test('a service with a probe, a job that waits for RUNNING and fetches from its endpoint', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const www = join(t.dir, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, 'index.html'), 'served\n');
    const file = join(t.dir, 'web.yaml');
    writeFileSync(
      file,
      `version: v4
annotations: {team: bio}
services:
  web:
    resource:
      annotations: {gpu-model: none}
    # listens only after a while: the probe is refused first
    command: [/bin/sh, -c, "sleep 0.5; exec ${BUSYBOX} httpd -f -p 127.0.0.1:${port} -h ${www}"]
    network:
      ports:
        - {name: http, port: ${port}, protocol: tcp}
      endpoints:
        - {name: web, port-name: http, protocol: http, type: subdomain, scope: user}
    readiness-probe:
      http-get: {path: /, port: http, scheme: HTTP}
      period-seconds: 1
      failure-threshold: 30
jobs:
  fetch:
    annotations: {note: reads the page}
    depends-on:
      - {name: web, status: RUNNING, description: the page is served}
    script: |
      #!/bin/sh
      set -e
      ${BUSYBOX} wget -q -O - "\${FB_ENDPOINT_URL_WEB}index.html"
`,
    );
    const r = warren(['run', '--json', file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    assert.equal(warren(['logs', id, 'fetch']).stdout, 'served\n');
    // Annotations: kept, shown by `warren status` (text and JSON), acted on by nobody.
    const st = warren(['status', id]);
    assert.match(st.stdout, /  annotations \(kept; Warren acts on none of them\):\n    team=bio\n    web: gpu-model=none\n    fetch: note=reads the page\n/, st.stdout);
    const js = JSON.parse(warren(['status', id, '--json']).stdout) as { annotations: unknown };
    assert.deepEqual(js.annotations, [
      { where: 'annotations', key: 'team', value: 'bio', actedOn: false },
      { where: 'services.web.resource.annotations', key: 'gpu-model', value: 'none', actedOn: false },
      { where: 'jobs.fetch.annotations', key: 'note', value: 'reads the page', actedOn: false },
    ]);
  });

  test('two services on one port: exit 2 with the position, nothing started', () => {
    const file = join(t.dir, 'two.yaml');
    writeFileSync(file, ['version: v4', 'services:', '  a:', '    command: [sleep, "100"]', '    network:', '      ports: [{name: http, port: 8080}]', '  b:', '    command: [sleep, "100"]', '    network:', '      ports: [{name: web, port: 8080}]', ''].join('\n'));
    const runsBefore = existsSync(join(home, 'runs')) ? readdirSync(join(home, 'runs')).length : 0;
    const r = warren(['run', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /two\.yaml:10:33: services\.b\.network\.ports\[0\]\.port: port 8080\/tcp is already used by service "a" \(services\.a\.network\.ports\[0\]\)/);
    assert.equal(existsSync(join(home, 'runs')) ? readdirSync(join(home, 'runs')).length : 0, runsBefore);
  });

  test('a probe that never passes: the probe\'s last result, the dependent skipped, exit 1', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const file = join(t.dir, 'never.yaml');
    writeFileSync(file, ['version: v4', 'services:', '  web:', '    command: [sleep, "100"]', '    network:', `      ports: [{name: http, port: ${port}}]`, '    readiness-probe:', '      tcp-socket: {port: http}', '      period-seconds: 1', '      failure-threshold: 2', 'jobs:', '  use:', '    depends-on: [{name: web, status: RUNNING}]', '    command: [echo, never]', ''].join('\n'));
    const r = warren(['run', file]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, new RegExp(`readiness probe tcp-socket 127\\.0\\.0\\.1:${port} failed 2 times: connection refused`));
    assert.match(r.stdout + r.stderr, /job use skipped: requirement "web" failed \(needed: running\)/);
  });

  test('a workflow of services only runs until its timeout (policy.timeout.execute), its planned end', { timeout: 60_000 }, () => {
    const file = join(t.dir, 'only.yaml');
    writeFileSync(file, ['version: v4', 'policy:', '  timeout: {execute: 2s}', 'services:', '  web:', '    command: [sleep, "100"]', ''].join('\n'));
    const t0 = Date.now();
    const r = warren(['run', file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(Date.now() - t0 >= 2000);
    assert.match(r.stdout + r.stderr, /workflow timeout reached \(policy\.timeout 2s\): stopping its services \(their planned end\)/);
  });
});
