// Command groups contributed by the subsystems, wired in one place. Each module is loaded
// only when its command runs (or for --help), so `warren run` does not pay for the S3 SDK
// or the registry client at start-up.
import type { Command } from 'commander';

type Loader = () => Promise<{ register(program: Command): void }>;

/**
 * Every top-level command and its summary, for `warren --help` without loading any
 * command's module (0.1 s instead of 0.4 s). test/cli/help.test.ts checks that this table
 * names exactly the commands registered, with their descriptions, so it cannot drift.
 */
export const COMMAND_SUMMARIES: readonly (readonly [name: string, summary: string])[] = [
  ['run', 'validate and run a workflow (on this machine, or on the server of the current context)'],
  ['resume', 'continue a workflow that was interrupted or failed, re-running only what did not succeed'],
  ['list', 'list recent workflows'],
  ['status', 'show a workflow and its jobs'],
  ['logs', "print a job's output (stdout, or --err for stderr)"],
  ['cancel', 'cancel a running workflow: running jobs are stopped, the rest marked canceled'],
  ['prune', 'remove finished workflows, their events, logs and run directories: those that ended before --older-than, or the ones named (never running work)'],
  ['port-forward', 'forward a local port (127.0.0.1) to a port of a running service of a workflow, until Ctrl-C'],
  ['exec', 'run a command in a container image on this machine, as yourself (Apptainer-style: your home, the current directory and /tmp bound)'],
  ['shell', 'an interactive shell in a container image on this machine'],
  ['instance', 'long-running containers in the background: start, list, stop'],
  ['validate', 'check workflow files (Fuzzfile YAML v1/v4 or WfFormat JSON) without running them'],
  ['schema', 'print the JSON Schema of the workflow (Fuzzfile) format'],
  ['upgrade', 'rewrite a v1 Fuzzfile as v4 (requires -> depends-on, mounts keyed by path), keeping its comments and layout'],
  ['app', 'Fuzzball application templates: render a catalog template with its values into a workflow'],
  ['plan', 'plan where and when each job runs across clusters and cloud regions (no job is run)'],
  ['site', 'the sites (clusters, cloud regions) this server can plan workflows on'],
  ['cache', 'inspect and prune the data download cache'],
  ['image', "container images: pull, list, remove, prune the node's image cache"],
  ['registry', 'credentials for container registries'],
  ['key', 'signing keys: generate, import, list, trust'],
  ['server', 'run a cluster server: the HTTPS API for users, mutual TLS for node agents, state in PostgreSQL'],
  ['agent', "run a node agent: join the cluster (first start, with a join token), then run the server's jobs on this node"],
  ['node', 'nodes: the provisioning inventory (add, set, list, status, delete) and cluster nodes (drain, undrain, revoke); node verbs take ranges such as n[001-128]'],
  ['token', 'join tokens for nodes, and API tokens (admins)'],
  ['user', 'Warren users, each mapped to a Unix account (admins)'],
  ['ca', "the cluster's CA: status, rotate to a new CA, retire the old one (admins)"],
  ['audit', 'the audit log: who did what, when, from where (admins)'],
  ['profile', 'provisioning profiles: fields that nodes inherit (add, set, list, delete)'],
  ['overlay', 'provisioning overlays: the files laid over a node image at boot (system) and while a node runs (runtime), templates filled per node'],
  ['context', 'the Warren servers this CLI talks to (contexts): add, use, list, remove'],
  ['install', 'install Warren as a service: systemd units for `warren server` and `warren agent`'],
];

export const PROGRAM_DESCRIPTION = 'Warren: run workflows fast, anywhere — from one workstation to HPC clusters and clouds';
export const PROGRAM_VERSION = '0.1.0';

/** The top-level help, as commander prints it, from the static table. */
export function staticHelp(): string {
  const width = Math.max(...COMMAND_SUMMARIES.map(([n]) => n.length), 'help [command]'.length);
  const pad = (s: string) => s.padEnd(width + 2);
  return [
    'Usage: warren [options] [command]',
    '',
    PROGRAM_DESCRIPTION,
    '',
    'Options:',
    `  ${pad('-V, --version')}output the version number`,
    `  ${pad('-h, --help')}display help for command`,
    '',
    'Commands:',
    ...COMMAND_SUMMARIES.map(([n, d]) => `  ${pad(n)}${d}`),
    `  ${pad('help [command]')}display help for command`,
    '',
  ].join('\n');
}

const GROUPS: [commands: string[], load: Loader][] = [
  [['prune'], () => import('./commands/prune.js')],
  [['port-forward'], () => import('./commands/service.js')],
  [['exec', 'shell', 'instance'], () => import('./commands/exec.js')],
  [['validate', 'schema'], () => import('./commands/workflow.js')],
  [['upgrade'], () => import('./commands/upgrade.js')],
  [['app'], () => import('./commands/app.js')],
  [['plan', 'site'], () => import('./commands/plan.js')],
  [['cache'], () => import('./commands/cache.js')],
  [['image', 'registry'], () => import('./commands/image.js')],
  [['image', 'key'], () => import('./commands/sif.js')],
  [['server', 'agent'], () => import('./commands/cluster.js')],
  [['node', 'token', 'user', 'audit', 'ca'], () => import('./commands/admin.js')],
  [['node', 'profile'], () => import('./commands/inventory.js')],
  [['overlay'], () => import('./commands/overlay.js')],
  [['context'], () => import('./commands/context.js')],
  [['install'], () => import('./commands/install.js')],
];

/** Is `command` one of the command groups' (so the workflow verbs need not be loaded for it)? */
export function isGroupCommand(command: string): boolean {
  return GROUPS.some(([names]) => names.includes(command));
}

/** Register the command groups `command` needs (all of them when it is not one of theirs). */
export async function registerAll(program: Command, command: string | undefined): Promise<void> {
  const mine = GROUPS.filter(([names]) => command !== undefined && names.includes(command));
  const builtin = ['run', 'resume', 'list', 'status', 'logs', 'cancel'];
  if (command !== undefined && builtin.includes(command)) return;
  for (const [, load] of mine.length ? mine : GROUPS) (await load()).register(program);
}
