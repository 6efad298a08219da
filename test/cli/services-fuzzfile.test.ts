// Services written as Fuzzfiles (network, readiness-probe, persist, a workflow of services only)
// through `warren run` itself: its output and exit codes.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, warrenBin, freePort } from '../helpers.js';

const BUSYBOX = '/bin/busybox';


const network = (port: number): string => `    network:
      ports:
        - name: http
          port: ${port}
          protocol: tcp
      endpoints:
        - name: web
          port-name: http
          protocol: http
          type: subdomain
          scope: user
`;

describe('services in Fuzzfiles, through `warren run`', { skip: existsSync(BUSYBOX) ? false : 'needs /bin/busybox' }, () => {
  const t = tempDir('warren-svc-ff-');
  const env = { ...process.env, WARREN_HOME: join(t.dir, 'home') };
  const www = join(t.dir, 'www');
  mkdirSync(www);
  writeFileSync(join(www, 'index.html'), 'served\n');
  after(t.cleanup);
  const file = (name: string, text: string): string => {
    const f = join(t.dir, name);
    writeFileSync(f, text);
    return f;
  };
  const warren = (args: string[]) => spawnSync('node', [warrenBin, ...args], { env, encoding: 'utf8', timeout: 90_000 });

  test('a service with an HTTP readiness probe and a job that fetches from it: the endpoint is printed when it is ready; exit 0', { timeout: 90_000 }, async () => {
    const port = await freePort();
    const f = file(
      'ok.yaml',
      `version: v4
services:
  web:
    command: [/bin/sh, -c, 'sleep 1; exec ${BUSYBOX} httpd -f -p 127.0.0.1:${port} -h ${www}']
${network(port)}    readiness-probe:
      http-get:
        path: /index.html
        port: ${port}
      period-seconds: 1
      failure-threshold: 30
jobs:
  fetch:
    command: [/bin/sh, -c, '${BUSYBOX} wget -q -O - "\${FB_ENDPOINT_URL_WEB}index.html"']
    depends-on:
      - name: web
        status: RUNNING
`,
    );
    const r = warren(['run', f]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`\\nservice web is ready: endpoint web http://127\\.0\\.0\\.1:${port}/ \\(readiness probe http-get http://127\\.0\\.0\\.1:${port}/index\\.html passed: HTTP 200\\)\\n`));
    const id = /workflow (\S+) succeeded/.exec(r.stderr)![1]!;
    assert.equal(warren(['logs', id, 'fetch']).stdout, 'served\n');
  });

  test('a probe that never passes: a clear failure with its last result, the job that needed it is skipped, exit 1', { timeout: 90_000 }, async () => {
    const port = await freePort();
    const f = file(
      'never.yaml',
      `version: v4
services:
  web:
    command: [/bin/sleep, "60"]
${network(port)}    readiness-probe:
      http-get:
        path: /
        port: ${port}
      period-seconds: 1
      failure-threshold: 2
jobs:
  client:
    command: [/bin/true]
    depends-on:
      - name: web
        status: RUNNING
`,
    );
    const r = warren(['run', f]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`✗ service web failed \\(never ready, attempt 1\\): readiness probe http-get http://127\\.0\\.0\\.1:${port}/ failed 2 times: connection refused\\n`));
    assert.match(r.stderr, /- client skipped/);
    assert.match(r.stderr, /workflow \S+ failed: 1 failed, 1 skipped/);
  });

  test('a workflow made only of services runs until `warren cancel` (exit 130); with a timeout it ends there and succeeds', { timeout: 90_000 }, async () => {
    const port = await freePort();
    const f = file('only.yaml', `version: v4\nservices:\n  web:\n    command: [${BUSYBOX}, httpd, -f, -p, "127.0.0.1:${port}", -h, ${www}]\n${network(port)}`);
    const run = spawn('node', [warrenBin, 'run', f], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    run.stderr!.on('data', (c) => (err += c));
    const exited = new Promise<number | null>((r) => run.on('exit', (c) => r(c)));
    const t0 = Date.now();
    while (!/service web is ready/.test(err)) {
      if (run.exitCode !== null || Date.now() - t0 > 30_000) {
        run.kill('SIGKILL');
        throw new Error(`not ready: ${err}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const id = /workflow (\S+):/.exec(err)![1]!;
    const c = warren(['cancel', id]);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(await exited, 130, err);

    const timed = file('timed.yaml', `version: v4\npolicy:\n  timeout: 2s\nservices:\n  web:\n    command: [/bin/sleep, "60"]\n    persist: true\n`);
    const r = warren(['run', timed]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /workflow timeout reached \(policy\.timeout 2s\): stopping its services \(their planned end\)/);
  });
});
