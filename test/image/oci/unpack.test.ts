// Layer application semantics (RootfsWriter) on real tar/gzip/zstd files, without a registry.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLayer, RootfsWriter, type LayerEntry } from '../../../src/image/oci/index.js';
import { tempDir } from '../../helpers.js';

async function unpack(layers: LayerEntry[][], compression: 'gzip' | 'zstd' | 'none' = 'gzip', opts: { allowSetuid?: boolean } = {}) {
  const t = tempDir('warren-unpack-');
  const root = join(t.dir, 'rootfs');
  mkdirSync(root);
  const w = new RootfsWriter(root, opts);
  for (let i = 0; i < layers.length; i++) {
    const l = await buildLayer(layers[i]!, compression);
    const f = join(t.dir, `layer${i}`);
    writeFileSync(f, l.data);
    await w.applyLayer(f, compression, 'test-image');
  }
  await w.finish();
  return { root, cleanup: t.cleanup, dir: t.dir };
}

describe('RootfsWriter', () => {
  test('opaque directory hides lower content also below re-created subdirectories', async () => {
    const r = await unpack(
      [
        [
          { name: 'a/', type: 'directory' },
          { name: 'a/b/', type: 'directory' },
          { name: 'a/b/lower', data: 'l' },
          { name: 'a/keep-not', data: 'x' },
        ],
        [
          { name: 'a/', type: 'directory' },
          { name: 'a/b/', type: 'directory' },
          { name: 'a/b/upper', data: 'u' },
          { name: 'a/.wh..wh..opq' },
        ],
      ],
      'zstd',
    );
    try {
      assert.deepEqual(readdirSync(join(r.root, 'a')), ['b']);
      assert.deepEqual(readdirSync(join(r.root, 'a', 'b')), ['upper']);
    } finally {
      r.cleanup();
    }
  });

  test('types replace each other across layers; a hard-linked file is replaced, not written through', async () => {
    const r = await unpack(
      [
        [
          { name: 'f-then-dir', data: 'file' },
          { name: 'dir-then-f/', type: 'directory' },
          { name: 'dir-then-f/inner', data: 'i' },
          { name: 'link-then-dir', type: 'symlink', linkname: '/etc' },
          { name: 'orig', data: 'original' },
          { name: 'hard', type: 'link', linkname: 'orig' },
        ],
        [
          { name: 'f-then-dir/', type: 'directory' },
          { name: 'f-then-dir/x', data: 'x' },
          { name: 'dir-then-f', data: 'now a file' },
          { name: 'link-then-dir/', type: 'directory' },
          { name: 'hard', data: 'replaced' },
        ],
      ],
      'none',
    );
    try {
      assert.ok(statSync(join(r.root, 'f-then-dir')).isDirectory());
      assert.equal(readFileSync(join(r.root, 'dir-then-f'), 'utf8'), 'now a file');
      assert.ok(lstatSync(join(r.root, 'link-then-dir')).isDirectory());
      assert.equal(readFileSync(join(r.root, 'hard'), 'utf8'), 'replaced');
      assert.equal(readFileSync(join(r.root, 'orig'), 'utf8'), 'original', 'the other link keeps its content');
    } finally {
      r.cleanup();
    }
  });

  for (const allowSetuid of [false, true]) {
  test(`modes (read-only, setuid ${allowSetuid ? 'kept: allow-setuid' : 'dropped: default'}, sticky, read-only directory) and mtimes`, async () => {
    const mtime = new Date('2020-01-02T03:04:05Z');
    const r = await unpack([
      [
        { name: 'ro', data: 'r', mode: 0o444 },
        { name: 'suid', data: 's', mode: 0o4755 },
        { name: 'sgid', data: 's', mode: 0o2755 },
        { name: 'sgiddir/', type: 'directory', mode: 0o2775 },
        { name: 'rodir/', type: 'directory', mode: 0o555 },
        { name: 'rodir/inside', data: 'i' },
        { name: 'sticky/', type: 'directory', mode: 0o1777 },
        { name: 'old', data: 'o', mtime },
      ],
      [{ name: 'rodir/later', data: 'written into a read-only directory by a later layer' }],
    ], 'gzip', { allowSetuid });
    try {
      assert.equal(statSync(join(r.root, 'ro')).mode & 0o7777, 0o444);
      assert.equal(statSync(join(r.root, 'suid')).mode & 0o7777, allowSetuid ? 0o4755 : 0o755);
      assert.equal(statSync(join(r.root, 'sgid')).mode & 0o7777, allowSetuid ? 0o2755 : 0o755);
      assert.equal(statSync(join(r.root, 'sgiddir')).mode & 0o7777, allowSetuid ? 0o2775 : 0o775);
      assert.equal(statSync(join(r.root, 'rodir')).mode & 0o7777, 0o555);
      assert.equal(statSync(join(r.root, 'sticky')).mode & 0o7777, 0o1777);
      assert.deepEqual(readdirSync(join(r.root, 'rodir')).sort(), ['inside', 'later']);
      assert.equal(statSync(join(r.root, 'old')).mtime.getTime(), mtime.getTime());
    } finally {
      r.cleanup();
    }
  });
  }

  test('long names (PAX/GNU headers), whiteout through a symlinked directory stays inside', async () => {
    const long = 'opt/' + 'd'.repeat(120) + '/' + 'f'.repeat(150);
    const r = await unpack([
      [
        { name: long, data: 'long' },
        { name: 'real/', type: 'directory' },
        { name: 'real/victim', data: 'v' },
        { name: 'alias', type: 'symlink', linkname: '/real' },
      ],
      [{ name: 'alias/.wh.victim' }],
    ]);
    try {
      assert.equal(readFileSync(join(r.root, long), 'utf8'), 'long');
      assert.equal(existsSync(join(r.root, 'real', 'victim')), false);
      assert.equal(readlinkSync(join(r.root, 'alias')), '/real');
    } finally {
      r.cleanup();
    }
  });

  test('a truncated gzip layer is IMAGE_LAYER_INVALID naming the image', async () => {
    const t = tempDir('warren-unpack-');
    try {
      const l = await buildLayer([{ name: 'big', data: Buffer.alloc(200_000, 7) }], 'gzip');
      const f = join(t.dir, 'cut.tar.gz');
      writeFileSync(f, l.data.subarray(0, l.data.length >> 1));
      mkdirSync(join(t.dir, 'root'));
      const w = new RootfsWriter(join(t.dir, 'root'));
      await assert.rejects(w.applyLayer(f, 'gzip', 'docker://x/y:1'), (e: unknown) => {
        const err = e as { code: string; message: string; hint?: string };
        assert.equal(err.code, 'IMAGE_LAYER_INVALID');
        assert.match(err.message, /docker:\/\/x\/y:1/);
        assert.ok(err.hint);
        return true;
      });
      const z = join(t.dir, 'bad.zst');
      writeFileSync(z, Buffer.from('not zstd data at all'));
      await assert.rejects(w.applyLayer(z, 'zstd', 'docker://x/y:2'), (e: unknown) => (e as { code: string }).code === 'IMAGE_LAYER_INVALID');
    } finally {
      t.cleanup();
    }
  });

  const canDrop = process.getuid?.() === 0 && spawnSync('runuser', ['--help']).status === 0;
  test(
    'as a non-root user: read-only directories across layers, and prune can delete them',
    { skip: canDrop ? false : 'needs root and runuser to run a child as nobody', timeout: 60_000 },
    () => {
      const t = tempDir('warren-nonroot-');
      try {
        chmodSync(t.dir, 0o777);
        const here = fileURLToPath(import.meta.url);
        const child = join(dirname(here), `nonroot-child${extname(here)}`);
        const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, ...process.execArgv.filter((a) => !a.startsWith('--test')), child, t.dir], {
          encoding: 'utf8',
          env: { ...process.env, HOME: t.dir },
        });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), { uid: 65534, ro: ['g'], roMode: 0o555, listed: 1, pruned: 1, left: [] });
      } finally {
        t.cleanup();
      }
    },
  );
});
