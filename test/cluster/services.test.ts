// Services on a cluster, with the real CLI: `warren server` and two `warren agent`s on
// loopback. The readiness probe runs on the service's node and its `ready` comes to the server
// (agent protocol 1.5); a job that needs the service RUNNING waits for it and reaches it with its
// variables (on whichever node it runs); `warren status` through the server shows the endpoint
// at the node's address; `warren port-forward` reaches the service through the server and the
// node's agent (a tunnel over mutual TLS).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { warrenBin, httpGet } from '../helpers.js';
import { TestCluster } from './harness.js';

const BUSYBOX = '/bin/busybox';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '0.0.0.0', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}


describe('services on a cluster', { skip: existsSync(BUSYBOX) ? false : 'needs /bin/busybox' }, () => {
  let c: TestCluster;
  before(async () => {
    c = await TestCluster.start({ agents: 2, cores: 2 });
  });
  after(async () => {
    await c?.close();
  });

  test('the ready report of a remote agent releases the job; status shows the endpoint; port-forward goes through the server to the node', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const www = join(c.dir, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, 'index.html'), 'from a cluster node\n');
    const mark = join(c.dir, 'forwarded');
    const flow = join(c.dir, 'svc.yaml');
    writeFileSync(
      flow,
      `version: v4
services:
  web:
    command: [/bin/sh, -c, 'sleep 1; exec ${BUSYBOX} httpd -f -p ${port} -h ${www}']
    network:
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
    readiness-probe:
      http-get:
        path: /index.html
        port: ${port}
      period-seconds: 1
      failure-threshold: 30
jobs:
  fetch:
    script: |
      #!/bin/sh
      set -e
      ${BUSYBOX} wget -q -O - "\${FB_ENDPOINT_URL_WEB}index.html"
      echo "on $WARREN_NODE, web at $WARREN_SERVICE_WEB_HOST:$WARREN_SERVICE_WEB_PORT"
      i=0; while [ ! -e ${mark} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
    depends-on:
      - name: web
        status: RUNNING
`,
    );
    const sub = await c.cli(['run', flow, '--detach']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    type Svc = { name: string; state: string; node: string | null; host: string | null; endpoints: { name: string; url: string | null }[] };
    const st = await c.until(
      'the service ready and the job running',
      () => c.json<{ services: Svc[]; jobs: { name: string; status: string }[] }>(['status', id]),
      (s) => s.services?.[0]?.state === 'ready' && s.jobs.some((j) => j.name === 'fetch' && j.status === 'running'),
    );
    const web = st.services[0]!;
    assert.match(web.node!, /^n[12]$/);
    assert.ok(web.host && web.host !== '', 'the node\'s address');
    assert.deepEqual(web.endpoints, [{ name: 'web', port, protocol: 'http', type: 'subdomain', url: `http://${web.host}:${port}/` }]);
    const text = await c.cli(['status', id]);
    assert.match(text.stdout, new RegExp(`web\\s+ready\\s+at ${web.host!.replace(/\./g, '\\.')} \\(node ${web.node}\\)`));

    // Through the server: the node's agent opens the tunnel.
    const pf = spawn(process.execPath, [warrenBin, 'port-forward', id, 'web', `0:${port}`], { env: c.env({ WARREN_CONTEXT: 'admin' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    pf.stdout!.on('data', (d) => (out += d));
    pf.stderr!.on('data', (d) => (err += d));
    try {
      const t0 = Date.now();
      while (!/Forwarding from 127\.0\.0\.1:(\d+)/.test(out)) {
        if (pf.exitCode !== null || Date.now() - t0 > 30_000) throw new Error(`port-forward did not start: ${out}${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const local = Number(/127\.0\.0\.1:(\d+)/.exec(out)![1]);
      assert.deepEqual(await httpGet(`http://127.0.0.1:${local}/index.html`), { status: 200, body: 'from a cluster node\n' });
      assert.deepEqual(await httpGet(`http://127.0.0.1:${local}/index.html`), { status: 200, body: 'from a cluster node\n' });
    } finally {
      const end = new Promise((r) => pf.on('exit', r));
      pf.kill('SIGINT');
      await end;
    }
    const bad = await c.cli(['port-forward', id, 'web', '22']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr.split('\n')[0], `error[SERVICE_PORT_UNDECLARED]: service web does not declare port 22 (its ports: ${port})`);

    writeFileSync(mark, '');
    const done = await c.until('the end', () => c.json<{ status: string }>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending');
    assert.equal(done.status, 'succeeded');
    const log = await c.cli(['logs', id, 'fetch']);
    assert.match(log.stdout, new RegExp(`^from a cluster node\\non n[12], web at (127\\.0\\.0\\.1|${web.host!.replace(/\./g, '\\.')}):${port}\\n$`));
    // Stopped with the job's end: no more forwarding.
    const gone = await c.cli(['port-forward', id, 'web', String(port)]);
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /^error\[SERVICE_NOT_RUNNING\]: service web of workflow \S+ is not running \(it is succeeded; the workflow succeeded\)/);
  });
});
