// The on-disk SIF format (Singularity Image Format) of Apptainer and SingularityCE, as written
// by the reference implementation (github.com/sylabs/sif/v2, pkg/sif): a 128-byte global header,
// a table of fixed-size (585-byte) descriptors at `descriptorsOffset`, and data objects after it.
// All integers are little endian; the structures are packed (Go's encoding/binary).
//
// Header: launch script [32] | magic "SIF_MAGIC\0" [10] | version "01\0" [3] | arch "02\0" [3] |
//   uuid [16] | created i64 | modified i64 | descriptors free i64 | descriptors total i64 |
//   descriptors offset i64 | descriptors size i64 | data offset i64 | data size i64
// Descriptor: type i32 | used u8 | id u32 | group u32 | link u32 | offset i64 | size i64 |
//   size with padding i64 | created i64 | modified i64 | uid i64 | gid i64 | name [128] | extra [384]
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { WarrenError, EXIT, type ErrorCode } from '../../common/index.js';

export const HEADER_SIZE = 128;
export const DESCRIPTOR_SIZE = 585;
export const LAUNCH_LEN = 32;
export const NAME_LEN = 128;
export const EXTRA_LEN = 384;
export const ENTITY_LEN = 256;
export const GROUP_MASK = 0xf0000000;
export const SIF_MAGIC = 'SIF_MAGIC';
export const DEFAULT_LAUNCH = '#!/usr/bin/env run-singularity\n';
/** Go's time.Time{}.Unix(): the timestamp of "deterministic" images. */
export const ZERO_TIME = -62135596800;

export const DataType = {
  Deffile: 0x4001,
  EnvVar: 0x4002,
  Labels: 0x4003,
  Partition: 0x4004,
  Signature: 0x4005,
  GenericJSON: 0x4006,
  Generic: 0x4007,
  CryptoMessage: 0x4008,
  SBOM: 0x4009,
  OCIRootIndex: 0x400a,
  OCIBlob: 0x400b,
} as const;

const DATA_TYPE_NAMES: Record<number, string> = {
  0x4001: 'Def.FILE',
  0x4002: 'Env.Vars',
  0x4003: 'JSON.Labels',
  0x4004: 'FS',
  0x4005: 'Signature',
  0x4006: 'JSON.Generic',
  0x4007: 'Generic/Raw',
  0x4008: 'Cryptographic Message',
  0x4009: 'SBOM',
  0x400a: 'OCI.RootIndex',
  0x400b: 'OCI.Blob',
};

export const FsType = { Squashfs: 1, Ext3: 2, ImmuObj: 3, Raw: 4, EncryptedSquashfs: 5 } as const;
const FS_NAMES: Record<number, string> = { 1: 'squashfs', 2: 'ext3', 3: 'archive', 4: 'raw', 5: 'encrypted-squashfs' };
export const PartType = { System: 1, PrimSys: 2, Data: 3, Overlay: 4 } as const;
const PART_NAMES: Record<number, string> = { 1: 'system', 2: 'primary-system', 3: 'data', 4: 'overlay' };
export const HashType = { SHA256: 1, SHA384: 2, SHA512: 3, BLAKE2S: 4, BLAKE2B: 5 } as const;
const HASH_NAMES: Record<number, string> = { 1: 'sha256', 2: 'sha384', 3: 'sha512', 4: 'blake2s', 5: 'blake2b' };
const SBOM_NAMES: Record<number, string> = {
  1: 'cyclonedx-json', 2: 'cyclonedx-xml', 3: 'github-json', 4: 'spdx-json', 5: 'spdx-rdf', 6: 'spdx-tag-value', 7: 'spdx-yaml', 8: 'syft-json',
};
const CRYPTO_FORMAT_NAMES: Record<number, string> = { 1: 'openpgp', 2: 'pem' };
const CRYPTO_MESSAGE_NAMES: Record<number, string> = { 0x100: 'clear-signature', 0x200: 'rsa-oaep' };

/** SIF architecture codes (header and partition "arch" fields) and Go's GOARCH names. */
const ARCH_CODES: Record<string, string> = {
  '00': 'unknown', '01': '386', '02': 'amd64', '03': 'arm', '04': 'arm64', '05': 'ppc64', '06': 'ppc64le',
  '07': 'mips', '08': 'mipsle', '09': 'mips64', '10': 'mips64le', '11': 's390x', '12': 'riscv64',
};

export function archName(code: string): string {
  return ARCH_CODES[code] ?? 'unknown';
}

/** SIF arch code ("02") of a GOARCH / Node arch name (amd64, x64, arm64, ...). */
export function archCode(arch: string): string {
  const go = ({ x64: 'amd64', ia32: '386', x32: '386', ppc64: 'ppc64', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[arch] ?? arch;
  for (const [code, name] of Object.entries(ARCH_CODES)) if (name === go) return code;
  return '00';
}

export function dataTypeName(t: number): string {
  return DATA_TYPE_NAMES[t] ?? `Unknown(0x${t.toString(16)})`;
}

export interface SifHeader {
  launch: string;
  version: string;
  /** GOARCH name of the primary partition, "unknown" when none. */
  arch: string;
  archCode: string;
  /** UUID in its usual text form. */
  id: string;
  createdAt: number;
  modifiedAt: number;
  descriptorsFree: number;
  descriptorsTotal: number;
  descriptorsOffset: number;
  descriptorsSize: number;
  dataOffset: number;
  dataSize: number;
  /** The raw 128 header bytes. */
  raw: Buffer;
}

export interface PartitionInfo {
  fsType: number;
  fs: string;
  partType: number;
  part: string;
  archCode: string;
  arch: string;
}

export interface SignatureInfo {
  hashType: number;
  hash: string;
  /** Hex fingerprint of the OpenPGP signer (20 bytes), undefined when not set (DSSE). */
  fingerprint?: string;
}

export interface SifDescriptor {
  /** Index in the descriptor table. */
  index: number;
  dataType: number;
  type: string;
  id: number;
  /** Object group (0 = none). */
  groupId: number;
  rawGroupId: number;
  /** Linked object or group id (0 = none). */
  link: number;
  linkIsGroup: boolean;
  rawLink: number;
  offset: number;
  size: number;
  sizeWithPadding: number;
  createdAt: number;
  modifiedAt: number;
  uid: number;
  gid: number;
  name: string;
  /** The raw 585 descriptor bytes. */
  raw: Buffer;
  partition?: PartitionInfo;
  signature?: SignatureInfo;
  cryptoMessage?: { format: string; message: string; formatType: number; messageType: number };
  sbom?: { format: string };
  ociBlob?: { digest: string };
}

export interface SifImage {
  path: string;
  fileSize: number;
  header: SifHeader;
  /** Descriptors in use, in table order. */
  descriptors: SifDescriptor[];
}

/** A NUL-terminated string field (the whole buffer when it has no NUL). */
export function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString('utf8');
}

function i64(b: Buffer, off: number): number {
  return Number(b.readBigInt64LE(off));
}

function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function sifError(code: ErrorCode, image: string, what: string, hint: string): WarrenError {
  return new WarrenError(code, `image ${image}: ${what}`, { hint });
}

const HINT_CORRUPT = 'the file is damaged or truncated: build or download the image again (`warren image build`, `apptainer build`), then retry';

export function parseHeader(buf: Buffer, image: string): SifHeader {
  if (buf.length < HEADER_SIZE) {
    if (buf.length >= 42 && buf.subarray(32, 41).toString('latin1') === SIF_MAGIC) {
      throw sifError('SIF_TRUNCATED', image, `the file ends inside the SIF header (${buf.length} of ${HEADER_SIZE} bytes)`, HINT_CORRUPT);
    }
    throw sifError('SIF_INVALID', image, `not a SIF file (${buf.length} bytes, no SIF header)`, 'give the path of a .sif file (made by `warren image build`, Apptainer or SingularityCE)');
  }
  if (buf.subarray(32, 42).toString('latin1') !== SIF_MAGIC + '\0') {
    throw sifError('SIF_INVALID', image, 'not a SIF file (bad magic: no "SIF_MAGIC" at byte 32)', 'give the path of a .sif file (made by `warren image build`, Apptainer or SingularityCE); if it is one, it is damaged: build or download it again');
  }
  const code = cstr(buf.subarray(45, 48));
  const h: SifHeader = {
    launch: cstr(buf.subarray(0, 32)),
    version: cstr(buf.subarray(42, 45)),
    archCode: code,
    arch: archName(code),
    id: uuidText(buf.subarray(48, 64)),
    createdAt: i64(buf, 64),
    modifiedAt: i64(buf, 72),
    descriptorsFree: i64(buf, 80),
    descriptorsTotal: i64(buf, 88),
    descriptorsOffset: i64(buf, 96),
    descriptorsSize: i64(buf, 104),
    dataOffset: i64(buf, 112),
    dataSize: i64(buf, 120),
    raw: Buffer.from(buf.subarray(0, HEADER_SIZE)),
  };
  if (h.version !== '01') {
    throw sifError('SIF_UNSUPPORTED', image, `SIF version "${h.version}" is not supported (only 01)`, 'rebuild the image with a current Apptainer/SingularityCE or `warren image build`');
  }
  if (h.descriptorsTotal < 0 || h.descriptorsTotal > 1_000_000 || h.descriptorsOffset < HEADER_SIZE || h.descriptorsSize !== h.descriptorsTotal * DESCRIPTOR_SIZE) {
    throw sifError('SIF_CORRUPT', image, `the header is damaged (descriptor table: ${h.descriptorsTotal} entries, offset ${h.descriptorsOffset}, ${h.descriptorsSize} bytes)`, HINT_CORRUPT);
  }
  return h;
}

export function parseDescriptor(b: Buffer, index: number): SifDescriptor | undefined {
  if (b[4] === 0) return undefined;
  const dataType = b.readInt32LE(0);
  const rawGroup = b.readUInt32LE(9);
  const rawLink = b.readUInt32LE(13);
  const extra = b.subarray(201, 201 + EXTRA_LEN);
  const d: SifDescriptor = {
    index,
    dataType,
    type: dataTypeName(dataType),
    id: b.readUInt32LE(5),
    rawGroupId: rawGroup,
    groupId: (rawGroup & ~GROUP_MASK) >>> 0,
    rawLink,
    link: (rawLink & ~GROUP_MASK) >>> 0,
    linkIsGroup: (rawLink & GROUP_MASK) >>> 0 === GROUP_MASK,
    offset: i64(b, 17),
    size: i64(b, 25),
    sizeWithPadding: i64(b, 33),
    createdAt: i64(b, 41),
    modifiedAt: i64(b, 49),
    uid: i64(b, 57),
    gid: i64(b, 65),
    name: cstr(b.subarray(73, 73 + NAME_LEN)),
    raw: Buffer.from(b),
  };
  if (dataType === DataType.Partition) {
    const fsType = extra.readInt32LE(0);
    const partType = extra.readInt32LE(4);
    const code = cstr(extra.subarray(8, 11));
    d.partition = { fsType, fs: FS_NAMES[fsType] ?? `unknown(${fsType})`, partType, part: PART_NAMES[partType] ?? `unknown(${partType})`, archCode: code, arch: archName(code) };
  } else if (dataType === DataType.Signature) {
    const hashType = extra.readInt32LE(0);
    const fp = extra.subarray(4, 24);
    d.signature = { hashType, hash: HASH_NAMES[hashType] ?? `unknown(${hashType})` };
    if (fp.some((x) => x !== 0)) d.signature.fingerprint = fp.toString('hex');
  } else if (dataType === DataType.CryptoMessage) {
    const formatType = extra.readInt32LE(0);
    const messageType = extra.readInt32LE(4);
    d.cryptoMessage = { formatType, messageType, format: CRYPTO_FORMAT_NAMES[formatType] ?? `unknown(${formatType})`, message: CRYPTO_MESSAGE_NAMES[messageType] ?? `unknown(${messageType})` };
  } else if (dataType === DataType.SBOM) {
    const f = extra.readInt32LE(0);
    d.sbom = { format: SBOM_NAMES[f] ?? `unknown(${f})` };
  } else if (dataType === DataType.OCIBlob || dataType === DataType.OCIRootIndex) {
    d.ociBlob = { digest: cstr(extra.subarray(0, 256)) };
  }
  return d;
}

function readFull(fd: number, len: number, pos: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === len ? b : b.subarray(0, got);
}

/** Read the header and descriptors of the SIF at `path` (no object data). Throws SIF_* errors naming the image. */
export function readSif(path: string, image = path): SifImage {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw sifError('SIF_NOT_FOUND', image, 'no such file', 'check the path of the .sif file');
    if (code === 'EISDIR') throw sifError('SIF_INVALID', image, 'is a directory, not a SIF file', 'give the path of a .sif file');
    throw sifError('SIF_NOT_FOUND', image, `cannot open (${code ?? String(e)})`, 'check the path and its permissions');
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw sifError('SIF_INVALID', image, 'is a directory, not a SIF file', 'give the path of a .sif file');
    const header = parseHeader(readFull(fd, HEADER_SIZE, 0), image);
    const tableEnd = header.descriptorsOffset + header.descriptorsSize;
    if (tableEnd > st.size) {
      throw sifError('SIF_TRUNCATED', image, `the file is truncated: it ends at byte ${st.size}, inside the descriptor table (${header.descriptorsOffset}..${tableEnd})`, HINT_CORRUPT);
    }
    const table = readFull(fd, header.descriptorsSize, header.descriptorsOffset);
    const descriptors: SifDescriptor[] = [];
    const ids = new Set<number>();
    for (let i = 0; i < header.descriptorsTotal; i++) {
      const d = parseDescriptor(table.subarray(i * DESCRIPTOR_SIZE, (i + 1) * DESCRIPTOR_SIZE), i);
      if (!d) continue;
      if (d.offset < 0 || d.size < 0 || d.offset + d.size > st.size) {
        const trunc = d.offset >= 0 && d.size >= 0 && d.offset <= st.size + (1 << 30);
        throw sifError(
          trunc ? 'SIF_TRUNCATED' : 'SIF_CORRUPT',
          image,
          `object ${d.id} (${d.type}, offset ${d.offset}, ${d.size} bytes) lies outside the ${st.size}-byte file${trunc ? ' (truncated file?)' : ''}`,
          HINT_CORRUPT,
        );
      }
      if (d.id === 0 || ids.has(d.id)) throw sifError('SIF_CORRUPT', image, `the descriptor table is damaged (object id ${d.id} ${d.id === 0 ? 'is invalid' : 'appears twice'})`, HINT_CORRUPT);
      ids.add(d.id);
      descriptors.push(d);
    }
    return { path, fileSize: st.size, header, descriptors };
  } finally {
    closeSync(fd);
  }
}

/** Does the file start like a SIF (cheap check: the magic at byte 32)? */
export function isSif(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    const fd = openSync(path, 'r');
    try {
      return readFull(fd, 42, 0).subarray(32, 41).toString('latin1') === SIF_MAGIC;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** Read `len` bytes of `path` at `offset` (fewer where the file ends first). */
export function readRange(path: string, offset: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    return readFull(fd, len, offset);
  } finally {
    closeSync(fd);
  }
}

/** Read the whole data of a (small) object. */
export function readObject(img: SifImage, d: SifDescriptor): Buffer {
  return readRange(img.path, d.offset, d.size);
}

/** The integrity-protected header fields: launch script, magic, version, UUID (61 bytes). */
export function headerIntegrityBytes(h: SifHeader): Buffer {
  return Buffer.concat([h.raw.subarray(0, 45), h.raw.subarray(48, 64)]);
}

/**
 * The integrity-protected descriptor fields, as the reference digests them: type, used, the id
 * relative to the group's smallest id, link, size, created, uid, gid, name, extra (545 bytes).
 * Offset, padding and modification time are left out, so objects may move.
 */
export function descriptorIntegrityBytes(d: SifDescriptor, relativeId: number): Buffer {
  const b = Buffer.alloc(4 + 1 + 4 + 4 + 8 * 4);
  b.writeInt32LE(d.dataType, 0);
  b[4] = 1;
  b.writeUInt32LE(relativeId >>> 0, 5);
  b.writeUInt32LE(d.rawLink >>> 0, 9);
  d.raw.copy(b, 13, 25, 33); // size
  d.raw.copy(b, 21, 41, 49); // created
  d.raw.copy(b, 29, 57, 73); // uid, gid
  return Buffer.concat([b, d.raw.subarray(73, 73 + NAME_LEN + EXTRA_LEN)]);
}

/** Group ids in use (sorted), as the reference lists them. */
export function groupIds(img: SifImage): number[] {
  const s = new Set<number>();
  for (const d of img.descriptors) if (d.groupId !== 0) s.add(d.groupId);
  return [...s].sort((a, b) => a - b);
}

export function groupObjects(img: SifImage, groupId: number): SifDescriptor[] {
  return img.descriptors.filter((d) => d.groupId === groupId).sort((a, b) => a.id - b.id);
}

/**
 * The primary system partition, chosen by Apptainer's rule (sylabs/sif `GetDescriptor(
 * WithPartitionType(PartPrimSys))`): the one descriptor of type Partition whose partition type
 * is primary system. No fallback to other system partitions. Two such descriptors are refused
 * (SIF_PARTITION_AMBIGUOUS): which one runs must not depend on table order.
 * Undefined when there is none.
 */
export function primaryPartition(img: SifImage, image = img.path): SifDescriptor | undefined {
  const prim = img.descriptors.filter((d) => d.dataType === DataType.Partition && d.partition?.partType === PartType.PrimSys);
  if (prim.length > 1) {
    throw sifError(
      'SIF_PARTITION_AMBIGUOUS',
      image,
      `has ${prim.length} primary system partitions (objects ${prim.map((d) => d.id).join(', ')}): which one to run is ambiguous`,
      'an image has exactly one primary system partition; this one was built wrongly or tampered with: rebuild it (`warren image build`) or get the original again',
    );
  }
  return prim[0];
}
