// Node images through the client API: the CLI on this machine (`warren image node-build|node-list|
// node-rm` into $WARREN_HOME), and the server's admin routes (/api/v1/node-images) over real
// TLS with HttpClient: a build past the answer time answers 202 and is joined, refusals.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpClient, untilBuilt, type NodeImageBuildPending, type NodeImageBuildView, type NodeImageView } from '../../src/api/index.js';
import { WarrenError } from '../../src/common/index.js';
import { buildApiServer, type ApiServer } from '../../src/server/index.js';
import { nodeImagesDir } from '../../src/provision/index.js';
import { makeCluster, serverCredentials, type Cluster } from '../mesh/helpers.js';
import { MemoryBackend } from '../server/memory-backend.js';
import { warrenBin } from '../helpers.js';

const VER = '6.1.0-test-amd64';
const T = { timeout: 120_000 };

function makeTree(root: string): void {
  mkdirSync(join(root, 'boot'), { recursive: true });
  mkdirSync(join(root, `lib/modules/${VER}`), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, `boot/vmlinuz-${VER}`), Buffer.alloc(4096, 7));
  writeFileSync(join(root, 'etc/hostname'), 'node\n');
}

function warren(args: string[], home: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home, XDG_CONFIG_HOME: join(home, 'cfg'), WARREN_CONTEXT: '', NO_COLOR: '1' }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function refused(p: Promise<unknown>, code: string, status: number): Promise<WarrenError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WarrenError, `not a WarrenError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.httpStatus, status);
    assert.ok(e.hint);
    return e;
  }
  assert.fail(`expected ${code}, it succeeded`);
}

describe('warren image node-build|node-list|node-rm on this machine', () => {
  const base = mkdtempSync(join(tmpdir(), 'warren-nodeimage-cli-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  const home = join(base, 'home');
  const tree = join(base, 'tree');
  makeTree(tree);

  it('builds into $WARREN_HOME, says built then reused, lists and removes; --json is the image', T, () => {
    const a = warren(['image', 'node-build', '--local', tree], home);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, new RegExp(`^built ${tree} in [0-9.]+ s\\n  digest:  sha256:[0-9a-f]{64}\\n  kernel:  ${VER} \\(4\\.0 ?KiB\\)\\n`));
    const j = warren(['image', 'node-build', tree, '--json'], home);
    assert.equal(j.code, 0, j.stderr);
    const img = JSON.parse(j.stdout) as NodeImageBuildView;
    assert.equal(img.reused, true);
    assert.equal(img.kernelVersion, VER);
    assert.equal(img.dir, join(nodeImagesDir(home), img.digest.slice(7)));
    assert.ok(existsSync(img.rootfsPath));
    const list = JSON.parse(warren(['image', 'node-list', '--json'], home).stdout) as NodeImageView[];
    assert.deepEqual(list.map((i) => i.digest), [img.digest]);
    const table = warren(['image', 'node-list'], home).stdout;
    assert.match(table, /^DIGEST +KERNEL +ROOTFS +BUILT +SOURCE\n/);
    assert.ok(table.includes(`${img.digest.slice(0, 19)} ${VER}`), table);
    const rm = warren(['image', 'node-rm', img.digest.slice(7, 19)], home);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout, `removed ${img.digest} (${tree})\n`);
    assert.equal(existsSync(img.dir), false);
    assert.match(warren(['image', 'node-list'], home).stdout, /^no node images/);
  });

  it('bad input exits 2 with the code and a hint: no kernel, an unknown kernel version, an unknown image to remove', T, () => {
    const bare = join(base, 'bare');
    mkdirSync(join(bare, 'etc'), { recursive: true });
    const n = warren(['image', 'node-build', bare], home);
    assert.equal(n.code, 2);
    assert.match(n.stderr, /PROVISION_NO_KERNEL.*it has no kernel/);
    assert.match(n.stderr, /linux-image-amd64/);
    const v = warren(['image', 'node-build', tree, '--kernel', '9.9.9'], home);
    assert.equal(v.code, 2);
    assert.match(v.stderr, /PROVISION_NO_KERNEL.*no kernel 9\.9\.9 \(it has 6\.1\.0-test-amd64\)/);
    const r = warren(['image', 'node-rm', 'sha256:' + 'a'.repeat(64)], home);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /PROVISION_IMAGE_UNKNOWN/);
    assert.deepEqual(readdirSync(nodeImagesDir(home)).filter((x) => !x.startsWith('.identities')), []);
  });
});

describe('the server builds node images in its data directory (admins)', () => {
  let cluster: Cluster;
  let server: ApiServer;
  let backend: MemoryBackend;
  let url: string;
  let admin: HttpClient;
  let alice: HttpClient;
  const base = mkdtempSync(join(tmpdir(), 'warren-nodeimage-api-'));
  const data = join(base, 'data');
  const tree = join(base, 'tree');
  makeTree(tree);

  before(async () => {
    cluster = await makeCluster();
    const creds = await serverCredentials(cluster);
    backend = new MemoryBackend();
    // An answer time of 0: every build that is not found done answers 202 first.
    backend.useNodeImages(data, 0);
    const adminToken = backend.addUser('root', true);
    const aliceToken = backend.addUser('alice');
    server = await buildApiServer({ backend, https: { key: creds.keyPem, cert: creds.certPem } });
    const a = await server.listen('127.0.0.1', 0);
    url = `https://127.0.0.1:${a.port}`;
    admin = new HttpClient({ url, token: adminToken, caPem: cluster.ca.certPem });
    alice = new HttpClient({ url, token: aliceToken, caPem: cluster.ca.certPem });
  });
  after(async () => {
    await admin?.close();
    await alice?.close();
    await server?.close();
    cluster?.cleanup();
    rmSync(base, { recursive: true, force: true });
  });

  it('a build past the answer time answers 202 (building); asking again joins it and gets the image; then it is reused', T, async () => {
    const first = await admin.nodeImageBuild({ source: tree });
    assert.ok('building' in first, JSON.stringify(first));
    assert.equal((first as NodeImageBuildPending).source, tree);
    const waits: NodeImageBuildPending[] = [];
    const img = await untilBuilt(admin, { source: tree }, (p) => waits.push(p));
    assert.equal(img.reused, false);
    assert.equal(img.kernelVersion, VER);
    assert.equal(img.dir, join(nodeImagesDir(data), img.digest.slice(7)));
    assert.ok(img.log.some((l) => l === `kernel ${VER}`), img.log.join('\n'));
    assert.ok(existsSync(img.rootfsPath));
    // Only one build ran: one image directory.
    assert.deepEqual(readdirSync(nodeImagesDir(data)).filter((n) => /^[0-9a-f]{64}$/.test(n)), [img.digest.slice(7)]);
    const again = await untilBuilt(admin, { source: tree });
    assert.equal(again.reused, true);
    assert.equal(again.digest, img.digest);
    const list = await admin.nodeImages();
    assert.deepEqual(list.map((i) => i.digest), [img.digest]);
    assert.equal(list[0]!.rootfsSha256, img.rootfsSha256);
  });

  it('errors of a build come back with their code: no kernel (400), a bad reference (400); removal by source, unknown (404)', T, async () => {
    const bare = join(base, 'bare');
    mkdirSync(join(bare, 'etc'), { recursive: true });
    const e = await refused(untilBuilt(admin, { source: bare }), 'PROVISION_NO_KERNEL', 400);
    assert.match(e.message, /it has no kernel/);
    await refused(admin.nodeImageBuild({ source: 'docker://UPPER/case' }), 'IMAGE_REF_INVALID', 400);
    await refused(admin.nodeImageBuild({ source: '' }), 'API_BAD_REQUEST', 400);
    const removed = await admin.removeNodeImages(tree);
    assert.equal(removed.length, 1);
    assert.deepEqual(await admin.nodeImages(), []);
    await refused(admin.removeNodeImages(tree), 'PROVISION_IMAGE_UNKNOWN', 404);
  });

  it('a user who is not an admin is refused (403) on every node image route, and the refusal is audited', T, async () => {
    await refused(alice.nodeImageBuild({ source: tree }), 'AUTH_FORBIDDEN', 403);
    await refused(alice.nodeImages(), 'AUTH_FORBIDDEN', 403);
    await refused(alice.removeNodeImages(tree), 'AUTH_FORBIDDEN', 403);
    assert.ok(backend.auditLog.some((a) => a.actor === 'alice' && a.result === 'AUTH_FORBIDDEN' && /node-images/.test(a.action)), JSON.stringify(backend.auditLog));
  });
});
