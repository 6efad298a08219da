// Boot path timing (test/provision/boot-path.ts): qemu start to the /init marker on ttyS0, a
// Debian node image (kernel + root file system initrd + /init initrd) network-booted with iPXE
// from dnsmasq and a static HTTP server in a network namespace, under KVM and under software
// emulation (TCG), side by side with the baseline: the same kernel and initrds loaded by qemu
// itself (-kernel/-initrd: no firmware, DHCP or HTTP), under the same accelerator.
//   bash bench/run.sh provision-boot [--runs N]     (N boots of each, default 3)
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseImageUnavailable, ensureBaseImage } from '../../test/provision/node-image.js';
import { bootPathFiles, bootToMarker, directBoot, startBootPathServices } from '../../test/provision/boot-path.js';
import { acceleratorWhy, bootNetUnavailable, createBootNet, ipxeAccelerator } from '../../test/provision/vm-harness.js';

const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
const why = bootNetUnavailable() || (await baseImageUnavailable());
if (why) {
  console.error(`provision-boot: cannot run here: ${why}`);
  process.exit(1);
}
const base = await ensureBaseImage({ log: (s) => process.stderr.write(s) });
const dir = mkdtempSync(join(tmpdir(), 'warren-bench-boot-'));
const bootNet = await createBootNet({ vms: 1 });
try {
  const { root, kernelVersion } = await bootPathFiles(base, dir);
  const rootfs = statSync(join(root, 'rootfs.cpio.gz')).size;
  const mac = '52:54:00:77:c8:0b';
  const { requests } = await startBootPathServices(bootNet, dir, root, [mac]);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const direct = directBoot(root, dir);
  const accel = await ipxeAccelerator();
  const rows: string[] = [];
  for (const a of accel === 'kvm' ? (['kvm', 'tcg'] as const) : (['tcg'] as const)) {
    const net: number[] = [];
    const baseline: number[] = [];
    for (let i = 0; i < runs; i++) {
      net.push((await bootToMarker(bootNet, dir, { index: 0, mac, accel: a, timeoutMs: 1_200_000, requests })).ms);
      baseline.push((await bootToMarker(bootNet, dir, { index: 0, mac, accel: a, timeoutMs: 1_200_000, requests, direct })).ms);
    }
    const f = (xs: number[]): string => `${(median(xs) / 1000).toFixed(1)} s (${xs.map((m) => (m / 1000).toFixed(1)).join(', ')})`;
    rows.push(`| ${a.toUpperCase()} | ${f(net)} | ${f(baseline)} | ${(median(net) / median(baseline)).toFixed(2)}× |`);
  }
  console.log(`kernel ${kernelVersion}, rootfs initrd ${(rootfs / 1e6).toFixed(1)} MB (gzip -1), VM 1536 MiB, 1 vCPU, ${runs} run(s) each, median (all)`);
  console.log('| accel | network boot: iPXE + DHCP + HTTP, qemu start → /init marker | baseline: qemu -kernel/-initrd, same files | ratio |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
  if (accel !== 'kvm') console.log(`KVM: not used: ${acceleratorWhy}`);
} finally {
  bootNet.destroy();
  rmSync(dir, { recursive: true, force: true });
}
