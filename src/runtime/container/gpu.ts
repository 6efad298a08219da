// NVIDIA GPU pass-through, as Apptainer's `--nv` does: the allocated /dev/nvidiaN device
// nodes plus the control devices, the driver's user-space libraries (from the loader
// cache) and tools, bound read-only into the container. Discovery is I/O; the result is a
// plain `GpuPassthrough` that the pure spec builder turns into config.
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { WarrenError } from '../../common/index.js';
import type { GpuDeviceNode, GpuPassthrough } from './spec.js';
import { findExecutable } from './rootfs.js';

/** Libraries of the NVIDIA driver that CUDA, NVML, OpenCL and video codecs load. */
export const GPU_LIBRARY_PATTERN = /^(libcuda\.so|libcudadebugger\.so|libnvidia[-_.]|libnvcuvid\.so|libnvoptix\.so|libGLX_nvidia\.so|libEGL_nvidia\.so|libGLESv1_CM_nvidia\.so|libGLESv2_nvidia\.so)/;
export const GPU_BINARIES = ['nvidia-smi', 'nvidia-debugdump', 'nvidia-persistenced', 'nvidia-cuda-mps-control', 'nvidia-cuda-mps-server'];
const CONTROL_DEVICES = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidia-modeset'];

/**
 * Parse `ldconfig -p` output: the driver libraries for this machine's ABI, first entry per
 * name (ldconfig lists the preferred one first). Pure.
 */
export function parseLdconfig(text: string, abi = process.arch === 'arm64' ? 'AArch64' : 'x86-64'): { name: string; path: string }[] {
  const seen = new Set<string>();
  const out: { name: string; path: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    const [, name, flags, path] = m as unknown as [string, string, string, string];
    if (!GPU_LIBRARY_PATTERN.test(name)) continue;
    // 64-bit entries carry the ABI (e.g. "libc6,x86-64"); 32-bit ones do not.
    if (!flags.includes(abi)) continue;
    if (seen.has(name)) continue;
    seen.add(name);
    out.push({ name, path });
  }
  return out;
}

/** Parse `nvidia-smi --query-gpu=index,uuid --format=csv,noheader`. Pure. */
export function parseGpuUuids(text: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [i, u] = line.split(',').map((s) => s.trim());
    if (i && u && /^\d+$/.test(i)) m.set(Number(i), u);
  }
  return m;
}

/** The device list and visible-devices value for the allocated GPUs. Pure. */
export function gpuDevices(gpus: number[], nodes: Map<string, { major: number; minor: number; mode: number }>, uuids: Map<number, string>): { devices: GpuDeviceNode[]; visible: string; missing: string[] } {
  const devices: GpuDeviceNode[] = [];
  const missing: string[] = [];
  for (const g of gpus) {
    const p = `/dev/nvidia${g}`;
    const n = nodes.get(p);
    if (!n) missing.push(p);
    else devices.push({ path: p, major: n.major, minor: n.minor, fileMode: n.mode });
  }
  for (const p of CONTROL_DEVICES) {
    const n = nodes.get(p);
    if (n) devices.push({ path: p, major: n.major, minor: n.minor, fileMode: n.mode });
  }
  // UUIDs name the same GPUs whatever numbering the container sees; else 0..n-1, which is
  // how CUDA numbers the devices it can open.
  const visible = gpus.every((g) => uuids.has(g)) ? gpus.map((g) => uuids.get(g)!).join(',') : gpus.map((_, i) => String(i)).join(',');
  return { devices, visible, missing };
}

function statDevice(p: string): { major: number; minor: number; mode: number } | undefined {
  try {
    const st = statSync(p, { bigint: true });
    if (!st.isCharacterDevice()) return undefined;
    // Linux dev_t (glibc's gnu_dev_major/minor).
    const rdev = st.rdev;
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    return { major, minor, mode: Number(st.mode & 0o777n) };
  } catch {
    return undefined;
  }
}

/** Find what to pass through for `gpus` on this node, or throw naming what is missing. */
export function discoverGpus(gpus: number[]): GpuPassthrough {
  const nodes = new Map<string, { major: number; minor: number; mode: number }>();
  for (const p of [...gpus.map((g) => `/dev/nvidia${g}`), ...CONTROL_DEVICES]) {
    const d = statDevice(p);
    if (d) nodes.set(p, d);
  }
  const smi = findExecutable('nvidia-smi');
  let uuids = new Map<number, string>();
  if (smi) {
    try {
      uuids = parseGpuUuids(execFileSync(smi, ['--query-gpu=index,uuid', '--format=csv,noheader'], { encoding: 'utf8', timeout: 20_000 }));
    } catch {
      /* numbering fallback */
    }
  }
  const { devices, visible, missing } = gpuDevices(gpus, nodes, uuids);
  if (missing.length || !nodes.has('/dev/nvidiactl')) {
    throw new WarrenError('RUNTIME_GPU_MISSING', `GPU device ${[...missing, ...(nodes.has('/dev/nvidiactl') ? [] : ['/dev/nvidiactl'])].join(', ')} not found on this node`, {
      hint: 'check that the NVIDIA driver is loaded (`nvidia-smi`) and that the node advertises only GPUs it has',
    });
  }
  let libraries: { name: string; path: string }[] = [];
  const ldconfig = findExecutable('ldconfig');
  if (ldconfig) {
    try {
      libraries = parseLdconfig(execFileSync(ldconfig, ['-p'], { encoding: 'utf8', timeout: 20_000 }))
        .filter((l) => existsSync(l.path))
        .map((l) => ({ name: l.name, path: realpathSync(l.path) }));
    } catch {
      /* none */
    }
  }
  if (!libraries.some((l) => l.name.startsWith('libcuda.') || l.name.startsWith('libnvidia-ml.'))) {
    throw new WarrenError('RUNTIME_GPU_DRIVER_LIBS', 'the NVIDIA driver libraries (libcuda, libnvidia-ml) are not in the loader cache of this node', {
      hint: 'install the NVIDIA driver user-space libraries and run `ldconfig`, then retry',
    });
  }
  const binaries = GPU_BINARIES.map((n) => ({ name: n, path: findExecutable(n) })).filter((b): b is { name: string; path: string } => !!b.path).map((b) => ({ name: basename(b.name), path: realpathSync(b.path) }));
  return { devices, libraries, binaries, visibleDevices: visible };
}
