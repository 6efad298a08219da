// `warren overlay list|show|build|edit|import|delete`: the provisioning overlays of this machine's
// data directory (a server's --data DIR, or $WARREN_HOME), docs/provisioning.md#overlays. The
// work is in src/provision; node data comes from the inventory of the store (the embedded one,
// or the server's with --data and --store).
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { WarrenError, formatBytes, warrenHome } from '../../common/index.js';
import {
  TOKEN_PLACEHOLDER, buildNodeOverlays, checkTemplateSyntax, deleteOverlay, expandRange, importIntoOverlay, listOverlays, overlayContexts, overlayDir,
  overlayEntries, previewServer, renderOverlayFile, userFileForEdit, type InventoryStore, type OverlayContext,
} from '../../provision/index.js';
import { commandGroup } from '../util.js';

interface DataOpts {
  data?: string;
}

interface NodeOpts extends DataOpts {
  store?: string;
  serverUrl?: string;
  bootUrl?: string;
  trustDomain?: string;
}

export interface InventoryHandle {
  inv: InventoryStore;
  close(): Promise<void>;
}

export interface OverlayDeps {
  /** The inventory the node data comes from (default: the store, see openInventory). */
  openInventory(o: NodeOpts): Promise<InventoryHandle>;
  /** Where the output goes (default standard output). */
  write?: (s: string) => void;
}

const dataDirOf = (o: DataOpts): string => o.data ?? warrenHome();

/**
 * The inventory of the store: `--store`, else (with --data DIR) $WARREN_STORE or DIR/warren.db as
 * `warren server --data DIR` uses, else the embedded store of $WARREN_HOME; opened as the
 * embedded client opens it.
 */
export async function openInventory(o: NodeOpts): Promise<InventoryHandle> {
  const { EmbeddedClient } = await import('../../api/index.js');
  const { nodePolicy } = await import('../policy.js');
  const store = o.store ?? (o.data !== undefined ? (process.env.WARREN_STORE || join(o.data, 'warren.db')) : undefined);
  const client = await EmbeddedClient.open({ ...(store !== undefined ? { store } : {}), nodePolicy });
  const inv = client.rawStore as unknown as Partial<InventoryStore>;
  if (typeof inv.listInventoryNodes !== 'function' || typeof inv.listProfiles !== 'function') {
    await client.close();
    throw new WarrenError('WARREN_INTERNAL', 'this store has no provisioning inventory (nodes and profiles)', { hint: 'this build of Warren lacks the inventory store (issue 13, part inv): update Warren' });
  }
  return { inv: inv as InventoryStore, close: () => client.close() };
}

function addNodeOptions(cmd: Command): Command {
  return cmd
    .option('--store <url>', "the store the inventory is in (default: $WARREN_STORE; with --data DIR, DIR/warren.db as `warren server --data DIR`; else $WARREN_HOME's)")
    .option('--server-url <url>', 'the server URL the templates see as .Server.URL (default https://THIS-HOST:8443)')
    .option('--boot-url <url>', "the boot service's URL the templates see as .Server.BootURL (default http://THIS-HOST:9873)")
    .option('--trust-domain <name>', "the cluster's trust domain (.Cluster.TrustDomain)", 'warren.local');
}

function addDataOption(cmd: Command): Command {
  return cmd.option('--data <dir>', "the data directory whose overlays these are (a server's --data DIR; default $WARREN_HOME)");
}

async function contextsFor(o: NodeOpts, names: string[] | null, deps: OverlayDeps): Promise<OverlayContext[]> {
  const h = await deps.openInventory(o);
  try {
    const host = hostname().split('.')[0] ?? 'localhost';
    const server = previewServer(dataDirOf(o), { host, ...(o.serverUrl !== undefined ? { url: o.serverUrl } : {}), ...(o.bootUrl !== undefined ? { bootUrl: o.bootUrl } : {}) });
    return await overlayContexts(h.inv, names, { server, joinToken: TOKEN_PLACEHOLDER, cluster: { trustDomain: o.trustDomain ?? 'warren.local' } });
  } finally {
    await h.close();
  }
}

function modeString(type: string, mode: number): string {
  const t = type === 'dir' ? 'd' : type === 'symlink' ? 'l' : '-';
  let s = '';
  for (let i = 8; i >= 0; i--) s += mode & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
  if (mode & 0o4000) s = `${s.slice(0, 2)}${mode & 0o100 ? 's' : 'S'}${s.slice(3)}`;
  if (mode & 0o1000) s = `${s.slice(0, 8)}${mode & 0o001 ? 't' : 'T'}`;
  return t + s;
}

const EDITOR_HINT = 'set EDITOR (or VISUAL) to an installed editor, e.g. EDITOR=nano warren overlay edit ...';

export function register(program: Command, deps: OverlayDeps = { openInventory }): void {
  const out = deps.write ?? ((s: string): void => void process.stdout.write(s));
  const group = commandGroup(program, 'overlay', 'provisioning overlays: the files laid over a node image at boot (system) and while a node runs (runtime), templates filled per node');

  addDataOption(group.command('list').description('list the overlays: built in (shipped with Warren) and user ones (DATA/provision/overlays)').option('--json', 'JSON output')).action(async (o: DataOpts & { json?: boolean }) => {
    const all = await listOverlays(dataDirOf(o));
    if (o.json) {
      out(JSON.stringify(all, null, 2) + '\n');
      return;
    }
    const rows = all.map((x) => [x.name, x.source === 'user' ? (x.shadowsBuiltin ? 'user (shadows the built-in)' : 'user') : 'built in', String(x.files), x.dir]);
    const head = ['OVERLAY', 'SOURCE', 'FILES', 'DIRECTORY'];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n';
    out(line(head) + rows.map(line).join(''));
  });

  addNodeOptions(
    addDataOption(
      group
        .command('show')
        .description('without FILE: the files of an overlay; with FILE: its text, or with --node the file rendered for that node (the join token shown as a placeholder)')
        .argument('<overlay>', 'the overlay')
        .argument('[file]', 'a file of it: its path on the node (etc/hostname) or in the overlay (etc/hostname.tmpl)')
        .option('--node <name>', 'render the file for this node of the inventory')
        .option('--json', 'JSON output (the file list)'),
    ),
  ).action(async (overlay: string, file: string | undefined, o: NodeOpts & { node?: string; json?: boolean }) => {
    const data = dataDirOf(o);
    if (file === undefined) {
      if (o.node !== undefined) throw new WarrenError('CLI_BAD_OPTION', '--node renders one file: name it (warren overlay show OVERLAY FILE --node NAME)', { hint: `\`warren overlay show ${overlay}\` lists its files` });
      const { dir, source } = overlayDir(data, overlay);
      const entries = overlayEntries(data, overlay);
      if (o.json) {
        out(JSON.stringify({ overlay, source, dir, entries }, null, 2) + '\n');
        return;
      }
      out(`${overlay} (${source === 'user' ? 'user' : 'built in'}, ${dir})\n`);
      for (const e of entries) {
        const what = e.type === 'symlink' ? ` -> ${e.link}` : e.makesFiles ? `  (template ${e.path}: the files it names with {{ file NAME }}, per node)` : e.template ? `  (template ${e.path})` : '';
        const target = e.makesFiles ? `${e.target.slice(0, e.target.lastIndexOf('/') + 1)}*` : e.target;
        out(`${modeString(e.type, e.mode)}  ${target}${e.type === 'dir' ? '/' : ''}${what}\n`);
      }
      return;
    }
    if (o.node === undefined) {
      const e = overlayEntries(data, overlay).find((x) => x.type !== 'dir' && (x.path === file.replace(/^\/+/, '') || x.target === file.replace(/^\/+/, '')));
      if (e && e.type === 'symlink') {
        out(`${e.target} -> ${e.link}\n`);
        return;
      }
      if (e && e.type === 'file') {
        const { readFileSync } = await import('node:fs');
        out(readFileSync(join(overlayDir(data, overlay).dir, e.path), 'utf8'));
        return;
      }
    }
    // with --node, or a file a template makes (which only a node can say)
    const name = o.node;
    if (name === undefined) {
      throw new WarrenError('PROVISION_OVERLAY_UNKNOWN', `overlay ${overlay} has no file ${file} (a template may make it: add --node NAME to render it for a node)`, { hint: `\`warren overlay show ${overlay}\` lists its files` });
    }
    const [ctx] = await contextsFor(o, [name], deps);
    out(await renderOverlayFile(data, overlay, file, ctx!));
  });

  addNodeOptions(
    addDataOption(
      group
        .command('build')
        .description("render the system and runtime overlays of nodes (all, or --node): the runtime archives go to the cache, the errors of every node are reported at once")
        .option('--node <names>', 'the nodes: names or ranges, comma separated (n[001-004],gpu1)'),
    ),
  ).action(async (o: NodeOpts & { node?: string }) => {
    const names = o.node !== undefined ? expandRange(o.node) : null;
    const ctxs = await contextsFor(o, names, deps);
    if (ctxs.length === 0) {
      out('the inventory has no nodes: nothing to build (warren node add NAME --mac MAC --ip IP)\n');
      return;
    }
    const results = await buildNodeOverlays(dataDirOf(o), ctxs);
    for (const r of results) {
      const rt = r.runtime ? `runtime ${formatBytes(r.runtime.size)} sha256:${r.runtime.sha256.slice(0, 12)} (${r.runtime.cached ? 'cached' : 'built'})` : 'runtime FAILED';
      out(`${r.node}  system ${r.systemOk ? 'ok' : 'FAILED'}  ${rt}\n`);
    }
    const errors = results.flatMap((r) => r.errors);
    if (errors.length) {
      const failed = results.filter((r) => r.errors.length).length;
      const codes = [...new Set(errors.map((e) => e.code))];
      throw new WarrenError(codes.length === 1 ? codes[0]! : 'PROVISION_TEMPLATE', `${failed} of ${results.length} node${results.length === 1 ? '' : 's'} failed (${errors.length} error${errors.length === 1 ? '' : 's'}):\n  ${errors.map((e) => e.message).join('\n  ')}`, {
        hint: errors[0]!.hint ?? 'fix the templates or the nodes, then run warren overlay build again',
        details: { errors: errors.map((e) => e.toWire()) },
      });
    }
  });

  addDataOption(
    group
      .command('edit')
      .description('edit a file of an overlay with $EDITOR (a built-in overlay is copied to DATA/provision/overlays first; a new file is created); templates end in .tmpl')
      .argument('<overlay>', 'the overlay')
      .argument('<file>', 'the file (its path in the overlay; etc/hostname finds etc/hostname.tmpl)'),
  ).action(async (overlay: string, file: string, o: DataOpts) => {
    const data = dataDirOf(o);
    const t = userFileForEdit(data, overlay, file);
    if (t.copiedBuiltin) process.stderr.write(`copied the built-in overlay ${overlay} to ${overlayDir(data, overlay).dir} (it now shadows the built-in; \`warren overlay delete ${overlay}\` brings the built-in back)\n`);
    const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
    const r = spawnSync('/bin/sh', ['-c', `${editor} "$1"`, 'sh', t.path], { stdio: 'inherit' });
    if (r.error || r.status !== 0) {
      throw new WarrenError('PROVISION_EDITOR_FAILED', `the editor "${editor}" ${r.error ? `could not start: ${r.error.message}` : r.signal ? `was killed (${r.signal})` : `exited with ${r.status}`}; ${t.path} is as it left it`, { hint: EDITOR_HINT });
    }
    const rel = t.path.slice(overlayDir(data, overlay).dir.length + 1);
    checkTemplateSyntax(data, overlay, rel);
    out(`${overlay}/${rel}: saved (${t.path})\n`);
  });

  addDataOption(
    group
      .command('import')
      .description("copy a file or a directory into an overlay (made when missing; a built-in is copied to the user directory first); a name ending in .tmpl is a template")
      .argument('<overlay>', 'the overlay')
      .argument('<src>', 'a file or directory on this machine')
      .argument('[dest]', "its path in the overlay (default: SRC's own absolute path, e.g. /etc/motd)"),
  ).action(async (overlay: string, src: string, dest: string | undefined, o: DataOpts) => {
    const r = importIntoOverlay(dataDirOf(o), overlay, src, dest);
    out(`${r.created ? `created overlay ${overlay} (${r.dir})\n` : ''}${r.written.map((p) => `${overlay}/${p}\n`).join('')}imported ${r.written.length} file${r.written.length === 1 ? '' : 's'}\n`);
  });

  addDataOption(group.command('delete').description('delete a user overlay (a built-in it shadowed comes back; built-in overlays cannot be deleted)').argument('<overlay>', 'the overlay')).action(async (overlay: string, o: DataOpts) => {
    const r = deleteOverlay(dataDirOf(o), overlay);
    out(`deleted overlay ${overlay}${r.restoredBuiltin ? ' (the built-in of that name is used again)' : ''}\n`);
  });
}
