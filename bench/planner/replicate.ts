// Larger workflows for the scale test: copies of a real instance with renamed jobs and files,
// which keeps its real shape, runtimes and file sizes.
import type { JobSpec, Workflow } from '../../src/workflow/index.js';

/** `copies` independent copies of `wf` in one workflow (jobs and files prefixed `rN.`). */
export function replicate(wf: Workflow, copies: number): Workflow {
  const jobs: Record<string, JobSpec> = {};
  const files: Record<string, { sizeBytes: number }> = {};
  for (let r = 0; r < copies; r++) {
    const p = `r${r}.`;
    for (const j of Object.values(wf.jobs)) {
      jobs[p + j.name] = {
        ...j,
        name: p + j.name,
        requires: j.requires.map((d) => ({ ...d, job: p + d.job })),
        ...(j.inputs ? { inputs: j.inputs.map((f) => p + f) } : {}),
        ...(j.outputs ? { outputs: j.outputs.map((f) => p + f) } : {}),
      };
    }
    for (const [id, f] of Object.entries(wf.files ?? {})) files[p + id] = f;
  }
  return { ...wf, name: `${wf.name}x${copies}`, jobs, files };
}
