// Container start-to-exit for a no-op job (/bin/true in a busybox image):
//   warren  createContainerRuntime().launch() until `exited` resolves (bundle, spec,
//           cgroup, runc run, cleanup: the whole life of an attempt)
//   runc    bare `runc run` of the same bundle (written once, reused)
//   podman  `podman run --rm` of an image imported from the same root file system
// Runs interleaved (one of each per round) so machine noise hits all alike.
// Usage: node --import tsx bench/container-start/run.ts [N=30]   (as root)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContainerRuntime, buildOciSpec, DEFAULT_SHM_BYTES } from '../../src/runtime/container/index.js';
import { makeBusyboxRootfs } from '../../test/runtime/container/fixtures.js';
import { interleave, preparePodman, stats, timePodman, timeSpawn } from '../podman.js';

const N = Number(process.argv[2] ?? process.env.WARREN_BENCH_N ?? 30);
const WARMUP = 3;
if (process.getuid?.() !== 0) {
  console.error('run this benchmark as root (it compares against root runc and podman)');
  process.exit(2);
}
const runc = spawnSync('sh', ['-c', 'command -v runc || echo /usr/sbin/runc'], { encoding: 'utf8' }).stdout.trim();
const work = mkdtempSync(join(tmpdir(), 'warren-bench-ctr-'));
const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
const stateDir = join(work, 'state');
const logs = join(work, 'logs');
mkdirSync(logs);
const rt = createContainerRuntime({
  stateDir,
  runcPath: runc,
  prepareImage: async (uri) => ({ uri, kind: 'rootfs', path: rootfs, config: { env: [], labels: {} } }),
});

// The bundle the runtime writes for this job, written once for bare runc.
const bundle = join(work, 'bundle');
mkdirSync(bundle);
const spec = buildOciSpec({
  rootfs,
  argv: ['/bin/true'],
  env: [],
  cwd: '/',
  uid: 0,
  gid: 0,
  asRoot: false,
  hostname: 'noop',
  mounts: [],
  shmBytes: DEFAULT_SHM_BYTES,
  isolateNetwork: false,
  cgroupsPath: '/warren/bench-bare',
  // As the runtime does for a job sharing the node's network (the image has both files).
  nodeFiles: ['/etc/resolv.conf', '/etc/hosts'].filter((f) => existsSync(f)),
});
writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
// Same runc state directory as the runtime uses, so both pay the same file system costs.
const bareRoot = join(stateDir, 'runc');


let seq = 0;
async function warren(): Promise<number> {
  const t0 = process.hrtime.bigint();
  const info = await rt.launch({ id: `bench/noop/${++seq}`, argv: ['/bin/true'], env: {}, cwd: '/', stdoutPath: join(logs, 'out'), stderrPath: join(logs, 'err'), mounts: [], container: { image: 'busybox' } }).exited;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (info.reason !== 'exit' || info.exitCode !== 0) throw new Error(`warren run failed: ${JSON.stringify(info)}`);
  return ms;
}

async function bare(): Promise<number> {
  const r = await timeSpawn(logs, runc, ['--root', bareRoot, 'run', '--bundle', bundle, `bare-${++seq}`]);
  if (r.code !== 0) throw new Error(`runc run failed (${r.code}): ${readFileSync(join(logs, 'err'), 'utf8').slice(-500)}`);
  return r.ms;
}

// podman: an image imported from the same root file system; no network access needed.
const IMAGE = 'localhost/warren-bench-busybox:latest';
const pm = preparePodman(rootfs, work, IMAGE);
const podmanArgs = pm.args;
const podmanWhy = pm.why;

const podman = (): Promise<number> => timePodman(logs, pm);

try {
  const t = await interleave(
    [
      ['warren', warren],
      ['runc', bare],
      ...(podmanArgs ? ([['podman', podman]] as [string, () => Promise<number>][]) : []),
    ],
    N,
    WARMUP,
  );
  const w = stats(t.warren!);
  const r = stats(t.runc!);
  const p = podmanArgs ? stats(t.podman!) : undefined;
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(`no-op container, start to exit, N=${N} each (ms)`);
  console.log(`${'runtime'.padEnd(22)}${'median'.padStart(8)}${'mean'.padStart(8)}${'min'.padStart(8)}${'max'.padStart(8)}   vs runc (median / mean)`);
  console.log(`${'warren (runc)'.padEnd(22)}${f(w.median)}${f(w.mean)}${f(w.min)}${f(w.max)}   ${(w.median / r.median).toFixed(2)}x / ${(w.mean / r.mean).toFixed(2)}x  (target <= 1.3x)`);
  console.log(`${'bare runc run'.padEnd(22)}${f(r.median)}${f(r.mean)}${f(r.min)}${f(r.max)}   1.00x / 1.00x`);
  if (p) {
    console.log(`${'podman run --rm'.padEnd(22)}${f(p.median)}${f(p.mean)}${f(p.min)}${f(p.max)}   ${(p.median / r.median).toFixed(2)}x / ${(p.mean / r.mean).toFixed(2)}x`);
    console.log(`warren vs podman: ${(w.median / p.median).toFixed(3)}x median, ${(w.mean / p.mean).toFixed(3)}x mean (target < 1: faster)`);
  } else console.log(`podman: skipped (${podmanWhy})`);
  const ok = w.median / r.median <= 1.3 && (!p || w.median < p.median);
  console.log(ok ? 'targets met' : 'TARGETS MISSED');
  process.exitCode = ok ? 0 : 1;
} finally {
  pm.remove();
  spawnSync('rmdir', ['/sys/fs/cgroup/memory/warren/bench-bare'], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
