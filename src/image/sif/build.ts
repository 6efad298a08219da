// `warren image build`: a SIF from a root file system directory. The directory becomes a
// squashfs (mksquashfs from Debian's squashfs-tools), the primary system partition of object
// group 1; the image configuration (env, entrypoint, cmd, working dir, user, labels) goes beside
// it in group 1 as a generic JSON object named `warren-image-config.json`, holding an OCI image
// configuration document, so signatures cover it too.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { WarrenError, EXIT } from '../../common/index.js';
import type { ImageConfig } from '../oci/index.js';
import { DataType, FsType, PartType, archCode, readObject, readSif, type SifImage } from './format.js';
import { createSif, partitionExtra, type ObjectInput } from './write.js';
import { isOciLayout, unpackOciLayout } from './ocilayout.js';

export const CONFIG_OBJECT_NAME = 'warren-image-config.json';
/** The image config Apptainer stores in its SIFs (a JSON.Generic object). */
export const APPTAINER_OCI_CONFIG = 'oci-config.json';

export interface BuildOptions {
  /** Root file system directory. */
  rootfs: string;
  /** Output .sif path. */
  out: string;
  config?: Partial<ImageConfig>;
  /** GOARCH of the image (default: this machine's). */
  arch?: string;
  /** Zero UUID and timestamps, squashfs times 0: the same input gives the same bytes. */
  deterministic?: boolean;
  /** squashfs compression (default gzip, readable by every kernel and squashfuse). */
  compression?: 'gzip' | 'zstd' | 'xz' | 'lz4' | 'lzo';
  /** PATH used to find mksquashfs (default: $PATH plus the sbin directories). */
  toolPath?: string;
  /** Name of the source in messages. */
  source?: string;
  /**
   * Objects written before the partition, in group 1 (definition-file builds: Apptainer's
   * Def.FILE, `inspect-metadata.json` and `oci-config.json`).
   */
  objects?: ObjectInput[];
  /** Write `warren-image-config.json` (default true; false when `objects` carries the config). */
  configObject?: boolean;
}

export interface BuildResult {
  out: string;
  size: number;
  partitionSize: number;
  config: ImageConfig;
}

function findTool(name: string, path: string): string | undefined {
  for (const d of path.split(delimiter).filter(Boolean)) {
    const c = join(d, name);
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function defaultToolPath(): string {
  return [process.env.PATH ?? '', '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin'].filter(Boolean).join(delimiter);
}

function runTool(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20, timeout: 3_600_000 }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stderr: String(stderr || (err && !stderr ? err.message : '')) });
    });
  });
}

function normalizeConfig(c: Partial<ImageConfig> | undefined): ImageConfig {
  const out: ImageConfig = { env: [...(c?.env ?? [])], labels: { ...(c?.labels ?? {}) } };
  if (c?.entrypoint?.length) out.entrypoint = [...c.entrypoint];
  if (c?.cmd?.length) out.cmd = [...c.cmd];
  if (c?.workingDir) out.workingDir = c.workingDir;
  if (c?.user) out.user = c.user;
  return out;
}

/** The OCI image configuration document stored in the SIF. */
export function configDocument(c: ImageConfig, arch: string, deterministic: boolean): Buffer {
  const config: Record<string, unknown> = { Env: c.env };
  if (c.entrypoint) config.Entrypoint = c.entrypoint;
  if (c.cmd) config.Cmd = c.cmd;
  if (c.workingDir) config.WorkingDir = c.workingDir;
  if (c.user) config.User = c.user;
  if (Object.keys(c.labels).length) config.Labels = c.labels;
  const doc: Record<string, unknown> = { architecture: arch, os: 'linux', config };
  if (!deterministic) doc.created = new Date().toISOString();
  return Buffer.from(JSON.stringify(doc, null, 2) + '\n', 'utf8');
}

/** Build a SIF from a root file system directory. */
export async function buildSif(opts: BuildOptions): Promise<BuildResult> {
  const source = opts.source ?? opts.rootfs;
  let st;
  try {
    st = statSync(opts.rootfs);
  } catch {
    throw new WarrenError('SIF_SOURCE_INVALID', `build source ${source} does not exist`, {
      hint: 'give a root file system directory or an image reference (docker://NAME:TAG)',
    });
  }
  if (!st.isDirectory()) {
    throw new WarrenError('SIF_SOURCE_INVALID', `build source ${source} is not a directory`, {
      hint: 'give a root file system directory or an image reference (docker://NAME:TAG)',
    });
  }
  if (isOciLayout(opts.rootfs)) {
    throw new WarrenError('SIF_SOURCE_INVALID', `build source ${source} is an OCI image layout, not a root file system`, {
      hint: 'build it with `warren image build oci:DIR[:TAG] -o OUT.sif` (buildSifFromOciLayout), or give an unpacked root file system',
    });
  }
  if (!existsSync(dirname(opts.out)) || !statSync(dirname(opts.out)).isDirectory()) {
    throw new WarrenError('SIF_OUTPUT_INVALID', `output directory ${dirname(opts.out)} does not exist`, { hint: 'create the directory or give another -o path' });
  }
  const mksquashfs = findTool('mksquashfs', opts.toolPath ?? defaultToolPath());
  if (!mksquashfs) {
    throw new WarrenError('SIF_SQUASHFS_TOOLS_MISSING', `cannot build image ${opts.out} from ${source}: mksquashfs is not installed`, {
      hint: 'install squashfs-tools (`apt-get install squashfs-tools`), then build again',
    });
  }
  const arch = opts.arch ?? ({ x64: 'amd64', ia32: '386' } as Record<string, string>)[process.arch] ?? process.arch;
  const config = normalizeConfig(opts.config);
  const sqfs = join(dirname(opts.out), `.${basename(opts.out)}.${randomBytes(4).toString('hex')}.squashfs`);
  try {
    const args = [opts.rootfs, sqfs, '-noappend', '-no-progress', '-quiet', '-comp', opts.compression ?? 'gzip'];
    if (typeof process.getuid === 'function' && process.getuid() !== 0) args.push('-all-root');
    if (opts.deterministic) args.push('-mkfs-time', '0', '-all-time', '0');
    const r = await runTool(mksquashfs, args);
    if (r.code !== 0 || !existsSync(sqfs)) {
      throw new WarrenError('SIF_BUILD_FAILED', `building image ${opts.out} from ${source} failed: mksquashfs exited with ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`, {
        hint: 'check that the directory is readable (run as root for files only root can read) and that there is space for the image',
      });
    }
    const partitionSize = statSync(sqfs).size;
    await createSif(
      opts.out,
      [
        ...(opts.objects ?? []),
        ...(opts.configObject === false ? [] : [{ dataType: DataType.GenericJSON, groupId: 1, name: CONFIG_OBJECT_NAME, data: configDocument(config, arch, opts.deterministic === true) }]),
        { dataType: DataType.Partition, groupId: 1, extra: partitionExtra(FsType.Squashfs, PartType.PrimSys, archCode(arch)), data: { file: sqfs, offset: 0, size: partitionSize } },
      ],
      { deterministic: opts.deterministic === true },
    );
    return { out: opts.out, size: statSync(opts.out).size, partitionSize, config };
  } finally {
    rmSync(sqfs, { force: true });
  }
}

/**
 * The image configuration stored in a SIF: Warren's `warren-image-config.json`, else an OCI
 * image configuration blob; undefined when the image has neither (e.g. built by Apptainer).
 */
export function readImageConfig(path: string, image = path): ImageConfig | undefined {
  const img: SifImage = readSif(path, image);
  const candidates = [
    ...img.descriptors.filter((d) => d.dataType === DataType.GenericJSON && d.name === CONFIG_OBJECT_NAME),
    ...img.descriptors.filter((d) => d.dataType === DataType.OCIBlob && d.size < 4 << 20),
    // Apptainer's `oci-config.json`: the OCI config object itself ({"Env": [...], "Cmd": [...]}).
    ...img.descriptors.filter((d) => d.dataType === DataType.GenericJSON && d.name === APPTAINER_OCI_CONFIG && d.size < 4 << 20),
  ];
  for (const d of candidates) {
    let doc: { config?: Record<string, unknown>; rootfs?: unknown } | undefined;
    try {
      doc = JSON.parse(readObject(img, d).toString('utf8')) as typeof doc;
    } catch {
      continue;
    }
    if (!doc || typeof doc !== 'object' || (d.dataType === DataType.OCIBlob && !doc.rootfs && !doc.config)) continue;
    const c = (d.name === APPTAINER_OCI_CONFIG && d.dataType === DataType.GenericJSON ? doc : (doc.config ?? {})) as Record<string, unknown>;
    const out: ImageConfig = { env: Array.isArray(c.Env) ? c.Env.map(String) : [], labels: {} };
    if (Array.isArray(c.Entrypoint) && c.Entrypoint.length) out.entrypoint = c.Entrypoint.map(String);
    if (Array.isArray(c.Cmd) && c.Cmd.length) out.cmd = c.Cmd.map(String);
    if (typeof c.WorkingDir === 'string' && c.WorkingDir) out.workingDir = c.WorkingDir;
    if (typeof c.User === 'string' && c.User) out.user = c.User;
    if (c.Labels && typeof c.Labels === 'object') for (const [k, v] of Object.entries(c.Labels as Record<string, unknown>)) out.labels[k] = String(v);
    return out;
  }
  return undefined;
}

/**
 * Build a SIF from an OCI image layout directory (`ref`: the tag, for layouts holding several
 * images). The image is unpacked into a temporary directory beside `out`, removed afterwards;
 * `config` adds to / overrides the image's configuration.
 */
export async function buildSifFromOciLayout(opts: Omit<BuildOptions, 'rootfs'> & { layout: string; ref?: string }): Promise<BuildResult> {
  const source = opts.source ?? `oci:${opts.layout}${opts.ref ? `:${opts.ref}` : ''}`;
  if (!isOciLayout(opts.layout)) {
    throw new WarrenError('SIF_SOURCE_INVALID', `build source ${source} is not an OCI image layout (no oci-layout and index.json in ${opts.layout})`, {
      hint: 'give the directory written by `skopeo copy … oci:DIR:TAG`, or a root file system directory',
    });
  }
  if (!existsSync(dirname(opts.out))) {
    throw new WarrenError('SIF_OUTPUT_INVALID', `output directory ${dirname(opts.out)} does not exist`, { hint: 'create the directory or give another -o path' });
  }
  const root = join(dirname(opts.out), `.${basename(opts.out)}.${randomBytes(4).toString('hex')}.rootfs`);
  mkdirSync(root);
  try {
    const base = await unpackOciLayout(opts.layout, opts.ref, root);
    const over = opts.config ?? {};
    const config: Partial<ImageConfig> = {
      ...base,
      ...over,
      env: [...base.env.filter((e) => !(over.env ?? []).some((o) => o.split('=')[0] === e.split('=')[0])), ...(over.env ?? [])],
      labels: { ...base.labels, ...(over.labels ?? {}) },
    };
    const { layout: _l, ref: _r, ...rest } = opts;
    return await buildSif({ ...rest, rootfs: root, config, source });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
