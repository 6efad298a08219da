// cgroup handling around runc: which hierarchy the node has, a Warren-owned parent cgroup
// per task, and out-of-memory detection after the container ended.
//
// Why a parent cgroup: `runc run` removes the container's own cgroup as soon as the
// job exits, so its OOM counters are gone before we can read them. Warren therefore puts
// the container at `<parent>/ctr` and reads the parent afterwards:
//  - cgroup v2: runc sets memory.max on the container; memory.events `oom_kill` counts
//    propagate to ancestors, so the parent's counter is exact.
//  - cgroup v1: OOM events do not propagate to parents, so Warren sets the memory limit
//    (and memory+swap) on the parent itself; its `failcnt` then shows the limit was hit.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CGROUP2_SUPER_MAGIC = 0x63677270;
export const CGROUP_ROOT = '/sys/fs/cgroup';

export interface CgroupInfo {
  mode: 'v1' | 'v2' | 'none';
  /** v1: memory+swap accounting is available (memory.memsw.*). v2: memory.swap.max exists. */
  swapAccounting: boolean;
}

let cached: CgroupInfo | undefined;

/** The cgroup layout runc will use on this node (hybrid v1+v2 counts as v1, as for runc). */
export function detectCgroups(root = CGROUP_ROOT): CgroupInfo {
  if (cached && root === CGROUP_ROOT) return cached;
  let info: CgroupInfo = { mode: 'none', swapAccounting: false };
  try {
    if (statfsSync(root).type === CGROUP2_SUPER_MAGIC) {
      // memory.swap.max exists in non-root cgroups when swap accounting is on.
      let swap = false;
      for (const e of readdirSync(root, { withFileTypes: true })) {
        if (e.isDirectory() && existsSync(join(root, e.name, 'memory.max'))) {
          swap = existsSync(join(root, e.name, 'memory.swap.max'));
          break;
        }
      }
      info = { mode: 'v2', swapAccounting: swap };
    } else if (existsSync(join(root, 'memory', 'memory.limit_in_bytes'))) {
      info = { mode: 'v1', swapAccounting: existsSync(join(root, 'memory', 'memory.memsw.limit_in_bytes')) };
    }
  } catch {
    /* no cgroup file system */
  }
  if (root === CGROUP_ROOT) cached = info;
  return info;
}

/** A Warren-owned parent cgroup for one container (root only). */
export class TaskCgroup {
  /** Relative path under each hierarchy, e.g. `warren/<id>`. */
  readonly rel: string;
  /** The container's cgroupsPath for runc (absolute within the hierarchy). */
  readonly containerPath: string;
  private created: string[] = [];

  constructor(
    readonly info: CgroupInfo,
    name: string,
    private readonly root = CGROUP_ROOT,
  ) {
    this.rel = `warren/${name}`;
    this.containerPath = `/${this.rel}/ctr`;
  }

  /** v1 only: create the parent memory cgroup with the limit. */
  setupV1Memory(limitBytes: number): void {
    const dir = join(this.root, 'memory', this.rel);
    mkdirSync(dir, { recursive: true });
    this.created.push(dir);
    writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
    if (this.info.swapAccounting) writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
  }

  /**
   * After the container ended: did it run out of memory? `limitHits` (v1): failed charges,
   * or the peak usage reached the limit (recent kernels no longer count failcnt for every
   * hierarchy, so the peak is the dependable signal: usage never passes the limit, and
   * reclaim failing within one page of it is what triggers the OOM killer).
   */
  oomCheck(limitBytes = 0): { oomKills: number; limitHits: number } {
    if (this.info.mode === 'v2') {
      const ev = readKv(join(this.root, this.rel, 'memory.events'));
      return { oomKills: ev.oom_kill ?? 0, limitHits: ev.max ?? 0 };
    }
    if (this.info.mode === 'v1') {
      const dir = join(this.root, 'memory', this.rel);
      let fail = readNum(join(dir, 'memory.failcnt')) + readNum(join(dir, 'memory.memsw.failcnt'));
      const peak = Math.max(readNum(join(dir, 'memory.max_usage_in_bytes')), readNum(join(dir, 'memory.memsw.max_usage_in_bytes')));
      if (limitBytes > 0 && peak >= limitBytes - Math.min(2 ** 20, limitBytes / 16)) fail++;
      const oc = readKv(join(dir, 'memory.oom_control'));
      return { oomKills: oc.oom_kill ?? 0, limitHits: fail };
    }
    return { oomKills: 0, limitHits: 0 };
  }

  /** Remove the parent cgroup in every hierarchy (runc already removed `ctr`). Never throws; false if some remain (busy). */
  remove(): boolean {
    const dirs = new Set<string>(this.created);
    if (this.info.mode === 'v2') dirs.add(join(this.root, this.rel));
    else if (this.info.mode === 'v1') {
      let ctrls: string[] = [];
      try {
        ctrls = readdirSync(this.root);
      } catch {
        /* none */
      }
      for (const c of ctrls) dirs.add(join(this.root, c, this.rel));
    }
    let all = true;
    for (const d of dirs) {
      // The container's own cgroup normally is gone; remove it too in case runc died.
      for (const sub of [join(d, 'ctr'), d]) {
        try {
          rmdirSync(sub);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') all = false;
        }
      }
    }
    return all;
  }
}

function readNum(p: string): number {
  try {
    return Number(readFileSync(p, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function readKv(p: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync(p, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined) out[k] = Number(v);
    }
  } catch {
    /* gone */
  }
  return out;
}
