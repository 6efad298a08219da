// The Fuzzfile YAML dialects (v1 and v4): parsing, validation, and conversion into the
// normalized model. Pure (no I/O).
//
// Speed: the values come from js-yaml (fast); the `yaml` package, which knows every node's
// exact range, is only consulted when there is something to report, to turn the path of
// each problem (jobs.align.requires[1]) into a line and column.
import { isAlias, isMap, isScalar, isSeq, type Node as YNode } from 'yaml';
import * as jsyaml from 'js-yaml';
import { load as loadYaml, CORE_SCHEMA, type Type as YamlType } from 'js-yaml';
import { dirname, resolve as resolvePath } from 'node:path';
import { parseDuration, parseSize } from '../common/index.js';
import { didYouMean, suggestion } from './diagnostics.js';
import { findCycles } from './graph.js';
import { formatPath, setOwn } from './path.js';
import { parseWithPositions, syntaxDiagnostics, unquoteKey as unquote, type PositionedDoc } from './syntax.js';
import type {
  CpuAffinity,
  Dependency,
  DependencyCondition,
  Diagnostic,
  ImageSpec,
  JobSpec,
  MountSpec,
  MultinodeSpec,
  SourcePos,
  TaskArraySpec,
  TransferSpec,
  VolumeSpec,
  Workflow,
  WorkflowPolicy,
} from './types.js';
import { JOB_NAME_RE } from './wfformat.js';
import { CHARS_HINT, ENV_NAME_RULE, MAX_COUNT, MAX_TASK_INDEX, NAME_RULE, badEnvName, badName, badPath, findBadStrings, fmtInt } from './limits.js';

type Seg = string | number;

// Numbers: decimal only. An integer is a safe integer (|n| <= 2^53-1), so nothing is rounded
// on the way in: `0x10`, `0o7`, `1_000` and `9007199254740993` stay strings (as written, which
// is also what a command word or env value should get), and number fields refuse them with
// the range in the message. Floats need a "." or an exponent (or are .inf/.nan).
const INT_RE = /^[-+]?[0-9]+$/;
const FLOAT_RE = /^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+|\.[0-9]+[eE][-+]?[0-9]+)$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$/;
const IntType = new jsyaml.Type('tag:yaml.org,2002:int', {
  kind: 'scalar',
  resolve: (d: string | null) => d !== null && INT_RE.test(d) && Number.isSafeInteger(Number(d)),
  construct: (d: string) => Number(d),
  predicate: (o: unknown) => typeof o === 'number' && Number.isInteger(o),
  represent: (o: object) => String(o),
});
const FloatType = new jsyaml.Type('tag:yaml.org,2002:float', {
  kind: 'scalar',
  resolve: (d: string | null) => d !== null && FLOAT_RE.test(d),
  construct: (d: string) => {
    const t = d.toLowerCase();
    if (t.endsWith('.nan')) return NaN;
    if (t.endsWith('.inf')) return t.startsWith('-') ? -Infinity : Infinity;
    return Number(d);
  },
  predicate: (o: unknown) => typeof o === 'number' && !Number.isInteger(o),
  represent: (o: object) => String(o),
});
/** YAML 1.2 core schema (no timestamps or other implicit types) with decimal-only numbers, plus `<<` merge keys. */
// (`types` is exported by js-yaml 4 but missing from its type declarations.)
const SCHEMA = CORE_SCHEMA.extend({ implicit: [IntType, FloatType, (jsyaml as unknown as { types: { merge: YamlType } }).types.merge] });
type Obj = Record<string, unknown>;
type FuzzDialect = 'v1' | 'v4';

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---- keys of each mapping --------------------------------------------------------------

const TOP_KEYS_V1 = ['version', 'name', 'defaults', 'volumes', 'jobs', 'policy'];
const TOP_KEYS_V4 = [...TOP_KEYS_V1, 'services'];
const JOB_COMMON = ['image', 'command', 'script', 'args', 'env', 'cwd', 'mounts', 'resource', 'task-array', 'multinode', 'policy', 'estimate'];
const JOB_KEYS_V1 = [...JOB_COMMON.slice(0, 7), 'requires', ...JOB_COMMON.slice(7)];
const JOB_KEYS_V4 = [...JOB_COMMON.slice(0, 7), 'depends-on', ...JOB_COMMON.slice(7)];
const SERVICE_KEYS = ['image', 'command', 'script', 'args', 'env', 'cwd', 'mounts', 'depends-on', 'resource'];
const IMAGE_KEYS = ['uri', 'secret'];
const RESOURCE_KEYS = ['cpu', 'memory', 'devices', 'exclusive'];
const CPU_KEYS = ['cores', 'affinity', 'threads'];
const MEMORY_KEYS = ['size', 'by-core'];
const TASK_ARRAY_KEYS = ['start', 'end', 'concurrency'];
const MULTINODE_KEYS = ['nodes', 'implementation'];
const JOB_POLICY_KEYS = ['timeout', 'retry'];
const TIMEOUT_KEYS = ['execute'];
const RETRY_KEYS = ['attempts', 'backoff'];
const WF_POLICY_KEYS = ['deadline', 'budget', 'timeout', 'require-signed', 'trusted-keys'];
const VOLUME_KEYS = ['reference', 'ingress', 'egress'];
const TRANSFER_KEYS = ['source', 'destination', 'sha256', 'size'];
const ENDPOINT_KEYS = ['uri', 'secret'];
const MOUNT_KEYS_V1 = ['location', 'read-only'];
const MOUNT_KEYS_V4 = ['volume', 'read-only'];
const DEP_KEYS = ['name', 'status'];

const AFFINITIES: readonly CpuAffinity[] = ['core', 'socket', 'numa'];
const MPI_IMPLS: readonly MultinodeSpec['implementation'][] = ['openmpi', 'mpich', 'gasnet'];
const STATUSES: Record<string, DependencyCondition> = {
  SUCCEEDED: 'succeeded',
  FINISHED: 'finished',
  FAILED: 'failed',
  RUNNING: 'running',
};

const NAME_HINT = NAME_RULE;
const DURATION_HINT = 'write a number of seconds or a duration like 90s, 15m, 2h30m, 1.5h or 1d (units: ms, s, m, h, d, w)';
const SIZE_HINT = 'write a number of bytes or a size like 512MB, 4GiB or 1.5G (units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB)';
const TRANSFER_SCHEMES = ['file://', 'http://', 'https://', 's3://'];
const IMAGE_HINT = 'use docker://REPO:TAG, oras://REPO:TAG, file:///path/to/image.sif (or a root file system directory), or an absolute path';

/** "a list", "a number (3)", ... for type errors. */
function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)})`;
  if (typeof v === 'number') return `a number (${v})`;
  if (typeof v === 'boolean') return `a boolean (${v})`;
  return typeof v;
}

interface Issue {
  path: Seg[];
  /** Point at the key of the last path segment rather than at its value. */
  onKey: boolean;
  message: string;
  hint?: string;
  severity: 'error' | 'warning';
}

/** A job or service as read from its mapping, before `defaults.job` is merged under it. */
interface Draft {
  path: Seg[];
  /** `command` or `script` was written (even if invalid). */
  hasRun: boolean;
  image?: ImageSpec;
  command?: string[];
  script?: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** v1: keyed by volume name; v4: keyed by location. */
  mounts?: Map<string, MountSpec & { path: Seg[] }>;
  deps?: { job: string; status?: DependencyCondition; path: Seg[] }[];
  cores?: number;
  affinity?: CpuAffinity;
  threads?: boolean;
  memSize?: number;
  byCore?: boolean;
  byCorePath?: Seg[];
  devices?: Record<string, number>;
  exclusive?: boolean;
  taskArray?: TaskArraySpec;
  multinode?: MultinodeSpec;
  timeoutSec?: number;
  attempts?: number;
  backoffSec?: number;
  estimateSec?: number;
}

class Reader {
  readonly issues: Issue[] = [];
  dialect: FuzzDialect = 'v1';

  constructor(readonly file: string) {}

  error(path: Seg[], message: string, hint?: string, onKey = false): void {
    this.issues.push({ path, onKey, message, severity: 'error', ...(hint !== undefined ? { hint } : {}) });
  }

  typeError(path: Seg[], expected: string, v: unknown): void {
    this.error(path, `expected ${expected}, got ${describe(v)}`);
  }

  /** A mapping with only `allowed` keys (unknown keys are reported, with a did-you-mean). */
  obj(v: unknown, path: Seg[], allowed: readonly string[], where: string): Obj | undefined {
    if (!isObj(v)) {
      this.typeError(path, 'a mapping', v);
      return undefined;
    }
    for (const k of Object.keys(v)) {
      if (allowed.includes(k)) continue;
      let hint = `allowed keys in ${where}: ${allowed.join(', ')}`;
      if (k === 'depends-on' && allowed.includes('requires')) hint = '"depends-on" is the v4 spelling: in a v1 file use "requires: [JOB, ...]", or set "version: v4"';
      else if (k === 'requires' && allowed.includes('depends-on')) hint = '"requires" is the v1 spelling: in a v4 file use "depends-on: [{name: JOB, status: SUCCEEDED}]", or set "version: v1"';
      else if (k === 'services' && where === 'the top level') hint = 'services need "version: v4"';
      this.error([...path, k], `unknown key "${k}"${suggestion(k, allowed)}`, hint, true);
    }
    return v;
  }

  str(v: unknown, path: Seg[], nonEmpty = true): string | undefined {
    if (typeof v !== 'string') {
      this.typeError(path, 'a string', v);
      return undefined;
    }
    if (nonEmpty && v.trim() === '') {
      this.error(path, 'must not be empty');
      return undefined;
    }
    return v;
  }

  bool(v: unknown, path: Seg[]): boolean | undefined {
    if (typeof v !== 'boolean') {
      this.typeError(path, 'true or false', v);
      return undefined;
    }
    return v;
  }

  /** An integer in [min, max], written in decimal. */
  int(v: unknown, path: Seg[], min: number, max = MAX_COUNT): number | undefined {
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    const range = `an integer from ${fmtInt(min)} to ${fmtInt(max)}`;
    const hint = `write a whole number from ${fmtInt(min)} to ${fmtInt(max)} in decimal digits (limits: docs/workflow-format.md#limits)`;
    if (typeof v === 'number' && Number.isInteger(v)) this.error(path, `${v} is out of range: expected ${range}`, hint);
    else if (typeof v === 'string' && /^\s*[-+]?[0-9]+\s*$/.test(v)) this.error(path, `${v.trim()} is out of range: expected ${range}`, hint);
    else if (typeof v === 'string' && /^\s*[-+]?(?:0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*_[0-9_]*)\s*$/.test(v)) this.error(path, `expected ${range} in decimal, got "${v}"`, `${hint}: e.g. 16, not 0x10`);
    else this.error(path, `expected ${range}, got ${describe(v)}`, hint);
    return undefined;
  }

  num(v: unknown, path: Seg[], min: number): number | undefined {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      this.error(path, `expected a number >= ${min}, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  duration(v: unknown, path: Seg[], positive: boolean): number | undefined {
    const d = parseDuration(v);
    if (d === undefined) {
      this.error(path, typeof v === 'string' ? `invalid duration "${v}"` : `expected a duration, got ${describe(v)}`, DURATION_HINT);
      return undefined;
    }
    if (positive && d <= 0) {
      this.error(path, `duration must be greater than 0, got ${JSON.stringify(v)}`, DURATION_HINT);
      return undefined;
    }
    return d;
  }

  size(v: unknown, path: Seg[]): number | undefined {
    const s = parseSize(v);
    if (s === undefined) {
      this.error(path, typeof v === 'string' ? `invalid size "${v}"` : `expected a size, got ${describe(v)}`, SIZE_HINT);
      return undefined;
    }
    if (s <= 0) {
      this.error(path, `size must be greater than 0, got ${JSON.stringify(v)}`, SIZE_HINT);
      return undefined;
    }
    return s;
  }

  /** A list of command-line words: strings, numbers and booleans (written as strings). */
  words(v: unknown, path: Seg[], what: string): string[] | undefined {
    if (!Array.isArray(v)) {
      this.error(
        path,
        `expected a list of strings, got ${describe(v)}`,
        typeof v === 'string' && /^[^[\]{},"']+$/.test(v) ? `write ${what} as a list, e.g. [${v.trim().split(/\s+/).slice(0, 3).join(', ')}], or use "script" for a shell script` : undefined,
      );
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    v.forEach((w, i) => {
      if (typeof w === 'string') out.push(w);
      else if (typeof w === 'number' || typeof w === 'boolean') out.push(String(w));
      else {
        this.typeError([...path, i], 'a string', w);
        ok = false;
      }
    });
    return ok ? out : undefined;
  }

  env(v: unknown, path: Seg[]): Record<string, string> | undefined {
    const out: Record<string, string> = {};
    const checkName = (name: string, p: Seg[], onKey: boolean): boolean => {
      const why = badEnvName(name);
      if (why === undefined) return true;
      this.error(p, `invalid environment variable name "${name.length > 40 ? `${name.slice(0, 37)}...` : name}": it ${why}`, ENV_NAME_RULE, onKey);
      return false;
    };
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        if (typeof item !== 'string') {
          this.typeError([...path, i], 'a string NAME=value', item);
          return;
        }
        const eq = item.indexOf('=');
        if (eq < 0) {
          this.error([...path, i], `expected NAME=value, got "${item}"`, `write "${item}=VALUE" (or use a mapping: env: {${item}: VALUE})`);
          return;
        }
        const name = item.slice(0, eq);
        if (checkName(name, [...path, i], false)) setOwn(out, name, item.slice(eq + 1));
      });
      return out;
    }
    if (isObj(v)) {
      for (const [name, val] of Object.entries(v)) {
        if (!checkName(name, [...path, name], true)) continue;
        if (typeof val === 'string') setOwn(out, name, val);
        else if (typeof val === 'number' || typeof val === 'boolean') setOwn(out, name, String(val));
        else this.typeError([...path, name], 'a string', val);
      }
      return out;
    }
    this.error(path, `expected a list of NAME=value strings or a mapping, got ${describe(v)}`);
    return undefined;
  }

  /** An enum value, case-insensitive; returned lower-cased. */
  choice<T extends string>(v: unknown, path: Seg[], allowed: readonly T[]): T | undefined {
    if (typeof v !== 'string' || !allowed.includes(v.toLowerCase() as T)) {
      const got = typeof v === 'string' ? `"${v}"` : describe(v);
      this.error(path, `expected one of ${allowed.join(', ')}, got ${got}${typeof v === 'string' ? suggestion(v, allowed) : ''}`);
      return undefined;
    }
    return v.toLowerCase() as T;
  }
}

// ---- jobs ------------------------------------------------------------------------------

function readImage(r: Reader, v: unknown, path: Seg[]): ImageSpec | undefined {
  if (typeof v === 'string') {
    r.error(path, `expected a mapping with "uri", got ${describe(v)}`, `write image: {uri: ${v}}`);
    return undefined;
  }
  const o = r.obj(v, path, IMAGE_KEYS, 'image');
  if (!o) return undefined;
  if (o.uri === undefined) {
    r.error(path, 'missing required key "uri"', IMAGE_HINT);
    return undefined;
  }
  const uri = r.str(o.uri, [...path, 'uri']);
  let secret: string | undefined;
  if (o.secret !== undefined) secret = readSecret(r, o.secret, [...path, 'secret']);
  if (uri === undefined) return undefined;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(uri);
  if (m ? !['docker', 'oras', 'file'].includes(m[1]!.toLowerCase()) || m[2] === '' : !uri.startsWith('/')) {
    r.error([...path, 'uri'], m ? `unsupported image URI scheme "${m[1]}://" in "${uri}"` : `invalid image URI "${uri}"`, IMAGE_HINT);
    return undefined;
  }
  return secret !== undefined ? { uri, secret } : { uri };
}

function readSecret(r: Reader, v: unknown, path: Seg[]): string | undefined {
  const s = r.str(v, path);
  if (s === undefined) return undefined;
  if (!/^secret:\/\/\S+$/.test(s)) {
    r.error(path, `invalid secret reference "${s}"`, 'secrets are references like secret://user/NAME');
    return undefined;
  }
  return s;
}

function absolutePath(r: Reader, v: unknown, path: Seg[], what: string): string | undefined {
  const s = r.str(v, path);
  if (s === undefined) return undefined;
  if (!s.startsWith('/')) {
    r.error(path, `${what} must be an absolute path, got "${s}"`, `write it from the root, e.g. /${s.replace(/^\.?\/*/, '')}`);
    return undefined;
  }
  const bad = badPath(s);
  if (bad) {
    r.error(path, `${what} ${bad}`, 'Linux paths are at most 4095 bytes, each component at most 255');
    return undefined;
  }
  return s;
}

function readResource(r: Reader, v: unknown, path: Seg[], d: Draft): void {
  const o = r.obj(v, path, RESOURCE_KEYS, 'resource');
  if (!o) return;
  if (o.cpu !== undefined) {
    const p = [...path, 'cpu'];
    const cpu = r.obj(o.cpu, p, CPU_KEYS, 'resource.cpu');
    if (cpu) {
      if (cpu.cores !== undefined) {
        if (typeof cpu.cores === 'number' && Number.isInteger(cpu.cores) && cpu.cores < 1) {
          r.error([...p, 'cores'], `cores must be at least 1, got ${cpu.cores}`, 'ask for a whole number of cores >= 1 (the default is 1)');
        } else {
          const c = r.int(cpu.cores, [...p, 'cores'], 1);
          if (c !== undefined) d.cores = c;
        }
      }
      if (cpu.affinity !== undefined) {
        const a = r.choice(cpu.affinity, [...p, 'affinity'], AFFINITIES);
        if (a !== undefined) d.affinity = a;
      }
      if (cpu.threads !== undefined) {
        const t = r.bool(cpu.threads, [...p, 'threads']);
        if (t !== undefined) d.threads = t;
      }
    }
  }
  if (o.memory !== undefined) {
    const p = [...path, 'memory'];
    const mem = r.obj(o.memory, p, MEMORY_KEYS, 'resource.memory');
    if (mem) {
      if (mem.size !== undefined) {
        const s = r.size(mem.size, [...p, 'size']);
        if (s !== undefined) d.memSize = s;
      }
      if (mem['by-core'] !== undefined) {
        const b = r.bool(mem['by-core'], [...p, 'by-core']);
        if (b !== undefined) {
          d.byCore = b;
          d.byCorePath = [...p, 'by-core'];
        }
      }
    }
  }
  if (o.devices !== undefined) {
    const p = [...path, 'devices'];
    if (!isObj(o.devices)) r.typeError(p, 'a mapping of device name to count, e.g. {nvidia.com/gpu: 1}', o.devices);
    else {
      const devs: Record<string, number> = {};
      for (const [k, n] of Object.entries(o.devices)) {
        const c = r.int(n, [...p, k], 0);
        if (c !== undefined) setOwn(devs, k, c);
      }
      d.devices = devs;
    }
  }
  if (o.exclusive !== undefined) {
    const e = r.bool(o.exclusive, [...path, 'exclusive']);
    if (e !== undefined) d.exclusive = e;
  }
}

function readMounts(r: Reader, v: unknown, path: Seg[], d: Draft): void {
  if (!isObj(v)) {
    r.typeError(
      path,
      'a mapping',
      v,
    );
    return;
  }
  const mounts = new Map<string, MountSpec & { path: Seg[] }>();
  for (const [key, spec] of Object.entries(v)) {
    const p = [...path, key];
    if (r.dialect === 'v1') {
      // v1: keyed by volume name: {data: {location: /data, read-only: true}}
      const o = r.obj(spec, p, MOUNT_KEYS_V1, 'a v1 mount (keyed by volume name)');
      if (!o) continue;
      if (o.location === undefined) {
        r.error(p, 'missing required key "location"', key.startsWith('/') ? 'v1 mounts are keyed by volume name: write VOLUME: {location: /path} (or set "version: v4" for mounts keyed by path)' : `write ${key}: {location: /${key}}`, true);
        continue;
      }
      const location = absolutePath(r, o.location, [...p, 'location'], 'mount location');
      const readOnly = o['read-only'] === undefined ? false : r.bool(o['read-only'], [...p, 'read-only']);
      if (location !== undefined && readOnly !== undefined) mounts.set(key, { volume: key, location, readOnly, path: p });
    } else {
      // v4: keyed by path: {"/data": {volume: data, read-only: true}}
      const o = r.obj(spec, p, MOUNT_KEYS_V4, 'a v4 mount (keyed by path)');
      if (!o) continue;
      const badLoc = key.startsWith('/') ? badPath(key) : undefined;
      if (badLoc) {
        r.error(p, `mount location ${badLoc}`, 'Linux paths are at most 4095 bytes, each component at most 255', true);
        continue;
      }
      if (!key.startsWith('/')) {
        r.error(p, `mount location must be an absolute path, got "${key}"`, `v4 mounts are keyed by path: write "/${key}": {volume: ${key}} (or set "version: v1" for mounts keyed by volume name)`, true);
        continue;
      }
      if (o.volume === undefined) {
        r.error(p, 'missing required key "volume"', `write "${key}": {volume: VOLUME_NAME}`, true);
        continue;
      }
      const volume = r.str(o.volume, [...p, 'volume']);
      const readOnly = o['read-only'] === undefined ? false : r.bool(o['read-only'], [...p, 'read-only']);
      if (volume !== undefined && readOnly !== undefined) mounts.set(key, { volume, location: key, readOnly, path: [...p, 'volume'] });
    }
  }
  d.mounts = mounts;
}

function readDeps(r: Reader, v: unknown, path: Seg[], d: Draft): void {
  if (!Array.isArray(v)) {
    if (typeof v === 'string') r.error(path, `expected a list, got ${describe(v)}`, `write [${v}]`);
    else r.typeError(path, 'a list', v);
    return;
  }
  const deps: Draft['deps'] = [];
  v.forEach((item, i) => {
    const p = [...path, i];
    if (typeof item === 'string') {
      if (item === '') r.error(p, 'must not be empty');
      else deps.push({ job: item, path: p });
      return;
    }
    if (r.dialect === 'v1' || !isObj(item)) {
      r.typeError(p, r.dialect === 'v1' ? 'a job name' : 'a job or service name, or {name: NAME, status: STATUS}', item);
      return;
    }
    const o = r.obj(item, p, DEP_KEYS, 'a depends-on item');
    if (!o) return;
    if (o.name === undefined) {
      r.error(p, 'missing required key "name"', 'write {name: JOB, status: SUCCEEDED}');
      return;
    }
    const job = r.str(o.name, [...p, 'name']);
    let status: DependencyCondition | undefined;
    if (o.status !== undefined) {
      status = typeof o.status === 'string' && Object.hasOwn(STATUSES, o.status.toUpperCase()) ? STATUSES[o.status.toUpperCase()] : undefined;
      if (status === undefined) {
        const got = typeof o.status === 'string' ? `"${o.status}"` : describe(o.status);
        const names = Object.keys(STATUSES);
        r.error([...p, 'status'], `expected one of ${names.join(', ')}, got ${got}${typeof o.status === 'string' ? suggestion(o.status, names) : ''}`, 'SUCCEEDED: after it succeeded; FINISHED: after it ended either way; FAILED: only if it failed; RUNNING: once a service has started');
        return;
      }
    }
    if (job !== undefined) deps.push({ job, path: [...p, 'name'], ...(status !== undefined ? { status } : {}) });
  });
  d.deps = deps;
}

function readJob(r: Reader, v: unknown, path: Seg[], kind: 'job' | 'service' | 'defaults'): Draft | undefined {
  const keys = kind === 'service' ? SERVICE_KEYS : r.dialect === 'v1' ? JOB_KEYS_V1 : JOB_KEYS_V4;
  if (v === null && kind !== 'defaults') {
    r.error(path, `${kind} "${path[1]}" is empty`, 'add command: [PROGRAM, ARG, ...] or a script: | block starting with #!/bin/sh', true);
    return undefined;
  }
  const o = r.obj(v, path, keys, kind === 'service' ? 'a service' : kind === 'defaults' ? 'defaults.job' : 'a job');
  if (!o) return undefined;
  // A misspelt "comand" is reported as an unknown key; do not also say the command is missing.
  const misspeltRun = Object.keys(o).some((k) => !keys.includes(k) && ['command', 'script'].includes(didYouMean(k, keys) ?? ''));
  const d: Draft = { path, hasRun: o.command !== undefined || o.script !== undefined || misspeltRun };
  const at = (k: string): Seg[] => [...path, k];
  if (o.image !== undefined) d.image = readImage(r, o.image, at('image'));
  if (o.command !== undefined) d.command = r.words(o.command, at('command'), 'command');
  if (d.command?.length === 0) {
    r.error(at('command'), 'command must not be empty', 'give the program and its arguments, e.g. [echo, hello]');
    d.command = undefined;
  }
  if (o.script !== undefined) {
    const s = r.str(o.script, at('script'));
    if (s !== undefined) {
      if (!s.startsWith('#!')) {
        r.error(at('script'), 'script must start with a "#!" line naming its interpreter', 'begin the script with e.g. #!/bin/sh (write it as a block: script: |, then the lines indented below)');
      } else d.script = s;
    }
  }
  if (o.command !== undefined && o.script !== undefined) {
    r.error(at('script'), 'set either "command" or "script", not both', 'use "command" for one program with arguments, "script" for a shell script', true);
  }
  if (o.args !== undefined) d.args = r.words(o.args, at('args'), 'args');
  if (o.env !== undefined) d.env = r.env(o.env, at('env'));
  if (o.cwd !== undefined) d.cwd = absolutePath(r, o.cwd, at('cwd'), 'cwd');
  if (o.mounts !== undefined) readMounts(r, o.mounts, at('mounts'), d);
  // (the other dialect's spelling was reported as an unknown key)
  const depKey = kind !== 'service' && r.dialect === 'v1' ? 'requires' : 'depends-on';
  if (o[depKey] !== undefined) readDeps(r, o[depKey], at(depKey), d);
  if (o.resource !== undefined) readResource(r, o.resource, at('resource'), d);
  if (o['task-array'] !== undefined) {
    const p = at('task-array');
    const ta = r.obj(o['task-array'], p, TASK_ARRAY_KEYS, 'task-array');
    if (ta) {
      if (ta.start === undefined || ta.end === undefined) {
        r.error(p, `task-array needs "start" and "end" (missing ${ta.start === undefined && ta.end === undefined ? '"start" and "end"' : ta.start === undefined ? '"start"' : '"end"'})`, 'e.g. task-array: {start: 0, end: 7} runs 8 tasks with indices 0..7', true);
      } else {
        const start = r.int(ta.start, [...p, 'start'], 0, MAX_TASK_INDEX);
        const end = r.int(ta.end, [...p, 'end'], 0, MAX_TASK_INDEX);
        const conc = ta.concurrency === undefined ? 0 : r.int(ta.concurrency, [...p, 'concurrency'], 0, MAX_TASK_INDEX + 1);
        if (start !== undefined && end !== undefined && end < start) {
          r.error([...p, 'end'], `task-array is empty: end (${end}) is less than start (${start})`, 'end is inclusive: start: 0, end: 7 runs 8 tasks');
        } else if (start !== undefined && end !== undefined && conc !== undefined) {
          d.taskArray = { start, end, concurrency: conc };
        }
      }
    }
  }
  if (o.multinode !== undefined) {
    const p = at('multinode');
    const mn = r.obj(o.multinode, p, MULTINODE_KEYS, 'multinode');
    if (mn) {
      if (mn.nodes === undefined) r.error(p, 'missing required key "nodes"', 'e.g. multinode: {nodes: 2, implementation: openmpi}', true);
      const nodes = mn.nodes === undefined ? undefined : r.int(mn.nodes, [...p, 'nodes'], 1);
      const impl = mn.implementation === undefined ? 'openmpi' : r.choice(mn.implementation, [...p, 'implementation'], MPI_IMPLS);
      // GASNet is part of the format but Warren cannot launch it yet: refused, not run as one process.
      if (impl === 'gasnet') r.error([...p, 'implementation'], 'implementation "gasnet" is not supported by Warren yet', 'use implementation: openmpi or implementation: mpich (GASNet programs built on an MPI conduit run with those)');
      else if (nodes !== undefined && impl !== undefined) d.multinode = { nodes, implementation: impl };
    }
  }
  if (o.policy !== undefined) {
    const p = at('policy');
    const pol = r.obj(o.policy, p, JOB_POLICY_KEYS, 'a job policy');
    if (pol) {
      if (pol.timeout !== undefined) {
        const t = r.obj(pol.timeout, [...p, 'timeout'], TIMEOUT_KEYS, 'policy.timeout');
        if (t && t.execute !== undefined) d.timeoutSec = r.duration(t.execute, [...p, 'timeout', 'execute'], true);
      }
      if (pol.retry !== undefined) {
        const rt = r.obj(pol.retry, [...p, 'retry'], RETRY_KEYS, 'policy.retry');
        if (rt) {
          if (rt.attempts !== undefined) d.attempts = r.int(rt.attempts, [...p, 'retry', 'attempts'], 1);
          if (rt.backoff !== undefined) d.backoffSec = r.duration(rt.backoff, [...p, 'retry', 'backoff'], false);
        }
      }
    }
  }
  if (o.estimate !== undefined) d.estimateSec = r.duration(o.estimate, at('estimate'), false);
  return d;
}

// ---- volumes ---------------------------------------------------------------------------

function readEndpoint(r: Reader, v: unknown, path: Seg[]): { uri: string; secret?: string } | undefined {
  const o = r.obj(v, path, ENDPOINT_KEYS, 'a transfer source or destination');
  if (!o) return undefined;
  if (o.uri === undefined) {
    r.error(path, 'missing required key "uri"', `e.g. {uri: https://example.org/data.tar.gz}`, true);
    return undefined;
  }
  const uri = r.str(o.uri, [...path, 'uri']);
  const secret = o.secret === undefined ? undefined : readSecret(r, o.secret, [...path, 'secret']);
  if (uri === undefined) return undefined;
  if (!TRANSFER_SCHEMES.some((s) => uri.toLowerCase().startsWith(s))) {
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri);
    r.error([...path, 'uri'], m ? `unsupported URI scheme "${m[1]}://" in "${uri}"` : `invalid URI "${uri}"`, `use one of ${TRANSFER_SCHEMES.join(', ')}`);
    return undefined;
  }
  if (uri.length <= uri.indexOf('://') + 3) {
    r.error([...path, 'uri'], `URI "${uri}" has no path`, 'e.g. file://input/data.csv or https://example.org/data.csv');
    return undefined;
  }
  return secret !== undefined ? { uri, secret } : { uri };
}

/** The volume side of a transfer: `file://` and a path inside the volume. */
function volumeSide(r: Reader, ep: { uri: string }, path: Seg[], side: string): boolean {
  if (!ep.uri.toLowerCase().startsWith('file://')) {
    r.error([...path, 'uri'], `${side} must be a file:// path inside the volume, got "${ep.uri}"`, 'e.g. file://input/data.csv (relative to the volume root)');
    return false;
  }
  const rel = ep.uri.slice('file://'.length);
  if (rel.split('/').includes('..')) {
    r.error([...path, 'uri'], `${side} "${ep.uri}" leaves the volume ("..")`, 'paths inside a volume are relative to its root and may not contain ".."');
    return false;
  }
  const bad = badPath(rel);
  if (bad) {
    r.error([...path, 'uri'], `${side} path ${bad}`, 'Linux paths are at most 4095 bytes, each component at most 255');
    return false;
  }
  return true;
}

/** The outside side of a transfer: relative file:// paths are resolved against the workflow file's directory. */
function outsideSide(ep: { uri: string; secret?: string }, baseDir: string): { uri: string; secret?: string } {
  if (!ep.uri.toLowerCase().startsWith('file://')) return ep;
  const p = ep.uri.slice('file://'.length);
  if (p.startsWith('/')) return ep;
  // Literal path, no percent-encoding: `file://` URIs are paths (as src/data reads them).
  return { ...ep, uri: `file://${resolvePath(baseDir, p)}` };
}

function readTransfers(r: Reader, v: unknown, path: Seg[], dir: 'ingress' | 'egress', baseDir: string): TransferSpec[] {
  if (!Array.isArray(v)) {
    r.typeError(path, 'a list of transfers ({source: {uri}, destination: {uri}})', v);
    return [];
  }
  const out: TransferSpec[] = [];
  v.forEach((item, i) => {
    const p = [...path, i];
    const o = r.obj(item, p, TRANSFER_KEYS, `an ${dir} item`);
    if (!o) return;
    let ok = true;
    for (const k of ['source', 'destination']) {
      if (o[k] === undefined) {
        r.error(p, `missing required key "${k}"`, 'a transfer has a source: {uri} and a destination: {uri}');
        ok = false;
      }
    }
    const source = o.source === undefined ? undefined : readEndpoint(r, o.source, [...p, 'source']);
    const destination = o.destination === undefined ? undefined : readEndpoint(r, o.destination, [...p, 'destination']);
    let sha256: string | undefined;
    if (o.sha256 !== undefined) {
      const s = r.str(o.sha256, [...p, 'sha256']);
      if (s !== undefined && !/^[0-9a-fA-F]{64}$/.test(s)) {
        r.error([...p, 'sha256'], `invalid sha256 "${s.length > 70 ? `${s.slice(0, 67)}...` : s}": expected 64 hexadecimal digits`, 'compute it with `sha256sum FILE`');
        ok = false;
      } else if (s !== undefined) sha256 = s.toLowerCase();
    }
    let sizeBytes: number | undefined;
    if (o.size !== undefined) {
      sizeBytes = r.size(o.size, [...p, 'size']);
      if (sizeBytes === undefined) ok = false;
      else if (!Number.isSafeInteger(sizeBytes)) {
        r.error([...p, 'size'], `size ${JSON.stringify(o.size)} is not a whole number of bytes below 2^53`, 'write the exact size in bytes, e.g. size: 1048576 or size: 1MiB');
        ok = false;
      }
    }
    if (dir === 'ingress' && destination && !volumeSide(r, destination, [...p, 'destination'], 'ingress destination')) ok = false;
    if (dir === 'egress' && source && !volumeSide(r, source, [...p, 'source'], 'egress source')) ok = false;
    if (!ok || !source || !destination) return;
    const extra = { ...(sha256 ? { sha256 } : {}), ...(sizeBytes !== undefined ? { sizeBytes } : {}) };
    if (dir === 'ingress') out.push({ source: outsideSide(source, baseDir), destination, ...extra });
    else out.push({ source, destination: outsideSide(destination, baseDir), ...extra });
  });
  return out;
}

function readVolumes(r: Reader, v: unknown, baseDir: string): Record<string, VolumeSpec> {
  const volumes: Record<string, VolumeSpec> = {};
  if (!isObj(v)) {
    r.typeError(['volumes'], 'a mapping of volume name to {reference: ...}', v);
    return volumes;
  }
  for (const [name, spec] of Object.entries(v)) {
    const p: Seg[] = ['volumes', name];
    const badVol = badName(name, JOB_NAME_RE);
    if (badVol) r.error(p, `invalid volume name "${short(name)}": it ${badVol}`, NAME_HINT, true);
    const o = r.obj(spec, p, VOLUME_KEYS, 'a volume');
    if (!o) continue;
    if (o.reference === undefined) {
      r.error(p, 'missing required key "reference"', 'use reference: volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME', true);
      continue;
    }
    const ref = r.str(o.reference, [...p, 'reference']);
    let kind: VolumeSpec['kind'] | undefined;
    let persistentName: string | undefined;
    if (ref !== undefined) {
      const m = /^volume:\/\/user\/(?:(ephemeral)|persistent\/([A-Za-z0-9][A-Za-z0-9_.-]*))$/.exec(ref);
      const badPersistent = m?.[2] !== undefined ? badName(m[2], JOB_NAME_RE) : undefined;
      if (!m) r.error([...p, 'reference'], `invalid volume reference "${short(ref)}"`, 'use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME');
      else if (badPersistent) r.error([...p, 'reference'], `invalid persistent volume name "${short(m[2]!)}": it ${badPersistent}`, NAME_HINT);
      else if (m[1]) kind = 'ephemeral';
      else {
        kind = 'persistent';
        persistentName = m[2];
      }
    }
    const ingress = o.ingress === undefined ? [] : readTransfers(r, o.ingress, [...p, 'ingress'], 'ingress', baseDir);
    const egress = o.egress === undefined ? [] : readTransfers(r, o.egress, [...p, 'egress'], 'egress', baseDir);
    if (ref !== undefined && kind !== undefined) {
      volumes[name] = { name, reference: ref, kind, ...(persistentName ? { persistentName } : {}), ingress, egress };
    }
  }
  return volumes;
}

// ---- the whole file --------------------------------------------------------------------

function readPolicy(r: Reader, v: unknown): WorkflowPolicy {
  const out: WorkflowPolicy = {};
  const o = r.obj(v, ['policy'], WF_POLICY_KEYS, 'the workflow policy');
  if (!o) return out;
  if (o.deadline !== undefined) {
    const d = r.duration(o.deadline, ['policy', 'deadline'], true);
    if (d !== undefined) out.deadlineSec = d;
  }
  if (o.budget !== undefined) {
    const b = r.num(o.budget, ['policy', 'budget'], 0);
    if (b !== undefined) out.budget = b;
  }
  if (o.timeout !== undefined) {
    const t = r.duration(o.timeout, ['policy', 'timeout'], true);
    if (t !== undefined) out.timeoutSec = t;
  }
  if (o['require-signed'] !== undefined) {
    const b = r.bool(o['require-signed'], ['policy', 'require-signed']);
    if (b !== undefined) out.requireSigned = b;
  }
  if (o['trusted-keys'] !== undefined) {
    const v = o['trusted-keys'];
    if (!Array.isArray(v)) r.typeError(['policy', 'trusted-keys'], 'a list of key fingerprints or public key files', v);
    else {
      const keys: string[] = [];
      v.forEach((k, i) => {
        const s = r.str(k, ['policy', 'trusted-keys', i]);
        if (s !== undefined) keys.push(s);
      });
      out.trustedKeys = keys;
    }
  }
  return out;
}

/** Merge `defaults.job` under a job: the job's own settings win; env, devices and mounts merge key-wise. */
function mergeDraft(def: Draft | undefined, job: Draft): Draft {
  if (!def) return job;
  const pick = <K extends keyof Draft>(k: K): Draft[K] => (job[k] !== undefined ? job[k] : def[k]);
  const m: Draft = {
    path: job.path,
    hasRun: def.hasRun || job.hasRun,
    image: pick('image'),
    command: job.hasRun ? job.command : def.command,
    script: job.hasRun ? job.script : def.script,
    args: pick('args'),
    env: def.env && job.env ? { ...def.env, ...job.env } : pick('env'),
    cwd: pick('cwd'),
    mounts: def.mounts && job.mounts ? new Map([...def.mounts, ...job.mounts]) : pick('mounts'),
    deps: def.deps ? [...def.deps.filter((x) => x.job !== job.path[1] && !job.deps?.some((y) => y.job === x.job)), ...(job.deps ?? [])] : job.deps,
    cores: pick('cores'),
    affinity: pick('affinity'),
    threads: pick('threads'),
    memSize: pick('memSize'),
    byCore: pick('byCore'),
    byCorePath: pick('byCorePath'),
    devices: def.devices && job.devices ? { ...def.devices, ...job.devices } : pick('devices'),
    exclusive: pick('exclusive'),
    taskArray: pick('taskArray'),
    multinode: pick('multinode'),
    timeoutSec: pick('timeoutSec'),
    attempts: pick('attempts'),
    backoffSec: pick('backoffSec'),
    estimateSec: pick('estimateSec'),
  };
  return m;
}

/** Positions of the keys of a block mapping `section:` at the top level (job name -> where it is written). */
function scanSectionKeys(text: string, section: string): Map<string, SourcePos> {
  const out = new Map<string, SourcePos>();
  const head = new RegExp(`^${section}\\s*:\\s*(#.*)?$`, 'm').exec(text);
  if (!head) return out;
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < head.index; i = text.indexOf('\n', i + 1)) line++;
  let indent = -1;
  // One line at a time, from the line after `section:`, until the next top-level line.
  const lineRe = /\n([^\n]*)/y;
  const keyRe = /^( +)("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"][^:#]*?)\s*:(?:\s|$)/;
  lineRe.lastIndex = head.index + head[0].length;
  let m: RegExpExecArray | null;
  while ((m = lineRe.exec(text)) !== null) {
    line++;
    const l = m[1]!;
    let lead = 0;
    while (lead < l.length && l.charCodeAt(lead) === 32) lead++;
    if (lead === l.length || l.charCodeAt(lead) === 35 /* # */ || l.charCodeAt(lead) === 13) continue;
    if (lead === 0) break;
    if (indent < 0) indent = lead;
    if (lead !== indent) continue;
    const k0 = keyRe.exec(l);
    if (!k0) continue;
    let k = k0[2]!;
    if (k.startsWith('"')) {
      try {
        k = JSON.parse(k) as string;
      } catch {
        k = k.slice(1, -1);
      }
    } else if (k.startsWith("'")) k = k.slice(1, -1).replace(/''/g, "'");
    if (!out.has(k)) out.set(k, { line, col: lead + 1 });
  }
  return out;
}

/** Parse and validate a Fuzzfile; never throws for bad input. */
export function parseFuzzfile(text: string, file: string, label: 'YAML' | 'JSON' = 'YAML'): { workflow?: Workflow; diagnostics: Diagnostic[] } {
  let root: unknown;
  let pd: PositionedDoc | undefined;
  const early: Diagnostic[] = [];
  try {
    root = loadYaml(text, { schema: SCHEMA, filename: file });
  } catch (e) {
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const reason = (e as { reason?: string }).reason ?? (e as Error).message;
    if (text.length > BIG_FILE) {
      // Big file: js-yaml's message and position (the positioned parser would take seconds).
      const at = { file, line: (mark?.line ?? 0) + 1, col: (mark?.column ?? 0) + 1, path: '', severity: 'error' as const };
      if (!/duplicated mapping key/.test(reason)) {
        return { diagnostics: [{ ...at, message: `malformed ${label}: ${reason}`, hint: 'check the indentation (spaces, not tabs), the colons after keys, and unclosed quotes or brackets near this position' }] };
      }
      early.push({ ...at, message: 'duplicate key', hint: 'each key may appear only once in a mapping: remove or rename one of them' });
      root = loadYaml(text, { schema: SCHEMA, filename: file, json: true });
    } else {
    // Let the positioned parser say where and what; go on checking when only keys are duplicated.
    pd = parseWithPositions(text);
    const syn = syntaxDiagnostics(text, pd, file, label);
    if (syn.diagnostics.length === 0) {
      return {
        diagnostics: [
          {
            file,
            line: (mark?.line ?? 0) + 1,
            col: (mark?.column ?? 0) + 1,
            path: '',
            message: `malformed ${label}: ${reason}`,
            hint: 'check the indentation (spaces, not tabs) and the quoting near this position',
            severity: 'error',
          },
        ],
      };
    }
    if (!syn.onlyDuplicates) return { diagnostics: syn.diagnostics };
    early.push(...syn.diagnostics);
    root = loadYaml(text, { schema: SCHEMA, filename: file, json: true }); // duplicates: last one wins
    }
  }
  const r = new Reader(file);
  const workflow = check(r, root, text, file);
  if (r.issues.length === 0 && early.length === 0) return { workflow, diagnostics: [] };
  const where: Locate = pd ? fullLocator(pd) : text.length > BIG_FILE ? chunkLocator(text) : fullLocator(parseWithPositions(text));
  const seen = new Set<string>();
  const diagnostics = [...early];
  for (const i of r.issues) {
    const path = formatPath(i.path);
    const key = `${path}\n${i.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const { line, col } = where(i.path, i.onKey);
    diagnostics.push({ file, line, col, path, message: i.message, severity: i.severity, ...(i.hint !== undefined ? { hint: i.hint } : {}) });
  }
  diagnostics.sort((a, b) => a.line - b.line || a.col - b.col);
  const hasError = diagnostics.some((d) => d.severity === 'error');
  return hasError ? { diagnostics } : { workflow, diagnostics };
}

function check(r: Reader, root: unknown, text: string, file: string): Workflow | undefined {
  if (root === undefined || root === null) {
    r.error([], 'the workflow file is empty', 'start with "version: v1" and a "jobs:" mapping (see examples/hello.yaml)');
    return undefined;
  }
  if (!isObj(root)) {
    r.error([], `a workflow must be a mapping with "version" and "jobs", got ${describe(root)}`, 'start with "version: v1" and a "jobs:" mapping (see examples/hello.yaml)');
    return undefined;
  }
  // NUL characters and unpaired surrogates, anywhere (keys too): nothing with them can reach
  // a program's argv, environment or a path intact.
  for (const b of findBadStrings(root)) r.error(b.path, `this string ${b.why}`, CHARS_HINT, b.onKey);
  // The dialect decides which keys are allowed, so settle it first.
  if (root.version === undefined) {
    r.error([], 'missing required key "version"', 'add "version: v1" (or "version: v4") at the top of the file');
  } else if (root.version !== 'v1' && root.version !== 'v4') {
    r.error(['version'], `unsupported version ${typeof root.version === 'string' ? `"${root.version}"` : describe(root.version)}`, 'the supported versions are v1 and v4 (write version: v1 or version: v4)');
  }
  r.dialect =
    root.version === 'v4' || (root.version !== 'v1' && (root.services !== undefined || /^\s+depends-on\s*:/m.test(text))) ? 'v4' : 'v1';
  // `x-...` keys are ignored (a place for YAML anchors shared by several jobs).
  const top = Object.fromEntries(Object.entries(root).filter(([k]) => !k.startsWith('x-')));
  r.obj(top, [], r.dialect === 'v4' ? TOP_KEYS_V4 : TOP_KEYS_V1, 'the top level');

  let name = basenameNoExt(file);
  if (root.name !== undefined) {
    const n = r.str(root.name, ['name']);
    if (n !== undefined) name = n;
  }
  const baseDir = dirname(resolvePath(file));
  const volumes = root.volumes === undefined ? {} : readVolumes(r, root.volumes, baseDir);
  const policy = root.policy === undefined ? {} : readPolicy(r, root.policy);

  let defaults: Draft | undefined;
  if (root.defaults !== undefined) {
    const d = r.obj(root.defaults, ['defaults'], ['job'], 'defaults');
    if (d && d.job !== undefined) defaults = readJob(r, d.job, ['defaults', 'job'], 'defaults');
  }

  // Jobs and services, in file order, one namespace.
  const drafts = new Map<string, { draft: Draft; service: boolean }>();
  const sections = Object.keys(root).filter((k) => k === 'jobs' || (k === 'services' && r.dialect === 'v4'));
  if (root.jobs === undefined) r.error([], 'missing required key "jobs"', 'add a "jobs:" mapping of job name to job (see examples/hello.yaml)');
  for (const section of sections) {
    const service = section === 'services';
    const v = root[section];
    if (!isObj(v)) {
      r.typeError([section], `a mapping of ${service ? 'service' : 'job'} name to ${service ? 'service' : 'job'}`, v);
      continue;
    }
    if (!service && Object.keys(v).length === 0) r.error([section], 'the workflow has no jobs', 'add at least one job under "jobs:"', true);
    for (const [jobName, spec] of Object.entries(v)) {
      const p: Seg[] = [section, jobName];
      const badJob = badName(jobName, JOB_NAME_RE);
      if (badJob) r.error(p, `invalid ${service ? 'service' : 'job'} name "${short(jobName)}": it ${badJob}`, NAME_HINT, true);
      if (drafts.has(jobName)) {
        r.error(p, `the name "${jobName}" is used by both a job and a service`, 'jobs and services share one namespace: rename one of them', true);
        continue;
      }
      const draft = readJob(r, spec, p, service ? 'service' : 'job');
      if (draft) drafts.set(jobName, { draft, service });
    }
  }

  // Checks that need every name, and the conversion.
  const names = [...drafts.keys()];
  const isService = (n: string): boolean => drafts.get(n)?.service === true;
  const volumeNames = isObj(root.volumes) ? Object.keys(root.volumes) : [];
  const checkMounts = (d: Draft): void => {
    const byLocation = new Map<string, string>();
    for (const m of d.mounts?.values() ?? []) {
      if (!Object.hasOwn(volumes, m.volume)) {
        if (isObj(root.volumes) && Object.hasOwn(root.volumes, m.volume)) continue; // the volume itself has an error, reported there
        r.error(m.path, `unknown volume "${m.volume}"${suggestion(m.volume, volumeNames)}`, volumeNames.length > 0 ? `volumes defined in this file: ${volumeNames.join(', ')}` : 'define it under the top-level "volumes:" key, e.g. volumes: {data: {reference: volume://user/ephemeral}}', r.dialect === 'v1');
      }
      const other = byLocation.get(m.location);
      if (other !== undefined) r.error(m.path, `volumes "${other}" and "${m.volume}" are both mounted at ${m.location}`, 'give each mount its own location');
      byLocation.set(m.location, m.volume);
    }
  };
  const checkDeps = (d: Draft, self: string | undefined): void => {
    const listed = new Set<string>();
    for (const dep of d.deps ?? []) {
      if (listed.has(dep.job)) {
        r.error(dep.path, `"${dep.job}" is listed twice`, 'list each requirement once');
        continue;
      }
      listed.add(dep.job);
      if (dep.job === self) {
        r.error(dep.path, `job "${self}" depends on itself`, 'remove it from its own requirements');
      } else if (!drafts.has(dep.job)) {
        r.error(dep.path, `unknown ${r.dialect === 'v4' ? 'job or service' : 'job'} "${dep.job}"${suggestion(dep.job, names)}`, names.length > 0 && names.length <= 12 ? `jobs${r.dialect === 'v4' ? ' and services' : ''} in this file: ${names.join(', ')}` : undefined);
      } else if (dep.status === 'running' && !isService(dep.job)) {
        r.error(dep.path.at(-1) === 'name' ? [...dep.path.slice(0, -1), 'status'] : dep.path, `status RUNNING is only valid when depending on a service, and "${dep.job}" is a job`, 'use SUCCEEDED, FINISHED or FAILED for a job');
      }
    }
  };
  if (defaults) {
    checkMounts(defaults);
    checkDeps(defaults, undefined);
  }

  const jobs: Record<string, JobSpec> = {};
  const positions = new Map([...scanSectionKeys(text, 'jobs'), ...scanSectionKeys(text, 'services')]);
  if (positions.size < drafts.size && text.length < 256 * 1024) {
    // Flow style or unusual layout: ask the (slower) positioned parser, fine for small files.
    const pd = parseWithPositions(text);
    for (const [n, { draft }] of drafts) if (!positions.has(n)) positions.set(n, locate(pd, draft.path, true));
  }
  for (const [jobName, { draft: own, service }] of drafts) {
    const d = service ? own : mergeDraft(defaults, own);
    if (own.mounts) checkMounts(own);
    checkDeps(own, jobName);
    if (!d.hasRun) {
      r.error(own.path, `${service ? 'service' : 'job'} "${jobName}" has no command or script`, 'add command: [PROGRAM, ARG, ...] or a script: | block starting with #!/bin/sh', true);
    }
    if (d.byCore && d.memSize === undefined) {
      r.error(d.byCorePath ?? [...own.path, 'resource', 'memory'], 'memory.by-core needs memory.size', 'e.g. memory: {size: 2GiB, by-core: true} gives 2 GiB per core');
    }
    const cores = d.cores ?? 1;
    const requires: Dependency[] = (d.deps ?? [])
      .filter((x) => x.job !== jobName)
      .map((x) => ({ job: x.job, condition: x.status ?? (r.dialect === 'v4' && isService(x.job) ? 'running' : 'succeeded') }));
    const pos = positions.get(jobName);
    jobs[jobName] = {
      name: jobName,
      service,
      ...(d.image ? { image: d.image } : {}),
      ...(d.command !== undefined ? { command: d.command } : {}),
      ...(d.script !== undefined && d.command === undefined ? { script: d.script } : {}),
      args: d.args ?? [],
      env: d.env ?? {},
      ...(d.cwd !== undefined ? { cwd: d.cwd } : {}),
      mounts: [...(d.mounts?.values() ?? [])].map(({ volume, location, readOnly }) => ({ volume, location, readOnly })),
      requires,
      resources: {
        cores,
        affinity: d.affinity ?? 'core',
        threads: d.threads ?? false,
        ...(d.memSize !== undefined ? { memoryBytes: d.byCore ? d.memSize * cores : d.memSize } : {}),
        memoryByCore: d.byCore ?? false,
        devices: d.devices ?? {},
        exclusive: d.exclusive ?? false,
      },
      ...(d.taskArray ? { taskArray: d.taskArray } : {}),
      ...(d.multinode ? { multinode: d.multinode } : {}),
      policy: {
        ...(d.timeoutSec !== undefined ? { timeoutSec: d.timeoutSec } : {}),
        attempts: d.attempts ?? 1,
        backoffSec: d.backoffSec ?? 1,
      },
      ...(d.estimateSec !== undefined ? { estimateSec: d.estimateSec } : {}),
      ...(pos ? { pos } : {}),
    };
  }

  for (const cyc of findCycles(names, (n) => jobs[n]?.requires.map((x) => x.job) ?? [])) {
    const first = drafts.get(cyc[0]!)!.draft;
    r.error([...first.path, r.dialect === 'v4' ? 'depends-on' : 'requires'], `dependency cycle: ${cyc.join(' -> ')}`, 'a workflow must be acyclic: remove one of these requirements', true);
  }
  return r.issues.length === 0 ? { name, dialect: r.dialect, file, volumes, jobs, policy } : undefined;
}

/** A user string shortened for a message. */
function short(s: string): string {
  return s.length > 60 ? `${s.slice(0, 40)}...(${s.length} characters)` : s;
}

function basenameNoExt(file: string): string {
  const b = file.split(/[\\/]/).pop() ?? file;
  const dot = b.lastIndexOf('.');
  return dot > 0 ? b.slice(0, dot) : b;
}

// ---- positions -------------------------------------------------------------------------

/** Above this size, positions come from the parts of the file concerned, not the whole. */
const BIG_FILE = 256 * 1024;

type Locate = (path: readonly Seg[], onKey: boolean) => SourcePos;

function fullLocator(pd: PositionedDoc): Locate {
  return (path, onKey) => locate(pd, path, onKey);
}

/**
 * For big files: parse only the block of text a path points into (one job, or one top-level
 * section) with the positioned parser, and shift its positions. Block style only; paths it
 * cannot place fall back to the whole file.
 */
function chunkLocator(text: string): Locate {
  const lineStarts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  const lineText = (n: number): string => text.slice(lineStarts[n - 1]!, n < lineStarts.length ? lineStarts[n]! - 1 : text.length);
  // Top-level keys and the line each is on.
  const top: { key: string; line: number }[] = [];
  for (let n = 1; n <= lineStarts.length; n++) {
    const m = /^([^\s#'"\-][^:#]*?|"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s|$)/.exec(lineText(n));
    if (m) top.push({ key: unquote(m[1]!), line: n });
  }
  const sections = new Map<string, Map<string, SourcePos>>();
  const parsed = new Map<string, { pd: PositionedDoc; first: number }>();
  let full: Locate | undefined;
  const chunk = (first: number, last: number): { pd: PositionedDoc; first: number } => {
    const id = `${first}:${last}`;
    let c = parsed.get(id);
    if (!c) {
      const end = last < lineStarts.length ? lineStarts[last]! : text.length;
      c = { pd: parseWithPositions(text.slice(lineStarts[first - 1]!, end)), first };
      parsed.set(id, c);
    }
    return c;
  };
  const shifted = (c: { pd: PositionedDoc; first: number }, path: readonly Seg[], onKey: boolean): SourcePos => {
    const p = locate(c.pd, path, onKey);
    return { line: p.line + c.first - 1, col: p.col };
  };
  return (path, onKey) => {
    const i = top.findIndex((t) => t.key === path[0]);
    if (i < 0) return path.length === 0 ? { line: 1, col: 1 } : (full ??= fullLocator(parseWithPositions(text)))(path, onKey);
    const sectionFirst = top[i]!.line;
    const sectionLast = i + 1 < top.length ? top[i + 1]!.line - 1 : lineStarts.length;
    if ((path[0] === 'jobs' || path[0] === 'services') && path.length >= 2) {
      let keys = sections.get(path[0]);
      if (!keys) sections.set(path[0], (keys = scanSectionKeys(text, path[0])));
      const at = keys.get(String(path[1]));
      if (at) {
        let next = sectionLast + 1;
        for (const p of keys.values()) if (p.line > at.line && p.line < next) next = p.line;
        return shifted(chunk(at.line, next - 1), path.slice(1), onKey);
      }
    }
    return shifted(chunk(sectionFirst, sectionLast), path, onKey);
  };
}


function keyOf(n: unknown): string | undefined {
  if (!isScalar(n)) return undefined;
  // The `yaml` package represents a `<<` merge key by a symbol.
  return typeof n.value === 'symbol' ? (n.value.description ?? '') : String(n.value);
}

/** Line and column of the node at `path` (its key when `onKey`); the deepest existing node when part of the path is missing. */
function locate(pd: PositionedDoc, path: readonly Seg[], onKey: boolean): SourcePos {
  const { doc, lineCounter } = pd;
  let node: unknown = doc.contents;
  let keyNode: unknown;
  let found = true;
  const deref = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const cur = deref(node);
    let next: unknown;
    let nextKey: unknown;
    if (isMap(cur)) {
      const maps = [cur];
      // `<<` merge keys: look into the merged mappings too.
      for (let k = 0; k < maps.length && next === undefined && nextKey === undefined; k++) {
        for (const pair of maps[k]!.items) {
          if (keyOf(pair.key) === String(seg)) {
            nextKey = pair.key;
            next = pair.value;
            break;
          }
        }
        if (nextKey === undefined) {
          for (const pair of maps[k]!.items) {
            if (keyOf(pair.key) !== '<<') continue;
            const v = deref(pair.value);
            for (const m of isSeq(v) ? v.items.map(deref) : [v]) if (isMap(m)) maps.push(m);
          }
        }
      }
    } else if (isSeq(cur) && typeof seg === 'number') {
      next = cur.items[seg];
    }
    if (next === undefined && nextKey === undefined) {
      found = false;
      break;
    }
    keyNode = nextKey;
    node = next;
  }
  let target: unknown = node;
  const emptyValue = (n: unknown): boolean => n === null || n === undefined || (isScalar(n) && n.value === null && (!n.range || n.range[0] === n.range[1]));
  if (found && keyNode !== undefined && (onKey || emptyValue(node))) target = keyNode;
  else if (!found && keyNode !== undefined && emptyValue(node)) target = keyNode;
  const range = (target as YNode | undefined)?.range ?? (keyNode as YNode | undefined)?.range;
  if (!range) return { line: 1, col: 1 };
  return lineCounter.linePos(range[0]);
}
