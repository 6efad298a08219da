// Mutual TLS between server and agents. OpenSSL checks the chain and the dates during the
// handshake (requestCert + rejectUnauthorized against the trust bundle); then verifySvid
// checks the peer as an X.509-SVID (SPIFFE ID, kind, revocation) before the connection is
// handed to the application. The server closes a connection when its peer's certificate
// expires or its identity is revoked, and rotates its own certificate without a restart.
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WarrenError, isWarrenError, type ErrorCode } from '../common/index.js';
import type { TrustBundle } from './bundle.js';
import type { SpiffeKind } from './spiffe.js';
import { verifySvid, type VerifiedSvid } from './verify.js';
import { normalizeSerial, type Revocation, type RevocationList } from './revocation.js';

/** A key, its certificate and the CAs to trust: what either end of a connection needs. */
export interface MeshCredentials {
  keyPem: string;
  certPem: string;
  trustBundle: TrustBundle;
}

/** Only TLS 1.3: both ends are Warren, and 1.3 encrypts the client certificate. */
export const MESH_TLS_MIN_VERSION = 'TLSv1.3' as const;

/** The options of a secure context (for tls.createServer and server.setSecureContext). */
export function secureContextOptions(c: MeshCredentials): tls.SecureContextOptions {
  return { key: c.keyPem, cert: c.certPem, ca: c.trustBundle.pem, minVersion: MESH_TLS_MIN_VERSION };
}

/** Server options: ask every client for a certificate and refuse one that does not chain to the bundle. */
export function serverTlsOptions(c: MeshCredentials): tls.TlsOptions {
  return { ...secureContextOptions(c), requestCert: true, rejectUnauthorized: true };
}

export interface ClientCheck {
  trustDomain: string;
  /** The server name to expect (`spiffe://td/server/NAME`); any server of the domain if absent. */
  serverName?: string;
}

/**
 * Client options: present our certificate, trust only the bundle, and check the server as
 * an X.509-SVID of kind server (its SPIFFE ID, not its host name, is what is checked).
 */
export function clientTlsOptions(c: MeshCredentials, check: ClientCheck): tls.ConnectionOptions {
  return {
    ...secureContextOptions(c),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      try {
        verifySvid(cert.raw, { trustBundle: c.trustBundle, trustDomain: check.trustDomain, kind: 'server', ...(check.serverName !== undefined ? { name: check.serverName } : {}) });
        return undefined;
      } catch (e) {
        return e as Error;
      }
    },
  };
}

/** Connect to a mesh server; resolves once the handshake is done and the server's SVID checked. */
export function connectMesh(opts: { host: string; port: number; credentials: MeshCredentials } & ClientCheck): Promise<{ socket: tls.TLSSocket; server: VerifiedSvid }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: opts.host, port: opts.port, ...clientTlsOptions(opts.credentials, opts) });
    const onError = (e: Error): void => {
      socket.destroy();
      reject(isWarrenError(e) ? e : tlsError(e, `the connection to ${opts.host}:${opts.port}`));
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      const peer = socket.getPeerX509Certificate();
      if (!peer) {
        socket.destroy();
        reject(new WarrenError('MESH_TLS_HANDSHAKE', `${opts.host}:${opts.port} presented no certificate`, { hint: 'connect to a Warren server' }));
        return;
      }
      try {
        const server = verifySvid(peer, { trustBundle: opts.credentials.trustBundle, trustDomain: opts.trustDomain, kind: 'server', ...(opts.serverName !== undefined ? { name: opts.serverName } : {}) });
        resolve({ socket, server });
      } catch (e) {
        socket.destroy();
        reject(e);
      }
    });
  });
}

/** An OpenSSL verification failure as a MESH_* WarrenError. */
export function tlsError(e: Error, what: string): WarrenError {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const text = `${code} ${e.message}`;
  let mesh: ErrorCode = 'MESH_TLS_HANDSHAKE';
  let hint = 'both ends need certificates from the same cluster CA: join again with a join token';
  if (/CERT_HAS_EXPIRED|certificate expired|certificate has expired/i.test(text)) {
    mesh = 'MESH_CERT_EXPIRED';
    hint = 'the certificate expired: the agent renews at half its life; check that it runs and that the clocks are right';
  } else if (/UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY_LEAF|SELF_SIGNED|unknown ca|unable to get local issuer/i.test(text)) {
    mesh = 'MESH_FOREIGN_CA';
    hint = 'the peer\'s certificate is not from a CA of this cluster\'s trust bundle: join again with a join token';
  } else if (/CERT_SIGNATURE_FAILURE|signature failure|decrypt error|bad signature/i.test(text)) {
    mesh = 'MESH_BAD_CHAIN';
  } else if (/CERT_NOT_YET_VALID|not yet valid/i.test(text)) {
    mesh = 'MESH_CERT_NOT_YET_VALID';
    hint = 'the clocks disagree: run NTP (chrony) on both machines';
  } else if (/certificate required|peer did not return a certificate|NO_CERTIFICATE/i.test(text)) {
    mesh = 'MESH_NO_CLIENT_CERT';
    hint = 'connect with the agent\'s certificate (mutual TLS is required)';
  }
  return new WarrenError(mesh, `${what} was refused in the TLS handshake: ${e.message}`, { hint, cause: e });
}

export interface MeshServerOptions {
  credentials: MeshCredentials;
  trustDomain: string;
  /** Identities let in (default: nodes). */
  accept?: readonly SpiffeKind[];
  revocations?: RevocationList;
}

export type CloseReason = 'expired' | 'revoked' | 'server-closed';

interface Conn {
  socket: tls.TLSSocket;
  id: VerifiedSvid;
  timer: NodeJS.Timeout | undefined;
}

export interface MeshServerEvents {
  /** A connection whose peer is verified: the application's. */
  connection: [tls.TLSSocket, VerifiedSvid];
  /** A peer refused, in the handshake or by the SVID check. */
  refused: [WarrenError, { remoteAddress: string | undefined }];
  /** The server closed a verified connection. */
  closed: [VerifiedSvid, CloseReason];
}

/** Longest setTimeout delay; longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class MeshServer extends EventEmitter<MeshServerEvents> {
  readonly server: tls.Server;
  private credentials: MeshCredentials;
  private readonly conns = new Set<Conn>();
  private readonly onRevoked = (r: Revocation): void => {
    this.closeMatching(r);
  };

  constructor(private readonly opts: MeshServerOptions, onConnection?: (socket: tls.TLSSocket, id: VerifiedSvid) => void) {
    super();
    this.credentials = opts.credentials;
    if (onConnection) this.on('connection', onConnection);
    this.server = tls.createServer(serverTlsOptions(this.credentials));
    this.server.on('secureConnection', (socket) => this.admit(socket));
    this.server.on('tlsClientError', (e, socket) => {
      // OpenSSL's verdict on the client certificate is in authorizationError (Node destroys the
      // socket without an error, so `e` is only "socket hang up" then).
      const verdict = (socket as tls.TLSSocket & { authorizationError?: string }).authorizationError;
      const err = verdict ? Object.assign(new Error(`${verdict}${e.message ? ` (${e.message})` : ''}`), { code: verdict }) : e;
      this.emit('refused', tlsError(err, `a client from ${socket.remoteAddress ?? '?'}`), { remoteAddress: socket.remoteAddress });
    });
    opts.revocations?.on('revoked', this.onRevoked);
  }

  private admit(socket: tls.TLSSocket): void {
    let id: VerifiedSvid;
    try {
      const peer = socket.getPeerX509Certificate();
      if (!peer) throw new WarrenError('MESH_NO_CLIENT_CERT', 'the client presented no certificate', { hint: 'connect with the agent\'s certificate (mutual TLS is required)' });
      id = verifySvid(peer, {
        trustBundle: this.credentials.trustBundle,
        trustDomain: this.opts.trustDomain,
        kind: this.opts.accept ?? ['node'],
        ...(this.opts.revocations ? { revocations: this.opts.revocations } : {}),
      });
    } catch (e) {
      socket.destroy();
      this.emit('refused', isWarrenError(e) ? e : tlsError(e as Error, 'a client'), { remoteAddress: socket.remoteAddress });
      return;
    }
    const conn: Conn = { socket, id, timer: undefined };
    this.conns.add(conn);
    // A reset by the peer must not crash the process when the application has no listener;
    // the socket is closed either way, and 'close' cleans up.
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      if (conn.timer) clearTimeout(conn.timer);
      this.conns.delete(conn);
    });
    this.armExpiry(conn);
    this.emit('connection', socket, id);
  }

  /** Close the connection when its peer's certificate expires (checked again when the timer fires). */
  private armExpiry(conn: Conn): void {
    const left = conn.id.notAfter.getTime() - Date.now();
    if (left < 0) {
      this.drop(conn, 'expired');
      return;
    }
    conn.timer = setTimeout(() => this.armExpiry(conn), Math.min(left + 1, MAX_TIMER_MS));
    conn.timer.unref();
  }

  private drop(conn: Conn, reason: CloseReason): void {
    if (conn.timer) clearTimeout(conn.timer);
    this.conns.delete(conn);
    conn.socket.destroy();
    this.emit('closed', conn.id, reason);
  }

  private closeMatching(r: Revocation): number {
    let n = 0;
    const serial = r.serial !== undefined ? normalizeSerial(r.serial) : undefined;
    for (const c of [...this.conns]) {
      if ((r.spiffeId !== undefined && c.id.uri === r.spiffeId) || (serial !== undefined && c.id.serial === serial)) {
        this.drop(c, 'revoked');
        n++;
      }
    }
    return n;
  }

  listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Revoke an identity (by SPIFFE ID) or one certificate (by serial): its open connections
   * are closed now and its next ones refused. Needs the revocation list of the options (or
   * makes the server's own). Returns how many connections were closed.
   */
  revoke(r: Revocation): number {
    const list = this.opts.revocations;
    if (!list) {
      throw new WarrenError('MESH_NO_REVOCATION_LIST', 'this mesh server was created without a revocation list', { hint: 'pass `revocations: new RevocationList()` in the MeshServer options' });
    }
    list.off('revoked', this.onRevoked);
    try {
      if (r.spiffeId !== undefined) list.revokeId(r.spiffeId);
      if (r.serial !== undefined) list.revokeSerial(r.serial);
    } finally {
      list.on('revoked', this.onRevoked);
    }
    return this.closeMatching(r);
  }

  /** Use a new key and certificate (and/or trust bundle) for new connections; open ones stay. */
  rotate(credentials: MeshCredentials): void {
    this.server.setSecureContext(secureContextOptions(credentials));
    this.credentials = credentials;
  }

  /** The verified identities of the open connections. */
  connections(): Array<{ socket: tls.TLSSocket; id: VerifiedSvid }> {
    return [...this.conns].map((c) => ({ socket: c.socket, id: c.id }));
  }

  /** Stop listening and close every connection. */
  close(): Promise<void> {
    this.opts.revocations?.off('revoked', this.onRevoked);
    for (const c of [...this.conns]) this.drop(c, 'server-closed');
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
