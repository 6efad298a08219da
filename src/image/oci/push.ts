// Building layers and pushing images, indexes and SIF artifacts to a registry (used by
// the tests, the benchmark and `warren image push`).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import type TarStream from 'tar-stream';
// tar-stream (and its stream stack: ~12 modules) is loaded when a layer is read or written.
const tarStream = (): typeof TarStream => createRequire(import.meta.url)('tar-stream') as typeof TarStream;
import { WarrenError, EXIT } from '../../common/index.js';
import { loadCredentials, type RegistryAuth } from './auth.js';
import { readSif } from '../sif/index.js';
import { RegistryClient } from './client.js';
import { parseImageRef, type RegistryImageRef } from './ref.js';
import { MT, hostPlatform, type Descriptor, type OciImageConfigFile, type Platform } from './types.js';

export interface LayerEntry {
  /** Path inside the image, e.g. `bin/busybox` or `etc/.wh.motd`. */
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  data?: Buffer | string;
  mode?: number;
  /** Target of a symlink, or the path a hard link points to. */
  linkname?: string;
  uid?: number;
  gid?: number;
  mtime?: Date;
}

export interface BuiltLayer {
  mediaType: string;
  data: Buffer;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: string;
}

export function sha256Digest(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** A layer tarball from `entries`, compressed with gzip (node:zlib), zstd (the zstd program) or not at all. */
export async function buildLayer(entries: LayerEntry[], compression: 'gzip' | 'zstd' | 'none' = 'gzip'): Promise<BuiltLayer> {
  const pack = tarStream().pack();
  const chunks: Buffer[] = [];
  const collected = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data);
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? new Date(0),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      if (type === 'file') pack.entry({ ...header, size: data.length }, data, (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await collected;
  const raw = Buffer.concat(chunks);
  const diffId = sha256Digest(raw);
  if (compression === 'none') return { mediaType: MT.ociLayer, data: raw, diffId };
  if (compression === 'gzip') return { mediaType: MT.ociLayerGzip, data: gzipSync(raw), diffId };
  const z = spawnSync('zstd', ['-q', '-c', '-3'], { input: raw, maxBuffer: 4 * raw.length + (1 << 20) });
  if (z.error || z.status !== 0) {
    throw new WarrenError('IMAGE_ZSTD_MISSING', `cannot compress a layer with zstd: ${z.error?.message ?? z.stderr.toString().trim()}`, {
      hint: 'install the zstd program (apt-get install zstd)',
    });
  }
  return { mediaType: MT.ociLayerZstd, data: z.stdout, diffId };
}

export interface PushLayer {
  mediaType: string;
  /** The blob, in memory or as a file. */
  data?: Buffer;
  path?: string;
  annotations?: Record<string, string>;
}

export interface PushImageSpec {
  /** The image configuration (JSON object or its exact bytes). */
  config: OciImageConfigFile | Record<string, unknown> | Buffer;
  configMediaType?: string;
  layers: PushLayer[];
  annotations?: Record<string, string>;
  artifactType?: string;
}

export interface PushOptions {
  auth?: RegistryAuth;
  baseUrl?: string;
}

export interface PushedManifest {
  uri: string;
  digest: string;
  size: number;
  mediaType: string;
}

function registryRef(uri: string): RegistryImageRef {
  const ref = parseImageRef(uri);
  if (ref.kind !== 'docker' && ref.kind !== 'oras') {
    throw new WarrenError('IMAGE_REF_INVALID', `cannot push to '${uri}': not a registry reference`, {
      hint: 'push to docker://registry/name:tag or oras://registry/name:tag',
    });
  }
  return ref;
}

function clientFor(ref: RegistryImageRef, opts: PushOptions): RegistryClient {
  const auth = opts.auth ?? loadCredentials(ref.registry);
  return new RegistryClient(ref.registry, { ...(auth ? { auth } : {}), ...(opts.baseUrl ? { baseUrl: opts.baseUrl } : {}) });
}

async function fileDigest(path: string): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return { digest: 'sha256:' + h.digest('hex'), size: (await stat(path)).size };
}

/** Push an image (config + layers, monolithic uploads) and its manifest under the tag or digest of `uri`. */
export async function pushImage(uri: string, image: PushImageSpec, opts: PushOptions = {}): Promise<PushedManifest> {
  const ref = registryRef(uri);
  const client = clientFor(ref, opts);
  try {
    const cfgBytes = Buffer.isBuffer(image.config) ? image.config : Buffer.from(JSON.stringify(image.config));
    const cfgDesc: Descriptor = { mediaType: image.configMediaType ?? MT.ociConfig, digest: sha256Digest(cfgBytes), size: cfgBytes.length };
    await client.uploadBlob(ref.repository, cfgDesc.digest, cfgBytes);
    const layers: Descriptor[] = [];
    for (const l of image.layers) {
      let d: { digest: string; size: number };
      if (l.data) {
        d = { digest: sha256Digest(l.data), size: l.data.length };
        await client.uploadBlob(ref.repository, d.digest, l.data);
      } else if (l.path) {
        d = await fileDigest(l.path);
        await client.uploadBlob(ref.repository, d.digest, { path: l.path });
      } else {
        throw new Error('pushImage: a layer needs data or path');
      }
      layers.push({ mediaType: l.mediaType, ...d, ...(l.annotations ? { annotations: l.annotations } : {}) });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      ...(image.artifactType ? { artifactType: image.artifactType } : {}),
      config: cfgDesc,
      layers,
      ...(image.annotations ? { annotations: image.annotations } : {}),
    };
    const body = Buffer.from(JSON.stringify(manifest));
    const digest = await client.putManifest(ref.repository, ref.digest ?? ref.tag!, body, MT.ociManifest);
    return { uri: ref.uri, digest, size: body.length, mediaType: MT.ociManifest };
  } finally {
    await client.close();
  }
}

/** Push an OCI image index (multi-platform) referring to manifests already in the repository. */
export async function pushIndex(
  uri: string,
  manifests: { digest: string; size: number; mediaType?: string; platform: Platform }[],
  opts: PushOptions = {},
): Promise<PushedManifest> {
  const ref = registryRef(uri);
  const client = clientFor(ref, opts);
  try {
    const index = {
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      manifests: manifests.map((m) => ({ mediaType: m.mediaType ?? MT.ociManifest, digest: m.digest, size: m.size, platform: m.platform })),
    };
    const body = Buffer.from(JSON.stringify(index));
    const digest = await client.putManifest(ref.repository, ref.digest ?? ref.tag!, body, MT.ociIndex);
    return { uri: ref.uri, digest, size: body.length, mediaType: MT.ociIndex };
  } finally {
    await client.close();
  }
}

/** Push a .sif file as an ORAS artifact (the layout `oras push` and Apptainer use). */
export async function pushSif(uri: string, sifPath: string, opts: PushOptions = {}): Promise<PushedManifest> {
  const name = sifPath.split('/').pop() ?? 'image.sif';
  return pushImage(
    uri,
    {
      config: Buffer.from('{}'),
      configMediaType: MT.sifConfig,
      layers: [{ mediaType: MT.sifLayer, path: sifPath, annotations: { 'org.opencontainers.image.title': name } }],
    },
    opts,
  );
}

/**
 * Write a tar+gzip layer of the directory `dir` (files, directories, symlinks, hard links,
 * modes, owners, mtimes; sockets and devices are left out) to `outFile`, streamed.
 */
export async function layerFromDirectory(dir: string, outFile: string): Promise<{ mediaType: string; digest: string; size: number; diffId: string }> {
  const pack = tarStream().pack();
  const tarHash = createHash('sha256');
  const gzHash = createHash('sha256');
  let size = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _e, cb) {
      tarHash.update(chunk);
      cb(null, chunk);
    },
  });
  const count = new Transform({
    transform(chunk: Buffer, _e, cb) {
      gzHash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const written = pipeline(pack as unknown as Readable, tee, createGzip({ level: 6 }), count, createWriteStream(outFile));
  const seen = new Map<string, string>(); // dev:ino -> first path (hard links)
  const addEntry = (header: Parameters<typeof pack.entry>[0], data?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      if (data) pack.entry(header, data, (e) => (e ? reject(e) : resolve()));
      else pack.entry(header, (e) => (e ? reject(e) : resolve()));
    });
  const walk = async (rel: string): Promise<void> => {
    const names = readdirSync(join(dir, rel)).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const abs = join(dir, r);
      const st = lstatSync(abs);
      const common = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.isDirectory()) {
        await addEntry({ name: `${r}/`, type: 'directory', ...common });
        await walk(r);
      } else if (st.isSymbolicLink()) {
        await addEntry({ name: r, type: 'symlink', linkname: readlinkSync(abs), ...common });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(key) : undefined;
        if (first) {
          await addEntry({ name: r, type: 'link', linkname: first, ...common });
          continue;
        }
        if (st.nlink > 1) seen.set(key, r);
        await new Promise<void>((resolve, reject) => {
          const entry = pack.entry({ name: r, type: 'file', size: st.size, ...common }, (e) => (e ? reject(e) : resolve()));
          const src = createReadStream(abs, { highWaterMark: 1 << 20 });
          src.on('error', reject);
          src.on('data', (c) => {
            if (!entry.write(c as Buffer)) {
              src.pause();
              entry.once('drain', () => src.resume());
            }
          });
          src.on('end', () => (entry as unknown as { end(): void }).end());
        });
      }
    }
  };
  try {
    await walk('');
    pack.finalize();
    await written;
  } catch (e) {
    pack.destroy(e as Error);
    await written.catch(() => undefined);
    throw e;
  }
  return { mediaType: MT.ociLayerGzip, digest: 'sha256:' + gzHash.digest('hex'), size, diffId: 'sha256:' + tarHash.digest('hex') };
}

/**
 * Push a local image to a registry: a `.sif` file to `oras://…`, or a root file system
 * directory to `docker://…` as a one-layer OCI image (for this node's platform).
 */
export async function pushLocalImage(source: string, dest: string, opts: PushOptions & { tmpDir?: string; config?: OciImageConfigFile['config'] } = {}): Promise<PushedManifest> {
  const target = registryRef(dest);
  let st;
  try {
    st = statSync(source);
  } catch {
    throw new WarrenError('IMAGE_LOCAL_NOT_FOUND', `image ${source} does not exist`, { hint: 'give the path of a .sif file or a root file system directory' });
  }
  if (st.isFile()) {
    if (target.kind !== 'oras') {
      throw new WarrenError('IMAGE_REF_INVALID', `cannot push the file ${source} to ${dest}: SIF files go to oras:// references`, {
        hint: `push to oras://${target.registry}/${target.repository}:${target.tag ?? 'latest'}`,
      });
    }
    readSif(source, source);
    return pushSif(dest, source, opts);
  }
  if (target.kind !== 'docker') {
    throw new WarrenError('IMAGE_REF_INVALID', `cannot push the directory ${source} to ${dest}: root file systems go to docker:// references`, {
      hint: `push to docker://${target.registry}/${target.repository}:${target.tag ?? 'latest'}`,
    });
  }
  const work = mkdtempSync(join(opts.tmpDir ?? tmpdir(), 'warren-push-'));
  try {
    const layer = await layerFromDirectory(source, join(work, 'layer.tar.gz'));
    const p = hostPlatform();
    const config: OciImageConfigFile = {
      architecture: p.architecture,
      os: p.os,
      ...(p.variant ? { variant: p.variant } : {}),
      config: opts.config ?? { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    };
    return await pushImage(dest, { config, layers: [{ mediaType: layer.mediaType, path: join(work, 'layer.tar.gz') }] }, opts);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
