// The user API on a server that is not the leader: reads (list, get) are served from the
// store; everything else (submit, cancel, resume, logs, the live stream, node/token/user
// administration) is forwarded to the leader over HTTPS (the leader's certificate checked
// against the cluster CA: an X.509-SVID of a server of this trust domain), with the user's own
// Authorization header, and the leader's answer streamed back as it comes (status, headers,
// body, trailers). With no leader (or one that does not answer before its answer begins):
// 503 SERVER_NO_LEADER, to retry.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { Agent, request, type Dispatcher } from 'undici';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { WarrenError } from '../common/index.js';
import { TrustBundle, verifySvid } from '../mesh/index.js';
import type { Store } from '../store/index.js';
import type { AdminClient, AuditEntry, AuditRequest, ListRequest, WarrenClient, WorkflowDetail, WorkflowSummary } from '../api/index.js';
import type { Principal } from './http/app.js';
import { detailOf, listAudit, visibleWorkflow, visibleWorkflows } from './views.js';

/** Set on a forwarded request: the server that gets it never forwards it again. */
export const FORWARDED_HEADER = 'x-warren-forwarded';

/** The routes a follower answers itself (method + route pattern under /api/v1). */
const LOCAL = new Set(['GET /api/v1/health', 'GET /api/v1/server/status', 'GET /api/v1/openapi.json', 'GET /api/v1/whoami', 'GET /api/v1/workflows', 'GET /api/v1/workflows/:id', 'GET /api/v1/audit']);

export function noLeaderError(why: string): WarrenError {
  return new WarrenError('SERVER_NO_LEADER', `no leader to take this request: ${why}`, {
    hint: 'retry in a few seconds (another server takes the leadership within 15 s of the leader going away); `GET /api/v1/health` on each server says which one leads',
  });
}

export interface LeaderRef {
  /** Whether this server leads now. */
  isLeader(): boolean;
  /** The leader's URL, when one holds the lease (as last read); null: none. */
  leaderUrl(): string | null;
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'host']);

/** Forwards a follower's requests to the leader. */
export class LeaderForwarder {
  private dispatcher: Dispatcher;

  constructor(
    bundle: TrustBundle,
    private readonly trustDomain: string,
    private readonly leader: LeaderRef,
  ) {
    this.dispatcher = this.dispatcherFor(bundle);
  }

  /** Trust another bundle (a CA rotation): new connections use it, open ones finish. */
  useTrust(bundle: TrustBundle): void {
    const old = this.dispatcher;
    this.dispatcher = this.dispatcherFor(bundle);
    void old.close().catch(() => {});
  }

  private dispatcherFor(bundle: TrustBundle): Dispatcher {
    const trustDomain = this.trustDomain;
    return new Agent({
      keepAliveTimeout: 30_000,
      connect: {
        ca: bundle.pem,
        rejectUnauthorized: true,
        // The leader is whoever holds the lease: any server of the cluster's trust domain.
        checkServerIdentity: (_host: string, cert: { raw: Buffer }) => {
          try {
            verifySvid(cert.raw, { trustBundle: bundle, trustDomain, kind: 'server' });
            return undefined;
          } catch (e) {
            return e as Error;
          }
        },
      } as never,
    });
  }

  /** The fastify onRequest step: true when the request went (or is going) to the leader. */
  async intercept(req: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    if (this.leader.isLeader()) return false;
    const route = `${req.method} ${req.routeOptions.url ?? ''}`;
    if (!req.routeOptions.url || LOCAL.has(route)) return false;
    if (req.headers[FORWARDED_HEADER]) throw noLeaderError('this server was given a forwarded request, but it is not the leader (the leadership is changing)');
    const url = this.leader.leaderUrl();
    if (!url) throw noLeaderError('no server holds the leadership now');
    await this.forward(req.raw, reply, url);
    return true;
  }

  private async forward(raw: IncomingMessage, reply: FastifyReply, leaderUrl: string): Promise<void> {
    const headers: Record<string, string> = { [FORWARDED_HEADER]: '1', ...(raw.socket.remoteAddress ? { 'x-warren-client': raw.socket.remoteAddress } : {}) };
    for (const h of ['authorization', 'content-type', 'content-length', 'accept', 'last-event-id']) {
      const v = raw.headers[h];
      if (v !== undefined) headers[h] = Array.isArray(v) ? v.join(', ') : v;
    }
    const hasBody = raw.headers['content-length'] !== undefined ? Number(raw.headers['content-length']) > 0 : raw.headers['transfer-encoding'] !== undefined;
    const ac = new AbortController();
    const out: ServerResponse = reply.raw;
    const onClose = (): void => {
      if (!out.writableFinished) ac.abort();
    };
    out.once('close', onClose);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(new URL(raw.url ?? '/', leaderUrl), {
        method: raw.method as Dispatcher.HttpMethod,
        headers,
        ...(hasBody ? { body: raw } : {}),
        dispatcher: this.dispatcher,
        signal: ac.signal,
        headersTimeout: 30_000,
        bodyTimeout: 0,
      });
    } catch (e) {
      out.off('close', onClose);
      throw noLeaderError(`the leader at ${leaderUrl} did not answer (${(e as Error).message})`);
    }
    reply.hijack();
    const outHeaders: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !HOP.has(k.toLowerCase())) outHeaders[k] = v;
    out.writeHead(res.statusCode, outHeaders);
    // Stream the answer back as it comes (an event stream, a followed log).
    void (async () => {
      try {
        for await (const chunk of res.body) {
          if (!out.write(chunk)) await once(out, 'drain');
        }
        const trailers = res.trailers ?? {};
        if (Object.keys(trailers).length && !outHeaders['content-length']) out.addTrailers(trailers as Record<string, string>);
        out.end();
      } catch {
        // The leader went away mid-answer (or the client did): the client sees the stream break and asks again.
        out.destroy();
        res.body.destroy();
      } finally {
        out.off('close', onClose);
      }
    })();
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => {});
  }
}

/** The reads a follower answers from the store; anything else was forwarded before reaching here. */
export class FollowerClient implements WarrenClient, AdminClient {
  readonly where = 'server (follower)';
  constructor(
    private readonly store: Store,
    private readonly p: Principal,
  ) {}

  async get(id: string): Promise<WorkflowDetail> {
    return detailOf(this.store, await visibleWorkflow(this.store, this.p, id), { cores: 1, explain: false, cluster: true });
  }
  list(req: ListRequest = {}): Promise<WorkflowSummary[]> {
    return visibleWorkflows(this.store, this.p, req);
  }
  private leaderOnly(): never {
    throw noLeaderError('this server is a follower and could not forward the request');
  }
  submit(): never {
    return this.leaderOnly();
  }
  stream(): never {
    return this.leaderOnly();
  }
  logs(): never {
    return this.leaderOnly();
  }
  cancel(): never {
    return this.leaderOnly();
  }
  resume(): never {
    return this.leaderOnly();
  }
  connect(): never {
    throw new WarrenError('SERVICE_FORWARD_UNSUPPORTED', 'this server is a follower: port forwarding goes through the leader', {
      hint: 'use the leader\'s URL in the context (`GET /api/v1/health` on each server says which one leads)',
    });
  }
  async close(): Promise<void> {}
  nodes(): never {
    return this.leaderOnly();
  }
  drain(): never {
    return this.leaderOnly();
  }
  revokeNode(): never {
    return this.leaderOnly();
  }
  deleteNode(): never {
    return this.leaderOnly();
  }
  createJoinToken(): never {
    return this.leaderOnly();
  }
  tokens(): never {
    return this.leaderOnly();
  }
  revokeToken(): never {
    return this.leaderOnly();
  }
  addUser(): never {
    return this.leaderOnly();
  }
  users(): never {
    return this.leaderOnly();
  }
  removeUser(): never {
    return this.leaderOnly();
  }
  caStatus(): never {
    return this.leaderOnly();
  }
  rotateCa(): never {
    return this.leaderOnly();
  }
  retireCa(): never {
    return this.leaderOnly();
  }
  prune(): never {
    return this.leaderOnly();
  }
  // Node images live in the leader's data directory.
  nodeImageBuild(): never {
    return this.leaderOnly();
  }
  nodeImages(): never {
    return this.leaderOnly();
  }
  removeNodeImages(): never {
    return this.leaderOnly();
  }
  audit(q: AuditRequest = {}): Promise<AuditEntry[]> {
    return listAudit(this.store, this.p, q);
  }
}
