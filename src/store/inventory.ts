// The provisioning inventory in the store (schema v8), shared by both stores: the rows of a
// node, profile and boot status, and the checks of a write of several nodes, made in memory
// from what the transaction read (names taken, address holders, profiles known) before it
// writes anything. The primary keys of provision_nodes and provision_addresses back them up
// against a concurrent writer (mapped to the same errors by the stores).

import { WarrenError } from '../common/index.js';
import { checkName, duplicateError, existsError, normalizeMac, notFoundError, parseIp, profileUnknownError, type BootStatus, type InventoryNode, type ProfileRecord, type ProvisionFields } from '../provision/index.js';

export { existsError, notFoundError, profileInUseError } from '../provision/index.js';

type Row = Record<string, unknown>;

/** A MAC or an IP of an interface of a node: one row of provision_addresses. */
export interface AddressRow {
  kind: 'mac' | 'ip';
  value: string;
  node: string;
  device: string;
}

const FIELD_KEYS = ['image', 'kernel', 'kernelArgs', 'systemOverlays', 'runtimeOverlays', 'network', 'tags', 'comment', 'sshKeys'] as const;

/** The fields of a node or profile as stored (JSON), without name, profiles and times. */
export function fieldsJson(f: ProvisionFields): string {
  const out: Record<string, unknown> = {};
  for (const k of FIELD_KEYS) if (f[k] !== undefined) out[k] = f[k];
  return JSON.stringify(out);
}

const json = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);

export function profileOf(r: Row): ProfileRecord {
  return { ...(json(r.fields) as ProvisionFields), name: r.name as string, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at) };
}

export function inventoryNodeOf(r: Row): InventoryNode {
  return { ...(json(r.fields) as ProvisionFields), name: r.name as string, profiles: json(r.profiles) as string[], createdAt: Number(r.created_at), updatedAt: Number(r.updated_at) };
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function bootStatusOf(r: Row): BootStatus {
  return {
    lastRequestAt: num(r.last_request_at),
    lastRequest: (r.last_request as string | null) ?? null,
    from: (r.from_addr as string | null) ?? null,
    bootedAt: num(r.booted_at),
    imageDigest: (r.image_digest as string | null) ?? null,
    systemOverlayAt: num(r.system_overlay_at),
    runtimeOverlayAt: num(r.runtime_overlay_at),
  };
}

/** BootStatus field -> its column. */
export const BOOT_COLUMNS: Record<keyof BootStatus, string> = {
  lastRequestAt: 'last_request_at',
  lastRequest: 'last_request',
  from: 'from_addr',
  bootedAt: 'booted_at',
  imageDigest: 'image_digest',
  systemOverlayAt: 'system_overlay_at',
  runtimeOverlayAt: 'runtime_overlay_at',
};

/** The upsert of a boot status patch (only the fields given), with placeholders `ph(i)`. */
export function bootPatchSql(name: string, patch: Partial<BootStatus>, ph: (i: number) => string): { text: string; values: unknown[] } | null {
  const cols: string[] = [];
  const values: unknown[] = [name];
  for (const [k, col] of Object.entries(BOOT_COLUMNS) as [keyof BootStatus, string][]) {
    if (!(k in patch) || patch[k] === undefined) continue;
    values.push(patch[k]);
    cols.push(col);
  }
  if (cols.length === 0) return null;
  // INSERT ... SELECT from the node's row: a node not in the inventory gets nothing.
  return {
    text: `INSERT INTO provision_boot (node, ${cols.join(', ')}) SELECT name, ${cols.map((_, i) => ph(i + 2)).join(', ')} FROM provision_nodes WHERE name = ${ph(1)}
      ON CONFLICT (node) DO UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}`,
    values,
  };
}

/** The addresses of a node's interfaces (MAC normalized, IP without its prefix). */
export function addressesOf(n: InventoryNode): AddressRow[] {
  const out: AddressRow[] = [];
  for (const [dev, d] of Object.entries(n.network ?? {})) {
    if (d.mac !== undefined) out.push({ kind: 'mac', value: normalizeMac(d.mac), node: n.name, device: dev });
    if (d.ip !== undefined) out.push({ kind: 'ip', value: parseIp(d.ip).ip, node: n.name, device: dev });
  }
  return out;
}

/** What a write of several nodes found in the store, read inside its transaction. */
export interface NodeWriteFacts {
  /** Those of the batch's names that exist. */
  existing: ReadonlySet<string>;
  /** `kind:value` -> the node holding it, for every address of the batch that is held. */
  holders: ReadonlyMap<string, string>;
  /** Those of the profiles the batch uses that exist. */
  profiles: ReadonlySet<string>;
}

/** The keys the facts are asked for: the batch's names, addresses and profiles. */
export function nodeWriteKeys(nodes: readonly InventoryNode[]): { names: string[]; addresses: AddressRow[]; profiles: string[] } {
  const addresses: AddressRow[] = [];
  const profiles = new Set<string>();
  for (const n of nodes) {
    checkName(n.name);
    for (const p of n.profiles) profiles.add(p);
    addresses.push(...addressesOf(n));
  }
  return { names: nodes.map((n) => n.name), addresses, profiles: [...profiles] };
}

/**
 * Check a write of several nodes before anything is written: names new (create) or known
 * (replace), given once; profiles known; every address held by one node only, counting the
 * batch itself (its nodes' old addresses are released: a replace may swap two nodes' MACs).
 */
export function checkNodeWrite(nodes: readonly InventoryNode[], mode: 'create' | 'replace', keys: ReturnType<typeof nodeWriteKeys>, facts: NodeWriteFacts): void {
  const seen = new Set<string>();
  for (const n of keys.names) {
    if (seen.has(n)) throw duplicateError('name', n, n, n);
    seen.add(n);
  }
  if (mode === 'create') {
    const taken = keys.names.filter((n) => facts.existing.has(n));
    if (taken.length) throw existsError('node', taken);
  } else {
    const missing = keys.names.filter((n) => !facts.existing.has(n));
    if (missing.length) throw notFoundError('node', missing);
  }
  for (const n of nodes) for (const p of n.profiles) if (!facts.profiles.has(p)) throw profileUnknownError(n.name, p);
  const mine = new Map<string, string>();
  for (const a of keys.addresses) {
    const k = `${a.kind}:${a.value}`;
    const other = mine.get(k);
    if (other !== undefined) throw duplicateError(a.kind, a.value, a.node, other);
    mine.set(k, a.node);
    const holder = facts.holders.get(k);
    if (holder !== undefined && !seen.has(holder)) throw duplicateError(a.kind, a.value, a.node, holder);
  }
}

/** A unique violation a concurrent writer caused (the checks above passed on what was read). */
export function raceError(constraint: string, detail: string): WarrenError {
  return new WarrenError('PROVISION_DUPLICATE', `another write took a name or address of these nodes at the same moment (${constraint}: ${detail})`, {
    hint: 'see `warren node list` and run it again',
  });
}
