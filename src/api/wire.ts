// Wire shapes of the HTTPS API that are not client calls of `WarrenClient`: who a token
// is (GET /api/v1/whoami) and the server's health (GET /api/v1/health, no token needed).

/** The principal a bearer token stands for. */
export interface WhoAmI {
  user: string;
  unixUser: string;
  admin: boolean;
  tokenId: string;
}

/** The server's health: `ok` is false (and the status 503) when the store is not usable. */
export interface HealthView {
  ok: boolean;
  version: string;
  store: { ok: boolean; kind: string; error?: string };
  /** Whether this server holds the cluster's leadership lease (cluster mode). */
  leader?: boolean;
  /** Cluster mode: leader (schedules) or follower (serves reads, forwards the rest); a server
   *  that lost its store is a follower. */
  role?: 'leader' | 'follower';
  /** The leader's URL, when one holds the leadership. */
  leaderUrl?: string | null;
  /** The leadership's term. */
  term?: number;
  nodes?: { ready: number; total: number };
  /** Things an operator should know (degraded store, no ready node...). */
  messages: string[];
}

/** GET /health (no token): the process is alive and answers. */
export interface LiveView {
  status: 'ok';
  version: string;
  role: 'leader' | 'follower';
  uptimeSeconds: number;
}

/** GET /ready (no token; 200 when ready, else 503): whether this server can take API traffic now. */
export interface ReadyView {
  ready: boolean;
  version: string;
  role: 'leader' | 'follower';
  /** The leadership's term (this server's when it leads, the lease's as last read otherwise). */
  term: number;
  /** The leader's URL, when one holds the leadership (this server's own when it leads). */
  leaderUrl: string | null;
  store: { kind: string; reachable: boolean; latencyMs: number; error?: string };
  /** Why it is not ready, or what an operator should know. */
  messages: string[];
}

/** GET /api/v1/server/status (admins): `warren server status`. */
export interface ServerStatusView extends ReadyView {
  /** This server's id in the leader lease, and its advertised URL. */
  id: string;
  url: string;
  /** Nodes by state: the leader's live view (`live`), or the store's on a follower (`store`). */
  agents: { ready: number; down: number; lost: number; revoked: number; drained: number; total: number; source: 'live' | 'store' } | null;
  /** Units of the pending and running workflows, as the store counts them (tasks of an array not started yet are not counted). */
  queue: {
    pending: number;
    ready: number;
    starting: number;
    running: number;
    /** How long the unit that has waited longest to run waits (the leader only; null: none, or a follower). */
    oldestWaitingSeconds: number | null;
    /** When the store counted (ms since the epoch). */
    countedAt: number;
  } | null;
  workflows: { pending: number; running: number } | null;
}

/** The server writes a comment line on every event stream this often (clients take a
 *  silence of several of these as a dead connection, and reconnect). */
export const SSE_HEARTBEAT_MS = 15_000;

/** The HTTP trailer of a log stream that failed after its bytes began: base64url of the
 *  JSON WireError. */
export const LOG_ERROR_TRAILER = 'x-warren-error';
