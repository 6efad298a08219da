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

/** The server writes a comment line on every event stream this often (clients take a
 *  silence of several of these as a dead connection, and reconnect). */
export const SSE_HEARTBEAT_MS = 15_000;

/** The HTTP trailer of a log stream that failed after its bytes began: base64url of the
 *  JSON WireError. */
export const LOG_ERROR_TRAILER = 'x-warren-error';
