// Public API of the SIF part of the image subsystem: read, build, sign, verify, encrypt SIF
// images (the format of Apptainer and SingularityCE), and the trust policy.
import { WarrenError, EXIT } from '../../common/index.js';
import { primaryPartition, readSif, sifError, type SifImage } from './format.js';

export { readSif, isSif, readObject, groupIds, groupObjects, primaryPartition, DataType, FsType, PartType, HashType, archName, archCode, dataTypeName } from './format.js';
export type { SifImage, SifHeader, SifDescriptor, PartitionInfo, SignatureInfo } from './format.js';
export { createSif, appendObject, partitionExtra, signatureExtra } from './write.js';
export type { ObjectInput, ObjectData, CreateOptions } from './write.js';
export { signSif, verifySif, assertVerified, dsseEnvelope, pae, hashRange, METADATA_MEDIA_TYPE } from './integrity.js';
export type { SignOptions, SignResult, VerifyOptions, VerifyReport, SignatureCheck, SignatureKind } from './integrity.js';
export { buildSif, buildSifFromOciLayout, readImageConfig, configDocument, CONFIG_OBJECT_NAME } from './build.js';
export { isOciLayout, unpackOciLayout } from './ocilayout.js';
export type { BuildOptions, BuildResult } from './build.js';
export { encryptSif, decryptSif, encryptionInfo, ENCRYPTION_OBJECT_NAME } from './encrypt.js';
export type { EncryptOptions, DecryptOptions, EncryptResult } from './encrypt.js';
export { checkImageTrust, resolveTrustedKeys } from './trust.js';
export type { TrustPolicy } from './trust.js';

export interface PrimaryPartition {
  id: number;
  offset: number;
  size: number;
  fsType: 'squashfs' | 'ext3' | 'archive' | 'raw' | 'encrypted-squashfs' | string;
  arch: string;
}

/** Where the primary system partition of a SIF is (for `mount -o loop,ro,offset=…,sizelimit=…`). */
export function findPrimaryPartition(path: string, image = path): PrimaryPartition {
  const img = readSif(path, image);
  const d = primaryPartition(img);
  if (!d) throw sifError('SIF_NO_PARTITION', image, 'has no system partition', 'build the image with a root file system (`warren image build`)');
  return { id: d.id, offset: d.offset, size: d.size, fsType: d.partition!.fs, arch: d.partition!.arch };
}

/**
 * For the container runtime (`sifPartition`): the squashfs partition to mount. Throws
 * SIF_ENCRYPTED for an encrypted partition and SIF_NOT_SQUASHFS for other file systems.
 */
export async function sifPartition(path: string): Promise<{ offset: number; size: number }> {
  const p = findPrimaryPartition(path);
  if (p.fsType === 'encrypted-squashfs') {
    throw new WarrenError('SIF_ENCRYPTED', `image ${path}: its system partition is encrypted`, { hint: 'decrypt it first: `warren image decrypt IMAGE --key PRIVATE.pem -o PLAIN.sif` (or --passphrase-env VAR)', exitCode: EXIT.usage });
  }
  if (p.fsType !== 'squashfs') {
    throw new WarrenError('SIF_NOT_SQUASHFS', `image ${path}: its system partition is ${p.fsType}, not squashfs`, { hint: 'rebuild the image with a squashfs partition (`warren image build`)', exitCode: EXIT.usage });
  }
  return { offset: p.offset, size: p.size };
}

/** JSON form of a SIF's header and descriptors (what `warren image inspect --json` prints). */
export function inspectSif(path: string, image = path): Record<string, unknown> {
  const img: SifImage = readSif(path, image);
  const { raw: _r, ...header } = img.header;
  return {
    image,
    size: img.fileSize,
    header,
    descriptors: img.descriptors.map(({ raw: _raw, rawGroupId: _g, rawLink: _l, index: _i, ...d }) => d),
  };
}
