import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, symlinkSync, rmSync, existsSync, chmodSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packCpioGz } from '../../src/provision/index.js';
import type { WarrenError } from '../../src/common/index.js';

describe('cpio.gz archives (node images, overlays)', () => {
  const d = mkdtempSync(join(tmpdir(), 'warren-archive-'));
  after(() => rmSync(d, { recursive: true, force: true }));
  const tree = join(d, 'tree');
  mkdirSync(join(tree, 'etc/skip'), { recursive: true });
  writeFileSync(join(tree, 'etc/hostname'), 'n001\n');
  writeFileSync(join(tree, 'etc/skip/big'), 'left out\n');
  writeFileSync(join(tree, 'init'), '#!/bin/sh\n');
  chmodSync(join(tree, 'init'), 0o755);
  symlinkSync('hostname', join(tree, 'etc/link'));

  it('packs a tree that cpio unpacks whole (modes, symlinks), root-owned, its digest computed on the way', async () => {
    const out = join(d, 'a.cpio.gz');
    const r = await packCpioGz(tree, out, { rootOwned: true, exclude: ['etc/skip'] });
    const bytes = readFileSync(out);
    assert.equal(r.size, bytes.length);
    assert.equal(r.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(existsSync(`${out}.partial`), false);
    const x = join(d, 'x');
    mkdirSync(x);
    execFileSync('/bin/sh', ['-c', `gzip -dc ${out} | cpio --quiet -idm`], { cwd: x });
    assert.equal(readFileSync(join(x, 'etc/hostname'), 'utf8'), 'n001\n');
    assert.equal(statSync(join(x, 'init')).mode & 0o777, 0o755);
    assert.equal(readFileSync(join(x, 'etc/link'), 'utf8'), 'n001\n');
    assert.deepEqual(readdirSync(join(x, 'etc')).sort(), ['hostname', 'link']);
    const list = execFileSync('/bin/sh', ['-c', `gzip -dc ${out} | cpio --quiet -tv`]).toString();
    assert.ok(list.split('\n').filter(Boolean).every((l) => / root +root /.test(l)), list);
  });

  it('the same tree gives the same archive', async () => {
    const a = await packCpioGz(tree, join(d, 'b1.cpio.gz'));
    const b = await packCpioGz(tree, join(d, 'b2.cpio.gz'));
    assert.equal(a.sha256, b.sha256);
  });

  it('an unreadable tree fails with PROVISION_PACK_FAILED and leaves no partial file', async () => {
    const out = join(d, 'c.cpio.gz');
    await assert.rejects(packCpioGz(join(d, 'missing'), out), (e: WarrenError) => e.code === 'PROVISION_PACK_FAILED');
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(`${out}.partial`), false);
  });
});
