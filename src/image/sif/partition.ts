// Which partition of a SIF runs: the primary system partition, chosen by Apptainer's rule
// (format.ts primaryPartition: exactly one descriptor of type Partition with partition type
// primary system). Verification (the trust gate) and mounting use this one rule.
import { WarrenError, EXIT } from '../../common/index.js';
import { DataType, FsType, primaryPartition, readSif, sifError, type SifImage } from './format.js';
import { ENCRYPTION_OBJECT_NAME } from './encrypt.js';
import { luksUnsupported, readLuksHeader } from './luks.js';

export interface PrimaryPartition {
  id: number;
  offset: number;
  size: number;
  fsType: 'squashfs' | 'ext3' | 'archive' | 'raw' | 'encrypted-squashfs' | string;
  arch: string;
}

function primaryOf(img: SifImage, image: string): PrimaryPartition {
  const d = primaryPartition(img, image);
  if (!d) throw sifError('SIF_NO_PARTITION', image, 'has no primary system partition', 'build the image with a root file system (`warren image build`)');
  return { id: d.id, offset: d.offset, size: d.size, fsType: d.partition!.fs, arch: d.partition!.arch };
}

/**
 * Where the primary system partition of a SIF is (for `mount -o loop,ro,offset=…,sizelimit=…`):
 * the one partition of type primary system (Apptainer's rule); SIF_PARTITION_AMBIGUOUS for two.
 */
export function findPrimaryPartition(path: string, image = path): PrimaryPartition {
  return primaryOf(readSif(path, image), image);
}

/**
 * True when the primary partition of a read image is encrypted by Warren (warren-sif-enc-v1:
 * fs type "encrypted squashfs" and a warren-encryption.json object); an Apptainer LUKS2 image
 * throws SIF_ENCRYPTION_UNSUPPORTED; a plain image is false.
 */
export function warrenEncrypted(img: SifImage, image = img.path): boolean {
  const p = primaryOf(img, image);
  if (img.descriptors.find((d) => d.id === p.id)?.partition?.fsType !== FsType.EncryptedSquashfs) return false;
  const luks = readLuksHeader(img.path, p.offset, p.size);
  if (luks) throw luksUnsupported(image, luks);
  return img.descriptors.some((d) => d.dataType === DataType.GenericJSON && d.name === ENCRYPTION_OBJECT_NAME && d.link === p.id);
}

/** The squashfs primary partition of a read image; SIF_ENCRYPTED / SIF_NOT_SQUASHFS otherwise. */
export function squashfsPartition(img: SifImage, image = img.path): { offset: number; size: number } {
  const p = primaryOf(img, image);
  if (p.fsType === 'encrypted-squashfs' || img.descriptors.find((d) => d.id === p.id)?.partition?.fsType === FsType.EncryptedSquashfs) {
    const luks = readLuksHeader(img.path, p.offset, p.size);
    if (luks) throw luksUnsupported(image, luks);
    throw new WarrenError('SIF_ENCRYPTED', `image ${image}: its system partition is encrypted, and no key to open it was given`, {
      hint: 'for a workflow job, add `decryptionSecret: secret://user/NAME` to its `image` (the secret holds the RSA private key or the passphrase, docs/encryption.md); or decrypt it first: `warren image decrypt IMAGE --key PRIVATE.pem -o PLAIN.sif` (or --passphrase-env VAR)',
    });
  }
  if (p.fsType !== 'squashfs') {
    throw new WarrenError('SIF_NOT_SQUASHFS', `image ${image}: its system partition is ${p.fsType}, not squashfs`, { hint: 'rebuild the image with a squashfs partition (`warren image build`)' });
  }
  return { offset: p.offset, size: p.size };
}

/**
 * For the container runtime (`sifPartition`): the squashfs partition to mount. Throws
 * SIF_ENCRYPTED for an encrypted partition and SIF_NOT_SQUASHFS for other file systems.
 */
export async function sifPartition(path: string): Promise<{ offset: number; size: number }> {
  return squashfsPartition(readSif(path, path), path);
}
