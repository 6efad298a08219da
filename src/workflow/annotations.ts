// The annotations of a workflow, in one list, for display (`warren status`). Warren acts on
// none of them today: they are kept as written (docs/workflow-format.md#annotations). Pure.
import type { Workflow } from './types.js';

export interface AnnotationEntry {
  /** Where it was written: `annotations` (top level), `jobs.NAME.annotations`,
   *  `services.NAME.resource.annotations`, `volumes.NAME.annotations`... */
  where: string;
  /** The job, service or volume it belongs to (none for the top level). */
  owner?: string;
  key: string;
  value: string;
  /** Whether Warren does something with it (false for all today). */
  actedOn: boolean;
}

/** Annotation keys Warren acts on (none yet: every annotation is accepted, kept and shown). */
export const ACTED_ON_ANNOTATIONS: readonly string[] = [];

/** Every annotation of `wf`, in file order: the top level, then each job/service, then volumes. */
export function workflowAnnotations(wf: Workflow): AnnotationEntry[] {
  const out: AnnotationEntry[] = [];
  const add = (where: string, owner: string | undefined, a: Record<string, string> | undefined): void => {
    for (const [key, value] of Object.entries(a ?? {})) out.push({ where, ...(owner !== undefined ? { owner } : {}), key, value, actedOn: ACTED_ON_ANNOTATIONS.includes(key) });
  };
  add('annotations', undefined, wf.annotations);
  for (const j of Object.values(wf.jobs)) {
    const section = j.service ? 'services' : 'jobs';
    add(`${section}.${j.name}.annotations`, j.name, j.annotations);
    add(`${section}.${j.name}.resource.annotations`, j.name, j.resources.annotations);
  }
  for (const v of Object.values(wf.volumes)) add(`volumes.${v.name}.annotations`, v.name, v.annotations);
  return out;
}
