// file:// ingress and egress, full disks (a small tmpfs), the cache and `warren cache`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { ingress, egress, DataCache, defaultSecretResolver, type DataOptions } from '../../src/data/index.js';
import { register } from '../../src/cli/commands/cache.js';
import type { TransferSpec } from '../../src/workflow/types.js';
import { tempDir } from '../helpers.js';
import { bytes, sha256, startServer, type TestServer } from './httpserver.js';

const T = { timeout: 20_000 };
const spec = (src: string, dst: string, extra: Partial<TransferSpec> = {}): TransferSpec => ({ source: { uri: src }, destination: { uri: dst }, ...extra });

async function codeOf(p: Promise<unknown>): Promise<Error & { code: string; hint: string; exitCode: number }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code: string; hint: string; exitCode: number };
  }
  assert.fail('expected an error');
}

describe('file:// ingress and egress', () => {
  let tmp: { dir: string; cleanup: () => void };
  let opts: DataOptions;
  before(() => {
    tmp = tempDir('warren-data-file-');
    opts = { cacheDir: join(tmp.dir, 'cache'), baseDir: join(tmp.dir, 'base') };
    mkdirSync(join(tmp.dir, 'base', 'inputs'), { recursive: true });
  });
  after(() => tmp.cleanup());

  test('ingress is cached by size and mtime; a changed source is copied again', T, async () => {
    const src = join(tmp.dir, 'base', 'inputs', 'genome.fa');
    writeFileSync(src, '>chr1\nACGT\n');
    const v1 = join(tmp.dir, 'v1');
    const r1 = await ingress(spec('file://inputs/genome.fa', 'file://ref/genome.fa'), v1, opts);
    assert.equal(r1.cached, false);
    assert.equal(readFileSync(join(v1, 'ref', 'genome.fa'), 'utf8'), '>chr1\nACGT\n');
    const r2 = await ingress(spec(`file://${src}`, 'file://g.fa'), join(tmp.dir, 'v2'), opts);
    assert.equal(r2.cached, true, 'absolute and relative URIs of one file share the entry');
    writeFileSync(src, '>chr1\nTTTT\n');
    utimesSync(src, new Date(), new Date(Date.now() + 5000));
    const r3 = await ingress(spec('file://inputs/genome.fa', 'file://ref/genome.fa'), v1, opts);
    assert.equal(r3.cached, false);
    assert.equal(readFileSync(join(v1, 'ref', 'genome.fa'), 'utf8'), '>chr1\nTTTT\n');
    const e = await codeOf(ingress(spec('file://inputs/none.fa', 'file://x'), v1, opts));
    assert.equal(e.code, 'DATA_NOT_FOUND');
    assert.match(e.message, /none\.fa/);
    const d = await codeOf(ingress(spec('file://inputs', 'file://x'), v1, opts));
    assert.equal(d.code, 'DATA_NOT_A_FILE');
  });

  test('egress to absolute, relative and directory destinations; declared sha256 is checked first', T, async () => {
    const v = join(tmp.dir, 'ev');
    mkdirSync(join(v, 'out'), { recursive: true });
    writeFileSync(join(v, 'out', 'res.txt'), 'result\n');
    const abs = join(tmp.dir, 'exports', 'a', 'res.txt');
    const r1 = await egress(spec('file://out/res.txt', `file://${abs}`), v, opts);
    assert.equal(r1.target, abs);
    assert.equal(r1.sha256, sha256(Buffer.from('result\n')));
    assert.equal(readFileSync(abs, 'utf8'), 'result\n');
    const r2 = await egress(spec('file:///out/res.txt', 'file://results/'), v, opts);
    assert.equal(r2.target, join(tmp.dir, 'base', 'results', 'res.txt'));
    assert.equal(readFileSync(r2.target, 'utf8'), 'result\n');
    const bad = await codeOf(egress(spec('file://out/res.txt', `file://${tmp.dir}/exports/b.txt`, { sha256: 'b'.repeat(64) }), v, opts));
    assert.equal(bad.code, 'DATA_CHECKSUM_MISMATCH');
    assert.equal(existsSync(join(tmp.dir, 'exports', 'b.txt')), false);
    assert.deepEqual(readdirSync(join(tmp.dir, 'exports', 'a')), ['res.txt'], 'no temp files left');
    const dir = await codeOf(egress(spec('file://out', 'file:///tmp/x'), v, opts));
    assert.equal(dir.code, 'DATA_NOT_A_FILE');
  });
});

describe('full disk (tmpfs of 256 KiB)', () => {
  let tmp: { dir: string; cleanup: () => void };
  let srv: TestServer;
  const mounts: string[] = [];
  let canMount = true;
  const small = (name: string): string => {
    const d = join(tmp.dir, name);
    mkdirSync(d, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', d]);
    mounts.push(d);
    return d;
  };
  before(async () => {
    tmp = tempDir('warren-data-enospc-');
    srv = await startServer();
    srv.objects.set('/big.bin', bytes(1024 * 1024, 41));
    try {
      small('probe');
    } catch {
      canMount = false;
    }
  });
  after(async () => {
    for (const m of mounts.reverse()) {
      try { execFileSync('umount', [m]); } catch { /* already */ }
    }
    await srv.close();
    tmp.cleanup();
  });

  test('volume full: DATA_DISK_FULL names the volume path and URL; nothing half-written', T, async (t) => {
    if (!canMount) return t.skip('cannot mount tmpfs here (needs root)');
    const vol = small('vol');
    const url = srv.url('/big.bin');
    const e = await codeOf(ingress(spec(url, 'file://data/big.bin'), vol, { cacheDir: join(tmp.dir, 'cache1'), retryBaseMs: 10 }));
    assert.equal(e.code, 'DATA_DISK_FULL');
    assert.ok(e.message.includes(join(vol, 'data', 'big.bin')), e.message);
    assert.ok(e.message.includes(url));
    assert.match(e.hint, /space/);
    assert.deepEqual(readdirSync(join(vol, 'data')), [], 'no partial destination file');
    // The cache holds a verified, complete entry (re-used once there is space).
    const entries = new DataCache(join(tmp.dir, 'cache1')).list();
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.sha256, sha256(srv.objects.get('/big.bin')!));
  });

  test('cache full: DATA_DISK_FULL, no cache entry or blob, volume untouched', T, async (t) => {
    if (!canMount) return t.skip('cannot mount tmpfs here (needs root)');
    const cacheDir = small('cache2');
    const vol = join(tmp.dir, 'vol2');
    mkdirSync(vol);
    const url = srv.url('/big.bin');
    const e = await codeOf(ingress(spec(url, 'file://big.bin'), vol, { cacheDir, retryBaseMs: 10 }));
    assert.equal(e.code, 'DATA_DISK_FULL');
    assert.ok(e.message.includes(url));
    assert.ok(e.message.includes(cacheDir));
    assert.ok(e.message.includes(join(vol, 'big.bin')), 'names the volume destination too');
    assert.deepEqual(readdirSync(vol), []);
    const cache = new DataCache(cacheDir);
    assert.deepEqual(cache.list(), []);
    assert.deepEqual(existsSync(cache.blobsDir) ? readdirSync(cache.blobsDir) : [], []);
  });
});

describe('cache listing and pruning', () => {
  let tmp: { dir: string; cleanup: () => void };
  before(() => (tmp = tempDir('warren-data-cache-')));
  after(() => tmp.cleanup());

  async function fill(cacheDir: string): Promise<string> {
    const src = join(tmp.dir, 'src');
    mkdirSync(src, { recursive: true });
    for (const [name, n] of [['a', 1000], ['b', 2000], ['c', 3000]] as const) {
      writeFileSync(join(src, name), bytes(n, n));
      await ingress(spec(`file://${src}/${name}`, `file://${name}`), join(tmp.dir, 'vol'), { cacheDir });
      await new Promise((r) => setTimeout(r, 5));
    }
    return src;
  }

  test('list, prune by age, by size (LRU), and all', T, async () => {
    const dir = join(tmp.dir, 'c1');
    const src = await fill(dir);
    const cache = new DataCache(dir);
    const l = cache.list();
    assert.deepEqual(l.map((e) => e.uri), [`file://${src}/c`, `file://${src}/b`, `file://${src}/a`]);
    assert.deepEqual(l.map((e) => e.bytes), [3000, 2000, 1000]);
    // Age 'a' by two days.
    const f = join(dir, 'entries', `${l[2]!.key}.json`);
    const e = JSON.parse(readFileSync(f, 'utf8'));
    e.lastUsed = new Date(Date.now() - 2 * 86400_000).toISOString();
    writeFileSync(f, JSON.stringify(e));
    assert.deepEqual(cache.prune({ olderThanSec: 86400 }), { removed: 1, bytes: 1000 });
    assert.deepEqual(cache.list().map((x) => x.bytes), [3000, 2000]);
    assert.deepEqual(cache.prune({ maxBytes: 4000 }), { removed: 1, bytes: 2000 });
    assert.deepEqual(cache.list().map((x) => x.bytes), [3000]);
    // The volume's hard-linked copies survive.
    assert.equal(statSync(join(tmp.dir, 'vol', 'a')).size, 1000);
    writeFileSync(cache.partialPath('http://x/y'), 'partial');
    assert.deepEqual(cache.prune({ all: true }), { removed: 2, bytes: 3007 });
    assert.deepEqual(cache.list(), []);
    assert.equal(cache.size(), 0);
  });

  test('warren cache ls / prune', T, async () => {
    const home = join(tmp.dir, 'home');
    const old = process.env.WARREN_HOME;
    process.env.WARREN_HOME = home;
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const run = async (...args: string[]): Promise<string> => {
      out.length = 0;
      const program = new Command().exitOverride();
      register(program);
      process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
      try {
        await program.parseAsync(['node', 'warren', ...args]);
      } finally {
        process.stdout.write = write;
      }
      return out.join('');
    };
    try {
      assert.match(await run('cache', 'ls'), /is empty/);
      await fill(join(home, 'cache', 'data'));
      const json = JSON.parse(await run('cache', 'ls', '--json')) as Array<{ bytes: number }>;
      assert.deepEqual(json.map((e) => e.bytes), [3000, 2000, 1000]);
      const table = await run('cache', 'ls');
      assert.match(table, /^KEY +SIZE +LAST USED +URI$/m);
      assert.match(table, /3 entries/);
      assert.match(await run('cache', 'prune', '--max-size', '3KiB'), /removed 2 entries/);
      const e = await codeOf(run('cache', 'prune', '--older-than', 'soon'));
      assert.equal(e.code, 'DATA_BAD_OPTION');
      assert.equal(e.exitCode, 2);
      assert.equal((await codeOf(run('cache', 'prune'))).code, 'DATA_BAD_OPTION');
      assert.match(await run('cache', 'prune', '--all'), /removed 1 entry/);
    } finally {
      process.stdout.write = write;
      if (old === undefined) delete process.env.WARREN_HOME;
      else process.env.WARREN_HOME = old;
    }
  });
});

describe('secrets', () => {
  test('file in $WARREN_HOME/secrets and WARREN_SECRET_<NAME>_<KEY> variables', () => {
    const { dir, cleanup } = tempDir('warren-data-secret-');
    try {
      mkdirSync(join(dir, 'secrets'));
      writeFileSync(join(dir, 'secrets', 'aws-prod.json'), JSON.stringify({ accessKeyId: 'AK', secretAccessKey: 'SK' }), { mode: 0o600 });
      const r = defaultSecretResolver(dir, { WARREN_SECRET_AWS_PROD_TOKEN: 'TOK', WARREN_SECRET_WEB_USERNAME: 'u', WARREN_SECRET_WEB_PASSWORD: 'p' });
      assert.deepEqual(r('secret://user/aws-prod'), { accessKeyId: 'AK', secretAccessKey: 'SK', token: 'TOK' });
      assert.deepEqual(r('web'), { username: 'u', password: 'p' });
      assert.equal(r('secret://user/none'), undefined);
      assert.throws(() => r('secret://user/../../etc/passwd'), { code: 'DATA_SECRET_INVALID' });
      writeFileSync(join(dir, 'secrets', 'broken.json'), '{nope');
      assert.throws(() => r('broken'), (e: Error & { code: string }) => e.code === 'DATA_SECRET_INVALID' && e.message.includes('broken.json'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
