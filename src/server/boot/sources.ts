// What the boot service reads: node images (built by `warren image node-build`) and overlays
// (rendered per node). Each is an interface, so the service does not care who builds them; the
// defaults read the data directory's layout (DATA/provision/images/<hex>/) and use the
// provisioning subsystem's overlay builder.
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../common/index.js';
import type { ResolvedNode } from '../../provision/index.js';

/** A node image as the boot service needs it (a subset of src/provision's NodeImage). */
export interface BootImage {
  /** sha256:HEX of the source's content identity; HEX names its directory and its URLs. */
  digest: string;
  source: string;
  dir: string;
  kernelPath: string;
  rootfsPath: string;
  kernelSha256: string;
  rootfsSha256: string;
  builtAt: number;
}

export interface ImageSource {
  /** The newest node image built from this source image, if any. */
  find(source: string): Promise<BootImage | undefined>;
  /** The node image of this digest (HEX, 64 lower-case hex digits), if it is there. */
  byHex(hex: string): Promise<BootImage | undefined>;
}

/** What an overlay's templates see (the overlay subsystem's OverlayContext). */
export interface BootOverlayContext {
  node: ResolvedNode;
  nodes: ResolvedNode[];
  server: { url: string; caPem: string; bootUrl: string };
  joinToken: string | null;
  cluster: { trustDomain: string };
}

export interface OverlaySource {
  /** Render these overlays for the node of `ctx` into the cpio.gz archive `out` (later files win). */
  build(overlays: string[], ctx: BootOverlayContext, out: string): Promise<{ sha256: string; size: number }>;
}

/** The images directory of a data directory. */
export const imagesDir = (dataDir: string): string => join(dataDir, 'provision', 'images');

const HEX = /^[0-9a-f]{64}$/;

/**
 * Node images as `warren image node-build` leaves them: DATA/provision/images/<HEX>/ with
 * vmlinuz, rootfs.cpio.gz and image.json (the NodeImage record). image.json is read again only
 * when it changed (its mtime), so a request costs one stat.
 */
export class DirImageSource implements ImageSource {
  private readonly cache = new Map<string, { mtimeMs: number; img: BootImage | undefined }>();
  constructor(private readonly dataDir: string) {}

  async byHex(hex: string): Promise<BootImage | undefined> {
    if (!HEX.test(hex)) return undefined;
    const dir = join(imagesDir(this.dataDir), hex);
    const meta = join(dir, 'image.json');
    let mtimeMs: number;
    try {
      mtimeMs = (await fsp.stat(meta)).mtimeMs;
    } catch {
      this.cache.delete(hex);
      return undefined;
    }
    const hit = this.cache.get(hex);
    if (hit && hit.mtimeMs === mtimeMs) return hit.img;
    let img: BootImage | undefined;
    try {
      const j = JSON.parse(await fsp.readFile(meta, 'utf8')) as Partial<BootImage>;
      const kernelPath = join(dir, 'vmlinuz');
      const rootfsPath = join(dir, 'rootfs.cpio.gz');
      if (typeof j.digest === 'string' && j.digest.endsWith(hex) && typeof j.source === 'string' && typeof j.kernelSha256 === 'string' && typeof j.rootfsSha256 === 'string' && existsSync(kernelPath) && existsSync(rootfsPath)) {
        img = { digest: j.digest, source: j.source, dir, kernelPath, rootfsPath, kernelSha256: j.kernelSha256, rootfsSha256: j.rootfsSha256, builtAt: typeof j.builtAt === 'number' ? j.builtAt : mtimeMs };
      }
    } catch {
      img = undefined; // half written or not ours: not a node image (yet)
    }
    this.cache.set(hex, { mtimeMs, img });
    return img;
  }

  async find(source: string): Promise<BootImage | undefined> {
    let names: string[];
    try {
      names = await fsp.readdir(imagesDir(this.dataDir));
    } catch {
      return undefined;
    }
    let best: BootImage | undefined;
    for (const n of names) {
      const img = await this.byHex(n);
      if (img && img.source === source && (!best || img.builtAt > best.builtAt)) best = img;
    }
    return best;
  }
}

type BuildOverlayArchive = (dataDir: string, overlays: string[], ctx: BootOverlayContext, out: string) => Promise<{ sha256: string; size: number }>;

/** The provisioning subsystem's overlay builder (src/provision: buildOverlayArchive). */
export async function provisionOverlays(dataDir: string): Promise<OverlaySource> {
  const p = (await import('../../provision/index.js')) as unknown as Record<string, unknown>;
  const build = p.buildOverlayArchive as BuildOverlayArchive | undefined;
  if (typeof build !== 'function') {
    throw new WarrenError('WARREN_INTERNAL', 'this build of Warren has no overlay builder (src/provision buildOverlayArchive)', { hint: 'build Warren from a tree with the overlays of issue 13' });
  }
  return { build: (overlays, ctx, out) => build(dataDir, overlays, ctx, out) };
}

/**
 * The command line that runs `bin args` as a child that dies with the server, also when the
 * server is killed (-9): util-linux's `setpriv --pdeathsig SIGTERM` (the kernel signals the child
 * when its parent goes); without setpriv, the plain command (a killed server then leaves it).
 */
export function dyingWithParent(bin: string, args: string[]): [string, string[]] {
  for (const d of ['/usr/bin', '/bin']) {
    if (existsSync(`${d}/setpriv`)) return [`${d}/setpriv`, ['--pdeathsig', 'SIGTERM', '--', bin, ...args]];
  }
  return [bin, args];
}
