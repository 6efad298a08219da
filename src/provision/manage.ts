// The inventory's verbs (`warren node add|set|list|delete|status`, `warren profile ...`) over an
// InventoryStore: what the embedded client and the server both do. Requests carry what the
// CLI's flags say (a node range, a first MAC and IP); here they are expanded, counted up,
// checked and written in one store call, so a refused write leaves nothing half done.

import { WarrenError } from '../common/index.js';
import { expandRange, nthAddress, nthMac, parseIp, resolveNode, checkName, withProvisionDefaults } from './inventory.js';
import { notFoundError } from './errors.js';
import type { BootStatus, InventoryNode, InventoryStore, NetDevice, ProfileRecord, ProvisionFields, ResolvedNode } from './types.js';

/** Field changes as the flags give them; the same for nodes and profiles (profiles: no MAC, no IP). */
export interface FieldChanges {
  image?: string;
  kernel?: string;
  /** Replaces the list. */
  kernelArgs?: string[];
  systemOverlays?: string[];
  runtimeOverlays?: string[];
  /** Merged key by key into the tags there are. */
  tags?: Record<string, string>;
  comment?: string;
  sshKeys?: string[];
  /** The interface the network fields below apply to (the key of `network`, default `default`). */
  netname?: string;
  /** Its device name on the booted node (eth0, ens3). */
  netdev?: string;
  /** The first MAC of a range (counted up per node); nodes only. */
  mac?: string;
  /** The first address ADDRESS[/PREFIX] of a range (counted up per node, default prefix 24); nodes only. */
  ip?: string;
  gateway?: string;
  dns?: string[];
  mtu?: number;
  /** Fields to remove, applied before the changes: image, kernel, kernel-args, system-overlays,
   *  runtime-overlays, ssh-keys, comment, tags, tags.KEY, network, network.DEV, network.DEV.FIELD
   *  (and, for nodes, profiles). */
  unset?: string[];
}

export interface NodeChangeRequest extends FieldChanges {
  /** A name, a range (`n[001-128]`) or a list of them (`a,b[1-2]`). */
  names: string;
  /** The node's profiles, in order (replaces the list). */
  profiles?: string[];
}

export interface ProfileChangeRequest extends FieldChanges {
  name: string;
}

/** A node of the inventory with its profiles applied and what the boot service saw of it. */
export interface InventoryNodeView {
  node: InventoryNode;
  resolved: ResolvedNode;
  boot: BootStatus | null;
}

const ALIASES: Record<string, string> = {
  'kernel-args': 'kernelArgs',
  'system-overlays': 'systemOverlays',
  'runtime-overlays': 'runtimeOverlays',
  'ssh-keys': 'sshKeys',
  tag: 'tags',
};
const SIMPLE = ['image', 'kernel', 'kernelArgs', 'systemOverlays', 'runtimeOverlays', 'sshKeys', 'comment', 'tags', 'network'] as const;
const NET_FIELDS = ['device', 'mac', 'ip', 'gateway', 'dns', 'mtu', 'primary'] as const;
const TAG_KEY = /^[A-Za-z0-9_.\/-]{1,63}$/;
const TAG_VALUE = /^[^,=\s]{0,255}$/;
const OVERLAY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function badField(message: string, hint: string): WarrenError {
  return new WarrenError('PROVISION_BAD_FIELD', message, { hint });
}

/** Check the values of a change (everything but names and addresses, which their parsers check). */
function checkChanges(c: FieldChanges, kind: 'node' | 'profile'): void {
  if (kind === 'profile' && (c.mac !== undefined || c.ip !== undefined)) {
    throw badField(`a profile has no ${c.mac !== undefined ? 'MAC' : 'IP'} of its own (every node has its own)`, 'give --mac and --ip to `warren node add|set`; a profile may set --gateway, --netdev, --dns, --mtu');
  }
  const text = (flag: string, v: string | undefined, max = 4096) => {
    if (v !== undefined && (v.trim() === '' || v.length > max || /[\n\r\0]/.test(v))) throw badField(`${flag} takes one line of 1 to ${max} characters, not ${JSON.stringify(v.slice(0, 80))}`, `e.g. ${flag === '--image' ? '--image docker://debian:12' : `${flag} VALUE`}`);
  };
  text('--image', c.image);
  text('--kernel', c.kernel);
  if (c.comment !== undefined && (c.comment.length > 1000 || /[\n\r\0]/.test(c.comment))) throw badField('--comment takes one line of at most 1000 characters', 'shorten it');
  for (const a of c.kernelArgs ?? []) if (a === '' || /\s/.test(a)) throw badField(`kernel argument ${JSON.stringify(a)} is empty or holds a space`, 'give the arguments separated by spaces: --kernel-args "console=ttyS0 quiet"');
  for (const o of [...(c.systemOverlays ?? []), ...(c.runtimeOverlays ?? [])]) if (!OVERLAY.test(o)) throw badField(`"${o}" is not an overlay name`, 'overlay names are letters, digits, _ . - (see `warren overlay list`)');
  for (const k of c.sshKeys ?? []) if (!/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?$/.test(k)) throw badField(`"${k.slice(0, 40)}..." is not an SSH public key`, 'give one line of a .pub file, e.g. "ssh-ed25519 AAAA... me@host"');
  for (const [k, v] of Object.entries(c.tags ?? {})) {
    if (!TAG_KEY.test(k) || !TAG_VALUE.test(v)) throw badField(`tag ${k}=${v} is not a label`, 'write --tag KEY=VALUE: KEY of letters, digits, _ . / -; VALUE without commas, = or spaces (they become the agent\'s --labels)');
  }
  if (c.netdev !== undefined && !/^[A-Za-z0-9_.:-]{1,15}$/.test(c.netdev)) throw badField(`"${c.netdev}" is not an interface name`, 'e.g. --netdev eth0 (at most 15 characters)');
  if (c.netname !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(c.netname)) throw badField(`"${c.netname}" is not a network name`, 'e.g. --netname default or --netname ib (letters, digits, _ -)');
  if (c.netname !== undefined && !(c.mac !== undefined || c.ip !== undefined || c.gateway !== undefined || c.dns !== undefined || c.mtu !== undefined || c.netdev !== undefined)) {
    throw badField(`--netname ${c.netname} without a network field to set`, 'give it with --netdev, --mac, --ip, --gateway, --dns or --mtu; --unset network.NAME removes an interface');
  }
  if (c.gateway !== undefined) {
    const g = parseIp(c.gateway);
    if (/\//.test(c.gateway)) throw badField(`--gateway ${c.gateway} has a prefix length`, `give the address alone: --gateway ${g.ip}`);
  }
  for (const d of c.dns ?? []) if (/\//.test(d)) throw badField(`--dns ${d} has a prefix length`, 'give the address alone');
  for (const d of c.dns ?? []) parseIp(d);
  if (c.mtu !== undefined && !(Number.isInteger(c.mtu) && c.mtu >= 68 && c.mtu <= 65535)) throw badField(`--mtu ${c.mtu} is not an MTU`, 'give a whole number of bytes from 68 to 65535, e.g. --mtu 9000');
}

/** Remove one field path from fields (and the node's profiles); unknown paths are PROVISION_BAD_FIELD. */
function unsetField(f: ProvisionFields & { profiles?: string[] }, path: string, kind: 'node' | 'profile'): void {
  const [head0, ...rest] = path.split('.');
  const head = ALIASES[head0!] ?? head0!;
  const hint = `--unset takes ${SIMPLE.join(', ')}, tags.KEY, network.DEV, network.DEV.FIELD (${NET_FIELDS.join(', ')})${kind === 'node' ? ', profiles' : ''}`;
  if (head === 'profiles' && kind === 'node' && rest.length === 0) {
    f.profiles = [];
    return;
  }
  if (head === 'tags' && rest.length === 1) {
    if (f.tags) delete f.tags[rest[0]!];
    return;
  }
  if (head === 'network' && rest.length >= 1 && rest.length <= 2) {
    const dev = f.network?.[rest[0]!];
    if (rest.length === 2 && !(NET_FIELDS as readonly string[]).includes(rest[1]!)) throw badField(`--unset ${path}: an interface has no field ${rest[1]}`, hint);
    if (!dev) return;
    if (rest.length === 1) delete f.network![rest[0]!];
    else delete (dev as Record<string, unknown>)[rest[1]!];
    return;
  }
  if (rest.length === 0 && (SIMPLE as readonly string[]).includes(head)) {
    delete (f as Record<string, unknown>)[head];
    return;
  }
  throw badField(`--unset ${path}: there is no such field`, hint);
}

/** The fields after a change, for the `i`-th node of a range (its MAC and IP counted up). */
function applyChanges<T extends ProvisionFields & { profiles?: string[] }>(base: T, c: FieldChanges & { profiles?: string[] }, i: number, kind: 'node' | 'profile'): T {
  const f = structuredClone(base);
  for (const u of c.unset ?? []) unsetField(f, u, kind);
  if (c.image !== undefined) f.image = c.image;
  if (c.kernel !== undefined) f.kernel = c.kernel;
  if (c.kernelArgs !== undefined) f.kernelArgs = [...c.kernelArgs];
  if (c.systemOverlays !== undefined) f.systemOverlays = [...c.systemOverlays];
  if (c.runtimeOverlays !== undefined) f.runtimeOverlays = [...c.runtimeOverlays];
  if (c.sshKeys !== undefined) f.sshKeys = [...c.sshKeys];
  if (c.comment !== undefined) f.comment = c.comment;
  if (c.tags !== undefined) f.tags = { ...(f.tags ?? {}), ...c.tags };
  if (c.profiles !== undefined && kind === 'node') f.profiles = [...c.profiles];
  const net = c.mac !== undefined || c.ip !== undefined || c.gateway !== undefined || c.dns !== undefined || c.mtu !== undefined || c.netdev !== undefined;
  if (net) {
    // Warewulf's way: interfaces are named (`default` unless --netname says), and a node's and
    // its profiles' interfaces of one name merge field by field.
    const key = c.netname ?? 'default';
    const d: NetDevice = { ...(f.network?.[key] ?? {}) };
    if (c.netdev !== undefined) d.device = c.netdev;
    if (c.mac !== undefined) d.mac = nthMac(c.mac, i);
    if (c.ip !== undefined) d.ip = nthAddress(c.ip, i);
    if (c.gateway !== undefined) d.gateway = c.gateway;
    if (c.dns !== undefined) d.dns = [...c.dns];
    if (c.mtu !== undefined) d.mtu = c.mtu;
    f.network = { ...(f.network ?? {}), [key]: d };
  }
  // Empty collections are the same as unset.
  if (f.tags && Object.keys(f.tags).length === 0) delete f.tags;
  if (f.network && Object.keys(f.network).length === 0) delete f.network;
  return f;
}

/** `warren node add`: every name new, MAC and IP counted up from the first; all or nothing. */
export async function addNodes(store: InventoryStore, req: NodeChangeRequest, now = Date.now()): Promise<InventoryNode[]> {
  checkChanges(req, 'node');
  const names = expandRange(req.names);
  const nodes = names.map((name, i) => applyChanges<InventoryNode>({ name, profiles: [], createdAt: now, updatedAt: now }, req, i, 'node'));
  await store.putInventoryNodes(nodes, 'create');
  return nodes;
}

/** `warren node set`: every name must exist; the changes apply to each (MAC and IP counted up). */
export async function setNodes(store: InventoryStore, req: NodeChangeRequest, now = Date.now()): Promise<InventoryNode[]> {
  checkChanges(req, 'node');
  const names = expandRange(req.names);
  const have = new Map((names.length > 16 ? await store.listInventoryNodes() : (await Promise.all(names.map((n) => store.getInventoryNode(n)))).filter((n): n is InventoryNode => n !== undefined)).map((n) => [n.name, n]));
  const missing = names.filter((n) => !have.has(n));
  if (missing.length) throw notFoundError('node', missing);
  const nodes = names.map((name, i) => ({ ...applyChanges(have.get(name)!, req, i, 'node'), updatedAt: now }));
  await store.putInventoryNodes(nodes, 'replace');
  return nodes;
}

/** `warren node delete`: the names that were in the inventory are deleted (in one transaction);
 *  with `missingOk` false, a name that is not refuses the whole delete. */
export async function deleteNodes(store: InventoryStore, spec: string, opts: { missingOk?: boolean } = {}): Promise<{ deleted: string[] }> {
  const names = expandRange(spec);
  const known = new Set((await store.listInventoryNodes()).map((n) => n.name));
  const missing = names.filter((n) => !known.has(n));
  if (missing.length && !opts.missingOk) throw notFoundError('node', missing);
  const deleted = names.filter((n) => known.has(n));
  await store.deleteInventoryNodes(deleted);
  return { deleted };
}

/** The inventory (or the nodes `spec` names, each of which must exist), resolved, with boot status. */
export async function listNodeViews(store: InventoryStore, spec?: string, opts: { missingOk?: boolean } = {}): Promise<InventoryNodeView[]> {
  const [nodes, profiles, boot] = await Promise.all([store.listInventoryNodes(), store.listProfiles(), store.listBootStatus()]);
  let chosen = nodes;
  if (spec !== undefined) {
    const names = expandRange(spec);
    const byName = new Map(nodes.map((n) => [n.name, n]));
    const missing = names.filter((n) => !byName.has(n));
    if (missing.length && !opts.missingOk) throw notFoundError('node', missing);
    chosen = names.filter((n) => byName.has(n)).map((n) => byName.get(n)!);
  }
  const byProfile = new Map(profiles.map((p) => [p.name, p]));
  return chosen.map((node) => ({ node, resolved: withProvisionDefaults(resolveNode(node, byProfile)), boot: boot.get(node.name) ?? null }));
}

/** The defaults of fields no profile and no node set (the agreed ones: the built-in overlays, a serial console). */
export async function addProfile(store: InventoryStore, req: ProfileChangeRequest, now = Date.now()): Promise<ProfileRecord> {
  checkName(req.name, 'profile');
  checkChanges(req, 'profile');
  const p = applyChanges<ProfileRecord>({ name: req.name, createdAt: now, updatedAt: now }, req, 0, 'profile');
  await store.putProfile(p, 'create');
  return p;
}

export async function setProfile(store: InventoryStore, req: ProfileChangeRequest, now = Date.now()): Promise<ProfileRecord> {
  checkChanges(req, 'profile');
  const cur = await store.getProfile(req.name);
  if (!cur) throw notFoundError('profile', [req.name]);
  const p = { ...applyChanges(cur, req, 0, 'profile'), updatedAt: now };
  await store.putProfile(p, 'replace');
  return p;
}

export async function deleteProfile(store: InventoryStore, name: string): Promise<void> {
  if (!(await store.deleteProfile(name))) throw notFoundError('profile', [name]);
}
