// Trust policy: `require-signed: true` refuses an image that is not signed, or not signed by
// a trusted key, before anything runs. Trusted keys are fingerprints (of the key store) or key
// files; by default the key store's trusted keys.
import { existsSync, statSync } from 'node:fs';
import { WarrenError, EXIT } from '../../common/index.js';
import { KeyStore, loadKeyFile, type LoadedKey } from '../keys/index.js';
import { isSif } from './format.js';
import { verifySif } from './integrity.js';

export interface TrustPolicy {
  requireSigned: boolean;
  /** Fingerprints (of keys in the key store) or paths of PEM / armored OpenPGP public keys. Default: the key store's trusted keys. */
  trustedKeys?: string[];
  /** Key store to use (default $WARREN_HOME/keys). */
  keyStore?: KeyStore;
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
        exitCode: EXIT.usage,
      });
    }
    out.push(await store.load(k));
  }
  return out;
}

/**
 * Check `imagePath` against the trust policy. Resolves with the fingerprints of the trusted keys
 * that signed it; throws IMAGE_UNSIGNED (no signature), IMAGE_UNTRUSTED_SIGNER (signed, but not
 * by a trusted key) or SIF_INTEGRITY (changed since signing), each naming the image.
 */
export async function checkImageTrust(imagePath: string, policy: TrustPolicy): Promise<{ signers: string[] }> {
  if (!policy.requireSigned) return { signers: [] };
  let isDir = false;
  try {
    isDir = statSync(imagePath).isDirectory();
  } catch {
    /* readSif reports a missing file */
  }
  if (isDir || (existsSync(imagePath) && !isSif(imagePath))) {
    throw new WarrenError('IMAGE_UNSIGNED', `image ${imagePath} is not signed: it is ${isDir ? 'a root file system directory' : 'not a SIF file'}, and the policy requires signed images (require-signed: true)`, {
      hint: 'build a SIF (`warren image build SOURCE -o IMAGE.sif`) and sign it (`warren image sign IMAGE.sif --key PRIVATE.pem`), or drop require-signed',
      exitCode: EXIT.usage,
    });
  }
  const store = policy.keyStore ?? new KeyStore();
  const keys = await resolveTrustedKeys(policy.trustedKeys, store);
  const r = await verifySif(imagePath, keys, { image: imagePath });
  if (r.verified) return { signers: r.signers };
  const e = r.error!;
  if (e.code === 'SIF_UNSIGNED') {
    throw new WarrenError('IMAGE_UNSIGNED', `image ${imagePath} is not signed, and the policy requires signed images (require-signed: true)`, {
      hint: 'sign it (`warren image sign IMAGE --key PRIVATE.pem`) with a key the node trusts, or drop require-signed',
      exitCode: EXIT.usage,
      details: { image: imagePath },
    });
  }
  if (e.code === 'SIF_SIGNER_UNKNOWN') {
    const fps = [...new Set(r.signatures.flatMap((s) => s.unknownSigners))];
    throw new WarrenError('IMAGE_UNTRUSTED_SIGNER', `image ${imagePath} is signed by ${fps.join(', ') || 'an unknown key'}, which is not a trusted key (${keys.length} trusted)`, {
      hint: keys.length ? 'if you trust that signer, import its public key: `warren key import PUB.pem --trust`' : 'no keys are trusted on this node: `warren key import PUB.pem --trust`',
      exitCode: EXIT.usage,
      details: { image: imagePath, fingerprints: fps },
    });
  }
  throw e;
}
