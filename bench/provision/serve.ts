// Boot service bench (issue 13, speed target): one node image root file system (500 MB by
// default) fetched whole by 32 concurrent HTTP clients (curl), aggregate throughput of
//   warren (node)   the boot service's own streaming handler (--provision-nginx off)
//   warren (nginx)  the boot service in nginx mode (the default when nginx is installed)
//   nginx           a plain Debian nginx (its defaults: worker_processes auto, sendfile on) serving the same file
// and the ratio to plain nginx within each round (median over the rounds). Target: >= 0.8x. Files on /dev/shm (the disk is not measured).
//   bash bench/run.sh provision [--size-mb N] [--clients N] [--rounds N]
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MemoryTokenStore } from '../../src/mesh/index.js';
import { startBootService, type RunningBoot } from '../../src/server/boot/index.js';
import { MemoryInventory } from '../../test/provision/memory-inventory.js';
import { TreeOverlays } from '../../test/provision/tree-overlays.js';
import { freePort } from '../../test/helpers.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SIZE_MB = arg('size-mb', 500);
const CLIENTS = arg('clients', 32);
const ROUNDS = arg('rounds', 2);

function makeImage(data: string): { hex: string; bytes: number } {
  const hex = createHash('sha256').update(`bench-${Date.now()}`).digest('hex');
  const dir = join(data, 'provision', 'images', hex);
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'rootfs.cpio.gz'), 'w');
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < SIZE_MB; i++) writeSync(fd, chunk);
  closeSync(fd);
  writeFileSync(join(dir, 'vmlinuz'), randomBytes(1 << 16));
  writeFileSync(join(dir, 'image.json'), JSON.stringify({ digest: `sha256:${hex}`, source: 'bench', kernelSha256: '0'.repeat(64), rootfsSha256: '1'.repeat(64), builtAt: Date.now() }));
  return { hex, bytes: SIZE_MB << 20 };
}

/** CLIENTS curls at once, each fetching the whole file: aggregate MB/s. */
async function fetchAll(url: string, bytes: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, () =>
      new Promise<void>((resolve, reject) => {
        const c = spawn('curl', ['-sS', '-f', '-o', '/dev/null', '-w', '%{size_download}', url], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.on('close', (code) => (code === 0 && Number(out) === bytes ? resolve() : reject(new Error(`curl ${url}: exit ${code}, ${out} bytes of ${bytes}`))));
      }),
    ),
  );
  const s = (performance.now() - t0) / 1000;
  return (bytes * CLIENTS) / s / 1e6;
}

async function plainNginx(root: string, dir: string, port: number): Promise<() => Promise<void>> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'plain.conf');
  writeFileSync(conf, `worker_processes auto;\npid ${dir}/plain.pid;\nerror_log stderr warn;\n${process.getuid?.() === 0 ? 'user root;\n' : ''}events { worker_connections 4096; }\nhttp { access_log off; sendfile on; tcp_nopush on; client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp;\n fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;\n server { listen 127.0.0.1:${port}; root ${root}; } }\n`);
  const c = spawn('/usr/sbin/nginx', ['-p', dir, '-e', 'stderr', '-c', conf, '-g', 'daemon off;'], { stdio: 'inherit' });
  await new Promise((r) => setTimeout(r, 500));
  return () => new Promise<void>((r) => {
    c.once('exit', () => r());
    c.kill('SIGTERM');
  });
}

async function main(): Promise<void> {
  const base = mkdtempSync('/dev/shm/warren-bench-boot-');
  try {
    const data = join(base, 'data');
    const { hex, bytes } = makeImage(data);
    const path = `/provision/images/${hex}/rootfs.cpio.gz`;
    const inventory = new MemoryInventory();
    const ctx = { dataDir: data, tokens: new MemoryTokenStore(), store: null, server: () => ({ url: 'https://127.0.0.1:1', caPem: '' }), trustDomain: 'bench.local', log: () => {} };
    const overlays = new TreeOverlays(join(base, 'overlays'));
    const results: Record<string, number[]> = { 'warren (node)': [], 'warren (nginx)': [], nginx: [] };
    for (let r = 0; r < ROUNDS; r++) {
      {
        const port = await freePort();
        const stop = await plainNginx(join(data), join(base, 'plain'), port);
        results.nginx!.push(await fetchAll(`http://127.0.0.1:${port}${path}`, bytes).catch(async (e) => {
          await stop();
          throw e;
        }));
        await stop();
      }
      for (const mode of ['off', 'on'] as const) {
        const boot: RunningBoot = await startBootService({ host: '127.0.0.1', port: await freePort(), nginx: mode, inventory, overlays }, ctx);
        try {
          results[mode === 'off' ? 'warren (node)' : 'warren (nginx)']!.push(await fetchAll(`${boot.url}${path}`, bytes));
        } finally {
          await boot.close();
        }
      }
    }
    // The machine is shared: each round measures the three one after another, and the ratio is
    // taken within a round (the median over the rounds), besides the best of each.
    const best = (k: string): number => Math.max(...results[k]!);
    const median = (v: number[]): number => {
      const x = [...v].sort((a, b) => a - b);
      return x.length % 2 ? x[(x.length - 1) / 2]! : (x[x.length / 2 - 1]! + x[x.length / 2]!) / 2;
    };
    const ngx = results.nginx!;
    console.log(`boot service: ${SIZE_MB} MB to ${CLIENTS} concurrent clients (curl), ${ROUNDS} rounds, aggregate throughput`);
    console.log(`| server | MB/s (each round) | best | ratio to plain nginx, each round | median ratio |`);
    console.log(`| --- | --- | --- | --- | --- |`);
    for (const k of Object.keys(results)) {
      const ratios = results[k]!.map((v, i) => v / ngx[i]!);
      console.log(`| ${k} | ${results[k]!.map((v) => v.toFixed(0)).join(', ')} | ${best(k).toFixed(0)} | ${ratios.map((r) => r.toFixed(2)).join(', ')} | **${median(ratios).toFixed(2)}×** |`);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
