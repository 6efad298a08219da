// Apptainer's encrypted SIFs: the primary partition (fs type "encrypted squashfs") is a LUKS2
// volume (a cryptsetup header, then the squashfs encrypted with dm-crypt). Opening one needs
// the kernel's dm-crypt, which this platform does not rely on (and some kernels lack), so
// Warren reads the LUKS2 header only, to say exactly what the image is and refuse it clearly.
// Header layout (LUKS2 on-disk format, version 1.1.x): a 4096-byte binary header
//   magic "LUKS\xba\xbe" (6) | version u16 BE (= 2) | hdr_size u64 BE | seqid u64 | label[48] |
//   csum_alg[32] | salt[64] | uuid[40] | subsystem[48] | hdr_offset u64 | ...
// followed by the JSON area (hdr_size - 4096 bytes, NUL-padded): keyslots, segments, digests.
import { WarrenError } from '../../common/index.js';
import { cstr, readRange } from './format.js';

export const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]);

export interface Luks2Info {
  version: number;
  uuid: string;
  /** Cipher of the data segment, e.g. `aes-xts-plain64`. */
  cipher?: string;
  keySlots: number;
}

/** The LUKS header at `offset` of `path`, or undefined when there is none. */
export function readLuksHeader(path: string, offset: number, limit: number): Luks2Info | undefined {
  const head = readRange(path, offset, Math.min(4096, limit));
  if (head.length < 8 || !head.subarray(0, 6).equals(LUKS_MAGIC)) return undefined;
  const version = head.readUInt16BE(6);
  const uuid = head.length >= 208 ? cstr(head.subarray(168, 208)) : '';
  const info: Luks2Info = { version, uuid, keySlots: 0 };
  if (version !== 2 || head.length < 4096) return info;
  const hdrSize = Number(head.readBigUInt64BE(8));
  const jsonLen = Math.min(Math.max(0, hdrSize - 4096), limit - 4096, 4 << 20);
  if (jsonLen <= 0) return info;
  const area = readRange(path, offset + 4096, jsonLen);
  try {
    const doc = JSON.parse(cstr(area)) as { keyslots?: Record<string, unknown>; segments?: Record<string, { encryption?: unknown }> };
    info.keySlots = doc.keyslots && typeof doc.keyslots === 'object' ? Object.keys(doc.keyslots).length : 0;
    const seg = doc.segments ? Object.values(doc.segments)[0] : undefined;
    if (seg && typeof seg.encryption === 'string') info.cipher = seg.encryption;
  } catch {
    /* a damaged JSON area: the binary header is enough to say what it is */
  }
  return info;
}

/** SIF_ENCRYPTION_UNSUPPORTED for an Apptainer (LUKS) encrypted image. */
export function luksUnsupported(image: string, info: Luks2Info): WarrenError {
  const what = `LUKS${info.version}${info.cipher ? `, cipher ${info.cipher}` : ''}${info.keySlots ? `, ${info.keySlots} key slot${info.keySlots === 1 ? '' : 's'}` : ''}`;
  return new WarrenError(
    'SIF_ENCRYPTION_UNSUPPORTED',
    `image ${image} is encrypted by Apptainer (${what}): opening it needs the kernel's dm-crypt, which Warren does not use and this machine's kernel does not have`,
    {
      hint: 'decrypt it where Apptainer runs (`apptainer build plain.sif encrypted.sif` with its key) and, to keep it encrypted, re-encrypt it for Warren: `warren image encrypt plain.sif --key PUBLIC.pem` (docs/encryption.md)',
    },
  );
}
