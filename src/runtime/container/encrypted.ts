// Encrypted SIFs (warren-sif-enc-v1) in the container runtime: the image subsystem decrypts the
// system partition into memory (a private tmpfs as root, /dev/shm otherwise: src/image/sif/open.ts)
// and the squashfs is mounted from there: a loop mount as root; squashfuse, or an unsquashfs
// extraction INTO THE SAME private tmpfs directory (never the per-user extraction cache on
// disk), otherwise. Released with the rest of the container (and swept after a crash: sweep.ts).
import { join } from 'node:path';
import { WarrenError } from '../../common/index.js';
import type { ContainerOptions } from '../types.js';
import { checkSquashfs, mountSquashfs, type RootfsHandle, type SquashfsTools } from './rootfs.js';

type ImageModule = typeof import('../../image/index.js');
let mod: Promise<ImageModule> | undefined;
const image = (): Promise<ImageModule> => (mod ??= import('../../image/index.js'));

/** True when `path` is a SIF whose system partition Warren encrypted. */
export async function isEncrypted(path: string, uri: string): Promise<boolean> {
  const m = await image();
  return m.isSif(path) && m.warrenEncrypted(m.readSif(path, uri), uri);
}

function keyOf(d: NonNullable<ContainerOptions['decryption']>): { key?: string; passphrase?: string } {
  return { ...(d.key !== undefined ? { key: d.key } : {}), ...(d.passphrase !== undefined ? { passphrase: d.passphrase } : {}) };
}

/** check(): the key opens the image (SIF_DECRYPT_FAILED otherwise), without decrypting the data. */
export async function checkKey(path: string, uri: string, d: ContainerOptions['decryption']): Promise<void> {
  if (!d) throw noKey(uri);
  await (await image()).checkDecryptionKey(path, { ...keyOf(d), image: uri });
}

export function noKey(uri: string): WarrenError {
  return new WarrenError('SIF_ENCRYPTED', `image ${uri}: its system partition is encrypted, and the job gives no key to open it`, {
    hint: 'add `decryptionSecret: secret://user/NAME` to the job\'s `image` (the secret holds the RSA private key or the passphrase, docs/encryption.md)',
  });
}

/** Decrypt into memory and mount; `release` unmounts and removes the plaintext. */
export async function openEncryptedRootfs(o: {
  path: string;
  uri: string;
  decryption: NonNullable<ContainerOptions['decryption']>;
  bundle: string;
  root: boolean;
  tools: SquashfsTools;
}): Promise<RootfsHandle> {
  const m = await image();
  const size = m.readSif(o.path, o.uri).fileSize;
  const opened = await m.openEncryptedSif(o.path, {
    ...keyOf(o.decryption),
    image: o.uri,
    root: o.root,
    // As root: the tmpfs under the bundle (removed, and swept, with it).
    ...(o.root ? { mountpoint: join(o.bundle, 'crypt') } : {}),
    // Room for an unsquashfs extraction when neither a loop mount nor squashfuse works.
    extraBytes: 4 * size + (64 << 20),
    ...(o.tools.mount ? { mountPath: o.tools.mount } : {}),
    ...(o.tools.umount ? { umountPath: o.tools.umount } : {}),
  });
  try {
    checkSquashfs(opened.path, opened.partition, o.uri);
    const fs = await mountSquashfs({ file: opened.path, loc: opened.partition, image: o.uri, mountpoint: join(o.bundle, 'image'), extractDir: join(opened.dir, 'rootfs'), tools: o.tools, root: o.root });
    return {
      ...fs,
      release: async () => {
        try {
          await fs.release();
        } finally {
          await opened.release();
        }
      },
    };
  } catch (e) {
    await opened.release();
    throw e;
  }
}
