// Services on a node agent: readiness probes (http-get, tcp-socket, exec, grpc) with their
// timing, the `ready` report, a probe that never passes, port forwarding to a service's
// declared ports, the variables jobs get about services, and jobs' inline files.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { createServer as createH2Server } from 'node:http2';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { job } from '../engine/builders.js';
import { LocalAgent, ProbeRunner, describeProbe, probeOnce, serviceEnv, type AttemptExited, type AttemptReady, type AttemptStarted } from '../../src/agent/index.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import type { ReadinessProbe, ServiceSpec } from '../../src/workflow/types.js';
import { tempDir, freePort } from '../helpers.js';
import { taskOf } from './contract.js';

const BUSYBOX = '/bin/busybox';


const probe = (action: ReadinessProbe['action'], o: Partial<ReadinessProbe> = {}): ReadinessProbe => ({ action, initialDelaySec: 0, periodSec: 0.1, timeoutSec: 1, successThreshold: 1, failureThreshold: 3, ...o });

async function listen(s: Server | ReturnType<typeof createH2Server>): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

describe('readiness probes, one at a time', () => {
  const servers: { close(): void }[] = [];
  after(() => servers.forEach((s) => s.close()));

  test('http-get: 200..399 passes, with the path and headers; another status fails with it; a closed port is "connection refused"', async () => {
    const seen: { url?: string; h?: string }[] = [];
    const s = createHttpServer((req, res) => {
      seen.push({ url: req.url!, h: req.headers['x-probe'] as string });
      res.statusCode = req.url === '/ok' ? 204 : req.url === '/moved' ? 302 : 503;
      res.end();
    });
    servers.push(s);
    const port = await listen(s);
    const http = (path: string) => probe({ kind: 'http', path, port, scheme: 'HTTP', headers: [{ name: 'X-Probe', value: 'yes' }] });
    assert.deepEqual(await probeOnce(http('/ok')), { ok: true, detail: 'HTTP 204' });
    assert.deepEqual(await probeOnce(http('/moved')), { ok: true, detail: 'HTTP 302' });
    assert.deepEqual(await probeOnce(http('/down')), { ok: false, detail: 'HTTP 503' });
    assert.deepEqual(seen[0], { url: '/ok', h: 'yes' });
    const closed = await freePort();
    assert.deepEqual(await probeOnce(probe({ kind: 'http', path: '/', port: closed, scheme: 'HTTP', headers: [] })), { ok: false, detail: 'connection refused' });
    assert.equal(describeProbe(http('/ok')), `http-get http://127.0.0.1:${port}/ok`);
  });

  test('http-get: a server that does not answer within timeoutSec: "timed out after 0.2s"', async () => {
    const s = createHttpServer(() => {
      /* never answers */
    });
    servers.push({
      close: () => {
        s.closeAllConnections();
        s.close();
      },
    });
    const port = await listen(s);
    assert.deepEqual(await probeOnce(probe({ kind: 'http', path: '/', port, scheme: 'HTTP', headers: [] }, { timeoutSec: 0.2 })), { ok: false, detail: 'timed out after 0.2s' });
  });

  test('tcp-socket: a listening port passes, a closed one is refused', async () => {
    const s = createTcpServer((c) => c.end());
    servers.push(s);
    const port = await listen(s as unknown as Server);
    assert.deepEqual(await probeOnce(probe({ kind: 'tcp', port })), { ok: true, detail: 'connected' });
    assert.deepEqual(await probeOnce(probe({ kind: 'tcp', port: await freePort() })), { ok: false, detail: 'connection refused' });
  });

  test('grpc: the health protocol over HTTP/2 (SERVING passes, NOT_SERVING fails, no health service: grpc-status 12)', async () => {
    let status = 1;
    let services: string[] = [];
    const s = createH2Server();
    s.on('stream', (st, h) => {
      let body = Buffer.alloc(0);
      st.on('data', (c: Buffer) => (body = Buffer.concat([body, c])));
      st.on('end', () => {
        if (h[':path'] !== '/grpc.health.v1.Health/Check') {
          st.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
          return;
        }
        // HealthCheckRequest: field 1 = service name.
        const msg = body.subarray(5);
        services.push(msg.length > 2 ? msg.subarray(2, 2 + msg[1]!).toString() : '');
        const reply = Buffer.from([0, 0, 0, 0, 2, 0x08, status]);
        st.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0' }));
        st.end(reply);
      });
    });
    servers.push(s);
    const port = await listen(s);
    assert.deepEqual(await probeOnce(probe({ kind: 'grpc', port, service: 'my.Svc' })), { ok: true, detail: 'SERVING' });
    assert.deepEqual(services, ['my.Svc']);
    status = 2;
    assert.deepEqual(await probeOnce(probe({ kind: 'grpc', port })), { ok: false, detail: 'NOT_SERVING' });
    services = [];
    const other = createH2Server();
    other.on('stream', (st) => st.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'unknown service' }, { endStream: true }));
    servers.push(other);
    const p2 = await listen(other);
    assert.deepEqual(await probeOnce(probe({ kind: 'grpc', port: p2 })), { ok: false, detail: 'grpc-status 12 (unknown service): the server has no health service' });
  });

  test('exec: exit 0 passes; another exit code fails with the last line of its output', async () => {
    const exec = async (argv: string[]) => (argv[0] === 'ok' ? { exitCode: 0, output: '' } : { exitCode: 3, output: 'first\nnot yet\n' });
    assert.deepEqual(await probeOnce(probe({ kind: 'exec', command: ['ok'] }), { exec }), { ok: true, detail: 'exit code 0' });
    assert.deepEqual(await probeOnce(probe({ kind: 'exec', command: ['no'] }), { exec }), { ok: false, detail: 'exit code 3: not yet' });
  });

  test('the runner: failureThreshold failures in a row fail it with the last result; successThreshold passes make it ready', async () => {
    const port = await freePort();
    const failed = await new Promise<string>((resolve) => {
      new ProbeRunner(probe({ kind: 'tcp', port }, { failureThreshold: 3 }), { onReady: () => resolve('ready?'), onFail: resolve }).start();
    });
    assert.equal(failed, `readiness probe tcp-socket 127.0.0.1:${port} failed 3 times: connection refused`);
    let calls = 0;
    const exec = async () => ({ exitCode: ++calls === 2 ? 1 : 0, output: '' });
    const ready = await new Promise<string>((resolve) => {
      new ProbeRunner(probe({ kind: 'exec', command: ['x'] }, { successThreshold: 2 }), { exec, onReady: resolve, onFail: resolve }).start();
    });
    // pass, fail (resets), pass, pass
    assert.equal(calls, 4);
    assert.equal(ready, 'readiness probe exec ["x"] passed: exit code 0');
  });
});

describe('the variables jobs get about services', () => {
  const spec: ServiceSpec = {
    ports: [{ name: 'web', port: 8080, protocol: 'tcp' }, { name: 'admin', port: 9000, protocol: 'tcp' }],
    endpoints: [
      { name: 'web', portName: 'web', protocol: 'https', type: 'subdomain', scope: 'user' },
      { name: 'lab', portName: 'admin', protocol: 'http', type: 'path', scope: 'user' },
    ],
    persist: false,
  };
  test('a job: each ready service\'s host, ports and endpoints (Fuzzball\'s names and Warren\'s twins)', () => {
    const env = serviceEnv(null, [{ name: 'my-web', host: '10.0.0.5', spec }]);
    assert.deepEqual(env, {
      WARREN_SERVICE_MY_WEB_HOST: '10.0.0.5',
      WARREN_SERVICE_MY_WEB_PORT: '8080',
      WARREN_SERVICE_MY_WEB_PORT_WEB: '8080',
      WARREN_SERVICE_MY_WEB_PORT_ADMIN: '9000',
      WARREN_SERVICE_MY_WEB_URL: 'http://10.0.0.5:8080/',
      FB_ENDPOINT_URL_WEB: 'http://10.0.0.5:8080/',
      WARREN_ENDPOINT_URL_WEB: 'http://10.0.0.5:8080/',
      FB_ENDPOINT_PATH_WEB: '/',
      WARREN_ENDPOINT_PATH_WEB: '/',
      FB_ENDPOINT_URL_LAB: 'http://10.0.0.5:9000/my-web/lab/',
      WARREN_ENDPOINT_URL_LAB: 'http://10.0.0.5:9000/my-web/lab/',
      FB_ENDPOINT_PATH_LAB: '/my-web/lab',
      WARREN_ENDPOINT_PATH_LAB: '/my-web/lab',
    });
  });
  test('a service: its own endpoints win over another\'s of the same name, and FB_ENDPOINT_PATH is its first endpoint\'s path', () => {
    const own: ServiceSpec = { ports: [{ name: 'p', port: 7000, protocol: 'tcp' }], endpoints: [{ name: 'web', portName: 'p', protocol: 'http', type: 'path', scope: 'user' }], persist: false };
    const env = serviceEnv({ name: 'files', spec: own, host: '127.0.0.1' }, [{ name: 'other', host: '127.0.0.1', spec }]);
    assert.equal(env.FB_ENDPOINT_URL_WEB, 'http://127.0.0.1:7000/files/web/');
    assert.equal(env.FB_ENDPOINT_PATH, '/files/web');
    assert.equal(env.WARREN_ENDPOINT_PATH, '/files/web');
    assert.equal(env.FB_ENDPOINT_URL_LAB, 'http://127.0.0.1:9000/other/lab/');
    assert.equal(env.WARREN_SERVICE_OTHER_HOST, '127.0.0.1');
  });
});

/** An agent whose reports are recorded, ready ones included. */
function recorded(agent: LocalAgent) {
  const started: AttemptStarted[] = [];
  const ready: AttemptReady[] = [];
  const exited = new Map<string, AttemptExited>();
  const waiters: (() => void)[] = [];
  const poke = () => waiters.splice(0).forEach((w) => w());
  agent.setListener({
    started: (e) => (started.push(e), poke()),
    exited: (e) => (exited.set(e.attemptId, e), poke()),
    ready: (e) => (ready.push(e), poke()),
  });
  const until = async (what: string, ok: () => boolean, ms = 20_000): Promise<void> => {
    const t0 = Date.now();
    while (!ok()) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };
  return { started, ready, exited, until };
}

describe('services on the local agent', { skip: existsSync(BUSYBOX) ? false : 'needs /bin/busybox (scripts/setup.sh installs busybox-static)' }, () => {
  test('a service with an http probe reports ready (with its host) once it answers; port forwarding reaches its declared ports only', { timeout: 60_000 }, async () => {
    const d = tempDir('warren-svc-');
    const agent = new LocalAgent({ name: 'n1', home: d.dir, cores: 2, process: createProcessRuntime(), serviceHost: '192.0.2.7' });
    const rec = recorded(agent);
    try {
      const port = await freePort();
      const www = join(d.dir, 'www');
      mkdirSync(www);
      writeFileSync(join(www, 'index.html'), 'hello from the service\n');
      // The service waits a little before it listens: the first probes are refused.
      const spec = job('web', {
        service: true,
        command: ['/bin/sh', '-c', `sleep 0.5; exec ${BUSYBOX} httpd -f -p 127.0.0.1:${port} -h ${www}`],
        serviceSpec: { ports: [{ name: 'http', port, protocol: 'tcp' }], endpoints: [], persist: false, probe: probe({ kind: 'http', path: '/', port, scheme: 'HTTP', headers: [] }, { failureThreshold: 100 }) },
      });
      const t = taskOf(spec);
      agent.submit(t);
      await rec.until('ready', () => rec.ready.length === 1);
      assert.equal(rec.ready[0]!.attemptId, t.attemptId);
      assert.equal(rec.ready[0]!.host, '192.0.2.7');
      assert.equal(rec.ready[0]!.message, `readiness probe http-get http://127.0.0.1:${port}/ passed: HTTP 200`);
      // Through connect(): an HTTP request over the stream.
      const s = await agent.connect(t.attemptId, port);
      s.write('GET /index.html HTTP/1.0\r\n\r\n');
      const reply = await new Promise<string>((r) => {
        let b = '';
        s.on('data', (c) => (b += c));
        s.on('end', () => r(b));
      });
      assert.match(reply, /^HTTP\/1\.[01] 200/);
      assert.match(reply, /hello from the service/);
      await assert.rejects(agent.connect(t.attemptId, 22), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'SERVICE_PORT_UNDECLARED');
        assert.equal(e.message, `service web does not declare port 22 (its ports: ${port})`);
        return true;
      });
      await assert.rejects(agent.connect('nope/web/1', port), /is not a service running on node n1/);
      agent.kill(t.attemptId, 'stop-service');
      await rec.until('the end', () => rec.exited.has(t.attemptId));
    } finally {
      await agent.close();
      d.cleanup();
    }
  });

  test('a probe that never passes: the service is stopped after its patience and ends not-ready with the last result', { timeout: 60_000 }, async () => {
    const d = tempDir('warren-svc-');
    const agent = new LocalAgent({ name: 'n1', home: d.dir, cores: 2, process: createProcessRuntime() });
    const rec = recorded(agent);
    try {
      const port = await freePort();
      const t = taskOf(job('web', { service: true, command: ['/bin/sleep', '60'], serviceSpec: { ports: [], endpoints: [], persist: false, probe: probe({ kind: 'http', path: '/health', port, scheme: 'HTTP', headers: [] }, { initialDelaySec: 0.2, periodSec: 0.2, failureThreshold: 3 }) } }));
      agent.submit(t);
      await rec.until('the end', () => rec.exited.has(t.attemptId));
      const ex = rec.exited.get(t.attemptId)!;
      assert.equal(ex.reason, 'not-ready');
      assert.equal(ex.message, `readiness probe http-get http://127.0.0.1:${port}/health failed 3 times: connection refused`);
      assert.equal(rec.ready.length, 0);
      assert.match(readFileSync(join(d.dir, 'runs', t.workflowId, 'logs', 'web.err'), 'utf8'), /warren: readiness probe .* failed 3 times: connection refused: stopping the service/);
    } finally {
      await agent.close();
      d.cleanup();
    }
  });

  test('an exec probe runs in the job\'s environment; a service without a probe is ready when it started', { timeout: 60_000 }, async () => {
    const d = tempDir('warren-svc-');
    const agent = new LocalAgent({ name: 'n1', home: d.dir, cores: 2, process: createProcessRuntime() });
    const rec = recorded(agent);
    try {
      const marker = join(d.dir, 'up');
      const a = taskOf(job('worker', { service: true, env: { MARK: marker }, command: ['/bin/sh', '-c', 'sleep 0.3; touch "$MARK"; exec sleep 60'], serviceSpec: { ports: [], endpoints: [], persist: false, probe: probe({ kind: 'exec', command: ['/bin/sh', '-c', 'test -e "$MARK"'] }, { failureThreshold: 100 }) } }));
      const b = taskOf(job('plain', { service: true, command: ['/bin/sleep', '60'], serviceSpec: { ports: [], endpoints: [], persist: false } }));
      agent.submit(a);
      agent.submit(b);
      await rec.until('both ready', () => rec.ready.length === 2);
      const byId = new Map(rec.ready.map((r) => [r.attemptId, r]));
      assert.equal(byId.get(b.attemptId)!.message, undefined);
      assert.equal(byId.get(a.attemptId)!.message, 'readiness probe exec ["/bin/sh","-c","test -e \\"$MARK\\""] passed: exit code 0');
      assert.ok(existsSync(marker));
      agent.kill(a.attemptId, 'stop-service');
      agent.kill(b.attemptId, 'stop-service');
      await rec.until('the ends', () => rec.exited.size === 2);
    } finally {
      await agent.close();
      d.cleanup();
    }
  });

  test('a job gets the workflow\'s variables (FB_WORKFLOW_ID, FB_JOB_NAME, the ready services) and its inline files', { timeout: 60_000 }, async () => {
    const d = tempDir('warren-svc-');
    const agent = new LocalAgent({ name: 'n1', home: d.dir, cores: 2, process: createProcessRuntime() });
    const rec = recorded(agent);
    try {
      const svcSpec: ServiceSpec = { ports: [{ name: 'http', port: 8123, protocol: 'tcp' }], endpoints: [{ name: 'web', portName: 'http', protocol: 'http', type: 'subdomain', scope: 'user' }], persist: false };
      const spec = job('client', {
        files: { '/etc/app/config.txt': 'setting=1\n', 'rel/run.sh': '#!/bin/sh\necho hi\n' },
        command: ['/bin/sh', '-c', 'env | grep -E "^(FB_|WARREN_(JOB|WORKFLOW|SERVICE|ENDPOINT|FILES|ACCOUNT))" | sort; cat "$WARREN_FILES/etc/app/config.txt"; ./rel/run.sh'],
      });
      const t = taskOf(spec);
      // On this node (127.0.0.1) and on another one (its address).
      t.services = [{ name: 'db', host: '10.1.2.3', node: 'n1', spec: svcSpec }, { name: 'far', host: '10.9.9.9', node: 'n2', spec: { ...svcSpec, endpoints: [] } }];
      agent.submit(t);
      await rec.until('the end', () => rec.exited.has(t.attemptId));
      assert.equal(rec.exited.get(t.attemptId)!.exitCode, 0, JSON.stringify(rec.exited.get(t.attemptId)));
      const out = readFileSync(join(d.dir, 'runs', t.workflowId, 'logs', 'client.out'), 'utf8').trim().split('\n');
      const files = join(d.dir, 'runs', t.workflowId, 'files', 'client');
      const user = (await import('node:os')).userInfo().username;
      assert.deepEqual(out, [
        `FB_ACCOUNT_ID=${user}`,
        'FB_ENDPOINT_PATH_WEB=/',
        'FB_ENDPOINT_URL_WEB=http://127.0.0.1:8123/',
        'FB_JOB_NAME=client',
        `FB_WORKFLOW_ID=${t.workflowId}`,
        `WARREN_ACCOUNT_ID=${user}`,
        'WARREN_ENDPOINT_PATH_WEB=/',
        'WARREN_ENDPOINT_URL_WEB=http://127.0.0.1:8123/',
        `WARREN_FILES=${files}`,
        'WARREN_JOB=client',
        'WARREN_JOB_NAME=client',
        'WARREN_SERVICE_DB_HOST=127.0.0.1',
        'WARREN_SERVICE_DB_PORT=8123',
        'WARREN_SERVICE_DB_PORT_HTTP=8123',
        'WARREN_SERVICE_DB_URL=http://127.0.0.1:8123/',
        'WARREN_SERVICE_FAR_HOST=10.9.9.9',
        'WARREN_SERVICE_FAR_PORT=8123',
        'WARREN_SERVICE_FAR_PORT_HTTP=8123',
        `WARREN_WORKFLOW_ID=${t.workflowId}`,
        'setting=1',
        'hi',
      ]);
      // A relative file is in the job's working directory, executable (it starts with #!).
      const script = join(d.dir, 'runs', t.workflowId, 'work', 'client', 'rel', 'run.sh');
      assert.equal(statSync(script).mode & 0o777, 0o755);
      assert.equal(statSync(join(files, 'etc', 'app', 'config.txt')).mode & 0o777, 0o644);
    } finally {
      await agent.close();
      d.cleanup();
    }
  });

  test('a file that names a directory: the job does not start (RUN_JOB_FILE)', { timeout: 30_000 }, async () => {
    const d = tempDir('warren-svc-');
    const agent = new LocalAgent({ name: 'n1', home: d.dir, cores: 2, process: createProcessRuntime() });
    const rec = recorded(agent);
    try {
      const t = taskOf(job('bad', { files: { '/etc/': 'x' }, command: ['/bin/true'] }));
      agent.submit(t);
      await rec.until('the end', () => rec.exited.has(t.attemptId));
      const ex = rec.exited.get(t.attemptId)!;
      assert.equal(ex.reason, 'spawn-error');
      assert.equal(ex.failure?.code, 'RUN_JOB_FILE');
      assert.equal(ex.failure?.message, 'job bad: file "/etc/" names a directory, not a file');
      assert.equal(rec.started.length, 0);
    } finally {
      await agent.close();
      d.cleanup();
    }
  });
});
