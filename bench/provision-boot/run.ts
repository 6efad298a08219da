// Boot path timing (test/provision/boot-path.ts): qemu start to the /init marker on ttyS0, a
// Debian node image (kernel + root file system initrd + /init initrd) network-booted with iPXE
// from dnsmasq and a static HTTP server in a network namespace, under KVM and under software
// emulation (TCG), side by side.
//   bash bench/run.sh provision-boot [--runs N]     (N KVM boots, default 3; one TCG boot)
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseImageUnavailable, ensureBaseImage } from '../../test/provision/node-image.js';
import { bootPathFiles, bootToMarker, startBootPathServices } from '../../test/provision/boot-path.js';
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
const net = await createBootNet({ vms: 1 });
try {
  const { root, kernelVersion } = await bootPathFiles(base, dir);
  const rootfs = statSync(join(root, 'rootfs.cpio.gz')).size;
  const mac = '52:54:00:77:c8:0b';
  const { requests } = await startBootPathServices(net, dir, root, [mac]);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const kvm: number[] = [];
  const accel = await ipxeAccelerator();
  if (accel === 'kvm') {
    for (let i = 0; i < runs; i++) kvm.push((await bootToMarker(net, dir, { index: 0, mac, accel: 'kvm', timeoutMs: 300_000, requests })).ms);
  }
  const tcg = (await bootToMarker(net, dir, { index: 0, mac, accel: 'tcg', timeoutMs: 1_200_000, requests })).ms;
  console.log(`kernel ${kernelVersion}, rootfs initrd ${(rootfs / 1e6).toFixed(1)} MB (gzip -1), VM 1536 MiB, 1 vCPU`);
  console.log('| accel | boot to /init marker (qemu start → ttyS0 line) | runs |');
  console.log('| --- | --- | --- |');
  if (kvm.length) console.log(`| KVM | ${(median(kvm) / 1000).toFixed(1)} s median (${kvm.map((m) => (m / 1000).toFixed(1)).join(', ')}) | ${kvm.length} |`);
  else console.log(`| KVM | not used: ${acceleratorWhy} | 0 |`);
  console.log(`| TCG | ${(tcg / 1000).toFixed(1)} s | 1 |`);
  if (kvm.length) console.log(`TCG / KVM = ${(tcg / median(kvm)).toFixed(2)}×`);
} finally {
  net.destroy();
  rmSync(dir, { recursive: true, force: true });
}
