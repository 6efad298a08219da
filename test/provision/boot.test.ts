// The boot service of `warren server --provision`: the real server (SQLite store, join tokens
// with migration v9) with its boot service on loopback; requests come from chosen loopback
// addresses (127.0.0.2 is node n1's inventory address, 127.0.0.3 node n2's) so the "secrets
// only to their node" rule is tested for real. The inventory is in memory (test/provision/
// memory-inventory.ts: the store's is another part of issue 13); overlays are real cpio.gz
// archives (packCpioGz) unpacked by GNU cpio here.
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { WarrenError } from '../../src/common/index.js';
import { MemoryTokenStore, consumeJoinToken, createJoinToken, hashToken } from '../../src/mesh/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { startServer, type RunningServer } from '../../src/server/serve.js';
import { BootService, checkDnsmasqConfig, dnsmasqConfig, nginxConfig, parseDhcpOption, parseRange, startBootService, DirImageSource, type RunningBoot } from '../../src/server/boot/index.js';
import { resolveNode } from '../../src/provision/index.js';
import { freePort, tempDir, warrenBin } from '../helpers.js';
import { createNetwork, netnsAvailable } from '../helpers/netns.js';
import { MemoryInventory } from './memory-inventory.js';
import { TreeOverlays } from './tree-overlays.js';

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP request from a chosen source address. */
function get(url: string, o: { from?: string; headers?: Record<string, string>; method?: string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, ...(o.from ? { localAddress: o.from } : {}), agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

const wire = (r: Res): { code: string; message: string; hint?: string } => (JSON.parse(r.body.toString()) as { error: { code: string; message: string; hint?: string } }).error;

/** The files of a cpio.gz archive, unpacked by GNU cpio. */
function unpack(archive: Buffer, into: string): void {
  mkdirSync(into, { recursive: true });
  const r = spawnSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { cwd: into, input: gunzipSync(archive) });
  assert.equal(r.status, 0, r.stderr.toString());
}

const SOURCE = 'docker://debian:12';
const MAC1 = '52:54:00:aa:00:01';
const MAC2 = '52:54:00:aa:00:02';

/** A node image as `warren image node-build` leaves it. */
function makeImage(data: string, source: string): { hex: string; kernel: Buffer; rootfs: Buffer; kernelSha: string; rootfsSha: string } {
  const hex = createHash('sha256').update(source).digest('hex');
  const dir = join(data, 'provision', 'images', hex);
  mkdirSync(dir, { recursive: true });
  const kernel = randomBytes(70_000);
  const rootfs = randomBytes(3 << 20);
  writeFileSync(join(dir, 'vmlinuz'), kernel);
  writeFileSync(join(dir, 'rootfs.cpio.gz'), rootfs);
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  writeFileSync(join(dir, 'image.json'), JSON.stringify({ digest: `sha256:${hex}`, source, dir, kernelVersion: '6.1.0-test', kernelPath: join(dir, 'vmlinuz'), rootfsPath: join(dir, 'rootfs.cpio.gz'), kernelSha256: sha(kernel), rootfsSha256: sha(rootfs), kernelSize: kernel.length, rootfsSize: rootfs.length, builtAt: Date.now() }));
  return { hex, kernel, rootfs, kernelSha: sha(kernel), rootfsSha: sha(rootfs) };
}

function makeOverlays(dir: string): void {
  mkdirSync(join(dir, 'warren-system', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'warren-system', 'init'), '#!/bin/sh\nexec /sbin/init\n', { mode: 0o755 });
  mkdirSync(join(dir, 'warren-runtime', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'warren-runtime', 'etc', 'hosts'), '127.0.0.1 localhost\n');
}

describe('boot service (warren server --provision)', () => {
  const t = tempDir('warren-boot-');
  const data = join(t.dir, 'data');
  const inventory = new MemoryInventory();
  const overlays = new TreeOverlays(join(t.dir, 'overlays'));
  const logs: { level: string; msg: string }[] = [];
  let server: RunningServer;
  let boot: string;
  let img: ReturnType<typeof makeImage>;

  before(async () => {
    img = makeImage(data, SOURCE);
    makeOverlays(join(t.dir, 'overlays'));
    const common = { image: SOURCE, kernelArgs: ['console=ttyS0', 'quiet'], systemOverlays: ['warren-system'], runtimeOverlays: ['warren-runtime'] };
    inventory.add('n1', MAC1, '127.0.0.2/8', common);
    inventory.add('n2', MAC2, '127.0.0.3/8', common);
    inventory.add('n3', '52:54:00:aa:00:03', '127.0.0.4/8', { ...common, image: 'docker://never-built:1' });
    inventory.add('n4', '52:54:00:aa:00:04', '127.0.0.5/8', { ...common, image: undefined } as never);
    delete inventory.nodes.get('n4')!.image;
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: data,
      log: (level, msg) => logs.push({ level, msg }),
      provision: { host: '127.0.0.1', port: await freePort(), nginx: 'off', inventory, overlays, tokenTtlSeconds: 300 },
    });
    boot = server.bootUrl!;
  });
  after(async () => {
    await server?.close();
    t.cleanup();
  });

  test('the iPXE script of a known MAC: kernel with its arguments and the initrd names, three initrds, boot; its boot status', async () => {
    const r = await get(`${boot}/provision/ipxe?mac=52-54-00-AA-00-01`, { from: '127.0.0.2' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store');
    const lines = r.body.toString().split('\n');
    assert.equal(lines[0], '#!ipxe');
    const base = `${boot}/provision/images/${img.hex}`;
    assert.ok(lines.includes(`kernel ${base}/vmlinuz initrd=rootfs.cpio.gz initrd=system.cpio.gz initrd=runtime.cpio.gz console=ttyS0 quiet || goto failed`), r.body.toString());
    assert.ok(lines.includes(`initrd --name rootfs.cpio.gz ${base}/rootfs.cpio.gz || goto failed`));
    assert.ok(lines.includes(`initrd --name system.cpio.gz ${boot}/provision/overlays/system.cpio.gz?mac=52%3A54%3A00%3Aaa%3A00%3A01 || goto failed`));
    assert.ok(lines.includes(`initrd --name runtime.cpio.gz ${boot}/provision/overlays/runtime.cpio.gz?mac=52%3A54%3A00%3Aaa%3A00%3A01 || goto failed`));
    assert.ok(lines.indexOf('boot || goto failed') > lines.findIndex((l) => l.startsWith('initrd --name runtime')));
    const st = await inventory.getBootStatus('n1');
    assert.equal(st?.imageDigest, `sha256:${img.hex}`);
    assert.equal(st?.from, '127.0.0.2');
    assert.equal(st?.lastRequest, '/provision/ipxe');
    assert.ok(st?.bootedAt && st.bootedAt <= Date.now());
  });

  test('an unknown MAC gets a script that says so on the console, then sleeps and reboots; the server logs a warning', async () => {
    const r = await get(`${boot}/provision/ipxe?mac=52:54:00:ff:ff:ff`);
    assert.equal(r.status, 200);
    const s = r.body.toString();
    assert.match(s, /^#!ipxe\n/);
    assert.match(s, /echo .*MAC 52:54:00:ff:ff:ff.* not in the inventory/);
    assert.match(s, /echo .*warren node add NAME --mac 52:54:00:ff:ff:ff --ip/);
    assert.match(s, /\nsleep 30\nreboot\n$/);
    assert.doesNotMatch(s, /\nkernel /);
    assert.ok(logs.some((l) => l.level === 'warn' && l.msg.includes('52:54:00:ff:ff:ff') && l.msg.includes('not in the inventory')));
  });

  test('a node whose node image was never built, or that has no image, is told what to run', async () => {
    const r = await get(`${boot}/provision/ipxe?mac=52:54:00:aa:00:03`);
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /echo .*n3.*has not been built/);
    assert.match(r.body.toString(), /echo .*warren image node-build docker:\/\/never-built:1/);
    assert.doesNotMatch(r.body.toString(), /\nkernel /);
    const r4 = await get(`${boot}/provision/ipxe?mac=52:54:00:aa:00:04`);
    assert.match(r4.body.toString(), /n4 has no image/);
    assert.match(r4.body.toString(), /warren node set n4 --image IMAGE/);
    assert.ok(logs.some((l) => l.level === 'warn' && l.msg.includes('warren image node-build docker://never-built:1')));
    // A node whose profile is gone: the reason on its console, not an HTTP error iPXE would not show.
    inventory.add('n5', '52:54:00:aa:00:05', '127.0.0.6/8', { profiles: ['gone'] });
    const r5 = await get(`${boot}/provision/ipxe?mac=52:54:00:aa:00:05`);
    assert.equal(r5.status, 200);
    assert.match(r5.body.toString(), /^echo Warren: this machine \(MAC 52:54:00:aa:00:05\) cannot boot: node n5 uses profile gone, which does not exist$/m);
    assert.match(r5.body.toString(), /^echo Fix it on the server: add it \(`warren profile add gone`\)/m);
    inventory.nodes.delete('n5');
  });

  test('bad requests: no mac, a MAC that does not parse, another method, another path', async () => {
    const none = await get(`${boot}/provision/ipxe`);
    assert.equal(none.status, 400);
    assert.equal(wire(none).code, 'PROVISION_BOOT_BAD_REQUEST');
    assert.match(wire(none).message, /needs \?mac=MAC/);
    const bad = await get(`${boot}/provision/ipxe?mac=zz:zz`);
    assert.equal(bad.status, 400);
    assert.equal(wire(bad).code, 'PROVISION_BAD_ADDRESS');
    const post = await get(`${boot}/provision/ipxe?mac=${MAC1}`, { method: 'POST' });
    assert.equal(post.status, 400);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const other = await get(`${boot}/provision/images/${img.hex}/image.json`);
    assert.equal(other.status, 404);
    assert.equal(wire(other).code, 'PROVISION_BOOT_NOT_FOUND');
    const gone = await get(`${boot}/provision/images/${'e'.repeat(64)}/vmlinuz`);
    assert.equal(gone.status, 404);
    assert.match(wire(gone).message, /no node image sha256:e{64}/);
  });

  test('image files: whole, one range, the last bytes, HEAD, 304 on the digest ETag, 416 outside the file', async () => {
    const url = `${boot}/provision/images/${img.hex}/rootfs.cpio.gz`;
    const whole = await get(url, { from: '127.0.0.2' });
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(img.rootfs));
    assert.equal(whole.headers.etag, `"sha256-${img.rootfsSha}"`);
    assert.equal(whole.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    assert.equal((await inventory.getBootStatus('n1'))?.lastRequest, `/provision/images/${img.hex}/rootfs.cpio.gz`);
    const part = await get(url, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${img.rootfs.length}`);
    assert.ok(part.body.equals(img.rootfs.subarray(1000, 2000)));
    const open = await get(url, { headers: { range: `bytes=${img.rootfs.length - 10}-` } });
    assert.equal(open.status, 206);
    assert.ok(open.body.equals(img.rootfs.subarray(img.rootfs.length - 10)));
    const tail = await get(`${boot}/provision/images/${img.hex}/vmlinuz`, { headers: { range: 'bytes=-16' } });
    assert.equal(tail.status, 206);
    assert.ok(tail.body.equals(img.kernel.subarray(img.kernel.length - 16)));
    assert.equal(tail.headers.etag, `"sha256-${img.kernelSha}"`);
    const head = await get(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(img.rootfs.length));
    assert.equal(head.body.length, 0);
    const cached = await get(url, { headers: { 'if-none-match': `"x", "sha256-${img.rootfsSha}"` } });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);
    const stale = await get(url, { headers: { 'if-none-match': '"sha256-00"' } });
    assert.equal(stale.status, 200);
    for (const range of [`bytes=${img.rootfs.length}-`, `bytes=${img.rootfs.length + 5}-${img.rootfs.length + 9}`, 'bytes=20-10', 'bytes=-0', 'bytes=abc']) {
      const r = await get(url, { headers: { range } });
      assert.equal(r.status, 416, range);
      assert.equal(r.headers['content-range'], `bytes */${img.rootfs.length}`, range);
    }
    // Several ranges are answered with the whole file (multipart is not served).
    const multi = await get(url, { headers: { range: 'bytes=0-1,5-6' } });
    assert.equal(multi.status, 200);
    assert.equal(multi.body.length, img.rootfs.length);
  });

  test('the system overlay and its join token go only to the node\'s own address; each boot revokes the last token', async () => {
    const tokens = server.store.joinTokens();
    const url = `${boot}/provision/overlays/system.cpio.gz?mac=${MAC1}`;
    // From n2's address, and from the server's own, with n1's MAC: refused, nothing minted.
    for (const from of ['127.0.0.3', '127.0.0.1']) {
      const r = await get(url, { from });
      assert.equal(r.status, 403, from);
      assert.equal(wire(r).code, 'PROVISION_BOOT_FORBIDDEN');
      assert.match(wire(r).message, new RegExp(`node n1 goes only to the node's own address, not to ${from.replace(/\./g, '\\.')}`));
      assert.match(wire(r).hint ?? '', /127\.0\.0\.2/);
    }
    assert.equal((await tokens.list()).filter((x) => x.node === 'n1').length, 0);
    assert.ok(logs.some((l) => l.level === 'warn' && l.msg.includes('refused the system overlay of node n1 to 127.0.0.3')));
    // An unknown MAC: 404, also from an address of the inventory.
    const unknown = await get(`${boot}/provision/overlays/system.cpio.gz?mac=52:54:00:00:00:99`, { from: '127.0.0.2' });
    assert.equal(unknown.status, 404);

    const first = await get(url, { from: '127.0.0.2' });
    assert.equal(first.status, 200, first.body.toString());
    assert.equal(first.headers['cache-control'], 'no-store');
    unpack(first.body, join(t.dir, 'sys1'));
    assert.equal(readFileSync(join(t.dir, 'sys1', 'init'), 'utf8'), '#!/bin/sh\nexec /sbin/init\n');
    const env1 = readFileSync(join(t.dir, 'sys1', 'etc', 'warren', 'agent.env'), 'utf8');
    const token1 = /WARREN_JOIN_TOKEN=(\S+)/.exec(env1)![1]!;
    assert.match(env1, new RegExp(`WARREN_SERVER=${server.url}`));
    const rec1 = await tokens.get(hashToken(token1));
    assert.equal(rec1?.node, 'n1');
    assert.equal(rec1?.usesLeft, 1);
    assert.equal(rec1?.createdBy, 'boot-service');
    assert.ok(rec1!.expiresAt - rec1!.createdAt === 300_000, 'the --boot-token-ttl life');
    assert.ok((await inventory.getBootStatus('n1'))?.systemOverlayAt);
    // The rendered archive with the token is not left on disk.
    assert.deepEqual(readdir(join(data, 'provision', 'rendered', 'n1')).filter((f) => f.startsWith('system')), []);

    const second = await get(url, { from: '127.0.0.2' });
    assert.equal(second.status, 200);
    unpack(second.body, join(t.dir, 'sys2'));
    const token2 = /WARREN_JOIN_TOKEN=(\S+)/.exec(readFileSync(join(t.dir, 'sys2', 'etc', 'warren', 'agent.env'), 'utf8'))![1]!;
    assert.notEqual(token2, token1);
    assert.equal(await tokens.get(hashToken(token1)), undefined, 'the earlier boot token is revoked');
    assert.equal((await tokens.list()).filter((x) => x.node === 'n1').length, 1);
    // A HEAD mints nothing.
    const head = await get(url, { from: '127.0.0.2', method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.ok(await tokens.get(hashToken(token2)), 'a HEAD leaves the current token alone');
  });

  test('the runtime overlay goes only to its node too, and its fetch is recorded', async () => {
    const url = `${boot}/provision/overlays/runtime.cpio.gz?mac=${MAC2}`;
    assert.equal((await get(url, { from: '127.0.0.2' })).status, 403);
    const r = await get(url, { from: '127.0.0.3' });
    assert.equal(r.status, 200);
    unpack(r.body, join(t.dir, 'rt'));
    assert.equal(readFileSync(join(t.dir, 'rt', 'etc', 'hosts'), 'utf8'), '127.0.0.1 localhost\n');
    assert.equal(readFileSync(join(t.dir, 'rt', 'etc', 'warren', 'agent.env'), 'utf8').match(/WARREN_JOIN_TOKEN=(.*)/)![1], '', 'no token in a runtime overlay');
    assert.ok((await inventory.getBootStatus('n2'))?.runtimeOverlayAt);
  });

  test('a boot token joins only as its node: `warren agent --name n2` is refused (the token stays), `--name n1` joins', async () => {
    const r = await get(`${boot}/provision/overlays/system.cpio.gz?mac=${MAC1}`, { from: '127.0.0.2' });
    unpack(r.body, join(t.dir, 'sys3'));
    const token = /WARREN_JOIN_TOKEN=(\S+)/.exec(readFileSync(join(t.dir, 'sys3', 'etc', 'warren', 'agent.env'), 'utf8'))![1]!;
    const agent = (name: string, tok = token, dir = `agent-${name}`) =>
      spawn(process.execPath, [warrenBin, 'agent', '--server', server.url, '--token', tok, '--ca', join(data, 'ca.pem'), '--data', join(t.dir, dir), '--name', name], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WARREN_HOME: join(t.dir, `home-${dir}`) } });
    /** Run an agent that must be refused: its exit code and output. */
    const refused = async (p: ReturnType<typeof agent>): Promise<{ code: number | null; out: string }> => {
      let out = '';
      p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const k = setTimeout(() => p.kill('SIGKILL'), 30_000);
        p.on('exit', (c) => {
          clearTimeout(k);
          resolve(c);
        });
      });
      return { code, out };
    };
    const { code, out } = await refused(agent('n2'));
    assert.equal(code, 2, out);
    assert.match(out, /PROVISION_TOKEN_BOUND|minted for the boot of node n1 and cannot join as n2/);
    assert.equal((await server.store.joinTokens().get(hashToken(token)))?.usesLeft, 1, 'refused under another name: not used up');
    const right = agent('n1');
    try {
      const until = Date.now() + 30_000;
      while (!(await server.store.getNode('n1')) && Date.now() < until) await new Promise((res) => setTimeout(res, 200));
      assert.ok(await server.store.getNode('n1'), 'n1 joined');
      assert.equal((await server.store.joinTokens().get(hashToken(token)))?.usesLeft, 0);
      // Anyone on the running node can fetch its system overlay from its address: the boot token
      // in it does not replace the agent that is up.
      const again = await get(`${boot}/provision/overlays/system.cpio.gz?mac=${MAC1}`, { from: '127.0.0.2' });
      unpack(again.body, join(t.dir, 'sys4'));
      const token4 = /WARREN_JOIN_TOKEN=(\S+)/.exec(readFileSync(join(t.dir, 'sys4', 'etc', 'warren', 'agent.env'), 'utf8'))![1]!;
      const usurper = await refused(agent('n1', token4, 'agent-usurper'));
      assert.equal(usurper.code, 2, usurper.out);
      assert.match(usurper.out, /node n1 is up .*a boot token cannot replace a running node's agent/);
      assert.equal((await server.store.joinTokens().get(hashToken(token4)))?.usesLeft, 1);
      assert.equal(right.exitCode, null, 'the real agent runs on');
    } finally {
      await new Promise<void>((resolve) => {
        if (right.exitCode !== null) return resolve();
        right.once('exit', () => resolve());
        right.kill('SIGTERM');
        setTimeout(() => right.kill('SIGKILL'), 10_000).unref();
      });
    }
  });

  test('the dnsmasq configuration from the inventory, written under DATA/provision, passes dnsmasq --test', async (tt) => {
    const conf = join(data, 'provision', 'dnsmasq.conf');
    const text = readFileSync(conf, 'utf8');
    assert.match(text, /^dhcp-host=52:54:00:aa:00:01,127\.0\.0\.2,n1$/m);
    assert.match(text, /^dhcp-host=52:54:00:aa:00:02,127\.0\.0\.3,n2$/m);
    assert.match(text, /^dhcp-match=set:ipxe,175$/m);
    assert.ok(text.includes(`dhcp-boot=tag:ipxe,${boot}/provision/ipxe?mac=\${net0/mac}\n`));
    assert.match(text, /^enable-tftp$/m);
    assert.ok(text.includes(`tftp-root=${join(data, 'provision', 'tftp')}\n`));
    if (existsSync('/usr/lib/ipxe/undionly.kpxe')) {
      assert.match(text, /^dhcp-boot=tag:!ipxe,tag:!efi64,undionly\.kpxe$/m);
      assert.ok(existsSync(join(data, 'provision', 'tftp', 'undionly.kpxe')));
    } else tt.diagnostic('the ipxe package is not installed: no undionly.kpxe in the TFTP root');
    if (!existsSync('/usr/sbin/dnsmasq')) return tt.skip('dnsmasq is not installed');
    await checkDnsmasqConfig(conf);
  });
});

function readdir(d: string): string[] {
  return existsSync(d) ? (spawnSync('ls', ['-A', d]).stdout.toString().split('\n').filter(Boolean)) : [];
}

describe('dnsmasq configuration', () => {
  const nodes = (() => {
    const inv = new MemoryInventory();
    inv.add('a1', '52:54:00:00:00:0a', '10.5.0.11/24');
    inv.add('a2', '52:54:00:00:00:0b', '10.5.0.12/24');
    return [...inv.nodes.values()].map((n) => resolveNode(n, []));
  })();

  test('with --dhcp: the interface, a static range or a pool; real dnsmasq accepts it, and refuses a broken one', async (tt) => {
    if (!existsSync('/usr/sbin/dnsmasq')) return tt.skip('dnsmasq is not installed');
    const t = tempDir('warren-dnsmasq-');
    try {
      const subnet = { network: '10.5.0.0', netmask: '255.255.255.0' };
      const stat = dnsmasqConfig({ nodes, bootUrl: 'http://10.5.0.1:9873', tftpRoot: t.dir, tftpFiles: ['undionly.kpxe', 'ipxe.efi'], dhcp: { iface: 'eth1', subnet } });
      assert.match(stat, /^interface=eth1$/m);
      assert.match(stat, /^dhcp-range=10\.5\.0\.0,static,255\.255\.255\.0,12h$/m);
      assert.match(stat, /^dhcp-boot=tag:!ipxe,tag:efi64,ipxe\.efi$/m);
      const pool = dnsmasqConfig({ nodes, bootUrl: 'http://10.5.0.1:9873', tftpRoot: t.dir, tftpFiles: [], dhcp: { ...parseDhcpOption('eth1,10.5.0.100-10.5.0.200'), subnet } });
      assert.match(pool, /^dhcp-range=10\.5\.0\.100,10\.5\.0\.200,255\.255\.255\.0,12h$/m);
      assert.doesNotMatch(pool, /^dhcp-boot=.*(undionly|ipxe\.efi)/m, 'no TFTP file named that is not there');
      for (const [i, text] of [stat, pool].entries()) {
        const f = join(t.dir, `ok${i}.conf`);
        writeFileSync(f, text);
        await checkDnsmasqConfig(f);
      }
      const broken = join(t.dir, 'broken.conf');
      writeFileSync(broken, stat.replace('dhcp-match=set:ipxe,175', 'dhcp-match=set:ipxe,175,extra,,oops\ndhcp-range=not-an-address'));
      await assert.rejects(checkDnsmasqConfig(broken), (e: WarrenError) => e.code === 'PROVISION_DHCP_FAILED' && e.message.includes(broken));
    } finally {
      t.cleanup();
    }
  });

  test('values that would break the file are refused; --dhcp is parsed strictly', () => {
    assert.throws(() => dnsmasqConfig({ nodes, bootUrl: 'http://10.5.0.1:9873/a,b', tftpRoot: '/x', tftpFiles: [] }), (e: WarrenError) => e.code === 'PROVISION_BAD_ADDRESS');
    assert.throws(() => dnsmasqConfig({ nodes, bootUrl: 'http://10.5.0.1:9873', tftpRoot: '/x y', tftpFiles: [] }), (e: WarrenError) => e.code === 'PROVISION_BAD_ADDRESS' && /TFTP root/.test(e.message));
    assert.deepEqual(parseDhcpOption('eth1'), { iface: 'eth1' });
    for (const bad of ['', 'eth1,10.0.0.9-10.0.0.1', 'eth1,10.0.0.1', 'eth1,a-b', 'eth1,1.2.3.4-1.2.3.5,x', 'way-too-long-interface-name']) {
      assert.throws(() => parseDhcpOption(bad), (e: WarrenError) => e.code === 'CLI_BAD_OPTION', bad);
    }
  });
});

describe('ranges and the proxy header', () => {
  test('parseRange', () => {
    assert.equal(parseRange(undefined, 10), null);
    assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
    assert.deepEqual(parseRange('bytes=5-', 10), { start: 5, end: 9 });
    assert.deepEqual(parseRange('bytes=5-100', 10), { start: 5, end: 9 });
    assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
    assert.deepEqual(parseRange('bytes=-30', 10), { start: 0, end: 9 });
    assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
    assert.equal(parseRange('bytes=-', 10), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-1,3-4', 10), null);
    assert.equal(parseRange('items=0-1', 10), null);
    assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable');
  });

  test("the client's address from nginx is believed only from loopback with the secret; overlay files left by a crash are removed at start", () => {
    const t = tempDir('warren-boot-svc-');
    after(t.cleanup);
    const left = join(t.dir, 'provision', 'rendered', 'n1');
    mkdirSync(left, { recursive: true });
    writeFileSync(join(left, 'system.0123456789ab.cpio.gz'), 'token');
    writeFileSync(join(left, 'runtime.0123456789ab.cpio.gz.partial'), 'x');
    writeFileSync(join(left, 'keep.txt'), 'x');
    const svc = new BootService({ dataDir: t.dir, inventory: new MemoryInventory(), images: new DirImageSource('/nonexistent'), overlays: new TreeOverlays('/nonexistent'), tokens: new MemoryTokenStore(), server: () => ({ url: '', caPem: '' }), trustDomain: 't', proxySecret: 's3cret-s3cret', log: () => {} });
    const req = (peer: string, headers: Record<string, string>) => ({ socket: { remoteAddress: peer }, headers }) as never;
    assert.equal(svc.clientAddress(req('127.0.0.1', { 'x-warren-client': '10.0.0.5', 'x-warren-proxy-secret': 's3cret-s3cret' })), '10.0.0.5');
    assert.equal(svc.clientAddress(req('127.0.0.1', { 'x-warren-client': '10.0.0.5', 'x-warren-proxy-secret': 'wrong-wrong-x' })), '127.0.0.1');
    assert.equal(svc.clientAddress(req('127.0.0.1', { 'x-warren-client': '10.0.0.5' })), '127.0.0.1');
    assert.equal(svc.clientAddress(req('::ffff:10.0.0.9', { 'x-warren-client': '10.0.0.5', 'x-warren-proxy-secret': 's3cret-s3cret' })), '10.0.0.9', 'not from loopback');
    assert.deepEqual(readdir(left), ['keep.txt']);
  });

  test('nginx configuration: images by digest only, the rest proxied with the client address and the secret', () => {
    const c = nginxConfig({ listen: { host: '0.0.0.0', port: 9873 }, backend: { host: '127.0.0.1', port: 40000 }, imagesDir: '/d/provision/images', dir: '/d/provision/nginx', secret: 'abc' });
    assert.match(c, /listen 0\.0\.0\.0:9873 reuseport;/);
    assert.ok(c.includes('location ~ "^/provision/images/([0-9a-f]{64})/(vmlinuz|rootfs\\.cpio\\.gz)$"'));
    assert.ok(c.includes('alias "/d/provision/images/$1/$2";'));
    assert.ok(c.includes('proxy_set_header x-warren-client $remote_addr;'));
    assert.ok(c.includes('proxy_set_header x-warren-proxy-secret "abc";'));
    assert.throws(() => nginxConfig({ listen: { host: '0.0.0.0', port: 1 }, backend: { host: '127.0.0.1', port: 2 }, imagesDir: '/d";evil', dir: '/d', secret: 'x' }), (e: WarrenError) => e.code === 'PROVISION_NGINX_FAILED');
  });
});

describe('boot tokens at the join', () => {
  for (const [kind, open] of [['memory', async () => ({ tokens: new MemoryTokenStore(), close: async () => {} })], ['sqlite', async () => {
    const t = tempDir('warren-boot-tok-');
    const s = new SqliteStore(join(t.dir, 'w.db'), { reserveBytes: 0 });
    return { tokens: s.joinTokens(), close: async () => { await s.close(); t.cleanup(); } };
  }]] as const) {
    test(`${kind}: a bound token is refused under another name and left unused; its node uses it once`, async () => {
      const { tokens, close } = await open();
      try {
        const { token } = await createJoinToken(tokens, { ttlSeconds: 60, createdBy: 'boot-service', node: 'n1' });
        await assert.rejects(consumeJoinToken(tokens, token, Date.now(), 'n2'), (e: WarrenError) => e.code === 'PROVISION_TOKEN_BOUND' && /minted for the boot of node n1 and cannot join as n2/.test(e.message) && /--name n1/.test(e.hint ?? ''));
        await assert.rejects(consumeJoinToken(tokens, token, Date.now()), (e: WarrenError) => e.code === 'PROVISION_TOKEN_BOUND');
        assert.equal((await consumeJoinToken(tokens, token, Date.now(), 'n1')).usesLeft, 0);
        await assert.rejects(consumeJoinToken(tokens, token, Date.now(), 'n1'), (e: WarrenError) => e.code === 'MESH_TOKEN_USED_UP');
        // An unbound token still joins under any name.
        const free = await createJoinToken(tokens, { ttlSeconds: 60, createdBy: 'admin' });
        assert.equal((await tokens.get(hashToken(free.token)))?.node, undefined);
        assert.equal((await consumeJoinToken(tokens, free.token, Date.now(), 'anything')).usesLeft, 0);
      } finally {
        await close();
      }
    });
  }
});

describe('nginx mode', () => {
  let boot: RunningBoot | undefined;
  const t = tempDir('warren-boot-nginx-');
  after(async () => {
    await boot?.close();
    t.cleanup();
  });

  test('nginx serves a range of the image; the script and the overlay pass through Warren with the client address', async (tt) => {
    if (!existsSync('/usr/sbin/nginx')) return tt.skip('nginx is not installed');
    const data = join(t.dir, 'data');
    const img = makeImage(data, SOURCE);
    makeOverlays(join(t.dir, 'overlays'));
    const inventory = new MemoryInventory();
    inventory.add('n1', MAC1, '127.0.0.2/8', { image: SOURCE, systemOverlays: ['warren-system'], runtimeOverlays: ['warren-runtime'], kernelArgs: ['console=ttyS0'] });
    const tokens = new MemoryTokenStore();
    const port = await freePort();
    boot = await startBootService({ host: '127.0.0.1', port, nginx: 'on', inventory, overlays: new TreeOverlays(join(t.dir, 'overlays')) }, { dataDir: data, tokens, store: null, server: () => ({ url: 'https://127.0.0.1:1', caPem: '' }), trustDomain: 't', log: () => {} });
    assert.equal(boot.nginx, true);
    const url = `${boot.url}/provision/images/${img.hex}/rootfs.cpio.gz`;
    const part = await get(url, { headers: { range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(img.rootfs.subarray(100, 200)));
    assert.equal(part.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(part.headers.server, 'nginx', 'nginx served it');
    assert.equal((await get(url, { headers: { range: `bytes=${img.rootfs.length}-` } })).status, 416);
    assert.equal((await get(`${boot.url}/provision/images/${img.hex}/image.json`)).status, 404, 'only the two files of an image');
    const script = await get(`${boot.url}/provision/ipxe?mac=${MAC1}`);
    assert.match(script.body.toString(), new RegExp(`kernel http://127\\.0\\.0\\.1:${port}/provision/images/${img.hex}/vmlinuz`));
    const sys = `${boot.url}/provision/overlays/system.cpio.gz?mac=${MAC1}`;
    assert.equal((await get(sys, { from: '127.0.0.2' })).status, 200);
    // nginx sets the client header itself: one sent by the client changes nothing.
    const forged = await get(sys, { from: '127.0.0.3', headers: { 'x-warren-client': '127.0.0.2' } });
    assert.equal(forged.status, 403);
    assert.match(wire(forged).message, /not to 127\.0\.0\.3/);
  });

  test('nginx dies with a server that is killed (-9)', async (tt) => {
    if (!existsSync('/usr/sbin/nginx')) return tt.skip('nginx is not installed');
    if (!existsSync('/usr/bin/setpriv')) return tt.skip('setpriv (util-linux) is not installed');
    const dir = join(t.dir, 'kill');
    mkdirSync(join(dir, 'overlays'), { recursive: true });
    const mod = (p: string): string => JSON.stringify(new URL(p, import.meta.url).href);
    const script = join(dir, 'server.mjs');
    writeFileSync(script, `
      import { startBootService } from ${mod('../../src/server/boot/index.js')};
      import { MemoryInventory } from ${mod('./memory-inventory.js')};
      import { TreeOverlays } from ${mod('./tree-overlays.js')};
      import { MemoryTokenStore } from ${mod('../../src/mesh/index.js')};
      const b = await startBootService({ host: '127.0.0.1', port: ${await freePort()}, nginx: 'on', inventory: new MemoryInventory(), overlays: new TreeOverlays(${JSON.stringify(join(dir, 'overlays'))}) },
        { dataDir: ${JSON.stringify(join(dir, 'data'))}, tokens: new MemoryTokenStore(), store: null, server: () => ({ url: 'https://x:1', caPem: '' }), trustDomain: 't', log: () => {} });
      console.log('nginx ' + b.children().join(','));
      setInterval(() => {}, 1000);
    `);
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /nginx (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (c) => reject(new Error(`the server exited (${c}) before nginx ran: ${out}`)));
    });
    const alive = (p: number): boolean => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    };
    assert.ok(alive(pid), 'nginx runs');
    child.kill('SIGKILL');
    const until = Date.now() + 10_000;
    while (alive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    assert.equal(alive(pid), false, 'nginx is gone with its server');
  });
});

describe('--dhcp: dnsmasq as the boot service\'s child, answering a real DHCP client', () => {
  const skip = netnsAvailable() === true ? (existsSync('/usr/sbin/dnsmasq') && existsSync('/usr/bin/busybox') ? false : 'dnsmasq or busybox (udhcpc) is not installed') : String(netnsAvailable());
  test('a machine of the inventory gets its address, PXE firmware gets undionly.kpxe over TFTP, iPXE gets the script URL; a new node reaches dnsmasq', { skip, timeout: 90_000 }, async () => {
    const net = await createNetwork({ hosts: 2, prefix: 'wb' });
    const t = tempDir('warren-boot-dhcp-');
    let boot: RunningBoot | undefined;
    const logs: string[] = [];
    try {
      const macOf = async (h: (typeof net.hosts)[number]): Promise<string> => (await h.exec('cat', ['/sys/class/net/eth0/address'])).stdout.trim();
      const [m0, m1] = [await macOf(net.hosts[0]!), await macOf(net.hosts[1]!)];
      const base = net.serverAddress.split('.').slice(0, 3).join('.');
      const inventory = new MemoryInventory();
      inventory.add('d1', m0, `${base}.50/24`, { image: SOURCE });
      makeOverlays(join(t.dir, 'overlays'));
      const port = await freePort();
      boot = await startBootService({ host: net.serverAddress, port, nginx: 'off', dhcp: { iface: net.bridge }, inventory, overlays: new TreeOverlays(join(t.dir, 'overlays')), watchMs: 200 }, { dataDir: join(t.dir, 'data'), tokens: new MemoryTokenStore(), store: null, server: () => ({ url: 'https://x:1', caPem: '' }), trustDomain: 't', log: (level, msg) => logs.push(`${level} ${msg}`) });
      const script = join(t.dir, 'udhcpc.sh');
      writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "ip=$ip boot_file=$boot_file siaddr=$siaddr hostname=$hostname"\nexit 0\n', { mode: 0o755 });
      const ask = async (h: (typeof net.hosts)[number], ipxe: boolean): Promise<string> => {
        const r = await h.exec('/usr/bin/busybox', ['udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-t', '6', '-T', '1', '-s', script, ...(ipxe ? ['-x', '0xaf:01'] : [])], { timeoutMs: 20_000 });
        return r.stdout + r.stderr;
      };
      const pxe = await ask(net.hosts[0]!, false);
      assert.match(pxe + logs.join('\n') + readFileSync(boot.dnsmasqConf, 'utf8'), new RegExp(`ip=${base.replace(/\./g, '\\.')}\\.50 boot_file=undionly\\.kpxe siaddr=${net.serverAddress.replace(/\./g, '\\.')}`), pxe);
      const ipxe = await ask(net.hosts[0]!, true);
      assert.ok(ipxe.includes(`ip=${base}.50 boot_file=http://${net.serverAddress}:${port}/provision/ipxe?mac=\${net0/mac}`), ipxe);
      // Not in the inventory, and no range: no answer.
      assert.doesNotMatch(await ask(net.hosts[1]!, false), /ip=/);
      // Added to the inventory: the configuration is rewritten and dnsmasq restarted with it.
      inventory.add('d2', m1, `${base}.51/24`, { image: SOURCE });
      const conf = boot.dnsmasqConf;
      const until = Date.now() + 10_000;
      while (!readFileSync(conf, 'utf8').includes(`dhcp-host=${m1},${base}.51,d2`) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      let second = '';
      for (let i = 0; i < 5 && !/ip=/.test(second); i++) second = await ask(net.hosts[1]!, false);
      assert.match(second, new RegExp(`ip=${base.replace(/\./g, '\\.')}\\.51 `), second);
    } finally {
      await boot?.close();
      await net.destroy();
      t.cleanup();
    }
  });
});

describe('warren server: the boot service options', () => {
  test('bad --provision, --provision-nginx, --provision-url, --boot-token-ttl and --dhcp are refused before anything starts', () => {
    const t = tempDir('warren-boot-cli-');
    try {
      const data = join(t.dir, 'data');
      const cases: [string[], RegExp][] = [
        [['--dhcp', 'eth0'], /options of the boot service: they need --provision/],
        [['--provision', '1.2.3'], /--provision takes ADDRESS:PORT/],
        [['--provision', '127.0.0.1:19401', '--provision-nginx', 'maybe'], /--provision-nginx takes auto, on or off, not "maybe"/],
        [['--provision', '--provision-url', 'https://10.0.0.1:9873'], /--provision-url takes http:\/\/ADDRESS:PORT/],
        [['--provision', '--boot-token-ttl', '30d'], /--boot-token-ttl 30d is longer than a week/],
        [['--provision', '--boot-token-ttl', 'soon'], /--boot-token-ttl takes a duration/],
        [['--provision', '--dhcp', 'eth0,10.0.0.9-10.0.0.1'], /--dhcp eth0,10\.0\.0\.9-10\.0\.0\.1: the range starts after it ends/],
      ];
      for (const [args, re] of cases) {
        const r = spawnSync(process.execPath, [warrenBin, 'server', '--data', data, '--listen', '127.0.0.1:0', ...args], { encoding: 'utf8', timeout: 30_000 });
        assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /CLI_BAD_OPTION/, args.join(' '));
        assert.match(r.stderr, re, args.join(' '));
      }
      assert.equal(existsSync(data), false, 'nothing was written');
    } finally {
      t.cleanup();
    }
  });
});
