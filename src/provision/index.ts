// Provisioning (issue 13): the inventory of nodes and profiles, node images built from container
// images, overlays rendered per node, and the boot service's pure parts.
export type { NetDevice, ProvisionFields, ProfileRecord, InventoryNode, Origin, ResolvedNode, BootStatus, InventoryStore } from './types.js';
export { MAX_RANGE, checkName, expandRange, normalizeMac, parseIp, nthAddress, nthMac, resolveNode } from './inventory.js';
export { packCpioGz } from './archive.js';
export type { PackOptions, PackResult } from './archive.js';
export { addNodes, setNodes, deleteNodes, listNodeViews, addProfile, setProfile, deleteProfile, rangeNames, withDefaults, FIELD_DEFAULTS } from './manage.js';
export type { FieldChanges, NodeChangeRequest, ProfileChangeRequest, InventoryNodeView } from './manage.js';
export { buildNodeImage, findNodeImage, listNodeImages, removeNodeImages, nodeImagesDir, canonicalSource, treeIdentity, sifIdentity, imageKernels, compareKernelVersions, ROOTFS_EXCLUDE } from './nodeimage.js';
export type { NodeImage, BuildNodeImageOptions } from './nodeimage.js';
