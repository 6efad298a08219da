// `warren image build OUT.sif RECIPE.def` of a definition file with a small %post, against the
// two tools that do the real work, run by hand on the resulting tree: `runc run` of the same
// %post (bundle written once, writable root, the node's network) plus `mksquashfs` of the tree
// (gzip, as Warren). Two recipes:
//   small   Bootstrap: busybox (a ~1 MiB image): Warren's fixed cost dominates
//   base    Bootstrap: localimage from a ~60 MiB sandbox (busybox + Python's standard library,
//           thousands of small files): a typical base; Warren also copies the base into its tree
// Runs interleaved (one of each per round). Usage: node dist/bench/build/run.js [N=5]  (as root)
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildOciSpec, DEFAULT_SHM_BYTES } from '../../src/runtime/container/index.js';

const N = Number(process.argv[2] ?? process.env.WARREN_BENCH_N ?? 5);
if (process.getuid?.() !== 0) {
  console.error('run this benchmark as root (it compares against root runc)');
  process.exit(2);
}
const here = fileURLToPath(new URL('.', import.meta.url));
let repo = resolve(here);
while (!existsSync(join(repo, 'package.json'))) repo = resolve(repo, '..');
const warrenBin = join(repo, 'bin', 'warren.js');
const runc = spawnSync('sh', ['-c', 'command -v runc || echo /usr/sbin/runc'], { encoding: 'utf8' }).stdout.trim();
const work = mkdtempSync(join(tmpdir(), 'warren-bench-build-'));
const home = join(work, 'home');

const POST = ['echo "building"', 'mkdir -p /opt/app/bin /usr/local/bin', 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "tool $i" > /opt/app/bin/tool$i; done', 'chmod 755 /opt/app/bin/*', 'ln -sf /opt/app/bin/tool1 /usr/local/bin/tool'];
const postBody = POST.map((l) => `    ${l}`).join('\n');

// The "base" sandbox: busybox plus a copy of Python's standard library (many small files).
function makeBase(dir: string): void {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  cpSync('/bin/busybox', join(dir, 'bin/busybox'));
  symlinkSync('busybox', join(dir, 'bin/sh'));
  for (const a of ['ls', 'mkdir', 'chmod', 'ln', 'echo', 'cat']) symlinkSync('busybox', join(dir, 'bin', a));
  mkdirSync(join(dir, 'usr/local/bin'), { recursive: true });
  const py = readdirSync('/usr/lib').filter((n) => /^python3\.\d+$/.test(n)).sort().pop();
  if (py) spawnSync('cp', ['-a', join('/usr/lib', py), join(dir, 'usr/lib/')], { stdio: 'inherit' });
}

function du(p: string): number {
  const r = spawnSync('du', ['-sb', p], { encoding: 'utf8' });
  return Number(r.stdout.split(/\s/)[0]);
}

function time(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    p.stderr.on('data', (c) => (err = (err + c).slice(-2000)));
    p.on('close', (code) => (code === 0 ? res(Number(process.hrtime.bigint() - t0) / 1e6) : rej(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

interface Case {
  name: string;
  recipe: string;
  tree: string;
  bundle: string;
}

let seq = 0;
async function setup(name: string, header: string): Promise<Case> {
  const d = join(work, name);
  mkdirSync(d, { recursive: true });
  const recipe = join(d, 'r.def');
  writeFileSync(recipe, `${header}\n\n%post\n${postBody}\n\n%runscript\n    exec tool "$@"\n`);
  // The resulting tree, once (as a sandbox): what the baseline runs %post in and squashes.
  const tree = join(d, 'tree');
  await time(process.execPath, [warrenBin, 'image', 'build', '--sandbox', tree, recipe], { ...process.env, WARREN_HOME: home });
  const bundle = join(d, 'bundle');
  mkdirSync(bundle);
  const spec = buildOciSpec({
    rootfs: tree,
    argv: ['/bin/sh', '-e', '-x', '-c', POST.join('\n')],
    env: ['HOME=/root'],
    cwd: '/',
    uid: 0,
    gid: 0,
    asRoot: true,
    hostname: 'warren-build',
    mounts: [],
    shmBytes: DEFAULT_SHM_BYTES,
    isolateNetwork: false,
    cgroupsPath: `/warren/bench-build-${name}`,
    nodeFiles: ['/etc/resolv.conf', '/etc/hosts'].filter((f) => existsSync(f)),
    allowSetuid: true,
    writableRoot: true,
  });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return { name, recipe, tree, bundle };
}

async function warren(c: Case): Promise<number> {
  return time(process.execPath, [warrenBin, 'image', 'build', '--force', '--notest', join(work, c.name, 'out.sif'), c.recipe], { ...process.env, WARREN_HOME: home });
}

async function baseline(c: Case): Promise<{ ms: number; runc: number; squash: number }> {
  const r = await time(runc, ['--root', join(work, 'runc'), 'run', '--bundle', c.bundle, `bench-${process.pid}-${++seq}`]);
  const out = join(work, c.name, 'bare.sqfs');
  const s = await time('mksquashfs', [c.tree, out, '-noappend', '-no-progress', '-quiet', '-comp', 'gzip']);
  return { ms: r + s, runc: r, squash: s };
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
};

try {
  mkdirSync(join(work, 'base-sandbox'));
  makeBase(join(work, 'base-sandbox'));
  const cases = [await setup('small', 'Bootstrap: busybox'), await setup('base', `Bootstrap: localimage\nFrom: ${join(work, 'base-sandbox')}`)];
  const f = (x: number) => x.toFixed(0).padStart(8);
  console.log(`warren image build OUT.sif RECIPE.def (small %post) vs runc run of the %post + mksquashfs of the tree, N=${N} each, ms (median, min, max)`);
  let ok = true;
  for (const c of cases) {
    await warren(c); // warm-up: page cache, node's compile cache
    await baseline(c);
    const w: number[] = [];
    const b: number[] = [];
    const parts = { runc: [] as number[], squash: [] as number[] };
    for (let i = 0; i < N; i++) {
      const order = i % 2 ? ['b', 'w'] : ['w', 'b'];
      for (const o of order) {
        if (o === 'w') w.push(await warren(c));
        else {
          const r = await baseline(c);
          b.push(r.ms);
          parts.runc.push(r.runc);
          parts.squash.push(r.squash);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const ws = stats(w);
    const bs = stats(b);
    const size = du(c.tree);
    const sif = statSync(join(work, c.name, 'out.sif')).size;
    console.log(`\n${c.name}: tree ${(size / 2 ** 20).toFixed(1)} MiB, image ${(sif / 2 ** 20).toFixed(1)} MiB`);
    console.log(`  warren image build      ${f(ws.median)}${f(ws.min)}${f(ws.max)}`);
    console.log(`  runc run + mksquashfs   ${f(bs.median)}${f(bs.min)}${f(bs.max)}   (runc ${stats(parts.runc).median.toFixed(0)}, mksquashfs ${stats(parts.squash).median.toFixed(0)})`);
    const ratio = ws.median / bs.median;
    // What the CLI's start alone costs (node, module loading): `warren image inspect` of the image.
    const starts: number[] = [];
    for (let i = 0; i < N; i++) starts.push(await time(process.execPath, [warrenBin, 'image', 'inspect', join(work, c.name, 'out.sif')], { ...process.env, WARREN_HOME: home }));
    const start = stats(starts).median;
    const net = (ws.median - start) / bs.median;
    console.log(`  ratio ${ratio.toFixed(2)}x (target <= 1.5x: ${ratio <= 1.5 ? 'met' : 'MISSED'}); the CLI's start (\`warren image inspect\` of the image) ${start.toFixed(0)} ms, the build after it ${net.toFixed(2)}x`);
    if (ratio > 1.5) ok = false;
  }
  console.log(ok ? '\ntargets met' : '\nTARGETS MISSED');
  process.exitCode = ok ? 0 : 1;
} finally {
  for (const n of ['small', 'base']) spawnSync('rmdir', [`/sys/fs/cgroup/memory/warren/bench-build-${n}`, `/sys/fs/cgroup/warren/bench-build-${n}`], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
