// HTTP/1.1 upgrades to a raw byte stream (`Upgrade: warren-tunnel`): how a port forward
// crosses the server (the user's side on /api/v1, the node's side on /agent/v1). Both ends
// speak it over a socket they already have (TLS), so this is only the request, the answer
// and the error body: `101 Switching Protocols`, or the status of an error code with
// `{ "error": WireError }`.

import type { Duplex } from 'node:stream';
import { WarrenError, toWarrenError, type WireError } from './errors.js';

export const TUNNEL_PROTOCOL = 'warren-tunnel';

/** Header of the node's tunnel request when it could not reach the service: the error, as base64 JSON. */
export const TUNNEL_ERROR_HEADER = 'x-warren-tunnel-error';

const MAX_HEAD = 64 * 1024;

/**
 * Send an upgrade request on `socket` and wait for the answer: the socket itself once the
 * peer switched protocols (bytes it sent after its answer are given back to the stream), or
 * the peer's error as a WarrenError.
 */
export function requestUpgrade(socket: Duplex, o: { path: string; host: string; headers?: Record<string, string>; timeoutMs?: number }): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => fail(new WarrenError('API_UNREACHABLE', `no answer to the upgrade of ${o.path} within ${Math.round((o.timeoutMs ?? 30_000) / 1000)} s`, { hint: 'retry; check that the server is up' })), o.timeoutMs ?? 30_000);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (e: Error): void => {
      if (done) return;
      done = true;
      cleanup();
      socket.destroy();
      reject(e);
    };
    const onError = (e: Error): void => fail(e);
    const onClose = (): void => fail(new WarrenError('API_UNREACHABLE', `the connection closed before the upgrade of ${o.path} was answered`, { hint: 'retry; check that the server is up' }));
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_HEAD) fail(new WarrenError('API_BAD_RESPONSE', 'the answer to an upgrade has no end of its headers', { hint: 'is it a Warren server?' }));
        return;
      }
      const head = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
      const headers = new Map(head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const rest = buf.subarray(end + 4);
      if (status === 101) {
        done = true;
        cleanup();
        socket.pause();
        if (rest.length) socket.unshift(rest);
        resolve(socket);
        return;
      }
      // An error answer: its JSON body (content-length long).
      const len = Number(headers.get('content-length') ?? 0);
      if (rest.length < len) return;
      let err: WarrenError;
      try {
        const body = JSON.parse(rest.subarray(0, len).toString('utf8')) as { error?: WireError };
        err = body.error ? WarrenError.fromWire(body.error) : new WarrenError('API_BAD_RESPONSE', `the upgrade of ${o.path} was refused with HTTP ${status}`, { hint: 'is it a Warren server?' });
      } catch {
        err = new WarrenError('API_BAD_RESPONSE', `the upgrade of ${o.path} was refused with HTTP ${status}`, { hint: 'is it a Warren server of this release?' });
      }
      fail(err);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    const lines = [`GET ${o.path} HTTP/1.1`, `Host: ${o.host}`, 'Connection: Upgrade', `Upgrade: ${TUNNEL_PROTOCOL}`];
    for (const [k, v] of Object.entries(o.headers ?? {})) lines.push(`${k}: ${v}`);
    socket.write(lines.join('\r\n') + '\r\n\r\n');
  });
}

/** Answer an upgrade request: switched; from now on the socket is the stream. */
export function acceptUpgrade(socket: Duplex): void {
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n\r\n`);
}

/** Refuse an upgrade request with an error (its code's HTTP status and `{error}` body), and close. */
export function refuseUpgrade(socket: Duplex, e: unknown): void {
  const err = toWarrenError(e);
  const body = Buffer.from(JSON.stringify({ error: err.toWire() }));
  try {
    socket.end(`HTTP/1.1 ${err.httpStatus} ${err.httpStatus < 500 ? 'Refused' : 'Failed'}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString('utf8')}`);
  } catch {
    socket.destroy();
  }
}

/** Join two streams both ways; either end closing closes the other (after what it wrote is
 *  flushed), a failure of either destroys both. */
export function joinStreams(a: Duplex, b: Duplex): void {
  const destroy = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', destroy);
  b.on('error', destroy);
  a.on('close', () => b.end());
  b.on('close', () => a.end());
  a.pipe(b);
  b.pipe(a);
  a.resume();
  b.resume();
}
