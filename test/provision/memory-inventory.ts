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
