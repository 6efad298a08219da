// Public API of the container runtime (runc): see docs/containers.md.
export { createContainerRuntime, defaultContainerRuntime, runcMissing, checkBindsAndOverlays } from './runtime.js';
export type { ContainerImage, ContainerRuntimeOptions, PrepareImageFn } from './runtime.js';
export { buildOciSpec, rootMountOptions, mergeEnv, sanitizeHostname, mountpointsInRootfs, DEFAULT_SHM_BYTES, DEFAULT_PATH, GPU_LIB_DIR, GPU_BIN_DIR, ROOT_CAPABILITIES } from './spec.js';
export type { OciSpec, OciSpecInput, OciMount, GpuPassthrough, GpuDeviceNode } from './spec.js';
export { discoverGpus, parseLdconfig, parseGpuUuids, gpuDevices } from './gpu.js';
export { detectCgroups } from './cgroups.js';
export type { CgroupInfo } from './cgroups.js';
export { checkSquashfs, locateSquashfs, findExecutable, defaultToolPath, run as runTool } from './rootfs.js';
export type { SquashfsLocation } from './rootfs.js';
export { sweepStale } from './sweep.js';
export { classifyExit } from './exit.js';
export type { ExitFacts } from './exit.js';
export { runAdhoc, userIdHelper, adhocRunDir, releaseIdleMounts } from './adhoc.js';
export type { AdhocAction, AdhocRequest } from './adhoc.js';
export { buildAdhocSpec, parseBinds, parseOverlay, parseEnvFile, parseEnvArg, adhocEnv, actionWrapper, passwdWithCaller, ADHOC_ROOT_CAPABILITIES } from './adhoc-spec.js';
export type { AdhocBind, AdhocOverlay, AdhocSpecInput, AdhocEnvInput } from './adhoc-spec.js';
