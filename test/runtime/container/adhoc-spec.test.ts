// The pure parts of ad-hoc containers: binds, overlays, env files, the environment's order,
// passwd entries, and the OCI config with Apptainer's defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { actionWrapper, adhocEnv, buildAdhocSpec, parseBinds, parseEnvArg, parseEnvFile, parseOverlay, passwdWithCaller, type AdhocSpecInput } from '../../../src/runtime/container/index.js';
import { isWarrenError } from '../../../src/common/index.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return isWarrenError(e) ? e.code : String(e);
  }
  return 'no error';
};

test('parseBinds: SRC, SRC:DST, SRC:DST:ro, lists, relative sources; bad ones named', () => {
  assert.deepEqual(parseBinds('/data', '/home/u', 'b'), [{ source: '/data', target: '/data', readOnly: false }]);
  assert.deepEqual(parseBinds('rel:/mnt/r:ro, /a:/b:rw', '/home/u', 'b'), [
    { source: '/home/u/rel', target: '/mnt/r', readOnly: true },
    { source: '/a', target: '/b', readOnly: false },
  ]);
  assert.deepEqual(parseBinds('/x:/y/', '/', 'b'), [{ source: '/x', target: '/y', readOnly: false }]);
  assert.equal(code(() => parseBinds('/a:/b:rx', '/', '--bind')), 'CLI_BAD_BIND');
  assert.equal(code(() => parseBinds('/a:b', '/', '--bind')), 'CLI_BAD_BIND');
  assert.equal(code(() => parseBinds('/a:/', '/', '--bind')), 'CLI_BAD_BIND');
  assert.equal(code(() => parseBinds('/a::ro', '/', '--bind')), 'CLI_BAD_BIND');
  assert.equal(code(() => parseBinds('/a:/b:ro:x', '/', '--bind')), 'CLI_BAD_BIND');
  assert.deepEqual(parseBinds(' , ', '/', 'b'), []);
});

test('parseOverlay and --env values', () => {
  assert.deepEqual(parseOverlay('ov', '/w'), { path: '/w/ov', readOnly: false });
  assert.deepEqual(parseOverlay('/o.sqsh:ro', '/w'), { path: '/o.sqsh', readOnly: true });
  assert.equal(code(() => parseOverlay(':ro', '/w')), 'CLI_BAD_OVERLAY');
  assert.deepEqual(parseEnvArg('A=b=c'), ['A', 'b=c']);
  assert.deepEqual(parseEnvArg('EMPTY='), ['EMPTY', '']);
  assert.equal(code(() => parseEnvArg('1A=x')), 'CLI_BAD_ENV');
  assert.equal(code(() => parseEnvArg('noequals')), 'CLI_BAD_ENV');
});

test('parseEnvFile: comments, export, quotes; a bad line at file:line:col', () => {
  assert.deepEqual(parseEnvFile('# c\n\nexport A="1 2"\nB=\'x\'\nC=plain\r\n', 'f.env'), { A: '1 2', B: 'x', C: 'plain' });
  assert.throws(() => parseEnvFile('A=1\n  not a var\n', 'f.env'), /f\.env:2:1: "not a var" is not KEY=VALUE/);
});

test('adhocEnv: host (less PATH, LD_LIBRARY_PATH), then the image, then Warren, then WARRENENV_, --env; --cleanenv', () => {
  const host = { HOME: '/home/u', PATH: '/host/bin', LD_LIBRARY_PATH: '/host/lib', FOO: 'host', SHARED: 'host', WARRENENV_X: 'x', APPTAINERENV_Y: 'y', TERM: 'xterm' };
  const r = adhocEnv({ host, cleanenv: false, image: ['PATH=/img/bin', 'SHARED=image'], forced: [['FOO', 'cli']], runtime: { HOME: '/home/u' } });
  const env = Object.fromEntries(r.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  assert.equal(env.PATH, '/img/bin');
  assert.equal(env.LD_LIBRARY_PATH, undefined);
  assert.equal(env.SHARED, 'image');
  assert.equal(env.FOO, 'cli');
  assert.equal(env.X, 'x');
  assert.equal(env.Y, 'y');
  assert.equal(env.WARRENENV_X, undefined);
  assert.deepEqual(r.forced.sort(), ['FOO', 'X', 'Y']);
  const clean = adhocEnv({ host, cleanenv: true, image: [], forced: [], runtime: {} });
  const ce = Object.fromEntries(clean.env.map((kv) => kv.split('=') as [string, string]));
  assert.equal(ce.FOO, undefined);
  assert.equal(ce.TERM, 'xterm');
  assert.ok(ce.PATH && !ce.PATH.includes('/host/bin'), 'a default PATH');
});

test('actionWrapper sources the image and app environment, then the forced values', () => {
  const w = actionWrapper('tool');
  assert.match(w, /\/\.singularity\.d\/env\/\*\.sh/);
  assert.match(w, /\/scif\/apps\/tool\/scif\/env\/\*\.sh/);
  assert.match(w, /__WARREN_FORCE_/);
  assert.match(w, /exec "\$@"\n$/);
});

test('passwdWithCaller: the caller replaces an entry of the same name or id', () => {
  const r = passwdWithCaller('root:x:0:0::/root:/bin/sh\nu:x:9:9::/old:/bin/sh\nother:x:1001:1001::/o:/bin/sh\n', 'root:x:0:\nstaff:x:1001:\n', { uid: 1001, gid: 1001, name: 'u', group: 'u', home: '/home/u', shell: '/bin/sh' });
  assert.equal(r.passwd, 'root:x:0:0::/root:/bin/sh\nu:x:1001:1001::/home/u:/bin/sh\n');
  assert.equal(r.group, 'root:x:0:\nu:x:1001:\n');
  assert.equal(passwdWithCaller(undefined, undefined, { uid: 5, gid: 6, name: 'a', group: 'b', home: '/h', shell: '/bin/sh' }).passwd, 'a:x:5:6::/h:/bin/sh\n');
});

const base: AdhocSpecInput = {
  rootDir: '/b/root',
  lower: ['/b/image'],
  upper: '/b/upper',
  work: '/b/work',
  writable: false,
  argv: ['/bin/true'],
  env: ['PATH=/bin'],
  cwd: '/work',
  caller: { uid: 1000, gid: 100 },
  init: '/opt/warren-userid',
  binds: [
    { source: '/home/u/deep/x', target: '/home/u/deep/x', readOnly: false },
    { source: '/home/u', target: '/home/u', readOnly: false },
  ],
  files: [{ source: '/b/passwd', target: '/etc/passwd' }],
  contain: false,
  pidNamespace: false,
  network: 'host',
  terminal: false,
  allowSetuid: false,
};

test('buildAdhocSpec, a user: user namespace mapping them to root, the helper first, host /proc /dev /sys, read-only root by runc', () => {
  const s = buildAdhocSpec(base);
  assert.deepEqual(s.process.args, ['/.warren/init', '1000', '100', '/bin/true']);
  assert.deepEqual(s.process.user, { uid: 0, gid: 0 });
  assert.deepEqual(s.process.capabilities.bounding, ['CAP_SETFCAP']);
  assert.equal(s.process.noNewPrivileges, true);
  assert.deepEqual(s.linux.namespaces.map((n) => n.type), ['mount', 'user']);
  assert.deepEqual(s.linux.uidMappings, [{ containerID: 0, hostID: 1000, size: 1 }]);
  assert.equal(s.root.readonly, true, 'runc remounts the root read-only (readonlyPaths["/"] would block the nested user namespace)');
  assert.deepEqual(s.linux.readonlyPaths, []);
  assert.equal(s.hostname, undefined, 'no UTS namespace: no hostname');
  const m = s.mounts;
  assert.equal(m[0]!.type, 'overlay');
  assert.deepEqual(m[0]!.options!.slice(0, 3), ['lowerdir=/b/image', 'upperdir=/b/upper', 'workdir=/b/work']);
  const dest = m.map((x) => x.destination);
  assert.ok(dest.indexOf('/home/u') < dest.indexOf('/home/u/deep/x'), 'a bind inside another comes after it');
  assert.equal(m.find((x) => x.destination === '/proc')!.source, '/proc');
  assert.equal(m.find((x) => x.destination === '/dev')!.source, '/dev');
  assert.ok(m.find((x) => x.destination === '/etc/passwd')!.options!.includes('ro'));
});

test('buildAdhocSpec, --fakeroot: a user namespace, root inside it with root\'s capabilities there', () => {
  const s = buildAdhocSpec({ ...base, fakeroot: true });
  assert.deepEqual(s.process.args.slice(0, 3), ['/.warren/init', '0', '0']);
  assert.ok(s.process.capabilities.bounding.includes('CAP_CHOWN'));
  assert.deepEqual(s.linux.uidMappings, [{ containerID: 0, hostID: 1000, size: 1 }]);
  assert.ok(s.linux.namespaces.some((n) => n.type === 'user'));
  assert.equal(s.root.readonly, true);
});

test('buildAdhocSpec, root, --containall, --net none, --hostname, writable', () => {
  const s = buildAdhocSpec({ ...base, caller: { uid: 0, gid: 0 }, contain: true, pidNamespace: true, network: 'none', hostname: 'box', writable: true });
  assert.deepEqual(s.linux.namespaces.map((n) => n.type), ['mount', 'pid', 'ipc', 'network', 'uts']);
  assert.equal(s.linux.uidMappings, undefined);
  assert.ok(s.process.capabilities.bounding.includes('CAP_CHOWN'));
  assert.equal(s.hostname, 'box');
  assert.equal(s.root.readonly, false);
  assert.deepEqual(s.linux.readonlyPaths, []);
  const dest = (d: string) => s.mounts.find((x) => x.destination === d);
  assert.equal(dest('/proc')!.type, 'proc');
  assert.equal(dest('/dev')!.type, 'tmpfs');
  assert.equal(dest('/tmp')!.type, 'tmpfs');
  assert.equal(dest('/sys')!.type, 'sysfs');
  const ro = buildAdhocSpec({ ...base, caller: { uid: 0, gid: 0 } });
  assert.deepEqual(ro.linux.readonlyPaths, ['/'], 'root callers keep nosuid,nodev through readonlyPaths');
});
