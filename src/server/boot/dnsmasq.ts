// DHCP and TFTP for the provisioning network by Debian's dnsmasq: the configuration is made from
// the inventory (pure, `dnsmasqConfig`), written to DATA/provision/dnsmasq.conf, checked by
// `dnsmasq --test`, and, with `--dhcp IFACE[,RANGE]`, run as a child of the server (restarted
// when the inventory changes, stopped with the server).
//
// A machine's PXE firmware gets iPXE over TFTP (undionly.kpxe for BIOS, ipxe.efi for UEFI); iPXE
// asks again (DHCP option 175 marks it) and is given the boot service's script URL.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { WarrenError, type LogFn } from '../../common/index.js';
import { parseIp, type ResolvedNode } from '../../provision/index.js';
import { dyingWithParent, stopChild } from './sources.js';

/** Where Debian's ipxe package puts the iPXE binaries that PXE firmware loads over TFTP. */
export const IPXE_DIR = '/usr/lib/ipxe';
export const IPXE_FILES = ['undionly.kpxe', 'ipxe.efi'] as const;

export interface DhcpOptions {
  /** The interface dnsmasq answers on. */
  iface: string;
  /** A pool for machines not in the inventory ("10.0.0.100-10.0.0.200"); none: only the inventory's nodes get addresses. */
  range?: { first: string; last: string };
}

export interface DnsmasqInput {
  nodes: readonly ResolvedNode[];
  /** http://ADDR:PORT of the boot service. */
  bootUrl: string;
  tftpRoot: string;
  /** The TFTP files present in tftpRoot. */
  tftpFiles: readonly string[];
  dhcp?: DhcpOptions & { subnet: { network: string; netmask: string } };
  /** The user dnsmasq runs as after it has bound its ports (default: it drops to `nobody`, who
   *  cannot read the private data directory; the server passes its own user). */
  user?: string;
}

/** A value of a dnsmasq option: dnsmasq splits on commas and reads `"` and `\` as quoting, so none may appear. */
function value(what: string, v: string): string {
  if (/[\s,"\\#]/.test(v) || v === '') throw new WarrenError('PROVISION_BAD_ADDRESS', `${what} "${v}" cannot go into the dnsmasq configuration (white space, a comma, a quote, a backslash or # in it)`, { hint: 'use a plain address, name or URL' });
  return v;
}

/** The dnsmasq configuration (text) for these nodes. */
export function dnsmasqConfig(i: DnsmasqInput): string {
  const url = value('the boot URL', `${i.bootUrl}/provision/ipxe?mac=\${net0/mac}`);
  const L: string[] = [
    '# Written by `warren server --provision` from the inventory; do not edit (it is rewritten when the inventory changes).',
    '# DNS is not served (port=0): only DHCP and TFTP.',
    'port=0',
    'log-dhcp',
  ];
  if (i.user) L.push(`user=${value('the user', i.user)}`);
  if (i.dhcp) {
    L.push(`interface=${value('the interface', i.dhcp.iface)}`, 'bind-interfaces', 'dhcp-authoritative');
    if (i.dhcp.range) L.push(`dhcp-range=${value('the range', i.dhcp.range.first)},${value('the range', i.dhcp.range.last)},${value('the netmask', i.dhcp.subnet.netmask)},12h`);
    else L.push(`dhcp-range=${value('the network', i.dhcp.subnet.network)},static,${value('the netmask', i.dhcp.subnet.netmask)},12h`);
  } else {
    // Without --dhcp this file is for reading (or a dnsmasq of your own); it still passes dnsmasq --test.
    L.push('# No --dhcp interface: no dhcp-range, so this dnsmasq would hand out no address by itself.');
  }
  L.push('', '# The nodes of the inventory: MAC, address, host name.');
  for (const n of [...i.nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const [dev, d] of Object.entries(n.network).sort(([a], [b]) => a.localeCompare(b))) {
      if (!d.mac || !d.ip) continue;
      L.push(`dhcp-host=${value(`the MAC of ${n.name} ${dev}`, d.mac)},${value(`the address of ${n.name} ${dev}`, parseIp(d.ip).ip)},${value('the node name', n.name)}`);
    }
  }
  L.push(
    '',
    '# iPXE says so in option 175: it gets the script of its MAC from the boot service.',
    'dhcp-match=set:ipxe,175',
    `dhcp-boot=tag:ipxe,${url}`,
    '# PXE firmware first gets iPXE over TFTP: UEFI (client architectures 7 and 9) ipxe.efi, BIOS undionly.kpxe.',
    'dhcp-match=set:efi64,option:client-arch,7',
    'dhcp-match=set:efi64,option:client-arch,9',
  );
  if (i.tftpFiles.includes('ipxe.efi')) L.push('dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi');
  if (i.tftpFiles.includes('undionly.kpxe')) L.push('dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe');
  L.push('enable-tftp', `tftp-root=${value('the TFTP root', i.tftpRoot)}`, '');
  return L.join('\n');
}

/** The subnet of an interface's first IPv4 address (for dhcp-range), or PROVISION_DHCP_FAILED. */
export function interfaceSubnet(iface: string): { address: string; network: string; netmask: string } {
  const a = (networkInterfaces()[iface] ?? []).find((x) => x.family === 'IPv4');
  if (!a) {
    const known = Object.keys(networkInterfaces()).join(', ');
    throw new WarrenError('PROVISION_DHCP_FAILED', `--dhcp ${iface}: this machine has no interface ${iface} with an IPv4 address`, { hint: `give the interface of the provisioning network (here: ${known}) with its address set` });
  }
  const toN = (s: string): number => s.split('.').reduce((v, o) => v * 256 + Number(o), 0);
  const net = toN(a.address) & toN(a.netmask);
  const toS = (v: number): string => [24, 16, 8, 0].map((s) => ((v >>> s) & 255).toString()).join('.');
  return { address: a.address, network: toS(net >>> 0), netmask: a.netmask };
}

/** Parse `IFACE[,FIRST-LAST]` (--dhcp). */
export function parseDhcpOption(spec: string): DhcpOptions {
  const [iface, range, ...rest] = spec.split(',');
  const bad = (why: string): WarrenError => new WarrenError('CLI_BAD_OPTION', `--dhcp ${spec}: ${why}`, { hint: 'give --dhcp IFACE or --dhcp IFACE,FIRST-LAST, e.g. --dhcp eth1,10.0.0.100-10.0.0.200' });
  if (!iface || rest.length > 0 || !/^[A-Za-z0-9_.:-]{1,15}$/.test(iface)) throw bad('not an interface name with an optional range');
  if (range === undefined) return { iface };
  const m = /^([0-9.]+)-([0-9.]+)$/.exec(range);
  if (!m) throw bad('the range is not FIRST-LAST');
  try {
    const a = parseIp(m[1]!);
    const b = parseIp(m[2]!);
    if (a.value > b.value) throw bad(`the range starts after it ends`);
    return { iface, range: { first: a.ip, last: b.ip } };
  } catch (e) {
    if ((e as WarrenError).code === 'CLI_BAD_OPTION') throw e;
    throw bad((e as Error).message);
  }
}

/** Put Debian's iPXE binaries in the TFTP root (those that are installed); their names. */
export function prepareTftpRoot(root: string, from = IPXE_DIR): string[] {
  mkdirSync(root, { recursive: true });
  const have: string[] = [];
  for (const f of IPXE_FILES) {
    const src = join(from, f);
    if (!existsSync(src)) continue;
    copyFileSync(src, join(root, f));
    have.push(f);
  }
  return have;
}

/** Write the file if its text changed (atomically); true when it did. */
export function writeIfChanged(path: string, text: string): boolean {
  if (existsSync(path) && readFileSync(path, 'utf8') === text) return false;
  writeFileSync(`${path}.tmp`, text, { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
  return true;
}

function dnsmasqBin(): string | null {
  for (const d of ['/usr/sbin', '/sbin', ...(process.env.PATH ?? '').split(':')]) if (d && existsSync(`${d}/dnsmasq`)) return `${d}/dnsmasq`;
  return null;
}

/** `dnsmasq --test --conf-file=PATH`: resolves when dnsmasq accepts the file, PROVISION_DHCP_FAILED with its words when not. */
export async function checkDnsmasqConfig(path: string): Promise<void> {
  const bin = dnsmasqBin();
  if (!bin) throw new WarrenError('PROVISION_TOOL_MISSING', 'dnsmasq is not installed: it serves DHCP and TFTP to the nodes', { hint: 'apt-get install dnsmasq-base (scripts/setup.sh does)' });
  const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
    const c = spawn(bin, ['--test', `--conf-file=${path}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    c.stdout.on('data', (d: Buffer) => (text += d.toString()));
    c.stderr.on('data', (d: Buffer) => (text += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, text }));
  });
  if (out.code !== 0) throw new WarrenError('PROVISION_DHCP_FAILED', `dnsmasq refuses ${path}: ${out.text.trim().split('\n').slice(-2).join('; ')}`, { hint: 'fix the node or option it names (warren node list), then start the server again' });
}

/** dnsmasq run in the foreground as the server's child, restarted with a new configuration. */
export class DnsmasqChild {
  private child: ChildProcess | null = null;
  private stopping = false;
  private tail = '';
  constructor(private readonly conf: string, private readonly log: LogFn) {}

  /** Start dnsmasq; PROVISION_DHCP_FAILED when it exits within its first second (it cannot bind, read its TFTP root...). */
  async start(): Promise<void> {
    const bin = dnsmasqBin();
    if (!bin) throw new WarrenError('PROVISION_TOOL_MISSING', 'dnsmasq is not installed: --dhcp runs it', { hint: 'apt-get install dnsmasq-base (scripts/setup.sh does), or leave out --dhcp and point your DHCP server at the boot service' });
    const c = spawn(...dyingWithParent(bin, ['--keep-in-foreground', `--conf-file=${this.conf}`, '--log-facility=-']), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = c;
    this.tail = '';
    const line = (d: Buffer): void => {
      this.tail = (this.tail + d.toString()).slice(-2000);
      for (const l of d.toString().split('\n')) if (l.trim()) this.log('debug', `dnsmasq: ${l.trim()}`);
    };
    c.stdout!.on('data', line);
    c.stderr!.on('data', line);
    c.on('exit', (code, sig) => {
      if (this.child === c) this.child = null;
      if (!this.stopping) this.log('error', `dnsmasq exited (${sig ?? `exit ${code}`}): the nodes get no DHCP answers until the server restarts it with the next inventory change or is restarted; it said: ${this.tail.trim().split('\n').slice(-2).join('; ')}`);
    });
    const early = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 1000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (early) {
      this.child = null;
      throw new WarrenError('PROVISION_DHCP_FAILED', `dnsmasq did not start with ${this.conf}: ${this.tail.trim().split('\n').slice(-2).join('; ') || 'no message'}`, { hint: 'is another DHCP server running on this machine (ss -ulnp | grep :67)? read dnsmasq\'s words above' });
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stop and start again (a new configuration). */
  async restart(): Promise<void> {
    await this.stop();
    this.stopping = false;
    await this.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const c = this.child;
    this.child = null;
    await stopChild(c, 3000);
  }
}
