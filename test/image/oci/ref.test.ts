// Pure parts of the image subsystem: references, WWW-Authenticate, platform selection, config.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseImageRef,
  parseWwwAuthenticate,
  selectPlatform,
  hostPlatform,
  parsePlatform,
  imageConfigFrom,
  registryBaseUrl,
  MT,
  type ImageIndex,
} from '../../../src/image/oci/index.js';

const D = 'sha256:' + 'ab'.repeat(32);

describe('parseImageRef', () => {
  test('docker:// references are normalized', () => {
    assert.deepEqual(parseImageRef('docker://busybox'), {
      kind: 'docker',
      uri: 'docker://docker.io/library/busybox:latest',
      registry: 'docker.io',
      repository: 'library/busybox',
      tag: 'latest',
    });
    const r = parseImageRef('docker://127.0.0.1:5000/team/app:1.2.3');
    assert.equal(r.kind, 'docker');
    if (r.kind !== 'docker') return;
    assert.equal(r.registry, '127.0.0.1:5000');
    assert.equal(r.repository, 'team/app');
    assert.equal(r.tag, '1.2.3');
    const d = parseImageRef(`docker://ghcr.io/org/tool@${D}`);
    assert.equal(d.kind === 'docker' && d.digest, D);
    assert.equal(d.kind === 'docker' && d.tag, undefined);
    const both = parseImageRef(`docker://localhost/x:v1@${D}`);
    assert.equal(both.uri, `docker://localhost/x:v1@${D}`);
    assert.equal(parseImageRef('docker://user/app').uri, 'docker://docker.io/user/app:latest');
  });

  test('oras, file and plain paths', () => {
    const o = parseImageRef('oras://registry.example.org/sifs/lolcow:latest');
    assert.equal(o.kind, 'oras');
    assert.deepEqual(parseImageRef('file:///data/images/x.sif'), { kind: 'sif', uri: 'file:///data/images/x.sif', path: '/data/images/x.sif' });
    assert.deepEqual(parseImageRef('/data/rootfs/'), { kind: 'rootfs', uri: 'file:///data/rootfs', path: '/data/rootfs' });
    assert.equal(parseImageRef('/a/b/../c.SIF').kind, 'sif');
  });

  test('bad references are IMAGE_REF_INVALID with a hint and exit code 2', () => {
    for (const bad of ['', 'busybox', 'docker://', 'docker://UPPER/case', 'docker://x:bad tag', 'docker://x@sha256:123', 'http://x/y', 'file://relative/x.sif', 'oras://justname', 'docker://a//b']) {
      assert.throws(
        () => parseImageRef(bad),
        (e: unknown) => {
          const err = e as { code: string; hint?: string; exitCode: number; message: string };
          assert.equal(err.code, 'IMAGE_REF_INVALID', bad);
          assert.ok(err.hint, bad);
          assert.equal(err.exitCode, 2);
          return true;
        },
      );
    }
  });

  test('plain HTTP only for loopback and WARREN_INSECURE_REGISTRIES', () => {
    assert.equal(registryBaseUrl('127.0.0.1:5000', {}), 'http://127.0.0.1:5000');
    assert.equal(registryBaseUrl('localhost:5000', {}), 'http://localhost:5000');
    assert.equal(registryBaseUrl('ghcr.io', {}), 'https://ghcr.io');
    assert.equal(registryBaseUrl('docker.io', {}), 'https://registry-1.docker.io');
    assert.equal(registryBaseUrl('reg.lan:5000', { WARREN_INSECURE_REGISTRIES: 'other,reg.lan:5000' }), 'http://reg.lan:5000');
  });
});

describe('parseWwwAuthenticate', () => {
  test('bearer challenge with quoted params', () => {
    const c = parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"');
    assert.deepEqual(c, [
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
    ]);
  });
  test('basic, several challenges, commas inside quotes', () => {
    const c = parseWwwAuthenticate('Basic realm="a, b", Bearer realm="https://x/t",scope="repository:a:pull,push"');
    assert.equal(c.length, 2);
    assert.deepEqual(c[0], { scheme: 'basic', params: { realm: 'a, b' } });
    assert.equal(c[1]!.params.scope, 'repository:a:pull,push');
    assert.deepEqual(parseWwwAuthenticate(''), []);
  });
});

describe('platforms', () => {
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      { mediaType: MT.ociManifest, digest: 'sha256:' + '1'.repeat(64), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MT.ociManifest, digest: 'sha256:' + '2'.repeat(64), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MT.ociManifest, digest: 'sha256:' + '3'.repeat(64), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
      { mediaType: MT.ociManifest, digest: 'sha256:' + '4'.repeat(64), size: 1, platform: { os: 'unknown', architecture: 'unknown' } },
    ],
  };
  test('selects by os/arch/variant', () => {
    assert.equal(selectPlatform(index, { os: 'linux', architecture: 'amd64' }, 'x').digest, 'sha256:' + '1'.repeat(64));
    assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm64' }, 'x').digest, 'sha256:' + '2'.repeat(64));
    assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v6' }, 'x').digest, 'sha256:' + '3'.repeat(64));
  });
  test('a missing platform names what exists', () => {
    assert.throws(
      () => selectPlatform(index, { os: 'linux', architecture: 's390x' }, 'docker://r/x:1'),
      (e: unknown) => {
        const err = e as { code: string; message: string; hint: string };
        assert.equal(err.code, 'IMAGE_PLATFORM_NOT_FOUND');
        assert.match(err.message, /docker:\/\/r\/x:1/);
        assert.match(err.message, /linux\/amd64, linux\/arm64\/v8, linux\/arm\/v6/);
        assert.ok(err.hint);
        return true;
      },
    );
    assert.throws(() => selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }, 'x'), /no variant/);
  });
  test('host platform and parsing', () => {
    assert.deepEqual(hostPlatform('x64', 'linux'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(hostPlatform('arm64', 'linux'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.equal(parsePlatform('linux'), undefined);
  });
});

test('imageConfigFrom keeps env, entrypoint, cmd, workdir, user and labels', () => {
  assert.deepEqual(
    imageConfigFrom({ config: { Env: ['A=1'], Entrypoint: ['/x'], Cmd: null, WorkingDir: '/w', User: 'u', Labels: { a: 'b' } } }),
    { env: ['A=1'], entrypoint: ['/x'], workingDir: '/w', user: 'u', labels: { a: 'b' } },
  );
  assert.deepEqual(imageConfigFrom(undefined), { env: [], labels: {} });
});
