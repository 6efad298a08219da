// OCI image-spec and Docker distribution shapes, and platform selection. Pure: no I/O.
import { WarrenError } from '../../common/index.js';

export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  sifLayer: 'application/vnd.sylabs.sif.layer.v1.sif',
  sifConfig: 'application/vnd.sylabs.sif.config.v1+json',
} as const;

/** Accept header for manifest requests: indexes and manifests, OCI and Docker v2. */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(', ');

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform & { 'os.version'?: string; 'os.features'?: string[] };
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The parts of an OCI image configuration Warren uses. */
export interface OciImageConfigFile {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: {
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string> | null;
  };
  rootfs?: { type: string; diff_ids: string[] };
}

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MT.ociIndex || mt === MT.dockerList;
}

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MT.ociManifest || mt === MT.dockerManifest;
}

export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** Compression of a layer by its media type; undefined for media types that are not layers. */
export function layerCompression(mt: string): LayerCompression | undefined {
  switch (mt) {
    case MT.ociLayer:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
      return 'none';
    case MT.ociLayerGzip:
    case MT.dockerLayerGzip:
    case MT.dockerForeignLayer:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip':
      return 'gzip';
    case MT.ociLayerZstd:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    default:
      return undefined;
  }
}

/** The platform of this node, in OCI terms (from process.arch). */
export function hostPlatform(arch: string = process.arch, os: string = process.platform): Platform {
  const archMap: Record<string, Platform> = {
    x64: { os: 'linux', architecture: 'amd64' },
    arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
    ia32: { os: 'linux', architecture: '386' },
    ppc64: { os: 'linux', architecture: 'ppc64le' },
    s390x: { os: 'linux', architecture: 's390x' },
    riscv64: { os: 'linux', architecture: 'riscv64' },
    loong64: { os: 'linux', architecture: 'loong64' },
  };
  const p = archMap[arch] ?? { os: 'linux', architecture: arch };
  return { ...p, os: os === 'linux' ? 'linux' : os };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Parse `os/arch[/variant]` (e.g. `linux/arm64/v8`). */
export function parsePlatform(s: string): Platform | undefined {
  const m = /^([a-z0-9]+)\/([a-z0-9_]+)(?:\/([a-z0-9]+))?$/.exec(s.trim());
  if (!m) return undefined;
  return { os: m[1]!, architecture: m[2]!, ...(m[3] ? { variant: m[3] } : {}) };
}

function normVariant(arch: string, v: string | undefined): string | undefined {
  if (arch === 'arm64' && (v === undefined || v === '' || v === 'v8')) return 'v8';
  if (arch === 'arm' && (v === undefined || v === '')) return 'v7';
  return v || undefined;
}

/**
 * The manifest of `index` for `want`: same os and architecture; when the variant is
 * wanted it must match (arm64 without a variant is v8); otherwise the exact variant is
 * preferred, then the entry without one. Throws IMAGE_PLATFORM_NOT_FOUND naming what exists.
 */
export function selectPlatform(index: ImageIndex, want: Platform, imageName: string): Descriptor {
  const candidates = index.manifests.filter(
    (d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture && isManifestMediaType(d.mediaType ?? MT.ociManifest),
  );
  const wantV = normVariant(want.architecture, want.variant);
  const exact = candidates.find((d) => normVariant(d.platform!.architecture, d.platform!.variant) === wantV);
  if (exact) return exact;
  if (!want.variant) {
    const any = candidates.find((d) => !d.platform!.variant) ?? candidates[0];
    if (any) return any;
  }
  const available = index.manifests
    .filter((d) => d.platform && d.platform.os !== 'unknown')
    .map((d) => formatPlatform(d.platform!));
  throw new WarrenError('IMAGE_PLATFORM_NOT_FOUND', `image ${imageName} has no variant for platform ${formatPlatform(want)} (it has: ${available.join(', ') || 'none'})`, {
    hint: 'use an image built for this node\'s platform, or choose a platform the image has (warren image pull --platform os/arch[/variant])',
  });
}

/** Warren's view of an image configuration. */
export interface ImageConfig {
  env: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  labels: Record<string, string>;
}

export function imageConfigFrom(file: OciImageConfigFile | undefined): ImageConfig {
  const c = file?.config ?? {};
  const out: ImageConfig = { env: Array.isArray(c.Env) ? c.Env.map(String) : [], labels: {} };
  if (Array.isArray(c.Entrypoint) && c.Entrypoint.length) out.entrypoint = c.Entrypoint.map(String);
  if (Array.isArray(c.Cmd) && c.Cmd.length) out.cmd = c.Cmd.map(String);
  if (typeof c.WorkingDir === 'string' && c.WorkingDir) out.workingDir = c.WorkingDir;
  if (typeof c.User === 'string' && c.User) out.user = c.User;
  if (c.Labels && typeof c.Labels === 'object') for (const [k, v] of Object.entries(c.Labels)) out.labels[k] = String(v);
  return out;
}
