// The store as the leader side sees it: the same store, until this server stops leading;
// from then on every call (and every call still waiting on the database) fails at once with
// SERVER_NOT_LEADER, so that tearing the leader side down never waits on a dead database and
// nothing of it writes later.

import { WarrenError } from '../common/index.js';
import type { TokenStore } from '../mesh/index.js';
import type { Store } from '../store/index.js';

export interface StoreGate {
  store: Store;
  /** Cut it off: pending and later calls reject with SERVER_NOT_LEADER. */
  close(why: string): void;
  readonly closed: boolean;
}

export function notLeaderError(why: string, leaderUrl?: string | null): WarrenError {
  return new WarrenError('SERVER_NOT_LEADER', `this server is not the cluster's leader${why ? ` (${why})` : ''}`, {
    hint: leaderUrl ? `talk to the leader at ${leaderUrl}` : 'talk to the leader; `GET /api/v1/health` on each server says which one leads',
    details: leaderUrl ? { leader: leaderUrl } : {},
  });
}

export function gateStore(inner: Store): StoreGate {
  let closed = false;
  let reason = '';
  // The calls in flight, each cut off by close(). (Not a race against one never-settling
  // promise: every race would leave a reaction on it, for as long as the server leads.)
  const inFlight = new Set<(e: unknown) => void>();
  const guard = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    (...a: A): Promise<R> => {
      if (closed) return Promise.reject(notLeaderError(reason));
      const call = fn(...a);
      return new Promise<R>((resolve, reject) => {
        inFlight.add(reject);
        Promise.resolve(call).then(
          (v) => {
            inFlight.delete(reject);
            resolve(v);
          },
          (e: unknown) => {
            inFlight.delete(reject);
            reject(e);
          },
        );
      });
    };
  const tokens = (t: TokenStore): TokenStore => ({
    insert: guard(t.insert.bind(t)),
    consume: guard(t.consume.bind(t)),
    get: guard(t.get.bind(t)),
    list: guard(t.list.bind(t)),
    delete: guard(t.delete.bind(t)),
  });
  const store = new Proxy(inner, {
    get(target, key) {
      const v = Reflect.get(target, key, target) as unknown;
      if (key === 'joinTokens') return () => tokens(target.joinTokens());
      // The store itself belongs to the server, not to its leader side.
      if (key === 'close') return async () => {};
      if (typeof v === 'function') return guard((v as (...a: unknown[]) => Promise<unknown>).bind(target));
      return v;
    },
  }) as Store;
  return {
    store,
    get closed() {
      return closed;
    },
    close(why: string) {
      if (closed) return;
      closed = true;
      reason = why;
      const e = notLeaderError(why);
      for (const reject of inFlight) reject(e);
      inFlight.clear();
    },
  };
}
