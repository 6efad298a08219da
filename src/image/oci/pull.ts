// Pulling docker:// images and oras:// SIF artifacts into the node's image cache:
// resolve the manifest (platform from an index), download blobs in parallel (bounded,
// verified), unpack layers in order while later ones still download, and publish the
// image entry atomically. Concurrent pulls of one image are done once (a lock file per
// manifest digest across processes; callers share a promise within a process).
import { link, mkdir, open, rm, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WarrenError, isWarrenError } from '../../common/index.js';
import type { ImageCache, ImageRecord } from '../cache/index.js';
import { loadCredentials, type RegistryAuth } from './auth.js';
import { RegistryClient, type FetchedManifest } from './client.js';
import type { RegistryImageRef } from './ref.js';
import { loadRegistriesConfig, pullSource, type PullSource, type RegistriesConfig } from './mirrors.js';
import { RootfsWriter } from './unpack.js';
import { readSif } from '../sif/index.js';
import {
  MT,
  formatPlatform,
  hostPlatform,
  imageConfigFrom,
  isIndexMediaType,
  layerCompression,
  selectPlatform,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type OciImageConfigFile,
  type Platform,
} from './types.js';

export interface PullProgress {
  phase: 'resolve' | 'download' | 'unpack' | 'done';
  uri: string;
  digest?: string;
  /** Bytes done in this phase (download: all blobs together). */
  bytes?: number;
  totalBytes?: number;
}

export interface PullStats {
  /** Served from the cache without downloading blobs. */
  cached: boolean;
  /** Blob bytes received from the registry. */
  bytesDownloaded: number;
  blobsDownloaded: number;
  manifestRequests: number;
  blobRequests: number;
  /** Milliseconds from the start until every blob was on disk. */
  downloadMs: number;
  /** Milliseconds spent unpacking layers (overlaps the download). */
  unpackMs: number;
  totalMs: number;
}

export interface PullOptions {
  cache: ImageCache;
  /** Credentials; default: those stored by `warren registry login` for the registry. */
  auth?: RegistryAuth;
  platform?: Platform;
  /** `if-not-present` (default): a cached tag is used without asking the registry; `always`: re-resolve the tag. */
  policy?: 'if-not-present' | 'always';
  onProgress?: (p: PullProgress) => void;
  /** Parallel blob downloads (default 4). */
  parallel?: number;
  /** Extra attempts for a download that broke off (default 2). */
  retries?: number;
  /** Override the registry base URL (tests, proxies); no mirror applies then. */
  baseUrl?: string;
  /**
   * Registry mirrors and plain-HTTP hosts; default: the node's ($WARREN_HOME/mirrors.yaml and
   * WARREN_REGISTRY_MIRRORS, read at each pull). The image keeps its own name for the cache,
   * trust and messages; only the requests go to the mirror.
   */
  registries?: RegistriesConfig;
  /**
   * Keep the setuid/setgid bits of the layers (node policy `allow-setuid: true`); default
   * false: they are dropped when unpacking. Applies to images unpacked from now on.
   */
  allowSetuid?: boolean;
}

export interface PulledImage {
  digest: string;
  kind: 'rootfs' | 'sif';
  path: string;
  config: ImageConfig;
  stats: PullStats;
}

/** Blob download failures worth another attempt: broken connections and server errors. */
const TRANSIENT = new Set(['IMAGE_DOWNLOAD_INCOMPLETE', 'IMAGE_REGISTRY_UNREACHABLE', 'IMAGE_REGISTRY_ERROR']);

function emptyStats(): PullStats {
  return { cached: false, bytesDownloaded: 0, blobsDownloaded: 0, manifestRequests: 0, blobRequests: 0, downloadMs: 0, unpackMs: 0, totalMs: 0 };
}

function manifestError(what: string, why: string): WarrenError {
  return new WarrenError('IMAGE_MANIFEST_INVALID', `the manifest of ${what} is not usable: ${why}`, {
    hint: 'check that the reference names an OCI or Docker v2 image (schema 2); rebuild or push it again',
  });
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor;
  return !!x && typeof x.digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(x.digest) && typeof x.size === 'number' && x.size >= 0;
}

interface Resolved {
  client: RegistryClient;
  /** The repository inside the client's registry (the mirror's, when one applies). */
  repository: string;
  digest: string;
  manifest: ImageManifest;
  mediaType: string;
}

/** Resolve `ref` to one image manifest for `platform` (following an index). */
async function resolveManifest(ref: RegistryImageRef, client: RegistryClient, repository: string, platform: Platform): Promise<Omit<Resolved, 'client' | 'repository'>> {
  const what = ref.uri;
  let m: FetchedManifest = await client.getManifest(repository, ref.digest ?? ref.tag!, what);
  if (isIndexMediaType(m.mediaType) || (Array.isArray(m.json.manifests) && !m.json.layers)) {
    const index = m.json as unknown as ImageIndex;
    if (!Array.isArray(index.manifests) || !index.manifests.every(isDescriptor)) throw manifestError(what, 'the index has malformed entries');
    const desc = selectPlatform(index, platform, what);
    m = await client.getManifest(repository, desc.digest, `${what} (${formatPlatform(platform)})`);
    if (m.digest !== desc.digest) throw manifestError(what, 'the platform manifest does not match the index');
  }
  if (m.mediaType.startsWith('application/vnd.docker.distribution.manifest.v1')) {
    throw manifestError(what, 'Docker schema 1 manifests are not supported');
  }
  const man = m.json as unknown as ImageManifest;
  if (man.schemaVersion !== 2 || !isDescriptor(man.config) || !Array.isArray(man.layers) || !man.layers.every(isDescriptor)) {
    throw manifestError(what, 'expected schemaVersion 2 with a config and layers');
  }
  return { digest: m.digest, manifest: man, mediaType: m.mediaType || MT.ociManifest };
}

/** Download the blobs that are not yet in the cache; returns a promise per descriptor. */
function scheduleDownloads(
  cache: ImageCache,
  r: Resolved,
  ref: RegistryImageRef,
  descs: Descriptor[],
  opts: PullOptions,
  stats: PullStats,
): Promise<void>[] {
  const parallel = Math.max(1, opts.parallel ?? 4);
  const retries = opts.retries ?? 2;
  const total = descs.reduce((s, d) => s + (cache.hasBlob(d.digest, d.size) ? 0 : d.size), 0);
  let done = 0;
  let running = 0;
  const waiters: (() => void)[] = [];
  const acquire = async () => {
    while (running >= parallel) await new Promise<void>((res) => waiters.push(res));
    running++;
  };
  const releaseSlot = () => {
    running--;
    waiters.shift()?.();
  };
  const seen = new Map<string, Promise<void>>();
  return descs.map((d) => {
    const existing = seen.get(d.digest);
    if (existing) return existing;
    const p = (async () => {
      if (cache.hasBlob(d.digest, d.size)) return;
      await acquire();
      try {
        for (let attempt = 0; ; attempt++) {
          const tmp = cache.tmpPath('.blob');
          try {
            await r.client.downloadBlob(r.repository, d, tmp, ref.uri, (n) => {
              done += n;
              opts.onProgress?.({ phase: 'download', uri: ref.uri, digest: d.digest, bytes: done, totalBytes: total });
            });
            cache.putBlob(tmp, d.digest);
            stats.blobsDownloaded++;
            return;
          } catch (e) {
            await rm(tmp, { force: true });
            if (isWarrenError(e) && TRANSIENT.has(e.code) && attempt < retries) {
              await sleep(200 * 2 ** attempt);
              continue;
            }
            throw e;
          }
        }
      } finally {
        releaseSlot();
      }
    })();
    seen.set(d.digest, p);
    return p;
  });
}

async function readSmallBlob(cache: ImageCache, d: Descriptor): Promise<Buffer> {
  const fh = await open(cache.blobPath(d.digest), 'r');
  try {
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

function cachedResult(cache: ImageCache, rec: ImageRecord, stats: PullStats): PulledImage {
  return { digest: rec.digest, kind: rec.kind, path: cache.imagePath(rec), config: rec.config, stats: { ...stats, cached: true } };
}

/** Is the file at `path` a SIF (magic `SIF_MAGIC` at offset 32)? */
export async function hasSifMagic(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(10);
    const { bytesRead } = await fh.read(buf, 0, 10, 32);
    return bytesRead === 10 && buf.toString('latin1', 0, 9) === 'SIF_MAGIC';
  } finally {
    await fh.close();
  }
}

/**
 * The client for pulling `ref` and the repository to ask it for: the image's own registry, or
 * the mirror the node's configuration sends it to. Stored credentials are those of the host
 * the requests go to (`warren registry login MIRROR` for a mirror); a job's image secret is
 * sent as given (the mirror stands in for the registry, by the node admin's choice).
 */
function clientFor(ref: RegistryImageRef, opts: PullOptions): { client: RegistryClient; repository: string } {
  const src: PullSource = opts.baseUrl
    ? { registry: ref.registry, repository: ref.repository, baseUrl: opts.baseUrl }
    : pullSource(ref, opts.registries ?? loadRegistriesConfig());
  const auth = opts.auth ?? loadCredentials(src.registry);
  const client = new RegistryClient(src.registry, {
    ...(auth ? { auth } : {}),
    baseUrl: src.baseUrl,
    connections: Math.max(4, (opts.parallel ?? 4) + 1),
    ...(src.mirror ? { mirrorOf: { registry: src.mirror.path ? `${ref.registry}/${src.mirror.path}` : ref.registry, origin: src.mirror.origin } } : {}),
  });
  return { client, repository: src.repository };
}

/** Pull `ref` into the cache (or find it there) and return the prepared image. */
export async function pullImage(ref: RegistryImageRef, opts: PullOptions): Promise<PulledImage> {
  const t0 = Date.now();
  const cache = opts.cache;
  cache.ensure();
  const platform = opts.platform ?? hostPlatform();
  const pkey = formatPlatform(platform);
  const stats = emptyStats();

  if (opts.policy !== 'always') {
    const known = cache.getRef(ref.uri, pkey);
    const rec = (known && cache.readImage(known.digest)) || (ref.digest ? cache.readImage(ref.digest) : undefined);
    if (rec) {
      cache.recordUse(ref.uri, pkey, rec.digest, false);
      opts.onProgress?.({ phase: 'done', uri: ref.uri, digest: rec.digest });
      return cachedResult(cache, rec, { ...stats, totalMs: Date.now() - t0 });
    }
  }

  const { client, repository } = clientFor(ref, opts);
  try {
    opts.onProgress?.({ phase: 'resolve', uri: ref.uri });
    const res = await resolveManifest(ref, client, repository, platform);
    const r: Resolved = { client, repository, ...res };
    const collect = () => {
      stats.bytesDownloaded = client.bytesReceived;
      stats.manifestRequests = client.requests.manifest;
      stats.blobRequests = client.requests.blob;
      stats.totalMs = Date.now() - t0;
    };
    const hit = cache.readImage(r.digest);
    if (hit) {
      cache.recordUse(ref.uri, pkey, hit.digest, true);
      collect();
      return cachedResult(cache, hit, stats);
    }
    const release = await cache.lock(r.digest.slice(7), ref.uri);
    try {
      const again = cache.readImage(r.digest);
      if (again) {
        cache.recordUse(ref.uri, pkey, again.digest, true);
        collect();
        return cachedResult(cache, again, stats);
      }
      const isSif =
        ref.kind === 'oras' || r.manifest.config.mediaType === MT.sifConfig || r.manifest.layers.some((l) => l.mediaType === MT.sifLayer);
      const out = isSif ? await pullSif(cache, r, ref, opts, stats, pkey) : await pullRootfs(cache, r, ref, opts, stats, pkey, t0);
      cache.recordUse(ref.uri, pkey, r.digest, true);
      collect();
      out.stats = { ...stats };
      opts.onProgress?.({ phase: 'done', uri: ref.uri, digest: r.digest });
      return out;
    } finally {
      release();
    }
  } finally {
    await client.close();
  }
}

async function pullRootfs(
  cache: ImageCache,
  r: Resolved,
  ref: RegistryImageRef,
  opts: PullOptions,
  stats: PullStats,
  pkey: string,
  t0: number,
): Promise<PulledImage> {
  const what = ref.uri;
  const layers = r.manifest.layers;
  const comps = layers.map((l) => {
    const c = layerCompression(l.mediaType);
    if (!c) {
      throw new WarrenError('IMAGE_LAYER_UNSUPPORTED', `image ${what} has a layer of media type '${l.mediaType}', which Warren cannot unpack`, {
        hint: 'use an image whose layers are tar, tar+gzip or tar+zstd (OCI or Docker v2)',
      });
    }
    return c;
  });
  const tmp = cache.tmpPath();
  const rootfs = join(tmp, 'rootfs');
  const downloads = scheduleDownloads(cache, r, ref, [r.manifest.config, ...layers], opts, stats);
  for (const p of downloads) p.catch(() => undefined);
  const allDownloaded = Promise.all(downloads).then(() => {
    stats.downloadMs = Date.now() - t0;
  });
  allDownloaded.catch(() => undefined);
  try {
    await mkdir(rootfs, { recursive: true, mode: 0o755 });
    await downloads[0];
    let cfgFile: OciImageConfigFile;
    try {
      cfgFile = JSON.parse((await readSmallBlob(cache, r.manifest.config)).toString('utf8')) as OciImageConfigFile;
    } catch {
      throw manifestError(what, `the image configuration ${r.manifest.config.digest} is not valid JSON`);
    }
    const writer = new RootfsWriter(rootfs, { allowSetuid: opts.allowSetuid === true });
    for (let i = 0; i < layers.length; i++) {
      await downloads[i + 1];
      const t = Date.now();
      opts.onProgress?.({ phase: 'unpack', uri: ref.uri, digest: layers[i]!.digest, bytes: i, totalBytes: layers.length });
      await writer.applyLayer(cache.blobPath(layers[i]!.digest), comps[i]!, what);
      stats.unpackMs += Date.now() - t;
    }
    await writer.finish();
    await allDownloaded;
    const rec: ImageRecord = {
      schema: 1,
      digest: r.digest,
      kind: 'rootfs',
      mediaType: r.mediaType,
      platform: pkey,
      config: imageConfigFrom(cfgFile),
      blobs: [r.manifest.config.digest, ...layers.map((l) => l.digest)],
      sizeBytes: writer.bytes,
      setuid: opts.allowSetuid === true ? 'kept' : 'dropped',
      createdAt: new Date().toISOString(),
      source: ref.uri,
    };
    return await commitRecord(cache, tmp, rec, stats);
  } catch (e) {
    await Promise.allSettled(downloads);
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

async function pullSif(cache: ImageCache, r: Resolved, ref: RegistryImageRef, opts: PullOptions, stats: PullStats, pkey: string): Promise<PulledImage> {
  const what = ref.uri;
  const layers = r.manifest.layers;
  const layer = layers.find((l) => l.mediaType === MT.sifLayer) ?? (layers.length === 1 ? layers[0] : undefined);
  if (!layer) {
    throw new WarrenError('IMAGE_NOT_SIF', `artifact ${what} holds no SIF layer (${MT.sifLayer})`, {
      hint: 'push the image with `oras push REF image.sif:application/vnd.sylabs.sif.layer.v1.sif`, or use docker:// for an OCI image',
    });
  }
  const [dl] = scheduleDownloads(cache, r, ref, [layer], opts, stats);
  await dl;
  const blob = cache.blobPath(layer.digest);
  if (!(await hasSifMagic(blob))) {
    throw new WarrenError('IMAGE_SIF_INVALID', `artifact ${what} does not contain a SIF image (no SIF magic in layer ${layer.digest})`, {
      hint: 'check that a .sif file was pushed to this reference; rebuild the SIF and push it again',
    });
  }
  readSif(blob, what); // header, descriptor table, objects inside the file
  const tmp = cache.tmpPath();
  try {
    await mkdir(tmp, { recursive: true });
    const target = join(tmp, 'image.sif');
    await link(blob, target).catch(() => copyFile(blob, target));
    const rec: ImageRecord = {
      schema: 1,
      digest: r.digest,
      kind: 'sif',
      mediaType: r.mediaType,
      platform: pkey,
      config: { env: [], labels: { ...(r.manifest.annotations ?? {}) } },
      blobs: [layer.digest],
      sizeBytes: layer.size,
      createdAt: new Date().toISOString(),
      source: ref.uri,
    };
    return await commitRecord(cache, tmp, rec, stats);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Download an image's blobs into the cache without unpacking (benchmarks, pre-seeding a node). */
export async function fetchImageBlobs(ref: RegistryImageRef, opts: PullOptions): Promise<{ digest: string; stats: PullStats }> {
  const t0 = Date.now();
  opts.cache.ensure();
  const stats = emptyStats();
  const { client, repository } = clientFor(ref, opts);
  try {
    const res = await resolveManifest(ref, client, repository, opts.platform ?? hostPlatform());
    const r: Resolved = { client, repository, ...res };
    await Promise.all(scheduleDownloads(opts.cache, r, ref, [r.manifest.config, ...r.manifest.layers], opts, stats));
    stats.downloadMs = stats.totalMs = Date.now() - t0;
    stats.bytesDownloaded = client.bytesReceived;
    stats.blobRequests = client.requests.blob;
    stats.manifestRequests = client.requests.manifest;
    return { digest: r.digest, stats };
  } finally {
    await client.close();
  }
}

/** Write the image record beside the prepared content, move it into the cache atomically, and say where it is. */
async function commitRecord(cache: ImageCache, tmp: string, rec: ImageRecord, stats: PullStats): Promise<PulledImage> {
  await writeFile(join(tmp, 'image.json'), JSON.stringify(rec, null, 2) + '\n');
  cache.commitImage(tmp, rec.digest);
  return { digest: rec.digest, kind: rec.kind, path: cache.imagePath(rec), config: rec.config, stats };
}
