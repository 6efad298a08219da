// The client API over HTTPS: every call of WarrenClient and AdminClient is one request to a
// Warren server's /api/v1 (src/server/http/app.ts), with `Authorization: Bearer <token>`.
// An `{error}` answer comes back as the server's WarrenError (fromWire); a connection that
// cannot be made is API_UNREACHABLE, a certificate that cannot be verified API_TLS, each with
// a hint naming the URL. `stream()` reads server-sent events and, when the connection drops
// before the workflow is done, reconnects with Last-Event-ID (a bounded number of times).

// undici is loaded with the first request: the CLI imports this subsystem on every start.
import type { Agent, Dispatcher } from 'undici';
import { WarrenError, isWarrenError, requestUpgrade } from '../common/index.js';
import {
  API_VERSION,
  type AdminClient,
  type InventoryClient,
  type InventoryNode,
  type InventoryNodeView,
  type NodeChangeRequest,
  type ProfileChangeRequest,
  type ProfileRecord,
  type CaStatusView,
  type ListRequest,
  type LogsRequest,
  type AuditEntry,
  type PruneRequest,
  type PruneView,
  type AuditRequest,
  type NodeView,
  type StreamItem,
  type SubmitRequest,
  type TokenView,
  type UserView,
  type WarrenClient,
  type WorkflowDetail,
  type WorkflowSummary,
  type NodeImageBuildPending,
  type NodeImageBuildRequest,
  type NodeImageBuildView,
  type NodeImageView,
} from './types.js';
import { LOG_ERROR_TRAILER, SSE_HEARTBEAT_MS, type HealthView, type ReadyView, type ServerStatusView, type WhoAmI } from './wire.js';

export interface HttpClientOptions {
  /** The server: `https://HOST[:PORT][/PREFIX]`. */
  url: string;
  /** The bearer token (from `warren context add`, or `warren user add`). */
  token: string;
  /** The PEM of the CA that issued the server's certificate (a cluster CA); without it the
   *  system's trusted CAs. */
  caPem?: string;
  /** Aborts every request of this client. */
  signal?: AbortSignal;
  /** How many times in a row stream() reconnects before it gives up (default SSE_RETRIES). */
  streamRetries?: number;
}

/** Reconnects of a workflow stream in a row (without an item between them) before it fails. */
export const SSE_RETRIES = 5;
/** A stream silent for this long (three heartbeats missed) is taken as dead, and reconnected. */
const SSE_SILENCE_MS = 3 * SSE_HEARTBEAT_MS + 5_000;

/** Check a server URL's shape: https, a host, no credentials, query or fragment. */
export function checkServerUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new WarrenError('API_BAD_URL', `"${url}" is not a URL`, { hint: 'give the server as https://HOST:PORT, e.g. https://warren.example.org:8443' });
  }
  if (u.protocol !== 'https:') {
    throw new WarrenError('API_BAD_URL', `"${url}" is not an https:// URL`, {
      hint: `a Warren server only speaks HTTPS: use https://${u.host || 'HOST:PORT'}${u.pathname === '/' ? '' : u.pathname}`,
    });
  }
  if (!u.hostname) throw new WarrenError('API_BAD_URL', `"${url}" has no host`, { hint: 'give the server as https://HOST:PORT' });
  if (u.username || u.password) {
    throw new WarrenError('API_BAD_URL', `"${url}" has credentials in it`, { hint: 'give the token with --token, not in the URL' });
  }
  if (u.search || u.hash) throw new WarrenError('API_BAD_URL', `"${url}" has a query or fragment`, { hint: 'give the server as https://HOST:PORT[/PREFIX]' });
  return u;
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
  'EPROTO',
]);

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: unknown;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  bodyTimeout?: number;
  /** A path at the server's root (/ready), not under /api/v1. */
  root?: boolean;
}

type Body = Dispatcher.ResponseData['body'];

export class HttpClient implements WarrenClient, AdminClient, InventoryClient {
  readonly where: string;
  private agentP: Promise<Agent> | undefined;
  private readonly caPem: string | undefined;
  private readonly origin: string;
  private readonly prefix: string;
  private readonly token: string;
  private readonly signal: AbortSignal | undefined;
  private readonly retries: number;

  constructor(o: HttpClientOptions) {
    const u = checkServerUrl(o.url);
    this.origin = u.origin;
    this.prefix = u.pathname.replace(/\/+$/, '');
    this.where = this.origin + this.prefix;
    this.token = o.token;
    this.signal = o.signal;
    this.retries = o.streamRetries ?? SSE_RETRIES;
    this.caPem = o.caPem;
  }

  private agent(): Promise<Agent> {
    this.agentP ??= import('undici').then(
      ({ Agent }) =>
        new Agent({
          connect: { ...(this.caPem !== undefined ? { ca: this.caPem } : {}), timeout: 10_000 },
          headersTimeout: 60_000,
          bodyTimeout: 300_000,
          keepAliveTimeout: 30_000,
        }),
    );
    return this.agentP;
  }

  // --- WarrenClient ---

  submit(req: SubmitRequest): Promise<WorkflowSummary> {
    // `local` is the embedded client's (the CLI's own parse): never sent.
    const { local: _local, ...wire } = req;
    return this.json('POST', '/workflows', { body: wire });
  }

  get(id: string): Promise<WorkflowDetail> {
    return this.json('GET', `/workflows/${enc(id)}`);
  }

  list(req: ListRequest = {}): Promise<WorkflowSummary[]> {
    return this.json('GET', '/workflows', { query: { limit: req.limit, status: req.status, all: req.all } });
  }

  cancel(id: string): Promise<WorkflowSummary> {
    return this.json('POST', `/workflows/${enc(id)}/cancel`);
  }

  resume(id: string): Promise<WorkflowSummary> {
    return this.json('POST', `/workflows/${enc(id)}/resume`);
  }

  /** A port forward: an upgrade of GET /workflows/{id}/services/{service}/ports/{port}/forward
   *  to a raw stream that the server joins to the service's port (through its node's agent). */
  async connect(id: string, service: string, port: number): Promise<import('node:stream').Duplex> {
    const { connect } = await import('node:tls');
    const u = new URL(this.origin);
    const socket = await new Promise<import('node:tls').TLSSocket>((resolve, reject) => {
      const s = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 443), servername: /^[\d.]+$|:/.test(u.hostname) ? undefined : u.hostname, ...(this.caPem !== undefined ? { ca: this.caPem } : {}), ALPNProtocols: ['http/1.1'] });
      s.once('secureConnect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e) => reject(this.connectionError(e)));
    });
    return requestUpgrade(socket, {
      path: `${this.prefix}/api/${API_VERSION}/workflows/${enc(id)}/services/${enc(service)}/ports/${port}/forward`,
      host: u.host,
      headers: { authorization: `Bearer ${this.token}` },
    });
  }

  async *stream(id: string, opts: { afterSeq?: number; signal?: AbortSignal } = {}): AsyncIterable<StreamItem> {
    const signal = this.combined(opts.signal);
    let last = opts.afterSeq;
    let failures = 0;
    let lastError: WarrenError | undefined;
    for (;;) {
      if (signal?.aborted) return;
      let res: Dispatcher.ResponseData | undefined;
      try {
        res = await this.send('GET', `/workflows/${enc(id)}/stream`, {
          headers: { accept: 'text/event-stream', ...(last !== undefined ? { 'last-event-id': String(last) } : {}) },
          bodyTimeout: SSE_SILENCE_MS,
          ...(signal ? { signal } : {}),
        });
      } catch (e) {
        if (signal?.aborted) return;
        if (!isRetryable(e)) throw e;
        lastError = e as WarrenError;
      }
      if (res) {
        if (res.statusCode >= 400) {
          const err = await this.errorOf(res);
          // A server restarting (or behind a proxy that is) answers 502..504: try again.
          if (![502, 503, 504].includes(res.statusCode)) throw err;
          lastError = err;
        } else {
          try {
            for await (const ev of parseSse(res.body)) {
              if (ev.event === 'error') throw new StreamFailed(WarrenError.fromWire(safeJson(ev.data)));
              const item = safeJson(ev.data) as StreamItem | undefined;
              if (!item || typeof item !== 'object' || typeof item.seq !== 'number') {
                throw new StreamFailed(this.badResponse(`a stream event that is not a stream item: ${ev.data.slice(0, 200)}`));
              }
              last = ev.id !== undefined && /^\d+$/.test(ev.id) ? Number(ev.id) : item.seq;
              failures = 0;
              yield item;
              if (item.type === 'done') return;
            }
            lastError = new WarrenError('API_UNREACHABLE', `the stream of workflow ${id} from ${this.where} ended before the workflow was done`, {
              hint: `check the server at ${this.where}; \`warren status ${id}\` shows where the workflow stands`,
            });
          } catch (e) {
            if (e instanceof StreamFailed) throw e.error;
            if (signal?.aborted) return;
            lastError = this.connectionError(e);
          } finally {
            if (!res.body.destroyed) res.body.destroy();
          }
        }
      }
      if (++failures > this.retries) {
        const e = lastError!;
        throw new WarrenError(e.code, `${e.message} (gave up after ${this.retries} reconnects)`, {
          ...(e.hint !== undefined ? { hint: e.hint } : {}),
          details: { ...(e.details ?? {}), workflow: id, afterSeq: last ?? null },
          cause: e,
        });
      }
      await sleep(Math.min(250 * 2 ** (failures - 1), 4_000), signal);
    }
  }

  async *logs(id: string, req: LogsRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const s = this.combined(signal);
    const res = await this.send('GET', `/workflows/${enc(id)}/logs`, {
      query: { job: req.job, task: req.task, stream: req.stream, follow: req.follow },
      headers: { accept: 'application/octet-stream' },
      bodyTimeout: req.follow ? 0 : 300_000,
      ...(s ? { signal: s } : {}),
    });
    if (res.statusCode >= 400) throw await this.errorOf(res);
    try {
      try {
        for await (const chunk of res.body) yield chunk as Uint8Array;
      } catch (e) {
        if (s?.aborted) return;
        const err = this.connectionError(e);
        throw new WarrenError(err.code, `the log of ${req.job} (workflow ${id}) was cut: ${err.message}`, err.hint !== undefined ? { hint: err.hint, cause: e } : { cause: e });
      }
      const trailer = res.trailers?.[LOG_ERROR_TRAILER];
      if (typeof trailer === 'string' && trailer !== '') {
        throw WarrenError.fromWire(safeJson(Buffer.from(trailer, 'base64url').toString('utf8')));
      }
    } finally {
      if (!res.body.destroyed) res.body.destroy();
    }
  }

  async close(): Promise<void> {
    const a = this.agentP;
    this.agentP = undefined;
    if (a) await (await a).close();
  }

  // --- the server ---

  /** The server's health (no token needed); also when it answers 503. */
  async health(signal?: AbortSignal): Promise<HealthView> {
    const s = this.combined(signal);
    const res = await this.send('GET', '/health', { ...(s ? { signal: s } : {}) }, false);
    if (res.statusCode === 200 || res.statusCode === 503) {
      const v = await this.readJson(res);
      if (v && typeof v === 'object' && 'ok' in v) return v as HealthView;
      throw this.badResponse(`GET /health answered ${JSON.stringify(v).slice(0, 200)}`);
    }
    throw await this.errorOf(res);
  }

  /** GET /ready (no token): whether the server can take traffic now; also when it answers 503. */
  async ready(signal?: AbortSignal): Promise<ReadyView> {
    const s = this.combined(signal);
    const res = await this.send('GET', '/ready', { root: true, ...(s ? { signal: s } : {}) }, false);
    if (res.statusCode === 200 || res.statusCode === 503) {
      const v = await this.readJson(res);
      if (v && typeof v === 'object' && 'ready' in v) return v as ReadyView;
      throw this.badResponse(`GET /ready answered ${JSON.stringify(v).slice(0, 200)}`);
    }
    throw await this.errorOf(res);
  }

  /** `warren server status`: the server's role, store, agents and queue (admins). */
  serverStatus(): Promise<ServerStatusView> {
    return this.json('GET', '/server/status');
  }

  /** Who this client's token is. */
  whoami(): Promise<WhoAmI> {
    return this.json('GET', '/whoami');
  }

  // --- AdminClient ---

  nodes(): Promise<NodeView[]> {
    return this.json('GET', '/nodes');
  }

  drain(name: string, on: boolean, reason?: string): Promise<NodeView> {
    return this.json('POST', `/nodes/${enc(name)}/${on ? 'drain' : 'undrain'}`, on && reason ? { body: { reason } } : {});
  }

  prune(req: PruneRequest): Promise<PruneView> {
    return this.json('POST', '/prune', { body: req });
  }

  audit(q: AuditRequest = {}): Promise<AuditEntry[]> {
    return this.json('GET', '/audit', { query: { since: q.since, until: q.until, user: q.user, action: q.action, afterId: q.afterId, limit: q.limit } });
  }

  async revokeNode(name: string): Promise<void> {
    await this.json('POST', `/nodes/${enc(name)}/revoke`);
  }

  async deleteNode(name: string): Promise<void> {
    await this.json('DELETE', `/nodes/${enc(name)}`);
  }

  createJoinToken(opts: { ttlSeconds: number; uses?: number }): Promise<{ token: string; view: TokenView }> {
    return this.json('POST', '/tokens', { body: opts });
  }

  tokens(): Promise<TokenView[]> {
    return this.json('GET', '/tokens');
  }

  async revokeToken(id: string): Promise<void> {
    await this.json('DELETE', `/tokens/${enc(id)}`);
  }

  addUser(opts: { name: string; unixUser?: string; admin?: boolean; tokenTtlSeconds?: number }): Promise<{ user: UserView; token: string }> {
    return this.json('POST', '/users', { body: opts });
  }

  users(): Promise<UserView[]> {
    return this.json('GET', '/users');
  }

  async removeUser(name: string): Promise<void> {
    await this.json('DELETE', `/users/${enc(name)}`);
  }

  caStatus(): Promise<CaStatusView> {
    return this.json('GET', '/ca');
  }

  rotateCa(opts: { trustForSeconds?: number } = {}): Promise<CaStatusView> {
    return this.json('POST', '/ca/rotate', { body: opts });
  }

  retireCa(opts: { force?: boolean } = {}): Promise<CaStatusView> {
    return this.json('POST', '/ca/retire', { body: opts });
  }

  // --- InventoryClient (admins) ---

  inventoryNodes(req: { names?: string; missingOk?: boolean } = {}): Promise<InventoryNodeView[]> {
    return this.json('GET', '/provision/nodes', { query: { names: req.names, missingOk: req.missingOk } });
  }

  addInventoryNodes(req: NodeChangeRequest): Promise<InventoryNode[]> {
    return this.json('POST', '/provision/nodes', { body: req });
  }

  setInventoryNodes(req: NodeChangeRequest): Promise<InventoryNode[]> {
    return this.json('POST', '/provision/nodes/update', { body: req });
  }

  deleteInventoryNodes(req: { names: string; missingOk?: boolean }): Promise<{ deleted: string[] }> {
    return this.json('POST', '/provision/nodes/delete', { body: req });
  }

  profiles(): Promise<ProfileRecord[]> {
    return this.json('GET', '/provision/profiles');
  }

  addProfile(req: ProfileChangeRequest): Promise<ProfileRecord> {
    return this.json('POST', '/provision/profiles', { body: req });
  }

  setProfile(req: ProfileChangeRequest): Promise<ProfileRecord> {
    return this.json('POST', '/provision/profiles/update', { body: req });
  }

  async deleteProfile(name: string): Promise<void> {
    await this.json('DELETE', `/provision/profiles/${enc(name)}`);
  }

  // --- node images (provisioning) ---

  /** POST /node-images: the image, or (202) "building" when the build goes on past the server's answer time (~20 s). */
  nodeImageBuild(req: NodeImageBuildRequest): Promise<NodeImageBuildView | NodeImageBuildPending> {
    return this.json('POST', '/node-images', { body: req });
  }

  nodeImages(): Promise<NodeImageView[]> {
    return this.json('GET', '/node-images');
  }

  removeNodeImages(what: string): Promise<NodeImageView[]> {
    return this.json('DELETE', '/node-images', { query: { image: what } });
  }

  // --- transport ---

  private combined(signal: AbortSignal | undefined): AbortSignal | undefined {
    if (signal && this.signal) return AbortSignal.any([signal, this.signal]);
    return signal ?? this.signal;
  }

  /** One request; a JSON answer, or nothing (204). */
  private async json<T>(method: 'GET' | 'POST' | 'DELETE', path: string, o: RequestOptions = {}): Promise<T> {
    const signal = this.combined(o.signal);
    const res = await this.send(method, path, { ...o, ...(signal ? { signal } : {}) });
    if (res.statusCode >= 400) throw await this.errorOf(res);
    if (res.statusCode === 204) {
      await res.body.dump();
      return undefined as T;
    }
    return (await this.readJson(res)) as T;
  }

  private async send(method: 'GET' | 'POST' | 'DELETE', path: string, o: RequestOptions, auth = true): Promise<Dispatcher.ResponseData> {
    let p = o.root ? `${this.prefix}${path}` : `${this.prefix}/api/${API_VERSION}${path}`;
    if (o.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(o.query)) if (v !== undefined && v !== null) q.set(k, String(v));
      const qs = q.toString();
      if (qs) p += `?${qs}`;
    }
    const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
    if (auth) headers.authorization = `Bearer ${this.token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] = 'application/json';
    }
    const agent = await this.agent();
    try {
      return await agent.request({
        origin: this.origin,
        path: p,
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.bodyTimeout !== undefined ? { bodyTimeout: o.bodyTimeout } : {}),
      });
    } catch (e) {
      if (o.signal?.aborted) throw e;
      throw this.connectionError(e);
    }
  }

  private async readJson(res: Dispatcher.ResponseData): Promise<unknown> {
    let text: string;
    try {
      text = await res.body.text();
    } catch (e) {
      throw this.connectionError(e);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw this.badResponse(`an answer that is not JSON (HTTP ${res.statusCode}): ${text.slice(0, 200)}`);
    }
  }

  /** The WarrenError of a failed answer: the server's own, or one that says what came back. */
  private async errorOf(res: Dispatcher.ResponseData): Promise<WarrenError> {
    let text = '';
    try {
      text = await res.body.text();
    } catch {
      // the status says enough
    }
    const v = safeJson(text) as { error?: unknown } | undefined;
    if (v && typeof v === 'object' && v.error && typeof v.error === 'object' && typeof (v.error as { code?: unknown }).code === 'string') {
      return WarrenError.fromWire(v.error);
    }
    if (res.statusCode === 503) {
      return new WarrenError('API_UNREACHABLE', `the server at ${this.where} is not available now (HTTP 503)`, { hint: 'it may be starting or stopping: try again in a moment' });
    }
    return this.badResponse(`HTTP ${res.statusCode} without a Warren error: ${text.slice(0, 200)}`);
  }

  private badResponse(what: string): WarrenError {
    return new WarrenError('API_BAD_RESPONSE', `the server at ${this.where} sent ${what}`, {
      hint: `check that ${this.where} is a Warren server of the same version (GET ${this.where}/api/${API_VERSION}/health)`,
    });
  }

  /** A failure to talk to the server at all -> API_TLS or API_UNREACHABLE. */
  private connectionError(e: unknown): WarrenError {
    if (isWarrenError(e)) return e;
    const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
    const code = String(err.code ?? err.cause?.code ?? '');
    const reason = err.message || String(e);
    if (TLS_CODES.has(code) || /^ERR_SSL_|^ERR_TLS_|CERT/.test(code)) {
      const altname = code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH';
      return new WarrenError('API_TLS', `cannot verify the server at ${this.where}: ${reason} (${code})`, {
        hint: altname
          ? `the server's certificate does not name ${new URL(this.where).hostname}: use an address its certificate names`
          : `if the server's certificate comes from its own CA (a Warren cluster CA), give that CA: warren context add NAME --server ${this.where} --token TOKEN --ca ca.pem`,
        details: { url: this.where, reason: code },
        cause: e,
      });
    }
    const words: Record<string, string> = {
      ECONNREFUSED: 'connection refused',
      ENOTFOUND: 'no such host',
      EAI_AGAIN: 'the host name cannot be resolved now',
      ECONNRESET: 'the connection was reset',
      ETIMEDOUT: 'the connection timed out',
      EHOSTUNREACH: 'no route to the host',
      ENETUNREACH: 'the network is unreachable',
      UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
      UND_ERR_HEADERS_TIMEOUT: 'the server did not answer in time',
      UND_ERR_BODY_TIMEOUT: 'the server stopped sending',
      UND_ERR_SOCKET: 'the connection was closed',
      UND_ERR_CLOSED: 'the connection was closed',
    };
    return new WarrenError('API_UNREACHABLE', `cannot reach the server at ${this.where}: ${words[code] ?? reason}${code ? ` (${code})` : ''}`, {
      hint: `check that the server runs and listens at ${this.where} (\`warren context list\` shows the URL of each context), and that no firewall is in the way`,
      details: { url: this.where, reason: code || reason },
      cause: e,
    });
  }
}

/** An error sent by the server in the stream: not retried. */
class StreamFailed extends Error {
  constructor(readonly error: WarrenError) {
    super(error.message);
  }
}

function isRetryable(e: unknown): boolean {
  return isWarrenError(e) && e.code === 'API_UNREACHABLE';
}

const enc = encodeURIComponent;

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return undefined;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Server-sent events (the WHATWG event-stream format) from a byte stream. */
export async function* parseSse(body: Body | AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const dec = new TextDecoder();
  let buf = '';
  let id: string | undefined;
  let event = '';
  let data: string[] = [];
  const line = function* (l: string): Generator<SseEvent> {
    if (l === '') {
      if (data.length > 0) yield { ...(id !== undefined ? { id } : {}), event: event || 'message', data: data.join('\n') };
      event = '';
      data = [];
      return;
    }
    if (l.startsWith(':')) return;
    const c = l.indexOf(':');
    const field = c < 0 ? l : l.slice(0, c);
    let value = c < 0 ? '' : l.slice(c + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) id = value;
  };
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      if (!m) break;
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (m[0] === '\r' && m.index === buf.length - 1) break;
      const l = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      yield* line(l);
    }
  }
}
