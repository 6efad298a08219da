// `warren overlay ...`: the real CLI (list, show, import, edit with EDITOR a small script,
// delete, and its errors) on a private WARREN_HOME; `show --node` and `build` in-process over
// an in-memory inventory (the inventory store is built in another part of issue 13).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { WarrenError } from '../../src/common/index.js';
import { register } from '../../src/cli/commands/overlay.js';
import { tempDir, warrenBin } from '../helpers.js';
import { sampleInventory, type MemoryInventory } from '../provision/memory-inventory.js';

describe('warren overlay', () => {
  let tmp: { dir: string; cleanup: () => void };
  let home: string;
  let inv: MemoryInventory;
  before(async () => {
    tmp = tempDir('warren-ovl-cli-');
    home = join(tmp.dir, 'home');
    mkdirSync(home);
    inv = await sampleInventory();
  });
  after(() => tmp.cleanup());

  const cli = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [warrenBin, 'overlay', ...args], { env: { ...process.env, WARREN_HOME: home, WARREN_CONTEXT: '', ...env }, encoding: 'utf8', timeout: 60_000 });
    return { rc: r.status, out: r.stdout, err: r.stderr };
  };

  /** The overlay commands in this process, over the in-memory inventory: stdout and the error thrown. */
  async function inProcess(args: string[]): Promise<{ out: string; error?: WarrenError }> {
    const program = new Command().exitOverride();
    const chunks: string[] = [];
    register(program, { openInventory: async () => ({ inv, close: async () => {} }), write: (c) => void chunks.push(c) });
    try {
      await program.parseAsync(['overlay', ...args, '--data', home], { from: 'user' });
      return { out: chunks.join('') };
    } catch (e) {
      if (!(e instanceof WarrenError)) throw e;
      return { out: chunks.join(''), error: e };
    }
  }

  it('lists and shows overlays, their files and a file', () => {
    let r = cli(['list', '--json']);
    assert.equal(r.rc, 0, r.err);
    assert.deepEqual((JSON.parse(r.out) as { name: string; source: string }[]).map((o) => `${o.name}:${o.source}`), ['warren-runtime:builtin', 'warren-system:builtin']);
    r = cli(['show', 'warren-system']);
    assert.equal(r.rc, 0, r.err);
    assert.match(r.out, /^warren-system \(built in, .*overlays\/warren-system\)\n/);
    assert.match(r.out, /^-rw-------  etc\/warren\/agent\.env  \(template etc\/warren\/agent\.env\.tmpl\)$/m);
    assert.match(r.out, /^-rwxr-xr-x  init$/m);
    assert.match(r.out, /^drwx------  root\/\.ssh\/$/m);
    assert.match(r.out, /^lrwxrwxrwx  etc\/systemd\/system\/multi-user\.target\.wants\/warren-agent\.service -> \.\.\/warren-agent\.service$/m);
    assert.match(r.out, /^-rw-r--r--  etc\/systemd\/network\/\*  \(template etc\/systemd\/network\/warren\.tmpl: the files it names/m);
    r = cli(['show', 'warren-system', '/etc/hostname']);
    assert.equal(r.rc, 0, r.err);
    assert.equal(r.out, '{{ .Node.Name }}\n', 'without --node: the template as written');
    r = cli(['show', 'warren-system', 'etc/systemd/system/multi-user.target.wants/warren-agent.service']);
    assert.equal(r.out, 'etc/systemd/system/multi-user.target.wants/warren-agent.service -> ../warren-agent.service\n');
    r = cli(['show', 'warren-system', 'etc/systemd/network/10-eth0.network']);
    assert.equal(r.rc, 2);
    assert.match(r.err, /PROVISION_OVERLAY_UNKNOWN.*add --node NAME/);
    r = cli(['show', 'warren-sytem']);
    assert.equal(r.rc, 2);
    assert.match(r.err, /error\[PROVISION_OVERLAY_UNKNOWN\]: there is no overlay "warren-sytem" \(did you mean "warren-system"\?\)/);
    r = cli(['show', 'warren-system', 'etc/nope']);
    assert.equal(r.rc, 2);
    assert.match(r.err, /PROVISION_OVERLAY_UNKNOWN/);
  });

  it('imports a file and a directory into a new overlay', () => {
    const src = join(tmp.dir, 'motd.d');
    mkdirSync(src);
    writeFileSync(join(src, '10-site'), 'site\n');
    writeFileSync(join(src, '20-node.tmpl'), 'node {{ .Node.Name }}\n');
    let r = cli(['import', 'site', src, 'etc/motd.d']);
    assert.equal(r.rc, 0, r.err);
    assert.match(r.out, /^created overlay site \(.*\/provision\/overlays\/site\)\nsite\/etc\/motd\.d\/10-site\nsite\/etc\/motd\.d\/20-node\.tmpl\nimported 2 files\n$/);
    const one = join(tmp.dir, 'issue');
    writeFileSync(one, 'Warren node\n');
    chmodSync(one, 0o640);
    r = cli(['import', 'site', one, '/etc/issue']);
    assert.equal(r.rc, 0, r.err);
    assert.equal(r.out, 'site/etc/issue\nimported 1 file\n');
    r = cli(['show', 'site']);
    assert.match(r.out, /^-rw-r-----  etc\/issue$/m);
    assert.match(r.out, /^-rw-r--r--  etc\/motd\.d\/20-node  \(template etc\/motd\.d\/20-node\.tmpl\)$/m);
    r = cli(['import', 'site', join(tmp.dir, 'missing')]);
    assert.equal(r.rc, 2);
    assert.match(r.err, /PROVISION_OVERLAY_BAD_PATH.*no such file/);
    r = cli(['import', 'Bad_Name!', one]);
    assert.equal(r.rc, 2);
    assert.match(r.err, /PROVISION_OVERLAY_BAD_PATH.*not a valid overlay name/);
  });

  it('edits with $EDITOR: a built-in is copied first, a broken template is reported, a failing editor too', () => {
    const editor = join(tmp.dir, 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\n# append what EDIT_LINE says to the file\nprintf "%s\\n" "$EDIT_LINE" >> "$1"\n');
    chmodSync(editor, 0o755);
    let r = cli(['edit', 'warren-system', 'etc/fstab'], { EDITOR: editor, VISUAL: '', EDIT_LINE: 'tmpfs /scratch tmpfs size=1G 0 0' });
    assert.equal(r.rc, 0, r.err);
    assert.match(r.err, /copied the built-in overlay warren-system to .*\/provision\/overlays\/warren-system/);
    assert.match(r.out, /^warren-system\/etc\/fstab\.tmpl: saved/);
    const copy = join(home, 'provision/overlays/warren-system');
    assert.match(readFileSync(join(copy, 'etc/fstab.tmpl'), 'utf8'), /tmpfs \/tmp tmpfs[^\n]*\ntmpfs \/scratch tmpfs size=1G 0 0\n$/);
    assert.ok(existsSync(join(copy, 'init')), 'the whole overlay was copied');
    r = cli(['list']);
    assert.match(r.out, /^warren-system\s+user \(shadows the built-in\)/m);
    // a template that no longer parses: exit 2, the file kept as edited
    r = cli(['edit', 'warren-system', 'etc/hostname'], { EDITOR: editor, VISUAL: '', EDIT_LINE: '{{ if .Node.Name }}' });
    assert.equal(r.rc, 2);
    assert.match(r.err, /error\[PROVISION_TEMPLATE\]: \(any node\): warren-system\/etc\/hostname\.tmpl:3:1: unexpected EOF/);
    assert.match(readFileSync(join(copy, 'etc/hostname.tmpl'), 'utf8'), /\{\{ if \.Node\.Name \}\}\n$/);
    // a new file
    r = cli(['edit', 'warren-system', 'etc/motd.tmpl'], { EDITOR: editor, VISUAL: '', EDIT_LINE: 'hello {{ .Node.Name }}' });
    assert.equal(r.rc, 0, r.err);
    assert.equal(readFileSync(join(copy, 'etc/motd.tmpl'), 'utf8'), 'hello {{ .Node.Name }}\n');
    // an editor that fails, one that is not there
    r = cli(['edit', 'site', 'etc/issue'], { EDITOR: 'false', VISUAL: '' });
    assert.equal(r.rc, 1);
    assert.match(r.err, /error\[PROVISION_EDITOR_FAILED\]: the editor "false" exited with 1/);
    r = cli(['edit', 'site', 'etc/issue'], { EDITOR: join(tmp.dir, 'no-such-editor'), VISUAL: '' });
    assert.equal(r.rc, 1);
    assert.match(r.err, /PROVISION_EDITOR_FAILED.*exited with 127/);
    r = cli(['edit', 'nosuch', 'etc/x'], { EDITOR: editor });
    assert.equal(r.rc, 2);
    assert.match(r.err, /PROVISION_OVERLAY_UNKNOWN/);
  });

  it('shows a file rendered for a node, the token as a placeholder', async () => {
    let r = await inProcess(['show', 'warren-system', 'etc/warren/agent.env', '--node', 'n002', '--server-url', 'https://head.example:8443']);
    assert.equal(r.error, undefined, r.error?.message);
    assert.match(r.out, /^WARREN_SERVER=https:\/\/head\.example:8443$/m);
    assert.match(r.out, /^WARREN_JOIN_TOKEN=<join token: minted at boot>$/m);
    assert.match(r.out, /^WARREN_NODE_NAME=n002$/m);
    r = await inProcess(['show', 'warren-system', 'etc/systemd/network/10-ib0.network', '--node', 'n001']);
    assert.match(r.out, /^MACAddress=52:54:00:00:01:01$/m);
    r = await inProcess(['show', 'warren-runtime', 'etc/hosts', '--node', 'n003']);
    assert.match(r.out, /^10\.0\.0\.12\tn002$/m);
    r = await inProcess(['show', 'warren-system', 'etc/hostname', '--node', 'n09']);
    assert.equal(r.error?.code, 'PROVISION_NODE_UNKNOWN');
  });

  it('builds the overlays of all nodes, and reports the errors of every node at once', async () => {
    const sys = join(home, 'provision/overlays/warren-system');
    writeFileSync(join(sys, 'etc/hostname.tmpl'), '{{ .Node.Name }}\n'); // as it was before the edit test broke it
    let r = await inProcess(['build', '--node', 'n[001-002]']);
    assert.equal(r.error, undefined, r.error?.message);
    assert.match(r.out, /^n001  system ok  runtime \d+(\.\d+)? ?(B|KiB) sha256:[0-9a-f]{12} \(built\)\nn002  system ok  runtime .* \(built\)\n$/);
    r = await inProcess(['build', '--node', 'n001']);
    assert.match(r.out, /^n001  system ok  runtime .* \(cached\)\n$/);
    // break the system overlay (every node) and, for n003 only, the runtime overlay
    writeFileSync(join(sys, 'etc/hostname.tmpl'), '{{ .Node.Name }}\n{{ .Node.Hostname }}\n');
    mkdirSync(join(home, 'provision/overlays/warren-runtime/etc'), { recursive: true });
    writeFileSync(join(home, 'provision/overlays/warren-runtime/etc/ip.tmpl'), '{{ .Node.Primary.Address }}\n');
    r = await inProcess(['build']);
    assert.equal(r.error?.code, 'PROVISION_TEMPLATE');
    assert.equal(r.error?.exitCode, 2);
    assert.match(r.out, /^n001  system FAILED  runtime .*\nn002  system FAILED  runtime .*\nn003  system FAILED  runtime FAILED\n$/);
    const lines = r.error!.message.split('\n');
    assert.equal(lines[0], '3 of 3 nodes failed (4 errors):');
    assert.deepEqual(lines.slice(1).map((l) => l.trim().replace(/: executing.*/, '')), [
      'n001: warren-system/etc/hostname.tmpl:2:4',
      'n002: warren-system/etc/hostname.tmpl:2:4',
      'n003: warren-system/etc/hostname.tmpl:2:4',
      'n003: warren-runtime/etc/ip.tmpl:1:4',
    ]);
    r = await inProcess(['build', '--node', 'n[001-003],x9']);
    assert.equal(r.error?.code, 'PROVISION_NODE_UNKNOWN');
    r = await inProcess(['build', '--node', 'n[3-1]']);
    assert.equal(r.error?.code, 'PROVISION_BAD_RANGE');
  });

  it('deletes user overlays, not built-in ones', () => {
    let r = cli(['delete', 'warren-system']);
    assert.equal(r.rc, 0, r.err);
    assert.equal(r.out, 'deleted overlay warren-system (the built-in of that name is used again)\n');
    r = cli(['delete', 'warren-system']);
    assert.equal(r.rc, 2);
    assert.match(r.err, /error\[PROVISION_OVERLAY_BUILTIN\]/);
    r = cli(['delete', 'site']);
    assert.equal(r.rc, 0, r.err);
    r = cli(['delete', 'site']);
    assert.equal(r.rc, 2);
    assert.match(r.err, /PROVISION_OVERLAY_UNKNOWN/);
  });
});
