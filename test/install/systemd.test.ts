// The systemd units of `warren server` and `warren agent`, built by the pure systemdUnit():
// their settings, ExecStart= escaping (read back as systemd reads it, and a property test
// over arbitrary strings), StateDirectory= versus ReadWritePaths=, and refused options.
// Running them for real, and systemd-analyze verify: test/cli/install.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WarrenError } from '../../src/common/index.js';
import { execWord, shebangNodeArgs, systemdUnit, type UnitOptions } from '../../src/install/index.js';
import { execArgv, setting, settingWords, unitSettings } from './unitfile.js';

const program = { node: '/usr/bin/node', nodeArgs: ['--max-semi-space-size=2'], script: '/opt/warren/bin/warren.js' };
const server = (o: Partial<UnitOptions> = {}) => systemdUnit({ kind: 'server', program, data: '/var/lib/warren', envFile: '/etc/warren/server.env', ...o });
const agent = (o: Partial<UnitOptions> = {}) => systemdUnit({ kind: 'agent', program, data: '/var/lib/warren-agent', envFile: '/etc/warren/agent.env', servers: ['https://head:8443'], ...o });

function refused(f: () => unknown, code: string, re: RegExp): void {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof WarrenError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, re);
    assert.ok(e.hint, 'a hint says what to do');
    return;
  }
  assert.fail(`expected ${code}`);
}

describe('the server unit', () => {
  test('runs `node bin/warren.js server` as the warren user, restarts on failure, after the network and PostgreSQL', () => {
    const u = server();
    assert.equal(u.name, 'warren-server.service');
    assert.equal(setting(u.text, 'ExecStart'), '/usr/bin/node --max-semi-space-size=2 /opt/warren/bin/warren.js server --data /var/lib/warren $WARREN_SERVER_OPTIONS');
    assert.equal(setting(u.text, 'User'), 'warren');
    assert.equal(setting(u.text, 'Restart'), 'on-failure');
    assert.equal(setting(u.text, 'RestartSec'), '5s');
    assert.equal(setting(u.text, 'RestartPreventExitStatus'), '2');
    assert.equal(setting(u.text, 'After'), 'network-online.target postgresql.service');
    assert.equal(setting(u.text, 'Wants'), 'network-online.target', 'PostgreSQL only orders, never required');
    assert.equal(setting(u.text, 'Requires'), undefined);
    assert.equal(setting(u.text, 'EnvironmentFile'), '-/etc/warren/server.env', 'a missing file is fine');
    assert.equal(setting(u.text, 'Environment'), 'WARREN_HOME=/var/lib/warren');
    assert.equal(setting(u.text, 'KillMode'), 'control-group');
    assert.equal(setting(u.text, 'TimeoutStopSec'), '30s');
    assert.equal(setting(u.text, 'LimitNOFILE'), '65536');
    assert.equal(setting(u.text, 'StandardOutput'), 'null', 'the first admin token is not kept in the journal');
    assert.equal(setting(u.text, 'WantedBy'), 'multi-user.target');
  });

  test('is sandboxed: read-only system, only its data directory writable, no privileges', () => {
    const u = server();
    assert.equal(setting(u.text, 'StateDirectory'), 'warren', 'systemd makes /var/lib/warren, owned by the user');
    assert.equal(setting(u.text, 'StateDirectoryMode'), '0700');
    assert.equal(setting(u.text, 'ReadWritePaths'), undefined, 'a state directory is writable by itself');
    for (const [k, v] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'read-only', PrivateTmp: 'yes', PrivateDevices: 'yes', ProtectControlGroups: 'yes', RestrictSUIDSGID: 'yes', CapabilityBoundingSet: '' })) {
      assert.equal(setting(u.text, k), v, k);
    }
    assert.equal(setting(u.text, 'MemoryDenyWriteExecute'), undefined, "Node's JIT needs it off");
  });

  test('a data directory outside /var/lib is a ReadWritePaths=, one below it a nested StateDirectory=', () => {
    const out = server({ data: '/srv/warren data/' });
    assert.equal(setting(out.text, 'StateDirectory'), undefined);
    assert.deepEqual(settingWords(setting(out.text, 'ReadWritePaths')!), ['/srv/warren data']);
    assert.deepEqual(settingWords(setting(out.text, 'Environment')!), ['WARREN_HOME=/srv/warren data']);
    assert.equal(setting(server({ data: '/var/lib/warren/head1' }).text, 'StateDirectory'), 'warren/head1');
    assert.equal(setting(server({ data: '/var/lib2/x' }).text, 'StateDirectory'), undefined);
  });

  test('--store and --user go into the unit; an escaped %2F store URL reads back unchanged', () => {
    const store = 'postgres://warren@%2Fvar%2Frun%2Fpostgresql/warren';
    const u = server({ store, user: 'wsrv' });
    assert.equal(setting(u.text, 'User'), 'wsrv');
    assert.match(setting(u.text, 'ExecStart')!, /--store postgres:\/\/warren@%%2Fvar%%2Frun%%2Fpostgresql\/warren /);
    assert.deepEqual(execArgv(setting(u.text, 'ExecStart')!, {}).slice(-2), ['--store', store]);
  });

  test('refuses a relative or root --data, a relative --environment-file, a bad --user, a --store with a password', () => {
    refused(() => server({ data: 'var/lib/warren' }), 'CLI_BAD_OPTION', /--data must be an absolute path/);
    refused(() => server({ data: '/' }), 'CLI_BAD_OPTION', /whole file system/);
    refused(() => server({ envFile: 'server.env' }), 'CLI_BAD_OPTION', /--environment-file must be an absolute path/);
    refused(() => server({ data: '/var/lib/a\nb' }), 'CLI_BAD_OPTION', /control character/);
    refused(() => server({ user: 'no body' }), 'CLI_BAD_OPTION', /not a valid Unix account/);
    refused(() => server({ store: 'postgres://warren:s3cret@db/warren' }), 'CLI_BAD_OPTION', /holds a password/);
  });
});

describe('the agent unit', () => {
  test('runs as root with every server, its name, CA and labels; KillMode=mixed; no sandboxing', () => {
    const u = agent({ servers: ['https://head1:8443', 'https://head2:8443'], name: 'node01', ca: '/etc/warren/ca.pem', labels: 'rack=a,gpu=yes' });
    assert.equal(u.name, 'warren-agent.service');
    assert.deepEqual(execArgv(setting(u.text, 'ExecStart')!, { WARREN_AGENT_OPTIONS: '--cores 8  --address 10.0.0.2' }), [
      '/usr/bin/node', '--max-semi-space-size=2', '/opt/warren/bin/warren.js', 'agent', '--data', '/var/lib/warren-agent',
      '--server', 'https://head1:8443,https://head2:8443', '--name', 'node01', '--ca', '/etc/warren/ca.pem', '--labels', 'rack=a,gpu=yes',
      '--cores', '8', '--address', '10.0.0.2',
    ]);
    assert.equal(setting(u.text, 'User'), undefined, 'root');
    assert.match(u.text, /# No User=: the agent runs as root/);
    assert.equal(setting(u.text, 'KillMode'), 'mixed');
    assert.equal(setting(u.text, 'Restart'), 'on-failure');
    assert.equal(setting(u.text, 'After'), 'network-online.target remote-fs.target');
    assert.equal(setting(u.text, 'EnvironmentFile'), '-/etc/warren/agent.env');
    assert.equal(setting(u.text, 'StateDirectory'), 'warren-agent');
    assert.equal(setting(u.text, 'StateDirectoryMode'), '0711', 'jobs running as their users reach their run directories');
    assert.equal(setting(u.text, 'LimitMEMLOCK'), 'infinity');
    assert.equal(setting(u.text, 'TasksMax'), 'infinity');
    for (const k of ['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'CapabilityBoundingSet', 'ReadWritePaths', 'StandardOutput']) {
      assert.equal(setting(u.text, k), undefined, `${k}: jobs would inherit it`);
    }
  });

  test('without the variable, $WARREN_AGENT_OPTIONS adds no word', () => {
    const argv = execArgv(setting(agent().text, 'ExecStart')!, {});
    assert.equal(argv.at(-1), 'https://head:8443');
  });

  test('refuses no server, a server that is not https://HOST:PORT, a bad node name, a relative --ca', () => {
    refused(() => agent({ servers: [] }), 'CLI_BAD_OPTION', /needs --server URL/);
    refused(() => agent({ servers: ['http://head:8443'] }), 'CLI_BAD_OPTION', /not https/);
    refused(() => agent({ servers: ['head:8443'] }), 'CLI_BAD_OPTION', /not https|not a server address/);
    refused(() => agent({ servers: ['https://head:8443/api'] }), 'CLI_BAD_OPTION', /path, query or space/);
    refused(() => agent({ servers: ['not a url'] }), 'CLI_BAD_OPTION', /not a server address/);
    refused(() => agent({ name: 'node 01' }), 'CLI_BAD_OPTION', /not a valid node name/);
    refused(() => agent({ ca: 'ca.pem' }), 'CLI_BAD_OPTION', /--ca must be an absolute path/);
  });
});

describe('ExecStart= words', () => {
  test('plain words stay plain; spaces, quotes, backslashes, ; and empty words are quoted; % and $ doubled', () => {
    assert.equal(execWord('/usr/bin/node'), '/usr/bin/node');
    assert.equal(execWord('k=v,x=y'), 'k=v,x=y');
    assert.equal(execWord('/opt/my warren/bin/warren.js'), '"/opt/my warren/bin/warren.js"');
    assert.equal(execWord('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(execWord(';'), '";"');
    assert.equal(execWord(''), '""');
    assert.equal(execWord('100%'), '100%%');
    assert.equal(execWord('$HOME'), '$$HOME');
    assert.equal(execWord("it's"), '"it\'s"');
  });

  test('every string without control characters reads back as itself', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }).filter((s) => !/[\x00-\x1f\x7f]/.test(s)), (s) => {
        assert.deepEqual(execArgv(`/bin/x ${execWord(s)}`, {}), ['/bin/x', s]);
      }),
      { numRuns: 2000 },
    );
  });

  test('the executable is taken literally but for specifiers ($ is not expanded there); quotes and backslashes in it are refused', () => {
    const u = systemdUnit({ kind: 'agent', program: { ...program, node: '/opt/node 20/bin/no$de%' }, data: '/d', envFile: '/e', servers: ['https://h:1'] });
    assert.match(setting(u.text, 'ExecStart')!, /^"\/opt\/node 20\/bin\/no\$de%%" --max-semi-space-size=2 /);
    assert.equal(execArgv(setting(u.text, 'ExecStart')!, {})[0], '/opt/node 20/bin/no$de%');
    refused(() => systemdUnit({ kind: 'server', program: { ...program, node: '/opt/"node"/node' }, data: '/d', envFile: '/e' }), 'INSTALL_BAD_PATH', /quote or a backslash/);
    refused(() => systemdUnit({ kind: 'server', program: { ...program, script: 'bin/warren.js' }, data: '/d', envFile: '/e' }), 'INSTALL_BAD_PATH', /bin\/warren.js is at "bin\/warren.js"/);
  });

  test("node's options come from bin/warren.js's first line", () => {
    assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S node --max-semi-space-size=2'), ['--max-semi-space-size=2']);
    assert.deepEqual(shebangNodeArgs('#!/usr/bin/env node'), []);
    assert.deepEqual(shebangNodeArgs('// no shebang'), []);
  });

  test('every line of a unit is a comment, a section or a setting', () => {
    for (const u of [server(), agent({ labels: 'a=b c' })]) assert.ok(unitSettings(u.text).length > 10);
  });
});
