// Public API of the image subsystem: what a job's `image.uri` names, made ready to run.
//   docker://   pulled from an OCI registry, layers unpacked once into the node's cache
//   oras://     a SIF stored as an OCI artifact, fetched into the cache
//   file:///x.sif, /x.sif, /rootfs/dir   local images, checked and used in place
import { stat } from 'node:fs/promises';
import { WarrenError, EXIT } from '../common/index.js';
import { ImageCache, defaultImageCacheDir } from './cache/index.js';
import { readSif, readImageConfig } from './sif/index.js';
import { RegistryClient, formatPlatform, hasSifMagic, hostPlatform, parseImageRef, pullImage } from './oci/index.js';
import type { ImageConfig, ImageRef, LocalImageRef, RegistryImageRef, Platform, PullOptions, PullStats, RegistryAuth } from './oci/index.js';

export interface PreparedImage {
  uri: string;
  kind: 'rootfs' | 'sif';
  /** rootfs dir (unpacked layers, read-only, shared) or .sif path. */
  path: string;
  /** Manifest digest for registry images. */
  digest?: string;
  config: ImageConfig;
  /** What the pull did (registry images only). */
  pull?: PullStats;
}

/** What `prepareImage` takes: the pull options, with the cache given as a directory. */
export interface PrepareOptions extends Omit<PullOptions, 'cache' | 'baseUrl'> {
  /** Default `$WARREN_HOME/cache/images`. */
  cacheDir?: string;
}

const inflight = new Map<string, Promise<PreparedImage>>();

async function prepareLocal(ref: LocalImageRef): Promise<PreparedImage> {
  let st;
  try {
    st = await stat(ref.path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WarrenError('IMAGE_LOCAL_NOT_FOUND', `image ${ref.path} does not exist${code && code !== 'ENOENT' ? ` (${code})` : ''}`, {
      hint: 'check the path; local images are a .sif file or a root file system directory, given as an absolute path or file:///path',
    });
  }
  const config: ImageConfig = { env: [], labels: {} };
  if (st.isDirectory()) {
    if (ref.kind === 'sif') {
      throw new WarrenError('IMAGE_SIF_INVALID', `image ${ref.path} is a directory, not a SIF file`, { hint: 'give the path of the .sif file' });
    }
    return { uri: ref.uri, kind: 'rootfs', path: ref.path, config };
  }
  if (!st.isFile() || !(await hasSifMagic(ref.path))) {
    throw new WarrenError('IMAGE_SIF_INVALID', `image ${ref.path} is not a SIF file (no SIF header) and not a directory`, {
      hint: 'the file may be corrupt or truncated: build or download the SIF again (apptainer build), or give a root file system directory',
    });
  }
  // Structure check (header, descriptor table, objects inside the file): SIF_TRUNCATED / SIF_CORRUPT.
  readSif(ref.path, ref.path);
  // The image config (env, entrypoint, labels) that `warren image build` stores in the SIF.
  return { uri: ref.uri, kind: 'sif', path: ref.path, config: readImageConfig(ref.path, ref.path) ?? config };
}

/**
 * Make the image `uri` ready to run on this node: pull it if needed (a cache hit makes no
 * network request), unpack its layers once per image into the shared cache, and return
 * where it is. Concurrent calls for one image share one pull.
 */
export function prepareImage(uri: string, opts: PrepareOptions = {}): Promise<PreparedImage> {
  let ref: ImageRef;
  try {
    ref = parseImageRef(uri);
  } catch (e) {
    return Promise.reject(e);
  }
  if (ref.kind === 'sif' || ref.kind === 'rootfs') return prepareLocal(ref);
  const regRef = ref as RegistryImageRef;
  const cache = new ImageCache(opts.cacheDir ?? defaultImageCacheDir());
  const platform = opts.platform ?? hostPlatform();
  const key = `${cache.dir}\n${regRef.uri}\n${formatPlatform(platform)}\n${opts.policy ?? 'if-not-present'}\n${opts.allowSetuid === true}`;
  const running = inflight.get(key);
  if (running) return running;
  const p = (async (): Promise<PreparedImage> => {
    const r = await pullImage(regRef, {
      cache,
      platform,
      ...(opts.auth ? { auth: opts.auth } : {}),
      ...(opts.policy ? { policy: opts.policy } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.parallel ? { parallel: opts.parallel } : {}),
      ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
      ...(opts.allowSetuid ? { allowSetuid: true } : {}),
      ...(opts.registries ? { registries: opts.registries } : {}),
    });
    // A SIF (oras://) built by Warren carries its image config (env, entrypoint, labels) inside.
    const inner = r.kind === 'sif' ? readImageConfig(r.path, regRef.uri) : undefined;
    const config = inner ? { ...inner, labels: { ...r.config.labels, ...inner.labels } } : r.config;
    return { uri: regRef.uri, kind: r.kind, path: r.path, digest: r.digest, config, pull: r.stats };
  })();
  inflight.set(key, p);
  const clear = () => {
    if (inflight.get(key) === p) inflight.delete(key);
  };
  p.then(clear, clear);
  return p;
}

/** Check credentials against a registry's `/v2/` (what `warren registry login` does); throws IMAGE_AUTH_FAILED etc. */
export async function checkRegistryLogin(registry: string, auth: RegistryAuth): Promise<void> {
  const client = new RegistryClient(registry, { auth });
  try {
    await client.ping();
  } finally {
    await client.close();
  }
}

export { parseImageRef, hostPlatform, formatPlatform, parsePlatform, pushImage, pushIndex, pushSif, pushLocalImage, buildLayer } from './oci/index.js';
export { loadCredentials, saveCredentials, removeCredentials, credentialsFile } from './oci/index.js';
export { MIRRORS_ENV, mirrorsFile, loadRegistriesConfig, pullSource } from './oci/index.js';
export type { MirrorRule, RegistriesConfig, PullSource } from './oci/index.js';
export type {
  ImageRef,
  RegistryImageRef,
  LocalImageRef,
  ImageConfig,
  Platform,
  RegistryAuth,
  PullProgress,
  PullStats,
  LayerEntry,
  PushImageSpec,
  PushedManifest,
} from './oci/index.js';
export { ImageCache, defaultImageCacheDir } from './cache/index.js';
export type { CachedImage, PruneOptions, PruneResult, RemoveResult } from './cache/index.js';

// SIF images (read, build, sign, verify, encrypt, trust policy): src/image/sif, re-exported
// so other subsystems import everything image-related from here.
export * from './sif/index.js';

// Signing keys and the node's key store ($WARREN_HOME/keys).
export { KeyStore, defaultKeyDir, resolveKey, loadKeyFile } from './keys/index.js';
export type { StoredKey } from './keys/index.js';
