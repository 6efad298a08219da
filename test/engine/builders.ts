// Builders of normalized workflows for engine tests.
import type { JobSpec, Workflow } from '../../src/workflow/types.js';

export function job(name: string, extra: Partial<JobSpec> = {}): JobSpec {
  return {
    name,
    service: false,
    command: ['true'],
    args: [],
    env: {},
    mounts: [],
    requires: [],
    resources: { cores: 1, affinity: 'core', threads: false, memoryByCore: false, devices: {}, exclusive: false },
    policy: { attempts: 1, backoffSec: 1 },
    ...extra,
  };
}

export function wf(jobs: JobSpec[], extra: Partial<Workflow> = {}): Workflow {
  return { name: 't', dialect: 'v1', volumes: {}, jobs: Object.fromEntries(jobs.map((j) => [j.name, j])), policy: {}, ...extra };
}

