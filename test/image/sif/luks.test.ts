// Apptainer's encrypted SIFs (a LUKS2 volume as the system partition) cannot be opened without
// dm-crypt: Warren reads the LUKS2 header and refuses with SIF_ENCRYPTION_UNSUPPORTED, naming
// what it found, from the runtime's partition lookup and from `warren image decrypt`.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { createSif, partitionExtra, DataType, FsType, PartType, archCode, sifPartition, readLuksHeader } from '../../../src/image/index.js';
import { isWarrenError } from '../../../src/common/index.js';
import { cli } from './util.js';

/** A LUKS2 header as cryptsetup writes it (binary header + JSON area), then "encrypted" data. */
function luks2Volume(cipher = 'aes-xts-plain64'): Buffer {
  const hdrSize = 16384;
  const bin = Buffer.alloc(4096);
  Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]).copy(bin, 0);
  bin.writeUInt16BE(2, 6);
  bin.writeBigUInt64BE(BigInt(hdrSize), 8);
  bin.writeBigUInt64BE(1n, 16);
  bin.write('sha256', 72, 'latin1');
  bin.write('0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9', 168, 'latin1');
  const json = {
    keyslots: { '0': { type: 'luks2', key_size: 64, af: { type: 'luks1', stripes: 4000, hash: 'sha256' }, area: { type: 'raw', offset: '32768', size: '258048', encryption: cipher, key_size: 64 }, kdf: { type: 'pbkdf2', hash: 'sha256', iterations: 1000, salt: 'AAAA' } } },
    tokens: {},
    segments: { '0': { type: 'crypt', offset: '16777216', size: 'dynamic', iv_tweak: '0', encryption: cipher, sector_size: 512 } },
    digests: { '0': { type: 'pbkdf2', keyslots: ['0'], segments: ['0'], hash: 'sha256', iterations: 1000, salt: 'AAAA', digest: 'AAAA' } },
    config: { json_size: String(hdrSize - 4096), keyslots_size: '258048' },
  };
  const area = Buffer.alloc(hdrSize - 4096);
  Buffer.from(JSON.stringify(json)).copy(area);
  return Buffer.concat([bin, area, randomBytes(65536)]);
}

async function encryptedSif(path: string, volume: Buffer): Promise<void> {
  await createSif(path, [
    { dataType: DataType.Deffile, groupId: 1, data: Buffer.from('Bootstrap: docker\nFrom: alpine\n') },
    { dataType: DataType.Partition, groupId: 1, extra: partitionExtra(FsType.EncryptedSquashfs, PartType.PrimSys, archCode('amd64')), data: volume },
  ]);
}

describe('Apptainer LUKS2-encrypted SIFs', () => {
  test('the header is read: version, uuid, cipher, key slots', async () => {
    const { dir, cleanup } = tempDir('warren-luks-');
    try {
      const f = join(dir, 'v.bin');
      const v = luks2Volume('aes-xts-plain64');
      writeFileSync(f, v);
      assert.deepEqual(readLuksHeader(f, 0, v.length), { version: 2, uuid: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9', cipher: 'aes-xts-plain64', keySlots: 1 });
      writeFileSync(f, randomBytes(8192));
      assert.equal(readLuksHeader(f, 0, 8192), undefined);
    } finally {
      cleanup();
    }
  });

  test('the runtime and `warren image decrypt` refuse it with SIF_ENCRYPTION_UNSUPPORTED naming the cipher', async () => {
    const { dir, cleanup } = tempDir('warren-luks-');
    try {
      const image = join(dir, 'apptainer-encrypted.sif');
      await encryptedSif(image, luks2Volume('aes-xts-plain64'));
      await assert.rejects(sifPartition(image), (e: unknown) => {
        assert.ok(isWarrenError(e));
        assert.equal(e.code, 'SIF_ENCRYPTION_UNSUPPORTED');
        assert.match(e.message, /encrypted by Apptainer \(LUKS2, cipher aes-xts-plain64, 1 key slot\).*dm-crypt/);
        assert.match(e.hint ?? '', /warren image encrypt/);
        return true;
      });
      const env = { WARREN_HOME: join(dir, 'home'), PASS: 'secret' };
      const r = cli(['image', 'decrypt', image, '--passphrase-env', 'PASS', '-o', join(dir, 'plain.sif')], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /error\[SIF_ENCRYPTION_UNSUPPORTED\]: image .*apptainer-encrypted\.sif is encrypted by Apptainer/);
      assert.match(r.stderr, /hint: /);
    } finally {
      cleanup();
    }
  });

  test('an encrypted partition that is neither LUKS nor Warren-encrypted stays SIF_ENCRYPTED', async () => {
    const { dir, cleanup } = tempDir('warren-luks-');
    try {
      const image = join(dir, 'other.sif');
      await encryptedSif(image, randomBytes(65536));
      await assert.rejects(sifPartition(image), (e: unknown) => isWarrenError(e) && e.code === 'SIF_ENCRYPTED');
    } finally {
      cleanup();
    }
  });
});
