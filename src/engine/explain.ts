// "Why is my job pending?": a pure explanation, from the workflow and its units' states,
// of what each job that has not started is waiting for.

import type { Workflow } from '../workflow/types.js';
import type { UnitSnapshot } from './types.js';
import { TERMINAL } from './types.js';

export interface NodeCapacity {
  /** Cores the agent may use. */
  cores: number;
}

type Agg = 'succeeded' | 'failed' | 'canceled' | 'skipped' | 'running' | 'waiting';

function aggregate(units: UnitSnapshot[]): Agg {
  if (units.every((u) => TERMINAL.has(u.state))) {
    if (units.some((u) => u.state === 'failed')) return 'failed';
    if (units.some((u) => u.state === 'canceled')) return 'canceled';
    if (units.every((u) => u.state === 'skipped')) return 'skipped';
    return 'succeeded';
  }
  return units.some((u) => u.state === 'running' || u.state === 'starting') ? 'running' : 'waiting';
}

/** For every job (by name) with units not yet running: what it waits for, in words. */
export function explainWaiting(wf: Workflow, units: UnitSnapshot[], node?: NodeCapacity): Map<string, string> {
  const byJob = new Map<string, UnitSnapshot[]>();
  for (const u of units) byJob.set(u.kind === 'ingress' ? `@ingress/${u.job}` : u.job, [...(byJob.get(u.kind === 'ingress' ? `@ingress/${u.job}` : u.job) ?? []), u]);
  const busyCores = units
    .filter((u) => u.kind === 'job' && u.state === 'running')
    .reduce((n, u) => n + (wf.jobs[u.job]?.resources.cores ?? 1), 0);
  const out = new Map<string, string>();
  for (const spec of Object.values(wf.jobs)) {
    const us = byJob.get(spec.name) ?? [];
    if (us.length === 0 || us.every((u) => TERMINAL.has(u.state) || u.state === 'running')) continue;
    const reasons: string[] = [];
    if (us.some((u) => u.state === 'pending')) {
      for (const d of spec.requires) {
        const dep = byJob.get(d.job);
        if (!dep) continue;
        const a = aggregate(dep);
        // A service with a readiness probe counts as RUNNING once the probe passed.
        const probe = wf.jobs[d.job]?.service === true && wf.jobs[d.job]?.serviceSpec?.probe !== undefined;
        const up = dep.every((u) => u.state === 'running');
        const ok =
          d.condition === 'finished' ? a !== 'running' && a !== 'waiting' : d.condition === 'running' ? up && (!probe || dep.every((u) => u.reason === 'ready')) : d.condition === a;
        if (!ok && d.condition === 'running' && up) reasons.push(`service "${d.job}" is starting: its readiness probe has not passed yet`);
        else if (!ok) reasons.push(`requirement "${d.job}" is ${a}${d.condition === 'succeeded' ? '' : ` (needed: ${d.condition})`}`);
      }
      for (const m of spec.mounts) {
        const ing = byJob.get(`@ingress/${m.volume}`);
        if (ing && aggregate(ing) !== 'succeeded') reasons.push(`ingress of volume "${m.volume}" is ${aggregate(ing)}`);
      }
      const retrying = us.filter((u) => u.state === 'pending' && u.attempt > 0);
      if (retrying.length) reasons.push(`${retrying.length === 1 && us.length === 1 ? 'waiting to retry' : `${retrying.length} task(s) waiting to retry`} (attempt ${Math.max(...retrying.map((u) => u.attempt)) + 1} of ${spec.policy.attempts})`);
    }
    const ready = us.filter((u) => u.state === 'ready').length;
    if (ready > 0 && spec.taskArray && spec.taskArray.concurrency > 0) {
      const active = us.filter((u) => u.state === 'running' || u.state === 'starting').length;
      if (active >= spec.taskArray.concurrency) reasons.push(`${ready} task(s) held by task-array concurrency ${spec.taskArray.concurrency} (${active} started)`);
    }
    const queued = us.filter((u) => u.state === 'starting').length;
    if (queued > 0) {
      const cap = node ? `; ${busyCores} of ${node.cores} cores in use` : '';
      reasons.push(`${queued === 1 && us.length === 1 ? 'queued' : `${queued} task(s) queued`} on the node for ${spec.resources.cores} core(s)${spec.resources.memoryBytes ? ` and ${(spec.resources.memoryBytes / 2 ** 20).toFixed(0)} MiB` : ''}${spec.resources.exclusive ? ' (exclusive: the whole node)' : ''}${cap}`);
    }
    if (reasons.length) out.set(spec.name, reasons.join('; '));
  }
  return out;
}
