// The provisioning inventory on the command line: `warren node add|set|list|delete|status` and
// `warren profile add|set|list|delete`, with node ranges (`n[001-128]`). On a server's context
// the server does the work (admins), else this machine's store; `node list` and `node delete`
// also cover the cluster's nodes (an agent joins under its inventory node's name). This file
// parses flags and renders answers: src/provision/manage.ts expands, counts up and checks.

import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import { WarrenError, formatBytes, formatDuration } from '../../common/index.js';
import { expandRange } from '../../provision/index.js';
import type { AdminClient, FieldChanges, InventoryClient, InventoryNodeView, NodeChangeRequest, NodeView, ProfileRecord, ResolvedNode } from '../../api/index.js';
import { addTargetOptions, openClient, type TargetOpts } from '../client.js';
import { commandGroup } from '../util.js';

export const NODE_SUMMARY = 'nodes: the provisioning inventory (add, set, list, status, delete) and cluster nodes (drain, undrain, revoke); node verbs take ranges such as n[001-128]';
export const PROFILE_SUMMARY = 'provisioning profiles: fields that nodes inherit (add, set, list, delete)';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

interface FieldOpts {
  image?: string;
  kernel?: string;
  kernelArgs?: string[];
  systemOverlay?: string[];
  runtimeOverlay?: string[];
  tag?: string[];
  comment?: string;
  sshKey?: string[];
  netname?: string;
  netdev?: string;
  mac?: string;
  ip?: string;
  gateway?: string;
  dns?: string[];
  mtu?: string;
  unset?: string[];
  profile?: string[];
  json?: boolean;
}

/** The field flags of `node add|set` and `profile add|set`. */
function fieldOptions(cmd: Command, kind: 'node' | 'profile', verb: 'add' | 'set'): Command {
  if (kind === 'node') {
    cmd
      .option('--mac <mac>', 'the MAC of the interface (of the first node of a range: the others count up)')
      .option('--ip <address[/prefix]>', 'the IPv4 address of the interface, prefix 24 by default (of the first node of a range: the others count up)')
      .option('--profile <name>', 'a profile it inherits from (repeat, in order: later over earlier; replaces the list)', collect);
  }
  cmd
    .option('--netname <name>', 'the interface the network flags are for (default: `default`; e.g. ib for a second one)')
    .option('--netdev <dev>', 'its device name on the node, e.g. eth0')
    .option('--gateway <address>', 'the default gateway of the interface')
    .option('--dns <address>', 'a name server of the interface (repeat)', collect)
    .option('--mtu <bytes>', 'the MTU of the interface')
    .option('--image <image>', 'the source image of its node image (any image reference; `warren image node-build IMAGE`)')
    .option('--kernel <version|path>', "a kernel other than the image's")
    .option('--kernel-args <args>', 'kernel command line arguments, separated by spaces (repeat to add more; replaces the list)', collect)
    .option('--system-overlay <name>', 'an overlay applied at boot (repeat, in order; replaces the list)', collect)
    .option('--runtime-overlay <name>', 'an overlay refreshed while it runs (repeat, in order; replaces the list)', collect)
    .option('--tag <key=value>', "a tag, the scheduler's label of its agent (repeat; merged into the tags)", collect)
    .option('--ssh-key <key>', "an SSH public key for root (repeat; replaces the list)", collect)
    .option('--comment <text>', 'free text');
  if (verb === 'set') cmd.option('--unset <field>', 'remove a field first: image, kernel, kernel-args, system-overlays, runtime-overlays, ssh-keys, comment, tags, tags.KEY, network.DEV, network.DEV.FIELD' + (kind === 'node' ? ', profiles' : '') + ' (repeat)', collect);
  return cmd.option('--json', 'JSON output');
}

/** The changes the flags say (parsed here; checked by src/provision). */
export function changesOf(o: FieldOpts): FieldChanges & { profiles?: string[] } {
  const c: FieldChanges & { profiles?: string[] } = {};
  if (o.image !== undefined) c.image = o.image;
  if (o.kernel !== undefined) c.kernel = o.kernel;
  if (o.kernelArgs !== undefined) c.kernelArgs = o.kernelArgs.flatMap((a) => a.split(/\s+/)).filter((a) => a !== '');
  if (o.systemOverlay !== undefined) c.systemOverlays = o.systemOverlay;
  if (o.runtimeOverlay !== undefined) c.runtimeOverlays = o.runtimeOverlay;
  if (o.sshKey !== undefined) c.sshKeys = o.sshKey;
  if (o.comment !== undefined) c.comment = o.comment;
  if (o.tag !== undefined) {
    c.tags = {};
    for (const kv of o.tag) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new WarrenError('PROVISION_BAD_FIELD', `--tag takes KEY=VALUE, and "${kv}" is not`, { hint: 'e.g. --tag rack=a1 --tag gpu=h100' });
      c.tags[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  if (o.netname !== undefined) c.netname = o.netname;
  if (o.netdev !== undefined) c.netdev = o.netdev;
  if (o.mac !== undefined) c.mac = o.mac;
  if (o.ip !== undefined) c.ip = o.ip;
  if (o.gateway !== undefined) c.gateway = o.gateway;
  if (o.dns !== undefined) c.dns = o.dns;
  if (o.mtu !== undefined) {
    const n = Number(o.mtu);
    if (!/^\d+$/.test(o.mtu.trim())) throw new WarrenError('PROVISION_BAD_FIELD', `--mtu takes a whole number of bytes, not "${o.mtu}"`, { hint: 'e.g. --mtu 9000' });
    c.mtu = n;
  }
  if (o.unset !== undefined) c.unset = o.unset;
  if (o.profile !== undefined) c.profiles = o.profile;
  return c;
}

/** The inventory (embedded or the context's server) and, on a server, its cluster nodes. */
async function withInventory<T>(o: TargetOpts, fn: (inv: InventoryClient, admin: AdminClient | null) => Promise<T>): Promise<T> {
  const { client, embedded } = await openClient(o);
  try {
    return await fn(client as unknown as InventoryClient, embedded ? null : (client as unknown as AdminClient));
  } finally {
    await client.close();
  }
}

const ago = (t: number | null, now: number): string => (t === null ? '-' : `${formatDuration(Math.max(0, (now - t) / 1000))} ago`);
const range = (xs: string[]): string => (xs.length <= 3 ? xs.join(', ') : `${xs[0]} .. ${xs.at(-1)}`);
const out = (s: string): boolean => process.stdout.write(s);
const note = (s: string): boolean => process.stderr.write(s);

function pad(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]! + 2))).join('').trimEnd()).join('\n') + '\n';
}

/** The boot state of a node in a word or two. */
function bootWord(v: InventoryNodeView | undefined, now: number): string {
  const b = v?.boot;
  if (!v) return '-';
  if (!b || b.lastRequestAt === null) return 'never';
  if (b.systemOverlayAt !== null && (b.bootedAt === null || b.systemOverlayAt >= b.bootedAt)) return `up ${ago(b.systemOverlayAt, now)}`;
  if (b.bootedAt !== null) return `booting ${ago(b.bootedAt, now)}`;
  return `seen ${ago(b.lastRequestAt, now)}`;
}

/** Each resolved value and where it came from (`node list --show`). */
export function showText(r: ResolvedNode): string {
  const rows: string[][] = [['FIELD', 'VALUE', 'FROM']];
  const o = (k: string) => r.origin[k] ?? 'default';
  const list = (v: string[]) => (v.length ? v.join(' ') : '-');
  rows.push(['profiles', list(r.profiles), 'node']);
  rows.push(['image', r.image ?? '-', o('image')]);
  rows.push(['kernel', r.kernel ?? '(the image\'s)', o('kernel')]);
  rows.push(['kernel-args', list(r.kernelArgs), o('kernelArgs')]);
  rows.push(['system-overlays', list(r.systemOverlays), o('systemOverlays')]);
  rows.push(['runtime-overlays', list(r.runtimeOverlays), o('runtimeOverlays')]);
  for (const [dev, d] of Object.entries(r.network)) {
    for (const [k, v] of Object.entries(d)) rows.push([`network.${dev}.${k}`, Array.isArray(v) ? v.join(' ') : String(v), o(`network.${dev}.${k}`)]);
  }
  if (Object.keys(r.network).length === 0) rows.push(['network', '-', o('network')]);
  for (const [k, v] of Object.entries(r.tags)) rows.push([`tags.${k}`, v, o(`tags.${k}`)]);
  if (Object.keys(r.tags).length === 0) rows.push(['tags', '-', o('tags')]);
  rows.push(['ssh-keys', r.sshKeys.length ? `${r.sshKeys.length} key(s): ${r.sshKeys.map((k) => k.split(' ')[2] ?? k.slice(0, 20)).join(', ')}` : '-', o('sshKeys')]);
  rows.push(['comment', r.comment ?? '-', o('comment')]);
  rows.push(['primary', r.primary ? `${r.primary.device} ${r.primary.mac ?? '-'} ${r.primary.ip ?? '-'}` : '-', '(derived)']);
  return `node ${r.name}\n` + pad(rows);
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

function notFound(names: string[]): WarrenError {
  return new WarrenError('PROVISION_NOT_FOUND', `no node ${range(names)} in the inventory${names.length ? '' : ''} nor in the cluster`, { hint: 'see `warren node list`; `warren node add NAME --mac MAC --ip IP` adds one', details: { names } });
}

export function register(program: Command): void {
  const node = commandGroup(program, 'node', NODE_SUMMARY);

  addTargetOptions(
    fieldOptions(node.command('add').description('add nodes to the inventory: NAMES is a name or a range (n[001-128]); MAC and IP count up from the first; all or none').argument('<names>', 'node name or range, e.g. n001 or n[001-128]'), 'node', 'add'),
  ).action(async (names: string, o: TargetOpts & FieldOpts) => {
    const req: NodeChangeRequest = { names, ...changesOf(o) };
    const nodes = await withInventory(o, (inv) => inv.addInventoryNodes(req));
    if (o.json) out(JSON.stringify(nodes) + '\n');
    else note(`added ${nodes.length === 1 ? 'node' : `${nodes.length} nodes:`} ${range(nodes.map((n) => n.name))}${addrText(nodes.map((n) => Object.values(n.network ?? {})[0]))}\n`);
  });

  addTargetOptions(
    fieldOptions(node.command('set').description('change nodes of the inventory (every one must exist; all or none): --unset removes a field, a --mac or --ip counts up over a range').argument('<names>', 'node name or range'), 'node', 'set'),
  ).action(async (names: string, o: TargetOpts & FieldOpts) => {
    const c = changesOf(o);
    if (Object.keys(c).length === 0) throw new WarrenError('CLI_BAD_OPTION', 'say what to change', { hint: 'e.g. `warren node set n[001-004] --profile compute --tag rack=a1`, or --unset FIELD' });
    const nodes = await withInventory(o, (inv) => inv.setInventoryNodes({ names, ...c }));
    if (o.json) out(JSON.stringify(nodes) + '\n');
    else note(`changed ${nodes.length === 1 ? 'node' : `${nodes.length} nodes:`} ${range(nodes.map((n) => n.name))}\n`);
  });

  addTargetOptions(
    node
      .command('list')
      .description('the nodes: inventory (profiles, image, address, boot) and cluster agents (state, cores, last seen) side by side; --show NAME: every value and where it came from')
      .argument('[names]', 'only these (a name or range)')
      .option('--show <name>', "one node's resolved values and their origins (node, profile:NAME, default)")
      .option('--json', 'JSON output'),
  ).action(async (names: string | undefined, o: TargetOpts & { show?: string; json?: boolean }) => {
    if (o.show !== undefined) {
      if (names !== undefined) throw new WarrenError('CLI_BAD_OPTION', 'give NAMES or --show NAME, not both', { hint: '`warren node list --show n001`' });
      const [v] = await withInventory(o, (inv) => inv.inventoryNodes({ names: o.show! }));
      if (o.json) out(JSON.stringify(v) + '\n');
      else out(showText(v!.resolved));
      return;
    }
    const wanted = names !== undefined ? expandRange(names) : undefined;
    const { views, agents } = await withInventory(o, async (inv, admin) => ({
      views: await inv.inventoryNodes(names !== undefined ? { names, missingOk: true } : {}),
      agents: admin ? await admin.nodes() : [],
    }));
    const byView = new Map(views.map((v) => [v.node.name, v]));
    const byAgent = new Map(agents.map((a) => [a.name, a]));
    let all = [...new Set([...byView.keys(), ...byAgent.keys()])].sort();
    if (wanted) {
      const missing = wanted.filter((n) => !byView.has(n) && !byAgent.has(n));
      if (missing.length) throw notFound(missing);
      all = wanted;
    }
    if (o.json) {
      // A joined node's row is its cluster view (as before inventories), with `provision` beside.
      out(JSON.stringify(all.map((n) => ({ ...(byAgent.get(n) ?? { name: n }), provision: byView.get(n) ?? null }))) + '\n');
      return;
    }
    if (all.length === 0) {
      note('no nodes yet: `warren node add n[001-004] --mac MAC --ip IP` for the inventory; for a cluster, `warren token create --ttl 10m`, then on each node `warren agent --server URL --token T --name NAME --data DIR`\n');
      return;
    }
    out(listText(all, byView, byAgent, Date.now()));
  });

  addTargetOptions(
    node
      .command('status')
      .description("what the boot service last saw of each node: the last request and when, the image it booted, its runtime overlay's age")
      .argument('[names]', 'only these (a name or range)')
      .option('--json', 'JSON output'),
  ).action(async (names: string | undefined, o: TargetOpts & { json?: boolean }) => {
    const views = await withInventory(o, (inv) => inv.inventoryNodes(names !== undefined ? { names } : {}));
    if (o.json) {
      out(JSON.stringify(views.map((v) => ({ name: v.node.name, image: v.resolved.image, boot: v.boot }))) + '\n');
      return;
    }
    if (views.length === 0) {
      note('no nodes in the inventory: `warren node add NAME --mac MAC --ip IP`\n');
      return;
    }
    const now = Date.now();
    const rows = [['NAME', 'STATE', 'LAST REQUEST', 'WHEN', 'FROM', 'IMAGE BOOTED', 'BOOTED', 'RUNTIME OVERLAY']];
    for (const v of views) {
      const b = v.boot;
      rows.push([v.node.name, bootWord(v, now), b?.lastRequest ?? '-', ago(b?.lastRequestAt ?? null, now), b?.from ?? '-', b?.imageDigest ? b.imageDigest.replace(/^sha256:/, '').slice(0, 12) : '-', ago(b?.bootedAt ?? null, now), ago(b?.runtimeOverlayAt ?? null, now)]);
    }
    out(pad(rows));
  });

  addTargetOptions(
    node
      .command('delete')
      .description('delete nodes: from the inventory (with their boot status) and, on a server, the cluster (revoked and forgotten); several need --yes')
      .argument('<names>', 'node name or range')
      .option('--yes', 'do not ask (needed for several nodes when not at a terminal)'),
  ).action(async (names: string, o: TargetOpts & { yes?: boolean }) => {
    const wanted = expandRange(names);
    await withInventory(o, async (inv, admin) => {
      const views = await inv.inventoryNodes({ names, missingOk: true });
      const agents = admin ? (await admin.nodes()).filter((a) => wanted.includes(a.name)).map((a) => a.name) : [];
      const known = new Set([...views.map((v) => v.node.name), ...agents]);
      const missing = wanted.filter((n) => !known.has(n));
      if (missing.length) throw notFound(missing);
      if (wanted.length > 1 && !o.yes) {
        if (!process.stdin.isTTY) throw new WarrenError('CLI_BAD_OPTION', `deleting ${wanted.length} nodes (${range(wanted)}) needs --yes`, { hint: `run it again with --yes: \`warren node delete '${names}' --yes\`` });
        if (!(await confirm(`delete ${wanted.length} nodes (${range(wanted)})? [y/N] `))) {
          note('nothing deleted\n');
          return;
        }
      }
      const r = views.length ? await inv.deleteInventoryNodes({ names, missingOk: true }) : { deleted: [] };
      for (const a of agents) await admin!.deleteNode(a);
      note(`deleted ${wanted.length === 1 ? 'node' : `${wanted.length} nodes:`} ${range(wanted)}${r.deleted.length ? ` (inventory: ${r.deleted.length}` : ' ('}${agents.length ? `${r.deleted.length ? ', ' : ''}cluster: ${agents.length}` : ''})\n`);
    });
  });

  const profile = commandGroup(program, 'profile', PROFILE_SUMMARY);
  addTargetOptions(fieldOptions(profile.command('add').description('add a profile').argument('<name>', 'profile name'), 'profile', 'add')).action(async (name: string, o: TargetOpts & FieldOpts) => {
    const p = await withInventory(o, (inv) => inv.addProfile({ name, ...changesOf(o) }));
    if (o.json) out(JSON.stringify(p) + '\n');
    else note(`added profile ${p.name}\n`);
  });
  addTargetOptions(fieldOptions(profile.command('set').description('change a profile (its nodes see the change at once)').argument('<name>', 'profile name'), 'profile', 'set')).action(async (name: string, o: TargetOpts & FieldOpts) => {
    const c = changesOf(o);
    if (Object.keys(c).length === 0) throw new WarrenError('CLI_BAD_OPTION', 'say what to change', { hint: 'e.g. `warren profile set compute --image docker://debian:12`, or --unset FIELD' });
    const p = await withInventory(o, (inv) => inv.setProfile({ name, ...c }));
    if (o.json) out(JSON.stringify(p) + '\n');
    else note(`changed profile ${p.name}\n`);
  });
  addTargetOptions(profile.command('list').description('the profiles and how many nodes use each').option('--json', 'JSON output')).action(async (o: TargetOpts & { json?: boolean }) => {
    const { profiles, views } = await withInventory(o, async (inv) => ({ profiles: await inv.profiles(), views: await inv.inventoryNodes() }));
    if (o.json) {
      out(JSON.stringify(profiles) + '\n');
      return;
    }
    if (profiles.length === 0) {
      note('no profiles yet: `warren profile add NAME --image IMAGE --kernel-args "console=ttyS0"`\n');
      return;
    }
    out(profilesText(profiles, views));
  });
  addTargetOptions(profile.command('delete').description('delete a profile (refused while a node uses it)').argument('<name>', 'profile name')).action(async (name: string, o: TargetOpts) => {
    await withInventory(o, (inv) => inv.deleteProfile(name));
    note(`deleted profile ${name}\n`);
  });
}

function addrText(devs: ({ mac?: string; ip?: string } | undefined)[]): string {
  const macs = devs.map((d) => d?.mac).filter((x): x is string => !!x);
  const ips = devs.map((d) => d?.ip).filter((x): x is string => !!x);
  const parts = [macs.length ? `MAC ${range(macs)}` : '', ips.length ? `IP ${range(ips)}` : ''].filter(Boolean);
  return parts.length ? ` (${parts.join('; ')})` : '';
}

/** One row per name: the agent's state and load first (as before inventories), then what the
 *  inventory says; a drained node's reason goes under its row (as `sinfo -R` gives it). */
function listText(names: string[], views: Map<string, InventoryNodeView>, agents: Map<string, NodeView>, now: number): string {
  const rows = [['NAME', 'STATE', 'CORES', 'MEMORY', 'GPUS', 'RUNNING', 'LAST SEEN', 'PROFILES', 'IMAGE', 'MAC', 'IP', 'BOOT', 'LABELS']];
  const why = new Map<number, string>();
  for (const n of names) {
    const v = views.get(n);
    const a = agents.get(n);
    const p = v?.resolved.primary;
    const labels = a ? a.labels : v?.resolved.tags;
    if (a?.drainedBy) why.set(rows.length, `  drained by ${a.drainedBy === 'health' ? 'its health check' : 'an admin'}${a.drainReason ? `: ${a.drainReason}` : ''}`);
    rows.push([
      n,
      a ? a.state : '-',
      a ? `${a.usedCores}/${a.cores}` : '-',
      a ? formatBytes(a.memoryBytes) : '-',
      a ? String(a.gpus) : '-',
      a ? String(a.running) : '-',
      a ? ago(a.lastSeenAt, now) : '-',
      v ? v.node.profiles.join(',') || '-' : '-',
      v?.resolved.image ?? '-',
      p?.mac ?? '-',
      p?.ip ?? '-',
      bootWord(v, now),
      labels && Object.keys(labels).length ? Object.entries(labels).map(([k, x]) => `${k}=${x}`).join(',') : '-',
    ]);
  }
  const lines = pad(rows).split('\n');
  return lines.map((l, i) => (why.has(i) ? `${l}\n${why.get(i)}` : l)).join('\n');
}

function profilesText(profiles: ProfileRecord[], views: InventoryNodeView[]): string {
  const rows = [['NAME', 'NODES', 'IMAGE', 'KERNEL ARGS', 'TAGS', 'COMMENT']];
  for (const p of profiles) {
    const used = views.filter((v) => v.node.profiles.includes(p.name)).length;
    rows.push([p.name, String(used), p.image ?? '-', p.kernelArgs?.join(' ') || '-', Object.entries(p.tags ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '-', p.comment ?? '-']);
  }
  return pad(rows);
}
