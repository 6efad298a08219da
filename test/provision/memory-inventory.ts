// An InventoryStore in memory, for the boot service's tests and bench (the store's SQL one is
// another part of issue 13). It keeps the contract's rules that the boot service relies on: MACs
// normalized, lookups by MAC, boot status merged and dropped with its node.
import { WarrenError } from '../../src/common/index.js';
import { normalizeMac, type BootStatus, type InventoryNode, type InventoryStore, type ProfileRecord } from '../../src/provision/index.js';

const EMPTY: BootStatus = { lastRequestAt: null, lastRequest: null, from: null, bootedAt: null, imageDigest: null, systemOverlayAt: null, runtimeOverlayAt: null };
const copy = <T>(v: T): T => structuredClone(v);

export class MemoryInventory implements InventoryStore {
  readonly profiles = new Map<string, ProfileRecord>();
  readonly nodes = new Map<string, InventoryNode>();
  readonly status = new Map<string, BootStatus>();

  async listProfiles(): Promise<ProfileRecord[]> {
    return [...this.profiles.values()].map(copy);
  }
  async getProfile(name: string): Promise<ProfileRecord | undefined> {
    const p = this.profiles.get(name);
    return p && copy(p);
  }
  async putProfile(p: ProfileRecord, mode: 'create' | 'replace'): Promise<void> {
    if (mode === 'create' && this.profiles.has(p.name)) throw new WarrenError('PROVISION_BAD_NAME', `profile ${p.name} exists`);
    this.profiles.set(p.name, copy(p));
  }
  async deleteProfile(name: string): Promise<boolean> {
    return this.profiles.delete(name);
  }
  async listInventoryNodes(): Promise<InventoryNode[]> {
    return [...this.nodes.values()].map(copy);
  }
  async getInventoryNode(name: string): Promise<InventoryNode | undefined> {
    const n = this.nodes.get(name);
    return n && copy(n);
  }
  async inventoryNodeByMac(mac: string): Promise<InventoryNode | undefined> {
    const m = normalizeMac(mac);
    for (const n of this.nodes.values()) if (Object.values(n.network ?? {}).some((d) => d.mac && normalizeMac(d.mac) === m)) return copy(n);
    return undefined;
  }
  async putInventoryNodes(nodes: readonly InventoryNode[], _mode: 'create' | 'replace'): Promise<void> {
    for (const n of nodes) this.nodes.set(n.name, copy(n));
  }
  async deleteInventoryNodes(names: readonly string[]): Promise<number> {
    let k = 0;
    for (const n of names) {
      if (this.nodes.delete(n)) k++;
      this.status.delete(n);
    }
    return k;
  }
  async getBootStatus(name: string): Promise<BootStatus | undefined> {
    const s = this.status.get(name);
    return s && { ...s };
  }
  async listBootStatus(): Promise<Map<string, BootStatus>> {
    return new Map([...this.status].map(([k, v]) => [k, { ...v }]));
  }
  async patchBootStatus(name: string, patch: Partial<BootStatus>): Promise<void> {
    if (!this.nodes.has(name)) return;
    this.status.set(name, { ...(this.status.get(name) ?? EMPTY), ...patch });
  }

  /** A node with one interface (eth0). */
  add(name: string, mac: string, ip: string, extra: Partial<InventoryNode> = {}): void {
    const now = Date.now();
    this.nodes.set(name, { name, profiles: [], createdAt: now, updatedAt: now, network: { eth0: { device: 'eth0', mac: normalizeMac(mac), ip, primary: true } }, ...extra });
  }
}

const T = 1_700_000_000_000;

/** A profile `compute` and two nodes with two interfaces each (n001, n002), plus n003 without a MAC. */
export async function sampleInventory(): Promise<MemoryInventory> {
  const inv = new MemoryInventory();
  await inv.putProfile({
    name: 'compute', createdAt: T, updatedAt: T,
    image: 'docker://debian:12', kernelArgs: ['console=ttyS0', 'quiet'], tags: { rack: 'a1', role: 'compute' },
    network: { eth0: { gateway: '10.0.0.1', dns: ['10.0.0.2', '10.0.0.3'], mtu: 9000 } },
    sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIProfileKey admin@site'],
  }, 'create');
  const node = (name: string, i: number): InventoryNode => ({
    name, profiles: ['compute'], createdAt: T, updatedAt: T,
    tags: { slot: String(i) },
    network: {
      eth0: { mac: `52:54:00:00:00:0${i}`, ip: `10.0.0.1${i}/24`, primary: true },
      ib0: { device: 'ib0', mac: `52:54:00:00:01:0${i}`, ip: `192.168.50.1${i}/16` },
    },
  });
  await inv.putInventoryNodes([node('n001', 1), node('n002', 2), { name: 'n003', profiles: [], createdAt: T, updatedAt: T }], 'create');
  return inv;
}
