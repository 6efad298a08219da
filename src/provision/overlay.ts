// Overlays (Warewulf's): file trees laid over a node's root file system, with templates filled
// per node. Built-in ones ship in the package's `overlays/<name>/`; user ones live in
// `DATA/provision/overlays/<name>/` (a user overlay of a built-in's name shadows it). A file
// ending in `.tmpl` is a Go text/template (src/app's), rendered per node with the suffix
// dropped; every other file, directory and symbolic link is copied as it is, mode kept. An
// overlay may hold `.warren-modes` at its top: lines `PATH MODE` (octal) that set the mode of
// an output path (git keeps only 0644 and 0755; an env file with a token must be 0600). A node's
// overlays are packed, in order (later files win), as one root-owned cpio.gz archive the kernel
// unpacks over the node image (docs/provisioning.md#overlays).
//
// Rendered archives are cached in `DATA/provision/rendered/<node>/<key>.cpio.gz`, the key a hash
// of every source file (path, type, mode, content) and of the template context: a change of the
// node, a profile, the inventory or a template makes a new key, so the next request rebuilds.
// An archive that holds a join token (the system overlay) is never cached.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarrenError, didYouMean } from '../common/index.js';
import { GoTemplateError, executeGoTemplate, executeGoTemplateFiles, toGoValue } from '../app/index.js';
import { packCpioGz } from './archive.js';
import { parseIp, resolveNode, DEFAULT_KERNEL_ARGS, DEFAULT_RUNTIME_OVERLAYS, DEFAULT_SYSTEM_OVERLAYS, withProvisionDefaults } from './inventory.js';
import type { InventoryStore, NetDevice, ResolvedNode } from './types.js';

/** What a node's templates are filled with (docs/provisioning.md#overlays lists the template fields). */
export interface OverlayContext {
  node: ResolvedNode;
  /** The whole inventory (for /etc/hosts). */
  nodes: ResolvedNode[];
  server: {
    /** The https URL agents join. */
    url: string;
    /** The cluster CA (PEM) agents trust the server with. */
    caPem: string;
    /** The boot service's http base. */
    bootUrl: string;
  };
  /** The join token minted for this node and boot (system overlay only; null otherwise). */
  joinToken: string | null;
  cluster: { trustDomain: string };
}

/** Overlays and kernel arguments of a node that sets none (nor do its profiles). */
/** What `overlay show --node` prints for the join token (it exists only at boot). */
export const TOKEN_PLACEHOLDER = '<join token: minted at boot>';

/** The file at an overlay's top that sets output modes. */
export const MODES_FILE = '.warren-modes';

/** The package's built-in overlays (`overlays/` beside dist/). */
export function builtinOverlaysDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'overlays'); // dist/src/provision
}

export const userOverlaysDir = (dataDir: string): string => join(dataDir, 'provision', 'overlays');
export const renderedDir = (dataDir: string): string => join(dataDir, 'provision', 'rendered');

const OVERLAY_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function checkOverlayName(name: string): void {
  if (!OVERLAY_NAME_RE.test(name) || name.includes('..')) {
    throw new WarrenError('PROVISION_OVERLAY_BAD_PATH', `"${name}" is not a valid overlay name`, { hint: 'use lower-case letters, digits, ".", "_" and "-", starting with a letter or digit, at most 63 characters, e.g. site-motd' });
  }
}

/** A path inside an overlay, normalized (no leading /, no . or ..): `etc/hosts.tmpl`. */
export function overlayPath(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.length === 0 || parts.includes('..') || p.includes('\0')) {
    throw new WarrenError('PROVISION_OVERLAY_BAD_PATH', `"${p}" is not a path inside an overlay`, { hint: 'give a path relative to the overlay\'s top, without "..", e.g. etc/motd (a leading / is allowed: /etc/motd)' });
  }
  return parts.join('/');
}

export interface OverlayInfo {
  name: string;
  /** Where its files are read from (the user copy when there is one). */
  dir: string;
  source: 'builtin' | 'user';
  /** A user overlay that has a built-in's name (and hides it). */
  shadowsBuiltin: boolean;
  /** How many files and links it holds (directories not counted). */
  files: number;
}

export interface OverlayEntry {
  /** Path in the overlay (`etc/hostname.tmpl`). */
  path: string;
  /** Path on the node (`etc/hostname`). */
  target: string;
  type: 'file' | 'dir' | 'symlink';
  /** The mode on the node (after `.warren-modes`). */
  mode: number;
  template: boolean;
  /** A template that makes files of other names beside it (`file NAME`). */
  makesFiles: boolean;
  size: number;
  /** For a symbolic link: where it points. */
  link?: string;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function names(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => OVERLAY_NAME_RE.test(n) && isDir(join(dir, n)));
  } catch {
    return [];
  }
}

/** Every overlay, built-in and user, by name. */
export async function listOverlays(dataDir: string): Promise<OverlayInfo[]> {
  const builtin = new Set(names(builtinOverlaysDir()));
  const user = new Set(names(userOverlaysDir(dataDir)));
  const out: OverlayInfo[] = [];
  for (const name of [...new Set([...builtin, ...user])].sort()) {
    const isUser = user.has(name);
    const dir = join(isUser ? userOverlaysDir(dataDir) : builtinOverlaysDir(), name);
    out.push({ name, dir, source: isUser ? 'user' : 'builtin', shadowsBuiltin: isUser && builtin.has(name), files: walk(dir).filter((e) => e.type !== 'dir').length });
  }
  return out;
}

/** The directory an overlay is read from (the user copy over the built-in). PROVISION_OVERLAY_UNKNOWN when there is none. */
export function overlayDir(dataDir: string, name: string): { dir: string; source: 'builtin' | 'user' } {
  checkOverlayName(name);
  const user = join(userOverlaysDir(dataDir), name);
  if (isDir(user)) return { dir: user, source: 'user' };
  const builtin = join(builtinOverlaysDir(), name);
  if (isDir(builtin)) return { dir: builtin, source: 'builtin' };
  const known = [...new Set([...names(builtinOverlaysDir()), ...names(userOverlaysDir(dataDir))])];
  const m = didYouMean(name, known);
  throw new WarrenError('PROVISION_OVERLAY_UNKNOWN', `there is no overlay "${name}"${m !== undefined ? ` (did you mean "${m}"?)` : ''}`, {
    hint: `\`warren overlay list\` shows the overlays (${known.join(', ') || 'none'}); make one with \`warren overlay import ${name} FILE\``,
    details: { overlay: name },
  });
}

interface RawEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  st: Stats;
}

function walk(root: string): RawEntry[] {
  const out: RawEntry[] = [];
  const rec = (rel: string): void => {
    for (const n of readdirSync(rel ? join(root, rel) : root).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      if (p === MODES_FILE) continue;
      const st = lstatSync(join(root, p));
      if (st.isSymbolicLink()) out.push({ path: p, type: 'symlink', st });
      else if (st.isDirectory()) {
        out.push({ path: p, type: 'dir', st });
        rec(p);
      } else if (st.isFile()) out.push({ path: p, type: 'file', st });
      // sockets, fifos, devices: not overlay content
    }
  };
  if (isDir(root)) rec('');
  return out;
}

/** `.warren-modes`: target path -> mode. */
function readModes(dir: string, overlay: string): Map<string, number> {
  const m = new Map<string, number>();
  const f = join(dir, MODES_FILE);
  if (!existsSync(f)) return m;
  readFileSync(f, 'utf8').split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const r = /^(\S+)\s+(0?[0-7]{3,4})$/.exec(line);
    if (!r) {
      throw new WarrenError('PROVISION_OVERLAY_BAD_PATH', `${overlay}/${MODES_FILE}:${i + 1}: "${raw.trim()}" is not PATH MODE`, { hint: 'write one output path and an octal mode a line, e.g. etc/warren/agent.env 0600' });
    }
    m.set(overlayPath(r[1]!), parseInt(r[2]!, 8));
  });
  return m;
}

const targetOf = (p: string): string => (p.endsWith('.tmpl') ? p.slice(0, -5) : p);

/** The files of an overlay, in path order, as they land on the node. */
export function overlayEntries(dataDir: string, name: string): OverlayEntry[] {
  const { dir } = overlayDir(dataDir, name);
  const modes = readModes(dir, name);
  return walk(dir).map((e) => {
    const template = e.type === 'file' && e.path.endsWith('.tmpl');
    const target = template ? targetOf(e.path) : e.path;
    const makesFiles = template && /\{\{-?\s*file[\s(]/.test(readFileSync(join(dir, e.path), 'utf8'));
    const entry: OverlayEntry = { path: e.path, target, type: e.type, mode: modes.get(target) ?? e.st.mode & 0o7777, template, makesFiles, size: e.st.size };
    if (e.type === 'symlink') entry.link = readlinkSync(join(dir, e.path));
    return entry;
  });
}

function findEntry(dataDir: string, overlay: string, file: string): OverlayEntry {
  const p = overlayPath(file);
  const entries = overlayEntries(dataDir, overlay);
  const e = entries.find((x) => x.path === p) ?? entries.find((x) => x.target === p && x.type !== 'dir');
  if (!e || e.type === 'dir') {
    const m = didYouMean(p, entries.filter((x) => x.type !== 'dir').map((x) => x.target));
    throw new WarrenError('PROVISION_OVERLAY_UNKNOWN', `overlay ${overlay} has no file ${p}${e ? ' (it is a directory)' : ''}${m !== undefined ? ` (did you mean "${m}"?)` : ''}`, {
      hint: `\`warren overlay show ${overlay}\` lists its files`,
      details: { overlay, file: p },
    });
  }
  return e;
}

// ---- the template context -------------------------------------------------------------------

function netmask(prefix: number): string {
  const v = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

function deviceData(key: string, d: NetDevice, primary: boolean): Record<string, unknown> {
  let address = '';
  let prefix = 0;
  if (d.ip) {
    const p = parseIp(d.ip);
    address = p.ip;
    prefix = p.prefix;
  }
  return {
    Name: key,
    Device: d.device ?? key,
    MAC: d.mac ?? '',
    IP: d.ip ? `${address}/${prefix}` : '',
    Address: address,
    Prefix: prefix,
    Netmask: d.ip ? netmask(prefix) : '',
    Gateway: d.gateway ?? '',
    DNS: [...(d.dns ?? [])],
    MTU: d.mtu ?? 0,
    Primary: primary,
  };
}

const sortedObj = <T>(o: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

function nodeData(raw: ResolvedNode): Record<string, unknown> {
  const n = withProvisionDefaults(raw);
  const primaryKey = n.primary ? (Object.entries(n.network).find(([k, d]) => (d.device ?? k) === n.primary!.device)?.[0] ?? n.primary.device) : null;
  const network = Object.fromEntries(Object.entries(sortedObj(n.network)).map(([k, d]) => [k, deviceData(k, d, k === primaryKey)]));
  const tags = sortedObj(n.tags);
  return {
    Name: n.name,
    Image: n.image ?? '',
    Kernel: n.kernel ?? '',
    KernelArgs: [...n.kernelArgs],
    Profiles: [...n.profiles],
    Tags: tags,
    Labels: Object.entries(tags).map(([k, v]) => `${k}=${v}`).join(','),
    SSHKeys: [...n.sshKeys],
    Comment: n.comment ?? '',
    SystemOverlays: [...n.systemOverlays],
    RuntimeOverlays: [...n.runtimeOverlays],
    Network: network,
    Primary: primaryKey !== null ? network[primaryKey] : null,
  };
}

/** The template data of a context, as plain JSON (also what the cache key hashes). */
export function templateDataOf(ctx: OverlayContext): Record<string, unknown> {
  let host = '';
  try {
    host = new URL(ctx.server.url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    host = '';
  }
  return {
    Node: nodeData(ctx.node),
    Nodes: [...ctx.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(nodeData),
    Server: { URL: ctx.server.url, CA: ctx.server.caPem, BootURL: ctx.server.bootUrl, Host: host },
    JoinToken: ctx.joinToken ?? '',
    Cluster: { TrustDomain: ctx.cluster.trustDomain },
  };
}

// ---- rendering --------------------------------------------------------------------------------

function templateError(node: string, overlay: string, file: string, e: GoTemplateError): WarrenError {
  const where = `${node}: ${overlay}/${file}:${e.line}:${e.col}`;
  let hint = `fix the template (\`warren overlay edit ${overlay} ${file}\`); the syntax is Go text/template and the fields are listed in docs/provisioning.md#overlays`;
  let message = e.message;
  if (e.kind === 'missingKey' && e.key !== undefined) {
    const m = didYouMean(e.key, e.keys ?? []);
    message += m !== undefined ? ` (did you mean "${m}"?)` : '';
    hint = `the fields there are ${(e.keys ?? []).join(', ') || 'none'}; a node's own values come from \`warren node set\` and its profiles (docs/provisioning.md#overlays)`;
  } else if (e.kind === 'fail') {
    hint = `the template refused node ${node}'s values: set what its message asks for (\`warren node set ${node} ...\`) or change the template`;
  }
  return new WarrenError('PROVISION_TEMPLATE', `${where}: ${message}`, { hint, details: { node, overlay, file, line: e.line, col: e.col, kind: e.kind } });
}

/**
 * Render a template entry: its output path and text, then one more for each `file NAME` it
 * calls (beside it). The text before the first `file` is the template's own output unless it is
 * only white space.
 */
function renderEntry(dir: string, e: OverlayEntry, data: unknown, node: string, overlay: string): { target: string; text: string }[] {
  let parts;
  try {
    parts = executeGoTemplateFiles(readFileSync(join(dir, e.path), 'utf8'), toGoValue(data), { missingKey: 'error' });
  } catch (x) {
    if (x instanceof GoTemplateError) throw templateError(node, overlay, e.path, x);
    throw x;
  }
  const at = e.target.includes('/') ? e.target.slice(0, e.target.lastIndexOf('/') + 1) : '';
  const out: { target: string; text: string }[] = [];
  for (const p of parts) {
    if (p.name === null) {
      if (parts.length === 1 || p.text.trim() !== '') out.push({ target: e.target, text: p.text });
    } else out.push({ target: `${at}${p.name}`, text: p.text });
  }
  return out;
}

/**
 * One file of an overlay as it lands on the node: a template rendered for the context's node
 * (FILE may name the template, its output, or a file it makes with `file NAME`), another file
 * as it is, a symbolic link as `PATH -> TARGET`.
 */
export async function renderOverlayFile(dataDir: string, overlay: string, file: string, ctx: OverlayContext): Promise<string> {
  const { dir } = overlayDir(dataDir, overlay);
  const p = overlayPath(file);
  const entries = overlayEntries(dataDir, overlay);
  const direct = entries.find((x) => x.type !== 'dir' && (x.path === p || x.target === p));
  const data = templateDataOf(ctx);
  if (direct && !direct.template) return direct.type === 'symlink' ? `${direct.target} -> ${direct.link}\n` : readFileSync(join(dir, direct.path), 'utf8');
  if (direct) {
    const parts = renderEntry(dir, direct, data, ctx.node.name, overlay);
    if (parts.length === 1 && parts[0]!.target === direct.target) return parts[0]!.text;
    return parts.map((x) => `==> ${x.target} <==\n${x.text}`).join('\n');
  }
  // a file made by a template of its directory with `file NAME`
  const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
  for (const e of entries.filter((x) => x.template && (x.target.includes('/') ? x.target.slice(0, x.target.lastIndexOf('/')) : '') === parent)) {
    const hit = renderEntry(dir, e, data, ctx.node.name, overlay).find((x) => x.target === p);
    if (hit) return hit.text;
  }
  findEntry(dataDir, overlay, p); // PROVISION_OVERLAY_UNKNOWN with a did-you-mean
  throw new Error('unreachable');
}

/** Check that an overlay file parses as a template (after `overlay edit`). */
export function checkTemplateSyntax(dataDir: string, overlay: string, file: string): void {
  const e = findEntry(dataDir, overlay, file);
  if (!e.template) return;
  const { dir } = overlayDir(dataDir, overlay);
  try {
    executeGoTemplate(readFileSync(join(dir, e.path), 'utf8'), toGoValue({}), { missingKey: 'zero' });
  } catch (x) {
    if (x instanceof GoTemplateError && x.kind === 'syntax') throw templateError('(any node)', overlay, e.path, x);
    // other errors depend on the node's data: `overlay build` finds them
  }
}

/** Put one overlay's files into `stage` (files already there from earlier overlays are replaced). */
function applyOverlay(dataDir: string, overlay: string, data: unknown, node: string, stage: string): void {
  const { dir } = overlayDir(dataDir, overlay);
  const modes = readModes(dir, overlay);
  const dirModes: [string, number][] = [];
  for (const e of overlayEntries(dataDir, overlay)) {
    const out = join(stage, e.target);
    let existing: Stats | undefined;
    try {
      existing = lstatSync(out);
    } catch {
      existing = undefined;
    }
    if (e.type === 'dir') {
      // a directory replaces an earlier overlay's file or link there (never written through)
      if (existing && !existing.isDirectory()) rmSync(out, { recursive: true, force: true });
      mkdirSync(out, { recursive: true });
      dirModes.push([out, e.mode]);
      continue;
    }
    if (existing) rmSync(out, { recursive: true, force: true });
    mkdirSync(dirname(out), { recursive: true });
    if (e.type === 'symlink') symlinkSync(e.link!, out);
    else if (e.template) {
      for (const part of renderEntry(dir, e, data, node, overlay)) {
        const o = join(stage, part.target);
        if (isLink(o) || existsSync(o)) rmSync(o, { recursive: true, force: true });
        writeFileSync(o, part.text, { mode: 0o600 });
        chmodSync(o, modes.get(part.target) ?? e.mode);
      }
      continue;
    } else copyFileSync(join(dir, e.path), out);
    if (e.type === 'file') chmodSync(out, e.mode);
  }
  // Directories last, deepest first, so that a read-only one does not stop its own files.
  for (const [p, mode] of dirModes.reverse()) chmodSync(p, mode);
}

/** The cache key of a set of overlays for a context: every source entry and the template data. */
export function overlayKey(dataDir: string, overlays: readonly string[], ctx: OverlayContext): string {
  const h = createHash('sha256');
  h.update('warren-overlay-v1\0');
  for (const o of overlays) {
    const { dir } = overlayDir(dataDir, o);
    h.update(`overlay ${o}\0`);
    const modes = join(dir, MODES_FILE);
    if (existsSync(modes)) h.update(`modes\0`).update(readFileSync(modes)).update('\0');
    for (const e of walk(dir)) {
      h.update(`${e.type} ${e.path} ${(e.st.mode & 0o7777).toString(8)}\0`);
      if (e.type === 'file') h.update(readFileSync(join(dir, e.path)));
      else if (e.type === 'symlink') h.update(readlinkSync(join(dir, e.path)));
      h.update('\0');
    }
  }
  h.update(JSON.stringify(templateDataOf(ctx)));
  return h.digest('hex');
}

export interface OverlayArchive {
  sha256: string;
  size: number;
  /** Where the archive is: `out`, or the cached file. */
  path: string;
  /** Served from the cache (nothing rendered). */
  cached: boolean;
}

export interface BuildOverlayOptions {
  /**
   * The archive holds a secret (default: when the context has a join token): it is rendered for
   * this request only, never cached, written 0600 in a private directory; the caller removes it
   * once sent (`out`, or the returned path).
   */
  secret?: boolean;
  /** Cached archives kept per node (default 4; the oldest go). */
  keep?: number;
}

function privateDir(p: string): void {
  mkdirSync(p, { recursive: true, mode: 0o700 });
  chmodSync(p, 0o700);
}

/**
 * Render `overlays` (in order; files of later ones win) for the context's node and pack them as
 * one root-owned cpio.gz at `out` (or, when `out` is null, in the cache, whose path is returned).
 * An unchanged node and unchanged overlays are served from `DATA/provision/rendered/<node>/`.
 * Errors: PROVISION_OVERLAY_UNKNOWN, PROVISION_TEMPLATE (node, overlay file, line).
 */
export async function buildOverlayArchive(dataDir: string, overlays: string[], ctx: OverlayContext, out: string | null = null, opts: BuildOverlayOptions = {}): Promise<OverlayArchive> {
  const secret = opts.secret ?? ctx.joinToken !== null;
  const node = ctx.node.name;
  for (const o of overlays) overlayDir(dataDir, o);
  const base = renderedDir(dataDir);
  privateDir(base);
  const nodeDir = join(base, node);
  privateDir(nodeDir);
  const key = secret ? null : overlayKey(dataDir, overlays, ctx);
  const cached = key ? join(nodeDir, `${key}.cpio.gz`) : null;
  const meta = key ? join(nodeDir, `${key}.json`) : null;
  if (cached && meta && existsSync(cached) && existsSync(meta)) {
    try {
      const m = JSON.parse(readFileSync(meta, 'utf8')) as { sha256: string; size: number };
      if (statSync(cached).size === m.size) {
        if (out === null) return { sha256: m.sha256, size: m.size, path: cached, cached: true };
        placeAt(cached, out);
        return { sha256: m.sha256, size: m.size, path: out, cached: true };
      }
    } catch {
      // a damaged entry: build it again
    }
  }
  const data = templateDataOf(ctx);
  const stage = mkdtempSync(join(nodeDir, '.stage-'));
  const target = out ?? cached ?? join(nodeDir, `secret-${randomBytes(8).toString('hex')}.cpio.gz`);
  const tmp = join(nodeDir, `.pack-${randomBytes(6).toString('hex')}.cpio.gz`);
  try {
    chmodSync(stage, 0o755); // the archive's root entry is not listed, but keep the tree readable
    for (const o of overlays) applyOverlay(dataDir, o, data, node, stage);
    settleTimes(stage, newestSource(dataDir, overlays));
    const r = await packCpioGz(stage, tmp, { rootOwned: true });
    if (secret) chmodSync(tmp, 0o600);
    if (cached && meta) {
      // into the cache first (same directory: an atomic rename), then a copy for `out`
      renameSync(tmp, cached);
      const m = `${meta}.${randomBytes(6).toString('hex')}.tmp`;
      writeFileSync(m, JSON.stringify({ sha256: r.sha256, size: r.size, overlays, builtAt: Date.now() }));
      renameSync(m, meta);
      if (out !== null) placeAt(cached, out);
      pruneCache(nodeDir, opts.keep ?? 4, key!);
    } else placeAt(tmp, target, true);
    return { sha256: r.sha256, size: r.size, path: target, cached: false };
  } finally {
    rmSync(tmp, { force: true });
    removeTree(stage);
  }
}

/** The newest modification time of the overlays' sources (seconds). */
function newestSource(dataDir: string, overlays: readonly string[]): number {
  let t = 0;
  for (const o of overlays) for (const e of walk(overlayDir(dataDir, o).dir)) t = Math.max(t, Math.floor(e.st.mtimeMs / 1000));
  return t;
}

/**
 * Give every entry of the staged tree the same time, so that one key always packs to the same
 * archive (cpio keeps times): the newest source file's, not the moment of rendering.
 */
function settleTimes(root: string, t: number): void {
  const rec = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isDirectory()) rec(p);
      lutimesSync(p, t, t);
    }
  };
  rec(root);
}

/**
 * Put the file `from` at `to` whole (a reader never sees half of it): renamed when `move` and on
 * the same file system, else copied beside `to` (its mode kept: 0600 stays 0600) and renamed.
 */
function placeAt(from: string, to: string, move = false): void {
  if (move) {
    try {
      renameSync(from, to);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    }
  }
  const tmp = `${to}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    copyFileSync(from, tmp);
    chmodSync(tmp, statSync(from).mode & 0o777);
    renameSync(tmp, to);
  } finally {
    rmSync(tmp, { force: true });
    if (move) rmSync(from, { force: true });
  }
}

/** rm -rf that also gets through directories a `.warren-modes` made read-only. */
function removeTree(p: string): void {
  try {
    rmSync(p, { recursive: true, force: true });
  } catch {
    const fix = (d: string): void => {
      try {
        chmodSync(d, 0o700);
        for (const n of readdirSync(d)) {
          const c = join(d, n);
          if (lstatSync(c).isDirectory()) fix(c);
        }
      } catch {
        // best effort
      }
    };
    fix(p);
    rmSync(p, { recursive: true, force: true });
  }
}

function pruneCache(nodeDir: string, keep: number, current: string): void {
  const entries = readdirSync(nodeDir)
    .filter((n) => /^[0-9a-f]{64}\.json$/.test(n) && !n.startsWith(current))
    .map((n) => {
      try {
        return { key: n.slice(0, 64), t: statSync(join(nodeDir, n)).mtimeMs };
      } catch {
        return { key: n.slice(0, 64), t: 0 }; // removed by a concurrent prune
      }
    })
    .sort((a, b) => b.t - a.t);
  for (const { key } of entries.slice(Math.max(keep - 1, 0))) {
    rmSync(join(nodeDir, `${key}.json`), { force: true });
    rmSync(join(nodeDir, `${key}.cpio.gz`), { force: true });
  }
}

/** Drop a node's rendered archives (when it leaves the inventory). */
export function removeRendered(dataDir: string, node: string): void {
  rmSync(join(renderedDir(dataDir), node), { recursive: true, force: true });
}

// ---- one build of every node -------------------------------------------------------------------

export interface NodeOverlayBuild {
  node: string;
  /** The runtime overlays' archive (cached), or null when it failed. */
  runtime: OverlayArchive | null;
  /** The system overlays rendered with the token placeholder (checked, not kept). */
  systemOk: boolean;
  errors: WarrenError[];
}

/**
 * Render the system and runtime overlays of each context's node: every node is tried, and the
 * errors of all are returned (the CLI reports them at once). The runtime archive goes to the
 * cache; the system one is rendered with its token as given and thrown away.
 */
export async function buildNodeOverlays(dataDir: string, ctxs: readonly OverlayContext[]): Promise<NodeOverlayBuild[]> {
  const out: NodeOverlayBuild[] = [];
  for (const ctx of ctxs) {
    const n = withProvisionDefaults(ctx.node);
    const r: NodeOverlayBuild = { node: n.name, runtime: null, systemOk: false, errors: [] };
    try {
      const a = await buildOverlayArchive(dataDir, n.systemOverlays, ctx, null, { secret: true });
      rmSync(a.path, { force: true });
      r.systemOk = true;
    } catch (e) {
      if (!(e instanceof WarrenError)) throw e;
      r.errors.push(e);
    }
    try {
      r.runtime = await buildOverlayArchive(dataDir, n.runtimeOverlays, { ...ctx, joinToken: null }, null, { secret: false });
    } catch (e) {
      if (!(e instanceof WarrenError)) throw e;
      r.errors.push(e);
    }
    out.push(r);
  }
  return out;
}

// ---- editing --------------------------------------------------------------------------------------

/** The user copy of an overlay (made from the built-in of that name, when there is one and no copy yet). */
export function ensureUserOverlay(dataDir: string, name: string, create: boolean): string {
  checkOverlayName(name);
  const user = join(userOverlaysDir(dataDir), name);
  if (isDir(user)) return user;
  const builtin = join(builtinOverlaysDir(), name);
  if (!isDir(builtin) && !create) overlayDir(dataDir, name); // throws PROVISION_OVERLAY_UNKNOWN
  mkdirSync(userOverlaysDir(dataDir), { recursive: true });
  const tmp = `${user}.${randomBytes(6).toString('hex')}.tmp`;
  if (isDir(builtin)) copyTree(builtin, tmp);
  else mkdirSync(tmp, { mode: 0o755 });
  renameSync(tmp, user);
  return user;
}

function copyTree(src: string, dest: string): void {
  const st = lstatSync(src);
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dest);
  else if (st.isDirectory()) {
    mkdirSync(dest, { recursive: true });
    for (const n of readdirSync(src)) copyTree(join(src, n), join(dest, n));
    chmodSync(dest, st.mode & 0o7777);
  } else if (st.isFile()) {
    copyFileSync(src, dest);
    chmodSync(dest, st.mode & 0o7777);
  }
}

/**
 * The user file `overlay edit OVERLAY FILE` opens: a built-in overlay is copied to the user
 * directory first; a file that is not there yet is created empty. Returns its path.
 */
export function userFileForEdit(dataDir: string, overlay: string, file: string): { path: string; created: boolean; copiedBuiltin: boolean } {
  const p = overlayPath(file);
  const had = isDir(join(userOverlaysDir(dataDir), overlay));
  const dir = ensureUserOverlay(dataDir, overlay, false);
  // edit the template when FILE names its output
  let rel = p;
  if (!existsSync(join(dir, p)) && existsSync(join(dir, `${p}.tmpl`))) rel = `${p}.tmpl`;
  const path = join(dir, rel);
  inside(dir, path);
  let created = false;
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, '', { mode: 0o644 });
    created = true;
  } else if (lstatSync(path).isDirectory() || lstatSync(path).isSymbolicLink()) {
    throw new WarrenError('PROVISION_OVERLAY_BAD_PATH', `${overlay}/${rel} is a ${lstatSync(path).isDirectory() ? 'directory' : 'symbolic link'}, not a file to edit`, { hint: `\`warren overlay show ${overlay}\` lists its files` });
  }
  return { path, created, copiedBuiltin: !had };
}

function inside(dir: string, p: string): void {
  const r = relative(dir, p);
  if (r === '' || r.startsWith('..') || r.startsWith(sep)) throw new WarrenError('PROVISION_OVERLAY_BAD_PATH', `${p} is not inside the overlay ${dir}`, { hint: 'give a path inside the overlay, e.g. etc/motd' });
}

/**
 * `overlay import OVERLAY SRC [DEST]`: copy a file or a directory (its contents) into an
 * overlay, at DEST (default: SRC's own absolute path, as on this machine), making the overlay
 * (a user copy of a built-in) when needed. Returns the overlay paths written.
 */
export function importIntoOverlay(dataDir: string, overlay: string, src: string, dest?: string): { dir: string; written: string[]; created: boolean } {
  checkOverlayName(overlay);
  let st: Stats;
  try {
    st = statSync(src);
  } catch {
    throw new WarrenError('PROVISION_OVERLAY_BAD_PATH', `cannot import ${src}: no such file or directory`, { hint: 'give an existing file or directory to copy into the overlay' });
  }
  const target = overlayPath(dest ?? resolve(src));
  const existed = isDir(join(userOverlaysDir(dataDir), overlay)) || isDir(join(builtinOverlaysDir(), overlay));
  const dir = ensureUserOverlay(dataDir, overlay, true);
  const out = join(dir, target);
  inside(dir, out);
  const written: string[] = [];
  const copy = (from: string, to: string, rel: string): void => {
    const s = lstatSync(from);
    if (s.isDirectory()) {
      mkdirSync(to, { recursive: true });
      for (const n of readdirSync(from).sort()) copy(join(from, n), join(to, n), `${rel}/${n}`);
      chmodSync(to, s.mode & 0o7777);
      return;
    }
    mkdirSync(dirname(to), { recursive: true });
    if (existsSync(to) || isLink(to)) rmSync(to, { recursive: true, force: true });
    if (s.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
    else if (s.isFile()) {
      copyFileSync(from, to);
      chmodSync(to, s.mode & 0o7777);
    } else return;
    written.push(rel);
  };
  copy(resolve(src), out, target);
  return { dir, written, created: !existed };
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** `overlay delete OVERLAY`: a user overlay only (a shadowed built-in comes back). */
export function deleteOverlay(dataDir: string, name: string): { restoredBuiltin: boolean } {
  checkOverlayName(name);
  const user = join(userOverlaysDir(dataDir), name);
  const builtin = isDir(join(builtinOverlaysDir(), name));
  if (!isDir(user)) {
    if (builtin) throw new WarrenError('PROVISION_OVERLAY_BUILTIN', `overlay ${name} is built in (shipped with Warren): it cannot be deleted`, { hint: `to change it, \`warren overlay edit ${name} FILE\` makes a user copy that shadows it; a node stops using it with \`warren node set NODE --system-overlays ...\`` });
    overlayDir(dataDir, name); // PROVISION_OVERLAY_UNKNOWN
  }
  removeTree(user);
  return { restoredBuiltin: builtin };
}

// ---- contexts from the inventory -----------------------------------------------------------------

/** The server's side of a context, for a preview on this machine (`overlay show --node`, `overlay build`). */
export function previewServer(dataDir: string, o: { url?: string; bootUrl?: string; host: string }): OverlayContext['server'] {
  const ca = join(dataDir, 'ca.pem');
  return {
    url: o.url ?? `https://${o.host}:8443`,
    caPem: existsSync(ca) ? readFileSync(ca, 'utf8') : `<cluster CA: ${ca}, written by warren server --data ${dataDir}>\n`,
    bootUrl: o.bootUrl ?? `http://${o.host}:9873`,
  };
}

/**
 * The contexts of the named nodes (all when `names` is null), each with the whole inventory for
 * /etc/hosts. PROVISION_NOT_FOUND names every node that is not in the inventory; a node with
 * an unknown profile is PROVISION_PROFILE_UNKNOWN.
 */
export async function overlayContexts(inv: InventoryStore, names: readonly string[] | null, base: Omit<OverlayContext, 'node' | 'nodes'>): Promise<OverlayContext[]> {
  const [nodes, profiles] = await Promise.all([inv.listInventoryNodes(), inv.listProfiles()]);
  const byProfile = new Map(profiles.map((p) => [p.name, p]));
  const resolved = nodes.map((n) => resolveNode(n, byProfile));
  const byName = new Map(resolved.map((n) => [n.name, n]));
  const missing = (names ?? []).filter((n) => !byName.has(n));
  if (missing.length) {
    const m = missing.length === 1 ? didYouMean(missing[0]!, [...byName.keys()]) : undefined;
    throw new WarrenError('PROVISION_NOT_FOUND', `${missing.length === 1 ? 'node' : 'nodes'} ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in the inventory${m !== undefined ? ` (did you mean "${m}"?)` : ''}`, {
      hint: '`warren node list` shows the nodes; add one with `warren node add NAME --mac MAC --ip IP`',
      details: { nodes: missing },
    });
  }
  const chosen = names === null ? resolved : names.map((n) => byName.get(n)!);
  return chosen.map((node) => ({ ...base, node, nodes: resolved }));
}
