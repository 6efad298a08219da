// Cluster identity (issue 8 §2): the cluster CA, X.509-SVIDs with SPIFFE IDs, mutual TLS,
// revocation, join tokens. See docs/mesh.md.
export { formatSpiffeId, parseSpiffeId, trustDomainId, checkTrustDomain, isTrustDomain, isSpiffeName, SPIFFE_KINDS } from './spiffe.js';
export type { SpiffeId, SpiffeKind } from './spiffe.js';
// x509: the @peculiar/x509 namespace with Node's WebCrypto set as its provider (for tools and tests).
export { generateKeyPair, privateKeyToPem, keyPairFromPem, randomSerial, x509 } from './crypto.js';
export type { CryptoKey, CryptoKeyPair } from './crypto.js';
export {
  CertificateAuthority,
  DEFAULT_LEAF_TTL_SECONDS,
  DEFAULT_CA_TTL_SECONDS,
  MAX_LEAF_TTL_SECONDS,
  BACKDATE_SECONDS,
  CA_KEY_FILE,
  CA_CERT_FILE,
  CA_META_FILE,
} from './ca.js';
export type { IssueOptions, IssuedCertificate, CreateCaOptions, ImportCaOptions } from './ca.js';
export { TrustBundle } from './bundle.js';
export { RevocationList, normalizeSerial } from './revocation.js';
export type { Revocation } from './revocation.js';
export { verifySvid } from './verify.js';
export type { VerifySvidOptions, VerifiedSvid } from './verify.js';
export { AgentIdentity, PendingIdentity, createCertificateRequest, renewalTime, SVID_FILE, BUNDLE_FILE } from './agent.js';
export { ensureClosedDir } from './files.js';
export {
  MeshServer,
  serverTlsOptions,
  clientTlsOptions,
  secureContextOptions,
  connectMesh,
  tlsError,
  MESH_TLS_MIN_VERSION,
} from './mtls.js';
export type { MeshCredentials, MeshServerOptions, MeshServerEvents, ClientCheck, CloseReason } from './mtls.js';
export { createJoinToken, consumeJoinToken, hashToken, MemoryTokenStore, MAX_TOKEN_TTL_SECONDS } from './tokens.js';
export type { TokenRecord, TokenStore, CreateTokenOptions } from './tokens.js';
export { rotationStep, nodesNotOn, countsForRotation } from './rotation.js';
export type { RotationPhase, RotationState, RotationNode, RotationStep } from './rotation.js';
export { writePrivateFile } from './files.js';
export { initCluster, readAdminToken, isAdminToken, ADMIN_TOKEN_FILE } from './cluster.js';
export type { ClusterInit } from './cluster.js';
