// `warren install systemd` through the real CLI: both units written into a temporary
// directory and checked by `systemd-analyze verify` (Debian's systemd, as on a real node),
// then started as systemd would start them: ExecStart= read from the file with its
// Environment= and EnvironmentFile=, the server in a sandbox made from its own settings
// (User=, NoNewPrivileges=, CapabilityBoundingSet=, ProtectSystem=strict with its
// StateDirectory=/ReadWritePaths= writable, PrivateTmp=, StandardOutput=null). The server
// answers on HTTPS, the agent joins it with a join token from its environment file, runs a
// job as the server's user, and both stop cleanly on SIGTERM within TimeoutStopSec=. There
// is no systemd as PID 1 here, so systemctl cannot be used. Also the refused invocations.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { systemdUnit, unreadableByOthers } from '../../src/install/index.js';
import { tempDir, warrenBin } from '../helpers.js';
import { atProcessExit, pidAlive, waitFor } from '../helpers/cleanup.js';
import { execArgv, parseEnvFile, setting, settingWords, unitSettings } from '../install/unitfile.js';

const ANALYZE = '/usr/bin/systemd-analyze';
const haveAnalyze = existsSync(ANALYZE);
const isRoot = process.getuid?.() === 0;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** `systemd-analyze verify` of one unit file: its exit status and everything it printed. */
function verify(path: string): { code: number | null; out: string } {
  const r = spawnSync(ANALYZE, ['verify', path], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

/** An account from /etc/passwd. */
function account(name: string): { uid: number; gid: number; home: string; shell: string } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no account ${name}`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! };
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const SANDBOXED = ['ProtectSystem', 'PrivateTmp', 'ReadWritePaths', 'NoNewPrivileges', 'CapabilityBoundingSet'];

interface Started {
  p: ChildProcess;
  argv: string[];
  env: Record<string, string>;
  log: () => string;
}

/**
 * Start a unit's service as systemd would (the subset these units use): the environment
 * systemd gives (PATH, the user's HOME/USER/LOGNAME/SHELL, Environment=, EnvironmentFile=),
 * ExecStart= split and expanded, the StateDirectory= made and owned by User=, the sandbox
 * settings in a private mount namespace, UMask= (default 0022), stdout to /dev/null for
 * StandardOutput=null, and its own process group (as a unit's session). Any setting it does not know fails the test.
 */
function startUnit(text: string): Started {
  const known = new Set(['Description', 'After', 'Wants', 'Type', 'User', 'Environment', 'EnvironmentFile', 'ExecStart', 'Restart', 'RestartSec', 'RestartPreventExitStatus', 'TimeoutStopSec', 'KillMode', 'LimitNOFILE', 'LimitMEMLOCK', 'TasksMax', 'StandardOutput', 'StandardError', 'StateDirectory', 'StateDirectoryMode', 'UMask', 'WantedBy', ...SANDBOXED]);
  const ignoredHardening = /^(Protect(Home|Kernel\w+|ControlGroups|Clock|Hostname)|PrivateDevices|Restrict\w+|LockPersonality|SystemCallArchitectures)$/;
  for (const [k] of unitSettings(text)) assert.ok(known.has(k) || ignoredHardening.test(k), `the test knows what ${k}= does`);
  const user = setting(text, 'User') ?? 'root';
  const acc = account(user);
  const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: acc.home, USER: user, LOGNAME: user, SHELL: acc.shell };
  for (const [k, v] of unitSettings(text)) {
    if (k === 'Environment') {
      for (const w of settingWords(v)) env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
    } else if (k === 'EnvironmentFile') {
      const optional = v.startsWith('-');
      const file = optional ? v.slice(1) : v;
      if (existsSync(file)) Object.assign(env, parseEnvFile(readFileSync(file, 'utf8')));
      else assert.ok(optional, `${file} is missing and not optional`);
    }
  }
  const argv = execArgv(setting(text, 'ExecStart')!, env);
  const writable: string[] = [];
  for (const d of settingWords(setting(text, 'StateDirectory') ?? '')) {
    const dir = join('/var/lib', d);
    mkdirSync(dir, { recursive: true });
    chownSync(dir, acc.uid, acc.gid);
    chmodSync(dir, parseInt(setting(text, 'StateDirectoryMode') ?? '0755', 8));
    writable.push(dir);
  }
  writable.push(...settingWords(setting(text, 'ReadWritePaths') ?? ''));
  const stdout = setting(text, 'StandardOutput') === 'null' ? 'ignore' : 'pipe';
  const sh: string[] = ['set -e', `umask ${setting(text, 'UMask') ?? '0022'}`];
  const sandboxed = SANDBOXED.some((k) => setting(text, k) !== undefined);
  if (setting(text, 'ProtectSystem') === 'strict') {
    // Every mount read-only but the API file systems; then the writable directories.
    sh.push(`for m in $(findmnt -rno TARGET | sort -u); do case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;; *) mount -o remount,bind,ro "$m";; esac; done`);
    for (const w of writable) sh.push(`mount --bind ${sq(w)} ${sq(w)}`, `mount -o remount,bind,rw ${sq(w)}`);
  }
  if (setting(text, 'PrivateTmp') === 'yes') sh.push('mount -t tmpfs -o mode=1777 tmpfs /tmp', 'mount -t tmpfs -o mode=1777 tmpfs /var/tmp');
  const priv = [`--reuid=${acc.uid}`, `--regid=${acc.gid}`, '--init-groups'];
  if (setting(text, 'NoNewPrivileges') === 'yes') priv.push('--no-new-privs');
  if (setting(text, 'CapabilityBoundingSet') === '') priv.push('--bounding-set=-all', '--inh-caps=-all');
  sh.push(`exec ${user !== 'root' || sandboxed ? `setpriv ${priv.join(' ')} -- ` : ''}env -i "$@"`);
  const shell = ['/bin/sh', '-c', sh.join('\n'), 'sh', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv];
  // A private mount namespace only where the unit asks for one (the agent shares the host's, as its jobs must).
  const [cmd, ...args] = sandboxed ? ['unshare', '--mount', '--propagation', 'private', '--', ...shell] : shell;
  const p = spawn(cmd!, args, { env: { PATH: env.PATH! }, stdio: ['ignore', stdout, 'pipe'], detached: true, cwd: '/' });
  let log = '';
  p.stdout?.on('data', (d) => (log += d));
  p.stderr!.on('data', (d) => (log += d));
  return { p, argv, env, log: () => log };
}

/** SIGTERM to the main process (KillMode=mixed or control-group: these services have no other process); its exit status and time. */
async function stopUnit(s: Started, timeoutStopSec: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const t0 = Date.now();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (s.p.exitCode !== null || s.p.signalCode !== null) resolve({ code: s.p.exitCode, signal: s.p.signalCode });
    else s.p.once('exit', (code, signal) => resolve({ code, signal }));
  });
  s.p.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutStopSec * 1000)))]);
  clearTimeout(timer);
  if (!r) {
    s.p.kill('SIGKILL');
    return { code: null, signal: 'SIGKILL', ms: Date.now() - t0 };
  }
  return { ...r, ms: Date.now() - t0 };
}

/** Whether any process is left in the process group (a unit's leftovers that systemd would SIGKILL). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const seconds = (v: string | undefined) => Number(/^(\d+)s?$/.exec(v ?? '')?.[1] ?? NaN);

describe('warren install systemd', () => {
  let t: { dir: string; cleanup: () => void };
  let units: string;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [warrenBin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  before(() => {
    t = tempDir('warren-install-');
    units = join(t.dir, 'units');
    mkdirSync(units);
    env = { ...process.env, XDG_CONFIG_HOME: join(t.dir, 'cfg'), WARREN_HOME: join(t.dir, 'home') };
    delete env.WARREN_CONTEXT;
  });
  after(() => t.cleanup());

  test('refuses both --server and --agent, neither, a bad server URL, a relative --data, an existing unit without --force', () => {
    const cases: [string[], number, RegExp][] = [
      [['--server', '--agent'], 2, /error\[CLI_BAD_OPTION\]: --server and --agent were both given/],
      [[], 2, /error\[CLI_BAD_OPTION\]: warren install systemd needs --server or --agent/],
      [['--agent'], 2, /error\[CLI_BAD_OPTION\]: warren install systemd --agent needs --server URL/],
      [['--server', 'https://head:8443'], 2, /error\[CLI_BAD_OPTION\]: --server https:\/\/head:8443 names the agent's server, but --agent is missing/],
      [['--agent', '--server', 'http://head:8443'], 2, /error\[CLI_BAD_OPTION\]: the server address http:\/\/head:8443 is not https:\/\//],
      [['--agent', '--server', 'https://head:8443/x'], 2, /error\[CLI_BAD_OPTION\]: --server https:\/\/head:8443\/x has a path/],
      [['--server', '--data', 'var/warren'], 2, /error\[CLI_BAD_OPTION\]: --data must be an absolute path, not "var\/warren"/],
      [['--agent', '--server', 'https://head:8443', '--ca', 'ca.pem'], 2, /--ca must be an absolute path/],
      [['--server', '--environment-file', 'server.env'], 2, /--environment-file must be an absolute path/],
      [['--agent', '--server', 'https://head:8443', '--user', 'warren'], 2, /--user is for the server's unit/],
      [['--server', '--labels', 'a=b'], 2, /--labels is for the agent's unit/],
      [['--agent', '--server', 'https://head:8443', '--labels', 'nokv'], 2, /--labels takes k=v/],
      [['--server', '--dir', join(t.dir, 'missing')], 1, /error\[INSTALL_WRITE_FAILED\]: cannot write .*missing\/warren-server.service: .*missing does not exist/],
    ];
    for (const [args, code, re] of cases) {
      const r = cli(['install', 'systemd', '--dir', units, ...args]);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.match(r.stderr, /\n {2}hint: \S/, `${args.join(' ')} has a hint`);
    }
    assert.equal(existsSync(join(units, 'warren-server.service')), false, 'nothing written by a refused command');

    const first = cli(['install', 'systemd', '--server', '--dir', units]);
    assert.equal(first.code, 0, first.stderr);
    const path = join(units, 'warren-server.service');
    const before = readFileSync(path, 'utf8');
    writeFileSync(path, '# edited by hand\n');
    const again = cli(['install', 'systemd', '--server', '--dir', units, '--user', 'other']);
    assert.equal(again.code, 2);
    assert.match(again.stderr, new RegExp(`error\\[INSTALL_UNIT_EXISTS\\]: ${path} exists already; it is left as it is\\n  hint: .*--force`));
    assert.equal(readFileSync(path, 'utf8'), '# edited by hand\n', 'left as it was');
    const forced = cli(['install', 'systemd', '--server', '--dir', units, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, new RegExp(`^replaced ${path}\\n`));
    assert.equal(readFileSync(path, 'utf8'), before);
    assert.equal(statSync(path).mode & 0o777, 0o644);
    rmSync(path);
    const printed = cli(['install', 'systemd', '--server', '--dir', units, '--print']);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, before, '--print prints the same unit');
    assert.equal(existsSync(path), false, '--print writes nothing');
  });

  test('a server user that cannot read the node binary or warren.js is warned of (a checkout under /root)', () => {
    const base = join(t.dir, 'fs');
    const home = join(base, 'root');
    mkdirSync(join(home, 'warren', 'bin'), { recursive: true });
    chmodSync(t.dir, 0o711);
    chmodSync(base, 0o755);
    chmodSync(home, 0o700);
    const script = join(home, 'warren', 'bin', 'warren.js');
    writeFileSync(script, '');
    chmodSync(script, 0o600);
    const found = unreadableByOthers([process.execPath, script]);
    assert.ok(found.includes(`${home} (mode 0700, above ${script})`), found.join('; '));
    assert.equal(found.length, 2, found.join('; '));
    assert.ok(found.includes(`${script} (not readable by other users)`), found.join('; '));
    assert.ok(!found.some((f) => f.includes(process.execPath)), 'the node binary is readable');
  });

  test('systemd-analyze verify checks the escaping: node and warren.js paths with a space, % and $', { skip: haveAnalyze ? false : `${ANALYZE} is not installed (Debian: apt-get install systemd)` }, () => {
    const odd = join(t.dir, 'node dir', 'no%de$x');
    mkdirSync(join(t.dir, 'node dir'));
    symlinkSync(process.execPath, odd);
    const dir = join(t.dir, 'odd');
    mkdirSync(dir);
    const u = systemdUnit({ kind: 'agent', program: { node: odd, nodeArgs: [], script: warrenBin }, data: '/var/lib/warren-agent', envFile: '/etc/warren/agent.env', servers: ['https://head:8443'] });
    writeFileSync(join(dir, u.name), u.text);
    assert.deepEqual(verify(join(dir, u.name)), { code: 0, out: '' }, 'systemd finds the node binary at the path as written');
    assert.equal(execArgv(setting(u.text, 'ExecStart')!, {})[0], odd);
    // The control: the same path unescaped is not what systemd runs.
    writeFileSync(join(dir, u.name), u.text.replace(/^ExecStart=\S+ \S+ \S+/m, `ExecStart=${odd}`));
    const wrong = verify(join(dir, u.name));
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.out, /warren-agent\.service/);
  });

  /** Install both units, start them as written, use the cluster, stop them. `store`: WARREN_STORE in the server's environment file (else DATA/warren.db). */
  async function installedCluster(label: string, store?: string): Promise<void> {
    const units = join(t.dir, `units-${label}`);
    mkdirSync(units);
    // A system account of its own, as `useradd --system warren` makes (systemd-analyze rightly
    // calls `nobody` unsafe for a service).
    const user = `wtest-${randomBytes(4).toString('hex')}`;
    const add = spawnSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', user], { encoding: 'utf8' });
    assert.equal(add.status, 0, `useradd: ${add.stderr}`);
    const serverData = mkdtempSync('/var/lib/warren-test-server-');
    const agentData = mkdtempSync('/var/lib/warren-test-agent-');
    const etc = join(t.dir, `etc warren ${label}`); // a space: quoting on the real command line
    mkdirSync(etc);
    const started: Started[] = [];
    /** Whatever is still running is killed (its process group: a unit's cgroup), the directories and the account removed. */
    const removeAll = (): number | null => {
      for (const s of started) {
        if (s.p.pid && groupAlive(s.p.pid)) {
          try {
            process.kill(-s.p.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      rmSync(serverData, { recursive: true, force: true });
      rmSync(agentData, { recursive: true, force: true });
      return spawnSync('userdel', [user]).status;
    };
    const unregister = atProcessExit(() => void removeAll());
    try {
      const port = await freePort();
      // --- the server's unit
      const wrote = cli(['install', 'systemd', '--server', '--dir', units, '--data', serverData, '--user', user, '--environment-file', join(etc, 'server.env')]);
      assert.equal(wrote.code, 0, wrote.stderr);
      const serverUnitPath = join(units, 'warren-server.service');
      assert.equal(wrote.stdout, `wrote ${serverUnitPath}\nnext:\n  id ${user} >/dev/null 2>&1 || useradd --system --home-dir ${serverData} --shell /usr/sbin/nologin ${user}\n  systemctl daemon-reload\n  systemctl enable --now warren-server\n  journalctl -u warren-server -f   # its log\n`);
      const serverUnit = readFileSync(serverUnitPath, 'utf8');
      assert.equal(setting(serverUnit, 'StateDirectory'), serverData.slice('/var/lib/'.length));
      if (haveAnalyze) assert.deepEqual(verify(serverUnitPath), { code: 0, out: '' }, 'systemd-analyze verify reports no problem');
      writeFileSync(join(etc, 'server.env'), `# the test's listen address\nWARREN_SERVER_OPTIONS="--listen 127.0.0.1:${port} --heartbeat 500ms"\n${store ? `WARREN_STORE=${store}\n` : ''}`, { mode: 0o600 });
      const server = startUnit(serverUnit);
      started.push(server);
      assert.deepEqual(server.argv.slice(-6), ['--data', serverData, '--listen', `127.0.0.1:${port}`, '--heartbeat', '500ms']);
      assert.equal(server.argv[0], process.execPath);
      assert.ok(await waitFor(() => server.log().includes('ready: ') || server.p.exitCode !== null, 30_000), `server did not start:\n${server.log()}`);
      assert.equal(server.p.exitCode, null, server.log());
      assert.equal(statSync(serverData).uid, account(user).uid, 'its data belong to its user');
      const adminToken = readFileSync(join(serverData, 'admin.token'), 'utf8').trim();
      assert.ok(!server.log().includes(adminToken), 'the admin token is not in the log (the journal)');
      const url = `https://127.0.0.1:${port}`;
      const caPem = readFileSync(join(serverData, 'ca.pem'), 'utf8');
      const { Agent, request } = await import('undici');
      const d = new Agent({ connect: { ca: caPem } });
      try {
        const h = await request(`${url}/api/v1/health`, { dispatcher: d });
        assert.equal(h.statusCode, 200);
        const body = (await h.body.json()) as { ok: boolean; role: string };
        assert.equal(body.ok, true);
        assert.equal(body.role, 'leader');
      } finally {
        await d.close();
      }
      // --- a context, a join token, the agent's unit
      assert.equal(cli(['context', 'add', label, '--server', url, '--token', adminToken, '--ca', join(serverData, 'ca.pem')]).code, 0);
      assert.equal(cli(['context', 'use', label]).code, 0);
      const tok = cli(['token', 'create', '--ttl', '10m']);
      assert.equal(tok.code, 0, tok.stderr);
      const caFile = join(etc, 'ca.pem');
      copyFileSync(join(serverData, 'ca.pem'), caFile);
      const wa = cli(['install', 'systemd', '--agent', '--server', url, '--name', 'inst1', '--ca', caFile, '--labels', 'role=test', '--data', agentData, '--dir', units, '--environment-file', join(etc, 'agent.env')]);
      assert.equal(wa.code, 0, wa.stderr);
      assert.match(wa.stdout, /WARREN_JOIN_TOKEN=TOKEN >> .*agent\.env\)/);
      assert.match(wa.stdout, /systemctl enable --now warren-agent\n/);
      const agentUnitPath = join(units, 'warren-agent.service');
      const agentUnit = readFileSync(agentUnitPath, 'utf8');
      if (haveAnalyze) assert.deepEqual(verify(agentUnitPath), { code: 0, out: '' }, 'systemd-analyze verify reports no problem');
      writeFileSync(join(etc, 'agent.env'), `WARREN_JOIN_TOKEN=${tok.stdout.trim()}\nWARREN_AGENT_OPTIONS='--cores 1'\n`, { mode: 0o600 });
      const agent = startUnit(agentUnit);
      started.push(agent);
      assert.ok(!agent.argv.includes(tok.stdout.trim()), 'the join token is not on the command line');
      assert.ok(agent.argv.includes(caFile), agent.argv.join(' '));
      const ready = await waitFor(async () => {
        const r = cli(['node', 'list', '--json']);
        return r.code === 0 && (JSON.parse(r.stdout) as { name: string; state: string }[]).some((n) => n.name === 'inst1' && n.state === 'ready');
      }, 30_000, 300);
      assert.ok(ready, `the node is not ready:\n--- agent ---\n${agent.log()}\n--- server ---\n${server.log()}`);
      const nodes = JSON.parse(cli(['node', 'list', '--json']).stdout) as { name: string; cores: number; labels: Record<string, string> }[];
      assert.equal(nodes[0]!.cores, 1, 'WARREN_AGENT_OPTIONS from the environment file');
      assert.equal(nodes[0]!.labels.role, 'test');
      // A job, as the first admin: the server's Unix account, switched to by the root agent.
      const flow = join(t.dir, `flow-${label}.yaml`);
      writeFileSync(flow, 'version: v1\njobs:\n  who:\n    command: [/usr/bin/id, -un]\n');
      const run = cli(['run', flow, '--json']);
      assert.equal(run.code, 0, `${run.stdout}${run.stderr}\n${cli(['status', (JSON.parse(run.stdout || '{}') as { id?: string }).id ?? '?']).stdout}\n--- agent ---\n${agent.log()}`);
      const id = (JSON.parse(run.stdout) as { id: string; status: string }).id;
      assert.equal(cli(['logs', id, 'who']).stdout.trim(), user);
      // A job that would run for 10 minutes: stopping the agent stops it too.
      const long = join(t.dir, `long-${label}.yaml`);
      writeFileSync(long, 'version: v1\njobs:\n  long:\n    command: [/bin/sh, -c, "echo $$ > pid; exec sleep 600"]\n');
      const detached = cli(['run', long, '--detach']);
      assert.equal(detached.code, 0, detached.stderr);
      const pidFile = join(agentData, 'runs', detached.stdout.trim(), 'work', 'long', 'pid');
      assert.ok(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 30_000), `the long job did not start:\n${agent.log()}`);
      const jobPid = Number(readFileSync(pidFile, 'utf8'));
      assert.ok(pidAlive(jobPid));
      // --- stop both, as `systemctl stop` would
      const a = await stopUnit(agent, seconds(setting(agentUnit, 'TimeoutStopSec')));
      assert.deepEqual([a.code, a.signal], [0, null], `the agent exits cleanly on SIGTERM (${a.ms} ms):\n${agent.log()}`);
      assert.ok(await waitFor(() => !groupAlive(agent.p.pid!), 2000), "nothing of the agent's is left for KillMode=mixed to SIGKILL");
      assert.ok(await waitFor(() => !pidAlive(jobPid), 5000), 'its job is stopped with it (it is in a cgroup of its own, out of the unit\'s reach)');
      const s = await stopUnit(server, seconds(setting(serverUnit, 'TimeoutStopSec')));
      assert.deepEqual([s.code, s.signal], [0, null], `the server exits cleanly on SIGTERM (${s.ms} ms):\n${server.log()}`);
      assert.ok(await waitFor(() => !groupAlive(server.p.pid!), 2000));
      if (!store) assert.ok(existsSync(join(serverData, 'warren.db')), 'the SQLite store in DATA');
    } finally {
      unregister();
      assert.equal(removeAll(), 0, `userdel ${user}`);
    }
  }

  const rootOnly = isRoot ? false : 'needs root (as the units do: the agent runs as root, the server as another user in a sandbox)';

  test('both units verify cleanly, start as written (SQLite store), serve, join, run a job, and stop on SIGTERM', { skip: rootOnly, timeout: 180_000 }, async () => {
    await installedCluster('sqlite');
  });

  test('the server unit with WARREN_STORE=postgres://... from its environment file, in its sandbox', { skip: rootOnly, timeout: 180_000 }, async (tc) => {
    const admin = process.env.WARREN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: admin, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
    } catch (e) {
      tc.skip(`no PostgreSQL at ${admin}: ${(e as Error).message}`);
      return;
    }
    const db = `warren_inst_${randomBytes(5).toString('hex')}`;
    await c.query(`CREATE DATABASE ${db}`);
    try {
      const u = new URL(admin);
      u.pathname = `/${db}`;
      await installedCluster('pg', u.toString());
      const v = new pg.Client({ connectionString: u.toString() });
      await v.connect();
      const users = await v.query('SELECT count(*)::int AS n FROM users').finally(() => v.end());
      assert.equal(users.rows[0].n, 1, 'the first admin is in PostgreSQL');
    } finally {
      await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await c.end();
    }
  });
});
