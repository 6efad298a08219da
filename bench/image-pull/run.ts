// Benchmark: pulling a ~200 MB image from a loopback registry, Warren vs `skopeo copy`.
//
//   node --import tsx bench/image-pull/run.ts [--mb 200] [--rounds 3]
//
// Builds an image of incompressible layers, pushes it with Warren's push code to Debian's
// docker-registry on 127.0.0.1, then times (median of N rounds, fresh destination each):
//   skopeo    skopeo copy docker://127.0.0.1:PORT/bench/big:1 oci:DIR  (download + verify, no unpack)
//   warren    fetchImageBlobs: download + verify into the blob store (the same work as skopeo)
//   warren+unpack  prepareImage: download, verify and unpack into a rootfs (reported separately)
// and shows that a second pull transfers no bytes.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip, constants as zc } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { ImageCache, prepareImage, pushImage } from '../../src/image/index.js';
import { buildLayer, fetchImageBlobs, parseImageRef, RootfsWriter, MT, type LayerEntry, type RegistryImageRef } from '../../src/image/oci/index.js';
import { startProxy, startRegistry } from '../../test/image/oci/registry.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const TOTAL_MB = arg('mb', 200);
const ROUNDS = arg('rounds', 3);
const LAYERS = 5;

/** A gzip layer file holding `files` files of random bytes, `mb` MiB in all. */
async function makeLayer(path: string, mb: number, files: number, seed: number): Promise<void> {
  const pack = tar.pack();
  const out = pipeline(pack as unknown as Readable, createGzip({ level: 1, strategy: zc.Z_DEFAULT_STRATEGY }), createWriteStream(path));
  const per = Math.floor((mb * 1024 * 1024) / files);
  pack.entry({ name: `data${seed}/`, type: 'directory', mode: 0o755 });
  for (let f = 0; f < files; f++) {
    const buf = randomBytes(per);
    await new Promise<void>((res, rej) => pack.entry({ name: `data${seed}/f${f}.bin`, size: per, mode: 0o644 }, buf, (e) => (e ? rej(e) : res())));
  }
  pack.finalize();
  await out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function skopeoAvailable(): boolean {
  return spawnSync('skopeo', ['--version']).status === 0;
}

async function main(): Promise<void> {
  if (!skopeoAvailable()) throw new Error('skopeo is not installed (apt-get install skopeo; listed in scripts/apt/image.txt)');
  const work = mkdtempSync(join(tmpdir(), 'warren-bench-pull-'));
  const reg = await startRegistry();
  try {
    process.stderr.write(`building a ${TOTAL_MB} MiB image (${LAYERS} layers of random data)...\n`);
    const layers: { mediaType: string; path: string }[] = [];
    for (let i = 0; i < LAYERS; i++) {
      const p = join(work, `layer${i}.tar.gz`);
      await makeLayer(p, TOTAL_MB / LAYERS, 8, i);
      layers.push({ mediaType: MT.ociLayerGzip, path: p });
    }
    const uri = `docker://${reg.host}/bench/big:1`;
    const config = { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'] }, rootfs: { type: 'layers', diff_ids: [] } };
    const t0 = Date.now();
    const pushed = await pushImage(uri, { config, layers });
    process.stderr.write(`pushed ${pushed.digest} in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
    for (const l of layers) rmSync(l.path);
    const ref = parseImageRef(uri) as RegistryImageRef;

    const skopeo: number[] = [];
    const warren: number[] = [];
    const full: number[] = [];
    const unpack: number[] = [];
    let bytes = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const dest = join(work, `skopeo-${r}`);
      const ts = process.hrtime.bigint();
      const s = spawnSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${reg.host}/bench/big:1`, `oci:${dest}:big`], { encoding: 'utf8' });
      if (s.status !== 0) throw new Error(`skopeo copy failed: ${s.stderr}`);
      skopeo.push(Number(process.hrtime.bigint() - ts) / 1e6);
      rmSync(dest, { recursive: true, force: true });

      const c1 = join(work, `warren-blobs-${r}`);
      const tw = process.hrtime.bigint();
      const res = await fetchImageBlobs(ref, { cache: new ImageCache(c1) });
      warren.push(Number(process.hrtime.bigint() - tw) / 1e6);
      bytes = res.stats.bytesDownloaded;
      rmSync(c1, { recursive: true, force: true });

      const c2 = join(work, `warren-full-${r}`);
      const tf = process.hrtime.bigint();
      const img = await prepareImage(uri, { cacheDir: c2 });
      full.push(Number(process.hrtime.bigint() - tf) / 1e6);
      unpack.push(img.pull!.unpackMs);
      if (r < ROUNDS - 1) rmSync(c2, { recursive: true, force: true });
    }

    // second pull of the same image, through a counting proxy
    const proxy = await startProxy(reg.url);
    const c3 = join(work, 'warren-second');
    const puri = `docker://${proxy.host}/bench/big:1`;
    await prepareImage(puri, { cacheDir: c3 });
    proxy.reset();
    const second = await prepareImage(puri, { cacheDir: c3 });
    const secondReqs = proxy.requests.length;
    const always = await prepareImage(puri, { cacheDir: c3, policy: 'always' });
    const alwaysBlobGets = proxy.blobGets().length;
    await proxy.stop();

    const sk = median(skopeo);
    const wa = median(warren);
    const fu = median(full);
    const mib = bytes / 1024 / 1024;
    const line = (name: string, ms: number) =>
      `${name.padEnd(34)} ${(ms / 1000).toFixed(2).padStart(7)} s  ${(mib / (ms / 1000)).toFixed(0).padStart(5)} MiB/s  ${(ms / sk).toFixed(2).padStart(5)}x`;
    console.log(`image: ${mib.toFixed(0)} MiB in ${LAYERS} gzip layers, loopback docker-registry, median of ${ROUNDS} rounds`);
    console.log(`${'pull'.padEnd(34)} ${'time'.padStart(9)}  ${'rate'.padStart(11)}  vs skopeo`);
    console.log(line('skopeo copy (download+verify)', sk));
    console.log(line('warren pull to blobs (same work)', wa));
    console.log(line('warren pull + unpack (rootfs)', fu));
    console.log(`unpack time inside the full pull (overlapping downloads): ${(median(unpack) / 1000).toFixed(2)} s`);
    console.log(`ratio warren/skopeo (pull to blobs): ${(wa / sk).toFixed(2)}  (target <= 1.2)`);
    console.log(
      `second pull: ${second.pull!.bytesDownloaded} bytes, ${secondReqs} requests; with --policy always: ${always.pull!.bytesDownloaded} blob bytes, ${alwaysBlobGets} blob requests (manifest check only)`,
    );
    // unpacking many small files (a distribution image has tens of thousands): Warren vs GNU tar
    const entries: LayerEntry[] = [];
    for (let d = 0; d < 200; d++) {
      entries.push({ name: `usr/share/d${d}/`, type: 'directory' });
      for (let f = 0; f < 100; f++) entries.push({ name: `usr/share/d${d}/file${f}.txt`, data: randomBytes(300 + f * 10).toString('base64') });
    }
    const small = await buildLayer(entries, 'gzip');
    const smallPath = join(work, 'small.tar.gz');
    writeFileSync(smallPath, small.data);
    const wu: number[] = [];
    const tu: number[] = [];
    // Deleting many files makes ext4 (with discard) slow for a while: flush before each timing
    // and alternate which tool goes first.
    const settle = () => spawnSync('sync');
    const timeWarren = async (r: number) => {
      const d1 = join(work, `unpack-w${r}`);
      mkdirSync(d1);
      settle();
      const t1 = process.hrtime.bigint();
      const w = new RootfsWriter(d1);
      await w.applyLayer(smallPath, 'gzip', 'bench');
      await w.finish();
      wu.push(Number(process.hrtime.bigint() - t1) / 1e6);
      rmSync(d1, { recursive: true, force: true });
    };
    const timeTar = (r: number) => {
      const d2 = join(work, `unpack-t${r}`);
      mkdirSync(d2);
      settle();
      const t2 = process.hrtime.bigint();
      const x = spawnSync('tar', ['-xzf', smallPath, '-C', d2]);
      if (x.status !== 0) throw new Error('tar failed');
      tu.push(Number(process.hrtime.bigint() - t2) / 1e6);
      rmSync(d2, { recursive: true, force: true });
    };
    for (let r = 0; r < ROUNDS; r++) {
      if (r % 2 === 0) {
        await timeWarren(r);
        timeTar(r);
      } else {
        timeTar(r);
        await timeWarren(r);
      }
    }
    console.log(
      `unpack 20,000 small files (${(small.data.length / 1024 / 1024).toFixed(1)} MiB gzip): warren ${(median(wu) / 1000).toFixed(2)} s, GNU tar -xzf ${(median(tu) / 1000).toFixed(2)} s, ratio ${(median(wu) / median(tu)).toFixed(2)}`,
    );
    console.log(`rounds (s): skopeo ${skopeo.map((x) => (x / 1000).toFixed(2)).join(' ')} | warren ${warren.map((x) => (x / 1000).toFixed(2)).join(' ')} | full ${full.map((x) => (x / 1000).toFixed(2)).join(' ')}`);
  } finally {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
