// Provisioning (issue 13): the inventory of nodes and profiles, node images built from container
// images, overlays rendered per node, and the boot service's pure parts.
export type { NetDevice, ProvisionFields, ProfileRecord, InventoryNode, Origin, ResolvedNode, BootStatus, InventoryStore } from './types.js';
export { MAX_RANGE, checkName, expandRange, normalizeMac, parseIp, nthAddress, nthMac, resolveNode, withProvisionDefaults, DEFAULT_KERNEL_ARGS, DEFAULT_RUNTIME_OVERLAYS, DEFAULT_SYSTEM_OVERLAYS } from './inventory.js';
export { packCpioGz } from './archive.js';
export type { PackOptions, PackResult } from './archive.js';
export { addNodes, setNodes, deleteNodes, listNodeViews, addProfile, setProfile, deleteProfile } from './manage.js';
export { duplicateError, existsError, notFoundError, profileInUseError, profileUnknownError } from './errors.js';
export type { FieldChanges, NodeChangeRequest, ProfileChangeRequest, InventoryNodeView } from './manage.js';
export {
  MODES_FILE, TOKEN_PLACEHOLDER,
  buildNodeOverlays, buildOverlayArchive, builtinOverlaysDir, checkOverlayName, checkTemplateSyntax, deleteOverlay, ensureUserOverlay,
  importIntoOverlay, listOverlays, overlayContexts, previewServer, overlayDir, overlayEntries, overlayKey, overlayPath, removeRendered, renderOverlayFile, renderedDir,
  templateDataOf, userFileForEdit, userOverlaysDir,
} from './overlay.js';
export type { BuildOverlayOptions, NodeOverlayBuild, OverlayArchive, OverlayContext, OverlayEntry, OverlayInfo } from './overlay.js';
export { buildNodeImage, findNodeImage, listNodeImages, removeNodeImages, nodeImagesDir, canonicalSource, treeIdentity, sifIdentity, imageKernels, compareKernelVersions, ROOTFS_EXCLUDE } from './nodeimage.js';
export type { NodeImage, BuildNodeImageOptions } from './nodeimage.js';
