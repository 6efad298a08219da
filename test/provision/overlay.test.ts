// Overlays: the built-in trees rendered for a node with two interfaces, packed root-owned
// (unpacked again with the real GNU cpio), the order of overlays, the rendered cache and its
// rebuilds, and template errors with the node, the file and the line.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import {
  buildNodeOverlays, buildOverlayArchive, deleteOverlay, importIntoOverlay, listOverlays, overlayContexts, overlayEntries, renderOverlayFile,
  renderedDir, userFileForEdit, userOverlaysDir, type OverlayContext,
} from '../../src/provision/index.js';
import { tempDir } from '../helpers.js';
import { sampleInventory, type MemoryInventory } from './memory-inventory.js';

const ANALYZE = '/usr/bin/systemd-analyze';
const CA = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';
const BASE = { server: { url: 'https://10.0.0.1:8443', caPem: CA, bootUrl: 'http://10.0.0.1:9873' }, joinToken: 'wjt_secret_for_n001', cluster: { trustDomain: 'warren.local' } };

function unpack(archive: string, into: string): void {
  mkdirSync(into, { recursive: true });
  execFileSync('/bin/bash', ['-c', `set -o pipefail; gzip -dc '${archive}' | cpio --quiet -idm --no-absolute-filenames`], { cwd: into });
}

function listing(archive: string): string {
  return execFileSync('/bin/bash', ['-c', `set -o pipefail; gzip -dc '${archive}' | cpio --quiet -itv`], { encoding: 'utf8' });
}

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<WarrenError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WarrenError, `not a WarrenError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    assert.ok(e.hint && e.hint.length > 10, 'a hint');
    return e;
  }
  assert.fail(`expected ${code}`);
}

function userOverlay(data: string, name: string, files: Record<string, string | [string, number]>): void {
  for (const [p, v] of Object.entries(files)) {
    const f = join(userOverlaysDir(data), name, p);
    mkdirSync(join(f, '..'), { recursive: true });
    const [text, mode] = Array.isArray(v) ? v : [v, 0o644];
    writeFileSync(f, text);
    chmodSync(f, mode);
  }
}

describe('overlays', () => {
  let tmp: { dir: string; cleanup: () => void };
  let data: string;
  let inv: MemoryInventory;
  let ctxs: OverlayContext[];
  const ctx = (name: string): OverlayContext => ctxs.find((c) => c.node.name === name)!;
  let n = 0;
  const fresh = (): string => {
    const d = join(tmp.dir, `data${++n}`);
    mkdirSync(d);
    return d;
  };

  before(async () => {
    tmp = tempDir('warren-ovl-');
    data = join(tmp.dir, 'data');
    mkdirSync(data);
    inv = await sampleInventory();
    ctxs = await overlayContexts(inv, null, BASE);
  });
  after(() => tmp.cleanup());

  it('lists the built-in overlays, and a user overlay that shadows one', async () => {
    const d = fresh();
    let all = await listOverlays(d);
    assert.deepEqual(all.map((o) => `${o.name}:${o.source}`), ['warren-runtime:builtin', 'warren-system:builtin']);
    assert.ok(all.find((o) => o.name === 'warren-system')!.files >= 10);
    userOverlay(d, 'warren-runtime', { 'etc/motd': 'hi\n' });
    userOverlay(d, 'site', { 'etc/issue': 'x\n' });
    all = await listOverlays(d);
    assert.deepEqual(all.map((o) => `${o.name}:${o.source}:${o.shadowsBuiltin}:${o.files}`), ['site:user:false:1', 'warren-runtime:user:true:1', 'warren-system:builtin:false:' + all[2]!.files]);
  });

  it('renders every built-in file for a node with two interfaces', async () => {
    const c = ctx('n001');
    const r = (f: string, o = 'warren-system') => renderOverlayFile(data, o, f, c);
    assert.equal(await r('etc/hostname'), 'n001\n');
    assert.equal(await r('etc/hostname.tmpl'), 'n001\n', 'the template named by its own path');
    const eth0 = await r('etc/systemd/network/10-eth0.network');
    assert.equal(eth0, [
      '# n001: interface eth0, written by Warren (warren-system overlay)',
      '[Match]', 'MACAddress=52:54:00:00:00:01', '', '[Link]', 'MTUBytes=9000', 'RequiredForOnline=yes', '',
      '[Network]', 'Address=10.0.0.11/24', 'Gateway=10.0.0.1', 'DNS=10.0.0.2', 'DNS=10.0.0.3', '',
    ].join('\n'));
    const ib0 = await r('etc/systemd/network/10-ib0.network');
    assert.match(ib0, /MACAddress=52:54:00:00:01:01\n/);
    assert.match(ib0, /Address=192\.168\.50\.11\/16\n/);
    assert.match(ib0, /RequiredForOnline=no\n/);
    assert.doesNotMatch(ib0, /Gateway=|DNS=|MTUBytes=/);
    const both = await r('etc/systemd/network/warren.tmpl');
    assert.match(both, /==> etc\/systemd\/network\/10-eth0\.network <==\n# n001: interface eth0/);
    assert.match(both, /==> etc\/systemd\/network\/10-ib0\.network <==/);
    assert.equal(await r('etc/warren/agent.env'), [
      '# n001: the agent\'s settings, written by Warren (warren-system overlay) at boot.',
      '# The join token is for this node and this boot only.',
      'WARREN_SERVER=https://10.0.0.1:8443', 'WARREN_JOIN_TOKEN=wjt_secret_for_n001', 'WARREN_NODE_NAME=n001', 'WARREN_LABELS=rack=a1,role=compute,slot=1', '',
    ].join('\n'));
    assert.equal(await r('etc/warren/ca.pem'), CA);
    assert.match(await r('etc/fstab'), /^tmpfs \/tmp tmpfs mode=1777,nosuid,nodev 0 0$/m);
    assert.equal(await r('etc/resolv.conf'), '# n001: written by Warren (warren-system overlay)\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n');
    assert.equal(await r('root/.ssh/authorized_keys'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIProfileKey admin@site\n');
    assert.match(await r('init'), /mount -t devtmpfs[\s\S]*exec "\$init"/);
    assert.match(await r('etc/systemd/system/warren-agent.service'), /Restart=always[\s\S]*|After=network-online\.target/);
    assert.equal(await r('etc/systemd/system/multi-user.target.wants/warren-agent.service'), 'etc/systemd/system/multi-user.target.wants/warren-agent.service -> ../warren-agent.service\n');
    // runtime: every node with an address, in name order (n003 has no interface)
    assert.equal(await r('etc/hosts', 'warren-runtime'), [
      '# n001: written by Warren (warren-runtime overlay): every node of the inventory.',
      '127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', '10.0.0.11\tn001', '10.0.0.12\tn002', '',
    ].join('\n'));
    // every template of both overlays renders for every node, n003 (no network, no keys) too
    for (const c3 of ctxs) {
      for (const o of ['warren-system', 'warren-runtime']) {
        for (const e of overlayEntries(data, o).filter((x) => x.template)) await renderOverlayFile(data, o, e.path, c3);
      }
    }
    assert.equal(await renderOverlayFile(data, 'warren-system', 'etc/resolv.conf', ctx('n003')), '# n003: written by Warren (warren-system overlay)\n');
  });

  it('packs the system overlay root-owned with its modes and links; a later overlay wins', async () => {
    const d = fresh();
    userOverlay(d, 'site', { 'etc/hostname': ['custom-name\n', 0o640], 'etc/motd.tmpl': 'welcome to {{ .Node.Name }} ({{ index .Node.Tags "rack" }})\n', 'usr/local/bin/hello': ['#!/bin/sh\necho hi\n', 0o750] });
    const out = join(tmp.dir, 'sys.cpio.gz');
    const a = await buildOverlayArchive(d, ['warren-system', 'site'], ctx('n002'), out);
    assert.equal(a.path, out);
    assert.equal(a.cached, false);
    assert.equal(a.size, statSync(out).size);
    assert.equal(a.sha256, execFileSync('sha256sum', [out], { encoding: 'utf8' }).split(' ')[0]);
    assert.equal(statSync(out).mode & 0o777, 0o600, 'an archive with a token is private');
    // never in the cache: only this request's file holds the token
    assert.deepEqual(readdirSync(join(renderedDir(d), 'n002')), []);
    const lines = listing(out).trim().split('\n');
    for (const l of lines) assert.match(l, /^\S+\s+\d+\s+root\s+root\s/, `root-owned: ${l}`);
    const into = join(tmp.dir, 'unpacked-sys');
    unpack(out, into);
    const mode = (p: string) => (lstatSync(join(into, p)).mode & 0o7777).toString(8);
    assert.equal(readFileSync(join(into, 'etc/hostname'), 'utf8'), 'custom-name\n', 'the later overlay wins');
    assert.equal(mode('etc/hostname'), '640');
    assert.equal(readFileSync(join(into, 'etc/motd'), 'utf8'), 'welcome to n002 (a1)\n');
    assert.equal(mode('usr/local/bin/hello'), '750');
    assert.equal(mode('init'), '755');
    assert.equal(mode('usr/local/sbin/warren-agent-start'), '755');
    assert.equal(mode('etc/warren/agent.env'), '600');
    assert.equal(mode('root'), '700');
    assert.equal(mode('root/.ssh'), '700');
    assert.equal(mode('root/.ssh/authorized_keys'), '600');
    assert.match(readFileSync(join(into, 'etc/warren/agent.env'), 'utf8'), /^WARREN_NODE_NAME=n002$/m);
    assert.equal(readlinkSync(join(into, 'etc/systemd/system/multi-user.target.wants/warren-agent.service')), '../warren-agent.service');
    assert.equal(readlinkSync(join(into, 'etc/systemd/system/multi-user.target.wants/systemd-networkd.service')), '/lib/systemd/system/systemd-networkd.service');
    assert.ok(existsSync(join(into, 'etc/systemd/network/10-eth0.network')));
    assert.ok(existsSync(join(into, 'etc/systemd/network/10-ib0.network')));
    assert.ok(!existsSync(join(into, 'etc/systemd/network/warren')), 'a template that only makes files writes none of its own name');
    assert.ok(!existsSync(join(into, '.warren-modes')));
    assert.ok(!readdirSync(into, { recursive: true }).some((p) => String(p).endsWith('.tmpl')));
    // the server's shell finds the agent's start script as the unit names it
    assert.match(readFileSync(join(into, 'etc/systemd/system/warren-agent.service'), 'utf8'), /^ExecStart=\/usr\/local\/sbin\/warren-agent-start$/m);
    // to another file system (a rename cannot): copied whole, still private
    const shm = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmp.dir, 'warren-ovl-'));
    try {
      const b = await buildOverlayArchive(d, ['warren-system'], ctx('n001'), join(shm, 'sys.cpio.gz'));
      assert.equal(statSync(b.path).mode & 0o777, 0o600);
      assert.equal(execFileSync('sha256sum', [b.path], { encoding: 'utf8' }).split(' ')[0], b.sha256);
      assert.deepEqual(readdirSync(shm), ['sys.cpio.gz']);
      assert.deepEqual(readdirSync(join(renderedDir(d), 'n001')), []);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
    execFileSync('sh', ['-n', join(into, 'init')]);
    execFileSync('sh', ['-n', join(into, 'usr/local/sbin/warren-agent-start')]);
  });

  it('the agent unit passes systemd-analyze verify', { skip: !existsSync(ANALYZE) && `${ANALYZE} is not installed (apt-get install systemd)` }, async () => {
    const d = fresh();
    const out = join(tmp.dir, 'verify.cpio.gz');
    await buildOverlayArchive(d, ['warren-system'], ctx('n001'), out);
    const into = join(tmp.dir, 'unpacked-verify');
    unpack(out, into);
    // the unit as on the node, its ExecStart pointed at the unpacked script (verify checks it is executable)
    const unit = readFileSync(join(into, 'etc/systemd/system/warren-agent.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/sbin\/warren-agent-start$/m);
    assert.match(unit, /^EnvironmentFile=\/etc\/warren\/agent\.env$/m);
    const copy = join(into, 'warren-agent.service');
    writeFileSync(copy, unit.replace('ExecStart=/usr/local/sbin/warren-agent-start', `ExecStart=${join(into, 'usr/local/sbin/warren-agent-start')}`));
    const r = spawnSync(ANALYZE, ['verify', copy], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '');
  });

  it('serves an unchanged runtime overlay from the cache and rebuilds on a change of node, inventory or template', async () => {
    const d = fresh();
    const c = { ...ctx('n001'), joinToken: null };
    const a1 = await buildOverlayArchive(d, ['warren-runtime'], c);
    assert.equal(a1.cached, false);
    assert.ok(a1.path.startsWith(join(renderedDir(d), 'n001') + '/'));
    assert.equal(statSync(a1.path).size, a1.size);
    const a2 = await buildOverlayArchive(d, ['warren-runtime'], c);
    assert.deepEqual(a2, { ...a1, cached: true });
    // one key, one archive: built again later (another second), it is the same bytes
    await new Promise((r) => setTimeout(r, 1100));
    const again = await buildOverlayArchive(fresh(), ['warren-runtime'], c);
    assert.equal(again.cached, false);
    assert.equal(again.sha256, a1.sha256);
    // a copy for the caller from the cache
    const out = join(tmp.dir, 'rt.cpio.gz');
    const a3 = await buildOverlayArchive(d, ['warren-runtime'], c, out);
    assert.equal(a3.cached, true);
    assert.equal(a3.sha256, a1.sha256);
    assert.equal(readFileSync(out).compare(readFileSync(a1.path)), 0);
    // the node changes (a new key from a profile)
    await inv.putProfile({ ...(await inv.getProfile('compute'))!, sshKeys: ['ssh-ed25519 AAAAnewkey ops@site'] }, 'replace');
    const changed = (await overlayContexts(inv, ['n001'], { ...BASE, joinToken: null }))[0]!;
    const b = await buildOverlayArchive(d, ['warren-runtime'], changed);
    assert.equal(b.cached, false);
    assert.notEqual(b.sha256, a1.sha256);
    const into = join(tmp.dir, 'unpacked-rt');
    unpack(b.path, into);
    assert.equal(readFileSync(join(into, 'root/.ssh/authorized_keys'), 'utf8'), 'ssh-ed25519 AAAAnewkey ops@site\n');
    // another node of the inventory changes: its hosts line is in this node's overlay
    const others = ctxs.map((x) => x.node).map((x) => (x.name === 'n002' ? { ...x, network: { eth0: { ...x.network.eth0!, ip: '10.0.0.99/24' } }, primary: { ...x.primary!, ip: '10.0.0.99/24' } } : x));
    const h = await buildOverlayArchive(d, ['warren-runtime'], { ...changed, nodes: others });
    assert.equal(h.cached, false);
    // the template changes (a user copy shadows the built-in)
    const edit = userFileForEdit(d, 'warren-runtime', 'etc/hosts');
    assert.ok(edit.copiedBuiltin);
    assert.ok(edit.path.endsWith('warren-runtime/etc/hosts.tmpl'));
    writeFileSync(edit.path, readFileSync(edit.path, 'utf8') + '10.0.0.1\tboot\n');
    const t = await buildOverlayArchive(d, ['warren-runtime'], changed);
    assert.equal(t.cached, false);
    assert.match(execFileSync('/bin/bash', ['-c', `gzip -dc '${t.path}' | cpio --quiet -i --to-stdout etc/hosts`], { encoding: 'utf8' }), /10\.0\.0\.1\tboot\n$/);
    // only a mode changes: rebuilt too
    chmodSync(edit.path, 0o600);
    assert.equal((await buildOverlayArchive(d, ['warren-runtime'], changed)).cached, false);
    assert.equal((await buildOverlayArchive(d, ['warren-runtime'], changed)).cached, true);
    // concurrent requests of one new key: one archive, no clash
    userOverlay(d, 'warren-runtime', { 'etc/motd': 'concurrent\n' });
    const many = await Promise.all([1, 2, 3, 4].map(() => buildOverlayArchive(d, ['warren-runtime'], changed)));
    assert.equal(new Set(many.map((x) => x.sha256)).size, 1);
    assert.equal(statSync(many[0]!.path).size, many[0]!.size);
    // the cache keeps the newest few, nothing half written or staged is left
    const left = readdirSync(join(renderedDir(d), 'n001'));
    assert.ok(left.every((f) => /^[0-9a-f]{64}\.(cpio\.gz|json)$/.test(f)), left.join(' '));
    assert.ok(left.length <= 8);
  });

  it('reports a broken template with the node, the overlay file and the line', async () => {
    const d = fresh();
    userOverlay(d, 'bad', {
      'etc/syntax.tmpl': 'line one\n{{ if .Node.Name }}two{{ end }}\n  {{ .Node.Name ) }}\n',
    });
    let e = await rejectsWith(buildOverlayArchive(d, ['bad'], ctx('n001'), join(tmp.dir, 'x.cpio.gz')), 'PROVISION_TEMPLATE', /^n001: bad\/etc\/syntax\.tmpl:3:\d+: /);
    assert.equal((e.details as { line: number }).line, 3);
    assert.equal((e.details as { file: string }).file, 'etc/syntax.tmpl');
    assert.ok(!existsSync(join(tmp.dir, 'x.cpio.gz')), 'nothing written');
    assert.deepEqual(readdirSync(join(renderedDir(d), 'n001')), [], 'no stage left behind');
    userOverlay(d, 'field', { 'etc/hostname.tmpl': '# a\n# b\n{{ .Node.Netwrok }}\n' });
    e = await rejectsWith(renderOverlayFile(d, 'field', 'etc/hostname', ctx('n002')), 'PROVISION_TEMPLATE', /^n002: field\/etc\/hostname\.tmpl:3:4: executing at <\.Node\.Netwrok>: map has no entry for key "Netwrok" \(did you mean "Network"\?\)$/);
    assert.match(e.hint!, /Name, Image, Kernel/);
    userOverlay(d, 'fn', { 'etc/a.tmpl': '{{ .Node.Name | uper }}\n' });
    await rejectsWith(renderOverlayFile(d, 'fn', 'etc/a', ctx('n001')), 'PROVISION_TEMPLATE', /^n001: fn\/etc\/a\.tmpl:1:\d+: .*"uper" not defined.*did you mean "upper"/);
    userOverlay(d, 'nil', { 'etc/ip.tmpl': '\n{{ .Node.Primary.Address }}\n' });
    await rejectsWith(renderOverlayFile(d, 'nil', 'etc/ip', ctx('n003')), 'PROVISION_TEMPLATE', /^n003: nil\/etc\/ip\.tmpl:2:\d+: executing at <\.Node\.Primary\.Address>: nil pointer/);
    userOverlay(d, 'req', { 'etc/r.tmpl': '{{ required "the node needs an image" .Node.Comment }}' });
    e = await rejectsWith(renderOverlayFile(d, 'req', 'etc/r', ctx('n001')), 'PROVISION_TEMPLATE', /^n001: req\/etc\/r\.tmpl:1:\d+: the node needs an image$/);
    assert.match(e.hint!, /warren node set n001/);
    userOverlay(d, 'badfile', { 'etc/f.tmpl': '{{ file "../../etc/shadow" }}x' });
    await rejectsWith(renderOverlayFile(d, 'badfile', 'etc/f', ctx('n001')), 'PROVISION_TEMPLATE', /error calling file: .*not a plain file name/);
  });

  it('builds the overlays of every node and reports every error at once', async () => {
    const d = fresh();
    userOverlay(d, 'warren-runtime', { 'etc/hosts.tmpl': '{{ .Node.Primary.Address }} {{ .Node.Name }}\n' });
    const r = await buildNodeOverlays(d, ctxs.map((c) => ({ ...c, joinToken: '<join token: minted at boot>' })));
    assert.deepEqual(r.map((x) => [x.node, x.systemOk, x.runtime !== null, x.errors.length]), [['n001', true, true, 0], ['n002', true, true, 0], ['n003', true, false, 1]]);
    assert.match(r[2]!.errors[0]!.message, /^n003: warren-runtime\/etc\/hosts\.tmpl:1:\d+: .*nil pointer/);
    // the system overlay was rendered and thrown away: only the runtime archives are kept
    for (const node of ['n001', 'n002']) assert.ok(readdirSync(join(renderedDir(d), node)).every((f) => /^[0-9a-f]{64}\./.test(f)));
  });

  it('refuses an unknown overlay, an unknown file, an unknown node and paths out of the overlay', async () => {
    const d = fresh();
    await rejectsWith(buildOverlayArchive(d, ['warren-system', 'warren-sytem'], ctx('n001'), join(tmp.dir, 'y.cpio.gz')), 'PROVISION_OVERLAY_UNKNOWN', /no overlay "warren-sytem" \(did you mean "warren-system"\?\)/);
    await rejectsWith(renderOverlayFile(d, 'warren-system', 'etc/hostnam', ctx('n001')), 'PROVISION_OVERLAY_UNKNOWN', /has no file etc\/hostnam \(did you mean "etc\/hostname"\?\)/);
    await rejectsWith(renderOverlayFile(d, 'warren-system', 'etc/warren', ctx('n001')), 'PROVISION_OVERLAY_UNKNOWN', /is a directory/);
    await rejectsWith(renderOverlayFile(d, 'warren-system', '../../etc/passwd', ctx('n001')), 'PROVISION_OVERLAY_BAD_PATH');
    await rejectsWith(renderOverlayFile(d, 'Bad/Name', 'x', ctx('n001')), 'PROVISION_OVERLAY_BAD_PATH');
    await rejectsWith(overlayContexts(inv, ['n001', 'n009', 'm1'], BASE), 'PROVISION_NODE_UNKNOWN', /nodes n009, m1 are not in the inventory/);
    await rejectsWith(overlayContexts(inv, ['n01'], BASE), 'PROVISION_NODE_UNKNOWN', /did you mean "n001"/);
    // a later overlay's directory replaces a link an earlier one made: nothing is written through it
    mkdirSync(join(userOverlaysDir(d), 'link/etc'), { recursive: true });
    symlinkSync(tmp.dir, join(userOverlaysDir(d), 'link/etc/escape'));
    userOverlay(d, 'below', { 'etc/escape/planted': 'x\n' });
    const lk = await buildOverlayArchive(d, ['link', 'below'], { ...ctx('n001'), joinToken: null });
    assert.ok(!existsSync(join(tmp.dir, 'planted')));
    assert.match(listing(lk.path), /^d\S+\s.*etc\/escape$/m);
    assert.match(listing(lk.path), /etc\/escape\/planted$/m);
    userOverlay(d, 'modes', { '.warren-modes': 'etc/x rw-r--r--\n', 'etc/x': 'x' });
    await rejectsWith(buildOverlayArchive(d, ['modes'], { ...ctx('n001'), joinToken: null }), 'PROVISION_OVERLAY_BAD_PATH', /modes\/\.warren-modes:1: /);
  });

  it('imports files and directories, edits a copy of a built-in, deletes user overlays only', async () => {
    const d = fresh();
    const src = join(tmp.dir, 'src');
    mkdirSync(join(src, 'conf.d'), { recursive: true });
    writeFileSync(join(src, 'conf.d', 'a.conf'), 'a\n');
    writeFileSync(join(src, 'run.sh'), '#!/bin/sh\n');
    chmodSync(join(src, 'run.sh'), 0o700);
    let r = importIntoOverlay(d, 'site', src, '/etc/site');
    assert.ok(r.created);
    assert.deepEqual(r.written.sort(), ['etc/site/conf.d/a.conf', 'etc/site/run.sh']);
    assert.equal(statSync(join(userOverlaysDir(d), 'site/etc/site/run.sh')).mode & 0o777, 0o700);
    r = importIntoOverlay(d, 'site', join(src, 'conf.d', 'a.conf'));
    assert.deepEqual(r.written, [join(src, 'conf.d', 'a.conf').slice(1)], 'default DEST: the same path');
    assert.equal(r.created, false);
    assert.throws(() => importIntoOverlay(d, 'site', join(src, 'nope')), (e: WarrenError) => e.code === 'PROVISION_OVERLAY_BAD_PATH' && /no such file/.test(e.message));
    assert.throws(() => importIntoOverlay(d, 'site', src, '../escape'), (e: WarrenError) => e.code === 'PROVISION_OVERLAY_BAD_PATH');
    // edit: a new file in a user overlay, then a built-in copied whole before its file is edited
    const e1 = userFileForEdit(d, 'site', 'etc/motd.tmpl');
    assert.ok(e1.created && !e1.copiedBuiltin);
    const e2 = userFileForEdit(d, 'warren-system', 'etc/fstab');
    assert.ok(e2.copiedBuiltin && !e2.created);
    assert.ok(e2.path.endsWith('/provision/overlays/warren-system/etc/fstab.tmpl'));
    assert.equal(overlayEntries(d, 'warren-system').length, overlayEntries(fresh(), 'warren-system').length, 'the whole built-in was copied');
    assert.equal(statSync(join(userOverlaysDir(d), 'warren-system/init')).mode & 0o777, 0o755);
    assert.throws(() => userFileForEdit(d, 'nosuch', 'etc/x'), (e: WarrenError) => e.code === 'PROVISION_OVERLAY_UNKNOWN');
    assert.throws(() => userFileForEdit(d, 'site', 'etc'), (e: WarrenError) => e.code === 'PROVISION_OVERLAY_BAD_PATH' && /directory/.test(e.message));
    // delete
    assert.deepEqual(deleteOverlay(d, 'warren-system'), { restoredBuiltin: true });
    assert.equal((await listOverlays(d)).find((o) => o.name === 'warren-system')!.source, 'builtin');
    assert.throws(() => deleteOverlay(d, 'warren-system'), (e: WarrenError) => e.code === 'PROVISION_OVERLAY_BUILTIN');
    assert.deepEqual(deleteOverlay(d, 'site'), { restoredBuiltin: false });
    assert.throws(() => deleteOverlay(d, 'site'), (e: WarrenError) => e.code === 'PROVISION_OVERLAY_UNKNOWN');
  });
});
