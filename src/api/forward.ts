// `warren port-forward ID SERVICE [LOCAL:]PORT`: a local port (127.0.0.1:LOCAL) whose every
// connection is joined to the service's port through the client API (`connect`: on this
// machine straight to the port, on a server through the node's agent), until it is stopped
// or the service stops running.

import { createServer, type Server, type Socket } from 'node:net';
import { WarrenError, joinStreams, toWarrenError } from '../common/index.js';
import { checkServiceForward } from '../server/index.js';
import type { WarrenClient } from './types.js';

export interface PortForward {
  /** The local port it listens on (the chosen one when 0 was asked for). */
  port: number;
  /** Resolves when it stopped: `close()`, or the service stopped running (the reason). */
  done: Promise<{ reason: 'closed' | 'service-ended'; message?: string }>;
  close(): void;
}

export interface PortForwardOptions {
  id: string;
  service: string;
  port: number;
  /** 0: any free port. */
  localPort: number;
  /** A connection could not be joined (the error), or one was opened / closed. */
  onConnection?: (e: { kind: 'open' | 'error'; error?: WarrenError }) => void;
  /** How often to check that the service still runs (ms; default 2000). */
  watchMs?: number;
}

/** Check the target, listen on 127.0.0.1:localPort, and forward each connection. */
export async function forwardPort(client: WarrenClient, o: PortForwardOptions): Promise<PortForward> {
  const check = async (): Promise<string> => {
    const d = await client.get(o.id);
    checkServiceForward(d.id, d.spec, d.status, d.units, o.service, o.port);
    return d.id;
  };
  const id = await check();
  const sockets = new Set<Socket>();
  const server: Server = createServer((local) => {
    sockets.add(local);
    local.once('close', () => sockets.delete(local));
    local.pause();
    client.connect(id, o.service, o.port).then(
      (remote) => {
        if (local.destroyed) {
          remote.destroy();
          return;
        }
        o.onConnection?.({ kind: 'open' });
        joinStreams(local, remote);
      },
      (e: unknown) => {
        o.onConnection?.({ kind: 'error', error: toWarrenError(e) });
        local.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new WarrenError('SERVICE_LOCAL_PORT_UNAVAILABLE', `cannot listen on 127.0.0.1:${o.localPort}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.code === 'EACCES' ? 'permission denied (ports below 1024 need root)' : e.message}`, {
          hint: `pick another local port (\`warren port-forward ${o.id} ${o.service} LOCAL:${o.port}\`), or 0:${o.port} to let the system choose one`,
        }),
      ),
    );
    server.listen(o.localPort, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  let finish!: (r: { reason: 'closed' | 'service-ended'; message?: string }) => void;
  const done = new Promise<{ reason: 'closed' | 'service-ended'; message?: string }>((r) => (finish = r));
  let stopped = false;
  const stop = (r: { reason: 'closed' | 'service-ended'; message?: string }): void => {
    if (stopped) return;
    stopped = true;
    clearInterval(watch);
    server.close();
    for (const s of sockets) s.destroy();
    finish(r);
  };
  const watch = setInterval(() => {
    check().then(
      () => {},
      (e: unknown) => {
        const err = toWarrenError(e);
        // The service stopped (or the workflow went away): so does the forward. Other errors (a server restarting) are retried.
        if (err.code === 'SERVICE_NOT_RUNNING' || err.code === 'RUN_NOT_FOUND') stop({ reason: 'service-ended', message: err.message });
      },
    );
  }, o.watchMs ?? 2000);
  return { port, done, close: () => stop({ reason: 'closed' }) };
}
