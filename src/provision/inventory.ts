// The inventory's pure rules: node ranges (`n[001-128]`), addresses that count up from a first
// one, and profiles applied to a node with the origin of every value. No I/O.
import { WarrenError } from '../common/index.js';
import type { InventoryNode, NetDevice, Origin, ProfileRecord, ProvisionFields, ResolvedNode } from './types.js';

/** The most names one range may expand to. */
export const MAX_RANGE = 65536;

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A node or profile name is a DNS label (it becomes the node's host name). */
export function checkName(name: string, what = 'node'): void {
  if (!NAME_RE.test(name)) {
    throw new WarrenError('PROVISION_BAD_NAME', `"${name}" is not a valid ${what} name`, { hint: 'use lower-case letters, digits and -, at most 63 characters, starting and ending with a letter or digit (a host name), e.g. n001' });
  }
}

/**
 * Expand a node range: `n[001-128]` is n001..n128 (the width of the first bound pads), `n[1-3,7]`
 * is n1 n2 n3 n7, several groups multiply (`r[1-2]n[1-2]`: r1n1 r1n2 r2n1 r2n2). A name without
 * brackets is itself. Commas outside brackets separate ranges (`a,b[1-2]`). In order, no duplicates.
 */
export function expandRange(spec: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of spec) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (depth < 0 || depth > 1) throw badRange(spec, 'brackets do not nest');
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) throw badRange(spec, 'a "[" is not closed');
  parts.push(cur);
  const out: string[] = [];
  const seen = new Set<string>();
  for (const p of parts) {
    if (p.trim() === '') throw badRange(spec, 'an empty name');
    for (const n of expandOne(spec, p.trim())) {
      if (seen.has(n)) throw badRange(spec, `${n} appears twice`);
      seen.add(n);
      out.push(n);
      if (out.length > MAX_RANGE) throw badRange(spec, `more than ${MAX_RANGE} names`);
    }
  }
  for (const n of out) checkName(n);
  return out;
}

function badRange(spec: string, why: string): WarrenError {
  return new WarrenError('PROVISION_BAD_RANGE', `node range "${spec}": ${why}`, { hint: 'write a range as PREFIX[FIRST-LAST] (e.g. n[001-128]), lists as n[1-4,9], several ranges separated by commas' });
}

function expandOne(spec: string, p: string): string[] {
  const m = /^([^[\]]*)\[([^\]]*)\](.*)$/.exec(p);
  if (!m) {
    if (/[[\]]/.test(p)) throw badRange(spec, 'an unmatched bracket');
    return [p];
  }
  const [, head, body, tail] = m as unknown as [string, string, string, string];
  const items: string[] = [];
  for (const piece of body.split(',')) {
    const r = /^(\d+)(?:-(\d+))?$/.exec(piece.trim());
    if (!r) throw badRange(spec, `"[${body}]" holds "${piece}", not a number or FIRST-LAST`);
    const a = r[1]!;
    const b = r[2] ?? a;
    const lo = Number(a);
    const hi = Number(b);
    if (hi < lo) throw badRange(spec, `${a}-${b} counts down`);
    if (hi - lo + 1 > MAX_RANGE) throw badRange(spec, `more than ${MAX_RANGE} names`);
    const width = a.length > 1 && a.startsWith('0') ? a.length : 0;
    for (let i = lo; i <= hi; i++) items.push(String(i).padStart(width, '0'));
  }
  const rest = expandOne(spec, tail);
  const out: string[] = [];
  for (const it of items) for (const r of rest) out.push(`${head}${it}${r}`);
  return out;
}

/** Normalize a MAC address (aa:bb:cc:dd:ee:ff); accepts `-` separators and upper case. */
export function normalizeMac(mac: string): string {
  const m = mac.trim().toLowerCase().replace(/-/g, ':');
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m)) {
    throw new WarrenError('PROVISION_BAD_ADDRESS', `"${mac}" is not a MAC address`, { hint: 'write six hex pairs, e.g. 52:54:00:12:34:56' });
  }
  if ((parseInt(m.slice(0, 2), 16) & 1) === 1) throw new WarrenError('PROVISION_BAD_ADDRESS', `${m} is a multicast address, not a node's`, { hint: "give the MAC printed on the node's network card or in its BMC" });
  return m;
}

function ipv4ToInt(ip: string): number | undefined {
  const p = ip.split('.');
  if (p.length !== 4) return undefined;
  let v = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return undefined;
    v = v * 256 + Number(x);
  }
  return v;
}

const intToIpv4 = (v: number): string => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');

/** Parse IPv4 ADDRESS[/PREFIX] (default prefix 24). */
export function parseIp(spec: string): { ip: string; prefix: number; value: number } {
  const m = /^([0-9.]+)(?:\/(\d{1,2}))?$/.exec(spec.trim());
  const value = m ? ipv4ToInt(m[1]!) : undefined;
  const prefix = m?.[2] !== undefined ? Number(m[2]) : 24;
  if (!m || value === undefined || prefix < 1 || prefix > 32) {
    throw new WarrenError('PROVISION_BAD_ADDRESS', `"${spec}" is not an IPv4 address with an optional prefix length`, { hint: 'e.g. --ip 10.0.0.11 or --ip 10.0.0.11/24' });
  }
  return { ip: m[1]!, prefix, value };
}

/** The `i`-th address counting up from `first` (ADDRESS[/PREFIX]), kept inside its subnet. */
export function nthAddress(first: string, i: number): string {
  const { prefix, value } = parseIp(first);
  const size = prefix === 32 ? 1 : 2 ** (32 - prefix);
  const net = Math.floor(value / size) * size;
  const v = value + i;
  const last = prefix >= 31 ? net + size - 1 : net + size - 2; // leave the broadcast address
  if (v > last) {
    throw new WarrenError('PROVISION_BAD_ADDRESS', `counting up from ${first}, node ${i + 1} would get ${intToIpv4(v)}, outside ${intToIpv4(net)}/${prefix}`, { hint: 'start lower, use a larger subnet (a shorter prefix), or split the range' });
  }
  return `${intToIpv4(v)}/${prefix}`;
}

/** The `i`-th MAC counting up from `first` (for VMs whose MACs are given as a first one). */
export function nthMac(first: string, i: number): string {
  const m = normalizeMac(first);
  const n = BigInt(`0x${m.replace(/:/g, '')}`) + BigInt(i);
  if (n > 0xffffffffffffn) throw new WarrenError('PROVISION_BAD_ADDRESS', `counting up from ${m} runs past ff:ff:ff:ff:ff:ff`, { hint: 'start lower' });
  const h = n.toString(16).padStart(12, '0');
  const out = h.match(/../g)!.join(':');
  if (out.slice(0, 2) !== m.slice(0, 2)) throw new WarrenError('PROVISION_BAD_ADDRESS', `counting up from ${m} for ${i + 1} nodes changes the first octet (${out})`, { hint: 'give each node its MAC, or start lower' });
  return out;
}

const LIST_FIELDS = ['kernelArgs', 'systemOverlays', 'runtimeOverlays', 'sshKeys'] as const;
const SCALAR_FIELDS = ['image', 'kernel', 'comment'] as const;

/**
 * Apply a node's profiles: scalars and lists come from the last layer that sets them (profiles in
 * the node's order, then the node); tags and network interfaces merge key by key (and each
 * interface field by field). `origin` says for each value where it came from. An unknown
 * profile is PROVISION_PROFILE_UNKNOWN.
 */
export function resolveNode(node: InventoryNode, profiles: ReadonlyMap<string, ProfileRecord> | readonly ProfileRecord[]): ResolvedNode {
  const byName = profiles instanceof Map ? profiles : new Map((profiles as readonly ProfileRecord[]).map((p) => [p.name, p]));
  const layers: { origin: Origin; f: ProvisionFields }[] = [];
  for (const p of node.profiles) {
    const prof = byName.get(p);
    if (!prof) throw new WarrenError('PROVISION_PROFILE_UNKNOWN', `node ${node.name} uses profile ${p}, which does not exist`, { hint: `add it (\`warren profile add ${p}\`) or take it off the node (\`warren node set ${node.name} --profile ...\`)` });
    layers.push({ origin: `profile:${p}`, f: prof });
  }
  layers.push({ origin: 'node', f: node });
  const origin: Record<string, Origin> = {};
  const r: ResolvedNode = { name: node.name, profiles: [...node.profiles], image: null, kernel: null, kernelArgs: [], systemOverlays: [], runtimeOverlays: [], network: {}, tags: {}, sshKeys: [], comment: null, primary: null, origin };
  for (const k of [...SCALAR_FIELDS, ...LIST_FIELDS, 'network', 'tags']) origin[k] = 'default';
  for (const { origin: o, f } of layers) {
    for (const k of SCALAR_FIELDS) {
      if (f[k] !== undefined) {
        r[k] = f[k]!;
        origin[k] = o;
      }
    }
    for (const k of LIST_FIELDS) {
      if (f[k] !== undefined) {
        r[k] = [...f[k]!];
        origin[k] = o;
      }
    }
    for (const [k, v] of Object.entries(f.tags ?? {})) {
      r.tags[k] = v;
      origin[`tags.${k}`] = o;
    }
    for (const [dev, nd] of Object.entries(f.network ?? {})) {
      const cur: NetDevice = r.network[dev] ?? {};
      for (const [fk, fv] of Object.entries(nd) as [keyof NetDevice, unknown][]) {
        if (fv === undefined) continue;
        (cur as Record<string, unknown>)[fk] = Array.isArray(fv) ? [...fv] : fv;
        origin[`network.${dev}.${fk}`] = o;
      }
      r.network[dev] = cur;
    }
  }
  const devs = Object.entries(r.network);
  const prim = devs.find(([, d]) => d.primary) ?? devs.find(([, d]) => d.mac) ?? devs[0];
  if (prim) r.primary = { ...prim[1], device: prim[1].device ?? prim[0] };
  return r;
}

// What no layer sets (the origin `default`).
export const DEFAULT_SYSTEM_OVERLAYS: readonly string[] = ['warren-system'];
export const DEFAULT_RUNTIME_OVERLAYS: readonly string[] = ['warren-runtime'];
export const DEFAULT_KERNEL_ARGS: readonly string[] = ['console=ttyS0'];

/** The node with the defaults filled in where neither it nor its profiles set a value. */
export function withProvisionDefaults(n: ResolvedNode): ResolvedNode {
  const unset = (k: 'systemOverlays' | 'runtimeOverlays' | 'kernelArgs') => n[k].length === 0 && (n.origin[k] ?? 'default') === 'default';
  return {
    ...n,
    systemOverlays: unset('systemOverlays') ? [...DEFAULT_SYSTEM_OVERLAYS] : n.systemOverlays,
    runtimeOverlays: unset('runtimeOverlays') ? [...DEFAULT_RUNTIME_OVERLAYS] : n.runtimeOverlays,
    kernelArgs: unset('kernelArgs') ? [...DEFAULT_KERNEL_ARGS] : n.kernelArgs,
  };
}
