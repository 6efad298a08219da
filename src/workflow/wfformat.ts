// Import of WfCommons WfFormat JSON instances (schemaVersion 1.5, and the older flat
// `workflow.tasks` layout of 1.4 and before) into the normalized workflow model. Pure.
import { basename, extname } from 'node:path';
import { WarrenError, EXIT } from '../common/index.js';
import { formatDiagnostic, lineColAt, suggestion } from './diagnostics.js';
import { findCycles } from './graph.js';
import { formatPath, setOwn } from './path.js';
import { CHARS_HINT, NAME_RULE, badName, findBadStrings } from './limits.js';
import type { Diagnostic, JobSpec, Workflow } from './types.js';

export const JOB_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Does this parsed JSON look like a WfFormat instance? */
export function isWfFormat(json: unknown): boolean {
  if (!isObj(json) || !isObj(json.workflow)) return false;
  const w = json.workflow;
  return 'schemaVersion' in json || isObj(w.specification) || Array.isArray(w.tasks);
}

/** Positions for WfFormat diagnostics: found by searching the source text, when there is one. */
type Locator = (needle: string | undefined) => { line: number; col: number };

function makeLocator(text: string | undefined): Locator {
  return (needle) => {
    if (text === undefined || needle === undefined) return { line: 1, col: 1 };
    const i = text.indexOf(needle);
    return i < 0 ? { line: 1, col: 1 } : lineColAt(text, i);
  };
}

/** Like makeLocator for needles that appear in file order: one linear pass over the text overall. */
function makeSequentialLocator(text: string | undefined): Locator {
  let at = 0;
  let line = 1;
  let lineStart = 0;
  return (needle) => {
    if (text === undefined || needle === undefined) return { line: 1, col: 1 };
    const i = text.indexOf(needle, at);
    if (i < 0) return { line: 1, col: 1 };
    for (let k = at; k < i; k++) {
      if (text.charCodeAt(k) === 10) {
        line++;
        lineStart = k + 1;
      }
    }
    at = i;
    return { line, col: i - lineStart + 1 };
  };
}

interface RawTask {
  id: string;
  parents: string[];
  inputs: string[];
  outputs: string[];
  runtime?: number;
  cores?: number;
  command?: string[];
  path: string;
  needle: string;
}

/**
 * Convert a WfFormat instance. Appends problems to `diags` and returns the workflow when
 * there were no errors. `text` (the JSON source) is only used to give diagnostics positions.
 */
export function convertWfFormat(json: unknown, file: string, diags: Diagnostic[], text?: string): Workflow | undefined {
  const locate = makeLocator(text);
  const start = diags.length;
  const err = (path: string, message: string, hint?: string, needle?: string): void => {
    const { line, col } = locate(needle);
    diags.push({ file, line, col, path, message, severity: 'error', ...(hint !== undefined ? { hint } : {}) });
  };
  if (!isObj(json) || !isObj(json.workflow)) {
    err('', 'not a WfFormat instance: expected an object with a "workflow" key', 'see https://github.com/wfcommons/wfformat for the format');
    return undefined;
  }
  const wf = json.workflow;
  const raw: RawTask[] = [];
  const files: Record<string, { sizeBytes: number }> = {};
  const strList = (v: unknown, path: string, needle: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      err(path, 'expected a list of strings', undefined, needle);
      return [];
    }
    return v as string[];
  };
  const num = (v: unknown, path: string, needle: string, what: string): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      err(path, `${what} must be a number >= 0, got ${JSON.stringify(v)}`, undefined, needle);
      return undefined;
    }
    return v;
  };
  const command = (v: unknown, path: string, needle: string): string[] | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!isObj(v) || typeof v.program !== 'string' || v.program === '') {
      err(path, 'expected {program: string, arguments?: [string]}', undefined, needle);
      return undefined;
    }
    const args = v.arguments === undefined ? [] : v.arguments;
    if (!Array.isArray(args)) {
      err(`${path}.arguments`, 'expected a list', undefined, needle);
      return undefined;
    }
    return [v.program, ...args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a)))];
  };

  if (isObj(wf.specification)) {
    // schemaVersion 1.5: specification (structure) + execution (measurements), joined by id.
    const spec = wf.specification;
    if (!Array.isArray(spec.tasks)) {
      err('workflow.specification.tasks', 'expected a list of tasks', 'a WfFormat 1.5 instance lists its tasks in workflow.specification.tasks');
      return undefined;
    }
    const exec = new Map<string, Obj>();
    const execTasks = isObj(wf.execution) && Array.isArray(wf.execution.tasks) ? wf.execution.tasks : [];
    for (const et of execTasks) if (isObj(et) && typeof et.id === 'string') exec.set(et.id, et);
    spec.tasks.forEach((t: unknown, i: number) => {
      const path = `workflow.specification.tasks[${i}]`;
      if (!isObj(t) || typeof t.id !== 'string' || t.id === '') {
        err(path, 'a task needs a non-empty string "id"');
        return;
      }
      const needle = `"id": ${JSON.stringify(t.id)}`;
      const e = exec.get(t.id);
      const ePath = `workflow.execution.tasks[id=${t.id}]`;
      raw.push({
        id: t.id,
        parents: strList(t.parents, `${path}.parents`, needle),
        inputs: strList(t.inputFiles, `${path}.inputFiles`, needle),
        outputs: strList(t.outputFiles, `${path}.outputFiles`, needle),
        runtime: e ? num(e.runtimeInSeconds, `${ePath}.runtimeInSeconds`, needle, 'runtimeInSeconds') : undefined,
        cores: e ? num(e.coreCount, `${ePath}.coreCount`, needle, 'coreCount') : undefined,
        command: e ? command(e.command, `${ePath}.command`, needle) : undefined,
        path,
        needle,
      });
    });
    if (spec.files !== undefined) {
      if (!Array.isArray(spec.files)) err('workflow.specification.files', 'expected a list of files');
      else
        spec.files.forEach((f: unknown, i: number) => {
          const path = `workflow.specification.files[${i}]`;
          if (!isObj(f) || typeof f.id !== 'string') {
            err(path, 'a file needs a string "id"');
            return;
          }
          const size = num(f.sizeInBytes, `${path}.sizeInBytes`, `"id": ${JSON.stringify(f.id)}`, 'sizeInBytes');
          setOwn(files, f.id, { sizeBytes: size ?? 0 });
        });
    }
  } else if (Array.isArray(wf.tasks)) {
    // schemaVersion <= 1.4: one flat list; files are listed per task with link input/output.
    wf.tasks.forEach((t: unknown, i: number) => {
      const path = `workflow.tasks[${i}]`;
      const id = isObj(t) ? (typeof t.id === 'string' && t.id !== '' ? t.id : t.name) : undefined;
      if (!isObj(t) || typeof id !== 'string' || id === '') {
        err(path, 'a task needs a non-empty string "name" or "id"');
        return;
      }
      const needle = `${JSON.stringify(id)}`;
      const inputs: string[] = [];
      const outputs: string[] = [];
      if (Array.isArray(t.files)) {
        for (const f of t.files) {
          if (!isObj(f)) continue;
          const fid = typeof f.id === 'string' ? f.id : typeof f.name === 'string' ? f.name : undefined;
          if (fid === undefined) continue;
          (f.link === 'output' ? outputs : inputs).push(fid);
          const size = typeof f.sizeInBytes === 'number' ? f.sizeInBytes : typeof f.size === 'number' ? f.size : 0;
          setOwn(files, fid, { sizeBytes: size });
        }
      }
      raw.push({
        id,
        parents: strList(t.parents, `${path}.parents`, needle),
        inputs,
        outputs,
        runtime: num(t.runtimeInSeconds ?? t.runtime, `${path}.runtimeInSeconds`, needle, 'runtimeInSeconds'),
        cores: num(t.coreCount ?? t.cores, `${path}.coreCount`, needle, 'coreCount'),
        command: command(t.command, `${path}.command`, needle),
        path,
        needle,
      });
    });
  } else {
    err('workflow', 'no tasks: expected workflow.specification.tasks (WfFormat 1.5) or workflow.tasks (older versions)');
    return undefined;
  }

  // NUL characters and unpaired surrogates anywhere (JSON "\u0000", "\ud800"): refused.
  for (const b of findBadStrings(json)) err(formatPath(b.path), `this string ${b.why}`, CHARS_HINT);
  const ids = new Set<string>();
  for (const t of raw) {
    const bad = badName(t.id, JOB_NAME_RE);
    if (bad) {
      err(`${t.path}.id`, `task id ${JSON.stringify(t.id.length > 60 ? `${t.id.slice(0, 40)}...` : t.id)} is not a valid job name: it ${bad}`, `job ${NAME_RULE}`, t.needle);
    }
    if (ids.has(t.id)) err(`${t.path}.id`, `duplicate task id "${t.id}"`, 'task ids must be unique', t.needle);
    ids.add(t.id);
  }
  for (const t of raw) {
    t.parents.forEach((p, i) => {
      if (p === t.id) err(`${t.path}.parents[${i}]`, `task "${t.id}" lists itself as a parent`, 'remove it from its own parents', t.needle);
      else if (!ids.has(p)) err(`${t.path}.parents[${i}]`, `unknown task "${p}"${suggestion(p, ids)}`, 'parents must be ids of tasks in workflow.specification.tasks', t.needle);
    });
    if (t.cores !== undefined && (!Number.isInteger(t.cores) || t.cores < 1)) {
      err(`${t.path}.coreCount`, `coreCount must be an integer >= 1, got ${t.cores}`, undefined, t.needle);
    }
  }
  const byId = new Map(raw.map((t) => [t.id, t]));
  for (const cyc of findCycles([...byId.keys()], (n) => byId.get(n)!.parents)) {
    const t = byId.get(cyc[0]!)!;
    err(`${t.path}.parents`, `dependency cycle: ${cyc.join(' -> ')}`, 'a workflow must be acyclic: remove one of these parent links', t.needle);
  }
  if (diags.length > start && diags.slice(start).some((d) => d.severity === 'error')) return undefined;

  const jobs: Record<string, JobSpec> = {};
  const locateJob = makeSequentialLocator(text);
  for (const t of raw) {
    const estimate = t.runtime;
    jobs[t.id] = {
      name: t.id,
      service: false,
      command: t.command ?? ['sleep', String(estimate ?? 0)],
      args: [],
      env: {},
      mounts: [],
      requires: t.parents.map((p) => ({ job: p, condition: 'succeeded' as const })),
      resources: {
        cores: t.cores ?? 1,
        affinity: 'core',
        threads: false,
        memoryByCore: false,
        devices: {},
        exclusive: false,
      },
      policy: { attempts: 1, backoffSec: 1 },
      ...(estimate !== undefined ? { estimateSec: estimate } : {}),
      inputs: t.inputs,
      outputs: t.outputs,
      pos: locateJob(t.needle),
    };
  }
  const name = typeof json.name === 'string' && json.name !== '' ? json.name : basename(file, extname(file));
  return { name, dialect: 'wfformat', file, volumes: {}, jobs, policy: {}, files };
}

/** Convert a parsed WfFormat instance; throws WarrenError SPEC_INVALID listing every problem. */
export function fromWfFormat(json: unknown, file: string): Workflow {
  const diags: Diagnostic[] = [];
  const wf = convertWfFormat(json, file, diags);
  if (!wf) throw invalid(file, diags);
  return wf;
}

/** The SPEC_INVALID error for a file with these diagnostics. */
export function invalid(file: string, diags: Diagnostic[]): WarrenError {
  const errors = diags.filter((d) => d.severity === 'error');
  return new WarrenError(
    'SPEC_INVALID',
    `${file}: ${errors.length} error${errors.length === 1 ? '' : 's'}\n${diags.map(formatDiagnostic).join('\n')}`,
    {
      hint: 'fix the problems listed above (`warren validate FILE` checks a file without running it)',
      details: { diagnostics: diags },
    },
  );
}
