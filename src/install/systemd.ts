// systemd unit files for `warren server` and `warren agent`, built from options by a pure
// function: no file, clock or process is read here (install.ts resolves the paths and
// writes the file). Values are escaped as systemd.syntax(7) and systemd.service(5) say: in
// every setting `%` starts a specifier (written `%%`); on the ExecStart= line `$` starts an
// environment variable (written `$$`), and a word with spaces, quotes or backslashes is
// double-quoted with C-style escapes.

import { isAbsolute, normalize, posix } from 'node:path';
import { WarrenError } from '../common/index.js';
import { parseServerUrl } from '../agent/index.js';
import { isSpiffeName } from '../mesh/index.js';

export type UnitKind = 'server' | 'agent';

/** The programs the unit runs: `NODE NODE_ARGS... SCRIPT server|agent ...`. */
export interface UnitProgram {
  /** The absolute path of the node binary (process.execPath). */
  node: string;
  /** Node's own options, as bin/warren.js's first line gives them (e.g. --max-semi-space-size=2). */
  nodeArgs: readonly string[];
  /** The absolute path of this package's bin/warren.js. */
  script: string;
}

export interface UnitOptions {
  kind: UnitKind;
  program: UnitProgram;
  /** The data directory (absolute). */
  data: string;
  /** The optional environment file (absolute): WARREN_STORE=, WARREN_JOIN_TOKEN=, WARREN_*_OPTIONS=. */
  envFile: string;
  /** server: the Unix account it runs as. */
  user?: string;
  /** server: --store URL (else WARREN_STORE from the environment file, else DATA/warren.db). */
  store?: string;
  /** agent: every server's https URL. */
  servers?: readonly string[];
  /** agent: --name, --ca, --labels (already checked: k=v,k2=v2). */
  name?: string;
  ca?: string;
  labels?: string;
}

export interface Unit {
  /** `warren-server.service` or `warren-agent.service`. */
  name: string;
  text: string;
}

export const UNIT_NAMES: Readonly<Record<UnitKind, string>> = { server: 'warren-server.service', agent: 'warren-agent.service' };
export const DEFAULT_DATA: Readonly<Record<UnitKind, string>> = { server: '/var/lib/warren', agent: '/var/lib/warren-agent' };
export const DEFAULT_ENV_FILE: Readonly<Record<UnitKind, string>> = { server: '/etc/warren/server.env', agent: '/etc/warren/agent.env' };
export const DEFAULT_SERVER_USER = 'warren';
/** The variables the units pass on to `warren server` / `warren agent` as more options. */
export const OPTIONS_VARIABLE: Readonly<Record<UnitKind, string>> = { server: 'WARREN_SERVER_OPTIONS', agent: 'WARREN_AGENT_OPTIONS' };

const bad = (message: string, hint: string): WarrenError => new WarrenError('CLI_BAD_OPTION', message, { hint });

/** `%` as `%%`: every unit setting resolves specifiers. */
function specifierSafe(s: string): string {
  return s.replace(/%/g, '%%');
}

/** One word of an ExecStart= line, as systemd splits and unescapes it back into `s`. */
export function execWord(s: string): string {
  const v = specifierSafe(s).replace(/\$/g, '$$$$');
  if (v !== '' && /^[A-Za-z0-9_@%+=:,./$-]+$/.test(v)) return v;
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The executable, the first word of ExecStart=: systemd resolves specifiers in it but not
 * `$` variables, and refuses quotes and backslashes in it ("Executable name contains
 * special characters").
 */
function execPath(p: string): string {
  if (/["'\\]/.test(p)) {
    throw new WarrenError('INSTALL_BAD_PATH', `the node binary ${p} has a quote or a backslash in its path, which systemd cannot run`, {
      hint: 'install Node 20 where its path has none (e.g. /usr/bin/node) and run `warren install` with that node',
    });
  }
  const v = specifierSafe(p);
  return /\s/.test(v) ? `"${v}"` : v;
}

/** A path in a setting that splits its value into quoted words (ReadWritePaths=, Environment=). */
function quotedValue(s: string): string {
  const v = specifierSafe(s);
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(v) ? v : `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function absolutePath(flag: string, p: string): string {
  // A control character cannot be written in a unit safely (and no sane path has one).
  if (/[\x00-\x1f\x7f]/.test(p)) throw bad(`${flag} ${JSON.stringify(p)} has a control character`, `give ${flag} a plain absolute path`);
  if (!isAbsolute(p)) throw bad(`${flag} must be an absolute path, not "${p}": a unit starts in /, not here`, `e.g. ${flag} /var/lib/warren`);
  const n = normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/** The node binary or bin/warren.js: absolute, no control character (it is where this Warren runs from, not an option). */
function programPath(what: string, p: string): string {
  if (!isAbsolute(p) || /[\x00-\x1f\x7f]/.test(p)) {
    throw new WarrenError('INSTALL_BAD_PATH', `${what} is at ${JSON.stringify(p)}, which a unit cannot name (not absolute, or a control character)`, {
      hint: 'run `warren install` from a Warren and a Node installed at plain absolute paths, e.g. /opt/warren and /usr/bin/node',
    });
  }
  return normalize(p);
}

/** `warren` under /var/lib: the StateDirectory= of a data directory below /var/lib (systemd creates and owns it). */
function stateDirectory(data: string): string | undefined {
  const rel = posix.relative('/var/lib', data);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : undefined;
}

/** Check the options and build the unit's text. */
export function systemdUnit(o: UnitOptions): Unit {
  const data = absolutePath('--data', o.data);
  if (data === '/') throw bad('--data / would make the whole file system the data directory', 'give a directory of its own, e.g. /var/lib/warren');
  const envFile = absolutePath('--environment-file', o.envFile);
  const node = programPath('the node binary', o.program.node);
  const script = programPath("Warren's bin/warren.js", o.program.script);
  const state = stateDirectory(data);
  const kind = o.kind;
  const args: string[] = [...o.program.nodeArgs, script, kind, '--data', data];
  const lines: string[] = [];
  const add = (...l: string[]) => lines.push(...l);

  if (kind === 'server') {
    const user = o.user ?? DEFAULT_SERVER_USER;
    if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(user)) throw bad(`--user "${user}" is not a valid Unix account name`, `e.g. --user ${DEFAULT_SERVER_USER} (create it: useradd --system ${DEFAULT_SERVER_USER})`);
    if (o.store !== undefined) {
      if (!o.store) throw bad('--store is empty', 'give postgres://USER@HOST/DB, or leave it out and set WARREN_STORE in the environment file');
      if (/^postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(o.store)) {
        throw bad('--store holds a password, and a unit file is readable by every user (so is `systemctl show`)', `leave --store out and put WARREN_STORE=${o.store.replace(/:[^:/@]*@/, ':PASSWORD@')} in ${envFile} (mode 0600), or use ~/.pgpass or peer authentication`);
      }
      if (/[\x00-\x1f\x7f]/.test(o.store)) throw bad('--store has a control character', 'give the URL as postgres://USER@HOST/DB');
      args.push('--store', o.store);
    }
    add(
      `# ${UNIT_NAMES.server}: the Warren cluster server (written by \`warren install systemd --server\`).`,
      `# ${envFile} (optional; mode 0600 when it holds a password) may set:`,
      '#   WARREN_STORE=postgres://USER:PASSWORD@HOST/DB   the store (when --store is not on ExecStart=)',
      `#   ${OPTIONS_VARIABLE.server}=--listen 0.0.0.0:8443 --advertise https://head1:8443   more \`warren server\` options`,
      '# See docs/install-cluster.md.',
      '',
      '[Unit]',
      'Description=Warren cluster server',
      '# After= only orders: a PostgreSQL on this host starts first; none is required.',
      'After=network-online.target postgresql.service',
      'Wants=network-online.target',
      '',
      '[Service]',
      'Type=simple',
      `User=${user}`,
      '# The data directory is its WARREN_HOME too: it writes nowhere else.',
      `Environment=${quotedValue(`WARREN_HOME=${data}`)}`,
      `EnvironmentFile=-${specifierSafe(envFile)}`,
    );
  } else {
    const servers = o.servers ?? [];
    if (servers.length === 0) throw bad('warren install systemd --agent needs --server URL', 'give --server https://HEAD:8443 (with two servers: --server https://head1:8443,https://head2:8443)');
    for (const s of servers) {
      parseServerUrl(s);
      if (!/^https:\/\/[^/?#\s]+\/?$/.test(s)) throw bad(`--server ${s} has a path, query or space; the agent takes https://HOST:PORT`, 'give --server https://HEAD:8443');
    }
    args.push('--server', servers.join(','));
    if (o.name !== undefined) {
      if (!isSpiffeName(o.name)) throw bad(`--name "${o.name}" is not a valid node name`, 'use letters, digits, ".", "-" and "_", e.g. --name node01');
      args.push('--name', o.name);
    }
    if (o.ca !== undefined) args.push('--ca', absolutePath('--ca', o.ca));
    if (o.labels) args.push('--labels', o.labels);
    add(
      `# ${UNIT_NAMES.agent}: the Warren node agent (written by \`warren install systemd --agent\`).`,
      `# ${envFile} (optional, mode 0600) may set:`,
      '#   WARREN_JOIN_TOKEN=...   the join token (`warren token create`), needed on the first start only',
      `#   ${OPTIONS_VARIABLE.agent}=--cores 32 --address 10.0.0.12   more \`warren agent\` options`,
      '# See docs/install-cluster.md.',
      '',
      '[Unit]',
      'Description=Warren node agent',
      '# remote-fs.target: shared file systems (home directories, data) are mounted before jobs run.',
      'After=network-online.target remote-fs.target',
      'Wants=network-online.target',
      '',
      '[Service]',
      'Type=simple',
      '# No User=: the agent runs as root. Each job runs as its user\'s Unix account on this node',
      '# (the agent switches uid, gid and groups), in a cgroup of its own, containers through runc',
      '# with mounts: an unprivileged agent can do none of that.',
      '# For the same reason no sandboxing (ProtectSystem=, PrivateTmp=, NoNewPrivileges=, ...):',
      '# jobs inherit the agent\'s mount namespace and restrictions, so they would see a read-only',
      '# system and a private /tmp, setuid programs in jobs would fail, and the agent could not',
      '# write cgroups or mount images.',
      '# The data directory is its WARREN_HOME too, so `warren key`, `warren registry login` and',
      '# policy.json on this node (with WARREN_HOME set to it) configure this agent.',
      `Environment=${quotedValue(`WARREN_HOME=${data}`)}`,
      `EnvironmentFile=-${specifierSafe(envFile)}`,
    );
  }

  // `$VAR` as a word of its own: the variable's value split at whitespace (none when unset).
  const exec = [execPath(node), ...args.map(execWord), `$${OPTIONS_VARIABLE[kind]}`].join(' ');
  add(
    `ExecStart=${exec}`,
    'Restart=on-failure',
    'RestartSec=5s',
    '# Exit status 2 is a usage or configuration error (a bad option, a refused join token):',
    '# restarting cannot fix it. The message is in `journalctl -u ' + UNIT_NAMES[kind].replace('.service', '') + '`.',
    'RestartPreventExitStatus=2',
    'TimeoutStopSec=30s',
  );
  if (kind === 'server') {
    add(
      '# The server starts no processes of its own: SIGTERM to it (it closes its store and listeners).',
      'KillMode=control-group',
      '# Two connections per node, the users\' connections and the store\'s pool.',
      'LimitNOFILE=65536',
      '# Its stdout carries one thing: the first admin\'s API token, at the first start; it is also in',
      '# DATA/admin.token (0600). Keep it out of the journal (the adm group reads it). Logs go to stderr.',
      'StandardOutput=null',
      'StandardError=journal',
    );
  } else {
    add(
      '# mixed: `systemctl stop` sends SIGTERM to the agent alone; it stops its jobs itself and exits;',
      '# then whatever is left in the unit\'s cgroup is SIGKILLed (the job launcher warren-spawn, and',
      '# jobs where this node has no usable cgroups: the process-group fallback). Jobs in their own',
      '# cgroups (/warren/jobs/...) are outside the unit\'s cgroup: they die with their agent through',
      '# warren-spawn (its owner pipe and PR_SET_PDEATHSIG), after a kill -9 of the agent too.',
      '# Not control-group: that would SIGTERM every job at the same moment, behind the agent\'s back.',
      'KillMode=mixed',
      "# The directories the agent makes for a job running as its user (runs/ID/work) must be",
      "# traversable by that user: systemd's default umask, whatever DefaultUMask= says.",
      'UMask=0022',
      '# Jobs inherit these limits: many open files; MPI over RDMA pins memory; no task limit on the unit.',
      'LimitNOFILE=131072',
      'LimitMEMLOCK=infinity',
      'TasksMax=infinity',
    );
  }
  if (state !== undefined) {
    add(
      `# systemd creates ${data} (and owns it by the unit's user) before the start.`,
      `StateDirectory=${quotedValue(state)}`,
      `StateDirectoryMode=${kind === 'server' ? '0700' : '0711'}`,
    );
  }
  if (kind === 'server') {
    add(
      '# Sandboxing: the server needs its data directory, the network and the store, nothing else.',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      ...(state === undefined ? [`ReadWritePaths=${quotedValue(data)}`] : []),
      'ProtectHome=read-only',
      'PrivateTmp=yes',
      'PrivateDevices=yes',
      'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes',
      'ProtectKernelLogs=yes',
      'ProtectControlGroups=yes',
      'ProtectClock=yes',
      'ProtectHostname=yes',
      'RestrictNamespaces=yes',
      'RestrictRealtime=yes',
      'RestrictSUIDSGID=yes',
      'LockPersonality=yes',
      '# AF_NETLINK: getaddrinfo() asks the kernel for the local addresses (AI_ADDRCONFIG).',
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK',
      'SystemCallArchitectures=native',
      '# No capabilities. A port below 1024 (--listen 0.0.0.0:443) needs',
      '# CapabilityBoundingSet=CAP_NET_BIND_SERVICE and AmbientCapabilities=CAP_NET_BIND_SERVICE.',
      'CapabilityBoundingSet=',
      '# Not MemoryDenyWriteExecute=: the JavaScript compiler of Node writes executable code.',
    );
  }
  add('', '[Install]', 'WantedBy=multi-user.target', '');
  return { name: UNIT_NAMES[kind], text: lines.join('\n') };
}
