// Provisioning end to end (issue 13, section 5), with the real CLI and real VMs: in a network
// namespace of its own (test/provision/vm-harness.ts: bridge br0 = 10.77.200.1/24, two taps;
// nothing leaves it), `warren server --provision --dhcp br0` (the boot service and its dnsmasq)
// boots two qemu VMs over the network with Debian's iPXE ROM into a node image built by
// `warren image node-build` from a Debian tree (test/provision/node-image.ts: debootstrap,
// Debian's kernel, this machine's Node 20 and this checkout's Warren under /opt/warren). Each VM
// applies its overlays (warren-system, warren-runtime), starts `warren agent`, which joins the
// server with the join token of that boot; a workflow job runs on each (through an admin
// context), and each has its own hostname and address, in `warren node list --json` and in the
// job's output. Everything runs under one bound (BOOT_BOUND_MS from the VMs' start); the
// namespace, its processes (server, dnsmasq, nginx, qemu) and the temporary files always go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir, warrenBin } from '../helpers.js';
import { atProcessExit } from '../helpers/cleanup.js';
import { baseImageUnavailable, ensureBaseImage, prepareNodeTree } from './node-image.js';
import { acceleratorWhy, bootNetUnavailable, createBootNet, ipxeAccelerator, SUBNET, startVm, type Vm } from './vm-harness.js';

const skip = bootNetUnavailable();
/** From the VMs' start to both agents joined and both jobs done (KVM or software emulation). */
const BOOT_BOUND_MS = 6 * 60_000;
const API_PORT = 19543;
const BOOT_PORT = 9873;
const MACS = ['52:54:00:77:c8:11', '52:54:00:77:c8:12'];
const IPS = [`${SUBNET}.11`, `${SUBNET}.12`];
const NAMES = ['n01', 'n02'];

interface NodeRow {
  name: string;
  state?: string;
  labels?: Record<string, string>;
  address?: string;
  [k: string]: unknown;
}

test('provisioning end to end: two qemu VMs network-boot a Debian node image, join, and run a job each', { skip, timeout: 1_800_000 }, async (t) => {
  const why = await baseImageUnavailable();
  if (why) {
    t.skip(why);
    return;
  }
  // The cached Debian base (minutes the first time, outside the bound), then this run's tree.
  const base = await ensureBaseImage();
  const w = tempDir('warren-e2e-');
  const unregister = atProcessExit(w.cleanup); // also on SIGINT/SIGTERM, when t.after does not run
  t.after(() => {
    unregister();
    w.cleanup();
  });
  const tree = await prepareNodeTree(base, join(w.dir, 'tree'));
  const net = await createBootNet({ vms: 2 });
  const vms: Vm[] = [];
  t.after(async () => {
    for (const vm of vms) await vm.stop();
    net.destroy();
  });

  const srv = join(w.dir, 'srv');
  const env = { ...process.env, WARREN_HOME: join(w.dir, 'home'), XDG_CONFIG_HOME: join(w.dir, 'cfg'), WARREN_CONTEXT: '' };
  const cli = async (args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> => net.exec(process.execPath, [warrenBin, ...args], { env, timeoutMs });
  const ok = async (args: string[], timeoutMs?: number): Promise<string> => {
    const r = await cli(args, timeoutMs);
    assert.equal(r.code, 0, `warren ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  // The server with the boot service and dnsmasq on the namespace's bridge.
  const server = net.spawn(process.execPath, [warrenBin, 'server', '--data', srv, '--listen', `${SUBNET}.1:${API_PORT}`, '--provision', `${SUBNET}.1:${BOOT_PORT}`, '--dhcp', 'br0', '--heartbeat', '1s', '--grace', '5s'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let serverLog = '';
  server.stdout!.on('data', (d) => (serverLog += d));
  server.stderr!.on('data', (d) => (serverLog += d));
  // On failure: the server's log, each console's boot milestones and its tail (and, with
  // WARREN_E2E_KEEP=DIR, the whole consoles copied there).
  const milestones = /iPXE|initramfs|Initramfs|Freeing initrd|Run \/init|panic|systemd\[1\]: (Started|Failed)|warren|Warren|login:/;
  const diag = (): string => {
    const keep = process.env.WARREN_E2E_KEEP;
    if (keep) for (const vm of vms) cpSync(vm.serial, join(keep, basename(vm.serial)));
    return `\n--- server log ---\n${serverLog.slice(-6000)}\n${vms.map((vm, i) => { const c = vm.console(); return `--- console of ${NAMES[i]}: milestones ---\n${c.split('\n').filter((l) => milestones.test(l)).slice(-40).join('\n')}\n--- its tail ---\n${c.slice(-2500)}`; }).join('\n')}`;
  };
  const t0 = Date.now();
  while (!serverLog.includes('ready: ')) {
    assert.equal(server.exitCode, null, `warren server exited: ${serverLog}`);
    assert.ok(Date.now() - t0 < 60_000, `warren server not ready in 60 s: ${serverLog}`);
    await sleep(100);
  }
  const adminToken = readFileSync(join(srv, 'admin.token'), 'utf8').trim();
  await ok(['context', 'add', 'admin', '--server', `https://${SUBNET}.1:${API_PORT}`, '--token', adminToken, '--ca', join(srv, 'ca.pem')]);
  await ok(['context', 'use', 'admin']);

  // The inventory: one profile, a range of two nodes whose MAC and IP count up.
  await ok(['profile', 'add', 'compute', '--image', tree, '--kernel-args', 'console=ttyS0 panic=-1', '--tag', 'role=e2e']);
  await ok(['node', 'add', 'n[01-02]', '--profile', 'compute', '--mac', MACS[0]!, '--ip', `${IPS[0]}/24`]);
  const build = await ok(['image', 'node-build', tree, '--json'], 600_000);
  const img = JSON.parse(build) as { digest: string; kernelVersion: string; rootfsSize: number };
  t.diagnostic(`node image ${img.digest.slice(0, 19)}: kernel ${img.kernelVersion}, rootfs ${(img.rootfsSize / 1e6).toFixed(0)} MB`);

  const accel = await ipxeAccelerator();
  t.diagnostic(`VMs under ${accel} (${acceleratorWhy})`);
  const start = Date.now();
  const left = (): number => BOOT_BOUND_MS - (Date.now() - start);
  for (let i = 0; i < 2; i++) vms.push(startVm(net, { index: i, mac: MACS[i]!, accel, serial: join(w.dir, `${NAMES[i]}.console`) }));

  // Both agents join under their inventory names.
  let rows: NodeRow[] = [];
  for (;;) {
    const r = await cli(['node', 'list', '--json']);
    if (r.code === 0) {
      rows = JSON.parse(r.stdout) as NodeRow[];
      if (NAMES.every((n) => rows.find((x) => x.name === n)?.state === 'ready')) break;
    }
    for (const [i, vm] of vms.entries()) assert.ok(vm.child.exitCode === null && vm.child.signalCode === null, `the VM of ${NAMES[i]} ended (${vm.child.exitCode ?? vm.child.signalCode}): ${vm.stderr()}${diag()}`);
    assert.ok(left() > 0, `the agents did not both join within ${BOOT_BOUND_MS / 1000} s of the VMs' start: ${r.stdout}${r.stderr}${diag()}`);
    await sleep(2000);
  }
  const joinedMs = Date.now() - start;
  t.diagnostic(`both agents joined ${(joinedMs / 1000).toFixed(1)} s after the VMs started (${accel})`);
  for (const [i, n] of NAMES.entries()) {
    const row = rows.find((x) => x.name === n)!;
    assert.equal(row.labels?.role, 'e2e', `${n}: the profile's tag is its agent's label: ${JSON.stringify(row)}`);
    assert.ok(JSON.stringify(row).includes(IPS[i]!), `${n}: its address ${IPS[i]} in node list: ${JSON.stringify(row)}`);
  }

  // A job on each node: the other one drained while it runs.
  const flow = join(w.dir, 'whoami.yaml');
  writeFileSync(flow, `version: v1\njobs:\n  whoami:\n    command: [/bin/sh, -c, 'echo "host=$(hostname) node=$WARREN_NODE addr=$(ip -4 -o addr show scope global | tr -s " " | cut -d " " -f 4 | paste -sd ,)"']\n`);
  const outputs: string[] = [];
  for (const [i, n] of NAMES.entries()) {
    const other = NAMES[1 - i]!;
    await ok(['node', 'drain', other, '--reason', 'e2e: the job goes to the other node']);
    await ok(['node', 'undrain', n]).catch(() => '');
    const run = await cli(['run', '--detach', '--json', flow], Math.max(left(), 10_000));
    assert.equal(run.code, 0, `warren run on ${n}: ${run.stderr}${diag()}`);
    const { id } = JSON.parse(run.stdout) as { id: string };
    let status = '';
    for (;;) {
      const st = await cli(['status', id, '--json']);
      status = st.code === 0 ? (JSON.parse(st.stdout) as { status: string }).status : '';
      if (['succeeded', 'failed', 'canceled'].includes(status)) break;
      assert.ok(left() > 0, `the job on ${n} did not end within the bound (status ${status}): ${st.stdout}${st.stderr}${diag()}`);
      await sleep(1000);
    }
    assert.equal(status, 'succeeded', `the job on ${n}${diag()}`);
    const out = (await ok(['logs', id, 'whoami'])).trim();
    outputs.push(out);
    assert.match(out, new RegExp(`^host=${n} node=${n} addr=${IPS[i]!.replace(/\./g, '\\.')}/24\\b`), `the job ran on ${n} with its hostname and address`);
  }
  await ok(['node', 'undrain', NAMES[0]!]);
  t.diagnostic(`job outputs: ${outputs.join(' | ')}; total ${((Date.now() - start) / 1000).toFixed(1)} s from the VMs' start`);

  // The boot service recorded each node's boot.
  const status = await ok(['node', 'status', '--json']);
  for (const n of NAMES) assert.ok(status.includes(n) && status.includes(img.digest.replace(/^sha256:/, '').slice(0, 12)), `node status of ${n}: ${status}`);
});
