// The agent routes under /agent/v1 on the server's one HTTPS port: join (a token, no client
// certificate), then over mutual TLS renew, heartbeat, poll (long poll), the log upload, and
// runs (which of a node's run directories belong to finished or pruned workflows).
// Every mutual-TLS route takes the node's name from the SPIFFE ID of its verified X.509-SVID
// (never from the CN or the body). Errors are `{error: WireError}` bodies with the code's HTTP
// status. The wire is described in src/agent/protocol.ts and docs/cluster-agent.md.
import type https from 'node:https';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Ajv } from 'ajv';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TUNNEL_ERROR_HEADER, TUNNEL_PROTOCOL, WarrenError, acceptUpgrade, isWarrenError, refuseUpgrade, toWarrenError, type WireError } from '../common/index.js';
import { AGENT_ROUTE_PREFIX, type HeartbeatRequest, type JoinRequest, type PollRequest, type RenewRequest, type RunsRequest } from '../agent/index.js';
import type { NodeRegistry } from './nodes.js';
import type { MeshLog, MeshTls } from './mesh-tls.js';
import type { VerifiedSvid } from '../mesh/index.js';

// ---- JSON schemas (requests are checked for shape here; what a node claims is checked by validateNodeInfo) ----

const protocol = { type: 'object', required: ['major', 'minor'], properties: { major: { type: 'integer', minimum: 0 }, minor: { type: 'integer', minimum: 0 } } } as const;
const pem = { type: 'string', minLength: 1, maxLength: 65536 } as const;
const wireError = { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' }, details: { type: 'object' } } } as const;
const nodeInfo = {
  type: 'object',
  required: ['name', 'cores', 'memoryBytes', 'gpus', 'labels', 'platform', 'containers', 'agentVersion', 'protocol'],
  properties: {
    name: { type: 'string', maxLength: 1000 },
    cores: { type: 'number' },
    memoryBytes: { type: 'number' },
    gpus: { type: 'array', maxItems: 4096, items: { type: 'object', required: ['index', 'model', 'memoryBytes'], properties: { index: { type: 'number' }, model: { type: 'string' }, memoryBytes: { type: 'number' } } } },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    platform: { type: 'string' },
    containers: { type: 'boolean' },
    cachedImages: { type: 'array', maxItems: 100000, items: { type: 'string' } },
    addresses: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } },
    agentVersion: { type: 'string' },
    protocol,
  },
} as const;
const started = { type: 'object', required: ['attemptId', 'pid', 'cgroup', 'at'], properties: { attemptId: { type: 'string', minLength: 1 }, pid: { type: ['integer', 'null'] }, cgroup: { type: ['string', 'null'] }, at: { type: 'number' } } } as const;
const exited = {
  type: 'object',
  required: ['attemptId', 'exitCode', 'signal', 'reason', 'durationMs', 'at'],
  properties: {
    attemptId: { type: 'string', minLength: 1 },
    exitCode: { type: ['integer', 'null'] },
    signal: { type: ['string', 'null'] },
    reason: { type: 'string', enum: ['exit', 'signal', 'timeout', 'oom', 'canceled', 'spawn-error', 'stopped', 'error', 'node-lost', 'agent-restarted', 'not-ready'] },
    message: { type: 'string' },
    durationMs: { type: 'number', minimum: 0 },
    failure: wireError,
    at: { type: 'number' },
  },
} as const;
const launchEvent = {
  type: 'object',
  required: ['type', 'attemptId'],
  properties: {
    type: { enum: ['request', 'cancel', 'exited', 'rank-exit'] },
    attemptId: { type: 'string', minLength: 1, maxLength: 1000 },
    launchId: { type: 'string', maxLength: 64 },
    host: { type: 'string', maxLength: 1000 },
    command: { type: 'string', maxLength: 1_000_000 },
    exitCode: { type: ['integer', 'null'] },
    signal: { type: ['string', 'integer', 'null'] },
    rank: { type: ['integer', 'null'] },
    message: { type: 'string', maxLength: 100_000 },
  },
} as const;
const ready = {
  type: 'object',
  required: ['attemptId', 'at'],
  properties: { attemptId: { type: 'string', minLength: 1 }, host: { type: 'string', maxLength: 256 }, message: { type: 'string', maxLength: 10_000 }, at: { type: 'number' } },
} as const;
const attemptState = {
  type: 'object',
  required: ['attemptId', 'state', 'pid', 'cgroup', 'startedAt'],
  properties: { attemptId: { type: 'string', minLength: 1 }, state: { enum: ['running', 'exited'] }, pid: { type: ['integer', 'null'] }, cgroup: { type: ['string', 'null'] }, startedAt: { type: ['number', 'null'] }, exit: exited },
} as const;
const timers = { heartbeatMs: { type: 'integer' }, stopAfterMs: { type: 'integer' }, pollWaitMs: { type: 'integer' } } as const;

const joinSchema = {
  body: { type: 'object', required: ['protocol', 'token', 'csr', 'info'], properties: { protocol, token: { type: 'string', minLength: 1, maxLength: 200 }, csr: pem, info: nodeInfo } },
  response: {
    200: {
      type: 'object',
      properties: { protocol, node: { type: 'string' }, spiffeId: { type: 'string' }, certPem: { type: 'string' }, bundlePem: { type: 'string' }, notAfter: { type: 'number' }, ...timers },
    },
  },
} as const;
const renewSchema = {
  body: { type: 'object', required: ['csr'], properties: { csr: pem } },
  response: { 200: { type: 'object', properties: { certPem: { type: 'string' }, bundlePem: { type: 'string' }, notAfter: { type: 'number' } } } },
} as const;
const heartbeatSchema = {
  body: {
    type: 'object',
    required: ['protocol', 'epoch'],
    properties: {
      protocol,
      epoch: { type: 'string', minLength: 1, maxLength: 64 },
      reports: {
        type: 'array',
        maxItems: 10000,
        items: {
          type: 'object',
          required: ['seq', 'type', 'event'],
          properties: { seq: { type: 'integer', minimum: 1 }, type: { enum: ['started', 'exited', 'launch', 'ready'] }, event: { type: 'object' } },
          if: { properties: { type: { const: 'started' } } },
          then: { properties: { event: started } },
          else: {
            if: { properties: { type: { const: 'exited' } } },
            then: { properties: { event: exited } },
            else: { if: { properties: { type: { const: 'ready' } } }, then: { properties: { event: ready } }, else: { properties: { event: launchEvent } } },
          },
        },
      },
      attempts: { type: 'array', maxItems: 1_000_000, items: attemptState },
      info: nodeInfo,
      trust: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 200 } },
      leaving: { type: 'string', maxLength: 1000 },
      load: { type: 'object', required: ['usedCores', 'queued', 'running'], properties: { usedCores: { type: 'number', minimum: 0 }, queued: { type: 'integer', minimum: 0 }, running: { type: 'integer', minimum: 0 } } },
    },
  },
  response: {
    200: {
      type: 'object',
      properties: { protocol, ack: { type: 'integer' }, resync: { type: 'boolean' }, state: { type: 'string' }, drained: { type: 'boolean' }, bundlePem: { type: 'string' }, renew: { type: 'boolean' }, ...timers },
    },
  },
} as const;
const pollSchema = {
  body: {
    type: 'object',
    required: ['waitMs'],
    properties: {
      waitMs: { type: 'integer', minimum: 0, maximum: 600000 },
      ack: { type: 'object', required: ['epoch', 'cursor'], properties: { epoch: { type: 'string', maxLength: 64 }, cursor: { type: 'integer', minimum: 0 } } },
    },
  },
  response: {
    200: {
      type: 'object',
      properties: {
        epoch: { type: 'string' },
        cursor: { type: 'integer' },
        assignments: { type: 'array', items: { type: 'object', additionalProperties: true } },
        kills: { type: 'array', items: { type: 'object', properties: { attemptId: { type: 'string' }, reason: { type: 'string' } } } },
        logRequests: { type: 'array', items: { type: 'object', additionalProperties: true } },
        stopLogs: { type: 'array', items: { type: 'string' } },
        launches: { type: 'array', items: { type: 'object', additionalProperties: true } },
        forget: { type: 'array', items: { type: 'string' } },
        tunnels: { type: 'array', items: { type: 'object', properties: { tunnelId: { type: 'string' }, attemptId: { type: 'string' }, port: { type: 'integer' } } } },
      },
    },
  },
} as const;
/** Which of these workflows the store has, and whether they ended (a node's retention asks, protocol 1.3). */
const runsSchema = {
  body: { type: 'object', required: ['workflows'], properties: { workflows: { type: 'array', maxItems: 1000, items: { type: 'string', minLength: 1, maxLength: 128 } } } },
  response: {
    200: {
      type: 'object',
      properties: {
        runs: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, status: { type: 'string' }, endedAt: { type: ['number', 'null'] } } } },
      },
    },
  },
} as const;
const logsSchema = {
  params: { type: 'object', required: ['requestId'], properties: { requestId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } },
  response: { 200: { type: 'object', properties: { ok: { type: 'boolean' }, bytes: { type: 'integer' }, stopped: { type: 'boolean' } } } },
} as const;

export interface AgentRoutesOptions {
  /** Where refusals are logged (default: the fastify instance's logger). */
  log?: MeshLog;
}

/** The /agent/v1 routes, as a fastify plugin (registered without fastify-plugin: its error handler and parsers stay its own). */
export function agentRoutes(reg: NodeRegistry, tls: MeshTls, opts: AgentRoutesOptions = {}): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    tls.useRevocations(reg.revocations);
    const server = app.server as unknown as https.Server;
    if (typeof server.setSecureContext === 'function') tls.attach(server);
    const log: MeshLog =
      opts.log ??
      ((level, message, fields) => {
        app.log[level](fields ?? {}, message);
      });

    // No type coercion, no removal: what the agent sends is what is checked.
    const ajv = new Ajv({ allErrors: false, coerceTypes: false, useDefaults: false, removeAdditional: false, strict: false });
    app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
    // Log uploads: the handler reads the raw stream (no buffering, no body limit).
    app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null, undefined));

    app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number; code?: string }, req: FastifyRequest, reply: FastifyReply) => {
      let e: WarrenError;
      if (isWarrenError(err)) e = err;
      else if (err.validation) {
        e = new WarrenError('AGENT_BAD_REPORT', `the ${req.url.split('?')[0]} request is not valid: ${err.message}`, {
          hint: 'the agent sent a body this server does not understand: run agents of the same Warren release as the server',
        });
      } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
        e = new WarrenError('AGENT_BAD_REPORT', `the ${req.url.split('?')[0]} request was refused: ${err.message}`, { hint: 'run agents of the same Warren release as the server' });
        reply.code(err.statusCode);
        log('warn', e.message, { code: e.code, remoteAddress: req.socket.remoteAddress });
        return reply.send({ error: e.toWire() });
      } else e = toWarrenError(err);
      if (e.httpStatus < 500) log('warn', `refused ${req.method} ${req.url.split('?')[0]} from ${req.socket.remoteAddress ?? '?'}: ${e.message}`, { code: e.code, remoteAddress: req.socket.remoteAddress });
      else if (e.code !== 'SERVER_NOT_LEADER') log('error', `${req.method} ${req.url.split('?')[0]} failed: ${e.message}`, { code: e.code });
      return reply.code(e.httpStatus).send({ error: e.toWire() });
    });

    const P = AGENT_ROUTE_PREFIX;

    // Port forwards (protocol 1.5): the node opens GET /agent/v1/tunnels/:id as an upgrade, over
    // mutual TLS; the server joins it to the user's side (src/server/http/app.ts). With the
    // x-warren-tunnel-error header, the node says why it could not reach the service instead.
    const tunnelPath = new RegExp(`^${P}/tunnels/([A-Za-z0-9_-]{1,64})$`);
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      const path = (req.url ?? '').split('?')[0]!;
      if (!path.startsWith(`${P}/`)) return; // another route's (the user API's)
      const m = tunnelPath.exec(path);
      try {
        if (!m || req.method !== 'GET' || String(req.headers.upgrade ?? '').toLowerCase() !== TUNNEL_PROTOCOL) {
          throw new WarrenError('AGENT_BAD_REPORT', `no upgrade route ${req.method ?? '?'} ${path}`, { hint: 'run agents of the same Warren release as the server' });
        }
        const node = tls.requireNode(req).name;
        const failed = req.headers[TUNNEL_ERROR_HEADER];
        let got: { stream: Duplex } | { error: WireError };
        if (typeof failed === 'string') {
          let w: WireError;
          try {
            w = JSON.parse(Buffer.from(failed, 'base64').toString('utf8')) as WireError;
            if (typeof w.code !== 'string' || typeof w.message !== 'string') throw new Error('not an error');
          } catch {
            w = new WarrenError('SERVICE_FORWARD_FAILED', `node ${node} could not open the port forward`, { hint: 'see the node\'s log' }).toWire();
          }
          got = { error: w };
        } else got = { stream: socket };
        if (!reg.acceptTunnel(node, m[1]!, got)) throw new WarrenError('AGENT_LOG_UNKNOWN', `no port forward ${m[1]} waits for node ${node}`, { hint: 'the user went away, or it timed out' });
        if ('error' in got) {
          refuseUpgrade(socket, WarrenError.fromWire(got.error));
          return;
        }
        acceptUpgrade(socket);
        if (head.length) socket.unshift(head);
      } catch (e) {
        const err = toWarrenError(e);
        log('warn', `refused the upgrade ${path} from ${req.socket.remoteAddress ?? '?'}: ${err.message}`, { code: err.code, remoteAddress: req.socket.remoteAddress });
        refuseUpgrade(socket, err);
      }
    };
    server.on('upgrade', onUpgrade);
    app.addHook('onClose', async () => {
      server.off('upgrade', onUpgrade);
    });
    /** The node of a mutual-TLS request: from its verified SVID, of kind node. */
    type NodeRequest = FastifyRequest & { agentNode: string; agentPeer: VerifiedSvid };
    const nodeOf = (req: FastifyRequest): string => (req as NodeRequest).agentNode;
    const requireNode = async (req: FastifyRequest): Promise<void> => {
      const peer = tls.requireNode(req.raw);
      (req as NodeRequest).agentNode = peer.name;
      (req as NodeRequest).agentPeer = peer;
    };

    app.post(`${P}/join`, { schema: joinSchema }, async (req) => reg.join(req.body as JoinRequest));

    app.post(`${P}/renew`, { schema: renewSchema, onRequest: requireNode }, async (req) => reg.renew(nodeOf(req), (req.body as RenewRequest).csr));

    app.post(`${P}/heartbeat`, { schema: heartbeatSchema, onRequest: requireNode, bodyLimit: 64 << 20 }, async (req) => reg.heartbeat(nodeOf(req), req.body as HeartbeatRequest, (req as NodeRequest).agentPeer));

    app.post(`${P}/poll`, { schema: pollSchema, onRequest: requireNode }, async (req, reply) => {
      const body = req.body as PollRequest;
      const ac = new AbortController();
      // The agent gave up the connection: stop holding the poll (what was queued stays queued).
      const onClose = (): void => {
        if (!reply.raw.writableFinished) ac.abort();
      };
      reply.raw.once('close', onClose);
      try {
        return await reg.poll(nodeOf(req), body.waitMs, ac.signal, body.ack);
      } finally {
        reply.raw.off('close', onClose);
      }
    });

    app.post(`${P}/runs`, { schema: runsSchema, onRequest: requireNode }, async (req) => reg.runs(nodeOf(req), (req.body as RunsRequest).workflows));

    app.post(`${P}/logs/:requestId`, { schema: logsSchema, onRequest: requireNode }, async (req) => {
      const { requestId } = req.params as { requestId: string };
      const sink = reg.logUpload(nodeOf(req), requestId);
      const type = String(req.headers['content-type'] ?? '');
      if (type.startsWith('application/json')) {
        // The node could not read the log: `{error: WireError}`.
        const body = req.body as { error?: WireError } | undefined;
        const w = body?.error;
        sink.fail(
          w && typeof w.code === 'string' && typeof w.message === 'string'
            ? w
            : new WarrenError('AGENT_BAD_REPORT', 'the node answered a log request with a JSON body that is not {error}', { hint: 'run agents of the same Warren release as the server' }),
        );
        return { ok: true, bytes: 0, stopped: false };
      }
      let bytes = 0;
      let stopped = false;
      const raw = req.raw;
      const node = nodeOf(req);
      // `x-warren-log: more`: another part of this upload follows; `end` (or none): the last part.
      const more = String(req.headers['x-warren-log'] ?? 'end') === 'more';
      await new Promise<void>((resolve) => {
        let settled = false;
        const finish = (how: 'end' | 'stop' | Error): void => {
          if (settled) return;
          settled = true;
          raw.off('data', onData);
          if (how === 'end') {
            if (more) sink.partDone();
            else sink.end();
          }
          else if (how === 'stop') {
            // The reader went away: answer now, let Node discard the rest of the body (the agent is told to stop).
            stopped = true;
            raw.resume();
          } else sink.fail(new WarrenError('AGENT_LOG_INTERRUPTED', `the log upload of node ${node} broke off after ${bytes} bytes: ${how.message}`, { hint: 'ask for the log again', cause: how }));
          resolve();
        };
        const onData = (chunk: Buffer): void => {
          bytes += chunk.byteLength;
          raw.pause();
          void sink.write(chunk).then((more) => {
            if (!more) finish('stop');
            else if (!settled) raw.resume();
          });
        };
        raw.on('data', onData);
        raw.once('end', () => finish('end'));
        raw.once('error', (e) => finish(e));
        raw.once('close', () => {
          if (!raw.complete) finish(new Error('the connection closed'));
        });
      });
      return { ok: true, bytes, stopped };
    });
  };
}
