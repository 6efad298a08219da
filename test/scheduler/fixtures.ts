// Small builders for planner tests: workflows in the normalized model, written by hand.
import type { JobSpec, Workflow } from '../../src/workflow/index.js';

export interface J {
  est?: number;
  cores?: number;
  gpus?: number;
  memoryBytes?: number;
  after?: string[];
  inputs?: string[];
  outputs?: string[];
}

export function job(name: string, j: J = {}): JobSpec {
  return {
    name,
    service: false,
    command: ['true'],
    args: [],
    env: {},
    mounts: [],
    requires: (j.after ?? []).map((d) => ({ job: d, condition: 'succeeded' as const })),
    resources: {
      cores: j.cores ?? 1,
      affinity: 'core',
      threads: false,
      memoryByCore: false,
      devices: j.gpus ? { 'nvidia.com/gpu': j.gpus } : {},
      exclusive: false,
      ...(j.memoryBytes !== undefined ? { memoryBytes: j.memoryBytes } : {}),
    },
    policy: { attempts: 1, backoffSec: 1 },
    ...(j.est !== undefined ? { estimateSec: j.est } : {}),
    inputs: j.inputs ?? [],
    outputs: j.outputs ?? [],
  };
}

export function workflow(jobs: Record<string, J>, files: Record<string, number> = {}, policy: Workflow['policy'] = {}): Workflow {
  return {
    name: 'test',
    dialect: 'wfformat',
    volumes: {},
    jobs: Object.fromEntries(Object.entries(jobs).map(([n, j]) => [n, job(n, j)])),
    policy,
    files: Object.fromEntries(Object.entries(files).map(([id, sizeBytes]) => [id, { sizeBytes }])),
  };
}
