// Test images built from Debian's busybox-static (/bin/busybox) and pushed with Warren's
// own push code: a two-layer image (gzip base + zstd layer with whiteouts), a
// multi-platform index (amd64 + arm64) and a SIF artifact.
import { readFileSync } from 'node:fs';
import { buildLayer, pushImage, pushIndex, type LayerEntry, type PushOptions } from '../../../src/image/oci/index.js';

export const BUSYBOX = '/bin/busybox';

export function busyboxBytes(): Buffer {
  return readFileSync(BUSYBOX);
}

/** Base layer: busybox with a few applets, files to be whited out later, a hard link. */
export function baseEntries(extra: LayerEntry[] = []): LayerEntry[] {
  return [
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', data: busyboxBytes(), mode: 0o755 },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/ls', type: 'symlink', linkname: '/bin/busybox' },
    { name: 'bin/bb-hard', type: 'link', linkname: 'bin/busybox' },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/motd', data: 'base\n' },
    { name: 'etc/old', data: 'to be deleted\n' },
    { name: 'etc/conf.d/', type: 'directory' },
    { name: 'etc/conf.d/a.conf', data: 'a\n' },
    { name: 'etc/conf.d/sub/', type: 'directory' },
    { name: 'etc/conf.d/sub/deep.conf', data: 'deep\n' },
    { name: 'etc/secret', data: 'private\n', mode: 0o600 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'var/', type: 'directory' },
    { name: 'var/cache/', type: 'directory' },
    { name: 'var/cache/big', data: 'x'.repeat(1000) },
    ...extra,
  ];
}

/** Upper layer: a whiteout, an opaque directory, a changed file, a new one. */
export function upperEntries(): LayerEntry[] {
  return [
    { name: 'etc/.wh.old' },
    { name: 'etc/conf.d/', type: 'directory' },
    { name: 'etc/conf.d/b.conf', data: 'b\n' },
    { name: 'etc/conf.d/.wh..wh..opq' },
    { name: 'var/.wh.cache' },
    { name: 'etc/motd', data: 'updated\n' },
    { name: 'usr/', type: 'directory' },
    { name: 'usr/bin/', type: 'directory' },
    { name: 'usr/bin/env', type: 'symlink', linkname: '../../bin/busybox' },
  ];
}

export function testConfig(arch: string, diffIds: string[]): Record<string, unknown> {
  return {
    architecture: arch,
    os: 'linux',
    config: {
      Env: ['PATH=/usr/bin:/bin', 'WARREN_TEST=1'],
      Entrypoint: ['/bin/sh', '-c'],
      Cmd: ['echo hello'],
      WorkingDir: '/tmp',
      User: '1000:1000',
      Labels: { 'org.warren.test': 'busybox' },
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
}

/** Push the two-layer busybox image to `uri` (docker://host/repo:tag). */
export async function pushBusybox(uri: string, opts: PushOptions = {}, arch = 'amd64', extraBase: LayerEntry[] = []) {
  const base = await buildLayer(baseEntries([{ name: 'etc/arch', data: `${arch}\n` }, ...extraBase]), 'gzip');
  const upper = await buildLayer(upperEntries(), 'zstd');
  return pushImage(
    uri,
    {
      config: testConfig(arch, [base.diffId, upper.diffId]),
      layers: [
        { mediaType: base.mediaType, data: base.data },
        { mediaType: upper.mediaType, data: upper.data },
      ],
    },
    opts,
  );
}

/** Push amd64 and arm64 variants and an OCI index over them at `uri`. */
export async function pushMultiPlatform(uri: string, opts: PushOptions = {}) {
  const repo = uri.replace(/:[^:/]+$/, '');
  const amd = await pushBusybox(`${repo}:amd64-only`, opts, 'amd64');
  const arm = await pushBusybox(`${repo}:arm64-only`, opts, 'arm64');
  const index = await pushIndex(
    uri,
    [
      { digest: amd.digest, size: amd.size, platform: { os: 'linux', architecture: 'amd64' } },
      { digest: arm.digest, size: arm.size, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ],
    opts,
  );
  return { amd, arm, index };
}
