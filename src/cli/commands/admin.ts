// Cluster administration through a server context: `warren node|token|user ...`. These
// verbs need an admin's token; they parse and render, the server does the work.

import type { Command } from 'commander';
import { WarrenError, formatBytes, parseDuration } from '../../common/index.js';
import type { AdminClient, NodeView } from '../../api/index.js';
import { commandGroup } from '../util.js';
import { addTargetOptions, openAdmin, type TargetOpts } from '../client.js';

const iso = (t: number | null): string => (t === null ? '-' : new Date(t).toISOString().slice(0, 19).replace('T', ' '));

async function withAdmin<T>(o: TargetOpts, fn: (a: AdminClient) => Promise<T>): Promise<T> {
  const { admin, close } = await openAdmin(o);
  try {
    return await fn(admin);
  } finally {
    await close();
  }
}

function nodeLine(n: NodeView): string {
  return `${n.name.padEnd(20)}${n.state.padEnd(10)}${`${n.usedCores}/${n.cores}`.padEnd(9)}${formatBytes(n.memoryBytes).padEnd(10)}${String(n.gpus).padEnd(6)}${String(n.running).padEnd(9)}${iso(n.lastSeenAt).padEnd(21)}${Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',')}`;
}

export function register(program: Command): void {
  const node = commandGroup(program, 'node', 'cluster nodes: list, drain, undrain, revoke, delete (admins)');
  addTargetOptions(node.command('list').description('list the nodes, their state and load').option('--json', 'JSON output')).action(async (o: TargetOpts & { json?: boolean }) => {
    const nodes = await withAdmin(o, (a) => a.nodes());
    if (o.json) {
      process.stdout.write(JSON.stringify(nodes) + '\n');
      return;
    }
    if (nodes.length === 0) {
      process.stdout.write('no nodes yet: `warren token create --ttl 10m`, then on each node `warren agent --server URL --token T --name NAME --data DIR`\n');
      return;
    }
    process.stdout.write(`${'NAME'.padEnd(20)}${'STATE'.padEnd(10)}${'CORES'.padEnd(9)}${'MEMORY'.padEnd(10)}${'GPUS'.padEnd(6)}${'RUNNING'.padEnd(9)}${'LAST SEEN'.padEnd(21)}LABELS\n`);
    for (const n of nodes) process.stdout.write(nodeLine(n) + '\n');
  });
  for (const [verb, on, desc] of [
    ['drain', true, 'stop placing new jobs on a node (what runs there finishes)'],
    ['undrain', false, 'place jobs on a drained node again'],
  ] as const) {
    addTargetOptions(node.command(verb).description(desc).argument('<name>', 'node name')).action(async (name: string, o: TargetOpts) => {
      const v = await withAdmin(o, (a) => a.drain(name, on));
      process.stderr.write(`node ${v.name} ${on ? 'drained' : 'undrained'} (${v.state}, ${v.running} running)\n`);
    });
  }
  addTargetOptions(node.command('revoke').description("revoke a node's identity: its connections are closed and its next call refused").argument('<name>', 'node name')).action(async (name: string, o: TargetOpts) => {
    await withAdmin(o, (a) => a.revokeNode(name));
    process.stderr.write(`node ${name} revoked: it must join again with a new token\n`);
  });
  addTargetOptions(node.command('delete').description('revoke a node and forget it').argument('<name>', 'node name')).action(async (name: string, o: TargetOpts) => {
    await withAdmin(o, (a) => a.deleteNode(name));
    process.stderr.write(`node ${name} deleted\n`);
  });

  const token = commandGroup(program, 'token', 'join tokens for nodes, and API tokens (admins)');
  addTargetOptions(
    token
      .command('create')
      .description('a one-time join token for `warren agent --token`')
      .option('--ttl <duration>', 'how long it stays valid (e.g. 10m, 1h)', '10m')
      .option('--uses <n>', 'how many nodes may join with it', '1')
      .option('--json', 'JSON output'),
  ).action(async (o: TargetOpts & { ttl: string; uses: string; json?: boolean }) => {
    const ttlSeconds = parseDuration(o.ttl);
    if (ttlSeconds === undefined || !(ttlSeconds > 0)) throw new WarrenError('CLI_BAD_OPTION', `--ttl takes a duration such as 10m or 1h, not "${o.ttl}"`);
    const uses = Number(o.uses);
    if (!Number.isInteger(uses) || uses < 1) throw new WarrenError('CLI_BAD_OPTION', `--uses must be a whole number >= 1, not "${o.uses}"`);
    const r = await withAdmin(o, (a) => a.createJoinToken({ ttlSeconds, uses }));
    if (o.json) process.stdout.write(JSON.stringify({ token: r.token, ...r.view }) + '\n');
    else {
      process.stdout.write(r.token + '\n');
      process.stderr.write(`join token ${r.view.id}: ${r.view.usesLeft} use(s), valid until ${iso(r.view.expiresAt)} UTC\n`);
    }
  });
  addTargetOptions(token.command('list').description('list the join tokens and API tokens (never their secrets)').option('--json', 'JSON output')).action(async (o: TargetOpts & { json?: boolean }) => {
    const ts = await withAdmin(o, (a) => a.tokens());
    if (o.json) {
      process.stdout.write(JSON.stringify(ts) + '\n');
      return;
    }
    process.stdout.write(`${'ID'.padEnd(14)}${'KIND'.padEnd(6)}${'USER'.padEnd(14)}${'CREATED'.padEnd(21)}${'EXPIRES'.padEnd(21)}USES LEFT\n`);
    for (const t of ts) process.stdout.write(`${t.id.padEnd(14)}${t.kind.padEnd(6)}${(t.user ?? '-').padEnd(14)}${iso(t.createdAt).padEnd(21)}${iso(t.expiresAt).padEnd(21)}${t.usesLeft ?? '-'}\n`);
  });
  addTargetOptions(token.command('revoke').description('revoke a token by its id').argument('<id>', 'token id (see `warren token list`)')).action(async (id: string, o: TargetOpts) => {
    await withAdmin(o, (a) => a.revokeToken(id));
    process.stderr.write(`token ${id} revoked\n`);
  });

  const user = commandGroup(program, 'user', 'Warren users, each mapped to a Unix account (admins)');
  addTargetOptions(
    user
      .command('add')
      .description("add a user and print the user's API token (shown once)")
      .argument('<name>', 'user name')
      .option('--unix-user <account>', 'the Unix account its jobs run as (default: the same name)')
      .option('--admin', 'an admin (sees every workflow, administers nodes, tokens and users)')
      .option('--token-ttl <duration>', "the life of the user's API token, e.g. 90d (default: until revoked)")
      .option('--json', 'JSON output'),
  ).action(async (name: string, o: TargetOpts & { unixUser?: string; admin?: boolean; json?: boolean; tokenTtl?: string }) => {
    let tokenTtlSeconds: number | undefined;
    if (o.tokenTtl !== undefined) {
      tokenTtlSeconds = parseDuration(o.tokenTtl);
      if (tokenTtlSeconds === undefined || !(tokenTtlSeconds >= 60)) throw new WarrenError('CLI_BAD_OPTION', `--token-ttl takes a duration of at least a minute, such as 90d, not "${o.tokenTtl}"`);
      tokenTtlSeconds = Math.round(tokenTtlSeconds);
    }
    const r = await withAdmin(o, (a) => a.addUser({ name, ...(o.unixUser ? { unixUser: o.unixUser } : {}), admin: o.admin === true, ...(tokenTtlSeconds ? { tokenTtlSeconds } : {}) }));
    if (o.json) process.stdout.write(JSON.stringify({ ...r.user, token: r.token }) + '\n');
    else {
      process.stdout.write(r.token + '\n');
      process.stderr.write(`user ${r.user.name} added (runs jobs as ${r.user.unixUser}${r.user.admin ? ', admin' : ''}); give them the token above: \`warren context add NAME --server URL --token TOKEN\`\n`);
    }
  });
  addTargetOptions(user.command('list').description('list the users').option('--json', 'JSON output')).action(async (o: TargetOpts & { json?: boolean }) => {
    const us = await withAdmin(o, (a) => a.users());
    if (o.json) {
      process.stdout.write(JSON.stringify(us) + '\n');
      return;
    }
    process.stdout.write(`${'NAME'.padEnd(16)}${'UNIX USER'.padEnd(16)}${'ADMIN'.padEnd(7)}CREATED\n`);
    for (const u of us) process.stdout.write(`${u.name.padEnd(16)}${u.unixUser.padEnd(16)}${(u.admin ? 'yes' : 'no').padEnd(7)}${iso(u.createdAt)}\n`);
  });
  addTargetOptions(user.command('remove').description('remove a user and revoke their API tokens (their workflows stay)').argument('<name>', 'user name')).action(async (name: string, o: TargetOpts) => {
    await withAdmin(o, (a) => a.removeUser(name));
    process.stderr.write(`user ${name} removed\n`);
  });
}
