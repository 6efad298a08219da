// The Fuzzfile YAML dialects (v1 and v4): parsing, validation, and conversion into the
// normalized model. Pure (no I/O).
//
// Speed: the values come from js-yaml (fast); the `yaml` package, which knows every node's
// exact range, is only consulted when there is something to report, to turn the path of
// each problem (jobs.align.requires[1]) into a line and column.
import * as jsyaml from 'js-yaml';
import { load as loadYaml, CORE_SCHEMA, type Type as YamlType } from 'js-yaml';
import { dirname, resolve as resolvePath } from 'node:path';
import { didYouMean, suggestion } from './diagnostics.js';
import { findCycles } from './graph.js';
import { formatPath, setOwn } from './path.js';
import { Reader, describe, isObj, readSecret, readStepPolicy, short, type Obj, type Seg } from './reader.js';
import { portNumber, readProbe, readServiceNetwork, type NetworkDraft } from './service.js';
import { BUILTIN_STORAGE_CLASSES, type StorageClass } from './storage.js';
import { locate, parseWithPositions, syntaxDiagnostics, unquoteKey as unquote, type PositionedDoc } from './syntax.js';
import type {
  CpuAffinity,
  Dependency,
  DependencyCondition,
  Diagnostic,
  ImageSpec,
  JobSpec,
  MountSpec,
  MultinodeSpec,
  ReadinessProbe,
  SourcePos,
  TaskArraySpec,
  Workflow,
  WorkflowPolicy,
} from './types.js';
import { readVolumes } from './volumes.js';
import { JOB_NAME_RE } from './wfformat.js';
import { CHARS_HINT, MAX_TASK_INDEX, NAME_RULE, badName, badPath, findBadStrings } from './limits.js';

/** What a reader may be told besides the text. */
export interface ReadOptions {
  /** Storage classes this machine adds to the built-in `ephemeral` and `persistent`
   *  (from `$WARREN_HOME/storage-classes.yaml`, see readStorageClasses). */
  storageClasses?: Readonly<Record<string, StorageClass>>;
  /** Whether a secret (`secret://user/NAME`) is defined where the workflow will run: when given,
   *  an `image.decryptionSecret` naming an unknown secret is an error at its place in the file. */
  secretExists?: (ref: string) => boolean;
}

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

// ---- keys of each mapping --------------------------------------------------------------

// Both dialects (Fuzzball's published schema has one document for both; the dialects differ
// in mounts, volumes and `requires`, see docs/workflow-format.md#v1-and-v4-side-by-side).
const TOP_KEYS = ['version', 'name', 'description', 'annotations', 'files', 'defaults', 'volumes', 'jobs', 'services', 'policy'];
const RUN_KEYS = ['name', 'description', 'annotations', 'image', 'command', 'script', 'args', 'env', 'cwd', 'files', 'mounts'];
const JOB_KEYS_V1 = [...RUN_KEYS, 'requires', 'depends-on', 'resource', 'network', 'task-array', 'multinode', 'policy', 'estimate'];
const JOB_KEYS_V4 = JOB_KEYS_V1.filter((k) => k !== 'requires');
const SERVICE_KEYS_V1 = [...RUN_KEYS, 'requires', 'depends-on', 'resource', 'network', 'multinode', 'policy', 'persist', 'readiness-probe'];
const SERVICE_KEYS_V4 = SERVICE_KEYS_V1.filter((k) => k !== 'requires');
const SERVICE_ONLY_HINTS = {
  persist: '"persist" is a key of services: move this job under "services:"',
  'readiness-probe': '"readiness-probe" is a key of services: move this job under "services:"',
};
const PORTS_HINT = 'a job\'s network has isolated, expose-tcp and expose-udp; ports, endpoints and host belong to services (move this job under "services:")';
const IMAGE_KEYS = ['uri', 'secret', 'secrets', 'decryptionSecret', 'decryption-secret', 'binds', 'overlays'];
const RESOURCE_KEYS = ['cpu', 'memory', 'devices', 'exclusive', 'annotations'];
const CPU_KEYS = ['cores', 'affinity', 'threads', 'sockets'];
const MEMORY_KEYS = ['size', 'by-core', 'byCore'];
const TASK_ARRAY_KEYS = ['start', 'end', 'concurrency'];
const MULTINODE_KEYS = ['nodes', 'implementation', 'procs-per-node', 'procsPerNode'];
const JOB_NETWORK_KEYS = ['isolated', 'expose-tcp', 'expose-udp', 'exposeTcp', 'exposeUdp'];
const WF_POLICY_KEYS = ['deadline', 'budget', 'timeout', 'require-signed', 'trusted-keys'];
const MOUNT_KEYS_V1 = ['location', 'read-only'];
const MOUNT_KEYS_V4 = ['volume', 'read-only'];
const DEP_KEYS = ['name', 'status', 'description'];

const AFFINITIES: readonly CpuAffinity[] = ['core', 'socket', 'numa'];
/** As the schema lists them (`ompi`, also accepted, is openmpi). */
const MPI_IMPLS = ['openmpi', 'mpich', 'gasnet', 'generic'] as const;
const STATUSES: Record<string, DependencyCondition> = {
  SUCCEEDED: 'succeeded',
  // Fuzzball's FINISHED is its success state (its job states: FINISHED, FAILED, CANCELED), and
  // its catalog writes `status: FINISHED` for "after it succeeded". "Ended either way" is
  // Warren's ENDED.
  FINISHED: 'succeeded',
  ENDED: 'finished',
  FAILED: 'failed',
  RUNNING: 'running',
};

const NAME_HINT = NAME_RULE;
const IMAGE_HINT = 'use docker://REPO:TAG, oras://REPO:TAG, file:///path/to/image.sif (or a root file system directory), or an absolute path';

/** A job or service as read from its mapping, before `defaults.job` is merged under it. */
interface Draft {
  path: Seg[];
  /** `command` or `script` was written (even if invalid). */
  hasRun: boolean;
  description?: string;
  annotations?: Record<string, string>;
  image?: ImageSpec;
  command?: string[];
  script?: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Path in the job -> content (`file://NAME` already resolved). */
  files?: Map<string, string>;
  /** v1: keyed by volume name; v4: keyed by location. */
  mounts?: Map<string, MountSpec & { path: Seg[] }>;
  deps?: { job: string; status?: DependencyCondition; description?: string; path: Seg[] }[];
  cores?: number;
  affinity?: CpuAffinity;
  threads?: boolean;
  sockets?: number;
  memSize?: number;
  byCore?: boolean;
  byCorePath?: Seg[];
  devices?: Record<string, number>;
  exclusive?: boolean;
  resAnnotations?: Record<string, string>;
  network?: JobSpec['network'];
  taskArray?: TaskArraySpec;
  multinode?: MultinodeSpec;
  timeoutSec?: number;
  attempts?: number;
  backoffSec?: number;
  estimateSec?: number;
  // services
  serviceNetwork?: NetworkDraft;
  persist?: boolean;
  probe?: ReadinessProbe;
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
  const secrets = o.secrets === undefined ? undefined : r.strMap(o.secrets, [...path, 'secrets'], 'secret kind to secret');
  const dec = r.either(o, path, 'decryption-secret', 'decryptionSecret');
  const decryptionSecret = dec === undefined ? undefined : readSecret(r, dec.value, [...path, dec.key]);
  const binds = o.binds === undefined ? undefined : readBinds(r, o.binds, [...path, 'binds']);
  const overlays = o.overlays === undefined ? undefined : readOverlays(r, o.overlays, [...path, 'overlays']);
  if (decryptionSecret !== undefined && r.secretExists && !r.secretExists(decryptionSecret)) {
    r.error([...path, dec!.key], `secret "${decryptionSecret}" is not defined on this machine`, `put {"key": "-----BEGIN PRIVATE KEY-----..."} or {"passphrase": "..."} in $WARREN_HOME/secrets/${decryptionSecret.replace(/^secret:\/\/(?:user\/|account\/)?/, '')}.json (docs/encryption.md), or fix the name`);
  }
  if (uri === undefined) return undefined;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(uri);
  if (m ? !['docker', 'oras', 'file'].includes(m[1]!.toLowerCase()) || m[2] === '' : !uri.startsWith('/')) {
    r.error([...path, 'uri'], m ? `unsupported image URI scheme "${m[1]}://" in "${uri}"` : `invalid image URI "${uri}"`, IMAGE_HINT);
    return undefined;
  }
  return {
    uri,
    ...(secret !== undefined ? { secret } : {}),
    ...(secrets && Object.keys(secrets).length > 0 ? { secrets } : {}),
    ...(decryptionSecret !== undefined ? { decryptionSecret } : {}),
    ...(binds?.length ? { binds } : {}),
    ...(overlays?.length ? { overlays } : {}),
  };
}

const BIND_HINT = 'write each as "/host/path", "/host/path:/in/container" or "/host/path:/in/container:ro"';

/** `image.binds`: Apptainer's `--bind SRC[:DST[:ro|rw]]`, one per item, paths absolute. */
function readBinds(r: Reader, v: unknown, path: Seg[]): NonNullable<ImageSpec['binds']> | undefined {
  const items = r.list(v, path, 'list of binds');
  if (!items) return undefined;
  const out: NonNullable<ImageSpec['binds']> = [];
  items.forEach((item, i) => {
    const s = r.str(item, [...path, i]);
    if (s === undefined) return;
    const parts = s.split(':');
    const [src, dst, opt] = parts as [string, string | undefined, string | undefined];
    if (parts.length > 3 || parts.some((p) => p === '')) return r.error([...path, i], `"${s}" is not SRC[:DST[:ro|rw]]`, BIND_HINT);
    if (!src.startsWith('/') || (dst !== undefined && !dst.startsWith('/'))) return r.error([...path, i], `"${s}": both paths must be absolute`, BIND_HINT);
    if (opt !== undefined && opt !== 'ro' && opt !== 'rw') return r.error([...path, i], `"${s}": unknown bind option "${opt}"`, 'the options are ro (read-only) and rw (the default)');
    if ((dst ?? src).replace(/\/+$/, '') === '') return r.error([...path, i], `"${s}" binds over the container's root`, 'bind to a directory inside it, e.g. /mnt');
    out.push({ source: src, target: dst ?? src, readOnly: opt === 'ro' });
  });
  return out;
}

/** `image.overlays`: Apptainer's `--overlay DIR|IMAGE[:ro]`, paths absolute. */
function readOverlays(r: Reader, v: unknown, path: Seg[]): NonNullable<ImageSpec['overlays']> | undefined {
  const items = r.list(v, path, 'list of overlays');
  if (!items) return undefined;
  const out: NonNullable<ImageSpec['overlays']> = [];
  let writable = 0;
  items.forEach((item, i) => {
    const s = r.str(item, [...path, i]);
    if (s === undefined) return;
    const readOnly = s.endsWith(':ro');
    const p = readOnly ? s.slice(0, -3) : s.replace(/:rw$/, '');
    if (!p.startsWith('/') || p.includes(':')) return r.error([...path, i], `"${s}" is not /path[:ro]`, 'write an absolute directory (writable, keeps the changes) or a squashfs image with :ro');
    if (!readOnly && ++writable > 1) return r.error([...path, i], `"${s}": only one overlay may be writable`, 'add :ro to the others');
    out.push({ path: p, readOnly });
  });
  return out;
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
      if (cpu.sockets !== undefined) {
        const s = r.int(cpu.sockets, [...p, 'sockets'], 1);
        if (s !== undefined) d.sockets = s;
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
      const bc = r.either(mem, p, 'by-core', 'byCore');
      if (bc !== undefined) {
        const b = r.bool(bc.value, [...p, bc.key]);
        if (b !== undefined) {
          d.byCore = b;
          d.byCorePath = [...p, bc.key];
        }
      }
    }
  }
  if (o.devices !== undefined && o.devices !== null) {
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
  if (o.annotations !== undefined) {
    const a = r.strMap(o.annotations, [...path, 'annotations'], 'annotation name to value, e.g. {nvidia.com/gpu.model: A100}');
    if (a !== undefined) d.resAnnotations = a;
  }
}

function readMounts(r: Reader, v: unknown, path: Seg[], d: Draft): void {
  if (v === null) {
    d.mounts = new Map();
    return;
  }
  if (!isObj(v)) {
    r.typeError(path, 'a mapping', v);
    return;
  }
  const mounts = new Map<string, MountSpec & { path: Seg[] }>();
  for (const [key, spec] of Object.entries(v)) {
    const p = [...path, key];
    if (r.dialect === 'v1') {
      // v1: keyed by volume name: {data: {location: /data, read-only: true}}
      const o = r.obj(spec, p, MOUNT_KEYS_V1, 'a v1 mount (keyed by volume name)', { volume: 'v1 mounts are keyed by volume name: write VOLUME: {location: /path} (or set "version: v4" for mounts keyed by path)' });
      if (!o) continue;
      if (o.location === undefined) {
        r.error(p, 'missing required key "location"', key.startsWith('/') ? 'v1 mounts are keyed by volume name: write VOLUME: {location: /path} (or set "version: v4" for mounts keyed by path)' : `write ${key}: {location: /${key}}`, true);
        continue;
      }
      const location = absolutePath(r, o.location, [...p, 'location'], 'mount location');
      const readOnly = o['read-only'] === undefined ? false : r.bool(o['read-only'], [...p, 'read-only']);
      if (location !== undefined && readOnly !== undefined) mounts.set(key, { volume: key, location, readOnly, path: p });
    } else {
      // v4: keyed by path: {"/data": {volume: data, read-only: true}}, or "/data": data
      const badLoc = key.startsWith('/') ? badPath(key) : undefined;
      if (badLoc) {
        r.error(p, `mount location ${badLoc}`, 'Linux paths are at most 4095 bytes, each component at most 255', true);
        continue;
      }
      if (!key.startsWith('/')) {
        r.error(p, `mount location must be an absolute path, got "${key}"`, `v4 mounts are keyed by path: write "/${key}": {volume: ${key}} (or set "version: v1" for mounts keyed by volume name)`, true);
        continue;
      }
      if (typeof spec === 'string') {
        // The shorthand: "/data": data
        if (spec.trim() === '') r.error(p, 'expected a volume name, got an empty string', `write "${key}": VOLUME_NAME`);
        else mounts.set(key, { volume: spec, location: key, readOnly: false, path: p });
        continue;
      }
      if (spec === null) {
        r.error(p, 'expected a volume name or {volume: NAME, read-only: BOOL}, got nothing', `write "${key}": VOLUME_NAME`, true);
        continue;
      }
      const o = r.obj(spec, p, MOUNT_KEYS_V4, 'a v4 mount (keyed by path)', { location: 'v4 mounts are keyed by path: write "/path": {volume: VOLUME} (or set "version: v1" for mounts keyed by volume name)' });
      if (!o) continue;
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

/** `requires` (names only) or `depends-on` (names or {name, status, description}). */
function readDeps(r: Reader, v: unknown, path: Seg[], namesOnly: boolean): NonNullable<Draft['deps']> | undefined {
  if (v === null) return [];
  if (!Array.isArray(v)) {
    if (typeof v === 'string') r.error(path, `expected a list, got ${describe(v)}`, `write [${v}]`);
    else r.typeError(path, 'a list', v);
    return undefined;
  }
  const deps: NonNullable<Draft['deps']> = [];
  v.forEach((item, i) => {
    const p = [...path, i];
    if (typeof item === 'string') {
      if (item === '') r.error(p, 'must not be empty');
      else deps.push({ job: item, path: p });
      return;
    }
    if (namesOnly || !isObj(item)) {
      r.typeError(p, namesOnly ? 'a job name' : 'a job or service name, or {name: NAME, status: STATUS}', item);
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
        r.error([...p, 'status'], `expected one of ${names.join(', ')}, got ${got}${typeof o.status === 'string' ? suggestion(o.status, names) : ''}`, 'SUCCEEDED or FINISHED (Fuzzball\'s word for it): after it succeeded; ENDED: after it ended either way; FAILED: only if it failed; RUNNING: once a service is ready');
        return;
      }
    }
    const description = o.description === undefined ? undefined : r.str(o.description, [...p, 'description'], false);
    if (job !== undefined) deps.push({ job, path: [...p, 'name'], ...(status !== undefined ? { status } : {}), ...(description !== undefined ? { description } : {}) });
  });
  return deps;
}

/** A job's `files`: absolute path -> content, or `file://NAME` naming a top-level `files:` entry. */
function readJobFiles(r: Reader, v: unknown, path: Seg[]): Map<string, string> | undefined {
  if (v === null) return new Map();
  if (!isObj(v)) {
    r.typeError(path, 'a mapping of path in the job to its content (or file://NAME)', v);
    return undefined;
  }
  const out = new Map<string, string>();
  const names = Object.keys(r.files);
  for (const [key, val] of Object.entries(v)) {
    const p = [...path, key];
    if (!key.startsWith('/')) {
      r.error(p, `a file's path must be absolute, got "${short(key)}"`, `files are written at their path in the job: write /${key.replace(/^\.?\/*/, '')}`, true);
      continue;
    }
    const bad = badPath(key);
    if (bad) {
      r.error(p, `file path ${bad}`, 'Linux paths are at most 4095 bytes, each component at most 255', true);
      continue;
    }
    if (key.endsWith('/')) {
      r.error(p, `a file's path must not end with "/", got "${short(key)}"`, 'name the file itself, e.g. /etc/app/config.yaml', true);
      continue;
    }
    if (typeof val !== 'string') {
      r.typeError(p, 'the file content (a string) or file://NAME', val);
      continue;
    }
    if (val.startsWith('file://')) {
      const name = val.slice('file://'.length);
      if (!Object.hasOwn(r.files, name)) {
        r.error(p, `unknown file "${short(name)}"${suggestion(name, names)}`, names.length > 0 ? `files defined at the top level: ${names.slice(0, 12).join(', ')}` : `define it under the top-level "files:" key: files: {${name || 'NAME'}: CONTENT}`);
        continue;
      }
      out.set(key, r.files[name]!);
    } else out.set(key, val);
  }
  return out;
}

function readJobNetwork(r: Reader, v: unknown, path: Seg[]): JobSpec['network'] | undefined {
  const o = r.obj(v, path, JOB_NETWORK_KEYS, 'a job network', { ports: PORTS_HINT, endpoints: PORTS_HINT, host: PORTS_HINT });
  if (!o) return undefined;
  const isolated = o.isolated === undefined ? false : r.bool(o.isolated, [...path, 'isolated']);
  const ports = (kebab: string, camel: string): number[] | undefined => {
    const e = r.either(o, path, kebab, camel);
    if (!e) return [];
    const list = r.list(e.value, [...path, e.key], 'a list of port numbers');
    if (!list) return undefined;
    const out: number[] = [];
    let ok = true;
    list.forEach((x, i) => {
      const n = portNumber(r, x, [...path, e.key, i]);
      if (n === undefined) ok = false;
      else out.push(n);
    });
    return ok ? out : undefined;
  };
  const exposeTcp = ports('expose-tcp', 'exposeTcp');
  const exposeUdp = ports('expose-udp', 'exposeUdp');
  if (isolated === undefined || exposeTcp === undefined || exposeUdp === undefined) return undefined;
  return { isolated, exposeTcp, exposeUdp };
}

function readJob(r: Reader, v: unknown, path: Seg[], kind: 'job' | 'service' | 'defaults'): Draft | undefined {
  const v1 = r.dialect === 'v1';
  const keys = kind === 'service' ? (v1 ? SERVICE_KEYS_V1 : SERVICE_KEYS_V4) : v1 ? JOB_KEYS_V1 : JOB_KEYS_V4;
  if (v === null && kind !== 'defaults') {
    r.error(path, `${kind} "${path[1]}" is empty`, 'add command: [PROGRAM, ARG, ...] or a script: | block starting with #!/bin/sh', true);
    return undefined;
  }
  const o = r.obj(v, path, keys, kind === 'service' ? 'a service' : kind === 'defaults' ? 'defaults.job' : 'a job', kind === 'service' ? {} : SERVICE_ONLY_HINTS);
  if (!o) return undefined;
  // A misspelt "comand" is reported as an unknown key; do not also say the command is missing.
  const misspeltRun = Object.keys(o).some((k) => !keys.includes(k) && ['command', 'script'].includes(didYouMean(k, keys) ?? ''));
  const d: Draft = { path, hasRun: o.command !== undefined || o.script !== undefined || misspeltRun };
  const at = (k: string): Seg[] => [...path, k];
  if (o.name !== undefined) {
    // Fuzzball ignores it in favour of the key.
    const n = r.str(o.name, at('name'));
    if (n !== undefined && kind !== 'defaults' && n !== path[1]) {
      r.warn(at('name'), `"name" is ignored: this ${kind} is "${String(path[1])}" (its key)`, `remove name: ${short(n)}, or rename the key`);
    }
  }
  if (o.description !== undefined) d.description = r.str(o.description, at('description'), false);
  if (o.annotations !== undefined) d.annotations = r.strMap(o.annotations, at('annotations'), 'annotation name to value');
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
  if (o.args !== undefined) d.args = o.args === null ? [] : r.words(o.args, at('args'), 'args');
  if (o.env !== undefined) d.env = r.env(o.env, at('env'));
  if (o.cwd !== undefined) d.cwd = absolutePath(r, o.cwd, at('cwd'), 'cwd');
  if (o.files !== undefined) d.files = readJobFiles(r, o.files, at('files'));
  if (o.mounts !== undefined) readMounts(r, o.mounts, at('mounts'), d);
  // v1 has both `requires` (names that must succeed) and `depends-on`; v4 only `depends-on`.
  // (the other dialect's spelling was reported as an unknown key)
  const deps: NonNullable<Draft['deps']> = [];
  let depsOk = true;
  for (const k of v1 ? ['requires', 'depends-on'] : ['depends-on']) {
    if (o[k] === undefined) continue;
    const x = readDeps(r, o[k], at(k), k === 'requires');
    if (x) deps.push(...x);
    else depsOk = false;
  }
  if (depsOk && (o.requires !== undefined || o['depends-on'] !== undefined)) d.deps = deps;
  if (o.resource !== undefined) readResource(r, o.resource, at('resource'), d);
  if (o.network !== undefined) {
    if (kind === 'service') d.serviceNetwork = readServiceNetwork(r, o.network, at('network'));
    else d.network = readJobNetwork(r, o.network, at('network'));
  }
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
      const impl = mn.implementation === undefined ? 'openmpi' : typeof mn.implementation === 'string' && mn.implementation.toLowerCase() === 'ompi' ? 'openmpi' : r.choice(mn.implementation, [...p, 'implementation'], MPI_IMPLS);
      const ppn = r.either(mn, p, 'procs-per-node', 'procsPerNode');
      const procsPerNode = ppn === undefined ? undefined : r.int(ppn.value, [...p, ppn.key], 1);
      // GASNet and generic are part of the format but Warren cannot launch them yet: refused, not run as one process.
      if (impl === 'gasnet' || impl === 'generic') {
        r.error([...p, 'implementation'], `implementation "${impl}" is not supported by Warren yet`, impl === 'gasnet' ? 'use implementation: openmpi or implementation: mpich (GASNet programs built on an MPI conduit run with those)' : 'use implementation: openmpi or implementation: mpich, whose launchers Warren runs');
      } else if (nodes !== undefined && impl !== undefined && (ppn === undefined || procsPerNode !== undefined)) {
        d.multinode = { nodes, implementation: impl, ...(procsPerNode !== undefined ? { procsPerNode } : {}) };
      }
    }
  }
  if (o.policy !== undefined) {
    const pol = readStepPolicy(r, o.policy, at('policy'), kind === 'service' ? 'a service policy' : 'a job policy', true);
    if (pol.timeoutSec !== undefined) d.timeoutSec = pol.timeoutSec;
    if (pol.attempts !== undefined) d.attempts = pol.attempts;
    if (pol.backoffSec !== undefined) d.backoffSec = pol.backoffSec;
  }
  if (o.estimate !== undefined) d.estimateSec = r.duration(o.estimate, at('estimate'), false);
  if (o.persist !== undefined) d.persist = r.bool(o.persist, at('persist'));
  if (o['readiness-probe'] !== undefined) d.probe = readProbe(r, o['readiness-probe'], at('readiness-probe'), d.serviceNetwork?.ports ?? []);
  return d;
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
    // Also written as a job's is (`timeout: {execute: 2h}`), the way Fuzzball files write policies.
    const t = isObj(o.timeout)
      ? r.obj(o.timeout, ['policy', 'timeout'], ['execute'], 'policy.timeout') && o.timeout.execute !== undefined
        ? r.duration(o.timeout.execute, ['policy', 'timeout', 'execute'], true)
        : undefined
      : r.duration(o.timeout, ['policy', 'timeout'], true);
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

/** Merge `defaults.job` under a job: the job's own settings win; env, devices, mounts, files and annotations merge key-wise. */
function mergeDraft(def: Draft | undefined, job: Draft): Draft {
  if (!def) return job;
  const pick = <K extends keyof Draft>(k: K): Draft[K] => (job[k] !== undefined ? job[k] : def[k]);
  const both = <T extends object>(a: T | undefined, b: T | undefined): T | undefined => (a && b ? { ...a, ...b } : (b ?? a));
  const m: Draft = {
    path: job.path,
    hasRun: def.hasRun || job.hasRun,
    description: job.description,
    annotations: both(def.annotations, job.annotations),
    image: pick('image'),
    command: job.hasRun ? job.command : def.command,
    script: job.hasRun ? job.script : def.script,
    args: pick('args'),
    env: both(def.env, job.env),
    cwd: pick('cwd'),
    files: def.files && job.files ? new Map([...def.files, ...job.files]) : pick('files'),
    mounts: def.mounts && job.mounts ? new Map([...def.mounts, ...job.mounts]) : pick('mounts'),
    deps: def.deps ? [...def.deps.filter((x) => x.job !== job.path[1] && !job.deps?.some((y) => y.job === x.job)), ...(job.deps ?? [])] : job.deps,
    cores: pick('cores'),
    affinity: pick('affinity'),
    threads: pick('threads'),
    sockets: pick('sockets'),
    memSize: pick('memSize'),
    byCore: pick('byCore'),
    byCorePath: pick('byCorePath'),
    devices: both(def.devices, job.devices),
    exclusive: pick('exclusive'),
    resAnnotations: both(def.resAnnotations, job.resAnnotations),
    network: pick('network'),
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
export function parseFuzzfile(text: string, file: string, label: 'YAML' | 'JSON' = 'YAML', opts: ReadOptions = {}): { workflow?: Workflow; diagnostics: Diagnostic[] } {
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
  const workflow = check(r, root, text, file, opts);
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


/** Top-level `files:` NAME -> content. */
function readTopFiles(r: Reader, v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v === null) return out;
  if (!isObj(v)) {
    r.typeError(['files'], 'a mapping of file name to its content', v);
    return out;
  }
  for (const [name, content] of Object.entries(v)) {
    const p: Seg[] = ['files', name];
    if (name === '' || name.startsWith('/') || name.split('/').includes('..')) {
      r.error(p, name === '' ? 'a file name must not be empty' : `invalid file name "${short(name)}"`, 'a file of "files:" has a name (no leading "/", no ".."), which jobs and ingress refer to as file://NAME', true);
      continue;
    }
    if (typeof content === 'string') setOwn(out, name, content);
    else if (content === null) setOwn(out, name, '');
    else r.typeError(p, 'the file\'s content (a string; write a block with "|" for several lines)', content);
  }
  return out;
}

function check(r: Reader, root: unknown, text: string, file: string, opts: ReadOptions): Workflow | undefined {
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
  r.dialect = root.version === 'v4' || (root.version !== 'v1' && (root.services !== undefined || /^\s+depends-on\s*:/m.test(text))) ? 'v4' : 'v1';
  // `x-...` keys are ignored (a place for YAML anchors shared by several jobs).
  const top = Object.fromEntries(Object.entries(root).filter(([k]) => !k.startsWith('x-')));
  r.obj(top, [], TOP_KEYS, 'the top level');

  let name = basenameNoExt(file);
  if (root.name !== undefined) {
    const n = r.str(root.name, ['name']);
    if (n !== undefined) name = n;
  }
  const description = root.description === undefined ? undefined : r.str(root.description, ['description'], false);
  const annotations = root.annotations === undefined ? undefined : r.strMap(root.annotations, ['annotations'], 'annotation name to value');
  if (opts.secretExists) r.secretExists = opts.secretExists;
  r.files = root.files === undefined ? {} : readTopFiles(r, root.files);
  const baseDir = dirname(resolvePath(file));
  const classes = { ...BUILTIN_STORAGE_CLASSES, ...(opts.storageClasses ?? {}) };
  const volumes = root.volumes === undefined ? {} : readVolumes(r, root.volumes, baseDir, classes);
  const policy = root.policy === undefined ? {} : readPolicy(r, root.policy);

  let defaults: Draft | undefined;
  if (root.defaults !== undefined && root.defaults !== null) {
    const d = r.obj(root.defaults, ['defaults'], ['job'], 'defaults');
    if (d && d.job !== undefined && d.job !== null) defaults = readJob(r, d.job, ['defaults', 'job'], 'defaults');
  }

  // Jobs and services, in file order, one namespace.
  const drafts = new Map<string, { draft: Draft; service: boolean }>();
  const sections = Object.keys(root).filter((k) => k === 'jobs' || k === 'services');
  const count = (k: string): number => (isObj(root[k]) ? Object.keys(root[k] as Obj).length : 0);
  if (root.jobs === undefined && root.services === undefined) {
    r.error([], 'missing required key "jobs"', 'add a "jobs:" mapping of job name to job (see examples/hello.yaml), or "services:"');
  } else if (count('jobs') + count('services') === 0 && [root.jobs, root.services].every((x) => x === undefined || x === null || isObj(x))) {
    r.error([root.jobs !== undefined ? 'jobs' : 'services'], 'the workflow has no jobs', 'add at least one job under "jobs:" (or a service under "services:")', true);
  }
  for (const section of sections) {
    const service = section === 'services';
    const v = root[section];
    if (v === null) continue;
    if (!isObj(v)) {
      r.typeError([section], `a mapping of ${service ? 'service' : 'job'} name to ${service ? 'service' : 'job'}`, v);
      continue;
    }
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
  const hasServices = names.some(isService);
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
        const what = hasServices || r.dialect === 'v4' ? 'job or service' : 'job';
        r.error(dep.path, `unknown ${what} "${dep.job}"${suggestion(dep.job, names)}`, names.length > 0 && names.length <= 12 ? `jobs${hasServices || r.dialect === 'v4' ? ' and services' : ''} in this file: ${names.join(', ')}` : undefined);
      } else if (dep.status === 'running' && !isService(dep.job)) {
        r.error(dep.path.at(-1) === 'name' ? [...dep.path.slice(0, -1), 'status'] : dep.path, `status RUNNING is only valid when depending on a service, and "${dep.job}" is a job`, 'use SUCCEEDED (or FINISHED), ENDED or FAILED for a job');
      }
    }
  };
  if (defaults) {
    checkMounts(defaults);
    checkDeps(defaults, undefined);
  }
  // Two services (or one twice) on one port and protocol.
  const portOwner = new Map<string, { service: string; where: string }>();
  for (const [svc, { draft, service }] of drafts) {
    if (!service) continue;
    for (const port of draft.serviceNetwork?.ports ?? []) {
      const key = `${port.port}/${port.protocol}`;
      const where = formatPath(port.path.slice(0, -1));
      const other = portOwner.get(key);
      if (other) {
        r.error(port.path, other.service === svc ? `port ${key} is declared twice in this service (also at ${other.where})` : `port ${key} is already used by service "${other.service}" (${other.where})`, 'two services cannot listen on one port: give each its own port number');
      } else portOwner.set(key, { service: svc, where });
    }
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
    // Depending on a service means: once it is ready (RUNNING), unless a status says otherwise.
    const requires: Dependency[] = (d.deps ?? [])
      .filter((x) => x.job !== jobName)
      .map((x) => ({ job: x.job, condition: x.status ?? (isService(x.job) ? 'running' : 'succeeded'), ...(x.description !== undefined ? { description: x.description } : {}) }));
    const pos = positions.get(jobName);
    const net = d.serviceNetwork;
    jobs[jobName] = {
      name: jobName,
      service,
      ...(service
        ? {
            serviceSpec: {
              ports: (net?.ports ?? []).map(({ name: n, port, protocol }) => ({ name: n, port, protocol })),
              endpoints: net?.endpoints ?? [],
              persist: d.persist ?? false,
              ...(d.probe ? { probe: d.probe } : {}),
              ...(net?.host ? { host: true } : {}),
            },
          }
        : {}),
      ...(d.network ? { network: d.network } : {}),
      ...(d.files && d.files.size > 0 ? { files: Object.fromEntries(d.files) } : {}),
      ...(d.annotations && Object.keys(d.annotations).length > 0 ? { annotations: d.annotations } : {}),
      ...(d.description !== undefined ? { description: d.description } : {}),
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
        ...(d.sockets !== undefined ? { sockets: d.sockets } : {}),
        ...(d.resAnnotations && Object.keys(d.resAnnotations).length > 0 ? { annotations: d.resAnnotations } : {}),
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
    const p = first.path;
    const raw = isObj(root[String(p[0])]) ? (root[String(p[0])] as Obj)[String(p[1])] : undefined;
    const key = isObj(raw) && raw.requires !== undefined && r.dialect === 'v1' ? 'requires' : 'depends-on';
    r.error([...p, key], `dependency cycle: ${cyc.join(' -> ')}`, 'a workflow must be acyclic: remove one of these requirements', true);
  }
  if (r.hasErrors()) return undefined;
  return {
    name,
    dialect: r.dialect,
    file,
    volumes,
    jobs,
    policy,
    ...(Object.keys(r.files).length > 0 ? { inlineFiles: { ...r.files } } : {}),
    ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
    ...(description !== undefined ? { description } : {}),
  };
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
