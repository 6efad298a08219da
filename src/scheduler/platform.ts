// The platform model: sites (fixed clusters and cloud regions), links between them and
// where data lives. `parsePlatform` reads the YAML format documented in docs/platform.md
// and reports every mistake as a WarrenError PLAN_* naming the key and its line:col.
// Pure: no I/O (the caller reads the file).
import { LineCounter, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Node as YamlNode, Pair, YAMLMap } from 'yaml';
import { EXIT, WarrenError, parseBandwidth, parseDuration, parseSize, type ErrorCode } from '../common/index.js';

/** A fixed cluster: `nodes` identical nodes. Capacity is planned per site (all cores together). */
export interface ClusterSite {
  kind: 'cluster';
  name: string;
  nodes: number;
  /** Cores per node. */
  cores: number;
  /** Memory per node in bytes (undefined: not limited). */
  memoryBytes?: number;
  /** GPUs per node. */
  gpus: number;
  /** Speed of a core relative to the reference core (runtime = estimate / speed). */
  speed: number;
  /** Price per core-hour (0 for a cluster you own). */
  price: number;
}

export interface InstanceType {
  name: string;
  cores: number;
  memoryBytes?: number;
  gpus: number;
  speed: number;
  /** On-demand price per instance-hour. */
  price: number;
  /** Price per instance-hour when spot instances are allowed. */
  spotPrice?: number;
  /** Most instances of this type running at once. */
  max: number;
  /** Seconds from the request until the instance can run work (billed). */
  bootSec: number;
}

/** A cloud region: instances are started when the plan needs them and billed while they live. */
export interface CloudSite {
  kind: 'cloud';
  name: string;
  instanceTypes: Record<string, InstanceType>;
  /** Billing: rounded up to a multiple of `granularitySec`, at least `minimumSec` per instance. */
  billing: { granularitySec: number; minimumSec: number };
}

/**
 * A Slurm cluster that exists already (issue 14; src/sites/slurm runs it). Planned like a cloud
 * region whose one instance type is the pilot (pilot mode: up to `maxPilots` of `pilot.cores`,
 * each after `queueEstimateSec` in Slurm's queue) or like a fixed cluster of `maxPilots` ×
 * `pilot.cores` (direct mode: each job a Slurm job).
 */
export interface SlurmSite {
  kind: 'slurm';
  name: string;
  mode: 'pilot' | 'direct';
  partition: string;
  account?: string;
  qos?: string;
  /** Absolute path of sbatch (the other commands beside it); or `ssh` a login node. */
  sbatch?: string;
  ssh?: string;
  maxPilots: number;
  pilot: { cores: number; memoryBytes?: number; walltimeSec: number; marginSec: number; idleExitSec: number; queueWaitSec: number };
  /** Environment of Slurm's commands (SLURM_CONF...). */
  env: Record<string, string>;
  /** How a Slurm node starts warren (shell words). */
  warren?: string;
  speed: number;
  /** Price per core-hour (0 for the centre's own). */
  price: number;
  /** The planner's guess of a pilot's wait in the queue (its boot time). */
  queueEstimateSec: number;
}

export type Site = ClusterSite | CloudSite | SlurmSite;

export interface Link {
  from: string;
  to: string;
  /** Bytes per second. */
  bandwidth: number;
  latencySec: number;
  /** Charged per GB (1e9 bytes) moved from `from` to `to`. */
  pricePerGB: number;
}

/** The best way to move data between two sites (possibly through others). */
export interface Route {
  from: string;
  to: string;
  /** Sites passed through, from `from` to `to` inclusive. */
  hops: string[];
  /** The narrowest link on the way, bytes per second. */
  bandwidth: number;
  latencySec: number;
  pricePerGB: number;
}

export interface DataLocation {
  /** URI or file-id prefix, e.g. `s3://genomes/`. */
  prefix: string;
  site: string;
}

export interface Platform {
  /** The file it was read from (for messages). */
  file: string;
  currency: string;
  /** Sites by name, in file order. */
  sites: Record<string, Site>;
  links: Link[];
  data: {
    /** Site of files no prefix matches (e.g. the initial inputs of a WfFormat workflow). */
    default: string;
    /** Longest matching prefix wins. */
    locations: DataLocation[];
  };
}

type Path = (string | number)[];

class Reader {
  readonly lc = new LineCounter();
  constructor(readonly file: string) {}

  pos(node: YamlNode | Pair | null | undefined): string {
    const n = node as { range?: [number, number, number] } | null | undefined;
    if (!n || !n.range) return `${this.file}`;
    const { line, col } = this.lc.linePos(n.range[0]);
    return `${this.file}:${line}:${col}`;
  }

  fail(code: ErrorCode, node: YamlNode | Pair | null | undefined, message: string, hint: string): never {
    throw new WarrenError(code, `${this.pos(node)}: ${message}`, { hint });
  }
}

const pathStr = (p: Path): string => p.map((x, i) => (typeof x === 'number' ? `[${x}]` : i === 0 ? x : `.${x}`)).join('');

function keyOf(pair: Pair): string {
  const k = pair.key;
  return isScalar(k) ? String(k.value) : String(k);
}

/** The pairs of a mapping, rejecting keys not in `allowed`. */
function entries(r: Reader, node: unknown, path: Path, allowed?: readonly string[]): Map<string, Pair> {
  if (!isMap(node)) r.fail('PLAN_PLATFORM_INVALID', node as YamlNode, `${pathStr(path)} must be a mapping`, 'see docs/platform.md for the format');
  const out = new Map<string, Pair>();
  for (const pair of (node as YAMLMap).items) {
    const k = keyOf(pair);
    if (allowed && !allowed.includes(k)) {
      r.fail('PLAN_PLATFORM_INVALID', pair.key as YamlNode, `unknown key "${k}" in ${pathStr(path) || 'the platform'}`, `allowed keys here: ${allowed.join(', ')}`);
    }
    if (out.has(k)) r.fail('PLAN_PLATFORM_INVALID', pair.key as YamlNode, `duplicate key "${k}" in ${pathStr(path) || 'the platform'}`, 'each key may appear once');
    out.set(k, pair);
  }
  return out;
}

function scalar(r: Reader, pair: Pair, path: Path): unknown {
  const v = pair.value;
  if (!isScalar(v)) r.fail('PLAN_PLATFORM_INVALID', (v ?? pair.key) as YamlNode, `${pathStr(path)} must be a single value`, 'see docs/platform.md for the format');
  return (v as { value: unknown }).value;
}

function str(r: Reader, pair: Pair, path: Path): string {
  const v = scalar(r, pair, path);
  if (typeof v !== 'string' || v === '') r.fail('PLAN_PLATFORM_INVALID', pair.value as YamlNode, `${pathStr(path)} must be a non-empty string`, 'quote it if needed');
  return v as string;
}

function number(r: Reader, pair: Pair, path: Path, what: { int?: boolean; min?: number; positive?: boolean; price?: boolean }): number {
  const v = scalar(r, pair, path);
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    r.fail('PLAN_PLATFORM_INVALID', pair.value as YamlNode, `${pathStr(path)} must be a number, got ${JSON.stringify(v)}`, 'write a plain number, e.g. 4 or 0.5');
  }
  const n = v as number;
  if (what.price && n < 0) {
    r.fail('PLAN_NEGATIVE_PRICE', pair.value as YamlNode, `${pathStr(path)} is negative (${n})`, 'prices are >= 0; write 0 for resources you do not pay for');
  }
  if (what.int && !Number.isInteger(n)) r.fail('PLAN_PLATFORM_INVALID', pair.value as YamlNode, `${pathStr(path)} must be a whole number, got ${n}`, 'write an integer');
  if (what.positive && n <= 0) r.fail('PLAN_PLATFORM_INVALID', pair.value as YamlNode, `${pathStr(path)} must be > 0, got ${n}`, 'write a positive number');
  if (what.min !== undefined && n < what.min) r.fail('PLAN_PLATFORM_INVALID', pair.value as YamlNode, `${pathStr(path)} must be >= ${what.min}, got ${n}`, `write a number >= ${what.min}`);
  return n;
}

function unit(r: Reader, pair: Pair, path: Path, parse: (v: unknown) => number | undefined, example: string): number {
  const v = scalar(r, pair, path);
  const n = parse(v);
  if (n === undefined) r.fail('PLAN_BAD_VALUE', pair.value as YamlNode, `${pathStr(path)}: cannot read ${JSON.stringify(v)}`, `write it like ${example}`);
  return n as number;
}

function required(r: Reader, m: Map<string, Pair>, key: string, node: unknown, path: Path): Pair {
  const p = m.get(key);
  if (!p) r.fail('PLAN_PLATFORM_INVALID', node as YamlNode, `${pathStr(path)} needs "${key}"`, 'see docs/platform.md for the keys of each section');
  return p as Pair;
}

const SITE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function readCluster(r: Reader, name: string, node: unknown, m: Map<string, Pair>): ClusterSite {
  const p: Path = ['sites', name];
  entries(r, node, p, ['kind', 'nodes', 'cores', 'memory', 'gpus', 'speed', 'price']);
  const site: ClusterSite = {
    kind: 'cluster',
    name,
    nodes: number(r, required(r, m, 'nodes', node, p), [...p, 'nodes'], { int: true, min: 1 }),
    cores: number(r, required(r, m, 'cores', node, p), [...p, 'cores'], { int: true, min: 1 }),
    gpus: m.has('gpus') ? number(r, m.get('gpus')!, [...p, 'gpus'], { int: true, min: 0 }) : 0,
    speed: m.has('speed') ? number(r, m.get('speed')!, [...p, 'speed'], { positive: true }) : 1,
    price: m.has('price') ? number(r, m.get('price')!, [...p, 'price'], { price: true }) : 0,
  };
  if (m.has('memory')) site.memoryBytes = unit(r, m.get('memory')!, [...p, 'memory'], parseSize, '192GiB');
  return site;
}

function readCloud(r: Reader, name: string, node: unknown, m: Map<string, Pair>): CloudSite {
  const p: Path = ['sites', name];
  entries(r, node, p, ['kind', 'instance-types', 'billing']);
  const itPair = required(r, m, 'instance-types', node, p);
  const itPath: Path = [...p, 'instance-types'];
  const types: Record<string, InstanceType> = {};
  for (const [tn, tp] of entries(r, itPair.value, itPath)) {
    const tpath: Path = [...itPath, tn];
    const tm = entries(r, tp.value, tpath, ['cores', 'memory', 'gpus', 'speed', 'price', 'spot-price', 'max', 'boot']);
    const it: InstanceType = {
      name: tn,
      cores: number(r, required(r, tm, 'cores', tp.value, tpath), [...tpath, 'cores'], { int: true, min: 1 }),
      gpus: tm.has('gpus') ? number(r, tm.get('gpus')!, [...tpath, 'gpus'], { int: true, min: 0 }) : 0,
      speed: tm.has('speed') ? number(r, tm.get('speed')!, [...tpath, 'speed'], { positive: true }) : 1,
      price: number(r, required(r, tm, 'price', tp.value, tpath), [...tpath, 'price'], { price: true }),
      max: number(r, required(r, tm, 'max', tp.value, tpath), [...tpath, 'max'], { int: true, min: 1 }),
      bootSec: tm.has('boot') ? unit(r, tm.get('boot')!, [...tpath, 'boot'], parseDuration, '90s or 2m') : 0,
    };
    if (tm.has('memory')) it.memoryBytes = unit(r, tm.get('memory')!, [...tpath, 'memory'], parseSize, '64GiB');
    if (tm.has('spot-price')) it.spotPrice = number(r, tm.get('spot-price')!, [...tpath, 'spot-price'], { price: true });
    types[tn] = it;
  }
  if (Object.keys(types).length === 0) r.fail('PLAN_PLATFORM_INVALID', itPair.value as YamlNode, `${pathStr(itPath)} is empty`, 'list at least one instance type');
  const billing = { granularitySec: 1, minimumSec: 60 };
  const b = m.get('billing');
  if (b) {
    const bm = entries(r, b.value, [...p, 'billing'], ['granularity', 'minimum']);
    if (bm.has('granularity')) {
      billing.granularitySec = unit(r, bm.get('granularity')!, [...p, 'billing', 'granularity'], parseDuration, '1s or 1h');
      if (billing.granularitySec <= 0) r.fail('PLAN_BAD_VALUE', bm.get('granularity')!.value as YamlNode, 'billing granularity must be > 0', 'write e.g. 1s (per second) or 1h (per hour)');
    }
    if (bm.has('minimum')) billing.minimumSec = unit(r, bm.get('minimum')!, [...p, 'billing', 'minimum'], parseDuration, '60s');
  }
  return { kind: 'cloud', name, instanceTypes: types, billing };
}

function readSlurm(r: Reader, name: string, node: unknown, m: Map<string, Pair>): SlurmSite {
  const p: Path = ['sites', name];
  entries(r, node, p, ['kind', 'mode', 'partition', 'account', 'qos', 'sbatch', 'ssh', 'max-pilots', 'pilot', 'env', 'warren', 'speed', 'price', 'queue-estimate']);
  const word = (k: string): string | undefined => {
    if (!m.has(k)) return undefined;
    const v = str(r, m.get(k)!, [...p, k]);
    if (!/^[A-Za-z0-9_.:+@/-]{1,255}$/.test(v)) r.fail('PLAN_BAD_VALUE', m.get(k)!.value as YamlNode, `${pathStr([...p, k])}: "${v}" is not a ${k === 'ssh' ? 'host' : k === 'sbatch' ? 'path' : 'Slurm name'}`, k === 'ssh' ? 'e.g. ssh: login.hpc.example.org' : k === 'sbatch' ? 'e.g. sbatch: /usr/bin/sbatch' : `give the ${k} as sinfo/sacctmgr show it`);
    return v;
  };
  const mode = m.has('mode') ? str(r, m.get('mode')!, [...p, 'mode']) : 'pilot';
  if (mode !== 'pilot' && mode !== 'direct') r.fail('PLAN_BAD_VALUE', m.get('mode')!.value as YamlNode, `${pathStr([...p, 'mode'])} must be "pilot" or "direct", got "${mode}"`, 'pilot: Warren agents run as Slurm jobs; direct: each Warren job is a Slurm job');
  const sbatch = word('sbatch');
  if (sbatch !== undefined && !sbatch.startsWith('/')) r.fail('PLAN_BAD_VALUE', m.get('sbatch')!.value as YamlNode, `${pathStr([...p, 'sbatch'])} must be an absolute path, not "${sbatch}"`, 'e.g. sbatch: /usr/bin/sbatch (or leave it out: sbatch on PATH)');
  const pilot = { cores: 1, walltimeSec: 3600, marginSec: 120, idleExitSec: 60, queueWaitSec: 3600 } as SlurmSite['pilot'];
  const pp = m.get('pilot');
  if (pp) {
    const pm = entries(r, pp.value, [...p, 'pilot'], ['cores', 'memory', 'walltime', 'margin', 'idle-exit', 'queue-wait']);
    const q: Path = [...p, 'pilot'];
    if (pm.has('cores')) pilot.cores = number(r, pm.get('cores')!, [...q, 'cores'], { int: true, min: 1 });
    if (pm.has('memory')) pilot.memoryBytes = unit(r, pm.get('memory')!, [...q, 'memory'], parseSize, '64GiB');
    const dur = (k: string, key: 'walltimeSec' | 'marginSec' | 'idleExitSec' | 'queueWaitSec', ex: string) => {
      if (pm.has(k)) pilot[key] = unit(r, pm.get(k)!, [...q, k], parseDuration, ex);
    };
    dur('walltime', 'walltimeSec', '4h');
    dur('margin', 'marginSec', '5m');
    dur('idle-exit', 'idleExitSec', '60s');
    dur('queue-wait', 'queueWaitSec', '1h');
    if (pilot.walltimeSec < 60) r.fail('PLAN_BAD_VALUE', pm.get('walltime')!.value as YamlNode, `${pathStr([...q, 'walltime'])} must be at least 1m (Slurm counts minutes)`, 'e.g. walltime: 4h');
    if (pilot.marginSec >= pilot.walltimeSec) r.fail('PLAN_BAD_VALUE', (pm.get('margin') ?? pm.get('walltime'))!.value as YamlNode, `${pathStr([...q, 'margin'])} (${pilot.marginSec}s) must be below the walltime (${pilot.walltimeSec}s)`, 'e.g. walltime: 4h, margin: 5m');
  }
  const env: Record<string, string> = {};
  const ep = m.get('env');
  if (ep) {
    for (const [k, kp] of entries(r, ep.value, [...p, 'env'])) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) r.fail('PLAN_BAD_VALUE', kp.key as YamlNode, `${pathStr([...p, 'env'])}: "${k}" is not a variable name`, 'e.g. env: {SLURM_CONF: /etc/slurm/slurm.conf}');
      env[k] = String(scalar(r, kp, [...p, 'env', k]));
    }
  }
  const site: SlurmSite = {
    kind: 'slurm',
    name,
    mode,
    partition: word('partition') ?? r.fail('PLAN_PLATFORM_INVALID', node as YamlNode, `${pathStr(p)} needs "partition"`, 'e.g. partition: batch (`sinfo -s` lists them)'),
    maxPilots: m.has('max-pilots') ? number(r, m.get('max-pilots')!, [...p, 'max-pilots'], { int: true, min: 1 }) : 10,
    pilot,
    env,
    speed: m.has('speed') ? number(r, m.get('speed')!, [...p, 'speed'], { positive: true }) : 1,
    price: m.has('price') ? number(r, m.get('price')!, [...p, 'price'], { price: true }) : 0,
    queueEstimateSec: m.has('queue-estimate') ? unit(r, m.get('queue-estimate')!, [...p, 'queue-estimate'], parseDuration, '2m') : 60,
  };
  for (const k of ['account', 'qos', 'ssh'] as const) {
    const v = word(k);
    if (v !== undefined) site[k] = v;
  }
  if (sbatch !== undefined) site.sbatch = sbatch;
  if (m.has('warren')) site.warren = str(r, m.get('warren')!, [...p, 'warren']);
  return site;
}

/** How a file of sites to add to an existing platform is read (`warren site add`). */
export interface ParsePlatformOptions {
  /** Sites defined elsewhere that links and data may name. */
  otherSites?: readonly string[];
  /** `data:` may be left out (data.default is then the file's first site). */
  dataOptional?: boolean;
}

/** Parse a platform file (YAML). Throws WarrenError PLAN_* (exit code 2) naming the key and line:col. */
export function parsePlatform(text: string, file: string, opts: ParsePlatformOptions = {}): Platform {
  const r = new Reader(file);
  const doc = parseDocument(text, { lineCounter: r.lc, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const lp = r.lc.linePos(e.pos[0]);
    const where = `${file}:${lp.line}:${lp.col}`;
    throw new WarrenError('PLAN_PLATFORM_YAML', `${where}: ${e.message.split('\n')[0]}`, {
      hint: 'fix the YAML syntax (indentation, colons, quotes) at that place',
    });
  }
  const root = doc.contents;
  if (root === null || root === undefined) {
    throw new WarrenError('PLAN_PLATFORM_INVALID', `${file}: the platform file is empty`, { hint: 'a platform needs at least `sites:` and `data:`; see docs/platform.md' });
  }
  const top = entries(r, root, [], ['currency', 'sites', 'links', 'data']);
  const currency = top.has('currency') ? str(r, top.get('currency')!, ['currency']) : 'USD';

  // Sites.
  const sitesPair = required(r, top, 'sites', root, []);
  const sites: Record<string, Site> = {};
  for (const [name, sp] of entries(r, sitesPair.value, ['sites'])) {
    if (!SITE_NAME_RE.test(name)) {
      r.fail('PLAN_PLATFORM_INVALID', sp.key as YamlNode, `site name "${name}" is not valid`, 'site names start with a letter or digit and contain only letters, digits, "_", "." and "-"');
    }
    const m = entries(r, sp.value, ['sites', name]);
    let kind: string | undefined = m.has('kind') ? str(r, m.get('kind')!, ['sites', name, 'kind']) : undefined;
    if (kind !== undefined && kind !== 'cluster' && kind !== 'cloud' && kind !== 'slurm') {
      r.fail('PLAN_PLATFORM_INVALID', m.get('kind')!.value as YamlNode, `sites.${name}.kind must be "cluster", "cloud" or "slurm", got "${kind}"`, 'a cluster has nodes and cores; a cloud region has instance-types; a Slurm site has a partition');
    }
    kind ??= m.has('instance-types') ? 'cloud' : 'cluster';
    sites[name] = kind === 'cloud' ? readCloud(r, name, sp.value, m) : kind === 'slurm' ? readSlurm(r, name, sp.value, m) : readCluster(r, name, sp.value, m);
  }
  if (Object.keys(sites).length === 0) {
    r.fail('PLAN_PLATFORM_INVALID', sitesPair.key as YamlNode, 'the platform has no sites', 'describe at least one cluster or cloud region under `sites:`');
  }
  const known = [...Object.keys(sites), ...(opts.otherSites ?? []).filter((n) => !sites[n])];
  const siteRef = (pair: Pair, path: Path): string => {
    const s = str(r, pair, path);
    if (!known.includes(s)) {
      r.fail('PLAN_UNKNOWN_SITE', pair.value as YamlNode, `${pathStr(path)} names unknown site "${s}"`, `known sites: ${known.join(', ')}`);
    }
    return s;
  };

  // Links.
  const links: Link[] = [];
  const lp = top.get('links');
  if (lp && lp.value !== null && !(isScalar(lp.value) && lp.value.value === null)) {
    const seq = lp.value;
    if (!isSeq(seq)) r.fail('PLAN_PLATFORM_INVALID', lp.value as YamlNode, 'links must be a list', 'write `links:` followed by `- {from: A, to: B, bandwidth: 10Gbps}` items');
    const seen = new Set<string>();
    (seq as { items: unknown[] }).items.forEach((item, i) => {
      const path: Path = ['links', i];
      const m = entries(r, item, path, ['from', 'to', 'bandwidth', 'latency', 'price-per-gb']);
      const from = siteRef(required(r, m, 'from', item, path), [...path, 'from']);
      const to = siteRef(required(r, m, 'to', item, path), [...path, 'to']);
      if (from === to) r.fail('PLAN_PLATFORM_INVALID', item as YamlNode, `${pathStr(path)} links site "${from}" to itself`, 'data inside a site moves for free; remove this link');
      const key = `${from}\u0000${to}`;
      if (seen.has(key)) r.fail('PLAN_PLATFORM_INVALID', item as YamlNode, `${pathStr(path)}: a second link from "${from}" to "${to}"`, 'give each direction at most one link');
      seen.add(key);
      links.push({
        from,
        to,
        bandwidth: unit(r, required(r, m, 'bandwidth', item, path), [...path, 'bandwidth'], parseBandwidth, '10Gbps or 500MB/s'),
        latencySec: m.has('latency') ? unit(r, m.get('latency')!, [...path, 'latency'], parseDuration, '20ms') : 0,
        pricePerGB: m.has('price-per-gb') ? number(r, m.get('price-per-gb')!, [...path, 'price-per-gb'], { price: true }) : 0,
      });
    });
  }

  // Data locations.
  const dp = opts.dataOptional && !top.has('data') ? undefined : required(r, top, 'data', root, []);
  const dm = dp ? entries(r, dp.value, ['data'], ['default', 'locations']) : new Map<string, Pair>();
  const def = dp ? siteRef(required(r, dm, 'default', dp.value, ['data']), ['data', 'default']) : Object.keys(sites)[0]!;
  const locations: DataLocation[] = [];
  const locPair = dm.get('locations');
  if (locPair) {
    for (const [prefix, pp] of entries(r, locPair.value, ['data', 'locations'])) {
      locations.push({ prefix, site: siteRef(pp, ['data', 'locations', prefix]) });
    }
  }
  const platform: Platform = { file, currency, sites, links, data: { default: def, locations } };
  // Whether data can reach the jobs that need it depends on the workflow: planWorkflow checks it.

  return platform;
}

/**
 * Best routes between all pairs of sites (Floyd–Warshall on the time to move 1 GB). A route
 * through several links has the sum of their latencies and prices and the smallest bandwidth.
 */
export function computeRoutes(p: Platform): Map<string, Map<string, Route>> {
  const names = Object.keys(p.sites).sort();
  const REF = 1e9;
  const cost = (rt: Route): number => rt.latencySec + REF / rt.bandwidth;
  const best = new Map<string, Map<string, Route>>();
  for (const n of names) best.set(n, new Map());
  for (const l of p.links) {
    const rt: Route = { from: l.from, to: l.to, hops: [l.from, l.to], bandwidth: l.bandwidth, latencySec: l.latencySec, pricePerGB: l.pricePerGB };
    const cur = best.get(l.from)!.get(l.to);
    if (!cur || cost(rt) < cost(cur)) best.get(l.from)!.set(l.to, rt);
    // A link carries data both ways; an explicit link in the other direction wins.
    if (!p.links.some((o) => o.from === l.to && o.to === l.from)) {
      const back: Route = { from: l.to, to: l.from, hops: [l.to, l.from], bandwidth: l.bandwidth, latencySec: l.latencySec, pricePerGB: l.pricePerGB };
      best.get(l.to)!.set(l.from, back);
    }
  }
  for (const k of names) {
    for (const i of names) {
      const ik = best.get(i)!.get(k);
      if (!ik || i === k) continue;
      for (const j of names) {
        if (j === i || j === k) continue;
        const kj = best.get(k)!.get(j);
        if (!kj) continue;
        const via: Route = {
          from: i,
          to: j,
          hops: [...ik.hops, ...kj.hops.slice(1)],
          bandwidth: Math.min(ik.bandwidth, kj.bandwidth),
          latencySec: ik.latencySec + kj.latencySec,
          pricePerGB: ik.pricePerGB + kj.pricePerGB,
        };
        const cur = best.get(i)!.get(j);
        if (!cur || cost(via) < cost(cur) - 1e-12) best.get(i)!.set(j, via);
      }
    }
  }
  return best;
}

/** The site where a file (id or URI) lives before the workflow starts. */
export function dataSite(p: Platform, fileId: string): string {
  let site = p.data.default;
  let len = -1;
  for (const l of p.data.locations) {
    if (fileId.startsWith(l.prefix) && l.prefix.length > len) {
      site = l.site;
      len = l.prefix.length;
    }
  }
  return site;
}

/** A platform as a plain object in the YAML format (sizes in bytes, durations in seconds, bandwidth in bytes/s). */
export function platformToObject(p: Platform): Record<string, unknown> {
  const sites: Record<string, unknown> = {};
  for (const s of Object.values(p.sites)) {
    if (s.kind === 'cluster') {
      sites[s.name] = {
        kind: 'cluster',
        nodes: s.nodes,
        cores: s.cores,
        ...(s.memoryBytes !== undefined ? { memory: s.memoryBytes } : {}),
        gpus: s.gpus,
        speed: s.speed,
        price: s.price,
      };
    } else if (s.kind === 'slurm') {
      sites[s.name] = {
        kind: 'slurm',
        mode: s.mode,
        partition: s.partition,
        ...(s.account !== undefined ? { account: s.account } : {}),
        ...(s.qos !== undefined ? { qos: s.qos } : {}),
        ...(s.sbatch !== undefined ? { sbatch: s.sbatch } : {}),
        ...(s.ssh !== undefined ? { ssh: s.ssh } : {}),
        'max-pilots': s.maxPilots,
        pilot: {
          cores: s.pilot.cores,
          ...(s.pilot.memoryBytes !== undefined ? { memory: s.pilot.memoryBytes } : {}),
          walltime: s.pilot.walltimeSec,
          margin: s.pilot.marginSec,
          'idle-exit': s.pilot.idleExitSec,
          'queue-wait': s.pilot.queueWaitSec,
        },
        ...(Object.keys(s.env).length ? { env: { ...s.env } } : {}),
        ...(s.warren !== undefined ? { warren: s.warren } : {}),
        speed: s.speed,
        price: s.price,
        'queue-estimate': s.queueEstimateSec,
      };
    } else {
      const its: Record<string, unknown> = {};
      for (const it of Object.values(s.instanceTypes)) {
        its[it.name] = {
          cores: it.cores,
          ...(it.memoryBytes !== undefined ? { memory: it.memoryBytes } : {}),
          gpus: it.gpus,
          speed: it.speed,
          price: it.price,
          ...(it.spotPrice !== undefined ? { 'spot-price': it.spotPrice } : {}),
          max: it.max,
          boot: it.bootSec,
        };
      }
      sites[s.name] = {
        kind: 'cloud',
        'instance-types': its,
        billing: { granularity: s.billing.granularitySec, minimum: s.billing.minimumSec },
      };
    }
  }
  return {
    currency: p.currency,
    sites,
    links: p.links.map((l) => ({
      from: l.from,
      to: l.to,
      bandwidth: l.bandwidth,
      latency: l.latencySec,
      'price-per-gb': l.pricePerGB,
    })),
    data: {
      default: p.data.default,
      ...(p.data.locations.length ? { locations: Object.fromEntries(p.data.locations.map((l) => [l.prefix, l.site])) } : {}),
    },
  };
}
