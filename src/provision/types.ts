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
