// A real OpenMPI image for the multinode container test, made of this machine's own files:
// mpirun, orted, their plugins (OpenMPI's and PMIx's), help texts and configuration, a shell,
// the test program, and every shared library they load (ldd); pushed with Warren's own push
// code to a test registry.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { buildLayer, pushImage, type LayerEntry } from '../../src/image/oci/index.js';

const TREES = ['/usr/lib/x86_64-linux-gnu/openmpi', '/usr/lib/x86_64-linux-gnu/pmix2', '/usr/share/openmpi', '/usr/share/pmix', '/etc/openmpi', '/usr/lib/x86_64-linux-gnu/hwloc'];
const PROGRAMS = ['/usr/bin/orterun', '/usr/bin/orted', '/usr/bin/dash', '/usr/bin/cat', '/usr/bin/test'];

function walk(p: string, out: Set<string>): void {
  if (!existsSync(p) && !isLink(p)) return;
  out.add(p);
  const st = lstatSync(p);
  if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e), out);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The libraries an ELF file loads (absolute paths), from ldd. */
function libsOf(file: string): string[] {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  const out: string[] = [];
  for (const l of r.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(l) ?? /^\s+(\/\S+)\s+\(/.exec(l);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Push the image to `uri` (docker://host/repo:tag); `program` goes to /opt/<its name>. */
export async function pushOpenMpiImage(uri: string, program: string): Promise<void> {
  const files = new Set<string>();
  for (const t of TREES) walk(t, files);
  const elves = [...PROGRAMS, program, ...[...files].filter((f) => f.endsWith('.so') && !isLink(f))];
  for (const p of PROGRAMS) files.add(p);
  for (const e of elves) {
    for (const lib of libsOf(e)) {
      // Under its real directory (/lib64 is a link to usr/lib64 here); a name that is a link
      // to its real file: both go in.
      files.add(join(realpathSync(dirname(lib)), basename(lib)));
      files.add(realpathSync(lib));
    }
  }
  // Every parent directory, once.
  const dirs = new Set<string>();
  for (const f of files) for (let d = dirname(f); d !== '/'; d = dirname(d)) dirs.add(d);
  const entries: LayerEntry[] = [];
  for (const d of [...dirs].sort()) entries.push({ name: `${d.slice(1)}/`, type: 'directory' });
  for (const f of [...files].sort()) {
    if (dirs.has(f)) continue;
    const st = lstatSync(f);
    if (st.isSymbolicLink()) entries.push({ name: f.slice(1), type: 'symlink', linkname: readlinkSync(f) });
    else if (st.isFile()) entries.push({ name: f.slice(1), data: readFileSync(f), mode: st.mode & 0o7777 });
  }
  // Debian's merged /usr: /bin and /lib are links; the loader is looked up at /lib64.
  entries.push({ name: 'bin', type: 'symlink', linkname: 'usr/bin' }, { name: 'lib', type: 'symlink', linkname: 'usr/lib' }, { name: 'lib64', type: 'symlink', linkname: 'usr/lib64' }, { name: 'sbin', type: 'symlink', linkname: 'usr/sbin' });
  entries.push({ name: 'usr/bin/sh', type: 'symlink', linkname: 'dash' }, { name: 'usr/bin/mpirun', type: 'symlink', linkname: 'orterun' });
  entries.push({ name: 'opt/', type: 'directory' }, { name: `opt/${program.split('/').pop()}`, data: readFileSync(program), mode: 0o755 });
  entries.push({ name: 'tmp/', type: 'directory', mode: 0o1777 }, { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\n' }, { name: 'etc/group', data: 'root:x:0:\n' }, { name: 'root/', type: 'directory' });
  // Directories may repeat (etc/ from the trees): keep the first of each name.
  const seen = new Set<string>();
  const unique = entries.filter((e) => (seen.has(e.name) ? false : (seen.add(e.name), true)));
  const layer = await buildLayer(unique, 'gzip');
  await pushImage(uri, {
    config: { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/usr/bin:/bin'], WorkingDir: '/tmp' }, rootfs: { type: 'layers', diff_ids: [layer.diffId] } },
    layers: [{ mediaType: layer.mediaType, data: layer.data }],
  });
}
