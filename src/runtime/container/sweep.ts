// Recovery after a crash: a Warren process that died (killed, power cut of the agent,
// out of memory) leaves its containers running, image mounts, cgroups and bundles
// behind. Container ids carry the pid of the Warren process that made them
// (`w-<pid>-...`); the next runtime on the same state directory removes everything whose
// owner is gone, before its first launch.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TaskCgroup, type CgroupInfo } from './cgroups.js';
import { run, type SquashfsTools } from './rootfs.js';
import { pidAlive } from '../../common/index.js';

const OWNED = /^w-(\d+)-/;


function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or under `dir`, deepest first, with their file system type. */
export function mountsUnder(dir: string): { path: string; fstype: string }[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: { path: string; fstype: string }[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10) continue;
    const path = unescapeMountPath(f[4]!);
    const fstype = f[f.indexOf('-') + 1] ?? '';
    if (path === dir || path.startsWith(`${dir}/`)) out.push({ path, fstype });
  }
  return out.sort((a, b) => b.path.length - a.path.length);
}

/** Remove what dead Warren processes left in `stateDir`. Returns the container ids swept. Never throws. */
export async function sweepStale(opts: { stateDir: string; runc?: string; tools: SquashfsTools; cgroups: CgroupInfo }): Promise<string[]> {
  const bundles = join(opts.stateDir, 'bundles');
  const runcRoot = join(opts.stateDir, 'runc');
  const list = (d: string): string[] => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  const dead = new Set<string>();
  for (const name of [...list(bundles), ...list(runcRoot)]) {
    const m = OWNED.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !pidAlive(pid)) dead.add(name);
  }
  for (const cid of dead) {
    try {
      if (opts.runc && existsSync(join(runcRoot, cid))) await run(opts.runc, ['--root', runcRoot, 'delete', '-f', cid], 30_000);
      const bundle = join(bundles, cid);
      for (const m of mountsUnder(bundle)) {
        if (m.fstype.startsWith('fuse') && opts.tools.fusermount) await run(opts.tools.fusermount, ['-u', '-z', m.path], 30_000);
        else if (opts.tools.umount) await run(opts.tools.umount, ['-l', m.path], 30_000);
      }
      if (opts.cgroups.mode !== 'none') {
        // Killed processes take a moment to leave their cgroup: retry for up to 2 s.
        const cg = new TaskCgroup(opts.cgroups, cid);
        for (let i = 0; i < 40 && !cg.remove(); i++) await new Promise((r) => setTimeout(r, 50));
      }
      if (mountsUnder(bundle).length === 0) rmSync(bundle, { recursive: true, force: true });
    } catch {
      /* best effort: the next sweep tries again */
    }
  }
  // Decrypted images of encrypted SIFs (src/image/sif/open.ts): as root the private tmpfs is under
  // the bundle (unmounted above); as another user, and for `warren exec`, it is a `w-<pid>-…`
  // directory in /dev/shm or $WARREN_HOME/run/crypt.
  try {
    await (await import('../../image/index.js')).sweepDecryptScratch();
  } catch {
    /* best effort */
  }
  return [...dead];
}
