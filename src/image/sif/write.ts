// Writing SIF files: a new image from a list of objects (laid out as the reference does:
// descriptors at 4096, data after the table, partitions aligned to 4096 bytes), and adding one
// object to an existing image in place (as signing does).
import { randomBytes, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import {
  DataType,
  DEFAULT_LAUNCH,
  DESCRIPTOR_SIZE,
  ENTITY_LEN,
  EXTRA_LEN,
  GROUP_MASK,
  HEADER_SIZE,
  LAUNCH_LEN,
  NAME_LEN,
  PartType,
  ZERO_TIME,
  readSif,
  sifError,
  type SifImage,
} from './format.js';

export type ObjectData =
  | Buffer
  /** A byte range of another file, copied in large chunks. */
  | { file: string; offset: number; size: number }
  /** Produced on the fly (e.g. encrypted); its size is what it yields. */
  | { stream: () => AsyncIterable<Buffer> };

export interface ObjectInput {
  dataType: number;
  /** Object group (1, 2, ...); 0 = no group. Default 1. */
  groupId?: number;
  /** Linked object id, or group id when `linkIsGroup`. */
  link?: number;
  linkIsGroup?: boolean;
  name?: string;
  extra?: Buffer;
  data: ObjectData;
  /** Default 4096 for partitions, 1 otherwise (as the reference). */
  alignment?: number;
  /** Unix seconds; default: the image time. */
  createdAt?: number;
  uid?: number;
  gid?: number;
}

export interface CreateOptions {
  launch?: string;
  /** UUID text, or undefined for a random one. */
  id?: string;
  /** Zero UUID and zero timestamps (reproducible output), as the reference's OptCreateDeterministic. */
  deterministic?: boolean;
  /** Unix seconds for the header and the descriptors (default now). */
  time?: number;
  /** Descriptor capacity (default 48). */
  capacity?: number;
}

export function partitionExtra(fsType: number, partType: number, archCode: string): Buffer {
  const b = Buffer.alloc(11);
  b.writeInt32LE(fsType, 0);
  b.writeInt32LE(partType, 4);
  b.write(archCode.slice(0, 2), 8, 'latin1');
  return b;
}

export function signatureExtra(hashType: number, fingerprint?: Buffer): Buffer {
  const b = Buffer.alloc(4 + ENTITY_LEN);
  b.writeInt32LE(hashType, 0);
  if (fingerprint) fingerprint.copy(b, 4, 0, Math.min(fingerprint.length, ENTITY_LEN));
  return b;
}

export function encodeDescriptor(f: {
  dataType: number;
  id: number;
  rawGroupId: number;
  rawLink: number;
  offset: number;
  size: number;
  sizeWithPadding: number;
  createdAt: number;
  modifiedAt: number;
  uid?: number;
  gid?: number;
  name?: string;
  extra?: Buffer;
}): Buffer {
  const b = Buffer.alloc(DESCRIPTOR_SIZE);
  b.writeInt32LE(f.dataType, 0);
  b[4] = 1;
  b.writeUInt32LE(f.id >>> 0, 5);
  b.writeUInt32LE(f.rawGroupId >>> 0, 9);
  b.writeUInt32LE(f.rawLink >>> 0, 13);
  b.writeBigInt64LE(BigInt(f.offset), 17);
  b.writeBigInt64LE(BigInt(f.size), 25);
  b.writeBigInt64LE(BigInt(f.sizeWithPadding), 33);
  b.writeBigInt64LE(BigInt(f.createdAt), 41);
  b.writeBigInt64LE(BigInt(f.modifiedAt), 49);
  b.writeBigInt64LE(BigInt(f.uid ?? 0), 57);
  b.writeBigInt64LE(BigInt(f.gid ?? 0), 65);
  const name = Buffer.from(f.name ?? '', 'utf8');
  if (name.length > NAME_LEN) throw new Error(`object name too long (${name.length} > ${NAME_LEN} bytes)`);
  name.copy(b, 73);
  if (f.extra) {
    if (f.extra.length > EXTRA_LEN) throw new Error('descriptor extra data too large');
    f.extra.copy(b, 73 + NAME_LEN);
  }
  return b;
}

function encodeHeader(h: {
  launch: Buffer;
  archCode: string;
  uuid: Buffer;
  createdAt: number;
  modifiedAt: number;
  free: number;
  total: number;
  descriptorsOffset: number;
  descriptorsSize: number;
  dataOffset: number;
  dataSize: number;
}): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  h.launch.copy(b, 0, 0, LAUNCH_LEN);
  b.write('SIF_MAGIC\0', 32, 'latin1');
  b.write('01\0', 42, 'latin1');
  b.write(h.archCode.slice(0, 2), 45, 'latin1');
  h.uuid.copy(b, 48, 0, 16);
  const vals = [h.createdAt, h.modifiedAt, h.free, h.total, h.descriptorsOffset, h.descriptorsSize, h.dataOffset, h.dataSize];
  vals.forEach((v, i) => b.writeBigInt64LE(BigInt(v), 64 + i * 8));
  return b;
}

function nextAligned(off: number, align: number): number {
  return align > 1 && off % align !== 0 ? off - (off % align) + align : off;
}

const CHUNK = 8 << 20;

async function writeData(fh: FileHandle, pos: number, data: ObjectData): Promise<number> {
  if (Buffer.isBuffer(data)) {
    let done = 0;
    while (done < data.length) done += (await fh.write(data, done, data.length - done, pos + done)).bytesWritten;
    return data.length;
  }
  if ('file' in data) {
    const src = await open(data.file, 'r');
    try {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(data.size, 1)));
      let done = 0;
      while (done < data.size) {
        const want = Math.min(buf.length, data.size - done);
        const { bytesRead } = await src.read(buf, 0, want, data.offset + done);
        if (bytesRead === 0) throw new Error(`${data.file} ended early (at ${data.offset + done})`);
        let w = 0;
        while (w < bytesRead) w += (await fh.write(buf, w, bytesRead - w, pos + done + w)).bytesWritten;
        done += bytesRead;
      }
      return done;
    } finally {
      await src.close();
    }
  }
  let done = 0;
  for await (const chunk of data.stream()) {
    let w = 0;
    while (w < chunk.length) w += (await fh.write(chunk, w, chunk.length - w, pos + done + w)).bytesWritten;
    done += chunk.length;
  }
  return done;
}

function uuidBytes(id: string | undefined, deterministic: boolean | undefined): Buffer {
  if (deterministic) return Buffer.alloc(16);
  const text = id ?? randomUUID();
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`invalid UUID ${text}`);
  return Buffer.from(hex, 'hex');
}

/**
 * Write a new SIF at `out` with `objects` (ids 1, 2, ... in order). Written to a temporary file
 * beside `out` and renamed into place, so a failure leaves nothing half-written.
 */
/** The descriptor of object `o` written at `off` (`n` bytes; padding starts at `padFrom`). */
function objectDescriptor(o: ObjectInput, id: number, padFrom: number, off: number, n: number, time: number): Buffer {
  const group = o.groupId ?? 1;
  return encodeDescriptor({
    dataType: o.dataType,
    id,
    rawGroupId: (GROUP_MASK | group) >>> 0,
    rawLink: o.link ? (o.linkIsGroup ? (GROUP_MASK | o.link) >>> 0 : o.link) : 0,
    offset: off,
    size: n,
    sizeWithPadding: off - padFrom + n,
    createdAt: o.createdAt ?? time,
    modifiedAt: o.createdAt ?? time,
    uid: o.uid ?? 0,
    gid: o.gid ?? 0,
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.extra ? { extra: o.extra } : {}),
  });
}

export async function createSif(out: string, objects: ObjectInput[], opts: CreateOptions = {}): Promise<void> {
  const capacity = opts.capacity ?? Math.max(48, objects.length);
  if (objects.length > capacity) throw new Error(`too many objects (${objects.length}) for ${capacity} descriptors`);
  const t = opts.deterministic ? ZERO_TIME : (opts.time ?? Math.floor(Date.now() / 1000));
  const descriptorsOffset = 4096;
  const descriptorsSize = capacity * DESCRIPTOR_SIZE;
  const dataOffset = descriptorsOffset + descriptorsSize;
  const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o755);
  try {
    let pos = dataOffset;
    let archCode = '00';
    const table = Buffer.alloc(descriptorsSize);
    for (let i = 0; i < objects.length; i++) {
      const o = objects[i]!;
      const isPart = o.dataType === DataType.Partition;
      const off = nextAligned(pos, o.alignment ?? (isPart ? 4096 : 1));
      const n = await writeData(fh, off, o.data);
      if (isPart && o.extra && o.extra.readInt32LE(4) === PartType.PrimSys) archCode = o.extra.subarray(8, 10).toString('latin1');
      objectDescriptor(o, i + 1, pos, off, n, t).copy(table, i * DESCRIPTOR_SIZE);
      pos = off + n;
    }
    const launch = Buffer.alloc(LAUNCH_LEN);
    Buffer.from(opts.launch ?? DEFAULT_LAUNCH, 'utf8').copy(launch, 0, 0, LAUNCH_LEN - 1);
    const header = encodeHeader({
      launch,
      archCode,
      uuid: uuidBytes(opts.id, opts.deterministic),
      createdAt: t,
      modifiedAt: t,
      free: capacity - objects.length,
      total: capacity,
      descriptorsOffset,
      descriptorsSize,
      dataOffset,
      dataSize: pos - dataOffset,
    });
    await fh.write(header, 0, header.length, 0);
    await fh.write(Buffer.alloc(descriptorsOffset - HEADER_SIZE), 0, descriptorsOffset - HEADER_SIZE, HEADER_SIZE);
    await fh.write(table, 0, table.length, descriptorsOffset);
    await fh.truncate(Math.max(pos, dataOffset));
    await fh.sync();
    await fh.close();
    await rename(tmp, out);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Is the image "deterministic" (zero UUID and timestamps), as the reference decides? */
export function isDeterministic(img: SifImage): boolean {
  return /^[0-]+$/.test(img.header.id) && img.header.createdAt === ZERO_TIME && img.header.modifiedAt === ZERO_TIME;
}

/**
 * Add one object to the SIF at `path` in place (data after the last object, then its
 * descriptor, then the header), as the reference's AddObject. Returns the new object's id.
 * `time`: unix seconds for the descriptor and the header's modification time.
 */
export async function appendObject(path: string, o: ObjectInput, time: number, image = path): Promise<number> {
  const img = readSif(path, image);
  const used = new Set(img.descriptors.map((d) => d.index));
  let index = 0;
  while (used.has(index)) index++;
  if (index >= img.header.descriptorsTotal) {
    throw sifError('SIF_DESCRIPTORS_FULL', image, `all ${img.header.descriptorsTotal} descriptors are in use`, 'remove an object (e.g. an old signature) or rebuild the image with more descriptors');
  }
  const id = index + 1;
  if (img.descriptors.some((d) => d.id === id)) {
    throw sifError('SIF_CORRUPT', image, `object id ${id} is taken by another descriptor slot`, 'rebuild the image');
  }
  const end = img.header.dataOffset + img.header.dataSize;
  // The header says where the data ends; a damaged one must not make us write far away.
  if (img.header.dataOffset < img.header.descriptorsOffset + img.header.descriptorsSize || img.header.dataSize < 0 || end > img.fileSize || img.descriptors.some((d) => d.offset + d.size > end)) {
    throw sifError('SIF_CORRUPT', image, `the header is damaged (data from ${img.header.dataOffset}, ${img.header.dataSize} bytes, in a ${img.fileSize}-byte file)`, 'the file is damaged or truncated: build or download the image again, then retry');
  }
  const isPart = o.dataType === DataType.Partition;
  const off = nextAligned(end, o.alignment ?? (isPart ? 4096 : 1));
  // A file without any write permission is not changed, even by root (who could).
  if ((statSync(path).mode & 0o222) === 0) {
    throw sifError('SIF_READ_ONLY', image, 'is read-only (no write permission): signing would change it in place', 'copy the image somewhere writable (or chmod u+w it) and sign the copy');
  }
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw sifError('SIF_READ_ONLY', image, `cannot be changed in place (${code ?? String(e)})`, 'signing adds an object to the file: copy the image somewhere writable and sign the copy');
  }
  try {
    const n = await writeData(fh, off, o.data);
    const desc = objectDescriptor(o, id, end, off, n, time);
    await fh.write(desc, 0, desc.length, img.header.descriptorsOffset + index * DESCRIPTOR_SIZE);
    const h = Buffer.from(img.header.raw);
    h.writeBigInt64LE(BigInt(time), 72);
    h.writeBigInt64LE(BigInt(img.header.descriptorsFree - 1), 80);
    h.writeBigInt64LE(BigInt(img.header.dataSize + (off - end) + n), 120);
    await fh.write(h, 0, h.length, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return id;
}
