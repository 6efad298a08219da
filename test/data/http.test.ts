import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ingress, egress, DataCache, type DataOptions, type TransferProgress } from '../../src/data/index.js';
import type { TransferSpec } from '../../src/workflow/types.js';
import { tempDir } from '../helpers.js';
import { bytes, closedPort, etagOf, sha256, startServer, type TestServer } from './httpserver.js';

const T = { timeout: 20_000 };

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

describe('HTTP ingress', () => {
  let srv: TestServer;
  let tmp: { dir: string; cleanup: () => void };
  let n = 0;
  const vol = (): string => {
    const d = join(tmp.dir, `vol${++n}`);
    mkdirSync(d);
    return d;
  };
  const opts = (extra: Partial<DataOptions> = {}): DataOptions => ({ cacheDir: join(tmp.dir, 'cache'), retries: 3, retryBaseMs: 10, ...extra });
  const gets = (path: string): number => srv.requests.filter((r) => r.path === path && r.method === 'GET').length;

  before(async () => {
    srv = await startServer();
    tmp = tempDir('warren-data-http-');
  });
  after(async () => {
    await srv.close();
    tmp.cleanup();
  });

  test('downloads into the volume, reports progress, and is read-only', T, async () => {
    const data = bytes(300_000, 7);
    srv.objects.set('/a.bin', data);
    const v = vol();
    const seen: TransferProgress[] = [];
    const t0 = Date.now();
    const r = await ingress(spec(srv.url('/a.bin'), 'file://inputs/a.bin'), v, opts({ onProgress: (p) => seen.push(p) }));
    const elapsed = Date.now() - t0;
    const dest = join(v, 'inputs', 'a.bin');
    assert.equal(r.target, dest);
    assert.equal(r.cached, false);
    assert.equal(r.bytes, data.length);
    assert.equal(r.sha256, sha256(data));
    assert.deepEqual(readFileSync(dest), data);
    assert.equal(statSync(dest).mode & 0o777, 0o444);
    const last = seen.at(-1)!;
    assert.equal(last.bytes, data.length);
    assert.equal(last.totalBytes, data.length);
    // At most one report per 100 ms, plus the first and the final one.
    assert.ok(seen.length <= Math.floor(elapsed / 100) + 2, `progress is throttled (${seen.length} events in ${elapsed} ms)`);
    assert.equal(readdirSync(join(v, 'inputs')).length, 1, 'no temp files left beside the destination');
  });

  test('declared sha256: a second ingress makes no request and hard-links the cached blob', T, async () => {
    const data = bytes(100_000, 8);
    srv.objects.set('/b.bin', data);
    const t = spec(srv.url('/b.bin'), 'file://b.bin', { sha256: sha256(data).toUpperCase() });
    const r1 = await ingress(t, vol(), opts());
    assert.equal(r1.cached, false);
    const before = srv.requests.length;
    const v2 = vol();
    const r2 = await ingress(t, v2, opts());
    assert.equal(r2.cached, true);
    assert.equal(srv.requests.length, before, 'no request at all');
    const blob = join(tmp.dir, 'cache', 'blobs', sha256(data));
    assert.equal(statSync(join(v2, 'b.bin')).ino, statSync(blob).ino, 'same inode: hard link');
    // Again into the same volume (already holding a link to the blob): no stray temp names.
    const r3 = await ingress(t, v2, opts());
    assert.equal(r3.cached, true);
    assert.deepEqual(readdirSync(v2), ['b.bin']);
    // A destination naming a directory gets the source's file name.
    const v3 = vol();
    await ingress(spec(srv.url('/b.bin'), 'file://in/', { sha256: sha256(data) }), v3, opts());
    assert.deepEqual(readFileSync(join(v3, 'in', 'b.bin')), data);
  });

  test('same URL and ETag: revalidated with If-None-Match (304), no second download', T, async () => {
    const data = bytes(50_000, 9);
    srv.objects.set('/c.bin', data);
    await ingress(spec(srv.url('/c.bin'), 'file://c.bin'), vol(), opts());
    const start = srv.requests.length;
    const v = vol();
    const r = await ingress(spec(srv.url('/c.bin'), 'file://c.bin'), v, opts());
    assert.equal(r.cached, true);
    const reqs = srv.requests.slice(start);
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0]!.headers['if-none-match'], etagOf(data));
    assert.deepEqual(readFileSync(join(v, 'c.bin')), data);
    // The object changes: the new content is downloaded.
    const changed = bytes(50_000, 10);
    srv.objects.set('/c.bin', changed);
    const r2 = await ingress(spec(srv.url('/c.bin'), 'file://c.bin'), v, opts());
    assert.equal(r2.cached, false);
    assert.deepEqual(readFileSync(join(v, 'c.bin')), changed);
  });

  test('without ETag: Last-Modified revalidates (If-Modified-Since) and guards resuming', T, async () => {
    const data = bytes(80_000, 19);
    const lm = 'Sat, 28 Nov 2026 10:00:00 GMT';
    srv.objects.set('/lm.bin', data);
    srv.lastModified.set('/lm.bin', lm);
    srv.faults.set('/lm.bin', [{ dropAfter: 20_000 }]);
    const r1 = await ingress(spec(srv.url('/lm.bin'), 'file://lm.bin'), vol(), opts());
    assert.equal(r1.sha256, sha256(data));
    const first = srv.requests.filter((x) => x.path === '/lm.bin');
    assert.equal(first[1]!.headers.range, 'bytes=20000-');
    assert.equal(first[1]!.headers['if-range'], lm);
    const start = srv.requests.length;
    const r2 = await ingress(spec(srv.url('/lm.bin'), 'file://lm.bin'), vol(), opts());
    assert.equal(r2.cached, true);
    const reqs = srv.requests.slice(start);
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0]!.headers['if-modified-since'], lm);
  });

  test('an empty object', T, async () => {
    srv.objects.set('/empty', Buffer.alloc(0));
    const v = vol();
    const r = await ingress(spec(srv.url('/empty'), 'file://empty'), v, opts());
    assert.equal(r.bytes, 0);
    assert.equal(r.sha256, sha256(Buffer.alloc(0)));
    assert.equal(statSync(join(v, 'empty')).size, 0);
  });

  test('an interrupted download resumes with Range and If-Range', T, async () => {
    const data = bytes(400_000, 11);
    srv.objects.set('/d.bin', data);
    srv.faults.set('/d.bin', [{ dropAfter: 150_000 }]);
    const v = vol();
    // One attempt only: the first ingress fails and leaves a partial in the cache.
    const err = await rejectsWith(ingress(spec(srv.url('/d.bin'), 'file://d.bin'), v, opts({ retries: 1 })), 'DATA_TRANSFER_FAILED');
    assert.match(err.message, /d\.bin/);
    assert.match(err.message, /closed after 150000 of 400000 bytes|terminated|socket/i);
    assert.equal(existsSync(join(v, 'd.bin')), false, 'nothing in the volume');
    const partial = new DataCache(join(tmp.dir, 'cache')).partialPath(srv.url('/d.bin'));
    assert.equal(statSync(partial).size, 150_000);
    const start = srv.requests.length;
    const r = await ingress(spec(srv.url('/d.bin'), 'file://d.bin', { sha256: sha256(data) }), v, opts());
    const req = srv.requests.slice(start).find((x) => x.method === 'GET')!;
    assert.equal(req.headers.range, 'bytes=150000-');
    assert.equal(req.headers['if-range'], etagOf(data));
    assert.equal(r.sha256, sha256(data));
    assert.deepEqual(readFileSync(join(v, 'd.bin')), data);
    assert.equal(existsSync(partial), false, 'partial consumed');
  });

  test('a drop mid-body is retried within one ingress, resuming where it stopped', T, async () => {
    const data = bytes(200_000, 12);
    srv.objects.set('/e.bin', data);
    srv.faults.set('/e.bin', [{ dropAfter: 70_000 }, { status: 503 }]);
    const v = vol();
    const r = await ingress(spec(srv.url('/e.bin'), 'file://e.bin'), v, opts({ retries: 4 }));
    assert.equal(r.sha256, sha256(data));
    const ranges = srv.requests.filter((x) => x.path === '/e.bin').map((x) => x.headers.range);
    assert.deepEqual(ranges, [undefined, 'bytes=70000-', 'bytes=70000-']);
  });

  test('a partial of an object that changed meanwhile is discarded (If-Range mismatch)', T, async () => {
    const old = bytes(120_000, 13);
    srv.objects.set('/f.bin', old);
    srv.faults.set('/f.bin', [{ dropAfter: 60_000 }]);
    const v = vol();
    await rejectsWith(ingress(spec(srv.url('/f.bin'), 'file://f.bin'), v, opts({ retries: 1 })), 'DATA_TRANSFER_FAILED');
    const fresh = bytes(90_000, 14);
    srv.objects.set('/f.bin', fresh);
    const r = await ingress(spec(srv.url('/f.bin'), 'file://f.bin'), v, opts());
    assert.equal(r.sha256, sha256(fresh));
    assert.deepEqual(readFileSync(join(v, 'f.bin')), fresh);
  });

  test('a stalled response times out and is resumed', T, async () => {
    const data = bytes(100_000, 16);
    srv.objects.set('/stall.bin', data);
    srv.faults.set('/stall.bin', [{ stallAfter: 40_000 }]);
    const v = vol();
    const r = await ingress(spec(srv.url('/stall.bin'), 'file://s.bin'), v, opts({ timeoutMs: 300 }));
    assert.equal(r.sha256, sha256(data));
    const ranges = srv.requests.filter((x) => x.path === '/stall.bin').map((x) => x.headers.range);
    assert.deepEqual(ranges, [undefined, 'bytes=40000-']);
  });

  test('cancel: DATA_CANCELED, the partial stays for resuming', T, async () => {
    const data = bytes(100_000, 17);
    srv.objects.set('/cancel.bin', data);
    srv.faults.set('/cancel.bin', [{ stallAfter: 30_000 }]);
    const ac = new AbortController();
    const v = vol();
    const p = ingress(spec(srv.url('/cancel.bin'), 'file://c.bin'), v, opts({ signal: ac.signal }));
    const partial = new DataCache(join(tmp.dir, 'cache')).partialPath(srv.url('/cancel.bin'));
    const poll = setInterval(() => {
      if (existsSync(partial) && statSync(partial).size >= 30_000) ac.abort();
    }, 10);
    const err = await rejectsWith(p, 'DATA_CANCELED').finally(() => clearInterval(poll));
    assert.equal(err.exitCode, 130);
    assert.deepEqual(readdirSync(v), []);
    assert.equal(statSync(partial).size, 30_000);
  });

  test('concurrent ingress of one URL downloads it once', T, async () => {
    const data = bytes(500_000, 18);
    srv.objects.set('/conc.bin', data);
    const t = spec(srv.url('/conc.bin'), 'file://x.bin', { sha256: sha256(data) });
    const [a, b] = await Promise.all([ingress(t, vol(), opts()), ingress(t, vol(), opts())]);
    assert.deepEqual([a.cached, b.cached].sort(), [false, true]);
    assert.equal(gets('/conc.bin'), 1);
  });

  test('persistent 5xx: retried with backoff, then DATA_TRANSFER_FAILED with URL and reason', T, async () => {
    srv.objects.set('/g.bin', bytes(10, 1));
    srv.faults.set('/g.bin', [{ status: 503 }, { status: 500 }, { status: 429, retryAfter: '0' }]);
    const err = await rejectsWith(ingress(spec(srv.url('/g.bin'), 'file://g.bin'), vol(), opts({ retries: 3 })), 'DATA_TRANSFER_FAILED');
    assert.ok(err.message.includes(srv.url('/g.bin')));
    assert.match(err.message, /HTTP 429/);
    assert.match(err.message, /3 attempts/);
    assert.equal(gets('/g.bin'), 3);
  });

  test('404 and 403 are not retried', T, async () => {
    const e404 = await rejectsWith(ingress(spec(srv.url('/missing'), 'file://x'), vol(), opts()), 'DATA_NOT_FOUND');
    assert.ok(e404.message.includes(srv.url('/missing')));
    assert.equal(gets('/missing'), 1);
    srv.faults.set('/secret.bin', [{ status: 403 }]);
    await rejectsWith(ingress(spec(srv.url('/secret.bin'), 'file://x'), vol(), opts()), 'DATA_ACCESS_DENIED');
    assert.equal(gets('/secret.bin'), 1);
  });

  test('checksum mismatch: names URL and digests, keeps nothing', T, async () => {
    const data = bytes(30_000, 15);
    srv.objects.set('/h.bin', data);
    const v = vol();
    const wrong = 'a'.repeat(64);
    const err = await rejectsWith(ingress(spec(srv.url('/h.bin'), 'file://h.bin', { sha256: wrong }), v, opts()), 'DATA_CHECKSUM_MISMATCH');
    assert.ok(err.message.includes(srv.url('/h.bin')));
    assert.ok(err.message.includes(wrong));
    assert.ok(err.message.includes(sha256(data)));
    assert.deepEqual(readdirSync(v), []);
    const cache = new DataCache(join(tmp.dir, 'cache'));
    assert.equal(existsSync(join(cache.blobsDir, sha256(data))), false);
    assert.equal(existsSync(cache.partialPath(srv.url('/h.bin'))), false);
    assert.equal(cache.list().some((e) => e.uri === srv.url('/h.bin')), false);
    await rejectsWith(ingress(spec(srv.url('/h.bin'), 'file://h.bin', { sha256: 'xyz' }), v, opts()), 'DATA_BAD_CHECKSUM');
  });

  test('unreachable port: DATA_UNREACHABLE naming host and URL', T, async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}/x.bin`;
    const err = await rejectsWith(ingress(spec(url, 'file://x.bin'), vol(), opts({ retries: 2 })), 'DATA_UNREACHABLE');
    assert.ok(err.message.includes(`127.0.0.1:${port}`));
    assert.ok(err.message.includes(url));
    assert.match(err.message, /connection refused/);
  });

  test('unknown host name: DATA_UNREACHABLE without a download', T, async () => {
    const url = 'http://warren-test.invalid/x.bin'; // RFC 6761: never resolves
    const err = await rejectsWith(ingress(spec(url, 'file://x.bin'), vol(), opts({ retries: 1 })), 'DATA_UNREACHABLE');
    assert.ok(err.message.includes('warren-test.invalid'));
    assert.match(err.message, /DNS/);
  });

  test('https with an untrusted certificate: DATA_TLS', T, async () => {
    const d = join(tmp.dir, 'tls');
    mkdirSync(d);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-keyout', join(d, 'key.pem'), '-out', join(d, 'cert.pem')], { stdio: 'ignore' });
    const tls = createHttpsServer({ key: readFileSync(join(d, 'key.pem')), cert: readFileSync(join(d, 'cert.pem')) }, (_q, r) => r.end('x'));
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/x`;
      const err = await rejectsWith(ingress(spec(url, 'file://x'), vol(), opts()), 'DATA_TLS');
      assert.ok(err.message.includes('127.0.0.1'));
      assert.match(err.hint!, /NODE_EXTRA_CA_CERTS/);
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((r) => tls.close(() => r()));
    }
  });

  test('destinations may not leave the volume', T, async () => {
    srv.objects.set('/p.bin', bytes(10, 2));
    const v = vol();
    const err = await rejectsWith(ingress(spec(srv.url('/p.bin'), 'file://../../etc/passwd'), v, opts()), 'DATA_PATH_ESCAPE');
    assert.equal(err.exitCode, 2);
    await rejectsWith(ingress(spec(srv.url('/p.bin'), 'file://a/../../x'), v, opts()), 'DATA_PATH_ESCAPE');
    // A symbolic link inside the volume that points outside it.
    const outside = join(tmp.dir, 'outside');
    mkdirSync(outside);
    symlinkSync(outside, join(v, 'link'));
    await rejectsWith(ingress(spec(srv.url('/p.bin'), 'file://link/p.bin'), v, opts()), 'DATA_PATH_ESCAPE');
    assert.deepEqual(readdirSync(outside), []);
    // An absolute path is inside the volume.
    const r = await ingress(spec(srv.url('/p.bin'), 'file:///abs/p.bin'), v, opts());
    assert.equal(r.target, join(v, 'abs', 'p.bin'));
    await rejectsWith(ingress(spec(srv.url('/p.bin'), 's3://bucket/x'), v, opts()), 'DATA_BAD_URI');
    await rejectsWith(ingress(spec('ftp://h/x', 'file://x'), v, opts()), 'DATA_BAD_URI');
  });

  test('credentials from a secret are sent as Basic auth', T, async () => {
    srv.objects.set('/auth.bin', bytes(1000, 3));
    srv.auth = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    try {
      await rejectsWith(ingress(spec(srv.url('/auth.bin'), 'file://a'), vol(), opts()), 'DATA_ACCESS_DENIED');
      const secrets = (ref: string): Record<string, string> | undefined => (ref === 'secret://user/web' ? { username: 'alice', password: 's3cret' } : undefined);
      const t = spec(srv.url('/auth.bin'), 'file://a');
      t.source.secret = 'secret://user/web';
      const r = await ingress(t, vol(), opts({ secrets }));
      assert.equal(r.bytes, 1000);
      t.source.secret = 'secret://user/nope';
      await rejectsWith(ingress(t, vol(), opts({ secrets })), 'DATA_SECRET_NOT_FOUND');
    } finally {
      delete srv.auth;
    }
  });
});

describe('HTTP egress', () => {
  let srv: TestServer;
  let tmp: { dir: string; cleanup: () => void };
  before(async () => {
    srv = await startServer();
    tmp = tempDir('warren-data-egress-');
  });
  after(async () => {
    await srv.close();
    tmp.cleanup();
  });

  test('PUT uploads the file, retrying a 5xx', T, async () => {
    const v = join(tmp.dir, 'vol');
    mkdirSync(join(v, 'out'), { recursive: true });
    const data = bytes(250_000, 21);
    writeFileSync(join(v, 'out', 'r.bin'), data);
    srv.faults.set('/up/r.bin', [{ status: 502 }]);
    const r = await egress(spec('file://out/r.bin', srv.url('/up/')), v, { cacheDir: join(tmp.dir, 'cache'), retryBaseMs: 10 });
    assert.equal(r.target, srv.url('/up/r.bin'));
    assert.equal(r.sha256, sha256(data));
    assert.deepEqual(srv.uploads.get('/up/r.bin'), data);
    assert.equal(srv.requests.filter((x) => x.method === 'PUT').length, 2);
  });

  test('missing source and escaping source are clear errors', T, async () => {
    const v = join(tmp.dir, 'vol2');
    mkdirSync(v);
    const e = await rejectsWith(egress(spec('file://nope.txt', srv.url('/x')), v, { cacheDir: join(tmp.dir, 'cache') }), 'DATA_NOT_FOUND');
    assert.match(e.message, /nope\.txt/);
    await rejectsWith(egress(spec('file://../../etc/passwd', srv.url('/x')), v, { cacheDir: join(tmp.dir, 'cache') }), 'DATA_PATH_ESCAPE');
    assert.equal(srv.uploads.has('/x'), false);
  });
});
