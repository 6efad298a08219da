// A real HTTP file server on 127.0.0.1 for the data tests: GET/HEAD with Range, If-Range,
// If-None-Match and ETag; PUT; optional Basic auth; injected faults (status codes, a
// connection dropped after N body bytes). Records every request.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
}

export type Fault = { status: number; retryAfter?: string } | { dropAfter: number } | { stallAfter: number };

export interface TestServer {
  url: (path: string) => string;
  port: number;
  requests: RecordedRequest[];
  /** Path -> content; the ETag is derived from the content unless `etags` overrides it. */
  objects: Map<string, Buffer>;
  etags: Map<string, string>;
  /** Paths served without an ETag, with this Last-Modified instead. */
  lastModified: Map<string, string>;
  /** Faults consumed in order by GET/PUT requests of a path. */
  faults: Map<string, Fault[]>;
  /** Required `Authorization` header value, if any. */
  auth?: string;
  /** PUT bodies received. */
  uploads: Map<string, Buffer>;
  close: () => Promise<void>;
}

export function etagOf(b: Buffer): string {
  return `"${createHash('sha256').update(b).digest('hex').slice(0, 16)}"`;
}

export async function startServer(): Promise<TestServer> {
  const s: Omit<TestServer, 'url' | 'port' | 'close'> = {
    requests: [], objects: new Map(), etags: new Map(), lastModified: new Map(), faults: new Map(), uploads: new Map(),
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    s.requests.push({ method: req.method ?? '', path, headers: req.headers });
    if (s.auth && req.headers.authorization !== s.auth) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="t"' }).end();
      return;
    }
    const fault = s.faults.get(path)?.shift();
    if (fault && 'status' in fault) {
      res.writeHead(fault.status, fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}).end('fault');
      return;
    }
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        s.uploads.set(path, Buffer.concat(chunks));
        res.writeHead(201).end();
      });
      return;
    }
    const body = s.objects.get(path);
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    const lm = s.lastModified.get(path);
    const etag = lm ? undefined : s.etags.get(path) ?? etagOf(body);
    const validator = etag ?? lm;
    const inm = req.headers['if-none-match'];
    if (etag && inm && inm.split(',').map((x) => x.trim()).includes(etag)) {
      res.writeHead(304, { etag }).end();
      return;
    }
    if (lm && req.headers['if-modified-since'] === lm) {
      res.writeHead(304, { 'last-modified': lm }).end();
      return;
    }
    let start = 0;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (range && (!ifRange || ifRange === validator)) {
      start = parseInt(range[1]!, 10);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      status = 206;
    }
    const part = body.subarray(start);
    const headers: Record<string, string> = { ...(etag ? { etag } : { 'last-modified': lm! }), 'content-length': String(part.length), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (fault && 'stallAfter' in fault) {
      res.write(part.subarray(0, fault.stallAfter)); // and never finish (closed with the server)
      return;
    }
    if (fault && 'dropAfter' in fault) {
      res.write(part.subarray(0, fault.dropAfter), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(part);
  };
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(s, {
    port,
    url: (p: string) => `http://127.0.0.1:${port}${p}`,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  });
}

/** A port on 127.0.0.1 with nobody listening. */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
