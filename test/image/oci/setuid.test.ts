// The attacks of issue 7 §2 ("Images on a shared node"), as written, against real pulls
// from a loopback registry:
//   - a pulled layer holds a setuid-root copy of id(1); user `nobody` runs it from the cache
//     and must not get euid 0 (the cache and a new WARREN_HOME are 0700; the bits are
//     dropped; even a cache made reachable gives nobody nothing);
//   - whiteouts `.wh..` / `bin/.wh...` must fail the pull (not exit 0 with a path that is gone).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { prepareImage, pushImage } from '../../../src/image/index.js';
import { MT } from '../../../src/image/oci/index.js';
import { tempDir, warrenBin } from '../../helpers.js';
import { registryAvailable, startRegistry, type LoopbackRegistry } from './registry.js';
import { testConfig } from './fixtures.js';
import { privilegedEntries, rawTar, sha256, type RawEntry } from './tarfix.js';

const ID = '/usr/bin/id';
const asRoot = process.getuid?.() === 0;
const hasRunuser = spawnSync('runuser', ['--help']).status === 0;
const skip = !registryAvailable()
  ? 'docker-registry is not installed (scripts/apt/image.txt; run scripts/setup.sh)'
  : !asRoot || !hasRunuser || !existsSync(ID)
    ? 'needs root, runuser and /usr/bin/id to run a file as user nobody'
    : false;
const platform = { os: 'linux', architecture: 'amd64' };

/** Run `argv` as user nobody; stdout trimmed, status, stderr. */
function asNobody(argv: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync('runuser', ['-u', 'nobody', '--', ...argv], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

async function pushLayers(uri: string, layers: RawEntry[][]): Promise<void> {
  const tars = await Promise.all(layers.map((l) => rawTar(l)));
  await pushImage(uri, {
    config: testConfig('amd64', tars.map(sha256)),
    layers: tars.map((data) => ({ mediaType: MT.ociLayer, data })),
  });
}

describe('images on a shared node (issue 7 §2)', { skip, timeout: 120_000 }, () => {
  let reg: LoopbackRegistry;
  let t: { dir: string; cleanup: () => void };
  const idBytes = () => readFileSync(ID);
  const suidLayer = (): RawEntry[] => [
    { name: 'bin/', type: 'directory' },
    { name: 'bin/id', data: idBytes(), mode: 0o4755, uid: 0, gid: 0 },
    { name: 'bin/gid', data: idBytes(), mode: 0o2755, uid: 0, gid: 0 },
    { name: 'dev/', type: 'directory' },
    { name: 'dev/mem', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 1 },
  ];

  before(async () => {
    t = tempDir('warren-suid-');
    // A world-reachable parent: only the modes Warren gives its own directories protect them.
    chmodSync(t.dir, 0o755);
    reg = await startRegistry();
    await pushLayers(`docker://${reg.host}/evil/suid:1`, [suidLayer()]);
    const lower: RawEntry[] = [{ name: 'bin/', type: 'directory' }, { name: 'bin/sh', data: '#!/bin/true\n', mode: 0o755 }];
    await pushLayers(`docker://${reg.host}/evil/wh-root:1`, [lower, [{ name: '.wh..' }]]);
    await pushLayers(`docker://${reg.host}/evil/wh-parent:1`, [lower, [{ name: 'bin/.wh...' }]]);
  });
  after(async () => {
    await reg?.stop();
    t?.cleanup();
  });

  test('user nobody runs a setuid-root file from a pulled layer and does not get euid 0', async () => {
    const home = join(t.dir, 'home-default'); // does not exist yet
    const cacheDir = join(home, 'cache', 'images');
    const img = await prepareImage(`docker://${reg.host}/evil/suid:1`, { cacheDir, platform });
    const id = join(img.path, 'bin', 'id');
    assert.ok(existsSync(id));
    // The attack as written: nobody runs the file from the cache.
    const r = asNobody([id, '-u']);
    assert.notEqual(r.out, '0', `nobody got euid 0 from ${id}`);
    // WARREN_HOME and the cache were created private.
    assert.equal(statSync(home).mode & 0o777, 0o700, 'WARREN_HOME created 0700');
    assert.equal(statSync(join(home, 'cache')).mode & 0o777, 0o700);
    assert.equal(statSync(cacheDir).mode & 0o777, 0o700, 'image cache 0700');
    assert.notEqual(r.status, 0, 'nobody cannot even reach the cache');
    assert.match(r.err, /denied/i);
    // No setuid/setgid file and no device node in the unpacked image.
    assert.deepEqual(privilegedEntries(img.path), []);
    assert.equal(statSync(id).mode & 0o7777, 0o755);
    // Even if the admin opens the cache to others, nobody stays nobody.
    for (const d of [home, join(home, 'cache'), cacheDir, join(cacheDir, 'images')]) chmodSync(d, 0o711);
    const open = asNobody([id, '-u']);
    assert.equal(open.status, 0, open.err);
    assert.equal(open.out, '65534', 'euid of nobody, not 0');
    assert.equal(asNobody([join(img.path, 'bin', 'gid'), '-g']).out, '65534', 'egid of nogroup, not 0');
  });

  test('allow-setuid keeps the bits, and the private cache still keeps nobody out', async () => {
    const home = join(t.dir, 'home-allow');
    const img = await prepareImage(`docker://${reg.host}/evil/suid:1`, { cacheDir: join(home, 'cache', 'images'), platform, allowSetuid: true });
    const id = join(img.path, 'bin', 'id');
    assert.equal(statSync(id).mode & 0o7777, 0o4755, 'kept for containers that the admin allows setuid in');
    assert.equal(existsSync(join(img.path, 'dev', 'mem')), false, 'never a device node');
    assert.equal(JSON.parse(readFileSync(join(img.path, '..', 'image.json'), 'utf8')).setuid, 'kept');
    const r = asNobody([id, '-u']);
    assert.notEqual(r.out, '0');
    assert.notEqual(r.status, 0);
  });

  test('a cache an older Warren made 0755 is tightened to 0700 when used', async () => {
    const home = join(t.dir, 'home-old');
    const cacheDir = join(home, 'cache', 'images');
    await prepareImage(`docker://${reg.host}/evil/suid:1`, { cacheDir: join(t.dir, 'warmup'), platform });
    spawnSync('mkdir', ['-p', '-m', '755', cacheDir]);
    chmodSync(cacheDir, 0o755);
    await prepareImage(`docker://${reg.host}/evil/suid:1`, { cacheDir, platform });
    assert.equal(statSync(cacheDir).mode & 0o777, 0o700);
  });

  test('`warren` creates a missing WARREN_HOME 0700', () => {
    const home = join(t.dir, 'home-cli', 'warren');
    const r = spawnSync(process.execPath, [warrenBin, 'image', 'ls'], { encoding: 'utf8', env: { ...process.env, WARREN_HOME: home }, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(home).mode & 0o777, 0o700);
  });

  for (const [repo, what] of [
    ['evil/wh-root:1', '.wh..'],
    ['evil/wh-parent:1', 'bin/.wh...'],
  ] as const) {
    test(`a pull whose layer has the whiteout ${what} fails with IMAGE_LAYER_UNSAFE and leaves nothing`, async () => {
      const cacheDir = join(t.dir, `cache-${repo.replace(/\W/g, '-')}`);
      await assert.rejects(prepareImage(`docker://${reg.host}/${repo}`, { cacheDir, platform }), (e: unknown) => {
        const err = e as { code: string; message: string; hint?: string };
        assert.equal(err.code, 'IMAGE_LAYER_UNSAFE', err.message);
        assert.ok(err.message.includes(repo), err.message);
        assert.ok(err.hint);
        return true;
      });
      assert.deepEqual(readdirSync(join(cacheDir, 'images')), [], 'no image entry');
      assert.deepEqual(readdirSync(join(cacheDir, 'tmp')), [], 'no half-unpacked tree');
      assert.ok(existsSync(cacheDir), 'the cache itself survives');
      // The CLI: exit status 1 and no path on stdout.
      const cli = spawnSync(process.execPath, [warrenBin, 'image', 'pull', `${reg.host}/${repo}`, '--cache-dir', cacheDir, '-q'], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, WARREN_HOME: join(t.dir, 'home-cli-wh') },
      });
      assert.equal(cli.status, 1, cli.stderr);
      assert.equal(cli.stdout, '');
      assert.match(cli.stderr, /error\[IMAGE_LAYER_UNSAFE\]/);
    });
  }
});
