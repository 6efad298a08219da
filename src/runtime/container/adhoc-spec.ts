// Pure parts of ad-hoc containers (`warren exec|shell|run IMAGE`, instances): the OCI config
// with Apptainer's defaults, the bind and overlay arguments, the environment. No I/O here:
// what the runner found on the machine (the caller, the home directory, which paths exist)
// comes in through the inputs. See docs/containers-cli.md.
//
// Apptainer's defaults, because HPC users depend on them: the caller's own uid and gid
// inside, the host's network, PID and IPC namespaces, its /dev, /proc and /sys, the home
// directory, the current directory and /tmp bound, the host environment passed in (less
// PATH and LD_LIBRARY_PATH), the image read-only.
import { posix } from 'node:path';
import { WarrenError } from '../../common/index.js';
import { OCI_VERSION, DEFAULT_PATH, DOCKER_DEFAULT_CAPABILITIES, cleanTarget, isUnder, type OciMount, type OciSpec } from './spec.js';

/** Where Warren's own files appear inside an ad-hoc container. */
export const ADHOC_DIR = '/.warren';
export const ADHOC_INIT = `${ADHOC_DIR}/init`;
export const ADHOC_WRAPPER = `${ADHOC_DIR}/action.sh`;

/** Capabilities of root inside when the caller is root (Docker's default set). */
export const ADHOC_ROOT_CAPABILITIES = DOCKER_DEFAULT_CAPABILITIES;

export interface AdhocBind {
  /** Path on this machine (absolute). */
  source: string;
  /** Path inside (absolute). */
  target: string;
  readOnly: boolean;
}

/**
 * One `--bind` value: `SRC[:DST[:OPTS]]`, several separated by commas (as Apptainer's
 * `--bind a,b:/c` and `$APPTAINER_BIND`). OPTS: `ro` or `rw`. Relative sources are taken
 * from `cwd`. `what` names the argument in messages.
 */
export function parseBinds(value: string, cwd: string, what: string): AdhocBind[] {
  const out: AdhocBind[] = [];
  for (const item of value.split(',').map((s) => s.trim())) {
    if (!item) continue;
    const parts = item.split(':');
    if (parts.length > 3 || parts.some((p) => p === '')) {
      throw new WarrenError('CLI_BAD_BIND', `${what}: "${item}" is not SRC[:DST[:ro|rw]]`, {
        hint: 'write it as --bind /data or --bind /data:/mnt/data or --bind /data:/mnt/data:ro (several separated by commas)',
      });
    }
    const [src, dst, opts] = parts as [string, string | undefined, string | undefined];
    if (opts !== undefined && opts !== 'ro' && opts !== 'rw') {
      throw new WarrenError('CLI_BAD_BIND', `${what}: "${item}": unknown bind option "${opts}"`, { hint: 'the options are ro (read-only) and rw (the default)' });
    }
    const source = posix.resolve(cwd, src);
    const target = dst ?? source;
    if (!target.startsWith('/')) {
      throw new WarrenError('CLI_BAD_BIND', `${what}: "${item}": the destination ${target} is not an absolute path`, { hint: 'destinations inside the container start with /' });
    }
    if (cleanTarget(target) === '/') {
      throw new WarrenError('CLI_BAD_BIND', `${what}: "${item}": cannot bind over the container's root`, { hint: 'bind to a directory inside it, e.g. /mnt' });
    }
    out.push({ source, target: cleanTarget(target), readOnly: opts === 'ro' });
  }
  return out;
}

export interface AdhocOverlay {
  /** Directory or image file on this machine. */
  path: string;
  readOnly: boolean;
}

/** One `--overlay` value: `PATH[:ro]`. */
export function parseOverlay(value: string, cwd: string): AdhocOverlay {
  let path = value;
  let readOnly = false;
  if (value.endsWith(':ro')) {
    path = value.slice(0, -3);
    readOnly = true;
  } else if (value.endsWith(':rw')) path = value.slice(0, -3);
  if (!path) throw new WarrenError('CLI_BAD_OVERLAY', `--overlay "${value}" names no directory or image`, { hint: 'write it as --overlay DIR, --overlay DIR:ro or --overlay IMAGE.sqsh:ro' });
  return { path: posix.resolve(cwd, path), readOnly };
}

/** `KEY=VALUE` lines of an `--env-file` (comments, blank lines, `export KEY=VALUE`, quotes). */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) {
      throw new WarrenError('CLI_BAD_ENV', `${file}:${i + 1}:1: "${line.slice(0, 60)}" is not KEY=VALUE`, {
        hint: 'each line of an env file is KEY=VALUE (optionally "export KEY=VALUE"); lines starting with # are comments',
      });
    }
    let v = m[2]!;
    if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) v = v.slice(1, -1);
    out[m[1]!] = v;
  }
  return out;
}

/** One `--env` value: `KEY=VALUE` (several separated by commas are not split: values may hold commas). */
export function parseEnvArg(value: string): [string, string] {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(value);
  if (!m) throw new WarrenError('CLI_BAD_ENV', `--env "${value}" is not KEY=VALUE`, { hint: 'write it as --env NAME=value (repeat --env for several)' });
  return [m[1]!, m[2]!];
}

/** Host variables that are not passed in (the container has its own). */
const NOT_PASSED = new Set(['PATH', 'LD_LIBRARY_PATH', 'PS1', 'PROMPT_COMMAND', 'OLDPWD', 'PWD', 'SHLVL', '_']);
/** Passed even with --cleanenv (as Apptainer). */
const ALWAYS_PASSED = ['TERM', 'http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY', 'ftp_proxy', 'FTP_PROXY', 'LANG', 'LC_ALL'];
/** Prefixes that set a variable inside: WARRENENV_FOO=1 is FOO=1 in the container. */
const ENV_PREFIXES = ['WARRENENV_', 'APPTAINERENV_', 'SINGULARITYENV_'];

export interface AdhocEnvInput {
  host: Record<string, string | undefined>;
  cleanenv: boolean;
  /** The image's own variables (OCI config `Env`, or what a Warren-built SIF stores). */
  image: string[];
  /** --env-file then --env, in order. */
  forced: [string, string][];
  /** Set by Warren: HOME, APPTAINER_CONTAINER, ... */
  runtime: Record<string, string>;
}

/**
 * The container's environment. Order, later wins: the host's (unless --cleanenv), the image's,
 * Warren's own, then WARRENENV_*, --env-file and --env. `forced` lists the names the user set
 * on purpose: the action wrapper sets them again after the image's %environment scripts ran,
 * so they win over the image as in Apptainer.
 */
export function adhocEnv(input: AdhocEnvInput): { env: string[]; forced: string[] } {
  const m = new Map<string, string>();
  for (const [k, v] of Object.entries(input.host)) {
    if (v === undefined || NOT_PASSED.has(k) || ENV_PREFIXES.some((p) => k.startsWith(p))) continue;
    if (input.cleanenv && !ALWAYS_PASSED.includes(k)) continue;
    m.set(k, v);
  }
  for (const kv of input.image) {
    const i = kv.indexOf('=');
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  if (!m.has('PATH')) m.set('PATH', DEFAULT_PATH);
  for (const [k, v] of Object.entries(input.runtime)) m.set(k, v);
  const forced: string[] = [];
  const force = (k: string, v: string): void => {
    m.set(k, v);
    if (!forced.includes(k)) forced.push(k);
  };
  for (const [k, v] of Object.entries(input.host)) {
    const p = ENV_PREFIXES.find((x) => k.startsWith(x));
    if (p && v !== undefined && k.length > p.length) force(k.slice(p.length), v);
  }
  for (const [k, v] of input.forced) force(k, v);
  return { env: [...m].map(([k, v]) => `${k}=${v}`), forced };
}

/**
 * The action wrapper: a POSIX shell script run as the container's command when the image
 * has a shell. It sources the image's environment scripts (Apptainer's
 * /.singularity.d/env/*.sh, and a SCIF app's), sets the variables the user forced again, and
 * execs the command. The forced values travel in the environment (`__WARREN_FORCE_<K>`), never
 * in this file.
 */
export function actionWrapper(app?: string): string {
  const lines = [
    '#!/bin/sh',
    '# Written by Warren for one container: the environment of the image, then the command.',
    'for __w_f in /.singularity.d/env/*.sh; do [ -f "$__w_f" ] && . "$__w_f"; done',
  ];
  if (app) lines.push(`for __w_f in /scif/apps/${app}/scif/env/*.sh; do [ -f "$__w_f" ] && . "$__w_f"; done`);
  lines.push(
    'for __w_k in $__WARREN_FORCED; do',
    '  eval "export $__w_k=\\"\\$__WARREN_FORCE_$__w_k\\""',
    '  unset "__WARREN_FORCE_$__w_k"',
    'done',
    'unset __WARREN_FORCED __w_f __w_k',
    'exec "$@"',
    '',
  );
  return lines.join('\n');
}

export interface AdhocSpecInput {
  /** An empty directory: the container's root, on which the overlay is mounted. */
  rootDir: string;
  /** Read-only layers, top first; the image's root file system last. */
  lower: string[];
  /** The overlay's upper and work directories (one file system). */
  upper: string;
  work: string;
  /** The root stays writable (--writable-tmpfs, a writable --overlay, --writable). */
  writable: boolean;
  /** --writable of a sandbox directory: that directory is the root, read-write (no overlay). */
  rootBind?: string;
  /** The command, as run inside (already wrapped). */
  argv: string[];
  env: string[];
  cwd: string;
  /** The caller outside; root callers run as root inside without a user namespace. */
  caller: { uid: number; gid: number };
  /** --fakeroot: a caller who is not root is root inside (their user namespace's), with root's capabilities there. */
  fakeroot?: boolean;
  /** warren-userid on this machine: the container's first process. */
  init: string;
  /** Binds, in the order given (defaults first, then the user's). */
  binds: AdhocBind[];
  /** Small files of this run (passwd, group, the wrapper) bound read-only: target -> source. */
  files: { source: string; target: string }[];
  /** --contain: a private /dev, /tmp and home instead of the host's. */
  contain: boolean;
  /** Own PID and IPC namespaces (--containall, instances). */
  pidNamespace: boolean;
  network: 'host' | 'none';
  hostname?: string;
  terminal: boolean;
  allowSetuid: boolean;
}

/** Overlay option values cannot hold these (the kernel splits on them). */
export function overlaySafe(path: string): boolean {
  return !/[,:\\\n]/.test(path);
}

/**
 * The OCI config of one ad-hoc container. Pure: the same input gives the same output.
 * The root is an overlay (the image, read-only layers, an upper directory of this run) that
 * runc mounts itself, so mount points for binds never touch the image and nothing is left
 * mounted on the host; it is made read-only after the mounts unless `writable`.
 */
export function buildAdhocSpec(input: AdhocSpecInput): OciSpec {
  const root = input.caller.uid === 0;
  const ro = (o: string[]): string[] => [...o, 'ro'];
  const flags = [...(input.allowSetuid ? [] : ['nosuid']), 'nodev'];
  const mounts: OciMount[] = [
    input.rootBind
      ? { destination: '/', type: 'none', source: input.rootBind, options: ['rbind', 'rw', ...flags] }
      : { destination: '/', type: 'overlay', source: 'overlay', options: [`lowerdir=${input.lower.join(':')}`, `upperdir=${input.upper}`, `workdir=${input.work}`, ...flags] },
  ];
  mounts.push(
    input.pidNamespace
      ? { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] }
      : { destination: '/proc', type: 'none', source: '/proc', options: ['rbind', 'nosuid', 'noexec', 'nodev'] },
  );
  if (input.contain) {
    mounts.push(
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: root ? ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] : ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
    );
  } else {
    // The host's /dev (GPUs, InfiniBand, /dev/shm shared with the host: what MPI and CUDA need).
    mounts.push({ destination: '/dev', type: 'none', source: '/dev', options: ['rbind', 'nosuid', 'noexec'] });
  }
  // sysfs can only be mounted by whoever owns the network namespace: the host's, read-only.
  if (input.network === 'none' && root) mounts.push({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
  else mounts.push({ destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
  const targets = new Set(input.binds.map((b) => b.target));
  if (input.contain && !targets.has('/tmp')) mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
  if (input.contain && !targets.has('/var/tmp')) mounts.push({ destination: '/var/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
  mounts.push({ destination: ADHOC_DIR, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755', 'size=1m'] });
  mounts.push({ destination: ADHOC_INIT, type: 'none', source: input.init, options: ['bind', 'ro', 'nosuid', 'nodev'] });
  // Binds by depth, so that one inside another lands on top of it; equal depth keeps the order given.
  const binds = input.binds
    .map((b, i) => ({ b, i }))
    .sort((x, y) => x.b.target.split('/').length - y.b.target.split('/').length || x.i - y.i)
    .map((x) => x.b);
  for (const b of binds) {
    mounts.push({ destination: b.target, type: 'none', source: b.source, options: ['rbind', b.readOnly ? 'ro' : 'rw', ...(input.allowSetuid ? [] : ['nosuid']), 'nodev'] });
  }
  for (const f of input.files) {
    if (binds.some((b) => isUnder(f.target, b.target))) continue; // the user's bind wins
    mounts.push({ destination: f.target, type: 'none', source: f.source, options: ro(['bind', 'nosuid', 'nodev']) });
  }

  const namespaces: { type: string }[] = [{ type: 'mount' }];
  if (!root) namespaces.push({ type: 'user' });
  if (input.pidNamespace) namespaces.push({ type: 'pid' }, { type: 'ipc' });
  if (input.network === 'none') namespaces.push({ type: 'network' });
  if (input.hostname !== undefined) namespaces.push({ type: 'uts' });

  // Root callers (and --fakeroot): root inside with Docker's default capabilities (with
  // --fakeroot only in the caller's user namespace: root over the container's files, nobody
  // outside). Everyone else: the init helper needs CAP_SETFCAP to map the container's root to
  // the caller's uid; the command (a non-zero uid) loses every capability at exec.
  const asRoot = root || input.fakeroot === true;
  const caps = asRoot ? ADHOC_ROOT_CAPABILITIES : ['CAP_SETFCAP'];
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: input.terminal,
      user: { uid: 0, gid: 0 },
      // uid 0 tells the helper to stay the container's root (root callers, --fakeroot).
      args: [ADHOC_INIT, asRoot ? '0' : String(input.caller.uid), asRoot ? '0' : String(input.caller.gid), ...input.argv],
      env: [...input.env],
      cwd: input.cwd,
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps], ambient: [] },
      noNewPrivileges: !input.allowSetuid,
    },
    // A caller who is not root: runc's own read-only remount of the root. (readonlyPaths['/']
    // would bind / on itself, and a process whose root is not its mount namespace's root may
    // not make the user namespace that gives it the caller's uid.) Root callers keep nosuid
    // and nodev through readonlyPaths, as jobs do (spec.ts rootMountOptions).
    root: { path: input.rootDir, readonly: !input.writable && !root },
    hostname: input.hostname ?? '',
    mounts,
    linux: {
      namespaces,
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: !input.writable && root ? ['/'] : [],
    },
  };
  if (!root) {
    spec.linux.uidMappings = [{ containerID: 0, hostID: input.caller.uid, size: 1 }];
    spec.linux.gidMappings = [{ containerID: 0, hostID: input.caller.gid, size: 1 }];
  }
  if (input.hostname === undefined) delete (spec as Partial<OciSpec>).hostname;
  return spec;
}

/** /etc/passwd and /etc/group of the image with the caller's entries added (Apptainer does the same). */
export function passwdWithCaller(
  imagePasswd: string | undefined,
  imageGroup: string | undefined,
  caller: { uid: number; gid: number; name: string; group: string; home: string; shell: string; gecos?: string },
): { passwd: string; group: string } {
  const keep = (text: string | undefined, field: number, id: number, name: string): string[] =>
    (text ?? '')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .filter((l) => {
        const f = l.split(':');
        return f[0] !== name && f[field] !== String(id);
      });
  const passwd = [...keep(imagePasswd, 2, caller.uid, caller.name), `${caller.name}:x:${caller.uid}:${caller.gid}:${caller.gecos ?? ''}:${caller.home}:${caller.shell}`];
  const group = [...keep(imageGroup, 2, caller.gid, caller.group), `${caller.group}:x:${caller.gid}:`];
  return { passwd: passwd.join('\n') + '\n', group: group.join('\n') + '\n' };
}
