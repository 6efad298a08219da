// The local driver (issue 14): a "cloud region" on this machine. Each instance is a `warren
// agent` process in its own network namespace, joined to a bridge by a veth pair; the agent
// reaches the server at the bridge's address. It stands in for a cloud in tests and demos: a
// configured boot delay (the time between the request and the agent's start), a price per
// hour, and `reclaim(id)`, which kills an instance the way a cloud takes back a spot instance
// (no drain, no warning to the agent: its processes are SIGKILLed and its network removed).
//
// Layout: bridge `<id>br` (made here, unless `bridge` names one that exists) holding A.B.C.1/24
// on a free 10.80.N.0/24; instance n is the namespace `wcl-<id>-<n>` with `eth0` at
// a free A.B.C.10-250/24 (default route via the bridge; drivers sharing a bridge never share an
// address), the other end `<id>v<n>` a port of the bridge. Names are recorded in /run/warren-sites/<id>.json with this process's pid, so what a
// process that died without close() left is removed by the next LocalDriver.create().
// Needs root and iproute2 (`check()` says so, SITE_LOCAL_UNAVAILABLE).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarrenError } from '../common/index.js';
import type { InstanceRequest, InstanceView, SiteDriver } from './driver.js';

export interface LocalInstanceType {
  /** Cores the instance's agent offers (`warren agent --cores`). */
  cores: number;
  /** Memory it offers, a size such as 2GiB (`--memory`); default: the machine's. */
  memory?: string;
}

export interface LocalDriverOptions {
  /** The site's name (in errors and in instances' labels). */
  site: string;
  /** Where the instances' agent directories are made (each removed when its instance ends). */
  dataDir: string;
  instanceTypes: Record<string, LocalInstanceType>;
  /** Between the request and the agent's start (the "boot"), ms. Default 0. */
  bootDelayMs?: number;
  /** Price of an instance-hour (on demand, and spot), for the planner's view of the site. */
  pricePerHour?: number;
  spotPricePerHour?: number;
  /** Use this bridge (it must exist and hold `address`); default: make one. */
  bridge?: { name: string; address: string };
  /** 'A.B.C' (a /24) for the bridge the driver makes; default a free 10.80.N. */
  subnet?: string;
  /** The `warren` launcher to run (default this package's bin/warren.js). */
  warrenBin?: string;
  /** Node options for the agents. */
  nodeArgs?: string[];
  /** The agents' environment (default process.env). */
  env?: NodeJS.ProcessEnv;
}

interface Inst {
  view: InstanceView;
  ns: string;
  veth: string;
  address: string;
  dir: string;
  timer: NodeJS.Timeout | null;
  proc: ChildProcess | null;
  /** Last lines the agent wrote (for `reason` when it dies). */
  tail: string;
  /** Set when stop() or reclaim() ended it (its exit is then not a failure). */
  ending: 'stop' | 'reclaim' | null;
}

const OWNER_DIR = '/run/warren-sites';
const NS_PREFIX = 'wcl-';
const MAX_INSTANCES = 240;

function sh(cmd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  if (r.error) return { code: null, stdout: '', stderr: r.error.message };
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ipRun(site: string, args: string[]): void {
  const r = sh('ip', args);
  if (r.code !== 0) throw new WarrenError('SITE_LOCAL_NETWORK', `site "${site}": \`ip ${args.join(' ')}\` failed: ${r.stderr.trim() || `exit ${r.code}`}`, { hint: 'the local driver needs root and iproute2; remove what a crashed run left with `ip netns list` / `ip link` (names start with wcl)' });
}

function nsPids(ns: string): number[] {
  const r = sh('ip', ['netns', 'pids', ns]);
  return r.code === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

function killPids(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** SIGKILL everything in the namespace until it is empty (at most ~2 s); synchronous: for process exit. */
function killNs(ns: string): void {
  for (let round = 0; round < 100; round++) {
    const pids = nsPids(ns);
    if (pids.length === 0) return;
    killPids(pids);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

/** The same without blocking the event loop. */
async function killNsAsync(ns: string): Promise<void> {
  for (let round = 0; round < 100; round++) {
    const pids = nsPids(ns);
    if (pids.length === 0) return;
    killPids(pids);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes every namespace and link named after `id`, and the bridge when `bridgeMade`. */
function teardown(id: string, bridgeMade: boolean): void {
  const nss = sh('ip', ['netns', 'list']).stdout.split('\n').map((l) => l.split(/\s+/)[0]).filter((n): n is string => !!n && n.startsWith(`${NS_PREFIX}${id}-`));
  for (const ns of nss) killNs(ns);
  const links = sh('ip', ['-o', 'link', 'show']).stdout.split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((n): n is string => !!n && n.startsWith(id) && (bridgeMade || !n.endsWith('br')));
  for (const l of links.sort((a, b) => Number(a.endsWith('br')) - Number(b.endsWith('br')))) sh('ip', ['link', 'del', l]);
  for (const ns of nss) sh('ip', ['netns', 'del', ns]);
}

/** What dead processes' local drivers left. */
function sweepStale(): void {
  let files: string[] = [];
  try {
    files = readdirSync(OWNER_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    return;
  }
  for (const f of files) {
    try {
      const o = JSON.parse(readFileSync(join(OWNER_DIR, f), 'utf8')) as { pid: number; id: string; bridgeMade: boolean; dataDir?: string };
      if (pidAlive(o.pid)) continue;
      teardown(o.id, o.bridgeMade);
      rmSync(join(OWNER_DIR, f), { force: true });
    } catch {
      /* a half-written file of a live process: next time */
    }
  }
}

/** Takes a free address A.B.C.10-250 of the bridge's /24 (an exclusive file per address, freed by giveAddress or when its holder is dead). */
function takeAddress(base: string): string | null {
  mkdirSync(OWNER_DIR, { recursive: true });
  for (let h = 10; h <= 250; h++) {
    const f = join(OWNER_DIR, `ip-${base}.${h}`);
    try {
      writeFileSync(f, String(process.pid), { flag: 'wx' });
      return `${base}.${h}`;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(f, 'utf8'));
      } catch {
        continue;
      }
      if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) continue;
      rmSync(f, { force: true });
      try {
        writeFileSync(f, String(process.pid), { flag: 'wx' });
        return `${base}.${h}`;
      } catch {
        continue;
      }
    }
  }
  return null;
}

function giveAddress(address: string): void {
  const f = join(OWNER_DIR, `ip-${address}`);
  try {
    if (readFileSync(f, 'utf8') === String(process.pid)) rmSync(f, { force: true });
  } catch {
    /* not taken */
  }
}

function subnetUsed(base: string): boolean {
  const re = new RegExp(`\\b${base.replace(/\./g, '\\.')}\\.\\d+`);
  return re.test(sh('ip', ['-4', '-o', 'addr', 'show']).stdout) || re.test(sh('ip', ['-4', 'route', 'show']).stdout);
}

function defaultWarrenBin(): string {
  // dist/src/sites/local.js -> bin/warren.js
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'warren.js');
}

export class LocalDriver implements SiteDriver {
  readonly kind = 'local';
  readonly site: string;
  /** Where the server must listen for the instances' agents to reach it (the bridge's address). */
  readonly serverAddress: string;
  readonly bridge: string;
  private readonly base: string;
  private readonly insts = new Map<string, Inst>();
  private next = 0;
  private closed = false;
  private readonly unhook: () => void;

  private constructor(private readonly o: LocalDriverOptions, private readonly id: string, bridge: string, address: string, private readonly bridgeMade: boolean) {
    this.site = o.site;
    this.bridge = bridge;
    this.serverAddress = address;
    this.base = address.split('.').slice(0, 3).join('.');
    const onExit = (): void => this.teardownSync();
    process.on('exit', onExit);
    this.unhook = () => process.removeListener('exit', onExit);
  }

  /** Makes the bridge (or takes the given one) and checks the settings. */
  static async create(o: LocalDriverOptions): Promise<LocalDriver> {
    validateOptions(o);
    const why = localUnavailable();
    if (why) throw new WarrenError('SITE_LOCAL_UNAVAILABLE', `site "${o.site}" (kind local): ${why}`, { hint: 'run the server as root on Linux with iproute2 (`apt-get install iproute2`), or use a site of another kind' });
    sweepStale();
    mkdirSync(OWNER_DIR, { recursive: true });
    let id = '';
    for (;;) {
      id = `wcl${randomBytes(2).toString('hex')}`;
      if (sh('ip', ['link', 'show', `${id}br`]).code !== 0 && !existsSync(join(OWNER_DIR, `${id}.json`))) break;
    }
    if (o.bridge) {
      const show = sh('ip', ['-4', '-o', 'addr', 'show', 'dev', o.bridge.name]);
      if (show.code !== 0 || !show.stdout.includes(` ${o.bridge.address}/`)) {
        throw new WarrenError('SITE_BAD_SETTING', `site "${o.site}": bridge ${o.bridge.name} ${show.code !== 0 ? 'does not exist' : `does not hold ${o.bridge.address}`}`, { hint: 'give a bridge that exists and one of its IPv4 addresses, or leave `bridge` out and the driver makes one' });
      }
      writeFileSync(join(OWNER_DIR, `${id}.json`), JSON.stringify({ pid: process.pid, id, bridgeMade: false }));
      return new LocalDriver(o, id, o.bridge.name, o.bridge.address, false);
    }
    // A free /24: taken by an exclusive file per subnet, then checked against this machine's addresses.
    const candidates = o.subnet ? [o.subnet] : Array.from({ length: 256 }, (_, n) => `10.80.${n}`);
    for (const base of candidates) {
      const lock = join(OWNER_DIR, `subnet-${base}`);
      try {
        writeFileSync(lock, String(process.pid), { flag: 'wx' });
      } catch {
        const holder = Number(readFileSync(lock, 'utf8'));
        if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) continue;
        writeFileSync(lock, String(process.pid));
      }
      if (subnetUsed(base)) {
        rmSync(lock, { force: true });
        if (o.subnet) throw new WarrenError('SITE_BAD_SETTING', `site "${o.site}": subnet ${base}.0/24 is in use on this machine`, { hint: 'choose another subnet, or leave it out for a free one' });
        continue;
      }
      writeFileSync(join(OWNER_DIR, `${id}.json`), JSON.stringify({ pid: process.pid, id, bridgeMade: true, subnet: base }));
      const br = `${id}br`;
      const d = new LocalDriver(o, id, br, `${base}.1`, true);
      try {
        ipRun(o.site, ['link', 'add', br, 'type', 'bridge']);
        ipRun(o.site, ['addr', 'add', `${base}.1/24`, 'dev', br]);
        ipRun(o.site, ['link', 'set', br, 'up']);
      } catch (e) {
        await d.close();
        throw e;
      }
      return d;
    }
    throw new WarrenError('SITE_BAD_SETTING', `site "${o.site}": no free subnet 10.80.N.0/24 on this machine`, { hint: 'give `subnet` or an existing `bridge`' });
  }

  get pricePerHour(): number {
    return this.o.pricePerHour ?? 0;
  }

  async check(): Promise<void> {
    if (this.closed) throw new WarrenError('SITE_CLOSED', `site "${this.site}": its driver was closed`, { hint: 'make a new driver' });
    const why = localUnavailable();
    if (why) throw new WarrenError('SITE_LOCAL_UNAVAILABLE', `site "${this.site}" (kind local): ${why}`, { hint: 'run the server as root on Linux with iproute2' });
    const bin = this.o.warrenBin ?? defaultWarrenBin();
    if (!existsSync(bin)) throw new WarrenError('SITE_LOCAL_UNAVAILABLE', `site "${this.site}" (kind local): the warren launcher ${bin} does not exist`, { hint: 'build Warren (scripts/setup.sh), or give warrenBin' });
  }

  async start(req: InstanceRequest): Promise<InstanceView> {
    if (this.closed) throw new WarrenError('SITE_CLOSED', `site "${this.site}": its driver was closed`, { hint: 'make a new driver' });
    const type = this.o.instanceTypes[req.instanceType];
    if (!type) throw new WarrenError('SITE_UNKNOWN_INSTANCE_TYPE', `site "${this.site}" has no instance type "${req.instanceType}" (it has ${Object.keys(this.o.instanceTypes).sort().join(', ')})`, { hint: "use one of the site's instance types" });
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(req.node)) throw new WarrenError('SITE_BAD_SETTING', `site "${this.site}": node name "${req.node}" is not letters, digits, '.', '_' or '-' (at most 63)`, { hint: 'choose such a node name' });
    for (const i of this.insts.values()) {
      if (i.view.node === req.node && !ended(i.view.state)) throw new WarrenError('SITE_BAD_SETTING', `site "${this.site}": an instance named ${req.node} runs already (${i.view.id})`, { hint: 'give each instance its own node name' });
    }
    const n = this.next;
    if (n >= MAX_INSTANCES) throw new WarrenError('SITE_LOCAL_EXHAUSTED', `site "${this.site}": the local driver has started ${MAX_INSTANCES} instances`, { hint: 'close the driver and make a new one' });
    // An address of the bridge's /24 no other instance holds (drivers may share a bridge).
    const address = takeAddress(this.base);
    if (!address) throw new WarrenError('SITE_LOCAL_EXHAUSTED', `site "${this.site}": every address of ${this.base}.10-250 on bridge ${this.bridge} is taken`, { hint: 'stop instances, or give the driver a bridge of its own' });
    this.next++;
    const id = `${this.id}-${n}`;
    const ns = `${NS_PREFIX}${id}`;
    const veth = `${this.id}v${n}`;
    const dir = join(this.o.dataDir, req.node);
    const inst: Inst = {
      view: { id, node: req.node, instanceType: req.instanceType, spot: req.spot === true, state: 'pending', requestedAt: Date.now(), runningAt: null, endedAt: null, reason: null },
      ns, veth, address, dir, timer: null, proc: null, tail: '', ending: null,
    };
    this.insts.set(id, inst);
    try {
      ipRun(this.site, ['netns', 'add', ns]);
      ipRun(this.site, ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ipRun(this.site, ['link', 'set', veth, 'master', this.bridge]);
      ipRun(this.site, ['link', 'set', veth, 'up']);
      ipRun(this.site, ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ipRun(this.site, ['-n', ns, 'link', 'set', 'eth0', 'up']);
      ipRun(this.site, ['-n', ns, 'link', 'set', 'lo', 'up']);
      ipRun(this.site, ['-n', ns, 'route', 'add', 'default', 'via', this.serverAddress]);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'ca.pem'), req.caPem);
    } catch (e) {
      await this.release(inst);
      inst.view = { ...inst.view, state: 'failed', endedAt: Date.now(), reason: (e as Error).message };
      throw e;
    }
    inst.timer = setTimeout(() => this.boot(inst, req, type), this.o.bootDelayMs ?? 0);
    return { ...inst.view };
  }

  private boot(inst: Inst, req: InstanceRequest, type: LocalInstanceType): void {
    inst.timer = null;
    if (inst.ending) return;
    const labels = Object.entries({ ...req.labels }).map(([k, v]) => `${k}=${v}`).join(',');
    const args = [
      ...(this.o.nodeArgs ?? []), this.o.warrenBin ?? defaultWarrenBin(), 'agent',
      '--server', req.serverUrl, '--data', join(inst.dir, 'agent'), '--name', req.node, '--ca', join(inst.dir, 'ca.pem'),
      '--cores', String(type.cores), ...(type.memory ? ['--memory', type.memory] : []), ...(labels ? ['--labels', labels] : []),
      '--address', inst.address,
    ];
    // The token in the environment, not on the command line every local user can read.
    const env = { ...(this.o.env ?? process.env), WARREN_JOIN_TOKEN: req.joinToken };
    const p = spawn('ip', ['netns', 'exec', inst.ns, process.execPath, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    inst.proc = p;
    inst.view = { ...inst.view, state: 'booting' };
    const onData = (d: Buffer): void => {
      inst.tail = (inst.tail + d.toString()).slice(-4000);
      if (inst.view.state === 'booting' && inst.tail.includes(`agent ${req.node}: joined`)) inst.view = { ...inst.view, state: 'running', runningAt: Date.now() };
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', onData);
    p.on('error', (e) => {
      inst.tail += `\n${e.message}`;
    });
    p.on('close', (code, signal) => {
      inst.proc = null;
      if (ended(inst.view.state)) return;
      if (inst.ending === 'stop') return; // stop() finishes the view
      if (inst.ending === 'reclaim') return;
      const last = inst.tail.trim().split('\n').slice(-3).join(' | ');
      inst.ending = 'stop';
      void this.release(inst).finally(() => {
        inst.view = { ...inst.view, state: 'failed', endedAt: Date.now(), reason: `agent exited (${signal ?? `code ${code}`})${last ? `: ${last}` : ''}` };
      });
    });
  }

  async list(): Promise<InstanceView[]> {
    return [...this.insts.values()].map((i) => ({ ...i.view }));
  }

  async stop(id: string): Promise<void> {
    const inst = this.insts.get(id);
    if (!inst) throw new WarrenError('SITE_UNKNOWN_INSTANCE', `site "${this.site}" has no instance ${id}`, { hint: 'see the site\'s instances (list)' });
    if (ended(inst.view.state) || inst.ending) return this.waitEnded(inst);
    inst.ending = 'stop';
    inst.view = { ...inst.view, state: 'stopping' };
    if (inst.timer) clearTimeout(inst.timer);
    inst.timer = null;
    const p = inst.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      // The agent's own shutdown first (it stops its jobs), then whatever is left in the namespace.
      killTree(inst.ns, 'SIGTERM');
      const t0 = Date.now();
      while (inst.proc && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 25));
    }
    await this.release(inst);
    inst.view = { ...inst.view, state: 'stopped', endedAt: Date.now(), reason: inst.view.reason ?? 'stopped' };
  }

  /** Takes the instance back as a cloud reclaims a spot instance: SIGKILL, network gone, no drain. */
  async reclaim(id: string): Promise<void> {
    const inst = this.insts.get(id);
    if (!inst) throw new WarrenError('SITE_UNKNOWN_INSTANCE', `site "${this.site}" has no instance ${id}`, { hint: 'see the site\'s instances (list)' });
    if (ended(inst.view.state) || inst.ending) return;
    inst.ending = 'reclaim';
    if (inst.timer) clearTimeout(inst.timer);
    inst.timer = null;
    await this.release(inst);
    inst.view = { ...inst.view, state: 'stopped', endedAt: Date.now(), reason: 'reclaimed (spot interruption)' };
  }

  private async waitEnded(inst: Inst): Promise<void> {
    const t0 = Date.now();
    while (!ended(inst.view.state) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 25));
  }

  /** Kills what runs in the instance's namespace and removes its network and directory. */
  private async release(inst: Inst): Promise<void> {
    await killNsAsync(inst.ns);
    sh('ip', ['link', 'del', inst.veth]);
    sh('ip', ['netns', 'del', inst.ns]);
    rmSync(inst.dir, { recursive: true, force: true });
    giveAddress(inst.address);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const i of this.insts.values()) if (!ended(i.view.state)) await this.stop(i.view.id).catch(() => {});
    this.closed = true;
    this.teardownSync();
    this.unhook();
  }

  private teardownSync(): void {
    for (const i of this.insts.values()) if (i.timer) clearTimeout(i.timer);
    teardown(this.id, this.bridgeMade);
    rmSync(join(OWNER_DIR, `${this.id}.json`), { force: true });
    const base = this.base;
    try {
      if (this.bridgeMade && readFileSync(join(OWNER_DIR, `subnet-${base}`), 'utf8') === String(process.pid)) rmSync(join(OWNER_DIR, `subnet-${base}`), { force: true });
    } catch {
      /* not ours */
    }
  }
}

function ended(s: InstanceView['state']): boolean {
  return s === 'stopped' || s === 'failed';
}

function killTree(ns: string, sig: NodeJS.Signals): void {
  for (const p of nsPids(ns)) {
    try {
      process.kill(p, sig);
    } catch {
      /* gone */
    }
  }
}

/** Why this machine cannot run the local driver, or null. */
export function localUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (sh('ip', ['-V']).code !== 0) return '`ip` (iproute2) is not installed';
  return null;
}

function validateOptions(o: LocalDriverOptions): void {
  const where = `site "${o.site}" (kind local)`;
  const types = Object.entries(o.instanceTypes ?? {});
  if (types.length === 0) throw new WarrenError('SITE_BAD_SETTING', `${where} has no instance types`, { hint: 'give at least one, e.g. instanceTypes: { small: { cores: 1 } }' });
  for (const [name, t] of types) {
    if (!Number.isInteger(t.cores) || t.cores < 1) throw new WarrenError('SITE_BAD_SETTING', `${where}: instance type "${name}" has cores ${String(t.cores)}; it needs a whole number >= 1`, { hint: 'e.g. cores: 2' });
  }
  if (o.bootDelayMs !== undefined && !(Number.isFinite(o.bootDelayMs) && o.bootDelayMs >= 0)) throw new WarrenError('SITE_BAD_SETTING', `${where}: boot delay ${o.bootDelayMs} ms is not a number >= 0`, { hint: 'e.g. bootDelayMs: 2000' });
  for (const [k, v] of [['price', o.pricePerHour], ['spot price', o.spotPricePerHour]] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new WarrenError('SITE_BAD_SETTING', `${where}: ${k} per hour ${v} is not a number >= 0`, { hint: 'give a price >= 0' });
  }
  if (o.subnet !== undefined && !/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(o.subnet)) throw new WarrenError('SITE_BAD_SETTING', `${where}: subnet "${o.subnet}" is not A.B.C (a /24)`, { hint: 'e.g. subnet: 10.80.3, or leave it out for a free 10.80.N' });
}
