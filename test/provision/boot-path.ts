// The boot path with plain tools, no Warren: a VM network-boots with Debian's iPXE ROM, gets its
// address and boot script URL from dnsmasq, loads a Debian kernel and two initrds over HTTP (the
// node image's root file system and a small one with a hand-written /init, as the boot service
// sends a node image and its overlays), and the kernel unpacks both into its root file system
// and runs /init, which prints a marker on ttyS0 and powers the VM off. Used by
// boot-path.test.ts and bench/provision-boot.
import { existsSync, mkdirSync, readdirSync, readFileSync, copyFileSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packCpioGz } from '../../src/provision/index.js';
import { type BootNet, SUBNET, startDnsmasq, startVm, waitForSerial } from './vm-harness.js';

const here = dirname(fileURLToPath(import.meta.url));
export const HTTP_PORT = 19500;
export const MARKER = 'WARREN-BOOT-PATH-MARKER';

/** The kernel of a root file system tree: /boot/vmlinuz-<version> (the newest). */
export function kernelOf(tree: string): { path: string; version: string } {
  const k = readdirSync(join(tree, 'boot')).filter((f) => f.startsWith('vmlinuz-')).sort().pop();
  if (!k) throw new Error(`no /boot/vmlinuz-* in ${tree}`);
  return { path: join(tree, 'boot', k), version: k.slice('vmlinuz-'.length) };
}

/**
 * The root file system of `tree` packed once, cached beside it (`<tree>.rootfs.cpio.gz`;
 * packCpioGz writes a partial file and renames it when whole).
 */
export async function cachedRootfs(tree: string): Promise<string> {
  const out = `${tree}.rootfs.cpio.gz`;
  if (!existsSync(out)) await packCpioGz(tree, out, { level: 1, exclude: ['.complete', 'boot/initrd.img-*'] });
  return out;
}

/** Writes the HTTP root: vmlinuz, rootfs.cpio.gz, init.cpio.gz and the iPXE script `ipxe`. */
export async function bootPathFiles(tree: string, dir: string): Promise<{ root: string; kernelVersion: string }> {
  const root = join(dir, 'www');
  mkdirSync(root, { recursive: true });
  const k = kernelOf(tree);
  copyFileSync(k.path, join(root, 'vmlinuz'));
  copyFileSync(await cachedRootfs(tree), join(root, 'rootfs.cpio.gz'));
  const init = join(dir, 'init-tree');
  mkdirSync(init, { recursive: true });
  // dash, mount and cat come from the other initrd (the image): the marker proves both arrived.
  writeFileSync(
    join(init, 'init'),
    [
      '#!/bin/sh',
      'mount -t proc proc /proc',
      'echo "' + MARKER + ' kernel=$(uname -r) debian=$(cat /etc/debian_version) mem_kb=$(awk \'/MemTotal/ {print $2}\' /proc/meminfo) uptime=$(cut -d" " -f1 /proc/uptime)"',
      'echo o > /proc/sysrq-trigger',
      'sleep 60',
      '',
    ].join('\n'),
  );
  chmodSync(join(init, 'init'), 0o755);
  await packCpioGz(init, join(root, 'init.cpio.gz'), { rootOwned: true });
  const base = `http://${SUBNET}.1:${HTTP_PORT}`;
  writeFileSync(
    join(root, 'ipxe'),
    [
      '#!ipxe',
      'echo warren boot-path: ${net0/mac} ${net0/ip}',
      `kernel ${base}/vmlinuz initrd=rootfs.cpio.gz initrd=init.cpio.gz console=ttyS0 panic=-1`,
      `initrd --name rootfs.cpio.gz ${base}/rootfs.cpio.gz`,
      `initrd --name init.cpio.gz ${base}/init.cpio.gz`,
      'boot',
      '',
    ].join('\n'),
  );
  return { root, kernelVersion: k.version };
}

export interface BootPathRun {
  /** The marker line the VM printed. */
  line: string;
  /** ms from qemu's start to the marker on the console. */
  ms: number;
  /** The HTTP requests the server saw (`GET /path?query STATUS`). */
  requests: string[];
  /** qemu's exit code (0: powered off by /init). */
  exitCode: number | null;
}

/** Starts the static server and dnsmasq in `net` (once per network). */
export async function startBootPathServices(net: BootNet, dir: string, root: string, macs: string[]): Promise<{ requests: string[] }> {
  const server = net.spawn(process.execPath, [join(here, 'static-http.js'), root, `${SUBNET}.1`, String(HTTP_PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const requests: string[] = [];
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the static HTTP server did not start within 15 s')), 15_000);
    server.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const l of lines) {
        if (l === 'listening') {
          clearTimeout(t);
          resolve();
        } else requests.push(l);
      }
    });
    server.on('exit', (c) => reject(new Error(`the static HTTP server exited (${c})`)));
  });
  await startDnsmasq(net, {
    dir,
    bootUrl: `http://${SUBNET}.1:${HTTP_PORT}/ipxe?mac=\${net0/mac}`,
    hosts: macs.map((mac, i) => ({ mac, ip: `${SUBNET}.${11 + i}` })),
  });
  return { requests };
}

/**
 * The same kernel and initrds (concatenated into one file, as iPXE hands them over) loaded by
 * qemu itself, without firmware, DHCP or HTTP: the baseline of the boot path bench.
 */
export function directBoot(root: string, dir: string): { kernel: string; initrd: string; append: string } {
  const initrd = join(dir, 'direct-initrd.cpio.gz');
  writeFileSync(initrd, Buffer.concat([readFileSync(join(root, 'rootfs.cpio.gz')), readFileSync(join(root, 'init.cpio.gz'))]));
  return { kernel: join(root, 'vmlinuz'), initrd, append: 'console=ttyS0 panic=-1' };
}

/** Boots VM `index` (tap `index`) to the marker; the VM is gone when this returns. */
export async function bootToMarker(net: BootNet, dir: string, opts: { index: number; mac: string; accel: 'kvm' | 'tcg'; timeoutMs: number; requests: string[]; direct?: { kernel: string; initrd: string; append: string } }): Promise<BootPathRun> {
  const vm = startVm(net, { index: opts.index, mac: opts.mac, accel: opts.accel, serial: join(dir, `vm${opts.index}-${opts.accel}${opts.direct ? '-direct' : ''}.log`), ...(opts.direct ? { direct: opts.direct } : {}) });
  try {
    const { match, ms } = await waitForSerial(vm, new RegExp(`${MARKER} [^\\n]*\\n`), opts.timeoutMs, 'boot-path marker');
    const exited = await new Promise<number | null>((resolve) => {
      if (vm.child.exitCode !== null) return resolve(vm.child.exitCode);
      const t = setTimeout(() => resolve(null), 30_000);
      vm.child.once('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    return { line: match[0].trim(), ms, requests: [...opts.requests], exitCode: exited };
  } finally {
    await vm.stop();
  }
}
