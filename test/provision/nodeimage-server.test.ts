// `warren image node-build|node-list|node-rm` with a server context, end to end with the real CLI
// and a real `warren server`: the server builds into its --data directory (not the caller's
// WARREN_HOME), the audit log has the build and the removal, a user who is not an admin is refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from '../cluster/harness.js';

const VER = '6.1.0-test-amd64';

describe('node images built by a server', () => {
  let c: TestCluster;
  let tree: string;
  before(async () => {
    c = await TestCluster.start({ agents: 0 });
    tree = join(c.dir, 'tree');
    mkdirSync(join(tree, 'boot'), { recursive: true });
    mkdirSync(join(tree, `lib/modules/${VER}`), { recursive: true });
    writeFileSync(join(tree, `boot/vmlinuz-${VER}`), 'kernel bytes');
    writeFileSync(join(tree, 'hostname'), 'n1\n');
  });
  after(async () => {
    await c?.close();
  });

  it('builds in the server\'s data directory, reuses it unchanged, lists and removes it; all audited', { timeout: 120_000 }, async () => {
    const b = await c.cli(['image', 'node-build', tree, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const img = JSON.parse(b.stdout) as { digest: string; dir: string; reused: boolean; kernelVersion: string };
    assert.equal(img.reused, false);
    assert.equal(img.kernelVersion, VER);
    assert.equal(img.dir, join(c.dir, 'srv', 'provision', 'images', img.digest.slice(7)));
    assert.ok(existsSync(join(img.dir, 'rootfs.cpio.gz')));
    assert.equal(existsSync(join(c.dir, 'home', 'provision')), false, 'nothing in the caller\'s WARREN_HOME');
    const again = await c.cli(['image', 'node-build', tree]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^unchanged, reused .* on the server of context admin\n/);
    const list = await c.cli(['image', 'node-list']);
    assert.ok(list.stdout.includes(img.digest.slice(0, 19)), list.stdout);
    const local = await c.cli(['image', 'node-list', '--local']);
    assert.match(local.stdout, /^no node images/);
    const rm = await c.cli(['image', 'node-rm', img.digest]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual(readdirSync(join(c.dir, 'srv', 'provision', 'images')).filter((n) => /^[0-9a-f]{64}$/.test(n)), []);
    const audit = await c.cli(['audit', 'list', '--action', 'node-image.', '--json']);
    assert.equal(audit.code, 0, audit.stderr);
    const entries = JSON.parse(audit.stdout) as Array<{ action: string; result: string; target: string }>;
    assert.deepEqual(entries.map((e) => `${e.action} ${e.result}`), ['node-image.build ok', 'node-image.build ok', 'node-image.remove ok']);
    assert.equal(entries[0]!.target, tree);
  });

  it('bad input comes back with its code and exit 2; a user who is not an admin is refused', { timeout: 120_000 }, async () => {
    const bare = join(c.dir, 'bare');
    mkdirSync(bare, { recursive: true });
    const n = await c.cli(['image', 'node-build', bare]);
    assert.equal(n.code, 2);
    assert.match(n.stderr, /PROVISION_NO_KERNEL/);
    const u = await c.cli(['user', 'add', 'alice', '--unix-user', 'root']);
    assert.equal(u.code, 0, u.stderr);
    const ctx = await c.cli(['context', 'add', 'alice', '--server', c.url, '--token', u.stdout.trim(), '--ca', c.caFile]);
    assert.equal(ctx.code, 0, ctx.stderr);
    const r = await c.cli(['image', 'node-build', tree], { context: 'alice' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /AUTH_FORBIDDEN/);
  });
});
