// The provisioning inventory: profiles and nodes (Warewulf's model), as the store keeps them and
// as the boot service, the overlays and the CLI see them. Pure types.

/** One network interface of a node. */
export interface NetDevice {
  /** The interface name on the booted node (e.g. eth0, ens3); the key of `network`. */
  device?: string;
  /** Hardware address, lower case, colon separated (aa:bb:cc:dd:ee:ff). */
  mac?: string;
  /** Address with prefix length, e.g. 10.0.0.11/24. */
  ip?: string;
  gateway?: string;
  /** Name servers for this interface. */
  dns?: string[];
  /** MTU in bytes. */
  mtu?: number;
  /** The interface the node boots from and the server reaches it on (one per node). */
  primary?: boolean;
}

/** What a profile, and a node over its profiles, may set. Every field is optional: unset fields
 *  come from the profiles (in the order the node lists them, later over earlier), then defaults. */
export interface ProvisionFields {
  /** Source image (any reference `image.uri` accepts); its node image is `warren image node-build IMAGE`. */
  image?: string;
  /** A kernel other than the image's: a kernel version found in the image (`6.1.0-18-amd64`) or a file path. */
  kernel?: string;
  /** Kernel command line arguments, in order (`console=ttyS0`, `quiet`). */
  kernelArgs?: string[];
  /** Overlays applied at boot, in order (later files win). */
  systemOverlays?: string[];
  /** Overlays refreshed while the node runs. */
  runtimeOverlays?: string[];
  /** Network interfaces by name (the key is the device name, e.g. `default`, `eth0`). */
  network?: Record<string, NetDevice>;
  /** The scheduler's labels of the node's agent (`rack=a1`). Merged key by key. */
  tags?: Record<string, string>;
  /** Free text. */
  comment?: string;
  /** SSH public keys for root on the node (authorized_keys). */
  sshKeys?: string[];
}

export interface ProfileRecord extends ProvisionFields {
  name: string;
  createdAt: number;
  updatedAt: number;
}

/** A node of the inventory. Its name is the name of the cluster node (NodeRecord) its agent joins as. */
export interface InventoryNode extends ProvisionFields {
  name: string;
  /** Profiles it inherits from, in order (later over earlier; the node's own fields over all). */
  profiles: string[];
  createdAt: number;
  updatedAt: number;
}

/** Where a resolved value came from. */
export type Origin = 'node' | `profile:${string}` | 'default';

/** A node with its profiles applied: every value, and where each came from. */
export interface ResolvedNode {
  name: string;
  profiles: string[];
  image: string | null;
  kernel: string | null;
  kernelArgs: string[];
  systemOverlays: string[];
  runtimeOverlays: string[];
  network: Record<string, NetDevice>;
  tags: Record<string, string>;
  sshKeys: string[];
  comment: string | null;
  /** The primary interface (`primary: true`, else the first one with a MAC), or null. */
  primary: (NetDevice & { device: string }) | null;
  /** Field path (`image`, `kernelArgs`, `network.default.ip`, `tags.rack`) -> its origin. */
  origin: Record<string, Origin>;
}

/** What the boot service last saw of a node (`warren node status`). ms since the epoch. */
export interface BootStatus {
  /** The last request of any kind, its path, and the address it came from. */
  lastRequestAt: number | null;
  lastRequest: string | null;
  from: string | null;
  /** The iPXE script was served (the node is booting) at, with this node image. */
  bootedAt: number | null;
  imageDigest: string | null;
  /** The system overlay (with its join token) was served at. */
  systemOverlayAt: number | null;
  /** The runtime overlay was last fetched at. */
  runtimeOverlayAt: number | null;
}

/**
 * Where the inventory lives: the server's store (SQLite or PostgreSQL; the embedded store when no
 * server runs). Writes of several nodes are all or nothing; a name, a MAC or an IP held by two
 * nodes is refused inside the transaction (PROVISION_DUPLICATE), so nothing is half written.
 */
export interface InventoryStore {
  listProfiles(): Promise<ProfileRecord[]>;
  getProfile(name: string): Promise<ProfileRecord | undefined>;
  /** create: PROVISION_EXISTS if the name is taken; replace: PROVISION_NOT_FOUND if it is not. */
  putProfile(p: ProfileRecord, mode: 'create' | 'replace'): Promise<void>;
  /** Refused (PROVISION_PROFILE_IN_USE) while a node or profile uses it; false when there is none. */
  deleteProfile(name: string): Promise<boolean>;
  listInventoryNodes(): Promise<InventoryNode[]>;
  getInventoryNode(name: string): Promise<InventoryNode | undefined>;
  /** The node with an interface of this MAC (normalized, lower case). */
  inventoryNodeByMac(mac: string): Promise<InventoryNode | undefined>;
  /** create: every name must be new (PROVISION_EXISTS names the first taken); replace: every one must exist. */
  putInventoryNodes(nodes: readonly InventoryNode[], mode: 'create' | 'replace'): Promise<void>;
  /** How many were deleted (their boot status goes with them). */
  deleteInventoryNodes(names: readonly string[]): Promise<number>;
  getBootStatus(name: string): Promise<BootStatus | undefined>;
  listBootStatus(): Promise<Map<string, BootStatus>>;
  /** Merge into the node's status (made when it has none); a node not in the inventory is ignored. */
  patchBootStatus(name: string, patch: Partial<BootStatus>): Promise<void>;
}
