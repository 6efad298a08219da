// Pulls from a real registry (Debian's docker-registry on loopback) through a counting
// proxy: tags, digests, indexes, whiteouts, the cache, and the bad paths.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareImage, ImageCache, pushSif, pushImage } from '../../../src/image/index.js';
import { buildLayer, MT, RegistryClient, sha256Digest } from '../../../src/image/oci/index.js';
import { tempDir, sharedDir } from '../../helpers.js';
import { registryAvailable, startProxy, startRegistry, type CountingProxy, type LoopbackRegistry } from './registry.js';
import { pushBusybox, pushMultiPlatform, testConfig } from './fixtures.js';

const skip = registryAvailable() ? false : 'docker-registry is not installed (scripts/apt/image.txt; run scripts/setup.sh)';

function assertWarren(e: unknown, code: string, mention?: string): true {
  const err = e as { code?: string; message: string; hint?: string };
  assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
  assert.ok(err.hint && err.hint.length > 10, 'has a hint');
  if (mention) assert.ok(err.message.includes(mention), `message names ${mention}: ${err.message}`);
  return true;
}

/** The cache holds no image entry and no temp files after a failure. */
function assertNothingHalfWritten(cacheDir: string): void {
  const images = existsSync(join(cacheDir, 'images')) ? readdirSync(join(cacheDir, 'images')) : [];
  const tmp = existsSync(join(cacheDir, 'tmp')) ? readdirSync(join(cacheDir, 'tmp')) : [];
  const locks = existsSync(join(cacheDir, 'locks')) ? readdirSync(join(cacheDir, 'locks')) : [];
  assert.deepEqual(images, [], 'no image entry');
  assert.deepEqual(tmp, [], 'no temp leftovers');
  assert.deepEqual(locks, [], 'no lock left');
}

describe('OCI pulls from a loopback registry', { skip, timeout: 180_000 }, () => {
  let reg: LoopbackRegistry;
  let proxy: CountingProxy;
  let tmp: { dir: string; cleanup: () => void };
  let busybox: { digest: string };
  let multi: Awaited<ReturnType<typeof pushMultiPlatform>>;
  let n = 0;
  const freshCache = () => join(tmp.dir, `cache-${++n}`);
  const via = (path: string) => `docker://${proxy.host}/${path}`;

  before(async () => {
    tmp = tempDir('warren-oci-');
    reg = await startRegistry();
    proxy = await startProxy(reg.url);
    busybox = await pushBusybox(`docker://${reg.host}/test/busybox:1.0`);
    multi = await pushMultiPlatform(`docker://${reg.host}/test/multi:latest`);
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    tmp?.cleanup();
  });

  test('pull by tag: layers unpacked with whiteouts, links, modes and config', async () => {
    const cacheDir = freshCache();
    const phases = new Set<string>();
    let lastDownload = 0;
    const img = await prepareImage(via('test/busybox:1.0'), {
      cacheDir,
      platform: { os: 'linux', architecture: 'amd64' },
      onProgress: (p) => {
        phases.add(p.phase);
        if (p.phase === 'download') lastDownload = p.bytes ?? 0;
      },
    });
    assert.deepEqual([...phases].sort(), ['done', 'download', 'resolve', 'unpack']);
    assert.equal(lastDownload, img.pull?.bytesDownloaded);
    assert.equal(img.kind, 'rootfs');
    assert.equal(img.digest, busybox.digest);
    assert.equal(img.path, join(cacheDir, 'images', busybox.digest.slice(7), 'rootfs'));
    const r = img.path;
    // the real busybox runs from the unpacked tree
    assert.equal(execFileSync(join(r, 'bin', 'busybox'), ['echo', 'hi']).toString(), 'hi\n');
    assert.equal(readlinkSync(join(r, 'bin', 'sh')), 'busybox');
    assert.equal(readlinkSync(join(r, 'bin', 'ls')), '/bin/busybox');
    assert.equal(statSync(join(r, 'bin', 'bb-hard')).ino, statSync(join(r, 'bin', 'busybox')).ino, 'hard link');
    assert.equal(statSync(join(r, 'bin', 'busybox')).mode & 0o777, 0o755);
    assert.equal(statSync(join(r, 'etc', 'secret')).mode & 0o777, 0o600);
    assert.equal(statSync(join(r, 'tmp')).mode & 0o7777, 0o1777);
    // whiteouts: a file, a directory, an opaque directory (lower contents gone, upper kept)
    assert.equal(existsSync(join(r, 'etc', 'old')), false);
    assert.equal(existsSync(join(r, 'var', 'cache')), false);
    assert.deepEqual(readdirSync(join(r, 'etc', 'conf.d')), ['b.conf']);
    assert.ok(!readdirSync(join(r, 'etc')).some((f) => f.startsWith('.wh.')), 'no whiteout files left');
    assert.equal(readFileSync(join(r, 'etc', 'motd'), 'utf8'), 'updated\n');
    assert.equal(readlinkSync(join(r, 'usr', 'bin', 'env')), '../../bin/busybox');
    assert.deepEqual(img.config, {
      env: ['PATH=/usr/bin:/bin', 'WARREN_TEST=1'],
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo hello'],
      workingDir: '/tmp',
      user: '1000:1000',
      labels: { 'org.warren.test': 'busybox' },
    });
    assert.equal(img.pull?.cached, false);
    assert.equal(img.pull?.blobsDownloaded, 3);
  });

  test('a second pull makes no request at all; policy always asks only for the manifest', async () => {
    const cacheDir = freshCache();
    await prepareImage(via('test/busybox:1.0'), { cacheDir });
    proxy.reset();
    const again = await prepareImage(via('test/busybox:1.0'), { cacheDir });
    assert.equal(again.pull?.cached, true);
    assert.equal(again.pull?.bytesDownloaded, 0);
    assert.deepEqual(proxy.requests, []);
    const always = await prepareImage(via('test/busybox:1.0'), { cacheDir, policy: 'always' });
    assert.equal(always.pull?.cached, true);
    assert.equal(always.pull?.bytesDownloaded, 0);
    assert.deepEqual(proxy.blobGets(), []);
    assert.deepEqual(proxy.requests, ['GET /v2/test/busybox/manifests/1.0']);
    // another image sharing the upper layer: only its own blobs are downloaded
    proxy.reset();
    await prepareImage(via('test/multi:arm64-only'), { cacheDir });
    assert.equal(proxy.blobGets().length, 2, `config and base layer only: ${proxy.blobGets().join(', ')}`);
  });

  test('pull by digest reuses the entry of the tag pull', async () => {
    const cacheDir = freshCache();
    const byTag = await prepareImage(via('test/busybox:1.0'), { cacheDir });
    proxy.reset();
    const byDigest = await prepareImage(via(`test/busybox@${busybox.digest}`), { cacheDir });
    assert.equal(byDigest.path, byTag.path);
    assert.deepEqual(proxy.requests, []);
    // and by digest into an empty cache
    const other = await prepareImage(via(`test/busybox@${busybox.digest}`), { cacheDir: freshCache() });
    assert.equal(other.digest, busybox.digest);
    assert.equal(readFileSync(join(other.path, 'etc', 'arch'), 'utf8'), 'amd64\n');
  });

  test('multi-platform index: the platform picks the manifest', async () => {
    const cacheDir = freshCache();
    const arm = await prepareImage(via('test/multi:latest'), { cacheDir, platform: { os: 'linux', architecture: 'arm64' } });
    const amd = await prepareImage(via('test/multi:latest'), { cacheDir, platform: { os: 'linux', architecture: 'amd64' } });
    assert.equal(arm.digest, multi.arm.digest);
    assert.equal(amd.digest, multi.amd.digest);
    assert.equal(readFileSync(join(arm.path, 'etc', 'arch'), 'utf8'), 'arm64\n');
    assert.equal(readFileSync(join(amd.path, 'etc', 'arch'), 'utf8'), 'amd64\n');
    // pinned to the index digest: still resolved per platform
    const pinned = await prepareImage(via(`test/multi@${multi.index.digest}`), { cacheDir: freshCache(), platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(pinned.digest, multi.arm.digest);
    await assert.rejects(
      prepareImage(via('test/multi:latest'), { cacheDir, platform: { os: 'linux', architecture: 'riscv64' } }),
      (e) => assertWarren(e, 'IMAGE_PLATFORM_NOT_FOUND', 'test/multi:latest'),
    );
  });

  test('Docker v2 manifests and manifest lists; uncompressed tar layers', async () => {
    const client = new RegistryClient(reg.host);
    try {
      const base = await buildLayer([{ name: 'bin/busybox', data: readFileSync('/bin/busybox'), mode: 0o755 }], 'gzip');
      const plain = await buildLayer([{ name: 'etc/plain', data: 'uncompressed tar\n' }], 'none');
      const cfg = Buffer.from(JSON.stringify(testConfig('amd64', [base.diffId, plain.diffId])));
      for (const b of [base.data, plain.data, cfg]) await client.uploadBlob('test/dockerv2', sha256Digest(b), b);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT.dockerManifest,
          config: { mediaType: MT.dockerConfig, digest: sha256Digest(cfg), size: cfg.length },
          layers: [
            { mediaType: MT.dockerLayerGzip, digest: sha256Digest(base.data), size: base.data.length },
            { mediaType: MT.ociLayer, digest: sha256Digest(plain.data), size: plain.data.length },
          ],
        }),
      );
      const mdigest = await client.putManifest('test/dockerv2', 'single', manifest, MT.dockerManifest);
      const list = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT.dockerList,
          manifests: [{ mediaType: MT.dockerManifest, digest: mdigest, size: manifest.length, platform: { os: 'linux', architecture: 'amd64' } }],
        }),
      );
      await client.putManifest('test/dockerv2', 'list', list, MT.dockerList);
      const cacheDir = freshCache();
      const one = await prepareImage(via('test/dockerv2:single'), { cacheDir });
      const viaList = await prepareImage(via('test/dockerv2:list'), { cacheDir, platform: { os: 'linux', architecture: 'amd64' } });
      assert.equal(one.digest, mdigest);
      assert.equal(viaList.path, one.path);
      assert.equal(readFileSync(join(one.path, 'etc', 'plain'), 'utf8'), 'uncompressed tar\n');
      assert.equal(execFileSync(join(one.path, 'bin', 'busybox'), ['echo', 'ok']).toString(), 'ok\n');
    } finally {
      await client.close();
    }
  });

  test('unknown tag and unknown repository: IMAGE_NOT_FOUND, nothing written', async () => {
    const cacheDir = freshCache();
    await assert.rejects(prepareImage(via('test/busybox:nope'), { cacheDir }), (e) => assertWarren(e, 'IMAGE_NOT_FOUND', 'test/busybox:nope'));
    await assert.rejects(prepareImage(via('nobody/here:1'), { cacheDir }), (e) => assertWarren(e, 'IMAGE_NOT_FOUND', 'nobody/here:1'));
    assertNothingHalfWritten(cacheDir);
  });

  test('unreachable registry: IMAGE_REGISTRY_UNREACHABLE', async () => {
    const cacheDir = freshCache();
    await assert.rejects(prepareImage('docker://127.0.0.1:1/x/y:1', { cacheDir }), (e) => assertWarren(e, 'IMAGE_REGISTRY_UNREACHABLE', '127.0.0.1:1'));
  });

  test('digest mismatch: a corrupted blob in the registry is detected, nothing cached', async () => {
    const pushed = await pushBusybox(`docker://${reg.host}/test/corrupt:1`, {}, 'amd64', [{ name: 'etc/corrupt-me', data: 'unique' }]);
    const manifest = (await (await fetch(`${reg.url}/v2/test/corrupt/manifests/1`, { headers: { accept: MT.ociManifest } })).json()) as {
      layers: { digest: string }[];
    };
    const target = reg.blobDataPath(manifest.layers[0]!.digest);
    const bytes = readFileSync(target);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(target, bytes);
    const cacheDir = freshCache();
    await assert.rejects(prepareImage(via('test/corrupt:1'), { cacheDir }), (e) => assertWarren(e, 'IMAGE_DIGEST_MISMATCH', 'test/corrupt:1'));
    assertNothingHalfWritten(cacheDir);
    assert.ok(!existsSync(join(cacheDir, 'blobs', 'sha256', manifest.layers[0]!.digest.slice(7))), 'bad blob not stored');
    assert.ok(pushed.digest);
  });

  test('truncated download: IMAGE_DOWNLOAD_INCOMPLETE after retries, nothing half-written', async () => {
    const pushed = await pushBusybox(`docker://${reg.host}/test/trunc:1`, {}, 'amd64', [{ name: 'etc/trunc', data: 'unique2' }]);
    const manifest = (await (await fetch(`${reg.url}/v2/test/trunc/manifests/1`, { headers: { accept: MT.ociManifest } })).json()) as {
      layers: { digest: string }[];
    };
    const layer = manifest.layers[0]!.digest;
    proxy.truncate.add(layer);
    proxy.reset();
    const cacheDir = freshCache();
    try {
      await assert.rejects(prepareImage(via('test/trunc:1'), { cacheDir, retries: 1 }), (e) => assertWarren(e, 'IMAGE_DOWNLOAD_INCOMPLETE', 'test/trunc:1'));
    } finally {
      proxy.truncate.delete(layer);
    }
    assert.equal(proxy.blobGets().filter((r) => r.includes(layer)).length, 2, 'one retry');
    assertNothingHalfWritten(cacheDir);
    // once the network is fine again the pull completes
    const ok = await prepareImage(via('test/trunc:1'), { cacheDir });
    assert.equal(ok.digest, pushed.digest);
  });

  test('concurrent pulls in one process are done once', async () => {
    const cacheDir = freshCache();
    proxy.reset();
    const all = await Promise.all([
      prepareImage(via('test/busybox:1.0'), { cacheDir }),
      prepareImage(via('test/busybox:1.0'), { cacheDir }),
      prepareImage(via('test/busybox:1.0'), { cacheDir }),
      prepareImage(via(`test/busybox@${busybox.digest}`), { cacheDir }),
    ]);
    assert.equal(new Set(all.map((i) => i.path)).size, 1);
    const gets = proxy.blobGets();
    assert.equal(gets.length, 3, `each blob once: ${gets.join(', ')}`);
    assert.equal(new Set(gets).size, 3);
  });

  test('concurrent pulls from two processes are done once', async () => {
    const cacheDir = freshCache();
    proxy.reset();
    const here = fileURLToPath(import.meta.url);
    const child = join(dirname(here), `pull-child${extname(here)}`);
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), child, via('test/multi:latest'), cacheDir], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`child failed (${code}): ${err}`))));
      });
    const [a, b] = await Promise.all([run(), run()]);
    assert.equal(a, b);
    assert.equal(a, join(cacheDir, 'images', multi.amd.digest.slice(7), 'rootfs'));
    const gets = proxy.blobGets();
    assert.equal(gets.length, 3, `each blob once: ${gets.join(', ')}`);
    assert.deepEqual(readdirSync(join(cacheDir, 'locks')), []);
  });

  test('a pull killed mid-way leaves no entry; the next pull cleans up and completes', async () => {
    const pushed = await pushBusybox(`docker://${reg.host}/test/crash:1`, {}, 'amd64', [{ name: 'etc/crash', data: 'unique3' }]);
    const manifest = (await (await fetch(`${reg.url}/v2/test/crash/manifests/1`, { headers: { accept: MT.ociManifest } })).json()) as {
      layers: { digest: string }[];
    };
    const layer = manifest.layers[0]!.digest;
    const cacheDir = freshCache();
    const here = fileURLToPath(import.meta.url);
    const childFile = join(dirname(here), `pull-child${extname(here)}`);
    proxy.stall.add(layer);
    proxy.reset();
    const p = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), childFile, via('test/crash:1'), cacheDir], { stdio: 'ignore' });
    const closed = new Promise((r) => p.on('close', r));
    try {
      const deadline = Date.now() + 20_000;
      while (!proxy.blobGets().some((r) => r.includes(layer)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      p.kill('SIGKILL');
      await closed;
    } finally {
      proxy.stall.delete(layer);
    }
    assert.deepEqual(readdirSync(join(cacheDir, 'images')), [], 'no image entry after the crash');
    assert.ok(readdirSync(join(cacheDir, 'tmp')).length > 0, 'the crashed pull left work in tmp/');
    assert.equal(readdirSync(join(cacheDir, 'locks')).length, 1, 'and its lock');
    const img = await prepareImage(via('test/crash:1'), { cacheDir });
    assert.equal(img.digest, pushed.digest);
    assert.equal(readFileSync(join(img.path, 'etc', 'crash'), 'utf8'), 'unique3');
    assert.deepEqual(readdirSync(join(cacheDir, 'tmp')), [], 'leftovers of the dead process removed');
    assert.deepEqual(readdirSync(join(cacheDir, 'locks')), [], 'its lock removed');
  });

  test('layer entries cannot escape the rootfs (symlinks and ..)', async () => {
    const outside = join(tmp.dir, 'outside');
    mkdirSync(outside);
    const layer = await buildLayer(
      [
        { name: 'evil', type: 'symlink', linkname: outside },
        { name: 'evil/pwned', data: 'x' },
        { name: 'rel', type: 'symlink', linkname: '../../../../../../../..' + outside },
        { name: 'rel/pwned2', data: 'y' },
      ],
      'gzip',
    );
    await pushImage(`docker://${reg.host}/test/evil:1`, { config: testConfig('amd64', [layer.diffId]), layers: [{ mediaType: layer.mediaType, data: layer.data }] });
    const img = await prepareImage(via('test/evil:1'), { cacheDir: freshCache() });
    assert.deepEqual(readdirSync(outside), [], 'nothing written outside the rootfs');
    assert.equal(readFileSync(join(img.path, outside, 'pwned'), 'utf8'), 'x');
    assert.equal(readFileSync(join(img.path, outside, 'pwned2'), 'utf8'), 'y');
    assert.ok(lstatSync(join(img.path, 'evil')).isSymbolicLink());
    // A `..` in an entry name is refused outright (IMAGE_LAYER_UNSAFE), not clamped.
    const dotdot = await buildLayer([{ name: '../../../../escape-dotdot', data: 'z' }], 'gzip');
    await pushImage(`docker://${reg.host}/test/evil-dotdot:1`, { config: testConfig('amd64', [dotdot.diffId]), layers: [{ mediaType: dotdot.mediaType, data: dotdot.data }] });
    const cacheDir = freshCache();
    await assert.rejects(prepareImage(via('test/evil-dotdot:1'), { cacheDir }), (e) => assertWarren(e, 'IMAGE_LAYER_UNSAFE', 'test/evil-dotdot:1'));
    assertNothingHalfWritten(cacheDir);
    assert.equal(existsSync(join(tmp.dir, 'escape-dotdot')), false);
  });

  test('a hard link to a file outside the image is refused', async () => {
    for (const [tag, linkname, code] of [
      ['1', '../../../../etc/hostname', 'IMAGE_LAYER_UNSAFE'],
      ['2', '/etc/hostname', 'IMAGE_LAYER_INVALID'],
    ] as const) {
      const layer = await buildLayer([{ name: 'hl', type: 'link', linkname }], 'none');
      await pushImage(`docker://${reg.host}/test/badlink:${tag}`, { config: testConfig('amd64', [layer.diffId]), layers: [{ mediaType: layer.mediaType, data: layer.data }] });
      const cacheDir = freshCache();
      await assert.rejects(prepareImage(via(`test/badlink:${tag}`), { cacheDir }), (e) => assertWarren(e, code, `test/badlink:${tag}`));
      assertNothingHalfWritten(cacheDir);
    }
  });

  test('a layer that is not a tar archive: IMAGE_LAYER_INVALID', async () => {
    const junk = Buffer.from('this is not gzip at all, just text '.repeat(20));
    await pushImage(`docker://${reg.host}/test/junk:1`, { config: testConfig('amd64', []), layers: [{ mediaType: MT.ociLayerGzip, data: junk }] });
    const cacheDir = freshCache();
    await assert.rejects(prepareImage(via('test/junk:1'), { cacheDir }), (e) => assertWarren(e, 'IMAGE_LAYER_INVALID', 'test/junk:1'));
    assertNothingHalfWritten(cacheDir);
  });

  test('an unknown layer media type: IMAGE_LAYER_UNSUPPORTED', async () => {
    await pushImage(`docker://${reg.host}/test/weird:1`, { config: testConfig('amd64', []), layers: [{ mediaType: 'application/x-weird', data: Buffer.from('x') }] });
    const cacheDir = freshCache();
    await assert.rejects(prepareImage(via('test/weird:1'), { cacheDir }), (e) => assertWarren(e, 'IMAGE_LAYER_UNSUPPORTED', 'test/weird:1'));
    assertNothingHalfWritten(cacheDir);
  });

  test('oras:// SIF artifacts and local SIF files', async (t) => {
    const sif = join(sharedDir, 'sif-testdata', 'images', 'one-group.sif');
    if (!existsSync(sif)) {
      t.skip(`shared test data missing: ${sif}`);
      return;
    }
    await pushSif(`oras://${reg.host}/sifs/one-group:1`, sif);
    const cacheDir = freshCache();
    const img = await prepareImage(`oras://${proxy.host}/sifs/one-group:1`, { cacheDir });
    assert.equal(img.kind, 'sif');
    assert.ok(readFileSync(img.path).equals(readFileSync(sif)));
    proxy.reset();
    assert.equal((await prepareImage(`oras://${proxy.host}/sifs/one-group:1`, { cacheDir })).path, img.path);
    assert.deepEqual(proxy.requests, []);
    // local files
    const local = await prepareImage(`file://${sif}`);
    assert.deepEqual([local.kind, local.path], ['sif', sif]);
    const bad = join(tmp.dir, 'corrupt.sif');
    writeFileSync(bad, readFileSync(sif).subarray(0, 20));
    await assert.rejects(prepareImage(bad), (e) => assertWarren(e, 'IMAGE_SIF_INVALID', bad));
    const cut = join(tmp.dir, 'truncated.sif');
    const whole = readFileSync(sif);
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
    await assert.rejects(prepareImage(`file://${cut}`), (e) => assertWarren(e, 'SIF_TRUNCATED', cut));
    await assert.rejects(prepareImage(join(tmp.dir, 'missing.sif')), (e) => assertWarren(e, 'IMAGE_LOCAL_NOT_FOUND', 'missing.sif'));
    // an artifact whose layer is not a SIF
    await pushImage(`oras://${reg.host}/sifs/fake:1`, { config: Buffer.from('{}'), configMediaType: MT.sifConfig, layers: [{ mediaType: MT.sifLayer, data: Buffer.alloc(100, 1) }] });
    const c2 = freshCache();
    await assert.rejects(prepareImage(`oras://${proxy.host}/sifs/fake:1`, { cacheDir: c2 }), (e) => assertWarren(e, 'IMAGE_SIF_INVALID', 'sifs/fake:1'));
    assertNothingHalfWritten(c2);
  });

  test('a local rootfs directory is used in place', async () => {
    const dir = join(tmp.dir, 'myroot');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    const img = await prepareImage(dir);
    assert.deepEqual([img.kind, img.path, img.uri], ['rootfs', dir, `file://${dir}`]);
  });

  test('cache: list, remove, prune, and stale leftovers of a crashed pull', async () => {
    const cacheDir = freshCache();
    const cache = new ImageCache(cacheDir);
    const a = await prepareImage(via('test/busybox:1.0'), { cacheDir });
    const b = await prepareImage(via('test/multi:latest'), { cacheDir, platform: { os: 'linux', architecture: 'arm64' } });
    let list = cache.list();
    assert.equal(list.length, 2);
    const la = list.find((i) => i.digest === a.digest)!;
    assert.deepEqual(la.refs.map((r) => r.uri), [`docker://${proxy.host}/test/busybox:1.0`]);
    assert.ok(la.sizeBytes > 1_000_000);
    assert.equal(la.path, a.path);
    // a crashed pull: temp dir and lock of a process that no longer exists
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('close', r));
    const stale = join(cacheDir, 'tmp', `${dead.pid}-deadbeef`);
    mkdirSync(join(stale, 'rootfs'), { recursive: true });
    const lockFile = join(cacheDir, 'locks', 'x.lock');
    const fd = openSync(lockFile, 'w');
    writeSync(fd, `${dead.pid}\n`);
    closeSync(fd);
    // remove by reference: the image and its refs go, its blobs stay until prune
    const removed = cache.remove(`${proxy.host}/test/multi:latest`);
    assert.deepEqual(removed.images, [b.digest]);
    assert.equal(existsSync(b.path), false);
    list = cache.list();
    assert.deepEqual(list.map((i) => i.digest), [a.digest]);
    assert.throws(() => cache.remove(`${proxy.host}/test/multi:latest`), (e) => assertWarren(e, 'IMAGE_NOT_IN_CACHE', 'test/multi:latest'));
    const blobsBefore = readdirSync(join(cacheDir, 'blobs', 'sha256')).length;
    const pruned = cache.prune();
    assert.deepEqual(pruned.images, []);
    assert.equal(pruned.blobs, blobsBefore - 3, 'blobs of the removed image');
    assert.ok(pruned.temp >= 2, 'stale temp dir and lock');
    assert.equal(existsSync(stale), false);
    assert.equal(existsSync(lockFile), false);
    assert.ok(existsSync(a.path), 'referenced image kept');
    // remove by digest prefix, then prune --all
    const again = await prepareImage(via('test/multi:latest'), { cacheDir, platform: { os: 'linux', architecture: 'arm64' } });
    assert.deepEqual(cache.remove(again.digest!.slice(7, 19)).images, [again.digest]);
    const all = cache.prune({ all: true });
    assert.deepEqual(all.images, [a.digest]);
    assert.deepEqual(cache.list(), []);
    assert.deepEqual(readdirSync(join(cacheDir, 'blobs', 'sha256')), []);
  });
});
