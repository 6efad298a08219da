// Honest GPUs on one machine, through the real CLI: a job asking for GPUs where nvidia-smi
// lists none is refused when the workflow is accepted (exit 2, nothing runs); where GPUs are
// listed (a stand-in nvidia-smi on PATH printing a real one's output), each job gets its own
// GPUs in CUDA_VISIBLE_DEVICES and no GPU is given to two jobs at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, warrenBin } from '../helpers.js';

function warren(home: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A stand-in nvidia-smi printing what a real one prints for this query on a 2-GPU node. */
function fakeNvidiaSmi(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'nvidia-smi'),
    `#!/bin/sh
case "$*" in
  *--query-gpu=index,name,memory.total*) printf '0, NVIDIA A100-SXM4-80GB, 81920\\n1, NVIDIA A100-SXM4-80GB, 81920\\n' ;;
  *) echo "stand-in nvidia-smi: unexpected arguments: $*" >&2; exit 9 ;;
esac
`,
  );
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
  return bin;
}

test('a job asking for a GPU on a machine without one is refused at submit, nothing runs', { timeout: 120_000 }, () => {
  const t = tempDir();
  try {
    const marker = join(t.dir, 'ran');
    const flow = join(t.dir, 'gpu.yaml');
    writeFileSync(flow, `version: v1\njobs:\n  train:\n    command: [/bin/sh, -c, 'touch ${marker}']\n    resource:\n      devices:\n        nvidia.com/gpu: 1\n`);
    // PATH without nvidia-smi: this machine lists no GPU.
    const r = warren(join(t.dir, 'home'), ['run', flow], { PATH: '/usr/local/bin:/usr/bin:/bin' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /AGENT_NOT_ENOUGH_GPUS/);
    assert.match(r.stderr, /job train needs 1 GPU; this node has 0 \(nvidia-smi lists none\)/);
    assert.match(r.stderr, /hint: /);
    assert.equal(existsSync(marker), false, 'nothing ran');
  } finally {
    t.cleanup();
  }
});

test('with GPUs, each job gets its own in CUDA_VISIBLE_DEVICES and no GPU goes to two jobs at once', { timeout: 120_000 }, () => {
  const t = tempDir();
  try {
    const bin = fakeNvidiaSmi(t.dir);
    const ledger = join(t.dir, 'ledger');
    const flow = join(t.dir, 'gpus.yaml');
    writeFileSync(
      flow,
      `version: v1
jobs:
  one:
    command: [/bin/sh, -c, 'echo "start $WARREN_TASK_ID $CUDA_VISIBLE_DEVICES $(date +%s%N)" >> ${ledger}; sleep 0.4; echo "end $WARREN_TASK_ID $CUDA_VISIBLE_DEVICES $(date +%s%N)" >> ${ledger}']
    task-array: {start: 1, end: 5}
    resource:
      cpu: {cores: 1}
      devices: {nvidia.com/gpu: 1}
  both:
    command: [/bin/sh, -c, 'echo "both $CUDA_VISIBLE_DEVICES $WARREN_GPUS $NVIDIA_VISIBLE_DEVICES" >> ${ledger}']
    requires: [one]
    resource:
      devices: {nvidia.com/gpu: 2}
`,
    );
    const env = { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` };
    const r = warren(join(t.dir, 'home'), ['run', '--cores', '4', flow], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = readFileSync(ledger, 'utf8').trim().split('\n');
    const spans = new Map<string, { gpu: string; start: bigint; end: bigint }>();
    for (const l of lines) {
      const [kind, task, gpu, at] = l.split(' ');
      if (kind === 'start') spans.set(task!, { gpu: gpu!, start: BigInt(at!), end: 0n });
      if (kind === 'end') spans.get(task!)!.end = BigInt(at!);
    }
    assert.equal(spans.size, 5);
    for (const s of spans.values()) assert.ok(s.gpu === '0' || s.gpu === '1', `one GPU of the node: ${s.gpu}`);
    const all = [...spans.values()];
    for (let i = 0; i < all.length; i++) {
      for (let j = i + 1; j < all.length; j++) {
        const [a, b] = [all[i]!, all[j]!];
        if (a.gpu === b.gpu) assert.ok(a.end <= b.start || b.end <= a.start, 'two jobs never hold one GPU at once');
      }
    }
    // Four cores, two GPUs: never more than two at once, and both GPUs were used.
    assert.deepEqual(new Set(all.map((s) => s.gpu)), new Set(['0', '1']));
    assert.ok(lines.includes('both 0,1 0,1 0,1'), lines.join('\n'));

    // More GPUs than the node has: refused before anything runs.
    const big = join(t.dir, 'big.yaml');
    writeFileSync(big, 'version: v1\njobs:\n  huge:\n    command: [/bin/true]\n    resource:\n      devices: {nvidia.com/gpu: 3}\n');
    const refused = warren(join(t.dir, 'home'), ['run', big], env);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /job huge needs 3 GPUs; this node has 2/);
  } finally {
    t.cleanup();
  }
});
