// Build source: an OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`,
// as written by `skopeo copy … oci:DIR:TAG`, buildah, podman save --format oci-dir). The image
// for this platform (or the one tagged REF with DIR:REF) is unpacked with the image subsystem's
// layer writer (whiteouts, hard links, symlinks confined to the root) and its configuration read.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError, EXIT } from '../../common/index.js';
import { RootfsWriter, hostPlatform, imageConfigFrom, layerCompression, selectPlatform, type ImageConfig } from '../oci/index.js';
import type { Descriptor, ImageIndex, ImageManifest, OciImageConfigFile } from '../oci/index.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** Is `dir` an OCI image layout (a directory with oci-layout and index.json)? */
export function isOciLayout(dir: string): boolean {
  try {
    return statSync(dir).isDirectory() && existsSync(join(dir, 'oci-layout')) && existsSync(join(dir, 'index.json'));
  } catch {
    return false;
  }
}

function bad(layout: string, what: string, hint = 'check the layout (e.g. `skopeo inspect oci:DIR`) or export the image again'): WarrenError {
  return new WarrenError('SIF_SOURCE_INVALID', `OCI image layout ${layout}: ${what}`, { hint });
}

function blobPath(layout: string, digest: string): string {
  const m = /^(sha256|sha512):([0-9a-f]+)$/.exec(digest);
  if (!m) throw bad(layout, `invalid digest ${digest}`);
  return join(layout, 'blobs', m[1]!, m[2]!);
}

async function checkedBlob(layout: string, d: Descriptor): Promise<string> {
  const p = blobPath(layout, d.digest);
  if (!existsSync(p)) throw bad(layout, `blob ${d.digest} is missing`);
  const alg = d.digest.split(':')[0]!;
  const h = createHash(alg);
  for await (const c of createReadStream(p, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  if (`${alg}:${h.digest('hex')}` !== d.digest) throw bad(layout, `blob ${d.digest} does not match its digest (damaged)`);
  return p;
}

function readJson<T>(layout: string, path: string, what: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw bad(layout, `${what} is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Unpack the image of an OCI layout (`layout`, optionally tagged `ref`) into `rootfs` (an empty
 * or missing directory) and return its configuration.
 */
export async function unpackOciLayout(layout: string, ref: string | undefined, rootfs: string): Promise<ImageConfig> {
  let index = readJson<ImageIndex>(layout, join(layout, 'index.json'), 'index.json');
  if (!Array.isArray(index.manifests) || index.manifests.length === 0) throw bad(layout, 'index.json lists no images');
  let desc: Descriptor | undefined;
  if (ref !== undefined) {
    desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
    if (!desc) throw bad(layout, `has no image tagged ${ref}`, `tags: ${index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? '(none)').join(', ')}`);
  } else if (index.manifests.length === 1) {
    desc = index.manifests[0];
  } else {
    desc = selectPlatform(index, hostPlatform(), layout);
  }
  // Nested index (e.g. a multi-platform image under one tag).
  for (let depth = 0; desc && INDEX_TYPES.has(desc.mediaType) && depth < 4; depth++) {
    index = readJson<ImageIndex>(layout, await checkedBlob(layout, desc), `index ${desc.digest}`);
    desc = index.manifests.length === 1 ? index.manifests[0] : selectPlatform(index, hostPlatform(), layout);
  }
  if (!desc) throw bad(layout, 'no image found');
  const manifest = readJson<ImageManifest>(layout, await checkedBlob(layout, desc), `manifest ${desc.digest}`);
  if (!manifest.config || !Array.isArray(manifest.layers)) throw bad(layout, `manifest ${desc.digest} is not an image manifest`);
  const config = readJson<OciImageConfigFile>(layout, await checkedBlob(layout, manifest.config), `config ${manifest.config.digest}`);
  const writer = new RootfsWriter(rootfs);
  for (const [i, l] of manifest.layers.entries()) {
    const comp = layerCompression(l.mediaType);
    if (!comp) throw bad(layout, `layer ${i + 1} has the unsupported media type ${l.mediaType}`, 'layers must be tar, tar+gzip or tar+zstd');
    await writer.applyLayer(await checkedBlob(layout, l), comp, `layer ${i + 1} (${l.digest}) of ${layout}`);
  }
  await writer.finish();
  return imageConfigFrom(config);
}
