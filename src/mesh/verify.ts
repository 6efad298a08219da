// Verification of a peer's X.509-SVID (spiffe/spiffe standards/X509-SVID.md §5): the chain
// to a CA of the trust bundle and the validity period with Node's X509Certificate, then the
// leaf rules: CA=false, keyUsage digitalSignature without keyCertSign/cRLSign, extKeyUsage
// serverAuth+clientAuth, exactly one URI SAN that is a SPIFFE ID of our trust domain with the
// expected path. The identity is read from the URI SAN only, never from the subject CN.
import { X509Certificate as NodeX509 } from 'node:crypto';
import { WarrenError, type ErrorCode } from '../common/index.js';
import { x509 } from './crypto.js';
import { parseSpiffeId, type SpiffeId, type SpiffeKind } from './spiffe.js';
import type { TrustBundle } from './bundle.js';
import { normalizeSerial, type RevocationList } from './revocation.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface VerifySvidOptions {
  trustBundle: TrustBundle;
  /** The cluster's trust domain: an SVID of another domain is refused. */
  trustDomain: string;
  /** The kind(s) of identity accepted here (agents: 'node'; the agent's view of a server: 'server'). */
  kind: SpiffeKind | readonly SpiffeKind[];
  /** The one name accepted (a client that must talk to a given server), if any. */
  name?: string;
  revocations?: RevocationList;
  /** The time to check validity at (default now). */
  now?: Date;
  /** false: do not check dates (reading an identity kept on disk, which may have expired). */
  checkTime?: boolean;
}

/** A verified SVID: its SPIFFE ID and the certificate facts the mesh acts on. */
export interface VerifiedSvid extends SpiffeId {
  /** Serial number, lowercase hex without leading zeros. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** The SHA-256 fingerprint (as Node prints it) of the bundle's CA that issued it. */
  issuer: string;
}

const REISSUE = 'the peer needs a certificate from this cluster\'s CA: join again with a join token (`warren token create`)';

function fail(code: ErrorCode, message: string, hint: string): never {
  throw new WarrenError(code, message, { hint });
}

function toNode(peer: NodeX509 | Buffer | string): NodeX509 {
  if (peer instanceof NodeX509) return peer;
  try {
    return new NodeX509(peer);
  } catch (e) {
    throw new WarrenError('MESH_CERT_INVALID', `the peer certificate cannot be read: ${(e as Error).message}`, { hint: REISSUE, cause: e });
  }
}

/** Verify a peer's X.509-SVID; returns its SPIFFE ID or throws a MESH_* WarrenError. */
export function verifySvid(peer: NodeX509 | Buffer | string, opts: VerifySvidOptions): VerifiedSvid {
  const leaf = toNode(peer);
  const now = (opts.now ?? new Date()).getTime();
  const subject = leaf.subject.replace(/\n/g, ', ');

  // 1. Chain: a CA of the bundle issued it (name and key identifier) and its signature verifies.
  let issuer: NodeX509 | undefined;
  let badSignature = false;
  for (const ca of opts.trustBundle.certificates) {
    if (!leaf.checkIssued(ca)) continue;
    if (leaf.verify(ca.publicKey)) {
      issuer = ca;
      break;
    }
    badSignature = true;
  }
  if (!issuer) {
    if (badSignature) fail('MESH_BAD_CHAIN', `the certificate "${subject}" names a trusted CA as issuer but its signature does not verify with that CA's key`, `the certificate was forged or damaged; ${REISSUE}`);
    fail('MESH_FOREIGN_CA', `the certificate "${subject}" was issued by "${leaf.issuer.replace(/\n/g, ', ')}", which is not a CA of this cluster's trust bundle`, `${REISSUE}; or, during a CA rotation, add the new CA to the trust bundle`);
  }
  const checkTime = opts.checkTime ?? true;
  if (checkTime && (Date.parse(issuer.validTo) < now || Date.parse(issuer.validFrom) > now)) {
    fail('MESH_BAD_CHAIN', `the CA "${issuer.subject.replace(/\n/g, ', ')}" that issued "${subject}" is not valid now (valid ${issuer.validFrom} to ${issuer.validTo})`, 'rotate the cluster CA: create a new one, add it to the trust bundle and re-issue certificates');
  }

  // 2. Validity period.
  const notBefore = new Date(Date.parse(leaf.validFrom));
  const notAfter = new Date(Date.parse(leaf.validTo));
  if (checkTime && notAfter.getTime() < now) fail('MESH_CERT_EXPIRED', `the certificate "${subject}" expired at ${notAfter.toISOString()}`, 'the agent renews its certificate at half its life: check that it runs and that its clock is right; if it was off longer than the certificate life, join again with a token');
  if (checkTime && notBefore.getTime() > now) fail('MESH_CERT_NOT_YET_VALID', `the certificate "${subject}" is valid only from ${notBefore.toISOString()}`, 'the clocks of this machine and the CA disagree: run NTP (chrony) on both');

  // 3. A leaf, not a signing certificate (§5.2).
  const px = new x509.X509Certificate(leaf.raw);
  const ku = px.getExtension(x509.KeyUsagesExtension);
  if (leaf.ca || (ku && ku.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign))) {
    fail('MESH_CA_LEAF', `the certificate "${subject}" is a CA certificate (CA:TRUE or keyCertSign/cRLSign), which never identifies a peer`, 'present a leaf certificate issued by the cluster CA, never the CA certificate itself');
  }
  if (!ku || !(ku.usages & x509.KeyUsageFlags.digitalSignature)) {
    fail('MESH_BAD_KEY_USAGE', `the certificate "${subject}" lacks keyUsage digitalSignature`, REISSUE);
  }
  const eku = leaf.keyUsage ?? [];
  if (!eku.includes(CLIENT_AUTH) || !eku.includes(SERVER_AUTH)) {
    fail('MESH_MISSING_EKU', `the certificate "${subject}" lacks extKeyUsage ${[!eku.includes(CLIENT_AUTH) && 'clientAuth', !eku.includes(SERVER_AUTH) && 'serverAuth'].filter(Boolean).join(' and ')}`, REISSUE);
  }

  // 4. Exactly one URI SAN, a SPIFFE ID of our trust domain with the expected path.
  const san = px.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
  if (uris.length === 0) fail('MESH_NO_SPIFFE_ID', `the certificate "${subject}" has no URI SAN, so no SPIFFE ID (its CN is never used as an identity)`, REISSUE);
  if (uris.length > 1) fail('MESH_MULTIPLE_URI_SANS', `the certificate "${subject}" has ${uris.length} URI SANs (${uris.join(', ')}); an X.509-SVID has exactly one`, REISSUE);
  const uri = uris[0]!;
  const td = /^spiffe:\/\/([^/]*)/.exec(uri)?.[1];
  if (td !== undefined && td !== opts.trustDomain) {
    fail('MESH_WRONG_TRUST_DOMAIN', `the SPIFFE ID ${uri} belongs to trust domain "${td}", not "${opts.trustDomain}"`, `${REISSUE}; a node of another cluster is not let in`);
  }
  const id = parseSpiffeId(uri);
  const kinds: readonly SpiffeKind[] = typeof opts.kind === 'string' ? [opts.kind] : opts.kind;
  if (!kinds.includes(id.kind)) {
    fail('MESH_WRONG_PATH', `the SPIFFE ID ${uri} is a ${id.kind} identity; here only ${kinds.join(' or ')} identities are accepted`, `connect with a ${kinds.join(' or ')} certificate`);
  }
  if (opts.name !== undefined && id.name !== opts.name) {
    fail('MESH_WRONG_PATH', `the SPIFFE ID ${uri} is not the expected ${id.kind} "${opts.name}"`, `check the address: it answers as ${id.kind} "${id.name}"`);
  }

  // 5. Not revoked.
  const serial = normalizeSerial(leaf.serialNumber);
  if (opts.revocations?.isRevoked(id.uri, serial)) {
    fail('MESH_REVOKED', `${id.uri} (certificate serial ${serial}) is revoked`, `if this ${id.kind} is trusted again, lift the revocation and let it join again with a new token`);
  }
  return { ...id, serial, notBefore, notAfter, issuer: issuer.fingerprint256 };
}
