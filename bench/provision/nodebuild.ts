// Benchmark: `warren image node-build` (src/provision/nodeimage.ts).
//   1. a fresh build of a ~500 MB root file system directory (real files copied from this
//      machine's /usr, plus a kernel in /boot), MB/s, side by side with the shell pipeline
//      `find | sort | cpio -o -H newc | pigz` over the same tree (what the build packs with);
//   2. the same image unchanged: buildNodeImage answered from image.json (median of N), the
//      whole CLI (`warren image node-build DIR`, a new process each time) — target < 1 s — and
//      the same metadata walk over this machine's /usr (a real OS's number of entries);
//   3. the same tree as a SIF, unchanged (its identity cached by path, size, mtime, inode).
//   bash bench/run.sh nodebuild [--size-mb 500] [--runs 5] [--no-sif]
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { buildNodeImage, treeIdentity } from '../../src/provision/index.js';
import { buildSif } from '../../src/image/index.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const sizeMb = arg('--size-mb', 500);
const runs = arg('--runs', 5);
const withSif = !process.argv.includes('--no-sif');
const repo = join(import.meta.dirname, '..', '..', '..');
const warrenBin = join(repo, 'bin', 'warren.js');

const base = mkdtempSync(join(tmpdir(), 'warren-bench-nodebuild-'));
const tree = join(base, 'tree');
const data = join(base, 'data');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const secs = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

/** Copy regular files (and directories, links) of /usr into the tree until `limit` bytes. */
function fillTree(limit: number): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const n of names) {
      if (bytes >= limit) return;
      const src = join(dir, n);
      const dest = join(tree, relative('/', src));
      let st;
      try {
        st = lstatSync(src);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        mkdirSync(dest, { recursive: true });
        entries++;
        walk(src);
      } else if (st.isFile() && st.size < 64 << 20) {
        try {
          copyFileSync(src, dest);
          bytes += st.size;
          entries++;
        } catch {
          /* unreadable: skipped */
        }
      }
    }
  };
  for (const top of ['/usr/bin', '/usr/lib', '/usr/share']) {
    mkdirSync(join(tree, relative('/', top)), { recursive: true });
    walk(top);
  }
  return { bytes, entries };
}

try {
  process.stdout.write(`machine: ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
  process.stdout.write(`making a ${sizeMb} MB root file system in ${tree} from /usr ...\n`);
  const { bytes, entries } = fillTree(sizeMb * 1e6);
  for (const d of ['etc', 'proc', 'sys', 'dev', 'lib/modules/6.1.0-bench-amd64/kernel', 'boot']) mkdirSync(join(tree, d), { recursive: true });
  writeFileSync(join(tree, 'etc/hostname'), 'bench\n');
  writeFileSync(join(tree, 'boot/vmlinuz-6.1.0-bench-amd64'), Buffer.alloc(8 << 20, 0x5a));
  const mb = bytes / 1e6;
  process.stdout.write(`  ${mb.toFixed(0)} MB in ${entries} entries\n`);
  execFileSync('/bin/sh', ['-c', `find '${tree}' -type f -exec cat {} + > /dev/null`]); // warm the page cache for both

  // 1. fresh builds vs the shell pipeline, alternated.
  const fresh: number[] = [];
  const shell: number[] = [];
  const freshRuns = Math.max(1, Math.min(runs, 3));
  let rootfsSize = 0;
  for (let i = 0; i < freshRuns; i++) {
    let t = process.hrtime.bigint();
    const img = await buildNodeImage({ source: tree, dataDir: data, force: true });
    fresh.push(secs(t));
    rootfsSize = img.rootfsSize;
    t = process.hrtime.bigint();
    execFileSync('/bin/bash', ['-c', `set -o pipefail; cd '${tree}' && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --quiet --null -o -H newc --reproducible | pigz -n -6 > '${join(base, 'shell.cpio.gz')}'`]);
    shell.push(secs(t));
    process.stdout.write(`  fresh run ${i + 1}: node-build ${fresh[i]!.toFixed(2)} s, find|cpio|pigz ${shell[i]!.toFixed(2)} s\n`);
  }
  const shellSize = statSync(join(base, 'shell.cpio.gz')).size;

  // 2. unchanged: the function, then the CLI (a new process each time).
  const fn: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    const r = await buildNodeImage({ source: tree, dataDir: data });
    fn.push(secs(t));
    if (!r.reused) throw new Error('an unchanged tree was built again');
  }
  const cli: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [warrenBin, 'image', 'node-build', '--local', tree], { env: { ...process.env, WARREN_HOME: data }, encoding: 'utf8' });
    cli.push(secs(t));
    if (r.status !== 0 || !r.stdout.startsWith('unchanged, reused')) throw new Error(`the CLI did not reuse the image: ${r.stdout}${r.stderr}`);
  }

  // The unchanged check on a tree of a real OS's size: this machine's /usr (read-only: only its metadata is walked).
  const usrEntries = Number(execFileSync('/bin/sh', ['-c', 'find /usr | wc -l']).toString().trim());
  const usr: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await treeIdentity('/usr');
    usr.push(secs(t));
  }

  // The CLI's own start (no work), to tell it from the check of the image.
  const start: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    spawnSync(process.execPath, [warrenBin, '--version'], { encoding: 'utf8' });
    start.push(secs(t));
  }

  // 3. the same tree as a SIF: first build (reads and hashes the file once), then unchanged.
  let sifFirst = NaN;
  const sifUnchanged: number[] = [];
  let sifSize = 0;
  if (withSif) {
    const sif = join(base, 'tree.sif');
    process.stdout.write(`building ${sif} (mksquashfs) ...\n`);
    await buildSif({ rootfs: tree, out: sif });
    sifSize = statSync(sif).size;
    let t = process.hrtime.bigint();
    await buildNodeImage({ source: sif, dataDir: data });
    sifFirst = secs(t);
    for (let i = 0; i < runs; i++) {
      t = process.hrtime.bigint();
      const r = await buildNodeImage({ source: sif, dataDir: data });
      sifUnchanged.push(secs(t));
      if (!r.reused) throw new Error('an unchanged SIF was built again');
    }
  }

  const row = (a: string, b: string, c: string, d = ''): string => `${a.padEnd(46)}${b.padStart(12)}${c.padStart(14)}${d.padStart(12)}\n`;
  process.stdout.write('\n' + row('what', 'time', 'throughput', 'output'));
  const bf = Math.min(...fresh);
  const bs = Math.min(...shell);
  process.stdout.write(row(`node-build, fresh (${mb.toFixed(0)} MB tree, best of ${freshRuns})`, `${bf.toFixed(2)} s`, `${(mb / bf).toFixed(0)} MB/s`, `${(rootfsSize / 1e6).toFixed(0)} MB`));
  process.stdout.write(row(`find | cpio | pigz (best of ${freshRuns})`, `${bs.toFixed(2)} s`, `${(mb / bs).toFixed(0)} MB/s`, `${(shellSize / 1e6).toFixed(0)} MB`));
  process.stdout.write(`\nfresh build throughput / shell pipeline throughput = ${(bs / bf).toFixed(2)}\n\n`);
  process.stdout.write(row('unchanged directory: buildNodeImage (median)', `${(median(fn) * 1000).toFixed(0)} ms`, ''));
  process.stdout.write(row('unchanged directory: warren image node-build', `${(median(cli) * 1000).toFixed(0)} ms`, '', 'CLI process'));
  process.stdout.write(row('  of which the CLI start (warren --version)', `${(median(start) * 1000).toFixed(0)} ms`, '', 'CLI process'));
  process.stdout.write(row(`  the same check of /usr (${usrEntries} entries)`, `${(median(usr) * 1000).toFixed(0)} ms`, '', 'in process'));
  if (withSif) {
    process.stdout.write(row(`SIF (${(sifSize / 1e6).toFixed(0)} MB): first node-build`, `${sifFirst.toFixed(2)} s`, ''));
    process.stdout.write(row('unchanged SIF: buildNodeImage (median)', `${(median(sifUnchanged) * 1000).toFixed(0)} ms`, ''));
  }
  const worst = Math.max(median(cli), median(fn), withSif ? median(sifUnchanged) : 0);
  process.stdout.write(`\nunchanged image under 1 s (target): ${worst < 1 ? 'met' : 'NOT met'} (worst median ${(worst * 1000).toFixed(0)} ms)\n`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
