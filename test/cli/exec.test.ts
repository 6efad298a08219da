// `warren exec|shell|run IMAGE` and `warren instance`, end to end through the real CLI, real
// runc and real images (Apptainer's own busybox SIF from ../shared, a SIF Warren built, a
// sandbox directory), as root and as a user that the test creates.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { repoRoot, sharedDir, tempDir } from '../helpers.js';
import { makeBusyboxRootfs } from '../runtime/container/fixtures.js';
import { registryAvailable, startRegistry } from '../image/oci/registry.js';
import { pushBusybox } from '../image/oci/fixtures.js';

const isRoot = process.getuid?.() === 0;
const haveRunc = spawnSync('sh', ['-c', 'command -v runc || test -x /usr/sbin/runc']).status === 0;
const skip = !isRoot ? 'needs root (it creates a test user)' : !haveRunc ? 'needs runc (scripts/setup.sh installs it)' : false;
const USER = 'warren-test-exec';
const APPTAINER_SIF = join(sharedDir, 'apptainer-testdata', 'busybox_amd64.sif');
const WARREN = join(repoRoot, 'bin', 'warren.js');

const tmp = tempDir('warren-exec-', '/tmp');
const work = tmp.dir;
const home = join(work, 'home');
let sif = '';
let sandbox = '';
let uid = -1;
let gid = -1;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function warren(args: string[], o: { env?: Record<string, string>; input?: string; cwd?: string; user?: boolean; timeout?: number } = {}): Result {
  const env: Record<string, string> = o.user
    ? { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', HOME: `/home/${USER}`, LANG: 'C.UTF-8', WARREN_HOME: `/home/${USER}/.warren`, WARREN_MOUNT_IDLE_S: '0', ...o.env }
    : { ...(process.env as Record<string, string>), WARREN_HOME: home, WARREN_MOUNT_IDLE_S: '0', ...o.env };
  const cmd = o.user ? 'runuser' : process.execPath;
  const argv = o.user ? ['-u', USER, '--', process.execPath, WARREN, ...args] : [WARREN, ...args];
  const r = spawnSync(cmd, argv, { env, encoding: 'utf8', input: o.input ?? '', cwd: o.cwd ?? work, timeout: o.timeout ?? 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** What an ad-hoc container may leave: nothing but the image mount cache (released here). */
/** The private memory directory of a state directory's ad-hoc bundles (adhocRunDir), for `owner`. */
function runDirOf(h: string, owner: number): string {
  return `/dev/shm/warren-${owner}-${createHash('sha256').update(join(h, 'containers')).digest('hex').slice(0, 12)}`;
}

function assertClean(h: string, owner = 0): void {
  for (const base of [join(h, 'containers'), runDirOf(h, owner)]) {
    const bundles = join(base, 'bundles');
    assert.deepEqual(existsSync(bundles) ? readdirSync(bundles) : [], [], `bundles left behind in ${bundles}`);
    const runc = join(base, 'runc');
    assert.deepEqual(existsSync(runc) ? readdirSync(runc) : [], [], `runc containers left behind in ${runc}`);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`${base}/bundles`));
    assert.deepEqual(mounts, [], 'mounts left behind');
  }
}

function releaseHeldMounts(): void {
  const mine = [work, runDirOf(home, 0), runDirOf(join(work, 'home-signed'), 0)];
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const p = l.split(' ')[4];
    if (p && mine.some((d) => p.startsWith(d))) spawnSync('umount', ['-l', p]);
  }
}

before(() => {
  if (skip) return;
  mkdirSync(home, { mode: 0o700 });
  chmodSync(work, 0o755);
  makeBusyboxRootfs(join(work, 'rootfs'));
  sif = join(work, 'busybox.sif');
  const b = warren(['image', 'build', join(work, 'rootfs'), '-o', sif]);
  assert.equal(b.code, 0, b.stderr);
  chmodSync(sif, 0o644);
  // A sandbox directory with a runscript, an environment script and a SCIF app.
  sandbox = join(work, 'sandbox');
  makeBusyboxRootfs(sandbox);
  mkdirSync(join(sandbox, '.singularity.d', 'env'), { recursive: true });
  writeFileSync(join(sandbox, '.singularity.d', 'runscript'), '#!/bin/sh\necho "runscript: $*"\n', { mode: 0o755 });
  writeFileSync(join(sandbox, '.singularity.d', 'env', '90-environment.sh'), 'export FROM_IMAGE=image\nexport OVERRIDE=image\n');
  mkdirSync(join(sandbox, 'scif', 'apps', 'hello', 'scif', 'env'), { recursive: true });
  writeFileSync(join(sandbox, 'scif', 'apps', 'hello', 'scif', 'runscript'), '#!/bin/sh\necho "hello app: $HELLO $*"\n', { mode: 0o755 });
  writeFileSync(join(sandbox, 'scif', 'apps', 'hello', 'scif', 'env', '90-environment.sh'), 'export HELLO=from-app\n');
  mkdirSync(join(sandbox, 'etc'), { recursive: true });
  writeFileSync(join(sandbox, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(sandbox, 'etc', 'group'), 'root:x:0:\n');
  if (spawnSync('id', ['-u', USER]).status !== 0) execFileSync('useradd', ['-m', '-s', '/bin/sh', USER], { stdio: 'ignore' });
  uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }));
  gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }));
});

after(() => {
  if (skip) return;
  spawnSync(process.execPath, [WARREN, 'instance', 'stop', '--all', '--force'], { env: { ...process.env, WARREN_HOME: home } });
  spawnSync('runuser', ['-u', USER, '--', process.execPath, WARREN, 'instance', 'stop', '--all', '--force'], { env: { PATH: process.env.PATH ?? '', HOME: `/home/${USER}`, WARREN_HOME: `/home/${USER}/.warren` } });
  releaseHeldMounts();
  for (const [h, owner] of [[home, 0], [join(work, 'home-signed'), 0], [`/home/${USER}/.warren`, uid]] as const) rmSync(runDirOf(h, owner), { recursive: true, force: true });
  spawnSync('userdel', ['-r', '-f', USER], { stdio: 'ignore' });
  tmp.cleanup();
});

test('exec as root: the command, its exit status, stdin, the current directory, home and /tmp bound', { skip, timeout: 120_000 }, () => {
  const cwd = join(work, 'project');
  mkdirSync(cwd, { recursive: true });
  writeFileSync(join(cwd, 'data.txt'), 'project data\n');
  const r = warren(['exec', APPTAINER_SIF, 'sh', '-c', 'id -u; pwd; cat data.txt; echo out > /tmp/warren-exec-tmp-$PPID-x; ls /tmp/warren-exec-tmp-$PPID-x; cat; echo "home=$HOME"; test -d "$HOME" && echo home-bound'], { cwd, input: 'from stdin\n' });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], '0');
  assert.equal(lines[1], cwd);
  assert.equal(lines[2], 'project data');
  assert.match(lines[3]!, /^\/tmp\/warren-exec-tmp-\d+-x$/);
  assert.ok(existsSync(lines[3]!), '/tmp inside is the host /tmp');
  rmSync(lines[3]!);
  assert.equal(lines[4], 'from stdin');
  assert.equal(lines[5], `home=${process.env.HOME ?? '/root'}`);
  assert.equal(lines[6], 'home-bound');
  assert.equal(warren(['exec', APPTAINER_SIF, 'sh', '-c', 'exit 7']).code, 7);
  // Always this machine, whatever context is set (this one names no server at all).
  assert.equal(warren(['exec', sif, 'true'], { env: { WARREN_CONTEXT: 'no-such-server' } }).code, 0);
  const missing = warren(['exec', APPTAINER_SIF, 'no-such-command']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /no-such-command/);
  // The image is read-only.
  const ro = warren(['exec', APPTAINER_SIF, 'touch', '/new-file']);
  assert.notEqual(ro.code, 0);
  assert.match(ro.stderr, /Read-only file system/);
  assertClean(home);
});

test('binds: --bind SRC:DST:ro, several at once, $WARREN_BIND; a missing source is refused before anything starts', { skip, timeout: 120_000 }, () => {
  const a = join(work, 'bind-a');
  const b = join(work, 'bind-b');
  mkdirSync(a, { recursive: true });
  mkdirSync(b, { recursive: true });
  writeFileSync(join(a, 'f'), 'A\n');
  writeFileSync(join(b, 'f'), 'B\n');
  const r = warren(['exec', '--bind', `${a}:/mnt/a:ro,${b}:/mnt/b`, sif, 'sh', '-c', 'cat /mnt/a/f /mnt/b/f; echo w > /mnt/b/w && echo b-writable; echo w > /mnt/a/w 2>/dev/null || echo a-read-only'], {});
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['A', 'B', 'b-writable', 'a-read-only']);
  assert.equal(readFileSync(join(b, 'w'), 'utf8'), 'w\n');
  const env = warren(['exec', sif, 'cat', '/data/f'], { env: { WARREN_BIND: `${a}:/data` } });
  assert.equal(env.code, 0, env.stderr);
  assert.equal(env.stdout, 'A\n');
  const bad = warren(['exec', '-B', '/no/such/dir:/x', sif, 'true']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /error\[RUNTIME_BIND_MISSING\]: --bind \/no\/such\/dir:\/x/);
  assert.match(bad.stderr, /hint:/);
  const syntax = warren(['exec', '-B', `${a}:/x:rx`, sif, 'true']);
  assert.equal(syntax.code, 2);
  assert.match(syntax.stderr, /CLI_BAD_BIND.*unknown bind option "rx"/);
  const over = warren(['exec', '-B', `${a}:/`, sif, 'true']);
  assert.equal(over.code, 2);
  assert.match(over.stderr, /CLI_BAD_BIND/);
  assertClean(home);
});

test('environment: passed from the host (not PATH), the image wins over it, --env/--env-file/WARRENENV_ win over the image, --cleanenv', { skip, timeout: 120_000 }, () => {
  const envFile = join(work, 'vars.env');
  writeFileSync(envFile, '# comment\nexport FILEVAR="from file"\n\nOVERRIDE=file\n');
  const r = warren(['exec', '--env', 'CLIVAR=cli', '--env-file', envFile, sandbox, 'sh', '-c', 'echo "$HOSTVAR|$FROM_IMAGE|$OVERRIDE|$CLIVAR|$FILEVAR|$PREFIXED|$PATH"'], {
    env: { HOSTVAR: 'host', FROM_IMAGE: 'host-loses', PATH: '/host/only/bin:/usr/bin:/bin', WARRENENV_PREFIXED: 'prefixed' },
  });
  assert.equal(r.code, 0, r.stderr);
  const [host, img, over, cli, file, pre, path] = r.stdout.trim().split('|');
  assert.equal(host, 'host');
  assert.equal(img, 'image');
  assert.equal(over, 'file');
  assert.equal(cli, 'cli');
  assert.equal(file, 'from file');
  assert.equal(pre, 'prefixed');
  assert.ok(!path!.includes('/host/only/bin'), `host PATH leaked: ${path}`);
  const clean = warren(['exec', '--cleanenv', '--env', 'KEEP=1', sif, 'sh', '-c', 'echo "${HOSTVAR:-unset}|$KEEP|$TERM"'], { env: { HOSTVAR: 'host', TERM: 'xterm' } });
  assert.equal(clean.code, 0, clean.stderr);
  assert.equal(clean.stdout.trim(), 'unset|1|xterm');
  const badEnv = warren(['exec', '--env', 'no-equals', sif, 'true']);
  assert.equal(badEnv.code, 2);
  assert.match(badEnv.stderr, /CLI_BAD_ENV/);
  writeFileSync(envFile, 'GOOD=1\nthis is not a variable\n');
  const badFile = warren(['exec', '--env-file', envFile, sif, 'true']);
  assert.equal(badFile.code, 2);
  assert.match(badFile.stderr, new RegExp(`CLI_BAD_ENV\\]: ${envFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:1`));
});

test('run: the runscript with its arguments, SCIF apps, the OCI runscript of an Apptainer image; workflows still run', { skip, timeout: 120_000 }, () => {
  const r = warren(['run', sandbox, 'one', 'two']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'runscript: one two\n');
  const app = warren(['run', '--app', 'hello', sandbox, 'x']);
  assert.equal(app.code, 0, app.stderr);
  assert.equal(app.stdout, 'hello app: from-app x\n');
  const noApp = warren(['run', '--app', 'nope', sandbox]);
  assert.equal(noApp.code, 2);
  assert.match(noApp.stderr, /RUNTIME_APP_UNKNOWN.*"nope" \(it has: hello\)/);
  // Apptainer's busybox image: its runscript runs the OCI CMD, or the arguments.
  const oci = warren(['run', APPTAINER_SIF, 'echo', 'hi from the runscript']);
  assert.equal(oci.code, 0, oci.stderr);
  assert.equal(oci.stdout, 'hi from the runscript\n');
  // A Warren-built SIF without a runscript, entrypoint or cmd.
  const none = warren(['run', sif]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /RUNTIME_NO_RUNSCRIPT/);
  // `warren run FILE.yaml` is still a workflow.
  const flow = join(work, 'flow.yaml');
  writeFileSync(flow, 'version: v1\njobs:\n  hello:\n    command: ["/bin/echo", "workflow ran"]\n');
  const wf = warren(['run', flow]);
  assert.equal(wf.code, 0, wf.stderr);
  // Options after IMAGE belong to the container's command.
  const after = warren(['exec', sif, 'echo', '--bind', '-x']);
  assert.equal(after.code, 0, after.stderr);
  assert.equal(after.stdout, '--bind -x\n');
});

test('--writable-tmpfs, --overlay DIR (kept), --overlay DIR:ro; an overlay that is not writable', { skip, timeout: 120_000 }, () => {
  const w = warren(['exec', '--writable-tmpfs', sif, 'sh', '-c', 'echo x > /scratch && cat /scratch']);
  assert.equal(w.code, 0, w.stderr);
  assert.equal(w.stdout, 'x\n');
  assert.notEqual(warren(['exec', sif, 'cat', '/scratch']).code, 0, 'writable-tmpfs changes are discarded');
  const ov = join(work, 'overlay');
  mkdirSync(ov, { recursive: true });
  const o1 = warren(['exec', '--overlay', ov, sif, 'sh', '-c', 'mkdir -p /opt/tool && echo v1 > /opt/tool/version']);
  assert.equal(o1.code, 0, o1.stderr);
  assert.equal(readFileSync(join(ov, 'upper', 'opt', 'tool', 'version'), 'utf8'), 'v1\n');
  const o2 = warren(['exec', '--overlay', `${ov}:ro`, sif, 'sh', '-c', 'cat /opt/tool/version; echo y > /opt/tool/y 2>/dev/null || echo read-only']);
  assert.equal(o2.code, 0, o2.stderr);
  assert.equal(o2.stdout, 'v1\nread-only\n');
  const missing = warren(['exec', '--overlay', join(work, 'no-overlay'), sif, 'true']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /RUNTIME_OVERLAY_INVALID/);
  assertClean(home);
});

test('--contain, --containall, --net --network none, --hostname, --pwd, --nv', { skip, timeout: 120_000 }, () => {
  const c = warren(['exec', '--contain', sif, 'sh', '-c', 'ls /tmp | wc -l; test -e "$HOME/.bashrc" && echo home-bound || echo home-empty'], { cwd: work });
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(c.stdout.trim().split('\n'), ['0', 'home-empty']);
  const all = warren(['exec', '--containall', sif, 'sh', '-c', 'echo $$; echo "${HOSTVAR:-unset}"'], { env: { HOSTVAR: 'x' } });
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(all.stdout.trim().split('\n'), ['1', 'unset']);
  const net = warren(['exec', '--net', '--network', 'none', '--hostname', 'box1', sif, 'sh', '-c', 'hostname; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "']);
  assert.equal(net.code, 0, net.stderr);
  assert.deepEqual(net.stdout.trim().split('\n'), ['box1', 'lo']);
  const bridge = warren(['exec', '--net', '--network', 'bridge', sif, 'true']);
  assert.equal(bridge.code, 2);
  assert.match(bridge.stderr, /CLI_BAD_OPTION.*--network bridge/);
  const pwd = warren(['exec', '--pwd', '/etc', sif, 'pwd']);
  assert.equal(pwd.stdout, '/etc\n');
  assert.equal(warren(['exec', '--cwd', '/etc', sif, 'pwd']).stdout, '/etc\n');
  // --home SRC:DST binds another directory as the home; --no-home binds none.
  const alt = join(work, 'alt-home');
  mkdirSync(alt, { recursive: true });
  writeFileSync(join(alt, 'marker'), 'alt\n');
  const h = warren(['exec', '--home', `${alt}:/home/other`, sif, 'sh', '-c', 'echo "$HOME"; cat "$HOME/marker"']);
  assert.equal(h.code, 0, h.stderr);
  assert.equal(h.stdout, '/home/other\nalt\n');
  // (a home outside /tmp, which is bound anyway)
  const outside = mkdtempSync('/var/lib/warren-test-home-');
  try {
    writeFileSync(join(outside, 'marker'), 'x\n');
    const nh = warren(['exec', '--no-home', sif, 'sh', '-c', 'echo "$HOME"; ls -A "$HOME" 2>/dev/null | wc -l'], { env: { HOME: outside } });
    assert.equal(nh.code, 0, nh.stderr);
    assert.equal(nh.stdout, `${outside}\n0\n`);
    const bound = warren(['exec', sif, 'cat', `${outside}/marker`], { env: { HOME: outside } });
    assert.equal(bound.stdout, 'x\n', 'without --no-home the home is bound');
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
  const badHome = warren(['exec', '--home', join(work, 'no-such-home'), sif, 'true']);
  assert.equal(badHome.code, 2);
  assert.match(badHome.stderr, /RUNTIME_BIND_MISSING\]: --home /);
  const nvidia = existsSync('/dev/nvidiactl');
  const nv = warren(['exec', '--nv', sif, 'true']);
  if (!nvidia) {
    assert.equal(nv.code, 2);
    assert.match(nv.stderr, /RUNTIME_NV_NO_DEVICE.*no NVIDIA GPU/);
  }
});

test('trust policy: under require-signed an unsigned image is refused before it starts', { skip, timeout: 60_000 }, () => {
  const h = join(work, 'home-signed');
  mkdirSync(h, { mode: 0o700 });
  writeFileSync(join(h, 'policy.json'), JSON.stringify({ 'require-signed': true }));
  const r = warren(['exec', sif, 'sh', '-c', 'echo RAN'], { env: { WARREN_HOME: h } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /error\[IMAGE_UNSIGNED\]/);
  assert.ok(!r.stdout.includes('RAN'));
  assertClean(h);
  const notImage = warren(['exec', join(work, 'flow.yaml'), 'true']);
  assert.equal(notImage.code, 2);
  assert.match(notImage.stderr, /IMAGE_SIF_INVALID|IMAGE_LOCAL_NOT_FOUND/);
  const lib = warren(['exec', 'library://alpine', 'true']);
  assert.equal(lib.code, 2);
  assert.match(lib.stderr, /IMAGE_REF_INVALID.*library:\/\//);
});

test('as a user who is not root: own uid and gid inside, home bound, the image extracted into their own cache', { skip, timeout: 180_000 }, () => {
  const r = warren(['exec', APPTAINER_SIF, 'sh', '-c', 'id -u; id -g; whoami; echo $HOME; touch ~/made-inside; grep -c . /proc/self/status >/dev/null; grep CapEff /proc/self/status'], { user: true, cwd: `/home/${USER}` });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], String(uid));
  assert.equal(lines[1], String(gid));
  assert.equal(lines[2], USER);
  assert.equal(lines[3], `/home/${USER}`);
  assert.match(lines[4]!, /CapEff:\s+0+$/);
  const made = `/home/${USER}/made-inside`;
  assert.ok(existsSync(made));
  const st = spawnSync('stat', ['-c', '%u:%g', made], { encoding: 'utf8' }).stdout.trim();
  assert.equal(st, `${uid}:${gid}`, 'files written inside belong to the user');
  const fuse = spawnSync('runuser', ['-u', USER, '--', 'test', '-w', '/dev/fuse']).status === 0;
  if (!fuse) assert.ok(readdirSync(`/home/${USER}/.warren/containers/rootfs`).length >= 1, 'extracted into the per-user cache');
  assertClean(`/home/${USER}/.warren`, uid);
  // --fakeroot: root inside (of the user's own namespace); what it writes is still the user's.
  const fr = warren(['exec', '--fakeroot', '--writable-tmpfs', APPTAINER_SIF, 'sh', '-c', 'id -u; touch ~/fakeroot-made; echo x > /etc/fr && chown 0:0 /etc/fr && echo chowned'], { user: true, cwd: `/home/${USER}` });
  assert.equal(fr.code, 0, fr.stderr);
  assert.deepEqual(fr.stdout.trim().split('\n'), ['0', 'chowned']);
  assert.equal(spawnSync('stat', ['-c', '%u', `/home/${USER}/fakeroot-made`], { encoding: 'utf8' }).stdout.trim(), String(uid));
  // An overlay the user cannot write.
  const ro = join(work, 'root-overlay');
  mkdirSync(ro, { recursive: true, mode: 0o755 });
  const bad = warren(['exec', '--overlay', ro, APPTAINER_SIF, 'true'], { user: true, cwd: `/home/${USER}` });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /RUNTIME_OVERLAY_NOT_WRITABLE.*not writable by you/);
});

test('instances: start, name in use, exec instance://, list, stop; as root and as a user', { skip, timeout: 180_000 }, () => {
  for (const user of [false, true]) {
    const cwd = user ? `/home/${USER}` : work;
    const s = warren(['instance', 'start', APPTAINER_SIF, 'svc1'], { user, cwd });
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /instance svc1 started/);
    const again = warren(['instance', 'start', APPTAINER_SIF, 'svc1'], { user, cwd });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /INSTANCE_NAME_IN_USE/);
    const e = warren(['exec', 'instance://svc1', 'sh', '-c', 'id -u; cat /proc/1/cmdline | tr "\\0" " "'], { user, cwd });
    assert.equal(e.code, 0, e.stderr);
    const [u, init] = e.stdout.trim().split('\n');
    assert.equal(u, String(user ? uid : 0));
    assert.match(init!, /--warren-instance/, 'pid 1 is the instance, in its own PID namespace');
    const l = warren(['instance', 'list', '--json'], { user, cwd });
    const list = JSON.parse(l.stdout) as { name: string; pid: number }[];
    assert.deepEqual(list.map((i) => i.name), ['svc1']);
    const stop = warren(['instance', 'stop', 'svc1'], { user, cwd });
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(JSON.parse(warren(['instance', 'list', '--json'], { user, cwd }).stdout).length, 0);
    const unknown = warren(['instance', 'stop', 'svc1'], { user, cwd });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /INSTANCE_UNKNOWN/);
    assertClean(user ? `/home/${USER}/.warren` : home, user ? uid : 0);
  }
  const badName = warren(['instance', 'start', sif, '../x']);
  assert.equal(badName.code, 2);
  assert.match(badName.stderr, /INSTANCE_BAD_NAME/);
  // A start that fails leaves nothing: no record, no directory.
  const noImage = warren(['instance', 'start', join(work, 'no-such.sif'), 'ghost']);
  assert.equal(noImage.code, 2);
  assert.match(noImage.stderr, /IMAGE_LOCAL_NOT_FOUND/);
  assert.ok(!existsSync(join(home, 'instances', 'ghost')));
});

test('instances: a supervisor killed with SIGKILL leaves nothing the next Warren does not sweep', { skip, timeout: 120_000 }, () => {
  const s = warren(['instance', 'start', sif, 'crashy']);
  assert.equal(s.code, 0, s.stderr);
  const rec = JSON.parse(warren(['instance', 'list', '--json']).stdout)[0] as { pid: number; containerPid: number };
  process.kill(rec.pid, 'SIGKILL');
  // The container outlives its supervisor until the next Warren sweeps it.
  assert.equal(JSON.parse(warren(['instance', 'list', '--json']).stdout).length, 0);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && existsSync(`/proc/${rec.containerPid}`)) spawnSync('sleep', ['0.05']);
  assert.ok(!existsSync(`/proc/${rec.containerPid}`), 'the orphaned container was removed');
  // The next ad-hoc start sweeps the bundle of the dead supervisor.
  assert.equal(warren(['exec', sif, 'true']).code, 0);
  assertClean(home);
});

test('the image argument of warren run: SIF by magic, schemes, sandbox directories; a YAML file is a workflow', { skip, timeout: 60_000 }, () => {
  const link = join(work, 'image-without-suffix');
  symlinkSync(sif, link);
  const r = warren(['run', link]);
  assert.equal(r.code, 2, 'a SIF without runscript: refused as an image, not parsed as YAML');
  assert.match(r.stderr, /RUNTIME_NO_RUNSCRIPT/);
  chownSync(work, 0, 0);
});

test('workflow jobs take the same binds and overlays (image.binds, image.overlays); a missing bind is refused before anything runs', { skip, timeout: 120_000 }, () => {
  const data = join(work, 'job-data');
  const ov = join(work, 'job-overlay');
  mkdirSync(data, { recursive: true });
  mkdirSync(ov, { recursive: true });
  writeFileSync(join(data, 'in.txt'), 'job input\n');
  const out = join(work, 'job-out.txt');
  const flow = join(work, 'binds.yaml');
  writeFileSync(
    flow,
    `version: v1
jobs:
  use:
    image:
      uri: ${sif}
      binds: ["${data}:/data:ro", "${work}:/out"]
      overlays: ["${ov}"]
    command: ["/bin/sh", "-c", "cat /data/in.txt > /out/job-out.txt; mkdir -p /opt/kept && echo kept > /opt/kept/f; echo x > /data/x 2>/dev/null || echo ro >> /out/job-out.txt"]
`,
  );
  const r = warren(['run', flow]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(readFileSync(out, 'utf8'), 'job input\nro\n');
  assert.equal(readFileSync(join(ov, 'upper', 'opt', 'kept', 'f'), 'utf8'), 'kept\n');
  const bad = join(work, 'bad-binds.yaml');
  writeFileSync(bad, `version: v1\njobs:\n  use:\n    image:\n      uri: ${sif}\n      binds: ["/no/such/path:/data"]\n    command: ["/bin/true"]\n`);
  const b = warren(['run', bad]);
  assert.equal(b.code, 2, b.stderr);
  assert.match(b.stderr, /RUNTIME_BIND_MISSING.*\/no\/such\/path/);
  const syntax = join(work, 'syntax-binds.yaml');
  writeFileSync(syntax, `version: v1\njobs:\n  use:\n    image:\n      uri: ${sif}\n      binds: ["relative:/data"]\n      overlays: ["/a", "/b"]\n    command: ["/bin/true"]\n`);
  const v = warren(['validate', syntax]);
  assert.equal(v.code, 2);
  assert.match(v.stderr, /syntax-binds\.yaml:6:\d+: .*binds\[0\].*both paths must be absolute/);
  assert.match(v.stderr, /syntax-binds\.yaml:7:\d+: .*overlays\[1\].*only one overlay may be writable/);
});

test('encrypted images: --passphrase-env and --key run them from memory; without the key or with a wrong one, a clear error', { skip, timeout: 120_000 }, () => {
  const enc = join(work, 'enc-pass.sif');
  const encRsa = join(work, 'enc-rsa.sif');
  const keys = join(sharedDir, 'sif-testdata', 'keys');
  assert.equal(warren(['image', 'encrypt', sif, '--passphrase-env', 'PASS', '-o', enc], { env: { PASS: 'correct horse' } }).code, 0);
  assert.equal(warren(['image', 'encrypt', sif, '--key', join(keys, 'rsa-public.pem'), '-o', encRsa]).code, 0);
  const r = warren(['exec', '--passphrase-env', 'PASS', enc, 'sh', '-c', 'echo opened; test -x /bin/busybox && echo has-busybox'], { env: { PASS: 'correct horse' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'opened\nhas-busybox\n');
  const k = warren(['exec', '--key', join(keys, 'rsa-private.pem'), encRsa, 'echo', 'rsa opened']);
  assert.equal(k.code, 0, k.stderr);
  assert.equal(k.stdout, 'rsa opened\n');
  const none = warren(['exec', enc, 'true']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /error\[SIF_ENCRYPTED\].*no key was given.*\n\s+hint: .*--passphrase-env/);
  const wrong = warren(['exec', '--passphrase-env', 'PASS', enc, 'true'], { env: { PASS: 'wrong' } });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /SIF_DECRYPT_FAILED.*wrong passphrase/);
  const unset = warren(['exec', '--passphrase-env', 'NOT_SET_ANYWHERE', enc, 'true']);
  assert.equal(unset.code, 2);
  assert.match(unset.stderr, /SIF_PASSPHRASE_MISSING/);
  // Nothing decrypted is left: no crypt mount, no plaintext squashfs in the run or home directories.
  assert.deepEqual(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => /crypt/.test(l) && l.includes(work)), []);
  assertClean(home);
});

test('a docker:// image from a registry (loopback): pulled once into the cache, then exec and run use it', { skip: skip || (!registryAvailable() ? 'docker-registry is not installed' : false), timeout: 120_000 }, async () => {
  const reg = await startRegistry();
  try {
    const uri = `docker://${reg.host}/test/busybox:1`;
    await pushBusybox(uri);
    const r = warren(['exec', uri, '/bin/sh', '-c', 'read a < /etc/arch; echo $a']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'amd64\n');
    // run: the OCI entrypoint (/bin/sh -c) with the arguments as its cmd.
    const run = warren(['run', uri, 'echo from-entrypoint']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'from-entrypoint\n');
    const again = warren(['exec', uri, 'sh', '-c', 'echo "$WARREN_TEST"']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, '1\n', 'the image config environment is set');
    const missing = warren(['exec', `docker://${reg.host}/test/busybox:nope`, 'true']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /error\[IMAGE_/);
    assertClean(home);
  } finally {
    await reg.stop();
  }
});

test('an image built from a definition file: run (its %runscript, %environment), --app (%apprun, %appenv), instance start (%startscript)', { skip, timeout: 120_000 }, () => {
  const def = join(work, 'app.def');
  writeFileSync(
    def,
    `Bootstrap: busybox

%environment
    export GREETING=hello

%runscript
    echo "runscript says $GREETING $*"

%startscript
    echo "$GREETING from the startscript" > ${work}/instance-started

%apprun foo
    echo "foo app: $FOO_VAR $*"

%appenv foo
    export FOO_VAR=from-appenv
`,
  );
  const out = join(work, 'app.sif');
  const b = warren(['image', 'build', out, def]);
  assert.equal(b.code, 0, b.stderr);
  const r = warren(['run', out, 'a', 'b']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'runscript says hello a b\n');
  const app = warren(['run', '--app', 'foo', out, 'x']);
  assert.equal(app.code, 0, app.stderr);
  assert.equal(app.stdout, 'foo app: from-appenv x\n');
  const s = warren(['instance', 'start', out, 'built1']);
  assert.equal(s.code, 0, s.stderr);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !existsSync(join(work, 'instance-started'))) spawnSync('sleep', ['0.05']);
  assert.equal(readFileSync(join(work, 'instance-started'), 'utf8'), 'hello from the startscript\n');
  assert.equal(warren(['instance', 'stop', 'built1']).code, 0);
  assertClean(home);
});

test('--writable changes a sandbox directory in place; a SIF, a cached image or a sandbox that is not yours are refused', { skip, timeout: 120_000 }, () => {
  const box = join(work, 'writable-box');
  makeBusyboxRootfs(box);
  const w = warren(['exec', '--writable', box, 'sh', '-c', 'echo kept > /kept.txt']);
  assert.equal(w.code, 0, w.stderr);
  assert.equal(readFileSync(join(box, 'kept.txt'), 'utf8'), 'kept\n');
  const s = warren(['exec', '--writable', sif, 'true']);
  assert.equal(s.code, 2);
  assert.match(s.stderr, /RUNTIME_WRITABLE_UNSUPPORTED.*a SIF/);
  const both = warren(['exec', '--writable', '--writable-tmpfs', box, 'true']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /RUNTIME_WRITABLE_UNSUPPORTED/);
  const notMine = warren(['exec', '--writable', box, 'true'], { user: true, cwd: `/home/${USER}` });
  assert.equal(notMine.code, 2);
  assert.match(notMine.stderr, /RUNTIME_IMAGE_NOT_WRITABLE/);
  assertClean(home);
});
