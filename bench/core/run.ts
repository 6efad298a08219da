// Core overhead benchmarks of `warren run`, each side by side with its baseline in the
// same run (ratios, since machines are noisy). Run: `bash bench/run.sh core [array|chain|rss|runtime|tools]`.
//
//   1. a task array of 5,000 no-op tasks at concurrency 2 vs a bare Node spawn loop of
//      /bin/true at concurrency 2                                   target ratio <= 1.5
//   2. 1,000 no-op jobs: warren vs snakemake and cwltool (Debian)   target >= 10x, >= 3x faster
//   3. a chain of 500 dependent no-op jobs: ms per hop above a bare sequential spawn (<= 3 ms)
//   4. peak RSS of `warren run` for a 10,000-task array              target <= 150 MB
//   5. `runtime`: the process runtime alone, 5,000 no-op tasks @2 and a chain of 500, each
//      job held before exec until a beforeExec that awaits a resolved promise, in its own
//      cgroup where the node allows it; also without cgroups and without the hold, so the
//      cost of each is visible (same targets as 1 and 3)

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../test/helpers.js';
import { bareSpawn, concurrently } from '../spawnloop.js';
import { createProcessRuntime, jobIsolation, closeSpawner, type Runtime } from '../../src/runtime/index.js';

const WARREN = join(repoRoot, 'bin', 'warren.js');
const tmp = mkdtempSync(join(tmpdir(), 'warren-bench-'));
const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = tmp): { ms: number; code: number | null; out: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) {
    process.stderr.write(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr?.slice(-2000)}\n${r.stdout?.slice(-2000)}\n`);
  }
  return { ms, code: r.status, out: r.stdout };
}

/** `n` no-op tasks through a process runtime, `conc` at a time. */
function runtimeLoop(rt: Runtime, n: number, conc: number, hold: boolean): Promise<number> {
  return concurrently(n, conc, (i) =>
    rt.launch({
      id: `bench/noop/${i}/1`,
      argv: ['/bin/true'],
      env: { PATH: '/usr/bin:/bin' },
      cwd: tmp,
      stdoutPath: join(tmp, `rt-${i % 64}.out`),
      stderrPath: join(tmp, `rt-${i % 64}.err`),
      mounts: [],
      ...(hold ? { beforeExec: async () => { await Promise.resolve(); } } : {}),
    }).exited,
  );
}

function warrenRun(file: string, home: string, extra: string[] = []): { ms: number; code: number | null } {
  return sh(WARREN, ['run', file, '--json', '--cores', '2', ...extra], { WARREN_HOME: home });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const results: string[] = [];
function report(line: string): void {
  results.push(line);
  process.stdout.write(line + '\n');
}

async function main(): Promise<void> {
  process.stdout.write(`warren core benchmarks (node ${process.version}, ${tmp})\n`);

  if (want('array')) {
    const f = join(tmp, 'array5000.yaml');
    writeFileSync(f, `version: v1\njobs:\n  noop:\n    command: [/bin/true]\n    task-array: {start: 1, end: 5000, concurrency: 2}\n`);
    const w: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 3; i++) {
      b.push(await bareSpawn(5000, 2));
      w.push(warrenRun(f, join(tmp, `home-array-${i}`)).ms);
    }
    report(`array  5,000 no-op tasks @2: warren ${fmt(median(w))}  bare spawn loop ${fmt(median(b))}  ratio ${(median(w) / median(b)).toFixed(2)}x (target <= 1.5x)`);
  }

  if (want('chain')) {
    const n = 500;
    let y = 'version: v1\njobs:\n';
    for (let i = 0; i < n; i++) y += `  j${i}:\n    command: [/bin/true]\n${i ? `    requires: [j${i - 1}]\n` : ''}`;
    const f = join(tmp, 'chain500.yaml');
    writeFileSync(f, y);
    const w: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 3; i++) {
      b.push(await bareSpawn(n, 1));
      w.push(warrenRun(f, join(tmp, `home-chain-${i}`)).ms);
    }
    const perHop = (median(w) - median(b)) / n;
    report(`chain  500 dependent no-op jobs: warren ${fmt(median(w))}  bare sequential spawn ${fmt(median(b))}  overhead ${perHop.toFixed(2)} ms/hop (target <= 3 ms)`);
  }

  if (want('rss')) {
    const f = join(tmp, 'array10000.yaml');
    writeFileSync(f, `version: v1\njobs:\n  noop:\n    command: [/bin/true]\n    task-array: {start: 1, end: 10000, concurrency: 2}\n`);
    // Peak RSS of the real CLI process, as a user runs it, measured by GNU time.
    const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', WARREN, 'run', f, '--json', '--cores', '2'], {
      env: { ...process.env, WARREN_HOME: join(tmp, 'home-rss') },
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
    });
    const kb = Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1] ?? NaN);
    report(`memory 10,000-task array: peak RSS ${(kb / 1024).toFixed(0)} MB (target <= 150 MB)`);
  }

  if (want('runtime')) {
    const iso = jobIsolation();
    const variants: [string, Runtime, boolean][] = [
      [`held + ${iso.mode}`, createProcessRuntime(), true],
      ['held + process-group', createProcessRuntime({ isolation: 'process-group' }), true],
      ['not held + process-group', createProcessRuntime({ isolation: 'process-group' }), false],
    ];
    const n = Number(process.env.BENCH_RUNTIME_TASKS ?? 5000);
    const hops = Number(process.env.BENCH_RUNTIME_CHAIN ?? 500);
    await runtimeLoop(variants[0]![1], 50, 2, true); // warm up the launcher
    for (const [label, rt, hold] of variants) {
      const w: number[] = [];
      const b: number[] = [];
      const cw: number[] = [];
      const cb: number[] = [];
      for (let i = 0; i < 3; i++) {
        b.push(await bareSpawn(n, 2));
        w.push(await runtimeLoop(rt, n, 2, hold));
        cb.push(await bareSpawn(hops, 1));
        cw.push(await runtimeLoop(rt, hops, 1, hold));
      }
      report(
        `runtime ${label}: ${n} no-op tasks @2 ${fmt(median(w))} vs bare spawn loop ${fmt(median(b))} = ${(median(w) / median(b)).toFixed(2)}x (target <= 1.5x); ` +
          `chain of ${hops}: ${((median(cw) - median(cb)) / hops).toFixed(2)} ms/hop above a bare sequential spawn (target <= 3 ms)`,
      );
    }
    await closeSpawner();
  }

  if (want('tools')) {
    const n = 1000;
    let y = 'version: v1\njobs:\n';
    for (let i = 0; i < n; i++) y += `  j${i}:\n    command: [/bin/true]\n`;
    const wf = join(tmp, 'jobs1000.yaml');
    writeFileSync(wf, y);
    const wms = warrenRun(wf, join(tmp, 'home-tools')).ms;
    const bms = await bareSpawn(n, 2);
    let line = `tools  1,000 no-op jobs @2: warren ${fmt(wms)}  bare spawn ${fmt(bms)}`;
    if (existsSync('/usr/bin/snakemake')) {
      const dir = join(tmp, 'smk');
      spawnSync('mkdir', ['-p', dir]);
      writeFileSync(join(dir, 'Snakefile'), `rule all:\n    input: expand("out/{i}", i=range(${n}))\n\nrule noop:\n    output: "out/{i}"\n    shell: "true; touch {output}"\n`);
      const s = sh('snakemake', ['--cores', '2', '--quiet'], {}, dir);
      line += `  snakemake ${fmt(s.ms)} (warren ${(s.ms / wms).toFixed(1)}x faster, target >= 10x)`;
    } else line += '  snakemake: not installed (apt-get install snakemake)';
    if (existsSync('/usr/bin/cwltool')) {
      const dir = join(tmp, 'cwl');
      spawnSync('mkdir', ['-p', dir]);
      writeFileSync(join(dir, 'noop.cwl'), `cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: ["true"]\ninputs:\n  i: {type: int, inputBinding: {position: 1}}\noutputs: []\n`);
      writeFileSync(
        join(dir, 'wf.cwl'),
        `cwlVersion: v1.2\nclass: Workflow\nrequirements:\n  ScatterFeatureRequirement: {}\ninputs:\n  xs: int[]\noutputs: []\nsteps:\n  noop:\n    run: noop.cwl\n    scatter: i\n    in: {i: xs}\n    out: []\n`,
      );
      writeFileSync(join(dir, 'job.json'), JSON.stringify({ xs: Array.from({ length: n }, (_, i) => i) }));
      const seq = sh('cwltool', ['--quiet', '--no-container', 'wf.cwl', 'job.json'], {}, dir);
      const par = sh('cwltool', ['--quiet', '--parallel', '--no-container', 'wf.cwl', 'job.json'], {}, dir);
      line += `  cwltool ${fmt(seq.ms)} (warren ${(seq.ms / wms).toFixed(1)}x faster, target >= 3x)`;
      line += `  cwltool --parallel ${fmt(par.ms)} (warren ${(par.ms / wms).toFixed(1)}x faster)`;
    } else line += '  cwltool: not installed (apt-get install cwltool)';
    report(line);
  }
}

main()
  .catch((e) => {
    process.stderr.write(String(e?.stack ?? e) + '\n');
    process.exitCode = 1;
  })
  .finally(() => rmSync(tmp, { recursive: true, force: true }));
