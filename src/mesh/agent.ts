// The agent's side of its identity: it makes its own key (never leaves the machine), sends a
// PKCS#10 request, and keeps key and certificate together in one 0600 file of its data
// directory (written atomically, so a renewal never pairs a key with another key's
// certificate). A certificate is renewed at half its life, with a new key each time.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate as NodeX509, createPublicKey } from 'node:crypto';
import { WarrenError } from '../common/index.js';
import { x509, generateKeyPair, privateKeyToPem, EC_SIGNING_ALGORITHM, splitPemCertificates, type CryptoKeyPair } from './crypto.js';
import { TrustBundle } from './bundle.js';
import { verifySvid, type VerifiedSvid } from './verify.js';
import { SPIFFE_KINDS } from './spiffe.js';
import { ensureClosedDir, writePrivateFile, checkPrivateMode } from './files.js';
import type { MeshCredentials } from './mtls.js';

/** Key and certificate (PEM, key first), mode 0600. */
export const SVID_FILE = 'svid.pem';
/** The CA certificates the agent trusts, mode 0600. */
export const BUNDLE_FILE = 'bundle.pem';

/** When a certificate valid from notBefore to notAfter is due for renewal: at half its life. */
export function renewalTime(notBefore: Date, notAfter: Date): Date {
  return new Date(notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) / 2);
}

/** A PKCS#10 request for this key pair (the subject is informational; the CA decides the identity). */
export async function createCertificateRequest(keys: CryptoKeyPair, name?: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(name !== undefined ? { name: `CN=${name.replace(/[,+="\\<>;#]/g, '_')}` } : {}),
    keys,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
  });
  return csr.toString('pem') + '\n';
}

/** A key made for a request, waiting for its certificate. */
export class PendingIdentity {
  private constructor(
    readonly dir: string,
    readonly keyPem: string,
    /** The request to send to the server (PEM). */
    readonly csrPem: string,
  ) {}

  /** A new EC P-256 key and its certificate request (nothing written yet). */
  static async create(dir: string, name?: string): Promise<PendingIdentity> {
    const keys = await generateKeyPair();
    return new PendingIdentity(dir, await privateKeyToPem(keys.privateKey), await createCertificateRequest(keys, name));
  }

  /**
   * Take the certificate the server issued (and the trust bundle it sent): it must be for
   * this key and verify as an X.509-SVID against the bundle; then key and certificate are
   * written together.
   */
  complete(certPem: string, bundlePem: string): AgentIdentity {
    const bundle = TrustBundle.fromPem(bundlePem, 'the trust bundle from the server');
    const cert = new NodeX509(certPem);
    const mine = createPublicKey(this.keyPem).export({ type: 'spki', format: 'der' });
    const theirs = cert.publicKey.export({ type: 'spki', format: 'der' });
    if (!mine.equals(theirs)) {
      throw new WarrenError('MESH_CERT_KEY_MISMATCH', 'the certificate the server issued is not for the key this agent generated', {
        hint: 'the answer was for another request: join again',
      });
    }
    const td = /^spiffe:\/\/([^/]+)/.exec(uriOf(cert) ?? '')?.[1] ?? '';
    const svid = verifySvid(cert, { trustBundle: bundle, trustDomain: td, kind: SPIFFE_KINDS });
    ensureClosedDir(this.dir);
    writePrivateFile(join(this.dir, BUNDLE_FILE), bundle.pem.join('\n') + '\n');
    writePrivateFile(join(this.dir, SVID_FILE), this.keyPem + (this.keyPem.endsWith('\n') ? '' : '\n') + cert.toString());
    return new AgentIdentity(this.dir, this.keyPem, cert.toString(), bundle, svid);
  }
}

function uriOf(cert: NodeX509): string | undefined {
  const san = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension);
  return san?.names.items.find((n) => n.type === 'url')?.value;
}

/** The agent's current key, certificate and trust bundle. */
export class AgentIdentity {
  constructor(
    readonly dir: string,
    readonly keyPem: string,
    readonly certPem: string,
    readonly trustBundle: TrustBundle,
    /** What the certificate says (as verified against the bundle when it was installed or loaded). */
    readonly svid: VerifiedSvid,
  ) {}

  /** Is there an identity in this data directory? */
  static exists(dir: string): boolean {
    return existsSync(join(dir, SVID_FILE)) && existsSync(join(dir, BUNDLE_FILE));
  }

  /**
   * The identity kept in DIR. Its certificate is read, not re-verified for time: an expired
   * one loads (so the agent can see that it must join again) — check `expired()`.
   */
  static load(dir: string): AgentIdentity {
    const path = join(dir, SVID_FILE);
    if (!AgentIdentity.exists(dir)) {
      throw new WarrenError('MESH_IDENTITY_NOT_FOUND', `no agent identity in ${dir} (${SVID_FILE}, ${BUNDLE_FILE})`, {
        hint: 'join the cluster first with a join token from `warren token create`',
      });
    }
    checkPrivateMode(path, 'the agent key');
    const text = readFileSync(path, 'utf8');
    const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(text)?.[0];
    const certs = splitPemCertificates(text);
    if (!key || certs.length !== 1) {
      throw new WarrenError('MESH_IDENTITY_INVALID', `${path} does not hold one private key and one certificate`, {
        hint: `remove ${path} and join again with a new join token`,
      });
    }
    const bundle = TrustBundle.fromPem(readFileSync(join(dir, BUNDLE_FILE), 'utf8'), join(dir, BUNDLE_FILE));
    const cert = certs[0]!;
    const td = /^spiffe:\/\/([^/]+)/.exec(uriOf(cert) ?? '')?.[1] ?? '';
    // Everything but the dates: loading must not fail only because the certificate expired.
    const svid = verifySvid(cert, { trustBundle: bundle, trustDomain: td, kind: SPIFFE_KINDS, checkTime: false });
    return new AgentIdentity(dir, key.trimEnd() + '\n', cert.toString(), bundle, svid);
  }

  /** When to renew: half-way through the certificate's life. */
  get renewAt(): Date {
    return renewalTime(this.svid.notBefore, this.svid.notAfter);
  }

  needsRenewal(now = new Date()): boolean {
    return now.getTime() >= this.renewAt.getTime();
  }

  expired(now = new Date()): boolean {
    return now.getTime() > this.svid.notAfter.getTime();
  }

  /** Start a renewal: a new key and request; `complete()` the result to replace this identity. */
  renew(): Promise<PendingIdentity> {
    return PendingIdentity.create(this.dir, this.svid.name);
  }

  /**
   * Trust another bundle (a CA rotation: the server sends the new one). The node's own
   * certificate must still chain to it (else it is refused, MESH_FOREIGN_CA, and nothing is
   * written); then bundle.pem is replaced, atomically, so a restarted agent trusts it too.
   */
  withBundle(bundlePem: string): AgentIdentity {
    const bundle = TrustBundle.fromPem(bundlePem, 'the trust bundle from the server');
    const svid = verifySvid(this.certPem, { trustBundle: bundle, trustDomain: this.svid.trustDomain, kind: SPIFFE_KINDS, checkTime: false });
    writePrivateFile(join(this.dir, BUNDLE_FILE), bundle.pem.join('\n') + '\n');
    return new AgentIdentity(this.dir, this.keyPem, this.certPem, bundle, svid);
  }

  /** Key, certificate and bundle for the mTLS helpers. */
  get credentials(): MeshCredentials {
    return { keyPem: this.keyPem, certPem: this.certPem, trustBundle: this.trustBundle };
  }
}
