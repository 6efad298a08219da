// A trust bundle: the CA certificates a peer's X.509-SVID may chain to. Several CAs at once
// so that a CA can be rotated (old and new trusted side by side while leaves are re-issued).
import { X509Certificate as NodeX509 } from 'node:crypto';
import { WarrenError, EXIT } from '../common/index.js';
import { splitPemCertificates } from './crypto.js';

export class TrustBundle {
  private readonly cas = new Map<string, NodeX509>(); // by SHA-256 fingerprint

  constructor(cas: Iterable<NodeX509 | string> = []) {
    for (const c of cas) this.add(c);
  }

  /** A bundle of every certificate in a PEM text (one or more CAs). */
  static fromPem(pem: string, what = 'the trust bundle'): TrustBundle {
    let certs: NodeX509[];
    try {
      certs = splitPemCertificates(pem);
    } catch (e) {
      throw new WarrenError('MESH_BUNDLE_INVALID', `${what} has a certificate that cannot be read: ${(e as Error).message}`, {
        hint: 'give PEM CA certificates (-----BEGIN CERTIFICATE-----), e.g. the ca.crt of the cluster',
        cause: e,
      });
    }
    if (certs.length === 0) {
      throw new WarrenError('MESH_BUNDLE_INVALID', `${what} holds no certificate`, {
        hint: 'give PEM CA certificates (-----BEGIN CERTIFICATE-----), e.g. the ca.crt of the cluster',
      });
    }
    return new TrustBundle(certs);
  }

  /** Trust one more CA (a PEM certificate or Node's X509Certificate); it must be a CA. */
  add(ca: NodeX509 | string): this {
    const cert = typeof ca === 'string' ? new NodeX509(ca) : ca;
    if (!cert.ca) {
      throw new WarrenError('MESH_BUNDLE_INVALID', `${cert.subject.replace(/\n/g, ', ')} is not a CA certificate and cannot be trusted as one`, {
        hint: 'a trust bundle holds CA certificates only (basicConstraints CA:TRUE), never a leaf',
      });
    }
    this.cas.set(cert.fingerprint256, cert);
    return this;
  }

  /** Stop trusting the CA with this SHA-256 fingerprint (as Node prints it). */
  remove(fingerprint256: string): boolean {
    return this.cas.delete(fingerprint256);
  }

  get certificates(): NodeX509[] {
    return [...this.cas.values()];
  }

  /** The SHA-256 fingerprints of its CAs (as Node prints them), sorted. */
  get fingerprints(): string[] {
    return [...this.cas.keys()].sort();
  }

  /** Does it trust exactly these CAs (by fingerprint)? */
  sameAs(fingerprints: readonly string[]): boolean {
    const given = new Set(fingerprints);
    return given.size === this.cas.size && [...given].every((f) => this.cas.has(f));
  }

  get size(): number {
    return this.cas.size;
  }

  /** Every CA, PEM, for the `ca` option of Node's tls. */
  get pem(): string[] {
    return this.certificates.map((c) => c.toString());
  }
}
