// Small builders for cluster scheduler tests: a node or a job with defaults, overridable.
import type { ClusterNode, PendingJob } from '../../src/scheduler/index.js';

export const GiB = 1024 ** 3;

export function node(name: string, o: Partial<ClusterNode> = {}): ClusterNode {
  return {
    name,
    cores: 8,
    memoryBytes: 32 * GiB,
    gpus: { count: 0, models: [] },
    labels: {},
    drained: false,
    platform: 'linux/amd64',
    allocated: { cores: 0, memoryBytes: 0, gpus: 0 },
    cachedImages: [],
    dataVolumes: [],
    ...o,
  };
}

let order = 0;
export function job(id: string, o: Partial<PendingJob> = {}): PendingJob {
  return { id, user: 'alice', cores: 1, memoryBytes: GiB, gpus: 0, submitOrder: order++, ...o };
}

/** Nodes n1..nk with the same overrides. */
export function nodes(k: number, o: Partial<ClusterNode> = {}, prefix = 'n'): ClusterNode[] {
  return Array.from({ length: k }, (_, i) => node(`${prefix}${String(i + 1).padStart(2, '0')}`, o));
}
