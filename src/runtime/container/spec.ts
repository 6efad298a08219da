// Pure generation of the OCI runtime config (config.json) that runc runs. No I/O here:
// everything the runtime learned about the node (cgroup mode, GPU devices and driver
// libraries, rootless or not) comes in through `OciSpecInput`.
//
// Reference: OCI runtime spec 1.0.2 (the version runc 1.1 implements).

import { posix } from 'node:path';
import type { BindMount } from '../types.js';

export const OCI_VERSION = '1.0.2';
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_SHM_BYTES = 64 * 2 ** 20;
/** Where the NVIDIA driver's libraries and tools appear inside a container. */
export const GPU_LIB_DIR = '/.warren/nvidia/lib';
export const GPU_BIN_DIR = '/.warren/nvidia/bin';
const CPU_PERIOD_US = 100_000;

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciDevice {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface OciDeviceRule {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number;
  minor?: number;
  access?: string;
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; ambient: string[] };
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    uidMappings?: OciIdMapping[];
    gidMappings?: OciIdMapping[];
    cgroupsPath?: string;
    resources?: {
      devices?: OciDeviceRule[];
      memory?: { limit?: number; swap?: number };
      cpu?: { quota?: number; period?: number };
    };
    devices?: OciDevice[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/** An NVIDIA device node found on the node (`/dev/nvidia0`, `/dev/nvidiactl`, ...). */
export interface GpuDeviceNode {
  path: string;
  major: number;
  minor: number;
  fileMode: number;
}

/** What the runtime passes through for allocated GPUs (see gpu.ts for discovery). */
export interface GpuPassthrough {
  /** Device nodes: the allocated /dev/nvidiaN plus the control devices. */
  devices: GpuDeviceNode[];
  /** Driver libraries: name as the loader knows it (`libcuda.so.1`) -> file on the node. */
  libraries: { name: string; path: string }[];
  /** Driver tools (nvidia-smi, ...): name -> file on the node. */
  binaries: { name: string; path: string }[];
  /** Value for CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES (GPU UUIDs when known). */
  visibleDevices: string;
}

export interface OciSpecInput {
  /** Absolute path of the root file system on the node. */
  rootfs: string;
  argv: string[];
  /** `KEY=VALUE` list, already merged (image, then job); PATH is added when missing. */
  env: string[];
  cwd: string;
  /** Process uid/gid inside the container. */
  uid: number;
  gid: number;
  /** Root inside: gets the minimal default capability set; anyone else gets none. */
  asRoot: boolean;
  hostname: string;
  mounts: BindMount[];
  shmBytes: number;
  isolateNetwork: boolean;
  /**
   * Rootless: the node user that owns the container; the user namespace maps it (alone)
   * to `uid`/`gid` inside. runc needs that to be 0 (it must own the container's stdio
   * pipes), so rootless jobs run as root inside, which is the user outside.
   */
  rootless?: { hostUid: number; hostGid: number };
  /** Where runc puts the container in the cgroup tree; omitted: runc's default / none. */
  cgroupsPath?: string;
  /** Limits runc sets on the container's own cgroup. */
  resources?: { memoryBytes?: number; limitSwap?: boolean; cores?: number };
  gpu?: GpuPassthrough;
  /** Node files bound read-only at the same path (e.g. /etc/resolv.conf, /etc/hosts when the job shares the node's network). */
  nodeFiles?: string[];
  /**
   * The node's admin allows setuid inside containers (policy `allow-setuid: true`): the
   * root is mounted without nosuid and no_new_privs is off. Default: root `nosuid,nodev`.
   */
  allowSetuid?: boolean;
  /** The root stays writable (image builds: %post writes into the tree); default read-only. */
  writableRoot?: boolean;
}

/**
 * Options of the container's root mount. OCI 1.0.2 has no mount options for `root`, and
 * runc's remount for `root.readonly` replaces the root's flags (nosuid and nodev would be
 * lost). So: the first mount binds `rootfs` onto `/` with these flags (writable, so runc can
 * still create mount points, as before), `root.readonly` is false, and `/` is the first
 * of `linux.readonlyPaths`, which runc remounts read-only keeping nosuid/nodev/noexec.
 */
export function rootMountOptions(allowSetuid: boolean): string[] {
  return allowSetuid ? ['rbind', 'nodev'] : ['rbind', 'nosuid', 'nodev'];
}

/** Docker's default capabilities: root inside ad-hoc containers and image builds (what package managers need). */
export const DOCKER_DEFAULT_CAPABILITIES = [
  'CAP_AUDIT_WRITE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_MKNOD',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_RAW',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

/** The minimal capability set for root inside (runc's own defaults). */
export const ROOT_CAPABILITIES = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** A hostname the kernel and resolvers accept: [a-z0-9-], 1..63 chars. */
export function sanitizeHostname(name: string): string {
  const h = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/g, '');
  return h || 'warren';
}

/** Merge `KEY=VALUE` lists: later entries win, order of first appearance kept. */
export function mergeEnv(...lists: (string[] | Record<string, string>)[]): string[] {
  const m = new Map<string, string>();
  for (const l of lists) {
    const entries = Array.isArray(l)
      ? l.map((kv) => {
          const i = kv.indexOf('=');
          return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
        })
      : Object.entries(l);
    for (const [k, v] of entries) if (k) m.set(k!, v!);
  }
  return [...m].map(([k, v]) => `${k}=${v}`);
}

/** Normalized absolute container path without a trailing slash. */
export function cleanTarget(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/** `path` is `dir` or inside it (both normalized, absolute). */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/**
 * The OCI runtime config for one container. Pure: the same input gives the same output.
 * Mount order: system mounts (/proc, /dev, /sys, /tmp, ...), then GPU files, then the
 * job's bind mounts by path depth (so a mount inside another lands on top of it).
 */
export function buildOciSpec(input: OciSpecInput): OciSpec {
  const rootless = input.rootless !== undefined;
  const userTargets = new Set(input.mounts.map((m) => cleanTarget(m.target)));
  const allowSetuid = input.allowSetuid === true;
  const mounts: OciMount[] = [
    // The root itself first (everything else is mounted on top of it): see rootMountOptions.
    { destination: '/', type: 'none', source: input.rootfs, options: rootMountOptions(allowSetuid) },
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: rootless ? ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] : ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
  if (!userTargets.has('/dev/shm')) {
    mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${Math.max(4096, Math.round(input.shmBytes))}`] });
  }
  // sysfs can only be mounted by a process that owns the network namespace; a rootless
  // container that shares the node's network binds the node's /sys read-only instead.
  if (rootless && !input.isolateNetwork) {
    mounts.push({ destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
  } else {
    mounts.push({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
  }
  // The job's own cgroup, read-only (so it can see its limits); rootless has none of its own.
  if (!rootless) mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
  if (!userTargets.has('/tmp')) {
    mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
  }

  const env = [...input.env];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(`PATH=${DEFAULT_PATH}`);
  const devices: OciDevice[] = [];
  const deviceRules: OciDeviceRule[] = [];
  if (input.gpu) {
    const g = input.gpu;
    for (const d of g.devices) {
      devices.push({ path: d.path, type: 'c', major: d.major, minor: d.minor, fileMode: d.fileMode, uid: 0, gid: 0 });
      deviceRules.push({ allow: true, type: 'c', major: d.major, minor: d.minor, access: 'rwm' });
    }
    for (const l of g.libraries) {
      mounts.push({ destination: `${GPU_LIB_DIR}/${l.name}`, type: 'none', source: l.path, options: ['bind', 'ro', 'nosuid', 'nodev'] });
    }
    for (const b of g.binaries) {
      mounts.push({ destination: `${GPU_BIN_DIR}/${b.name}`, type: 'none', source: b.path, options: ['bind', 'ro', 'nosuid', 'nodev'] });
    }
    const merged = mergeEnv(env, { CUDA_VISIBLE_DEVICES: g.visibleDevices, NVIDIA_VISIBLE_DEVICES: g.visibleDevices });
    env.length = 0;
    env.push(...merged);
    const ld = env.findIndex((e) => e.startsWith('LD_LIBRARY_PATH='));
    if (g.libraries.length) {
      if (ld >= 0) env[ld] = `LD_LIBRARY_PATH=${env[ld]!.slice(16)}${env[ld]!.length > 16 ? ':' : ''}${GPU_LIB_DIR}`;
      else env.push(`LD_LIBRARY_PATH=${GPU_LIB_DIR}`);
    }
    if (g.binaries.length) {
      const p = env.findIndex((e) => e.startsWith('PATH='));
      if (p >= 0) env[p] = `${env[p]}:${GPU_BIN_DIR}`;
    }
  }

  for (const f of input.nodeFiles ?? []) {
    if (!userTargets.has(f)) mounts.push({ destination: f, type: 'none', source: f, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }

  const user = [...input.mounts]
    .map((m) => ({ ...m, target: cleanTarget(m.target) }))
    .sort((a, b) => a.target.split('/').length - b.target.split('/').length);
  for (const m of user) {
    mounts.push({ destination: m.target, type: 'none', source: m.host, options: ['rbind', m.readOnly ? 'ro' : 'rw', 'nosuid', 'nodev'] });
  }

  const namespaces: { type: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (input.isolateNetwork) namespaces.push({ type: 'network' });
  if (rootless) namespaces.push({ type: 'user' });

  const caps = input.asRoot ? ROOT_CAPABILITIES : [];
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user: { uid: input.uid, gid: input.gid },
      args: [...input.argv],
      env,
      cwd: input.cwd,
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps], ambient: [] },
      noNewPrivileges: !allowSetuid,
    },
    // Read-only through readonlyPaths['/'] (runc's remount for `readonly` would clear nosuid,nodev).
    root: { path: input.rootfs, readonly: false },
    hostname: sanitizeHostname(input.hostname),
    mounts,
    linux: {
      namespaces,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: input.writableRoot ? [...READONLY_PATHS] : ['/', ...READONLY_PATHS],
    },
  };
  if (input.rootless) {
    spec.linux.uidMappings = [{ containerID: input.uid, hostID: input.rootless.hostUid, size: 1 }];
    spec.linux.gidMappings = [{ containerID: input.gid, hostID: input.rootless.hostGid, size: 1 }];
  }
  if (input.cgroupsPath) spec.linux.cgroupsPath = input.cgroupsPath;
  const r = input.resources;
  const resources: NonNullable<OciSpec['linux']['resources']> = {};
  if (r?.memoryBytes !== undefined) {
    resources.memory = { limit: r.memoryBytes };
    // Swap equal to the limit: memory+swap may not exceed it, so the job cannot swap.
    if (r.limitSwap) resources.memory.swap = r.memoryBytes;
  }
  if (r?.cores !== undefined && r.cores > 0) resources.cpu = { quota: Math.max(1000, Math.round(r.cores * CPU_PERIOD_US)), period: CPU_PERIOD_US };
  if (deviceRules.length && !rootless) {
    // runc starts from its default allow-list (null, zero, tty, ...); add the GPUs.
    resources.devices = [{ allow: false, access: 'rwm' }, ...defaultDeviceRules(), ...deviceRules];
  }
  if (Object.keys(resources).length) spec.linux.resources = resources;
  if (devices.length) spec.linux.devices = devices;
  return spec;
}

/** runc's allowed default devices (null, zero, full, random, urandom, tty, ptmx, pts). */
function defaultDeviceRules(): OciDeviceRule[] {
  const c = (major: number, minor: number | undefined, access = 'rwm'): OciDeviceRule =>
    minor === undefined ? { allow: true, type: 'c', major, access } : { allow: true, type: 'c', major, minor, access };
  return [c(1, 3), c(1, 5), c(1, 7), c(1, 8), c(1, 9), c(5, 0), c(5, 1), c(5, 2), c(136, undefined)];
}

/**
 * Mount destinations of `spec` that must already exist in a read-only root file system:
 * those not inside an earlier kernel file system mount (tmpfs, sysfs, ...: runc creates
 * mount points in a tmpfs itself, and /sys/fs/cgroup is part of sysfs).
 */
export function mountpointsInRootfs(spec: OciSpec): string[] {
  const fsMounts: string[] = [];
  const out: string[] = [];
  for (const m of spec.mounts) {
    const covered = fsMounts.some((t) => t !== m.destination && isUnder(m.destination, t));
    if (!covered) out.push(m.destination);
    if (m.type && m.type !== 'none' && m.type !== 'bind') fsMounts.push(m.destination);
  }
  return out;
}
