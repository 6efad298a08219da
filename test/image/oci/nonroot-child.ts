// Helper process for the non-root test (run as `nobody`): unpacks two layers with read-only
// directories into a cache entry, commits it, prunes everything, prints a JSON summary.
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageCache } from '../../../src/image/index.js';
import { buildLayer, RootfsWriter } from '../../../src/image/oci/index.js';

const work = process.argv[2]!;
const cache = new ImageCache(join(work, 'cache'));
cache.ensure();
const tmp = cache.tmpPath();
mkdirSync(join(tmp, 'rootfs'), { recursive: true });
const l1 = await buildLayer(
  [
    { name: 'ro/', type: 'directory', mode: 0o555 },
    { name: 'ro/f', data: 'x', mode: 0o444 },
    { name: 'owned-by-root', data: 'y', uid: 0, gid: 0 },
  ],
  'gzip',
);
const l2 = await buildLayer([{ name: 'ro/g', data: 'later' }, { name: 'ro/.wh.f' }], 'zstd');
writeFileSync(join(work, 'l1'), l1.data);
writeFileSync(join(work, 'l2'), l2.data);
const w = new RootfsWriter(join(tmp, 'rootfs'));
await w.applyLayer(join(work, 'l1'), 'gzip', 'test');
await w.applyLayer(join(work, 'l2'), 'zstd', 'test');
await w.finish();
const ro = join(tmp, 'rootfs', 'ro');
const summary: Record<string, unknown> = { uid: process.getuid!(), ro: readdirSync(ro), roMode: statSync(ro).mode & 0o777 };
const digest = 'sha256:' + 'a'.repeat(64);
writeFileSync(
  join(tmp, 'image.json'),
  JSON.stringify({ schema: 1, digest, kind: 'rootfs', mediaType: '', config: { env: [], labels: {} }, blobs: [], sizeBytes: 1, createdAt: new Date().toISOString(), source: 'test' }),
);
cache.commitImage(tmp, digest);
summary.listed = cache.list().length;
summary.pruned = cache.prune({ all: true }).images.length;
summary.left = readdirSync(join(work, 'cache', 'images'));
process.stdout.write(JSON.stringify(summary) + '\n');
