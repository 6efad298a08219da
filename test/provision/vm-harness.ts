// Harness of the provisioning end-to-end tests: a network namespace with a bridge and a tap per
// VM (nothing leaves it), dnsmasq on the bridge, and qemu VMs that network-boot with Debian's
// iPXE ROM, their serial console written to a file.
//
//   const skip = bootNetUnavailable();
//   const net = await createBootNet({ vms: 2 });    // namespace wpx-<id>, br0 = 10.77.200.1/24
//   try {
//     net.spawn(process.execPath, [server, ...]);    // runs inside the namespace
//     const dns = await startDnsmasq(net, { dir, bootUrl, hosts: [{ mac, ip }] });
//     const vm = startVm(net, { index: 0, mac, serial: join(dir, 'vm0.log') });
//     await waitForSerial(vm, /marker/, 120_000);
//   } finally {
//     net.destroy();                                 // kills all it ran, deletes the namespace
//   }
//
// The namespace holds everything: the bridge br0 (the boot network, 10.77.200.0/24, which
// exists nowhere else), the taps tap0..tapN-1 the VMs' virtio NICs are plugged into, and every
// process the test starts there (server, dnsmasq, qemu, CLI calls). destroy() (idempotent,
// synchronous) SIGKILLs whatever still runs in the namespace and deletes it, which deletes the
// bridge and taps; it also runs at process exit and on SIGINT/SIGTERM/SIGHUP, and what a
// SIGKILLed test left is swept by the next createBootNet() (an owner file per namespace in
// /run/warren-e2e).
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { atProcessExit, pidAlive, sleepSync } from '../helpers/cleanup.js';
import { run, runSync, type ExecResult } from '../helpers/netns.js';

export const SUBNET = '10.77.200';
export const BRIDGE = 'br0';
const OWNERS = '/run/warren-e2e';
export const IPXE_ROMS = ['/usr/lib/ipxe/qemu/pxe-virtio.rom', '/usr/lib/ipxe/qemu/efi-virtio.rom'];


function which(tool: string): string | undefined {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (existsSync(join(d, tool))) return join(d, tool);
  return undefined;
}

/** 'kvm' when /dev/kvm can be opened for reading and writing, else 'tcg' (software emulation). */
export function accelerator(): 'kvm' | 'tcg' {
  if (process.env.WARREN_E2E_ACCEL === 'tcg') return 'tcg';
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return 'kvm';
  } catch {
    return 'tcg';
  }
}

let probed: Promise<'kvm' | 'tcg'> | undefined;

/**
 * The accelerator a network-booting VM gets: 'kvm' when /dev/kvm works AND iPXE runs under it.
 * Some (nested) KVMs run SeaBIOS and start iPXE but iPXE never sends a packet: probed once per
 * boot of this machine (cached in /run/warren-e2e) with a VM on a tap in a scratch namespace,
 * KVM counts only if a frame comes out of the VM within 20 s. WARREN_E2E_ACCEL=tcg forces
 * software emulation; `acceleratorWhy` says why it was chosen.
 */
export function ipxeAccelerator(): Promise<'kvm' | 'tcg'> {
  probed ??= probeIpxeKvm();
  return probed;
}
export let acceleratorWhy = '';

async function probeIpxeKvm(): Promise<'kvm' | 'tcg'> {
  if (accelerator() === 'tcg') {
    acceleratorWhy = process.env.WARREN_E2E_ACCEL === 'tcg' ? 'WARREN_E2E_ACCEL=tcg' : '/dev/kvm cannot be opened';
    return 'tcg';
  }
  let bootId = '';
  try {
    bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    /* no cache then */
  }
  const cache = join(OWNERS, 'ipxe-kvm-probe.json');
  try {
    const c = JSON.parse(readFileSync(cache, 'utf8')) as { bootId: string; accel: 'kvm' | 'tcg'; why: string };
    if (bootId && c.bootId === bootId) {
      acceleratorWhy = `${c.why} (probed earlier this boot)`;
      return c.accel;
    }
  } catch {
    /* not probed yet */
  }
  const net = await createBootNet({ vms: 1 });
  let accel: 'kvm' | 'tcg' = 'tcg';
  try {
    const vm = startVm(net, { index: 0, mac: '52:54:00:77:c8:fe', accel: 'kvm', serial: join(OWNERS, `probe-${process.pid}.log`), memoryMb: 256 });
    const end = Date.now() + 20_000;
    while (Date.now() < end && vm.child.exitCode === null) {
      // Frames the VM sent are frames the tap received.
      const r = await run('ip', ['-n', net.ns, '-s', '-j', 'link', 'show', 'tap0'], { timeoutMs: 10_000 });
      try {
        const rx = (JSON.parse(r.stdout) as { stats64?: { rx?: { packets?: number } } }[])[0]?.stats64?.rx?.packets ?? 0;
        if (rx > 0) {
          accel = 'kvm';
          break;
        }
      } catch {
        /* try again */
      }
      await sleep(500);
    }
    await vm.stop();
    rmSync(vm.serial, { force: true });
  } finally {
    net.destroy();
  }
  acceleratorWhy = accel === 'kvm' ? 'KVM: iPXE sends under it' : 'software emulation: under this KVM, iPXE sends no packet within 20 s';
  if (bootId) writeFileSync(cache, JSON.stringify({ bootId, accel, why: acceleratorWhy }));
  return accel;
}

/** The iPXE ROM for virtio-net (Debian's ipxe-qemu), or undefined. */
export function ipxeRom(): string | undefined {
  return IPXE_ROMS.find((r) => existsSync(r));
}

/** Why the VM tests cannot run here, or false when they can. */
export function bootNetUnavailable(): string | false {
  if (process.platform !== 'linux') return `VMs in a network namespace need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces and taps need root (run the tests as root)';
  for (const [tool, pkg] of [['ip', 'iproute2'], ['qemu-system-x86_64', 'qemu-system-x86'], ['dnsmasq', 'dnsmasq-base']] as const) {
    if (!which(tool)) return `${tool} is not installed (apt ${pkg}: scripts/apt/provision.txt; run scripts/setup.sh)`;
  }
  if (!ipxeRom()) return `Debian's iPXE ROM for virtio (${IPXE_ROMS.join(' or ')}) is missing (apt ipxe-qemu: scripts/apt/provision.txt)`;
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing: taps cannot be made';
  return false;
}

export type { ExecResult };

export interface BootNet {
  /** The namespace (wpx-<hex>). */
  readonly ns: string;
  /** The bridge's address, where the server and dnsmasq listen (10.77.200.1). */
  readonly address: string;
  /** Tap i is plugged into VM i. */
  readonly taps: string[];
  /** Starts `cmd args` in the namespace (the child's pid is the command's own: `ip netns exec` execs it). */
  spawn(cmd: string, args: string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string; stdio?: StdioOptions }): ChildProcess;
  /** Runs `cmd args` in the namespace to its end (SIGKILLed after timeoutMs, default 60 s). */
  exec(cmd: string, args: string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string }): Promise<ExecResult>;
  /** Kills everything in the namespace and deletes it (see the top of this file). Idempotent. */
  destroy(): void;
}

function killAllIn(ns: string): void {
  for (let round = 0; round < 100; round++) {
    const r = runSync('ip', ['netns', 'pids', ns]);
    const pids = r.code === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
    if (pids.length === 0) return;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    sleepSync(50);
  }
}

function teardownSync(ns: string): void {
  killAllIn(ns);
  runSync('ip', ['netns', 'del', ns]);
  rmSync(join(OWNERS, ns), { force: true });
}

/** Deletes the namespaces of test processes that died without cleaning up. */
export function sweepStaleBootNets(): void {
  let owners: string[] = [];
  try {
    owners = readdirSync(OWNERS);
  } catch {
    return;
  }
  for (const ns of owners) {
    let pid = 0;
    try {
      pid = Number(readFileSync(join(OWNERS, ns), 'utf8'));
    } catch {
      /* unreadable: stale */
    }
    if (pid && pidAlive(pid)) continue;
    teardownSync(ns);
  }
}


async function ipIn(ns: string | undefined, args: string[]): Promise<void> {
  const r = await run('ip', ns ? ['-n', ns, ...args] : args, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`ip ${ns ? `-n ${ns} ` : ''}${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
}

/** Makes the namespace, its bridge and `vms` taps (see the top of this file). */
export async function createBootNet(opts: { vms: number }): Promise<BootNet> {
  const why = bootNetUnavailable();
  if (why) throw new Error(`the VM harness cannot run here: ${why}`);
  sweepStaleBootNets();
  const ns = `wpx-${randomBytes(3).toString('hex')}`;
  mkdirSync(OWNERS, { recursive: true });
  writeFileSync(join(OWNERS, ns), String(process.pid));
  let destroyed = false;
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    unregister();
    teardownSync(ns);
  };
  const unregister = atProcessExit(destroy);
  const address = `${SUBNET}.1`;
  const taps: string[] = [];
  try {
    await ipIn(undefined, ['netns', 'add', ns]);
    await ipIn(ns, ['link', 'set', 'lo', 'up']);
    await ipIn(ns, ['link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    await ipIn(ns, ['addr', 'add', `${address}/24`, 'dev', BRIDGE]);
    await ipIn(ns, ['link', 'set', BRIDGE, 'up']);
    // A bridge whose ports have no carrier (taps before their VM opens them) is not RUNNING, and
    // then has no address for programs that list interfaces (libuv, os.networkInterfaces()):
    // a veth pair plugged into it keeps its carrier, as a switch port on a real network does.
    await ipIn(ns, ['link', 'add', 'carrier0', 'type', 'veth', 'peer', 'name', 'carrier1']);
    await ipIn(ns, ['link', 'set', 'carrier0', 'master', BRIDGE]);
    await ipIn(ns, ['link', 'set', 'carrier0', 'up']);
    await ipIn(ns, ['link', 'set', 'carrier1', 'up']);
    for (let i = 0; i < opts.vms; i++) {
      const tap = `tap${i}`;
      await ipIn(ns, ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      await ipIn(ns, ['link', 'set', tap, 'master', BRIDGE]);
      await ipIn(ns, ['link', 'set', tap, 'up']);
      taps.push(tap);
    }
  } catch (e) {
    destroy();
    throw e;
  }
  return {
    ns,
    address,
    taps,
    spawn: (cmd, args, o = {}) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { env: o.env ?? process.env, cwd: o.cwd, stdio: o.stdio ?? 'pipe' }),
    exec: (cmd, args, o = {}) => run('ip', ['netns', 'exec', ns, cmd, ...args], { timeoutMs: 60_000, ...o }),
    destroy,
  };
}

export interface DhcpHost {
  mac: string;
  ip: string;
  name?: string;
}

/**
 * dnsmasq as the boot network's DHCP server (no DNS): fixed addresses for `hosts`, and to a
 * client that is iPXE (DHCP option 175) the boot file `bootUrl` (iPXE expands `${net0/mac}`
 * in it). Resolves once dnsmasq runs; its log goes to `dir`/dnsmasq.log.
 */
export async function startDnsmasq(net: BootNet, opts: { dir: string; bootUrl: string; hosts: DhcpHost[] }): Promise<{ child: ChildProcess; log: string; conf: string }> {
  const conf = join(opts.dir, 'dnsmasq.conf');
  const log = join(opts.dir, 'dnsmasq.log');
  const lines = [
    'port=0',
    `interface=${BRIDGE}`,
    'bind-interfaces',
    'no-resolv',
    'no-hosts',
    `dhcp-leasefile=${join(opts.dir, 'dnsmasq.leases')}`,
    `dhcp-range=${SUBNET}.100,${SUBNET}.199,255.255.255.0,1h`,
    ...opts.hosts.map((h) => `dhcp-host=${h.mac},${h.ip}${h.name ? `,${h.name}` : ''}`),
    'dhcp-match=set:ipxe,175',
    `dhcp-boot=tag:ipxe,${opts.bootUrl}`,
    `log-facility=${log}`,
    'log-dhcp',
  ];
  writeFileSync(conf, lines.join('\n') + '\n');
  const child = net.spawn(which('dnsmasq')!, ['--keep-in-foreground', `--conf-file=${conf}`, `--pid-file=${join(opts.dir, 'dnsmasq.pid')}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  // dnsmasq checks its configuration and binds before it logs "started"; a bad one exits at once.
  const end = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`dnsmasq exited (${child.exitCode ?? child.signalCode}): ${err.trim()}`);
    if (existsSync(log) && /started, version/.test(readFileSync(log, 'utf8'))) break;
    if (Date.now() > end) throw new Error(`dnsmasq did not start within 15 s: ${err.trim()}`);
    await sleep(50);
  }
  return { child, log, conf };
}

export interface Vm {
  readonly child: ChildProcess;
  readonly serial: string;
  readonly startedAt: number;
  /** qemu's own stderr so far (a failed start says why here). */
  stderr(): string;
  /** The serial console so far. */
  console(): string;
  /** SIGKILLs qemu (idempotent); resolves when it is gone. */
  stop(): Promise<void>;
}

/**
 * A VM with no disk that boots from the network (`-boot n`) through the virtio NIC on tap
 * `index` with Debian's iPXE ROM (or, with `direct`, from a kernel and initrd qemu loads itself);
 * its first serial port goes to `serial`.
 */
export function startVm(net: BootNet, opts: { index: number; mac: string; serial: string; memoryMb?: number; accel?: 'kvm' | 'tcg'; direct?: { kernel: string; initrd: string; append: string } }): Vm {
  const accel = opts.accel ?? accelerator();
  const tap = net.taps[opts.index];
  if (!tap) throw new Error(`no tap ${opts.index} (the network has ${net.taps.length})`);
  writeFileSync(opts.serial, '');
  const args = [
    '-name', `warren-e2e-${opts.index}`,
    '-accel', accel,
    // Under KVM the host's CPU, less IA32_ARCH_CAPABILITIES: some (nested) KVMs refuse that MSR
    // and qemu 7.2 aborts ("failed to set MSR 0x10a").
    '-cpu', accel === 'kvm' ? 'host,-arch-capabilities' : 'max',
    '-smp', '1',
    '-m', String(opts.memoryMb ?? 1536),
    '-nographic', '-monitor', 'none',
    '-serial', `file:${opts.serial}`,
    '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`,
    // No romfile=: qemu's own default for virtio-net-pci is Debian's iPXE ROM, found in its
    // firmware path (/usr/lib/ipxe/qemu); naming the same file explicitly leaves SeaBIOS
    // without a network boot entry on this qemu (7.2).
    '-device', `${process.env.WARREN_E2E_NIC ?? 'virtio-net-pci'},netdev=n0,mac=${opts.mac}`,
    // direct: qemu loads the kernel and initrd itself (no firmware network boot), a baseline.
    ...(opts.direct ? ['-kernel', opts.direct.kernel, '-initrd', opts.direct.initrd, '-append', opts.direct.append] : ['-boot', 'n']),
    '-no-reboot',
  ];
  const child = net.spawn(which('qemu-system-x86_64')!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-8000)));
  const startedAt = Date.now();
  return {
    child,
    serial: opts.serial,
    startedAt,
    stderr: () => err,
    console: () => {
      try {
        return readFileSync(opts.serial, 'latin1');
      } catch {
        return '';
      }
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((r) => child.once('close', () => r()));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

/**
 * Waits for `re` on the VM's console; returns the match and the ms since the VM started.
 * Throws with the console's tail when qemu ends first or `timeoutMs` passes.
 */
export async function waitForSerial(vm: Vm, re: RegExp, timeoutMs: number, what = String(re)): Promise<{ match: RegExpExecArray; ms: number }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = vm.console();
    const m = re.exec(text);
    if (m) return { match: m, ms: Date.now() - vm.startedAt };
    const exited = vm.child.exitCode !== null || vm.child.signalCode !== null;
    if (exited || Date.now() > end) {
      const why = exited ? `qemu ended (${vm.child.exitCode ?? vm.child.signalCode}) before` : `no ${what} within ${Math.round(timeoutMs / 1000)} s`;
      throw new Error(`${why} on ${vm.serial}; qemu stderr: ${vm.stderr().trim() || '(none)'}\n--- console tail ---\n${text.slice(-3000)}`);
    }
    await sleep(250);
  }
}
