// Ad-hoc containers on this machine (`warren exec|shell|run IMAGE`, `warren instance`): the
// image named on the command line made ready (src/image: pulled, or checked in place), held to
// the node's trust policy like every job's image, then run by the container runtime's ad-hoc
// runner (src/runtime/container adhoc.ts) with Apptainer's defaults. Always on this machine,
// also when a server context is set.
import { openSync, readSync, closeSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { WarrenError } from '../../common/index.js';
import type { AdhocRequest } from '../../runtime/container/index.js';
import { nodePolicy, type NodePolicy } from '../policy.js';

/** How an image is named on the command line (before it is prepared). */
export type AdhocImageArg = { kind: 'ref'; uri: string } | { kind: 'local'; path: string } | { kind: 'instance'; name: string };

const SCHEMES = /^(docker|oras|file|library|shub|docker-archive|docker-daemon|oci|oci-archive|http|https):\/\//;

/** True when the first bytes of `path` are a SIF's magic (SIF_MAGIC at offset 32, "SIF_" launch at 0). */
export function hasSifMagicSync(path: string): boolean {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const b = Buffer.alloc(42);
    const n = readSync(fd, b, 0, 42, 0);
    return n >= 42 && b.subarray(32, 41).toString('latin1') === 'SIF_MAGIC';
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/**
 * What `warren run ARG` means: an image when ARG is a SIF file (by its magic), has an image
 * scheme (`file://` too, unless it names a .yaml/.yml/.json file), or is a directory (a
 * sandbox); a workflow file otherwise.
 */
export function looksLikeImage(arg: string, cwd = process.cwd()): boolean {
  if (/^(docker|oras|library|shub|instance):\/\//.test(arg)) return true;
  if (arg.startsWith('file://')) return !/\.(ya?ml|json)$/i.test(arg);
  const p = resolve(cwd, arg);
  try {
    const st = statSync(p);
    if (st.isDirectory()) return true;
    return st.isFile() && hasSifMagicSync(p);
  } catch {
    return false;
  }
}

export function parseAdhocImage(arg: string, cwd = process.cwd()): AdhocImageArg {
  if (arg.startsWith('instance://')) return { kind: 'instance', name: arg.slice('instance://'.length) };
  const m = SCHEMES.exec(arg);
  if (m) {
    const scheme = m[1]!;
    if (!['docker', 'oras', 'file'].includes(scheme)) {
      throw new WarrenError('IMAGE_REF_INVALID', `image ${arg}: the ${scheme}:// scheme is not supported`, {
        hint: 'use docker://REGISTRY/NAME:TAG, oras://REGISTRY/NAME:TAG, a .sif file or a sandbox directory (pull library images with Apptainer first and give the .sif)',
      });
    }
    if (scheme === 'file') return { kind: 'local', path: resolve(cwd, arg.slice('file://'.length)) };
    return { kind: 'ref', uri: arg };
  }
  return { kind: 'local', path: resolve(cwd, arg) };
}

export interface AdhocRunOptions extends Omit<AdhocRequest, 'image' | 'stateDir' | 'allowSetuid' | 'decryption'> {
  /** The image as the user wrote it. */
  imageArg: string;
  /** $WARREN_HOME (not `home`: that is the container's --home). */
  warrenHome: string;
  /** An encrypted SIF's key: a PEM file or a stored key's fingerprint (`--key`), or the variable holding the passphrase (`--passphrase-env`). */
  key?: string;
  passphraseEnv?: string;
}

/** `--key` / `--passphrase-env` as the runtime takes them (in memory only). */
export async function decryptionOf(o: { key?: string; passphraseEnv?: string }): Promise<AdhocRequest['decryption']> {
  if (o.key !== undefined && o.passphraseEnv !== undefined) {
    throw new WarrenError('CLI_BAD_OPTION', 'give one of --key and --passphrase-env, not both', { hint: 'an image is encrypted either to an RSA key or with a passphrase' });
  }
  if (o.passphraseEnv !== undefined) {
    const v = process.env[o.passphraseEnv];
    if (v === undefined || v === '') {
      throw new WarrenError('SIF_PASSPHRASE_MISSING', `environment variable ${o.passphraseEnv} (given with --passphrase-env) is not set or empty`, {
        hint: `export ${o.passphraseEnv}=... first (the passphrase is read from the environment so it does not show in the process list)`,
      });
    }
    return { passphrase: v };
  }
  if (o.key === undefined) return undefined;
  const { resolveKey } = await import('../../image/index.js');
  const k = await resolveKey(o.key, { wantPrivate: true });
  if (k.kind !== 'pem' || !k.privateKey) {
    throw new WarrenError('KEY_TYPE_UNSUPPORTED', `key ${o.key} is not an RSA private key in PEM`, { hint: 'give the RSA private key the image was encrypted to (PEM), or --passphrase-env' });
  }
  return { key: k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** Prepare the image and hold it to the node's trust policy: what the ad-hoc runner takes. */
export async function prepareAdhocImage(home: string, imageArg: string, cwd = process.cwd(), policy: NodePolicy = nodePolicy(home)): Promise<AdhocRequest['image']> {
  const ref = parseAdhocImage(imageArg, cwd);
  if (ref.kind === 'instance') throw new WarrenError('INSTANCE_UNKNOWN', `${imageArg} names an instance: only \`warren exec\` enters one`, { hint: 'use `warren exec instance://NAME COMMAND`' });
  const img = await import('../../image/index.js');
  // A sandbox directory whatever its name; any other local path: src/image says what it is (a
  // SIF by its magic) or why it is not one.
  const prepared =
    ref.kind === 'local' && isDirectory(ref.path)
      ? { uri: ref.path, kind: 'rootfs' as const, path: ref.path, config: { env: [] as string[], labels: {} } }
      : await img.prepareImage(ref.kind === 'local' ? `file://${ref.path}` : ref.uri, { allowSetuid: policy.allowSetuid });
  const out = { ...prepared, uri: ref.kind === 'local' ? imageArg : prepared.uri, config: { ...prepared.config, env: prepared.config.env ?? [] } };
  if (!policy.requireSigned) return out;
  const eff = img.effectiveTrustPolicy(policy, undefined, new img.KeyStore(join(home, 'keys')));
  const gate = new img.TrustGate(eff, { dir: join(home, 'cache', 'trusted-sif') });
  return { ...out, ...(await gate.admit(out)) };
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Run an ad-hoc container to its end: the exit status of its command. */
export async function runAdhocContainer(o: AdhocRunOptions): Promise<number> {
  const { runAdhoc } = await import('../../runtime/container/index.js');
  const decryption = await decryptionOf(o);
  const policy = nodePolicy(o.warrenHome);
  const image = await prepareAdhocImage(o.warrenHome, o.imageArg, o.cwd, policy);
  const { imageArg: _i, warrenHome, key: _k, passphraseEnv: _p, ...rest } = o;
  return runAdhoc({ ...rest, image, stateDir: join(warrenHome, 'containers'), allowSetuid: policy.allowSetuid, ...(decryption ? { decryption } : {}) });
}
