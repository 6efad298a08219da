// A small in-memory InventoryStore for the overlay tests (the real one is the server's store).
// Test-only: it keeps the contract's rules that the overlays depend on (names unique, create vs
// replace), not the store's transactions.
import { WarrenError } from '../../src/common/index.js';
import type { BootStatus, InventoryNode, InventoryStore, ProfileRecord } from '../../src/provision/index.js';

export class MemoryInventory implements InventoryStore {
  readonly profiles = new Map<string, ProfileRecord>();
  readonly nodes = new Map<string, InventoryNode>();
  readonly status = new Map<string, BootStatus>();

  async listProfiles(): Promise<ProfileRecord[]> {
    return [...this.profiles.values()];
  }
  async getProfile(name: string): Promise<ProfileRecord | undefined> {
    return this.profiles.get(name);
  }
  async putProfile(p: ProfileRecord, mode: 'create' | 'replace'): Promise<void> {
    if (mode === 'create' && this.profiles.has(p.name)) throw new WarrenError('PROVISION_BAD_NAME', `profile ${p.name} exists`);
    if (mode === 'replace' && !this.profiles.has(p.name)) throw new WarrenError('PROVISION_PROFILE_UNKNOWN', `no profile ${p.name}`);
    this.profiles.set(p.name, structuredClone(p));
  }
  async deleteProfile(name: string): Promise<boolean> {
    return this.profiles.delete(name);
  }
  async listInventoryNodes(): Promise<InventoryNode[]> {
    return [...this.nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }
  async getInventoryNode(name: string): Promise<InventoryNode | undefined> {
    return this.nodes.get(name);
  }
  async inventoryNodeByMac(mac: string): Promise<InventoryNode | undefined> {
    return [...this.nodes.values()].find((n) => Object.values(n.network ?? {}).some((d) => d.mac === mac));
  }
  async putInventoryNodes(nodes: readonly InventoryNode[], mode: 'create' | 'replace'): Promise<void> {
    for (const n of nodes) {
      if (mode === 'create' && this.nodes.has(n.name)) throw new WarrenError('PROVISION_BAD_NAME', `node ${n.name} exists`);
      if (mode === 'replace' && !this.nodes.has(n.name)) throw new WarrenError('PROVISION_NODE_UNKNOWN', `no node ${n.name}`);
    }
    for (const n of nodes) this.nodes.set(n.name, structuredClone(n));
  }
  async deleteInventoryNodes(names: readonly string[]): Promise<number> {
    let k = 0;
    for (const n of names) if (this.nodes.delete(n)) k++;
    return k;
  }
  async getBootStatus(name: string): Promise<BootStatus | undefined> {
    return this.status.get(name);
  }
  async listBootStatus(): Promise<Map<string, BootStatus>> {
    return new Map(this.status);
  }
  async patchBootStatus(name: string, patch: Partial<BootStatus>): Promise<void> {
    if (!this.nodes.has(name)) return;
    const cur: BootStatus = this.status.get(name) ?? { lastRequestAt: null, lastRequest: null, from: null, bootedAt: null, imageDigest: null, systemOverlayAt: null, runtimeOverlayAt: null };
    this.status.set(name, { ...cur, ...patch });
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
