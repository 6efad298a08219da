// The container runtime: the I/O shell around buildOciSpec. Per attempt it prepares the
// image, makes a bundle (config.json + root file system) under the state directory, runs
// `runc run` in the foreground with the job's log files as its stdout/stderr, and on exit
// reads the cgroup for out-of-memory kills and removes everything it made (runc state,
// mounts, cgroups, bundle) before `exited` resolves.
//
// Why `runc run` in the foreground and not create/start/--detach: one exec instead of
// three, runc itself waits for the job and returns its exit status (we stay its parent,
// so no polling), forwards signals, and destroys the container on exit.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { WarrenError, EXIT, isWarrenError } from '../../common/index.js';
import type { ContainerOptions, ExitInfo, LaunchRequest, RunningTask, Runtime } from '../types.js';
import { buildOciSpec, cleanTarget, isUnder, mergeEnv, mountpointsInRootfs, DEFAULT_SHM_BYTES, type OciSpec } from './spec.js';
import { detectCgroups, TaskCgroup, type CgroupInfo } from './cgroups.js';
import {
  checkRootfsDir,
  checkSquashfs,
  defaultToolPath,
  findExecutable,
  findSquashfsTools,
  locateSquashfs,
  mountOverlay,
  mountSquashfs,
  run,
  type RootfsHandle,
  type SquashfsLocation,
  type SquashfsTools,
} from './rootfs.js';
import { discoverGpus } from './gpu.js';
import { classifyExit } from './exit.js';
import { sweepStale } from './sweep.js';
import { checkKey, isEncrypted, openEncryptedRootfs } from './encrypted.js';

/** What the image subsystem hands over (structurally the same as src/image's PreparedImage). */
export interface ContainerImage {
  uri: string;
  kind: 'rootfs' | 'sif';
  /** Root file system directory, or the image file (SIF or plain squashfs). */
  path: string;
  digest?: string;
  config: { env: string[]; entrypoint?: string[]; cmd?: string[]; workingDir?: string; user?: string; labels?: Record<string, string> };
  /** Where the squashfs is inside `path`, when the caller already knows. */
  partition?: SquashfsLocation;
  /** sha256:<hex> of the file's bytes, when `path` is an immutable verified copy (the trust gate). */
  contentDigest?: string;
}

export type PrepareImageFn = (uri: string, opts?: { auth?: unknown; allowSetuid?: boolean }) => Promise<ContainerImage>;

export interface ContainerRuntimeOptions {
  /** Bundles, runc state and extracted images go here (must not be on overlayfs). */
  stateDir: string;
  /** runc binary (default: `runc` on PATH or in /usr/sbin). */
  runcPath?: string;
  /** Turns `container.image` into a local root file system or SIF. Default: src/image's prepareImage. */
  prepareImage?: PrepareImageFn;
  /** Finds the system partition of a SIF file (src/image/sif). */
  sifPartition?: (path: string) => Promise<SquashfsLocation>;
  /**
   * Refuses an untrusted image by throwing, at check() and at every launch; may return the image
   * to run instead (src/image's TrustGate.admit: the verified copy in the trusted store, with its
   * partition), which is then what gets mounted.
   */
  trust?: (image: ContainerImage) => Promise<ContainerImage | void>;
  /** Where to look for runc, mount, squashfuse, unsquashfs (default: PATH plus sbin dirs). */
  toolPath?: string;
  /** Called with warnings (e.g. limits that cannot be enforced rootless). */
  onWarning?: (message: string) => void;
  /**
   * Node policy `allow-setuid`: images keep setuid/setgid bits and containers honor them
   * (root without nosuid, no_new_privs off). Default false: root mounted nosuid,nodev.
   */
  allowSetuid?: boolean;
}

interface Prepared {
  cid: string;
  bundle: string;
  spec: OciSpec;
  cgroup?: TaskCgroup;
  warnings: string[];
}

function sanitizeId(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[._-]+/, '').slice(0, 48) || 'job';
}

function jobName(id: string): string {
  const parts = id.split('/').filter(Boolean);
  return parts.length > 1 ? parts[1]! : (parts[0] ?? 'warren');
}

const NODE_NET_FILES = ['/etc/resolv.conf', '/etc/hosts'];


export function runcMissing(runc: string | undefined, image?: string): WarrenError {
  return new WarrenError('RUNTIME_RUNC_MISSING', `runc not found${runc ? ` at ${runc}` : ' on PATH or in /usr/sbin'}: cannot run ${image ? `image ${image}` : 'container jobs'} on this node`, {
    hint: 'install it (`apt-get install runc`, or run scripts/setup.sh), or give its path in the runtime settings',
  });
}

export function createContainerRuntime(opts: ContainerRuntimeOptions): Runtime {
  const toolPath = opts.toolPath ?? defaultToolPath();
  const stateDir = opts.stateDir;
  const runcRoot = join(stateDir, 'runc');
  const bundles = join(stateDir, 'bundles');
  const extracted = join(stateDir, 'rootfs');
  let tools: SquashfsTools | undefined;
  const getTools = (): SquashfsTools => (tools ??= findSquashfsTools(toolPath));
  let prepareFn = opts.prepareImage;
  const getPrepare = async (): Promise<PrepareImageFn> => {
    if (!prepareFn) {
      const mod = await import('../../image/index.js');
      prepareFn = (uri, o) =>
        mod.prepareImage(uri, { ...(o?.auth ? { auth: o.auth as never } : {}), ...(o?.allowSetuid ? { allowSetuid: true } : {}) }) as Promise<ContainerImage>;
    }
    return prepareFn;
  };
  /** The SIF reader: injected, else `sifPartition` from src/image's index once it exports one. */
  const locateSif = async (path: string): Promise<SquashfsLocation> => {
    let fn = opts.sifPartition;
    if (!fn) {
      const mod = (await import('../../image/index.js')) as Record<string, unknown>;
      if (typeof mod.sifPartition === 'function') fn = async (p: string) => (mod.sifPartition as (p: string) => SquashfsLocation | Promise<SquashfsLocation>)(p);
    }
    if (!fn) {
      throw new WarrenError('RUNTIME_SIF_UNSUPPORTED', `image ${path} is a SIF, but this Warren build has no SIF reader for the container runtime`, {
        hint: 'convert the image to a squashfs file or a root file system directory, or use a Warren build whose image subsystem exports sifPartition',
      });
    }
    return fn(path);
  };
  let swept: Promise<unknown> | undefined;
  const sweepOnce = (runc: string): Promise<unknown> =>
    (swept ??= sweepStale({ stateDir, runc, tools: getTools(), cgroups: detectCgroups() }).then((ids) => {
      if (ids.length) opts.onWarning?.(`removed ${ids.length} container(s) left by a Warren process that ended abnormally: ${ids.join(', ')}`);
    }));
  let runcFound: string | undefined;
  const resolveRunc = (image?: string): string => {
    // Found once; if it disappears later, spawning it fails and that is reported.
    runcFound ??= findExecutable(opts.runcPath ?? 'runc', toolPath);
    if (!runcFound) throw runcMissing(opts.runcPath, image);
    return runcFound;
  };
  let usernsChecked = false;
  /** Rootless needs unprivileged user namespaces; say so plainly instead of runc's EPERM. */
  const checkUserns = (): void => {
    if (usernsChecked) return;
    const read = (f: string): string | undefined => {
      try {
        return readFileSync(f, 'utf8').trim();
      } catch {
        return undefined;
      }
    };
    const clone = read('/proc/sys/kernel/unprivileged_userns_clone');
    const max = read('/proc/sys/user/max_user_namespaces');
    if (clone === '0' || max === '0') {
      throw new WarrenError('RUNTIME_USERNS_DISABLED', `unprivileged user namespaces are disabled on this node (${clone === '0' ? 'kernel.unprivileged_userns_clone=0' : 'user.max_user_namespaces=0'}), so containers cannot run without root`, {
        hint: 'ask the administrator to enable them (`sysctl -w kernel.unprivileged_userns_clone=1` / `sysctl -w user.max_user_namespaces=15000`), or run Warren as root',
      });
    }
    usernsChecked = true;
  };
  /** Mount points found in an image directory (images are immutable once prepared). */
  const present = new Map<string, Set<string>>();
  const exists = (rootfs: string, dest: string): boolean => {
    let s = present.get(rootfs);
    if (s?.has(dest)) return true;
    if (!existsSync(join(rootfs, dest))) return false;
    if (!s) present.set(rootfs, (s = new Set()));
    s.add(dest);
    return true;
  };

  const loadImage = async (req: LaunchRequest): Promise<ContainerImage> => {
    const c = req.container;
    if (!c?.image) {
      throw new WarrenError('RUNTIME_NO_IMAGE', `job ${req.id} has no container image`, {
        hint: 'give the job an `image:` or run it with the process runtime',
      });
    }
    const prepare = await getPrepare();
    const img = await prepare(c.image, c.auth || opts.allowSetuid ? { ...(c.auth ? { auth: c.auth } : {}), ...(opts.allowSetuid ? { allowSetuid: true } : {}) } : undefined);
    if (opts.trust) {
      // check() and launch() both come here. The hook answers for the bytes that will be
      // mounted: it may hand back another image (the verified, immutable copy) to use instead.
      // Nothing is cached here by size, mtime or inode: the hook keys its results by content.
      const pinned = await opts.trust(img);
      if (pinned) return pinned;
    }
    return img;
  };

  /** Make the root file system ready: validate, mount. Nothing is started before this succeeds. */
  const openRootfs = async (img: ContainerImage, bundle: string, root: boolean, decryption?: ContainerOptions['decryption']): Promise<RootfsHandle> => {
    if (img.kind === 'rootfs') {
      checkRootfsDir(img.path, img.uri);
      return { path: img.path, via: 'dir', writable: false, release: async () => {} };
    }
    // An encrypted SIF with its key: decrypted into memory, mounted from there (encrypted.ts).
    if (decryption && !img.partition && (await isEncrypted(img.path, img.uri))) return openEncryptedRootfs({ path: img.path, uri: img.uri, decryption, bundle, root, tools: getTools() });
    const loc = img.partition ?? (await locateSquashfs(img.path, img.uri, locateSif));
    checkSquashfs(img.path, loc, img.uri);
    return mountSquashfs({ file: img.path, loc, image: img.uri, ...(img.contentDigest ? { contentDigest: img.contentDigest } : {}), mountpoint: join(bundle, 'image'), extractDir: extracted, tools: getTools(), root });
  };

  const prepare = async (req: LaunchRequest, img: ContainerImage, releases: (() => Promise<void>)[]): Promise<Prepared> => {
    const c = req.container!;
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const root = uid === 0;
    const warnings: string[] = [];
    // Rootless: the user namespace maps only the user, as root inside. runc cannot run a
    // non-root uid there: in the foreground it must chown the job's stdio pipes to the
    // container's root, which an unprivileged user can only do when that root is itself.
    const rootless = root ? undefined : { hostUid: uid, hostGid: gid };
    const inUid = c.asRoot || !root ? 0 : uid;
    const inGid = c.asRoot || !root ? 0 : gid;
    // The owner's pid in the id lets a later runtime sweep what a crashed Warren left (sweep.ts).
    const cid = `w-${process.pid}-${sanitizeId(req.id)}-${randomBytes(4).toString('hex')}`;
    const bundle = join(bundles, cid);
    try {
      mkdirSync(bundle);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirSync(bundle, { recursive: true });
    }
    releases.push(async () => rmSync(bundle, { recursive: true, force: true }));

    const argv = req.argv.length ? req.argv : [...(img.config.entrypoint ?? []), ...(img.config.cmd ?? [])];
    if (!argv.length) {
      throw new WarrenError('RUNTIME_NO_COMMAND', `job ${req.id}: no command given and image ${img.uri} has no entrypoint or cmd`, {
        hint: 'give the job a `command:` (or `script:`)',
      });
    }
    checkBindsAndOverlays(c);
    const mounts = [...req.mounts, ...(c.binds ?? []).map((b) => ({ host: b.source, target: b.target, readOnly: b.readOnly }))].map((m) => ({ ...m, target: cleanTarget(m.target) }));
    const cwd = mounts.some((m) => isUnder(cleanTarget(req.cwd), m.target)) ? cleanTarget(req.cwd) : img.config.workingDir || '/';

    const rootfs = await openRootfs(img, bundle, root, c.decryption);
    releases.push(rootfs.release);

    // A job script Warren wrote on the node (`script:` jobs) is run by its node path: when
    // that path is outside the job's mounts and not in the image, bind the file in, read-only.
    const prog = argv[0]!;
    if (prog.startsWith('/') && !mounts.some((m) => isUnder(cleanTarget(prog), m.target)) && !existsSync(join(rootfs.path, prog))) {
      try {
        if (statSync(prog).isFile()) mounts.push({ host: prog, target: cleanTarget(prog), readOnly: true });
      } catch {
        /* not on the node either: runc reports the missing command */
      }
    }

    let cgroup: TaskCgroup | undefined;
    let cgroupsPath: string | undefined;
    let resources: { memoryBytes?: number; limitSwap?: boolean; cores?: number } | undefined;
    const cg: CgroupInfo = detectCgroups();
    const wantLimits = req.memoryBytes !== undefined || (req.cores !== undefined && req.cores > 0);
    if (!root) {
      if (wantLimits) warnings.push(`rootless container: memory and CPU limits are not enforced (no cgroup delegation for uid ${uid})`);
    } else if (cg.mode === 'none') {
      if (wantLimits) warnings.push('no cgroup file system on this node: memory and CPU limits are not enforced');
    } else {
      cgroupsPath = `/warren/${cid}`;
      if (wantLimits) {
        const tcg = new TaskCgroup(cg, cid);
        cgroup = tcg;
        releases.push(async () => {
          // Almost always gone at once; a killed job's last process can hold it briefly.
          for (let i = 0; i < 20 && !tcg.remove(); i++) await new Promise((r) => setTimeout(r, 50));
        });
        cgroupsPath = cgroup.containerPath;
        resources = {};
        if (req.cores !== undefined && req.cores > 0) resources.cores = req.cores;
        if (req.memoryBytes !== undefined) {
          if (cg.mode === 'v1') cgroup.setupV1Memory(req.memoryBytes);
          else resources = { ...resources, memoryBytes: req.memoryBytes, limitSwap: cg.swapAccounting };
        }
      }
    }
    const gpu = c.gpus?.length ? discoverGpus(c.gpus) : undefined;

    // Sharing the node's network: its resolver and hosts files, so names resolve as on the node.
    const nodeFiles = c.isolateNetwork ? [] : NODE_NET_FILES.filter((f) => existsSync(f));
    const build = (rootfsPath: string, files: string[]): OciSpec =>
      buildOciSpec({
        rootfs: rootfsPath,
        argv,
        env: mergeEnv(img.config.env, req.env),
        cwd,
        uid: inUid,
        gid: inGid,
        asRoot: !!c.asRoot,
        hostname: c.hostname ?? jobName(req.id),
        mounts,
        shmBytes: c.shmBytes ?? DEFAULT_SHM_BYTES,
        isolateNetwork: !!c.isolateNetwork,
        ...(rootless ? { rootless } : {}),
        ...(cgroupsPath ? { cgroupsPath } : {}),
        ...(resources ? { resources } : {}),
        ...(gpu ? { gpu } : {}),
        ...(files.length ? { nodeFiles: files } : {}),
        ...(opts.allowSetuid ? { allowSetuid: true } : {}),
      });
    const has = (d: string): boolean => (rootfs.via === 'dir' ? exists(rootfs.path, d) : existsSync(join(rootfs.path, d)));
    if (c.overlays?.length) {
      // Overlays: the root is an overlay that runc mounts (image and read-only layers below,
      // the writable overlay's upper or this attempt's own on top), so mount points never
      // need the image to have them.
      const layers = await openOverlays(c.overlays, rootfs.path, bundle, root, releases);
      const spec = overlayRoot(build(rootfs.path, nodeFiles), layers, join(bundle, 'root'));
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
      return { cid, bundle, spec, ...(cgroup ? { cgroup } : {}), warnings };
    }
    let spec = build(rootfs.path, []);

    // Mount points (and the cwd) that the read-only image lacks need a writable layer.
    const covered = mountpointsInRootfs(spec);
    const needed = [...covered, ...(spec.mounts.some((m) => isUnder(cwd, m.destination) && m.destination !== '/') ? [] : [cwd])];
    const missing = needed.filter((d) => !has(d));
    if (missing.length) {
      if (root) {
        const ovl = await mountOverlay(getTools(), rootfs.path, join(bundle, 'overlay'));
        releases.push(ovl.release);
        spec = build(ovl.path, nodeFiles);
      } else if (!rootfs.writable) {
        throw new WarrenError('RUNTIME_MOUNT_TARGET_MISSING', `image ${img.uri} has no ${missing.join(', ')} to mount onto, and a rootless container cannot add them to a read-only image`, {
          hint: 'mount volumes under /tmp or a directory that exists in the image, or use an image that has these directories',
        });
      } else spec = build(rootfs.path, nodeFiles);
    } else {
      // No writable layer: bind only the node files the image has a place for (an image
      // without /etc/resolv.conf is not worth an overlay on every start).
      const files = nodeFiles.filter(has);
      if (files.length) spec = build(rootfs.path, files);
    }
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    return { cid, bundle, spec, ...(cgroup ? { cgroup } : {}), warnings };
  };

  /** The layers of `image.overlays`: read-only ones (squashfs images opened like images), one writable directory. */
  const openOverlays = async (overlays: { path: string; readOnly: boolean }[], image: string, bundle: string, root: boolean, releases: (() => Promise<void>)[]): Promise<{ lower: string[]; upper: string; work: string; writable: boolean }> => {
    const lower = [image];
    let upper = join(bundle, 'upper');
    let work = join(bundle, 'work');
    let writable = false;
    let n = 0;
    for (const o of overlays) {
      if (statSync(o.path).isDirectory()) {
        if (o.readOnly) lower.unshift(existsSync(join(o.path, 'upper')) ? join(o.path, 'upper') : o.path);
        else {
          upper = join(o.path, 'upper');
          work = join(o.path, 'work');
          writable = true;
        }
        continue;
      }
      const loc = await locateSquashfs(o.path, o.path, locateSif);
      checkSquashfs(o.path, loc, o.path);
      const h = await mountSquashfs({ file: o.path, loc, image: o.path, mountpoint: join(bundle, `overlay-${n++}`), extractDir: extracted, tools: getTools(), root });
      releases.push(h.release);
      lower.unshift(h.path);
    }
    for (const d of [upper, work]) mkdirSync(d, { recursive: true });
    return { lower, upper, work, writable };
  };

  return {
    name: 'container',

    async check(req: LaunchRequest): Promise<void> {
      if (req.container) checkBindsAndOverlays(req.container);
      resolveRunc(req.container?.image);
      if ((process.getuid?.() ?? 0) !== 0) checkUserns();
      const img = await loadImage(req);
      const root = (process.getuid?.() ?? 0) === 0;
      if (img.kind === 'rootfs') checkRootfsDir(img.path, img.uri);
      else if (!img.partition && (await isEncrypted(img.path, img.uri))) await checkKey(img.path, img.uri, req.container?.decryption);
      else {
        const loc = img.partition ?? (await locateSquashfs(img.path, img.uri, locateSif));
        checkSquashfs(img.path, loc, img.uri);
        const t = getTools();
        if (!(root && t.mount) && !t.squashfuse && !t.unsquashfs) {
          throw new WarrenError('RUNTIME_SQUASHFS_MISSING', `cannot open image ${img.uri}: squashfuse and squashfs-tools are not installed${root ? ' and mount(8) is missing' : ' (loop mounts need root)'}`, {
            hint: 'install them: `apt-get install squashfuse squashfs-tools`',
          });
        }
      }
      if (req.container?.gpus?.length) discoverGpus(req.container.gpus);
    },

    launch(req: LaunchRequest): RunningTask {
      const t0 = Date.now();
      let resolveExit!: (e: ExitInfo) => void;
      const exited = new Promise<ExitInfo>((r) => (resolveExit = r));
      let resolveStarted!: (pid: number | null) => void;
      const started = new Promise<number | null>((r) => (resolveStarted = r));
      let child: ChildProcess | undefined;
      let killReason: 'canceled' | 'timeout' | null = null;
      let done = false;
      let runcExited = false;
      let timers: NodeJS.Timeout[] = [];
      const releases: (() => Promise<void>)[] = [];
      let prep: Prepared | undefined;
      let runc = '';
      /** beforeExec rejected: the container was stopped. */
      let hookError: string | null = null;

      const cleanup = async (): Promise<void> => {
        if (prep && runc && existsSync(join(runcRoot, prep.cid))) {
          await run(runc, ['--root', runcRoot, 'delete', '-f', prep.cid], 30_000);
        }
        // Undo in reverse order: overlay, image mount, cgroup, bundle.
        for (const r of releases.reverse()) {
          try {
            await r();
          } catch {
            /* keep going: leave as little as possible */
          }
        }
        releases.length = 0;
      };

      const finish = async (info: Omit<ExitInfo, 'durationMs'>): Promise<void> => {
        if (done) return;
        done = true;
        resolveStarted(null); // no-op when it started
        for (const t of timers) clearTimeout(t);
        timers = [];
        await cleanup();
        const warn = prep?.warnings ?? [];
        for (const w of warn) opts.onWarning?.(w);
        const message = [info.message, ...warn].filter(Boolean).join('; ');
        resolveExit({ ...info, ...(message ? { message } : {}), durationMs: Date.now() - t0 });
      };

      const signal = (sig: 'TERM' | 'KILL'): void => {
        if (runcExited || !prep || !runc) return;
        const cid = prep.cid;
        void run(runc, ['--root', runcRoot, 'kill', cid, sig], 10_000).then((r) => {
          // The container may not exist yet (runc still creating it): try again shortly.
          if (r.code !== 0 && !runcExited) timers.push(setTimeout(() => signal(sig), 50));
        });
      };

      const kill = (reason: 'canceled' | 'timeout', graceMs = 1000): void => {
        if (done || killReason) return;
        killReason = reason;
        if (!child) return; // not started yet: start() sees killReason and stops
        signal('TERM');
        timers.push(setTimeout(() => signal('KILL'), graceMs));
      };

      const start = async (): Promise<void> => {
        let img: ContainerImage;
        try {
          runc = resolveRunc(req.container?.image);
          if ((process.getuid?.() ?? 0) !== 0) checkUserns();
          await sweepOnce(runc);
          img = await loadImage(req);
          prep = await prepare(req, img, releases);
        } catch (e) {
          const err = isWarrenError(e) ? e : new WarrenError('RUNTIME_CONTAINER_SETUP', `cannot set up the container for ${req.id}: ${(e as Error).message}`, { hint: 'see the message; check the state directory and the image', cause: e });
          await finish({ exitCode: null, signal: null, reason: 'spawn-error', message: `error[${err.code}]: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}` });
          return;
        }
        if (killReason) {
          await finish({ exitCode: null, signal: null, reason: killReason, message: killReason === 'timeout' ? `timed out before the container started` : 'canceled before the container started' });
          return;
        }
        let out = -1;
        let errFd = -1;
        const p = prep;
        try {
          out = openSync(req.stdoutPath, 'a');
          errFd = req.stderrPath === req.stdoutPath ? out : openSync(req.stderrPath, 'a');
          const args = ['--root', runcRoot, '--log', join(p.bundle, 'runc.log'), '--log-format', 'json'];
          if (p.spec.linux.uidMappings) args.push('--rootless', 'true');
          args.push('run', '--bundle', p.bundle, p.cid);
          child = spawn(runc, args, { stdio: ['ignore', out, errFd], cwd: p.bundle });
        } catch (e) {
          await finish({ exitCode: null, signal: null, reason: 'spawn-error', message: `cannot start runc: ${(e as Error).message}` });
          return;
        } finally {
          if (out >= 0) closeSync(out);
          if (errFd >= 0 && errFd !== out) closeSync(errFd);
        }
        if (child.pid !== undefined) {
          const pid = child.pid;
          if (!req.beforeExec) resolveStarted(pid);
          else {
            // Not held yet (runc create/start is the way to hold a container): called as soon
            // as runc runs; a rejection stops the container and ends it as a spawn error.
            let hook: Promise<void>;
            try {
              hook = req.beforeExec({ pid, cgroup: null });
            } catch (e) {
              hook = Promise.reject(e);
            }
            hook.then(
              () => resolveStarted(pid),
              (e: unknown) => {
                hookError = isWarrenError(e) ? `error[${e.code}]: ${e.message}` : e instanceof Error ? e.message : String(e);
                resolveStarted(null);
                if (!killReason) killReason = 'canceled';
                signal('KILL');
              },
            );
          }
        }
        child.on('error', (e) => {
          runcExited = true;
          void finish({ exitCode: null, signal: null, reason: 'spawn-error', message: `cannot start runc (${runc}): ${e.message}` });
        });
        child.on('exit', (code, sig) => {
          runcExited = true;
          void finish(interpret(code, sig, p));
        });
        if (req.timeoutSec !== undefined && req.timeoutSec > 0) timers.push(setTimeout(() => kill('timeout'), req.timeoutSec * 1000));
      };

      const interpret = (code: number | null, sig: NodeJS.Signals | null, p: Prepared): Omit<ExitInfo, 'durationMs'> => {
        if (hookError !== null) return { exitCode: null, signal: null, reason: 'spawn-error', message: hookError };
        const status = code ?? (sig ? 128 + (osConstants.signals[sig] ?? 9) : 255);
        const mode = p.cgroup?.info.mode;
        const memory = p.cgroup && req.memoryBytes !== undefined && (mode === 'v1' || mode === 'v2') ? { limitBytes: req.memoryBytes, mode, ...p.cgroup.oomCheck(req.memoryBytes) } : undefined;
        return classifyExit({
          status,
          killReason,
          ...(req.timeoutSec !== undefined ? { timeoutSec: req.timeoutSec } : {}),
          ...(memory ? { memory } : {}),
          runcError: () => runcFailure(join(p.bundle, 'runc.log')),
          containerId: p.cid,
        });
      };

      void start();
      const exec = (cmd: string[], timeoutMs: number): Promise<{ exitCode: number | null; output: string; timedOut?: boolean }> =>
        new Promise((resolve) => {
          if (!prep || !runc || done || runcExited) return resolve({ exitCode: null, output: 'the container is not running' });
          // runc exec takes the container's process settings (user, environment, cwd) and replaces the arguments.
          execFile(runc, ['--root', runcRoot, 'exec', prep.cid, ...cmd], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
            const e = err as (Error & { code?: unknown; killed?: boolean }) | null;
            const output = `${String(stdout)}${String(stderr)}`.slice(-4096);
            if (!e) return resolve({ exitCode: 0, output });
            if (e.killed) return resolve({ exitCode: null, output, timedOut: true });
            resolve({ exitCode: typeof e.code === 'number' ? e.code : null, output: output || e.message });
          });
        });
      return {
        get pid() {
          return child?.pid;
        },
        started,
        exited,
        kill,
        exec,
      };
    },
  };
}

/** `image.binds` sources must exist; overlays must exist, a writable one be writable. */
export function checkBindsAndOverlays(c: Pick<NonNullable<LaunchRequest['container']>, 'binds' | 'overlays'>): void {
  for (const b of c.binds ?? []) {
    if (!existsSync(b.source)) {
      throw new WarrenError('RUNTIME_BIND_MISSING', `image.binds: ${b.source} does not exist on this node (bind ${b.source}:${b.target}${b.readOnly ? ':ro' : ''})`, {
        hint: 'create it on the node, correct the path, or remove the bind',
      });
    }
  }
  for (const o of c.overlays ?? []) {
    let dir: boolean;
    try {
      dir = statSync(o.path).isDirectory();
    } catch {
      throw new WarrenError('RUNTIME_OVERLAY_INVALID', `image.overlays: ${o.path} does not exist on this node`, { hint: 'create the overlay directory (mkdir) or correct the path' });
    }
    if (!o.readOnly) {
      if (!dir) throw new WarrenError('RUNTIME_OVERLAY_INVALID', `image.overlays: ${o.path} is an image file; writable overlays are directories`, { hint: `add :ro to use it read-only (${o.path}:ro), or give a directory` });
      try {
        accessSync(o.path, fsConstants.W_OK | fsConstants.X_OK);
      } catch {
        throw new WarrenError('RUNTIME_OVERLAY_NOT_WRITABLE', `image.overlays: ${o.path} is not writable by the job's user, so it cannot hold the container's changes`, { hint: `use a directory the job's user owns, or add :ro (${o.path}:ro)` });
      }
    }
  }
}

/** The spec with an overlay of `layers` as its root (mounted by runc on the empty `rootDir`). */
function overlayRoot(spec: OciSpec, layers: { lower: string[]; upper: string; work: string; writable: boolean }, rootDir: string): OciSpec {
  mkdirSync(rootDir, { recursive: true });
  const first = spec.mounts[0]!;
  const flags = (first.options ?? []).filter((o) => o === 'nosuid' || o === 'nodev');
  return {
    ...spec,
    root: { ...spec.root, path: rootDir },
    mounts: [{ destination: '/', type: 'overlay', source: 'overlay', options: [`lowerdir=${layers.lower.join(':')}`, `upperdir=${layers.upper}`, `workdir=${layers.work}`, ...flags] }, ...spec.mounts.slice(1)],
    linux: { ...spec.linux, readonlyPaths: layers.writable ? spec.linux.readonlyPaths.filter((p) => p !== '/') : spec.linux.readonlyPaths },
  };
}

/** runc's own error (from its JSON log) when it failed to start the container, else undefined. */
export function runcFailure(logFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if (e.level === 'error' && e.msg) return e.msg.replace(/^runc run failed: /, '');
    } catch {
      /* not JSON */
    }
  }
  return undefined;
}

/**
 * The container runtime for a Warren home, or undefined when this node has no runc (so
 * the agent reports AGENT_NO_CONTAINER_RUNTIME with its install hint). State lives in
 * `<home>/containers`; images come from src/image's prepareImage (its default cache).
 */
export function defaultContainerRuntime(home: string, opts: Partial<ContainerRuntimeOptions> = {}): Runtime | undefined {
  const runc = findExecutable(opts.runcPath ?? 'runc', opts.toolPath ?? defaultToolPath());
  if (!runc) return undefined;
  return createContainerRuntime({ stateDir: join(home, 'containers'), ...opts, runcPath: runc });
}
