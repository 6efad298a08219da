// The TLS side of the server's one HTTPS port. Users (bearer tokens, no client certificate)
// and agents (a client certificate, mutual TLS) share it: the server asks every client for a
// certificate (`requestCert`) but lets a client without one finish the handshake
// (`rejectUnauthorized: false`); the agent routes then require a verified X.509-SVID. A
// presented certificate is checked once per TLS socket with `verifySvid` (chain to the trust
// bundle, dates, one URI SAN, a leaf, key usages, revocation) and the verdict is cached on
// the socket, so a keep-alive connection pays for it once. The server closes a socket when its
// peer's certificate expires (a timer per socket at notAfter) or when its identity is
// revoked, and takes a new certificate without a restart (`rotate`).
import type https from 'node:https';
import type tls from 'node:tls';
import type { IncomingMessage } from 'node:http';
import { EventEmitter } from 'node:events';
import { WarrenError, isWarrenError } from '../common/index.js';
import {
  verifySvid,
  tlsError,
  formatSpiffeId,
  normalizeSerial,
  RevocationList,
  SPIFFE_KINDS,
  MESH_TLS_MIN_VERSION,
  type MeshCredentials,
  type VerifiedSvid,
  type Revocation,
} from '../mesh/index.js';

/** One log line: `level`, what happened, and structured facts. */
export type MeshLog = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface MeshTlsOptions {
  /** The server's key and certificate (a `server` SVID) and the cluster's trust bundle. */
  credentials: MeshCredentials;
  trustDomain: string;
  /** Shared with the node registry (agentRoutes makes them one list if they differ). */
  revocations?: RevocationList;
  log?: MeshLog;
}

export interface MeshTlsEvents {
  /** A presented certificate that did not verify (the socket stays: it may be a user's; agent routes refuse it). */
  refused: [WarrenError, { remoteAddress: string | undefined }];
  /** The server closed a verified socket. */
  closed: [VerifiedSvid, CloseReason];
}

/** Why the server closed a verified socket: its certificate expired, its identity was revoked, the server closes, or its CA left the trust bundle (a CA rotation retired it). */
export type CloseReason = 'expired' | 'revoked' | 'server-closed' | 'untrusted';

/** What is known of a socket's peer: verified, refused (and why), or no certificate. */
type Verdict = { ok: true; id: VerifiedSvid } | { ok: false; error: WarrenError | null };

interface Tracked {
  socket: tls.TLSSocket;
  id: VerifiedSvid;
  timer: NodeJS.Timeout | undefined;
}

/** Longest setTimeout delay; longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class MeshTls extends EventEmitter<MeshTlsEvents> {
  private credentials: MeshCredentials;
  private _revocations: RevocationList;
  private readonly verdicts = new WeakMap<tls.TLSSocket, Verdict>();
  /** Verified sockets by SPIFFE ID (for revocation) and all of them (for expiry). */
  private readonly byId = new Map<string, Set<Tracked>>();
  private readonly tracked = new WeakMap<tls.TLSSocket, Tracked>();
  private readonly servers = new Set<https.Server>();
  private readonly log: MeshLog;
  private readonly onRevoked = (r: Revocation): void => {
    this.closeMatching(r);
  };
  private readonly onSecure = (socket: tls.TLSSocket): void => {
    this.verdict(socket);
  };

  constructor(private readonly opts: MeshTlsOptions) {
    super();
    this.credentials = opts.credentials;
    this._revocations = opts.revocations ?? new RevocationList();
    this._revocations.on('revoked', this.onRevoked);
    this.log = opts.log ?? (() => {});
  }

  get trustDomain(): string {
    return this.opts.trustDomain;
  }

  get revocations(): RevocationList {
    return this._revocations;
  }

  /** Check peers against (and follow the revocations of) another list, e.g. the node registry's. */
  useRevocations(list: RevocationList): void {
    if (list === this._revocations) return;
    this._revocations.off('revoked', this.onRevoked);
    this._revocations = list;
    list.on('revoked', this.onRevoked);
    // What the new list already revokes is refused from now on, also on open sockets.
    for (const id of list.revokedIds) this.closeMatching({ spiffeId: id });
    for (const s of list.revokedSerials) this.closeMatching({ serial: s });
  }

  /** The trust bundle peers are checked against (PEM, for the `ca` option and for agents). */
  get bundlePem(): string {
    return this.credentials.trustBundle.pem.join('\n') + '\n';
  }

  /**
   * Options for `https.createServer` (or fastify's `https`): ask every client for a
   * certificate, let one without (a user with a bearer token) in; TLS 1.3 only (it also
   * encrypts the client certificate). Node's fetch, undici and curl without a certificate
   * connect as usual.
   */
  httpsOptions(): https.ServerOptions {
    return {
      key: this.credentials.keyPem,
      cert: this.credentials.certPem,
      ca: this.credentials.trustBundle.pem,
      minVersion: MESH_TLS_MIN_VERSION,
      requestCert: true,
      rejectUnauthorized: false,
    };
  }

  /** Follow a server's TLS sockets: verify each peer once at the handshake, arm its expiry timer. Idempotent. */
  attach(server: https.Server): void {
    if (this.servers.has(server)) return;
    this.servers.add(server);
    server.on('secureConnection', this.onSecure);
    server.once('close', () => {
      server.off('secureConnection', this.onSecure);
      this.servers.delete(server);
    });
  }

  /** The verified SVID of the request's TLS peer (cached per socket), or null (no certificate, or refused). */
  peer(req: IncomingMessage): VerifiedSvid | null {
    const v = this.verdictOf(req);
    return v?.ok ? v.id : null;
  }

  /**
   * The verified SVID of the request's peer, of kind `node`, or the WarrenError that says
   * why not: MESH_NO_CLIENT_CERT, the verification's MESH_* code, or MESH_WRONG_PATH for a
   * server or user certificate.
   */
  requireNode(req: IncomingMessage): VerifiedSvid {
    const v = this.verdictOf(req);
    if (!v) throw new WarrenError('MESH_NO_CLIENT_CERT', 'this route is for agents over mutual TLS, and the connection is not TLS', { hint: 'connect with https and the agent\'s certificate' });
    if (!v.ok) {
      throw (
        v.error ??
        new WarrenError('MESH_NO_CLIENT_CERT', 'the agent routes need a client certificate and the connection presented none', {
          hint: 'connect with the agent\'s certificate (mutual TLS); `warren agent` does, after joining with a token',
        })
      );
    }
    if (v.id.kind !== 'node') {
      throw new WarrenError('MESH_WRONG_PATH', `the SPIFFE ID ${v.id.uri} is a ${v.id.kind} identity; the agent routes accept only node identities`, {
        hint: 'connect with a node certificate (spiffe://<trust domain>/node/<name>), made by joining with a token',
      });
    }
    // Revoked while the request waited in the socket's queue (the socket is closed, but be sure).
    if (this._revocations.isRevoked(v.id.uri, v.id.serial)) {
      throw new WarrenError('MESH_REVOKED', `${v.id.uri} (certificate serial ${v.id.serial}) is revoked`, { hint: 'if this node is trusted again, delete it (`warren node rm`) and let it join again with a new token' });
    }
    return v.id;
  }

  private verdictOf(req: IncomingMessage): Verdict | null {
    const socket = req.socket as tls.TLSSocket;
    if (typeof socket.getPeerX509Certificate !== 'function') return null;
    return this.verdict(socket);
  }

  private verdict(socket: tls.TLSSocket): Verdict {
    const cached = this.verdicts.get(socket);
    if (cached) return cached;
    let v: Verdict;
    const cert = socket.getPeerX509Certificate();
    if (!cert) v = { ok: false, error: null };
    else {
      try {
        const id = verifySvid(cert, {
          trustBundle: this.credentials.trustBundle,
          trustDomain: this.opts.trustDomain,
          kind: SPIFFE_KINDS,
          revocations: this._revocations,
        });
        // OpenSSL's own verdict too (it ran against the same bundle): belt and braces.
        if (!socket.authorized) {
          const why = String(socket.authorizationError ?? 'not authorized');
          throw tlsError(Object.assign(new Error(why), { code: why }), `the client ${id.uri}`);
        }
        v = { ok: true, id };
      } catch (e) {
        const err = isWarrenError(e) ? e : tlsError(e as Error, 'a client certificate');
        v = { ok: false, error: err };
        this.log('warn', `refused a client certificate from ${socket.remoteAddress ?? '?'}: ${err.message}`, { code: err.code, remoteAddress: socket.remoteAddress });
        this.emit('refused', err, { remoteAddress: socket.remoteAddress });
      }
    }
    this.verdicts.set(socket, v);
    if (v.ok) this.track(socket, v.id);
    return v;
  }

  private track(socket: tls.TLSSocket, id: VerifiedSvid): void {
    if (this.tracked.has(socket) || socket.destroyed) return;
    const t: Tracked = { socket, id, timer: undefined };
    this.tracked.set(socket, t);
    let set = this.byId.get(id.uri);
    if (!set) this.byId.set(id.uri, (set = new Set()));
    set.add(t);
    socket.once('close', () => this.untrack(t));
    this.armExpiry(t);
  }

  private untrack(t: Tracked): void {
    if (t.timer) clearTimeout(t.timer);
    t.timer = undefined;
    const set = this.byId.get(t.id.uri);
    if (set) {
      set.delete(t);
      if (set.size === 0) this.byId.delete(t.id.uri);
    }
  }

  /** Close the socket when its peer's certificate expires (checked again when the timer fires). */
  private armExpiry(t: Tracked): void {
    const left = t.id.notAfter.getTime() - Date.now();
    if (left < 0) {
      this.drop(t, 'expired');
      return;
    }
    t.timer = setTimeout(() => this.armExpiry(t), Math.min(left + 1, MAX_TIMER_MS));
    t.timer.unref();
  }

  private drop(t: Tracked, reason: CloseReason): void {
    this.untrack(t);
    const code = reason === 'expired' ? 'MESH_CERT_EXPIRED' : reason === 'untrusted' ? 'MESH_FOREIGN_CA' : 'MESH_REVOKED';
    this.verdicts.set(t.socket, { ok: false, error: new WarrenError(code, `${t.id.uri}: the connection was closed (${reason})`, { hint: 'connect again with a valid certificate' }) });
    t.socket.destroy();
    this.log('info', `closed the connection of ${t.id.uri} (${reason})`, { spiffeId: t.id.uri, reason });
    this.emit('closed', t.id, reason);
  }

  private closeMatching(r: Revocation): number {
    let n = 0;
    if (r.spiffeId !== undefined) {
      for (const t of [...(this.byId.get(r.spiffeId) ?? [])]) {
        this.drop(t, 'revoked');
        n++;
      }
    }
    if (r.serial !== undefined) {
      const serial = normalizeSerial(r.serial);
      for (const set of [...this.byId.values()]) {
        for (const t of [...set]) {
          if (t.id.serial === serial) {
            this.drop(t, 'revoked');
            n++;
          }
        }
      }
    }
    return n;
  }

  /** Revoke a node (by name) or any identity (by SPIFFE ID): its open sockets close now, its next ones are refused. */
  revoke(nameOrSpiffeId: string): number {
    const uri = nameOrSpiffeId.startsWith('spiffe://') ? nameOrSpiffeId : formatSpiffeId(this.opts.trustDomain, 'node', nameOrSpiffeId).uri;
    this._revocations.off('revoked', this.onRevoked);
    try {
      this._revocations.revokeId(uri);
    } finally {
      this._revocations.on('revoked', this.onRevoked);
    }
    return this.closeMatching({ spiffeId: uri });
  }

  /** Close the open sockets of an identity without revoking it (a deleted node must join again). */
  disconnect(nameOrSpiffeId: string): number {
    const uri = nameOrSpiffeId.startsWith('spiffe://') ? nameOrSpiffeId : formatSpiffeId(this.opts.trustDomain, 'node', nameOrSpiffeId).uri;
    let n = 0;
    for (const t of [...(this.byId.get(uri) ?? [])]) {
      this.drop(t, 'server-closed');
      n++;
    }
    return n;
  }

  /**
   * Use a new key and certificate and/or trust bundle for new connections, without a restart.
   * Open sockets keep theirs, but those whose peer's CA is no longer in the bundle (a CA
   * rotation retired it) are closed: from now on such a certificate is refused.
   */
  rotate(credentials: MeshCredentials): void {
    const ctx = { key: credentials.keyPem, cert: credentials.certPem, ca: credentials.trustBundle.pem, minVersion: MESH_TLS_MIN_VERSION };
    for (const s of this.servers) s.setSecureContext(ctx);
    this.credentials = credentials;
    const trusted = new Set(credentials.trustBundle.fingerprints);
    for (const set of [...this.byId.values()]) for (const t of [...set]) if (!trusted.has(t.id.issuer)) this.drop(t, 'untrusted');
  }

  /** The verified peers of the open sockets (one entry per socket). */
  connections(): VerifiedSvid[] {
    return [...this.byId.values()].flatMap((set) => [...set].map((t) => t.id));
  }

  /** Stop following the revocation list and close every verified socket. */
  close(): void {
    this._revocations.off('revoked', this.onRevoked);
    for (const set of [...this.byId.values()]) for (const t of [...set]) this.drop(t, 'server-closed');
    for (const s of this.servers) s.off('secureConnection', this.onSecure);
    this.servers.clear();
  }
}
