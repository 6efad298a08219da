// The cluster's certificate authority: one EC P-256 key and a self-signed CA certificate
// that is itself an X.509-SVID signing certificate (URI SAN spiffe://<trust domain>), kept in
// a directory (0700; key 0600). It issues short-lived leaf X.509-SVIDs from PKCS#10 requests
// exactly as spiffe/spiffe standards/X509-SVID.md says: one URI SAN, CA=false,
// keyUsage digitalSignature (critical), extKeyUsage serverAuth+clientAuth, random serial.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { WarrenError, EXIT, type ErrorCode } from '../common/index.js';
import { x509, generateKeyPair, privateKeyToPem, keyPairFromPem, randomSerial, EC_SIGNING_ALGORITHM, subtle, type CryptoKey, type CryptoKeyPair } from './crypto.js';
import { checkTrustDomain, formatSpiffeId, trustDomainId, type SpiffeId, type SpiffeKind } from './spiffe.js';
import { ensurePrivateDir, writePrivateFile, checkPrivateMode } from './files.js';

/** Default life of a leaf certificate: one hour (renewed at half its life). */
export const DEFAULT_LEAF_TTL_SECONDS = 3600;
/** Default life of a CA Warren creates: ten years (rotated with a trust bundle, later). */
export const DEFAULT_CA_TTL_SECONDS = 10 * 365 * 24 * 3600;
/** Leaves are backdated this much, for clocks a little behind the CA's. */
export const BACKDATE_SECONDS = 30;
/** Longest leaf life the CA agrees to issue: 30 days. */
export const MAX_LEAF_TTL_SECONDS = 30 * 24 * 3600;

export const CA_KEY_FILE = 'ca.key';
export const CA_CERT_FILE = 'ca.crt';
export const CA_META_FILE = 'ca.json';

export interface IssueOptions {
  kind: SpiffeKind;
  name: string;
  /** Life in seconds from now (default 1 h). Ignored when notAfter is given. */
  ttlSeconds?: number;
  /** DNS names for a server certificate (the names it listens under). */
  dnsNames?: string[];
  /** IP addresses for a server certificate (the addresses it listens on). */
  ipAddresses?: string[];
  /** Explicit validity (tooling and tests: a certificate already expired). */
  notBefore?: Date;
  notAfter?: Date;
}

export interface IssuedCertificate {
  certPem: string;
  spiffeId: SpiffeId;
  /** Serial number, lowercase hex. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CreateCaOptions {
  trustDomain: string;
  ttlSeconds?: number;
  /** The CA's subject (default `CN=Warren CA <trust domain>, O=Warren`); a rotation's new CA gets its own. */
  name?: string;
}

/** A key and certificate an operator gives Warren instead of letting it create its own CA. */
export interface ImportCaOptions {
  trustDomain: string;
  certPem: string;
  keyPem: string;
}

function caError(code: ErrorCode, message: string, hint: string): WarrenError {
  return new WarrenError(code, message, { hint });
}

export class CertificateAuthority {
  private constructor(
    readonly dir: string,
    readonly trustDomain: string,
    private readonly keys: CryptoKeyPair,
    /** The CA certificate (@peculiar/x509 form, for its key identifier and name). */
    private readonly cert: x509.X509Certificate,
    /** The CA certificate, PEM. */
    readonly certPem: string,
  ) {}

  /** Node's view of the CA certificate (for trust bundles and verification). */
  get certificate(): NodeX509 {
    return new NodeX509(this.certPem);
  }

  get notAfter(): Date {
    return this.cert.notAfter;
  }

  /** The CA certificate's SHA-256 fingerprint as Node prints it (`AB:CD:...`): how trust bundles and nodes name a CA. */
  get fingerprint(): string {
    return (this.fp ??= this.certificate.fingerprint256);
  }
  private fp: string | undefined;

  /** Is there a CA in this directory? */
  static exists(dir: string): boolean {
    return existsSync(join(dir, CA_KEY_FILE)) && existsSync(join(dir, CA_CERT_FILE));
  }

  /** Create a new CA in DIR (refused if one is there: never overwrite a CA key). */
  static async create(dir: string, opts: CreateCaOptions): Promise<CertificateAuthority> {
    if (CertificateAuthority.exists(dir)) {
      throw caError('MESH_CA_EXISTS', `a certificate authority already exists in ${dir}`, 'load it (CertificateAuthority.load) or choose another directory; a CA key is never overwritten');
    }
    const { ca, keyPem } = await CertificateAuthority.generate(opts);
    ensurePrivateDir(dir);
    writePrivateFile(join(dir, CA_KEY_FILE), keyPem);
    writePrivateFile(join(dir, CA_CERT_FILE), ca.certPem, 0o644);
    writePrivateFile(join(dir, CA_META_FILE), JSON.stringify({ trustDomain: ca.trustDomain, createdAt: ca.cert.notBefore.toISOString(), imported: false }, null, 2) + '\n', 0o644);
    return new CertificateAuthority(dir, ca.trustDomain, ca.keys, ca.cert, ca.certPem);
  }

  /** A new CA in memory only (a rotation's next CA: kept in the store, not in a directory); with its key as PKCS#8 PEM. */
  static async generate(opts: CreateCaOptions): Promise<{ ca: CertificateAuthority; keyPem: string }> {
    const td = checkTrustDomain(opts.trustDomain);
    const ttl = opts.ttlSeconds ?? DEFAULT_CA_TTL_SECONDS;
    const keys = await generateKeyPair();
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: opts.name ?? `CN=Warren CA ${td}, O=Warren`,
      notBefore: new Date(now - BACKDATE_SECONDS * 1000),
      notAfter: new Date(now + ttl * 1000),
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      keys,
      extensions: [
        // X509-SVID §4.1, §4.3: a signing certificate is a CA with keyCertSign (critical).
        // pathLen 0: this CA signs leaves only.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        // §3.2: it SHOULD be an SVID whose SPIFFE ID has no path.
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(td) }]),
      ],
    });
    return { ca: new CertificateAuthority('', td, keys, cert, cert.toString('pem') + '\n'), keyPem: await privateKeyToPem(keys.privateKey) };
  }

  /** A CA from its PEM certificate and key, in memory only (checked as `import` checks it). */
  static async fromPem(opts: ImportCaOptions): Promise<CertificateAuthority> {
    const td = checkTrustDomain(opts.trustDomain);
    const { keys, cert } = await CertificateAuthority.check(opts.certPem, opts.keyPem, 'the given CA');
    return new CertificateAuthority('', td, keys, cert, cert.toString('pem') + '\n');
  }

  /** Use a CA the operator gives (an EC P-256 CA key and its certificate): checked, then kept in DIR. */
  static async import(dir: string, opts: ImportCaOptions): Promise<CertificateAuthority> {
    const td = checkTrustDomain(opts.trustDomain);
    if (CertificateAuthority.exists(dir)) {
      throw caError('MESH_CA_EXISTS', `a certificate authority already exists in ${dir}`, 'choose another directory; a CA key is never overwritten');
    }
    const { keys, cert } = await CertificateAuthority.check(opts.certPem, opts.keyPem, 'the given CA');
    ensurePrivateDir(dir);
    const certPem = cert.toString('pem') + '\n';
    writePrivateFile(join(dir, CA_KEY_FILE), await privateKeyToPem(keys.privateKey));
    writePrivateFile(join(dir, CA_CERT_FILE), certPem, 0o644);
    writePrivateFile(join(dir, CA_META_FILE), JSON.stringify({ trustDomain: td, createdAt: new Date().toISOString(), imported: true }, null, 2) + '\n', 0o644);
    return new CertificateAuthority(dir, td, keys, cert, certPem);
  }

  /** Load the CA of DIR (its key must be 0600). */
  static async load(dir: string): Promise<CertificateAuthority> {
    if (!CertificateAuthority.exists(dir)) {
      throw caError('MESH_CA_NOT_FOUND', `no certificate authority in ${dir} (${CA_KEY_FILE}, ${CA_CERT_FILE})`, 'create one (the server does on its first start) or give the directory that holds it');
    }
    const keyPath = join(dir, CA_KEY_FILE);
    checkPrivateMode(keyPath, 'the CA key');
    let meta: { trustDomain?: unknown };
    try {
      meta = JSON.parse(readFileSync(join(dir, CA_META_FILE), 'utf8')) as { trustDomain?: unknown };
    } catch (e) {
      throw new WarrenError('MESH_CA_INVALID', `cannot read ${join(dir, CA_META_FILE)}: ${(e as Error).message}`, {
        hint: `restore ${CA_META_FILE} ({"trustDomain": "..."}) from a backup of the CA directory`,
        cause: e,
      });
    }
    const td = checkTrustDomain(String(meta.trustDomain ?? ''));
    const { keys, cert } = await CertificateAuthority.check(readFileSync(join(dir, CA_CERT_FILE), 'utf8'), readFileSync(keyPath, 'utf8'), `the CA in ${dir}`);
    return new CertificateAuthority(dir, td, keys, cert, cert.toString('pem') + '\n');
  }

  /** Load the CA of DIR, or create it there when there is none. */
  static async open(dir: string, opts: CreateCaOptions): Promise<{ ca: CertificateAuthority; created: boolean }> {
    if (CertificateAuthority.exists(dir)) {
      const ca = await CertificateAuthority.load(dir);
      if (ca.trustDomain !== opts.trustDomain) {
        throw caError('MESH_CA_TRUST_DOMAIN', `the CA in ${dir} is for trust domain "${ca.trustDomain}", not "${opts.trustDomain}"`, `use trust domain "${ca.trustDomain}", or another directory for a new cluster`);
      }
      return { ca, created: false };
    }
    return { ca: await CertificateAuthority.create(dir, opts), created: true };
  }

  private static async check(certPem: string, keyPem: string, what: string): Promise<{ keys: CryptoKeyPair; cert: x509.X509Certificate }> {
    let node: NodeX509;
    let cert: x509.X509Certificate;
    let keys: CryptoKeyPair;
    try {
      node = new NodeX509(certPem);
      cert = new x509.X509Certificate(node.raw);
      keys = await keyPairFromPem(keyPem);
    } catch (e) {
      throw new WarrenError('MESH_CA_INVALID', `${what} cannot be read: ${(e as Error).message}`, {
        hint: 'give a PEM CA certificate and its PEM (PKCS#8 or SEC1) EC P-256 private key',
        cause: e,
      });
    }
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    if (!node.ca || !ku || !(ku.usages & x509.KeyUsageFlags.keyCertSign)) {
      throw caError('MESH_CA_INVALID', `${what} is not a CA certificate (it needs basicConstraints CA:TRUE and keyUsage keyCertSign)`, 'give the certificate of a CA, not of a leaf');
    }
    const probe = Buffer.from('warren ca key check');
    const sig = await subtle.sign(EC_SIGNING_ALGORITHM, keys.privateKey as never, probe);
    const pub = await cert.publicKey.export(cert.publicKey.algorithm as never, ['verify']);
    if (!(await subtle.verify(EC_SIGNING_ALGORITHM, pub as never, sig, probe))) {
      throw caError('MESH_CA_INVALID', `the key of ${what} does not belong to its certificate`, 'give the private key that matches the CA certificate');
    }
    if (cert.notAfter.getTime() <= Date.now()) {
      throw caError('MESH_CA_EXPIRED', `${what} expired on ${cert.notAfter.toISOString()}`, 'create a new CA and add it to the trust bundle (CA rotation), then re-issue every certificate');
    }
    return { keys, cert };
  }

  /**
   * Issue a leaf X.509-SVID for the public key of a PKCS#10 request. The request's
   * signature must verify (proof that the caller holds the key); its subject and extensions
   * are ignored: the identity is the one the caller was authorised for (opts.kind, opts.name).
   */
  async issue(csr: string | Buffer, opts: IssueOptions): Promise<IssuedCertificate> {
    let req: x509.Pkcs10CertificateRequest;
    try {
      req = new x509.Pkcs10CertificateRequest(typeof csr === 'string' ? csr : new Uint8Array(csr));
    } catch (e) {
      throw new WarrenError('MESH_CSR_INVALID', `the certificate request cannot be read: ${(e as Error).message}`, {
        hint: 'send a PEM or DER PKCS#10 request (the agent makes one with createCertificateRequest)',
        cause: e,
      });
    }
    const alg = req.publicKey.algorithm as { name: string; namedCurve?: string };
    if (alg.name !== 'ECDSA' || !['P-256', 'P-384'].includes(alg.namedCurve ?? '')) {
      throw new WarrenError('MESH_CSR_INVALID', `the certificate request has a ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''} key; Warren issues for EC P-256 and P-384 keys only`, {
        hint: 'generate an EC P-256 key (generateAgentKey) and make the request again',
      });
    }
    if (!(await req.verify())) {
      throw new WarrenError('MESH_CSR_INVALID', 'the signature of the certificate request does not verify: the requester does not hold the key', {
        hint: 'make the request again with the same key that is in it',
      });
    }
    return this.issueFor(req.publicKey, opts);
  }

  /** Issue a leaf X.509-SVID for a public key the caller already trusts (the server's own). */
  async issueFor(publicKey: x509.PublicKey | CryptoKey, opts: IssueOptions): Promise<IssuedCertificate> {
    const id = formatSpiffeId(this.trustDomain, opts.kind, opts.name);
    const now = Date.now();
    const ttl = opts.ttlSeconds ?? DEFAULT_LEAF_TTL_SECONDS;
    if (!(ttl > 0 && ttl <= MAX_LEAF_TTL_SECONDS)) {
      throw new WarrenError('MESH_TTL_INVALID', `a certificate life of ${ttl} s is out of range`, {
        hint: `give between 1 s and ${MAX_LEAF_TTL_SECONDS} s (30 days); the default is ${DEFAULT_LEAF_TTL_SECONDS} s`,
      });
    }
    const notBefore = opts.notBefore ?? new Date(now - BACKDATE_SECONDS * 1000);
    let notAfter = opts.notAfter ?? new Date(now + ttl * 1000);
    if (notAfter > this.cert.notAfter) notAfter = this.cert.notAfter; // never outlive the CA
    const names: x509.JsonGeneralName[] = [{ type: 'url', value: id.uri }];
    for (const d of opts.dnsNames ?? []) names.push({ type: 'dns', value: d });
    for (const ip of opts.ipAddresses ?? []) {
      if (!isIP(ip)) {
        throw new WarrenError('MESH_ADDRESS_INVALID', `"${ip}" is not an IP address`, { hint: 'give IPv4 or IPv6 addresses as ipAddresses, names as dnsNames' });
      }
      names.push({ type: 'ip', value: ip });
    }
    const serial = randomSerial();
    const ski = this.cert.getExtension(x509.SubjectKeyIdentifierExtension);
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey as x509.PublicKeyType),
    ];
    if (ski) extensions.push(new x509.AuthorityKeyIdentifierExtension(ski.keyId));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      // The subject is informational (logs, openssl x509 -text): authorisation reads the URI SAN only.
      subject: `CN=${id.name}, OU=${id.kind}, O=Warren`,
      issuer: this.cert.subject,
      notBefore,
      notAfter,
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      publicKey: publicKey as x509.PublicKeyType,
      signingKey: this.keys.privateKey,
      extensions,
    });
    return { certPem: cert.toString('pem') + '\n', spiffeId: id, serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
  }

  /**
   * The server's own identity: a fresh key and a `spiffe://<td>/server/<name>` certificate
   * with DNS and IP SANs for the addresses it listens on (`hosts`: names and IP literals).
   */
  async issueServerIdentity(name: string, hosts: string[], ttlSeconds?: number): Promise<{ keyPem: string; cert: IssuedCertificate }> {
    const keys = await generateKeyPair();
    const dnsNames = hosts.filter((h) => isIP(h) === 0);
    const ipAddresses = hosts.filter((h) => isIP(h) !== 0);
    const cert = await this.issueFor(keys.publicKey, { kind: 'server', name, dnsNames, ipAddresses, ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) });
    return { keyPem: await privateKeyToPem(keys.privateKey), cert };
  }
}
