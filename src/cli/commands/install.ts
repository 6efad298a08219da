// `warren install systemd --server|--agent`: parse the options, build the unit (src/install,
// a pure function), write it (or --print it), and say what to type next.

import type { Command } from 'commander';
import { resolve } from 'node:path';
import { WarrenError } from '../../common/index.js';
import { commandGroup } from '../util.js';
import { parseLabels } from './cluster.js';

interface SystemdOptions {
  server?: string | boolean;
  agent?: boolean;
  dir: string;
  data?: string;
  user?: string;
  store?: string;
  name?: string;
  ca?: string;
  labels?: string;
  environmentFile?: string;
  print?: boolean;
  force?: boolean;
}

const bad = (message: string, hint: string) => new WarrenError('CLI_BAD_OPTION', message, { hint });

export function register(program: Command): void {
  const group = commandGroup(program, 'install', 'install Warren as a service: systemd units for `warren server` and `warren agent`');
  group
    .command('systemd')
    .description('write the systemd unit of `warren server` (--server) or `warren agent` (--agent --server URL)')
    .option('--server [url]', "alone: the server's unit; with --agent: the agent's server, https://HOST:PORT (several: comma separated)")
    .option('--agent', "the node agent's unit (runs as root)")
    .option('--dir <dir>', 'where to write the unit', '/etc/systemd/system')
    .option('--data <dir>', 'the data directory (default /var/lib/warren, or /var/lib/warren-agent for --agent)')
    .option('--user <name>', 'the Unix account the server runs as (default warren)')
    .option('--store <url>', "the server's store, postgres://USER@HOST/DB (default: WARREN_STORE from the environment file, else DATA/warren.db)")
    .option('--name <name>', "the node's name (agent; default: its host name)")
    .option('--ca <file>', "the cluster CA the agent trusts the server with (absolute; the server's DATA/ca.pem)")
    .option('--labels <k=v,...>', 'node labels (agent)')
    .option('--environment-file <file>', 'the optional environment file the unit reads (default /etc/warren/server.env or agent.env)')
    .option('--print', 'print the unit on stdout instead of writing it')
    .option('--force', 'replace an existing unit file')
    .action(async (o: SystemdOptions) => {
      const agent = o.agent === true;
      const serverFlag = o.server === true;
      if (agent && serverFlag) throw bad('--server and --agent were both given without a server URL: which unit?', 'give --server for the server\'s unit, or --agent --server https://HEAD:8443 for the agent\'s');
      if (!agent && o.server === undefined) throw bad('warren install systemd needs --server or --agent', 'give --server (the head node) or --agent --server https://HEAD:8443 (a compute node)');
      if (!agent && typeof o.server === 'string') throw bad(`--server ${o.server} names the agent's server, but --agent is missing`, `give --agent --server ${o.server} for a node's unit, or --server alone for the server's unit`);
      const kind = agent ? 'agent' : 'server';
      const only = (flag: string, v: unknown, k: 'server' | 'agent', why: string) => {
        if (v !== undefined && kind !== k) throw bad(`${flag} is for the ${k}'s unit, not the ${kind}'s`, why);
      };
      only('--user', o.user, 'server', 'the agent runs as root so that each job runs as its own user; leave --user out');
      only('--store', o.store, 'server', 'agents do not open the store; leave --store out');
      only('--name', o.name, 'agent', 'the server\'s certificate name is `warren server --name`: put it in WARREN_SERVER_OPTIONS in the environment file');
      only('--ca', o.ca, 'agent', 'the server makes the CA itself; leave --ca out');
      only('--labels', o.labels, 'agent', 'labels belong to nodes; leave --labels out');
      const install = await import('../../install/index.js');
      const labels = o.labels !== undefined ? Object.entries(parseLabels(o.labels)).map(([k, v]) => `${k}=${v}`).join(',') : undefined;
      const data = o.data ?? install.DEFAULT_DATA[kind];
      const envFile = o.environmentFile ?? install.DEFAULT_ENV_FILE[kind];
      const program = install.thisProgram();
      const unit = install.systemdUnit({
        kind,
        program,
        data,
        envFile,
        ...(o.user !== undefined ? { user: o.user } : {}),
        ...(o.store !== undefined ? { store: o.store } : {}),
        ...(typeof o.server === 'string' ? { servers: o.server.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.ca !== undefined ? { ca: o.ca } : {}),
        ...(labels ? { labels } : {}),
      });
      const user = kind === 'server' ? (o.user ?? install.DEFAULT_SERVER_USER) : 'root';
      if (user !== 'root') {
        const blocked = install.unreadableByOthers([program.node, program.script]);
        if (blocked.length) {
          process.stderr.write(`warning: the server runs as ${user}, and other users cannot read: ${blocked.join('; ')}\n`);
          process.stderr.write('  install Warren (and Node) where every user can read them, e.g. /opt/warren (docs/install-cluster.md)\n');
        }
      }
      if (o.print) {
        process.stdout.write(unit.text);
        return;
      }
      const { path, replaced } = install.writeUnit(resolve(o.dir), unit, o.force === true);
      const service = unit.name.replace(/\.service$/, '');
      process.stdout.write(`${replaced ? 'replaced' : 'wrote'} ${path}\nnext:\n`);
      if (kind === 'server' && user !== 'root') {
        process.stdout.write(`  id ${user} >/dev/null 2>&1 || useradd --system --home-dir ${data} --shell /usr/sbin/nologin ${user}\n`);
      }
      if (kind === 'agent') {
        process.stdout.write(`  mkdir -p ${resolve(envFile, '..')} && (umask 077; echo WARREN_JOIN_TOKEN=TOKEN >> ${envFile})   # TOKEN: \`warren token create\` (first start only)\n`);
      }
      process.stdout.write(`  systemctl daemon-reload\n  systemctl enable --now ${service}\n  journalctl -u ${service} -f   # its log\n`);
    });
}
