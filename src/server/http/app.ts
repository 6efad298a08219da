// The server's HTTPS JSON API (/api/v1): one route per call of the client API
// (src/api/types.ts), each with a full JSON schema (validated by fastify's ajv, serialized
// with fast-json-stringify, and the source of docs/api/openapi.json), bearer-token
// authentication, and one error handler that answers every failure as
// `{ "error": { code, message, hint, details } }` with the code's catalogued HTTP status.
// What a principal may see and do is the backend's (ApiBackend.client); this layer also
// refuses admin routes to non-admins itself, so a backend cannot forget it.

import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { Ajv } from 'ajv';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TUNNEL_PROTOCOL, WarrenError, acceptUpgrade, isWarrenError, joinStreams, refuseUpgrade, toWarrenError } from '../../common/index.js';
import {
  API_VERSION,
  LOG_ERROR_TRAILER,
  SSE_HEARTBEAT_MS,
  type AdminClient,
  type InventoryClient,
  type AuditRequest,
  type HealthView,
  type ServerStatusView,
  type ListRequest,
  type LogsRequest,
  type NodeImageBuildRequest,
  type PruneRequest,
  type StreamItem,
  type SubmitRequest,
  type WarrenClient,
} from '../../api/index.js';
import { BODY_LIMIT, SUBMIT_BODY_LIMIT } from './constants.js';
import { PROVISION_SCHEMAS, provisionRoutes } from './provision-routes.js';
import { countRequests } from './observe.js';
import { ERROR_RESPONSES, ID_PATTERN, NAME_PATTERN, SHARED_SCHEMAS, UNIT_STATES, WORKFLOW_STATUS, arrayOf, idParams, nameParams, ref } from './schemas.js';

export type { HealthView } from '../../api/index.js';

export interface Principal {
  user: string;
  unixUser: string;
  admin: boolean;
  tokenId: string;
  /** Where the request came from (the audit log's "from where"), set by the HTTP layer. */
  source?: string;
}

export interface ApiBackend {
  /** A bearer token -> who it is, or null (unknown, expired, revoked). */
  authenticate(token: string): Promise<Principal | null>;
  /** What this principal may do: a user sees and controls only their own workflows (another
   *  user's is RUN_NOT_FOUND -> 404, never 403); admins see all; AdminClient calls are refused
   *  for non-admins with AUTH_FORBIDDEN (403). */
  client(p: Principal): WarrenClient & AdminClient;
  /** The provisioning inventory of this principal (admins); absent: this server keeps none (API_NOT_FOUND). */
  inventory?(p: Principal): InventoryClient;
  health(): Promise<HealthView>;
  /** Write a refusal the HTTP layer made itself (a non-admin on an admin route) to the audit log. */
  audit?(e: { actor: string; action: string; target: string | null; source: string | null; result: string; details: Record<string, unknown> }): Promise<void>;
  /** `warren server status` (admins): this server's role, store, agents and queue. */
  serverStatus?(): Promise<ServerStatusView>;
}

export interface ApiServerOptions {
  backend: ApiBackend;
  /** node:https server options (key, cert, ca, requestCert...): the server is always HTTPS. */
  https: HttpsServerOptions;
  /** Extra fastify plugins (the agent protocol routes under /agent/v1 are registered this way). */
  plugins?: FastifyPluginAsync[];
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Cluster mode, two servers: called first for every /api/v1 request (before its token is
   *  checked); true when it took the request (a follower forwarding it to the leader). */
  intercept?: (req: FastifyRequest, reply: FastifyReply) => Promise<boolean>;
  /** Told of every request when its answer is over: method, route pattern (undefined: no route), status, seconds. */
  requests?: (method: string, route: string | undefined, status: string, seconds: number) => void;
}

export interface ApiServer {
  app: FastifyInstance;
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

/** How long a stream waits for its first item before it starts the response anyway; an error
 *  within this time is answered as a JSON error (404...), later ones in the stream. */
const FIRST_ITEM_WAIT_MS = 200;

const CONTEXT_HINT = 'warren context add NAME --server URL --token TOKEN';

interface RouteFlags {
  /** No token needed. */
  public?: boolean;
  /** Admins only (AUTH_FORBIDDEN for others, before the backend is asked). */
  admin?: boolean;
}

export async function buildApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const log = o.log ?? (() => {});
  const app = Fastify({
    https: o.https,
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Receiving a request (headers and body, 32 MiB at most) must not take longer; responses
    // (event streams, followed logs) may last as long as they need.
    requestTimeout: 120_000,
    keepAliveTimeout: 65_000,
    connectionTimeout: 0,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    exposeHeadRoutes: false,
  }) as unknown as FastifyInstance;

  if (o.requests) countRequests(app, o.requests);
  const principals = new WeakMap<FastifyRequest, Principal>();
  const streams = new Set<AbortController>();

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Warren API',
        version: API_VERSION,
        description:
          'The HTTPS JSON API of a Warren server: workflows, their live streams and logs, and administration. ' +
          'Every request but GET /api/v1/health carries `Authorization: Bearer <token>`. Every failure answers ' +
          '`{ "error": { code, message, hint, details } }` with the HTTP status of its code (docs/errors/*.md).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'workflows', description: 'submit, watch and control workflows (a user sees only their own)' },
        { name: 'admin', description: 'nodes, tokens and users (admins only)' },
        { name: 'provision', description: 'the provisioning inventory: nodes and profiles (admins only)' },
        { name: 'server', description: 'health and identity' },
      ],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String((json as { $id?: unknown }).$id ?? `def-${i}`) },
  });
  for (const s of [...SHARED_SCHEMAS, ...PROVISION_SCHEMAS]) app.addSchema(s);
  // Bodies are JSON, nothing else (a text/plain body is a client's mistake, not a string).
  app.removeContentTypeParser('text/plain');
  // Query strings, path parameters and headers are text: they are coerced to the schema's
  // types ("5" -> 5). A JSON body is not: a string where a number belongs is an error, and so
  // is a field the schema does not know (nothing is dropped silently).
  const ajvOptions = { removeAdditional: false, useDefaults: true, allErrors: false, allowUnionTypes: true } as const;
  const bodyAjv = new Ajv({ ...ajvOptions, coerceTypes: false });
  const textAjv = new Ajv({ ...ajvOptions, coerceTypes: 'array' });
  for (const s of [...SHARED_SCHEMAS, ...PROVISION_SCHEMAS]) {
    bodyAjv.addSchema(s);
    textAjv.addSchema(s);
  }
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));

  app.setErrorHandler((err: FastifyError | WarrenError | Error, req, reply) => {
    const e = apiError(err);
    if (e.httpStatus >= 500) {
      log('error', `${req.method} ${req.url}: ${e.message}`, { code: e.code, stack: (err as Error).stack });
    }
    void reply.code(e.httpStatus).type('application/json; charset=utf-8').send({ error: e.toWire() });
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new WarrenError('API_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`, {
      hint: 'the API is under /api/v1; its routes are described in docs/api/openapi.json (GET /api/v1/openapi.json)',
    });
    void reply.code(404).send({ error: e.toWire() });
  });

  const principal = (req: FastifyRequest): Principal => {
    const p = principals.get(req);
    if (!p) throw new WarrenError('AUTH_REQUIRED', 'this request needs a token', { hint: `send Authorization: Bearer TOKEN; ${CONTEXT_HINT}` });
    return p;
  };
  const client = (req: FastifyRequest): WarrenClient & AdminClient => o.backend.client(principal(req));
  const inventory = (req: FastifyRequest): InventoryClient => {
    if (!o.backend.inventory) throw new WarrenError('API_NOT_FOUND', 'this server keeps no provisioning inventory', { hint: 'use a Warren server with a store (`warren server`), or the embedded default (no context)' });
    return o.backend.inventory(principal(req));
  };

  const api: FastifyPluginAsync = async (r) => {
    r.addHook('onRequest', async (req, reply) => {
      if (o.intercept && (await o.intercept(req, reply))) return reply;
      const flags = (req.routeOptions.config ?? {}) as RouteFlags;
      if (flags.public) return;
      const p = { ...(await authenticate(o.backend, req.headers.authorization)), source: sourceOf(req) };
      principals.set(req, p);
      if (flags.admin && !p.admin) {
        await o.backend.audit?.({ actor: p.user, action: `api ${req.method} ${req.routeOptions.url ?? req.url}`, target: null, source: p.source, result: 'AUTH_FORBIDDEN', details: { url: req.url.slice(0, 300) } });
        throw new WarrenError('AUTH_FORBIDDEN', `${req.method} ${req.routeOptions.url ?? req.url} is for admins; user "${p.user}" is not one`, {
          hint: 'ask an admin of this server to do it, or to make you one',
        });
      }
    });

    // --- server ---
    r.get('/health', {
      config: { public: true },
      schema: {
        tags: ['server'],
        operationId: 'health',
        summary: "the server's health (no token needed); 503 when it cannot serve",
        security: [],
        response: { 200: ref('Health'), 503: ref('Health') },
      },
      handler: async (_req, reply) => {
        const h = await o.backend.health();
        return reply.code(h.ok ? 200 : 503).send(h);
      },
    });
    r.get('/server/status', {
      config: { admin: true },
      schema: {
        tags: ['server'],
        operationId: 'serverStatus',
        summary: "this server's role, store, agents and queue (`warren server status`); a follower answers for itself",
        response: { 200: ref('ServerStatus'), ...ERROR_RESPONSES },
      },
      handler: async () => {
        if (!o.backend.serverStatus) throw new WarrenError('API_NOT_FOUND', 'this server does not report its status', { hint: 'GET /ready says whether it can take traffic' });
        return o.backend.serverStatus();
      },
    });
    r.get('/openapi.json', {
      config: { public: true },
      schema: { hide: true },
      handler: async () => app.swagger(),
    });
    r.get('/whoami', {
      schema: { tags: ['server'], operationId: 'whoami', summary: 'who the token is', response: { 200: ref('WhoAmI'), ...ERROR_RESPONSES } },
      handler: async (req) => {
        const p = principal(req);
        return { user: p.user, unixUser: p.unixUser, admin: p.admin, tokenId: p.tokenId };
      },
    });

    // --- workflows ---
    r.post('/workflows', {
      bodyLimit: SUBMIT_BODY_LIMIT,
      schema: {
        tags: ['workflows'],
        operationId: 'submit',
        summary: 'submit a workflow (the server parses and validates its text)',
        body: ref('SubmitRequest'),
        response: { 201: ref('WorkflowSummary'), ...ERROR_RESPONSES },
      },
      handler: async (req, reply) => reply.code(201).send(await client(req).submit(req.body as SubmitRequest)),
    });
    r.get('/workflows', {
      schema: {
        tags: ['workflows'],
        operationId: 'list',
        summary: 'recent workflows, newest first (one\'s own; every user\'s with all=true, admins only)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 10_000 },
            status: { type: 'string', enum: WORKFLOW_STATUS },
            all: { type: 'boolean' },
          },
        },
        response: { 200: arrayOf('WorkflowSummary'), ...ERROR_RESPONSES },
      },
      handler: async (req) => {
        const q = req.query as ListRequest;
        if (q.all && !principal(req).admin) {
          throw new WarrenError('AUTH_FORBIDDEN', `all=true (every user's workflows) is for admins; user "${principal(req).user}" is not one`, {
            hint: 'leave out --all to list your own workflows',
          });
        }
        const lr: ListRequest = {};
        if (q.limit !== undefined) lr.limit = q.limit;
        if (q.status !== undefined) lr.status = q.status;
        if (q.all !== undefined) lr.all = q.all;
        return client(req).list(lr);
      },
    });
    r.get('/workflows/:id', {
      schema: { tags: ['workflows'], operationId: 'get', summary: 'a workflow with its units, attempts, events', params: idParams, response: { 200: ref('WorkflowDetail'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).get((req.params as { id: string }).id),
    });
    r.get('/workflows/:id/services/:service/ports/:port/forward', {
      schema: {
        tags: ['workflows'],
        operationId: 'portForward',
        summary: 'a TCP stream to a port of a running service (`warren port-forward`): an HTTP/1.1 upgrade',
        description:
          'Send it with `Connection: Upgrade` and `Upgrade: warren-tunnel`: the answer is `101 Switching Protocols`, and from then on the ' +
          'connection carries the bytes of one TCP connection to the service\'s port on its node (through the node\'s agent). ' +
          'Refused with an Error body: SERVICE_UNKNOWN, SERVICE_NOT_RUNNING, SERVICE_PORT_UNDECLARED, SERVICE_FORWARD_UNSUPPORTED (the node\'s agent is older than protocol 1.5), SERVICE_FORWARD_FAILED. ' +
          'Without the upgrade headers: API_BAD_REQUEST.',
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['id', 'service', 'port'],
          properties: { id: idParams.properties.id, service: { type: 'string', pattern: NAME_PATTERN }, port: { type: 'integer', minimum: 1, maximum: 65535 } },
        },
        response: { 101: { description: 'switched to the raw stream' }, ...ERROR_RESPONSES },
      },
      handler: async () => {
        throw new WarrenError('API_BAD_REQUEST', 'this route is an upgrade to a raw TCP stream, and the request did not ask for one', {
          hint: `send it with Connection: Upgrade and Upgrade: ${TUNNEL_PROTOCOL} (\`warren port-forward ID SERVICE PORT\` does)`,
        });
      },
    });
    r.post('/workflows/:id/cancel', {
      schema: { tags: ['workflows'], operationId: 'cancel', summary: 'cancel a workflow: running jobs are stopped, the rest marked canceled', params: idParams, response: { 200: ref('WorkflowSummary'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).cancel((req.params as { id: string }).id),
    });
    r.post('/workflows/:id/resume', {
      schema: { tags: ['workflows'], operationId: 'resume', summary: 're-run what did not succeed of an interrupted or failed workflow', params: idParams, response: { 200: ref('WorkflowSummary'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).resume((req.params as { id: string }).id),
    });
    r.get('/workflows/:id/stream', {
      schema: {
        tags: ['workflows'],
        operationId: 'stream',
        summary: "the workflow's changes as server-sent events, until it ends",
        description:
          'Each item is `id: <seq>`, `event: <type>`, `data: <StreamItem JSON>`; a comment every 15 s keeps the connection alive; ' +
          'the stream ends after the `done` item. Reconnect with `Last-Event-ID: <seq>` (or `?after=<seq>`) to continue after that item. ' +
          'An error after the stream began is sent as `event: error` with an Error body.',
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { after: { type: 'integer', minimum: 0, description: 'continue after this seq' } } },
        headers: { type: 'object', properties: { 'last-event-id': { type: 'string', pattern: '^[0-9]{1,15}$' } } },
        response: { 200: { description: 'server-sent events', content: { 'text/event-stream': { schema: ref('StreamItem') } } }, ...ERROR_RESPONSES },
      },
      handler: async (req, reply) => {
        const id = (req.params as { id: string }).id;
        const header = req.headers['last-event-id'];
        const after = typeof header === 'string' ? Number(header) : (req.query as { after?: number }).after;
        const c = client(req);
        await serveStream<StreamItem>(req, reply, streams, log, {
          open: (signal) => c.stream(id, { ...(after !== undefined ? { afterSeq: after } : {}), signal }),
          headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' },
          preamble: ': stream\n\n',
          encode: (item) => `id: ${item.seq}\nevent: ${item.type}\ndata: ${JSON.stringify(item)}\n\n`,
          isLast: (item) => item.type === 'done',
          heartbeat: ': heartbeat\n\n',
          fail: (res, e) => void res.write(`event: error\ndata: ${JSON.stringify(e.toWire())}\n\n`),
        });
      },
    });
    r.get('/workflows/:id/logs', {
      schema: {
        tags: ['workflows'],
        operationId: 'logs',
        summary: "a job's output (stdout or stderr), as bytes; with follow=true, until the job ends",
        description: `A failure after the bytes began is reported in the trailer \`${LOG_ERROR_TRAILER}\` (base64url of the Error body's \`error\`).`,
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['job'],
          properties: {
            job: { type: 'string', minLength: 1, maxLength: 1024 },
            task: { type: 'integer', minimum: 0 },
            stream: { type: 'string', enum: ['stdout', 'stderr'], default: 'stdout' },
            follow: { type: 'boolean', default: false },
          },
        },
        response: { 200: { description: 'the bytes of the log', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, ...ERROR_RESPONSES },
      },
      handler: async (req, reply) => {
        const id = (req.params as { id: string }).id;
        const q = req.query as { job: string; task?: number; stream: 'stdout' | 'stderr'; follow: boolean };
        const lr: LogsRequest = { job: q.job, task: q.task ?? null, stream: q.stream, follow: q.follow };
        const c = client(req);
        await serveStream<Uint8Array>(req, reply, streams, log, {
          open: (signal) => c.logs(id, lr, signal),
          headers: { 'content-type': 'application/octet-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', trailer: LOG_ERROR_TRAILER },
          encode: (chunk) => chunk,
          fail: (res, e) => res.addTrailers({ [LOG_ERROR_TRAILER]: Buffer.from(JSON.stringify(e.toWire())).toString('base64url') }),
        });
      },
    });

    // --- administration ---
    const admin = { admin: true } satisfies RouteFlags;
    const none = { 204: { description: 'done', type: 'null' }, ...ERROR_RESPONSES } as const;
    r.get('/nodes', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'nodes', summary: "the cluster's nodes", response: { 200: arrayOf('Node'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).nodes(),
    });
    for (const [verb, on] of [['drain', true], ['undrain', false]] as const) {
      r.post(`/nodes/:name/${verb}`, {
        config: admin,
        schema: {
          tags: ['admin'],
          operationId: verb,
          summary: on ? 'stop placing new work on a node (running work finishes)' : 'place work on a drained node again',
          params: nameParams,
          ...(on ? { body: { type: ['object', 'null'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 1000, description: 'why (shown by `warren node list` and kept in the audit log)' } } } } : {}),
          response: { 200: ref('Node'), ...ERROR_RESPONSES },
        },
        handler: async (req) => {
          const reason = (req.body as { reason?: string } | null | undefined)?.reason;
          return client(req).drain((req.params as { name: string }).name, on, reason);
        },
      });
    }
    r.post('/nodes/:name/revoke', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'revokeNode', summary: "revoke a node's identity: its connections are closed, it cannot join again without a new token", params: nameParams, response: none },
      handler: async (req, reply) => {
        await client(req).revokeNode((req.params as { name: string }).name);
        return reply.code(204).send();
      },
    });
    r.delete('/nodes/:name', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'deleteNode', summary: 'forget a node', params: nameParams, response: none },
      handler: async (req, reply) => {
        await client(req).deleteNode((req.params as { name: string }).name);
        return reply.code(204).send();
      },
    });
    r.post('/tokens', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'createJoinToken',
        summary: 'a join token for new nodes (shown once)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['ttlSeconds'],
          properties: { ttlSeconds: { type: 'integer', minimum: 1 }, uses: { type: 'integer', minimum: 1 } },
        },
        response: {
          201: { type: 'object', additionalProperties: false, required: ['token', 'view'], properties: { token: { type: 'string' }, view: ref('Token') } },
          ...ERROR_RESPONSES,
        },
      },
      handler: async (req, reply) => {
        const b = req.body as { ttlSeconds: number; uses?: number };
        return reply.code(201).send(await client(req).createJoinToken(b.uses !== undefined ? { ttlSeconds: b.ttlSeconds, uses: b.uses } : { ttlSeconds: b.ttlSeconds }));
      },
    });
    r.get('/tokens', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'tokens', summary: 'the tokens (never their secrets)', response: { 200: arrayOf('Token'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).tokens(),
    });
    r.delete('/tokens/:id', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'revokeToken',
        summary: 'revoke a token',
        params: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', pattern: NAME_PATTERN } } },
        response: none,
      },
      handler: async (req, reply) => {
        await client(req).revokeToken((req.params as { id: string }).id);
        return reply.code(204).send();
      },
    });
    r.post('/users', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'addUser',
        summary: 'add a user and make their first API token (shown once)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', pattern: NAME_PATTERN },
            unixUser: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,31}$', description: "the Unix account the user's jobs run as (default: name)" },
            admin: { type: 'boolean' },
            tokenTtlSeconds: { type: 'integer', minimum: 60, maximum: 10 * 365 * 24 * 3600, description: "the life of the user's API token (default: until revoked)" },
          },
        },
        response: {
          201: { type: 'object', additionalProperties: false, required: ['user', 'token'], properties: { user: ref('User'), token: { type: 'string' } } },
          ...ERROR_RESPONSES,
        },
      },
      handler: async (req, reply) => {
        const b = req.body as { name: string; unixUser?: string; admin?: boolean; tokenTtlSeconds?: number };
        const opts: { name: string; unixUser?: string; admin?: boolean; tokenTtlSeconds?: number } = { name: b.name };
        if (b.unixUser !== undefined) opts.unixUser = b.unixUser;
        if (b.admin !== undefined) opts.admin = b.admin;
        if (b.tokenTtlSeconds !== undefined) opts.tokenTtlSeconds = b.tokenTtlSeconds;
        return reply.code(201).send(await client(req).addUser(opts));
      },
    });
    r.get('/users', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'users', summary: 'the users', response: { 200: arrayOf('User'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).users(),
    });
    r.delete('/users/:name', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'removeUser', summary: 'remove a user and revoke their tokens', params: nameParams, response: none },
      handler: async (req, reply) => {
        await client(req).removeUser((req.params as { name: string }).name);
        return reply.code(204).send();
      },
    });
    r.post('/prune', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'prune',
        summary: 'remove finished workflows (with their units, attempts, events and files) that ended before a cutoff, or named ones; running work is never pruned',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            olderThanSec: { type: 'number', minimum: 0, description: 'finished workflows that ended more than this many seconds ago (0: every finished one)' },
            ids: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', pattern: ID_PATTERN }, description: 'these workflows (ids or unique prefixes), whatever their age; each must be finished (RUN_PRUNE_RUNNING)' },
            dryRun: { type: 'boolean', description: 'count what would go; remove nothing' },
          },
        },
        response: { 200: ref('PruneReport'), ...ERROR_RESPONSES },
      },
      handler: async (req) => client(req).prune(req.body as PruneRequest),
    });
    // --- node images (provisioning, issue 13): `warren image node-build|node-list|node-rm` ---
    r.post('/node-images', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'nodeImageBuild',
        summary: "build the node image of an image (kernel and packed root file system) in the server's data directory, or find it unchanged; a build past ~20 s answers 202: ask again to wait on it",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['source'],
          properties: {
            source: { type: 'string', minLength: 1, maxLength: 4096, description: 'any reference image.uri accepts: docker://, oras://, a .sif or a root file system directory on the server' },
            kernel: { type: 'string', minLength: 1, maxLength: 4096, description: "a kernel version of the image's /boot, or the path of a kernel file on the server" },
            force: { type: 'boolean', description: 'build again even when the image is unchanged' },
          },
        },
        response: { 200: ref('NodeImageBuild'), 202: ref('NodeImageBuilding'), ...ERROR_RESPONSES },
      },
      handler: async (req, reply) => {
        const r = await client(req).nodeImageBuild(req.body as NodeImageBuildRequest);
        return reply.code('building' in r ? 202 : 200).send(r);
      },
    });
    r.get('/node-images', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'nodeImages', summary: 'the node images, newest first', response: { 200: arrayOf('NodeImage'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).nodeImages(),
    });
    r.delete('/node-images', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'removeNodeImages',
        summary: 'remove the node image of a digest (or a unique prefix of 7 or more hex digits), or every one built from a source',
        querystring: { type: 'object', additionalProperties: false, required: ['image'], properties: { image: { type: 'string', minLength: 1, maxLength: 4096 } } },
        response: { 200: arrayOf('NodeImage'), ...ERROR_RESPONSES },
      },
      handler: async (req) => client(req).removeNodeImages((req.query as { image: string }).image),
    });
    r.get('/audit', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'audit',
        summary: 'the audit log, oldest first: every admin action and every action on another user\'s behalf',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: { type: 'integer', minimum: 0, description: 'entries at or after this time (ms since the epoch)' },
            until: { type: 'integer', minimum: 0, description: 'entries before this time (ms since the epoch)' },
            user: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,255}$', description: "only this user's actions (node:NAME: a node's health check)" },
            action: { type: 'string', pattern: '^[a-z][a-z.-]{0,63}$', description: 'one action (node.drain) or a family ending in a dot (node.)' },
            afterId: { type: 'integer', minimum: 0, description: 'paging: entries after this id' },
            limit: { type: 'integer', minimum: 1, maximum: 10_000 },
          },
        },
        response: { 200: arrayOf('AuditEntry'), ...ERROR_RESPONSES },
      },
      handler: async (req) => client(req).audit(req.query as AuditRequest),
    });
    r.get('/ca', {
      config: admin,
      schema: { tags: ['admin'], operationId: 'caStatus', summary: "the cluster's CAs, a CA rotation's phase and the nodes it waits for, and the trust bundle", response: { 200: ref('CaStatus'), ...ERROR_RESPONSES } },
      handler: async (req) => client(req).caStatus(),
    });
    r.post('/ca/rotate', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'rotateCa',
        summary: 'begin a CA rotation: a new CA, trusted beside the old one until every node has a certificate from it; then the old one is retired',
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { trustForSeconds: { type: 'integer', minimum: 0, maximum: 30 * 24 * 3600, description: 'the new CA is only trusted (it issues nothing) for at least this long: time to hand users the new CA file' } },
        },
        response: { 200: ref('CaStatus'), ...ERROR_RESPONSES },
      },
      handler: async (req) => {
        const b = (req.body ?? {}) as { trustForSeconds?: number };
        return client(req).rotateCa(b.trustForSeconds !== undefined ? { trustForSeconds: b.trustForSeconds } : {});
      },
    });
    provisionRoutes(r, inventory);
    r.post('/ca/retire', {
      config: admin,
      schema: {
        tags: ['admin'],
        operationId: 'retireCa',
        summary: 'retire the old CA of a rotation now (refused while a node holds a certificate from it, unless force)',
        body: { type: ['object', 'null'], additionalProperties: false, properties: { force: { type: 'boolean', description: 'retire it even so: those nodes must join again' } } },
        response: { 200: ref('CaStatus'), ...ERROR_RESPONSES },
      },
      handler: async (req) => {
        const b = (req.body ?? {}) as { force?: boolean };
        return client(req).retireCa(b.force !== undefined ? { force: b.force } : {});
      },
    });
  };
  await app.register(api, { prefix: `/api/${API_VERSION}` });
  for (const p of o.plugins ?? []) await app.register(p);

  // Port forwards: GET /api/v1/workflows/:id/services/:service/ports/:port/forward as an
  // upgrade (the route above answers a request without one). The user's token as for every
  // route; the backend opens the stream to the service (through its node's agent).
  const tunnels = new Set<Duplex>();
  const forwardPath = new RegExp(`^/api/${API_VERSION}/workflows/([A-Za-z0-9_.-]{1,128})/services/([A-Za-z0-9_.-]{1,255})/ports/(\\d{1,5})/forward$`);
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = (req.url ?? '').split('?')[0]!;
    if (path.startsWith('/agent/')) return; // the agent routes' own
    void (async () => {
      try {
        const m = forwardPath.exec(path);
        if (!m || req.method !== 'GET' || String(req.headers.upgrade ?? '').toLowerCase() !== TUNNEL_PROTOCOL) {
          throw new WarrenError('API_NOT_FOUND', `no upgrade route ${req.method ?? '?'} ${path}`, { hint: 'see docs/api/openapi.json (portForward)' });
        }
        const port = Number(m[3]);
        if (port < 1 || port > 65535) throw new WarrenError('API_BAD_REQUEST', `port ${m[3]} is not a TCP port (1..65535)`, { hint: 'give a port the service declares' });
        const p = await authenticate(o.backend, req.headers.authorization);
        const stream = await o.backend.client({ ...p, source: req.socket.remoteAddress ?? '?' }).connect(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), port);
        if (socket.destroyed) {
          stream.destroy();
          return;
        }
        acceptUpgrade(socket);
        if (head.length) stream.write(head);
        tunnels.add(socket);
        socket.once('close', () => tunnels.delete(socket));
        joinStreams(socket, stream);
      } catch (e) {
        const err = apiError(e);
        if (err.httpStatus >= 500) log('warn', `port forward ${path} failed: ${err.message}`, { code: err.code });
        refuseUpgrade(socket, err);
      }
    })();
  };
  app.server.on('upgrade', onUpgrade);

  // Open streams would hold the server open: end them first (their clients reconnect elsewhere).
  app.addHook('preClose', async () => {
    for (const ac of streams) ac.abort();
    app.server.off('upgrade', onUpgrade);
    for (const s of tunnels) s.destroy();
  });

  return {
    app,
    async listen(host: string, port: number) {
      await app.listen({ host, port });
      const a = app.server.address() as AddressInfo;
      log('info', `API listening on https://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/api/${API_VERSION}`);
      return { host: a.address, port: a.port };
    },
    async close() {
      await app.close();
    },
  };
}

/** The client's address; a request a follower forwarded names the follower too (the address it claims for its client is kept as claimed). */
function sourceOf(req: FastifyRequest): string {
  const via = req.headers['x-warren-client'];
  return typeof via === 'string' && via.length <= 64 ? `${via} via ${req.ip}` : req.ip;
}

async function authenticate(backend: ApiBackend, header: string | undefined): Promise<Principal> {
  if (header === undefined || header.trim() === '') {
    throw new WarrenError('AUTH_REQUIRED', 'this request needs a token and has none', {
      hint: `send Authorization: Bearer TOKEN; for the CLI: ${CONTEXT_HINT}`,
    });
  }
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  if (!m) {
    throw new WarrenError('AUTH_TOKEN_INVALID', 'the Authorization header is not `Bearer TOKEN`', {
      hint: `send Authorization: Bearer TOKEN; for the CLI: ${CONTEXT_HINT}`,
    });
  }
  const p = await backend.authenticate(m[1]!);
  if (!p) {
    throw new WarrenError('AUTH_TOKEN_INVALID', 'the token is unknown, expired or revoked', {
      hint: `ask an admin of the server for a new token, then: ${CONTEXT_HINT}`,
    });
  }
  return p;
}

/** Any error -> the WarrenError the client sees. */
function apiError(err: unknown): WarrenError {
  if (isWarrenError(err)) return err;
  const f = err as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (Array.isArray(f.validation) && f.validation.length > 0) return validationError(f.validation, f.validationContext ?? 'request');
  if (f.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new WarrenError('API_TOO_LARGE', 'the request body is larger than this route accepts', {
      hint: `a submitted workflow may be at most ${SUBMIT_BODY_LIMIT / 1024 / 1024} MiB, other requests ${BODY_LIMIT / 1024 / 1024} MiB; pass large inputs as data sources, not in the workflow file`,
    });
  }
  if (typeof f.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500) {
    const what =
      f.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? 'send the body as Content-Type: application/json'
        : f.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
          ? 'send a JSON body, or no Content-Type when there is no body'
          : 'see the route in docs/api/openapi.json';
    return new WarrenError('API_BAD_REQUEST', `bad request: ${f.message}`, { hint: what, details: { reason: f.code ?? 'bad request' } });
  }
  return toWarrenError(err);
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

function validationError(errors: AjvError[], where: string): WarrenError {
  const e = errors[0]!;
  const base = [where, ...e.instancePath.split('/').filter(Boolean)].join('.');
  let field = base;
  let what = e.message ?? 'is not valid';
  if (e.keyword === 'required' && typeof e.params.missingProperty === 'string') {
    field = `${base}.${e.params.missingProperty}`;
    what = 'is required';
  } else if (e.keyword === 'additionalProperties' && typeof e.params.additionalProperty === 'string') {
    field = `${base}.${e.params.additionalProperty}`;
    what = 'is not a known field';
  } else if (e.keyword === 'enum' && Array.isArray(e.params.allowedValues)) {
    what = `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return new WarrenError('API_BAD_REQUEST', `invalid request: ${field} ${what}`, {
    hint: 'the request does not match the route\'s schema (docs/api/openapi.json); a client of another Warren version may send this: use the same version as the server',
    details: { field, keyword: e.keyword, params: e.params },
  });
}

interface StreamSpec<T> {
  open(signal: AbortSignal): AsyncIterable<T>;
  headers: Record<string, string>;
  preamble?: string;
  encode(item: T): string | Uint8Array;
  isLast?(item: T): boolean;
  heartbeat?: string;
  /** Report an error that came after the response began (in band or in a trailer). */
  fail(res: import('node:http').ServerResponse, e: WarrenError): void;
}

/**
 * Serve an AsyncIterable as a streamed response. An error before the first item (within a
 * short wait) is thrown, for the error handler's JSON answer (404...); after that it goes to
 * `fail`. The client going away aborts the backend's iterator (its signal) and returns it.
 */
async function serveStream<T>(req: FastifyRequest, reply: FastifyReply, streams: Set<AbortController>, log: NonNullable<ApiServerOptions['log']>, s: StreamSpec<T>): Promise<void> {
  const ac = new AbortController();
  const res = reply.raw;
  const onClose = (): void => ac.abort();
  res.on('close', onClose);
  res.on('error', () => ac.abort()); // a write to a connection that went away
  streams.add(ac);
  const aborted = new Promise<'aborted'>((resolve) => ac.signal.addEventListener('abort', () => resolve('aborted'), { once: true }));
  let it: AsyncIterator<T>;
  let next: Promise<IteratorResult<T>>;
  let timer: NodeJS.Timeout | undefined;
  try {
    it = s.open(ac.signal)[Symbol.asyncIterator]();
    next = it.next();
    void next.catch(() => {});
    // A rejection of the first item within the wait is thrown from here (a JSON error answer).
    const early = await Promise.race([next.then(() => 'ready' as const), aborted, new Promise<'wait'>((r) => (timer = setTimeout(() => r('wait'), FIRST_ITEM_WAIT_MS)))]);
    if (early === 'aborted') {
      void Promise.resolve()
        .then(() => it.return?.())
        .catch(() => {});
      streams.delete(ac);
      reply.hijack();
      res.destroy();
      return;
    }
  } catch (e) {
    streams.delete(ac);
    res.off('close', onClose);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  reply.hijack();
  res.writeHead(200, s.headers);
  if (s.preamble) res.write(s.preamble);
  else res.flushHeaders();
  const hb = s.heartbeat ? setInterval(() => res.write(s.heartbeat!), SSE_HEARTBEAT_MS) : undefined;
  hb?.unref();
  let finished = false;
  let corked = false;
  try {
    for (;;) {
      const r = await Promise.race([next, aborted]);
      if (r === 'aborted' || r.done) {
        finished = r !== 'aborted';
        break;
      }
      // Items that come in one turn of the event loop go out in one TLS write (a busy run
      // makes thousands of unit changes a second).
      if (!corked) {
        corked = true;
        res.cork();
        setImmediate(() => {
          corked = false;
          if (!res.destroyed) res.uncork();
        });
      }
      if (!res.write(s.encode(r.value))) {
        await Promise.race([new Promise((ok) => res.once('drain', ok)), aborted]);
      }
      if (s.isLast?.(r.value)) {
        finished = true;
        break;
      }
      next = it.next();
      void next.catch(() => {});
    }
  } catch (err) {
    if (!ac.signal.aborted) {
      const e = apiError(err);
      if (e.httpStatus >= 500) log('error', `${req.method} ${req.url}: ${e.message} (in the stream)`, { code: e.code, stack: (err as Error).stack });
      s.fail(res, e);
    }
    finished = true;
  } finally {
    if (hb) clearInterval(hb);
    streams.delete(ac);
    if (!finished) ac.abort();
    // Let the backend's iterator clean up (it may be blocked: do not wait for it).
    void Promise.resolve()
      .then(() => it.return?.())
      .catch(() => {});
    if (!res.destroyed) res.end();
  }
}
