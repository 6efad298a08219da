// The fault-test harness itself: network namespaces (netns.ts) and a private PostgreSQL (pg.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createNetwork, netnsAvailable, type Network } from './netns.js';
import { postgresAvailable, startPostgres } from './pg.js';

const netSkip = netnsAvailable() === true ? false : String(netnsAvailable());
const pgSkip = postgresAvailable() === true ? false : String(postgresAvailable());
const node = process.execPath;

// An HTTP GET from wherever it runs: prints the body (exit 0), the error code (exit 1) or
// "timeout" (exit 2) after `ms`.
const CLIENT = `
const [url, ms] = process.argv.slice(1);
const t = setTimeout(() => { console.log('timeout'); process.exit(2); }, Number(ms));
require('http').get(url, (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => { clearTimeout(t); console.log(b); }); })
  .on('error', (e) => { clearTimeout(t); console.log(e.code || e.message); process.exit(1); });
`;
// An HTTP server on 0.0.0.0:port answering "from <its address>", "ready" once listening.
const SERVER = `
const [port, me] = process.argv.slice(1);
require('http').createServer((q, s) => s.end('from ' + me)).listen(Number(port), '0.0.0.0', () => console.log('ready'));
`;

async function serve(address: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => res.end(`hello ${req.socket.remoteAddress}`));
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://${address}:${port}/` };
}

function leftovers(id: string): { ns: string[]; links: string[]; lock: boolean; tmp: boolean } {
  const ns = (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n').filter((l) => l.includes(`-${id}-`));
  const links = (spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '').split('\n').filter((l) => new RegExp(`^\\d+:\\s+${id}`).test(l));
  const lockDir = '/run/warren-netns';
  let lock = false;
  if (existsSync(lockDir)) {
    for (const k of spawnSync('ls', [lockDir], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) {
      try {
        if (JSON.parse(readFileSync(join(lockDir, k, 'owner.json'), 'utf8')).id === id) lock = true;
      } catch {
        // another's, being made
      }
    }
  }
  return { ns, links, lock, tmp: existsSync(join(tmpdir(), `warren-netns-${id}`)) };
}

const nothingLeft = { ns: [], links: [], lock: false, tmp: false };

/** Runs `script` (an ES module) in a child node; resolves with its first stdout line and the child. */
function child(script: string): Promise<{ line: string; proc: ReturnType<typeof spawn>; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const proc = spawn(node, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ line: out.slice(0, nl), proc, exited });
    });
    void exited.then(() => reject(new Error(`child ended before printing: ${err}`)));
  });
}

const netnsUrl = new URL('./netns.js', import.meta.url).href;
const pgUrl = new URL('./pg.js', import.meta.url).href;

describe('network namespaces (test/helpers/netns.ts)', { skip: netSkip, timeout: 120_000 }, () => {
  test('hosts reach a server on the bridge address, each other, and are reached from the root namespace', { timeout: 60_000 }, async () => {
    const net = await createNetwork({ hosts: 2 });
    const { server, url } = await serve(net.serverAddress);
    try {
      assert.match(net.subnet, /^10\.77\.\d+\.0\/24$/);
      assert.equal(net.serverAddress, net.subnet.replace('.0/24', '.1'));
      assert.deepEqual(net.hosts.map((h) => h.address), [10, 11].map((n) => net.subnet.replace('0/24', String(n))));
      for (const h of net.hosts) {
        assert.ok(h.veth.length <= 15 && net.bridge.length <= 15);
        const r = await h.exec(node, ['-e', CLIENT, url, '10000'], { timeoutMs: 20_000 });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(r.stdout.trim(), `hello ${h.address}`);
      }
      // host 1 serves; host 0 and the root namespace reach it
      const srv = net.hosts[1]!.spawn(node, ['-e', SERVER, '8080', net.hosts[1]!.address]);
      await new Promise<void>((resolve, reject) => {
        srv.stdout!.once('data', () => resolve());
        srv.once('exit', () => reject(new Error('server in host 1 died')));
      });
      const fromHost = await net.hosts[0]!.exec(node, ['-e', CLIENT, `http://${net.hosts[1]!.address}:8080/`, '10000'], { timeoutMs: 20_000 });
      assert.equal(fromHost.stdout.trim(), `from ${net.hosts[1]!.address}`);
      const fromRoot = spawnSync(node, ['-e', CLIENT, `http://${net.hosts[1]!.address}:8080/`, '10000'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(fromRoot.stdout.trim(), `from ${net.hosts[1]!.address}`);
      assert.ok((await net.hosts[1]!.pids()).includes(srv.pid!));
    } finally {
      server.close();
      await net.destroy();
    }
  });

  test('cut() loses every packet of one host (down and silent), the others unaffected; restore() brings it back', { timeout: 60_000 }, async () => {
    const net = await createNetwork({ hosts: 2 });
    const { server, url } = await serve(net.serverAddress);
    const [a, b] = net.hosts as [(typeof net.hosts)[0], (typeof net.hosts)[0]];
    const get = (h: typeof a) => h.exec(node, ['-e', CLIENT, url, '1500'], { timeoutMs: 20_000 });
    const eth0 = async (h: typeof a) => (await h.exec('ip', ['-o', 'link', 'show', 'dev', 'eth0'])).stdout;
    try {
      await a.cut();
      assert.equal(a.isCut, true);
      await a.cut(); // idempotent
      const lost = await get(a);
      assert.equal(lost.stdout.trim(), 'timeout', 'a connection from a cut host neither succeeds nor fails fast');
      assert.equal((await get(b)).stdout.trim(), `hello ${b.address}`);
      assert.match(await eth0(a), /NO-CARRIER/);
      await a.restore();
      assert.equal(a.isCut, false);
      assert.equal((await get(a)).stdout.trim(), `hello ${a.address}`);

      await a.cut({ mode: 'silent' });
      assert.equal((await get(a)).stdout.trim(), 'timeout');
      const link = await eth0(a);
      assert.match(link, /LOWER_UP/);
      assert.doesNotMatch(link, /NO-CARRIER/);
      await a.restore();
      await a.restore(); // idempotent
      assert.equal((await get(a)).stdout.trim(), `hello ${a.address}`);
    } finally {
      server.close();
      await net.destroy();
    }
  });

  test('isolate: its own hostname and /tmp, per host (shared by that host\'s processes) or private; nothing mounted outside', { timeout: 60_000 }, async () => {
    const net = await createNetwork({ hosts: 2 });
    const marker = `warren-harness-${process.pid}`;
    // (other test processes add and remove /run/netns/* meanwhile)
    const mounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => !l.includes(' /run/netns/'));
    const mountsBefore = mounts();
    try {
      const [a, b] = net.hosts as [(typeof net.hosts)[0], (typeof net.hosts)[0]];
      const ra = await a.exec('sh', ['-c', `hostname && echo a > /tmp/${marker} && echo s > /dev/shm/${marker}`], { isolate: { hostname: 'node-a' } });
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(ra.stdout.trim(), 'node-a');
      const again = await a.exec('sh', ['-c', `hostname && cat /tmp/${marker} /dev/shm/${marker}`], { isolate: { hostname: 'node-a' } });
      assert.equal(again.stdout, 'node-a\na\ns\n', again.stderr);
      const rb = await b.exec('sh', ['-c', `hostname; ls /tmp /dev/shm`], { isolate: { hostname: 'node-b' } });
      assert.match(rb.stdout, /^node-b\n/);
      assert.doesNotMatch(rb.stdout, new RegExp(marker));
      const priv = await a.exec('sh', ['-c', `hostname; ls -A /tmp`], { isolate: { hostname: 'node-c', tmp: 'private' } });
      assert.equal(priv.stdout, 'node-c\n', priv.stderr);
      const dflt = await b.exec('hostname', [], { isolate: {} });
      assert.equal(dflt.stdout.trim(), b.name);
      // the root namespace is untouched
      assert.equal(existsSync(`/tmp/${marker}`) || existsSync(`/dev/shm/${marker}`), false);
      assert.notEqual(hostname(), 'node-a');
      assert.deepEqual(mounts(), mountsBefore);
      // spawn takes it too
      const p = a.spawn('hostname', [], { isolate: { hostname: 'node-s' } });
      let out = '';
      p.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      await new Promise((resolve) => p.on('close', resolve));
      assert.equal(out.trim(), 'node-s');
    } finally {
      await net.destroy();
    }
  });

  test('killAll() signals every process in the namespace', { timeout: 30_000 }, async () => {
    const net = await createNetwork({ hosts: 1 });
    try {
      const h = net.hosts[0]!;
      const p = h.spawn('sleep', ['1000'], { stdio: 'ignore' });
      const q = h.spawn('sleep', ['1000'], { stdio: 'ignore', isolate: { hostname: 'x' } });
      const ended = Promise.all([p, q].map((c) => new Promise((resolve) => c.on('exit', (_code, sig) => resolve(sig)))));
      await sleep(200);
      assert.deepEqual((await h.pids()).sort(), [p.pid!, q.pid!].sort());
      assert.equal(await h.killAll('SIGTERM'), 2);
      assert.deepEqual(await ended, ['SIGTERM', 'SIGTERM']);
      assert.deepEqual(await h.pids(), []);
    } finally {
      await net.destroy();
    }
  });

  test('destroy() removes namespaces, links, locks and directories, kills what still runs, and is idempotent', { timeout: 30_000 }, async () => {
    const net = await createNetwork({ hosts: 3, prefix: 'wd' });
    assert.match(net.id, /^wd[0-9a-f]{4}$/);
    const sleeper = net.hosts[2]!.spawn('sleep', ['1000'], { stdio: 'ignore' });
    const ended = new Promise((resolve) => sleeper.on('exit', (_c, sig) => resolve(sig)));
    assert.equal(leftovers(net.id).ns.length, 3);
    assert.equal(leftovers(net.id).links.length, 4);
    await net.destroy();
    assert.equal(await ended, 'SIGKILL');
    assert.deepEqual(leftovers(net.id), nothingLeft);
    await net.destroy();
    net.destroySync();
  });

  test('two networks at once get different subnets; a given subnet is honoured', { timeout: 30_000 }, async () => {
    const n1 = await createNetwork({ hosts: 1 });
    const n2 = await createNetwork({ hosts: 1 });
    try {
      assert.notEqual(n1.subnet, n2.subnet);
      const s = n1.subnet.split('.').slice(0, 3).join('.');
      await assert.rejects(createNetwork({ hosts: 1, subnet: s }), /held by another live test process|in use/);
      await assert.rejects(createNetwork({ hosts: 1, prefix: 'TOO-LONG' }), /prefix/);
    } finally {
      await n1.destroy();
      await n2.destroy();
    }
    const c = `10.78.${(process.pid % 254) + 1}`;
    const n3 = await createNetwork({ hosts: 1, subnet: `${c}.0/24` });
    try {
      assert.equal(n3.serverAddress, `${c}.1`);
      assert.equal(n3.hosts[0]!.address, `${c}.10`);
    } finally {
      await n3.destroy();
    }
  });

  for (const how of ['throws', 'SIGTERM', 'SIGINT'] as const) {
    test(`nothing is left when the test process ${how === 'throws' ? 'throws' : `gets ${how}`}`, { timeout: 30_000 }, async () => {
      const script = `import { createNetwork } from ${JSON.stringify(netnsUrl)};
        const net = await createNetwork({ hosts: 2 });
        net.hosts[0].spawn('sleep', ['1000'], { stdio: 'ignore' });
        console.log(net.id);
        ${how === 'throws' ? "setTimeout(() => { throw new Error('a test failed'); }, 100);" : 'setInterval(() => {}, 1000);'}`;
      const c = await child(script);
      assert.equal(leftovers(c.line).ns.length, 2);
      if (how !== 'throws') c.proc.kill(how);
      const end = await c.exited;
      if (how === 'throws') assert.equal(end.code, 1);
      else assert.equal(end.signal, how);
      assert.deepEqual(leftovers(c.line), nothingLeft);
    });
  }

  test('what a SIGKILLed test process left is swept by the next createNetwork()', { timeout: 30_000 }, async () => {
    const c = await child(`import { createNetwork } from ${JSON.stringify(netnsUrl)};
      const net = await createNetwork({ hosts: 1 });
      console.log(net.id); setInterval(() => {}, 1000);`);
    c.proc.kill('SIGKILL');
    await c.exited;
    assert.equal(leftovers(c.line).ns.length, 1);
    const net: Network = await createNetwork({ hosts: 0 });
    try {
      assert.deepEqual(leftovers(c.line), nothingLeft);
    } finally {
      await net.destroy();
    }
  });
});

describe('private PostgreSQL (test/helpers/pg.ts)', { skip: pgSkip, timeout: 180_000 }, () => {
  async function connect(url: string): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    c.on('error', () => {}); // the server going away is the point
    await c.connect();
    return c;
  }

  test('start, write, stop (connections fail), start again on the same port: the data is there; destroy removes it', { timeout: 120_000 }, async () => {
    const db = await startPostgres();
    try {
      assert.notEqual(db.port, 5432);
      assert.equal(db.url, `postgres://postgres@127.0.0.1:${db.port}/warren`);
      const c = await connect(db.url);
      assert.equal((await c.query('SHOW fsync')).rows[0].fsync, 'on');
      assert.equal((await c.query('SELECT current_database() AS d')).rows[0].d, 'warren');
      await c.query('CREATE TABLE t (k int PRIMARY KEY, v text)');
      await c.query("INSERT INTO t VALUES (1, 'before stop')");

      await db.stop();
      assert.equal(db.running, false);
      await assert.rejects(c.query('SELECT 1'));
      await c.end().catch(() => {});
      await assert.rejects(connect(db.url), /ECONNREFUSED/);
      await sleep(2_000);
      await assert.rejects(connect(db.url), /ECONNREFUSED/);
      await db.stop(); // stopping a stopped server is fine

      await db.start();
      assert.equal(db.running, true);
      await db.start(); // and starting a running one
      const c2 = await connect(db.url);
      assert.deepEqual((await c2.query('SELECT v FROM t')).rows, [{ v: 'before stop' }]);
      await c2.query("INSERT INTO t VALUES (2, 'before crash')");
      await c2.end();

      await db.stop('immediate'); // as if it crashed: what was committed survives
      await db.start();
      const c3 = await connect(db.url);
      assert.deepEqual((await c3.query('SELECT k FROM t ORDER BY k')).rows, [{ k: 1 }, { k: 2 }]);
      await c3.end();
    } finally {
      await db.destroy();
    }
    assert.equal(existsSync(db.dir), false);
    await assert.rejects(connect(db.url), /ECONNREFUSED/);
    await db.destroy();
  });

  test('a given port is used; nothing is left when the test process throws', { timeout: 120_000 }, async () => {
    const c = await child(`import { startPostgres } from ${JSON.stringify(pgUrl)};
      const db = await startPostgres();
      console.log(JSON.stringify({ port: db.port, dir: db.dir }));
      setTimeout(() => { throw new Error('a test failed'); }, 100);`);
    const { port, dir } = JSON.parse(c.line) as { port: number; dir: string };
    assert.equal(existsSync(join(dir, 'data', 'PG_VERSION')), true);
    assert.equal((await c.exited).code, 1);
    assert.equal(existsSync(dir), false);
    await assert.rejects(connect(`postgres://postgres@127.0.0.1:${port}/warren`), /ECONNREFUSED/);

    // the port it had is free again: ask for it
    const db = await startPostgres({ port });
    try {
      assert.equal(db.port, port);
      const k = await connect(db.url);
      assert.equal((await k.query('SELECT 1 AS one')).rows[0].one, 1);
      await k.end();
    } finally {
      await db.destroy();
      rmSync(db.dir, { recursive: true, force: true });
    }
  });
});
