// `warren exec IMAGE /bin/true` of a SIF, end to end (a new `warren` process each time: Node's
// start, the CLI, the image check, the overlay bundle, runc, cleanup), against:
//   baseline  a bare `runc run` of the same root file system (the SIF loop-mounted once, a
//             bundle written once) plus Node's own start (`node -e 0`), both in the same round
//   podman    `podman run --rm` of an image imported from the same root file system
// Runs interleaved (one of each per round, rotating) so machine noise hits all alike.
// Usage: bash bench/run.sh exec [N=30]   (as root; needs runc, squashfs-tools, busybox-static, podman)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adhocRunDir, buildOciSpec, DEFAULT_SHM_BYTES, releaseIdleMounts } from '../../src/runtime/container/index.js';
import { sifPartition } from '../../src/image/index.js';
import { makeBusyboxRootfs } from '../../test/runtime/container/fixtures.js';
import { interleave, preparePodman, stats, timePodman, timeSpawn } from '../podman.js';

const N = Number(process.argv[2] ?? process.env.WARREN_BENCH_N ?? 30);
const WARMUP = 3;
if (process.getuid?.() !== 0) {
  console.error('run this benchmark as root (it compares against root runc and podman)');
  process.exit(2);
}
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'); // dist/bench/exec -> repo
const warrenBin = join(repo, 'bin', 'warren.js');
const runc = spawnSync('sh', ['-c', 'command -v runc || echo /usr/sbin/runc'], { encoding: 'utf8' }).stdout.trim();
const work = mkdtempSync(join(tmpdir(), 'warren-bench-exec-'));
const home = join(work, 'home');
mkdirSync(home, { mode: 0o700 });
const env = { ...process.env, WARREN_HOME: home };
const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
const sif = join(work, 'busybox.sif');
const built = spawnSync(process.execPath, [warrenBin, 'image', 'build', rootfs, '-o', sif], { env, encoding: 'utf8' });
if (built.status !== 0) {
  console.error(`warren image build failed: ${built.stderr}`);
  process.exit(1);
}
const logs = join(work, 'logs');
mkdirSync(logs);

// The baseline's bundle: the same SIF, loop-mounted once, read-only root, host network files.
const mnt = join(work, 'mnt');
mkdirSync(mnt);
// The same offset and size as Warren's own loop mount, so both share one loop device (mount(8)
// refuses a second, overlapping one for the same file).
const loc = await sifPartition(sif);
const m = spawnSync('mount', ['-t', 'squashfs', '-o', `loop,ro,nodev,offset=${loc.offset},sizelimit=${loc.size}`, sif, mnt], { encoding: 'utf8' });
if (m.status !== 0) {
  console.error(`cannot loop-mount the SIF: ${m.stderr}`);
  process.exit(1);
}
const bundle = join(work, 'bundle');
mkdirSync(bundle);
const spec = buildOciSpec({
  rootfs: mnt,
  argv: ['/bin/true'],
  env: [],
  cwd: '/',
  uid: 0,
  gid: 0,
  asRoot: true,
  hostname: 'noop',
  mounts: [],
  shmBytes: DEFAULT_SHM_BYTES,
  isolateNetwork: false,
  nodeFiles: ['/etc/resolv.conf', '/etc/hosts'].filter((f) => existsSync(f) && existsSync(join(mnt, f))),
});
writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
const bareRoot = join(work, 'runc');


async function warren(): Promise<number> {
  const r = await timeSpawn(logs, process.execPath, [warrenBin, 'exec', sif, '/bin/true'], { env, cwd: work });
  if (r.code !== 0) throw new Error(`warren exec failed (${r.code}): ${readFileSync(join(logs, 'err'), 'utf8').slice(-800)}`);
  return r.ms;
}

let seq = 0;
async function baseline(): Promise<number> {
  const a = await timeSpawn(logs, runc, ['--root', bareRoot, 'run', '--bundle', bundle, `bare-${++seq}`], { cwd: work });
  if (a.code !== 0) throw new Error(`runc run failed (${a.code}): ${readFileSync(join(logs, 'err'), 'utf8').slice(-500)}`);
  const b = await timeSpawn(logs, process.execPath, ['-e', '0'], { cwd: work });
  return a.ms + b.ms;
}

const IMAGE = 'localhost/warren-bench-exec-busybox:latest';
const pm = preparePodman(rootfs, work, IMAGE);
const podmanArgs = pm.args;
const podmanWhy = pm.why;

const podman = (): Promise<number> => timePodman(logs, pm);

try {
  const t = await interleave(
    [
      ['warren', warren],
      ['baseline', baseline],
      ...(podmanArgs ? ([['podman', podman]] as [string, () => Promise<number>][]) : []),
    ],
    N,
    WARMUP,
  );
  const w = stats(t.warren!);
  const b = stats(t.baseline!);
  const p = podmanArgs ? stats(t.podman!) : undefined;
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(`warren exec SIF /bin/true, end to end, N=${N} each (ms)`);
  console.log(`${'command'.padEnd(30)}${'median'.padStart(8)}${'mean'.padStart(8)}${'min'.padStart(8)}${'max'.padStart(8)}   vs baseline (median / mean)`);
  console.log(`${'warren exec'.padEnd(30)}${f(w.median)}${f(w.mean)}${f(w.min)}${f(w.max)}   ${(w.median / b.median).toFixed(2)}x / ${(w.mean / b.mean).toFixed(2)}x  (target <= 1.3x)`);
  console.log(`${'runc run + node -e 0'.padEnd(30)}${f(b.median)}${f(b.mean)}${f(b.min)}${f(b.max)}   1.00x / 1.00x`);
  if (p) {
    console.log(`${'podman run --rm'.padEnd(30)}${f(p.median)}${f(p.mean)}${f(p.min)}${f(p.max)}   ${(p.median / b.median).toFixed(2)}x / ${(p.mean / b.mean).toFixed(2)}x`);
    console.log(`warren exec vs podman: ${(w.median / p.median).toFixed(3)}x median (target < 1: faster)`);
  } else console.log(`podman: skipped (${podmanWhy})`);
  const ok = w.median / b.median <= 1.3 && (!p || w.median < p.median);
  console.log(ok ? 'targets met' : 'TARGETS MISSED');
  process.exitCode = ok ? 0 : 1;
} finally {
  pm.remove();
  spawnSync('umount', [mnt], { stdio: 'ignore' });
  // Warren's held loop mount of the image, and its private run directory.
  await releaseIdleMounts(join(home, 'containers'), 0);
  rmSync(adhocRunDir(join(home, 'containers')), { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
