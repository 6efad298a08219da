// Registry mirrors (src/image/oci/mirrors.ts): the rules (parsing, matching, Docker Hub's names,
// plain HTTP), then real pulls from Debian's docker-registry on loopback standing in for
// quay.io and Docker Hub: the cache and trust keep the image's own name, digests are still
// checked, a mirror that is down is named with the image.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, copyFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { prepareImage, ImageCache, pushSif, buildSif, TrustGate, KeyStore } from '../../../src/image/index.js';
import { findMirror, loadRegistriesConfig, parseMirrorsEnv, parseMirrorsFile, parseImageRef, pullSource, type RegistriesConfig, type RegistryImageRef } from '../../../src/image/oci/index.js';
import { tempDir } from '../../helpers.js';
import { freePort, registryAvailable, startRegistry, type LoopbackRegistry } from './registry.js';
import { pushBusybox } from './fixtures.js';

const skip = registryAvailable() ? false : 'docker-registry is not installed (scripts/apt/image.txt; run scripts/setup.sh)';

function assertWarren(e: unknown, code: string, ...mentions: string[]): true {
  const err = e as { code?: string; message: string; hint?: string };
  assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
  assert.ok(err.hint && err.hint.length > 10, 'has a hint');
  for (const m of mentions) assert.ok(err.message.includes(m), `message names ${m}: ${err.message}`);
  return true;
}

const reg = (uri: string) => parseImageRef(uri) as RegistryImageRef;

describe('mirror rules', () => {
  test('WARREN_REGISTRY_MIRRORS: PREFIX=LOCATION entries; Docker Hub names normalised', () => {
    const rules = parseMirrorsEnv(' quay.io=127.0.0.1:5000 , index.docker.io=127.0.0.1:5000/dockerhub/ ,ghcr.io/org=m.lab/org-cache');
    assert.deepEqual(
      rules.map((r) => [r.registry, r.path, r.location.registry, r.location.path, r.insecure, r.origin]),
      [
        ['quay.io', '', '127.0.0.1:5000', '', false, 'WARREN_REGISTRY_MIRRORS'],
        ['docker.io', '', '127.0.0.1:5000', 'dockerhub', false, 'WARREN_REGISTRY_MIRRORS'],
        ['ghcr.io', 'org', 'm.lab', 'org-cache', false, 'WARREN_REGISTRY_MIRRORS'],
      ],
    );
  });

  test('bad WARREN_REGISTRY_MIRRORS entries: IMAGE_MIRRORS_INVALID with the entry and what is wrong', () => {
    assert.throws(() => parseMirrorsEnv('quay.io'), (e) => assertWarren(e, 'IMAGE_MIRRORS_INVALID', "WARREN_REGISTRY_MIRRORS: 'quay.io' is not REGISTRY=MIRROR"));
    assert.throws(() => parseMirrorsEnv('quay.io=http://127.0.0.1:5000'), (e) => assertWarren(e, 'IMAGE_MIRRORS_INVALID', "the mirror 'http://127.0.0.1:5000' for quay.io is not valid: write host[:port][/path] without a scheme"));
    assert.throws(() => parseMirrorsEnv('quay.io=127.0.0.1:5000/Upper'), (e) => assertWarren(e, 'IMAGE_MIRRORS_INVALID', "'Upper' is not a valid repository path component"));
    assert.throws(() => parseMirrorsEnv('bad_host!=m:1'), (e) => assertWarren(e, 'IMAGE_MIRRORS_INVALID', "the mirrored registry 'bad_host!' is not valid"));
  });

  test('mirrors.yaml: short and long forms, insecure hosts; errors with file:line:col', () => {
    const cfg = parseMirrorsFile('mirrors:\n  docker.io: m.lab:5000/dockerhub\n  quay.io:\n    location: m.lab:5001\n    insecure: true\ninsecure: [registry.lab:5000]\n', '/etc/w/mirrors.yaml');
    assert.deepEqual(
      cfg.mirrors.map((r) => [r.registry, r.location.registry, r.location.path, r.insecure, r.origin]),
      [
        ['docker.io', 'm.lab:5000', 'dockerhub', false, '/etc/w/mirrors.yaml'],
        ['quay.io', 'm.lab:5001', '', true, '/etc/w/mirrors.yaml'],
      ],
    );
    assert.deepEqual(cfg.insecure, ['registry.lab:5000']);
    assert.deepEqual(parseMirrorsFile('', 'f'), { mirrors: [], insecure: [] });
    const bad = (text: string, msg: string) => assert.throws(() => parseMirrorsFile(text, 'm.yaml'), (e) => assertWarren(e, 'IMAGE_MIRRORS_INVALID', msg));
    bad('mirror:\n  docker.io: x:1\n', 'm.yaml:1:1: unknown key "mirror"');
    bad('mirrors:\n  quay.io:\n    locaton: x:1\n', 'm.yaml:3:5: mirrors.quay.io: unknown key "locaton"');
    bad('mirrors:\n  quay.io:\n    insecure: yes please\n', 'm.yaml:3:15: mirrors.quay.io.insecure must be true or false');
    bad('mirrors:\n  quay.io: {insecure: true}\n', 'm.yaml:2:12: mirrors.quay.io has no "location"');
    bad('mirrors:\n  quay.io: [a]\n', 'm.yaml:2:12: mirrors.quay.io must be a location');
    bad('mirrors:\n  quay.io: x:1/A\n', "m.yaml:2:12: the mirror 'x:1/A' for quay.io is not valid");
    bad('insecure: registry.lab\n', 'm.yaml:1:11: "insecure" must be a list of hosts');
    bad('mirrors: [\n', 'm.yaml:');
  });

  test('matching: the longest prefix wins, the prefix is replaced, library/ is kept for Docker Hub', () => {
    const cfg: RegistriesConfig = { mirrors: parseMirrorsEnv('docker.io=m:5000/dockerhub,docker.io/ncbi=n:6000,quay.io/jupyter=q:7000/jup,docker.io/library/alpine=a:1/alp'), insecure: [] };
    const src = (uri: string) => {
      const s = pullSource(reg(uri), cfg, {});
      return `${s.baseUrl}/v2/${s.repository}`;
    };
    assert.equal(src('docker://busybox:1'), 'https://m:5000/v2/dockerhub/library/busybox');
    assert.equal(src('docker://docker.io/library/busybox'), 'https://m:5000/v2/dockerhub/library/busybox');
    assert.equal(src('docker://index.docker.io/busybox'), 'https://m:5000/v2/dockerhub/library/busybox');
    assert.equal(src('docker://ncbi/blast:2.12.0'), 'https://n:6000/v2/blast');
    assert.equal(src('docker://ncbiother/x'), 'https://m:5000/v2/dockerhub/ncbiother/x', 'a prefix matches whole path components');
    assert.equal(src('docker://alpine:latest'), 'https://a:1/v2/alp');
    assert.equal(src('docker://quay.io/jupyter/minimal-notebook:latest'), 'https://q:7000/v2/jup/minimal-notebook');
    assert.equal(src('docker://quay.io/other/x'), 'https://quay.io/v2/other/x', 'no rule: the registry itself');
    assert.equal(src('oras://docker.io/anderbubble/mpich-hello-world.sif'), 'https://m:5000/v2/dockerhub/anderbubble/mpich-hello-world.sif');
    assert.equal(src('docker://ghcr.io/x/y'), 'https://ghcr.io/v2/x/y');
    assert.equal(findMirror(cfg, 'docker.io', 'library/alpine')?.location.registry, 'a:1');
    // a whole-repository prefix needs a path to go to
    const whole: RegistriesConfig = { mirrors: parseMirrorsEnv('quay.io/a/b=q:1'), insecure: [] };
    assert.throws(() => pullSource(reg('docker://quay.io/a/b:1'), whole, {}), (e) => assertWarren(e, 'IMAGE_MIRRORS_INVALID', 'leaves no repository name for docker://quay.io/a/b:1'));
  });

  test('plain HTTP only for loopback, WARREN_INSECURE_REGISTRIES, the file\'s insecure list or the rule\'s insecure', () => {
    const file = parseMirrorsFile('mirrors:\n  quay.io: m.lab:5000\n  ghcr.io: {location: g.lab:5000, insecure: true}\n  docker.io: 127.0.0.1:5000/hub\n  nvcr.io: n.lab\ninsecure: [n.lab]\n', 'f');
    const base = (uri: string, env: NodeJS.ProcessEnv = {}) => pullSource(reg(uri), file, env).baseUrl;
    assert.equal(base('docker://quay.io/a/b'), 'https://m.lab:5000');
    assert.equal(base('docker://quay.io/a/b', { WARREN_INSECURE_REGISTRIES: 'm.lab:5000' }), 'http://m.lab:5000');
    assert.equal(base('docker://quay.io/a/b', { WARREN_INSECURE_REGISTRIES: 'quay.io' }), 'https://m.lab:5000', 'the mirrored name does not make its mirror insecure');
    assert.equal(base('docker://ghcr.io/a/b'), 'http://g.lab:5000');
    assert.equal(base('docker://alpine'), 'http://127.0.0.1:5000');
    assert.equal(base('docker://nvcr.io/hpc/lammps:1'), 'http://n.lab');
    assert.equal(base('docker://n.lab/x/y'), 'http://n.lab', 'the insecure list applies without a mirror too');
    assert.equal(base('docker://alpine', {}), 'http://127.0.0.1:5000');
    assert.equal(pullSource(reg('docker://alpine'), { mirrors: [], insecure: [] }, {}).baseUrl, 'https://registry-1.docker.io');
  });

  test('loadRegistriesConfig: the file under WARREN_HOME, the variable over it for the same prefix', () => {
    const t = tempDir('warren-mirrors-');
    try {
      writeFileSync(join(t.dir, 'mirrors.yaml'), 'mirrors:\n  quay.io: file.lab:1\n  docker.io: file.lab:2\n');
      const cfg = loadRegistriesConfig({ WARREN_HOME: t.dir, WARREN_REGISTRY_MIRRORS: 'quay.io=env.lab:3' });
      assert.deepEqual(
        cfg.mirrors.map((r) => `${r.registry}=${r.location.registry} (${r.origin === 'WARREN_REGISTRY_MIRRORS' ? 'env' : 'file'})`),
        ['quay.io=env.lab:3 (env)', 'docker.io=file.lab:2 (file)'],
      );
      assert.deepEqual(loadRegistriesConfig({ WARREN_HOME: join(t.dir, 'none') }), { mirrors: [], insecure: [] });
      writeFileSync(join(t.dir, 'mirrors.yaml'), 'mirrors:\n  quay.io: file.lab:1\n  quay.io: file.lab:2\n');
      assert.throws(() => loadRegistriesConfig({ WARREN_HOME: t.dir }), (e) => assertWarren(e, 'IMAGE_MIRRORS_INVALID', `${join(t.dir, 'mirrors.yaml')}:3:3: not valid YAML`));
    } finally {
      t.cleanup();
    }
  });
});

/** A loopback HTTP proxy that flips one byte of every blob it passes on (a tampering mirror). */
async function tamperingProxy(upstream: string): Promise<{ host: string; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const up = http.request(upstream + req.url, { method: req.method, headers: req.headers }, (ur) => {
      const isBlob = /\/blobs\/sha256:/.test(req.url ?? '') && req.method === 'GET' && ur.statusCode === 200;
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (!isBlob) return void ur.pipe(res);
      let first = true;
      ur.on('data', (c: Buffer) => {
        if (first) {
          c = Buffer.from(c);
          c[c.length - 1] ^= 0xff;
          first = false;
        }
        res.write(c);
      });
      ur.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('pulls through a mirror (docker-registry on loopback)', { skip, timeout: 180_000 }, () => {
  let registry: LoopbackRegistry;
  let t: { dir: string; cleanup: () => void };
  let alpine: { digest: string };
  let n = 0;
  const cache = () => join(t.dir, `cache-${++n}`);

  before(async () => {
    t = tempDir('warren-mirror-pull-');
    registry = await startRegistry();
    // What a pull-through cache of Docker Hub under /dockerhub and of quay.io holds.
    alpine = await pushBusybox(`docker://${registry.host}/dockerhub/library/alpine:latest`);
    await pushBusybox(`docker://${registry.host}/jupyter/minimal-notebook:latest`);
    const root = join(t.dir, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    writeFileSync(join(root, 'marker'), 'mirrored sif\n');
    await buildSif({ rootfs: root, out: join(t.dir, 'unsigned.sif') });
    await pushSif(`oras://${registry.host}/dockerhub/anderbubble/mpich-hello-world.sif:latest`, join(t.dir, 'unsigned.sif'));
  });
  after(async () => {
    await registry?.stop();
    t?.cleanup();
  });

  const cfg = (): RegistriesConfig => loadRegistriesConfig({ WARREN_HOME: join(t.dir, 'no-home'), WARREN_REGISTRY_MIRRORS: `docker.io=${registry.host}/dockerhub,quay.io=${registry.host}` });

  test('docker://alpine and docker://quay.io/… come from the mirror; the cache knows them by their own names', async () => {
    const cacheDir = cache();
    const img = await prepareImage('docker://alpine:latest', { cacheDir, registries: cfg() });
    assert.equal(img.uri, 'docker://docker.io/library/alpine:latest');
    assert.equal(img.digest, alpine.digest);
    assert.equal(readFileSync(join(img.path, 'etc', 'motd'), 'utf8'), 'updated\n');
    const jup = await prepareImage('docker://quay.io/jupyter/minimal-notebook:latest', { cacheDir, registries: cfg() });
    assert.equal(jup.uri, 'docker://quay.io/jupyter/minimal-notebook:latest');
    const c = new ImageCache(cacheDir);
    assert.equal(c.getRef('docker://docker.io/library/alpine:latest', 'linux/amd64')?.digest, alpine.digest);
    assert.equal(c.getRef(`docker://${registry.host}/dockerhub/library/alpine:latest`, 'linux/amd64'), undefined, 'not under the mirror\'s name');
    const listed = c.list().flatMap((i) => i.refs.map((r) => r.uri));
    assert.ok(listed.includes('docker://docker.io/library/alpine:latest'), JSON.stringify(listed));
    // cached: no mirror needed any more (even a broken rule is not consulted)
    const again = await prepareImage('docker://alpine:latest', { cacheDir, registries: { mirrors: parseMirrorsEnv('docker.io=127.0.0.1:1'), insecure: [] } });
    assert.equal(again.pull?.cached, true);
  });

  test('a mirror that is down: IMAGE_REGISTRY_UNREACHABLE names the mirror, where it was set, and the image', async () => {
    const port = await freePort();
    const down: RegistriesConfig = { mirrors: parseMirrorsEnv(`quay.io=127.0.0.1:${port}`), insecure: [] };
    await assert.rejects(prepareImage('docker://quay.io/jupyter/minimal-notebook:latest', { cacheDir: cache(), registries: down }), (e) =>
      assertWarren(e, 'IMAGE_REGISTRY_UNREACHABLE', `cannot reach registry mirror 127.0.0.1:${port} of quay.io (set in WARREN_REGISTRY_MIRRORS) for docker://quay.io/jupyter/minimal-notebook:latest`),
    );
  });

  test('an image the mirror lacks: IMAGE_NOT_FOUND with the image and where it was looked for', async () => {
    await assert.rejects(prepareImage('docker://quay.io/jupyter/scipy-notebook:1', { cacheDir: cache(), registries: cfg() }), (e) =>
      assertWarren(e, 'IMAGE_NOT_FOUND', `image docker://quay.io/jupyter/scipy-notebook:1 not found in registry mirror ${registry.host} of quay.io`, `as ${registry.host}/jupyter/scipy-notebook`),
    );
  });

  test('digests are still checked: a mirror that changes a blob is refused (IMAGE_DIGEST_MISMATCH), nothing cached', async () => {
    const proxy = await tamperingProxy(registry.url);
    try {
      const cacheDir = cache();
      const bad: RegistriesConfig = { mirrors: parseMirrorsEnv(`docker.io=${proxy.host}/dockerhub`), insecure: [] };
      await assert.rejects(prepareImage(`docker://alpine@${alpine.digest}`, { cacheDir, registries: bad, retries: 0 }), (e) => assertWarren(e, 'IMAGE_DIGEST_MISMATCH', 'docker://docker.io/library/alpine@'));
      assert.deepEqual(new ImageCache(cacheDir).list(), []);
    } finally {
      await proxy.stop();
    }
  });

  test('trust stays on the image: an unsigned SIF from the mirror is refused under require-signed, named by its own reference', async () => {
    const img = await prepareImage('oras://docker.io/anderbubble/mpich-hello-world.sif', { cacheDir: cache(), registries: cfg() });
    assert.equal(img.kind, 'sif');
    assert.equal(img.uri, 'oras://docker.io/anderbubble/mpich-hello-world.sif:latest');
    const gate = new TrustGate({ requireSigned: true, keyStore: new KeyStore(join(t.dir, 'keys')) }, { dir: join(t.dir, 'trusted') });
    await assert.rejects(gate.admit(img), (e) => assertWarren(e, 'IMAGE_UNSIGNED', 'oras://docker.io/anderbubble/mpich-hello-world.sif:latest'));
  });
});
