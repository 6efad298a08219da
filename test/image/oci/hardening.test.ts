// Hostile layers against RootfsWriter (issue 7, "Images on a shared node"): whiteouts that
// name `.` or `..`, `..` in names and hard links, symlinks out of the root (relative and
// absolute) and files written through them, setuid/setgid bits and device nodes. Every case
// runs in a sandbox directory that holds the rootfs and an `outside/` directory with
// sentinel files: after the layer, `outside/` must be byte-for-byte what it was.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { RootfsWriter } from '../../../src/image/oci/index.js';
import { tempDir } from '../../helpers.js';
import { privilegedEntries, rawTar, snapshot, type RawEntry } from './tarfix.js';

interface Sandbox {
  dir: string;
  root: string;
  outside: string;
  cleanup: () => void;
}

function sandbox(): Sandbox {
  const t = tempDir('warren-harden-');
  const root = join(t.dir, 'rootfs');
  const outside = join(t.dir, 'outside');
  mkdirSync(root);
  mkdirSync(join(outside, 'etc'), { recursive: true });
  writeFileSync(join(outside, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  writeFileSync(join(outside, 'sentinel'), 'must survive\n');
  // A sentinel beside the rootfs, which `bin/.wh...` (parent of the root) would delete.
  writeFileSync(join(t.dir, 'beside-root'), 'must survive\n');
  return { dir: t.dir, root, outside, cleanup: t.cleanup };
}

async function apply(s: Sandbox, layers: RawEntry[][], opts: { allowSetuid?: boolean } = {}): Promise<RootfsWriter> {
  const w = new RootfsWriter(s.root, opts);
  for (let i = 0; i < layers.length; i++) {
    const f = join(s.dir, `layer${i}.tar`);
    writeFileSync(f, await rawTar(layers[i]!));
    await w.applyLayer(f, 'none', 'docker://evil.example/img:1');
  }
  await w.finish();
  return w;
}

function unsafe(e: unknown): true {
  const err = e as { code?: string; message: string; hint?: string };
  assert.equal(err.code, 'IMAGE_LAYER_UNSAFE', `expected IMAGE_LAYER_UNSAFE, got ${err.code}: ${err.message}`);
  assert.match(err.message, /docker:\/\/evil\.example\/img:1/, 'names the image');
  assert.ok(err.hint && err.hint.length > 10, 'has a hint');
  return true;
}

/** Run `body` in a fresh sandbox whose outside part must be unchanged afterwards. */
async function contained(body: (s: Sandbox) => Promise<void>): Promise<void> {
  const s = sandbox();
  try {
    const before = snapshot(s.outside);
    await body(s);
    assert.deepEqual(snapshot(s.outside), before, 'nothing outside the root changed');
    assert.equal(readFileSync(join(s.dir, 'beside-root'), 'utf8'), 'must survive\n');
  } finally {
    s.cleanup();
  }
}

const lower: RawEntry[] = [
  { name: 'bin/', type: 'directory' },
  { name: 'bin/sh', data: '#!/bin/true\n', mode: 0o755 },
  { name: 'etc/', type: 'directory' },
  { name: 'etc/motd', data: 'hi\n' },
];

describe('hostile layers', () => {
  for (const [name, wh] of [
    ['root whiteout `.wh..` (names the root itself)', '.wh..'],
    ['`bin/.wh...` (names the parent of bin: the root)', 'bin/.wh...'],
    ['`./.wh..` with a leading ./', './.wh..'],
    ['`bin/.wh.` (empty name)', 'bin/.wh.'],
    ['`etc/.wh..` (names etc itself)', 'etc/.wh..'],
  ] as const) {
    test(`whiteout ${name} is refused and removes nothing`, () =>
      contained(async (s) => {
        await assert.rejects(apply(s, [lower, [{ name: wh }]]), unsafe);
        assert.ok(existsSync(s.root), 'the rootfs still exists');
        assert.equal(readFileSync(join(s.root, 'bin', 'sh'), 'utf8'), '#!/bin/true\n');
        assert.equal(readFileSync(join(s.root, 'etc', 'motd'), 'utf8'), 'hi\n');
      }));
  }

  test('a normal whiteout and an opaque whiteout still work', () =>
    contained(async (s) => {
      await apply(s, [lower, [{ name: 'etc/.wh.motd' }, { name: 'bin/' , type: 'directory' }, { name: 'bin/.wh..wh..opq' }]]);
      assert.equal(existsSync(join(s.root, 'etc', 'motd')), false);
      assert.deepEqual(readdirSync(join(s.root, 'bin')), []);
    }));

  for (const name of ['../outside/sentinel', 'a/../../outside/x', 'bin/../../../etc/passwd', '..']) {
    test(`an entry named '${name}' is refused`, () =>
      contained(async (s) => {
        await assert.rejects(apply(s, [[{ name, data: 'pwned\n' }]]), unsafe);
      }));
  }

  test("a hard link to '../outside/etc/passwd' is refused; one to an absolute host path stays inside", () =>
    contained(async (s) => {
      await assert.rejects(apply(s, [[{ name: 'h', type: 'link', linkname: '../outside/etc/passwd' }]]), unsafe);
      // Absolute: resolved in the image, where there is no such file -> not a file in the image.
      await assert.rejects(apply(s, [[{ name: 'h2', type: 'link', linkname: join(s.outside, 'etc', 'passwd') }]]), (e: unknown) => {
        assert.equal((e as { code: string }).code, 'IMAGE_LAYER_INVALID');
        return true;
      });
      assert.equal(lstatSync(join(s.outside, 'etc', 'passwd')).nlink, 1, 'no second link to the host file');
    }));

  for (const [what, target] of [
    ['relative ../..', '../../../../outside'],
    ['absolute (the sandbox outside, by its host path)', '/OUTSIDE'],
    ['absolute /etc', '/etc'],
  ] as const) {
    test(`a symlink out of the root (${what}), then a file, a directory, a hard link and a whiteout through it, stay inside`, () =>
      contained(async (s) => {
        const t = target === '/OUTSIDE' ? s.outside : target;
        await apply(s, [
          [{ name: 'esc', type: 'symlink', linkname: t }, { name: 'etc/', type: 'directory' }, { name: 'etc/passwd', data: 'image passwd\n' }],
          [
            { name: 'esc/pwned', data: 'written through the link\n' },
            { name: 'esc/newdir/', type: 'directory' },
            { name: 'esc/newdir/f', data: 'deep\n' },
            { name: 'esc/hard', type: 'link', linkname: 'etc/passwd' },
            { name: 'esc/.wh.sentinel' },
            { name: 'esc/etc/.wh.passwd' },
          ],
        ]);
        assert.equal(readlinkSync(join(s.root, 'esc')), t, 'the symlink itself is kept as the image has it');
        // Everything landed where the link points *inside* the root.
        const inside = join(s.root, t.startsWith('/') ? t.slice(1) : 'outside');
        assert.equal(readFileSync(join(inside, 'pwned'), 'utf8'), 'written through the link\n');
        assert.equal(readFileSync(join(inside, 'newdir', 'f'), 'utf8'), 'deep\n');
      }));
  }

  test('a symlink replaced by a directory entry, and a directory chmod through a later symlink, stay inside', () =>
    contained(async (s) => {
      await apply(s, [
        [{ name: 'd/', type: 'directory', mode: 0o700 }],
        [{ name: 'd', type: 'symlink', linkname: s.outside }],
        [{ name: 'x/', type: 'directory', mode: 0o777 }, { name: 'x', type: 'symlink', linkname: s.outside }],
      ]);
      assert.equal(readlinkSync(join(s.root, 'x')), s.outside);
    }));

  test('a symlink loop is IMAGE_LAYER_INVALID, not a hang', () =>
    contained(async (s) => {
      await assert.rejects(apply(s, [[{ name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: 'a' }, { name: 'a/f', data: 'x' }]]), (e: unknown) => {
        assert.equal((e as { code: string }).code, 'IMAGE_LAYER_INVALID');
        return true;
      });
    }));

  test('setuid/setgid bits are dropped and device nodes and FIFOs are never created', () =>
    contained(async (s) => {
      const w = await apply(s, [
        [
          { name: 'bin/', type: 'directory' },
          { name: 'bin/su', data: 'x', mode: 0o4755, uid: 0 },
          { name: 'bin/wall', data: 'x', mode: 0o2755, gid: 5 },
          { name: 'bin/both', data: 'x', mode: 0o6711 },
          { name: 'bin/su-hard', type: 'link', linkname: 'bin/su' },
          { name: 'var/mail/', type: 'directory', mode: 0o2775 },
          { name: 'tmp/', type: 'directory', mode: 0o1777 },
          { name: 'dev/', type: 'directory' },
          { name: 'dev/sda', type: 'block-device', mode: 0o666, devmajor: 8, devminor: 0 },
          { name: 'dev/mem', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 1 },
          { name: 'dev/kmsg-fifo', type: 'fifo', mode: 0o666 },
        ],
      ]);
      assert.deepEqual(privilegedEntries(s.root), []);
      assert.equal(lstatSync(join(s.root, 'bin', 'su')).mode & 0o7777, 0o755);
      assert.equal(lstatSync(join(s.root, 'bin', 'both')).mode & 0o7777, 0o711);
      assert.equal(lstatSync(join(s.root, 'tmp')).mode & 0o7777, 0o1777, 'the sticky bit is kept');
      assert.deepEqual(readdirSync(join(s.root, 'dev')), []);
      assert.equal(w.setidDropped, 4);
      assert.equal(w.devicesSkipped, 3);
    }));

  test('allow-setuid keeps setuid/setgid bits, never device nodes', () =>
    contained(async (s) => {
      await apply(
        s,
        [[{ name: 'su', data: 'x', mode: 0o4755 }, { name: 'null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 }]],
        { allowSetuid: true },
      );
      assert.equal(lstatSync(join(s.root, 'su')).mode & 0o7777, 0o4755);
      assert.equal(existsSync(join(s.root, 'null')), false);
    }));

  test('a pre-existing symlink in the target root is never written through by finish()', () =>
    contained(async (s) => {
      symlinkSync(s.outside, join(s.root, 'pre'));
      await apply(s, [[{ name: 'pre/', type: 'directory', mode: 0o777 }, { name: 'pre/f', data: 'x' }]]);
      assert.ok(lstatSync(join(s.root, 'pre')).isDirectory(), 'the directory entry replaced the symlink');
    }));
});
