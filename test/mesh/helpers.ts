// Test helpers of the mesh: a cluster CA in a temporary directory, node and server
// credentials issued through real CSRs, certificates forged with the CA key (or another key)
// for the refusal tests, and a mesh server on 127.0.0.1 port 0 that greets verified peers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type tls from 'node:tls';
import { once } from 'node:events';
import {
  CertificateAuthority,
  PendingIdentity,
  TrustBundle,
  MeshServer,
  connectMesh,
  keyPairFromPem,
  generateKeyPair,
  privateKeyToPem,
  createCertificateRequest,
  randomSerial,
  x509,
  type MeshCredentials,
  type RevocationList,
  type VerifiedSvid,
  type IssueOptions,
} from '../../src/mesh/index.js';
import type { WarrenError } from '../../src/common/index.js';
import { tempDir } from '../helpers.js';

export const TD = 'hpc.example';

export interface Cluster {
  dir: string;
  ca: CertificateAuthority;
  bundle: TrustBundle;
  cleanup: () => void;
}

export async function makeCluster(trustDomain = TD): Promise<Cluster> {
  const t = tempDir('warren-mesh-');
  const ca = await CertificateAuthority.create(join(t.dir, 'ca'), { trustDomain });
  return { dir: t.dir, ca, bundle: new TrustBundle([ca.certPem]), cleanup: t.cleanup };
}

/** Credentials for a node (or other kind) through the real path: own key, CSR, issue. */
export async function issueCredentials(c: Cluster, opts: IssueOptions): Promise<MeshCredentials & { serial: string }> {
  const keys = await generateKeyPair();
  const csr = await createCertificateRequest(keys, opts.name);
  const cert = await c.ca.issue(csr, opts);
  return { keyPem: await privateKeyToPem(keys.privateKey), certPem: cert.certPem, trustBundle: c.bundle, serial: cert.serial };
}

export async function serverCredentials(c: Cluster, name = 's1'): Promise<MeshCredentials & { serial: string }> {
  const s = await c.ca.issueServerIdentity(name, ['127.0.0.1', 'localhost']);
  return { keyPem: s.keyPem, certPem: s.cert.certPem, trustBundle: c.bundle, serial: s.cert.serial };
}

export interface ForgeOptions {
  uris?: string[];
  dns?: string[];
  subject?: string;
  ca?: boolean;
  keyUsage?: number;
  eku?: string[] | null;
  notBefore?: Date;
  notAfter?: Date;
  /** Sign with a key that is not the CA's (the issuer name and key id stay the CA's). */
  wrongSigner?: boolean;
}

/**
 * A certificate signed with the cluster CA's key (read from its 0600 file) but with whatever
 * extensions the test wants: the certificates a correct CA never issues.
 */
export async function forge(c: Cluster, f: ForgeOptions): Promise<MeshCredentials> {
  const caKeys = await keyPairFromPem(readFileSync(join(c.ca.dir, 'ca.key'), 'utf8'));
  const caCert = new x509.X509Certificate(c.ca.certPem);
  const signer = f.wrongSigner ? (await generateKeyPair()).privateKey : caKeys.privateKey;
  const keys = await generateKeyPair();
  const names: x509.JsonGeneralName[] = [
    ...(f.uris ?? [`spiffe://${c.ca.trustDomain}/node/forged`]).map((u) => ({ type: 'url' as const, value: u })),
    ...(f.dns ?? []).map((d) => ({ type: 'dns' as const, value: d })),
  ];
  const ext: x509.Extension[] = [
    new x509.BasicConstraintsExtension(f.ca ?? false, undefined, true),
    new x509.KeyUsagesExtension(f.keyUsage ?? x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    new x509.AuthorityKeyIdentifierExtension(caCert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId),
  ];
  if (names.length) ext.push(new x509.SubjectAlternativeNameExtension(names));
  if (f.eku !== null) ext.push(new x509.ExtendedKeyUsageExtension(f.eku ?? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]));
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: f.subject ?? 'CN=forged, O=Warren',
    issuer: caCert.subject,
    notBefore: f.notBefore ?? new Date(now - 60_000),
    notAfter: f.notAfter ?? new Date(now + 3_600_000),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    publicKey: keys.publicKey,
    signingKey: signer,
    extensions: ext,
  });
  return { keyPem: await privateKeyToPem(keys.privateKey), certPem: cert.toString('pem'), trustBundle: c.bundle };
}

/** A node's credentials through the agent's own path (PendingIdentity in a data directory). */
export async function joinAgent(c: Cluster, name: string, dataDir: string): Promise<MeshCredentials> {
  const p = await PendingIdentity.create(dataDir, name);
  const issued = await c.ca.issue(p.csrPem, { kind: 'node', name });
  return p.complete(issued.certPem, c.ca.certPem).credentials;
}

export interface Greeter {
  ms: MeshServer;
  port: number;
  refused: WarrenError[];
  close: () => Promise<void>;
}

/** A mesh server that writes `hello <SPIFFE ID>` to each verified peer and then echoes. */
export async function greeter(c: Cluster, creds: MeshCredentials, revocations?: RevocationList): Promise<Greeter> {
  const refused: WarrenError[] = [];
  const ms = new MeshServer({ credentials: creds, trustDomain: c.ca.trustDomain, ...(revocations ? { revocations } : {}) }, (socket, id) => {
    socket.write(`hello ${id.uri}\n`);
    socket.on('data', (b) => socket.write(b));
    socket.on('error', () => {});
  });
  ms.on('refused', (e) => refused.push(e));
  const a = await ms.listen(0, '127.0.0.1');
  return { ms, port: a.port, refused, close: () => ms.close() };
}

export interface Attempt {
  /** The greeting line when the server let us in. */
  greeting?: string;
  /** The server's SVID as the client verified it. */
  server?: VerifiedSvid;
  socket?: tls.TLSSocket;
  /** The client's error, when the handshake or the greeting failed. */
  error?: Error;
}

/**
 * Connect and wait for the greeting or for the end of the connection. A refused client
 * sees its connection closed (TLS 1.3: the server's verdict comes after the client's
 * handshake), never a greeting.
 */
export async function attempt(port: number, creds: MeshCredentials, trustDomain = TD): Promise<Attempt> {
  let conn: { socket: tls.TLSSocket; server: VerifiedSvid };
  try {
    conn = await connectMesh({ host: '127.0.0.1', port, credentials: creds, trustDomain });
  } catch (e) {
    return { error: e as Error };
  }
  const { socket, server } = conn;
  return new Promise((resolve) => {
    let buf = '';
    let error: Error | undefined;
    const onData = (b: Buffer): void => {
      buf += b.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        cleanup();
        resolve({ greeting: buf.slice(0, nl), server, socket });
      }
    };
    const onError = (e: Error): void => {
      error = e;
    };
    const onClose = (): void => {
      cleanup();
      resolve({ server, error: error ?? new Error('closed by the server') });
    };
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

/** Send a line on an open connection and read it back (the greeter echoes). */
export async function echo(socket: tls.TLSSocket, line: string): Promise<string> {
  socket.write(line + '\n');
  let buf = '';
  while (!buf.includes('\n')) {
    const [b] = (await once(socket, 'data')) as [Buffer];
    buf += b.toString();
  }
  return buf.slice(0, buf.indexOf('\n'));
}

/** Wait until the server has recorded a refusal (they are emitted asynchronously). */
export async function nextRefusal(g: Greeter, count: number): Promise<WarrenError> {
  while (g.refused.length < count) await once(g.ms, 'refused');
  return g.refused[count - 1]!;
}
