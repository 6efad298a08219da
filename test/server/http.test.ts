// The HTTPS API end to end over real TLS on 127.0.0.1: a server with a certificate from a
// test cluster CA, an in-memory backend (this tests the transport), and HttpClient round
// trips for every route; the refusals (no token, bad token, non-admin, another user's
// workflow, malformed bodies, unknown ids and routes, an unknown CA, nobody listening);
// event streams that resume after the server drops them, and followed logs.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type https from 'node:https';
import { Agent, request } from 'undici';
import type { FastifyPluginAsync } from 'fastify';
import { HttpClient, type StreamItem } from '../../src/api/index.js';
import { WarrenError } from '../../src/common/index.js';
import type { UnitSnapshot, UnitState } from '../../src/engine/index.js';
import { buildApiServer, type ApiServer } from '../../src/server/index.js';
import { makeCluster, serverCredentials, type Cluster } from '../mesh/helpers.js';
import { MemoryBackend } from './memory-backend.js';

const T = { timeout: 60_000 };

let cluster: Cluster;
let backend: MemoryBackend;
let server: ApiServer;
let url: string;
let adminToken: string;
let aliceToken: string;
let bobToken: string;
const logged: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
const clients: HttpClient[] = [];
let raw: Agent;

function client(token: string, o: { caPem?: string | null; url?: string; streamRetries?: number } = {}): HttpClient {
  const c = new HttpClient({
    url: o.url ?? url,
    token,
    ...(o.caPem === null ? {} : { caPem: o.caPem ?? cluster.ca.certPem }),
    ...(o.streamRetries !== undefined ? { streamRetries: o.streamRetries } : {}),
  });
  clients.push(c);
  return c;
}

async function refused(p: Promise<unknown>, code: string, status?: number): Promise<WarrenError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WarrenError, `not a WarrenError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (status !== undefined) assert.equal(e.httpStatus, status);
    assert.ok(e.hint, `${code} has a hint`);
    return e;
  }
  assert.fail(`expected ${code}, it succeeded`);
}

/** A raw request (no HttpClient): status and parsed body. */
async function rawRequest(method: string, path: string, o: { headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const r = await request(url + path, { method: method as 'GET', dispatcher: raw, ...(o.headers ? { headers: o.headers } : {}), ...(o.body !== undefined ? { body: o.body } : {}) });
  const text = await r.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.statusCode, body, headers: r.headers };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function text(it: AsyncIterable<Uint8Array>): Promise<string> {
  return Buffer.concat((await collect(it)).map((c) => Buffer.from(c))).toString();
}

const unit = (state: UnitState): UnitSnapshot => ({ key: 'a', kind: 'job', job: 'a', task: null, state, attempt: 1, exitCode: null, reason: null, message: null, startedAt: 1, endedAt: null });

before(async () => {
  cluster = await makeCluster();
  const creds = await serverCredentials(cluster);
  backend = new MemoryBackend();
  adminToken = backend.addUser('root', true);
  aliceToken = backend.addUser('alice');
  bobToken = backend.addUser('bob');
  backend.nodesByName.set('n001', { name: 'n001', state: 'ready', cores: 64, memoryBytes: 256 * 2 ** 30, gpus: 4, labels: { rack: 'r1' }, platform: 'linux/amd64', lastSeenAt: 5, running: 2, usedCores: 8, drainReason: null, drainedBy: null, health: null });
  backend.nodesByName.set('n002', { name: 'n002', state: 'ready', cores: 32, memoryBytes: 128 * 2 ** 30, gpus: 0, labels: {}, platform: 'linux/arm64', lastSeenAt: null, running: 0, usedCores: 0, drainReason: null, drainedBy: null, health: { ok: true, at: 7, output: '' } });
  // Another protocol's routes, as the agent protocol registers its own under /agent/v1.
  const agentRoutes: FastifyPluginAsync = async (app) => {
    app.get('/agent/v1/ping', async () => ({ pong: true }));
    app.get('/agent/v1/fail', async () => {
      throw new WarrenError('MESH_NO_CLIENT_CERT', 'no client certificate', { hint: 'connect with the agent certificate' });
    });
  };
  server = await buildApiServer({ backend, plugins: [agentRoutes], https: { key: creds.keyPem, cert: creds.certPem }, log: (level, msg, fields) => logged.push({ level, msg, ...(fields ? { fields } : {}) }) });
  const a = await server.listen('127.0.0.1', 0);
  url = `https://127.0.0.1:${a.port}`;
  raw = new Agent({ connect: { ca: cluster.ca.certPem } });
});

after(async () => {
  for (const c of clients) await c.close();
  await raw?.close();
  await server?.close();
  cluster?.cleanup();
});

describe('the server', () => {
  test('health needs no token; 503 with the view when the store is down', T, async () => {
    const c = client('no-such-token');
    const h = await c.health();
    assert.equal(h.ok, true);
    assert.deepEqual(h.store, { ok: true, kind: 'memory' });
    assert.deepEqual(h.nodes, { ready: 2, total: 2 });
    backend.healthy = false;
    try {
      const r = await rawRequest('GET', '/api/v1/health');
      assert.equal(r.status, 503);
      assert.equal(r.body.store.error, 'the store is down');
      const down = await c.health();
      assert.equal(down.ok, false);
      assert.deepEqual(down.messages, ['the store is down']);
    } finally {
      backend.healthy = true;
    }
  });

  test('whoami says who the token is', T, async () => {
    assert.deepEqual(await client(aliceToken).whoami(), { user: 'alice', unixUser: 'alice', admin: false, tokenId: 't2' });
    assert.equal((await client(adminToken).whoami()).admin, true);
  });

  test('no token, a bad token or another scheme: 401 with a hint to add a context', T, async () => {
    const none = await rawRequest('GET', '/api/v1/workflows');
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'AUTH_REQUIRED');
    assert.match(none.body.error.hint, /warren context add .*--token/);
    const basic = await rawRequest('GET', '/api/v1/whoami', { headers: { authorization: 'Basic YWxpY2U6cHc=' } });
    assert.equal(basic.status, 401);
    assert.equal(basic.body.error.code, 'AUTH_TOKEN_INVALID');
    const e = await refused(client('wt_bogus').list(), 'AUTH_TOKEN_INVALID', 401);
    assert.match(e.message, /unknown, expired or revoked/);
    assert.match(e.hint!, /warren context add .*--token/);
    // Admin routes too: authentication comes before anything else.
    await refused(client('wt_bogus').nodes(), 'AUTH_TOKEN_INVALID', 401);
  });

  test('an unknown route is 404 API_NOT_FOUND; the OpenAPI document is served', T, async () => {
    const r = await rawRequest('GET', '/api/v1/nope', { headers: { authorization: `Bearer ${aliceToken}` } });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'API_NOT_FOUND');
    assert.match(r.body.error.message, /GET \/api\/v1\/nope/);
    const doc = await rawRequest('GET', '/api/v1/openapi.json');
    assert.equal(doc.status, 200);
    assert.equal(doc.body.openapi, '3.1.0');
    assert.ok(doc.body.paths['/api/v1/workflows/{id}/stream']);
  });

  test('extra plugins add their routes (no API token needed there); their errors get the same error body', T, async () => {
    const ok = await rawRequest('GET', '/agent/v1/ping');
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { pong: true });
    const bad = await rawRequest('GET', '/agent/v1/fail');
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body, { error: { code: 'MESH_NO_CLIENT_CERT', message: 'no client certificate', hint: 'connect with the agent certificate' } });
  });

  test('a bug in the backend is 500 WARREN_INTERNAL with a hint, and logged', T, async () => {
    backend.explode = new TypeError('boom');
    try {
      const e = await refused(client(aliceToken).list(), 'WARREN_INTERNAL', 500);
      assert.equal(e.message, 'boom');
      assert.match(e.hint!, /bug/);
      assert.ok(logged.some((l) => l.level === 'error' && l.msg.includes('boom') && String(l.fields?.stack).includes('TypeError')));
    } finally {
      backend.explode = undefined;
    }
  });
});

describe('workflows', () => {
  test('submit, get, list, cancel, resume round trip', T, async () => {
    const alice = client(aliceToken);
    const s = await alice.submit({ source: 'version: v1\njobs: {}\n', filename: 'flow.yaml', options: { failFast: true }, uploads: { 'in.txt': 'a'.repeat(64) } });
    assert.equal(s.owner, 'alice');
    assert.equal(s.status, 'pending');
    assert.equal(s.file, 'flow.yaml');
    assert.equal((s as unknown as Record<string, unknown>).units, undefined, 'a summary, not the detail');
    const d = await alice.get(s.id);
    assert.deepEqual(Object.keys(d.spec.jobs), ['a']);
    assert.equal(d.units[0]!.state, 'pending');
    assert.deepEqual(d.waiting, { a: 'waiting for a node' });
    assert.equal(d.events[0]!.message, 'submitted by alice');
    assert.deepEqual(
      (await alice.list()).map((w) => w.id),
      [s.id],
    );
    assert.deepEqual(await alice.list({ status: 'running' }), []);
    assert.equal((await alice.list({ limit: 1, status: 'pending' })).length, 1);
    const c = await alice.cancel(s.id);
    assert.equal(c.status, 'canceled');
    assert.equal(c.cancelRequested, true);
    await refused(alice.cancel(s.id), 'RUN_NOT_RUNNING', 409);
    const r = await alice.resume(s.id);
    assert.equal(r.status, 'running');
    assert.deepEqual(r.driver?.owner, 'server:s1');
  });

  test('the server\'s own refusal of a workflow comes back as its WarrenError', T, async () => {
    const e = await refused(client(aliceToken).submit({ source: 'syntax error', filename: 'bad.yaml' }), 'SPEC_INVALID', 400);
    assert.equal(e.message, 'bad.yaml:1:1: not a workflow');
  });

  test("another user's workflow is 404 RUN_NOT_FOUND (never 403); admins see every one", T, async () => {
    const s = await client(aliceToken).submit({ source: 'x', filename: 'mine.yaml' });
    const bob = client(bobToken);
    await refused(bob.get(s.id), 'RUN_NOT_FOUND', 404);
    await refused(bob.cancel(s.id), 'RUN_NOT_FOUND', 404);
    await refused(bob.resume(s.id), 'RUN_NOT_FOUND', 404);
    await refused(collect(bob.stream(s.id)), 'RUN_NOT_FOUND', 404);
    await refused(collect(bob.logs(s.id, { job: 'a' })), 'RUN_NOT_FOUND', 404);
    assert.ok(!(await bob.list()).some((w) => w.id === s.id));
    await refused(bob.list({ all: true }), 'AUTH_FORBIDDEN', 403);
    const root = client(adminToken);
    assert.equal((await root.get(s.id)).owner, 'alice');
    assert.ok((await root.list({ all: true })).some((w) => w.id === s.id));
  });

  test('an unknown id is 404 RUN_NOT_FOUND; an id that cannot be one is 400 naming params.id', T, async () => {
    const alice = client(aliceToken);
    const e = await refused(alice.get('nosuch'), 'RUN_NOT_FOUND', 404);
    assert.deepEqual(e.details, { id: 'nosuch' });
    await refused(alice.cancel('nosuch'), 'RUN_NOT_FOUND', 404);
    const bad = await refused(alice.get('a b'), 'API_BAD_REQUEST', 400);
    assert.match(bad.message, /params\.id/);
  });

  test('malformed requests are 400 API_BAD_REQUEST naming the field', T, async () => {
    const alice = client(aliceToken);
    const cases: Array<[unknown, RegExp]> = [
      [{ source: 5, filename: 'f.yaml' }, /body\.source must be string/],
      [{ source: 'x' }, /body\.filename is required/],
      [{ source: 'x', filename: 'f.yaml', colour: 'red' }, /body\.colour is not a known field/],
      [{ source: 'x', filename: 'f.yaml', options: { simulate: -1 } }, /body\.options\.simulate must be > 0/],
      [{ source: 'x', filename: 'f.yaml', uploads: { a: 'not-a-sha' } }, /body\.uploads\.a must match pattern/],
    ];
    for (const [body, message] of cases) {
      const e = await refused(alice.submit(body as never), 'API_BAD_REQUEST', 400);
      assert.match(e.message, message);
      assert.ok(typeof e.details?.field === 'string');
    }
    const q = await refused(alice.list({ limit: 0 }), 'API_BAD_REQUEST', 400);
    assert.match(q.message, /querystring\.limit must be >= 1/);
    const st = await refused(alice.list({ status: 'sleeping' as never }), 'API_BAD_REQUEST', 400);
    assert.match(st.message, /querystring\.status must be one of "pending"/);
    // Not JSON at all, and the wrong media type.
    const auth = { authorization: `Bearer ${aliceToken}` };
    const notJson = await rawRequest('POST', '/api/v1/workflows', { headers: { ...auth, 'content-type': 'application/json' }, body: '{"source": ' });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.error.code, 'API_BAD_REQUEST');
    assert.ok(notJson.body.error.hint);
    const media = await rawRequest('POST', '/api/v1/workflows', { headers: { ...auth, 'content-type': 'text/plain' }, body: 'hello' });
    assert.equal(media.status, 400);
    assert.equal(media.body.error.code, 'API_BAD_REQUEST');
    assert.match(media.body.error.hint, /application\/json/);
    // A body over the limit of its route (1 MiB but for submits).
    const big = await rawRequest('POST', '/api/v1/tokens', { headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ ttlSeconds: 60, pad: 'x'.repeat(1.5 * 2 ** 20) }) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'API_TOO_LARGE');
  });
});

describe('streams', () => {
  test('a stream sends every item as an SSE event and ends after done; after= / afterSeq continues after an item', T, async () => {
    const s = await client(aliceToken).submit({ source: 'x', filename: 's.yaml' });
    backend.push(s.id, { type: 'unit', unit: unit('running') });
    backend.push(s.id, { type: 'event', event: { at: 2, key: 'a', level: 'info', message: 'started' } });
    backend.push(s.id, { type: 'progress', key: 'a', progress: { bytes: 10 } });
    backend.push(s.id, { type: 'done', status: 'failed', error: { code: 'RUN_NOT_FOUND', message: 'x' } });
    const items = await collect(client(aliceToken).stream(s.id));
    assert.deepEqual(
      items.map((i) => [i.seq, i.type]),
      [
        [1, 'unit'],
        [2, 'event'],
        [3, 'progress'],
        [4, 'done'],
      ],
    );
    assert.deepEqual(items[0], { type: 'unit', seq: 1, unit: unit('running') });
    assert.deepEqual(items[3], { type: 'done', seq: 4, status: 'failed', error: { code: 'RUN_NOT_FOUND', message: 'x' } });
    const later = await collect(client(aliceToken).stream(s.id, { afterSeq: 2 }));
    assert.deepEqual(
      later.map((i) => i.seq),
      [3, 4],
    );
    assert.equal(backend.streamCalls.at(-1)!.afterSeq, 2);
    // The wire format itself.
    const r = await rawRequest('GET', `/api/v1/workflows/${s.id}/stream?after=3`, { headers: { authorization: `Bearer ${aliceToken}` } });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    assert.match(r.body, /\n\nid: 4\nevent: done\ndata: \{"type":"done",.*"seq":4\}\n\n$/);
    assert.doesNotMatch(r.body, /id: 3\n/);
    const h = await rawRequest('GET', `/api/v1/workflows/${s.id}/stream?after=1`, { headers: { authorization: `Bearer ${aliceToken}`, 'last-event-id': '3' } });
    assert.doesNotMatch(h.body, /id: 2\n/, 'Last-Event-ID wins over after=');
  });

  test('a stream dropped by the server resumes with Last-Event-ID where it was', T, async () => {
    const s = await client(aliceToken).submit({ source: 'x', filename: 'drop.yaml' });
    backend.push(s.id, { type: 'unit', unit: unit('starting') });
    backend.push(s.id, { type: 'unit', unit: unit('running') });
    const calls = backend.streamCalls.length;
    const got: StreamItem[] = [];
    for await (const item of client(aliceToken).stream(s.id)) {
      got.push(item);
      if (item.seq === 2) {
        // The server drops every connection (a restart, a proxy timing out); what happens
        // next can only reach the client when it comes back, asking for what follows seq 2.
        (server.app.server as unknown as https.Server).closeAllConnections();
        backend.push(s.id, { type: 'unit', unit: unit('succeeded') });
        backend.push(s.id, { type: 'done', status: 'succeeded' });
      }
    }
    assert.deepEqual(
      got.map((i) => i.seq),
      [1, 2, 3, 4],
    );
    const mine = backend.streamCalls.slice(calls);
    assert.deepEqual(
      mine.map((c) => c.afterSeq),
      [undefined, 2],
    );
    assert.equal(mine[0]!.signal?.aborted, true, 'the dropped stream\'s backend iterator was aborted');
  });

  test('aborting the client aborts the backend iterator; an error after the start comes through the stream', T, async () => {
    const s = await client(aliceToken).submit({ source: 'x', filename: 'abort.yaml' });
    backend.push(s.id, { type: 'unit', unit: unit('running') });
    const ac = new AbortController();
    const calls = backend.streamCalls.length;
    const got: StreamItem[] = [];
    for await (const item of client(aliceToken).stream(s.id, { signal: ac.signal })) {
      got.push(item);
      ac.abort();
    }
    assert.equal(got.length, 1);
    const call = backend.streamCalls[calls]!;
    if (!call.signal!.aborted) await once(call.signal!, 'abort');
    assert.equal(call.signal!.aborted, true);

    // A failure of the backend after the stream began: `event: error`, the client throws it.
    const f = backend.flows.get(s.id)!;
    f.failWith = new WarrenError('STORE_OPEN_FAILED', 'the store went away', { hint: 'check the store' });
    const seen: StreamItem[] = [];
    const e = await refused(
      (async () => {
        for await (const item of client(aliceToken).stream(s.id)) seen.push(item);
      })(),
      'STORE_OPEN_FAILED',
    );
    assert.equal(e.message, 'the store went away');
    assert.equal(seen.length, 1);
    assert.ok(logged.some((l) => l.msg.includes('the store went away')), 'a 5xx in a stream is logged');
  });

  test('a stream that cannot reconnect gives up after its retries with API_UNREACHABLE', T, async () => {
    const c = await makeCluster();
    const creds = await serverCredentials(c);
    const b = new MemoryBackend();
    const token = b.addUser('eve');
    const s2 = await buildApiServer({ backend: b, https: { key: creds.keyPem, cert: creds.certPem } });
    try {
      const { port } = await s2.listen('127.0.0.1', 0);
      const cl = client(token, { url: `https://127.0.0.1:${port}`, caPem: c.ca.certPem, streamRetries: 1 });
      const w = await cl.submit({ source: 'x', filename: 'gone.yaml' });
      b.push(w.id, { type: 'unit', unit: unit('running') });
      const got: StreamItem[] = [];
      const e = await refused(
        (async () => {
          for await (const item of cl.stream(w.id)) {
            got.push(item);
            await s2.close(); // ends the stream, then refuses connections
          }
        })(),
        'API_UNREACHABLE',
      );
      assert.equal(got.length, 1);
      assert.match(e.message, /gave up after 1 reconnects/);
      assert.equal(e.details?.afterSeq, 1);
    } finally {
      await s2.close();
      c.cleanup();
    }
  });
});

describe('logs', () => {
  test('logs are streamed bytes; follow waits for more until the job ends; stderr apart', T, async () => {
    const alice = client(aliceToken);
    const s = await alice.submit({ source: 'x', filename: 'logs.yaml' });
    backend.appendLog(s.id, 'a', 'stdout', 'hello\n');
    backend.appendLog(s.id, 'a', 'stderr', 'oops\n');
    assert.equal(await text(alice.logs(s.id, { job: 'a' })), 'hello\n');
    assert.equal(await text(alice.logs(s.id, { job: 'a', stream: 'stderr' })), 'oops\n');
    assert.deepEqual(backend.logCalls.at(-1)!.req, { job: 'a', task: null, stream: 'stderr', follow: false });
    await refused(collect(alice.logs(s.id, { job: 'zz' })), 'RUN_UNKNOWN_JOB', 404);
    await refused(collect(alice.logs(s.id, { job: 'a', stream: 'both' as never })), 'API_BAD_REQUEST', 400);

    const chunks: string[] = [];
    for await (const chunk of alice.logs(s.id, { job: 'a', follow: true, task: 3 })) {
      chunks.push(Buffer.from(chunk).toString());
      if (chunks.length === 1) backend.appendLog(s.id, 'a', 'stdout', 'world\n');
      else if (chunks.length === 2) backend.appendLog(s.id, 'a', 'stdout', null); // the job ended
    }
    assert.deepEqual(chunks, ['hello\n', 'world\n']);
    assert.deepEqual(backend.logCalls.at(-1)!.req, { job: 'a', task: 3, stream: 'stdout', follow: true });
  });

  test('stopping a followed log aborts the backend; a failure after the bytes began comes in the trailer', T, async () => {
    const alice = client(aliceToken);
    const s = await alice.submit({ source: 'x', filename: 'logs2.yaml' });
    backend.appendLog(s.id, 'a', 'stdout', 'one\n');
    for await (const _ of alice.logs(s.id, { job: 'a', follow: true })) break;
    const call = backend.logCalls.at(-1)!;
    if (!call.signal!.aborted) await once(call.signal!, 'abort');
    assert.equal(call.signal!.aborted, true);

    backend.appendLog(s.id, 'a', 'stdout', 'two\n', new WarrenError('DATA_IO', 'the log file went away', { hint: 'look at the disk' }));
    const got: string[] = [];
    const e = await refused(
      (async () => {
        for await (const c of alice.logs(s.id, { job: 'a' })) got.push(Buffer.from(c).toString());
      })(),
      'DATA_IO',
    );
    assert.equal(e.message, 'the log file went away');
    assert.equal(got.join(''), 'one\ntwo\n');
  });
});

describe('administration', () => {
  test('nodes: list, drain, undrain, revoke, delete', T, async () => {
    const root = client(adminToken);
    const nodes = await root.nodes();
    assert.deepEqual(
      nodes.map((n) => n.name),
      ['n001', 'n002'],
    );
    assert.deepEqual(nodes[0]!.labels, { rack: 'r1' });
    assert.equal((await root.drain('n001', true)).state, 'draining');
    assert.equal((await root.drain('n001', false)).state, 'ready');
    // With a reason; a plain POST without a body (curl -X POST) drains too; a bad body is refused.
    const why = await root.drain('n001', true, 'DIMM swap');
    assert.deepEqual([why.drainReason, why.drainedBy], ['DIMM swap', 'admin']);
    const auth = { authorization: `Bearer ${adminToken}` };
    assert.equal((await rawRequest('POST', '/api/v1/nodes/n001/drain', { headers: auth })).status, 200);
    assert.equal((await rawRequest('POST', '/api/v1/nodes/n001/drain', { headers: { ...auth, 'content-type': 'application/json' }, body: '{}' })).status, 200);
    const badBody = await rawRequest('POST', '/api/v1/nodes/n001/drain', { headers: { ...auth, 'content-type': 'application/json' }, body: '{"reason":"","force":true}' });
    assert.equal(badBody.status, 400);
    assert.equal(badBody.body.error.code, 'API_BAD_REQUEST');
    assert.equal((await root.drain('n001', false)).state, 'ready');
    // The admin's actions reached the audit log with where they came from.
    const log = await root.audit({ user: 'root' });
    assert.ok(log.some((e) => e.action === 'node.drain' && e.details.reason === 'DIMM swap' && e.source === '127.0.0.1'), JSON.stringify(log));
    assert.equal(await root.revokeNode('n002'), undefined);
    assert.equal((await root.nodes()).find((n) => n.name === 'n002')!.state, 'revoked');
    await root.deleteNode('n002');
    assert.deepEqual(
      (await root.nodes()).map((n) => n.name),
      ['n001'],
    );
    await refused(root.drain('n009', true), 'MESH_IDENTITY_NOT_FOUND', 404);
    await refused(root.drain('bad/name', true), 'API_BAD_REQUEST', 400);
  });

  test('tokens and users: create, list, revoke; a new user\'s token works at once, a removed one\'s does not', T, async () => {
    const root = client(adminToken);
    const j = await root.createJoinToken({ ttlSeconds: 600, uses: 3 });
    assert.equal(j.view.kind, 'join');
    assert.equal(j.view.usesLeft, 3);
    assert.ok(j.token.length > 10);
    assert.ok((await root.tokens()).some((t) => t.id === j.view.id));
    await root.revokeToken(j.view.id);
    assert.ok(!(await root.tokens()).some((t) => t.id === j.view.id));
    await refused(root.revokeToken(j.view.id), 'MESH_TOKEN_UNKNOWN', 401);
    const bad = await refused(root.createJoinToken({ ttlSeconds: 0 }), 'API_BAD_REQUEST', 400);
    assert.match(bad.message, /body\.ttlSeconds must be >= 1/);

    const u = await root.addUser({ name: 'carol', unixUser: 'carol2' });
    assert.deepEqual({ ...u.user, createdAt: 0 }, { name: 'carol', unixUser: 'carol2', admin: false, createdAt: 0 });
    const carol = client(u.token);
    assert.equal((await carol.whoami()).unixUser, 'carol2');
    assert.ok((await root.users()).some((x) => x.name === 'carol'));
    await root.removeUser('carol');
    assert.ok(!(await root.users()).some((x) => x.name === 'carol'));
    await refused(carol.whoami(), 'AUTH_TOKEN_INVALID', 401);
  });

  test('the CA: status, rotate (a second one refused), retire (refused without force, naming the nodes); bad bodies are 400', T, async () => {
    const root = client(adminToken);
    assert.equal((await root.caStatus()).phase, 'none');
    const r = await root.rotateCa({ trustForSeconds: 60 });
    assert.equal(r.phase, 'trust');
    assert.deepEqual(r.cas.map((c) => c.role), ['old', 'new']);
    assert.equal(r.issueAfter! - r.startedAt!, 60_000);
    await refused(root.rotateCa(), 'MESH_CA_ROTATION_IN_PROGRESS', 409);
    const no = await refused(root.retireCa(), 'MESH_CA_RETIRE_REFUSED', 409);
    assert.deepEqual(no.details?.nodes, ['n001']);
    const done = await root.retireCa({ force: true });
    assert.equal(done.phase, 'none');
    assert.deepEqual(done.cas.map((c) => [c.fingerprint, c.role]), [['BB:02', 'active']]);
    await refused(root.retireCa(), 'MESH_CA_NO_ROTATION', 409);
    await refused(root.rotateCa({ trustForSeconds: -1 }), 'API_BAD_REQUEST', 400);
  });

  test('prune: by id (a running workflow: 409 RUN_PRUNE_RUNNING, with the hint to cancel it); bad bodies are 400 naming the field', T, async () => {
    const root = client(adminToken);
    const w = await root.submit({ source: 'version: v1\njobs:\n  a:\n    command: [true]\n', filename: 'p.yaml' });
    backend.flows.get(w.id)!.detail.status = 'running';
    const e = await refused(root.prune({ ids: [w.id] }), 'RUN_PRUNE_RUNNING', 409);
    assert.match(e.hint!, /cancel it first/);
    backend.flows.get(w.id)!.detail.status = 'succeeded';
    const r = await root.prune({ ids: [w.id] });
    assert.deepEqual([r.workflows, r.removed, r.interrupted], [1, [w.id], false]);
    await refused(root.get(w.id), 'RUN_NOT_FOUND', 404);
    const cases: Array<[unknown, RegExp]> = [
      [{ olderThanSec: -1 }, /body\.olderThanSec must be >= 0/],
      [{ olderThanSec: '7d' }, /body\.olderThanSec must be number/],
      [{ ids: [] }, /body\.ids must NOT have fewer than 1 items/],
      [{ ids: ['../x'] }, /body\.ids\/0 must match pattern|body\.ids\.0 must match pattern/],
      [{ olderThanSec: 1, everything: true }, /body\.everything is not a known field/],
    ];
    for (const [body, message] of cases) {
      const x = await refused(root.prune(body as never), 'API_BAD_REQUEST', 400);
      assert.match(x.message, message);
    }
  });

  test('every admin route is 403 AUTH_FORBIDDEN for a non-admin, before the backend is asked', T, async () => {
    const alice = client(aliceToken);
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['nodes', () => alice.nodes()],
      ['drain', () => alice.drain('n001', true)],
      ['undrain', () => alice.drain('n001', false)],
      ['revokeNode', () => alice.revokeNode('n001')],
      ['deleteNode', () => alice.deleteNode('n001')],
      ['createJoinToken', () => alice.createJoinToken({ ttlSeconds: 60 })],
      ['tokens', () => alice.tokens()],
      ['revokeToken', () => alice.revokeToken('t1')],
      ['addUser', () => alice.addUser({ name: 'mallory', admin: true })],
      ['users', () => alice.users()],
      ['removeUser', () => alice.removeUser('root')],
      ['audit', () => alice.audit()],
      ['caStatus', () => alice.caStatus()],
      ['rotateCa', () => alice.rotateCa()],
      ['retireCa', () => alice.retireCa({ force: true })],
      ['prune', () => alice.prune({ olderThanSec: 0 })],
    ];
    for (const [name, call] of calls) {
      const e = await refused(call(), 'AUTH_FORBIDDEN', 403);
      assert.match(e.message, /user "alice" is not one/, name);
    }
    assert.equal(backend.nodesByName.get('n001')!.state, 'ready');
    assert.ok(backend.users.has('root'));
    assert.ok(!backend.users.has('mallory'));
    // Each refusal is in the audit log, as alice's.
    const refusals = backend.auditLog.filter((e) => e.actor === 'alice' && e.result === 'AUTH_FORBIDDEN');
    assert.equal(refusals.length, calls.length);
    assert.ok(refusals.some((e) => e.action === 'api POST /api/v1/users'));
  });
});

describe('the client', () => {
  test('a server whose CA the client does not trust is refused with API_TLS, naming the URL and --ca', T, async () => {
    const e = await refused(client(aliceToken, { caPem: null }).list(), 'API_TLS');
    assert.match(e.message, new RegExp(`cannot verify the server at ${url.replace(/\./g, '\\.')}`));
    assert.match(e.hint!, /--ca/);
    assert.match(e.hint!, new RegExp(url.replace(/\./g, '\\.')));
    // Another cluster's CA: the same.
    const other = await makeCluster();
    try {
      await refused(client(aliceToken, { caPem: other.ca.certPem }).whoami(), 'API_TLS');
    } finally {
      other.cleanup();
    }
  });

  test('nobody listening is API_UNREACHABLE; a URL that is not https is API_BAD_URL', T, async () => {
    const s2 = await buildApiServer({ backend, https: {} });
    const { port } = await s2.listen('127.0.0.1', 0);
    await s2.close();
    const e = await refused(client(aliceToken, { url: `https://127.0.0.1:${port}` }).list(), 'API_UNREACHABLE');
    assert.match(e.message, /connection refused/);
    assert.match(e.hint!, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.throws(() => new HttpClient({ url: 'http://127.0.0.1:1', token: 'x' }), (err: WarrenError) => err.code === 'API_BAD_URL' && /https:\/\/127\.0\.0\.1:1/.test(err.hint!));
    assert.throws(() => new HttpClient({ url: 'warren.example.org', token: 'x' }), (err: WarrenError) => err.code === 'API_BAD_URL');
    assert.throws(() => new HttpClient({ url: 'https://u:p@h', token: 'x' }), (err: WarrenError) => err.code === 'API_BAD_URL');
  });

  test('a URL with a path prefix is kept; where names the server', T, async () => {
    const c = client(aliceToken, { url: `${url}/` });
    assert.equal(c.where, url);
    const p = client(aliceToken, { url: `${url}/warren/` });
    assert.equal(p.where, `${url}/warren`);
    await refused(p.whoami(), 'API_NOT_FOUND', 404);
  });
});
