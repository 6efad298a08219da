// One step of an image build (`%post`, `%appinstall`, `%test` of a definition file) run
// INSIDE the tree being built, with real runc: root inside. A root caller runs plain runc; any
// other caller runs rootless runc, whose user namespace maps the caller (alone) to root
// inside (fakeroot: files the step creates belong to the caller outside). The root file
// system is writable (the step installs into it) unless `readOnly`; the step shares the
// node's network and gets its resolv.conf and hosts, so package managers work.
//
// Mount points runc has to create for the step stay in the tree: /proc, /dev, /sys, /tmp
// (every image has them), but the node's /etc/resolv.conf and /etc/hosts and the targets of
// `binds` would be empty placeholders: those that were not there before are removed again.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { WarrenError } from '../../common/index.js';
import type { BindMount } from '../types.js';
import { buildOciSpec, DEFAULT_SHM_BYTES, DOCKER_DEFAULT_CAPABILITIES } from './spec.js';
import { runcFailure } from './runtime.js';
import { detectCgroups } from './cgroups.js';
import { defaultToolPath, findExecutable, run } from './rootfs.js';

/** Capabilities of root in a build step: Docker's default set (what package managers need). */
export const BUILD_CAPABILITIES = DOCKER_DEFAULT_CAPABILITIES;

const NODE_NET_FILES = ['/etc/resolv.conf', '/etc/hosts'];

export interface BuildStepOptions {
  /** The tree being built (absolute). */
  rootfs: string;
  argv: string[];
  /** `KEY=VALUE`; PATH is added when missing. */
  env: string[];
  /** Working directory inside (default /). */
  cwd?: string;
  /** Node paths bound into the step. */
  binds?: BindMount[];
  /** Where bundles and runc's state go (one directory per build; not on overlayfs). */
  stateDir: string;
  /** 'host' (default): the node's network, resolv.conf and hosts; 'none': a network namespace of its own. */
  network?: 'host' | 'none';
  /** Root file system read-only (e.g. %test): nothing the step does stays in the tree. */
  readOnly?: boolean;
  /** Each chunk of the step's stdout and stderr (merged), as it comes. */
  onOutput?: (chunk: Buffer) => void;
  /** Kill the step after this long (default: no limit). */
  timeoutMs?: number;
  runcPath?: string;
  toolPath?: string;
  /** Bytes of output kept for `tail` (default 64 KiB). */
  keepBytes?: number;
}

export interface BuildStepResult {
  /** Exit status of the step (128+N for a signal); null when runc could not start it. */
  exitCode: number | null;
  /** The last lines of its output (stdout and stderr merged). */
  tail: string;
  /** runc's own error, when runc failed to create the container. */
  runcError?: string;
  timedOut: boolean;
  /** How the step ran: plain runc as root, or rootless runc mapping the caller to root. */
  mode: 'root' | 'rootless';
}

/**
 * The node path of `p` inside the tree `root`, its links resolved as they would be inside it
 * (an absolute link restarts at `root`, `..` stops at `root`): a path so resolved never leads
 * out of the tree, whatever links the tree holds. Missing components are taken as written.
 */
export function resolveInRoot(root: string, p: string): string {
  const parts = posix.normalize('/' + p).split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (parts.length) {
    const c = parts.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, c);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      done.push(c);
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new WarrenError('RUNTIME_CONTAINER_SETUP', `too many levels of symbolic links resolving ${p} in ${root}`, { hint: 'the image has a link loop: fix or remove the links on that path' });
      const t = readlinkSync(host);
      if (t.startsWith('/')) done.length = 0;
      parts.unshift(...t.split('/').filter(Boolean));
      continue;
    }
    done.push(c);
  }
  return join(root, ...done);
}

/** `inside` in the tree: its parent resolved inside it, the last component as written (a link there is not followed). */
export function pathInTree(root: string, inside: string): string {
  const n = posix.normalize('/' + inside);
  return n === '/' ? root : join(resolveInRoot(root, posix.dirname(n)), posix.basename(n));
}

/** `p` exists, as itself (a dangling link counts). */
export function lexists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The last `n` lines of a text. */
export function lastLines(text: string, n: number): string {
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.slice(-n).join('\n');
}

/** Run one build step inside `rootfs` (see the header). Resolves with its exit status; rejects only when it could not be set up. */
export async function runBuildStep(opts: BuildStepOptions): Promise<BuildStepResult> {
  const toolPath = opts.toolPath ?? defaultToolPath();
  const runc = findExecutable(opts.runcPath ?? 'runc', toolPath);
  if (!runc) {
    throw new WarrenError('RUNTIME_RUNC_MISSING', `runc not found${opts.runcPath ? ` at ${opts.runcPath}` : ' on PATH or in /usr/sbin'}: cannot run a build step inside ${opts.rootfs}`, {
      hint: 'install it (`apt-get install runc`, or run scripts/setup.sh)',
    });
  }
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const root = uid === 0;
  const network = opts.network ?? 'host';
  const cid = `wb-${process.pid}-${randomBytes(6).toString('hex')}`;
  const runcRoot = join(opts.stateDir, 'runc');
  const bundle = join(opts.stateDir, 'bundles', cid);
  mkdirSync(runcRoot, { recursive: true, mode: 0o700 });
  mkdirSync(bundle, { recursive: true });

  // What runc may have to create as mount points, and whether it is there now.
  const nodeFiles = network === 'host' ? NODE_NET_FILES.filter((f) => existsSync(f)) : [];
  // (Paths resolved inside the tree, as runc resolves mount destinations: never the node's own files.)
  const placeholders = [...nodeFiles, ...(opts.binds ?? []).map((b) => b.target)].map((p) => resolveInRoot(opts.rootfs, p)).filter((p) => !lexists(p));
  // A read-only root cannot get mount points: bind only the node files the tree has.
  const files = opts.readOnly ? nodeFiles.filter((f) => lexists(resolveInRoot(opts.rootfs, f))) : nodeFiles;
  const cg = root ? detectCgroups() : undefined;
  const spec = buildOciSpec({
    rootfs: opts.rootfs,
    argv: opts.argv,
    env: opts.env,
    cwd: opts.cwd ?? '/',
    uid: 0,
    gid: 0,
    asRoot: true,
    hostname: 'warren-build',
    mounts: opts.binds ?? [],
    shmBytes: DEFAULT_SHM_BYTES,
    isolateNetwork: network === 'none',
    ...(root ? {} : { rootless: { hostUid: uid, hostGid: gid } }),
    ...(cg && cg.mode !== 'none' ? { cgroupsPath: `/warren/${cid}` } : {}),
    ...(files.length ? { nodeFiles: files } : {}),
    allowSetuid: true,
    writableRoot: opts.readOnly !== true,
  });
  const caps = [...BUILD_CAPABILITIES];
  spec.process.capabilities = { bounding: [...caps], effective: [...caps], permitted: [...caps], ambient: [] };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));

  const keep = opts.keepBytes ?? 64 * 1024;
  let tail = Buffer.alloc(0);
  const args = ['--root', runcRoot, '--log', join(bundle, 'runc.log'), '--log-format', 'json'];
  if (!root) args.push('--rootless', 'true');
  args.push('run', '--bundle', bundle, cid);
  let timedOut = false;
  try {
    const status = await new Promise<number | null>((resolve, reject) => {
      // stdout and stderr into one pipe (a shell's 2>&1, then exec runc): the output keeps the
      // order it was written in (with two pipes, a trace line and the output it traces interleave).
      const child = spawn('/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', runc, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: bundle });
      const take = (c: Buffer): void => {
        opts.onOutput?.(c);
        tail = Buffer.concat([tail, c]);
        if (tail.length > keep * 2) tail = tail.subarray(tail.length - keep);
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      let timer: NodeJS.Timeout | undefined;
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          timedOut = true;
          void run(runc, ['--root', runcRoot, 'kill', cid, 'KILL'], 10_000);
        }, opts.timeoutMs);
      }
      child.on('error', (e) => {
        if (timer) clearTimeout(timer);
        reject(new WarrenError('RUNTIME_CONTAINER_SETUP', `cannot start runc (${runc}) for a build step: ${e.message}`, { hint: 'check the runc installation', cause: e }));
      });
      child.on('close', (code, sig) => {
        if (timer) clearTimeout(timer);
        resolve(code ?? (sig ? 128 + 9 : null));
      });
    });
    const runcError = runcFailure(join(bundle, 'runc.log'));
    const text = tail.subarray(Math.max(0, tail.length - keep)).toString('utf8');
    return {
      exitCode: status,
      tail: text,
      ...(runcError && status !== 0 ? { runcError } : {}),
      timedOut,
      mode: root ? 'root' : 'rootless',
    };
  } finally {
    if (existsSync(join(runcRoot, cid))) await run(runc, ['--root', runcRoot, 'delete', '-f', cid], 30_000);
    rmSync(bundle, { recursive: true, force: true });
    if (opts.readOnly !== true) {
      // Deepest first, so a placeholder directory is empty when it is removed.
      for (const p of [...placeholders].sort((a, b) => b.length - a.length)) removePlaceholder(p);
    }
  }
}

/** Remove what runc created as a mount point: an empty file or an empty directory, nothing else. */
function removePlaceholder(p: string): void {
  try {
    const st = lstatSync(p);
    if (st.isFile() && st.size === 0) unlinkSync(p);
    else if (st.isDirectory()) rmdirSync(p); // fails (kept) when the step put something in it
  } catch {
    /* gone, or not empty: keep */
  }
}


