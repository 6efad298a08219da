// warren image build: a SIF from a root file system directory (mksquashfs), read back.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, readSync, closeSync, writeFileSync, existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { loadKeyFile } from '../../../src/image/keys/index.js';
import { buildSif, findPrimaryPartition, readImageConfig, readSif, sifPartition, signSif, verifySif, DataType } from '../../../src/image/sif/index.js';
import { cli, img, key } from './util.js';
import { registryAvailable, startRegistry } from '../oci/registry.js';
import { pushBusybox } from '../oci/fixtures.js';
import { buildLayer, sha256Digest } from '../../../src/image/oci/index.js';
import { buildSifFromOciLayout } from '../../../src/image/sif/index.js';

/** Write an OCI image layout (two layers, a whiteout, a config) tagged `tag`. */
async function writeOciLayout(dir: string, tag: string): Promise<void> {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (data: Buffer | string): { digest: string; size: number } => {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
    const digest = sha256Digest(b);
    writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), b);
    return { digest, size: b.length };
  };
  const l1 = await buildLayer([{ name: 'bin/', type: 'directory' }, { name: 'bin/tool', data: '#!/bin/sh\necho tool\n', mode: 0o755 }, { name: 'etc/', type: 'directory' }, { name: 'etc/gone', data: 'x' }], 'gzip');
  const l2 = await buildLayer([{ name: 'etc/.wh.gone' }, { name: 'etc/added', data: 'y\n' }], 'none');
  const config = put(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin', 'MODE=oci'], Entrypoint: ['/bin/tool'], Labels: { from: 'layout' } }, rootfs: { type: 'layers', diff_ids: [l1.diffId, l2.diffId] } }));
  const layers = [l1, l2].map((l) => ({ mediaType: l.mediaType, ...put(l.data) }));
  const manifest = put(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers }));
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }] }));
}

function makeRootfs(dir: string): string {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'data', 'sub'), { recursive: true });
  writeFileSync(join(root, 'bin', 'hello'), '#!/bin/sh\necho hello from the image\n', { mode: 0o755 });
  writeFileSync(join(root, 'etc', 'os-release'), 'NAME=warren-test\n');
  writeFileSync(join(root, 'data', 'sub', 'big.bin'), Buffer.alloc(300_000, 7));
  symlinkSync('hello', join(root, 'bin', 'hi'));
  return root;
}

describe('build', () => {
  test('from a rootfs directory: squashfs primary partition + image config, listed by unsquashfs', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir('warren-sif-build-');
    try {
      const root = makeRootfs(dir);
      const out = join(dir, 'app.sif');
      const r = await buildSif({ rootfs: root, out, config: { env: ['PATH=/bin', 'GREETING=hi'], entrypoint: ['/bin/hello'], labels: { 'org.example.app': 'demo' }, workingDir: '/data' }, arch: 'amd64' });
      assert.ok(r.partitionSize > 0);
      const s = readSif(out);
      assert.equal(s.header.arch, 'amd64');
      assert.deepEqual(s.descriptors.map((d) => [d.id, d.type, d.groupId]), [[1, 'JSON.Generic', 1], [2, 'FS', 1]]);
      const p = findPrimaryPartition(out);
      assert.equal(p.fsType, 'squashfs');
      assert.equal(p.offset % 4096, 0);
      assert.deepEqual(await sifPartition(out), { offset: p.offset, size: p.size });
      const fd = openSync(out, 'r');
      const magic = Buffer.alloc(4);
      readSync(fd, magic, 0, 4, p.offset);
      closeSync(fd);
      assert.equal(magic.toString('latin1'), 'hsqs');
      // unsquashfs reads the partition straight out of the SIF (-o offset).
      const listing = execFileSync('unsquashfs', ['-o', String(p.offset), '-l', '-d', '', out], { encoding: 'utf8' });
      for (const f of ['/bin/hello', '/bin/hi', '/etc/os-release', '/data/sub/big.bin']) assert.ok(listing.split('\n').includes(f), `${f} in\n${listing}`);
      const x = join(dir, 'x');
      execFileSync('unsquashfs', ['-o', String(p.offset), '-d', x, out, '/bin/hello']);
      assert.equal(readFileSync(join(x, 'bin', 'hello'), 'utf8'), '#!/bin/sh\necho hello from the image\n');
      assert.deepEqual(readImageConfig(out), { env: ['PATH=/bin', 'GREETING=hi'], entrypoint: ['/bin/hello'], workingDir: '/data', labels: { 'org.example.app': 'demo' } });
      // The config is in the signed group.
      await signSif(out, [await loadKeyFile(key('ed25519-private.pem'))]);
      const v = await verifySif(out, [await loadKeyFile(key('ed25519-public.pem'))]);
      assert.equal(v.verified, true, v.error?.message);
      assert.deepEqual(v.signatures[0]!.objects, [1, 2]);
    } finally {
      cleanup();
    }
  });

  test('deterministic builds are byte-identical; OCI config blobs are read as image config', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir('warren-sif-build-');
    try {
      const root = makeRootfs(dir);
      await buildSif({ rootfs: root, out: join(dir, 'a.sif'), deterministic: true, arch: 'arm64' });
      await buildSif({ rootfs: root, out: join(dir, 'b.sif'), deterministic: true, arch: 'arm64' });
      assert.ok(readFileSync(join(dir, 'a.sif')).equals(readFileSync(join(dir, 'b.sif'))));
      assert.equal(readSif(join(dir, 'a.sif')).header.id, '00000000-0000-0000-0000-000000000000');
      assert.equal(readSif(join(dir, 'a.sif')).header.arch, 'arm64');
      assert.deepEqual(readImageConfig(img('one-object-oci-blob.sif')), { env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], cmd: ['/bin/sh'], labels: {} });
      assert.equal(readImageConfig(img('one-group.sif')), undefined);
    } finally {
      cleanup();
    }
  });

  test('bad input: missing source, a file as source, mksquashfs missing, no partition', async () => {
    const { dir, cleanup } = tempDir('warren-sif-build-');
    try {
      const out = join(dir, 'o.sif');
      await assert.rejects(buildSif({ rootfs: join(dir, 'nope'), out }), (e: Error & { code?: string; exitCode?: number }) => e.code === 'SIF_SOURCE_INVALID' && e.exitCode === 2 && e.message.includes('nope'));
      writeFileSync(join(dir, 'file'), 'x');
      await assert.rejects(buildSif({ rootfs: join(dir, 'file'), out }), (e: Error & { code?: string }) => e.code === 'SIF_SOURCE_INVALID');
      const root = makeRootfs(dir);
      await assert.rejects(buildSif({ rootfs: root, out, toolPath: join(dir, 'empty-path') }), (e: Error & { code?: string; hint?: string }) => e.code === 'SIF_SQUASHFS_TOOLS_MISSING' && e.message.includes(out) && /squashfs-tools/.test(e.hint ?? ''));
      assert.equal(existsSync(out), false, 'nothing half-written');
      assert.throws(() => findPrimaryPartition(img('one-object-sbom.sif')), (e: Error & { code?: string }) => e.code === 'SIF_NO_PARTITION');
      const bad = cli(['image', 'build', join(dir, 'nope'), '-o', out]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /SIF_SOURCE_INVALID/);
    } finally {
      cleanup();
    }
  });

  test('CLI build with --env/--label/--entrypoint, then inspect', { timeout: 60_000 }, () => {
    const { dir, cleanup } = tempDir('warren-sif-build-');
    try {
      const root = makeRootfs(dir);
      const out = join(dir, 'c.sif');
      const r = cli(['image', 'build', root, '-o', out, '--env', 'A=1', '--label', 'k=v', '--entrypoint', '/bin/hello']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /built .*c\.sif/);
      assert.deepEqual(readImageConfig(out), { env: ['A=1'], entrypoint: ['/bin/hello'], labels: { k: 'v' } });
      const i = cli(['image', 'inspect', out]);
      assert.match(i.stdout, /JSON\.Generic .*name warren-image-config\.json/);
      assert.equal(readSif(out).descriptors.filter((d) => d.dataType === DataType.Partition).length, 1);
    } finally {
      cleanup();
    }
  });

  test('from an OCI image in a loopback registry (docker://): layers unpacked, config carried over', { timeout: 120_000 }, async (t) => {
    if (!registryAvailable()) {
      t.skip('docker-registry is not installed (scripts/apt/image.txt)');
      return;
    }
    const { dir, cleanup } = tempDir('warren-sif-build-');
    const reg = await startRegistry();
    try {
      await pushBusybox(`docker://${reg.host}/test/bb:1`);
      const out = join(dir, 'bb.sif');
      const r = cli(['image', 'build', `docker://${reg.host}/test/bb:1`, '-o', out, '--label', 'extra=yes'], { WARREN_HOME: join(dir, 'home') });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(readImageConfig(out), {
        env: ['PATH=/usr/bin:/bin', 'WARREN_TEST=1'],
        entrypoint: ['/bin/sh', '-c'],
        cmd: ['echo hello'],
        workingDir: '/tmp',
        user: '1000:1000',
        labels: { 'org.warren.test': 'busybox', extra: 'yes' },
      });
      const p = findPrimaryPartition(out);
      const listing = execFileSync('unsquashfs', ['-o', String(p.offset), '-l', '-d', '', out], { encoding: 'utf8' }).split('\n');
      for (const f of ['/bin/busybox', '/bin/sh', '/etc/motd', '/etc/conf.d/b.conf', '/usr/bin/env']) assert.ok(listing.includes(f), f);
      for (const f of ['/etc/old', '/etc/conf.d/a.conf', '/var/cache']) assert.ok(!listing.includes(f), `${f} was whited out`);
    } finally {
      await reg.stop();
      cleanup();
    }
  });

  test('from an OCI image layout directory (oci:DIR:TAG): layers, whiteouts, config; damaged blobs refused', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir('warren-sif-build-');
    try {
      const layout = join(dir, 'layout');
      await writeOciLayout(layout, 'v1');
      const out = join(dir, 'o.sif');
      const r = cli(['image', 'build', `oci:${layout}:v1`, '-o', out, '--env', 'MODE=sif']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(readImageConfig(out), { env: ['PATH=/bin', 'MODE=sif'], entrypoint: ['/bin/tool'], labels: { from: 'layout' } });
      const p = findPrimaryPartition(out);
      const listing = execFileSync('unsquashfs', ['-o', String(p.offset), '-l', '-d', '', out], { encoding: 'utf8' }).split('\n');
      assert.ok(listing.includes('/bin/tool') && listing.includes('/etc/added'));
      assert.ok(!listing.includes('/etc/gone'), 'whiteout applied');
      // The bare directory works too; a wrong tag is named.
      await buildSifFromOciLayout({ layout, out: join(dir, 'p.sif') });
      await assert.rejects(buildSifFromOciLayout({ layout, ref: 'nope', out: join(dir, 'q.sif') }), (e: Error & { code?: string }) => e.code === 'SIF_SOURCE_INVALID' && /no image tagged nope/.test(e.message));
      // A damaged layer blob is refused, nothing written.
      const blobs = join(layout, 'blobs', 'sha256');
      const { readdirSync, statSync: st } = await import('node:fs');
      const biggest = readdirSync(blobs).map((f) => join(blobs, f)).sort((a, b) => st(b).size - st(a).size)[0]!;
      const b = readFileSync(biggest);
      b[b.length - 5] = b[b.length - 5]! ^ 0xff;
      writeFileSync(biggest, b);
      await assert.rejects(buildSifFromOciLayout({ layout, out: join(dir, 'r.sif') }), (e: Error & { code?: string }) => e.code === 'SIF_SOURCE_INVALID' && /does not match its digest/.test(e.message));
      assert.equal(existsSync(join(dir, 'r.sif')), false);
      assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'temporary files removed');
    } finally {
      cleanup();
    }
  });
});
