// The routes for load balancers and Prometheus, at the root of the server's HTTPS port
// (beside /api/v1, never forwarded by a follower: each server answers for itself) and on the
// optional plain-HTTP metrics listener (`warren server --metrics-listen`):
//
//   GET /health   200 {status: ok, ...} while the process answers (no token)
//   GET /ready    200 when this server can take API traffic now, else 503 (no token)
//   GET /metrics  Prometheus text format (docs/metrics.md); a bearer token on the HTTPS port
//
// Also the count of every HTTP request by route pattern and status (countRequests).

import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { LiveView, ReadyView } from '../../api/index.js';

export interface ObserveRoutes {
  live(): LiveView;
  ready(): Promise<ReadyView>;
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Checks the Authorization header of a scrape (throws AUTH_* WarrenErrors); absent: no token is needed. */
  authorizeMetrics?: (authorization: string | undefined) => Promise<void>;
}

export function observeRoutes(o: ObserveRoutes): FastifyPluginAsync {
  return async (app) => {
    app.get('/health', { schema: { hide: true } }, async (_req, reply) => reply.code(200).header('cache-control', 'no-store').send(o.live()));
    app.get('/ready', { schema: { hide: true } }, async (_req, reply) => {
      const r = await o.ready();
      return reply.code(r.ready ? 200 : 503).header('cache-control', 'no-store').send(r);
    });
    app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
      if (o.authorizeMetrics) await o.authorizeMetrics(req.headers.authorization);
      const m = await o.metrics();
      return reply.code(200).header('content-type', m.contentType).header('cache-control', 'no-store').send(m.text);
    });
  };
}

/**
 * Tell `done` of every request when its answer is over (or the client went away): method, the
 * route pattern (`/api/v1/workflows/:id`; undefined when no route matched) and status
 * ("aborted" when no answer began). Streams and hijacked answers (a follower's forwarding)
 * are counted too: the answer's end is the socket response's `close`.
 */
export function countRequests(app: FastifyInstance, done: (method: string, route: string | undefined, status: string, seconds: number) => void): void {
  app.addHook('onRequest', async (req, reply) => {
    const t0 = performance.now();
    const res = reply.raw;
    res.once('close', () => {
      done(req.method, req.routeOptions.url, res.headersSent ? String(res.statusCode) : 'aborted', (performance.now() - t0) / 1000);
    });
  });
}
