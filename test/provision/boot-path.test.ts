// The boot path with plain tools (test/provision/boot-path.ts): iPXE from Debian's ROM, DHCP from
// dnsmasq, kernel + two initrds over HTTP, /init from the second initrd running on the first's
// files, all in a network namespace. Proves what the boot service relies on, without Warren.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../helpers.js';
import { baseImageUnavailable, ensureBaseImage } from './node-image.js';
import { bootPathFiles, bootToMarker, MARKER, startBootPathServices } from './boot-path.js';
import { acceleratorWhy, bootNetUnavailable, createBootNet, ipxeAccelerator } from './vm-harness.js';

const skip = bootNetUnavailable();

test('boot path: iPXE + dnsmasq + HTTP boot a Debian kernel with two initrds to /init (no Warren)', { skip, timeout: 1_500_000 }, async (t) => {
  const why = await baseImageUnavailable();
  if (why) {
    t.skip(why);
    return;
  }
  const base = await ensureBaseImage();
  const w = tempDir('warren-bootpath-');
  t.after(w.cleanup);
  const { root, kernelVersion } = await bootPathFiles(base, w.dir);
  const net = await createBootNet({ vms: 1 });
  t.after(() => net.destroy());
  const mac = '52:54:00:77:c8:0b';
  const { requests } = await startBootPathServices(net, w.dir, root, [mac]);
  const accel = await ipxeAccelerator();
  const r = await bootToMarker(net, w.dir, { index: 0, mac, accel, timeoutMs: accel === 'kvm' ? 180_000 : 900_000, requests });
  t.diagnostic(`${accel} (${acceleratorWhy}): marker after ${r.ms} ms: ${r.line}`);
  // The kernel is the image's, /etc/debian_version came from the rootfs initrd, /init from the other.
  assert.match(r.line, new RegExp(`^${MARKER} kernel=${kernelVersion.replace(/[.+]/g, '\\$&')} debian=12\\.\\d+ mem_kb=\\d+ uptime=`));
  const memKb = Number(/mem_kb=(\d+)/.exec(r.line)![1]);
  assert.ok(memKb > 1_200_000 && memKb < 1_600_000, `the VM has about 1536 MiB (MemTotal ${memKb} kB)`);
  // iPXE expanded ${net0/mac} in the DHCP boot file name (URI-encoded), then fetched each file once.
  assert.deepEqual(r.requests, [`GET /ipxe?mac=${encodeURIComponent(mac)} 200`, 'GET /vmlinuz 200', 'GET /rootfs.cpio.gz 200', 'GET /init.cpio.gz 200']);
  assert.equal(r.exitCode, 0, '/init powered the VM off (qemu -no-reboot exits 0)');
});
