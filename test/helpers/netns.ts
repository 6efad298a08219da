// Test harness: "hosts" as Linux network namespaces on one bridge, for cluster-mode and
// fault tests (needs root; `netnsAvailable()` says whether this machine allows it).
//
//   import { createNetwork, netnsAvailable } from '../helpers/netns.js';
//   const skip = netnsAvailable() === true ? false : String(netnsAvailable());
//   test('agents survive a cut', { skip, timeout: 60_000 }, async () => {
//     const net = await createNetwork({ hosts: 2 });
//     try {
//       // the server side listens in the root namespace on net.serverAddress (10.77.N.1)
//       const agent = net.hosts[0].spawn(process.execPath, ['agent.js', `http://${net.serverAddress}:${port}`]);
//       await net.hosts[0].cut();       // its cable is pulled (bridge side): packets are lost
//       await net.hosts[0].restore();   // and back
//       const r = await net.hosts[1].exec('hostname', [], { isolate: { hostname: 'node-b' } });
//     } finally {
//       await net.destroy();            // kills what runs in the namespaces, removes them all
//     }
//   });
//
// Layout: a bridge `<id>br` in the root namespace holding `serverAddress` (A.B.C.1/24); host i
// is the namespace `warren-<id>-<i>` whose `eth0` (A.B.C.(10+i)/24, default route via the
// bridge address) is one end of a veth pair, the other end `<id>v<i>` a port of the bridge.
// Root <-> host and host <-> host traffic works; nothing is routed beyond the bridge. The
// subnet is 10.77.N.0/24 with N free on this machine (a lock in /run/warren-netns, so test
// files running in parallel never share one), unless `subnet` says which.
//
// cut(): `mode: 'down'` (default) sets the bridge-side veth down: every packet is lost, in
// both directions, with no error to either side (connects and writes time out); the
// namespace's eth0 shows NO-CARRIER if someone looks. `mode: 'silent'` disables the bridge
// port instead: the same loss, but eth0 stays UP with carrier, so nothing in the namespace
// can tell. restore() undoes either and waits until the port forwards again.
//
// isolate (spawn/exec): the command also gets its own UTS namespace (hostname) and mount
// namespace. `tmp: 'host'` (default): /tmp and /dev/shm are per-host directories, shared by
// every isolated process of that host (as on a real node: MPI ranks on one host see each
// other's files and shared memory) and by no other host; `tmp: 'private'`: a fresh tmpfs on
// /tmp and /dev/shm for this process only. Mounts never leave the command's namespace.
//
// destroy() (idempotent) SIGKILLs every process in the namespaces, deletes the veths, bridge,
// namespaces, per-host directories and any firewall rule it added; whatever is not destroyed
// runs at process exit, SIGINT, SIGTERM and SIGHUP, and what a SIGKILLed test process left
// is swept by the next createNetwork().
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atProcessExit, pidAlive, sleepSync, waitFor } from './cleanup.js';

export interface NetworkOptions {
  /** 1 to 4 of [a-z0-9], starts the random id of interface and namespace names (default 'wt'). */
  prefix?: string;
  /** How many namespaces (0 to 244). */
  hosts: number;
  /** 'A.B.C' or 'A.B.C.0/24' (default: a free 10.77.N.0/24). */
  subnet?: string;
}

export interface IsolateOptions {
  /** The hostname the command sees (default: the host's namespace name). */
  hostname?: string;
  /** 'host' (default): per-host /tmp and /dev/shm; 'private': fresh tmpfs for this command. */
  tmp?: 'host' | 'private';
}

export interface SpawnOptions {
  /** The whole environment (default process.env; without PATH, give cmd as an absolute path). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdio?: StdioOptions;
  /** Own hostname and /tmp as well (see the top of this file). */
  isolate?: IsolateOptions;
}

export interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  isolate?: IsolateOptions;
  /** Written to the command's stdin (then closed). */
  input?: string;
  /** Killed (SIGKILL) after this long: default 30 000 ms. */
  timeoutMs?: number;
}

export interface ExecResult {
  /** Exit code; null when it ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Whether it was killed for running past timeoutMs. */
  timedOut: boolean;
}

export interface CutOptions {
  /** 'down' (default): bridge-side veth down; 'silent': bridge port disabled, carrier kept. */
  mode?: 'down' | 'silent';
}

export interface Host {
  /** 0-based position in network.hosts. */
  readonly index: number;
  /** The network namespace (`ip netns exec NAME ...`). */
  readonly name: string;
  /** Its IPv4 address (A.B.C.(10+index)). */
  readonly address: string;
  /** The bridge-side end of its veth pair (in the root namespace). */
  readonly veth: string;
  /** Whether cut() is in force. */
  readonly isCut: boolean;
  /** Starts `cmd args` in the namespace (the ChildProcess's pid is the command's own). */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Runs `cmd args` in the namespace to its end. */
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Pulls its cable: every packet to and from it is lost until restore(). Idempotent. */
  cut(opts?: CutOptions): Promise<void>;
  /** Plugs it back; resolves when the bridge forwards its traffic again. Idempotent. */
  restore(): Promise<void>;
  /** The pids of every process in the namespace. */
  pids(): Promise<number[]>;
  /** Sends `signal` (default SIGKILL) to every process in the namespace; returns how many. */
  killAll(signal?: NodeJS.Signals): Promise<number>;
}

export interface Network {
  /** The random id every name starts with (e.g. 'wt3fa2'). */
  readonly id: string;
  /** The bridge in the root namespace. */
  readonly bridge: string;
  /** 'A.B.C.0/24'. */
  readonly subnet: string;
  /** The bridge's address (A.B.C.1): where servers in the root namespace listen. */
  readonly serverAddress: string;
  readonly hosts: Host[];
  /** Removes everything (see the top of this file). Idempotent. */
  destroy(): Promise<void>;
  /** The same, synchronously. */
  destroySync(): void;
}

const LOCK_DIR = '/run/warren-netns';
const NS_PREFIX = 'warren-';
const MAX_HOSTS = 244;

// --- commands -----------------------------------------------------------------------

/** A command's result, synchronously (20 s at most): never throws. */
export function runSync(cmd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  if (r.error) return { code: null, stdout: '', stderr: String(r.error.message) };
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run a command to its end (killed past `timeoutMs`, default 30 s): its result, never a throw. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderr: stderr + String(e.message), timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

async function ip(args: string[]): Promise<string> {
  const r = await run('ip', args, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function bridgeCmd(args: string[]): Promise<void> {
  // (`ip link set ... type bridge_slave state N` is accepted but not applied by some kernels.)
  const r = await run('bridge', args, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`bridge ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim() || 'is iproute2\'s \`bridge\` installed?'}`);
}

function ipSync(args: string[]): boolean {
  return runSync('ip', args).code === 0;
}

let ipBin: string | undefined;
/** `ip`'s absolute path, so that spawn/exec work with an `env` that has no PATH. */
function ipPath(): string {
  ipBin ??= runSync('sh', ['-c', 'command -v ip']).stdout.trim() || 'ip';
  return ipBin;
}

function onPath(cmd: string): boolean {
  return runSync('sh', ['-c', `command -v ${cmd}`]).code === 0;
}

// --- availability -------------------------------------------------------------------

let available: true | string | undefined;

/** true when this machine lets the tests make namespaces, bridges and veths; else why not. */
export function netnsAvailable(): true | string {
  if (available !== undefined) return available;
  available = probe();
  return available;
}

function probe(): true | string {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the tests as root)';
  if (!onPath('ip')) return '`ip` (iproute2) is not installed';
  const ns = `${NS_PREFIX}probe-${process.pid}`;
  const br = `wp${process.pid}b`;
  const v = `wp${process.pid}v`;
  try {
    const add = runSync('ip', ['netns', 'add', ns]);
    if (add.code !== 0) return `\`ip netns add\` failed: ${add.stderr.trim()}`;
    const b = runSync('ip', ['link', 'add', br, 'type', 'bridge']);
    if (b.code !== 0) return `cannot make a bridge: ${b.stderr.trim()}`;
    const p = runSync('ip', ['link', 'add', v, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    if (p.code !== 0) return `cannot make a veth pair into a namespace: ${p.stderr.trim()}`;
    const m = runSync('ip', ['link', 'set', v, 'master', br]);
    if (m.code !== 0) return `cannot add a veth to a bridge: ${m.stderr.trim()}`;
    const e = runSync('ip', ['netns', 'exec', ns, 'true']);
    if (e.code !== 0) return `\`ip netns exec\` failed: ${e.stderr.trim()}`;
    return true;
  } finally {
    runSync('ip', ['link', 'del', v]);
    runSync('ip', ['link', 'del', br]);
    runSync('ip', ['netns', 'del', ns]);
  }
}

// --- subnet locks and stale sweep -----------------------------------------------------

interface Owner {
  pid: number;
  id: string;
  tmp: string;
  firewall: string[][];
}

function lockPath(key: string): string {
  return join(LOCK_DIR, key);
}

function readOwner(key: string): Owner | undefined {
  try {
    return JSON.parse(readFileSync(join(lockPath(key), 'owner.json'), 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

function writeOwner(key: string, o: Owner): void {
  writeFileSync(join(lockPath(key), 'owner.json'), JSON.stringify(o));
}

/** Takes the lock of subnet `key` ('A.B.C'); false when someone alive holds it. */
function tryLock(key: string, owner: Owner): boolean {
  mkdirSync(LOCK_DIR, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(lockPath(key));
      writeOwner(key, owner);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!sweepLock(key)) return false;
    }
  }
  return false;
}

/** Removes lock `key` and what its owner left if the owner is dead; true if it is gone. */
function sweepLock(key: string): boolean {
  const o = readOwner(key);
  if (o && pidAlive(o.pid)) return false;
  if (!o) {
    // Between mkdir and owner.json, or garbage: stale only when old.
    try {
      if (Date.now() - statSync(lockPath(key)).mtimeMs < 30_000) return false;
    } catch {
      return true;
    }
  }
  if (o) teardownSync(o.id, o.tmp, o.firewall);
  rmSync(lockPath(key), { recursive: true, force: true });
  return true;
}

/** Sweeps what dead test processes left (namespaces, links, locks). Runs at each createNetwork(). */
export function sweepStale(): void {
  let keys: string[] = [];
  try {
    keys = readdirSync(LOCK_DIR);
  } catch {
    return;
  }
  for (const k of keys) sweepLock(k);
}

function subnetInUse(base: string): boolean {
  const r = runSync('ip', ['-4', '-o', 'addr', 'show']);
  const routes = runSync('ip', ['-4', 'route', 'show']);
  const re = new RegExp(`\\b${base.replace(/\./g, '\\.')}\\.\\d+`);
  return re.test(r.stdout) || re.test(routes.stdout);
}

function parseSubnet(s: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\.0\/24)?$/.exec(s);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) throw new Error(`subnet "${s}" is not A.B.C or A.B.C.0/24`);
  return m.slice(1, 4).join('.');
}

// --- teardown ------------------------------------------------------------------------

function nsPids(ns: string): number[] {
  const r = runSync('ip', ['netns', 'pids', ns]);
  if (r.code !== 0) return [];
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

function killNsSync(ns: string): void {
  for (let round = 0; round < 50; round++) {
    const pids = nsPids(ns);
    if (pids.length === 0) return;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    sleepSync(20);
  }
}

/** Removes everything named after `id` (idempotent, best effort, synchronous). */
function teardownSync(id: string, tmp: string, firewall: string[][]): void {
  const nsList = runSync('ip', ['netns', 'list']).stdout
    .split('\n')
    .map((l) => l.split(/\s+/)[0])
    .filter((n): n is string => !!n && n.startsWith(`${NS_PREFIX}${id}-`));
  for (const ns of nsList) killNsSync(ns);
  const links = runSync('ip', ['-o', 'link', 'show']).stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => !!n && n.startsWith(id));
  // Veths first (deleting one end deletes its namespace peer now, not when the kernel gets
  // round to the namespace), then the bridge.
  for (const l of links.sort((a, b) => Number(a.endsWith('br')) - Number(b.endsWith('br')))) ipSync(['link', 'del', l]);
  for (const ns of nsList) ipSync(['netns', 'del', ns]);
  for (const rule of firewall) runSync('iptables', ['-D', ...rule]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}

// --- firewall ------------------------------------------------------------------------

/** ACCEPT rules for the bridge where iptables would drop its traffic; returns what it added. */
function openFirewall(bridge: string): string[][] {
  if (!onPath('iptables')) return [];
  const added: string[][] = [];
  const want: Record<string, string[][]> = {
    INPUT: [['INPUT', '-i', bridge, '-j', 'ACCEPT']],
    FORWARD: [
      ['FORWARD', '-i', bridge, '-j', 'ACCEPT'],
      ['FORWARD', '-o', bridge, '-j', 'ACCEPT'],
    ],
    OUTPUT: [['OUTPUT', '-o', bridge, '-j', 'ACCEPT']],
  };
  for (const [chain, rules] of Object.entries(want)) {
    const s = runSync('iptables', ['-S', chain]);
    if (s.code !== 0) continue;
    if (!/-P \S+ DROP|-j (DROP|REJECT)/.test(s.stdout)) continue;
    for (const r of rules) {
      const [c, ...rest] = r as [string, ...string[]];
      if (runSync('iptables', ['-I', c, ...rest]).code === 0) added.push(r);
    }
  }
  return added;
}

// --- the network ---------------------------------------------------------------------

function randomId(prefix: string): string {
  for (;;) {
    const id = prefix + randomBytes(2).toString('hex');
    if (!ipSync(['link', 'show', `${id}br`])) return id;
  }
}

/** Makes a bridge and `hosts` namespaces on it (see the top of this file). */
export async function createNetwork(opts: NetworkOptions): Promise<Network> {
  const avail = netnsAvailable();
  if (avail !== true) throw new Error(`network namespaces are not available here: ${avail}`);
  const prefix = opts.prefix ?? 'wt';
  if (!/^[a-z0-9]{1,4}$/.test(prefix)) throw new Error(`prefix "${prefix}" must be 1 to 4 of [a-z0-9] (interface names are at most 15 characters)`);
  if (!Number.isInteger(opts.hosts) || opts.hosts < 0 || opts.hosts > MAX_HOSTS) throw new Error(`hosts must be an integer from 0 to ${MAX_HOSTS}`);

  sweepStale();
  const id = randomId(prefix);
  const tmp = join(tmpdir(), `warren-netns-${id}`);
  const owner: Owner = { pid: process.pid, id, tmp, firewall: [] };

  let base: string | undefined;
  if (opts.subnet !== undefined) {
    base = parseSubnet(opts.subnet);
    if (!tryLock(base, owner)) throw new Error(`subnet ${base}.0/24 is held by another live test process`);
    if (subnetInUse(base)) {
      rmSync(lockPath(base), { recursive: true, force: true });
      throw new Error(`subnet ${base}.0/24 is already in use on this machine`);
    }
  } else {
    const start = process.pid % 254;
    for (let k = 0; k < 254 && !base; k++) {
      const key = `10.77.${((start + k) % 254) + 1}`;
      if (!tryLock(key, owner)) continue;
      if (subnetInUse(key)) {
        rmSync(lockPath(key), { recursive: true, force: true });
        continue;
      }
      base = key;
    }
    if (!base) throw new Error('no free 10.77.N.0/24 subnet (all 254 are held or in use)');
  }
  const key = base;

  let destroyed = false;
  const destroySync = (): void => {
    if (destroyed) return;
    destroyed = true;
    unregister();
    teardownSync(id, tmp, owner.firewall);
    rmSync(lockPath(key), { recursive: true, force: true });
  };
  const unregister = atProcessExit(destroySync);

  const bridge = `${id}br`;
  const serverAddress = `${base}.1`;
  const hosts: Host[] = [];
  try {
    mkdirSync(tmp, { recursive: true });
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    await ip(['addr', 'add', `${serverAddress}/24`, 'dev', bridge]);
    await ip(['link', 'set', bridge, 'up']);
    owner.firewall = openFirewall(bridge);
    writeOwner(key, owner);
    for (let i = 0; i < opts.hosts; i++) {
      const name = `${NS_PREFIX}${id}-${i}`;
      const veth = `${id}v${i}`;
      const address = `${base}.${10 + i}`;
      await ip(['netns', 'add', name]);
      await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      await ip(['link', 'set', veth, 'master', bridge]);
      await ip(['link', 'set', veth, 'up']);
      await ip(['-n', name, 'link', 'set', 'lo', 'up']);
      await ip(['-n', name, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', name, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', name, 'route', 'add', 'default', 'via', serverAddress]);
      const hostTmp = join(tmp, `h${i}`);
      for (const d of ['tmp', 'shm']) {
        mkdirSync(join(hostTmp, d), { recursive: true });
        chmodSync(join(hostTmp, d), 0o1777);
      }
      writeFileSync(join(hostTmp, 'resolv.conf'), '# no name server in this test network (test/helpers/netns.ts)\noptions timeout:1 attempts:1\n');
      hosts.push(makeHost(i, name, address, veth, hostTmp));
    }
    // Each port forwards once its carrier is up (no STP): wait for it, so the first packet is not lost.
    for (const h of hosts) await waitForwarding(h.veth);
  } catch (e) {
    destroySync();
    throw e;
  }
  return {
    id,
    bridge,
    subnet: `${base}.0/24`,
    serverAddress,
    hosts,
    destroySync,
    destroy: async () => destroySync(),
  };
}

async function portState(veth: string): Promise<string | undefined> {
  const r = await run('ip', ['-d', '-o', 'link', 'show', 'dev', veth], { timeoutMs: 10_000 });
  return /bridge_slave state (\w+)/.exec(r.stdout)?.[1];
}

async function waitForwarding(veth: string): Promise<void> {
  if (!(await waitFor(async () => (await portState(veth)) === 'forwarding', 10_000))) {
    throw new Error(`bridge port ${veth} is not forwarding after 10 s (state ${await portState(veth)})`);
  }
}

// (/dev/shm first: the per-host directories are themselves under /tmp.)
// The host's own resolv.conf names no server: a lookup (MPI libraries resolve host names)
// fails at once instead of waiting out a name server the namespace cannot reach. `ip netns
// exec` mounts a fresh /sys, without the cgroup file systems: they are bound back (runc and
// job cgroups need them, as on a real node).
const CGROUPS = `{ ${cgroupRemounts()} true; }`;

/** Shell commands that mount this machine's cgroup hierarchies again (as in /proc/self/mounts). */
function cgroupRemounts(): string {
  let mounts: string[][] = [];
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  } catch {
    return '';
  }
  const cmds: string[] = [];
  if (mounts.some((m) => m[1] === '/sys/fs/cgroup' && m[2] === 'tmpfs')) cmds.push('mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup');
  for (const m of mounts) {
    const [, path, type, opts] = m;
    if (!path?.startsWith('/sys/fs/cgroup') || !/^[\w/=,.-]+$/.test(`${path}${opts}`)) continue;
    const own = (opts ?? '').split(',').filter((o) => o !== 'rw' && o !== 'relatime' && !o.startsWith('seclabel')).join(',');
    if (type === 'cgroup') cmds.push(`mkdir -p ${path} && mount -t cgroup -o ${own} cgroup ${path}`);
    else if (type === 'cgroup2') cmds.push(`mkdir -p ${path} && mount -t cgroup2 cgroup2 ${path}`);
  }
  return cmds.map((c) => `${c} 2>/dev/null;`).join(' ');
}
const ISOLATE_HOST = 'hostname "$1" && ' + CGROUPS + ' && mount --bind "$2/resolv.conf" /etc/resolv.conf && mount --bind "$2/shm" /dev/shm && mount --bind "$2/tmp" /tmp && shift 2 && exec "$@"';
const ISOLATE_PRIVATE = 'hostname "$1" && ' + CGROUPS + ' && mount --bind "$2/resolv.conf" /etc/resolv.conf && mount -t tmpfs -o mode=1777 tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && shift 2 && exec "$@"';

function makeHost(index: number, name: string, address: string, veth: string, hostTmp: string): Host {
  let cut: 'down' | 'silent' | undefined;
  const argv = (cmd: string, args: string[], isolate?: IsolateOptions): string[] => {
    if (!isolate) return ['netns', 'exec', name, cmd, ...args];
    const script = (isolate.tmp ?? 'host') === 'host' ? ISOLATE_HOST : ISOLATE_PRIVATE;
    return ['netns', 'exec', name, 'unshare', '--uts', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', isolate.hostname ?? name, hostTmp, cmd, ...args];
  };
  const pids = async (): Promise<number[]> => {
    const r = await run('ip', ['netns', 'pids', name], { timeoutMs: 10_000 });
    return r.stdout.split(/\s+/).filter(Boolean).map(Number);
  };
  return {
    index,
    name,
    address,
    veth,
    get isCut() {
      return cut !== undefined;
    },
    spawn: (cmd, args, opts = {}) => spawn(ipPath(), argv(cmd, args, opts.isolate), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: opts.stdio ?? 'pipe' }),
    exec: (cmd, args, opts = {}) => run(ipPath(), argv(cmd, args, opts.isolate), opts),
    cut: async (opts = {}) => {
      const mode = opts.mode ?? 'down';
      if (cut === mode) return;
      if (cut) await restoreLink();
      if (mode === 'down') await ip(['link', 'set', veth, 'down']);
      else await bridgeCmd(['link', 'set', 'dev', veth, 'state', '0']);
      cut = mode;
    },
    restore: async () => {
      if (!cut) return;
      await restoreLink();
      cut = undefined;
    },
    pids,
    killAll: async (signal = 'SIGKILL') => {
      let n = 0;
      for (const p of await pids()) {
        try {
          process.kill(p, signal);
          n++;
        } catch {
          // gone already
        }
      }
      return n;
    },
  };
  async function restoreLink(): Promise<void> {
    await ip(['link', 'set', veth, 'up']);
    if ((await portState(veth)) === 'disabled') await bridgeCmd(['link', 'set', 'dev', veth, 'state', '3']);
    await waitForwarding(veth);
  }
}
