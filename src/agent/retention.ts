// A node's retention (`warren agent --retain 7d --disk-budget 50GiB`): the I/O around the pure
// policy (./retention-policy.ts). A sweep looks at runs/<workflow id> under the node's home
// and at its image cache, asks the server which of those workflows ended (and when) or are
// gone (pruned there), asks the agent what its running and queued tasks use, and removes what
// the plan says. `forget(ids)` removes the run directories of workflows the server pruned
// (the server's order, sent with the long poll). Nothing a running or queued task uses is
// ever removed: that is checked again right before each removal.
//
// removeTree() and treeBytes() are also what the server and `warren prune` use for the run
// directories of the workflows they prune.

import { lstat, readdir, rm, stat, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { WorkflowStatus } from '../engine/index.js';
import { planRetention, type ImageFacts, type RetentionPlan, type RetentionPolicy, type RunDirFacts } from './retention-policy.js';

/** Bytes under `path` and its newest modification time (ms), walked asynchronously. */
export async function treeBytes(path: string): Promise<{ bytes: number; newest: number }> {
  let bytes = 0;
  let newest = 0;
  const walk = async (p: string): Promise<void> => {
    let st;
    try {
      st = await lstat(p);
    } catch {
      return;
    }
    if (!st.isDirectory()) bytes += st.size;
    newest = Math.max(newest, st.mtimeMs);
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = await readdir(p);
    } catch {
      return;
    }
    for (const n of names) await walk(join(p, n));
  };
  await walk(path);
  return { bytes, newest };
}

/** rm -rf that also works on trees with read-only directories (a job may leave them). Returns the bytes it freed. */
export async function removeTree(path: string): Promise<number> {
  if (!existsSync(path)) return 0;
  const { bytes } = await treeBytes(path);
  try {
    await rm(path, { recursive: true, force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw e;
    const writable = async (p: string): Promise<void> => {
      const st = await lstat(p).catch(() => null);
      if (!st?.isDirectory()) return;
      await chmod(p, 0o700).catch(() => {});
      for (const n of await readdir(p).catch(() => [] as string[])) await writable(join(p, n));
    };
    await writable(path);
    await rm(path, { recursive: true, force: true });
  }
  return bytes;
}

/** `dir` is strictly inside `root` (a run directory to remove must be one of ROOT/runs/<id>). */
export function isInside(root: string, dir: string): boolean {
  const r = resolve(root) + sep;
  const d = resolve(dir);
  return d.startsWith(r) && d.length > r.length;
}

/** What a node's tasks use now: their workflows (run directories) and images (URIs). */
export interface InUse {
  workflows: Set<string>;
  images: Set<string>;
}

export type WorkflowEnds = Map<string, { status: WorkflowStatus; endedAt: number | null }>;

export interface NodeRetentionOptions {
  /** The node's home ($WARREN_HOME / `warren agent --data`): runs/ is under it. */
  home: string;
  policy: RetentionPolicy;
  /** What the agent's running and queued tasks use (LocalAgent.inUse). */
  inUse: () => InUse;
  /** Ask the server about these workflows (at most 1000 a call); null: it cannot be asked now. */
  lookup: (ids: string[]) => Promise<WorkflowEnds | null>;
  /** The image cache (default: none is looked at). */
  imageCacheDir?: string;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  now?: () => number;
}

export interface SweepReport {
  plan: RetentionPlan;
  /** Run directories and images removed, bytes freed. */
  runs: string[];
  images: string[];
  bytesFreed: number;
  /** Chosen, but in use again by the time of the removal: kept. */
  spared: string[];
}

type ImageCacheLike = {
  list(): { digest: string; sizeBytes: number; lastUsed: string; createdAt: string; refs: { uri: string }[] }[];
  remove(ref: string): unknown;
  prune(): { bytes: number };
};

export class NodeRetention {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<SweepReport> | null = null;
  private readonly now: () => number;
  private readonly log: NonNullable<NodeRetentionOptions['log']>;

  constructor(private readonly o: NodeRetentionOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log ?? (() => {});
  }

  get runsDir(): string {
    return join(this.o.home, 'runs');
  }

  /** Sweep now, then every `intervalMs` (a failed sweep is logged and tried again then). */
  start(intervalMs: number): void {
    if (this.timer) return;
    const tick = (): void => {
      this.timer = setTimeout(() => {
        void this.sweep()
          .catch((e: unknown) => this.log('warn', `retention: the sweep failed: ${(e as Error).message} (trying again in ${Math.round(intervalMs / 1000)} s)`))
          .finally(() => {
            if (this.timer) tick();
          });
      }, intervalMs);
      this.timer.unref();
    };
    void this.sweep().catch((e: unknown) => this.log('warn', `retention: the sweep failed: ${(e as Error).message}`));
    tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sweeping?.catch(() => undefined);
  }

  /** One sweep (concurrent calls share one). */
  sweep(): Promise<SweepReport> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  /** The server pruned these workflows: remove their run directories now (unless a task of theirs is here). */
  async forget(ids: string[]): Promise<{ removed: string[]; bytesFreed: number }> {
    const out = { removed: [] as string[], bytesFreed: 0 };
    for (const id of ids) {
      const dir = join(this.runsDir, id);
      if (!isInside(this.runsDir, dir) || !existsSync(dir)) continue;
      if (this.o.inUse().workflows.has(id)) {
        this.log('warn', `retention: workflow ${id} was pruned by the server but a task of it is on this node: its run directory is kept`);
        continue;
      }
      out.bytesFreed += await removeTree(dir);
      out.removed.push(id);
    }
    if (out.removed.length) this.log('info', `retention: removed the run directories of ${out.removed.length} workflow(s) the server pruned (${out.bytesFreed} bytes)`);
    return out;
  }

  private async sweepOnce(): Promise<SweepReport> {
    const now = this.now();
    const budget = this.o.policy.budgetBytes !== null;
    const use = this.o.inUse();
    // The run directories and what the server says of each.
    const ids = existsSync(this.runsDir) ? (await readdir(this.runsDir)).filter((n) => !n.startsWith('.')) : [];
    const ends = new Map<string, { status: WorkflowStatus; endedAt: number | null }>();
    let asked = true;
    for (let i = 0; i < ids.length && asked; i += 1000) {
      const part = ids.slice(i, i + 1000);
      const r = await this.o.lookup(part).catch(() => null);
      if (!r) asked = false;
      else for (const [k, v] of r) ends.set(k, v);
    }
    const runs: RunDirFacts[] = [];
    for (const id of ids) {
      const dir = join(this.runsDir, id);
      const st = await stat(dir).catch(() => null);
      if (!st?.isDirectory()) continue;
      const measured = budget ? await treeBytes(dir) : { bytes: 0, newest: Math.max(st.mtimeMs, (await stat(join(dir, 'logs')).catch(() => null))?.mtimeMs ?? 0) };
      const e = ends.get(id);
      const server: RunDirFacts['server'] = !asked
        ? { state: 'unknown' }
        : !e
          ? { state: 'gone' }
          : e.status === 'running' || e.status === 'pending' || e.endedAt === null
            ? { state: 'live' }
            : { state: 'finished', endedAt: e.endedAt };
      runs.push({ id, bytes: measured.bytes, active: use.workflows.has(id), server, lastActivity: measured.newest });
    }
    // The image cache.
    let cache: ImageCacheLike | null = null;
    const images: ImageFacts[] = [];
    let norm = (u: string): string => u;
    if (this.o.imageCacheDir && existsSync(this.o.imageCacheDir)) {
      const { ImageCache, parseImageRef } = await import('../image/index.js');
      cache = new ImageCache(this.o.imageCacheDir) as unknown as ImageCacheLike;
      norm = (u: string): string => {
        try {
          return parseImageRef(u).uri;
        } catch {
          return u;
        }
      };
      const used = new Set([...use.images].map(norm));
      for (const img of cache.list()) {
        images.push({ digest: img.digest, bytes: img.sizeBytes, lastUsed: Date.parse(img.lastUsed) || Date.parse(img.createdAt) || 0, inUse: img.refs.some((r) => used.has(norm(r.uri))) });
      }
    }
    const plan = planRetention(now, runs, images, this.o.policy);
    const rep: SweepReport = { plan, runs: [], images: [], bytesFreed: 0, spared: [] };
    for (const img of plan.images) {
      // In use since the plan was made (a task just came): kept.
      const again = new Set([...this.o.inUse().images].map(norm));
      const entry = cache!.list().find((x) => x.digest === img.digest);
      if (!entry) continue;
      if (entry.refs.some((r) => again.has(norm(r.uri)))) {
        rep.spared.push(img.digest);
        continue;
      }
      cache!.remove(img.digest);
      rep.images.push(img.digest);
      rep.bytesFreed += img.bytes;
    }
    // The blobs only the removed images needed.
    if (rep.images.length) rep.bytesFreed += cache!.prune().bytes;
    for (const r of plan.runs) {
      if (this.o.inUse().workflows.has(r.id)) {
        rep.spared.push(r.id);
        continue;
      }
      rep.bytesFreed += await removeTree(join(this.runsDir, r.id));
      rep.runs.push(r.id);
    }
    if (rep.runs.length || rep.images.length) {
      const why = (xs: { reason: string }[]) => [...new Set(xs.map((x) => x.reason))].join(', ');
      this.log('info', `retention: removed ${rep.runs.length} run director${rep.runs.length === 1 ? 'y' : 'ies'} (${why(plan.runs)}) and ${rep.images.length} image(s) (${why(plan.images)}), ${rep.bytesFreed} bytes`);
    }
    if (plan.overBudget) this.log('warn', `retention: ${plan.bytesAfter} bytes of run directories and images are left, over the disk budget of ${this.o.policy.budgetBytes} bytes: what is left is in use by running work or of live workflows${asked ? '' : ' (the server could not be asked which runs ended)'}`);
    return rep;
  }
}
