// Every way the runtime opens a squashfs root file system, each exercised for real: a loop
// mount (root), squashfuse (FUSE, where loop mounts are refused) and unsquashfs extraction
// (no FUSE either), on a squashfs behind a 4096-byte header, as inside a SIF.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findSquashfsTools, mountSquashfs } from '../../../src/runtime/container/rootfs.js';
import { makeBusyboxRootfs, makeSquashfs, mountsUnder } from './fixtures.js';
import { tempDir } from '../../helpers.js';

describe('squashfs root file systems', () => {
  const t = tempDir('warren-rootfs-');
  let img: { file: string; offset: number; size: number };
  const all = findSquashfsTools();
  before(() => {
    img = makeSquashfs(makeBusyboxRootfs(join(t.dir, 'rootfs')), join(t.dir, 'image.sif'), 4096);
  });
  after(t.cleanup);

  const open = (tools: typeof all, name: string) =>
    mountSquashfs({ file: img.file, loc: { offset: img.offset, size: img.size }, image: img.file, mountpoint: join(t.dir, `mnt-${name}`), extractDir: join(t.dir, 'extracted'), tools, root: process.getuid!() === 0 });

  for (const [via, tools] of [
    ['loop', { mount: all.mount, umount: all.umount }],
    ['squashfuse', { squashfuse: all.squashfuse, fusermount: all.fusermount, umount: all.umount }],
    ['extracted', { unsquashfs: all.unsquashfs }],
  ] as const) {
    test(`${via}: the image's files are there, and release leaves no mount behind`, { timeout: 60_000 }, async () => {
      assert.ok(Object.values(tools).every((p) => p !== undefined), `tools for ${via} are installed (scripts/apt/runtime.txt)`);
      const h = await open(tools, via);
      try {
        assert.equal(h.via, via);
        assert.ok(existsSync(join(h.path, 'bin', 'busybox')));
        assert.match(readFileSync(join(h.path, 'etc', 'passwd'), 'utf8'), /^root:x:0:0/);
      } finally {
        await h.release();
      }
      assert.deepEqual(mountsUnder(t.dir), []);
    });
  }

  test('a corrupt squashfs is refused naming the image, whatever the tools', { timeout: 60_000 }, async () => {
    await assert.rejects(
      mountSquashfs({ file: img.file, loc: { offset: 0, size: img.size }, image: 'corrupt.sif', mountpoint: join(t.dir, 'mnt-bad'), extractDir: join(t.dir, 'x2'), tools: all, root: true }),
      (e: Error) => /corrupt\.sif/.test(e.message),
    );
    assert.deepEqual(mountsUnder(t.dir), []);
  });
});
