// Bootstraps: make the first tree of a stage in an empty directory.
//   docker       From: NAME:TAG from an OCI registry (src/image prepareImage: the image cache)
//   oras         From: a SIF stored in an OCI registry, its squashfs extracted
//   localimage   From: a SIF file or a root file system directory (sandbox) on this machine
//   scratch      nothing
//   busybox      busybox and its applet links (MirrorURL if reachable, else Debian's busybox-static)
//   debootstrap  Debian's debootstrap --variant=minbase OSVersion against MirrorURL (root only)
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync, lstatSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { WarrenError } from '../common/index.js';
import { prepareImage, readImageConfig, findPrimaryPartition, verifySif, isSif, KeyStore, type ImageConfig, type PrepareOptions } from '../image/index.js';
import type { Stage } from './deffile.js';

export interface BootstrapContext {
  /** Directory the %files and localimage paths are relative to (the build's working directory). */
  cwd: string;
  /** Image cache (default: $WARREN_HOME/cache/images). */
  cacheDir?: string;
  log: (line: string) => void;
  onOutput?: (chunk: Buffer) => void;
  /** Where debootstrap finds Debian when the recipe gives no MirrorURL (default: /etc/apt/sources.list*). */
  defaultMirror?: () => string | undefined;
  /** Host busybox (default /bin/busybox). */
  busybox?: string;
  /** Key store for `Fingerprints:` (default $WARREN_HOME/keys). */
  keyDir?: string;
}

export interface BootstrapResult {
  /** The base image's configuration (docker, oras, localimage SIF). */
  config?: ImageConfig;
  /** What the base was, for the labels (`org.label-schema.usage.singularity.deffile.from`). */
  from?: string;
}

function at(p: { file: string; line: number; col: number }): string {
  return `${p.file}:${p.line}:${p.col}`;
}

/** Run a host tool; resolves with exit status and the tail of its output. */
export function runHost(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; onOutput?: (c: Buffer) => void } = {}): Promise<{ code: number; tail: string }> {
  return new Promise((resolvePromise) => {
    let tail = '';
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    const take = (c: Buffer): void => {
      opts.onOutput?.(c);
      tail = (tail + c.toString('utf8')).slice(-16384);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (e) => resolvePromise({ code: 127, tail: `${tail}${e.message}\n` }));
    child.on('close', (code, sig) => resolvePromise({ code: code ?? (sig ? 137 : 1), tail }));
  });
}

function bootstrapFailed(stage: Stage, msg: string, hint: string, cause?: unknown): WarrenError {
  return new WarrenError('BUILD_BOOTSTRAP_FAILED', `${at(stage.header.bootstrap!.pos)}: bootstrap ${stage.bootstrap}: ${msg}`, { hint, ...(cause ? { cause } : {}), details: { ...stage.header.bootstrap!.pos } });
}

/** Copy a directory's contents into `dest` keeping everything (owners, modes, links, xattrs). */
async function copyTree(src: string, dest: string, stage: Stage, onOutput?: (c: Buffer) => void): Promise<void> {
  const r = await runHost('cp', ['-a', '--', `${src}/.`, `${dest}/`], { ...(onOutput ? { onOutput } : {}) });
  if (r.code !== 0) throw bootstrapFailed(stage, `copying ${src} failed (cp exited with ${r.code}): ${r.tail.trim().split('\n').slice(-3).join(' ')}`, 'check that the base is readable by you (root-owned files need a root build) and that there is space under $WARREN_HOME');
}

/** Extract a SIF's squashfs partition into `dest`. */
async function extractSif(file: string, dest: string, stage: Stage, onOutput?: (c: Buffer) => void, log?: (l: string) => void): Promise<void> {
  const p = findPrimaryPartition(file, file);
  if (p.fsType !== 'squashfs') throw bootstrapFailed(stage, `image ${file} has a ${p.fsType} system partition; only squashfs can be extracted`, 'decrypt it or rebuild it with a squashfs partition');
  const args = ['-n', '-f', '-d', dest, '-o', String(p.offset), file];
  if ((process.getuid?.() ?? 0) !== 0) args.unshift('-no-xattrs');
  void onOutput; // unsquashfs's listing is noise: only its tail is kept for errors
  const r = await runHost('unsquashfs', args);
  if (r.code === 2 && (process.getuid?.() ?? 0) !== 0) {
    // Non-root: device nodes cannot be made (a non-fatal error, exit 2). Anything else is fatal.
    const problems = r.tail.split('\n').filter((l) => /could not|failed|error|cannot/i.test(l));
    const devices = problems.filter((l) => /could not create (character|block) device .*not superuser/.test(l));
    if (problems.length && devices.length === problems.length) {
      log?.(`skipped ${devices.length} device node(s) of ${file}: a non-root build cannot create them (the runtime provides /dev)`);
      return;
    }
  }
  if (r.code !== 0) throw bootstrapFailed(stage, `extracting ${file} failed (unsquashfs exited with ${r.code}): ${r.tail.trim().split('\n').slice(-3).join(' ')}`, 'install squashfs-tools (`apt-get install squashfs-tools`); check the image and the space under $WARREN_HOME');
}

/** `Fingerprints:`: the base SIF must be signed by each key named (from the key store). */
async function checkFingerprints(stage: Stage, file: string | undefined, keyDir?: string): Promise<void> {
  const fp = stage.header.fingerprints;
  if (!fp?.value) return;
  const want = fp.value.split(/[\s,]+/).filter(Boolean).map((f) => f.toLowerCase());
  if (!file) {
    throw new WarrenError('BUILD_FINGERPRINT_MISMATCH', `${at(fp.pos)}: "Fingerprints:" needs a SIF base, but the ${stage.bootstrap} base is not a SIF`, {
      hint: 'remove the Fingerprints: line, or build from a signed SIF (Bootstrap: localimage or oras)',
      details: { ...fp.pos },
    });
  }
  const store = keyDir ? new KeyStore(keyDir) : new KeyStore();
  const keys = [];
  for (const k of store.list()) keys.push(await store.load(k));
  const r = await verifySif(file, keys, { image: file });
  const got = r.signatures.filter((s) => s.ok).flatMap((s) => s.signers).map((f) => f.toLowerCase());
  const missing = want.filter((w) => !got.some((g) => g === w || g.endsWith(w)));
  if (missing.length) {
    throw new WarrenError('BUILD_FINGERPRINT_MISMATCH', `${at(fp.pos)}: base image ${file} is not signed by ${missing.join(', ')}${got.length ? ` (verified signers: ${got.join(', ')})` : ' (no signature verified with the keys of the key store)'}`, {
      hint: 'import the signer\'s public key (`warren key import PUB`), or correct the fingerprints',
      details: { ...fp.pos, missing },
    });
  }
}

/** The Debian mirror this machine uses: the first deb URI of /etc/apt/sources.list{,.d/*}. */
export function debianMirror(): string | undefined {
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) if (/\.(list|sources)$/.test(f)) files.push(join('/etc/apt/sources.list.d', f));
  } catch {
    /* none */
  }
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const l of text.split('\n')) {
      const t = l.trim();
      const one = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/.exec(t);
      if (one && !one[1]!.includes('security')) return one[1];
      const deb822 = /^URIs:\s*(\S+)/i.exec(t);
      if (deb822 && !deb822[1]!.includes('security')) return deb822[1];
    }
  }
  return undefined;
}

/** The applets of a busybox binary (`busybox --list-full`: paths like usr/bin/env). */
async function busyboxApplets(bin: string): Promise<string[]> {
  const r = await new Promise<string>((res) => {
    let out = '';
    const c = spawn(bin, ['--list-full'], { stdio: ['ignore', 'pipe', 'ignore'] });
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', () => res(''));
    c.on('close', () => res(out));
  });
  return r.split('\n').map((s) => s.trim()).filter((s) => s && !s.includes('..'));
}

async function fetchBinary(url: string, timeoutMs: number): Promise<Buffer | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return undefined;
    const b = Buffer.from(await res.arrayBuffer());
    return b.length > 4 && b.subarray(0, 4).toString('latin1') === '\x7fELF' ? b : undefined;
  } catch {
    return undefined;
  }
}

/** A minimal tree around busybox: /bin/busybox, applet links, /etc/passwd and /etc/group. */
async function bootstrapBusybox(stage: Stage, tree: string, ctx: BootstrapContext): Promise<void> {
  const host = ctx.busybox ?? '/bin/busybox';
  let bytes: Buffer | undefined;
  const mirror = stage.header.mirrorurl?.value;
  if (mirror) {
    bytes = await fetchBinary(mirror, 15_000);
    if (!bytes) ctx.log(`MirrorURL ${mirror} cannot be reached (or is not a busybox binary): using this machine's ${host} (Debian's busybox-static)`);
  }
  if (!bytes) {
    if (!existsSync(host)) {
      throw bootstrapFailed(stage, `${mirror ? `MirrorURL ${mirror} cannot be reached, and ` : ''}${host} is not installed`, 'install Debian\'s busybox-static (`apt-get install busybox-static`, or run scripts/setup.sh), or give a reachable MirrorURL');
    }
    bytes = readFileSync(host);
  }
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'var', 'home', 'dev', 'proc', 'sys']) mkdirSync(join(tree, d), { recursive: true });
  chmodSync(join(tree, 'tmp'), 0o1777);
  chmodSync(join(tree, 'root'), 0o700);
  writeFileSync(join(tree, 'bin', 'busybox'), bytes, { mode: 0o755 });
  chmodSync(join(tree, 'bin', 'busybox'), 0o755);
  // Applet names from the host's busybox (the image's may be for another machine); links are relative-free absolute /bin/busybox.
  const applets = existsSync(host) ? await busyboxApplets(host) : [];
  for (const a of applets.length ? applets : ['bin/sh']) {
    const p = join(tree, a);
    if (a === 'bin/busybox') continue;
    mkdirSync(dirname(p), { recursive: true });
    try {
      lstatSync(p);
    } catch {
      symlinkSync('/bin/busybox', p);
    }
  }
  writeFileSync(join(tree, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n', { mode: 0o644 });
  writeFileSync(join(tree, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n', { mode: 0o644 });
}

async function bootstrapDebootstrap(stage: Stage, tree: string, ctx: BootstrapContext): Promise<void> {
  if ((process.getuid?.() ?? 0) !== 0) {
    throw new WarrenError('BUILD_NEEDS_ROOT', `${at(stage.header.bootstrap!.pos)}: "Bootstrap: debootstrap" needs root (debootstrap creates device nodes and chroots)`, {
      hint: 'build as root (sudo warren image build ...), or start from a registry image instead: "Bootstrap: docker" with "From: debian:12"',
      details: { ...stage.header.bootstrap!.pos },
    });
  }
  const tool = ['/usr/sbin/debootstrap', '/usr/bin/debootstrap', '/sbin/debootstrap'].find((p) => existsSync(p));
  if (!tool) throw bootstrapFailed(stage, 'debootstrap is not installed', 'install it (`apt-get install debootstrap`, listed in scripts/apt/build.txt; run scripts/setup.sh)');
  const suite = stage.header.osversion?.value || 'stable';
  const mirror = stage.header.mirrorurl?.value || (ctx.defaultMirror ?? debianMirror)();
  if (!mirror) throw bootstrapFailed(stage, 'no MirrorURL given and none found in /etc/apt/sources.list*', 'add "MirrorURL: http://deb.debian.org/debian" to the header');
  const args = ['--variant=minbase'];
  const include = stage.header.include?.value;
  if (include) args.push(`--include=${include.split(/[\s,]+/).filter(Boolean).join(',')}`);
  args.push(suite, tree, mirror);
  ctx.log(`debootstrap ${args.join(' ')}`);
  const r = await runHost(tool, args, { ...(ctx.onOutput ? { onOutput: ctx.onOutput } : {}), env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.code !== 0) {
    throw bootstrapFailed(stage, `debootstrap ${suite} from ${mirror} exited with ${r.code}:\n${r.tail.trim().split('\n').slice(-10).join('\n')}`, `check that ${mirror} is reachable and has the suite "${suite}" (OSVersion), or give another MirrorURL`);
  }
}

/** Make the stage's first tree in `tree` (an empty directory). */
export async function runBootstrap(stage: Stage, tree: string, ctx: BootstrapContext): Promise<BootstrapResult> {
  const h = stage.header;
  switch (stage.bootstrap) {
    case 'scratch':
      return {};
    case 'busybox':
      await bootstrapBusybox(stage, tree, ctx);
      return {};
    case 'debootstrap':
      await bootstrapDebootstrap(stage, tree, ctx);
      return { from: h.osversion?.value || 'stable' };
    case 'docker':
    case 'oras': {
      let from = h.from!.value.replace(/^(docker|oras):\/\//, '');
      if (h.registry?.value && !/^[^/]+[.:][^/]*\//.test(from)) from = `${h.registry.value.replace(/\/+$/, '')}/${h.namespace?.value ? h.namespace.value.replace(/^\/+|\/+$/g, '') + '/' : ''}${from}`;
      const uri = `${stage.bootstrap}://${from}`;
      ctx.log(`fetching ${uri}`);
      const prep: PrepareOptions = ctx.cacheDir ? { cacheDir: ctx.cacheDir } : {};
      let img;
      try {
        img = await prepareImage(uri, prep);
      } catch (e) {
        const err = e as WarrenError;
        throw new WarrenError(err.code ?? 'BUILD_BOOTSTRAP_FAILED', `${at(h.from!.pos)}: base image ${uri}: ${err.message}`, { hint: err.hint ?? 'check the image name and that the registry is reachable', details: { ...h.from!.pos }, cause: e });
      }
      if (img.kind === 'sif') {
        await checkFingerprints(stage, img.path, ctx.keyDir);
        await extractSif(img.path, tree, stage, ctx.onOutput, ctx.log);
        return { config: readImageConfig(img.path, uri) ?? img.config, from };
      }
      await checkFingerprints(stage, undefined, ctx.keyDir);
      await copyTree(img.path, tree, stage, ctx.onOutput);
      return { config: img.config, from };
    }
    case 'localimage': {
      const raw = h.from!.value.replace(/^file:\/\//, '');
      const path = isAbsolute(raw) ? raw : resolve(ctx.cwd, raw);
      let st;
      try {
        st = statSync(path);
      } catch {
        throw new WarrenError('BUILD_BOOTSTRAP_FAILED', `${at(h.from!.pos)}: base image ${path} does not exist`, { hint: 'give a SIF file or a root file system directory (relative paths are relative to the working directory of the build)', details: { ...h.from!.pos } });
      }
      if (st.isDirectory()) {
        await checkFingerprints(stage, undefined, ctx.keyDir);
        await copyTree(path, tree, stage, ctx.onOutput);
        return { from: raw };
      }
      if (!isSif(path)) throw new WarrenError('BUILD_BOOTSTRAP_FAILED', `${at(h.from!.pos)}: base image ${path} is neither a SIF file nor a directory`, { hint: 'give a .sif file or a root file system directory', details: { ...h.from!.pos } });
      await checkFingerprints(stage, path, ctx.keyDir);
      await extractSif(path, tree, stage, ctx.onOutput, ctx.log);
      const config = readImageConfig(path, path);
      return { ...(config ? { config } : {}), from: raw };
    }
  }
}
