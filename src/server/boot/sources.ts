// What the boot service reads: node images (built by `warren image node-build`) and overlays
// (rendered per node). Each is an interface, so the service does not care who builds them; the
// defaults read the data directory's layout (DATA/provision/images/<hex>/) and use the
// provisioning subsystem's overlay builder.
import type { ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { buildOverlayArchive, findNodeImage } from '../../provision/index.js';
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
    // src/provision knows every spelling of a source (file:///x/ is /x); the image is then read
    // through byHex, which re-reads image.json only when it changed.
    const img = await findNodeImage(this.dataDir, source);
    return img && this.byHex(img.digest.replace(/^sha256:/, ''));
  }
}

/** The provisioning subsystem's overlay builder (src/provision: buildOverlayArchive). */
export function provisionOverlays(dataDir: string): OverlaySource {
  return { build: (overlays, ctx, out) => buildOverlayArchive(dataDir, overlays, ctx, out) };
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

/** Stop a child: SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
export function stopChild(c: ChildProcess | null, graceMs: number): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill('SIGTERM');
  });
}
