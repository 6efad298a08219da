// Trust policy: `require-signed: true` refuses an image that is not signed, or not signed by
// a trusted key, before anything runs. Trusted keys are fingerprints (of the key store) or key
// files; by default the key store's trusted keys.
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError, EXIT, warrenHome } from '../../common/index.js';
import { KeyStore, loadKeyFile, type LoadedKey } from '../keys/index.js';
import { TrustedSifStore, type TrustedCopy } from '../cache/index.js';
import { isSif, readSif } from './format.js';
import { squashfsPartition, warrenEncrypted } from './partition.js';
import { verifySif, type VerifyReport } from './integrity.js';

export interface TrustPolicy {
  requireSigned: boolean;
  /** Fingerprints (of keys in the key store) or paths of PEM / armored OpenPGP public keys. Default: the key store's trusted keys. */
  trustedKeys?: string[];
  /** Key store to use (default $WARREN_HOME/keys). */
  keyStore?: KeyStore;
  /** A workflow's trusted-keys that the node policy leaves out (effectiveTrustPolicy): named in the hint of a refusal. */
  ignoredWorkflowKeys?: string[];
}

export async function resolveTrustedKeys(refs: string[] | undefined, store: KeyStore): Promise<LoadedKey[]> {
  if (refs === undefined) return store.trustedKeys();
  const out: LoadedKey[] = [];
  for (const ref of refs) {
    if (existsSync(ref) || (ref.includes('/') && !/^SHA256:/.test(ref))) {
      out.push(await loadKeyFile(ref));
      continue;
    }
    const k = store.find(ref);
    if (!k) {
      throw new WarrenError('KEY_NOT_FOUND', `trusted key ${ref} of the policy is not in the key store ${store.dir}`, {
        hint: 'import it (`warren key import PUB.pem --trust`), or name a key file in the policy',
      });
    }
    out.push(await store.load(k));
  }
  return out;
}

/**
 * Check `imagePath` against the trust policy. Resolves with the fingerprints of the trusted keys
 * that signed it; throws IMAGE_UNSIGNED (no signature), IMAGE_UNTRUSTED_SIGNER (signed, but not
 * by a trusted key), SIF_INTEGRITY (changed since signing) or IMAGE_UNCOVERED_OBJECT (an object
 * that no trusted signature covers), each naming the image.
 */
export async function checkImageTrust(imagePath: string, policy: TrustPolicy): Promise<{ signers: string[] }> {
  if (!policy.requireSigned) return { signers: [] };
  refuseNonSif(imagePath, imagePath);
  const store = policy.keyStore ?? new KeyStore();
  const keys = await resolveTrustedKeys(policy.trustedKeys, store);
  return verifyUnderPolicy(imagePath, imagePath, keys);
}

function refuseNonSif(path: string, image: string): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    /* readSif reports a missing file */
  }
  if (isDir || (existsSync(path) && !isSif(path))) {
    throw new WarrenError('IMAGE_UNSIGNED', `image ${image} is not signed: it is ${isDir ? 'a root file system directory' : 'not a SIF file'}, and the policy requires signed images (require-signed: true)`, {
      hint: 'build a SIF (`warren image build SOURCE -o IMAGE.sif`) and sign it (`warren image sign IMAGE.sif --key PRIVATE.pem`), or drop require-signed',
    });
  }
}

async function verifyUnderPolicy(path: string, image: string, keys: LoadedKey[]): Promise<{ signers: string[] }> {
  const r = await verifySif(path, keys, { image });
  if (r.verified) {
    // Under a trust policy every object must be covered by a trusted signature (legacy too).
    if (r.uncoveredObjects.length) throw uncovered(image, r);
    return { signers: r.signers };
  }
  const e = r.error!;
  if (e.code === 'SIF_UNSIGNED') {
    throw new WarrenError('IMAGE_UNSIGNED', `image ${image} is not signed, and the policy requires signed images (require-signed: true)`, {
      hint: 'sign it (`warren image sign IMAGE --key PRIVATE.pem`) with a key the node trusts, or drop require-signed',
      details: { image },
    });
  }
  if (e.code === 'SIF_SIGNER_UNKNOWN') {
    const fps = [...new Set(r.signatures.flatMap((s) => s.unknownSigners))];
    throw new WarrenError('IMAGE_UNTRUSTED_SIGNER', `image ${image} is signed by ${fps.join(', ') || 'an unknown key'}, which is not a trusted key (${keys.length} trusted)`, {
      hint: keys.length ? 'if you trust that signer, import its public key: `warren key import PUB.pem --trust`' : 'no keys are trusted on this node: `warren key import PUB.pem --trust`',
      details: { image, fingerprints: fps },
    });
  }
  if (e.code === 'SIF_UNCOVERED_OBJECT') throw uncovered(image, r);
  throw e;
}

function uncovered(image: string, r: VerifyReport): WarrenError {
  return new WarrenError('IMAGE_UNCOVERED_OBJECT', `image ${image}: object${r.uncoveredObjects.length > 1 ? 's' : ''} ${r.uncoveredObjects.join(', ')} ${r.uncoveredObjects.length > 1 ? 'are' : 'is'} not covered by a trusted signature, and the policy requires signed images (require-signed: true)`, {
    hint: 'every object of the image must be in a signed group (an unsigned extra partition could be what runs): see them with `warren image inspect IMAGE`; rebuild and sign the image (`warren image sign` signs every group)',
    details: { image, objects: r.uncoveredObjects },
  });
}

// ---------------------------------------------------------------- one rule, two points

/** The node's policy ($WARREN_HOME/policy.json) as read by the CLI. */
export interface NodeTrustPolicy {
  requireSigned: boolean;
  trustedKeys: string[];
}

/** A workflow's `policy:` keys about images. */
export interface WorkflowTrustPolicy {
  requireSigned?: boolean;
  trustedKeys?: string[];
}

/**
 * The one trust rule, applied before the run, at resume and at each launch (docs/signing.md):
 *  - signing is required when the node policy or the workflow requires it;
 *  - the keys trusted by the node are the key store's trusted keys plus the node policy's
 *    `trusted-keys`;
 *  - when the NODE requires signing, only keys trusted by the node count: a workflow's
 *    `trusted-keys` cannot widen the node's policy (else any user could sign anything);
 *  - when only the workflow requires signing, its `trusted-keys` are trusted in addition.
 * `trustedKeys` is undefined when it is just the key store's trusted keys.
 */
export function effectiveTrustPolicy(node: NodeTrustPolicy, workflow: WorkflowTrustPolicy | undefined, keyStore: KeyStore = new KeyStore()): TrustPolicy & { ignoredWorkflowKeys: string[] } {
  const requireSigned = node.requireSigned || workflow?.requireSigned === true;
  const wfKeys = workflow?.trustedKeys ?? [];
  const extra = node.requireSigned ? [...node.trustedKeys] : [...node.trustedKeys, ...wfKeys];
  const ignoredWorkflowKeys = node.requireSigned ? wfKeys.filter((k) => !node.trustedKeys.includes(k)) : [];
  const base = { requireSigned, keyStore, ignoredWorkflowKeys };
  if (extra.length === 0) return base;
  const stored = keyStore.list().filter((k) => k.trusted).map((k) => k.fingerprint);
  return { ...base, trustedKeys: [...new Set([...stored, ...extra])] };
}

// ---------------------------------------------------------------- time of check = time of use

/** What the trust gate takes and gives back (structurally src/image's PreparedImage / the runtime's ContainerImage). */
export interface GatedImage {
  uri: string;
  kind: 'rootfs' | 'sif';
  path: string;
  digest?: string;
  partition?: { offset: number; size: number };
}

export function defaultTrustedSifDir(): string {
  return join(warrenHome(), 'cache', 'trusted-sif');
}

/**
 * The trust gate of one run: under a policy that requires signing, every SIF is copied into the
 * trusted store (content-addressed, only Warren can write it), THAT copy is verified (once per
 * digest and key set; the verdict is recorded beside it), and the copy is what the runtime
 * mounts: `admit` returns the image with `path` (and `partition`) pointing into the store. The
 * first copy of an image URI is kept for the rest of the run (a source swapped during the run
 * is not read again); a new process (e.g. `warren resume`) copies and checks the source again.
 */
export class TrustGate {
  readonly store: TrustedSifStore;
  private keys?: Promise<LoadedKey[]>;
  private readonly pinned = new Map<string, { copy: TrustedCopy; partition?: { offset: number; size: number }; signers: string[] }>();
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(readonly policy: TrustPolicy, opts: { dir?: string } = {}) {
    this.store = new TrustedSifStore(opts.dir ?? defaultTrustedSifDir());
  }

  get requireSigned(): boolean {
    return this.policy.requireSigned;
  }

  /** The image to run: unchanged without a policy; else the verified copy (or a refusal). */
  async admit<T extends GatedImage>(img: T): Promise<T & { signers?: string[]; contentDigest?: string; partition?: { offset: number; size: number } }> {
    if (!this.policy.requireSigned) return img;
    const key = `${img.uri}\0${img.path}`;
    // One admission at a time per image (check() and launch() of many tasks).
    for (;;) {
      const running = this.inflight.get(key);
      if (!running) break;
      await running.catch(() => undefined);
    }
    const p = this.admitOnce(img, key);
    this.inflight.set(key, p);
    try {
      return await p;
    } finally {
      this.inflight.delete(key);
    }
  }

  /** A refusal where the workflow's own keys were left out by the node policy says so. */
  private explain(e: unknown): unknown {
    const ignored = this.policy.ignoredWorkflowKeys ?? [];
    if (!ignored.length || !(e instanceof WarrenError) || (e.code !== 'IMAGE_UNTRUSTED_SIGNER' && e.code !== 'IMAGE_UNSIGNED')) return e;
    return new WarrenError(e.code, e.message, {
      hint: `the node policy ($WARREN_HOME/policy.json) requires signed images, so only keys the node trusts count; the workflow's trusted-keys (${ignored.join(', ')}) do not widen it: ask the administrator to trust the key (\`warren key import PUB.pem --trust\`, or the node policy's trusted-keys)`,
      ...(e.details ? { details: e.details } : {}),
    });
  }

  private async admitOnce<T extends GatedImage>(img: T, key: string): Promise<T & { signers?: string[]; contentDigest?: string; partition?: { offset: number; size: number } }> {
    const known = this.pinned.get(key);
    if (known && this.store.intact(known.copy.path)) return { ...img, path: known.copy.path, contentDigest: known.copy.digest, ...(known.partition ? { partition: known.partition } : {}), signers: known.signers };
    refuseNonSif(img.path, img.uri);
    // Structure first (a clear SIF_* error naming the image, before copying anything).
    readSif(img.path, img.uri);
    const copy = this.store.admit(img.path);
    const keys = await (this.keys ??= resolveTrustedKeys(this.policy.trustedKeys, this.policy.keyStore ?? new KeyStore()));
    const policyKey = createHash('sha256').update(keys.map((k) => k.fingerprint).sort().join('\n')).digest('hex').slice(0, 16);
    let signers = this.store.verdict(copy, policyKey);
    if (!signers) {
      try {
        signers = (await verifyUnderPolicy(copy.path, img.uri, keys)).signers;
      } catch (e) {
        throw this.explain(e);
      }
      this.store.recordVerdict(copy, policyKey, signers);
    }
    // The partition to mount, chosen by the same rule on the same (immutable) bytes.
    // An encrypted image has no squashfs to point at: the runtime decrypts the verified copy.
    const sif = readSif(copy.path, img.uri);
    const partition = warrenEncrypted(sif, img.uri) ? undefined : squashfsPartition(sif, img.uri);
    this.pinned.set(key, { copy, ...(partition ? { partition } : {}), signers });
    return { ...img, path: copy.path, contentDigest: copy.digest, ...(partition ? { partition } : {}), signers };
  }
}
