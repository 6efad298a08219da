// Data transfers that never end (issue 7, "Data transfers that never end"), against real
// loopback HTTP servers: a trickling body stalls out, bodies without a length are capped,
// the workflow's `size:` is enforced, and a lock naming a live but unrelated pid is taken over.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ingress, egress, DataCache, type DataOptions, type TransferProgress } from '../../src/data/index.js';
import { processStartTicks } from '../../src/data/fsutil.js';
import type { TransferSpec } from '../../src/workflow/types.js';
import { tempDir } from '../helpers.js';
import { bytes, startServer, type TestServer } from './httpserver.js';

const T = { timeout: 30_000 };

function spec(src: string, dst: string, extra: Partial<TransferSpec> = {}): TransferSpec {
  return { source: { uri: src }, destination: { uri: dst }, ...extra };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error & { code: string; hint?: string; exitCode: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { code: string; hint?: string; exitCode: number };
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    assert.ok(err.hint && err.hint.length > 10, 'a hint is given');
    return err;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

/** A loopback server whose handlers the tests set per path. */
async function customServer(): Promise<{ url: (p: string) => string; routes: Map<string, (req: IncomingMessage, res: ServerResponse) => void>; hits: Map<string, IncomingMessage[]>; close: () => Promise<void> }> {
  const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  const hits = new Map<string, IncomingMessage[]>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(path, [...(hits.get(path) ?? []), req]);
    const h = routes.get(path);
    if (!h) res.writeHead(404).end();
    else h(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p) => `http://127.0.0.1:${port}${p}`,
    routes,
    hits,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** Send one byte every `everyMs` until the client goes away (never ends by itself). */
function trickle(res: ServerResponse, everyMs: number, headers: Record<string, string>): void {
  res.writeHead(200, headers);
  const t = setInterval(() => {
    if (res.destroyed || res.socket?.destroyed) clearInterval(t);
    else res.write('x');
  }, everyMs);
  res.on('close', () => clearInterval(t));
}

/** Write 64 KiB chunks, chunked (no Content-Length), until the client goes away or `total` is sent. */
function flood(res: ServerResponse, total = Infinity, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', etag: '"flood"', ...headers });
  const chunk = Buffer.alloc(64 * 1024, 7);
  let sent = 0;
  const pump = (): void => {
    while (!res.destroyed && sent < total) {
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      if (!res.write(chunk.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    if (!res.destroyed) res.end();
  };
  res.on('close', () => { sent = total; });
  pump();
}

describe('data transfers that never end', () => {
  let srv: Awaited<ReturnType<typeof customServer>>;
  let files: TestServer;
  let tmp: { dir: string; cleanup: () => void };
  let n = 0;
  const vol = (): string => {
    const d = join(tmp.dir, `vol${++n}`);
    mkdirSync(d);
    return d;
  };
  const cacheDir = (): string => join(tmp.dir, `cache${n}`);
  const opts = (extra: Partial<DataOptions> = {}): DataOptions => ({ cacheDir: cacheDir(), retries: 2, retryBaseMs: 10, ...extra });

  before(async () => {
    srv = await customServer();
    files = await startServer();
    tmp = tempDir('warren-data-limits-');
  });
  after(async () => {
    await srv.close();
    await files.close();
    tmp.cleanup();
  });

  test('a body that trickles one byte at a time stalls out: retried (resuming), then DATA_STALLED', T, async () => {
    srv.routes.set('/trickle.bin', (req, res) => trickle(res, 100, { 'content-length': '100000', etag: '"t1"', 'accept-ranges': 'bytes' }));
    const v = vol();
    const t0 = Date.now();
    const err = await rejectsWith(ingress(spec(srv.url('/trickle.bin'), 'file://t.bin'), v, opts({ stallTimeoutMs: 800 })), 'DATA_STALLED');
    assert.match(err.message, /stalled on all 2 attempts: stalled: \d+ bytes? in the last 0\.8 s \(fewer than 1024\)/);
    assert.match(err.hint!, /WARREN_DATA_STALL_TIMEOUT/);
    assert.equal(srv.hits.get('/trickle.bin')!.length, 2, 'one retry');
    assert.match(String(srv.hits.get('/trickle.bin')![1]!.headers.range), /^bytes=\d+-$/, 'the retry resumes what arrived');
    assert.ok(Date.now() - t0 < 20_000, 'it ended');
    assert.equal(existsSync(join(v, 't.bin')), false);
  });

  test('a slow but steady body (above the floor) is not a stall', T, async () => {
    const data = bytes(12 * 1024, 3);
    srv.routes.set('/steady.bin', (req, res) => {
      res.writeHead(200, { 'content-length': String(data.length), etag: '"s1"' });
      let off = 0;
      const t = setInterval(() => {
        res.write(data.subarray(off, off + 2048));
        off += 2048;
        if (off >= data.length) {
          clearInterval(t);
          res.end();
        }
      }, 100);
      res.on('close', () => clearInterval(t));
    });
    const v = vol();
    const r = await ingress(spec(srv.url('/steady.bin'), 'file://s.bin'), v, opts({ stallTimeoutMs: 500 }));
    assert.equal(r.bytes, data.length);
    assert.deepEqual(readFileSync(join(v, 's.bin')), data);
  });

  test('a body with no length that never ends is cut off at the download limit: DATA_TOO_LARGE, nothing kept', T, async () => {
    srv.routes.set('/endless', (req, res) => flood(res));
    const v = vol();
    const err = await rejectsWith(ingress(spec(srv.url('/endless'), 'file://e.bin'), v, opts({ maxBytes: 256 * 1024 })), 'DATA_TOO_LARGE');
    assert.match(err.message, /is larger than the download limit of 262144 bytes: more than 262144 bytes arrived; nothing was kept/);
    assert.match(err.hint!, /WARREN_DATA_MAX_SIZE/);
    assert.equal(err.exitCode, 1);
    assert.equal(srv.hits.get('/endless')!.length, 1, 'not retried');
    assert.equal(existsSync(join(v, 'e.bin')), false);
    assert.deepEqual(readdirSync(new DataCache(cacheDir()).partialDir), [], 'no partial left');
  });

  test('the limit comes from WARREN_DATA_MAX_SIZE; a bad value is refused', T, async () => {
    srv.routes.set('/endless2', (req, res) => flood(res));
    process.env.WARREN_DATA_MAX_SIZE = '128KiB';
    try {
      const err = await rejectsWith(ingress(spec(srv.url('/endless2'), 'file://e.bin'), vol(), opts()), 'DATA_TOO_LARGE');
      assert.match(err.message, /download limit of 131072 bytes/);
      process.env.WARREN_DATA_MAX_SIZE = 'lots';
      const bad = await rejectsWith(ingress(spec(srv.url('/endless2'), 'file://e.bin'), vol(), opts()), 'DATA_BAD_OPTION');
      assert.equal(bad.exitCode, 2);
    } finally {
      delete process.env.WARREN_DATA_MAX_SIZE;
    }
  });

  test("a body larger than the workflow's size: refused from its Content-Length, or as it streams", T, async () => {
    files.objects.set('/big.bin', bytes(10_000, 5));
    const declared = await rejectsWith(ingress(spec(files.url('/big.bin'), 'file://b.bin', { sizeBytes: 5000 }), vol(), opts()), 'DATA_TOO_LARGE');
    assert.match(declared.message, /larger than the size the workflow gives \(size: 5000 bytes\): its size is 10000 bytes/);
    assert.match(declared.hint!, /size:/);
    srv.routes.set('/chunked', (req, res) => flood(res, 200_000));
    const streamed = await rejectsWith(ingress(spec(srv.url('/chunked'), 'file://c.bin', { sizeBytes: 100_000 }), vol(), opts()), 'DATA_TOO_LARGE');
    assert.match(streamed.message, /larger than the size the workflow gives \(size: 100000 bytes\): more than 100000 bytes arrived/);
    // Shorter than the size: refused when it ends; exactly the size: fine.
    const short = await rejectsWith(ingress(spec(files.url('/big.bin'), 'file://b.bin', { sizeBytes: 20_000 }), vol(), opts()), 'DATA_SIZE_MISMATCH');
    assert.match(short.message, /has 10000 bytes, but the workflow gives size: 20000/);
    const v = vol();
    const r = await ingress(spec(files.url('/big.bin'), 'file://b.bin', { sizeBytes: 10_000 }), v, opts());
    assert.equal(r.bytes, 10_000);
  });

  test('a file:// source larger than the size is refused before copying', T, async () => {
    const src = join(tmp.dir, 'local.bin');
    writeFileSync(src, bytes(4096, 9));
    const err = await rejectsWith(ingress(spec(`file://${src}`, 'file://l.bin', { sizeBytes: 1000 }), vol(), opts()), 'DATA_TOO_LARGE');
    assert.match(err.message, /larger than the size the workflow gives \(size: 1000 bytes\): its size is 4096 bytes/);
  });

  test('egress checks the size before uploading anything', T, async () => {
    const v = vol();
    writeFileSync(join(v, 'out.bin'), bytes(3000, 4));
    const dst = join(tmp.dir, 'egress-out');
    const big = await rejectsWith(egress(spec('file://out.bin', `file://${dst}/a.bin`, { sizeBytes: 1000 }), v, opts()), 'DATA_TOO_LARGE');
    assert.match(big.message, /size: 1000 bytes\): its size is 3000 bytes/);
    await rejectsWith(egress(spec('file://out.bin', `file://${dst}/b.bin`, { sizeBytes: 5000 }), v, opts()), 'DATA_SIZE_MISMATCH');
    assert.equal(existsSync(dst), false, 'nothing written');
    const r = await egress(spec('file://out.bin', `file://${dst}/c.bin`, { sizeBytes: 3000 }), v, opts());
    assert.equal(r.bytes, 3000);
  });
});

describe('download locks: owners identified by pid and start time', () => {
  let files: TestServer;
  let tmp: { dir: string; cleanup: () => void };
  const sleepers: ChildProcess[] = [];
  const sleeper = async (): Promise<{ pid: number; start: number }> => {
    const c = spawn('sleep', ['60'], { stdio: 'ignore' });
    sleepers.push(c);
    await new Promise<void>((r, j) => { c.once('spawn', r); c.once('error', j); });
    const start = processStartTicks(c.pid!);
    assert.ok(start !== null);
    return { pid: c.pid!, start };
  };
  let n = 0;
  const setup = (): { v: string; opts: DataOptions; lock: string; uri: string } => {
    n++;
    const v = join(tmp.dir, `vol${n}`);
    mkdirSync(v);
    const uri = files.url(`/locked${n}.bin`);
    files.objects.set(`/locked${n}.bin`, bytes(5000, n));
    const cacheDir = join(tmp.dir, `cache${n}`);
    const lock = new DataCache(cacheDir).lockPath(uri);
    mkdirSync(join(cacheDir, 'locks'), { recursive: true });
    return { v, uri, lock, opts: { cacheDir, retries: 1 } };
  };

  before(async () => {
    files = await startServer();
    tmp = tempDir('warren-data-locks-');
  });
  after(async () => {
    for (const c of sleepers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await files.close();
    tmp.cleanup();
  });

  test('a lock naming a live but unrelated pid (another start time) is stale and taken over', T, async () => {
    const s = await sleeper();
    const { v, uri, lock, opts } = setup();
    writeFileSync(lock, JSON.stringify({ pid: s.pid, start: s.start - 1, host: hostname() }));
    const r = await ingress(spec(uri, 'file://x.bin'), v, opts);
    assert.equal(r.bytes, 5000);
    assert.equal(existsSync(lock), false, 'released');
  });

  test('an old bare-pid lock whose pid now belongs to a process started after it is stale', T, async () => {
    const s = await sleeper();
    const { v, uri, lock, opts } = setup();
    writeFileSync(lock, String(s.pid));
    const past = new Date(Date.now() - 3600_000);
    utimesSync(lock, past, past);
    const r = await ingress(spec(uri, 'file://x.bin'), v, opts);
    assert.equal(r.bytes, 5000);
  });

  test('a live owner is waited for, and the wait is reported as progress kind waiting-lock with its pid and host', T, async () => {
    const s = await sleeper();
    const { v, uri, lock, opts } = setup();
    writeFileSync(lock, JSON.stringify({ pid: s.pid, start: s.start, host: hostname() }));
    const seen: TransferProgress[] = [];
    let reported!: () => void;
    const waiting = new Promise<void>((r) => (reported = r));
    const p = ingress(spec(uri, 'file://x.bin'), v, {
      ...opts,
      lockWaitReportMs: 300,
      onProgress: (x) => {
        seen.push(x);
        if (x.kind === 'waiting-lock') reported();
      },
    });
    await waiting;
    const w = seen.find((x) => x.kind === 'waiting-lock')!;
    assert.equal(w.uri, uri);
    assert.equal(w.bytes, 0);
    assert.equal(w.lock!.pid, s.pid);
    assert.equal(w.lock!.host, hostname());
    assert.equal(w.lock!.path, lock);
    assert.ok(w.lock!.waitedMs >= 300);
    assert.equal(existsSync(join(v, 'x.bin')), false, 'nothing before the owner is gone');
    // The owner dies: the lock is stale, the download goes ahead.
    sleepers.at(-1)!.kill('SIGKILL');
    const r = await p;
    assert.equal(r.bytes, 5000);
    assert.equal(seen.at(-1)!.kind, undefined, 'then byte progress as before');
  });
});
