// The node's GPUs, as its agent reports them: `nvidia-smi` where it is installed (NVIDIA's
// own tool; no GPU library is loaded into the agent), nothing elsewhere.

import { execFileSync } from 'node:child_process';
import type { GpuInfo } from './contract.js';

/** Parse `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits` (MiB). Pure. */
export function parseNvidiaSmi(text: string): GpuInfo[] {
  const out: GpuInfo[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(',').map((x) => x.trim());
    if (f.length < 3) continue;
    const index = Number(f[0]);
    const mib = Number(f[2]);
    if (!Number.isInteger(index) || index < 0 || !f[1]) continue;
    out.push({ index, model: f[1], memoryBytes: Number.isFinite(mib) && mib > 0 ? mib * 2 ** 20 : 0 });
  }
  return out;
}

/** The GPUs of this node (empty without nvidia-smi or when it fails). */
export function discoverNodeGpus(): GpuInfo[] {
  try {
    return parseNvidiaSmi(execFileSync('nvidia-smi', ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return [];
  }
}
