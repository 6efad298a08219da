// Reading real SIF files made by the reference implementation (../shared/sif-testdata).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { DataType, findPrimaryPartition, inspectSif, readSif, readObject, isSif } from '../../../src/image/sif/index.js';
import { cli, copyImage, img } from './util.js';

const ALL = [
  'empty.sif',
  'one-group.sif',
  'two-groups.sif',
  'one-group-signed-dsse.sif',
  'one-group-signed-pgp.sif',
  'one-group-signed-legacy.sif',
  'one-object-generic-json.sif',
  'one-object-crypt-message.sif',
  'one-object-sbom.sif',
  'one-object-oci-blob.sif',
  'one-object-time.sif',
];

describe('SIF reader on the reference images', () => {
  test('every image is read; headers are as the reference wrote them', () => {
    for (const name of ALL) {
      const s = readSif(img(name));
      assert.equal(s.header.version, '01', name);
      assert.equal(s.header.descriptorsTotal, 48, name);
      assert.equal(s.header.descriptorsOffset, 4096, name);
      assert.equal(s.header.descriptorsSize, 48 * 585, name);
      assert.equal(s.header.descriptorsFree, 48 - s.descriptors.length, name);
      for (const d of s.descriptors) assert.ok(d.offset + d.size <= s.fileSize, `${name}: object ${d.id} inside the file`);
    }
    assert.equal(readSif(img('empty.sif')).descriptors.length, 0);
    assert.equal(readSif(img('one-group.sif')).header.arch, '386');
    assert.equal(readSif(img('empty.sif')).header.arch, 'unknown');
  });

  test('one-group.sif: two partitions in group 1 (raw system 4 bytes, primary squashfs)', () => {
    const s = readSif(img('one-group.sif'));
    const rows = s.descriptors.map((d) => [d.id, d.type, d.groupId, d.link, d.offset, d.size, d.partition?.fs, d.partition?.part, d.partition?.arch]);
    assert.deepEqual(rows, [
      [1, 'FS', 1, 0, 32768, 4, 'raw', 'system', '386'],
      [2, 'FS', 1, 0, 36864, 4096, 'squashfs', 'primary-system', '386'],
    ]);
    assert.deepEqual(readObject(s, s.descriptors[0]!), Buffer.from('facefeed', 'hex'));
    // The primary partition is a real squashfs.
    assert.equal(readObject(s, s.descriptors[1]!).subarray(0, 4).toString('latin1'), 'hsqs');
    assert.deepEqual(findPrimaryPartition(img('one-group.sif')), { id: 2, offset: 36864, size: 4096, fsType: 'squashfs', arch: '386' });
  });

  test('two-groups.sif: an ext3 system partition in group 2 (amd64)', () => {
    const s = readSif(img('two-groups.sif'));
    const d = s.descriptors.find((x) => x.id === 3)!;
    assert.equal(d.groupId, 2);
    assert.equal(d.size, 262144);
    assert.equal(d.partition?.fs, 'ext3');
    assert.equal(d.partition?.arch, 'amd64');
  });

  test('signature descriptors: outside any group, linked to the group or (legacy) to an object', () => {
    const dsse = readSif(img('one-group-signed-dsse.sif')).descriptors.find((d) => d.dataType === DataType.Signature)!;
    assert.deepEqual([dsse.id, dsse.groupId, dsse.link, dsse.linkIsGroup, dsse.offset, dsse.size, dsse.signature?.hash, dsse.signature?.fingerprint], [3, 0, 1, true, 40960, 1694, 'sha256', undefined]);
    const pgp = readSif(img('one-group-signed-pgp.sif')).descriptors.find((d) => d.dataType === DataType.Signature)!;
    assert.equal(pgp.signature?.fingerprint, '12045c8c0b1004d058de4beda20c27ee7ff7ba84');
    assert.equal(pgp.linkIsGroup, true);
    const legacy = readSif(img('one-group-signed-legacy.sif')).descriptors.find((d) => d.dataType === DataType.Signature)!;
    assert.deepEqual([legacy.groupId, legacy.link, legacy.linkIsGroup, legacy.signature?.hash, legacy.name], [1, 2, false, 'sha384', 'part-signature']);
  });

  test('single-object images: generic JSON, crypto message, SBOM, OCI blob, time', () => {
    const j = readSif(img('one-object-generic-json.sif')).descriptors[0]!;
    assert.deepEqual([j.type, j.name, j.size, j.groupId], ['JSON.Generic', 'data.json', 2, 1]);
    assert.equal(readObject(readSif(img('one-object-generic-json.sif')), j).toString(), '{}');
    const c = readSif(img('one-object-crypt-message.sif')).descriptors[0]!;
    assert.deepEqual([c.type, c.cryptoMessage?.format, c.cryptoMessage?.message], ['Cryptographic Message', 'openpgp', 'clear-signature']);
    const s = readSif(img('one-object-sbom.sif')).descriptors[0]!;
    assert.deepEqual([s.type, s.sbom?.format, s.size], ['SBOM', 'cyclonedx-json', 454]);
    const o = readSif(img('one-object-oci-blob.sif')).descriptors[0]!;
    assert.equal(o.type, 'OCI.Blob');
    assert.equal(o.ociBlob?.digest, 'sha256:a88b15e95042f7d5a1327c03c57e10bdc1cf5f5efc2968fc73c12b6f5b00c731');
    const t = readSif(img('one-object-time.sif'));
    assert.equal(t.header.createdAt, 1593475316);
    assert.equal(t.descriptors[0]!.createdAt, 1593475316);
  });

  test('inspect --json and the table list every descriptor', () => {
    const j = inspectSif(img('two-groups.sif')) as { descriptors: { id: number; type: string; groupId: number; offset: number; size: number }[] };
    assert.deepEqual(j.descriptors.map((d) => [d.id, d.groupId, d.offset, d.size]), [[1, 1, 32768, 4], [2, 1, 36864, 4096], [3, 2, 40960, 262144]]);
    const r = cli(['image', 'inspect', img('one-group-signed-dsse.sif'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const parsed = JSON.parse(r.stdout) as { descriptors: { type: string; link: number; linkIsGroup: boolean }[] };
    assert.deepEqual(parsed.descriptors.map((d) => d.type), ['FS', 'FS', 'Signature']);
    const t = cli(['image', 'inspect', img('one-group-signed-pgp.sif')]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^3\s+Signature\s+-\s+group 1\s+40960\s+1048\s+sha256 signer 12045c8c0b1004d058de4beda20c27ee7ff7ba84$/m);
    assert.match(t.stdout, /^2\s+FS\s+1\s+-\s+36864\s+4096\s+squashfs primary-system 386$/m);
  });
});

describe('SIF reader on damaged files', () => {
  test('bad magic, truncated header, truncated table, truncated data, object outside the file', () => {
    const { dir, cleanup } = tempDir('warren-sif-bad-');
    try {
      const bad = join(dir, 'bad-magic.sif');
      const b = readFileSync(img('one-group.sif'));
      b.write('XIF', 32, 'latin1');
      writeFileSync(bad, b);
      assert.throws(() => readSif(bad), (e: Error & { code?: string; hint?: string }) => e.code === 'SIF_INVALID' && e.message.includes(bad) && /bad magic/.test(e.message) && !!e.hint);
      assert.equal(isSif(bad), false);

      const short = join(dir, 'short.sif');
      writeFileSync(short, readFileSync(img('one-group.sif')).subarray(0, 100));
      assert.throws(() => readSif(short), (e: Error & { code?: string }) => e.code === 'SIF_TRUNCATED' && e.message.includes(short));

      const table = join(dir, 'table.sif');
      copyImage(img('one-group.sif'), table);
      truncateSync(table, 5000);
      assert.throws(() => readSif(table), (e: Error & { code?: string }) => e.code === 'SIF_TRUNCATED' && /descriptor table/.test(e.message));

      const data = join(dir, 'data.sif');
      copyImage(img('two-groups.sif'), data);
      truncateSync(data, 100_000);
      assert.throws(() => readSif(data), (e: Error & { code?: string }) => e.code === 'SIF_TRUNCATED' && /object 3/.test(e.message));

      const wild = join(dir, 'wild.sif');
      const w = readFileSync(img('one-group.sif'));
      w.writeBigInt64LE(-5n, 4096 + 17); // object 1 offset
      writeFileSync(wild, w);
      assert.throws(() => readSif(wild), (e: Error & { code?: string }) => e.code === 'SIF_CORRUPT' && /object 1/.test(e.message));

      const text = join(dir, 'text.sif');
      writeFileSync(text, 'hello, this is not an image at all\n'.repeat(10));
      assert.throws(() => readSif(text), (e: Error & { code?: string }) => e.code === 'SIF_INVALID');
      assert.throws(() => readSif(join(dir, 'missing.sif')), (e: Error & { code?: string }) => e.code === 'SIF_NOT_FOUND');

      const r = cli(['image', 'inspect', table]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^error\[SIF_TRUNCATED\]: image .*table\.sif: /m);
      assert.match(r.stderr, /hint: /);
      const v = cli(['image', 'verify', bad, '--key', join(dir, 'nokey.pem')]);
      assert.notEqual(v.code, 0);
    } finally {
      cleanup();
    }
  });
});
