// Ad-hoc containers: `warren exec|shell|run IMAGE` and instances, on this machine, with
// Apptainer's defaults (adhoc-spec.ts). The I/O shell around buildAdhocSpec: it opens the
// image's root file system (a loop mount as root; squashfuse where /dev/fuse allows, else an
// extraction into the caller's own cache), makes a bundle with an overlay root for this run,
// runs `runc run` in the foreground with the caller's stdio, and removes everything it made
// when the container ends. The same state directory as jobs: a crashed Warren's containers
// are swept by the next one (sweep.ts: ids carry the owner's pid).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { constants as osConstants, userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { WarrenError, removeTreeSync } from '../../common/index.js';
import type { ContainerImage } from './runtime.js';
import { runcFailure, runcMissing } from './runtime.js';
import { checkRootfsDir, checkSquashfs, defaultToolPath, findExecutable, findSquashfsTools, locateSquashfs, mountSquashfs, run, type SquashfsLocation, type SquashfsTools } from './rootfs.js';
import { detectCgroups } from './cgroups.js';
import { mountsUnder, sweepStale } from './sweep.js';
import { isEncrypted, openEncryptedRootfs } from './encrypted.js';
import { discoverGpus } from './gpu.js';
import { GPU_BIN_DIR, GPU_LIB_DIR, cleanTarget, isUnder, type OciSpec } from './spec.js';
import {
  ADHOC_WRAPPER,
  actionWrapper,
  adhocEnv,
  buildAdhocSpec,
  overlaySafe,
  passwdWithCaller,
  type AdhocBind,
  type AdhocOverlay,
} from './adhoc-spec.js';

export type AdhocAction = 'exec' | 'run' | 'shell' | 'start';

export interface AdhocRequest {
  /** The image, prepared and admitted by the trust policy (src/image). */
  image: ContainerImage;
  action: AdhocAction;
  /** exec: the command; run/start: the runscript's arguments; shell: the shell's arguments. */
  args: string[];
  /** SCIF app (`--app NAME`). */
  app?: string;
  /** `--shell PATH` for `shell`. */
  shell?: string;
  binds: AdhocBind[];
  overlays: AdhocOverlay[];
  writableTmpfs: boolean;
  /** --writable: a sandbox directory is changed in place. */
  writable?: boolean;
  contain: boolean;
  containall: boolean;
  cleanenv: boolean;
  /** --env-file then --env, in order. */
  env: [string, string][];
  /** `--home SRC[:DST]`. */
  home?: string;
  /** `--no-home`: the home directory is not bound (HOME is still set). */
  noHome?: boolean;
  pwd?: string;
  network: 'host' | 'none';
  hostname?: string;
  nv: boolean;
  /** Node policy allow-setuid. */
  allowSetuid: boolean;
  /** --fakeroot: root inside a user namespace (for a caller who is not root). */
  fakeroot?: boolean;
  /** `$WARREN_HOME/containers`: bundles, runc state, extractions. */
  stateDir: string;
  /** The environment and directory of the caller (default: this process's). */
  hostEnv?: Record<string, string | undefined>;
  cwd?: string;
  /** Where the container's stdio goes: the caller's (default), or files (instances). */
  stdio?: { stdout: number; stderr: number };
  /** Instances: the id's middle part and the record kept while it runs. */
  instance?: { name: string; onStarted?: (info: { cid: string; pid: number; runcRoot: string }) => void };
  runcPath?: string;
  onWarning?: (message: string) => void;
  /** The key of an encrypted SIF (`--key`, `--passphrase-env`): kept in memory only. */
  decryption?: { key?: string; passphrase?: string };
}

/** dist/bin/warren-userid, beside the compiled sources (built by scripts/setup.sh). */
export function userIdHelper(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/src/runtime/container
  return process.env.WARREN_USERID_HELPER ?? join(here, '..', '..', '..', 'bin', 'warren-userid');
}

/** Directories that are never bound as the current directory (they are the image's own). */
const SYSTEM_DIRS = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/run', '/sbin', '/sys', '/usr', '/var'];

function fuseUsable(): boolean {
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the bundles and runc's state of ad-hoc containers live: a private directory on a
 * memory file system ($XDG_RUNTIME_DIR when set, a tmpfs where systemd makes it; else /dev/shm), one per state
 * directory. A container's bundle is a handful of small files and directories made and
 * removed at every start; on a disk file system that alone costs tens of milliseconds, and
 * `--writable-tmpfs` changes belong in memory anyway. Falls back to the state directory
 * when no private memory directory can be made.
 */
export function adhocRunDir(stateDir: string): string {
  const uid = process.getuid?.() ?? 0;
  const tag = createHash('sha256').update(stateDir).digest('hex').slice(0, 12);
  const bases = [process.env.XDG_RUNTIME_DIR, '/dev/shm'].filter((b): b is string => !!b && b.startsWith('/'));
  for (const base of bases) {
    const dir = join(base, `warren-${uid}-${tag}`);
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') continue;
    }
    try {
      const st = lstatSync(dir);
      // Ours, a real directory, private: else someone else made it (the base is shared).
      if (st.isDirectory() && !st.isSymbolicLink() && st.uid === uid && (st.mode & 0o077) === 0) return dir;
    } catch {
      /* next */
    }
  }
  return stateDir;
}

interface Opened {
  /** Read-only layers, top first; the image last. */
  lower: string[];
  upper: string;
  work: string;
  writable: boolean;
  /** The image's root (for reading its files). */
  imageRoot: string;
  /** --writable: the sandbox directory itself is the root. */
  rootBind?: string;
}

/**
 * Prepare one ad-hoc container: the bundle, the root file system, the spec. Everything made
 * is pushed on `releases` (undone in reverse order), also when this throws.
 */
async function prepareAdhoc(req: AdhocRequest, runDir: string, tools: SquashfsTools, cid: string, releases: (() => Promise<void>)[]): Promise<{ bundle: string; spec: OciSpec }> {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const root = uid === 0;
  const env = req.hostEnv ?? process.env;
  const cwd = req.cwd ?? process.cwd();
  const img = req.image;
  const bundle = join(runDir, 'bundles', cid);
  mkdirSync(bundle, { recursive: true, mode: 0o700 });
  releases.push(async () => removeTreeSync(bundle));

  const init = userIdHelper();
  if (!existsSync(init)) {
    throw new WarrenError('RUNTIME_HELPER_MISSING', `the container helper ${init} is missing, so ad-hoc containers cannot start`, {
      hint: 'build it with scripts/setup.sh (it compiles src/runtime/container/warren-userid.c), or set WARREN_USERID_HELPER to its path',
    });
  }

  // --- the root file system: image, overlays, upper -------------------------------------
  const opened = await openLayers(req, runDir, bundle, root, tools, releases);
  const has = (p: string): boolean => existsSync(join(opened.imageRoot, p));

  // --- binds: Apptainer's defaults, then the user's -------------------------------------
  const info = safeUserInfo();
  const hostHome = env.HOME || info.homedir || '/';
  let homeSrc = hostHome;
  let homeDst = hostHome;
  if (req.home !== undefined) {
    const [s, d] = req.home.split(':') as [string, string | undefined];
    homeSrc = s.startsWith('/') ? s : join(cwd, s);
    homeDst = cleanTarget(d ?? homeSrc);
    if (!homeDst.startsWith('/')) throw new WarrenError('CLI_BAD_BIND', `--home ${req.home}: the home directory inside must be an absolute path`, { hint: 'write it as --home /path/on/host or --home /path/on/host:/home/me' });
  }
  const binds: AdhocBind[] = [];
  const containAll = req.contain || req.containall;
  const bindHome = !req.noHome && (!containAll || req.home !== undefined);
  if (bindHome && homeSrc !== '/') binds.push({ source: homeSrc, target: homeDst, readOnly: false });
  if (!containAll) {
    binds.push({ source: '/tmp', target: '/tmp', readOnly: false });
    if (existsSync('/var/tmp')) binds.push({ source: '/var/tmp', target: '/var/tmp', readOnly: false });
  }
  const user = [...req.binds];
  for (const b of user) checkBindSource(b);
  if (req.home !== undefined) checkBindSource({ source: homeSrc, target: homeDst, readOnly: false }, '--home');
  // The current directory, unless contained, already visible, or a system directory.
  let inCwd: string;
  if (req.pwd !== undefined) inCwd = cleanTarget(req.pwd);
  else if (containAll) inCwd = homeDst;
  else {
    const covered = [...binds, ...user].some((b) => isUnder(cwd, b.target) && b.source === b.target);
    const system = cwd === '/' || SYSTEM_DIRS.some((d) => isUnder(cwd, d));
    if (!covered && !system) binds.push({ source: cwd, target: cwd, readOnly: false });
    inCwd = system && !existsSync(join(opened.imageRoot, cwd)) ? '/' : cwd;
  }
  const allBinds = [...binds.filter((b) => !user.some((u) => u.target === b.target)), ...user];

  // --- small files of this run: passwd and group, the host's resolver, the action wrapper --
  const files: { source: string; target: string }[] = [];
  const etc = (f: string): string | undefined => {
    try {
      return readFileSync(join(opened.imageRoot, f), 'utf8');
    } catch {
      return undefined;
    }
  };
  if (!root && !req.fakeroot && has('etc')) {
    const pw = passwdWithCaller(etc('etc/passwd'), etc('etc/group'), {
      uid,
      gid,
      name: info.username || `user${uid}`,
      group: groupName(gid) ?? info.username ?? `group${gid}`,
      home: homeDst,
      shell: info.shell && existsSync(join(opened.imageRoot, info.shell)) ? info.shell : '/bin/sh',
    });
    writeFileSync(join(bundle, 'passwd'), pw.passwd);
    writeFileSync(join(bundle, 'group'), pw.group);
    files.push({ source: join(bundle, 'passwd'), target: '/etc/passwd' }, { source: join(bundle, 'group'), target: '/etc/group' });
  }
  if (has('etc')) {
    const net = req.network === 'host' ? ['/etc/resolv.conf', '/etc/hosts'] : [];
    for (const f of [...net, '/etc/localtime']) if (existsSync(f)) files.push({ source: f, target: f });
  }

  // --nv: the NVIDIA driver's libraries and tools (the devices come with the host's /dev).
  let gpuEnv: { lib: boolean; bin: boolean } | undefined;
  if (req.nv) {
    const gpu = nvidia();
    for (const l of gpu.libraries) files.push({ source: l.path, target: `${GPU_LIB_DIR}/${l.name}` });
    for (const b of gpu.binaries) files.push({ source: b.path, target: `${GPU_BIN_DIR}/${b.name}` });
    gpuEnv = { lib: gpu.libraries.length > 0, bin: gpu.binaries.length > 0 };
  }

  // --- the command ---------------------------------------------------------------------
  const argv = commandOf(req, has);
  const sh = has('bin/sh');
  const imageName = img.uri;
  const runtimeVars: Record<string, string> = {
    HOME: homeDst,
    APPTAINER_CONTAINER: img.path,
    SINGULARITY_CONTAINER: img.path,
    APPTAINER_NAME: basename(img.path),
    SINGULARITY_NAME: basename(img.path),
    WARREN_CONTAINER: imageName,
  };
  if (req.app) runtimeVars.APPTAINER_APPNAME = runtimeVars.SINGULARITY_APPNAME = runtimeVars.SCIF_APPNAME = req.app;
  if (req.action === 'shell') runtimeVars.PS1 = 'Warren> ';
  if (req.instance) runtimeVars.APPTAINER_INSTANCE = req.instance.name;
  const built = adhocEnv({ host: env, cleanenv: req.cleanenv || req.containall, image: img.config.env ?? [], forced: req.env, runtime: runtimeVars });
  const vars = new Map(built.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const));
  if (gpuEnv?.lib) vars.set('LD_LIBRARY_PATH', [vars.get('LD_LIBRARY_PATH'), GPU_LIB_DIR].filter(Boolean).join(':'));
  if (gpuEnv?.bin) vars.set('PATH', `${vars.get('PATH') ?? ''}:${GPU_BIN_DIR}`);
  let finalArgv = argv;
  const wrap = sh && (has('.singularity.d/env') || built.forced.length > 0 || req.app !== undefined);
  if (wrap) {
    writeFileSync(join(bundle, 'action.sh'), actionWrapper(req.app));
    files.push({ source: join(bundle, 'action.sh'), target: ADHOC_WRAPPER });
    finalArgv = ['/bin/sh', ADHOC_WRAPPER, ...argv];
    if (built.forced.length) {
      // The forced values again, for the wrapper to set after the image's scripts ran.
      const forced = built.forced.map((k) => [`__WARREN_FORCE_${k}`, vars.get(k) ?? ''] as const);
      vars.set('__WARREN_FORCED', built.forced.join(' '));
      for (const [k, v] of forced) vars.set(k, v);
    }
  }
  const envList = [...vars].map(([k, v]) => `${k}=${v}`);

  const terminal = !req.stdio && process.stdin.isTTY === true && process.stdout.isTTY === true;
  if (terminal && !containAll) {
    // runc puts the container's pty on /dev/console; the host's console device is not ours to open.
    writeFileSync(join(bundle, 'console'), '');
    allBinds.push({ source: join(bundle, 'console'), target: '/dev/console', readOnly: false });
  }

  // An instance's pid 1 is the helper itself: it runs the startscript (if any) and stays.
  if (req.action === 'start') finalArgv = ['--warren-instance', ...(argv.length ? finalArgv : [])];

  const spec = buildAdhocSpec({
    rootDir: join(bundle, 'root'),
    lower: opened.lower,
    upper: opened.upper,
    work: opened.work,
    writable: opened.writable,
    ...(opened.rootBind ? { rootBind: opened.rootBind } : {}),
    argv: finalArgv,
    env: envList,
    cwd: inCwd,
    caller: { uid, gid },
    ...(req.fakeroot ? { fakeroot: true } : {}),
    init,
    binds: allBinds,
    files,
    contain: containAll,
    pidNamespace: req.containall || req.action === 'start',
    network: req.network,
    ...(req.hostname !== undefined ? { hostname: req.hostname } : {}),
    // A terminal when the caller has one (runc makes a pty and relays it: job control, a
    // prompt, ^C), else pipes that runc relays (scripts, `cmd | warren exec IMAGE ...`).
    terminal,
    allowSetuid: req.allowSetuid,
  });
  mkdirSync(join(bundle, 'root'), { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return { bundle, spec };
}

function safeUserInfo(): { username: string; homedir: string; shell: string | null } {
  try {
    return userInfo();
  } catch {
    return { username: '', homedir: '', shell: null };
  }
}

function groupName(gid: number): string | undefined {
  try {
    for (const l of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = l.split(':');
      if (f[2] === String(gid)) return f[0];
    }
  } catch {
    /* no /etc/group */
  }
  return undefined;
}

function checkBindSource(b: AdhocBind, what = '--bind'): void {
  if (!existsSync(b.source)) {
    throw new WarrenError('RUNTIME_BIND_MISSING', `${what} ${b.source}${b.target !== b.source ? `:${b.target}` : ''}: ${b.source} does not exist on this machine`, {
      hint: 'check the path (binds take SRC[:DST[:ro]], SRC on this machine), or create it first',
    });
  }
}

function nvidia(): ReturnType<typeof discoverGpus> {
  let indices: number[] = [];
  try {
    indices = readdirSync('/dev').flatMap((d) => {
      const m = /^nvidia(\d+)$/.exec(d);
      return m ? [Number(m[1])] : [];
    });
  } catch {
    /* no /dev */
  }
  if (!existsSync('/dev/nvidiactl') && indices.length === 0) {
    throw new WarrenError('RUNTIME_NV_NO_DEVICE', '--nv: this machine has no NVIDIA GPU (no /dev/nvidiactl or /dev/nvidiaN)', {
      hint: 'run without --nv here, or on a machine with an NVIDIA GPU and its driver loaded',
    });
  }
  return discoverGpus(indices);
}

/** What runs inside, before the wrapper: the command, the runscript, the shell. */
function commandOf(req: AdhocRequest, has: (p: string) => boolean): string[] {
  const img = req.image;
  if (req.app !== undefined) {
    if (!/^[A-Za-z0-9_.-]+$/.test(req.app) || !has(`scif/apps/${req.app}`)) {
      const apps = has('scif/apps') ? listDir(img, 'scif/apps') : [];
      throw new WarrenError('RUNTIME_APP_UNKNOWN', `image ${img.uri} has no SCIF app "${req.app}"${apps.length ? ` (it has: ${apps.join(', ')})` : ' (it has no apps)'}`, {
        hint: 'see the apps with `warren image inspect IMAGE --json`, and give one of them to --app',
      });
    }
  }
  switch (req.action) {
    case 'exec':
      if (req.app !== undefined && req.args.length === 0) return [`/scif/apps/${req.app}/scif/runscript`];
      return req.args;
    case 'shell': {
      const shell = req.shell ?? (has('bin/bash') ? '/bin/bash' : '/bin/sh');
      if (!req.shell && !has(shell.slice(1))) {
        throw new WarrenError('RUNTIME_NO_SHELL', `image ${img.uri} has no shell (/bin/bash or /bin/sh)`, { hint: 'give one with --shell PATH, or run a program in it with `warren exec IMAGE PROGRAM`' });
      }
      return [shell, ...req.args];
    }
    case 'run':
    case 'start': {
      const script = req.action === 'start' ? 'startscript' : 'runscript';
      if (req.app !== undefined) {
        const p = `/scif/apps/${req.app}/scif/${script}`;
        if (!has(p.slice(1))) {
          throw new WarrenError('RUNTIME_NO_RUNSCRIPT', `app ${req.app} of image ${img.uri} has no ${script}`, { hint: `run a command in it instead: \`warren exec --app ${req.app} IMAGE COMMAND\`` });
        }
        return [p, ...req.args];
      }
      if (has(`.singularity.d/${script}`)) return [`/.singularity.d/${script}`, ...req.args];
      if (req.action === 'start') return [];
      const ep = img.config.entrypoint ?? [];
      const cmd = req.args.length ? req.args : (img.config.cmd ?? []);
      if (ep.length || cmd.length) return [...ep, ...cmd];
      throw new WarrenError('RUNTIME_NO_RUNSCRIPT', `image ${img.uri} has no runscript and no entrypoint or cmd to run`, {
        hint: 'run a command in it with `warren exec IMAGE COMMAND`, or open a shell with `warren shell IMAGE`',
      });
    }
  }
}

function listDir(img: ContainerImage, p: string): string[] {
  try {
    return readdirSync(join(img.path, p));
  } catch {
    return [];
  }
}

/** Open the image and the overlays as layers of the root overlay. */
async function openLayers(req: AdhocRequest, runDir: string, bundle: string, root: boolean, tools: SquashfsTools, releases: (() => Promise<void>)[]): Promise<Opened> {
  const extractDir = join(req.stateDir, 'rootfs');
  const open = async (file: string, uri: string, mountpoint: string, loc?: SquashfsLocation, contentDigest?: string): Promise<string> => {
    const where = loc ?? (await locateSquashfs(file, uri, sifPartition));
    checkSquashfs(file, where, uri);
    if (root && tools.mount && tools.umount) {
      // Root: the image's loop mount is kept for the next container of the same image (runc's
      // overlay holds its own reference, so an idle one can be detached at any time).
      // In the private memory directory, not $WARREN_HOME: a held mount must never stand in the
      // way of `rm -rf $WARREN_HOME`.
      const held = join(runDir, 'images', imageKey(file, where, contentDigest));
      if (!isMountpoint(held)) {
        const h = await mountSquashfs({ file, loc: where, image: uri, mountpoint: held, extractDir, tools, root, ...(contentDigest ? { contentDigest } : {}) });
        if (h.via !== 'loop') {
          releases.push(h.release);
          return h.path;
        }
      }
      touch(`${held}.used`);
      return held;
    }
    const usable: SquashfsTools = fuseUsable() ? tools : { ...tools, squashfuse: undefined };
    const h = await mountSquashfs({ file, loc: where, image: uri, mountpoint, extractDir, tools: usable, root, ...(contentDigest ? { contentDigest } : {}) });
    releases.push(h.release);
    return h.path;
  };
  const img = req.image;
  if (req.writable) {
    // Apptainer's --writable: only a sandbox directory of yours, changed in place (never an
    // image Warren pulled into its shared cache, never a SIF).
    if (img.kind !== 'rootfs' || /^(docker|oras):\/\//.test(img.uri)) {
      throw new WarrenError('RUNTIME_WRITABLE_UNSUPPORTED', `--writable: ${img.uri} is ${img.kind === 'rootfs' ? 'an image of the shared cache' : 'a SIF, which is read-only'}; only a sandbox directory can be changed in place`, {
        hint: 'use --writable-tmpfs (changes discarded) or --overlay DIR (changes kept in DIR), or build a sandbox with `warren image build --sandbox DIR RECIPE.def`',
      });
    }
    if (req.overlays.length || req.writableTmpfs) {
      throw new WarrenError('RUNTIME_WRITABLE_UNSUPPORTED', '--writable changes the sandbox in place: it cannot be combined with --overlay or --writable-tmpfs', { hint: 'give one of them' });
    }
    checkRootfsDir(img.path, img.uri);
    try {
      accessSync(img.path, constants.W_OK | constants.X_OK);
    } catch {
      throw new WarrenError('RUNTIME_IMAGE_NOT_WRITABLE', `--writable: the sandbox ${img.path} is not writable by you`, { hint: 'use a sandbox you own, or --writable-tmpfs / --overlay DIR to write over it' });
    }
    return { lower: [], upper: '', work: '', writable: true, imageRoot: img.path, rootBind: img.path };
  }
  let imageRoot: string;
  if (img.kind === 'rootfs') {
    checkRootfsDir(img.path, img.uri);
    imageRoot = img.path;
  } else if (await isEncrypted(img.path, img.uri)) {
    // Decrypted into memory (a private tmpfs, or /dev/shm), mounted or extracted from there;
    // never held for the next container, never in the extraction cache on disk.
    if (!req.decryption) {
      throw new WarrenError('SIF_ENCRYPTED', `image ${img.uri}: its system partition is encrypted, and no key was given to open it`, {
        hint: 'give the key: --key PRIVATE.pem (or the fingerprint of a stored key), or --passphrase-env VAR for a passphrase image',
      });
    }
    const usable: SquashfsTools = fuseUsable() ? tools : { ...tools, squashfuse: undefined };
    const h = await openEncryptedRootfs({ path: img.path, uri: img.uri, decryption: req.decryption, bundle, root, tools: usable });
    releases.push(h.release);
    imageRoot = h.path;
  } else imageRoot = await open(img.path, img.uri, join(bundle, 'image'), img.partition, img.contentDigest);

  const lower: string[] = [imageRoot];
  let upper = join(bundle, 'upper');
  let work = join(bundle, 'work');
  let writable = req.writableTmpfs;
  let writableOverlay: string | undefined;
  let n = 0;
  for (const o of req.overlays) {
    let st;
    try {
      st = statSync(o.path);
    } catch {
      throw new WarrenError('RUNTIME_OVERLAY_INVALID', `--overlay ${o.path}: it does not exist`, { hint: 'give an existing directory (writable, or DIR:ro) or a squashfs/SIF overlay image (IMAGE:ro); create a directory overlay with mkdir' });
    }
    if (st.isDirectory()) {
      if (o.readOnly) {
        const dir = existsSync(join(o.path, 'upper')) ? join(o.path, 'upper') : o.path;
        lower.unshift(dir);
        continue;
      }
      if (writableOverlay) {
        throw new WarrenError('RUNTIME_OVERLAY_INVALID', `--overlay ${o.path}: only one writable overlay is allowed (${writableOverlay} is writable already)`, { hint: 'add :ro to the others' });
      }
      try {
        accessSync(o.path, constants.W_OK | constants.X_OK);
        for (const d of ['upper', 'work']) mkdirSync(join(o.path, d), { recursive: true });
        accessSync(join(o.path, 'upper'), constants.W_OK);
        accessSync(join(o.path, 'work'), constants.W_OK);
      } catch {
        throw new WarrenError('RUNTIME_OVERLAY_NOT_WRITABLE', `--overlay ${o.path}: the directory is not writable by you, so it cannot hold the container's changes`, {
          hint: `use a directory you own (mkdir ~/overlay), or add :ro to use it read-only (--overlay ${o.path}:ro)`,
        });
      }
      writableOverlay = o.path;
      upper = join(o.path, 'upper');
      work = join(o.path, 'work');
      writable = true;
      continue;
    }
    // An overlay image: squashfs (or a SIF whose partition is one) is read-only; ext3 needs root and dm/loop rw.
    if (!o.readOnly && !isSquashfsFile(o.path)) {
      throw new WarrenError('RUNTIME_OVERLAY_INVALID', `--overlay ${o.path}: writable overlay images (ext3) are not supported`, {
        hint: 'use a directory as the writable overlay (--overlay DIR), or a squashfs image read-only (--overlay IMAGE:ro)',
      });
    }
    lower.unshift(await open(o.path, o.path, join(bundle, `overlay-${n++}`)));
  }
  for (const p of [...lower, upper, work]) {
    if (!overlaySafe(p)) {
      throw new WarrenError('RUNTIME_OVERLAY_INVALID', `the path ${p} cannot be a layer of the container's overlay (it holds a comma, colon or backslash)`, { hint: 'rename or move it, or set WARREN_HOME to a path without those characters' });
    }
  }
  if (upper === join(bundle, 'upper')) {
    mkdirSync(upper, { recursive: true });
    mkdirSync(work, { recursive: true });
  }
  return { lower, upper, work, writable, imageRoot };
}

/** The held mount of an image: by its content when verified, else by the file's identity. */
function imageKey(file: string, loc: SquashfsLocation, contentDigest?: string): string {
  const st = statSync(file);
  const ident = contentDigest ? `content\n${contentDigest}` : `${file}\n${st.size}\n${st.mtimeMs}\n${st.ino}\n${st.dev}`;
  return createHash('sha256').update(`${ident}\n${loc.offset}\n${loc.size}`).digest('hex').slice(0, 32);
}

function isMountpoint(dir: string): boolean {
  return mountsUnder(dir).some((m) => m.path === dir);
}

function touch(file: string): void {
  const now = new Date();
  try {
    utimesSync(file, now, now);
  } catch {
    try {
      writeFileSync(file, '');
    } catch {
      /* the stamp only ages the mount out */
    }
  }
}

/** Seconds an image's held loop mount may stay unused ($WARREN_MOUNT_IDLE_S, default 600). */
function mountIdleSeconds(): number {
  const v = Number(process.env.WARREN_MOUNT_IDLE_S);
  return process.env.WARREN_MOUNT_IDLE_S !== undefined && Number.isFinite(v) && v >= 0 ? v : 600;
}

/** Detach the held image mounts of `stateDir` nobody used for a while (lazily: a running container keeps its own). */
export function releaseIdleMounts(stateDir: string, idleSeconds = mountIdleSeconds()): Promise<number> {
  return releaseIdle(adhocRunDir(stateDir), idleSeconds);
}

async function releaseIdle(runDir: string, idleSeconds: number): Promise<number> {
  const dir = join(runDir, 'images');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  const umount = findExecutable('umount', defaultToolPath());
  let n = 0;
  for (const name of names) {
    if (name.endsWith('.used')) continue;
    const mp = join(dir, name);
    let used = 0;
    try {
      used = statSync(`${mp}.used`).mtimeMs;
    } catch {
      /* never stamped */
    }
    if (Date.now() - used < idleSeconds * 1000) continue;
    if (isMountpoint(mp)) {
      if (!umount) continue;
      await run(umount, ['-l', mp], 30_000);
      n++;
    }
    try {
      rmdirSync(mp);
      rmSync(`${mp}.used`, { force: true });
    } catch {
      /* still mounted: next time */
    }
  }
  return n;
}

function isSquashfsFile(path: string): boolean {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const b = Buffer.alloc(41);
    const n = readSync(fd, b, 0, 41, 0);
    return (n >= 4 && b.toString('latin1', 0, 4) === 'hsqs') || (n >= 41 && b.toString('latin1', 32, 41) === 'SIF_MAGIC');
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

async function sifPartition(path: string): Promise<SquashfsLocation> {
  const mod = (await import('../../image/index.js')) as unknown as { sifPartition: (p: string) => SquashfsLocation | Promise<SquashfsLocation> };
  return mod.sifPartition(path);
}

/** Runs an ad-hoc container to its end; resolves with the exit status to return (128+N for signal N). */
export async function runAdhoc(req: AdhocRequest): Promise<number> {
  const runc = findExecutable(req.runcPath ?? 'runc', defaultToolPath());
  if (!runc) throw runcMissing(req.runcPath, req.image.uri);
  const runDir = adhocRunDir(req.stateDir);
  const runcRoot = join(runDir, 'runc');
  const tag = req.instance ? `inst-${req.instance.name}` : req.action;
  const cid = `w-${process.pid}-${tag}-${randomBytes(4).toString('hex')}`;
  const releases: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const r of releases.reverse()) {
      try {
        await r();
      } catch {
        /* leave as little as possible */
      }
    }
    releases.length = 0;
  };
  const root = (process.getuid?.() ?? 0) === 0;
  const tools = findSquashfsTools(defaultToolPath());
  // Sweep what a crashed Warren left here (cheap: two directory listings).
  await sweepStale({ stateDir: runDir, runc, tools, cgroups: detectCgroups() }).then((ids) => {
    if (ids.length) req.onWarning?.(`removed ${ids.length} container(s) left by a Warren process that ended abnormally: ${ids.join(', ')}`);
  });
  if (root) await releaseIdle(runDir, mountIdleSeconds());
  let bundle: string;
  try {
    ({ bundle } = await prepareAdhoc(req, runDir, tools, cid, releases));
  } catch (e) {
    await cleanup();
    throw e;
  }
  const args = ['--root', runcRoot, '--log', join(bundle, 'runc.log'), '--log-format', 'json'];
  if (!root) args.push('--rootless', 'true');
  args.push('run', '--bundle', bundle, cid);
  const stdio: ('inherit' | 'ignore' | number)[] = req.stdio ? ['ignore', req.stdio.stdout, req.stdio.stderr] : ['inherit', 'inherit', 'inherit'];
  const child = spawn(runc, args, { stdio, cwd: bundle });
  // The terminal's ^C reaches runc (same process group), which passes it on: Warren waits.
  const forward = (sig: NodeJS.Signals) => () => {
    if (sig === 'SIGINT' && process.stdin.isTTY) return;
    child.kill(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  const handlers = signals.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  if (req.instance?.onStarted && child.pid !== undefined) req.instance.onStarted({ cid, pid: child.pid, runcRoot });
  const status = await new Promise<number>((resolve) => {
    child.on('error', (e) => {
      req.onWarning?.(`cannot start runc (${runc}): ${e.message}`);
      resolve(255);
    });
    child.on('exit', (code, sig) => resolve(code ?? 128 + (sig ? signalNumber(sig) : 9)));
  });
  for (const [s, h] of handlers) process.off(s, h);
  const failure = status !== 0 ? runcFailure(join(bundle, 'runc.log')) : undefined;
  if (failure && existsSync(join(runcRoot, cid))) await run(runc, ['--root', runcRoot, 'delete', '-f', cid], 30_000);
  await cleanup();
  if (failure) {
    throw new WarrenError('RUNTIME_CONTAINER_START', `the container of ${req.image.uri} could not start: ${failure}`, {
      hint: 'see the message; `WARREN_DEBUG=1` keeps more detail. A missing mount point or command is named in it',
    });
  }
  return status;
}

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 9;
}

