// Public API of the SIF part of the image subsystem: read, build, sign, verify, encrypt SIF
// images (the format of Apptainer and SingularityCE), and the trust policy.
import { readSif, type SifImage } from './format.js';

export { readSif, isSif, readObject, groupIds, groupObjects, primaryPartition, DataType, FsType, PartType, HashType, archName, archCode, dataTypeName } from './format.js';
export type { SifImage, SifHeader, SifDescriptor, PartitionInfo, SignatureInfo } from './format.js';
export { createSif, appendObject, partitionExtra, signatureExtra } from './write.js';
export type { ObjectInput, ObjectData, CreateOptions } from './write.js';
export { signSif, verifySif, assertVerified, dsseEnvelope, pae, hashRange, METADATA_MEDIA_TYPE } from './integrity.js';
export type { SignOptions, SignResult, VerifyOptions, VerifyReport, SignatureCheck, SignatureKind } from './integrity.js';
export { buildSif, buildSifFromOciLayout, readImageConfig, configDocument, CONFIG_OBJECT_NAME } from './build.js';
export { isOciLayout, unpackOciLayout } from './ocilayout.js';
export { readLuksHeader, LUKS_MAGIC } from './luks.js';
export type { Luks2Info } from './luks.js';
export { readSifMetadata, readSandboxMetadata, INSPECT_METADATA_NAME } from './metadata.js';
export type { ImageMetadata } from './metadata.js';
export type { BuildOptions, BuildResult } from './build.js';
export { encryptSif, decryptSif, encryptionInfo, ENCRYPTION_OBJECT_NAME } from './encrypt.js';
export type { EncryptOptions, DecryptOptions, EncryptResult } from './encrypt.js';
export { openEncryptedSif, checkDecryptionKey, isEncryptedSif, decryptionKeyFromText, assertMemoryBacked, sweepDecryptScratch, shmScratchParent, rootScratchParent } from './open.js';
export type { SifDecryptionKey, OpenEncryptedOptions, OpenedEncryptedSif } from './open.js';
export { checkImageTrust, resolveTrustedKeys } from './trust.js';
export type { TrustPolicy } from './trust.js';

export { findPrimaryPartition, sifPartition, squashfsPartition, warrenEncrypted } from './partition.js';
export type { PrimaryPartition } from './partition.js';
export { effectiveTrustPolicy, TrustGate, defaultTrustedSifDir } from './trust.js';
export type { NodeTrustPolicy, WorkflowTrustPolicy, GatedImage } from './trust.js';

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
