// `warren image pull|push|ls|rm|prune` (registries and the node's image cache) and
// `warren registry login|logout`.
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { WarrenError, EXIT, ensureWarrenHome, formatBytes, parseDuration, warrenHome } from '../../common/index.js';
import {
  ImageCache,
  checkRegistryLogin,
  defaultImageCacheDir,
  parsePlatform,
  prepareImage,
  pushLocalImage,
  removeCredentials,
  saveCredentials,
  credentialsFile,
  type PullProgress,
} from '../../image/index.js';
import { commandGroup } from '../util.js';
import { addTargetOptions, resolveTarget } from '../contexts.js';
import type { TargetOpts } from '../client.js';
import type { NodeImageBuildPending, NodeImageBuildView, NodeImageClient } from '../../api/index.js';
import { nodePolicy } from '../policy.js';

/** `docker://` is the default scheme on the command line, as with docker and podman. */
export function cliImageUri(s: string): string {
  return s.includes('://') || s.startsWith('/') ? s : `docker://${s}`;
}

function normalizeRegistry(s: string): string {
  const r = s
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/+$/, '')
    .replace(/\/v2$/, '');
  if (r === '' || r.includes('/')) {
    throw new WarrenError('IMAGE_REF_INVALID', `'${s}' is not a registry host`, {
      hint: 'give the registry as host[:port], e.g. ghcr.io or 127.0.0.1:5000',
    });
  }
  return r === 'index.docker.io' || r === 'registry-1.docker.io' ? 'docker.io' : r;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function promptHidden(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

function progressPrinter(quiet: boolean): ((p: PullProgress) => void) | undefined {
  if (quiet || !process.stderr.isTTY) return undefined;
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (p.phase === 'download') {
      if (now - last < 200) return;
      last = now;
      process.stderr.write(`\r  downloading ${formatBytes(p.bytes ?? 0)} / ${formatBytes(p.totalBytes ?? 0)}   `);
    } else if (p.phase === 'unpack') {
      process.stderr.write(`\r  unpacking layer ${(p.bytes ?? 0) + 1} of ${p.totalBytes ?? '?'}            `);
    } else if (p.phase === 'done') {
      process.stderr.write('\r\x1b[K');
    }
  };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s + ' ' : s + ' '.repeat(n - s.length);
}

/** A local image for node-build on this machine: an existing path is a directory or a SIF here. */
function localSource(s: string): string {
  if (!s.includes('://') && !s.startsWith('/') && existsSync(s)) return resolve(s);
  return cliImageUri(s);
}

/** Node images on this machine ($WARREN_HOME) or, with a server context, on the server (admins). */
async function nodeImageClient(o: TargetOpts, onLog?: (line: string) => void): Promise<{ client: NodeImageClient; where: string; close: () => Promise<void> }> {
  const t = resolveTarget(o);
  if (t.kind === 'server') {
    const { openAdmin } = await import('../client.js');
    const { admin, close } = await openAdmin(o);
    return { client: admin, where: `the server of context ${t.name}`, close };
  }
  // On this machine: src/provision itself (the API's index would load the whole embedded engine).
  const p = await import('../../provision/index.js');
  const home = warrenHome();
  const client: NodeImageClient = {
    async nodeImageBuild(req) {
      ensureWarrenHome();
      const log: string[] = [];
      const t0 = Date.now();
      const img = await p.buildNodeImage({
        source: req.source,
        dataDir: home,
        ...(req.kernel !== undefined ? { kernel: req.kernel } : {}),
        ...(req.force ? { force: true } : {}),
        log: (line) => {
          log.push(line);
          onLog?.(line);
        },
      });
      return { ...img, durationMs: Date.now() - t0, log };
    },
    nodeImages: () => p.listNodeImages(home),
    removeNodeImages: (what) => p.removeNodeImages(home, what),
  };
  return { client, where: 'here', close: async () => {} };
}

export function register(program: Command): void {
  const image = commandGroup(program, 'image', 'container images: pull, list, remove, prune the node\'s image cache');

  image
    .command('pull')
    .description('pull an image into the node\'s image cache (docker://, oras://; docker:// is the default)')
    .argument('<image>', 'e.g. docker://ghcr.io/org/tool:1.2, 127.0.0.1:5000/x:1, oras://host/sifs/app:latest')
    .option('--platform <os/arch[/variant]>', 'platform to pull from a multi-platform image (default: this node)')
    .option('--cache-dir <dir>', 'image cache directory (default: $WARREN_HOME/cache/images)')
    .option('-q, --quiet', 'print only the image path')
    .option('--json', 'print the result as JSON')
    .action(async (uri: string, opts: { platform?: string; cacheDir?: string; quiet?: boolean; json?: boolean }) => {
      let platform;
      if (opts.platform !== undefined) {
        platform = parsePlatform(opts.platform);
        if (!platform) {
          throw new WarrenError('IMAGE_REF_INVALID', `'${opts.platform}' is not a platform`, {
            hint: 'write os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8',
          });
        }
      }
      const progress = progressPrinter(!!opts.quiet || !!opts.json);
      const img = await prepareImage(cliImageUri(uri), {
        policy: 'always',
        allowSetuid: nodePolicy(warrenHome()).allowSetuid,
        ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
        ...(platform ? { platform } : {}),
        ...(progress ? { onProgress: progress } : {}),
      });
      if (opts.json) {
        process.stdout.write(JSON.stringify(img, null, 2) + '\n');
      } else if (opts.quiet) {
        process.stdout.write(img.path + '\n');
      } else {
        const s = img.pull;
        const how = s?.cached ? 'already cached' : `downloaded ${formatBytes(s?.bytesDownloaded ?? 0)} in ${((s?.totalMs ?? 0) / 1000).toFixed(1)}s`;
        process.stdout.write(`${img.uri}\n  digest: ${img.digest ?? '-'}\n  ${img.kind}: ${img.path}\n  ${how}\n`);
      }
    });

  image
    .command('push')
    .description('push a local image to a registry: a .sif file to oras://, a root file system directory to docker://')
    .argument('<source>', 'path of a .sif file or of a root file system directory')
    .argument('<dest>', 'oras://registry/name:tag (SIF) or docker://registry/name:tag (directory); docker:// is the default')
    .action(async (source: string, dest: string) => {
      const pushed = await pushLocalImage(source, cliImageUri(dest));
      process.stdout.write(`pushed ${pushed.uri}\n  digest: ${pushed.digest}\n`);
    });

  image
    .command('ls')
    .description('list the images in the node\'s image cache')
    .option('--cache-dir <dir>', 'image cache directory (default: $WARREN_HOME/cache/images)')
    .option('--digests', 'show full digests')
    .option('--json', 'print as JSON')
    .action((opts: { cacheDir?: string; digests?: boolean; json?: boolean }) => {
      const cache = new ImageCache(opts.cacheDir ?? defaultImageCacheDir());
      const list = cache.list();
      if (opts.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      if (list.length === 0) {
        process.stdout.write(`no images in ${cache.dir}\n`);
        return;
      }
      const dw = opts.digests ? 72 : 14;
      process.stdout.write(pad('DIGEST', dw) + pad('KIND', 7) + pad('SIZE', 10) + pad('LAST USED', 21) + 'IMAGE\n');
      for (const i of list) {
        const digest = opts.digests ? i.digest : i.digest.slice(7, 19);
        const names = i.refs.length ? i.refs.map((r) => `${r.uri} (${r.platform})`).join(', ') : '<none>';
        process.stdout.write(pad(digest, dw) + pad(i.kind, 7) + pad(formatBytes(i.sizeBytes), 10) + pad(i.lastUsed.slice(0, 19) + 'Z', 21) + names + '\n');
      }
    });

  image
    .command('rm')
    .description('remove images from the node\'s image cache (by reference or digest prefix)')
    .argument('<image...>', 'image references (docker://x:1, x:1) or digests / digest prefixes')
    .option('--cache-dir <dir>', 'image cache directory (default: $WARREN_HOME/cache/images)')
    .action((refs: string[], opts: { cacheDir?: string }) => {
      const cache = new ImageCache(opts.cacheDir ?? defaultImageCacheDir());
      for (const r of refs) {
        const res = cache.remove(r);
        for (const u of res.refs) process.stdout.write(`untagged ${u}\n`);
        for (const d of res.images) process.stdout.write(`removed ${d}\n`);
      }
    });

  image
    .command('prune')
    .description('garbage-collect the image cache: unreferenced images and blobs, leftovers of crashed pulls')
    .option('-a, --all', 'remove every cached image')
    .option('--older-than <duration>', 'also remove images not used for this long (e.g. 7d, 12h)')
    .option('--cache-dir <dir>', 'image cache directory (default: $WARREN_HOME/cache/images)')
    .option('--json', 'print the result as JSON')
    .action((opts: { all?: boolean; olderThan?: string; cacheDir?: string; json?: boolean }) => {
      let olderThanSec: number | undefined;
      if (opts.olderThan !== undefined) {
        olderThanSec = parseDuration(opts.olderThan);
        if (olderThanSec === undefined) {
          throw new WarrenError('IMAGE_PRUNE_INVALID', `'${opts.olderThan}' is not a duration`, {
            hint: 'write a duration such as 90m, 12h or 7d',
          });
        }
      }
      const cache = new ImageCache(opts.cacheDir ?? defaultImageCacheDir());
      const res = cache.prune({ ...(opts.all ? { all: true } : {}), ...(olderThanSec !== undefined ? { olderThanSec } : {}) });
      if (opts.json) {
        process.stdout.write(JSON.stringify(res, null, 2) + '\n');
        return;
      }
      for (const d of res.images) process.stdout.write(`removed ${d}\n`);
      process.stdout.write(
        `pruned ${res.images.length} image(s), ${res.blobs} blob(s), ${res.temp} leftover(s); freed ${formatBytes(res.bytes)}` +
          (res.skippedBlobs ? ` (${res.skippedBlobs} blob(s) kept: a pull is in progress)` : '') +
          '\n',
      );
    });

  // --- node images (provisioning): the kernel and packed root file system a node boots ---

  addTargetOptions(
    image
      .command('node-build')
      .description('turn an image into a node image (kernel from its /boot, root file system as cpio.gz) kept by content digest; unchanged images are not rebuilt')
      .argument('<image>', 'docker://NAME:TAG, oras://..., a .sif, or a root file system directory (with a server context: on the server)')
      .option('--kernel <version|file>', 'a kernel version of the image (/boot/vmlinuz-VERSION; default: the newest), or a kernel file (a path, with a /)')
      .option('--force', 'build again even when the image is unchanged')
      .option('--json', 'print the node image as JSON'),
  ).action(async (src: string, opts: TargetOpts & { kernel?: string; force?: boolean; json?: boolean }) => {
    const { client, where, close } = await nodeImageClient(opts, opts.json ? undefined : (l) => process.stderr.write(`  ${l}\n`));
    const source = where === 'here' ? localSource(src) : cliImageUri(src);
    const kernel = opts.kernel !== undefined && where === 'here' && opts.kernel.includes('/') ? resolve(opts.kernel) : opts.kernel;
    const t0 = Date.now();
    const onWait = (p: NodeImageBuildPending) => {
      if (!opts.json) process.stderr.write(`  still building on the server (${Math.round((Date.now() - p.startedAt) / 1000)} s)${p.log.length ? `: ${p.log[p.log.length - 1]}` : ''}\n`);
    };
    const req = { source, ...(kernel !== undefined ? { kernel } : {}), ...(opts.force ? { force: true } : {}) };
    const img = await (where === 'here' ? (client.nodeImageBuild(req) as Promise<NodeImageBuildView>) : import('../../api/index.js').then(({ untilBuilt }) => untilBuilt(client, req, onWait))).finally(close);
    if (where !== 'here' && !opts.json) for (const l of img.log) process.stderr.write(`  ${l}\n`);
    if (opts.json) {
      process.stdout.write(JSON.stringify(img, null, 2) + '\n');
      return;
    }
    const ms = Date.now() - t0;
    process.stdout.write(
      `${img.reused ? 'unchanged, reused' : 'built'} ${img.source} in ${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s${where === 'here' ? '' : ` on ${where}`}\n` +
        `  digest:  ${img.digest}\n` +
        `  kernel:  ${img.kernelVersion} (${formatBytes(img.kernelSize)})\n` +
        `  rootfs:  ${formatBytes(img.rootfsSize)} cpio.gz\n` +
        `  dir:     ${img.dir}\n`,
    );
  });

  addTargetOptions(image.command('node-list').description('the node images (newest first): digest, source, kernel, sizes').option('--json', 'print them as JSON')).action(
    async (opts: TargetOpts & { json?: boolean }) => {
      const { client, close } = await nodeImageClient(opts);
      const all = await client.nodeImages().finally(close);
      if (opts.json) {
        process.stdout.write(JSON.stringify(all, null, 2) + '\n');
        return;
      }
      if (all.length === 0) {
        process.stdout.write('no node images (`warren image node-build IMAGE` makes one)\n');
        return;
      }
      process.stdout.write(`${pad('DIGEST', 20)}${pad('KERNEL', 22)}${pad('ROOTFS', 11)}${pad('BUILT', 21)}SOURCE\n`);
      for (const i of all) {
        const built = new Date(i.builtAt).toISOString().slice(0, 19).replace('T', ' ');
        process.stdout.write(`${pad(i.digest.slice(0, 19), 20)}${pad(i.kernelVersion, 22)}${pad(formatBytes(i.rootfsSize), 11)}${pad(built, 21)}${i.source}\n`);
      }
    },
  );

  addTargetOptions(image.command('node-rm').description('remove a node image: by digest (or a unique prefix), or every one built from a source').argument('<digest|source>')).action(
    async (what: string, opts: TargetOpts) => {
      const { client, where, close } = await nodeImageClient(opts);
      const removed = await client.removeNodeImages(where === 'here' && existsSync(what) ? resolve(what) : what).finally(close);
      for (const i of removed) process.stdout.write(`removed ${i.digest} (${i.source})\n`);
    },
  );

  const registry = commandGroup(program, 'registry', 'credentials for container registries');

  registry
    .command('login')
    .description('store credentials for a registry in $WARREN_HOME/registries.json (mode 0600)')
    .argument('<registry>', 'registry host[:port], e.g. ghcr.io or 127.0.0.1:5000')
    .requiredOption('-u, --username <user>', 'user name')
    .option('--password-stdin', 'read the password (or access token) from standard input')
    .option('--no-verify', 'store without checking the credentials against the registry')
    .action(async (reg: string, opts: { username: string; passwordStdin?: boolean; verify: boolean }) => {
      const host = normalizeRegistry(reg);
      let password: string;
      if (opts.passwordStdin) password = await readAllStdin();
      else if (process.stdin.isTTY) password = await promptHidden(`Password for ${opts.username}@${host}: `);
      else {
        throw new WarrenError('IMAGE_LOGIN_INVALID', 'no password given', {
          hint: `pipe it in: echo "$TOKEN" | warren registry login ${host} -u ${opts.username} --password-stdin`,
        });
      }
      if (password === '') {
        throw new WarrenError('IMAGE_LOGIN_INVALID', 'the password is empty', {
          hint: `give the password or access token on standard input with --password-stdin`,
        });
      }
      const auth = { username: opts.username, password };
      if (opts.verify) await checkRegistryLogin(host, auth);
      saveCredentials(host, auth);
      process.stdout.write(`login succeeded: credentials for ${host} stored in ${credentialsFile()}\n`);
    });

  registry
    .command('logout')
    .description('forget the stored credentials for a registry')
    .argument('<registry>', 'registry host[:port]')
    .action((reg: string) => {
      const host = normalizeRegistry(reg);
      if (!removeCredentials(host)) {
        throw new WarrenError('IMAGE_NOT_LOGGED_IN', `no credentials stored for ${host}`, {
          hint: `see ${credentialsFile()}`,
        });
      }
      process.stdout.write(`removed credentials for ${host}\n`);
    });
}
